-- Every outbox lease names its holder, so that renewing, releasing and failing a row touch only
-- the rows this worker still holds (NOBD's outbox had the column already). claimed_until is now
-- set from the database's own clock at the moment of the claim.
ALTER TABLE sms_outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE complaints ADD COLUMN claimed_by TEXT;
