//! Queues notifications into the outbox, applying the loop breakers of SPEC §2.4 and §4:
//! nothing automatic to system addresses, to ourselves, to undeliverable addresses or beyond the
//! per-address rate limit; nobody notified of their own action.

use serde_json::{Value, json};

use super::Desk;
use crate::domain::EmailAddress;
use crate::notify::message_id;
use crate::notify::pending::PendingMail;
pub use crate::notify::render::human_size;
use crate::store::tickets::{TicketRow, add_thread_id, thread_references};
use crate::store::{Conn, outbox};
use crate::trust;

/// How a notification counts for the loop breakers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Acknowledgement of a new ticket: `Auto-Submitted: auto-replied`, rate limited.
    Acknowledgement,
    /// Status mails, alerts, refusals: `auto-generated`, rate limited.
    Automatic,
    /// A person's words relayed (staff answer): no Auto-Submitted, not rate limited.
    Relay,
    /// Asked for by the person (login link): its own rate limit, applied by the caller.
    Requested,
}

pub struct Notice<'a> {
    pub event: &'static str,
    pub ticket: Option<&'a TicketRow>,
    pub recipients: Vec<EmailAddress>,
    pub kind: Kind,
    /// Who caused it: never notified of their own action.
    pub actor: Option<&'a EmailAddress>,
    /// Template variables besides the common ones (body, author, reason, files, link…).
    pub extra: Value,
    /// The Message-ID of the mail this answers, for threading in the recipient's client.
    pub in_reply_to: Option<String>,
    /// Display name shown before the helpdesk's ("Alice via Support").
    pub from_name: Option<String>,
    /// Stored files sent along: name, content type, SHA-256 (`store::messages::blob_data`).
    pub files: Vec<(String, String, String)>,
    /// Automatic error mails go out with the null envelope sender.
    pub null_sender: bool,
    /// The ticket of each recipient's signed reply address (`0`: a staff member's personal
    /// command address); `None`: replies go to the plain helpdesk address.
    pub reply_as: Option<i64>,
}

impl<'a> Notice<'a> {
    pub fn new(event: &'static str, ticket: Option<&'a TicketRow>, kind: Kind) -> Notice<'a> {
        Notice {
            event,
            ticket,
            recipients: Vec::new(),
            kind,
            actor: None,
            extra: json!({}),
            in_reply_to: None,
            from_name: None,
            files: Vec::new(),
            null_sender: false,
            reply_as: ticket.map(|t| t.number),
        }
    }
}

/// Why a recipient was skipped (logged; tests read the outcome through the outbox).
fn skip_reason(
    conn: &mut Conn,
    desk: &Desk,
    to: &EmailAddress,
    kind: Kind,
    now: i64,
) -> anyhow::Result<Option<&'static str>> {
    if desk.is_ours(to) {
        return Ok(Some("our own address"));
    }
    if outbox::is_undeliverable(conn, to.as_str(), now)? {
        return Ok(Some("undeliverable"));
    }
    // Our own team is not a loop risk: alerts to staff are not rate limited.
    let ours = desk.is_staff(to) || desk.staff_recipients().contains(to);
    if matches!(kind, Kind::Acknowledgement | Kind::Automatic) && !ours {
        if to.is_system() {
            return Ok(Some("system address"));
        }
        let limit = desk.settings.helpdesk.auto_reply_limit;
        let since = now - i64::from(limit.hours) * 3600;
        if outbox::automatic_since(conn, to.as_str(), since)? >= i64::from(limit.count) {
            return Ok(Some("automatic mail rate limit"));
        }
    }
    Ok(None)
}

/// Queues one mail per eligible recipient (rendered when sent: `notify::pending`); returns how many were queued.
pub fn queue(conn: &mut Conn, desk: &Desk, notice: Notice, now: i64) -> anyhow::Result<usize> {
    let mut recipients = notice.recipients.clone();
    recipients.sort();
    recipients.dedup();
    // Every recipient's mail carries the same References: the ticket's mails, read once.
    let thread = match notice.ticket {
        Some(t) => thread_references(conn, t.number)?,
        None => Vec::new(),
    };
    let mut queued = 0;
    for to in &recipients {
        if notice.actor == Some(to) {
            continue;
        }
        if let Some(reason) = skip_reason(conn, desk, to, notice.kind, now)? {
            tracing::info!(recipient = %to, event = notice.event, reason, "notification not sent");
            continue;
        }
        queue_one(conn, desk, &notice, to, thread.clone(), now)?;
        queued += 1;
    }
    Ok(queued)
}

