//! Ticket operations shared by mail and the web: open, answer, change status or priority, note.
//! Each stores the change, its `event` trace and its notifications in the caller's transaction.

use serde_json::json;

use super::Desk;
use super::notices::{Kind, Notice, human_size, queue};
use super::timers;
use crate::catalog;
use crate::domain::{EmailAddress, Event, MessageKind, Priority, Status};
use crate::parse::Attachment;
use crate::store::Conn;
use crate::store::messages::{self, NewMessage, RefusedAttachment};
use crate::store::tickets::{self, NewTicket, TicketRow};

/// Who acts.
#[derive(Clone, Debug)]
pub struct Actor {
    pub address: EmailAddress,
    pub name: Option<String>,
    pub staff: bool,
}

/// A message about to be stored.
#[derive(Clone, Debug, Default)]
pub struct Incoming {
    pub from_name: Option<String>,
    pub subject: String,
    pub text: String,
    pub full_text: String,
    pub html: Option<String>,
    pub mail_message_id: Option<String>,
    pub raw_mail_id: Option<i64>,
    pub auto: bool,
    pub attachments: Vec<Attachment>,
    /// Its mail was not authenticated as its sender (SPEC §7): marked so wherever it shows.
    pub unverified: bool,
}

/// Whether this operation may send mail at all (`on_first_run = "archive"` imports silently).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mailing {
    Send,
    Silent,
}

pub struct Stored {
    pub message_id: i64,
    pub refused: Vec<RefusedAttachment>,
    /// The accepted files, for relaying: name, content type, SHA-256.
    pub files: Vec<(String, String, String)>,
}

/// Stores a message and its attachments; files over the limit are refused and recorded. Whom
/// its ticket then waits on is the caller's to note (`tickets::note_waiting`: a reply; a new
/// ticket is written with it).
pub fn store_message(
    conn: &mut Conn,
    desk: &Desk,
    number: i64,
    kind: MessageKind,
    from: &EmailAddress,
    msg: &Incoming,
    at: i64,
) -> anyhow::Result<Stored> {
    let limit = desk.settings.helpdesk.max_attachment_bytes;
    let lang = desk.lang();
    let refused: Vec<RefusedAttachment> = msg
        .attachments
        .iter()
        .filter(|a| a.data.len() as u64 > limit)
        .map(|a| RefusedAttachment {
            name: a.name.clone(),
            size: a.data.len() as u64,
            reason: catalog::word(lang, "refused_too_large").into(),
        })
        .collect();
    let message_id = messages::insert_message(
        conn,
        &NewMessage {
            ticket_number: number,
            kind,
            from_addr: from.as_str(),
            from_name: msg.from_name.as_deref(),
            at,
            subject: &msg.subject,
            text: &msg.text,
            full_text: &msg.full_text,
            html: msg.html.as_deref(),
            mail_message_id: msg.mail_message_id.as_deref(),
            raw_mail_id: msg.raw_mail_id,
            auto: msg.auto,
            refused: &refused,
            unverified: msg.unverified,
            event: None,
        },
    )?;
    let mut files = Vec::new();
    for a in msg.attachments.iter().filter(|a| a.data.len() as u64 <= limit) {
        messages::insert_attachment(
            conn,
            message_id,
            &a.name,
            &a.content_type,
            &a.data,
            &a.sha256,
            msg.raw_mail_id.zip(a.raw_span),
            a.content_id.as_deref(),
            a.inline,
        )?;
        if !a.inline {
            files.push((a.name.clone(), a.content_type.clone(), a.sha256.clone()));
        }
    }
    Ok(Stored { message_id, refused, files })
}

/// Records an `event` message, the trace of a change: the fact (told in each reader's language when
/// read) and, for the keyword search, its words in the desk's language.
pub fn record_event(
    conn: &mut Conn,
    desk: &Desk,
    number: i64,
    actor: &EmailAddress,
    event: Event,
    at: i64,
) -> anyhow::Result<()> {
    let text = event.text(desk.lang());
    let text = text.as_str();
    messages::insert_message(
        conn,
        &NewMessage { event: Some(&event), ..NewMessage::plain(number, MessageKind::Event, actor.as_str(), at, text) },
    )?;
    Ok(())
}

