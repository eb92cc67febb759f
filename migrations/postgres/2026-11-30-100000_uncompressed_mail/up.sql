-- Raw mails, files and outgoing mails are mostly base64 and already-compressed attachments:
-- PostgreSQL's pglz spent 27 % of the database's CPU on them for little gain (BENCHMARKS.md,
-- "PostgreSQL and two daemons"). Stored out of line, uncompressed.
ALTER TABLE raw_mails ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE outbox ALTER COLUMN data SET STORAGE EXTERNAL;
