-- Event upload speed (docs/benchmarks.md, "Event upload").
--
-- An index led by the voucher puts every event of a batch on a different page: a canteen scans
-- each pupil once a day, so a batch of 500 scans dirtied ~500 random index pages, each written
-- to the WAL at commit and again at the checkpoint. That was the largest cost of an upload.
-- Its one reader, a voucher's meal history, now looks the voucher up in the counted index
-- (day first) for each day of the voucher's validity, and new rows touch only recent pages.
DROP INDEX IF EXISTS terminal_events_voucher_day;

-- PostgreSQL checks a foreign key with a trigger and a locking query per inserted row: two per
-- event, a fifth of the time of a batch insert (EXPLAIN ANALYZE: 2.7 of 11.5 ms for 500 rows).
-- Events are written only by an upload, with the terminal id and school code of the terminal's
-- row that the same transaction has locked, and terminals and schools are never deleted, so the
-- checks can never fail. (SQLite checks foreign keys inside the insert, at little cost; its
-- constraints stay.)
ALTER TABLE terminal_events
    DROP CONSTRAINT IF EXISTS terminal_events_terminal_id_fkey,
    DROP CONSTRAINT IF EXISTS terminal_events_school_code_fkey;