pub struct OpenTicket<'a> {
    pub requester: &'a EmailAddress,
    pub actor: &'a Actor,
    pub subject: &'a str,
    pub priority: Priority,
    pub product: Option<&'a str>,
    pub service: Option<&'a str>,
    pub unverified: bool,
    pub refers_to: Option<i64>,
    pub watchers: &'a [EmailAddress],
    /// The queue's address (`desk::queues`).
    pub queue: &'a EmailAddress,
    /// The first message's kind: `customer`, or `staff` when staff opened it for a customer.
    pub kind: MessageKind,
    pub message: &'a Incoming,
}

/// Opens a ticket with its first message; acknowledges it and alerts staff.
pub fn open_ticket(conn: &mut Conn, desk: &Desk, o: &OpenTicket, mailing: Mailing, at: i64) -> anyhow::Result<i64> {
    let lang = desk.lang();
    let company = desk.company_of(o.requester).map(|(name, _)| name);
    let subject = if o.subject.trim().is_empty() { catalog::word(lang, "no_subject") } else { o.subject };
    // Written with what its first message makes of it: no statement to update or read it back.
    let ticket = tickets::insert_ticket(
        conn,
        &NewTicket {
            subject,
            requester: o.requester.as_str(),
            priority: o.priority,
            company,
            product: o.product,
            service: o.service,
            unverified: o.unverified,
            refers_to: o.refers_to,
            queue: o.queue.as_str(),
            at,
            waiting_since: tickets::waits_on_staff(o.kind, o.message.auto).then_some(at),
        },
    )?;
    let number = ticket.number;
    let mut watchers = Vec::new();
    for w in o.watchers.iter().filter(|w| *w != o.requester && !desk.is_ours(w) && !desk.is_staff(w)) {
        if tickets::add_watcher(conn, number, w.as_str())? {
            watchers.push(w.clone());
        }
    }
    let stored = store_message(conn, desk, number, o.kind, &o.actor.address, o.message, at)?;
    if let Some(old) = o.refers_to {
        record_event(conn, desk, number, &o.actor.address, Event::FollowsUp { ticket: old }, at)?;
    }
    if o.unverified {
        record_event(conn, desk, number, &o.actor.address, Event::Unverified {}, at)?;
    }
    timers::sync(conn, desk, number, at)?;
    if mailing == Mailing::Silent {
        return Ok(number);
    }
    let body = o.message.text.clone();
    // One inbound mail, at most one automatic mail (SPEC §7): the acknowledgement, to the
    // requester only, naming any refused file. The people in Cc are watchers, mailed once a
    // person answers. An acknowledgement to a forged or automatic sender would be backscatter.
    let acknowledged = !o.message.auto && !o.unverified;
    if acknowledged {
        let mut ack = Notice::new("ticket_created", Some(&ticket), Kind::Acknowledgement);
        ack.recipients = vec![o.requester.clone()];
        ack.in_reply_to = o.message.mail_message_id.clone();
        ack.extra = json!({ "body": body, "files": refused_files(&stored.refused, lang) });
        queue(conn, desk, ack, at)?;
    }
    let mut alert = Notice::new("staff_alert_created", Some(&ticket), Kind::Automatic);
    alert.recipients = desk.alert_recipients(&ticket);
    alert.actor = Some(&o.actor.address);
    alert.extra = json!({ "body": body, "author": display(o.actor) });
    // Staff working from their mail client get the customer's files with the alert (SPEC §8).
    alert.files = stored.files.clone();
    queue(conn, desk, alert, at)?;
    // The requester's refused files are named in their acknowledgement; staff opening a ticket
    // for a customer hear of their own.
    if o.requester != &o.actor.address {
        refused_notice(conn, desk, &ticket, &o.actor.address, o.message, &stored.refused, at)?;
    }
    Ok(number)
}

