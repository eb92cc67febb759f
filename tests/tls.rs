//! TLS with a private CA (SPEC §9), against the real Dovecot and Postfix of the test stack (their
//! certificate is signed by a CA made for each stack): IMAP over implicit TLS and STARTTLS with
//! `ca_file`; without it a certificate error that `status` names as such while the daemon runs
//! on; SMTP STARTTLS to Postfix with `ca_file`.

mod common;

use std::time::Duration;

use common::guichet::{Config, HELPDESK, eventually, mail};
use common::mail_stack::MailStack;

const WAIT: Duration = Duration::from_secs(60);
const CUSTOMER: &str = "marie@customer.example";

fn mailbox(stack: &MailStack, port: u16, tls: &str, ca_file: bool) -> String {
    let ca = if ca_file { format!("ca_file = \"{}\"\n", stack.ca_file.display()) } else { String::new() };
    format!(
        "[[mailbox]]\nname = \"support\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"{tls}\"\nusername = \"{HELPDESK}\"\n\
         password = \"{}\"\nprocessed_folder = \"Processed\"\npoll_seconds = 1\n{ca}",
        MailStack::PASSWORD
    )
}

async fn ingests_over(stack: &MailStack, mailbox: String) {
    let cfg = Config::new(stack, "", &mailbox);
    let _daemon = cfg.start();
    let raw = mail(CUSTOMER, "Imprimante", "t1@customer.example", "", "Panne.");
    stack.smtp_send(CUSTOMER, &[HELPDESK], &raw).await.expect("accepted");
    let ticket = eventually(WAIT, "ticket 1", || cfg.ticket(1)).await;
    assert_eq!(ticket["subject"], "Imprimante");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_over_implicit_tls_with_a_private_ca() {
    let stack = MailStack::start();
    ingests_over(&stack, mailbox(&stack, stack.imaps_port, "tls", true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_over_starttls_with_a_private_ca() {
    let stack = MailStack::start();
    ingests_over(&stack, mailbox(&stack, stack.imap_port, "starttls", true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_named_in_status_and_the_daemon_runs_on() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", &mailbox(&stack, stack.imaps_port, "tls", false));
    let mut daemon = cfg.start();
    let error = eventually(WAIT, "the mailbox's error in status", || {
        let status = cfg.status();
        let error = status["mailboxes"][0]["last_error"].as_str().map(str::to_string);
        error.filter(|e| !e.is_empty())
    })
    .await;
    assert!(error.contains("certificate") && error.contains("ca_file"), "{error}");
    let out = cfg.cli(&["status"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("certificate"), "{}", String::from_utf8_lossy(&out.stdout));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(daemon.is_running(), "a certificate error is retried, never a crash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_go_out_over_starttls_with_a_private_ca() {
    let stack = MailStack::start();
    let smtp = format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\nca_file = \"{}\"\n",
        stack.smtp_port,
        stack.ca_file.display()
    );
    // The common configuration's [smtp] is plain: this one replaces it.
    let cfg = Config::new(&stack, "", &common::guichet::mailbox(&stack, ""));
    let text = std::fs::read_to_string(&cfg.path).unwrap();
    let start = text.find("[smtp]").unwrap();
    let end = text[start..].find("\n\n").map_or(text.len(), |e| start + e);
    std::fs::write(&cfg.path, format!("{}{smtp}{}", &text[..start], &text[end..])).unwrap();
    let _daemon = cfg.start();
    let raw = mail(CUSTOMER, "Imprimante", "t2@customer.example", "", "Panne.");
    stack.smtp_send(CUSTOMER, &[HELPDESK], &raw).await.expect("accepted");
    let ack = stack.wait_for_messages(CUSTOMER, "INBOX", 1, WAIT).await.remove(0);
    let received = String::from_utf8_lossy(&ack).into_owned();
    assert!(received.contains("with ESMTPS"), "delivered over TLS:\n{received}");
}
