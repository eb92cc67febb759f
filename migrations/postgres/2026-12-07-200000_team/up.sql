-- SPEC §8: a team shares the mailbox.
-- assignee: the staff member handling the ticket (NULL: the queue's staff).
-- queue: the address of the mailbox whose settings the ticket follows (NULL: the helpdesk's).
-- waiting_since: when the customer's oldest unanswered message came (NULL: nothing to answer).
ALTER TABLE tickets ADD COLUMN assignee TEXT;
ALTER TABLE tickets ADD COLUMN queue TEXT;
ALTER TABLE tickets ADD COLUMN waiting_since BIGINT;
CREATE INDEX tickets_assignee ON tickets (assignee, status);
CREATE INDEX tickets_waiting ON tickets (waiting_since);

-- Tickets whose last message (customer or staff) is the customer's wait on us since then.
UPDATE tickets SET waiting_since = (
    SELECT m.at FROM messages m WHERE m.ticket_number = tickets.number AND m.kind IN ('customer', 'staff')
    ORDER BY m.at DESC, m.id DESC LIMIT 1)
WHERE status <> 'closed' AND (
    SELECT m.kind FROM messages m WHERE m.ticket_number = tickets.number AND m.kind IN ('customer', 'staff')
    ORDER BY m.at DESC, m.id DESC LIMIT 1) = 'customer';

-- A timer is a row with its due time: one per ticket and kind (ticket 0: the daily digest).
-- fired_at keeps a fired timer from firing again until its ticket leaves the state that set it;
-- a ticket is overdue while its fired `escalate` row stays (removed once staff answer).
CREATE TABLE timers (
    ticket_number BIGINT NOT NULL,
    kind TEXT NOT NULL,
    due_at BIGINT NOT NULL,
    fired_at BIGINT,
    PRIMARY KEY (ticket_number, kind)
);
CREATE INDEX timers_due ON timers (due_at) WHERE fired_at IS NULL;
