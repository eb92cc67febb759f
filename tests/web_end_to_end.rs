//! The whole path of SPEC §5 with every real part: `guichet run` (IMAP, outbox, web) on a real
//! Dovecot and Postfix. A customer asks for a login link, reads it in their real mailbox,
//! confirms it, finds their ticket by a word of a staff reply, answers with a file, and the answer
//! reaches staff's real mailbox.

mod common;

use std::time::Duration;

use common::guichet::{Config, HELPDESK, STAFF, eventually, mail};
use common::mail_stack::MailStack;
use reqwest::multipart::{Form, Part};

const WAIT: Duration = Duration::from_secs(60);
const CUSTOMER: &str = "marie@customer.example";

fn text_of(raw: &[u8]) -> String {
    mail_parser::MessageParser::default().parse(raw).unwrap().body_text(0).unwrap_or_default().into_owned()
}

fn csrf_of(html: &str) -> String {
    let key = "name=\"csrf\" value=\"";
    let start = html.find(key).expect("a csrf field") + key.len();
    html[start..].split('"').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_logs_in_from_the_mailed_link_finds_their_ticket_and_answers_staff() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let _daemon = cfg.start();
    let base = format!("http://127.0.0.1:{}", cfg.web_port);

    stack
        .smtp_send(
            CUSTOMER,
            &[HELPDESK],
            &mail(CUSTOMER, "Imprimante bloquée", "w1@customer.example", "", "Erreur 0x4B."),
        )
        .await
        .expect("accepted");
    eventually(WAIT, "ticket 1", || cfg.ticket(1)).await;
    let alert = stack.wait_for_messages(STAFF, "INBOX", 1, WAIT).await.remove(0);
    let (to, answer) = common::guichet::reply(&alert, STAFF, "w2@example.com", "Changez le tambour zorglub.");
    stack.smtp_send(STAFF, &[&to], &answer).await.expect("accepted");
    stack.wait_for_messages(CUSTOMER, "INBOX", 2, WAIT).await; // acknowledgement + answer

    // Ask for a link; it arrives in the customer's real mailbox.
    let c = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let asked = c.post(format!("{base}/login")).form(&[("email", CUSTOMER)]).send().await.unwrap();
    assert_eq!(asked.status(), 200);
    let inbox = stack.wait_for_messages(CUSTOMER, "INBOX", 3, WAIT).await;
    let body = text_of(&inbox[2]);
    let link = body
        .split_whitespace()
        .find(|w| w.starts_with(&format!("{base}/login/")))
        .unwrap_or_else(|| panic!("a login link in:\n{body}"))
        .to_string();

    // A scanner's prefetch does not consume it; the button does, once.
    assert_eq!(c.get(&link).send().await.unwrap().status(), 200);
    let confirmed = c.post(&link).header("Origin", &base).send().await.unwrap();
    assert_eq!(confirmed.status(), 303);
    assert_ne!(c.post(&link).header("Origin", &base).send().await.unwrap().status(), 303, "single use");

    // The word is only in the staff reply.
    let found = c.get(format!("{base}/?q=zorglub")).send().await.unwrap().text().await.unwrap();
    assert!(found.contains("/tickets/1\""), "ticket 1 found by a word of its reply:\n{found}");
    let none = c.get(format!("{base}/?q=introuvablemot")).send().await.unwrap().text().await.unwrap();
    assert!(!none.contains("/tickets/1\""));

    // Answer with a file from the ticket page.
    let page = c.get(format!("{base}/tickets/1")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("zorglub"));
    let form = Form::new().text("csrf", csrf_of(&page)).text("body", "Le tambour est changé, merci.").part(
        "files",
        Part::bytes(b"journal de l'imprimante".to_vec()).file_name("journal.txt").mime_str("text/plain").unwrap(),
    );
    let sent = c.post(format!("{base}/tickets/1/reply")).multipart(form).send().await.unwrap();
    assert_eq!(sent.status(), 303);

    // Staff hear of it in their real mailbox.
    let staff = eventually(WAIT, "the answer announced to staff", || {
        let all = tokio::runtime::Handle::current().block_on(stack.fetch_all(STAFF, "INBOX"));
        all.into_iter().find(|m| text_of(m).contains("tambour est changé"))
    })
    .await;
    assert!(String::from_utf8_lossy(&staff).contains("[Ticket #1]"));
    let t = cfg.ticket(1).unwrap();
    let last = t["messages"].as_array().unwrap().iter().rev().find(|m| m["kind"] == "customer").unwrap().clone();
    assert_eq!(last["attachments"][0]["name"], "journal.txt");
}
