-- The parents' wallet: login codes, sessions, ratings, complaints and per-voucher token counts.
-- Times are Unix seconds (UTC); dates are 'YYYY-MM-DD' local (UTC+5); UUIDs are text.

-- One row per code sent (or, for phones no pupil lists, per code that would have been sent:
-- the rows keep the per-phone rate limit identical for known and unknown numbers).
CREATE TABLE login_codes (
    id          INTEGER PRIMARY KEY,
    phone       TEXT NOT NULL,
    code_hash   TEXT NOT NULL,                -- SHA-256 hex of pepper, phone and code
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    used_at     INTEGER
);
CREATE INDEX login_codes_phone ON login_codes(phone, created_at);

CREATE TABLE wallet_sessions (
    token_hash  TEXT PRIMARY KEY,             -- SHA-256 hex of the bearer token
    phone       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX wallet_sessions_phone ON wallet_sessions(phone);
CREATE INDEX wallet_sessions_expires ON wallet_sessions(expires_at);

-- One rating per voucher per service day; the parent may change it during that day.
CREATE TABLE ratings (
    id           INTEGER PRIMARY KEY,
    voucher_id   TEXT NOT NULL REFERENCES vouchers(id),
    school_code  INTEGER NOT NULL REFERENCES schools(code),
    service_day  TEXT NOT NULL,
    stars        INTEGER NOT NULL CHECK (stars BETWEEN 1 AND 5),
    comment      TEXT,
    phone        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (voucher_id, service_day)
);
CREATE INDEX ratings_school_day ON ratings(school_code, service_day);

-- Complaints for e-Otinish, delivered through an outbox: `payload` is the document as sent.
CREATE TABLE complaints (
    id               TEXT PRIMARY KEY,
    voucher_id       TEXT NOT NULL REFERENCES vouchers(id),
    school_code      INTEGER NOT NULL REFERENCES schools(code),
    phone            TEXT NOT NULL,
    text             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('queued', 'sent')),
    created_at       INTEGER NOT NULL,
    sent_at          INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    claimed_until    INTEGER,
    last_error       TEXT
);
CREATE INDEX complaints_due ON complaints(status, next_attempt_at);
CREATE INDEX complaints_phone ON complaints(phone, created_at);
CREATE INDEX complaints_school ON complaints(school_code, created_at);

-- QR tokens signed per voucher per service day (the tokens themselves are never stored).
-- Written in batches from memory; see docs/wallet.md.
CREATE TABLE token_counts (
    voucher_id   TEXT NOT NULL,
    service_day  TEXT NOT NULL,
    count        INTEGER NOT NULL,
    PRIMARY KEY (voucher_id, service_day)
);
