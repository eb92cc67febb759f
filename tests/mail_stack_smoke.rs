//! Proves the test mail stack (scripts/mail-stack + tests/common/mail_stack.rs) is real:
//! Postfix accepts and delivers, Dovecot serves IMAP, outages and rejections behave as a real
//! server's would, and Sieve's vacation responder answers through Postfix.

mod common;

use std::time::{Duration, Instant};

use common::mail_stack::{MailStack, crlf};

fn mail(from: &str, to: &str, subject: &str, id: &str) -> Vec<u8> {
    format!(
        "From: {from}\nTo: {to}\nSubject: {subject}\nMessage-ID: <{id}@customer.example>\n\
         Date: Mon, 30 Nov 2026 10:00:00 +0000\nMIME-Version: 1.0\n\
         Content-Type: text/plain; charset=utf-8\n\nBonjour,\n.leading dot line\nMerci.\n"
    )
    .into_bytes()
}

fn text(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

#[tokio::test]
async fn smtp_mail_arrives_over_imap() {
    let stack = MailStack::start();
    eprintln!(
        "stack started in {:?}: imap {} smtp {} lmtp {}",
        stack.started_in, stack.imap_port, stack.smtp_port, stack.lmtp_port
    );
    let sent = Instant::now();
    stack
        .smtp_send(
            "support@example.com",
            &["client@customer.example"],
            &mail("support@example.com", "client@customer.example", "Ticket #1", "smtp-1"),
        )
        .await
        .expect("Postfix accepts mail for client@customer.example");
    let got = stack.wait_for_messages("client@customer.example", "INBOX", 1, MailStack::WAIT).await;
    eprintln!("delivered and visible over IMAP after {:?}", sent.elapsed());
    assert_eq!(got.len(), 1);
    let m = text(&got[0]);
    assert!(m.contains("Subject: Ticket #1\r\n"), "{m}");
    assert!(m.contains("Return-Path: <support@example.com>"), "{m}");
    assert!(m.contains("\r\n.leading dot line\r\n"), "dot-stuffing undone: {m}");
    assert!(!m.replace("\r\n", "").contains('\n'), "bare LF in {m}");
    // Addresses are case-insensitive: the same mailbox.
    assert_eq!(stack.count("Client@Customer.Example", "INBOX").await, 1);
    // Other users see nothing.
    assert_eq!(stack.count("other@customer.example", "INBOX").await, 0);
}

#[tokio::test]
async fn append_fetch_round_trip_and_flags() {
    let stack = MailStack::start();
    let user = "support@example.com";
    let first = mail("client@customer.example", user, "first", "a1");
    let second = mail("client@customer.example", user, "second", "a2");
    stack.append(user, "INBOX", &first).await;
    stack.append(user, "INBOX", &second).await;
    let got = stack.fetch_all(user, "INBOX").await;
    assert_eq!(got, vec![crlf(&first), crlf(&second)], "bytes and UID order preserved");
    assert_eq!(stack.count(user, "INBOX").await, 2);

    // fetch_all peeks: nothing is \Seen until set_seen_all.
    let flags = stack.fetch_with_flags(user, "INBOX").await;
    assert!(flags.iter().all(|(_, f)| !f.iter().any(|x| x == "\\Seen")), "{flags:?}");
    stack.set_seen_all(user, "INBOX").await;
    let flags = stack.fetch_with_flags(user, "INBOX").await;
    assert!(flags.iter().all(|(_, f)| f.iter().any(|x| x == "\\Seen")), "{flags:?}");

    // A missing folder is empty; append creates it; nested folders use '/'.
    assert_eq!(stack.count(user, "Processed").await, 0);
    assert!(stack.fetch_all(user, "Processed").await.is_empty());
    stack.append(user, "Processed", &first).await;
    stack.append_with_flags(user, "Archive/2026", &second, Some("(\\Seen)")).await;
    stack.create_folder(user, "Empty").await;
    stack.create_folder(user, "Empty").await;
    assert_eq!(stack.list_folders(user).await, vec!["Archive", "Archive/2026", "Empty", "INBOX", "Processed"]);
    assert_eq!(stack.fetch_all(user, "Processed").await, vec![crlf(&first)]);
    let archived = stack.fetch_with_flags(user, "Archive/2026").await;
    assert_eq!(archived[0].1, vec!["\\Seen".to_string()]);

    // Wrong password is refused.
    let tcp = tokio::net::TcpStream::connect((MailStack::HOST, stack.imap_port)).await.unwrap();
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await.unwrap();
    assert!(client.login(user, "wrong").await.is_err());
}

#[tokio::test]
async fn rejections_are_real_smtp_errors() {
    let stack = MailStack::start();
    let from = "support@example.com";
    let raw = mail(from, MailStack::BOUNCE, "to bounce", "b1");

    let err = stack.smtp_send(from, &[MailStack::BOUNCE], &raw).await.unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert_eq!(err.status().map(|c| c.to_string()), Some("550".to_string()), "{err}");
    let err = stack.smtp_send(from, &["bounce@example.org"], &raw).await.unwrap_err();
    assert!(err.is_permanent(), "{err}");

    let err = stack.smtp_send(from, &[MailStack::TEMPFAIL], &raw).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.status().map(|c| c.to_string()), Some("450".to_string()), "{err}");

    // Outside the test domains: refused at RCPT, nothing leaves the machine.
    let err = stack.smtp_send(from, &["someone@gmail.com"], &raw).await.unwrap_err();
    assert!(err.is_permanent(), "{err}");

    // Accepted, then bounced: a DSN reaches the sender.
    stack
        .smtp_send(from, &[MailStack::UNDELIVERABLE], &mail(from, MailStack::UNDELIVERABLE, "x", "u1"))
        .await
        .expect("accepted at RCPT");
    let dsn = stack.wait_for_messages(from, "INBOX", 1, MailStack::WAIT).await;
    let dsn = text(&dsn[0]);
    assert!(dsn.contains("Return-Path: <>"), "{dsn}");
    assert!(dsn.contains("multipart/report"), "{dsn}");
    assert!(dsn.contains("undeliverable@customer.example"), "{dsn}");
}

