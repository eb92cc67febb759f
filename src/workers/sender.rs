//! The outbox worker: claims due notifications, sends them by SMTP (or writes .eml files),
//! retries temporary failures with exponential backoff and jitter, and records permanent
//! refusals on the ticket. Each mail is composed from its description just before it is sent
//! (`notify::pending`); its Message-ID and content were fixed when it was queued, so a retry sends
//! the same mail.
//!
//! Outages: an SMTP attempt has a deadline (a server that accepts the connection and then stays
//! silent would otherwise hold the worker forever), and the outcome of a send is written down
//! even if the database refuses writes for a while (forgetting an accepted mail would send it
//! again when its claim expires).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::app::{App, Shutdown};
use crate::config::{Smtp, SmtpTransport, TlsMode};
use crate::desk::actions::record_event;
use crate::domain::Event;
use crate::notify::pending::{self, CannotCompose};
use crate::notify::render::Renderer;
use crate::oauth::{TokenError, TokenSource};
use crate::store::outbox::{self, OutboxRow};
use crate::store::{self, Store, tickets};

/// Notifications claimed per round, and sent concurrently at most (each SMTP message waits
/// ~40 ms on lettre 0.11's Nagle delay, so throughput comes from concurrency: BENCHMARKS.md).
const CLAIM: i64 = 64;
const CONCURRENCY: usize = 32;
/// A claim lasts this long: a daemon that dies mid-send frees its rows after it.
const LEASE_SECONDS: i64 = 60;
const MAX_RETRY_DELAY: i64 = 3600;
/// The upload allowance of an SMTP attempt's deadline: one more second per this many bytes.
const UPLOAD_BYTES_PER_SECOND: usize = 64 * 1024;
/// While the database refuses to record sent mail, retry at most this far apart.
const MAX_RECORD_DELAY: Duration = Duration::from_secs(30);
/// How often an idle sender looks for mail queued by other processes (SPEC §11: a customer's
/// acknowledgement leaves within a blink, also when `guichet ingest` stored the mail).
const PROBE: Duration = Duration::from_millis(100);
/// After a round that failed (the database refused the claim), the next one is this far away.
const ROUND_RETRY: Duration = Duration::from_secs(1);

pub enum Transport {
    Smtp(Box<SmtpPool>),
    /// Each mail a file of `dir`, written one at a time: concurrent writers creating files in
    /// one directory spin on its lock (a third of the daemon's CPU during a drain with two
    /// mailboxes: BENCHMARKS.md, "Ingest", tenth round); one writer kept up with those drains.
    File {
        dir: PathBuf,
        one_at_a_time: tokio::sync::Mutex<()>,
    },
}

/// lettre's pooled SMTP transport, replaced as a whole when an attempt is abandoned at its
/// deadline: that attempt's connection may be mid-dialogue, and lettre would otherwise hand it
/// back to the pool, where the next mail would read the late answers meant for the last one.
pub struct SmtpPool {
    settings: Smtp,
    /// With `auth = "xoauth2"`: where access tokens come from (SPEC §9).
    tokens: Option<TokenSource>,
    /// A generation number (so that concurrent timeouts replace it once), the transport, and the
    /// access token it logs in with (a new token means a new transport: lettre keeps credentials
    /// for the life of its pool).
    current: Mutex<(u64, AsyncSmtpTransport<Tokio1Executor>, Option<String>)>,
}

/// How one attempt ended.
enum Attempt {
    Sent,
    Temporary(String),
    Permanent(String),
}

impl Transport {
    /// Mail written as files of `dir` (which exists).
    pub fn file(dir: PathBuf) -> Transport {
        Transport::File { dir, one_at_a_time: Default::default() }
    }

    pub fn from_settings(smtp: &Smtp, store: &Store) -> anyhow::Result<Transport> {
        if smtp.transport == SmtpTransport::File {
            let dir = smtp.dir.clone().context("smtp.dir is required with transport = \"file\"")?;
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            return Ok(Transport::file(dir));
        }
        let transport = smtp_transport(smtp, None)?;
        let tokens = smtp.oauth.clone().map(|config| TokenSource::new(config, store.clone())).transpose()?;
        Ok(Transport::Smtp(Box::new(SmtpPool {
            settings: smtp.clone(),
            tokens,
            current: Mutex::new((0, transport, None)),
        })))
    }

