-- Proof of each meal: every served event is classed as it is stored.
--   proof_class: 'proven' (its QR token re-verified), 'card' (card or staff look-up: no token
--   exists), 'refused' (with `refusal`, the reason code), or 'unverified' (served events
--   stored before proofs existed; they stay counted as they were). NULL for rejections.
-- Refused events are kept and shown to the school as anomalies; they count nowhere.
ALTER TABLE terminal_events ADD COLUMN proof_class TEXT;
ALTER TABLE terminal_events ADD COLUMN refusal TEXT;
-- The same token shown again at the same terminal within the repeat window: recorded, never
-- listed as a suspicious second attempt.
ALTER TABLE terminal_events ADD COLUMN is_repeat BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE terminal_events
   SET proof_class = CASE WHEN source = 'card' THEN 'card' ELSE 'unverified' END
 WHERE verdict = 'ok';

-- The counted index leaves refused events out, so a forged event never takes a real meal's
-- place (nor marks it a duplicate).
DROP INDEX terminal_events_counted;
CREATE UNIQUE INDEX terminal_events_counted ON terminal_events(service_day, voucher_id, meal_kind)
    WHERE verdict = 'ok' AND duplicate = FALSE AND refusal IS NULL;
-- Anomalies are read per school and day; few rows carry a refusal.
CREATE INDEX terminal_events_refused ON terminal_events(school_code, service_day)
    WHERE refusal IS NOT NULL;

-- The version a terminal last named, and when the server last refused its upload because that
-- version sends meals without proof: the operator's list of terminals to upgrade.
ALTER TABLE terminals ADD COLUMN version TEXT;
ALTER TABLE terminals ADD COLUMN upgrade_required_at INTEGER;
