//! The helpdesk's operations: what a mail or a web action does to tickets, and which
//! notifications it queues. Every operation runs inside the caller's transaction, so a change and
//! the mails it causes are committed together or not at all.

pub mod actions;
pub mod commands;
pub mod inbound;
pub mod notices;
pub mod queues;
mod reports;
pub mod timers;
pub mod visibility;

use std::sync::Arc;

use crate::config::Settings;
use crate::domain::{EmailAddress, ForwardPrefixes, StaffList, SubjectToken};

/// Everything an operation needs besides the database connection. Cheap to clone.
#[derive(Clone)]
pub struct Desk {
    pub settings: Arc<Settings>,
    pub secret: Arc<Vec<u8>>,
    pub staff: StaffList,
    pub token: SubjectToken,
    /// Built-in and configured (`helpdesk.forward_prefixes`) forward prefixes.
    pub forward_prefixes: ForwardPrefixes,
    pub ours: Vec<EmailAddress>,
    pub helpdesk: EmailAddress,
    /// The helpdesk's queue first, then each mailbox's (`queues`).
    pub queues: Arc<Vec<queues::Queue>>,
}

impl Desk {
    pub fn new(settings: Arc<Settings>, secret: Vec<u8>) -> anyhow::Result<Desk> {
        Ok(Desk {
            staff: settings.staff(),
            token: settings.token(),
            forward_prefixes: settings.forward_prefixes(),
            ours: settings.our_addresses(),
            helpdesk: settings.helpdesk_address(),
            queues: Arc::new(queues::from_settings(&settings)),
            secret: Arc::new(secret),
            settings,
        })
    }

    pub fn is_ours(&self, address: &EmailAddress) -> bool {
        if self.ours.contains(address) {
            return true;
        }
        // Plus-addresses of ours (support+42@…) are ours too.
        address.plus_tag().is_some_and(|(base, _)| self.ours.contains(&base))
    }

    pub fn is_staff(&self, address: &EmailAddress) -> bool {
        self.staff.contains(address)
    }

    /// A staff member's personal command address: the reply address of ticket 0 (`trust`).
    pub fn personal_address(&self, staff: &EmailAddress) -> EmailAddress {
        crate::trust::reply_address(&self.secret, &self.helpdesk, 0, staff)
    }

    /// `helpdesk.time_zone` (validated at load).
    pub fn time_zone(&self) -> chrono_tz::Tz {
        self.settings.helpdesk.time_zone.parse().unwrap_or(chrono_tz::Europe::Paris)
    }

    pub fn lang(&self) -> &str {
        &self.settings.helpdesk.language
    }

    /// Domain of our Message-IDs.
    pub fn id_domain(&self) -> &str {
        self.helpdesk.domain()
    }

    /// Where the helpdesk queue's alerts go: `staff_notify`, else the staff addresses.
    pub fn staff_recipients(&self) -> Vec<EmailAddress> {
        self.default_queue().alerted.clone()
    }

    /// The company of an address, and whether it shares tickets.
    pub fn company_of(&self, address: &EmailAddress) -> Option<(&str, bool)> {
        self.settings.company_of(address).map(|c| (c.name.as_str(), c.shared))
    }
}
