-- Withdrawal of consent (DESIGN §10): a `3#2` after consenting ends the consent as `withdrawn`;
-- and the wallet shows a pupil to the pupil's priority phone (`contact_phone`) only.

ALTER TABLE consents DROP CONSTRAINT consents_status_check;
ALTER TABLE consents ADD CONSTRAINT consents_status_check CHECK (status IN ('pending', 'requested', 'repeated', 'consented', 'refused', 'expired', 'no_phone', 'withdrawn'));

-- Every wallet request finds the pupils of the signed-in phone by their priority phone.
CREATE INDEX pupils_contact_phone ON pupils(contact_phone);
