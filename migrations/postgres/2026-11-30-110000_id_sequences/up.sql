-- Ids of the busy tables come from sequences on PostgreSQL: nextval takes no lock held until
-- COMMIT, so several daemons' transactions no longer queue on one counters row (BENCHMARKS.md,
-- "PostgreSQL and two daemons"). Other counters stay in the counters table.
CREATE SEQUENCE guichet_id_raw_mail;
SELECT setval('guichet_id_raw_mail', COALESCE((SELECT value FROM counters WHERE name = 'raw_mail'), 0) + 1, false);
CREATE SEQUENCE guichet_id_ticket;
SELECT setval('guichet_id_ticket', COALESCE((SELECT value FROM counters WHERE name = 'ticket'), 0) + 1, false);
CREATE SEQUENCE guichet_id_message;
SELECT setval('guichet_id_message', COALESCE((SELECT value FROM counters WHERE name = 'message'), 0) + 1, false);
CREATE SEQUENCE guichet_id_attachment;
SELECT setval('guichet_id_attachment', COALESCE((SELECT value FROM counters WHERE name = 'attachment'), 0) + 1, false);
CREATE SEQUENCE guichet_id_outbox;
SELECT setval('guichet_id_outbox', COALESCE((SELECT value FROM counters WHERE name = 'outbox'), 0) + 1, false);
