//! Tickets, their messages, attachments, watchers and thread ids.

use diesel::prelude::*;
use serde::Serialize;

use super::schema::{attachments, blobs, messages, raw_mails, thread_ids, tickets, watchers};
use super::{AnyConnection, Conn, next_id, rfc3339, search_index};
use crate::domain::{MessageKind, Priority, Status};
use crate::parse::RawSpan;

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
}

pub fn insert_ticket(conn: &mut Conn, t: &NewTicket) -> anyhow::Result<i64> {
    let number = next_id(conn, "ticket")?;
    diesel::insert_into(tickets::table)
        .values((
            tickets::number.eq(number),
            tickets::subject.eq(t.subject),
            tickets::status.eq(Status::New.as_str()),
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
        ))
        .execute(conn)?;
    Ok(number)
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

/// Who the ticket waits on after a message of `kind`: a person's customer message makes it wait on
/// staff (since the oldest unanswered one); a staff answer ends the wait.
pub fn note_waiting(conn: &mut Conn, number: i64, kind: MessageKind, auto: bool, at: i64) -> anyhow::Result<()> {
    match kind {
        MessageKind::Customer if !auto => {
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
    Ok(thread_ids::table.find(message_id).select(thread_ids::ticket_number).get_result(conn).optional()?)
}

pub fn add_thread_id(conn: &mut Conn, message_id: &str, number: i64) -> anyhow::Result<()> {
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
    let all: Vec<String> = messages::table
        .filter(messages::ticket_number.eq(number))
        .filter(messages::mail_message_id.is_not_null())
        .order(messages::id)
        .select(messages::mail_message_id.assume_not_null())
        .load(conn)?;
    Ok(crate::notify::compose::capped(all))
}

pub struct NewMessage<'a> {
    pub ticket_number: i64,
    pub kind: MessageKind,
    pub from_addr: &'a str,
    pub from_name: Option<&'a str>,
    pub at: i64,
    pub subject: &'a str,
    pub text: &'a str,
    pub full_text: &'a str,
    pub html: Option<&'a str>,
    pub mail_message_id: Option<&'a str>,
    pub raw_mail_id: Option<i64>,
    pub auto: bool,
    pub refused: &'a [RefusedAttachment],
    /// Its mail was not authenticated as its sender (SPEC §7).
    pub unverified: bool,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RefusedAttachment {
    pub name: String,
    pub size: u64,
    pub reason: String,
}

pub fn insert_message(conn: &mut Conn, m: &NewMessage) -> anyhow::Result<i64> {
    let id = next_id(conn, "message")?;
    diesel::insert_into(messages::table)
        .values((
            messages::id.eq(id),
            messages::ticket_number.eq(m.ticket_number),
            messages::kind.eq(m.kind.as_str()),
            messages::from_addr.eq(m.from_addr),
            messages::from_name.eq(m.from_name),
            messages::at.eq(m.at),
            messages::subject.eq(m.subject),
            messages::text.eq(m.text),
            messages::full_text.eq(m.full_text),
            messages::html.eq(m.html),
            messages::mail_message_id.eq(m.mail_message_id),
            messages::raw_mail_id.eq(m.raw_mail_id),
            messages::auto.eq(m.auto),
            messages::refused.eq(serde_json::to_string(m.refused)?),
            messages::unverified.eq(m.unverified),
        ))
        .execute(conn)?;
    if let Some(mid) = m.mail_message_id {
        add_thread_id(conn, mid, m.ticket_number)?;
    }
    search_index::add(conn, id, format!("{}\n{}", m.subject, m.full_text))?;
    Ok(id)
}

/// Stores the bytes once (content-addressed by `sha`, their SHA-256 in hex) and links them to the
/// message. A mail's file that lies base64-encoded in its raw mail (`in_raw`: raw mail id and
/// span) is not copied: the blob points into the raw mail, which is kept anyway (see
/// [`blob_data`]).
#[allow(clippy::too_many_arguments)]
pub fn insert_attachment(
    conn: &mut Conn,
    message_id: i64,
    name: &str,
    content_type: &str,
    data: &[u8],
    sha: &str,
    in_raw: Option<(i64, RawSpan)>,
    content_id: Option<&str>,
    inline: bool,
) -> anyhow::Result<i64> {
    let known: Option<String> = blobs::table.find(sha).select(blobs::sha256).get_result(conn).optional()?;
    if known.is_none() {
        let (bytes, raw_mail, start, end) = match in_raw {
            Some((raw_id, span)) => (&[][..], Some(raw_id), Some(span.start as i64), Some(span.end as i64)),
            None => (data, None, None, None),
        };
        // Another daemon's open transaction may be storing the same file (PostgreSQL): its row
        // is not visible yet, and this insert waits for it; either copy will do.
        let insert = diesel::insert_into(blobs::table)
            .values((
                blobs::sha256.eq(sha),
                blobs::size.eq(data.len() as i64),
                blobs::data.eq(bytes),
                blobs::raw_mail_id.eq(raw_mail),
                blobs::raw_start.eq(start),
                blobs::raw_end.eq(end),
            ))
            .on_conflict_do_nothing();
        match conn {
            #[cfg(feature = "postgres")]
            AnyConnection::Postgresql(pg) => insert.execute(pg)?,
            AnyConnection::Sqlite(sqlite) => insert.execute(sqlite)?,
        };
    }
    let id = next_id(conn, "attachment")?;
    diesel::insert_into(attachments::table)
        .values((
            attachments::id.eq(id),
            attachments::message_id.eq(message_id),
            attachments::blob_sha256.eq(sha),
            attachments::name.eq(name),
            attachments::content_type.eq(content_type),
            attachments::size.eq(data.len() as i64),
            attachments::content_id.eq(content_id),
            attachments::inline.eq(inline),
        ))
        .execute(conn)?;
    Ok(id)
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = messages)]
pub struct MessageRow {
    pub id: i64,
    pub ticket_number: i64,
    pub kind: String,
    pub from_addr: String,
    pub from_name: Option<String>,
    pub at: i64,
    pub subject: String,
    pub text: String,
    pub full_text: String,
    pub html: Option<String>,
    pub mail_message_id: Option<String>,
    pub raw_mail_id: Option<i64>,
    pub auto: bool,
    pub refused: String,
    pub unverified: bool,
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = attachments)]
pub struct AttachmentRow {
    pub id: i64,
    pub message_id: i64,
    pub blob_sha256: String,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub content_id: Option<String>,
    pub inline: bool,
}

pub fn messages_of(conn: &mut Conn, number: i64, include_notes: bool) -> anyhow::Result<Vec<MessageRow>> {
    let mut q = messages::table.filter(messages::ticket_number.eq(number)).order(messages::id).into_boxed();
    if !include_notes {
        q = q.filter(messages::kind.ne(MessageKind::Note.as_str()));
    }
    Ok(q.select(MessageRow::as_select()).load(conn)?)
}

pub fn attachments_of(conn: &mut Conn, message_ids: &[i64]) -> anyhow::Result<Vec<AttachmentRow>> {
    Ok(attachments::table
        .filter(attachments::message_id.eq_any(message_ids))
        .order(attachments::id)
        .select(AttachmentRow::as_select())
        .load(conn)?)
}

pub fn attachment(conn: &mut Conn, id: i64) -> anyhow::Result<Option<(AttachmentRow, i64, Vec<u8>)>> {
    let Some(row) = attachments::table.find(id).select(AttachmentRow::as_select()).get_result(conn).optional()? else {
        return Ok(None);
    };
    let (ticket, kind): (i64, String) =
        messages::table.find(row.message_id).select((messages::ticket_number, messages::kind)).get_result(conn)?;
    if kind == MessageKind::Note.as_str() {
        // Notes' files are staff's: the caller checks staff rights through the ticket anyway, but
        // never hand them out as a customer's download.
        return Ok(None);
    }
    let data = blob_data(conn, &row.blob_sha256)?;
    Ok(Some((row, ticket, data)))
}

/// Blob bytes by attachment id without the note check (staff tools).
pub fn attachment_any(conn: &mut Conn, id: i64) -> anyhow::Result<Option<(AttachmentRow, i64, Vec<u8>)>> {
    let Some(row) = attachments::table.find(id).select(AttachmentRow::as_select()).get_result(conn).optional()? else {
        return Ok(None);
    };
    let ticket: i64 = messages::table.find(row.message_id).select(messages::ticket_number).get_result(conn)?;
    let data = blob_data(conn, &row.blob_sha256)?;
    Ok(Some((row, ticket, data)))
}

/// The bytes of the blob `sha`: its own `data`, or decoded from the raw mail it points into,
/// checked against its digest. Should that decoding ever disagree with how the mail was parsed
/// when it arrived, the raw mail is parsed again and the file found by its digest.
pub fn blob_data(conn: &mut Conn, sha: &str) -> anyhow::Result<Vec<u8>> {
    use sha2::Digest;
    let (data, raw_mail, start, end): (Vec<u8>, Option<i64>, Option<i64>, Option<i64>) = blobs::table
        .find(sha)
        .select((blobs::data, blobs::raw_mail_id, blobs::raw_start, blobs::raw_end))
        .get_result(conn)?;
    let (Some(raw_id), Some(start), Some(end)) = (raw_mail, start, end) else { return Ok(data) };
    let raw: Vec<u8> = raw_mails::table.find(raw_id).select(raw_mails::data).get_result(conn)?;
    let matches = |bytes: &[u8]| hex::encode(sha2::Sha256::digest(bytes)) == sha;
    let span = RawSpan { start: start as usize, end: end as usize };
    if let Some(bytes) = crate::parse::decode_span(&raw, span).filter(|b| matches(b)) {
        return Ok(bytes);
    }
    tracing::warn!(blob = sha, raw_mail = raw_id, "attachment span did not decode: parsing its mail again");
    let mail = crate::parse::parse(&raw).map_err(|e| anyhow::anyhow!("raw mail {raw_id}: {e}"))?;
    mail.attachments
        .into_iter()
        .map(|a| a.data)
        .find(|d| matches(d))
        .ok_or_else(|| anyhow::anyhow!("attachment {sha} not found in raw mail {raw_id}"))
}

// ---- JSON shapes of SPEC §1 -------------------------------------------------------------------

#[derive(Serialize, Clone, Debug)]
pub struct TicketJson {
    pub number: i64,
    pub subject: String,
    pub status: String,
    pub priority: String,
    pub requester: String,
    pub watchers: Vec<String>,
    pub company: Option<String>,
    pub product: Option<String>,
    pub service: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub closed_at: Option<String>,
    pub unverified: bool,
    pub refers_to: Option<i64>,
    /// SPEC §8: the staff member handling it, or null.
    pub assignee: Option<String>,
    /// SPEC §8: the address of its queue (mailbox).
    pub queue: Option<String>,
    /// When the customer's oldest unanswered message came (null: nothing waits on staff).
    pub waiting_since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<MessageJson>>,
}

#[derive(Serialize, Clone, Debug)]
pub struct MessageJson {
    pub id: i64,
    pub kind: String,
    pub from: String,
    pub from_name: Option<String>,
    pub at: String,
    pub subject: String,
    pub text: String,
    pub full_text: String,
    pub html: Option<String>,
    pub auto: bool,
    /// Its mail was not authenticated as its sender (SPEC §7).
    pub unverified: bool,
    pub attachments: Vec<AttachmentJson>,
    pub refused_attachments: Vec<RefusedAttachment>,
}

#[derive(Serialize, Clone, Debug)]
pub struct AttachmentJson {
    pub id: i64,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub content_id: Option<String>,
    pub inline: bool,
}

pub fn ticket_json(row: &TicketRow, watchers: Vec<String>) -> TicketJson {
    TicketJson {
        number: row.number,
        subject: row.subject.clone(),
        status: row.status.clone(),
        priority: row.priority.clone(),
        requester: row.requester.clone(),
        watchers,
        company: row.company.clone(),
        product: row.product.clone(),
        service: row.service.clone(),
        created_at: rfc3339(row.created_at),
        updated_at: rfc3339(row.updated_at),
        closed_at: row.closed_at.map(rfc3339),
        unverified: row.unverified,
        refers_to: row.refers_to,
        assignee: row.assignee.clone(),
        queue: row.queue.clone(),
        waiting_since: row.waiting_since.map(rfc3339),
        unread: None,
        messages: None,
    }
}

/// One ticket with its conversation; `include_notes` for staff and administrators only.
pub fn ticket_with_messages(conn: &mut Conn, number: i64, include_notes: bool) -> anyhow::Result<Option<TicketJson>> {
    let Some(row) = get_ticket(conn, number)? else { return Ok(None) };
    let mut json = ticket_json(&row, watchers_of(conn, number)?);
    let msgs = messages_of(conn, number, include_notes)?;
    let ids: Vec<i64> = msgs.iter().map(|m| m.id).collect();
    let files = attachments_of(conn, &ids)?;
    json.messages = Some(
        msgs.into_iter()
            .map(|m| MessageJson {
                attachments: files
                    .iter()
                    .filter(|a| a.message_id == m.id)
                    .map(|a| AttachmentJson {
                        id: a.id,
                        name: a.name.clone(),
                        content_type: a.content_type.clone(),
                        size: a.size,
                        content_id: a.content_id.clone(),
                        inline: a.inline,
                    })
                    .collect(),
                refused_attachments: serde_json::from_str(&m.refused).unwrap_or_default(),
                id: m.id,
                kind: m.kind,
                from: m.from_addr,
                from_name: m.from_name,
                at: rfc3339(m.at),
                subject: m.subject,
                text: m.text,
                full_text: m.full_text,
                html: m.html,
                auto: m.auto,
                unverified: m.unverified,
            })
            .collect(),
    );
    Ok(Some(json))
}

/// Every ticket, newest first (administrator's list).
pub fn all_tickets(conn: &mut Conn) -> anyhow::Result<Vec<TicketJson>> {
    let rows: Vec<TicketRow> =
        tickets::table.order(tickets::number.desc()).select(TicketRow::as_select()).load(conn)?;
    let all_watchers: Vec<(i64, String)> =
        watchers::table.select((watchers::ticket_number, watchers::address)).order(watchers::address).load(conn)?;
    Ok(rows
        .iter()
        .map(|r| {
            let w = all_watchers.iter().filter(|(n, _)| *n == r.number).map(|(_, a)| a.clone()).collect();
            ticket_json(r, w)
        })
        .collect())
}

// ---- The web view: who sees what, the list with its criteria, unread markers, saved criteria --

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

/// The list view's sortable columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortKey {
    Number,
    Subject,
    Status,
    Priority,
    #[default]
    Updated,
    Created,
}