    async fn send(&self, row: &OutboxRow) -> Attempt {
        match self {
            Transport::File { dir, one_at_a_time } => {
                let name = format!("{:06}-{}.eml", row.id, row.event);
                let tmp = dir.join(format!(".{name}.tmp"));
                let _turn = one_at_a_time.lock().await;
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
                let (generation, transport) = match smtp.with_fresh_token().await {
                    Ok(current) => current,
                    Err(e) => return Attempt::Temporary(e.to_string()),
                };
                let deadline = attempt_deadline(smtp.settings.timeout_seconds, row.data.len());
                match tokio::time::timeout(deadline, transport.send_raw(&envelope, &row.data)).await {
                    Ok(Ok(_)) => Attempt::Sent,
                    // The token was refused (revoked, expired early): not the mail's fault.
                    Ok(Err(e)) if smtp.tokens.is_some() && is_auth_refusal(&e) => {
                        if let Some(tokens) = &smtp.tokens {
                            tokens.invalidate().await;
                        }
                        Attempt::Temporary(error_text(&e))
                    }
                    Ok(Err(e)) if e.is_permanent() => Attempt::Permanent(error_text(&e)),
                    Ok(Err(e)) => Attempt::Temporary(error_text(&e)),
                    Err(_) => {
                        smtp.renew(generation);
                        Attempt::Temporary(format!(
                            "no answer from the SMTP server {}:{} within {} s",
                            smtp.settings.host,
                            smtp.settings.port,
                            deadline.as_secs()
                        ))
                    }
                }
            }
        }
    }
}

impl SmtpPool {
    fn current(&self) -> (u64, AsyncSmtpTransport<Tokio1Executor>) {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        (current.0, current.1.clone())
    }

    /// The transport to send with; with OAuth, one that logs in with a valid access token.
    async fn with_fresh_token(&self) -> Result<(u64, AsyncSmtpTransport<Tokio1Executor>), TokenError> {
        let Some(tokens) = &self.tokens else { return Ok(self.current()) };
        let token = tokens.access_token().await?;
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.2.as_deref() != Some(token.as_str()) {
            let fresh = smtp_transport(&self.settings, Some(&token))?;
            let old = std::mem::replace(&mut current.1, fresh);
            current.0 += 1;
            current.2 = Some(token);
            tokio::spawn(async move { old.shutdown().await });
        }
        Ok((current.0, current.1.clone()))
    }

    /// Replaces the transport of `generation` (unless another abandoned attempt already did) and
    /// closes its pooled connections.
    fn renew(&self, generation: u64) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.0 != generation {
            return;
        }
        match smtp_transport(&self.settings, current.2.as_deref()) {
            Ok(fresh) => {
                let old = std::mem::replace(&mut current.1, fresh);
                current.0 += 1;
                tokio::spawn(async move { old.shutdown().await });
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot renew the SMTP transport"),
        }
    }
}

/// 530/534/535: the server did not take our credentials.
fn is_auth_refusal(e: &lettre::transport::smtp::Error) -> bool {
    e.status().is_some_and(|code| matches!(u16::from(code), 530 | 534 | 535))
}

/// A transport logging in with the password, or with `token` by XOAUTH2 (lettre's only OAuth
/// mechanism).
pub(crate) fn smtp_transport(smtp: &Smtp, token: Option<&str>) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let tls = match smtp.tls {
        TlsMode::None => Tls::None,
        TlsMode::Starttls => Tls::Required(tls_parameters(smtp)?),
        TlsMode::Tls => Tls::Wrapper(tls_parameters(smtp)?),
    };
    // lettre's timeout bounds the TCP connection only; `attempt_deadline` bounds the rest.
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
        .port(smtp.port)
        .tls(tls)
        .timeout(Some(Duration::from_secs(smtp.timeout_seconds)));
    if let (Some(user), Some(token)) = (&smtp.username, token) {
        builder = builder
            .credentials(Credentials::new(user.clone(), token.to_string()))
            .authentication(vec![Mechanism::Xoauth2]);
    } else if let (Some(user), Some(pass)) = (&smtp.username, &smtp.password) {
        builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
    }
    Ok(builder.build())
}

