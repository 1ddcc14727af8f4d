-- Floods (docs/terminal.md, "Floods"): a stuck wedge scanner or a script must not fill the disk.
--
-- `count`: how many scans this event stands for. An `ok` is always 1. A rejection whose input
-- text and every recorded field equal those of the rejection just before it in the log, less
-- than 1 s after that input, adds 1 here instead of a new row.
ALTER TABLE events ADD COLUMN count INTEGER NOT NULL DEFAULT 1 CHECK (count >= 1);
-- `capped`: a rejection over the per-minute cap on new rejection rows. Such a row stands for
-- every rejection of that minute with the same verdict, day, source, meal kind and repeat mark
-- (and voucher, for `already_served`): `count` says how many were not recorded one by one.
ALTER TABLE events ADD COLUMN capped INTEGER NOT NULL DEFAULT 0 CHECK (capped IN (0, 1));

-- Events up to here were handed to an upload (or acknowledged) and are never changed again, so
-- the server, which keeps the first copy of each seq it receives, holds their final count.
-- A sync raises it in its own transaction before it reads the events it sends.
ALTER TABLE sync_state ADD COLUMN sealed_through INTEGER NOT NULL DEFAULT 0;
UPDATE sync_state SET sealed_through = uploaded_through;

-- Still append-only, with one exception: a rejection not yet sealed may have its count raised.
-- Nothing else of any event may change.
DROP TRIGGER events_no_update;
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
WHEN OLD.verdict = 'ok'
  OR NEW.count <= OLD.count
  OR OLD.seq <= (SELECT max(uploaded_through, sealed_through) FROM sync_state WHERE id = 1)
  OR NEW.seq IS NOT OLD.seq
  OR NEW.event_id IS NOT OLD.event_id
  OR NEW.scanned_at IS NOT OLD.scanned_at
  OR NEW.service_day IS NOT OLD.service_day
  OR NEW.verdict IS NOT OLD.verdict
  OR NEW.source IS NOT OLD.source
  OR NEW.meal_kind IS NOT OLD.meal_kind
  OR NEW.voucher_id IS NOT OLD.voucher_id
  OR NEW.key_id IS NOT OLD.key_id
  OR NEW.proof IS NOT OLD.proof
  OR NEW.repeat IS NOT OLD.repeat
  OR NEW.capped IS NOT OLD.capped
BEGIN SELECT RAISE(ABORT, 'events are append-only (only the count of a rejection not yet uploaded may grow)'); END;
