-- School years as data (DESIGN §10): the turn of the year carries standing consents over and
-- expires the vouchers of the year that ended.

-- A consent of this school year that was not asked for again: the pupil's consent of the
-- school year named here stands (NULL: a process of this year, by SMS).
ALTER TABLE consents ADD COLUMN carried_from TEXT;

-- The tick looks for vouchers still issued or active after their validity ended.
CREATE INDEX vouchers_status_valid_to ON vouchers(status, valid_to);

-- ... and for requests of an earlier school year still awaiting an answer: few, while a
-- mailing of the current year has hundreds of thousands open.
CREATE INDEX consents_open_year ON consents(school_year) WHERE status IN ('requested', 'repeated');
