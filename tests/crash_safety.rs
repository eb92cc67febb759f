//! Crash safety (SPEC §2.1–2.3, §4 "Outbox"): 500 mails reach a real Dovecot — new tickets from
//! distinct customers, replies by subject token and by `In-Reply-To`, some with attachments, some
//! through Postfix — while the real `guichet run` is killed with SIGKILL at random moments at
//! least 20 times and started again each time. Afterwards every mail is exactly one message, no
//! ticket is duplicated, every notification reached its recipient's real mailbox once, INBOX is
//! empty, and `guichet status --json` says the same.
//!
//! The run is reproducible: it prints its seed, and `CRASH_SEED=<seed>` replays the same mails
//! and the same kill delays (the exact moments still depend on the machine's speed).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::guichet::{Config, HELPDESK, STAFF, mailbox};
use common::mail_stack::MailStack;
use diesel::prelude::*;
use guichet::store::Store;
use guichet::store::schema::{messages, outbox, raw_mails, tickets};

const MAILS: usize = 500;
const NEW_TICKETS: usize = 300;
const MIN_KILLS: usize = 20;
/// A reply goes to a customer whose first mail was appended at least this many mails earlier.
const REPLY_DISTANCE: usize = 20;
const WAIT: Duration = Duration::from_secs(120);
/// An upper bound on the notifications the outbox sender has in flight (`workers::sender`'s
/// `CONCURRENCY`, 8 or 32 as it is tuned): what one kill can leave sent but not recorded.
const SENDER_CONCURRENCY: usize = 32;

/// A small, seedable generator (xorshift64*): the run prints its seed so that it can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// How a mail reaches the helpdesk's INBOX.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    /// IMAP APPEND: lands in INBOX at once, in order.
    Append,
    /// SMTP to Postfix, delivered to Dovecot by LMTP: lands a little later.
    Smtp,
}

#[derive(Clone)]
enum Kind {
    /// Opens ticket for customer `c`.
    New,
    /// Answers customer `c`'s ticket by its subject token, looked up when the mail is sent.
    ReplyByToken,
    /// Answers customer `c`'s ticket by `In-Reply-To` its first mail.
    ReplyByReference,
}

#[derive(Clone)]
struct Planned {
    customer: usize,
    kind: Kind,
    path: Path,
    attachment: Option<Vec<u8>>,
    message_id: String,
}

fn customer(c: usize) -> String {
    format!("crash{c:03}@customer.example")
}

fn first_message_id(seed: u64, c: usize) -> String {
    format!("new{c}.{seed:x}@customer.example")
}

/// 300 new tickets from distinct customers and 200 replies, shuffled so that a reply always comes
/// well after the first mail it answers; a new ticket in eight goes through Postfix, a mail in six
/// carries an attachment (some identical, to exercise deduplication).
fn plan(rng: &mut Rng, seed: u64) -> Vec<Planned> {
    let mut out: Vec<Planned> = Vec::with_capacity(MAILS);
    let mut opened: Vec<(usize, Path)> = Vec::new();
    let mut next_customer = 0;
    for i in 0..MAILS {
        let replies_left = (MAILS - NEW_TICKETS) - (i - next_customer);
        let news_left = NEW_TICKETS - next_customer;
        let answerable: Vec<usize> = opened
            .iter()
            .enumerate()
            .filter(|(at, (_, path))| *path == Path::Append && *at + REPLY_DISTANCE <= opened.len())
            .map(|(_, (c, _))| *c)
            .collect();
        let reply = replies_left > 0
            && !answerable.is_empty()
            && (news_left == 0 || rng.below((news_left + replies_left) as u64) < replies_left as u64);
        let attachment = (rng.below(6) == 0).then(|| {
            let size = if rng.below(3) == 0 { 4096 } else { 1024 + rng.below(40_000) as usize };
            let fill = rng.next();
            (0..size).map(|k| (fill.rotate_left(k as u32 % 64) as u8) ^ (k as u8)).collect()
        });
        if reply {
            let c = answerable[rng.below(answerable.len() as u64) as usize];
            let kind = if rng.below(2) == 0 { Kind::ReplyByToken } else { Kind::ReplyByReference };
            out.push(Planned {
                customer: c,
                kind,
                path: Path::Append,
                attachment,
                message_id: format!("reply{i}.{seed:x}@customer.example"),
            });
        } else {
            let c = next_customer;
            next_customer += 1;
            let path = if rng.below(8) == 0 { Path::Smtp } else { Path::Append };
            opened.push((c, path));
            out.push(Planned { customer: c, kind: Kind::New, path, attachment, message_id: first_message_id(seed, c) });
        }
    }
    assert_eq!(next_customer, NEW_TICKETS, "the plan opens every ticket");
    out
}

