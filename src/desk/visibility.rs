//! What a customer sees of a conversation (SPEC §7, "nothing internal leaks"): the one home of
//! the rule, used by the ticket page, `/api/tickets/{n}` and the exports alike.
//!
//! Staff see everything. A customer sees internal notes nowhere (the queries leave them out), and
//! of the rest:
//! - a staff member's own address never: the author shows as the helpdesk's address, under the
//!   staff member's display name (or the helpdesk's name), as in the mails relayed to them;
//! - of a staff member's message, only what was relayed: its answer text — not the whole mail
//!   with its command lines and quoted history, not the mail's HTML;
//! - in an event, a staff address named in its arguments (and so in its words, told from them)
//!   reads as the helpdesk's name, whoever recorded it (`event_for`);
//! - a ticket's assignee never (`ticket_for`).
//!
//! Which tickets and messages a viewer may see at all is `store::visibility` (the rule that the
//! queries carry too), re-exported here so that the web asks this one module.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

use super::Desk;
use crate::domain::{EmailAddress, Event, MessageKind};
pub use crate::store::visibility::{Audience, may_see, sees_message};

/// A ticket as a customer is shown it: who handles it inside the team is internal.
pub fn ticket_for(staff_viewer: bool, json: &mut crate::store::views::TicketJson) {
    if !staff_viewer {
        json.assignee = None;
    }
}

/// One message as a viewer is shown it.
#[derive(Debug, PartialEq, Eq)]
pub struct Shown<'a> {
    pub from: String,
    pub name: String,
    pub text: Cow<'a, str>,
    /// The whole mail behind "show the whole message".
    pub full_text: Cow<'a, str>,
    /// Whether the mail's own HTML may be shown.
    pub html: bool,
}

/// A message as written, before the rule.
pub struct Written<'a> {
    pub kind: &'a str,
    pub from: &'a str,
    pub name: Option<&'a str>,
    pub text: &'a str,
    pub full_text: &'a str,
}

/// `m` as `staff_viewer` (or a customer) sees it.
pub fn shown<'a>(desk: &Desk, staff_viewer: bool, m: &Written<'a>) -> Shown<'a> {
    let name = m.name.map(str::trim).filter(|n| !n.is_empty());
    let by_staff = EmailAddress::parse(m.from).is_some_and(|a| desk.is_staff(&a));
    if staff_viewer || !by_staff {
        return Shown {
            from: m.from.to_string(),
            name: name.unwrap_or(m.from).to_string(),
            text: Cow::Borrowed(m.text),
            full_text: Cow::Borrowed(m.full_text),
            html: true,
        };
    }
    let helpdesk_name = &desk.settings.helpdesk.name;
    let (text, full_text) = if m.kind == MessageKind::Event.as_str() {
        let text = without_staff_addresses(desk, m.text);
        (text.clone(), text)
    } else {
        (Cow::Borrowed(m.text), Cow::Borrowed(m.text))
    };
    Shown {
        from: desk.settings.helpdesk.address.clone(),
        name: name.unwrap_or(helpdesk_name).to_string(),
        text,
        full_text,
        html: false,
    }
}

/// An event (a fact of the history) as `staff_viewer` (or a customer) is shown it.
pub fn event_for(desk: &Desk, staff_viewer: bool, event: Event) -> Event {
    if staff_viewer { event } else { event.map_text(|s| without_staff_addresses(desk, s).into_owned()) }
}

/// `text` with every staff address replaced by the helpdesk's name.
pub fn without_staff_addresses<'a>(desk: &Desk, text: &'a str) -> Cow<'a, str> {
    static ADDRESS: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+").expect("valid pattern"));
    ADDRESS.replace_all(text, |c: &regex::Captures| {
        let found = &c[0];
        match EmailAddress::parse(found) {
            Some(a) if desk.is_staff(&a) => desk.settings.helpdesk.name.clone(),
            _ => found.to_string(),
        }
    })
}