#[tokio::test]
async fn smtp_outage_and_recovery() {
    let stack = MailStack::start();
    let (from, to) = ("support@example.com", "client@customer.example");

    let t = Instant::now();
    stack.stop_smtp();
    eprintln!("stop_smtp took {:?}", t.elapsed());
    let err = stack.smtp_send(from, &[to], &mail(from, to, "during outage", "o1")).await.unwrap_err();
    assert!(!err.is_permanent(), "an outage is not a permanent failure: {err}");

    let t = Instant::now();
    stack.start_smtp();
    eprintln!("start_smtp took {:?}", t.elapsed());
    stack.smtp_send(from, &[to], &mail(from, to, "after outage", "o2")).await.expect("Postfix is back");
    let got = stack.wait_for_messages(to, "INBOX", 1, MailStack::WAIT).await;
    assert!(text(&got[0]).contains("Subject: after outage"));
}

#[tokio::test]
async fn imap_outage_defers_delivery_and_loses_nothing() {
    let stack = MailStack::start();
    let (from, to) = ("client@customer.example", "support@example.com");
    stack.append(to, "INBOX", &mail(from, to, "before", "i0")).await;

    let t = Instant::now();
    stack.stop_imap();
    eprintln!("stop_imap took {:?}", t.elapsed());
    assert!(stack.try_imap_session(to).await.is_err(), "IMAP is down");
    // Postfix still accepts; it defers delivery to the stopped LMTP.
    stack
        .smtp_send(from, &[to], &mail(from, to, "during IMAP outage", "i1"))
        .await
        .expect("Postfix queues while Dovecot is down");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let t = Instant::now();
    stack.start_imap();
    eprintln!("start_imap took {:?}", t.elapsed());
    let got = stack.wait_for_messages(to, "INBOX", 2, MailStack::WAIT).await;
    eprintln!("deferred mail delivered {:?} after restart", t.elapsed());
    assert!(text(&got[0]).contains("Subject: before"));
    assert!(text(&got[1]).contains("Subject: during IMAP outage"));
}

