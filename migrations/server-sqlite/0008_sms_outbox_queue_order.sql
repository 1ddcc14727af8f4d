-- The delivery job claims unsent SMS oldest first (ORDER BY created_at, id). With only the
-- (sent_at, next_attempt_at) index every claim sorted all unsent rows: a first mailing of
-- 900,000 requests sorted up to 900,000 rows for each batch of 500. This partial index is in
-- claim order and holds only unsent rows, so a claim reads about the rows it takes.
CREATE INDEX sms_outbox_unsent ON sms_outbox(created_at, id) WHERE sent_at IS NULL;
DROP INDEX sms_outbox_due;
