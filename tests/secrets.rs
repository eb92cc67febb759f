//! Secrets outside the configuration file (SPEC §9), against the real Dovecot: a mailbox password
//! read from `password_file` (found in `$CREDENTIALS_DIRECTORY`), and one given to a list entry by
//! `GUICHET__MAILBOX__0__PASSWORD` over a wrong one in the file.

mod common;

use std::time::Duration;

use common::guichet::{Config, HELPDESK, eventually, mail};
use common::mail_stack::MailStack;

const WAIT: Duration = Duration::from_secs(60);

fn mailbox_block(stack: &MailStack, secret: &str) -> String {
    format!(
        "[[mailbox]]\nname = \"support\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nusername = \"{HELPDESK}\"\n\
         {secret}\nprocessed_folder = \"Processed\"\npoll_seconds = 1\n",
        stack.imap_port
    )
}

async fn a_mail_becomes_ticket_1(stack: &MailStack, cfg: &Config) {
    let raw = mail("marie@customer.example", "Imprimante", "s1@customer.example", "", "Panne.");
    stack.smtp_send("marie@customer.example", &[HELPDESK], &raw).await.expect("accepted");
    let ticket = eventually(WAIT, "ticket 1", || cfg.ticket(1)).await;
    assert_eq!(ticket["subject"], "Imprimante");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mailbox_password_comes_from_the_credentials_directory() {
    let stack = MailStack::start();
    let credentials = tempfile::tempdir().unwrap();
    std::fs::write(credentials.path().join("imap-password"), format!("{}\n", MailStack::PASSWORD)).unwrap();
    let cfg = Config::new(&stack, "", &mailbox_block(&stack, "password_file = \"imap-password\""));
    let _daemon = cfg.start_with(&[("CREDENTIALS_DIRECTORY", credentials.path().to_str().unwrap())]);
    // The CLI, started without that directory, says which key it cannot read.
    let out = cfg.cli(&["status"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("mailbox[0].password_file"));
    std::fs::write(cfg.dir.path().join("imap-password"), MailStack::PASSWORD).unwrap();
    a_mail_becomes_ticket_1(&stack, &cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_variable_reaches_a_mailbox_entry() {
    let stack = MailStack::start();
    let cfg = Config::new(&stack, "", &mailbox_block(&stack, "password = \"not-the-password\""));
    let _daemon = cfg.start_with(&[("GUICHET__MAILBOX__0__PASSWORD", MailStack::PASSWORD)]);
    a_mail_becomes_ticket_1(&stack, &cfg).await;
}
