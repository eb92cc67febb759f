ALTER TABLE mailbox_state DROP COLUMN failing_since;
ALTER TABLE mailbox_state DROP COLUMN last_success;
