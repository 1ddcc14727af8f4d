-- Vouchers that follow their pupil (DESIGN §10).

-- A voucher moved to the pupil's new school by a roster import: one row per move. The old
-- school's terminals learn from it at their next sync that the voucher left (their snapshot
-- delta carries the rows with a change number past their cursor); the school pages list the
-- transfers in and out of a school year.
CREATE TABLE voucher_moves (
    id           INTEGER PRIMARY KEY,
    voucher_id   TEXT NOT NULL REFERENCES vouchers(id),
    pupil_id     INTEGER NOT NULL REFERENCES pupils(id),
    school_year  TEXT NOT NULL,
    from_school  INTEGER NOT NULL REFERENCES schools(code),
    to_school    INTEGER NOT NULL REFERENCES schools(code),
    moved_at     INTEGER NOT NULL,
    change_seq   INTEGER NOT NULL
);
CREATE INDEX voucher_moves_from ON voucher_moves(from_school, change_seq);
CREATE INDEX voucher_moves_to ON voucher_moves(to_school, school_year);
CREATE INDEX voucher_moves_voucher ON voucher_moves(voucher_id, moved_at);

-- The day's revocations for NOBD: few among all vouchers.
CREATE INDEX vouchers_revoked_at ON vouchers(revoked_at) WHERE revoked_at IS NOT NULL;
