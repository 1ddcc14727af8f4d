-- Core of the wallet server: schools, pupils, consent, vouchers, SMS outbox, keys, audit.
-- Times are Unix seconds (UTC); dates are 'YYYY-MM-DD' local (UTC+5); UUIDs are text.

CREATE TABLE schools (
    code        INTEGER PRIMARY KEY,          -- the token's audience (u32), assigned here
    bin         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    district    TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE pupils (
    id                    INTEGER PRIMARY KEY,
    iin                   TEXT NOT NULL UNIQUE,
    school_code           INTEGER NOT NULL REFERENCES schools(code),
    last_name             TEXT NOT NULL,
    first_name            TEXT NOT NULL,
    middle_name           TEXT,
    grade                 INTEGER NOT NULL CHECK (grade BETWEEN 0 AND 11),
    class_letter          TEXT NOT NULL,
    receives_asp          BOOLEAN NOT NULL,
    per_capita_income_kzt INTEGER,
    orphan                BOOLEAN NOT NULL,
    mother_name           TEXT,
    mother_phone          TEXT,
    father_name           TEXT,
    father_phone          TEXT,
    guardian_name         TEXT,
    guardian_phone        TEXT,
    card_number           TEXT,
    lang                  TEXT NOT NULL CHECK (lang IN ('kk', 'ru')),
    category              TEXT NOT NULL CHECK (category IN ('asp', 'low_income', 'orphan', 'not_eligible')),
    contact_phone         TEXT,                 -- mother, else father, else guardian
    contact_name          TEXT,
    removed_at            INTEGER,              -- missing from a snapshot import
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);
CREATE INDEX pupils_school ON pupils(school_code);
CREATE INDEX pupils_mother_phone ON pupils(mother_phone);
CREATE INDEX pupils_father_phone ON pupils(father_phone);
CREATE INDEX pupils_guardian_phone ON pupils(guardian_phone);
CREATE INDEX pupils_card ON pupils(card_number);

-- One consent process per pupil per school year (DESIGN §1.4).
CREATE TABLE consents (
    id            INTEGER PRIMARY KEY,
    pupil_id      INTEGER NOT NULL REFERENCES pupils(id),
    school_year   TEXT NOT NULL,
    phone         TEXT,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'requested', 'repeated', 'consented', 'refused', 'expired', 'no_phone')),
    requested_at  INTEGER,
    repeated_at   INTEGER,
    ended_at      INTEGER,
    updated_at    INTEGER NOT NULL,
    UNIQUE (pupil_id, school_year)
);
CREATE INDEX consents_status ON consents(status);
CREATE INDEX consents_phone ON consents(phone);

-- Every transition with its time: NOBD needs the outcomes of each day.
CREATE TABLE consent_transitions (
    id          INTEGER PRIMARY KEY,
    consent_id  INTEGER NOT NULL REFERENCES consents(id),
    status      TEXT NOT NULL,
    at          INTEGER NOT NULL,
    detail      TEXT
);
CREATE INDEX consent_transitions_at ON consent_transitions(at);

CREATE TABLE vouchers (
    id            TEXT PRIMARY KEY,
    pupil_id      INTEGER NOT NULL REFERENCES pupils(id),
    school_code   INTEGER NOT NULL REFERENCES schools(code),
    school_year   TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('issued', 'active', 'revoked', 'expired')),
    valid_from    TEXT NOT NULL,
    valid_to      TEXT NOT NULL,
    issued_at     INTEGER NOT NULL,
    activated_at  INTEGER,
    revoked_at    INTEGER,
    revoke_reason TEXT,
    change_seq    INTEGER NOT NULL DEFAULT 0,   -- terminals sync changes after a cursor
    UNIQUE (pupil_id, school_year)
);
CREATE INDEX vouchers_school_change ON vouchers(school_code, change_seq);

-- A global counter per name (e.g. 'voucher_change'): terminals' snapshot cursors.
CREATE TABLE counters (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);

CREATE TABLE sms_outbox (
    id              TEXT PRIMARY KEY,
    to_phone        TEXT NOT NULL,
    text            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_until   INTEGER,
    last_error      TEXT
);
CREATE INDEX sms_outbox_due ON sms_outbox(sent_at, next_attempt_at);

CREATE TABLE signing_keys (
    key_id        TEXT PRIMARY KEY,
    public_key    TEXT NOT NULL,
    not_before    INTEGER NOT NULL,
    not_after     INTEGER,                      -- NULL while it is the active key
    verify_until  INTEGER,
    created_at    INTEGER NOT NULL
);

CREATE TABLE trust_lists (
    version     INTEGER PRIMARY KEY,
    signed      TEXT NOT NULL,                  -- the SignedTrustList JSON
    created_at  INTEGER NOT NULL
);

CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    subject  TEXT,
    detail   TEXT
);
CREATE INDEX audit_log_at ON audit_log(at);