fn queue_one(
    conn: &mut Conn,
    desk: &Desk,
    notice: &Notice,
    to: &EmailAddress,
    mut references: Vec<String>,
    now: i64,
) -> anyhow::Result<()> {
    let settings = &desk.settings;
    // The ticket's queue speaks for it: its address, name and language (SPEC §8).
    let queue_of = desk.queue_of(notice.ticket);
    let lang = queue_of.language.as_str();
    let number = notice.ticket.map(|t| t.number);
    let mut ctx = json!({
        "helpdesk_name": queue_of.name,
        "public_url": settings.helpdesk.public_url,
        "recipient": to.as_str(),
        "body": "", "author": "", "reason": "", "files": [], "limit": human_size(settings.helpdesk.max_attachment_bytes, lang),
        "link": "", "commands": [], "token": "", "ticket_url": "", "personal_address": "",
        "ticket": {"number": 0, "subject": "", "status": "", "status_label": "", "priority": "", "priority_label": "",
                   "requester": "", "product": "", "service": ""},
    });
    if let Some(t) = notice.ticket {
        ctx["token"] = json!(desk.token.format(t.number));
        ctx["ticket_url"] = json!(settings.ticket_url(t.number));
        ctx["ticket"] = json!({
            "number": t.number, "subject": t.subject, "status": t.status, "status_label": t.status().label(lang),
            "priority": t.priority, "priority_label": t.priority().label(lang), "requester": t.requester,
            "product": t.product.clone().unwrap_or_default(), "service": t.service.clone().unwrap_or_default(),
        });
    }
    if let (Some(base), Some(extra)) = (ctx.as_object_mut(), notice.extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    let token = notice.ticket.map(|t| desk.token.format(t.number)).unwrap_or_default();
    let mid = message_id::ours(number, &desk.secret, desk.id_domain());
    if let Some(irt) = &notice.in_reply_to {
        references.retain(|r| r != irt);
        references.push(irt.clone());
    }
    let in_reply_to = notice.in_reply_to.clone().or_else(|| references.last().cloned());
    let auto_submitted = match notice.kind {
        Kind::Acknowledgement => Some("auto-replied"),
        Kind::Automatic => Some("auto-generated"),
        Kind::Relay | Kind::Requested => None,
    };
    let from_name = match &notice.from_name {
        Some(person) => format!("{person} via {}", queue_of.name),
        None => queue_of.name.clone(),
    };
    let pending = PendingMail {
        lang: lang.to_string(),
        event: notice.event.to_string(),
        ctx,
        token,
        from_name,
        from_address: queue_of.address.to_string(),
        to: vec![to.to_string()],
        // The recipient's "Reply" carries the proof that it is them (SPEC §7).
        reply_to: notice
            .reply_as
            .map(|ticket| trust::reply_address(&desk.secret, &queue_of.address, ticket, to).to_string()),
        message_id: mid.clone(),
        in_reply_to,
        references,
        auto_submitted: auto_submitted.map(str::to_string),
        loop_id: loop_id(desk),
        files: notice.files.clone(),
    };
    let envelope_from = if notice.null_sender { String::new() } else { queue_of.address.to_string() };
    outbox::queue(
        conn,
        &outbox::Queued {
            ticket_number: number,
            event: notice.event,
            recipient: to.as_str(),
            envelope_from: &envelope_from,
            message_id: &mid,
            automatic: matches!(notice.kind, Kind::Acknowledgement | Kind::Automatic),
            at: now,
            spec: &pending.to_json(),
        },
    )?;
    if let Some(n) = number {
        add_thread_id(conn, &mid, n)?;
    }
    Ok(())
}

/// The value of our `X-Guichet-Loop` header: names this helpdesk, so its own mail coming back is
/// recognised (and another Guichet's is not mistaken for ours).
pub fn loop_id(desk: &Desk) -> String {
    desk.helpdesk.to_string()
}