impl SortKey {
    pub const ALL: &'static [SortKey] =
        &[SortKey::Number, SortKey::Subject, SortKey::Status, SortKey::Priority, SortKey::Updated, SortKey::Created];

    pub fn as_str(self) -> &'static str {
        match self {
            SortKey::Number => "number",
            SortKey::Subject => "subject",
            SortKey::Status => "status",
            SortKey::Priority => "priority",
            SortKey::Updated => "updated",
            SortKey::Created => "created",
        }
    }

    pub fn parse(s: &str) -> Option<SortKey> {
        SortKey::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    fn sql(self, backend_is_sqlite: bool) -> &'static str {
        match self {
            SortKey::Number => "t.number",
            SortKey::Subject if backend_is_sqlite => "t.subject COLLATE NOCASE",
            SortKey::Subject => "lower(t.subject)",
            SortKey::Status => "CASE t.status WHEN 'new' THEN 0 WHEN 'open' THEN 1 WHEN 'waiting' THEN 2 ELSE 3 END",
            SortKey::Priority => "CASE t.priority WHEN 'low' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END",
            SortKey::Updated => "t.updated_at",
            SortKey::Created => "t.created_at",
        }
    }
}

/// The list view's criteria, already parsed (the web layer reads them from the query string).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListCriteria {
    pub number: Option<i64>,
    /// Empty: any status.
    pub statuses: Vec<Status>,
    /// Empty: any priority.
    pub priorities: Vec<Priority>,
    /// Case-insensitive equality.
    pub product: Option<String>,
    /// Active between: updated at or after `from` and created before `until` (unix seconds).
    pub from: Option<i64>,
    pub until: Option<i64>,
    /// Each keyword's words must all appear in one message (or the subject) of the ticket; every
    /// keyword must match the ticket.
    pub keywords: Vec<String>,
    pub unread_only: bool,
    /// `Some(None)`: unassigned tickets; `Some(Some(a))`: those assigned to `a`.
    pub assignee: Option<Option<String>>,
    /// `Some(true)`: waiting on staff (the customer's message is unanswered); `Some(false)`:
    /// waiting on the customer.
    pub waiting_on_us: Option<bool>,
    pub requester: Option<String>,
    /// Case-insensitive equality.
    pub company: Option<String>,
    pub queue: Option<String>,
    pub sort: SortKey,
    pub descending: bool,
    pub offset: i64,
    /// `None`: every matching ticket (exports).
    pub limit: Option<i64>,
}

