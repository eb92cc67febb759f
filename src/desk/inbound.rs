//! One inbound mail → its effect on tickets (SPEC §2 and §3), inside the caller's transaction.

use serde_json::json;

use super::Desk;
use super::actions::{self, Actor, Incoming, Mailing, OpenTicket};
pub use super::commands::{Assign, StaffCommands};
use super::notices::{Kind, Notice, queue};
use crate::domain::{EmailAddress, Event, MessageKind, Priority, Status};
use crate::notify::message_id;
use crate::parse::{self, InboundMail};
use crate::store::raw::{self, RawState};
use crate::store::tickets::{self, TicketRow};
use crate::store::{Conn, next_id, savepoint};
use crate::threading::{self, Candidate, Clue, Decision, Sender};
use crate::trust;

/// What became of a mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Written into ticket `number` (`created` when it opened it).
    Ticket { number: i64, created: bool },
    /// Already ingested (same Message-ID, or same bytes): nothing done.
    Duplicate,
    /// Kept but deliberately not turned into a ticket (loop, stray report).
    Dropped(String),
    /// A delivery report about our mail, recorded on its notification.
    Report { ticket: Option<i64> },
    /// Could not be processed: kept in quarantine with the reason.
    Quarantined(String),
}

/// How a mail of a batch is kept apart from the others in their transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// In a savepoint of its own: a mail that cannot be processed goes to quarantine alone.
    Savepoint,
    /// Directly in the batch's transaction: a mail that cannot be processed fails the whole
    /// transaction with [`MailFailed`], and the caller writes the batch again, each mail in a
    /// savepoint. Such failures are rare (a mail that cannot be parsed is quarantined before,
    /// either way), and a savepoint per mail cost 8–13 % of the ingest's CPU (BENCHMARKS.md,
    /// fifth round): SQLite copies every page a mail touches into a statement journal first.
    Batch,
}

/// The error of a mail written with [`Isolation::Batch`] that could not be processed.
#[derive(Debug)]
pub struct MailFailed;

impl std::fmt::Display for MailFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a mail of the batch could not be processed")
    }
}

/// A mail parsed and keyed before its transaction: the costly, pure part of ingesting, which
/// may run on any thread while another batch holds the database.
pub struct Prepared {
    parsed: Result<InboundMail, String>,
    key: String,
    /// The receiving server called it spam (`helpdesk.spam_headers`): the header that says so.
    spam: Option<String>,
}

/// Parses `data` (or says why it cannot be) and computes its exactly-once key.
pub fn prepare(desk: &Desk, data: &[u8]) -> Prepared {
    let max = desk.settings.helpdesk.max_message_bytes;
    let parsed = if data.len() as u64 > max {
        Err(format!("mail too large: {} bytes (max_message_bytes = {max})", data.len()))
    } else {
        parse::parse_with(data, &desk.forward_prefixes).map_err(|e| e.to_string())
    };
    let key = raw::message_key(parsed.as_ref().ok().and_then(|m| m.message_id.as_deref()), data);
    let spam = parsed.as_ref().ok().and_then(|m| desk.settings.spam_verdict(&m.spam_headers));
    Prepared { parsed, key, spam }
}

/// Asks the database at once what a batch's mails will look up one by one
/// (`store::pg_batch::prefetch`): whether their keys are ingested, the tickets of the Message-IDs
/// they refer to, and of their senders and the helpdesk's alerted staff, who is undeliverable and
/// how many automatic mails each got within the rate limit's window.
pub fn prefetch(conn: &mut Conn, desk: &Desk, prepared: &[Prepared], now: i64) -> anyhow::Result<()> {
    let keys = prepared.iter().map(|p| p.key.clone()).collect();
    let mails = || prepared.iter().filter_map(|p| p.parsed.as_ref().ok());
    let references = mails()
        .flat_map(|m| m.references.iter().take(50))
        .filter(|r| message_id::ticket_of(r, &desk.secret).is_none())
        .cloned()
        .collect::<std::collections::BTreeSet<String>>();
    let addresses = mails()
        .filter_map(|m| m.from.as_ref().map(|f| f.address.to_string()))
        .chain(desk.staff_recipients().iter().map(|a| a.to_string()))
        .collect::<std::collections::BTreeSet<String>>();
    let since = now - i64::from(desk.settings.helpdesk.auto_reply_limit.hours) * 3600;
    crate::store::pg_batch::prefetch(
        conn,
        keys,
        references.into_iter().collect(),
        addresses.into_iter().collect(),
        since,
    )
}