fn refused_files(refused: &[RefusedAttachment], lang: &str) -> Vec<serde_json::Value> {
    refused.iter().map(|r| json!({"name": r.name, "size": human_size(r.size, lang)})).collect()
}

/// Tells the sender which files were refused (never an automatic sender).
fn refused_notice(
    conn: &mut Conn,
    desk: &Desk,
    ticket: &TicketRow,
    sender: &EmailAddress,
    msg: &Incoming,
    refused: &[RefusedAttachment],
    at: i64,
) -> anyhow::Result<()> {
    if refused.is_empty() || msg.auto {
        return Ok(());
    }
    let mut n = Notice::new("attachment_refused", Some(ticket), Kind::Automatic);
    n.recipients = vec![sender.clone()];
    n.in_reply_to = msg.mail_message_id.clone();
    n.extra = json!({ "files": refused_files(refused, desk.lang()) });
    queue(conn, desk, n, at)?;
    Ok(())
}

fn display(actor: &Actor) -> String {
    actor.name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| actor.address.to_string())
}

/// A customer (requester, watcher, company member) writes on a ticket.
#[allow(clippy::too_many_arguments)]
pub fn customer_reply(
    conn: &mut Conn,
    desk: &Desk,
    ticket: &TicketRow,
    actor: &Actor,
    msg: &Incoming,
    new_watchers: &[EmailAddress],
    mailing: Mailing,
    at: i64,
) -> anyhow::Result<()> {
    let number = ticket.number;
    let stored = store_message(conn, desk, number, MessageKind::Customer, &actor.address, msg, at)?;
    tickets::note_waiting(conn, number, MessageKind::Customer, msg.auto, at)?;
    for w in new_watchers.iter().filter(|w| !desk.is_ours(w) && !desk.is_staff(w) && w.as_str() != ticket.requester) {
        if tickets::add_watcher(conn, number, w.as_str())? {
            record_event(conn, desk, number, &actor.address, Event::WatcherAdded { address: w.to_string() }, at)?;
        }
    }
    tickets::touch(conn, number, at)?;
    // An out-of-office answer changes nothing and answers nothing.
    if msg.auto {
        return Ok(());
    }
    let status = ticket.status();
    match status {
        Status::Waiting => change_status_silently(conn, desk, ticket, Status::Open, &actor.address, at)?,
        Status::Closed => {
            tickets::set_status(conn, number, Status::Open, at)?;
            record_event(conn, desk, number, &actor.address, Event::ReopenedByCustomer {}, at)?;
        }
        Status::New | Status::Open => {}
    }
    timers::sync(conn, desk, number, at)?;
    if mailing == Mailing::Silent {
        return Ok(());
    }
    let ticket = tickets::get_ticket(conn, number)?.expect("exists");
    let mut alert = Notice::new("customer_answer", Some(&ticket), Kind::Automatic);
    alert.recipients = desk.alert_recipients(&ticket);
    alert.actor = Some(&actor.address);
    alert.in_reply_to = msg.mail_message_id.clone();
    alert.extra = json!({ "body": msg.text, "author": display(actor) });
    alert.files = stored.files.clone();
    queue(conn, desk, alert, at)?;
    refused_notice(conn, desk, &ticket, &actor.address, msg, &stored.refused, at)?;
    Ok(())
}

