//! Ticket rows, their watchers and thread ids.

use diesel::prelude::*;

use super::schema::{messages, thread_ids, tickets, watchers};
use super::{Conn, next_id, pg_batch};
use crate::domain::{MessageKind, Priority, Status};

/// At most this many watchers per ticket (hostile mail can carry thousands of Cc).
pub const MAX_WATCHERS: usize = 40;

#[derive(Queryable, QueryableByName, Selectable, Clone, Debug)]
#[diesel(table_name = tickets)]
pub struct TicketRow {
    pub number: i64,
    pub subject: String,
    pub status: String,
    pub priority: String,
    pub requester: String,
    pub company: Option<String>,
    pub product: Option<String>,
    pub service: Option<String>,
    pub unverified: bool,
    pub refers_to: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub closed_at: Option<i64>,
    /// The staff member handling it (SPEC §8); `None`: its queue's staff.
    pub assignee: Option<String>,
    /// The address of the mailbox (queue) whose settings it follows; `None`: the helpdesk's.
    pub queue: Option<String>,
    /// When the customer's oldest unanswered message came; `None`: nothing waits on staff.
    pub waiting_since: Option<i64>,
}

impl TicketRow {
    pub fn status(&self) -> Status {
        self.status.parse().unwrap_or(Status::New)
    }
    pub fn priority(&self) -> Priority {
        self.priority.parse().unwrap_or(Priority::Normal)
    }
}

pub struct NewTicket<'a> {
    pub subject: &'a str,
    pub requester: &'a str,
    pub priority: Priority,
    pub company: Option<&'a str>,
    pub product: Option<&'a str>,
    pub service: Option<&'a str>,
    pub unverified: bool,
    pub refers_to: Option<i64>,
    pub queue: &'a str,
    pub at: i64,
    /// What [`note_waiting`] would set after its first message: given here, the row is written
    /// once.
    pub waiting_since: Option<i64>,
}

/// Inserts a ticket and gives back its row as written (no statement to read it back). On
/// PostgreSQL its number is taken from the sequence by the INSERT itself: one round trip.
pub fn insert_ticket(conn: &mut Conn, t: &NewTicket) -> anyhow::Result<TicketRow> {
    let status = Status::New.as_str();
    let columns = (
        tickets::subject.eq(t.subject),
        tickets::status.eq(status),
        tickets::priority.eq(t.priority.as_str()),
        tickets::requester.eq(t.requester),
        tickets::company.eq(t.company),
        tickets::product.eq(t.product),
        tickets::service.eq(t.service),
        tickets::unverified.eq(t.unverified),
        tickets::refers_to.eq(t.refers_to),
        tickets::queue.eq(t.queue),
        tickets::created_at.eq(t.at),
        tickets::updated_at.eq(t.at),
        tickets::waiting_since.eq(t.waiting_since),
    );
    let number = match conn {
        #[cfg(feature = "postgres")]
        super::AnyConnection::Postgresql(pg) => diesel::insert_into(tickets::table)
            .values((
                tickets::number.eq(diesel::dsl::sql::<diesel::sql_types::BigInt>("nextval('guichet_id_ticket')")),
                columns,
            ))
            .returning(tickets::number)
            .get_result(pg)?,
        _ => {
            let number = next_id(conn, "ticket")?;
            diesel::insert_into(tickets::table).values((tickets::number.eq(number), columns)).execute(conn)?;
            number
        }
    };
    pg_batch::note_new_ticket(number);
    Ok(TicketRow {
        number,
        subject: t.subject.to_string(),
        status: status.to_string(),
        priority: t.priority.as_str().to_string(),
        requester: t.requester.to_string(),
        company: t.company.map(str::to_string),
        product: t.product.map(str::to_string),
        service: t.service.map(str::to_string),
        unverified: t.unverified,
        refers_to: t.refers_to,
        created_at: t.at,
        updated_at: t.at,
        closed_at: None,
        assignee: None,
        queue: Some(t.queue.to_string()),
        waiting_since: t.waiting_since,
    })
}

pub fn get_ticket(conn: &mut Conn, number: i64) -> anyhow::Result<Option<TicketRow>> {
    Ok(tickets::table.find(number).select(TicketRow::as_select()).get_result(conn).optional()?)
}

pub fn set_status(conn: &mut Conn, number: i64, status: Status, at: i64) -> anyhow::Result<()> {
    let closed_at = (status == Status::Closed).then_some(at);
    diesel::update(tickets::table.find(number))
        .set((tickets::status.eq(status.as_str()), tickets::closed_at.eq(closed_at), tickets::updated_at.eq(at)))
        .execute(conn)?;
    Ok(())
}

pub fn set_priority(conn: &mut Conn, number: i64, priority: Priority, at: i64) -> anyhow::Result<()> {
    diesel::update(tickets::table.find(number))
        .set((tickets::priority.eq(priority.as_str()), tickets::updated_at.eq(at)))
        .execute(conn)?;
    Ok(())
}

pub fn set_assignee(conn: &mut Conn, number: i64, assignee: Option<&str>, at: i64) -> anyhow::Result<()> {
    diesel::update(tickets::table.find(number))
        .set((tickets::assignee.eq(assignee), tickets::updated_at.eq(at)))
        .execute(conn)?;
    Ok(())
}

