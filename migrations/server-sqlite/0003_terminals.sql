-- Canteen terminals, their one-time enrollment codes and the events they upload (DESIGN §5).

CREATE TABLE terminals (
    id             TEXT PRIMARY KEY,
    school_code    INTEGER NOT NULL REFERENCES schools(code),
    label          TEXT NOT NULL,
    secret_hash    TEXT NOT NULL,                -- SHA-256 hex of the bearer secret
    enrolled_at    INTEGER NOT NULL,
    revoked_at     INTEGER,
    last_sync_at   INTEGER,
    clock_offset   INTEGER,                      -- terminal clock minus server clock, seconds
    last_seq       INTEGER NOT NULL DEFAULT 0    -- highest contiguous seq stored
);
CREATE INDEX terminals_school ON terminals(school_code);
-- A terminal may present its secret alone (without its id): found by the hash.
CREATE UNIQUE INDEX terminals_secret_hash ON terminals(secret_hash);

CREATE TABLE enroll_codes (
    code_hash    TEXT PRIMARY KEY,               -- SHA-256 hex of the code
    school_code  INTEGER NOT NULL REFERENCES schools(code),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    used_at      INTEGER,
    terminal_id  TEXT
);

-- Append-only: every scan of every terminal, stored once on (terminal_id, seq).
CREATE TABLE terminal_events (
    terminal_id  TEXT NOT NULL REFERENCES terminals(id),
    seq          INTEGER NOT NULL,
    event_id     TEXT NOT NULL UNIQUE,
    school_code  INTEGER NOT NULL REFERENCES schools(code),
    voucher_id   TEXT,
    verdict      TEXT NOT NULL,
    source       TEXT NOT NULL CHECK (source IN ('qr', 'card')),
    meal_kind    TEXT NOT NULL,
    service_day  TEXT NOT NULL,
    scanned_at   INTEGER NOT NULL,
    key_id       TEXT,
    received_at  INTEGER NOT NULL,
    -- A second 'ok' for the same (voucher, day, meal kind) from another terminal: kept,
    -- shown to the school, counted once in reports.
    duplicate    BOOLEAN NOT NULL DEFAULT FALSE,
    -- The event names a voucher that was not one of the terminal's school when it arrived
    -- (normal for wrong_school scans; for an 'ok' it is worth a look by the school).
    foreign_voucher BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (terminal_id, seq)
);
CREATE INDEX terminal_events_school_day ON terminal_events(school_code, service_day);
CREATE INDEX terminal_events_voucher_day ON terminal_events(voucher_id, service_day, meal_kind);
CREATE INDEX terminal_events_received ON terminal_events(received_at);
-- At most one counted meal per (voucher, service day, meal kind), across all terminals: the
-- database itself refuses a second, so concurrent uploads cannot both count one. The day leads:
-- uploads look meals up by day and voucher, and new rows land in the recent days' pages only.
CREATE UNIQUE INDEX terminal_events_counted ON terminal_events(service_day, voucher_id, meal_kind)
    WHERE verdict = 'ok' AND duplicate = FALSE;