/// Staff answer: stored, status → waiting on customer (or as commanded), relayed to the requester
/// and watchers from the helpdesk address. A note is stored and relayed to nobody.
#[allow(clippy::too_many_arguments)]
pub fn staff_reply(
    conn: &mut Conn,
    desk: &Desk,
    ticket: &TicketRow,
    actor: &Actor,
    msg: &Incoming,
    as_note: bool,
    status: Option<Status>,
    priority: Option<Priority>,
    mailing: Mailing,
    at: i64,
) -> anyhow::Result<()> {
    let number = ticket.number;
    let has_text = !msg.text.trim().is_empty() || !msg.attachments.is_empty();
    let kind = if as_note { MessageKind::Note } else { MessageKind::Staff };
    let stored = if has_text || as_note {
        let stored = store_message(conn, desk, number, kind, &actor.address, msg, at)?;
        tickets::note_waiting(conn, number, kind, msg.auto, at)?;
        Some(stored)
    } else {
        None
    };
    if let Some(p) = priority {
        set_priority(conn, desk, ticket, p, &actor.address, mailing, at)?;
    }
    let relayed = !as_note && has_text;
    // Whoever answers an unassigned ticket takes it, so that nobody else answers it too.
    if relayed && ticket.assignee.is_none() && desk.settings.helpdesk.take_on_answer {
        assign(conn, desk, ticket, Some(&actor.address), &actor.address, Mailing::Silent, at)?;
    }
    let target = status.or(if relayed { Some(Status::Waiting) } else { None });
    let mut status_changed = None;
    if let Some(s) = target.filter(|s| *s != ticket.status()) {
        change_status_silently(conn, desk, ticket, s, &actor.address, at)?;
        status_changed = Some(s);
    }
    tickets::touch(conn, number, at)?;
    timers::sync(conn, desk, number, at)?;
    if mailing == Mailing::Silent {
        return Ok(());
    }
    let ticket = tickets::get_ticket(conn, number)?.expect("exists");
    let customers = customers_of(conn, &ticket)?;
    if relayed {
        let mut relay = Notice::new("staff_answer", Some(&ticket), Kind::Relay);
        relay.recipients = customers;
        relay.actor = Some(&actor.address);
        relay.from_name = Some(display_name_only(actor));
        relay.extra = json!({ "body": msg.text, "author": display_name_only(actor) });
        relay.files = stored.map(|s| s.files).unwrap_or_default();
        queue(conn, desk, relay, at)?;
    } else if let Some(s) = status_changed {
        status_notice(conn, desk, &ticket, s, &actor.address, None, at)?;
    }
    Ok(())
}

/// Gives the ticket to a staff member (`None`: back to its queue), traces it and tells the new
/// assignee — unless they assigned it to themselves (SPEC §8).
pub fn assign(
    conn: &mut Conn,
    desk: &Desk,
    ticket: &TicketRow,
    to: Option<&EmailAddress>,
    actor: &EmailAddress,
    mailing: Mailing,
    at: i64,
) -> anyhow::Result<()> {
    if ticket.assignee.as_deref() == to.map(EmailAddress::as_str) {
        return Ok(());
    }
    tickets::set_assignee(conn, ticket.number, to.map(EmailAddress::as_str), at)?;
    let event = match to {
        Some(a) => Event::Assigned { to: a.to_string() },
        None => Event::Unassigned {},
    };
    record_event(conn, desk, ticket.number, actor, event, at)?;
    if let (Some(to), Mailing::Send) = (to, mailing) {
        let updated = tickets::get_ticket(conn, ticket.number)?.expect("exists");
        let mut n = Notice::new("ticket_assigned", Some(&updated), Kind::Automatic);
        n.recipients = vec![to.clone()];
        n.actor = Some(actor);
        queue(conn, desk, n, at)?;
    }
    Ok(())
}

/// Staff's display name without their address (the address never reaches customers).
pub fn display_name_only(actor: &Actor) -> String {
    actor
        .name
        .clone()
        .map(|n| n.chars().filter(|c| !c.is_control() && !matches!(c, '<' | '>' | '@' | '"')).collect::<String>())
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| actor.address.local_part().to_string())
}

/// The requester and the watchers.
pub fn customers_of(conn: &mut Conn, ticket: &TicketRow) -> anyhow::Result<Vec<EmailAddress>> {
    let mut all: Vec<EmailAddress> = EmailAddress::parse(&ticket.requester).into_iter().collect();
    all.extend(tickets::watchers_of(conn, ticket.number)?.iter().filter_map(|w| EmailAddress::parse(w)));
    Ok(all)
}

