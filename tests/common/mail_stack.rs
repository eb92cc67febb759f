//! A real mail stack for integration tests: a private Dovecot (IMAP, LMTP, Sieve) and a private
//! Postfix (SMTP) on loopback, in a temporary directory, on free ports (`scripts/mail-stack`).
//!
//! ```ignore
//! mod common;
//! use common::mail_stack::MailStack;
//!
//! #[tokio::test]
//! async fn example() {
//!     let stack = MailStack::start(); // ~0.3–0.5 s; stopped when dropped
//!     stack.smtp_send("client@customer.example", &["support@example.com"], b"Subject: hi\n\nhello\n")
//!         .await.unwrap();
//!     let mails = stack.wait_for_messages("support@example.com", "INBOX", 1, MailStack::WAIT).await;
//! }
//! ```
//!
//! Conventions:
//! - every user exists and logs in with [`MailStack::PASSWORD`]; a user is a full address
//!   (`support@example.com`), lower-cased by Dovecot;
//! - Postfix accepts any local part in [`MailStack::DOMAINS`] and delivers it to the user's INBOX;
//!   other domains are refused at RCPT (554 relay access denied);
//! - [`MailStack::BOUNCE`] (`bounce@` in any domain) is refused at RCPT with 550,
//!   [`MailStack::TEMPFAIL`] (`tempfail@` in any domain) with 450, and
//!   [`MailStack::UNDELIVERABLE`] is accepted and then bounced: a DSN goes back to the sender;
//! - deferred mail (Dovecot stopped) is retried 2–6 s later, or at once after
//!   [`MailStack::flush_queue`];
//! - the helpers open one IMAP connection per call (`imap_session` gives a session to keep);
//! - IMAP also takes AUTHENTICATE XOAUTH2 / OAUTHBEARER, each token checked by the identity
//!   provider given to [`MailStack::set_oauth`] (`common::identity` plays one); so does SMTP AUTH
//!   on [`MailStack::submission_port`] (Postfix asks Dovecot);
//! - Sieve runs at delivery: [`MailStack::enable_vacation`] makes a user answer automatically,
//!   through this stack's Postfix (answers only mail whose To/Cc names the user);
//! - messages given to the helpers may use LF line ends: they are sent as CRLF.
//!
//! Needs root and Dovecot + Postfix (`scripts/install-test-deps`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use lettre::address::{Address, Envelope};
use lettre::transport::smtp::response::Response;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::net::TcpStream;

/// A logged-in IMAP session on the stack (plain TCP).
pub type ImapSession = async_imap::Session<TcpStream>;

/// A running Dovecot + Postfix pair; stopped (and its directory removed) on drop.
pub struct MailStack {
    /// Holds everything: configs, mailboxes (`mail/<domain>/<local part>/Maildir`), queues, logs.
    pub dir: tempfile::TempDir,
    pub imap_port: u16,
    pub smtp_port: u16,
    /// Dovecot's LMTP (Postfix delivers there); a test may deliver directly too.
    pub lmtp_port: u16,
    /// Dovecot's implicit TLS port (IMAPS); IMAP_PORT offers STARTTLS, and so does Postfix.
    pub imaps_port: u16,
    /// Postfix with SMTP AUTH checked by Dovecot (PLAIN, LOGIN, XOAUTH2, OAUTHBEARER); no TLS
    /// required. `smtp_port` offers no AUTH.
    pub submission_port: u16,
    /// The private CA (PEM) that signed both servers' certificate (for localhost and 127.0.0.1).
    pub ca_file: PathBuf,
    /// How long `start` took.
    pub started_in: Duration,
}

