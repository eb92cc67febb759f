//! `/healthz` (the process and its database answer), `/readyz` (and no mailbox has been failing
//! for longer than ten of its polls), and the per-mailbox gauges of `/metrics`. All read the
//! database at each request, so that every daemon of an installation tells the same story.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use diesel::prelude::*;

use crate::app::App;
use crate::store::{self, mailboxes, schema::raw_mails};

/// A database that takes longer than this to answer counts as not answering.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// How many polls a mailbox may fail before the daemon stops being ready (SPEC §10).
const FAILED_POLLS_BEFORE_UNREADY: u64 = 10;

/// Who reads the answer: the public listener says what is wrong in a word; the metrics
/// listener (the operator's) gives the reasons, which may name paths, hosts and servers' replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    Public,
    Operator,
}

/// 200 `ok`, or 503 naming what does not answer.
pub async fn healthz(app: App, audience: Audience) -> (StatusCode, String) {
    match ping(&app).await {
        Ok(()) => (StatusCode::OK, "ok\n".into()),
        Err(e) => unavailable(audience, vec![format!("database: {e:#}")]),
    }
}

/// [`healthz`], and 503 while a configured mailbox has been failing for longer than
/// `poll_seconds` × 10.
pub async fn readyz(app: App, audience: Audience) -> (StatusCode, String) {
    if let Err(e) = ping(&app).await {
        return unavailable(audience, vec![format!("database: {e:#}")]);
    }
    let states = match app.store.run(|s| s.read(mailboxes::all)).await {
        Ok(states) => states,
        Err(e) => return unavailable(audience, vec![format!("database: {e:#}")]),
    };
    let failing = failing_mailboxes(&app, &states, store::now());
    if failing.is_empty() {
        return (StatusCode::OK, "ready\n".into());
    }
    unavailable(audience, failing)
}

/// 503 with one line per problem: its kind (`database`, `mailbox`), and for the operator which
/// one and why.
fn unavailable(audience: Audience, problems: Vec<String>) -> (StatusCode, String) {
    let lines: Vec<String> = match audience {
        Audience::Operator => problems,
        Audience::Public => {
            problems.iter().map(|p| format!("{}: unavailable", p.split([' ', ':']).next().unwrap_or(p))).collect()
        }
    };
    (StatusCode::SERVICE_UNAVAILABLE, lines.join("\n") + "\n")
}

/// Route handlers for both listeners.
pub async fn healthz_public(State(app): State<App>) -> (StatusCode, String) {
    healthz(app, Audience::Public).await
}
pub async fn readyz_public(State(app): State<App>) -> (StatusCode, String) {
    readyz(app, Audience::Public).await
}
pub async fn healthz_operator(State(app): State<App>) -> (StatusCode, String) {
    healthz(app, Audience::Operator).await
}
pub async fn readyz_operator(State(app): State<App>) -> (StatusCode, String) {
    readyz(app, Audience::Operator).await
}

/// The database answers within [`PING_TIMEOUT`] (also the systemd watchdog's condition).
pub async fn ping(app: &App) -> anyhow::Result<()> {
    let store = app.store.clone();
    let answer = tokio::task::spawn_blocking(move || store.ping(PING_TIMEOUT));
    match tokio::time::timeout(PING_TIMEOUT + Duration::from_secs(1), answer).await {
        Ok(joined) => joined?,
        Err(_) => anyhow::bail!("no answer within {PING_TIMEOUT:?}"),
    }
}

/// One line per configured mailbox failing for too long.
fn failing_mailboxes(app: &App, states: &[mailboxes::MailboxState], now: i64) -> Vec<String> {
    app.settings
        .mailboxes
        .iter()
        .filter_map(|m| {
            let name = m.display_name();
            let state = states.iter().find(|s| s.name == name)?;
            let (Some(since), Some(error)) = (state.failing_since, &state.last_error) else { return None };
            let limit = m.poll_seconds.saturating_mul(FAILED_POLLS_BEFORE_UNREADY) as i64;
            (now - since > limit).then(|| format!("mailbox {name}: failing for {} s: {error}", now - since))
        })
        .collect()
}

/// At each scrape of `/metrics`: sets the per-mailbox gauges and the quarantine size from the
/// database, and reads the outbox's state (its gauges are set by `web::metrics`).
pub fn scrape(conn: &mut store::Conn) -> anyhow::Result<store::outbox::OutboxStatus> {
    let now = store::now();
    record_gauges(conn, now)?;
    store::outbox::status(conn, now)
}

fn record_gauges(conn: &mut store::Conn, now: i64) -> anyhow::Result<()> {
    let states = mailboxes::all(conn)?;
    for s in &states {
        // A mailbox whose quarantine emptied reads 0, not its last count.
        metrics::gauge!("guichet_quarantine_size", "mailbox" => s.name.clone()).set(0.0);
    }
    for s in states {
        let label = s.name.clone();
        if let Some(t) = s.last_success {
            metrics::gauge!("guichet_mailbox_last_success_timestamp_seconds", "mailbox" => label.clone()).set(t as f64);
        }
        let failing = s.failing_since.filter(|_| s.last_error.is_some()).map_or(0, |since| (now - since).max(0));
        metrics::gauge!("guichet_mailbox_failing", "mailbox" => label.clone()).set(if s.last_error.is_some() {
            1.0
        } else {
            0.0
        });
        metrics::gauge!("guichet_mailbox_failing_seconds", "mailbox" => label.clone()).set(failing as f64);
        metrics::gauge!("guichet_mailbox_ingested", "mailbox" => label).set(s.ingested as f64);
    }
    let quarantined: Vec<(String, i64)> = raw_mails::table
        .filter(raw_mails::state.eq("quarantined"))
        .group_by(raw_mails::source)
        .select((raw_mails::source, diesel::dsl::count_star()))
        .load(conn)?;
    let mut total = 0;
    for (source, count) in quarantined {
        total += count;
        metrics::gauge!("guichet_quarantine_size", "mailbox" => source).set(count as f64);
    }
    metrics::gauge!("guichet_quarantine_total").set(total as f64);
    Ok(())
}
