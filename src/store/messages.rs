//! Messages, their attachments and the blobs that hold the files' bytes.

use diesel::prelude::*;
use serde::Serialize;

use super::schema::{attachments, blobs, messages, raw_mails};
use super::tickets::add_thread_id;
use super::visibility::{self, Audience};
use super::{AnyConnection, Conn, next_id, pg_batch, search_index};
use crate::domain::{Event, MessageKind};
use crate::parse::RawSpan;

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
    /// The fact behind an `event` message (its `text` is then that event told in the desk's language).
    pub event: Option<&'a Event>,
}

impl<'a> NewMessage<'a> {
    /// A message of plain text and nothing else (no subject, HTML, mail or files); callers set
    /// the rest with `..NewMessage::plain(…)`.
    pub fn plain(ticket_number: i64, kind: MessageKind, from_addr: &'a str, at: i64, text: &'a str) -> Self {
        NewMessage {
            ticket_number,
            kind,
            from_addr,
            from_name: None,
            at,
            subject: "",
            text,
            full_text: text,
            html: None,
            mail_message_id: None,
            raw_mail_id: None,
            auto: false,
            refused: &[],
            unverified: false,
            event: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RefusedAttachment {
    pub name: String,
    pub size: u64,
    pub reason: String,
}

pub fn insert_message(conn: &mut Conn, m: &NewMessage) -> anyhow::Result<i64> {
    let id = next_id(conn, "message")?;
    let row = MessageRow {
        id,
        ticket_number: m.ticket_number,
        kind: m.kind.as_str().to_string(),
        from_addr: m.from_addr.to_string(),
        from_name: m.from_name.map(str::to_string),
        at: m.at,
        subject: m.subject.to_string(),
        text: m.text.to_string(),
        full_text: m.full_text.to_string(),
        html: m.html.map(str::to_string),
        mail_message_id: m.mail_message_id.map(str::to_string),
        raw_mail_id: m.raw_mail_id,
        auto: m.auto,
        refused: serde_json::to_string(m.refused)?,
        unverified: m.unverified,
        event: m.event.map(Event::stored),
    };
    // In a held PostgreSQL batch the row is inserted with the batch's others at COMMIT.
    if let Some(row) = pg_batch::hold_message(row) {
        diesel::insert_into(messages::table).values(&row).execute(conn)?;
    }
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
    let row = AttachmentRow {
        id: next_id(conn, "attachment")?,
        message_id,
        blob_sha256: sha.to_string(),
        name: name.to_string(),
        content_type: content_type.to_string(),
        size: data.len() as i64,
        content_id: content_id.map(str::to_string),
        inline,
    };
    // In a held PostgreSQL batch, the row and its blob are inserted with the batch's others.
    let blob = || {
        let (bytes, raw_mail_id, raw_start, raw_end) = match in_raw {
            Some((raw_id, span)) => (Vec::new(), Some(raw_id), Some(span.start as i64), Some(span.end as i64)),
            None => (data.to_vec(), None, None, None),
        };
        pg_batch::Blob {
            sha256: sha.to_string(),
            size: data.len() as i64,
            data: bytes,
            raw_mail_id,
            raw_start,
            raw_end,
        }
    };
    let id = row.id;
    let Some(row) = pg_batch::hold_attachment(row, blob) else { return Ok(id) };
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
    diesel::insert_into(attachments::table).values(&row).execute(conn)?;
    Ok(id)
}

/// A message as stored: read back, and written (one at a time, or a batch's at once on
/// PostgreSQL: `pg_batch`).
#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
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
    /// An `event` message's fact as stored (see [`Event::stored`]).
    pub event: Option<String>,
}

impl MessageRow {
    /// The fact behind an `event` message (None for every other kind).
    pub fn event(&self) -> Option<Event> {
        if self.kind != MessageKind::Event.as_str() {
            return None;
        }
        Some(match &self.event {
            Some(stored) => Event::from_stored(stored, &self.text),
            None => Event::Text { text: self.text.clone() },
        })
    }
}

/// A file of a message as stored: read back, and written (`pg_batch` holds a batch's).
#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
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

/// A ticket's messages that `audience` may see ([`visibility::sees_message`]), oldest first.
pub fn messages_of(conn: &mut Conn, number: i64, audience: &Audience) -> anyhow::Result<Vec<MessageRow>> {
    let mut q = messages::table.filter(messages::ticket_number.eq(number)).order(messages::id).into_boxed();
    if !visibility::sees_message(audience, MessageKind::Note.as_str()) {
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

/// A file with its ticket number and bytes, if `audience` may see the message it came with (the
/// caller checks the ticket with [`visibility::may_see`]).
pub fn attachment(
    conn: &mut Conn,
    id: i64,
    audience: &Audience,
) -> anyhow::Result<Option<(AttachmentRow, i64, Vec<u8>)>> {
    let Some(row) = attachments::table.find(id).select(AttachmentRow::as_select()).get_result(conn).optional()? else {
        return Ok(None);
    };
    let (ticket, kind): (i64, String) =
        messages::table.find(row.message_id).select((messages::ticket_number, messages::kind)).get_result(conn)?;
    if !visibility::sees_message(audience, &kind) {
        return Ok(None);
    }
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

/// The ticket and sender of a message (for the page that shows a mail's HTML).
pub fn message_by_id(conn: &mut Conn, id: i64) -> anyhow::Result<Option<MessageRow>> {
    Ok(messages::table.find(id).select(MessageRow::as_select()).get_result(conn).optional()?)
}
