-- School staff (accounts, sessions, login attempts) and the NOBD daily reports with their
-- delivery outbox (DESIGN §6.1 `staff add`, §7.3, §9).

CREATE TABLE staff_accounts (
    id             INTEGER PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,                -- argon2id, PHC string format
    role           TEXT NOT NULL CHECK (role IN ('school_admin', 'authority', 'operator')),
    created_at     INTEGER NOT NULL,
    disabled_at    INTEGER
);

-- The schools a school_admin or an authority may see; operators see all and have no rows.
CREATE TABLE staff_schools (
    staff_id     INTEGER NOT NULL REFERENCES staff_accounts(id),
    school_code  INTEGER NOT NULL REFERENCES schools(code),
    PRIMARY KEY (staff_id, school_code)
);

-- Only a hash of the session token is kept: a copy of the database opens no session.
CREATE TABLE staff_sessions (
    token_hash   TEXT PRIMARY KEY,               -- SHA-256 hex of the token
    staff_id     INTEGER NOT NULL REFERENCES staff_accounts(id),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    address      TEXT
);
CREATE INDEX staff_sessions_expires ON staff_sessions(expires_at);

CREATE TABLE staff_login_attempts (
    id        INTEGER PRIMARY KEY,
    username  TEXT NOT NULL,
    address   TEXT NOT NULL,
    at        INTEGER NOT NULL,
    success   BOOLEAN NOT NULL
);
CREATE INDEX staff_login_attempts_user ON staff_login_attempts(username, at);
CREATE INDEX staff_login_attempts_addr ON staff_login_attempts(address, at);

-- Every revision of every daily report, exactly as delivered.
CREATE TABLE nobd_reports (
    report_id     TEXT PRIMARY KEY,              -- "{school_bin}-{date}-r{revision}"
    school_code   INTEGER NOT NULL REFERENCES schools(code),
    service_day   TEXT NOT NULL,
    revision      INTEGER NOT NULL,
    content_hash  TEXT NOT NULL,                 -- SHA-256 hex of the canonical content
    body          TEXT NOT NULL,
    built_at      INTEGER NOT NULL,
    UNIQUE (school_code, service_day, revision)
);
CREATE INDEX nobd_reports_day ON nobd_reports(service_day);

-- One row per report revision until it is accepted; claimed with a lease so that several
-- server instances never send the same report at the same time.
CREATE TABLE nobd_outbox (
    report_id        TEXT PRIMARY KEY REFERENCES nobd_reports(report_id),
    school_code      INTEGER NOT NULL,
    service_day      TEXT NOT NULL,
    revision         INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    claimed_until    INTEGER,
    claimed_by       TEXT,
    delivered_at     INTEGER,
    last_error       TEXT
);
CREATE INDEX nobd_outbox_pending ON nobd_outbox(next_attempt_at) WHERE delivered_at IS NULL;
CREATE INDEX nobd_outbox_day ON nobd_outbox(school_code, service_day, revision);

-- Progress of the report job: last day built on schedule, watermark of late scans.
CREATE TABLE nobd_marks (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

-- The daily build reads one day for all schools at once, and that day's activations.
CREATE INDEX terminal_events_day ON terminal_events(service_day);
CREATE INDEX vouchers_activated ON vouchers(activated_at);