/// Ingests one mail: exactly once, never lost. Runs `process` in a savepoint; anything it cannot do
/// sends the mail to quarantine with the reason, so it never blocks the mails after it.
pub fn ingest(
    conn: &mut Conn,
    desk: &Desk,
    data: &[u8],
    source: &str,
    mailing: Mailing,
    now: i64,
) -> anyhow::Result<Outcome> {
    ingest_prepared(conn, desk, data, prepare(desk, data), source, mailing, now, Isolation::Savepoint)
}

/// [`ingest`] of a mail already [`prepare`]d (`prepared` must come from the same `data`).
#[allow(clippy::too_many_arguments)]
pub fn ingest_prepared(
    conn: &mut Conn,
    desk: &Desk,
    data: &[u8],
    prepared: Prepared,
    source: &str,
    mailing: Mailing,
    now: i64,
    isolation: Isolation,
) -> anyhow::Result<Outcome> {
    let Prepared { parsed, key, spam } = prepared;
    if raw::is_known(conn, &key)? {
        return Ok(Outcome::Duplicate);
    }
    let mail = match parsed {
        Ok(mail) => mail,
        Err(reason) => return quarantine(conn, &key, source, data, &reason, now),
    };
    // Spam opens nothing and is answered by nothing (SPEC §7); `quarantine retry` makes it a ticket.
    if let Some(header) = spam {
        tracing::info!(key = %key, header = %header, "spam verdict of the receiving server: quarantined");
        return quarantine(conn, &key, source, data, SPAM, now);
    }
    let write = |conn: &mut Conn| {
        // The raw row is written once, with its outcome, after `process` (same savepoint, if any): an
        // UPDATE of a row holding a large mail would rewrite all of its bytes.
        let raw_id = next_id(conn, "raw_mail")?;
        let outcome = process(conn, desk, &mail, raw_id, source, mailing, now)?;
        let (state, reason, ticket) = match &outcome {
            Outcome::Ticket { number, .. } => (RawState::Processed, None, Some(*number)),
            Outcome::Report { ticket } => (RawState::Processed, Some("delivery report"), *ticket),
            Outcome::Dropped(why) => (RawState::Dropped, Some(why.as_str()), None),
            Outcome::Quarantined(why) => (RawState::Quarantined, Some(why.as_str()), None),
            Outcome::Duplicate => (RawState::Processed, None, None),
        };
        raw::insert_row(conn, &raw::NewRaw { id: raw_id, key: &key, source, data, state, reason, ticket, at: now })?;
        Ok(outcome)
    };
    let result = match isolation {
        Isolation::Savepoint => savepoint(conn, write),
        Isolation::Batch => return write(conn).map_err(|e| e.context(MailFailed)),
    };
    match result {
        Ok(outcome) => Ok(outcome),
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "mail sent to quarantine");
            quarantine(conn, &key, source, data, &format!("{e:#}"), now)
        }
    }
}

/// The quarantine reason of a mail the receiving server called spam.
pub const SPAM: &str = "spam";

fn quarantine(
    conn: &mut Conn,
    key: &str,
    source: &str,
    data: &[u8],
    reason: &str,
    now: i64,
) -> anyhow::Result<Outcome> {
    raw::insert(conn, key, source, data, RawState::Quarantined, Some(reason), now)?;
    Ok(Outcome::Quarantined(reason.to_string()))
}

