//! Operations (SPEC §10, issue 16): check-config, status exit codes, /healthz and /readyz, the
//! per-mailbox metrics, backup, forget, retention, log formats and systemd's readiness
//! notification — each against the real `guichet` binary, a real Dovecot and Postfix, and the
//! test's SQLite file or PostgreSQL database (`GUICHET_TEST_POSTGRES`).

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::guichet::{Config, HELPDESK, free_port, mail, mailbox, wait_for};
use common::mail_stack::MailStack;

const WAIT: Duration = Duration::from_secs(30);

fn on_postgres() -> bool {
    std::env::var("GUICHET_TEST_POSTGRES").is_ok_and(|s| !s.is_empty())
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A plain HTTP/1.0 GET: (status, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("a status line");
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    (status, body)
}

fn try_http_get(port: u16, path: &str) -> Option<(u16, String)> {
    std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    Some(http_get(port, path))
}

/// A mailbox block whose password Dovecot refuses.
fn wrong_password_mailbox(stack: &MailStack) -> String {
    mailbox(stack, "")
        .replace("name = \"support\"", "name = \"helpdesk-inbox\"")
        .replace(&format!("password = \"{}\"", MailStack::PASSWORD), "password = \"not-the-password\"")
}

/// Pipes a mail into `guichet ingest`.
fn ingest(cfg: &Config, raw: &[u8]) {
    let file = cfg.dir.path().join(format!("mail-{}.eml", free_port()));
    std::fs::write(&file, raw).unwrap();
    let out = cfg.cli(&["ingest", file.to_str().unwrap()]);
    assert!(out.status.success(), "ingest: {}", text(&out));
}

/// A mail with a text part and a file (`base64`, named `file.bin`).
fn mail_with_file(from: &str, message_id: &str, text: &str, base64: &str) -> String {
    let headers = "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n";
    let body = format!(
        "--b\nContent-Type: text/plain\n\n{text}\n--b\nContent-Type: application/octet-stream\n\
         Content-Disposition: attachment; filename=\"file.bin\"\nContent-Transfer-Encoding: base64\n\n{base64}\n--b--"
    );
    let raw = String::from_utf8(mail(from, "Avec un fichier", message_id, headers, &body)).unwrap();
    // `mail` names a text/plain body; this one is multipart.
    raw.replace("Content-Type: text/plain; charset=utf-8\n", "")
}

fn sqlite_path(cfg: &Config) -> std::path::PathBuf {
    cfg.database_url.strip_prefix("sqlite://").expect("a SQLite database").into()
}

#[test]
fn check_config_connects_to_every_part_and_exits_0_when_all_work() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");

    let out = cfg.cli(&["check-config"]);

    let said = text(&out);
    assert!(out.status.success(), "{said}");
    for line in ["configuration: ok", "database: ok", "mailbox support: ok", "smtp 127.0.0.1"] {
        assert!(said.contains(line), "`{line}` missing from:\n{said}");
    }
    assert!(!said.contains("FAILED"), "{said}");
}

#[test]
fn a_wrong_imap_password_fails_check_config_naming_the_mailbox() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", &wrong_password_mailbox(&stack));

    let out = cfg.cli(&["check-config"]);

    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    let line = said.lines().find(|l| l.contains("helpdesk-inbox")).unwrap_or_else(|| panic!("no mailbox line: {said}"));
    assert!(line.contains("FAILED") && line.contains("login"), "{line}");
    assert!(said.contains("database: ok"), "the other parts are still checked: {said}");
}

#[test]
fn smtp_down_fails_check_config() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    stack.stop_smtp();

    let out = cfg.cli(&["check-config"]);

    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.lines().any(|l| l.starts_with("smtp") && l.contains("FAILED")), "{said}");
    assert!(said.contains("mailbox support: ok"), "{said}");
}

#[test]
fn a_bad_value_fails_check_config_naming_the_key() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "[log]\nformat = \"xml\"\n");

    let out = cfg.cli(&["check-config"]);

    assert!(!out.status.success());
    assert!(text(&out).contains("format"), "{}", text(&out));
}

