-- Message texts, the keyword vectors and the notifications' descriptions are compressed with
-- lz4 instead of pglz when this server has it (PostgreSQL 14+ built with lz4, as Debian's and the
-- official images are): pglz was 13 % of the backends' CPU during an ingest (BENCHMARKS.md,
-- "Eighth round"). Values already stored keep their compression; raw mail and files stay
-- uncompressed (2026-11-30-100000_uncompressed_mail). Without lz4 nothing changes.
DO $$
BEGIN
    EXECUTE 'ALTER TABLE messages ALTER COLUMN text SET COMPRESSION lz4, ALTER COLUMN full_text SET COMPRESSION lz4, ALTER COLUMN html SET COMPRESSION lz4';
    EXECUTE 'ALTER TABLE message_search ALTER COLUMN tsv SET COMPRESSION lz4';
    EXECUTE 'ALTER TABLE outbox ALTER COLUMN spec SET COMPRESSION lz4';
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'lz4 compression not available (%): pglz kept', SQLERRM;
END $$;
