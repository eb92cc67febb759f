-- SPEC §7: a message whose mail was not authenticated as its sender is marked so wherever it shows.
ALTER TABLE messages ADD COLUMN unverified BOOLEAN NOT NULL DEFAULT 0;
