//! Who may see what (SPEC §5, §7): the audience of a request, the ticket rule ([`may_see`]) and the
//! note rule ([`sees_message`], and the same as SQL for queries). The one home of access: pages,
//! `/api`, exports and searches ask here. How a visible message is shown to a customer is
//! `desk::visibility`.

use diesel::prelude::*;

use super::Conn;
use super::schema::watchers;
use super::tickets::TicketRow;
use crate::domain::MessageKind;

/// Who is looking at tickets: staff see every ticket; a customer sees the tickets they requested or
/// watch, and their company's when the company shares its tickets (SPEC §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Audience {
    Staff,
    Customer { email: String, shared_company: Option<String> },
}

impl Audience {
    pub fn is_staff(&self) -> bool {
        matches!(self, Audience::Staff)
    }
}

/// Whether `audience` may see `ticket`. Anything else answers "not found".
pub fn may_see(conn: &mut Conn, audience: &Audience, ticket: &TicketRow) -> anyhow::Result<bool> {
    let Audience::Customer { email, shared_company } = audience else { return Ok(true) };
    if ticket.requester == *email || (shared_company.is_some() && ticket.company == *shared_company) {
        return Ok(true);
    }
    let watching: i64 = watchers::table
        .filter(watchers::ticket_number.eq(ticket.number))
        .filter(watchers::address.eq(email))
        .count()
        .get_result(conn)?;
    Ok(watching > 0)
}

/// The note rule: internal notes, and their files, are the staff's alone.
pub fn sees_message(audience: &Audience, kind: &str) -> bool {
    audience.is_staff() || kind != MessageKind::Note.as_str()
}

/// [`sees_message`] as SQL on the messages alias `m`, to append to a `WHERE` clause.
pub fn messages_seen_sql(audience: &Audience) -> &'static str {
    if audience.is_staff() { "" } else { " AND m.kind <> 'note'" }
}
