//! Which ticket a mail belongs to, and whether its sender may write there. Pure: the caller looks
//! the candidates up in the store and hands over what it found.

use crate::domain::{EmailAddress, Status};

/// How a candidate ticket was found, in the order SPEC §2.5 tries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clue {
    /// `In-Reply-To`/`References` named a Message-ID of the ticket.
    Reference,
    /// The subject token `[Ticket #n]`.
    SubjectToken,
    /// `local+n@domain`.
    PlusAddress,
}

/// What the store knows of a candidate ticket.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub clue: Clue,
    pub number: i64,
    pub status: Status,
    pub requester: EmailAddress,
    pub watchers: Vec<EmailAddress>,
    /// The ticket's company, when that company shares its tickets among its members.
    pub shared_company: Option<String>,
    pub closed_at: Option<i64>,
}

/// Facts about the sender.
#[derive(Clone, Debug)]
pub struct Sender<'a> {
    pub address: &'a EmailAddress,
    pub is_staff: bool,
    /// False when the receiving server's DMARC verdict for the From domain failed.
    pub verified: bool,
    /// The sender's company when it shares tickets.
    pub shared_company: Option<&'a str>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Write into this ticket.
    Existing { number: i64, reopen: bool },
    /// Open a new ticket; `refers_to` names a closed ticket beyond the reopen window, or the
    /// ticket a stranger tried to write into.
    New { refers_to: Option<i64>, reason: NewReason },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewReason {
    NoMatch,
    /// The matched ticket is not the sender's.
    NoRight,
    /// The sender's From failed the DMARC check: never an existing ticket.
    Unverified,
    /// The matched ticket was closed longer ago than the reopen window.
    ClosedTooLong,
}

/// First existing candidate wins; then the sender's right to it and the reopen window decide.
pub fn decide(candidates: &[Candidate], sender: &Sender, now: i64, reopen_window_days: u32) -> Decision {
    let Some(ticket) = candidates.first() else {
        return Decision::New { refers_to: None, reason: NewReason::NoMatch };
    };
    if !sender.verified {
        return Decision::New { refers_to: Some(ticket.number), reason: NewReason::Unverified };
    }
    if !may_write(ticket, sender) {
        return Decision::New { refers_to: None, reason: NewReason::NoRight };
    }
    if ticket.status == Status::Closed && !sender.is_staff {
        let closed_at = ticket.closed_at.unwrap_or(now);
        if now - closed_at > i64::from(reopen_window_days) * 86_400 {
            return Decision::New { refers_to: Some(ticket.number), reason: NewReason::ClosedTooLong };
        }
        return Decision::Existing { number: ticket.number, reopen: true };
    }
    Decision::Existing { number: ticket.number, reopen: false }
}

/// The requester, a watcher, staff, or a member of the ticket's company when it shares.
pub fn may_write(ticket: &Candidate, sender: &Sender) -> bool {
    sender.is_staff
        || &ticket.requester == sender.address
        || ticket.watchers.contains(sender.address)
        || matches!((&ticket.shared_company, sender.shared_company), (Some(a), Some(b)) if a == b)
}

/// `References` keeps the first id and the most recent ones, at most this many in all (RFC 5322
/// §3.6.4 allows trimming the middle); a hostile thread must not grow our headers without bound.
pub const MAX_REFERENCES: usize = 20;

/// The first reference and the most recent ones, at most [`MAX_REFERENCES`]: what a mail we send
/// carries (`notify::compose`), from the thread's ids as the store lists them.
pub fn capped(mut references: Vec<String>) -> Vec<String> {
    if references.len() > MAX_REFERENCES {
        references.drain(1..references.len() - (MAX_REFERENCES - 1));
    }
    references
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn ticket(number: i64, status: Status, closed_at: Option<i64>) -> Candidate {
        Candidate {
            clue: Clue::SubjectToken,
            number,
            status,
            requester: addr("client@customer.example"),
            watchers: vec![addr("boss@customer.example")],
            shared_company: None,
            closed_at,
        }
    }

    fn customer(a: &EmailAddress) -> Sender<'_> {
        Sender { address: a, is_staff: false, verified: true, shared_company: None }
    }

    #[test]
    fn the_requester_and_watchers_join_their_ticket() {
        let c = [ticket(1, Status::Open, None)];
        for who in ["client@customer.example", "boss@customer.example"] {
            let a = addr(who);
            assert_eq!(decide(&c, &customer(&a), 0, 30), Decision::Existing { number: 1, reopen: false });
        }
    }

    #[test]
    fn a_stranger_with_the_token_opens_a_new_ticket() {
        let a = addr("stranger@other.example");
        let d = decide(&[ticket(1, Status::Open, None)], &customer(&a), 0, 30);
        assert_eq!(d, Decision::New { refers_to: None, reason: NewReason::NoRight });
    }

    #[test]
    fn company_members_join_shared_tickets_only() {
        let a = addr("colleague@customer.example");
        let mut t = ticket(1, Status::Open, None);
        let sender = Sender { address: &a, is_staff: false, verified: true, shared_company: Some("Cisa") };
        assert!(matches!(decide(std::slice::from_ref(&t), &sender, 0, 30), Decision::New { .. }));
        t.shared_company = Some("Cisa".into());
        assert!(matches!(decide(&[t], &sender, 0, 30), Decision::Existing { .. }));
    }

    #[test]
    fn closed_tickets_reopen_within_the_window_only() {
        let a = addr("client@customer.example");
        let day = 86_400;
        let c = [ticket(1, Status::Closed, Some(0))];
        assert_eq!(decide(&c, &customer(&a), 29 * day, 30), Decision::Existing { number: 1, reopen: true });
        assert_eq!(
            decide(&c, &customer(&a), 31 * day, 30),
            Decision::New { refers_to: Some(1), reason: NewReason::ClosedTooLong }
        );
    }

    #[test]
    fn unverified_senders_never_reach_an_existing_ticket() {
        let a = addr("client@customer.example");
        let sender = Sender { address: &a, is_staff: false, verified: false, shared_company: None };
        assert!(matches!(
            decide(&[ticket(1, Status::Open, None)], &sender, 0, 30),
            Decision::New { reason: NewReason::Unverified, .. }
        ));
    }

    #[test]
    fn staff_may_write_anywhere() {
        let a = addr("alice@example.com");
        let sender = Sender { address: &a, is_staff: true, verified: true, shared_company: None };
        assert_eq!(
            decide(&[ticket(3, Status::Closed, Some(0))], &sender, 999 * 86_400, 30),
            Decision::Existing { number: 3, reopen: false }
        );
    }
}