/// Re-processes a quarantined (or dropped) raw mail by id; the row becomes its new outcome.
pub fn retry(conn: &mut Conn, desk: &Desk, id: i64, now: i64) -> anyhow::Result<Outcome> {
    let Some((source, data, _state)) = raw::get(conn, id)? else { anyhow::bail!("no quarantined mail {id}") };
    let max = desk.settings.helpdesk.max_message_bytes;
    if data.len() as u64 > max {
        return Ok(Outcome::Quarantined(format!("mail too large: {} bytes", data.len())));
    }
    let mail = match parse::parse_with(&data, &desk.forward_prefixes) {
        Ok(m) => m,
        Err(e) => return Ok(Outcome::Quarantined(e.to_string())),
    };
    let outcome = savepoint(conn, |conn| process(conn, desk, &mail, id, &source, Mailing::Send, now));
    match outcome {
        Ok(outcome) => {
            let (state, reason, ticket) = match &outcome {
                Outcome::Ticket { number, .. } => (RawState::Processed, None, Some(*number)),
                Outcome::Report { ticket } => (RawState::Processed, None, *ticket),
                Outcome::Dropped(_) => (RawState::Dropped, None, None),
                Outcome::Quarantined(why) => (RawState::Quarantined, Some(why.as_str()), None),
                Outcome::Duplicate => (RawState::Processed, None, None),
            };
            raw::set_outcome(conn, id, state, reason, ticket)?;
            Ok(outcome)
        }
        Err(e) => {
            raw::set_outcome(conn, id, RawState::Quarantined, Some(&format!("{e:#}")), None)?;
            Ok(Outcome::Quarantined(format!("{e:#}")))
        }
    }
}

