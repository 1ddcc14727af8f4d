-- Floods at the terminal (docs/terminal.md, "Floods"): a rejection repeated with the same input
-- within a second is one event with a count, and past a terminal's per-minute cap rejections
-- are kept only as counts in "capped" events. Every figure of rejected scans sums `count`;
-- served events always have 1, so no meal count depends on it.
ALTER TABLE terminal_events ADD COLUMN count BIGINT NOT NULL DEFAULT 1 CHECK (count >= 1);
ALTER TABLE terminal_events ADD COLUMN capped BOOLEAN NOT NULL DEFAULT FALSE;
