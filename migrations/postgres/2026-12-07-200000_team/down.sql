DROP TABLE timers;
DROP INDEX tickets_waiting;
DROP INDEX tickets_assignee;
ALTER TABLE tickets DROP COLUMN waiting_since;
ALTER TABLE tickets DROP COLUMN queue;
ALTER TABLE tickets DROP COLUMN assignee;
