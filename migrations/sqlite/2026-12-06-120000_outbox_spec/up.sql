-- A notification is queued as a description of its mail (JSON: notify::pending::PendingMail),
-- rendered and composed by the sender; `data` stays empty until then. Rows queued before keep
-- their composed bytes in `data` and no `spec`.
ALTER TABLE outbox ADD COLUMN spec TEXT;