fn raw_mail(p: &Planned, seed: u64, token_ticket: Option<i64>) -> Vec<u8> {
    let from = customer(p.customer);
    let (subject, threading, text) = match (&p.kind, token_ticket) {
        (Kind::New, _) => {
            (format!("Panne n°{} de l'imprimante", p.customer), String::new(), "L'imprimante est bloquée.")
        }
        (Kind::ReplyByToken, Some(n)) => {
            (format!("RE: [Ticket #{n}] Panne n°{}", p.customer), String::new(), "Toujours bloquée.")
        }
        _ => (
            format!("Re: Panne n°{} de l'imprimante", p.customer),
            format!("In-Reply-To: <{id}>\nReferences: <{id}>\n", id = first_message_id(seed, p.customer)),
            "Toujours bloquée, merci de regarder.",
        ),
    };
    let head = format!(
        "From: Client {c} <{from}>\nTo: {HELPDESK}\nSubject: {subject}\nMessage-ID: <{mid}>\n{threading}Date: Mon, 30 Nov 2026 09:00:00 +0100\nMIME-Version: 1.0\n",
        c = p.customer,
        mid = p.message_id,
    );
    let mut raw = head.into_bytes();
    match &p.attachment {
        None => raw.extend_from_slice(format!("Content-Type: text/plain; charset=utf-8\n\n{text}\n").as_bytes()),
        Some(bytes) => {
            use base64::Engine;
            let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
            let lines: Vec<&str> =
                encoded.as_bytes().chunks(76).map(|l| std::str::from_utf8(l).expect("base64 is ASCII")).collect();
            raw.extend_from_slice(
                format!(
                    "Content-Type: multipart/mixed; boundary=\"sep\"\n\n--sep\nContent-Type: text/plain; charset=utf-8\n\n{text}\n--sep\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"journal-{c}.bin\"\nContent-Transfer-Encoding: base64\n\n{body}\n--sep--\n",
                    c = p.customer,
                    body = lines.join("\n"),
                )
                .as_bytes(),
            );
        }
    }
    raw
}

/// The ticket a customer's first mail opened, read from the daemon's database (None until then).
fn ticket_of_first_mail(store: &Store, seed: u64, c: usize) -> Option<i64> {
    let key = format!("mid:{}", first_message_id(seed, c));
    store
        .read(|conn| {
            Ok(raw_mails::table
                .filter(raw_mails::message_key.eq(key))
                .select(raw_mails::ticket_number)
                .first::<Option<i64>>(conn)
                .optional()?)
        })
        .ok()
        .flatten()
        .flatten()
}

/// Delivers the plan, pacing the mails so that the kills fall all along the run.
async fn deliver(stack: Arc<MailStack>, store: Store, plan: Vec<Planned>, seed: u64, mut rng: Rng) -> usize {
    let mut by_token = 0;
    for p in &plan {
        let token_ticket = match p.kind {
            Kind::ReplyByToken => ticket_of_first_mail(&store, seed, p.customer),
            _ => None,
        };
        by_token += usize::from(token_ticket.is_some());
        let raw = raw_mail(p, seed, token_ticket);
        match p.path {
            Path::Append => stack.append(HELPDESK, "INBOX", &raw).await,
            Path::Smtp => {
                stack.smtp_send(&customer(p.customer), &[HELPDESK], &raw).await.expect("Postfix accepts the mail");
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.below(40))).await;
    }
    by_token
}

