ALTER TABLE messages DROP COLUMN unverified;
