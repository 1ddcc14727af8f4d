-- Consent recorded at school and late answers (DESIGN §11).
--
-- `outcome` names what NOBD is told when it is more than the status the transition reached:
-- `consented_at_school` (a paper form recorded by the school's staff) and `consented_late`
-- (a `3#1` after the process ended `expired` or `refused`). NULL: the status itself.
ALTER TABLE consent_transitions ADD COLUMN outcome TEXT;

-- The paper form behind a consent recorded at school: one per consent (pupil and school year).
-- `signer_name` and `document_number` are a parent's personal data: retention erases them.
CREATE TABLE consent_school_records (
    id               INTEGER PRIMARY KEY,
    consent_id       INTEGER NOT NULL UNIQUE REFERENCES consents(id),
    school_code      INTEGER NOT NULL REFERENCES schools(code),
    recorded_by      TEXT NOT NULL,
    signer_name      TEXT,
    relation         TEXT NOT NULL CHECK (relation IN ('mother', 'father', 'guardian')),
    document_number  TEXT,
    signed_on        TEXT NOT NULL,
    recorded_at      INTEGER NOT NULL
);