/// Whether a message of `kind` makes its ticket wait on staff: a person's customer message.
pub fn waits_on_staff(kind: MessageKind, auto: bool) -> bool {
    kind == MessageKind::Customer && !auto
}

/// Who the ticket waits on after a message of `kind`: a person's customer message makes it wait on
/// staff (since the oldest unanswered one); a staff answer ends the wait.
pub fn note_waiting(conn: &mut Conn, number: i64, kind: MessageKind, auto: bool, at: i64) -> anyhow::Result<()> {
    match kind {
        _ if waits_on_staff(kind, auto) => {
            diesel::update(tickets::table.find(number).filter(tickets::waiting_since.is_null()))
                .set(tickets::waiting_since.eq(Some(at)))
                .execute(conn)?;
        }
        MessageKind::Staff => {
            diesel::update(tickets::table.find(number)).set(tickets::waiting_since.eq(None::<i64>)).execute(conn)?;
        }
        _ => {}
    }
    Ok(())
}

pub fn touch(conn: &mut Conn, number: i64, at: i64) -> anyhow::Result<()> {
    diesel::update(tickets::table.find(number)).set(tickets::updated_at.eq(at)).execute(conn)?;
    Ok(())
}

pub fn watchers_of(conn: &mut Conn, number: i64) -> anyhow::Result<Vec<String>> {
    Ok(watchers::table
        .filter(watchers::ticket_number.eq(number))
        .select(watchers::address)
        .order(watchers::address)
        .load(conn)?)
}

/// Adds a watcher unless present or the ticket already has [`MAX_WATCHERS`]; true when added.
pub fn add_watcher(conn: &mut Conn, number: i64, address: &str) -> anyhow::Result<bool> {
    let existing = watchers_of(conn, number)?;
    if existing.iter().any(|a| a == address) || existing.len() >= MAX_WATCHERS {
        return Ok(false);
    }
    diesel::insert_into(watchers::table)
        .values((watchers::ticket_number.eq(number), watchers::address.eq(address)))
        .execute(conn)?;
    Ok(true)
}

pub fn thread_ticket(conn: &mut Conn, message_id: &str) -> anyhow::Result<Option<i64>> {
    if let Some(known) = pg_batch::thread_ticket(message_id) {
        return Ok(known);
    }
    let found = thread_ids::table.find(message_id).select(thread_ids::ticket_number).get_result(conn).optional()?;
    pg_batch::note_thread(message_id, found);
    Ok(pg_batch::thread_ticket(message_id).unwrap_or(found))
}

pub fn add_thread_id(conn: &mut Conn, message_id: &str, number: i64) -> anyhow::Result<()> {
    if pg_batch::hold_thread_id(message_id, number) {
        return Ok(());
    }
    if thread_ticket(conn, message_id)?.is_none() {
        diesel::insert_into(thread_ids::table)
            .values((thread_ids::message_id.eq(message_id), thread_ids::ticket_number.eq(number)))
            .execute(conn)?;
    }
    Ok(())
}

/// The Message-IDs of a ticket's mails for `References` of our notifications: the first and the
/// most recent ones, oldest first, at most `MAX_REFERENCES`.
///
/// Without `LIMIT`: through the multi-backend connection diesel prepares a query with a LIMIT
/// again at every call (2.4 % of the ingest's CPU, measured), and the oldest twenty were the
/// wrong ones to keep anyway.
pub fn thread_references(conn: &mut Conn, number: i64) -> anyhow::Result<Vec<String>> {
    if let Some(all) = pg_batch::thread_references(conn, number)? {
        return Ok(crate::threading::capped(all));
    }
    let all: Vec<String> = messages::table
        .filter(messages::ticket_number.eq(number))
        .filter(messages::mail_message_id.is_not_null())
        .order(messages::id)
        .select(messages::mail_message_id.assume_not_null())
        .load(conn)?;
    Ok(crate::threading::capped(all))
}

/// Whether an address has any ticket, as requester or watcher (who may ask for a login link).
pub fn has_tickets(conn: &mut Conn, email: &str) -> anyhow::Result<bool> {
    let requested: Option<i64> =
        tickets::table.filter(tickets::requester.eq(email)).select(tickets::number).get_result(conn).optional()?;
    if requested.is_some() {
        return Ok(true);
    }
    let watched: Option<i64> = watchers::table
        .filter(watchers::address.eq(email))
        .select(watchers::ticket_number)
        .get_result(conn)
        .optional()?;
    Ok(watched.is_some())
}

/// Whether a company has any ticket (its members may log in when it shares them).
pub fn company_has_tickets(conn: &mut Conn, company: &str) -> anyhow::Result<bool> {
    let any: Option<i64> =
        tickets::table.filter(tickets::company.eq(company)).select(tickets::number).get_result(conn).optional()?;
    Ok(any.is_some())
}

/// The watchers of several tickets at once, as (ticket, address), by address.
pub fn watchers_of_many(conn: &mut Conn, numbers: &[i64]) -> anyhow::Result<Vec<(i64, String)>> {
    Ok(watchers::table
        .filter(watchers::ticket_number.eq_any(numbers))
        .select((watchers::ticket_number, watchers::address))
        .order((watchers::ticket_number, watchers::address))
        .load(conn)?)
}
