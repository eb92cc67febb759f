-- The web view's list and search (issue 5; measured by scripts/bench-web).

-- The default list (tickets not closed, newest first) and status filters.
CREATE INDEX tickets_status_updated ON tickets (status, updated_at);
-- A company's shared tickets, newest first.
CREATE INDEX tickets_company_updated ON tickets (company, updated_at);
-- From the messages a keyword matched to their tickets without reading the messages' texts:
-- a small covering index instead of the wide table rows.
CREATE INDEX messages_ticket_of ON messages (id, ticket_number, kind);
