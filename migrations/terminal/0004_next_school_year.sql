-- The next school year's calendar from the snapshot (JSON, the shared format), once the server
-- has it configured: a terminal offline at the turn of the year still knows the new year's
-- school days. NULL: not known (or an older server).
ALTER TABLE school_calendar ADD COLUMN next_school_year TEXT;
