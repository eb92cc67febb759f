//! Several daemons on one database and one mailbox (SPEC §6): each mailbox is read by one daemon
//! at a time, the outbox is shared, and a daemon killed mid-way is taken over. Runs on SQLite,
//! and on PostgreSQL when GUICHET_TEST_POSTGRES is set.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::guichet::{Config, HELPDESK, eventually, mail, mailbox};
use common::mail_stack::MailStack;

const CUSTOMERS: usize = 100;
const MAILS_EACH: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_one_killed_every_mail_once_every_notification_once() {
    let stack = MailStack::start();
    // Staff alerts go to one address on a domain nobody reads, to keep the count simple.
    let cfg = Config::new(&stack, "staff_notify = [\"team@example.org\"]", &mailbox(&stack, "batch_size = 25"));
    let mut daemons = [cfg.start(), cfg.start_another(), cfg.start_another()];
    // Mail arrives while the daemons run: a first mail per customer, then replies with the token
    // once the ticket exists (ticket numbers follow arrival order: customer i gets ticket i+1).
    for i in 0..CUSTOMERS {
        let m = mail(
            &format!("c{i}@customer.example"),
            &format!("Demande {i}"),
            &format!("first{i}@customer.example"),
            "",
            "Bonjour",
        );
        stack.append(HELPDESK, "INBOX", &m).await;
    }
    eventually(Duration::from_secs(120), "all first mails ticketed", || {
        (cfg.tickets().len() == CUSTOMERS).then_some(())
    })
    .await;
    let number_of: HashMap<String, i64> = cfg
        .tickets()
        .iter()
        .map(|t| (t["requester"].as_str().unwrap().to_string(), t["number"].as_i64().unwrap()))
        .collect();
    for round in 1..MAILS_EACH {
        for i in 0..CUSTOMERS {
            let from = format!("c{i}@customer.example");
            let n = number_of[&from];
            let m = mail(
                &from,
                &format!("Re: [Ticket #{n}] Demande {i}"),
                &format!("r{round}-{i}@customer.example"),
                "",
                "Encore moi",
            );
            stack.append(HELPDESK, "INBOX", &m).await;
        }
        if round == MAILS_EACH / 2 {
            // Kill the daemon most likely to hold the mailbox lease: all three are candidates.
            daemons[0].kill();
        }
    }
    let total = CUSTOMERS * MAILS_EACH;
    eventually(Duration::from_secs(180), "every mail processed", || {
        let s = cfg.status();
        let ingested = s["mailboxes"][0]["ingested"].as_u64().unwrap_or(0);
        (ingested as usize >= total && s["outbox"]["pending"] == 0).then_some(())
    })
    .await;
    assert_eq!(stack.count(HELPDESK, "INBOX").await, 0, "nothing left unprocessed");

    // Every mail exactly one message; no ticket duplicated.
    let tickets = cfg.tickets();
    assert_eq!(tickets.len(), CUSTOMERS, "no duplicated ticket");
    let mut messages = 0;
    for t in &tickets {
        let full = cfg.ticket(t["number"].as_i64().unwrap()).unwrap();
        let mails = full["messages"].as_array().unwrap().iter().filter(|m| m["kind"] == "customer").count();
        assert_eq!(mails, MAILS_EACH, "ticket {}: {mails} customer messages", t["number"]);
        messages += mails;
    }
    assert_eq!(messages, total);
    // Every acknowledgement delivered exactly once.
    for i in (0..CUSTOMERS).step_by(7) {
        let user = format!("c{i}@customer.example");
        let got = stack.wait_for_messages(&user, "INBOX", 1, Duration::from_secs(30)).await;
        assert_eq!(got.len(), 1, "{user} got {} acknowledgements", got.len());
    }
    let status = cfg.status();
    assert_eq!(status["outbox"]["failed"], 0);
    assert_eq!(status["outbox"]["pending"], 0);
    for d in daemons.iter_mut().skip(1) {
        assert!(d.stop().success());
    }
}
