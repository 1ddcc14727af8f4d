-- Withdrawal of consent (DESIGN §10): a `3#2` after consenting ends the consent as `withdrawn`;
-- and the wallet shows a pupil to the pupil's priority phone (`contact_phone`) only.
--
-- SQLite cannot change a CHECK constraint in place, so `consents` is rebuilt. The migration runs
-- in a transaction with foreign keys on, where dropping a table that rows still reference fails
-- at commit; `consent_transitions`, its only child, is therefore rebuilt with it: the new
-- children reference the new parent, which the rename then gives the old name.

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

CREATE TABLE consent_transitions_rebuilt (
    id          INTEGER PRIMARY KEY,
    consent_id  INTEGER NOT NULL REFERENCES consents_rebuilt(id),
    status      TEXT NOT NULL,
    at          INTEGER NOT NULL,
    detail      TEXT
);
INSERT INTO consent_transitions_rebuilt (id, consent_id, status, at, detail)
SELECT id, consent_id, status, at, detail FROM consent_transitions;

DROP TABLE consent_transitions;
DROP TABLE consents;
-- Renaming the parent rewrites the children's reference to the new name.
ALTER TABLE consents_rebuilt RENAME TO consents;
ALTER TABLE consent_transitions_rebuilt RENAME TO consent_transitions;

CREATE INDEX consents_status ON consents(status);
CREATE INDEX consents_year_status ON consents(school_year, status);
CREATE INDEX consents_phone_year_status ON consents(phone, school_year, status);
CREATE INDEX consents_open_year ON consents(school_year) WHERE status IN ('requested', 'repeated');
CREATE INDEX consent_transitions_at ON consent_transitions(at);

-- Every wallet request finds the pupils of the signed-in phone by their priority phone.
CREATE INDEX pupils_contact_phone ON pupils(contact_phone);
