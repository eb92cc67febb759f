//! The administrator's commands: output for people, or the JSON shapes of SPEC §1.

use anyhow::bail;

use crate::app::App;
use crate::auth;
use crate::desk::inbound::{self, Outcome};
use crate::domain::EmailAddress;
use crate::store::views;
use crate::store::visibility::Audience;
use crate::store::{self, mailboxes, outbox, raw};

pub fn login_link(app: &App, email: &str) -> anyhow::Result<()> {
    let Some(address) = EmailAddress::parse(email) else { bail!("`{email}` is not an email address") };
    let token = app.store.write(|c| auth::create_login_token(c, address.as_str(), None, store::now()))?;
    println!("{}", auth::login_url(&app.settings.helpdesk.public_url, &token));
    Ok(())
}

/// A staff member's personal command address (SPEC §7): mail they send there — a new request on
/// behalf of a customer, a forward, commands — is authenticated as theirs.
pub fn staff_address(app: &App, email: &str) -> anyhow::Result<()> {
    let Some(address) = EmailAddress::parse(email) else { bail!("`{email}` is not an email address") };
    if !app.desk.is_staff(&address) {
        bail!("{address} is not a staff address (helpdesk.staff)");
    }
    println!("{}", app.desk.personal_address(&address));
    Ok(())
}

pub fn tickets(app: &App, json: bool) -> anyhow::Result<()> {
    let all = app.store.read(views::all_tickets)?;
    if json {
        let list = serde_json::json!({"total": all.len(), "page": 1, "per_page": all.len().max(1), "tickets": all});
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if all.is_empty() {
        println!("no tickets");
    }
    for t in &all {
        println!("#{:<6} {:<8} {:<8} {:<32} {}", t.number, t.status, t.priority, t.requester, t.subject);
    }
    Ok(())
}

pub fn ticket(app: &App, number: i64, json: bool) -> anyhow::Result<()> {
    let Some(t) = app.store.read(|c| views::ticket_with_messages(c, number, &Audience::Staff, app.desk.lang()))? else {
        bail!("no ticket #{number}");
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&t)?);
        return Ok(());
    }
    println!("{} {}", app.desk.token.format(t.number), t.subject);
    println!("status: {}  priority: {}  requester: {}", t.status, t.priority, t.requester);
    if !t.watchers.is_empty() {
        println!("watchers: {}", t.watchers.join(", "));
    }
    for m in t.messages.unwrap_or_default() {
        println!("\n--- {} {} from {} at {}", m.id, m.kind, m.from, m.at);
        println!("{}", m.text);
        for a in &m.attachments {
            println!("  [attachment {}] {} ({}, {} bytes)", a.id, a.name, a.content_type, a.size);
        }
        for r in &m.refused_attachments {
            println!("  [refused] {} ({} bytes): {}", r.name, r.size, r.reason);
        }
    }
    Ok(())
}

pub fn quarantine_list(app: &App, json: bool) -> anyhow::Result<()> {
    let entries = app.store.read(raw::quarantined)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    if entries.is_empty() {
        println!("quarantine is empty");
    }
    for e in entries {
        println!("{:<6} {} {:<20} {:>9} bytes  {}  — {}", e.id, e.received_at, e.source, e.size, e.subject, e.reason);
    }
    Ok(())
}

pub fn quarantine_retry(app: &App, id: i64) -> anyhow::Result<()> {
    let desk = &app.desk;
    let outcome = app.store.write(|c| inbound::retry(c, desk, id, store::now()))?;
    match outcome {
        Outcome::Quarantined(why) => bail!("mail {id} is still quarantined: {why}"),
        other => println!("mail {id}: {other:?}"),
    }
    Ok(())
}

pub fn status(app: &App, json: bool) -> anyhow::Result<()> {
    let now = store::now();
    let (boxes, queue, quarantined) = app.store.read(|c| {
        Ok((mailboxes::all(c)?, outbox::status(c, now)?, raw::count_by_state(c, raw::RawState::Quarantined)?))
    })?;
    let boxes: Vec<mailboxes::MailboxStatus> = boxes.into_iter().map(Into::into).collect();
    if json {
        let v = serde_json::json!({"mailboxes": boxes, "outbox": queue, "quarantine": quarantined});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return in_error(&boxes, &queue);
    }
    println!("mailboxes:");
    if boxes.is_empty() {
        println!("  (none polled yet)");
    }
    for b in &boxes {
        println!(
            "  {}: {} on server, {} ingested, {} quarantined, last poll {}, last error {}",
            b.name,
            b.on_server,
            b.ingested,
            b.quarantined,
            b.last_poll.as_deref().unwrap_or("never"),
            b.last_error.as_deref().unwrap_or("none")
        );
    }
    println!(
        "outbox: {} pending ({} retrying), {} sent, {} failed, last error {}",
        queue.pending,
        queue.retrying,
        queue.sent,
        queue.failed,
        queue.last_error.as_deref().unwrap_or("none")
    );
    println!("quarantine: {quarantined} mail(s)");
    in_error(&boxes, &queue)
}

/// `status` exits non-zero (SPEC §10) while a mailbox has a last error, or mail waits in the
/// outbox after a failed attempt (the SMTP server refuses or does not answer). Mail refused for
/// good (`failed`) is the recipient's fault, not the outbox's: it is shown, and does not count.
fn in_error(boxes: &[mailboxes::MailboxStatus], queue: &outbox::OutboxStatus) -> anyhow::Result<()> {
    let failing: Vec<&str> = boxes.iter().filter(|b| b.last_error.is_some()).map(|b| b.name.as_str()).collect();
    let outbox_failing = queue.retrying > 0 && queue.last_error.is_some();
    match (failing.is_empty(), outbox_failing) {
        (true, false) => Ok(()),
        (false, false) => bail!("mailbox in error: {}", failing.join(", ")),
        (true, true) => bail!("outbox in error: mail waits after failed attempts"),
        (false, true) => bail!("mailbox in error: {}; outbox in error too", failing.join(", ")),
    }
}

/// `guichet copy-to URL`: the documented way from SQLite to PostgreSQL (or back).
pub fn copy_to(settings: &crate::config::Settings, url: &str) -> anyhow::Result<()> {
    let from = store::Store::open_and_migrate(&settings.database.url, 2)?;
    let to = store::Store::open_and_migrate(url, 2)?;
    let counts = store::copy::copy_all(&from, &to)?;
    for (table, rows) in counts {
        println!("{table}: {rows} row(s)");
    }
    println!("copied {} → {url}; point database.url at it and start guichet", settings.database.url);
    Ok(())
}

/// `guichet oauth-login USERNAME` (SPEC §9): the device-code flow for the mailbox (or `[smtp]`)
/// that logs in as USERNAME; the refresh token it yields is kept in the database.
pub fn oauth_login(app: &App, username: &str) -> anyhow::Result<()> {
    let settings = &app.settings;
    let config = settings
        .mailboxes
        .iter()
        .filter_map(|m| m.oauth.as_ref())
        .chain(settings.smtp.iter().filter_map(|s| s.oauth.as_ref()))
        .find(|o| o.username.eq_ignore_ascii_case(username));
    let Some(config) = config else {
        bail!("no [[mailbox]] or [smtp] logs in as {username} with auth = \"xoauth2\" or \"oauthbearer\"");
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(crate::oauth::device_login(config, &app.store, &mut std::io::stdout()))
}
