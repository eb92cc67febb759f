//! Queues (SPEC §8): the helpdesk's own, and one per `[[mailbox]]` that sets an `address`. A
//! ticket follows its queue's settings: the address and name its mails come from, their
//! language, and the staff its alerts go to — or its assignee alone once it has one.

use super::Desk;
use crate::config::Settings;
use crate::domain::{EmailAddress, StaffList};
use crate::store::tickets::TicketRow;

#[derive(Clone, Debug)]
pub struct Queue {
    pub address: EmailAddress,
    pub name: String,
    pub language: String,
    pub staff: StaffList,
    /// Where its alerts go when the ticket has no assignee.
    pub alerted: Vec<EmailAddress>,
    /// The `[[mailbox]]` it belongs to (its display name); `None` for the helpdesk's queue.
    pub mailbox: Option<String>,
}

/// The helpdesk's queue first, then each mailbox's.
pub fn from_settings(settings: &Settings) -> Vec<Queue> {
    let h = &settings.helpdesk;
    let staff = StaffList::new(&h.staff);
    let notify: Vec<EmailAddress> = h.staff_notify.iter().filter_map(|a| EmailAddress::parse(a)).collect();
    let alerted = if notify.is_empty() { staff.addresses().collect() } else { notify };
    let mut queues = vec![Queue {
        address: settings.helpdesk_address(),
        name: h.name.clone(),
        language: h.language.clone(),
        staff,
        alerted,
        mailbox: None,
    }];
    for m in &settings.mailboxes {
        let Some(address) = m.address.as_deref().and_then(EmailAddress::parse) else { continue };
        let (staff, alerted) = match &m.staff {
            Some(list) => {
                let staff = StaffList::new(list);
                let alerted = staff.addresses().collect();
                (staff, alerted)
            }
            None => (queues[0].staff.clone(), queues[0].alerted.clone()),
        };
        queues.push(Queue {
            address,
            name: m.name.clone().unwrap_or_else(|| h.name.clone()),
            language: m.language.clone().unwrap_or_else(|| h.language.clone()),
            staff,
            alerted,
            mailbox: Some(m.display_name()),
        });
    }
    queues
}

impl Desk {
    /// The helpdesk's own queue.
    pub fn default_queue(&self) -> &Queue {
        &self.queues[0]
    }

    /// The queue a ticket follows (the helpdesk's for tickets from before queues, or of a queue
    /// since removed from the configuration).
    pub fn queue_of(&self, ticket: Option<&TicketRow>) -> &Queue {
        let address = ticket.and_then(|t| t.queue.as_deref()).and_then(EmailAddress::parse);
        address.and_then(|a| self.queues.iter().find(|q| q.address == a)).unwrap_or(self.default_queue())
    }

    /// The queue of a new ticket: the mailbox it came through, else the first queue address it
    /// was sent to (plus-addresses included), else the helpdesk's.
    pub fn queue_for_mail<'a>(&self, source: &str, recipients: impl Iterator<Item = &'a EmailAddress>) -> &Queue {
        if let Some(q) = self.queues.iter().find(|q| q.mailbox.as_deref() == Some(source)) {
            return q;
        }
        for r in recipients {
            let base = r.plus_tag().map(|(base, _)| base).unwrap_or_else(|| r.clone());
            if let Some(q) = self.queues.iter().skip(1).find(|q| q.address == base) {
                return q;
            }
        }
        self.default_queue()
    }

    /// Who hears of a ticket's news: its assignee once it has one, else its queue's staff.
    pub fn alert_recipients(&self, ticket: &TicketRow) -> Vec<EmailAddress> {
        match ticket.assignee.as_deref().and_then(EmailAddress::parse) {
            Some(assignee) => vec![assignee],
            None => self.queue_of(Some(ticket)).alerted.clone(),
        }
    }
}
