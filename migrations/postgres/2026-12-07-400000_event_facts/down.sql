ALTER TABLE messages DROP COLUMN event;
