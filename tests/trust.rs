//! SPEC §7, mail side: nobody acts as someone else by mail, and one mail cannot make the helpdesk
//! send many. Each attack goes through the real Postfix and Dovecot to `guichet run`, and fails
//! without its defence. Legitimate flows answer with the mail client's "Reply", to the Reply-To of
//! the mail received.

mod common;

use std::time::Duration;

use common::guichet::{Config, HELPDESK, STAFF, eventually, header, mail, reply, reply_with};
use common::mail_stack::MailStack;

const WAIT: Duration = Duration::from_secs(60);
const CUSTOMER: &str = "marie@customer.example";
const ATTACKER: &str = "eve@customer.example";

fn messages(t: &serde_json::Value) -> Vec<serde_json::Value> {
    t["messages"].as_array().cloned().unwrap_or_default()
}

fn text_of(raw: &[u8]) -> String {
    mail_parser::MessageParser::default().parse(raw).unwrap().body_text(0).unwrap_or_default().into_owned()
}

/// A running daemon with ticket 1 opened by the customer, its acknowledgement and staff alert
/// delivered: (acknowledgement, alert).
async fn ticket_opened(stack: &MailStack, cfg: &Config) -> (Vec<u8>, Vec<u8>) {
    let first = mail(CUSTOMER, "Imprimante bloquée", "m1@customer.example", "", "L'imprimante est bloquée.");
    stack.smtp_send(CUSTOMER, &[HELPDESK], &first).await.expect("accepted");
    eventually(WAIT, "ticket 1", || cfg.ticket(1)).await;
    let ack = stack.wait_for_messages(CUSTOMER, "INBOX", 1, WAIT).await.remove(0);
    let alert = stack.wait_for_messages(STAFF, "INBOX", 1, WAIT).await.remove(0);
    (ack, alert)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_staff_command_changes_nothing_relays_nothing_and_the_staff_member_is_told() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let _daemon = cfg.start();
    ticket_opened(&stack, &cfg).await;

    // Anyone can write Alice's address in From: and the ticket token in the subject.
    let forged = mail(
        "Alice <alice@example.com>",
        "Re: [Ticket #1] Imprimante bloquée",
        "forged1@evil.example",
        "",
        "#priority blocking\n#status closed\nVotre compte expire : http://phishing.example/login",
    );
    stack.smtp_send(ATTACKER, &[HELPDESK], &forged).await.expect("accepted");

    let t =
        eventually(WAIT, "the forged mail kept on ticket 1", || cfg.ticket(1).filter(|t| messages(t).len() > 1)).await;
    let kept = messages(&t).into_iter().last().unwrap();
    assert_eq!(kept["kind"], "note", "{kept}");
    assert_eq!(kept["unverified"], true, "{kept}");
    assert_eq!(t["status"], "new", "no command ran");
    assert_eq!(t["priority"], "normal", "no command ran");
    let told = stack.wait_for_messages(STAFF, "INBOX", 2, WAIT).await;
    let warning = told.iter().find(|m| text_of(m).contains("phishing.example")).expect("Alice is told");
    assert!(header(warning, "Subject").unwrap().contains("[Ticket #1]"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stack.count(CUSTOMER, "INBOX").await, 1, "only the acknowledgement: nothing relayed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_reply_to_the_alert_is_authenticated_and_relayed() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let _daemon = cfg.start();
    let (_, alert) = ticket_opened(&stack, &cfg).await;

    let (to, answer) =
        reply(&alert, "Alice <alice@example.com>", "a1@example.com", "#priority blocking\nRedémarrez-la.");
    stack.smtp_send(STAFF, &[&to], &answer).await.expect("accepted");

    let got = stack.wait_for_messages(CUSTOMER, "INBOX", 2, WAIT).await;
    assert!(got.iter().any(|m| text_of(m).contains("Redémarrez-la")));
    let t = cfg.ticket(1).unwrap();
    assert_eq!(t["priority"], "blocking");
    assert_eq!(t["status"], "waiting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_from_headers_with_a_pass_for_the_wrong_domain_run_no_command() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let _daemon = cfg.start();
    let (_, alert) = ticket_opened(&stack, &cfg).await;

    // Even to Alice's genuine reply address (leaked, say) and with a trusted "pass" for the
    // attacker's own domain: two senders, so authenticated as nobody.
    let (to, _) = reply(&alert, STAFF, "x@example.com", "");
    let forged = format!(
        "Authentication-Results: mx.example.com; dkim=pass header.d=evil.example; dmarc=pass header.from=evil.example\n\
         From: alice@example.com\nFrom: eve@evil.example\nTo: {to}\nSubject: Re: [Ticket #1] Imprimante bloquée\n\
         Message-ID: <twofrom@evil.example>\n\n#status closed\nFermé.\n"
    );
    stack.smtp_send("eve@evil.example", &[&to], forged.as_bytes()).await.expect("accepted");

    eventually(WAIT, "the mail ingested", || {
        (cfg.status()["mailboxes"][0]["ingested"].as_i64() == Some(2)).then_some(())
    })
    .await;
    let t = cfg.ticket(1).unwrap();
    assert_eq!(t["status"], "new", "no command ran");
    assert!(messages(&t).iter().all(|m| m["kind"] != "staff"), "{t}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stack.count(CUSTOMER, "INBOX").await, 1, "nothing relayed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_customer_reply_with_a_cc_adds_no_watcher_but_a_real_reply_does() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let _daemon = cfg.start();
    let (ack, _) = ticket_opened(&stack, &cfg).await;

    let forged = mail(
        CUSTOMER,
        "Re: [Ticket #1] Imprimante bloquée",
        "forged2@evil.example",
        &format!("Cc: {ATTACKER}\n"),
        "Merci d'ajouter mon collègue.",
    );
    stack.smtp_send(ATTACKER, &[HELPDESK], &forged).await.expect("accepted");
    let t = eventually(WAIT, "the forged reply on ticket 1", || cfg.ticket(1).filter(|t| messages(t).len() > 1)).await;
    let kept = messages(&t).into_iter().find(|m| m["text"].as_str().unwrap().contains("collègue")).unwrap();
    assert_eq!(kept["unverified"], true, "{kept}");
    assert_eq!(t["watchers"], serde_json::json!([]), "no access for the attacker");

    // Marie's own "Reply" to the acknowledgement, with her boss in Cc, is hers: the boss watches.
    let (to, real) =
        reply_with(&ack, CUSTOMER, "m2@customer.example", "Cc: boss@customer.example\n", "Mon chef suivra aussi.");
    stack.smtp_send(CUSTOMER, &[&to], &real).await.expect("accepted");
    let t = eventually(WAIT, "the boss as watcher", || {
        cfg.ticket(1).filter(|t| t["watchers"] == serde_json::json!(["boss@customer.example"]))
    })
    .await;
    let kept = messages(&t).into_iter().find(|m| m["text"].as_str().unwrap().contains("chef")).unwrap();
    assert_eq!(kept["unverified"], false, "{kept}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_delivery_report_cuts_nobody_else_off() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let _daemon = cfg.start();
    let (ack, _) = ticket_opened(&stack, &cfg).await;
    let ours = header(&ack, "Message-ID").unwrap();

    // A "report" about Marie's acknowledgement naming Paul and Alice as failed recipients.
    let report = format!(
        "From: MAILER-DAEMON@mx.customer.example\nTo: {HELPDESK}\nSubject: Undelivered Mail Returned to Sender\n\
         Message-ID: <dsn-forged@mx.customer.example>\nMIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\n\n--r\nContent-Type: text/plain\n\n\
         Delivery failed.\n--r\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.customer.example\n\n\
         Final-Recipient: rfc822; paul@customer.example\nAction: failed\nStatus: 5.1.1\n\n\
         Final-Recipient: rfc822; alice@example.com\nAction: failed\nStatus: 5.1.1\n\
         --r\nContent-Type: text/rfc822-headers\n\nFrom: {HELPDESK}\nTo: {CUSTOMER}\nMessage-ID: {ours}\n--r--\n"
    );
    stack.smtp_send("", &[HELPDESK], report.as_bytes()).await.expect("accepted");
    eventually(WAIT, "the report processed", || {
        let status = cfg.status();
        (status["mailboxes"][0]["ingested"].as_i64() == Some(2)).then_some(())
    })
    .await;

    // Paul still gets his acknowledgement, Alice her alert.
    let second = mail("paul@customer.example", "Écran noir", "p1@customer.example", "", "Plus d'image.");
    stack.smtp_send("paul@customer.example", &[HELPDESK], &second).await.expect("accepted");
    let paul = stack.wait_for_messages("paul@customer.example", "INBOX", 1, WAIT).await;
    assert!(header(&paul[0], "Subject").unwrap().contains("[Ticket #2]"));
    stack.wait_for_messages(STAFF, "INBOX", 2, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_addresses_in_cc_cause_exactly_one_automatic_mail() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let _daemon = cfg.start();
    let cc: Vec<String> = (0..40).map(|i| format!("target{i}@customer.example")).collect();
    let raw = mail(
        ATTACKER,
        "Gagnez un iPhone : http://spam.example",
        "fortycc@customer.example",
        &format!("Cc: {}\n", cc.join(", ")),
        "Cliquez ici.",
    );
    // Delivered to the helpdesk only: the Cc header is all the attacker needs.
    stack.smtp_send(ATTACKER, &[HELPDESK], &raw).await.expect("accepted");

    let t = eventually(WAIT, "ticket 1", || cfg.ticket(1)).await;
    assert_eq!(t["watchers"].as_array().unwrap().len(), 10, "at most 10 watchers per mail: {t}");
    stack.wait_for_messages(ATTACKER, "INBOX", 1, WAIT).await;
    stack.wait_for_messages(STAFF, "INBOX", 1, WAIT).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut to_targets = 0;
    for address in &cc {
        to_targets += stack.count(address, "INBOX").await;
    }
    assert_eq!(to_targets, 0, "no mail to the Cc'd addresses");
    assert_eq!(stack.count(ATTACKER, "INBOX").await, 1, "one acknowledgement, to From only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spam_verdict_goes_to_quarantine_and_retry_makes_it_a_ticket() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let _daemon = cfg.start();
    let raw = mail(
        "promo@shop.example",
        "Offre exceptionnelle",
        "spam1@shop.example",
        "X-Spam-Flag: YES\nX-Spam-Status: Yes, score=9.1\n",
        "Achetez maintenant.",
    );
    stack.smtp_send("promo@shop.example", &[HELPDESK], &raw).await.expect("accepted");

    let entries = eventually(WAIT, "the spam in quarantine", || {
        let out = cfg.cli(&["quarantine", "list", "--json"]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        list.as_array().filter(|a| !a.is_empty()).cloned()
    })
    .await;
    assert_eq!(entries[0]["reason"], "spam", "{entries:?}");
    assert!(cfg.ticket(1).is_none(), "spam opens nothing");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stack.count("promo@shop.example", "INBOX").await, 0, "spam is answered by nothing");

    let id = entries[0]["id"].as_i64().unwrap().to_string();
    let out = cfg.cli(&["quarantine", "retry", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(cfg.ticket(1).unwrap()["requester"], "promo@shop.example");
}

#[test]
fn ingest_with_a_broken_configuration_asks_the_mta_to_retry() {
    let dir = tempfile::tempdir().unwrap();
    let raw = b"From: marie@customer.example\r\nTo: support@example.com\r\nSubject: x\r\nMessage-ID: <p@c.example>\r\n\r\nx\r\n";
    for (what, toml) in [
        ("an unknown key", "[helpdesk]\naddress = \"support@example.com\"\nstaf = []\n"),
        ("a bad value", "[helpdesk]\naddress = \"not an address\"\n"),
        ("a missing file", ""),
    ] {
        let path = dir.path().join("guichet.toml");
        if toml.is_empty() {
            let _ = std::fs::remove_file(&path);
        } else {
            std::fs::write(&path, toml).unwrap();
        }
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_guichet"))
            .arg("-c")
            .arg(&path)
            .arg("ingest")
            .env_remove("GUICHET_CONFIG")
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(raw).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(75), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // Outside pipe mode a bad configuration is the operator's error (78).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_guichet"))
        .arg("-c")
        .arg(dir.path().join("nothing.toml"))
        .arg("tickets")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
}
