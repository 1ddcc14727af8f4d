-- Event upload speed (docs/benchmarks.md, "Event upload").
--
-- An index led by the voucher puts every event of a batch on a different page: a canteen scans
-- each pupil once a day, so a batch of 500 scans dirtied ~500 random index pages, each written
-- to the WAL at commit and again at the checkpoint. That was the largest cost of an upload.
-- Its one reader, a voucher's meal history, now looks the voucher up in the counted index
-- (day first) for each day of the voucher's validity, and new rows touch only recent pages.
DROP INDEX IF EXISTS terminal_events_voucher_day;