#[test]
fn status_exits_non_zero_while_a_mailbox_or_the_outbox_is_in_error() {
    let stack = MailStack::start();
    // A healthy installation: status exits 0.
    let good = Config::new(&stack, "", "");
    let mut daemon = good.start();
    wait_for(WAIT, "a first poll", || good.status()["mailboxes"][0]["last_poll"].as_str().map(drop));
    assert_eq!(good.status_exit(), 0);
    daemon.stop();

    // A mailbox that cannot log in.
    let bad = Config::new(&stack, "", &wrong_password_mailbox(&stack));
    let _daemon = bad.start();
    wait_for(WAIT, "the login error in status", || bad.status()["mailboxes"][0]["last_error"].as_str().map(drop));
    assert_ne!(bad.status_exit(), 0);

    // The SMTP server down while a notification waits.
    stack.stop_smtp();
    ingest(&good, &mail("marie@customer.example", "Imprimante", "outbox-down@customer.example", "", "Bonjour"));
    let mut daemon = good.start();
    wait_for(WAIT, "a failed attempt", || (good.status()["outbox"]["retrying"].as_i64() > Some(0)).then_some(()));
    assert_ne!(good.status_exit(), 0);
    daemon.stop();
    stack.start_smtp();
}

#[test]
fn healthz_answers_503_when_the_database_does_not() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let _daemon = cfg.start();
    let (status, _) = wait_for(WAIT, "the web view", || try_http_get(cfg.web_port, "/healthz"));
    assert_eq!(status, 200);

    if on_postgres() {
        drop_the_postgres_database(&cfg);
    } else {
        use std::os::unix::fs::PermissionsExt;
        let db = sqlite_path(&cfg);
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o000)).unwrap();
        let (status, body) = http_get(cfg.web_port, "/healthz");
        assert_eq!(status, 503, "an unreadable file: {body}");
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(http_get(cfg.web_port, "/healthz").0, 200, "readable again");
        let dir = db.parent().unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o000)).unwrap();
        assert_eq!(http_get(cfg.web_port, "/healthz").0, 503, "a closed directory");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::rename(&db, db.with_extension("moved")).unwrap();
    }

    let (status, body) = http_get(cfg.web_port, "/healthz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database"), "{body}");
    assert_eq!(http_get(cfg.web_port, "/readyz").0, 503);
}

