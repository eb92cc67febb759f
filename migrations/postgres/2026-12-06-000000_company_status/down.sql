DROP INDEX tickets_company_status;
CREATE INDEX tickets_company ON tickets (company);
CREATE INDEX tickets_company_updated ON tickets (company, updated_at);
