ALTER TABLE blobs DROP COLUMN raw_end;
ALTER TABLE blobs DROP COLUMN raw_start;
ALTER TABLE blobs DROP COLUMN raw_mail_id;