/// The PostgreSQL server refuses the test's database from now on: it is gone.
fn drop_the_postgres_database(cfg: &Config) {
    let (server, name) = cfg.database_url.rsplit_once('/').unwrap();
    let out = std::process::Command::new("psql")
        .arg(format!("{server}/postgres"))
        .args(["-q", "-c", &format!("DROP DATABASE {name} WITH (FORCE)")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn readyz_answers_503_once_a_mailbox_has_failed_for_ten_polls() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", &wrong_password_mailbox(&stack));
    let metrics_port = free_port();
    let listen = format!("127.0.0.1:{metrics_port}");
    let _daemon = cfg.start_with(&[("GUICHET__WEB__METRICS_LISTEN", listen.as_str())]);
    wait_for(WAIT, "the web view", || try_http_get(cfg.web_port, "/readyz"));
    wait_for(WAIT, "the login error in status", || cfg.status()["mailboxes"][0]["last_error"].as_str().map(drop));
    assert_eq!(http_get(cfg.web_port, "/readyz").0, 200, "failing for less than poll_seconds × 10 (10 s)");

    let body = wait_for(WAIT, "readyz 503", || {
        let (status, body) = http_get(cfg.web_port, "/readyz");
        (status == 503).then_some(body)
    });

    assert_eq!(body.trim(), "mailbox: unavailable", "the public listener names no server");
    let (status, details) = http_get(metrics_port, "/readyz");
    assert_eq!(status, 503);
    assert!(details.contains("helpdesk-inbox") && details.contains("login"), "the operator's: {details}");
    assert_eq!(http_get(cfg.web_port, "/healthz").0, 200, "the process and its database are fine");
}

#[test]
fn metrics_show_each_mailbox_its_errors_the_quarantine_and_the_outbox_age() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", &format!("{}{}", mailbox(&stack, ""), wrong_password_mailbox(&stack)));
    let metrics_port = free_port();
    let listen = format!("127.0.0.1:{metrics_port}");
    let _daemon = cfg.start_with(&[("GUICHET__WEB__METRICS_LISTEN", listen.as_str())]);

    let body = wait_for(WAIT, "both mailboxes in the metrics", || {
        let (_, body) = try_http_get(metrics_port, "/metrics")?;
        (body.contains(r#"guichet_mailbox_last_success_timestamp_seconds{mailbox="support"}"#)
            && body.contains(r#"guichet_mailbox_failing{mailbox="helpdesk-inbox"} 1"#))
        .then_some(body)
    });

    assert!(body.contains(r#"guichet_mailbox_errors_total{mailbox="helpdesk-inbox"}"#), "{body}");
    assert!(body.contains(r#"guichet_mailbox_failing{mailbox="support"} 0"#), "{body}");
    assert!(body.contains(r#"guichet_quarantine_size{mailbox="support"} 0"#), "{body}");
    assert!(body.contains("guichet_outbox_oldest_pending_age_seconds"), "{body}");
}

/// The daemon's statements so far, from its /metrics.
fn statements_of(metrics_port: u16) -> Option<f64> {
    let (_, body) = try_http_get(metrics_port, "/metrics")?;
    body.lines().find_map(|l| l.strip_prefix("guichet_db_statements_total ")).and_then(|n| n.trim().parse().ok())
}

#[test]
fn an_idle_daemon_sends_almost_no_statement_and_still_answers_mail_stored_by_itself_or_by_guichet_ingest() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let metrics_port = free_port();
    let listen = format!("127.0.0.1:{metrics_port}");
    let _daemon = cfg.start_with(&[("GUICHET__WEB__METRICS_LISTEN", listen.as_str())]);
    wait_for(WAIT, "the mailbox read once", || {
        let (_, body) = try_http_get(metrics_port, "/metrics")?;
        body.contains(r#"guichet_mailbox_last_success_timestamp_seconds{mailbox="support"}"#).then_some(())
    });

    // Nothing to do: the sender's probe (10 reads a second), the mailbox's IDLE, the watchdog.
    // Its own claims once woke the sender again at once: ~70,000 statements a second.
    let before = statements_of(metrics_port).expect("statements on /metrics");
    std::thread::sleep(Duration::from_secs(2));
    let idle = statements_of(metrics_port).unwrap() - before;
    assert!(idle < 200.0, "{idle} statements in 2 s of idling");

    // Idling did not put it to sleep: a customer's mail is acknowledged.
    let customer = "marie@customer.example";
    let raw = mail(customer, "Après la pause", "idle1@customer.example", "", "Bonjour, une question.");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(stack.smtp_send(customer, &[HELPDESK], &raw)).expect("Postfix accepts the mail");
    let ack = rt.block_on(stack.wait_for_messages(customer, "INBOX", 1, WAIT)).remove(0);
    let parsed = mail_parser::MessageParser::default().parse(&ack).unwrap();
    assert!(parsed.subject().unwrap_or_default().contains("Après la pause"), "{:?}", parsed.subject());

    // Mail stored by another process (`guichet ingest`, as an MTA runs it) cannot wake the
    // daemon's sender; its probe of the outbox finds the acknowledgement and sends it.
    let other = "paul@customer.example";
    ingest(&cfg, &mail(other, "Par le tuyau", "idle2@customer.example", "", "Bonjour, une autre question."));
    let ack = rt.block_on(stack.wait_for_messages(other, "INBOX", 1, WAIT)).remove(0);
    let parsed = mail_parser::MessageParser::default().parse(&ack).unwrap();
    assert!(parsed.subject().unwrap_or_default().contains("Par le tuyau"), "{:?}", parsed.subject());
}

#[test]
fn backup_writes_a_copy_that_opens_with_the_tickets_while_the_daemon_runs() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    for i in 0..3 {
        ingest(
            &cfg,
            &mail("marie@customer.example", &format!("Demande {i}"), &format!("b{i}@customer.example"), "", "x"),
        );
    }
    let _daemon = cfg.start();
    wait_for(WAIT, "the web view", || try_http_get(cfg.web_port, "/healthz"));
    let copy = cfg.dir.path().join("backup.db");

    let out = cfg.cli(&["backup", copy.to_str().unwrap()]);

    if on_postgres() {
        assert!(!out.status.success());
        assert!(text(&out).contains("pg_dump"), "{}", text(&out));
        return;
    }
    assert!(out.status.success(), "{}", text(&out));
    let store = guichet::store::Store::open(&format!("sqlite://{}", copy.display()), 1).unwrap();
    let tickets = store.read(guichet::store::views::all_tickets).unwrap();
    assert_eq!(tickets.len(), 3);
    let again = cfg.cli(&["backup", copy.to_str().unwrap()]);
    assert!(!again.status.success(), "never overwrites");
}

/// `PRAGMA integrity_check` of a SQLite file, and its (ticket numbers, tickets of its messages).
fn check_sqlite_copy(path: &std::path::Path) -> (String, Vec<i64>, Vec<i64>) {
    use diesel::prelude::*;
    use guichet::store::schema::{messages, tickets};
    #[derive(QueryableByName)]
    struct Check {
        #[diesel(sql_type = diesel::sql_types::Text)]
        integrity_check: String,
    }
    let mut conn = diesel::sqlite::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    let checks: Vec<Check> = diesel::sql_query("PRAGMA integrity_check").load(&mut conn).unwrap();
    let verdict = checks.into_iter().map(|c| c.integrity_check).collect::<Vec<_>>().join("\n");
    let numbers = tickets::table.select(tickets::number).order(tickets::number).load(&mut conn).unwrap();
    let of_messages = messages::table.select(messages::ticket_number).load(&mut conn).unwrap();
    (verdict, numbers, of_messages)
}

#[test]
fn a_backup_taken_while_60_mails_are_being_ingested_is_whole_and_opens() {
    if on_postgres() {
        eprintln!("skipped on PostgreSQL: `guichet backup` explains pg_dump there (see the test above)");
        return;
    }
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    assert!(cfg.cli(&["migrate"]).status.success());
    // 60 MTA deliveries at once: 60 `guichet ingest` processes, each with its mail on stdin.
    let mut ingesting: Vec<std::process::Child> = (0..60)
        .map(|i| {
            let raw = mail(
                &format!("client{i}@customer.example"),
                &format!("Demande {i}"),
                &format!("load{i}@customer.example"),
                "",
                &"Une ligne de texte pour donner du poids au message.\n".repeat(40),
            );
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_guichet"))
                .arg("-c")
                .arg(&cfg.path)
                .arg("ingest")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(&raw).unwrap();
            child
        })
        .collect();

    // Backups one after the other until every delivery is done.
    let mut copies = Vec::new();
    let mut taken_during_ingestion = 0;
    loop {
        let running = ingesting.iter_mut().filter_map(|c| c.try_wait().unwrap().is_none().then_some(())).count();
        let copy = cfg.dir.path().join(format!("backup-{}.db", copies.len()));
        let out = cfg.cli(&["backup", copy.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        let still = ingesting.iter_mut().filter_map(|c| c.try_wait().unwrap().is_none().then_some(())).count();
        if running > 0 && still > 0 {
            taken_during_ingestion += 1;
        }
        copies.push(copy);
        if running == 0 {
            break;
        }
    }
    for child in ingesting {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "ingest: {}", String::from_utf8_lossy(&out.stderr));
    }

    eprintln!("{} backups, {taken_during_ingestion} while mail was being ingested", copies.len());
    assert!(taken_during_ingestion >= 1, "no backup overlapped the deliveries ({} taken)", copies.len());
    assert_eq!(cfg.tickets().len(), 60);
    for copy in &copies {
        let (verdict, numbers, of_messages) = check_sqlite_copy(copy);
        assert_eq!(verdict, "ok", "{}", copy.display());
        assert!(numbers.len() <= 60);
        eprintln!("{}: integrity ok, {} tickets", copy.display(), numbers.len());
        // Whole transactions only: every ticket with its message, every message with its ticket.
        for n in &numbers {
            assert!(of_messages.contains(n), "ticket {n} without its message in {}", copy.display());
        }
        assert!(of_messages.iter().all(|n| numbers.contains(n)), "{}", copy.display());
        let store = guichet::store::Store::open(&format!("sqlite://{}", copy.display()), 1).unwrap();
        assert_eq!(store.read(guichet::store::views::all_tickets).unwrap().len(), numbers.len());
    }
    let last = check_sqlite_copy(copies.last().unwrap());
    assert_eq!(last.1.len(), 60, "the backup taken after the last delivery has them all");
}

#[test]
fn forget_erases_a_person_down_to_the_bytes_of_the_database_while_the_daemon_runs() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let person = "jeanne.forgetme@customer.example";
    // Mail clients spell addresses as they like: the erasure finds every spelling.
    let from = "Jeanne <Jeanne.ForgetMe@Customer.example>";
    let raw = mail_with_file(from, "f1@customer.example", "Mon numero secret est 0612345678", "U0VDUkVUUEFZTE9BRA==");
    ingest(&cfg, raw.as_bytes());
    let cc = "Cc: JEANNE.FORGETME@customer.example\n";
    ingest(
        &cfg,
        &mail("other@customer.example", "Autre", "f2@customer.example", cc, "Voir Jeanne.Forgetme@customer.example"),
    );
    assert!(cfg.cli(&["login-link", person]).status.success());
    // The daemon runs meanwhile, and has sent the acknowledgements and staff notifications.
    let _daemon = cfg.start();
    wait_for(WAIT, "the notifications sent", || (cfg.status()["outbox"]["pending"] == 0).then_some(()));

    let out = cfg.cli(&["forget", person]);

    assert!(out.status.success(), "{}", text(&out));
    let tickets = cfg.tickets();
    assert_eq!(tickets.len(), 2, "tickets stay");
    let first = cfg.ticket(1).unwrap();
    let requester = first["requester"].as_str().unwrap();
    assert!(requester.starts_with("forgotten-") && requester.ends_with("@invalid"), "{requester}");
    let all = serde_json::to_string(&[cfg.ticket(1), cfg.ticket(2)]).unwrap().to_lowercase();
    assert!(!all.contains(person) && !all.contains("0612345678"), "{all}");
    let dump = database_bytes(&cfg).to_ascii_lowercase();
    for needle in [person, "0612345678", "secretpayload", "U0VDUkVUUEFZTE9BRA"] {
        let needle = needle.to_ascii_lowercase().into_bytes();
        if let Some(at) = dump.windows(needle.len()).position(|w| w == needle) {
            let around = &dump[at.saturating_sub(300)..(at + 100).min(dump.len())];
            panic!(
                "`{}` still in the database: …{}…",
                String::from_utf8_lossy(&needle),
                String::from_utf8_lossy(around)
            );
        }
    }
    let other = cfg.ticket(2).unwrap();
    assert_eq!(other["requester"], "other@customer.example", "other people stay");
}

/// Every byte the database holds: the SQLite file and its log, or a dump of the PostgreSQL
/// database (whose dead rows `forget` rewrote away; the dump shows the live ones).
fn database_bytes(cfg: &Config) -> Vec<u8> {
    if on_postgres() {
        let out = std::process::Command::new("pg_dump").arg(&cfg.database_url).output().expect("pg_dump runs");
        assert!(out.status.success(), "{}", text(&out));
        return out.stdout;
    }
    let db = sqlite_path(cfg);
    let mut bytes = std::fs::read(&db).unwrap();
    for log in ["-wal", "-journal"] {
        let mut name = db.clone().into_os_string();
        name.push(log);
        bytes.extend(std::fs::read(name).unwrap_or_default());
    }
    bytes
}

#[test]
fn retention_drops_raw_mail_of_old_closed_tickets_and_keeps_messages_and_files() {
    use diesel::prelude::*;
    use guichet::store::schema::{raw_mails, tickets};
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "[retention]\nraw_mail_days = 30\n");
    let old = mail_with_file("a@customer.example", "r1@customer.example", "Ancien", "T0xERklMRQ==");
    ingest(&cfg, old.as_bytes());
    ingest(&cfg, &mail("b@customer.example", "Ouvert", "r2@customer.example", "", "encore ouvert"));
    // Ticket 1 was closed 40 days ago, and its mail came before that.
    let store = guichet::store::Store::open(&cfg.database_url, 1).unwrap();
    let long_ago = guichet::store::now() - 41 * 86_400;
    store
        .write(|c| {
            diesel::update(tickets::table.find(1i64))
                .set((tickets::status.eq("closed"), tickets::closed_at.eq(long_ago + 86_400)))
                .execute(c)?;
            diesel::update(raw_mails::table).set(raw_mails::received_at.eq(long_ago)).execute(c)?;
            Ok(())
        })
        .unwrap();
    let raw_size = |n: i64| -> usize {
        store
            .read(|c| {
                let data: Vec<Vec<u8>> =
                    raw_mails::table.filter(raw_mails::ticket_number.eq(n)).select(raw_mails::data).load(c)?;
                Ok(data.iter().map(Vec::len).sum())
            })
            .unwrap()
    };
    assert!(raw_size(1) > 0);

    let _daemon = cfg.start();

    wait_for(WAIT, "the raw mail of ticket 1 dropped", || (raw_size(1) == 0).then_some(()));
    assert!(raw_size(2) > 0, "an open ticket keeps its raw mail");
    let t = cfg.ticket(1).unwrap();
    let message = &t["messages"][0];
    assert!(message["text"].as_str().unwrap().contains("Ancien"), "{t}");
    let id = message["attachments"][0]["id"].as_i64().expect("the file is still listed");
    let file = store
        .read(|c| guichet::store::messages::attachment(c, id, &guichet::store::visibility::Audience::Staff))
        .unwrap()
        .expect("the file");
    assert_eq!(file.2, b"OLDFILE");
}

#[test]
fn retention_of_0_days_drops_raw_mail_once_the_ticket_is_closed() {
    use diesel::prelude::*;
    use guichet::store::schema::{raw_mails, tickets};
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "[retention]\nraw_mail_days = 0\n");
    ingest(&cfg, &mail("a@customer.example", "Fini", "z1@customer.example", "", "merci"));
    let store = guichet::store::Store::open(&cfg.database_url, 1).unwrap();
    let now = guichet::store::now();
    store
        .write(|c| {
            diesel::update(tickets::table.find(1i64))
                .set((tickets::status.eq("closed"), tickets::closed_at.eq(now)))
                .execute(c)?;
            Ok(())
        })
        .unwrap();

    let _daemon = cfg.start();

    wait_for(WAIT, "the raw mail dropped", || {
        let data: Vec<u8> = store.read(|c| Ok(raw_mails::table.select(raw_mails::data).first(c)?)).unwrap();
        data.is_empty().then_some(())
    });
    assert!(cfg.ticket(1).unwrap()["messages"][0]["text"].as_str().unwrap().contains("merci"));
}

#[test]
fn json_logs_are_one_object_per_line_and_text_logs_have_no_colour_off_a_terminal() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let mut daemon = cfg.start_with(&[("GUICHET__LOG__FORMAT", "json")]);
    wait_for(WAIT, "the web view", || try_http_get(cfg.web_port, "/healthz"));
    daemon.stop();
    let logs = daemon.logs();
    assert!(logs.lines().count() >= 2, "{logs}");
    for line in logs.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }

    let mut daemon = cfg.start();
    wait_for(WAIT, "the web view", || try_http_get(cfg.web_port, "/healthz"));
    daemon.stop();
    let logs = daemon.logs();
    assert!(logs.contains("web view listening"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "no escape codes when stderr is a file: {logs:?}");
}

#[test]
fn the_daemon_tells_systemd_it_is_ready_then_stopping() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let socket_path = cfg.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let mut daemon = cfg.start_with(&[("NOTIFY_SOCKET", socket_path.to_str().unwrap())]);
    let mut buf = [0u8; 256];

    let n = socket.recv(&mut buf).expect("a notification before the timeout");
    assert_eq!(&buf[..n], b"READY=1");
    let (status, _) = http_get(cfg.web_port, "/healthz");
    assert_eq!(status, 200, "ready means serving");
    let exit = daemon.stop();
    let n = socket.recv(&mut buf).expect("STOPPING=1 after SIGTERM");

    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(exit.success());
    let _ = HELPDESK;
}

/// The datagrams that reach `socket` within `window`.
fn notifications_within(socket: &UnixDatagram, window: Duration) -> Vec<String> {
    let end = std::time::Instant::now() + window;
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return got;
        }
        socket.set_read_timeout(Some(left)).unwrap();
        match socket.recv(&mut buf) {
            Ok(n) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return got,
            Err(e) => panic!("notify socket: {e}"),
        }
    }
}

#[test]
fn the_daemon_pings_the_systemd_watchdog_only_while_its_database_answers() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let socket_path = cfg.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    // WatchdogSec=1s: systemd sets both variables for the service's main process.
    let _daemon = cfg.start_with(&[("NOTIFY_SOCKET", socket_path.to_str().unwrap()), ("WATCHDOG_USEC", "1000000")]);
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("READY=1 before the timeout");
    assert_eq!(&buf[..n], b"READY=1");

    let alive = notifications_within(&socket, Duration::from_secs(3));

    let pings = alive.iter().filter(|s| *s == "WATCHDOG=1").count();
    assert!(pings >= 2, "every 0.5 s for 3 s: {alive:?}");
    assert!(alive.iter().all(|s| s == "WATCHDOG=1"), "{alive:?}");

    // The database stops answering: no more pings, so systemd would restart the daemon.
    let db = (!on_postgres()).then(|| sqlite_path(&cfg));
    match &db {
        Some(db) => std::fs::rename(db, db.with_extension("moved")).unwrap(),
        None => drop_the_postgres_database(&cfg),
    }
    // A ping already under way may still land.
    notifications_within(&socket, Duration::from_millis(1500));
    let dead = notifications_within(&socket, Duration::from_secs(3));
    assert!(dead.is_empty(), "no ping without a database: {dead:?}");

    if let Some(db) = db {
        std::fs::rename(db.with_extension("moved"), &db).unwrap();
        let back = notifications_within(&socket, Duration::from_secs(3));
        assert!(back.iter().any(|s| s == "WATCHDOG=1"), "pings resume with the database: {back:?}");
    }
}

/// The uid and gid of a system user.
fn ids_of(user: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = std::process::Command::new("id").args([flag, user]).output().unwrap();
        assert!(out.status.success(), "no user {user}");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

#[test]
fn postfix_delivering_through_the_pipe_transport_to_guichet_ingest_opens_a_ticket() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let guichet = std::path::Path::new(env!("CARGO_BIN_EXE_guichet"));
    // pipe(8) runs the command as `nobody` (never as root): the installation is theirs, as
    // /var/lib/guichet belongs to the package's `guichet` user. The database is made by them too.
    let (uid, gid) = ids_of("nobody");
    std::os::unix::fs::chown(cfg.dir.path(), Some(uid), Some(gid)).unwrap();
    let out = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(guichet)
        .arg("-c")
        .arg(&cfg.path)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(out.status.success(), "migrate as nobody: {}", text(&out));
    stack.pipe_to_guichet(guichet, &cfg.path, HELPDESK);
    let customer = "marie@customer.example";
    let raw = mail(customer, "Livré par le tuyau", "pipe1@customer.example", "", "Bonjour, le scanner ne répond plus.");

    rt.block_on(stack.smtp_send(customer, &[HELPDESK], &raw)).expect("Postfix accepts the mail");

    let ticket = wait_for(WAIT, "ticket 1 from the pipe transport", || cfg.ticket(1));
    assert_eq!(ticket["requester"], customer, "{ticket}");
    assert!(ticket["messages"][0]["text"].as_str().unwrap().contains("le scanner ne répond plus"), "{ticket}");
    let maillog = stack.maillog();
    let delivery = maillog.lines().find(|l| l.contains("relay=guichet")).unwrap_or_else(|| panic!("{maillog}"));
    assert!(delivery.contains("status=sent") && delivery.contains(HELPDESK), "{delivery}");
    assert_eq!(rt.block_on(stack.count(HELPDESK, "INBOX")), 0, "through the pipe, not a mailbox");
    // The daemon sends what ingest queued: the acknowledgement reaches the customer.
    let _daemon = cfg.start();
    let ack = rt.block_on(stack.wait_for_messages(customer, "INBOX", 1, WAIT)).remove(0);
    let parsed = mail_parser::MessageParser::default().parse(&ack).unwrap();
    let subject = parsed.subject().unwrap_or_default();
    assert!(subject.contains("Livré par le tuyau"), "{subject}");
}

#[test]
fn the_package_holds_the_binary_the_unit_and_the_configuration_and_its_unit_verifies() {
    if on_postgres() {
        eprintln!("skipped on PostgreSQL: the package is built once per run, in the SQLite pass");
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_guichet"));
    // target/debug/guichet → target/package: cargo-deb's own directory, beside the tests' build.
    let target = binary.parent().and_then(std::path::Path::parent).unwrap().join("package");
    let out_dir = tempfile::tempdir().unwrap();
    let deb = out_dir.path().join("guichet.deb");

    // The binary under test is packaged as it is (no second, release build: README explains).
    let out = std::process::Command::new(root.join("scripts/package"))
        .env("CARGO_TARGET_DIR", &target)
        .env("PACKAGE_BINARY", binary)
        .env("PACKAGE_OUT", &deb)
        .output()
        .unwrap();

    assert!(out.status.success(), "scripts/package: {}", text(&out));
    let listing = std::process::Command::new("dpkg-deb").arg("-c").arg(&deb).output().unwrap();
    assert!(listing.status.success(), "{}", text(&listing));
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    let entry = |path: &str| listing.lines().find(|l| l.ends_with(&format!(" ./{path}")));
    let bin = entry("usr/bin/guichet").unwrap_or_else(|| panic!("no usr/bin/guichet in:\n{listing}"));
    assert!(bin.starts_with("-rwxr-xr-x"), "{bin}");
    for path in [
        "usr/lib/systemd/system/guichet.service",
        "usr/share/doc/guichet/example.toml",
        "usr/share/doc/guichet/README.md",
    ] {
        assert!(entry(path).is_some(), "no {path} in:\n{listing}");
    }
    let info = std::process::Command::new("dpkg-deb").arg("-I").arg(&deb).output().unwrap();
    let info = text(&info);
    assert!(info.contains("Package: guichet") && info.contains("postinst"), "{info}");

    // What it installs: the program runs, the unit is the one of debian/.
    let tree = out_dir.path().join("root");
    let unpack = std::process::Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree).output().unwrap();
    assert!(unpack.status.success(), "{}", text(&unpack));
    let version = std::process::Command::new(tree.join("usr/bin/guichet")).arg("--version").output().unwrap();
    assert!(version.status.success() && text(&version).contains("guichet"), "{}", text(&version));
    let unit = std::fs::read_to_string(tree.join("usr/lib/systemd/system/guichet.service")).unwrap();
    assert!(unit.contains("WatchdogSec=30s") && unit.contains("Type=notify"), "{unit}");

    let Ok(analyze) = which("systemd-analyze") else {
        eprintln!("systemd-analyze is missing: the unit is not verified (install the systemd package)");
        return;
    };
    // Verified in the unpacked tree (its /usr/bin/guichet), beside the machine's own units.
    let units = tree.join("usr/lib/systemd/system");
    let copy =
        std::process::Command::new("cp").arg("-rn").arg("/usr/lib/systemd/system/.").arg(&units).output().unwrap();
    assert!(copy.status.success(), "{}", text(&copy));
    let verify = std::process::Command::new(analyze)
        .arg("verify")
        .arg(format!("--root={}", tree.display()))
        .arg("guichet.service")
        .output()
        .unwrap();
    assert!(verify.status.success() && text(&verify).trim().is_empty(), "systemd-analyze verify: {}", text(&verify));
}

fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file()).ok_or(())
}

#[test]
fn the_packaged_systemd_unit_waits_for_ready_and_is_sandboxed() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(root.join("debian/guichet.service")).unwrap();
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);

    for line in [
        "Type=notify",
        "WatchdogSec=30s",
        "User=guichet",
        "StateDirectory=guichet",
        "LoadCredential=guichet.toml:/etc/guichet/guichet.toml",
        "Environment=GUICHET_CONFIG=%d/guichet.toml",
        "ExecStart=/usr/bin/guichet run",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=",
    ] {
        assert!(has(line), "`{line}` missing from debian/guichet.service");
    }
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("[package.metadata.deb]") && manifest.contains("maintainer-scripts = \"debian/\""));
    assert!(root.join("debian/postinst").exists() && root.join("Containerfile").exists());
}
