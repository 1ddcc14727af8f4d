-- The token text a served QR event was served on (the server re-verifies it before the meal
-- counts), and the mark of a repeat: the same token shown again at this terminal shortly after
-- its meal, recorded but never counted. Tokens hold no personal data.
ALTER TABLE events ADD COLUMN proof TEXT;
ALTER TABLE events ADD COLUMN repeat INTEGER NOT NULL DEFAULT 0 CHECK (repeat IN (0, 1));

-- Written only after a scan's COMMIT failed (a failing fsync does not take back the write of
-- its WAL frames, and SQLite's recovery on the next start would take them for a commit): this
-- small transaction lands on the same WAL frames, so the failed scan can never come back.
-- It also keeps, where the disk still allows, how often that happened.
CREATE TABLE commit_failures (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    failures INTEGER NOT NULL,
    last_at  INTEGER NOT NULL
);
