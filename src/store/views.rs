//! The JSON shapes of SPEC §1: a ticket, its messages and files.

use diesel::prelude::*;
use serde::Serialize;

use super::messages::{RefusedAttachment, attachments_of, messages_of};
use super::schema::{tickets, watchers};
use super::tickets::{TicketRow, get_ticket, watchers_of};
use super::visibility::Audience;
use super::{Conn, rfc3339};
use crate::domain::Event;

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
    /// An `event` message's fact, `{"code": …, "args": {…}}`; its `text` is that fact told in the
    /// reader's language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<Event>,
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

/// One ticket with the conversation that `audience` may see, its history told in `lang`.
pub fn ticket_with_messages(
    conn: &mut Conn,
    number: i64,
    audience: &Audience,
    lang: &str,
) -> anyhow::Result<Option<TicketJson>> {
    let Some(row) = get_ticket(conn, number)? else { return Ok(None) };
    let mut json = ticket_json(&row, watchers_of(conn, number)?);
    let msgs = messages_of(conn, number, audience)?;
    let ids: Vec<i64> = msgs.iter().map(|m| m.id).collect();
    let files = attachments_of(conn, &ids)?;
    json.messages = Some(
        msgs.into_iter()
            .map(|mut m| {
                let event = m.event();
                if let Some(e) = &event {
                    m.text = e.text(lang);
                    m.full_text = m.text.clone();
                }
                (m, event)
            })
            .map(|(m, event)| MessageJson {
                event,
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
