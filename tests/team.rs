//! A team shares the mailbox (SPEC §8), through the real Postfix and Dovecot: who gets which alert
//! before and after assignment, the assignee and waiting_on filters of the API, a second queue
//! answered from its own address in its own language, timers (reminder, closing, escalation) with
//! second-long durations across a restart and with two daemons, `Importance: high`, and the
//! customer's file in the staff alert. Staff and customers answer with their client's "Reply".

mod common;

use std::time::Duration;

use common::guichet::{Config, HELPDESK, STAFF, eventually, header, mail, mailbox, reply};
use common::mail_stack::MailStack;

const WAIT: Duration = Duration::from_secs(60);
const CUSTOMER: &str = "marie@customer.example";
const BOB: &str = "bob@support.example.com";
const CAROL: &str = "carol@example.com";
const SALES: &str = "ventes@example.com";

/// The decoded subject.
fn subject(raw: &[u8]) -> String {
    mail_parser::MessageParser::default().parse(raw).and_then(|m| m.subject().map(str::to_string)).unwrap_or_default()
}

fn text_of(raw: &[u8]) -> String {
    mail_parser::MessageParser::default().parse(raw).unwrap().body_text(0).unwrap_or_default().into_owned()
}

/// Waits for `n` mails in `user`'s INBOX, then a little more, and checks no other one came.
async fn exactly(stack: &MailStack, user: &str, n: usize) -> Vec<Vec<u8>> {
    stack.wait_for_messages(user, "INBOX", n, WAIT).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = stack.fetch_all(user, "INBOX").await;
    let subjects: Vec<String> = all.iter().map(|m| subject(m)).collect();
    assert_eq!(all.len(), n, "{user} got {subjects:#?}");
    all
}

