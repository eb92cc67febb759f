//! The outbox worker: claims due notifications, sends them by SMTP (or writes .eml files),
//! retries temporary failures with exponential backoff and jitter, and records permanent
//! refusals on the ticket. The bytes and Message-ID were fixed when the mail was queued, so a
//! retry sends the very same mail.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{FutureExt, StreamExt};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::app::{App, Shutdown};
use crate::config::{Smtp, SmtpTransport, TlsMode};
use crate::desk::actions::record_event;
use crate::store::outbox::{self, OutboxRow};
use crate::store::{self, tickets};

/// Notifications claimed per round, and sent concurrently at most (each SMTP message waits
/// ~40 ms on lettre 0.11's Nagle delay, so throughput comes from concurrency: BENCHMARKS.md).
const CLAIM: i64 = 64;
const CONCURRENCY: usize = 32;
/// A claim lasts this long: a daemon that dies mid-send frees its rows after it.
const LEASE_SECONDS: i64 = 60;
const MAX_RETRY_DELAY: i64 = 3600;

pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(PathBuf),
}

/// How one attempt ended.
enum Attempt {
    Sent,
    Temporary(String),
    Permanent(String),
}

impl Transport {
    pub fn from_settings(smtp: &Smtp) -> anyhow::Result<Transport> {
        if smtp.transport == SmtpTransport::File {
            let dir = smtp.dir.clone().context("smtp.dir is required with transport = \"file\"")?;
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            return Ok(Transport::File(dir));
        }
        let tls = match smtp.tls {
            TlsMode::None => Tls::None,
            TlsMode::Starttls => Tls::Required(TlsParameters::new(smtp.host.clone())?),
            TlsMode::Tls => Tls::Wrapper(TlsParameters::new(smtp.host.clone())?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            .port(smtp.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(smtp.timeout_seconds)));
        if let (Some(user), Some(pass)) = (&smtp.username, &smtp.password) {
            builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
        }
        Ok(Transport::Smtp(builder.build()))
    }

    async fn send(&self, row: &OutboxRow) -> Attempt {
        match self {
            Transport::File(dir) => {
                let name = format!("{:06}-{}.eml", row.id, row.event);
                let tmp = dir.join(format!(".{name}.tmp"));
                let result = async {
                    tokio::fs::write(&tmp, &row.data).await?;
                    tokio::fs::rename(&tmp, dir.join(&name)).await
                }
                .await;
                match result {
                    Ok(()) => Attempt::Sent,
                    Err(e) => Attempt::Temporary(format!("cannot write {name}: {e}")),
                }
            }
            Transport::Smtp(smtp) => {
                let to = match row.recipient.parse::<Address>() {
                    Ok(a) => a,
                    Err(e) => return Attempt::Permanent(format!("bad recipient: {e}")),
                };
                let from = if row.envelope_from.is_empty() { None } else { row.envelope_from.parse::<Address>().ok() };
                let envelope = match Envelope::new(from, vec![to]) {
                    Ok(e) => e,
                    Err(e) => return Attempt::Permanent(format!("bad envelope: {e}")),
                };
                match smtp.send_raw(&envelope, &row.data).await {
                    Ok(_) => Attempt::Sent,
                    Err(e) if e.is_permanent() => Attempt::Permanent(error_text(&e)),
                    Err(e) => Attempt::Temporary(error_text(&e)),
                }
            }
        }
    }
}

fn error_text(e: &lettre::transport::smtp::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// Exponential backoff with jitter: 5 s, 10 s, 20 s… capped at an hour.
fn retry_delay(attempts: i32) -> i64 {
    let base = 5i64.saturating_mul(1i64 << attempts.clamp(0, 20)).min(MAX_RETRY_DELAY);
    base + rand::random_range(0..=base / 4)
}

/// Runs until shutdown; a claimed batch is finished before exiting.
pub async fn run_sender(app: App, transport: Transport, mut shutdown: Shutdown) {
    let transport = std::sync::Arc::new(transport);
    loop {
        if shutdown.is_set() {
            break;
        }
        let sent = match send_due(&app, &transport).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "outbox round failed");
                0
            }
        };
        if sent == 0 && shutdown.sleep(Duration::from_millis(500)).await {
            break;
        }
    }
    tracing::info!("outbox sender stopped");
}

/// One round: claim, send, record. Returns how many were attempted.
///
/// Each result is recorded as soon as it is known (with any others finished meanwhile), not at
/// the end of the round: a daemon killed mid-round then repeats at most the mails whose
/// acceptance it had not yet written down, instead of every mail the round had already sent.
pub async fn send_due(app: &App, transport: &std::sync::Arc<Transport>) -> anyhow::Result<usize> {
    let rows = app.store.run(|s| s.write(|c| outbox::claim_due(c, store::now(), CLAIM, LEASE_SECONDS))).await?;
    let count = rows.len();
    if count == 0 {
        return Ok(0);
    }
    let mut results = futures::stream::iter(rows)
        .map(|row| {
            let t = transport.clone();
            async move {
                let start = Instant::now();
                let attempt = t.send(&row).await;
                (row, attempt, start.elapsed())
            }
        })
        .buffer_unordered(CONCURRENCY);
    while let Some(first) = results.next().await {
        let mut done = vec![first];
        while let Some(Some(more)) = results.next().now_or_never() {
            done.push(more);
        }
        let app2 = app.clone();
        app.store.run(move |s| s.write(|c| record_attempts(c, &app2, &done))).await?;
    }
    Ok(count)
}

fn record_attempts(c: &mut store::Conn, app: &App, results: &[(OutboxRow, Attempt, Duration)]) -> anyhow::Result<()> {
    let now = store::now();
    for (row, attempt, took) in results {
        metrics::histogram!("guichet_smtp_send_seconds").record(took.as_secs_f64());
        match attempt {
            Attempt::Sent => {
                metrics::counter!("guichet_notifications_sent_total").increment(1);
                outbox::mark_sent(c, row.id, now)?;
            }
            Attempt::Temporary(err) => {
                tracing::warn!(id = row.id, recipient = %row.recipient, error = %err, "notification delayed");
                outbox::mark_retry(c, row.id, err, now + retry_delay(row.attempts))?;
            }
            Attempt::Permanent(err) => {
                metrics::counter!("guichet_notifications_failed_total").increment(1);
                tracing::warn!(id = row.id, recipient = %row.recipient, error = %err, "notification refused");
                outbox::mark_failed(c, row.id, err)?;
                if let Some(n) = row.ticket_number.filter(|n| *n > 0)
                    && tickets::get_ticket(c, n)?.is_some()
                {
                    let text = if app.desk.lang() == "en" {
                        format!("Notification to {} refused: {err}", row.recipient)
                    } else {
                        format!("Notification à {} refusée : {err}", row.recipient)
                    };
                    record_event(c, n, &app.desk.helpdesk, &text, now)?;
                }
            }
        }
    }
    Ok(())
}