fn change_status_silently(
    conn: &mut Conn,
    desk: &Desk,
    ticket: &TicketRow,
    to: Status,
    actor: &EmailAddress,
    at: i64,
) -> anyhow::Result<()> {
    tickets::set_status(conn, ticket.number, to, at)?;
    record_event(conn, desk, ticket.number, actor, Event::StatusChanged { from: ticket.status(), to }, at)
}

fn status_notice(
    conn: &mut Conn,
    desk: &Desk,
    ticket: &TicketRow,
    to: Status,
    actor: &EmailAddress,
    reason: Option<&str>,
    at: i64,
) -> anyhow::Result<()> {
    let by_staff = desk.is_staff(actor);
    let event = match (ticket.status(), to) {
        // Staff hear of a customer's closing in their own words, not in the customer's mail.
        (_, Status::Closed) if !by_staff => "customer_closed",
        (_, Status::Closed) => "ticket_closed",
        _ if reason.is_some() => "ticket_reopened",
        _ => "status_changed",
    };
    let mut n = Notice::new(event, Some(ticket), Kind::Automatic);
    n.recipients = customers_of(conn, ticket)?;
    if !by_staff {
        // A customer's own change is announced to staff instead.
        n.recipients = desk.alert_recipients(ticket);
    }
    n.actor = Some(actor);
    let author = if by_staff { String::new() } else { actor.to_string() };
    n.extra = json!({ "reason": reason.unwrap_or(""), "author": author });
    queue(conn, desk, n, at)?;
    Ok(())
}

/// Changes the status (web, `#status`), traces it and tells the other side.
pub fn change_status(
    conn: &mut Conn,
    desk: &Desk,
    ticket: &TicketRow,
    to: Status,
    actor: &EmailAddress,
    mailing: Mailing,
    at: i64,
) -> anyhow::Result<()> {
    if ticket.status() == to {
        return Ok(());
    }
    change_status_silently(conn, desk, ticket, to, actor, at)?;
    timers::sync(conn, desk, ticket.number, at)?;
    if mailing == Mailing::Send {
        let updated = tickets::get_ticket(conn, ticket.number)?.expect("exists");
        status_notice(conn, desk, &updated, to, actor, None, at)?;
    }
    Ok(())
}

/// Reopens a closed ticket with a reason (web button).
pub fn reopen(
    conn: &mut Conn,
    desk: &Desk,
    ticket: &TicketRow,
    actor: &EmailAddress,
    reason: &str,
    at: i64,
) -> anyhow::Result<()> {
    tickets::set_status(conn, ticket.number, Status::Open, at)?;
    record_event(conn, desk, ticket.number, actor, Event::Reopened { reason: reason.to_string() }, at)?;
    timers::sync(conn, desk, ticket.number, at)?;
    let updated = tickets::get_ticket(conn, ticket.number)?.expect("exists");
    status_notice(conn, desk, &updated, Status::Open, actor, Some(reason), at)
}

pub fn set_priority(
    conn: &mut Conn,
    desk: &Desk,
    ticket: &TicketRow,
    to: Priority,
    actor: &EmailAddress,
    mailing: Mailing,
    at: i64,
) -> anyhow::Result<()> {
    // Like change_status: setting the same priority again is no change and leaves no trace.
    if ticket.priority() == to {
        return Ok(());
    }
    tickets::set_priority(conn, ticket.number, to, at)?;
    record_event(conn, desk, ticket.number, actor, Event::PriorityChanged { from: ticket.priority(), to }, at)?;
    timers::sync(conn, desk, ticket.number, at)?;
    if mailing == Mailing::Send {
        // The customer hears of it: how soon they may expect an answer changed.
        let updated = tickets::get_ticket(conn, ticket.number)?.expect("exists");
        let mut n = Notice::new("priority_changed", Some(&updated), Kind::Automatic);
        n.recipients = customers_of(conn, &updated)?;
        n.actor = Some(actor);
        queue(conn, desk, n, at)?;
    }
    Ok(())
}
