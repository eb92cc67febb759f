//! One IMAP mailbox's ingest loop: connect (TLS, STARTTLS or plain on loopback), take the
//! mailbox's lease, fetch unprocessed mail oldest first in size-bounded batches, ingest each batch
//! in one transaction, then move (or flag) what was committed; wait with IDLE or a poll interval;
//! back off exponentially on errors. `\Seen` is never the source of truth.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_imap::Session;
use futures::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::app::{App, PreparedBatch, Shutdown};
use crate::config::{FirstRun, MailboxSettings, TlsMode};
use crate::desk::actions::Mailing;
use crate::oauth::{self, TokenSource};
use crate::store::{self, mailboxes};

/// Bytes fetched per round trip at most (memory stays bounded whatever the mailbox holds).
const BATCH_BYTES: u64 = 32 * 1024 * 1024;
/// How long a daemon's hold on a mailbox lasts without renewal (another daemon takes over after).
const LEASE_SECONDS: i64 = 10;
const MAX_BACKOFF: Duration = Duration::from_secs(300);

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> Stream for T {}

type ImapSession = Session<Box<dyn Stream>>;

/// Runs until shutdown. Errors are logged, shown in `status`, and retried with capped backoff.
pub async fn run_mailbox(app: App, mailbox: MailboxSettings, holder: String, mut shutdown: Shutdown) {
    let name = mailbox.display_name();
    let mut backoff = Duration::from_secs(1);
    let tokens = match mailbox.oauth.clone().map(|config| TokenSource::new(config, app.store.clone())).transpose() {
        Ok(tokens) => tokens,
        Err(e) => {
            tracing::error!(mailbox = %name, error = format!("{e:#}"), "mailbox not started");
            return;
        }
    };
    while !shutdown.is_set() {
        match session_loop(&app, &mailbox, tokens.as_ref(), &name, &holder, &mut backoff, &mut shutdown).await {
            Ok(()) => break,
            Err(e) => {
                let msg = format!("{e:#}");
                tracing::warn!(mailbox = %name, error = %msg, retry_in = ?backoff, "mailbox error");
                metrics::counter!("guichet_mailbox_errors_total", "mailbox" => name.clone()).increment(1);
                let n = name.clone();
                let _ = app.store.run(move |s| s.write(|c| mailboxes::record_error(c, &n, store::now(), &msg))).await;
                if shutdown.sleep(backoff).await {
                    break;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    let n = name.clone();
    let _ = app.store.run(move |s| s.write(|c| mailboxes::release_lease(c, &n, &holder))).await;
    tracing::info!(mailbox = %name, "mailbox loop stopped");
}

async fn take_lease(app: &App, name: &str, holder: &str) -> anyhow::Result<bool> {
    let (n, h) = (name.to_string(), holder.to_string());
    app.store
        .run(move |s| {
            s.write(|c| {
                let now = store::now();
                if mailboxes::take_lease(c, &n, &h, now, LEASE_SECONDS)? {
                    return Ok(true);
                }
                // A daemon of this machine that was killed (SIGKILL, OOM, power cut) cannot release
                // its lease: take over at once rather than leave the mailbox unread until it expires.
                match mailboxes::get(c, &n)?.lease_holder {
                    Some(old) if is_dead_holder(&old, &h) => {
                        tracing::info!(mailbox = %n, previous = %old, "taking over the lease of a daemon that died");
                        mailboxes::take_over_lease(c, &n, &old, &h, now, LEASE_SECONDS)
                    }
                    _ => Ok(false),
                }
            })
        })
        .await
}

/// The name under which this process holds mailbox leases: `host-boot-pid-random`, where `boot`
/// tells this boot of this machine from any other (containers on one host share it, but not
/// their host names).
pub fn lease_holder() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let host = if host.is_empty() { "localhost".to_string() } else { host };
    format!("{host}-{}-{}-{:08x}", boot_id(), std::process::id(), rand::random::<u32>())
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|b| b.trim().chars().filter(char::is_ascii_hexdigit).take(8).collect())
        .unwrap_or_default()
}

/// Whether `holder` names a process of this very machine and boot that no longer runs. Anything
/// else (another machine, another container, an unreadable name, no `/proc`) counts as alive:
/// its lease then simply expires.
fn is_dead_holder(holder: &str, ours: &str) -> bool {
    fn parts(holder: &str) -> Option<(&str, &str, u32)> {
        let mut it = holder.rsplitn(4, '-');
        let _random = it.next()?;
        let pid = it.next()?.parse().ok()?;
        let boot = it.next()?;
        Some((it.next()?, boot, pid))
    }
    let (Some((host, boot, pid)), Some((our_host, our_boot, our_pid))) = (parts(holder), parts(ours)) else {
        return false;
    };
    if holder == ours || host != our_host || boot != our_boot || boot.is_empty() {
        return false;
    }
    if !std::path::Path::new("/proc/self").exists() {
        return false;
    }
    // Our own pid under another name: its previous owner is gone.
    pid == our_pid || !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// One connected session; returns Ok only on shutdown.
async fn session_loop(
    app: &App,
    mailbox: &MailboxSettings,
    tokens: Option<&TokenSource>,
    name: &str,
    holder: &str,
    backoff: &mut Duration,
    shutdown: &mut Shutdown,
) -> anyhow::Result<()> {
    // Wait for the lease before connecting: another daemon reads this mailbox meanwhile.
    while !take_lease(app, name, holder).await? {
        if shutdown.sleep(Duration::from_secs(2)).await {
            return Ok(());
        }
    }
    let mut session = connect(mailbox, tokens).await?;
    let caps = session.capabilities().await.context("CAPABILITY")?;
    let can_idle = caps.has_str("IDLE");
    let can_move = caps.has_str("MOVE");
    if !mailbox.processed_folder.is_empty() {
        // Created if missing; an "already exists" answer is fine.
        let _ = session.create(&mailbox.processed_folder).await;
    }
    loop {
        if shutdown.is_set() {
            let _ = session.logout().await;
            return Ok(());
        }
        if !take_lease(app, name, holder).await? {
            let _ = session.logout().await;
            bail!("lost the lease on this mailbox to another daemon");
        }
        let drained = sync_once(app, mailbox, name, &mut session, can_move, holder, shutdown).await?;
        // A round went through: the next outage starts again from the shortest wait, rather than
        // where the previous ones left it (it would otherwise climb to the cap for good).
        *backoff = Duration::from_secs(1);
        if !drained {
            continue; // more to fetch right away (a backlog larger than one batch)
        }
        session = wait_for_mail(session, mailbox, can_idle, shutdown).await?;
    }
}

/// Connects and logs in according to the mailbox's TLS mode: with its password, or with an
/// OAuth access token from `tokens` (`auth = "xoauth2"` / `"oauthbearer"`).
pub async fn connect(m: &MailboxSettings, tokens: Option<&TokenSource>) -> anyhow::Result<ImapSession> {
    let tcp = tokio::time::timeout(Duration::from_secs(20), TcpStream::connect((m.host.as_str(), m.port)))
        .await
        .context("IMAP connect timed out")?
        .with_context(|| format!("cannot connect to {}:{}", m.host, m.port))?;
    tcp.set_nodelay(true).ok();
    let stream: Box<dyn Stream> = match m.tls {
        TlsMode::None => Box::new(tcp),
        TlsMode::Tls => Box::new(tls_wrap(tcp, &m.host, m.ca_file.as_deref()).await?),
        TlsMode::Starttls => {
            let mut client = async_imap::Client::new(tcp);
            client.read_response().await.context("IMAP greeting")?;
            client.run_command_and_check_ok("STARTTLS", None).await.context("STARTTLS")?;
            Box::new(tls_wrap(client.into_inner(), &m.host, m.ca_file.as_deref()).await?)
        }
    };
    let mut client = async_imap::Client::new(stream);
    if m.tls != TlsMode::Starttls {
        client.read_response().await.context("IMAP greeting")?;
    }
    let Some(tokens) = tokens else {
        return client.login(&m.username, &m.password).await.map_err(|(e, _)| anyhow::anyhow!("IMAP login: {e}"));
    };
    let token = tokens.access_token().await?;
    let method = tokens.config().method;
    let sasl = Sasl { response: Some(oauth::sasl_response(method, &m.username, &token, &m.host, m.port)) };
    match client.authenticate(method.sasl_name(), sasl).await {
        Ok(session) => Ok(session),
        Err((e, _)) => {
            // Revoked or expired early: the next attempt (after the backoff) asks for a new token.
            tokens.invalidate().await;
            bail!("IMAP AUTHENTICATE {} refused for {}: {e}", method.sasl_name(), m.username)
        }
    }
}

/// One SASL exchange: the initial response, then an empty answer to the server's error
/// challenge (XOAUTH2 and OAUTHBEARER send their JSON error as a challenge before `NO`).
struct Sasl {
    response: Option<String>,
}

impl async_imap::Authenticator for Sasl {
    type Response = String;

    fn process(&mut self, _challenge: &[u8]) -> String {
        self.response.take().unwrap_or_default()
    }
}

async fn tls_wrap(
    tcp: TcpStream,
    host: &str,
    ca_file: Option<&std::path::Path>,
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let connector = tokio_rustls::TlsConnector::from(crate::tls::client_config(ca_file)?);
    let server = tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_string()).context("TLS server name")?;
    connector.connect(server, tcp).await.map_err(|e| crate::tls::handshake_error(e, host))
}

/// Fetches and ingests one batch; true when nothing is left to fetch.
async fn sync_once(
    app: &App,
    m: &MailboxSettings,
    name: &str,
    session: &mut ImapSession,
    can_move: bool,
    holder: &str,
    shutdown: &Shutdown,
) -> anyhow::Result<bool> {
    let selected = session.select(&m.folder).await.with_context(|| format!("SELECT {}", m.folder))?;
    let validity = i64::from(selected.uid_validity.unwrap_or(0));
    let n = name.to_string();
    let state = app.store.run(move |s| s.read(|c| mailboxes::get(c, &n))).await?;
    let first_run = state.uidvalidity.is_none();
    if state.uidvalidity != Some(validity) {
        let n = name.to_string();
        app.store.run(move |s| s.write(|c| mailboxes::set_uidvalidity(c, &n, validity))).await?;
    }
    let last_uid = if state.uidvalidity == Some(validity) { state.last_uid } else { 0 };
    let mailing = if first_run && m.on_first_run == FirstRun::Archive { Mailing::Silent } else { Mailing::Send };

    // With a processed folder, everything still in the folder is unprocessed (a mail committed but
    // not yet moved when a daemon died is found again, deduplicated, and moved). Without one, the
    // UID cursor says what is new.
    let query = if m.processed_folder.is_empty() { format!("UID {}:*", last_uid + 1) } else { "ALL".to_string() };
    let mut uids: Vec<u32> = session.uid_search(&query).await.context("UID SEARCH")?.into_iter().collect();
    if m.processed_folder.is_empty() {
        uids.retain(|u| i64::from(*u) > last_uid);
    }
    uids.sort_unstable();
    let n = name.to_string();
    let on_server = i64::from(selected.exists);
    let all_done = uids.is_empty();
    app.store.run(move |s| s.write(|c| mailboxes::record_poll(c, &n, on_server, store::now(), all_done))).await?;
    if uids.is_empty() {
        return Ok(true);
    }

    // Batches follow each other on this connection, each fetched while the one before is being
    // committed (fetching waits on Dovecot and the network, committing on the database) and
    // parsed meanwhile on the other cores: at most two batches are in memory. A batch is marked
    // processed only once committed.
    let mut rest: &[u32] = &uids;
    let mut in_flight: Option<Commit> = None;
    let mut fetched_all = true;
    let mut batches = 0;
    let result: anyhow::Result<()> = async {
        while !rest.is_empty() && batches < BATCHES_PER_ROUND && !shutdown.is_set() {
            let fetching = Instant::now();
            let batch = next_batch(session, rest, m.batch_size as usize).await?;
            let mails = fetch_bodies(session, &batch).await?;
            let fetch_ms = fetching.elapsed().as_millis();
            fetched_all &= mails.len() == batch.len();
            rest = &rest[batch.len()..];
            batches += 1;
            // Parsed while the batch before commits; written only after it (in UID order).
            let parsing = Parsing::start(app, mails);
            tracing::debug!(mailbox = %m.display_name(), count = batch.len(), fetch_ms, "batch fetched");
            // The batch before is moved on the server while this one is written: the writer,
            // the one thread every batch goes through, need not wait for the MOVE.
            let previous = match in_flight.take() {
                Some(previous) => Some(previous.committed().await?),
                None => None,
            };
            in_flight = Some(Commit::start(app, name, holder, parsing, mailing));
            if let Some(previous) = previous {
                previous.mark_processed(session, m, can_move).await?;
            }
        }
        Ok(())
    }
    .await;
    // Whatever happened to the fetch, the batch handed to the database is seen through.
    if let Some(last) = in_flight.take() {
        last.finish(session, m, can_move).await?;
    }
    result?;
    Ok(rest.is_empty() && fetched_all)
}

/// Batches fetched in one round before the mailbox is searched again (and the lease checked).
const BATCHES_PER_ROUND: usize = 64;

/// The next UIDs to fetch: at most `batch_size` mails and BATCH_BYTES (one mail at least).
async fn next_batch(session: &mut ImapSession, uids: &[u32], batch_size: usize) -> anyhow::Result<Vec<u32>> {
    let candidates = &uids[..uids.len().min(batch_size.max(1))];
    let sizes = fetch_sizes(session, candidates).await?;
    let mut batch = Vec::new();
    let mut bytes = 0u64;
    for uid in candidates {
        let size = u64::from(*sizes.get(uid).unwrap_or(&0));
        if !batch.is_empty() && bytes + size > BATCH_BYTES {
            break;
        }
        batch.push(*uid);
        bytes += size;
    }
    Ok(batch)
}

/// A fetched batch being parsed on blocking threads.
struct Parsing {
    uids: Vec<u32>,
    task: tokio::task::JoinHandle<(Vec<Vec<u8>>, PreparedBatch)>,
}

impl Parsing {
    fn start(app: &App, mails: BTreeMap<u32, Vec<u8>>) -> Parsing {
        let uids: Vec<u32> = mails.keys().copied().collect();
        let bodies: Vec<Vec<u8>> = mails.into_values().collect();
        let app = app.clone();
        let task = tokio::task::spawn_blocking(move || {
            let parsing = Instant::now();
            let prepared = app.prepare_batch(&bodies);
            tracing::debug!(count = bodies.len(), parse_ms = parsing.elapsed().as_millis(), "batch parsed");
            (bodies, prepared)
        });
        Parsing { uids, task }
    }
}

/// A parsed batch being written, once parsed, on a blocking thread.
struct Commit {
    uids: Vec<u32>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Commit {
    fn start(app: &App, name: &str, holder: &str, parsing: Parsing, mailing: Mailing) -> Commit {
        let Parsing { uids, task: parsed } = parsing;
        let max_uid = uids.iter().copied().max().map(i64::from).unwrap_or(0);
        let (app, name, holder) = (app.clone(), name.to_string(), holder.to_string());
        let task = tokio::spawn(async move {
            let (bodies, prepared) = parsed.await.context("parsing task panicked")?;
            tokio::task::spawn_blocking(move || {
                let writing = Instant::now();
                // The counters and the lease move in the batch's own transaction: a crash cannot
                // commit the mails without them, and a duplicate (fetched again after a crash
                // between commit and move, or a second copy) was counted when first ingested.
                app.commit_batch_with(&bodies, prepared, &name, mailing, |c, outcomes| {
                    use crate::desk::inbound::Outcome;
                    if !mailboxes::take_lease(c, &name, &holder, store::now(), LEASE_SECONDS)? {
                        bail!("lost the lease on this mailbox to another daemon");
                    }
                    let quarantined = outcomes.iter().filter(|o| matches!(o, Outcome::Quarantined(_))).count() as i64;
                    let duplicates = outcomes.iter().filter(|o| matches!(o, Outcome::Duplicate)).count() as i64;
                    let ingested = outcomes.len() as i64 - quarantined - duplicates;
                    mailboxes::advance(c, &name, max_uid, ingested, quarantined)
                })?;
                // From the wait for the checkpointer's turn to the end of COMMIT.
                tracing::debug!(count = bodies.len(), write_ms = writing.elapsed().as_millis(), "batch written");
                Ok(())
            })
            .await
            .context("ingest task panicked")?
        });
        Commit { uids, task }
    }

    /// Waits for the commit, then — and only then — marks the mails processed on the server.
    async fn finish(self, session: &mut ImapSession, m: &MailboxSettings, can_move: bool) -> anyhow::Result<()> {
        self.committed().await?.mark_processed(session, m, can_move).await
    }

    /// Waits for the commit.
    async fn committed(self) -> anyhow::Result<Committed> {
        let waiting = Instant::now();
        self.task.await.context("ingest task panicked")??;
        tracing::debug!(count = self.uids.len(), wait_ms = waiting.elapsed().as_millis(), "batch committed");
        Ok(Committed { uids: self.uids })
    }
}

/// A batch whose transaction committed: its mails may be marked processed.
struct Committed {
    uids: Vec<u32>,
}

impl Committed {
    async fn mark_processed(
        self,
        session: &mut ImapSession,
        m: &MailboxSettings,
        can_move: bool,
    ) -> anyhow::Result<()> {
        let moving = Instant::now();
        mark_processed(session, m, &self.uids, can_move).await?;
        tracing::debug!(mailbox = %m.display_name(), count = self.uids.len(), move_ms = moving.elapsed().as_millis(), "batch marked processed");
        Ok(())
    }
}

fn uid_set(uids: &[u32]) -> String {
    uids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

async fn fetch_sizes(session: &mut ImapSession, uids: &[u32]) -> anyhow::Result<BTreeMap<u32, u32>> {
    let stream = session.uid_fetch(uid_set(uids), "(UID RFC822.SIZE)").await.context("UID FETCH sizes")?;
    let fetches: Vec<_> = stream.try_collect().await.context("UID FETCH sizes")?;
    Ok(fetches.iter().filter_map(|f| Some((f.uid?, f.size.unwrap_or(0)))).collect())
}

async fn fetch_bodies(session: &mut ImapSession, uids: &[u32]) -> anyhow::Result<BTreeMap<u32, Vec<u8>>> {
    let stream = session.uid_fetch(uid_set(uids), "(UID BODY.PEEK[])").await.context("UID FETCH")?;
    let fetches: Vec<_> = stream.try_collect().await.context("UID FETCH")?;
    Ok(fetches.iter().filter_map(|f| Some((f.uid?, f.body()?.to_vec()))).collect())
}

async fn mark_processed(
    session: &mut ImapSession,
    m: &MailboxSettings,
    uids: &[u32],
    can_move: bool,
) -> anyhow::Result<()> {
    if uids.is_empty() {
        return Ok(());
    }
    let set = uid_set(uids);
    if m.processed_folder.is_empty() {
        let s = session.uid_store(&set, "+FLAGS (\\Seen)").await.context("UID STORE")?;
        let _: Vec<_> = s.try_collect().await.context("UID STORE")?;
    } else if can_move {
        session.uid_mv(&set, &m.processed_folder).await.context("UID MOVE")?;
    } else {
        // No MOVE: copy, flag deleted, expunge just those UIDs (nothing else is ever deleted).
        session.uid_copy(&set, &m.processed_folder).await.context("UID COPY")?;
        let s = session.uid_store(&set, "+FLAGS (\\Deleted)").await.context("UID STORE")?;
        let _: Vec<_> = s.try_collect().await?;
        let s = session.uid_expunge(&set).await.context("UID EXPUNGE")?;
        let _: Vec<_> = s.try_collect().await?;
    }
    Ok(())
}

/// Waits for new mail with IDLE (or sleeps a poll interval), until mail, timeout or shutdown.
async fn wait_for_mail(
    mut session: ImapSession,
    m: &MailboxSettings,
    can_idle: bool,
    shutdown: &mut Shutdown,
) -> anyhow::Result<ImapSession> {
    let poll = Duration::from_secs(m.poll_seconds);
    if !can_idle {
        shutdown.sleep(poll).await;
        return Ok(session);
    }
    // IDLE needs the folder selected; the lease is renewed at least every poll interval.
    let selected = session.select(&m.folder).await.context("SELECT before IDLE")?;
    // IDLE only reports what changes after this SELECT: mail that arrived while the last batch
    // was being fetched and committed is already counted here, and would otherwise wait for the
    // next arrival or the IDLE timeout. With a processed folder, anything left is unprocessed.
    if !m.processed_folder.is_empty() && selected.exists > 0 {
        return Ok(session);
    }
    let mut idle = session.idle();
    idle.init().await.context("IDLE")?;
    let wait = poll.min(Duration::from_secs(LEASE_SECONDS as u64 / 2));
    {
        let (fut, stop) = idle.wait_with_timeout(wait);
        tokio::select! {
            r = fut => { r.context("IDLE wait")?; }
            _ = shutdown.wait() => { drop(stop); }
        }
    }
    let session = idle.done().await.context("IDLE DONE")?;
    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_of_a_dead_process_of_this_machine_can_be_taken_over() {
        let ours = lease_holder();
        let (prefix, _) = ours.rsplit_once('-').unwrap();
        let (machine, _pid) = prefix.rsplit_once('-').unwrap();
        // pid 0 is never a process of ours: /proc/0 does not exist.
        let dead = format!("{machine}-0-0badcafe");
        let same_pid_other_name = format!("{prefix}-0badcafe");
        assert!(is_dead_holder(&dead, &ours));
        assert!(is_dead_holder(&same_pid_other_name, &ours));
        assert!(!is_dead_holder(&ours, &ours));
        assert!(!is_dead_holder(&format!("{machine}-1-0badcafe"), &ours), "pid 1 runs");
        assert!(!is_dead_holder("elsewhere-12345678-0-0badcafe", &ours), "another machine");
        assert!(!is_dead_holder("garbage", &ours));
    }
}