/// The SMTP server's name and whom to trust for it: the system's store and `ca_file` (`tls`).
fn tls_parameters(smtp: &Smtp) -> anyhow::Result<TlsParameters> {
    use lettre::transport::smtp::client::{Certificate, CertificateStore};
    let system = crate::tls::system_roots();
    // Without a system store, lettre's default is Mozilla's roots (compiled in).
    let store = if system.is_empty() { CertificateStore::Default } else { CertificateStore::None };
    let mut builder = TlsParameters::builder(smtp.host.clone()).certificate_store(store);
    for der in crate::tls::roots(smtp.ca_file.as_deref())? {
        builder = builder.add_root_certificate(Certificate::from_der(der.to_vec())?);
    }
    Ok(builder.build_rustls()?)
}

/// How long one SMTP attempt may take in all: `timeout_seconds` of waiting on the server, plus
/// a second per 64 KiB of mail for the upload.
fn attempt_deadline(timeout_seconds: u64, bytes: usize) -> Duration {
    Duration::from_secs(timeout_seconds) + Duration::from_secs((bytes / UPLOAD_BYTES_PER_SECOND) as u64)
}

pub(crate) fn error_text(e: &lettre::transport::smtp::Error) -> String {
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
    let transport = Arc::new(transport);
    'rounds: loop {
        if shutdown.is_set() {
            break;
        }
        let sent = match send_due(&app, &transport, &mut shutdown).await {
            Ok(n) => n,
            Err(e) => {
                // The database is likely down: try again in a second, not at the next probe.
                tracing::warn!(error = format!("{e:#}"), "outbox round failed");
                if shutdown.sleep(ROUND_RETRY).await {
                    break;
                }
                continue;
            }
        };
        // Idle: a commit of this process (a mail ingested, a link asked for) wakes it at once; a
        // read of the outbox's index every PROBE catches what other processes queued (`guichet
        // ingest` run by the MTA, other daemons) and retries coming due, without a write.
        if sent == 0 {
            loop {
                tokio::select! {
                    _ = app.store.mail_queued() => break,
                    stop = shutdown.sleep(PROBE) => if stop { break 'rounds },
                }
                let now = store::now();
                match app.store.run(move |s| s.read(|c| outbox::any_due(c, now))).await {
                    Ok(false) => continue,
                    // Due mail, or an error the claim will report.
                    Ok(true) | Err(_) => break,
                }
            }
        }
    }
    tracing::info!("outbox sender stopped");
}

/// One round: claim, send, record. Returns how many were attempted.
///
/// Each result is recorded as soon as it is known (with any others finished meanwhile), not at
/// the end of the round: a daemon killed mid-round then repeats at most the mails whose
/// acceptance it had not yet written down, instead of every mail the round had already sent.
/// The sends run in a task of their own, so that a slow or retried record never stalls the SMTP
/// dialogues in flight (nor lets their deadlines pass while they are not polled).
pub async fn send_due(app: &App, transport: &Arc<Transport>, shutdown: &mut Shutdown) -> anyhow::Result<usize> {
    let rows = app.store.run(|s| s.write(|c| outbox::claim_due(c, store::now(), CLAIM, LEASE_SECONDS))).await?;
    let count = rows.len();
    if count == 0 {
        return Ok(0);
    }
    // Each mail is composed just before it is sent, so the first leaves without waiting for the
    // whole claim to be composed (SPEC §11: a login link waits for no backlog).
    let renderer = app.renderer.clone();
    let store = app.store.clone();
    let (finished, mut results) = tokio::sync::mpsc::unbounded_channel();
    let transport = transport.clone();
    let sending = tokio::spawn(
        futures::stream::iter(rows)
            .map(move |row| {
                let (t, store, renderer) = (transport.clone(), store.clone(), renderer.clone());
                async move {
                    let start = Instant::now();
                    let id = row.id;
                    let composed = store.run(move |s| compose(s, &renderer, row)).await;
                    let (row, attempt) = match composed {
                        Ok((row, Ok(()))) => {
                            let attempt = t.send(&row).await;
                            (row, attempt)
                        }
                        Ok((row, Err(CannotCompose(e)))) => {
                            (row, Attempt::Permanent(format!("cannot compose the mail: {e}")))
                        }
                        // The database did not answer: the claim is given back for a later round.
                        Err(e) => {
                            tracing::warn!(error = format!("{e:#}"), id, "cannot read a notification to compose it");
                            return None;
                        }
                    };
                    Some((row, attempt, start.elapsed()))
                }
            })
            .buffer_unordered(CONCURRENCY)
            .for_each(move |result| {
                if let Some(result) = result {
                    let _ = finished.send(result);
                }
                std::future::ready(())
            }),
    );
    // Given up only at shutdown: then the sends still in flight stop too.
    let _stop_sending = AbortOnDrop(sending);
    while let Some(first) = results.recv().await {
        let mut done = vec![first];
        while let Ok(more) = results.try_recv() {
            done.push(more);
        }
        record(app, done, shutdown).await?;
    }
    Ok(count)
}

