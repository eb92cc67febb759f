-- When a mailbox last polled without error, and since when it has been failing (SPEC §10: /readyz, metrics).
ALTER TABLE mailbox_state ADD COLUMN last_success BIGINT;
ALTER TABLE mailbox_state ADD COLUMN failing_since BIGINT;
