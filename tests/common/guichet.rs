//! Runs the real `guichet` binary against a real mail stack: configuration, daemon, CLI.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::mail_stack::MailStack;

pub const HELPDESK: &str = "support@example.com";
pub const STAFF: &str = "alice@example.com";

/// A configuration file for a helpdesk reading `support@example.com` on the stack's Dovecot and
/// sending through its Postfix. `extra_helpdesk` goes in [helpdesk]; `extra` is appended (TOML).
pub struct Config {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub database_url: String,
    pub web_port: u16,
    _database: TestDatabase,
}

/// The database of one test: a SQLite file in `dir`, or — when `GUICHET_TEST_POSTGRES` names a
/// server (e.g. `postgres://postgres@127.0.0.1`) — a fresh PostgreSQL database, dropped at the end.
pub struct TestDatabase {
    pub url: String,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub fn new(dir: &Path) -> TestDatabase {
        match std::env::var("GUICHET_TEST_POSTGRES") {
            Ok(server) if !server.is_empty() => {
                let name = format!("guichet_t_{}_{}", std::process::id(), rand_suffix() % 1_000_000_000);
                psql(&server, &format!("CREATE DATABASE {name}"));
                let url = format!("{}/{name}", server.trim_end_matches('/'));
                TestDatabase { url, postgres: Some((server, name)) }
            }
            _ => TestDatabase { url: format!("sqlite://{}/guichet.db", dir.display()), postgres: None },
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((server, name)) = &self.postgres {
            psql(server, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// What `psql` prints (tuples only, unaligned) for `sql` on the database `url`.
pub fn psql_output(url: &str, sql: &str) -> String {
    let out = Command::new("psql").arg(url).args(["-v", "ON_ERROR_STOP=1", "-tAc", sql]).output().expect("psql runs");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn psql(server: &str, sql: &str) {
    let out = Command::new("psql")
        .arg(format!("{}/postgres", server.trim_end_matches('/')))
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("psql runs");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Config {
    pub fn new(stack: &MailStack, extra_helpdesk: &str, extra: &str) -> Config {
        Config::with_database(stack, extra_helpdesk, extra, None)
    }

    pub fn with_database(stack: &MailStack, extra_helpdesk: &str, extra: &str, database_url: Option<&str>) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let database = TestDatabase::new(dir.path());
        let database_url = database_url.map(str::to_string).unwrap_or_else(|| database.url.clone());
        let web_port = free_port();
        let metrics_port = free_port();
        let mut toml = format!(
            r#"
[helpdesk]
address = "{HELPDESK}"
name = "Support"
staff = ["{STAFF}", "@support.example.com"]
public_url = "http://127.0.0.1:{web_port}"
trusted_authserv_id = "mx.example.com"
{extra_helpdesk}

[database]
url = "{database_url}"

[web]
listen = "127.0.0.1:{web_port}"
metrics_listen = "127.0.0.1:{metrics_port}"

[smtp]
host = "127.0.0.1"
port = {smtp}
tls = "none"
timeout_seconds = 10

{extra}
"#,
            smtp = stack.smtp_port,
        );
        if !extra.contains("[[mailbox]]") {
            toml.push_str(&mailbox(stack, ""));
        }
        let path = dir.path().join("guichet.toml");
        std::fs::write(&path, toml).unwrap();
        Config { dir, path, database_url, web_port, _database: database }
    }

    /// Runs a `guichet` command to completion.
    pub fn cli(&self, args: &[&str]) -> Output {
        command(&self.path).args(args).output().expect("guichet runs")
    }

    /// `guichet ticket N --json`, parsed; None when there is no such ticket.
    pub fn ticket(&self, n: i64) -> Option<serde_json::Value> {
        let out = self.cli(&["ticket", &n.to_string(), "--json"]);
        out.status.success().then(|| serde_json::from_slice(&out.stdout).expect("ticket JSON"))
    }

    pub fn tickets(&self) -> Vec<serde_json::Value> {
        let out = self.cli(&["tickets", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["tickets"].as_array().unwrap().clone()
    }

    /// `guichet status --json`, parsed; it also prints while a mailbox or the outbox is in error
    /// (and then exits non-zero: see [`Config::status_exit`]).
    pub fn status(&self) -> serde_json::Value {
        let out = self.cli(&["status", "--json"]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status JSON: {e}; stderr {}", String::from_utf8_lossy(&out.stderr)))
    }

    /// The exit code of `guichet status`.
    pub fn status_exit(&self) -> i32 {
        self.cli(&["status"]).status.code().expect("status exits")
    }

    pub fn start(&self) -> Daemon {
        self.start_with(&[])
    }

    /// Another daemon on the same configuration, with its own web port.
    pub fn start_another(&self) -> Daemon {
        let listen = format!("127.0.0.1:{}", free_port());
        self.start_with(&[("GUICHET__WEB__LISTEN", listen.as_str())])
    }

    pub fn start_with(&self, env: &[(&str, &str)]) -> Daemon {
        let log = self.dir.path().join(format!("daemon-{}.log", rand_suffix()));
        let child = command(&self.path)
            .envs(env.iter().copied())
            .arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(log.with_extension("err")).unwrap()))
            .spawn()
            .expect("guichet run starts");
        Daemon { child: Some(child), log }
    }
}

/// A `[[mailbox]]` block for `support@example.com` on the stack's Dovecot.
pub fn mailbox(stack: &MailStack, extra: &str) -> String {
    format!(
        r#"
[[mailbox]]
name = "support"
host = "127.0.0.1"
port = {port}
tls = "none"
username = "{HELPDESK}"
password = "{password}"
folder = "INBOX"
processed_folder = "Processed"
poll_seconds = 1
service = "Support"
{extra}
"#,
        port = stack.imap_port,
        password = MailStack::PASSWORD,
    )
}

fn command(config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_guichet"));
    c.arg("-c").arg(config).env("RUST_LOG", "info,guichet=debug");
    for (k, _) in std::env::vars() {
        if k.starts_with("GUICHET") {
            c.env_remove(k);
        }
    }
    c
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `guichet run`; stopped with SIGTERM when dropped.
pub struct Daemon {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    /// SIGTERM, then waits: the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("guichet did not stop within 20 s of SIGTERM; log: {}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process still runs (false once it has exited, whatever the reason).
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn logs(&self) -> String {
        let out = std::fs::read_to_string(&self.log).unwrap_or_default();
        let err = std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default();
        format!("{out}{err}")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- guichet daemon log ---\n{}", tail(&self.logs(), 60));
        }
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            std::thread::sleep(Duration::from_millis(200));
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
}

/// Polls `check` until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A plain RFC 5322 mail to the helpdesk (LF line ends; the harness converts to CRLF).
pub fn mail(from: &str, subject: &str, message_id: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\nTo: {HELPDESK}\nSubject: {subject}\nMessage-ID: <{message_id}>\nDate: Mon, 30 Nov 2026 09:00:00 +0100\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n{extra_headers}\n{body}\n"
    )
    .into_bytes()
}

/// What a mail client's "Reply" to `original` sends, and where: to its `Reply-To` (else its
/// `From`), `Re:` subject, `In-Reply-To`/`References`, the original quoted below an attribution
/// line. Returns (recipient, mail).
pub fn reply(original: &[u8], from: &str, message_id: &str, body: &str) -> (String, Vec<u8>) {
    reply_with(original, from, message_id, "", body)
}

/// [`reply`] with extra header lines (e.g. `Cc: …\n`).
pub fn reply_with(original: &[u8], from: &str, message_id: &str, extra_headers: &str, body: &str) -> (String, Vec<u8>) {
    let parsed = mail_parser::MessageParser::default().parse(original).expect("a mail to answer");
    let to = reply_address_of(original);
    let subject = parsed.subject().unwrap_or_default();
    let subject =
        if subject.to_lowercase().starts_with("re:") { subject.to_string() } else { format!("Re: {subject}") };
    let parent = format!("<{}>", parsed.message_id().expect("the mail has a Message-ID"));
    let references = match header(original, "References") {
        Some(r) => format!("{r} {parent}"),
        None => parent.clone(),
    };
    let quoted: String = parsed.body_text(0).unwrap_or_default().lines().map(|l| format!("> {l}\n")).collect();
    let raw = format!(
        "From: {from}\nTo: {to}\nSubject: {subject}\nMessage-ID: <{message_id}>\nDate: Mon, 30 Nov 2026 10:00:00 +0100\n\
         In-Reply-To: {parent}\nReferences: {references}\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\
         {extra_headers}\n{body}\n\nLe lun. 30 nov. 2026 à 09:30, Support <{HELPDESK}> a écrit :\n{quoted}"
    );
    (to, raw.into_bytes())
}

/// The address a mail client's "Reply" to `raw` writes to: its `Reply-To`, else its `From`.
pub fn reply_address_of(raw: &[u8]) -> String {
    let parsed = mail_parser::MessageParser::default().parse(raw).expect("a mail");
    parsed
        .reply_to()
        .or_else(|| parsed.from())
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .expect("the mail names whom to answer")
        .to_string()
}

/// The value of a header in raw mail bytes (first occurrence, unfolded).
pub fn header(raw: &[u8], name: &str) -> Option<String> {
    let parsed = mail_parser::MessageParser::default().parse(raw)?;
    parsed.header_raw(name).map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Async polling for tests running on tokio (the check may block briefly, e.g. run the CLI).
pub async fn eventually<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = tokio::task::block_in_place(&mut check) {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Every outbox row, oldest first, its mail composed into `data` as the sender would send it
/// (the outbox keeps descriptions of mails: `notify::pending`).
pub fn composed_outbox(app: &guichet::app::App) -> Vec<guichet::store::outbox::OutboxRow> {
    use diesel::prelude::*;
    use guichet::store::outbox::OutboxRow;
    use guichet::store::schema::outbox;
    let rows: Vec<OutboxRow> =
        app.store.read(|c| Ok(outbox::table.order(outbox::id).select(OutboxRow::as_select()).load(c)?)).unwrap();
    rows.into_iter()
        .map(|mut row| {
            row.data = app.outbox_mail(&row).unwrap();
            row
        })
        .collect()
}

/// Makes the database at `url` refuse to store any message with the subject `boom` (a trigger:
/// a failure inside a mail's processing, for the tests of a batch's second pass).
pub fn refuse_messages_titled_boom(url: &str) {
    let sql = if url.starts_with("sqlite") {
        "CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.subject = 'boom' \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"
    } else {
        "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN \
           IF NEW.subject = 'boom' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER refuse BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION refuse();"
    };
    let store = guichet::store::Store::open_and_migrate(url, 1).unwrap();
    store.write(|c| Ok(diesel::connection::SimpleConnection::batch_execute(c, sql)?)).unwrap();
}