/// Gives a claimed row its mail's bytes (`notify::pending`). A database error is the round's
/// problem (the row is tried again once its claim expires); a mail that cannot be composed fails alone.
fn compose(
    store: &Store,
    renderer: &Renderer,
    mut row: OutboxRow,
) -> anyhow::Result<(OutboxRow, Result<(), CannotCompose>)> {
    let composed = pending::mail_of(&mut pending::files_of(store), renderer, &row)?.map(|bytes| row.data = bytes);
    Ok((row, composed))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Writes down how attempts ended. While the database refuses the write (disk full, a restart,
/// a lock held too long) it is retried rather than forgotten: those mails are already accepted
/// or refused, and a forgotten acceptance is sent again once the claim expires. Only shutdown
/// gives up (the claim's expiry then repeats them, as after a crash; SPEC §4).
async fn record(app: &App, done: Vec<(OutboxRow, Attempt, Duration)>, shutdown: &mut Shutdown) -> anyhow::Result<()> {
    let done = Arc::new(done);
    let mut delay = Duration::from_millis(500);
    loop {
        let (app2, results) = (app.clone(), done.clone());
        match app.store.run(move |s| s.write(|c| record_attempts(c, &app2, &results))).await {
            Ok(()) => break,
            Err(e) if shutdown.is_set() => return Err(e.context("the outcome of sent notifications is not recorded")),
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    notifications = done.len(),
                    retry_in = ?delay,
                    "cannot record the outcome of sent notifications"
                );
                shutdown.sleep(delay).await;
                delay = (delay * 2).min(MAX_RECORD_DELAY);
            }
        }
    }
    for (row, attempt, took) in done.iter() {
        metrics::histogram!("guichet_smtp_send_seconds").record(took.as_secs_f64());
        match attempt {
            Attempt::Sent => metrics::counter!("guichet_notifications_sent_total").increment(1),
            Attempt::Temporary(err) => {
                tracing::warn!(id = row.id, recipient = %row.recipient, error = %err, "notification delayed");
            }
            Attempt::Permanent(err) => {
                metrics::counter!("guichet_notifications_failed_total").increment(1);
                tracing::warn!(id = row.id, recipient = %row.recipient, error = %err, "notification refused");
            }
        }
    }
    Ok(())
}

fn record_attempts(c: &mut store::Conn, app: &App, results: &[(OutboxRow, Attempt, Duration)]) -> anyhow::Result<()> {
    let now = store::now();
    let sent: Vec<i64> =
        results.iter().filter(|(_, attempt, _)| matches!(attempt, Attempt::Sent)).map(|(row, _, _)| row.id).collect();
    outbox::mark_sent(c, &sent, now)?;
    for (row, attempt, _) in results {
        match attempt {
            Attempt::Sent => {}
            Attempt::Temporary(err) => outbox::mark_retry(c, row.id, err, now + retry_delay(row.attempts))?,
            Attempt::Permanent(err) => {
                outbox::mark_failed(c, row.id, err)?;
                if let Some(n) = row.ticket_number.filter(|n| *n > 0)
                    && tickets::get_ticket(c, n)?.is_some()
                {
                    let event = Event::NotificationRefused { recipient: row.recipient.clone(), error: err.clone() };
                    record_event(c, &app.desk, n, &app.desk.helpdesk, event, now)?;
                }
            }
        }
    }
    Ok(())
}
