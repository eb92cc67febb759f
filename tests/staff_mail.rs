//! Staff work from their own mail client, through the real Postfix and Dovecot (SPEC §3).

mod common;

use std::time::Duration;

use common::guichet::{Config, HELPDESK, STAFF, eventually, header, mail, reply, reply_address_of};
use common::mail_stack::MailStack;

const WAIT: Duration = Duration::from_secs(60);
const CUSTOMER: &str = "marie@customer.example";
const COLLEAGUE: &str = "paul@customer.example";

fn messages(t: &serde_json::Value) -> Vec<serde_json::Value> {
    t["messages"].as_array().cloned().unwrap_or_default()
}

fn text_of(raw: &[u8]) -> String {
    mail_parser::MessageParser::default().parse(raw).unwrap().body_text(0).unwrap_or_default().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_answer_from_their_mailbox_and_the_customer_gets_it_from_the_helpdesk() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let _daemon = cfg.start();
    let first = mail(
        "Marie <marie@customer.example>",
        "Accès refusé",
        "c1@customer.example",
        &format!("Cc: {COLLEAGUE}\n"),
        "Je ne peux plus me connecter.",
    );
    stack.smtp_send(CUSTOMER, &[HELPDESK, COLLEAGUE], &first).await.expect("accepted");

    // Staff receive the alert and answer it from their own client.
    let alerts = stack.wait_for_messages(STAFF, "INBOX", 1, WAIT).await;
    let (to, answer) =
        reply(&alerts[0], "Alice Bernard <alice@example.com>", "a1@example.com", "Bonjour, votre compte est débloqué.");
    assert!(to.starts_with("support+1-"), "the alert's Reply-To is Alice's signed reply address: {to}");
    stack.smtp_send(STAFF, &[&to], &answer).await.expect("accepted");

    // Acknowledgement + relayed answer, for the requester and the Cc'd colleague alike.
    let got = stack.wait_for_messages(CUSTOMER, "INBOX", 2, WAIT).await;
    let relayed = got.iter().find(|m| text_of(m).contains("débloqué")).expect("the staff answer arrives");
    let from = header(relayed, "From").unwrap();
    assert!(from.contains(HELPDESK) && !from.contains("alice@"), "{from}");
    assert!(
        !String::from_utf8_lossy(relayed).contains("alice@example.com"),
        "the staff address never reaches the customer"
    );
    assert!(!text_of(relayed).contains("a écrit"), "quoted history is not relayed");
    assert!(header(relayed, "Subject").unwrap().contains("[Ticket #1]"));
    assert!(
        header(relayed, "References").unwrap().contains("<c1@customer.example>"),
        "threaded for the customer's client"
    );
    assert!(header(relayed, "Auto-Submitted").is_none(), "a human answer is not auto-submitted");
    // The Cc copy of the original and the answer: a watcher is not acknowledged (SPEC §7).
    let colleague = stack.wait_for_messages(COLLEAGUE, "INBOX", 2, WAIT).await;
    assert!(colleague.iter().any(|m| text_of(m).contains("débloqué")));
    assert_eq!(cfg.ticket(1).unwrap()["status"], "waiting");

    // The Cc'd colleague answers the original mail: it joins the ticket...
    let (_, from_colleague) = reply(&first, COLLEAGUE, "p1@customer.example", "Chez moi aussi ça bloque.");
    stack.smtp_send(COLLEAGUE, &[HELPDESK], &from_colleague).await.expect("accepted");
    eventually(WAIT, "the colleague's answer on ticket 1", || {
        cfg.ticket(1).filter(|t| messages(t).iter().any(|m| m["from"] == COLLEAGUE))
    })
    .await;
    // ...and the next staff answer reaches both, with its file (read back from the database
    // when the notification is composed, at sending time).
    let file: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &file);
    let lines: Vec<&str> = encoded.as_bytes().chunks(76).map(|l| std::str::from_utf8(l).unwrap()).collect();
    let second = format!(
        "From: {STAFF}\r\nTo: {to}\r\nSubject: Re: [Ticket #1] Acces refuse\r\nMessage-ID: <a2@example.com>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"sep\"\r\n\r\n\
         --sep\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nDebloque pour vous deux, la procedure est jointe.\r\n\
         --sep\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"procedure.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--sep--\r\n",
        lines.join("\r\n")
    );
    stack.smtp_send(STAFF, &[&to], second.as_bytes()).await.expect("accepted");
    stack.wait_for_messages(CUSTOMER, "INBOX", 3, WAIT).await;
    let c = stack.wait_for_messages(COLLEAGUE, "INBOX", 3, WAIT).await;
    let answer = c.iter().find(|m| text_of(m).contains("vous deux")).expect("the second answer arrives");
    let parsed = mail_parser::MessageParser::default().parse(&answer[..]).unwrap();
    let relayed_file =
        parsed.attachments().find(|a| mail_parser::MimeHeaders::attachment_name(*a) == Some("procedure.pdf"));
    assert_eq!(relayed_file.map(|a| a.contents().to_vec()), Some(file), "the file is relayed as it was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_reach_no_customer_closing_closes_and_a_customer_answer_reopens() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let _daemon = cfg.start();
    stack
        .smtp_send(
            CUSTOMER,
            &[HELPDESK],
            &mail(CUSTOMER, "Facture", "f1@customer.example", "", "La facture est fausse."),
        )
        .await
        .expect("accepted");
    stack.wait_for_messages(CUSTOMER, "INBOX", 1, WAIT).await; // the acknowledgement
    let alert = stack.wait_for_messages(STAFF, "INBOX", 1, WAIT).await.remove(0);

    let (to, note) = reply(&alert, STAFF, "n1@example.com", "#note\nVérifier avec la compta.");
    stack.smtp_send(STAFF, &[&to], &note).await.expect("accepted");
    eventually(WAIT, "the note on ticket 1", || {
        cfg.ticket(1).filter(|t| messages(t).iter().any(|m| m["kind"] == "note"))
    })
    .await;

    let (to, close) = reply(&alert, STAFF, "n2@example.com", "#status closed");
    stack.smtp_send(STAFF, &[&to], &close).await.expect("accepted");
    eventually(WAIT, "ticket 1 closed", || cfg.ticket(1).filter(|t| t["status"] == "closed")).await;
    let got = stack.wait_for_messages(CUSTOMER, "INBOX", 2, WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stack.count(CUSTOMER, "INBOX").await, 2, "the acknowledgement and the closing, never the note");
    assert!(!got.iter().any(|m| text_of(m).contains("compta")));

    let (to, again) = reply(&got[1], CUSTOMER, "f2@customer.example", "Ce n'est pas réglé.");
    assert_eq!(reply_address_of(&got[1]), to);
    stack.smtp_send(CUSTOMER, &[&to], &again).await.expect("accepted");
    let t = eventually(WAIT, "ticket 1 reopened", || cfg.ticket(1).filter(|t| t["status"] == "open")).await;
    assert!(messages(&t).iter().any(|m| m["kind"] == "event" && m["text"].as_str().unwrap().contains("Rouvert")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_customer_mail_becomes_the_customers_ticket() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let _daemon = cfg.start();
    // Bob writes to his personal command address: the proof that the forward is his.
    let out = cfg.cli(&["staff-address", "bob@support.example.com"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let personal = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(personal.starts_with("support+0-") && personal.ends_with("@example.com"), "{personal}");
    let forward = mail(
        "Bob <bob@support.example.com>",
        "TR: Commande introuvable",
        "fw1@support.example.com",
        "",
        "Pour toi.\n\n---------- Message transféré ---------\nDe : Jean Client <jean@customer.example>\nDate: lun. 30 nov. 2026 à 08:12\nSubject: Commande introuvable\nTo: <bob@support.example.com>\n\nMa commande 1234 n'est jamais arrivée.",
    );
    let forward =
        String::from_utf8(forward).unwrap().replacen(&format!("To: {HELPDESK}"), &format!("To: {personal}"), 1);
    stack.smtp_send("bob@support.example.com", &[&personal], forward.as_bytes()).await.expect("accepted");
    let t = eventually(WAIT, "ticket 1", || cfg.ticket(1)).await;
    assert_eq!(t["requester"], "jean@customer.example");
    assert_eq!(t["subject"], "Commande introuvable");
    let ack = stack.wait_for_messages("jean@customer.example", "INBOX", 1, WAIT).await;
    assert!(header(&ack[0], "Subject").unwrap().contains("[Ticket #1]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_staff_mail_is_not_relayed() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let _daemon = cfg.start();
    stack
        .smtp_send(CUSTOMER, &[HELPDESK], &mail(CUSTOMER, "Question", "q@customer.example", "", "?"))
        .await
        .expect("accepted");
    stack.wait_for_messages(CUSTOMER, "INBOX", 1, WAIT).await;
    let forged = mail(
        STAFF,
        "Re: [Ticket #1] Question",
        "forged@evil.example",
        "Authentication-Results: mx.example.com; dmarc=fail (p=reject) header.from=example.com\n",
        "Envoyez-moi votre mot de passe.",
    );
    stack.smtp_send("evil@other.example", &[HELPDESK], &forged).await.expect("accepted");
    let t = eventually(WAIT, "the forged mail kept on ticket 1", || {
        cfg.ticket(1).filter(|t| messages(t).iter().any(|m| m["kind"] == "note" && m["unverified"] == true))
    })
    .await;
    assert_eq!(t["status"], "new");
    assert!(cfg.ticket(2).is_none(), "no ticket opened for it");
    // Alice hears of the mail sent in her name (after her alert of the new ticket).
    let told = stack.wait_for_messages(STAFF, "INBOX", 2, WAIT).await;
    assert!(told.iter().any(|m| text_of(m).contains("Envoyez-moi votre mot de passe")));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stack.count(CUSTOMER, "INBOX").await, 1, "nothing relayed to the customer");
}