/// The decision tree of SPEC §2.4–§2.9 and §3 for one parsed mail.
fn process(
    conn: &mut Conn,
    desk: &Desk,
    mail: &InboundMail,
    raw_id: i64,
    source: &str,
    mailing: Mailing,
    now: i64,
) -> anyhow::Result<Outcome> {
    let Some(from) = mail.from.clone() else { anyhow::bail!("mail has no usable From address") };
    let sender = from.address.clone();

    // Our own mail coming back: never a ticket, never an answer.
    if mail.loop_header.as_deref().is_some_and(|v| v.trim().eq_ignore_ascii_case(&super::notices::loop_id(desk)))
        || desk.is_ours(&sender)
    {
        tracing::info!(from = %sender, "our own mail came back: dropped");
        return Ok(Outcome::Dropped("our own mail (loop)".into()));
    }
    if let Some(report) = &mail.dsn {
        return super::reports::delivery_report(conn, desk, report, now);
    }

    let verdict =
        trust::authenticate(mail, &desk.secret, &desk.ours, desk.settings.helpdesk.trusted_authserv_id.as_deref());
    let authenticated = verdict.authenticated();
    // Threading reads what the mail claims (a forged staff mail still finds the ticket it aims
    // at, to be kept there as a note); what it may do depends on `authenticated` (SPEC §7).
    let claims_staff = desk.is_staff(&sender);
    let is_staff = claims_staff && authenticated;
    let shared_company = desk.company_of(&sender).filter(|(_, shared)| *shared).map(|(n, _)| n);
    let candidates = candidates(conn, desk, mail, verdict.reply_ticket())?;
    let decision = threading::decide(
        &candidates,
        &Sender { address: &sender, is_staff: claims_staff, verified: !verdict.dmarc_failed, shared_company },
        now,
        desk.settings.helpdesk.reopen_window_days,
    );
    let actor = Actor { address: sender.clone(), name: from.name.clone(), staff: is_staff };
    let auto = mail.auto.is_auto();
    let mailing = if auto { Mailing::Silent } else { mailing };

    let mut incoming = Incoming {
        from_name: from.name.clone(),
        subject: mail.subject.clone(),
        text: mail.new_text.clone(),
        full_text: mail.text.clone(),
        html: mail.html.clone(),
        mail_message_id: mail.message_id.clone(),
        raw_mail_id: Some(raw_id),
        auto,
        attachments: mail.attachments.clone(),
        unverified: false,
    };
    // Other people in To/Cc: watchers of a new ticket, or added by an authenticated party.
    let cc: Vec<EmailAddress> = mail
        .to
        .iter()
        .chain(&mail.cc)
        .map(|m| m.address.clone())
        .filter(|a| *a != sender && !desk.is_ours(a) && !desk.is_staff(a))
        .take(MAX_WATCHERS_PER_MAIL)
        .collect();

    if claims_staff && !authenticated {
        let ticket = match decision {
            Decision::Existing { number, .. } => Some(number),
            Decision::New { refers_to, reason: threading::NewReason::Unverified } => refers_to,
            Decision::New { .. } => None,
        };
        return unverified_staff_mail(conn, desk, ticket, &actor, &mut incoming, now);
    }

    match decision {
        Decision::Existing { number, reopen: _ } => {
            let ticket = tickets::get_ticket(conn, number)?.expect("candidate exists");
            if is_staff {
                let commands = StaffCommands::parse(&incoming.text);
                if !commands.unknown.is_empty() {
                    return unknown_commands(conn, desk, &ticket, &actor, &mut incoming, &commands, now);
                }
                incoming.text = commands.rest.clone();
                let ticket = match &commands.assign {
                    Some(a) => {
                        let to = a.resolve(&actor.address);
                        if to.as_ref().is_some_and(|t| !desk.is_staff(t)) {
                            return unknown_commands(conn, desk, &ticket, &actor, &mut incoming, &commands, now);
                        }
                        actions::assign(conn, desk, &ticket, to.as_ref(), &actor.address, mailing, now)?;
                        tickets::get_ticket(conn, number)?.expect("exists")
                    }
                    None => ticket,
                };
                actions::staff_reply(
                    conn,
                    desk,
                    &ticket,
                    &actor,
                    &incoming,
                    commands.note,
                    commands.status,
                    commands.priority,
                    mailing,
                    now,
                )?;
            } else {
                // Unauthenticated: the message joins, marked so; it gives nobody new access.
                incoming.unverified = !authenticated;
                let new_watchers: &[EmailAddress] = if authenticated { &cc } else { &[] };
                actions::customer_reply(conn, desk, &ticket, &actor, &incoming, new_watchers, mailing, now)?;
            }
            Ok(Outcome::Ticket { number, created: false })
        }
        Decision::New { refers_to, reason } => {
            let unverified = reason == threading::NewReason::Unverified;
            // The service of the mailbox the mail came through.
            let service =
                desk.settings.mailboxes.iter().find(|m| m.display_name() == source).and_then(|m| m.service.as_deref());
            if is_staff {
                return staff_new_ticket(conn, desk, mail, &actor, &mut incoming, mailing, now);
            }
            let title = desk.token.clean_subject(&mail.subject);
            let queue = desk.queue_for_mail(source, recipients(mail)).address.clone();
            let priority = mail.urgency.filter(|_| desk.settings.helpdesk.mail_priority).unwrap_or(Priority::Normal);
            let number = actions::open_ticket(
                conn,
                desk,
                &OpenTicket {
                    requester: &sender,
                    actor: &actor,
                    subject: &title,
                    priority,
                    product: None,
                    service,
                    unverified,
                    refers_to,
                    watchers: &cc,
                    queue: &queue,
                    kind: MessageKind::Customer,
                    message: &incoming,
                },
                mailing,
                now,
            )?;
            Ok(Outcome::Ticket { number, created: true })
        }
    }
}

/// Where a mail was sent: To, Cc and the envelope's Delivered-To.
fn recipients(mail: &InboundMail) -> impl Iterator<Item = &EmailAddress> {
    mail.to.iter().chain(&mail.cc).map(|m| &m.address).chain(&mail.delivered_to)
}

/// Addresses of one mail's To/Cc that may become watchers (SPEC §2.8).
const MAX_WATCHERS_PER_MAIL: usize = 10;