/// Message-IDs (without brackets) of every mail in a user's INBOX.
async fn inbox_message_ids(stack: &MailStack, user: &str) -> Vec<String> {
    stack
        .fetch_all(user, "INBOX")
        .await
        .iter()
        .map(|raw| {
            common::guichet::header(raw, "Message-ID")
                .unwrap_or_default()
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_mails_through_twenty_sigkills_are_each_stored_and_answered_exactly_once() {
    let began = Instant::now();
    let seed = std::env::var("CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    }) | 1;
    println!("crash safety: seed {seed} (replay with CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let stack = Arc::new(MailStack::start());
    let cfg = Config::new(&stack, "", &mailbox(&stack, "batch_size = 20"));
    assert!(cfg.cli(&["migrate"]).status.success());
    let store = Store::open(&cfg.database_url, 2).expect("the daemon's database opens");
    let plan = plan(&mut rng, seed);
    let with_attachment = plan.iter().filter(|p| p.attachment.is_some()).count();
    let through_smtp = plan.iter().filter(|p| p.path == Path::Smtp).count();

    // Act: deliver while killing the daemon at random moments, and restarting it each time.
    let delivery = tokio::spawn(deliver(stack.clone(), store.clone(), plan.clone(), seed, Rng(seed.rotate_left(17))));
    let mut kills = 0;
    let mut daemon = loop {
        let mut daemon = cfg.start();
        let alive_for = Duration::from_millis(50 + rng.below(2_500));
        tokio::time::sleep(alive_for).await;
        if delivery.is_finished() && kills >= MIN_KILLS {
            break daemon;
        }
        daemon.kill();
        kills += 1;
    };
    let replies_by_token = delivery.await.expect("delivery finished");
    let delivered_in = began.elapsed();

    // Everything settles with the last daemon: INBOX empty, every mail moved once, outbox drained.
    let deadline = Instant::now() + WAIT;
    let status = loop {
        let inbox = stack.count(HELPDESK, "INBOX").await;
        let done = stack.count(HELPDESK, "Processed").await;
        let s = tokio::task::block_in_place(|| cfg.status());
        if inbox == 0 && done >= MAILS && s["outbox"]["pending"] == 0 && s["mailboxes"][0]["on_server"] == 0 {
            break s;
        }
        if Instant::now() > deadline {
            panic!(
                "not settled after {WAIT:?}: INBOX {inbox}, Processed {done}, status {s}\n--- last daemon ---\n{}",
                daemon
                    .logs()
                    .lines()
                    .rev()
                    .take(40)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let settled_in = began.elapsed();

    // Assert, from the database: one raw mail and one message per Message-ID, one ticket per customer.
    let raws: Vec<(String, String, Option<i64>)> = store
        .read(|c| {
            Ok(raw_mails::table.select((raw_mails::message_key, raw_mails::state, raw_mails::ticket_number)).load(c)?)
        })
        .unwrap();
    let stored: Vec<(Option<String>, i64)> = store
        .read(|c| {
            Ok(messages::table
                .filter(messages::mail_message_id.is_not_null())
                .select((messages::mail_message_id, messages::ticket_number))
                .load(c)?)
        })
        .unwrap();
    let requesters: Vec<(i64, String)> =
        store.read(|c| Ok(tickets::table.select((tickets::number, tickets::requester)).load(c)?)).unwrap();
    let notifications: Vec<(String, String, String, String)> = store
        .read(|c| {
            Ok(outbox::table.select((outbox::event, outbox::recipient, outbox::message_id, outbox::state)).load(c)?)
        })
        .unwrap();

    let mut per_message_id: BTreeMap<&str, usize> = BTreeMap::new();
    for (mid, _) in &stored {
        *per_message_id.entry(mid.as_deref().unwrap()).or_default() += 1;
    }
    let duplicates: usize = per_message_id.values().map(|n| n - 1).sum();
    let lost: Vec<&str> =
        plan.iter().map(|p| p.message_id.as_str()).filter(|id| !per_message_id.contains_key(id)).collect();
    let ticket_of: BTreeMap<&str, i64> = stored.iter().map(|(mid, t)| (mid.as_deref().unwrap(), *t)).collect();
    let misthreaded: Vec<&str> = plan
        .iter()
        .filter(|p| !matches!(p.kind, Kind::New))
        .filter(|p| ticket_of.get(p.message_id.as_str()) != ticket_of.get(first_message_id(seed, p.customer).as_str()))
        .map(|p| p.message_id.as_str())
        .collect();
    let mut tickets_per_requester: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, requester) in &requesters {
        *tickets_per_requester.entry(requester).or_default() += 1;
    }
    let duplicate_tickets: usize = tickets_per_requester.values().map(|n| n - 1).sum();

    // Notifications: each acknowledgement reached its customer's real mailbox; every sent mail
    // arrived once (a repeat would carry the same Message-ID, SPEC §4).
    let sent: Vec<&(String, String, String, String)> = notifications.iter().filter(|n| n.3 == "sent").collect();
    let recipients: BTreeSet<&str> = sent.iter().map(|n| n.1.as_str()).collect();
    let expected_deliveries = sent.len();
    let mut arrived: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let deadline = Instant::now() + WAIT;
    loop {
        arrived.clear();
        for r in &recipients {
            arrived.insert(r.to_string(), inbox_message_ids(&stack, r).await);
        }
        let total: usize = arrived.values().map(Vec::len).sum();
        if total >= expected_deliveries || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut notifications_lost = Vec::new();
    let mut notifications_repeated = 0;
    for (_, recipient, mid, _) in &sent {
        match arrived[recipient.as_str()].iter().filter(|m| m == &mid).count() {
            0 => notifications_lost.push(format!("{recipient} {mid}")),
            n => {
                notifications_repeated += n - 1;
                if n > 1 && std::env::var("CRASH_DEBUG").is_ok() {
                    let row: (i64, i32, Option<i64>) = store
                        .read(|c| {
                            Ok(outbox::table
                                .filter(outbox::message_id.eq(mid))
                                .select((outbox::created_at, outbox::attempts, outbox::sent_at))
                                .first(c)?)
                        })
                        .unwrap();
                    let log: Vec<String> =
                        stack.maillog().lines().filter(|l| l.contains(mid.as_str())).map(str::to_string).collect();
                    println!("repeated {recipient} {mid} {row:?}\n  {}", log.join("\n  "));
                }
            }
        }
    }
    if std::env::var("CRASH_DEBUG").is_ok() {
        let log = stack.maillog();
        for what in ["lost connection after END-OF-MESSAGE", "lost connection after DATA", "lost connection after RCPT"]
        {
            println!("postfix: {} × {what}", log.matches(what).count());
        }
    }
    let strays: usize = arrived
        .iter()
        .map(|(r, mids)| mids.iter().filter(|m| !sent.iter().any(|n| &n.1 == r && &n.2 == *m)).count())
        .sum();
    // Per customer: how many acknowledgements were queued, and how many distinct ones arrived.
    let acks_per_customer: Vec<(usize, usize)> = (0..NEW_TICKETS)
        .map(|c| {
            let who = customer(c);
            let queued: BTreeSet<&str> =
                notifications.iter().filter(|n| n.1 == who && n.0 == "ticket_created").map(|n| n.2.as_str()).collect();
            let received: BTreeSet<&str> = arrived
                .get(&who)
                .map(|mids| mids.iter().map(String::as_str).filter(|m| queued.contains(m)).collect())
                .unwrap_or_default();
            (queued.len(), received.len())
        })
        .collect();
    let staff_alerts = sent.iter().filter(|n| n.1 == STAFF).count();

    println!(
        "crash safety: {MAILS} mails ({NEW_TICKETS} new tickets, {} replies of which {replies_by_token} by token, \
         {with_attachment} with an attachment, {through_smtp} through Postfix); kills survived: {kills}; \
         duplicates: {duplicates}; lost: {}; misthreaded: {}; duplicate tickets: {duplicate_tickets}; \
         notifications sent: {expected_deliveries} ({staff_alerts} to staff), lost: {}, \
         repeated with the same Message-ID: {notifications_repeated}, strays: {strays}; delivered in {:.1} s, settled in {:.1} s",
        MAILS - NEW_TICKETS,
        lost.len(),
        misthreaded.len(),
        notifications_lost.len(),
        delivered_in.as_secs_f64(),
        settled_in.as_secs_f64(),
    );

    assert!(kills >= MIN_KILLS, "only {kills} kills");
    assert_eq!(raws.len(), MAILS, "one raw mail per mail");
    assert!(
        raws.iter().all(|(_, state, t)| state == "processed" && t.is_some()),
        "every raw mail processed into a ticket"
    );
    assert_eq!(duplicates, 0, "a mail stored twice");
    assert!(lost.is_empty(), "mails lost: {lost:?}");
    assert_eq!(stored.len(), MAILS, "exactly one message per mail");
    assert!(misthreaded.is_empty(), "replies outside their ticket: {misthreaded:?}");
    assert_eq!(requesters.len(), NEW_TICKETS, "one ticket per new request");
    assert_eq!(duplicate_tickets, 0, "a ticket duplicated");
    assert!(notifications.iter().all(|n| n.3 == "sent"), "every notification sent, none failed or pending");
    assert!(notifications_lost.is_empty(), "notifications that never arrived: {notifications_lost:?}");
    assert_eq!(strays, 0, "mail in the mailboxes that the outbox does not know");
    assert!(
        acks_per_customer.iter().all(|&(queued, received)| queued == 1 && received == 1),
        "acknowledgements (queued, received) per customer: {acks_per_customer:?}"
    );
    // SPEC §4: a crash between the SMTP server's acceptance and our record of it may repeat a
    // mail, with the same Message-ID (counted above by Message-ID: never a second, different
    // notification). Each kill can leave at most the sends in flight unrecorded.
    assert!(
        notifications_repeated <= kills * SENDER_CONCURRENCY,
        "{notifications_repeated} repeated deliveries for {kills} kills"
    );
    assert_eq!(stack.count(HELPDESK, "Processed").await, MAILS, "each mail moved once");
    // `guichet status` agrees.
    let mb = &status["mailboxes"][0];
    assert_eq!(mb["ingested"], MAILS, "{status}");
    assert_eq!(mb["quarantined"], 0, "{status}");
    assert_eq!(status["quarantine"], 0, "{status}");
    assert_eq!(status["outbox"]["sent"], notifications.len(), "{status}");
    assert_eq!(status["outbox"]["failed"], 0, "{status}");
    assert!(daemon.stop().success(), "the last daemon stops cleanly on SIGTERM");
}
