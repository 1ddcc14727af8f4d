-- no-transaction
-- Withdrawal of consent (DESIGN §10): a `3#2` after consenting ends the consent as `withdrawn`;
-- and the wallet shows a pupil to the pupil's priority phone (`contact_phone`) only.
--
-- SQLite cannot change a CHECK constraint in place: the consents table is rebuilt (SQLite's
-- documented procedure). Foreign keys are switched off for the rebuild, which must happen
-- outside a transaction, so this file runs without the migrator's and opens its own.
PRAGMA foreign_keys = OFF;

BEGIN IMMEDIATE;

CREATE TABLE consents_rebuilt (
    id            INTEGER PRIMARY KEY,
    pupil_id      INTEGER NOT NULL REFERENCES pupils(id),
    school_year   TEXT NOT NULL,
    phone         TEXT,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'requested', 'repeated', 'consented', 'refused', 'expired', 'no_phone', 'withdrawn')),
    requested_at  INTEGER,
    repeated_at   INTEGER,
    ended_at      INTEGER,
    updated_at    INTEGER NOT NULL,
    carried_from  TEXT,
    UNIQUE (pupil_id, school_year)
);
INSERT INTO consents_rebuilt (id, pupil_id, school_year, phone, status, requested_at,
    repeated_at, ended_at, updated_at, carried_from)
SELECT id, pupil_id, school_year, phone, status, requested_at, repeated_at, ended_at,
    updated_at, carried_from
FROM consents;
DROP TABLE consents;
ALTER TABLE consents_rebuilt RENAME TO consents;

CREATE INDEX consents_status ON consents(status);
CREATE INDEX consents_year_status ON consents(school_year, status);
CREATE INDEX consents_phone_year_status ON consents(phone, school_year, status);
CREATE INDEX consents_open_year ON consents(school_year) WHERE status IN ('requested', 'repeated');

-- Every wallet request finds the pupils of the signed-in phone by their priority phone.
CREATE INDEX pupils_contact_phone ON pupils(contact_phone);

COMMIT;

PRAGMA foreign_keys = ON;