/// A mail in a staff member's name that does not prove it is theirs (SPEC §7): kept as an
/// internal note marked unverified on the ticket it aimed at (in quarantine when it aimed at
/// none), it relays nothing and changes nothing; the staff member is told, with the text.
fn unverified_staff_mail(
    conn: &mut Conn,
    desk: &Desk,
    ticket: Option<i64>,
    actor: &Actor,
    incoming: &mut Incoming,
    now: i64,
) -> anyhow::Result<Outcome> {
    tracing::warn!(from = %actor.address, ticket, "unauthenticated mail in a staff member's name: kept, not acted on");
    incoming.unverified = true;
    let row = match ticket {
        Some(number) => tickets::get_ticket(conn, number)?,
        None => None,
    };
    if let Some(row) = &row {
        actions::store_message(conn, desk, row.number, MessageKind::Note, &actor.address, incoming, now)?;
    }
    if !incoming.auto {
        let mut n = Notice::new("unverified_staff_mail", row.as_ref(), Kind::Automatic);
        n.recipients = vec![actor.address.clone()];
        n.in_reply_to = incoming.mail_message_id.clone();
        // A reply to this warning must not act on the ticket by mistake.
        n.reply_as = None;
        let personal = desk.personal_address(&actor.address);
        n.extra = json!({ "body": incoming.full_text, "personal_address": personal.as_str() });
        queue(conn, desk, n, now)?;
    }
    Ok(match row {
        Some(row) => Outcome::Ticket { number: row.number, created: false },
        None => Outcome::Quarantined(UNVERIFIED_STAFF.into()),
    })
}

/// The quarantine reason of an unauthenticated staff mail that aimed at no ticket.
pub const UNVERIFIED_STAFF: &str = "unauthenticated mail in a staff member's name";

/// Candidate tickets in SPEC order: references (most recent first), subject token, plus-address.
/// A signed reply address (`reply_ticket`) names its ticket as surely as our Message-IDs do.
fn candidates(
    conn: &mut Conn,
    desk: &Desk,
    mail: &InboundMail,
    reply_ticket: Option<i64>,
) -> anyhow::Result<Vec<Candidate>> {
    let mut found: Vec<(Clue, i64)> = reply_ticket.map(|n| (Clue::Reference, n)).into_iter().collect();
    for r in mail.references.iter().take(50) {
        let number = match message_id::ticket_of(r, &desk.secret) {
            Some(n) => Some(n),
            None => tickets::thread_ticket(conn, r)?,
        };
        if let Some(n) = number {
            found.push((Clue::Reference, n));
        }
    }
    if let Some(n) = desk.token.find(&mail.subject) {
        found.push((Clue::SubjectToken, n));
    }
    if desk.settings.helpdesk.plus_addressing {
        for a in mail.to.iter().chain(&mail.cc).map(|m| &m.address).chain(&mail.delivered_to) {
            if let Some((base, tag)) = a.plus_tag()
                && desk.ours.contains(&base)
                && let Ok(n) = tag.parse::<i64>()
            {
                found.push((Clue::PlusAddress, n));
            }
        }
    }
    let mut out = Vec::new();
    for (clue, number) in found {
        if out.iter().any(|c: &Candidate| c.number == number) {
            continue;
        }
        let Some(t) = tickets::get_ticket(conn, number)? else { continue };
        out.push(candidate(conn, desk, clue, &t)?);
    }
    Ok(out)
}

fn candidate(conn: &mut Conn, desk: &Desk, clue: Clue, t: &TicketRow) -> anyhow::Result<Candidate> {
    let requester = EmailAddress::parse(&t.requester).unwrap_or_else(|| desk.helpdesk.clone());
    let shared_company =
        t.company.as_ref().filter(|c| desk.settings.companies.iter().any(|co| &co.name == *c && co.shared)).cloned();
    Ok(Candidate {
        clue,
        number: t.number,
        status: t.status(),
        requester,
        watchers: tickets::watchers_of(conn, t.number)?.iter().filter_map(|w| EmailAddress::parse(w)).collect(),
        shared_company,
        closed_at: t.closed_at,
    })
}

