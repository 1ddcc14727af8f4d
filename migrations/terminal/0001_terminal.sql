-- The canteen terminal's own store. It holds no IIN and no category, ever.
-- Rows are never deleted: events and meals are append-only (enforced by triggers below),
-- vouchers that drop out of a full snapshot are marked unlisted instead of removed.

-- Who this terminal is; written once at enrollment.
CREATE TABLE identity (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    terminal_id     TEXT    NOT NULL,
    label           TEXT,
    school_code     INTEGER NOT NULL,
    school_bin      TEXT    NOT NULL,
    school_name     TEXT    NOT NULL,
    server_url      TEXT    NOT NULL,
    -- base64url of the 32-byte root public key, pinned at enrollment.
    root_public_key TEXT    NOT NULL,
    enrolled_at     INTEGER NOT NULL
);

-- Sync bookkeeping and the clock watermark; one row.
CREATE TABLE sync_state (
    id                   INTEGER PRIMARY KEY CHECK (id = 1),
    trust_list           TEXT,
    trust_version        INTEGER,
    snapshot_cursor      INTEGER NOT NULL DEFAULT 0,
    -- Local clock (Unix seconds) at the last successful snapshot.
    last_sync_at         INTEGER,
    -- server_time - local time, seconds, measured at the last snapshot.
    server_offset        INTEGER,
    -- Highest seq the server acknowledged, contiguous from 1.
    uploaded_through     INTEGER NOT NULL DEFAULT 0,
    -- The clock watermark: a clock below the highest time seen is untrusted. The highest time
    -- is this value or the latest scanned_at of an event after watermark_seq, so a scan does
    -- not have to write this row (one page less per durable commit).
    last_seen_time       INTEGER NOT NULL DEFAULT 0,
    watermark_seq        INTEGER NOT NULL DEFAULT 0,
    last_sync_attempt_at INTEGER,
    last_sync_error      TEXT
);

-- The school calendar and meal windows from the last snapshot, as JSON in the shared formats.
CREATE TABLE school_calendar (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    school_year  TEXT    NOT NULL,
    meal_windows TEXT    NOT NULL,
    updated_at   INTEGER NOT NULL
);

CREATE TABLE vouchers (
    voucher_id   TEXT    PRIMARY KEY,
    status       TEXT    NOT NULL CHECK (status IN ('issued', 'active', 'revoked', 'expired')),
    valid_from   TEXT    NOT NULL,
    valid_to     TEXT    NOT NULL,
    display_name TEXT    NOT NULL,
    grade        INTEGER NOT NULL,
    class_letter TEXT    NOT NULL,
    card_number  TEXT,
    -- 0 when the last full snapshot no longer listed it: treated as unknown.
    listed       INTEGER NOT NULL DEFAULT 1,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX vouchers_card ON vouchers (card_number);

-- Meals served at the school's other terminals, as the server reported them.
CREATE TABLE served_elsewhere (
    voucher_id     TEXT    NOT NULL,
    service_day    TEXT    NOT NULL,
    meal_kind      TEXT    NOT NULL,
    served_at      INTEGER NOT NULL,
    terminal_id    TEXT    NOT NULL,
    terminal_label TEXT    NOT NULL,
    PRIMARY KEY (voucher_id, service_day, meal_kind, terminal_id)
);

-- Every scan, served or rejected. seq is the per-terminal sequence number of DESIGN §5:
-- rowid-backed and never deleted, so it stays contiguous from 1. No secondary index: each one
-- is another page in every scan's fsync, and the day report can afford a scan of the table.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY,
    event_id    TEXT    NOT NULL,
    scanned_at  INTEGER NOT NULL,
    service_day TEXT    NOT NULL,
    verdict     TEXT    NOT NULL,
    source      TEXT    NOT NULL CHECK (source IN ('qr', 'card')),
    meal_kind   TEXT    NOT NULL CHECK (meal_kind IN ('breakfast', 'lunch', 'snack')),
    voucher_id  TEXT,
    key_id      TEXT
);

-- One row per meal served here; the primary key is the one-meal guard of DESIGN §4
-- (voucher, service day, meal kind), ordered by day so one day's meals sit together.
CREATE TABLE meals (
    service_day TEXT    NOT NULL,
    meal_kind   TEXT    NOT NULL,
    voucher_id  TEXT    NOT NULL,
    served_at   INTEGER NOT NULL,
    event_seq   INTEGER NOT NULL REFERENCES events (seq),
    PRIMARY KEY (service_day, meal_kind, voucher_id)
) WITHOUT ROWID;

-- An `ok` event writes its meal row in the same statement, so a scan is one autocommitted
-- INSERT: event and meal are durable together or not at all. A second meal for the same
-- (day, kind, voucher) makes the whole INSERT fail, event included.
CREATE TRIGGER events_ok_serves_meal AFTER INSERT ON events WHEN NEW.verdict = 'ok'
BEGIN
    INSERT INTO meals (service_day, meal_kind, voucher_id, served_at, event_seq)
    VALUES (NEW.service_day, NEW.meal_kind, NEW.voucher_id, NEW.scanned_at, NEW.seq);
END;

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER meals_no_update BEFORE UPDATE ON meals
BEGIN SELECT RAISE(ABORT, 'meals are append-only'); END;
CREATE TRIGGER meals_no_delete BEFORE DELETE ON meals
BEGIN SELECT RAISE(ABORT, 'meals are append-only'); END;