#[tokio::test]
async fn flush_delivers_deferred_mail_at_once() {
    let stack = MailStack::start();
    let (from, to) = ("client@customer.example", "support@example.com");
    stack.stop_imap();
    stack.smtp_send(from, &[to], &mail(from, to, "deferred", "f1")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stack.mail_queue().contains("Connection refused") {
        assert!(Instant::now() < deadline, "not deferred: {}", stack.mail_queue());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.start_imap();
    let t = Instant::now();
    stack.flush_queue();
    stack.wait_for_messages(to, "INBOX", 1, Duration::from_secs(3)).await;
    eprintln!("flushed mail delivered in {:?}", t.elapsed());
    assert!(stack.mail_queue().contains("empty"), "{}", stack.mail_queue());
}

#[tokio::test]
async fn vacation_responder_answers_through_postfix() {
    let stack = MailStack::start();
    let (customer, agent) = ("client@customer.example", "agent@support.example.com");
    stack.enable_vacation(agent, "Je suis absent jusqu'au 3 \"janvier\".");

    stack.smtp_send(customer, &[agent], &mail(customer, agent, "Besoin d'aide", "v1")).await.unwrap();
    let got = stack.wait_for_messages(customer, "INBOX", 1, MailStack::WAIT).await;
    let reply = text(&got[0]);
    assert!(reply.contains("Auto-Submitted: auto-replied"), "{reply}");
    assert!(reply.contains("Subject: Auto: Besoin d'aide"), "{reply}");
    assert!(reply.contains("In-Reply-To: <v1@customer.example>"), "{reply}");
    assert!(reply.contains("Je suis absent jusqu'au 3 \"janvier\"."), "{reply}");
    assert!(reply.contains("Return-Path: <>"), "{reply}");
    // The original reached the agent too.
    assert_eq!(stack.count(agent, "INBOX").await, 1);

    // A second mail from the same sender is not answered again (once a day).
    stack.smtp_send(customer, &[agent], &mail(customer, agent, "Encore", "v2")).await.unwrap();
    stack.wait_for_messages(agent, "INBOX", 2, MailStack::WAIT).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(stack.count(customer, "INBOX").await, 1);
}

#[tokio::test]
async fn eager_responder_answers_every_mail() {
    let stack = MailStack::start();
    let (customer, bot) = ("client@customer.example", "robot@other.example");
    stack.enable_vacation_every_time(bot, "Accusé de réception automatique.");
    for i in 0..3 {
        stack.smtp_send(customer, &[bot], &mail(customer, bot, &format!("n{i}"), &format!("e{i}"))).await.unwrap();
    }
    let got = stack.wait_for_messages(customer, "INBOX", 3, MailStack::WAIT).await;
    assert_eq!(got.len(), 3);
}

#[tokio::test]
async fn stacks_run_side_by_side() {
    let (a, b) = (MailStack::start(), MailStack::start());
    let mut ports = vec![a.imap_port, a.smtp_port, a.lmtp_port, b.imap_port, b.smtp_port, b.lmtp_port];
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 6, "distinct ports");
    let user = "client@customer.example";
    a.smtp_send("x@example.com", &[user], &mail("x@example.com", user, "to a", "p1")).await.unwrap();
    a.wait_for_messages(user, "INBOX", 1, MailStack::WAIT).await;
    assert_eq!(b.count(user, "INBOX").await, 0, "stacks share nothing");
    let dir = b.dir.path().to_path_buf();
    drop(b);
    assert!(!dir.exists(), "the stack's directory is removed on drop");
    assert_eq!(a.count(user, "INBOX").await, 1, "the other stack still runs");
}