/// A staff mail that matches no ticket: `#requester`, a forwarded customer mail, or staff's own.
fn staff_new_ticket(
    conn: &mut Conn,
    desk: &Desk,
    mail: &InboundMail,
    actor: &Actor,
    incoming: &mut Incoming,
    mailing: Mailing,
    now: i64,
) -> anyhow::Result<Outcome> {
    let commands = StaffCommands::parse(&incoming.text);
    let queue = desk.queue_for_mail("", recipients(mail)).address.clone();
    if !commands.unknown.is_empty() {
        // No ticket to hold it: open one for staff, as a note, and answer with the valid list.
        let title = desk.token.clean_subject(&mail.subject);
        incoming.text = commands.rest.clone();
        let number = actions::open_ticket(
            conn,
            desk,
            &OpenTicket {
                requester: &actor.address,
                actor,
                subject: &title,
                priority: Priority::Normal,
                product: None,
                service: None,
                unverified: false,
                refers_to: None,
                watchers: &[],
                queue: &queue,
                kind: MessageKind::Note,
                message: incoming,
            },
            Mailing::Silent,
            now,
        )?;
        let ticket = tickets::get_ticket(conn, number)?.expect("just opened");
        send_unknown_command_notice(conn, desk, &ticket, actor, &commands, incoming, now)?;
        return Ok(Outcome::Ticket { number, created: true });
    }
    let forwarded = desk.forward_prefixes.is_forward(&mail.subject).then_some(mail.forwarded_from.as_ref()).flatten();
    let (requester, kind, title, text) = if let Some(addr) = &commands.requester {
        (addr.clone(), MessageKind::Staff, desk.token.clean_subject(&mail.subject), commands.rest.clone())
    } else if let Some(orig) = forwarded.filter(|o| !desk.is_ours(&o.address) && !desk.is_staff(&o.address)) {
        // The forwarded body is the customer's request: keep it whole.
        let title = desk.token.clean_subject(desk.forward_prefixes.strip(&mail.subject));
        (orig.address.clone(), MessageKind::Customer, title, mail.text.clone())
    } else {
        (actor.address.clone(), MessageKind::Staff, desk.token.clean_subject(&mail.subject), commands.rest.clone())
    };
    incoming.text = text;
    let on_behalf = requester != actor.address;
    let number = actions::open_ticket(
        conn,
        desk,
        &OpenTicket {
            requester: &requester,
            actor,
            subject: &title,
            priority: commands.priority.unwrap_or(Priority::Normal),
            product: None,
            service: None,
            unverified: false,
            refers_to: None,
            watchers: &[],
            queue: &queue,
            kind: if commands.note { MessageKind::Note } else { kind },
            message: incoming,
        },
        mailing,
        now,
    )?;
    if let Some(s) = commands.status.filter(|s| *s != Status::New) {
        let ticket = tickets::get_ticket(conn, number)?.expect("just opened");
        actions::change_status(conn, desk, &ticket, s, &actor.address, Mailing::Silent, now)?;
    }
    if let Some(to) = commands.assign.as_ref().and_then(|a| a.resolve(&actor.address)).filter(|a| desk.is_staff(a)) {
        let ticket = tickets::get_ticket(conn, number)?.expect("just opened");
        actions::assign(conn, desk, &ticket, Some(&to), &actor.address, mailing, now)?;
    }
    if on_behalf {
        // Staff's own address never reaches a customer (SPEC §7): their display name only.
        let event = Event::OpenedOnBehalf { by: actions::display_name_only(actor), requester: requester.to_string() };
        actions::record_event(conn, desk, number, &actor.address, event, now)?;
    }
    Ok(Outcome::Ticket { number, created: true })
}

fn unknown_commands(
    conn: &mut Conn,
    desk: &Desk,
    ticket: &TicketRow,
    actor: &Actor,
    incoming: &mut Incoming,
    commands: &StaffCommands,
    now: i64,
) -> anyhow::Result<Outcome> {
    // Keep the mail (as an internal note), relay nothing, tell the staff member what is valid.
    incoming.text = commands.rest.clone();
    actions::store_message(conn, desk, ticket.number, MessageKind::Note, &actor.address, incoming, now)?;
    send_unknown_command_notice(conn, desk, ticket, actor, commands, incoming, now)?;
    Ok(Outcome::Ticket { number: ticket.number, created: false })
}

fn send_unknown_command_notice(
    conn: &mut Conn,
    desk: &Desk,
    ticket: &TicketRow,
    actor: &Actor,
    commands: &StaffCommands,
    incoming: &Incoming,
    now: i64,
) -> anyhow::Result<()> {
    let mut n = Notice::new("unknown_command", Some(ticket), Kind::Automatic);
    n.recipients = vec![actor.address.clone()];
    n.in_reply_to = incoming.mail_message_id.clone();
    n.extra = json!({ "commands": commands.unknown });
    queue(conn, desk, n, now)?;
    Ok(())
}
