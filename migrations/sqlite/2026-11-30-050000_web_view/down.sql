DROP INDEX messages_ticket_of;
DROP INDEX tickets_company_updated;
DROP INDEX tickets_status_updated;
