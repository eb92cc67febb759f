//! Shared by tests/web_http.rs, tests/web_browser.rs and tests/web_security.rs: the real server on
//! a port of its own, with its own SQLite file, tickets seeded through the real ingest path, helpers
//! to read what went to the outbox, and a spy listener that records anything a page loads.
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use guichet::app::{App, Shutdown};
use guichet::config::Settings;
use guichet::desk::inbound::Outcome;
use guichet::store::outbox::OutboxRow;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::guichet::TestDatabase;

pub const STAFF: &str = "alice@example.com";
pub const MARIE: &str = "marie.dupont@cisa.example";
pub const PAUL: &str = "paul.martin@cisa.example";
pub const BOB: &str = "bob@other.example";

pub struct TestApp {
    pub app: App,
    pub base: String,
    /// The metrics listener (`web.metrics_listen`), apart from the pages.
    pub metrics_base: String,
    pub port: u16,
    // Dropped after the app's connections are done with it (fields drop in order).
    _database: TestDatabase,
    _dir: tempfile::TempDir,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Starts the real server (`web::serve`) on 127.0.0.1:0 with a fresh database (SQLite, or
/// PostgreSQL when `GUICHET_TEST_POSTGRES` names a server). `extra` is TOML appended to the test
/// configuration (`[helpdesk]` keys go in `helpdesk_extra`).
pub async fn spawn(helpdesk_extra: &str, extra: &str) -> TestApp {
    spawn_with_url(helpdesk_extra, extra, None).await
}

pub async fn spawn_with_url(helpdesk_extra: &str, extra: &str, public_url: Option<&str>) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::new(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let config = format!(
        r#"
[helpdesk]
address = "support@example.com"
name = "Support Test"
staff = ["{STAFF}"]
public_url = "{}"
{helpdesk_extra}

[[company]]
name = "Cisa Informatique"
domains = ["cisa.example"]
shared = true

[database]
url = "{}"

[web]
listen = "127.0.0.1:{port}"
{extra}
"#,
        public_url.unwrap_or(&base),
        database.url
    );
    let file = dir.path().join("guichet.toml");
    std::fs::write(&file, config).unwrap();
    // An explicit, empty environment: GUICHET__… variables of the machine must not leak in.
    let settings = Settings::load_from(Some(&file), Path::new("/nonexistent/default.toml"), &[]).unwrap();
    let app = App::open(settings).unwrap();
    let (stop, shutdown) = Shutdown::new();
    let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_base = format!("http://{}", metrics_listener.local_addr().unwrap());
    tokio::spawn(guichet::web::serve_metrics(app.clone(), metrics_listener, shutdown.clone()));
    tokio::spawn(guichet::web::serve(app.clone(), listener, shutdown));
    TestApp { app, base, metrics_base, port, _database: database, _dir: dir, stop }
}

static MAIL_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A plain text mail.
pub fn mail(from: &str, subject: &str, body: &str) -> Vec<u8> {
    mail_with(from, subject, &[], "text/plain; charset=utf-8", body)
}

/// A mail with extra header lines and a body of the given content type.
pub fn mail_with(from: &str, subject: &str, headers: &[&str], content_type: &str, body: &str) -> Vec<u8> {
    let n = MAIL_COUNTER.fetch_add(1, Ordering::SeqCst);
    let pid = std::process::id();
    let mut m = format!(
        "From: {from}\r\nTo: support@example.com\r\nSubject: {subject}\r\nMessage-ID: <t{pid}-{n}@test.example>\r\n\
         Date: Mon, 30 Nov 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    );
    for h in headers {
        m.push_str(h);
        m.push_str("\r\n");
    }
    m.push_str(&format!("Content-Type: {content_type}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"));
    m.into_bytes()
}

/// A mail with one text part and one attachment (`name`, `content_type`, bytes).
pub fn mail_with_file(from: &str, subject: &str, body: &str, name: &str, content_type: &str, data: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let lines: Vec<&str> = b64.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap()).collect();
    let multipart = format!(
        "--XYZ\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n--XYZ\r\nContent-Type: {content_type}; name=\"{name}\"\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--XYZ--",
        lines.join("\r\n")
    );
    mail_with(from, subject, &[], "multipart/mixed; boundary=\"XYZ\"", &multipart)
}

impl TestApp {
    /// Ingests a raw mail through the real path; returns the ticket number it went to.
    pub fn ingest(&self, raw: Vec<u8>) -> i64 {
        match self.app.ingest_one(&raw, "test").unwrap() {
            Outcome::Ticket { number, .. } => number,
            other => panic!("mail not stored in a ticket: {other:?}"),
        }
    }

    /// Staff answer ticket `number` with their mail client's "Reply" to the last mail they got
    /// about it: to its Reply-To (the address signed for them), so the mail is theirs (SPEC §7).
    pub fn staff_reply(&self, number: i64, body: &str) -> i64 {
        self.staff_reply_with(number, "text/plain; charset=utf-8", body)
    }

    /// [`TestApp::staff_reply`] with a body of the given content type.
    pub fn staff_reply_with(&self, number: i64, content_type: &str, body: &str) -> i64 {
        let tag = format!("[Ticket #{number}]");
        let last = self
            .outbox()
            .into_iter()
            .rfind(|r| r.recipient == STAFF && String::from_utf8_lossy(&r.data).contains(&tag))
            .unwrap_or_else(|| panic!("staff got no mail about ticket {number}"));
        let to = crate::common::guichet::reply_address_of(&last.data);
        let parsed = mail_parser::MessageParser::default().parse(&last.data).expect("a mail");
        let subject = parsed.subject().expect("a subject").to_string();
        let raw = String::from_utf8(mail_with(STAFF, &format!("Re: {subject}"), &[], content_type, body)).unwrap();
        let raw = raw.replacen("To: support@example.com", &format!("To: {to}"), 1);
        self.ingest(raw.into_bytes())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The configuration file the app was started with (for the `guichet` binary).
    pub fn config_file(&self) -> PathBuf {
        self._dir.path().join("guichet.toml")
    }

    /// Every outbox row, oldest first, its mail composed (`data`) as the sender would send it.
    pub fn outbox(&self) -> Vec<OutboxRow> {
        crate::common::guichet::composed_outbox(&self.app)
    }

    pub fn outbox_for(&self, recipient: &str, event: &str) -> Vec<OutboxRow> {
        self.outbox().into_iter().filter(|r| r.recipient == recipient && r.event == event).collect()
    }

    /// The token of the latest login link mailed to `email`, read from the queued mail's bytes.
    pub fn login_token_from_outbox(&self, email: &str) -> Option<String> {
        let row = self.outbox_for(email, "login_link").pop()?;
        let text = mail_text(&row.data);
        let start = text.find("/login/")? + "/login/".len();
        let token: String =
            text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
        (!token.is_empty()).then_some(token)
    }

    /// A fresh login token made directly (as `guichet login-link` does).
    pub fn login_token(&self, email: &str) -> String {
        self.app.store.write(|c| guichet::auth::create_login_token(c, email, None, guichet::store::now())).unwrap()
    }

    /// A client with its own cookie jar, logged in as `email` through `POST /login/{token}`.
    pub async fn client_for(&self, email: &str) -> reqwest::Client {
        let client = client();
        let token = self.login_token(email);
        let r = client.post(self.url(&format!("/login/{token}"))).send().await.unwrap();
        assert_eq!(r.status(), 303, "login of {email}");
        client
    }
}

/// The text body of a queued mail (decoded whatever its transfer encoding).
pub fn mail_text(data: &[u8]) -> String {
    let parsed = mail_parser::MessageParser::default().parse(data).expect("a mail");
    parsed.body_text(0).map(|t| t.into_owned()).unwrap_or_default()
}

/// A client that keeps cookies and does not follow redirects (tests look at them).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Like [`client`], with its connections made from `local` (a loopback address such as 127.0.0.7):
/// to the server, another client IP (rate limits are per client).
pub fn client_at(local: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .local_address(local)
        .build()
        .unwrap()
}

/// A loopback HTTP listener that records every connection made to it, with its request line: a
/// page that runs nothing and loads nothing from elsewhere leaves it empty.
pub struct Spy {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Spy {
    pub async fn start() -> Spy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                // Counted at once; the request line (if any comes) replaces the placeholder.
                let index = {
                    let mut seen = recorded.lock().unwrap();
                    seen.push("(a connection, no request yet)".to_string());
                    seen.len() - 1
                };
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), socket.read(&mut buf)).await
                        && let Some(line) = String::from_utf8_lossy(&buf[..n]).lines().next().filter(|l| !l.is_empty())
                    {
                        recorded.lock().unwrap()[index] = line.to_string();
                    }
                    let _ = socket
                        .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                });
            }
        });
        Spy { base, seen }
    }

    /// What reached the spy so far (request lines).
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// The value of the first hidden `csrf` field of a page.
pub fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    html[start..].split('"').next().unwrap().to_string()
}