impl Default for ListCriteria {
    fn default() -> Self {
        ListCriteria {
            number: None,
            statuses: vec![Status::New, Status::Open, Status::Waiting],
            priorities: Vec::new(),
            product: None,
            from: None,
            until: None,
            keywords: Vec::new(),
            unread_only: false,
            assignee: None,
            waiting_on_us: None,
            requester: None,
            company: None,
            queue: None,
            sort: SortKey::Updated,
            descending: true,
            offset: 0,
            limit: Some(25),
        }
    }
}

/// A ticket of the list, with the viewer's unread marker.
#[derive(QueryableByName, Clone, Debug)]
pub struct ListedTicket {
    #[diesel(embed)]
    pub ticket: TicketRow,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub unread: bool,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// A row of a page that counts its whole selection (`COUNT(*) OVER ()`).
#[derive(QueryableByName)]
struct CountedRow {
    #[diesel(embed)]
    listed: ListedTicket,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    selected: i64,
}

/// A bound parameter of a hand-written query.
#[derive(Clone, Debug)]
enum Param {
    Int(i64),
    Text(String),
}

/// A query's text and parameters, with placeholders in the backend's syntax (`?` or `$n`).
struct SqlBuilder {
    sqlite: bool,
    sql: String,
    params: Vec<Param>,
}

impl SqlBuilder {
    fn push(&mut self, s: &str) -> &mut Self {
        self.sql.push_str(s);
        self
    }

