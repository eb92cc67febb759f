//! Outgoing mail through the real Postfix into real Dovecot mailboxes, read back over IMAP.

mod common;

use std::time::Duration;

use common::guichet::{Config, HELPDESK, eventually, header, mail};
use common::mail_stack::MailStack;

const WAIT: Duration = Duration::from_secs(60);
const CUSTOMER: &str = "marie@customer.example";

fn messages(t: &serde_json::Value) -> Vec<serde_json::Value> {
    t["messages"].as_array().cloned().unwrap_or_default()
}

fn body_text(raw: &[u8]) -> String {
    let m = mail_parser::MessageParser::default().parse(raw).expect("a mail");
    m.body_text(0).map(|t| t.into_owned()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_mail_gets_exactly_one_threaded_acknowledgement_and_replying_to_it_joins_the_ticket() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let _daemon = cfg.start();
    let first =
        mail("Marie <marie@customer.example>", "Imprimante bloquée", "ack1@customer.example", "", "Elle clignote.");
    stack.smtp_send(CUSTOMER, &[HELPDESK], &first).await.expect("Postfix accepts");
    let acks = stack.wait_for_messages(CUSTOMER, "INBOX", 1, WAIT).await;
    let ack = &acks[0];
    assert_eq!(header(ack, "In-Reply-To").as_deref(), Some("<ack1@customer.example>"));
    assert_eq!(header(ack, "Auto-Submitted").as_deref(), Some("auto-replied"));
    assert!(header(ack, "Subject").unwrap().contains("[Ticket #1]"));
    assert!(header(ack, "From").unwrap().contains(HELPDESK));
    assert!(header(ack, "X-Guichet-Loop").is_some());
    assert!(body_text(ack).contains(&format!("http://127.0.0.1:{}/tickets/1", cfg.web_port)));

    // The customer answers the acknowledgement from their mail client.
    let ours = header(ack, "Message-ID").unwrap();
    let subject = format!("Re: {}", header(ack, "Subject").unwrap());
    let reply = mail(
        CUSTOMER,
        &subject,
        "ack2@customer.example",
        &format!("In-Reply-To: {ours}\nReferences: {ours}\n"),
        "Merci !\n\nLe lun. 30 nov. 2026, Support a écrit :\n> Nous avons bien reçu",
    );
    stack.smtp_send(CUSTOMER, &[HELPDESK], &reply).await.expect("Postfix accepts");
    let t = eventually(WAIT, "the reply on ticket 1", || cfg.ticket(1).filter(|t| messages(t).len() == 2)).await;
    assert_eq!(messages(&t)[1]["text"], "Merci !");
    // Still exactly one mail in the customer's mailbox: a customer answer goes to staff only.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stack.count(CUSTOMER, "INBOX").await, 1);
    assert!(stack.count(common::guichet::STAFF, "INBOX").await >= 2, "staff hear of the ticket and of the answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_office_responders_never_loop_and_change_no_status() {
    let stack = MailStack::start();
    // A real Sieve vacation responder: it must keep quiet on our mails (Auto-Submitted on the
    // acknowledgement, X-Auto-Response-Suppress on every mail).
    stack.enable_vacation_every_time(CUSTOMER, "Je suis absente jusqu'au 4 décembre.");
    let cfg = Config::new(&stack, "", "");
    let _daemon = cfg.start();
    stack
        .smtp_send(CUSTOMER, &[HELPDESK], &mail(CUSTOMER, "Question", "q1@customer.example", "", "Bonjour"))
        .await
        .expect("Postfix accepts");
    eventually(WAIT, "ticket 1", || cfg.ticket(1)).await;
    let alert = stack.wait_for_messages(common::guichet::STAFF, "INBOX", 1, WAIT).await.remove(0);
    let (to, answer) = common::guichet::reply(&alert, common::guichet::STAFF, "s1@example.com", "Voici la réponse.");
    stack.smtp_send(common::guichet::STAFF, &[&to], &answer).await.expect("Postfix accepts");
    let relayed = stack.wait_for_messages(CUSTOMER, "INBOX", 2, WAIT).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(stack.dovecot_log().contains("discarding vacation response"), "the responder saw our mails and kept quiet");
    let mails_on_ticket = messages(&cfg.ticket(1).unwrap()).iter().filter(|m| m["kind"] != "event").count();
    assert_eq!(mails_on_ticket, 2, "no automatic answer came back");

    // A responder that ignores those headers (like some webmails) answers anyway.
    let ours = header(&relayed[1], "Message-ID").unwrap();
    let ooo = mail(
        CUSTOMER,
        "Réponse automatique : [Ticket #1] Question",
        "ooo1@customer.example",
        &format!("Auto-Submitted: auto-replied\nIn-Reply-To: {ours}\n"),
        "Je suis absente jusqu'au 4 décembre.",
    );
    stack.smtp_send("", &[HELPDESK], &ooo).await.expect("Postfix accepts");
    let t = eventually(WAIT, "the out-of-office on ticket 1", || {
        cfg.ticket(1).filter(|t| messages(t).iter().any(|m| m["auto"] == true))
    })
    .await;
    assert_eq!(t["status"], "waiting", "an out-of-office leaves a waiting ticket waiting");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stack.count(CUSTOMER, "INBOX").await, 2, "the acknowledgement and the answer, nothing more");
    assert_eq!(cfg.tickets().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_robot_writing_again_and_again_gets_at_most_the_rate_limit_of_automatic_mail() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "auto_reply_limit = { count = 3, hours = 3 }", "");
    let _daemon = cfg.start();
    for i in 0..8 {
        let m = mail(
            "robot@customer.example",
            &format!("Alerte {i}"),
            &format!("robot{i}@customer.example"),
            "",
            "disk full",
        );
        stack.smtp_send("robot@customer.example", &[HELPDESK], &m).await.expect("Postfix accepts");
    }
    eventually(WAIT, "8 tickets", || (cfg.tickets().len() == 8).then_some(())).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stack.count("robot@customer.example", "INBOX").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_robots_backlog_read_in_one_batch_gets_at_most_the_rate_limit_of_automatic_mail() {
    // The mails are in the mailbox before the daemon starts: one IMAP batch, one transaction,
    // whose acknowledgements are held until its COMMIT. The limit must count them all the same.
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "auto_reply_limit = { count = 3, hours = 3 }", "");
    for i in 0..8 {
        let m = mail("robot@customer.example", &format!("Alerte {i}"), &format!("burst{i}@customer.example"), "", "x");
        stack.append(HELPDESK, "INBOX", &m).await;
    }
    let _daemon = cfg.start();
    eventually(WAIT, "8 tickets", || (cfg.tickets().len() == 8).then_some(())).await;
    eventually(WAIT, "the outbox sent", || (cfg.status()["outbox"]["pending"] == 0).then_some(())).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stack.count("robot@customer.example", "INBOX").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postfix_down_notifications_wait_and_then_arrive_exactly_once() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    // Mail arrives straight into the mailbox while Postfix is stopped.
    stack.stop_smtp();
    let _daemon = cfg.start();
    for i in 0..3 {
        let from = format!("client{i}@customer.example");
        stack
            .append(
                HELPDESK,
                "INBOX",
                &mail(&from, &format!("Panne {i}"), &format!("down{i}@customer.example"), "", "x"),
            )
            .await;
    }
    eventually(WAIT, "3 tickets", || (cfg.tickets().len() == 3).then_some(())).await;
    eventually(WAIT, "a delayed attempt in status", || {
        let s = cfg.status();
        (s["outbox"]["retrying"].as_i64().unwrap_or(0) > 0).then_some(())
    })
    .await;
    stack.start_smtp();
    for i in 0..3 {
        stack.wait_for_messages(&format!("client{i}@customer.example"), "INBOX", 1, Duration::from_secs(90)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in 0..3 {
        assert_eq!(stack.count(&format!("client{i}@customer.example"), "INBOX").await, 1, "exactly once");
    }
    assert_eq!(cfg.status()["outbox"]["pending"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_refusal_marks_the_notification_failed_on_the_ticket() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let _daemon = cfg.start();
    stack.append(HELPDESK, "INBOX", &mail(MailStack::BOUNCE, "Je n'existe pas", "b1@customer.example", "", "x")).await;
    let t = eventually(WAIT, "the refusal recorded on ticket 1", || {
        cfg.ticket(1).filter(|t| {
            messages(t).iter().any(|m| m["kind"] == "event" && m["text"].as_str().unwrap_or("").contains("550"))
        })
    })
    .await;
    assert_eq!(t["requester"], MailStack::BOUNCE);
    assert_eq!(cfg.status()["outbox"]["failed"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounce_after_acceptance_marks_the_address_undeliverable_and_opens_no_ticket() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let _daemon = cfg.start();
    stack
        .append(HELPDESK, "INBOX", &mail(MailStack::UNDELIVERABLE, "Adresse morte", "u1@customer.example", "", "x"))
        .await;
    // Postfix accepts our acknowledgement, then bounces it: the report comes back to support@.
    let t = eventually(WAIT, "the delivery failure on ticket 1", || {
        cfg.ticket(1).filter(|t| {
            messages(t)
                .iter()
                .any(|m| m["kind"] == "event" && m["text"].as_str().unwrap_or("").contains(MailStack::UNDELIVERABLE))
        })
    })
    .await;
    assert_eq!(t["number"], 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(cfg.tickets().len(), 1, "a delivery report never opens a ticket");
    assert_eq!(cfg.status()["outbox"]["failed"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_injection_attempt_yields_a_clean_mail() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let _daemon = cfg.start();
    let raw = "From: =?UTF-8?B?RXZlDQpCY2M6IHZpY3RpbUBjdXN0b21lci5leGFtcGxl?= <eve@customer.example>\nTo: support@example.com\nSubject: =?UTF-8?B?SGVsbG8NCkJjYzogdmljdGltQGN1c3RvbWVyLmV4YW1wbGU=?=\nMessage-ID: <inj@customer.example>\n\nbonjour\n";
    stack.append(HELPDESK, "INBOX", raw.as_bytes()).await;
    let acks = stack.wait_for_messages("eve@customer.example", "INBOX", 1, WAIT).await;
    let parsed = mail_parser::MessageParser::default().parse(&acks[0]).unwrap();
    assert!(parsed.header_raw("Bcc").is_none());
    assert!(!parsed.subject().unwrap_or("").contains('\n'));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stack.count("victim@customer.example", "INBOX").await, 0, "nothing reached the injected address");
}
