-- The token text a served QR event was served on (the server re-verifies it before the meal
-- counts), and the mark of a repeat: the same token shown again at this terminal shortly after
-- its meal, recorded but never counted. Tokens hold no personal data.
ALTER TABLE events ADD COLUMN proof TEXT;
ALTER TABLE events ADD COLUMN repeat INTEGER NOT NULL DEFAULT 0 CHECK (repeat IN (0, 1));