impl MailStack {
    /// The password of every user.
    pub const PASSWORD: &'static str = "secret";
    /// Where both servers listen.
    pub const HOST: &'static str = "127.0.0.1";
    /// Domains whose every address is accepted by Postfix and has a mailbox in Dovecot.
    pub const DOMAINS: &'static [&'static str] = &[
        "example.com",
        "support.example.com",
        "customer.example",
        "other.example",
        "cisa.example",
        "example.org",
        "example.net",
    ];
    /// Refused at RCPT with `550 5.1.1` (so is `bounce@` in any domain).
    pub const BOUNCE: &'static str = "bounce@customer.example";
    /// Refused at RCPT with `450 4.2.1` (so is `tempfail@` in any domain).
    pub const TEMPFAIL: &'static str = "tempfail@customer.example";
    /// Accepted at RCPT, then bounced by Postfix: a DSN from MAILER-DAEMON reaches the sender.
    pub const UNDELIVERABLE: &'static str = "undeliverable@customer.example";
    /// A generous default for [`MailStack::wait_for_messages`].
    pub const WAIT: Duration = Duration::from_secs(20);

    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/mail-stack")
    }

    /// Starts a fresh stack in a new temporary directory. Panics (with the reason) on failure.
    pub fn start() -> MailStack {
        let began = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("guichet-mail-")
            .tempdir()
            .expect("create a temporary directory for the mail stack");
        let out = Command::new(Self::script())
            .arg("start")
            .arg(dir.path())
            // If this test process dies without dropping the stack, the stack stops itself.
            .env("MAIL_STACK_OWNER_PID", std::process::id().to_string())
            .env("MAIL_STACK_PASSWORD", Self::PASSWORD)
            .output()
            .expect("run scripts/mail-stack (is bash there?)");
        if !out.status.success() {
            panic!(
                "scripts/mail-stack start failed ({}): {}{}\n(the mail stack needs root and \
                 Dovecot + Postfix: run scripts/install-test-deps)",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let env = String::from_utf8_lossy(&out.stdout).into_owned();
        let port = |name: &str| -> u16 {
            env.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("scripts/mail-stack printed no {name}: {env}"))
        };
        MailStack {
            imap_port: port("IMAP_PORT"),
            smtp_port: port("SMTP_PORT"),
            lmtp_port: port("LMTP_PORT"),
            imaps_port: port("IMAPS_PORT"),
            submission_port: port("SUBMISSION_PORT"),
            ca_file: env
                .lines()
                .find_map(|l| l.strip_prefix("CA_FILE="))
                .map(PathBuf::from)
                .unwrap_or_else(|| panic!("scripts/mail-stack printed no CA_FILE: {env}")),
            dir,
            started_in: began.elapsed(),
        }
    }

    fn run(&self, action: &str) {
        let out =
            Command::new(Self::script()).arg(action).arg(self.dir.path()).output().expect("run scripts/mail-stack");
        if !out.status.success() {
            panic!(
                "scripts/mail-stack {action} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Dovecot checks XOAUTH2/OAUTHBEARER tokens at `url` from now on (RFC 7662 introspection:
    /// it POSTs `token=…` and wants `{"active": true, "username": "<user>"}`); see
    /// `common::identity`. Until called, every token is refused (plaintext logins always work).
    pub fn set_oauth(&self, url: &str) {
        let out = Command::new(Self::script())
            .arg("set-oauth")
            .arg(self.dir.path())
            .arg(url)
            .output()
            .expect("run scripts/mail-stack");
        assert!(out.status.success(), "scripts/mail-stack set-oauth: {}", String::from_utf8_lossy(&out.stderr));
        // The reload replaces Dovecot's auth process; give the new one a moment.
        std::thread::sleep(Duration::from_millis(500));
    }

    /// From now on Postfix hands mail for `address` to `guichet -c config ingest` through its
    /// `pipe` transport, run as user `nobody` (README's master.cf example); `config` and the
    /// database must be readable and writable by that user.
    pub fn pipe_to_guichet(&self, guichet: &Path, config: &Path, address: &str) {
        let out = Command::new(Self::script())
            .arg("pipe-to-guichet")
            .arg(self.dir.path())
            .arg(guichet)
            .arg(config)
            .arg(address)
            .output()
            .expect("run scripts/mail-stack");
        assert!(out.status.success(), "scripts/mail-stack pipe-to-guichet: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Closes every IMAP session of `user` (`doveadm kick`): clients must log in again.
    pub fn kick(&self, user: &str) {
        let conf = self.dir.path().join("dovecot.conf");
        let _ = Command::new("doveadm").arg("-c").arg(conf).args(["kick", user]).output();
    }

    /// Stops Postfix only: SMTP connections are refused until [`MailStack::start_smtp`].
    pub fn stop_smtp(&self) {
        self.run("stop-smtp");
    }

    /// Restarts Postfix on the same port; mail queued before the stop is delivered.
    pub fn start_smtp(&self) {
        self.run("start-smtp");
    }

    /// Stops Dovecot (IMAP and LMTP): IMAP connections are refused, Postfix defers delivery.
    pub fn stop_imap(&self) {
        self.run("stop-imap");
    }

    /// Restarts Dovecot on the same ports; Postfix delivers what it deferred within seconds.
    pub fn start_imap(&self) {
        self.run("start-imap");
    }

    /// Makes Postfix retry all deferred mail now (`postqueue -f`), instead of within 2–6 s.
    pub fn flush_queue(&self) {
        self.run("flush");
    }

    /// Postfix's queue listing (`postqueue -p`): "Mail queue is empty", or each deferred mail
    /// with its reason.
    pub fn mail_queue(&self) -> String {
        let out =
            Command::new(Self::script()).arg("queue").arg(self.dir.path()).output().expect("run scripts/mail-stack");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The Maildir home of a user (`dir/mail/<domain>/<local part>`), as Dovecot names it.
    pub fn user_home(&self, user: &str) -> PathBuf {
        let user = user.to_lowercase();
        let (local, domain) = user.rsplit_once('@').unwrap_or((user.as_str(), ""));
        self.dir.path().join("mail").join(domain).join(local)
    }

    /// Postfix's log (every SMTP transaction, delivery and deferral).
    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postfix/maillog")).unwrap_or_default()
    }

    /// Dovecot's log (logins, LMTP deliveries, Sieve actions).
    pub fn dovecot_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// Installs `script` as the user's active Sieve script (run at each LMTP delivery to them).
    /// Panics if it does not compile.
    pub fn set_sieve(&self, user: &str, script: &str) {
        use std::io::Write;
        let mut child = Command::new(Self::script())
            .arg("set-sieve")
            .arg(self.dir.path())
            .arg(user)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run scripts/mail-stack set-sieve");
        child.stdin.take().unwrap().write_all(script.as_bytes()).expect("write the Sieve script");
        let out = child.wait_with_output().unwrap();
        if !out.status.success() {
            panic!(
                "scripts/mail-stack set-sieve {user} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// A vacation auto-responder for `user`: each mail delivered to them whose To/Cc names them
    /// is answered (From: the user, Subject: "Auto: <subject>", `Auto-Submitted: auto-replied`,
    /// envelope sender <>) to its envelope sender, through this stack's Postfix — at most once a
    /// day per sender, as real vacation responders do. Not answered, as Sieve rules: mails with
    /// `Auto-Submitted`, `Precedence: bulk/list/junk`, `List-Id`, or from MAILER-DAEMON / owner-* /
    /// *-request senders.
    pub fn enable_vacation(&self, user: &str, text: &str) {
        self.set_sieve(user, &format!("require [\"vacation\"];\nvacation :days 1 {};\n", sieve_string(text)));
    }

    /// Like [`MailStack::enable_vacation`], but answers every mail, even several from the same
    /// sender (a misbehaving responder, for mail-loop tests).
    pub fn enable_vacation_every_time(&self, user: &str, text: &str) {
        self.set_sieve(
            user,
            &format!("require [\"vacation\", \"vacation-seconds\"];\nvacation :seconds 0 {};\n", sieve_string(text)),
        );
    }

    /// An IMAP session logged in as `user` (plain TCP, LOGIN with [`MailStack::PASSWORD`]).
    /// A connection dropped at once is tried again for a few seconds: right after a restart,
    /// Dovecot's login processes may still be starting (seen under load).
    pub async fn imap_session(&self, user: &str) -> ImapSession {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.try_imap_session(user).await {
                Ok(session) => return session,
                Err(e) if Instant::now() >= deadline => {
                    panic!("IMAP login as {user} on port {}: {e}", self.imap_port)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Like [`MailStack::imap_session`], returning the failure (e.g. while Dovecot is stopped).
    pub async fn try_imap_session(&self, user: &str) -> Result<ImapSession, async_imap::error::Error> {
        let tcp = TcpStream::connect((Self::HOST, self.imap_port)).await?;
        let mut client = async_imap::Client::new(tcp);
        // Client::new does not read the server's greeting: read it before the first command.
        client.read_response().await?.ok_or(async_imap::error::Error::ConnectionLost)?;
        client.login(user, Self::PASSWORD).await.map_err(|(e, _)| e)
    }

    /// APPENDs a raw message (LF line ends are sent as CRLF) to `folder`, creating the folder
    /// if it does not exist.
    pub async fn append(&self, user: &str, folder: &str, raw: &[u8]) {
        self.append_with_flags(user, folder, raw, None).await
    }

    /// Like [`MailStack::append`], with IMAP flags, e.g. `Some("(\\Seen)")`.
    pub async fn append_with_flags(&self, user: &str, folder: &str, raw: &[u8], flags: Option<&str>) {
        let raw = crlf(raw);
        let mut s = self.imap_session(user).await;
        if let Err(first) = s.append(folder, flags, None, &raw).await {
            // Most likely [TRYCREATE]: the folder does not exist yet.
            s.create(folder).await.unwrap_or_else(|e| panic!("APPEND to {user}/{folder}: {first}; CREATE: {e}"));
            s.append(folder, flags, None, &raw).await.unwrap_or_else(|e| panic!("APPEND to {user}/{folder}: {e}"));
        }
        let _ = s.logout().await;
    }

    /// CREATEs a folder (no error if it exists).
    pub async fn create_folder(&self, user: &str, folder: &str) {
        let mut s = self.imap_session(user).await;
        if let Err(e) = s.create(folder).await {
            let exists = self.list_folders_in(&mut s).await.iter().any(|f| f == folder);
            assert!(exists, "CREATE {user}/{folder}: {e}");
        }
        let _ = s.logout().await;
    }

    /// The raw bytes of every message in `folder`, in UID order (empty if the folder does not
    /// exist). Does not set \Seen.
    pub async fn fetch_all(&self, user: &str, folder: &str) -> Vec<Vec<u8>> {
        self.fetch_with_flags(user, folder).await.into_iter().map(|(raw, _)| raw).collect()
    }

    /// Every message of `folder` in UID order with its flags (e.g. `"\\Seen"`, `"$Forwarded"`;
    /// `\\Recent`, which depends on the session, is left out).
    pub async fn fetch_with_flags(&self, user: &str, folder: &str) -> Vec<(Vec<u8>, Vec<String>)> {
        let mut s = self.imap_session(user).await;
        let exists = match s.examine(folder).await {
            Ok(mailbox) => mailbox.exists,
            Err(async_imap::error::Error::No(_)) => 0, // no such folder
            Err(e) => panic!("EXAMINE {user}/{folder}: {e}"),
        };
        let mut out = Vec::new();
        if exists > 0 {
            let fetches: Vec<_> = s
                .uid_fetch("1:*", "(UID FLAGS BODY.PEEK[])")
                .await
                .unwrap_or_else(|e| panic!("UID FETCH {user}/{folder}: {e}"))
                .try_collect()
                .await
                .unwrap_or_else(|e| panic!("UID FETCH {user}/{folder}: {e}"));
            let mut rows: Vec<(u32, Vec<u8>, Vec<String>)> = fetches
                .iter()
                .filter_map(|f| {
                    let body = f.body()?.to_vec();
                    let flags = f
                        .flags()
                        .filter(|fl| !matches!(fl, async_imap::types::Flag::Recent))
                        .map(|fl| flag_name(&fl))
                        .collect();
                    Some((f.uid.unwrap_or(0), body, flags))
                })
                .collect();
            rows.sort_by_key(|r| r.0);
            out = rows.into_iter().map(|(_, b, f)| (b, f)).collect();
        }
        let _ = s.logout().await;
        out
    }

    /// How many messages `folder` holds (0 if it does not exist).
    pub async fn count(&self, user: &str, folder: &str) -> usize {
        let mut s = self.imap_session(user).await;
        let n = match s.examine(folder).await {
            Ok(mailbox) => mailbox.exists as usize,
            Err(async_imap::error::Error::No(_)) => 0,
            Err(e) => panic!("EXAMINE {user}/{folder}: {e}"),
        };
        let _ = s.logout().await;
        n
    }

    /// Sets \Seen on every message of `folder`.
    pub async fn set_seen_all(&self, user: &str, folder: &str) {
        let mut s = self.imap_session(user).await;
        let mailbox = s.select(folder).await.unwrap_or_else(|e| panic!("SELECT {user}/{folder}: {e}"));
        if mailbox.exists > 0 {
            let _: Vec<_> = s
                .uid_store("1:*", "+FLAGS.SILENT (\\Seen)")
                .await
                .unwrap_or_else(|e| panic!("UID STORE {user}/{folder}: {e}"))
                .try_collect()
                .await
                .unwrap_or_else(|e| panic!("UID STORE {user}/{folder}: {e}"));
        }
        let _ = s.logout().await;
    }

    /// The user's folders (INBOX included; hierarchy separator `/`).
    pub async fn list_folders(&self, user: &str) -> Vec<String> {
        let mut s = self.imap_session(user).await;
        let names = self.list_folders_in(&mut s).await;
        let _ = s.logout().await;
        names
    }

    async fn list_folders_in(&self, s: &mut ImapSession) -> Vec<String> {
        let mut names: Vec<String> = s
            .list(None, Some("*"))
            .await
            .expect("LIST")
            .try_collect::<Vec<_>>()
            .await
            .expect("LIST")
            .iter()
            .map(|n| n.name().to_string())
            .collect();
        names.sort();
        names
    }

    /// Polls (every 50 ms, `STATUS` on one IMAP session) until `folder` holds at least `n`
    /// messages, and returns them all (UID order). Rides out a Dovecot restart. Panics after
    /// `timeout`, with the count seen and the tail of both servers' logs.
    pub async fn wait_for_messages(&self, user: &str, folder: &str, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut session: Option<ImapSession> = None;
        let mut have = 0;
        loop {
            if session.is_none() {
                session = self.try_imap_session(user).await.ok();
            }
            if let Some(s) = session.as_mut() {
                match s.status(folder, "(MESSAGES)").await {
                    Ok(mailbox) => have = mailbox.exists as usize,
                    Err(async_imap::error::Error::No(_)) => have = 0, // no such folder (yet)
                    Err(_) => session = None,                         // reconnect next time
                }
            }
            if have >= n {
                if let Some(mut s) = session.take() {
                    let _ = s.logout().await;
                }
                return self.fetch_all(user, folder).await;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{user}/{folder}: {have} message(s) after {timeout:?}, expected {n}\n\
                     --- postfix maillog (tail) ---\n{}\n--- dovecot log (tail) ---\n{}",
                    tail(&self.maillog(), 30),
                    tail(&self.dovecot_log(), 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Submits a raw message over SMTP (no auth, no TLS) with this envelope; LF line ends are
    /// sent as CRLF. `from = ""` sends with the null sender `<>`. Errors are lettre's: e.g.
    /// `is_permanent()` for the 550 of [`MailStack::BOUNCE`], a connection error while Postfix
    /// is stopped.
    pub async fn smtp_send(
        &self,
        from: &str,
        to: &[&str],
        raw: &[u8],
    ) -> Result<Response, lettre::transport::smtp::Error> {
        let from: Option<Address> = if from.is_empty() {
            None
        } else {
            Some(from.parse().unwrap_or_else(|e| panic!("bad sender {from:?}: {e}")))
        };
        let to: Vec<Address> =
            to.iter().map(|a| a.parse().unwrap_or_else(|e| panic!("bad recipient {a:?}: {e}"))).collect();
        let envelope = Envelope::new(from, to).expect("an envelope needs a recipient");
        let transport = self.smtp_transport();
        let result = transport.send_raw(&envelope, &crlf(raw)).await;
        transport.shutdown().await;
        result
    }

    /// A lettre transport to this stack's Postfix (what the daemon under test would build).
    pub fn smtp_transport(&self) -> AsyncSmtpTransport<Tokio1Executor> {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(Self::HOST)
            .port(self.smtp_port)
            .timeout(Some(Duration::from_secs(10)))
            .build()
    }
}

impl Drop for MailStack {
    fn drop(&mut self) {
        let out = Command::new(Self::script()).arg("stop").arg(self.dir.path()).output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "scripts/mail-stack stop failed: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("scripts/mail-stack stop: {e}"),
        }
        // `dir` (a TempDir) is removed after this, mailboxes and queues included.
    }
}

/// The message with every bare LF turned into CRLF (existing CRLFs are kept).
pub fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32);
    let mut prev = 0u8;
    for &b in raw {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// A Sieve quoted string.
fn sieve_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn flag_name(flag: &async_imap::types::Flag<'_>) -> String {
    use async_imap::types::Flag;
    match flag {
        Flag::Seen => "\\Seen".into(),
        Flag::Answered => "\\Answered".into(),
        Flag::Flagged => "\\Flagged".into(),
        Flag::Deleted => "\\Deleted".into(),
        Flag::Draft => "\\Draft".into(),
        Flag::Recent => "\\Recent".into(),
        Flag::MayCreate => "\\*".into(),
        Flag::Custom(s) => s.to_string(),
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
