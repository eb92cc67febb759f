-- A mail's attachment is stored once: in the raw mail it came in. Such a blob keeps its digest
-- and size, an empty `data`, and where its base64 body lies in the raw mail ([raw_start, raw_end)
-- of raw_mails.data of raw_mail_id). Files from the web form (no raw mail) keep their bytes in data.
ALTER TABLE blobs ADD COLUMN raw_mail_id BIGINT;
ALTER TABLE blobs ADD COLUMN raw_start BIGINT;
ALTER TABLE blobs ADD COLUMN raw_end BIGINT;
