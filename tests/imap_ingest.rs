//! Inbound mail through a real Dovecot (and Postfix): `guichet run` reads the mailbox, and the
//! tests look at tickets through `guichet ticket N --json` and at the mailbox over IMAP.

mod common;

use std::time::Duration;

use common::guichet::{Config, HELPDESK, eventually, mail, mailbox};
use common::mail_stack::MailStack;

const WAIT: Duration = Duration::from_secs(60);

fn messages(t: &serde_json::Value) -> Vec<serde_json::Value> {
    t["messages"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_mail_sent_through_postfix_becomes_ticket_1_with_its_attachment_and_is_moved() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let _daemon = cfg.start();
    let raw = b"From: Marie <marie@customer.example>\nTo: support@example.com\nSubject: Imprimante en panne\nMessage-ID: <att1@customer.example>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain; charset=utf-8\n\nBonjour, voir la photo.\n--b\nContent-Type: image/png\nContent-Disposition: attachment; filename=\"photo.png\"\nContent-Transfer-Encoding: base64\n\niVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==\n--b--\n";
    stack.smtp_send("marie@customer.example", &[HELPDESK], raw).await.expect("Postfix accepts");
    let t = eventually(WAIT, "ticket 1", || cfg.ticket(1)).await;
    assert_eq!(t["subject"], "Imprimante en panne");
    assert_eq!(t["requester"], "marie@customer.example");
    assert_eq!(t["service"], "Support");
    let m = &messages(&t)[0];
    assert_eq!(m["text"], "Bonjour, voir la photo.");
    assert_eq!(m["attachments"][0]["name"], "photo.png");
    assert_eq!(m["attachments"][0]["content_type"], "image/png");
    // Marked processed after commit: moved out of INBOX, nothing deleted.
    eventually(WAIT, "the mail moved to Processed", || {
        let inbox = block(stack.count(HELPDESK, "INBOX"));
        let done = block(stack.count(HELPDESK, "Processed"));
        (inbox == 0 && done == 1).then_some(())
    })
    .await;
}

/// Runs a future to completion from synchronous code inside a multi-thread runtime.
fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_thread_by_token_and_by_in_reply_to_and_strangers_get_their_own_ticket() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let _daemon = cfg.start();
    stack
        .append(
            HELPDESK,
            "INBOX",
            &mail(
                "Marie <marie@customer.example>",
                "Écran noir",
                "t1@customer.example",
                "Cc: paul@customer.example\n",
                "L'écran reste noir.",
            ),
        )
        .await;
    eventually(WAIT, "ticket 1", || cfg.ticket(1)).await;
    // Subject rewritten, In-Reply-To kept.
    stack
        .append(
            HELPDESK,
            "INBOX",
            &mail(
                "marie@customer.example",
                "autre sujet",
                "t2@customer.example",
                "In-Reply-To: <t1@customer.example>\n",
                "Toujours noir.",
            ),
        )
        .await;
    // The Cc'd colleague answers the original mail.
    stack
        .append(
            HELPDESK,
            "INBOX",
            &mail(
                "paul@customer.example",
                "Re: Écran noir",
                "t3@customer.example",
                "In-Reply-To: <t1@customer.example>\nReferences: <t1@customer.example>\n",
                "Chez moi aussi.",
            ),
        )
        .await;
    // Token only.
    stack
        .append(
            HELPDESK,
            "INBOX",
            &mail("marie@customer.example", "RE: [Ticket #1] Écran noir", "t4@customer.example", "", "Merci."),
        )
        .await;
    // A stranger with the token.
    stack
        .append(
            HELPDESK,
            "INBOX",
            &mail("eve@other.example", "Re: [Ticket #1] Écran noir", "t5@other.example", "", "Montrez-moi."),
        )
        .await;
    let t1 = eventually(WAIT, "4 messages on ticket 1", || cfg.ticket(1).filter(|t| messages(t).len() >= 4)).await;
    let froms: Vec<String> = messages(&t1).iter().map(|m| m["from"].as_str().unwrap().to_string()).collect();
    assert_eq!(
        froms,
        ["marie@customer.example", "marie@customer.example", "paul@customer.example", "marie@customer.example"]
    );
    let t2 = eventually(WAIT, "ticket 2", || cfg.ticket(2)).await;
    assert_eq!(t2["requester"], "eve@other.example");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_mail_delivered_twice_and_a_mailbox_read_by_a_person_lose_and_duplicate_nothing() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let m = mail("marie@customer.example", "Doublon", "dup@customer.example", "", "Une fois.");
    stack.append(HELPDESK, "INBOX", &m).await;
    stack.append(HELPDESK, "INBOX", &m).await;
    stack
        .append(
            HELPDESK,
            "INBOX",
            &mail("jean@customer.example", "Lu par quelqu'un", "seen@customer.example", "", "déjà lu"),
        )
        .await;
    // Someone reads the shared mailbox before the daemon runs: \Seen must not hide anything.
    stack.set_seen_all(HELPDESK, "INBOX").await;
    let _daemon = cfg.start();
    eventually(WAIT, "INBOX emptied", || (block(stack.count(HELPDESK, "INBOX")) == 0).then_some(())).await;
    let tickets = cfg.tickets();
    assert_eq!(tickets.len(), 2, "{tickets:?}");
    assert_eq!(messages(&cfg.ticket(1).unwrap()).len() + messages(&cfg.ticket(2).unwrap()).len(), 2);
    assert_eq!(stack.count(HELPDESK, "Processed").await, 3, "every copy kept, none deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_between_commit_and_move_makes_no_duplicate() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let m = mail("marie@customer.example", "Crash", "crash@customer.example", "", "Avant le crash.");
    stack.append(HELPDESK, "INBOX", &m).await;
    // The state a SIGKILL leaves between the commit and the MOVE: stored, still in INBOX.
    let file = cfg.dir.path().join("crash.eml");
    std::fs::write(&file, String::from_utf8_lossy(&m).replace('\n', "\r\n")).unwrap();
    assert!(cfg.cli(&["ingest", file.to_str().unwrap()]).status.success());
    let sent_before = cfg.status()["outbox"]["pending"].as_i64().unwrap();
    let _daemon = cfg.start();
    eventually(WAIT, "INBOX emptied", || (block(stack.count(HELPDESK, "INBOX")) == 0).then_some(())).await;
    assert_eq!(cfg.tickets().len(), 1);
    assert_eq!(messages(&cfg.ticket(1).unwrap()).len(), 1);
    let status = cfg.status();
    let outbox = &status["outbox"];
    let total =
        outbox["pending"].as_i64().unwrap() + outbox["sent"].as_i64().unwrap() + outbox["failed"].as_i64().unwrap();
    assert_eq!(total, sent_before, "no second set of notifications");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_mail_is_quarantined_and_the_next_one_processed() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    stack.append(HELPDESK, "INBOX", b"Subject: no sender here\nMessage-ID: <broken@x.example>\n\nwho sent me?\n").await;
    stack
        .append(HELPDESK, "INBOX", &mail("marie@customer.example", "Après", "after@customer.example", "", "suivant"))
        .await;
    let _daemon = cfg.start();
    let t = eventually(WAIT, "ticket 1", || cfg.ticket(1)).await;
    assert_eq!(t["subject"], "Après");
    let out = cfg.cli(&["quarantine", "list", "--json"]);
    let q: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(q.as_array().unwrap().len(), 1, "{q}");
    assert!(q[0]["reason"].as_str().unwrap().contains("From"), "{q}");
    eventually(WAIT, "both moved", || (block(stack.count(HELPDESK, "Processed")) == 2).then_some(())).await;
    let status = cfg.status();
    assert_eq!(status["mailboxes"][0]["quarantined"], 1);
    assert_eq!(status["mailboxes"][0]["ingested"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_the_database_refuses_mid_batch_is_quarantined_alone_and_the_batch_is_moved() {
    // One IMAP batch of three; the database refuses the second one's message (a trigger). The
    // batch is written again, each mail in a savepoint: two tickets, one mail in quarantine,
    // all three moved.
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    common::guichet::refuse_messages_titled_boom(&cfg.database_url);
    for (n, subject) in ["Imprimante", "boom", "Scanner"].iter().enumerate() {
        let m = mail(&format!("c{n}@customer.example"), subject, &format!("r{n}@customer.example"), "", "x");
        stack.append(HELPDESK, "INBOX", &m).await;
    }
    let _daemon = cfg.start();
    eventually(WAIT, "all three moved", || (block(stack.count(HELPDESK, "Processed")) == 3).then_some(())).await;
    let subjects: Vec<String> = cfg.tickets().iter().map(|t| t["subject"].as_str().unwrap().to_string()).collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(subjects.contains(&"Imprimante".to_string()) && subjects.contains(&"Scanner".to_string()), "{subjects:?}");
    let out = cfg.cli(&["quarantine", "list", "--json"]);
    let q: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(q.as_array().unwrap().len(), 1, "{q}");
    assert!(q[0]["reason"].as_str().unwrap().contains("refused by the test"), "{q}");
    let status = cfg.status();
    assert_eq!(status["mailboxes"][0]["quarantined"], 1, "{status}");
    assert_eq!(status["mailboxes"][0]["ingested"], 2, "{status}");
    assert_eq!(stack.count(HELPDESK, "INBOX").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_larger_than_a_batch_is_ingested_oldest_first() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", &mailbox(&stack, "batch_size = 7"));
    for i in 0..30 {
        stack
            .append(
                HELPDESK,
                "INBOX",
                &mail(&format!("c{i}@customer.example"), &format!("n°{i}"), &format!("b{i}@customer.example"), "", "x"),
            )
            .await;
    }
    let _daemon = cfg.start();
    eventually(WAIT, "30 tickets", || (cfg.tickets().len() == 30).then_some(())).await;
    // Oldest first: ticket numbers follow the mailbox order.
    assert_eq!(cfg.ticket(1).unwrap()["subject"], "n°0");
    assert_eq!(cfg.ticket(30).unwrap()["subject"], "n°29");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imap_outage_shows_in_status_and_the_daemon_recovers_alone() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    stack.stop_imap();
    let mut daemon = cfg.start();
    eventually(WAIT, "the error in status", || {
        let s = cfg.status();
        s["mailboxes"][0]["last_error"].as_str().map(str::to_string)
    })
    .await;
    stack.start_imap();
    stack
        .append(HELPDESK, "INBOX", &mail("marie@customer.example", "Après panne", "outage@customer.example", "", "x"))
        .await;
    eventually(Duration::from_secs(60), "ticket 1 after the outage", || cfg.ticket(1)).await;
    assert!(daemon.stop().success(), "SIGTERM exits 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_on_first_run_imports_old_mail_silently_then_answers_new_mail() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", &mailbox(&stack, "on_first_run = \"archive\""));
    stack.append(HELPDESK, "INBOX", &mail("old@customer.example", "Ancien", "old@customer.example", "", "x")).await;
    let _daemon = cfg.start();
    eventually(WAIT, "ticket 1", || cfg.ticket(1)).await;
    stack.append(HELPDESK, "INBOX", &mail("new@customer.example", "Nouveau", "new@customer.example", "", "x")).await;
    eventually(WAIT, "ticket 2", || cfg.ticket(2)).await;
    eventually(WAIT, "the acknowledgement of the new mail", || {
        (block(stack.count("new@customer.example", "INBOX")) == 1).then_some(())
    })
    .await;
    assert_eq!(stack.count("old@customer.example", "INBOX").await, 0, "archived mail is never answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_processed_folder_mail_is_flagged_and_a_uid_cursor_skips_nothing() {
    let stack = MailStack::start();
    let cfg = Config::new(
        &stack,
        "",
        &mailbox(&stack, "processed_folder = \"\"").replace("processed_folder = \"Processed\"\n", ""),
    );
    stack.append(HELPDESK, "INBOX", &mail("a@customer.example", "un", "c1@customer.example", "", "x")).await;
    let _daemon = cfg.start();
    eventually(WAIT, "ticket 1", || cfg.ticket(1)).await;
    stack.append(HELPDESK, "INBOX", &mail("b@customer.example", "deux", "c2@customer.example", "", "x")).await;
    eventually(WAIT, "ticket 2", || cfg.ticket(2)).await;
    assert_eq!(stack.count(HELPDESK, "INBOX").await, 2, "left in place");
    assert_eq!(cfg.tickets().len(), 2);
}
