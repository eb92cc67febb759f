-- A shared company's list filters on status too (by default its members see the open tickets,
-- a handful among its thousand): the status in the index spares a row read per closed ticket.
DROP INDEX tickets_company_updated;
DROP INDEX tickets_company;
CREATE INDEX tickets_company_status ON tickets (company, status, updated_at);