    fn param(&mut self, p: Param) -> &mut Self {
        self.params.push(p);
        if self.sqlite {
            self.sql.push('?');
        } else {
            self.sql.push_str(&format!("${}", self.params.len()));
        }
        self
    }

    fn load<T>(&self, conn: &mut Conn) -> anyhow::Result<Vec<T>>
    where
        T: QueryableByName<diesel::sqlite::Sqlite> + 'static,
        T: PgQueryable,
    {
        match conn {
            #[cfg(feature = "postgres")]
            AnyConnection::Postgresql(pg) => {
                let mut q = diesel::sql_query(self.sql.clone()).into_boxed::<diesel::pg::Pg>();
                for p in &self.params {
                    q = match p {
                        Param::Int(v) => q.bind::<diesel::sql_types::BigInt, _>(*v),
                        Param::Text(v) => q.bind::<diesel::sql_types::Text, _>(v.clone()),
                    };
                }
                Ok(q.load(pg)?)
            }
            AnyConnection::Sqlite(sqlite) => {
                let mut q = diesel::sql_query(self.sql.clone()).into_boxed::<diesel::sqlite::Sqlite>();
                for p in &self.params {
                    q = match p {
                        Param::Int(v) => q.bind::<diesel::sql_types::BigInt, _>(*v),
                        Param::Text(v) => q.bind::<diesel::sql_types::Text, _>(v.clone()),
                    };
                }
                Ok(q.load(sqlite)?)
            }
        }
    }
}

/// `QueryableByName` for PostgreSQL too, when that backend is built.
#[cfg(feature = "postgres")]
pub trait PgQueryable: QueryableByName<diesel::pg::Pg> {}
#[cfg(feature = "postgres")]
impl<T: QueryableByName<diesel::pg::Pg>> PgQueryable for T {}
#[cfg(not(feature = "postgres"))]
pub trait PgQueryable {}
#[cfg(not(feature = "postgres"))]
impl<T> PgQueryable for T {}

/// The words of a keyword as a full-text query: each word quoted, so no search syntax gets
/// through; all of them must appear. `None` when the keyword has no word.
pub fn keyword_query(keyword: &str) -> Option<String> {
    let words: Vec<String> = keyword
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(16)
        .map(|w| format!("\"{w}\""))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// The `WHERE` clause shared by the count and the page of [`list_tickets`]. When the page walks
/// the date index (`walk_date_index`), SQLite is kept from using the status index (`+t.status`):
/// walking the tickets newest first and stopping at the page's end beats sorting every open
/// ticket, the open ones being the recent ones.
fn list_filter(b: &mut SqlBuilder, audience: &Audience, c: &ListCriteria, walk_date_index: bool) {
    b.push(" WHERE 1 = 1");
    if let Audience::Customer { email, shared_company } = audience {
        b.push(" AND (t.requester = ").param(Param::Text(email.clone()));
        b.push(" OR t.number IN (SELECT w.ticket_number FROM watchers w WHERE w.address = ")
            .param(Param::Text(email.clone()))
            .push(")");
        if let Some(company) = shared_company {
            // The status repeated here lets SQLite seek (company, status) for this branch of the
            // OR; its other branches are a person's few tickets.
            b.push(" OR (t.company = ").param(Param::Text(company.clone()));
            status_filter(b, c, "t.status");
            b.push(")");
        }
        b.push(")");
    }
    if let Some(n) = c.number {
        b.push(" AND t.number = ").param(Param::Int(n));
    }
    status_filter(b, c, if walk_date_index && b.sqlite { "+t.status" } else { "t.status" });
    let priorities: Vec<&str> = c.priorities.iter().map(|p| p.as_str()).collect();
    one_of(b, "t.priority", &priorities, Priority::ALL.len());
    if let Some(product) = &c.product {
        b.push(" AND lower(t.product) = lower(").param(Param::Text(product.clone())).push(")");
    }
    if let Some(from) = c.from {
        b.push(" AND t.updated_at >= ").param(Param::Int(from));
    }
    if let Some(until) = c.until {
        b.push(" AND t.created_at < ").param(Param::Int(until));
    }
    match &c.assignee {
        Some(Some(a)) => {
            b.push(" AND t.assignee = ").param(Param::Text(a.clone()));
        }
        Some(None) => {
            b.push(" AND t.assignee IS NULL");
        }
        None => {}
    }
    match c.waiting_on_us {
        Some(true) => {
            b.push(" AND t.waiting_since IS NOT NULL AND t.status <> 'closed'");
        }
        Some(false) => {
            b.push(" AND t.status = 'waiting'");
        }
        None => {}
    }
    if let Some(r) = &c.requester {
        b.push(" AND t.requester = ").param(Param::Text(r.clone()));
    }
    if let Some(company) = &c.company {
        b.push(" AND lower(t.company) = lower(").param(Param::Text(company.clone())).push(")");
    }
    if let Some(q) = &c.queue {
        b.push(" AND t.queue = ").param(Param::Text(q.clone()));
    }
    let notes = if audience.is_staff() { "" } else { " AND m.kind <> 'note'" };
    // A customer sees few tickets: each of their messages is checked against the index (a
    // rowid seek per message; CROSS JOIN keeps SQLite from turning the loops around). Staff and shared companies see many: the messages matching the
    // keyword are listed once, then their tickets, so the work follows the keyword's rarity.
    let per_ticket = matches!(audience, Audience::Customer { shared_company: None, .. });
    for query in c.keywords.iter().filter_map(|k| keyword_query(k)) {
        match (b.sqlite, per_ticket) {
            (true, true) => {
                b.push(" AND EXISTS (SELECT 1 FROM messages m CROSS JOIN message_search ON message_search.rowid = m.id WHERE m.ticket_number = t.number")
                    .push(notes)
                    .push(" AND message_search MATCH ")
                    .param(Param::Text(query))
                    .push(")");
            }
            (true, false) => {
                b.push(" AND t.number IN (SELECT m.ticket_number FROM messages m WHERE m.id IN (SELECT rowid FROM message_search WHERE message_search MATCH ")
                    .param(Param::Text(query))
                    .push(")")
                    .push(notes)
                    .push(")");
            }
            (false, _) => {
                let plain = query.replace('"', "");
                b.push(" AND t.number IN (SELECT m.ticket_number FROM messages m WHERE m.id IN (SELECT s.message_id FROM message_search s WHERE s.tsv @@ plainto_tsquery('simple', unaccent_simple(")
                    .param(Param::Text(plain))
                    .push(")))")
                    .push(notes)
                    .push(")");
            }
        }
    }
    if c.unread_only {
        b.push(" AND (r.read_at IS NULL OR r.read_at < t.updated_at)");
    }
}

/// ` AND <column> IN (…)` for the statuses asked for, nothing when any status will do.
fn status_filter(b: &mut SqlBuilder, c: &ListCriteria, column: &str) {
    let statuses: Vec<&str> = c.statuses.iter().map(|s| s.as_str()).collect();
    one_of(b, column, &statuses, Status::ALL.len());
}

/// ` AND <column> IN (…values)`, nothing when `values` is empty or holds all `possible` ones.
fn one_of(b: &mut SqlBuilder, column: &str, values: &[&str], possible: usize) {
    if values.is_empty() || values.len() >= possible {
        return;
    }
    b.push(" AND ").push(column).push(" IN (");
    for (i, v) in values.iter().enumerate() {
        b.push(if i == 0 { "" } else { ", " }).param(Param::Text((*v).into()));
    }
    b.push(")");
}

/// One page of the tickets `audience` may see that match `c`, and the total number that match.
pub fn list_tickets(
    conn: &mut Conn,
    viewer: &str,
    audience: &Audience,
    c: &ListCriteria,
) -> anyhow::Result<(i64, Vec<ListedTicket>)> {
    let sqlite = matches!(conn, AnyConnection::Sqlite(_));
    let reads_join = |b: &mut SqlBuilder| {
        b.push(" FROM tickets t LEFT JOIN reads r ON r.email = ")
            .param(Param::Text(viewer.to_string()))
            .push(" AND r.ticket_number = t.number");
    };
    let count = |conn: &mut Conn| -> anyhow::Result<i64> {
        let mut count = SqlBuilder { sqlite, sql: "SELECT COUNT(*) AS n".into(), params: Vec::new() };
        if c.unread_only {
            reads_join(&mut count);
        } else {
            count.push(" FROM tickets t");
        }
        list_filter(&mut count, audience, c, false);
        Ok(count.load::<CountRow>(conn)?.first().map_or(0, |r| r.n))
    };
    // Staff see every ticket: walking the date index newest first finds a page at once. A
    // customer sees a few hundred or thousand: SQLite must start from the audience's own indexes
    // (requester, watchers, company) and sort what they give; walking the date index instead
    // read all 100,000 tickets when fewer than a page of them matched (a `+` keeps it off).
    let walk_date_index = audience.is_staff() && c.sort == SortKey::Updated;
    let keep_off_index = sqlite && !audience.is_staff() && matches!(c.sort, SortKey::Updated | SortKey::Created);
    let page = |counted: bool| {
        let mut page = SqlBuilder {
            sqlite,
            sql: "SELECT t.number, t.subject, t.status, t.priority, t.requester, t.company, t.product, t.service, \
                  t.unverified, t.refers_to, t.created_at, t.updated_at, t.closed_at, \
                  t.assignee, t.queue, t.waiting_since, \
                  (r.read_at IS NULL OR r.read_at < t.updated_at) AS unread"
                .into(),
            params: Vec::new(),
        };
        if counted {
            page.push(", COUNT(*) OVER () AS selected");
        }
        reads_join(&mut page);
        list_filter(&mut page, audience, c, walk_date_index);
        let dir = if c.descending { "DESC" } else { "ASC" };
        let plus = if keep_off_index { "+" } else { "" };
        page.push(&format!(" ORDER BY {plus}{} {dir}, t.number {dir}", c.sort.sql(sqlite)));
        if let Some(limit) = c.limit {
            page.push(" LIMIT ").param(Param::Int(limit)).push(" OFFSET ").param(Param::Int(c.offset.max(0)));
        }
        page
    };
    // With keywords, matching the words is most of the work: the page counts its selection
    // itself (a window over every row it sorted) rather than a second query matching them again.
    // Without, the count is cheap and the page may stop early (staff: the date index).
    let searched = c.keywords.iter().any(|k| keyword_query(k).is_some());
    if !searched || c.limit == Some(0) {
        let total = count(conn)?;
        if total == 0 || c.limit == Some(0) {
            return Ok((total, Vec::new()));
        }
        return Ok((total, page(false).load::<ListedTicket>(conn)?));
    }
    let rows = page(true).load::<CountedRow>(conn)?;
    let total = match rows.first() {
        Some(r) => r.selected,
        // A page past the end has no row to carry the count.
        None if c.offset > 0 => count(conn)?,
        None => 0,
    };
    Ok((total, rows.into_iter().map(|r| r.listed).collect()))
}

/// The watchers of several tickets at once, as (ticket, address), by address.
pub fn watchers_of_many(conn: &mut Conn, numbers: &[i64]) -> anyhow::Result<Vec<(i64, String)>> {
    Ok(watchers::table
        .filter(watchers::ticket_number.eq_any(numbers))
        .select((watchers::ticket_number, watchers::address))
        .order((watchers::ticket_number, watchers::address))
        .load(conn)?)
}

/// Marks a ticket read by `email` (a write only when it was unread, so reading stays cheap).
pub fn mark_read(conn: &mut Conn, email: &str, ticket: &TicketRow, at: i64) -> anyhow::Result<()> {
    use super::schema::reads;
    let read_at: Option<i64> =
        reads::table.find((email, ticket.number)).select(reads::read_at).get_result(conn).optional()?;
    match read_at {
        Some(r) if r >= ticket.updated_at => {}
        Some(_) => {
            diesel::update(reads::table.find((email, ticket.number))).set(reads::read_at.eq(at)).execute(conn)?;
        }
        None => {
            diesel::insert_into(reads::table)
                .values((reads::email.eq(email), reads::ticket_number.eq(ticket.number), reads::read_at.eq(at)))
                .execute(conn)?;
        }
    }
    Ok(())
}

/// Whether `ticket` changed since `email` last read it.
pub fn is_unread(conn: &mut Conn, email: &str, ticket: &TicketRow) -> anyhow::Result<bool> {
    use super::schema::reads;
    let read_at: Option<i64> =
        reads::table.find((email, ticket.number)).select(reads::read_at).get_result(conn).optional()?;
    Ok(read_at.is_none_or(|r| r < ticket.updated_at))
}

/// The list criteria a person saved (a query string), if any.
pub fn saved_criteria(conn: &mut Conn, email: &str) -> anyhow::Result<Option<String>> {
    use super::schema::saved_criteria;
    Ok(saved_criteria::table.find(email).select(saved_criteria::query).get_result(conn).optional()?)
}

pub fn save_criteria(conn: &mut Conn, email: &str, query: &str) -> anyhow::Result<()> {
    use super::schema::saved_criteria;
    diesel::delete(saved_criteria::table.find(email)).execute(conn)?;
    diesel::insert_into(saved_criteria::table)
        .values((saved_criteria::email.eq(email), saved_criteria::query.eq(query)))
        .execute(conn)?;
    Ok(())
}

pub fn forget_criteria(conn: &mut Conn, email: &str) -> anyhow::Result<()> {
    use super::schema::saved_criteria;
    diesel::delete(saved_criteria::table.find(email)).execute(conn)?;
    Ok(())
}

/// The ticket and sender of a message (for the page that shows a mail's HTML).
pub fn message_by_id(conn: &mut Conn, id: i64) -> anyhow::Result<Option<MessageRow>> {
    Ok(messages::table.find(id).select(MessageRow::as_select()).get_result(conn).optional()?)
}
