-- Server core: lookups the consent process and the SMS outbox make on every reply and tick.

-- Help texts per number and day (rate limit on inbound replies).
CREATE INDEX sms_outbox_to ON sms_outbox(to_phone, created_at);

-- The consent tick looks for eligible, listed pupils without a consent row.
CREATE INDEX pupils_eligible ON pupils(id) WHERE category <> 'not_eligible' AND removed_at IS NULL;

-- Repeats and expiries: consents of a school year in a status, oldest clock first.
CREATE INDEX consents_year_status ON consents(school_year, status);
