-- Retention (DESIGN §10): the personal data of a pupil who left the roster is erased once it
-- has been kept long enough (docs/operations.md, "Retention"). The row stays, with its id, school,
-- class and category, so that counts and the vouchers and meals that name it stay whole.

-- When the pupil's names, IIN, phones and card were erased; NULL while they are kept.
ALTER TABLE pupils ADD COLUMN erased_at BIGINT;

-- The retention run walks the removed pupils not yet erased, oldest removal first: few rows,
-- while the pupils still listed are millions.
CREATE INDEX pupils_to_erase ON pupils(removed_at, id)
    WHERE removed_at IS NOT NULL AND erased_at IS NULL;
-- Pupils erased, counted per school for the authority's view and the metrics.
CREATE INDEX pupils_erased ON pupils(school_code) WHERE erased_at IS NOT NULL;

-- Where else an erased pupil's values are found, by key rather than by reading whole tables:
-- the transitions of their consents (the days their outcomes went to NOBD), their vouchers'
-- complaints, and audit rows about their vouchers (a parent's phone is the actor of some).
CREATE INDEX consent_transitions_consent ON consent_transitions(consent_id);
CREATE INDEX complaints_voucher ON complaints(voucher_id);
CREATE INDEX audit_log_subject ON audit_log(subject);

-- Erased values may still be in the database files until the purge after the erasure
-- (VACUUM) has run: each erasure sets this row in its transaction (a new generation), a
-- completed purge deletes the generation it started after, and a retention run that finds the
-- row purges even when it erased nothing itself.
CREATE TABLE retention_purge (
    name        TEXT PRIMARY KEY,
    generation  BIGINT NOT NULL
);