/// A client logged in as `email` through the CLI's login link, and the site's base URL.
async fn logged_in(cfg: &Config, email: &str) -> (reqwest::Client, String) {
    let base = format!("http://127.0.0.1:{}", cfg.web_port);
    let out = cfg.cli(&["login-link", email]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let link = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let c = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    assert_eq!(c.post(&link).send().await.unwrap().status(), 303, "login with {link}");
    (c, base)
}

async fn numbers(c: &reqwest::Client, base: &str, query: &str) -> Vec<i64> {
    let json: serde_json::Value =
        c.get(format!("{base}/api/tickets?{query}")).send().await.unwrap().json().await.unwrap();
    json["tickets"].as_array().unwrap().iter().map(|t| t["number"].as_i64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_follow_the_assignee_and_whoever_answers_takes_the_ticket() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, &format!("staff_notify = [\"{STAFF}\", \"{BOB}\"]"), "");
    let _daemon = cfg.start();
    let first = mail(CUSTOMER, "Imprimante bloquée", "t1@customer.example", "", "Erreur 0x42.");
    stack.smtp_send(CUSTOMER, &[HELPDESK], &first).await.expect("accepted");

    // Unassigned: every staff member of the queue hears of it.
    let alice_alert = stack.wait_for_messages(STAFF, "INBOX", 1, WAIT).await.remove(0);
    stack.wait_for_messages(BOB, "INBOX", 1, WAIT).await;
    assert_eq!(cfg.ticket(1).unwrap()["assignee"], serde_json::Value::Null);
    let (c, base) = logged_in(&cfg, BOB).await;
    assert_eq!(numbers(&c, &base, "assignee=none").await, vec![1]);
    assert_eq!(numbers(&c, &base, "waiting_on=us").await, vec![1], "the customer waits on us");

    // Alice answers with Reply: she takes the ticket, and it now waits on the customer.
    let (to, answer) = reply(&alice_alert, STAFF, "a1@example.com", "Changez le tambour.");
    stack.smtp_send(STAFF, &[&to], &answer).await.expect("accepted");
    let got = stack.wait_for_messages(CUSTOMER, "INBOX", 2, WAIT).await;
    assert_eq!(cfg.ticket(1).unwrap()["assignee"], STAFF);
    assert!(numbers(&c, &base, "waiting_on=us").await.is_empty());
    assert_eq!(numbers(&c, &base, "waiting_on=customer").await, vec![1]);
    assert_eq!(numbers(&c, &base, &format!("assignee={STAFF}")).await, vec![1]);
    assert!(numbers(&c, &base, "assignee=me").await.is_empty(), "not Bob's");

    // The customer answers the relayed mail: only the assignee hears of it.
    let relayed = got.iter().find(|m| text_of(m).contains("tambour")).unwrap();
    let (to, again) = reply(relayed, CUSTOMER, "t2@customer.example", "Toujours bloquée.");
    stack.smtp_send(CUSTOMER, &[&to], &again).await.expect("accepted");
    let alice = stack.wait_for_messages(STAFF, "INBOX", 2, WAIT).await;
    exactly(&stack, BOB, 1).await;

    // Alice gives it to Bob by mail: Bob is told, and from now on hears of it alone.
    let (to, handover) = reply(&alice[1], STAFF, "a2@example.com", &format!("#assign {BOB}"));
    stack.smtp_send(STAFF, &[&to], &handover).await.expect("accepted");
    let bob = stack.wait_for_messages(BOB, "INBOX", 2, WAIT).await;
    assert!(subject(&bob[1]).contains("attribué"), "{}", subject(&bob[1]));
    assert_eq!(cfg.ticket(1).unwrap()["assignee"], BOB);
    assert_eq!(numbers(&c, &base, "assignee=me").await, vec![1]);
    let (to, third) = reply(relayed, CUSTOMER, "t3@customer.example", "Et maintenant ?");
    stack.smtp_send(CUSTOMER, &[&to], &third).await.expect("accepted");
    exactly(&stack, BOB, 3).await;
    exactly(&stack, STAFF, 2).await;
    // A customer never sees who handles the ticket inside the team.
    let (marie, _) = logged_in(&cfg, CUSTOMER).await;
    let json: serde_json::Value =
        marie.get(format!("{base}/api/tickets/1")).send().await.unwrap().json().await.unwrap();
    assert_eq!(json["assignee"], serde_json::Value::Null);
    assert!(!json.to_string().contains(BOB), "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_queue_answers_from_its_address_in_its_language_to_its_own_staff() {
    let stack = MailStack::start();
    let sales = format!(
        "{}\n[[mailbox]]\nname = \"Sales\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nusername = \"{SALES}\"\n\
         password = \"{}\"\nprocessed_folder = \"Processed\"\npoll_seconds = 1\naddress = \"{SALES}\"\n\
         language = \"en\"\nstaff = [\"{CAROL}\"]\n",
        mailbox(&stack, ""),
        stack.imap_port,
        MailStack::PASSWORD,
    );
    let cfg = Config::new(&stack, "", &sales);
    let _daemon = cfg.start();
    let order = mail(CUSTOMER, "Quote for 40 printers", "s1@customer.example", "", "Could you send a quote?");
    stack.smtp_send(CUSTOMER, &[SALES], &order).await.expect("accepted");

    // Its staff are alerted in its language; the helpdesk's staff are not.
    let alert = stack.wait_for_messages(CAROL, "INBOX", 1, WAIT).await.remove(0);
    assert!(subject(&alert).contains("New ticket"), "{}", subject(&alert));
    let ticket = eventually(WAIT, "ticket 1", || cfg.ticket(1)).await;
    assert_eq!(ticket["queue"], SALES);
    // The acknowledgement comes from the queue, in English.
    let ack = stack.wait_for_messages(CUSTOMER, "INBOX", 1, WAIT).await.remove(0);
    let from = header(&ack, "From").unwrap();
    assert!(from.contains(SALES) && from.contains("Sales"), "{from}");
    assert!(text_of(&ack).contains("Hello"), "{}", text_of(&ack));

    // Carol answers with Reply; the customer gets it from the queue's address.
    let (to, answer) = reply(&alert, CAROL, "c1@example.com", "Here is the quote.");
    assert!(to.starts_with("ventes+1-"), "signed on the queue's address: {to}");
    stack.smtp_send(CAROL, &[&to], &answer).await.expect("accepted");
    let got = stack.wait_for_messages(CUSTOMER, "INBOX", 2, WAIT).await;
    let relayed = got.iter().find(|m| text_of(m).contains("quote.")).expect("the answer");
    let from = header(relayed, "From").unwrap();
    assert!(from.contains(SALES) && !from.contains(CAROL), "{from}");
    assert_eq!(cfg.ticket(1).unwrap()["assignee"], CAROL);
    exactly(&stack, STAFF, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_ticket_is_reminded_once_then_closed_once_across_a_restart_and_two_daemons() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "[timers]\nremind_waiting = \"3s\"\nclose_waiting = \"4s\"\n");
    let mut first_daemon = cfg.start();
    let _second = cfg.start_another();
    let question = mail(CUSTOMER, "Accès VPN", "w1@customer.example", "", "Je ne peux plus me connecter.");
    stack.smtp_send(CUSTOMER, &[HELPDESK], &question).await.expect("accepted");
    let alert = stack.wait_for_messages(STAFF, "INBOX", 1, WAIT).await.remove(0);
    let (to, answer) = reply(&alert, STAFF, "a1@example.com", "Pouvez-vous redémarrer le poste ?");
    stack.smtp_send(STAFF, &[&to], &answer).await.expect("accepted");

    // Acknowledgement, answer, then the reminder.
    let got = stack.wait_for_messages(CUSTOMER, "INBOX", 3, WAIT).await;
    assert!(subject(&got[2]).contains("Relance"), "{}", subject(&got[2]));
    assert_eq!(cfg.ticket(1).unwrap()["status"], "waiting");
    // One daemon stops; the closing still comes, once, from the database's timer.
    first_daemon.stop();
    let got = exactly(&stack, CUSTOMER, 4).await;
    assert!(subject(&got[3]).contains("Clôturé sans réponse"), "{}", subject(&got[3]));
    assert!(text_of(&got[3]).contains("répondez simplement"), "says how to reopen");
    let ticket = cfg.ticket(1).unwrap();
    assert_eq!(ticket["status"], "closed");
    let events: Vec<String> = ticket["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "event")
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events.iter().filter(|e| e.contains("Relance")).count(), 1, "{events:?}");
    // A restarted daemon fires nothing again.
    let _again = cfg.start();
    exactly(&stack, CUSTOMER, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_urgent_mail_opens_a_blocking_ticket_escalated_once_when_unanswered() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "[timers]\nescalate_blocking = \"2s\"\nescalate_normal = \"1h\"\n");
    let _daemon = cfg.start();
    let urgent = mail(CUSTOMER, "Serveur arrêté", "u1@customer.example", "Importance: high\n", "Plus rien ne marche.");
    stack.smtp_send(CUSTOMER, &[HELPDESK], &urgent).await.expect("accepted");
    let normal = mail(CUSTOMER, "Question", "u2@customer.example", "X-Priority: 3 (Normal)\n", "Une question.");
    stack.smtp_send(CUSTOMER, &[HELPDESK], &normal).await.expect("accepted");

    let alerts = exactly(&stack, STAFF, 3).await;
    let overdue: Vec<&Vec<u8>> = alerts.iter().filter(|m| subject(m).contains("En retard")).collect();
    assert_eq!(overdue.len(), 1, "one escalation, for the blocking ticket only");
    let blocking = cfg.tickets().into_iter().find(|t| t["priority"] == "blocking").expect("a blocking ticket");
    assert!(subject(overdue[0]).contains(&format!("#{}", blocking["number"])));
    assert_eq!(cfg.tickets().iter().filter(|t| t["priority"] == "normal").count(), 1);

    // Staff answer it: the overdue mark goes; no second escalation ever comes.
    let (to, answer) = reply(overdue[0], STAFF, "a1@example.com", "On regarde tout de suite.");
    stack.smtp_send(STAFF, &[&to], &answer).await.expect("accepted");
    stack.wait_for_messages(CUSTOMER, "INBOX", 3, WAIT).await;
    exactly(&stack, STAFF, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_staff_alert_carries_the_customers_pdf() {
    use base64::Engine;
    use mail_parser::MimeHeaders;
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", "");
    let _daemon = cfg.start();
    let pdf: Vec<u8> = b"%PDF-1.4\n".iter().copied().chain((0..20_000u32).map(|i| (i * 13 % 251) as u8)).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&pdf);
    let lines: Vec<&str> = encoded.as_bytes().chunks(76).map(|l| std::str::from_utf8(l).unwrap()).collect();
    let raw = format!(
        "From: {CUSTOMER}\r\nTo: {HELPDESK}\r\nSubject: Facture contestée\r\nMessage-ID: <p1@customer.example>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"sep\"\r\n\r\n\
         --sep\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nLa facture jointe est fausse.\r\n\
         --sep\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"facture.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--sep--\r\n",
        lines.join("\r\n")
    );
    stack.smtp_send(CUSTOMER, &[HELPDESK], raw.as_bytes()).await.expect("accepted");
    let alert = stack.wait_for_messages(STAFF, "INBOX", 1, WAIT).await.remove(0);
    let parsed = mail_parser::MessageParser::default().parse(&alert).unwrap();
    assert!(text_of(&alert).contains("La facture jointe est fausse."), "the new text is in the alert");
    let file = parsed.attachments().find(|a| a.attachment_name() == Some("facture.pdf")).expect("the PDF is attached");
    assert_eq!(file.contents(), &pdf[..]);
    assert!(cfg.ticket(1).is_some());
}
