-- A parent's reply looks its requests up by phone, year and status. With only the phone index
-- SQLite preferred (school_year, status), which during a mailing is every open request: 40 ms of
-- CPU per reply at 170,000 pupils. The three-column index is exact and covers phone-only lookups.
CREATE INDEX consents_phone_year_status ON consents(phone, school_year, status);
DROP INDEX consents_phone;
