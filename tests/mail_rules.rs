//! The rules of SPEC §2–§4 driven through `App::ingest_one` on a real SQLite file: a mail in,
//! a ticket and the queued mails out. (The same paths run against real Dovecot and Postfix in
//! tests/imap_ingest.rs and tests/outgoing_mail.rs.)

mod common;

use common::guichet::TestDatabase;
use diesel::prelude::*;
use guichet::app::App;
use guichet::config::Settings;
use guichet::desk::inbound::Outcome;
use guichet::store::outbox::OutboxRow;
use guichet::store::schema::outbox;
use guichet::store::views::TicketJson;

struct Desk {
    app: App,
    _database: TestDatabase,
    _dir: tempfile::TempDir,
}

impl Desk {
    fn new() -> Desk {
        Desk::with("")
    }

    fn with(extra: &str) -> Desk {
        let dir = tempfile::tempdir().unwrap();
        let database = TestDatabase::new(dir.path());
        let toml = format!(
            r#"
[helpdesk]
address = "support@example.com"
staff = ["alice@example.com", "@support.example.com"]
trusted_authserv_id = "mx.example.com"
{extra}
[database]
url = "{}"
[[company]]
name = "Cisa"
domains = ["cisa.example"]
shared = true
"#,
            database.url
        );
        let settings = Settings::with_overlay(&toml).unwrap();
        Desk { app: App::open(settings).unwrap(), _database: database, _dir: dir }
    }

    fn mail(&self, raw: &str) -> Outcome {
        self.app.ingest_one(raw.replace('\n', "\r\n").as_bytes(), "test").unwrap()
    }

    fn ticket(&self, n: i64) -> TicketJson {
        self.app
            .store
            .read(|c| {
                guichet::store::views::ticket_with_messages(
                    c,
                    n,
                    &guichet::store::visibility::Audience::Staff,
                    self.app.desk.lang(),
                )
            })
            .unwrap()
            .expect("ticket exists")
    }

    fn ticket_count(&self) -> usize {
        self.app.store.read(guichet::store::views::all_tickets).unwrap().len()
    }

    /// (event, recipient, mail as the sender composes it) of every queued notification, oldest first.
    fn outbox(&self) -> Vec<(String, String, String)> {
        common::guichet::composed_outbox(&self.app)
            .into_iter()
            .map(|row| (row.event, row.recipient, String::from_utf8_lossy(&row.data).into_owned()))
            .collect()
    }

    fn sent_to(&self, who: &str) -> Vec<(String, String)> {
        self.outbox().into_iter().filter(|(_, r, _)| r == who).map(|(e, _, d)| (e, d)).collect()
    }

    /// Where `who`'s mail client sends a "Reply" to the last mail they got: its Reply-To.
    fn reply_address(&self, who: &str) -> String {
        let (_, last) = self.sent_to(who).pop().unwrap_or_else(|| panic!("{who} got no mail"));
        let reply_to = header(&last, "Reply-To").expect("a notification has a Reply-To");
        reply_to.rsplit('<').next().unwrap().trim_end_matches('>').to_string()
    }

    /// `who` (staff) answers the last mail they got, with "Reply": `rest` is everything after
    /// the From and To lines.
    fn staff_reply(&self, who: &str, rest: &str) -> Outcome {
        let to = self.reply_address(who);
        self.mail(&format!("From: {who}\nTo: {to}\n{rest}"))
    }

    /// `who` (staff) writes a new mail to their personal command address.
    fn staff_new(&self, who: &str, rest: &str) -> Outcome {
        let address = guichet::domain::EmailAddress::parse(who).unwrap();
        let to = self.app.desk.personal_address(&address);
        self.mail(&format!("From: {who}\nTo: {to}\n{rest}"))
    }
}

fn header<'a>(mail: &'a str, name: &str) -> Option<&'a str> {
    mail.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(':')).map(str::trim))
}

const FIRST: &str = "From: Marie <marie@customer.example>
To: support@example.com
Cc: boss@customer.example
Subject: Imprimante bloquée
Message-ID: <m1@customer.example>
Date: Mon, 30 Nov 2026 09:00:00 +0100

Bonjour, l'imprimante est bloquée.
";

fn opened() -> Desk {
    let d = Desk::new();
    assert_eq!(d.mail(FIRST), Outcome::Ticket { number: 1, created: true });
    d
}

#[test]
fn a_new_mail_opens_a_ticket_and_is_acknowledged_with_threading_headers() {
    let d = opened();
    let t = d.ticket(1);
    assert_eq!(t.subject, "Imprimante bloquée");
    assert_eq!(t.status, "new");
    assert_eq!(t.requester, "marie@customer.example");
    assert_eq!(t.watchers, vec!["boss@customer.example"]);
    let acks = d.sent_to("marie@customer.example");
    assert_eq!(acks.len(), 1, "exactly one acknowledgement");
    let (event, mail) = &acks[0];
    assert_eq!(event, "ticket_created");
    assert_eq!(header(mail, "In-Reply-To"), Some("<m1@customer.example>"));
    assert_eq!(header(mail, "Auto-Submitted"), Some("auto-replied"));
    assert!(mail.contains("[Ticket #1]"));
    assert!(mail.contains("/tickets/1"));
    // Staff hear of it; the Cc'd watcher is mailed only once a person answers (SPEC §7: one
    // inbound mail, at most one automatic mail).
    assert_eq!(d.sent_to("alice@example.com").len(), 1);
    assert_eq!(d.sent_to("boss@customer.example").len(), 0);
}

#[test]
fn a_reply_with_the_token_joins_its_ticket() {
    let d = opened();
    let r = d.mail("From: marie@customer.example\nTo: support@example.com\nSubject: RE : [ticket#1] Imprimante bloquée\nMessage-ID: <m2@customer.example>\n\nToujours bloquée.\n");
    assert_eq!(r, Outcome::Ticket { number: 1, created: false });
    assert_eq!(d.ticket(1).messages.unwrap().len(), 2);
}

#[test]
fn a_reply_whose_subject_was_rewritten_joins_through_in_reply_to() {
    let d = opened();
    let r = d.mail("From: marie@customer.example\nTo: support@example.com\nSubject: autre chose\nIn-Reply-To: <m1@customer.example>\nMessage-ID: <m3@customer.example>\n\nVoilà.\n");
    assert_eq!(r, Outcome::Ticket { number: 1, created: false });
}

#[test]
fn a_reply_to_our_acknowledgement_joins_through_our_message_id() {
    let d = opened();
    let (_, ack) = &d.sent_to("marie@customer.example")[0];
    let ours = header(ack, "Message-ID").unwrap().to_string();
    let r = d.mail(&format!(
        "From: marie@customer.example\nTo: support@example.com\nSubject: Merci\nIn-Reply-To: {ours}\nReferences: {ours}\nMessage-ID: <m4@customer.example>\n\nMerci.\n"
    ));
    assert_eq!(r, Outcome::Ticket { number: 1, created: false });
}

#[test]
fn a_forged_message_id_of_ours_does_not_thread() {
    let d = opened();
    let r = d.mail("From: marie@customer.example\nTo: support@example.com\nSubject: Nouveau\nIn-Reply-To: <guichet.1.0000000000000000.0000000000000000@example.com>\nMessage-ID: <m5@customer.example>\n\nx\n");
    assert_eq!(r, Outcome::Ticket { number: 2, created: true });
}

#[test]
fn a_ccd_person_answering_the_original_mail_joins_it() {
    let d = opened();
    let r = d.mail("From: boss@customer.example\nTo: marie@customer.example, support@example.com\nSubject: Re: Imprimante bloquée\nIn-Reply-To: <m1@customer.example>\nMessage-ID: <b1@customer.example>\n\nJe confirme.\n");
    assert_eq!(r, Outcome::Ticket { number: 1, created: false });
}

#[test]
fn a_stranger_using_the_token_gets_a_new_ticket() {
    let d = opened();
    let r = d.mail("From: eve@other.example\nTo: support@example.com\nSubject: Re: [Ticket #1] Imprimante bloquée\nMessage-ID: <e1@other.example>\n\nJe veux lire.\n");
    assert_eq!(r, Outcome::Ticket { number: 2, created: true });
    assert_eq!(d.ticket(1).messages.unwrap().len(), 1, "nothing written into ticket 1");
}

#[test]
fn the_same_mail_twice_makes_one_message_and_one_set_of_notifications() {
    let d = opened();
    let before = d.outbox().len();
    assert_eq!(d.mail(FIRST), Outcome::Duplicate);
    assert_eq!(d.ticket_count(), 1);
    assert_eq!(d.outbox().len(), before);
}

#[test]
fn a_mail_without_message_id_is_deduplicated_on_its_bytes() {
    let d = Desk::new();
    let m = "From: a@customer.example\nTo: support@example.com\nSubject: sans id\n\ntexte\n";
    assert!(matches!(d.mail(m), Outcome::Ticket { created: true, .. }));
    assert_eq!(d.mail(m), Outcome::Duplicate);
}

#[test]
fn a_three_megabyte_attachment_is_refused_and_the_sender_told() {
    let d = Desk::new();
    use base64::Engine;
    let big = base64::engine::general_purpose::STANDARD.encode(vec![7u8; 3 * 1024 * 1024]);
    let wrapped: String = big.as_bytes().chunks(76).map(|c| format!("{}\n", std::str::from_utf8(c).unwrap())).collect();
    let small = base64::engine::general_purpose::STANDARD.encode(b"%PDF-1.4 small");
    let raw = format!(
        "From: a@customer.example\nTo: support@example.com\nSubject: fichiers\nMessage-ID: <big@customer.example>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nvoir pièces\n--b\nContent-Type: application/zip\nContent-Disposition: attachment; filename=\"huge.zip\"\nContent-Transfer-Encoding: base64\n\n{wrapped}--b\nContent-Type: application/pdf\nContent-Disposition: attachment; filename=\"petit.pdf\"\nContent-Transfer-Encoding: base64\n\n{small}\n--b--\n"
    );
    assert!(matches!(d.mail(&raw), Outcome::Ticket { number: 1, created: true }));
    let m = &d.ticket(1).messages.unwrap()[0];
    assert_eq!(m.attachments.len(), 1);
    assert_eq!(m.attachments[0].name, "petit.pdf");
    assert_eq!(m.refused_attachments.len(), 1);
    assert_eq!(m.refused_attachments[0].name, "huge.zip");
    assert_eq!(m.refused_attachments[0].size, 3 * 1024 * 1024);
    // Told in the acknowledgement: one inbound mail, one automatic mail.
    let told = d.sent_to("a@customer.example");
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].0, "ticket_created");
    assert!(told[0].1.contains("huge.zip"));
}

#[test]
fn a_broken_mail_is_quarantined_and_the_next_one_processed() {
    let d = Desk::new();
    let broken = d.mail("this is not a mail at all, no headers\n");
    assert!(matches!(broken, Outcome::Quarantined(_)), "{broken:?}");
    let no_from = d.mail("Subject: orphan\nMessage-ID: <o@x.example>\n\nno sender\n");
    assert!(matches!(no_from, Outcome::Quarantined(_)), "{no_from:?}");
    assert!(matches!(d.mail(FIRST), Outcome::Ticket { number: 1, created: true }));
    let q = d.app.store.read(guichet::store::raw::quarantined).unwrap();
    assert_eq!(q.len(), 2);
}

#[test]
fn an_out_of_office_on_a_waiting_ticket_changes_nothing_and_answers_nothing() {
    let d = opened();
    d.staff_reply(
        "alice@example.com",
        "Subject: Re: [Ticket #1] Imprimante bloquée\nMessage-ID: <s1@example.com>\n\nPouvez-vous la redémarrer ?\n",
    );
    assert_eq!(d.ticket(1).status, "waiting");
    let before = d.outbox().len();
    let r = d.mail("From: marie@customer.example\nTo: support@example.com\nSubject: Réponse automatique : [Ticket #1] Imprimante bloquée\nAuto-Submitted: auto-replied\nMessage-ID: <ooo@customer.example>\n\nJe suis absente.\n");
    assert_eq!(r, Outcome::Ticket { number: 1, created: false });
    assert_eq!(d.ticket(1).status, "waiting");
    assert_eq!(d.outbox().len(), before, "no mail answers an auto-reply");
}

#[test]
fn staff_answers_are_relayed_without_the_staff_address_or_the_quoted_history() {
    let d = opened();
    let to = d.reply_address("alice@example.com");
    d.mail(&format!("From: Alice Bernard <alice@example.com>\nTo: {to}\nSubject: Re: [Ticket #1] Imprimante bloquée\nMessage-ID: <s2@example.com>\n\nRedémarrez-la, s'il vous plaît.\n\nLe lun. 30 nov. 2026 à 09:00, Marie <marie@customer.example> a écrit :\n> Bonjour, l'imprimante est bloquée.\n"));
    let relayed: Vec<_> =
        d.sent_to("marie@customer.example").into_iter().filter(|(e, _)| e == "staff_answer").collect();
    assert_eq!(relayed.len(), 1);
    let mail = &relayed[0].1;
    assert!(!mail.contains("alice@example.com"), "staff address leaked:\n{mail}");
    assert!(header(mail, "From").unwrap().contains("support@example.com"));
    assert!(header(mail, "Auto-Submitted").is_none());
    assert!(!mail.contains("a =C3=A9crit") && !mail.contains("a écrit"), "quoted history relayed:\n{mail}");
    assert_eq!(d.sent_to("boss@customer.example").iter().filter(|(e, _)| e == "staff_answer").count(), 1);
    // Each customer's copy carries their own signed reply address.
    assert!(header(mail, "Reply-To").unwrap().contains("support+1-"), "{mail}");
    assert_ne!(d.reply_address("boss@customer.example"), d.reply_address("marie@customer.example"));
    assert_eq!(d.ticket(1).status, "waiting");
}

#[test]
fn a_note_reaches_no_customer_and_status_commands_apply() {
    let d = opened();
    let before = d.sent_to("marie@customer.example").len();
    d.staff_reply(
        "alice@example.com",
        "Subject: Re: [Ticket #1]\nMessage-ID: <n1@example.com>\n\n#note\nClient difficile, voir contrat.\n",
    );
    assert_eq!(d.sent_to("marie@customer.example").len(), before);
    let t = d.ticket(1);
    assert!(t.messages.as_ref().unwrap().iter().any(|m| m.kind == "note" && m.text.contains("Client difficile")));
    d.staff_reply("alice@example.com", "Subject: Re: [Ticket #1]\nMessage-ID: <n2@example.com>\n\n#status closed\n");
    assert_eq!(d.ticket(1).status, "closed");
    assert!(d.sent_to("marie@customer.example").iter().any(|(e, _)| e == "ticket_closed"));
    // A customer answer within the window reopens it.
    d.mail("From: marie@customer.example\nTo: support@example.com\nSubject: Re: [Ticket #1] Imprimante bloquée\nMessage-ID: <m9@customer.example>\n\nÇa recommence.\n");
    assert_eq!(d.ticket(1).status, "open");
}

#[test]
fn an_unknown_staff_command_is_answered_and_nothing_relayed() {
    let d = opened();
    let before = d.sent_to("marie@customer.example").len();
    d.staff_reply(
        "alice@example.com",
        "Subject: Re: [Ticket #1]\nMessage-ID: <u1@example.com>\n\n#frobnicate\nTexte.\n",
    );
    assert_eq!(d.sent_to("marie@customer.example").len(), before);
    let answers: Vec<_> = d.sent_to("alice@example.com").into_iter().filter(|(e, _)| e == "unknown_command").collect();
    assert_eq!(answers.len(), 1);
    assert!(answers[0].1.contains("#status"));
}

#[test]
fn a_staff_forward_opens_a_ticket_for_the_original_sender() {
    let d = Desk::new();
    let r = d.staff_new("bob@support.example.com", "Subject: TR: Facture erronée\nMessage-ID: <f1@support.example.com>\n\n-----Message d'origine-----\nDe : Client Dupuis <dupuis@customer.example>\nEnvoyé : lundi 30 novembre 2026 08:00\nÀ : Bob\nObjet : Facture erronée\n\nLa facture 42 est fausse.\n");
    assert_eq!(r, Outcome::Ticket { number: 1, created: true });
    assert_eq!(d.ticket(1).requester, "dupuis@customer.example");
    assert_eq!(d.ticket(1).subject, "Facture erronée");
}

#[test]
fn a_staff_forward_in_another_language_opens_a_ticket_for_the_original_sender() {
    let d = Desk::new();
    let r = d.staff_new("bob@support.example.com", "Subject: WG: Rechnung falsch\nMessage-ID: <f2@support.example.com>\n\nBitte übernehmen.\n\nVon: Kunde Becker <becker@customer.example>\nGesendet: Montag, 30. November 2026 08:00\nAn: Bob\nBetreff: Rechnung falsch\n\nDie Rechnung 42 ist falsch.\n");
    assert_eq!(r, Outcome::Ticket { number: 1, created: true });
    assert_eq!(d.ticket(1).requester, "becker@customer.example");
    assert_eq!(d.ticket(1).subject, "Rechnung falsch");
}

#[test]
fn a_configured_forward_prefix_marks_a_staff_forward() {
    let d = Desk::with("forward_prefixes = [\"Doorgestuurd\"]");
    d.staff_new("bob@support.example.com", "Subject: Doorgestuurd: Factuur fout\nMessage-ID: <f3@support.example.com>\n\n-------- Doorgestuurd bericht --------\nOnderwerp: \tFactuur fout\nDatum: \tma 30 nov 2026 08:00\nVan: \tKlant Jansen <jansen@customer.example>\n\nFactuur 42 klopt niet.\n");
    assert_eq!(d.ticket(1).requester, "jansen@customer.example");
    assert_eq!(d.ticket(1).subject, "Factuur fout");
    // Without the key the same subject is no forward: the ticket is Bob's own.
    let plain = Desk::new();
    plain.staff_new("bob@support.example.com", "Subject: Doorgestuurd: Factuur fout\nMessage-ID: <f4@support.example.com>\n\n-------- Doorgestuurd bericht --------\nVan: Klant Jansen <jansen@customer.example>\nDatum: ma 30 nov 2026\n\nFactuur 42 klopt niet.\n");
    assert_eq!(plain.ticket(1).requester, "bob@support.example.com");
}

#[test]
fn requester_command_opens_a_ticket_on_behalf_of_a_customer() {
    let d = Desk::new();
    d.staff_new("alice@example.com", "Subject: Appel téléphonique\nMessage-ID: <r1@example.com>\n\n#requester client@customer.example\nLe client signale une panne.\n");
    let t = d.ticket(1);
    assert_eq!(t.requester, "client@customer.example");
    assert_eq!(d.sent_to("client@customer.example").len(), 1);
}

#[test]
fn our_own_mail_coming_back_is_dropped_never_a_ticket() {
    let d = Desk::new();
    let r = d.mail("From: someone@customer.example\nTo: support@example.com\nSubject: boucle\nX-Guichet-Loop: support@example.com\nMessage-ID: <l1@x.example>\n\nx\n");
    assert!(matches!(r, Outcome::Dropped(_)));
    let r = d
        .mail("From: support@example.com\nTo: support@example.com\nSubject: boucle\nMessage-ID: <l2@x.example>\n\nx\n");
    assert!(matches!(r, Outcome::Dropped(_)));
    assert_eq!(d.ticket_count(), 0);
}

#[test]
fn a_delivery_report_marks_the_notification_failed_and_opens_no_ticket() {
    let d = opened();
    let (_, ack) = &d.sent_to("marie@customer.example")[0];
    let ours = header(ack, "Message-ID").unwrap().to_string();
    let dsn = format!(
        "From: MAILER-DAEMON@mx.customer.example\nTo: support@example.com\nSubject: Undelivered Mail Returned to Sender\nMessage-ID: <dsn1@mx.customer.example>\nMIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\n\n--r\nContent-Type: text/plain\n\nDelivery failed.\n--r\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.customer.example\n\nFinal-Recipient: rfc822; marie@customer.example\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 no such user\n--r\nContent-Type: text/rfc822-headers\n\nFrom: support@example.com\nTo: marie@customer.example\nMessage-ID: {ours}\nSubject: [Ticket #1] Imprimante bloquée\n--r--\n"
    );
    let r = d.mail(&dsn);
    assert_eq!(r, Outcome::Report { ticket: Some(1) });
    assert_eq!(d.ticket_count(), 1);
    let failed: i64 =
        d.app.store.read(|c| Ok(outbox::table.filter(outbox::state.eq("failed")).count().get_result(c)?)).unwrap();
    assert_eq!(failed, 1);
    // No more automatic mail to that address for 60 days.
    let before = d.sent_to("marie@customer.example").len();
    d.staff_reply("alice@example.com", "Subject: Re: [Ticket #1]\nMessage-ID: <s9@example.com>\n\n#status closed\n");
    assert_eq!(d.sent_to("marie@customer.example").len(), before);
}

#[test]
fn automatic_mail_to_one_address_stops_at_the_rate_limit() {
    let d = Desk::new();
    for i in 0..15 {
        d.mail(&format!("From: robot@customer.example\nTo: support@example.com\nSubject: alerte {i}\nMessage-ID: <r{i}@customer.example>\n\nalerte\n"));
    }
    assert_eq!(d.ticket_count(), 15);
    assert_eq!(d.sent_to("robot@customer.example").len(), 10, "auto_reply_limit defaults to 10 in 3 hours");
}

#[test]
fn a_mail_that_fails_in_its_batch_goes_to_quarantine_alone_and_the_others_are_written() {
    // A batch is written without a savepoint per mail first; a mail that fails there (here the
    // database refuses its message: a trigger) makes the batch be written again, each mail in a
    // savepoint. Only that mail is quarantined; on SQLite the ticket numbers have no gap.
    let d = Desk::new();
    let sqlite = d._database.url.starts_with("sqlite");
    common::guichet::refuse_messages_titled_boom(&d._database.url);
    let mail = |who: &str, subject: &str, n: u32| {
        format!("From: {who}\r\nTo: support@example.com\r\nSubject: {subject}\r\nMessage-ID: <b{n}@customer.example>\r\n\r\nPanne.\r\n")
            .into_bytes()
    };
    let batch = vec![
        mail("one@customer.example", "Imprimante", 1),
        mail("two@customer.example", "boom", 2),
        mail("three@customer.example", "Scanner", 3),
    ];
    let outcomes = d.app.ingest_batch(&batch, "test", guichet::desk::actions::Mailing::Send).unwrap();
    let created = |o: &Outcome| match o {
        Outcome::Ticket { number, created: true } => *number,
        other => panic!("not a new ticket: {other:?}"),
    };
    let (first, third) = (created(&outcomes[0]), created(&outcomes[2]));
    assert!(matches!(&outcomes[1], Outcome::Quarantined(why) if why.contains("refused by the test")), "{outcomes:?}");
    // PostgreSQL's sequences do not give back the numbers of a rolled-back transaction (README).
    if sqlite {
        assert_eq!((first, third), (1, 2), "{outcomes:?}");
    } else {
        assert!(first < third, "{outcomes:?}");
    }
    assert_eq!(d.ticket_count(), 2);
    let quarantined = d.app.store.read(guichet::store::raw::quarantined).unwrap();
    assert_eq!(quarantined.len(), 1);
    for who in ["one@customer.example", "three@customer.example"] {
        assert_eq!(d.sent_to(who).len(), 1, "{who} is acknowledged once");
    }
    assert!(d.sent_to("two@customer.example").is_empty());
    // The next batch goes on from there.
    let next =
        d.app.ingest_batch(&[mail("four@customer.example", "Wifi", 4)], "test", guichet::desk::actions::Mailing::Send);
    let fourth = created(&next.unwrap()[0]);
    assert!(fourth > third);
    if sqlite {
        assert_eq!(fourth, 3);
    }
}

#[test]
fn the_rate_limit_counts_the_mails_queued_earlier_in_the_same_batch() {
    // The daemon writes a whole IMAP batch in one transaction, its notifications held until
    // COMMIT: the limit must still see the ones this very batch queued.
    let d = Desk::new();
    let robot: Vec<Vec<u8>> = (0..15)
        .map(|i| {
            format!("From: robot@customer.example\r\nTo: support@example.com\r\nSubject: alerte {i}\r\nMessage-ID: <rb{i}@customer.example>\r\n\r\nalerte\r\n")
                .into_bytes()
        })
        .collect();
    let outcomes = d.app.ingest_batch(&robot, "test", guichet::desk::actions::Mailing::Send).unwrap();
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Ticket { created: true, .. })), "{outcomes:?}");
    assert_eq!(d.sent_to("robot@customer.example").len(), 10, "auto_reply_limit: 10 in 3 hours");
}

#[test]
fn a_notification_that_cannot_be_rendered_fails_alone_and_the_mail_that_caused_it_is_kept() {
    // An administrator's template that fails for one requester (strict mode: an unknown
    // variable). Notifications are rendered when they are sent: the three mails make three
    // tickets, the two good acknowledgements are sent, and the bad one is marked failed on its
    // ticket, where staff see it.
    let templates = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(templates.path().join("fr")).unwrap();
    std::fs::write(
        templates.path().join("fr/ticket_created.subject.hbs"),
        "{{token}} Recu : {{#if (eq recipient \"bad@customer.example\")}}{{no_such_variable}}{{/if}}{{ticket.subject}}",
    )
    .unwrap();
    let d = Desk::with(&format!("templates_dir = \"{}\"", templates.path().display()));
    let mail = |who: &str, n: u32| {
        format!("From: {who}\r\nTo: support@example.com\r\nSubject: Panne {n}\r\nMessage-ID: <tpl{n}@customer.example>\r\n\r\nPanne.\r\n")
            .into_bytes()
    };
    let batch =
        vec![mail("one@customer.example", 1), mail("bad@customer.example", 2), mail("three@customer.example", 3)];
    let outcomes = d.app.ingest_batch(&batch, "test", guichet::desk::actions::Mailing::Send).unwrap();
    for (i, o) in outcomes.iter().enumerate() {
        assert_eq!(*o, Outcome::Ticket { number: i as i64 + 1, created: true }, "{outcomes:?}");
    }

    // The sender (file transport) sends what it can compose.
    let sent = tempfile::tempdir().unwrap();
    let transport = std::sync::Arc::new(guichet::workers::sender::Transport::file(sent.path().to_path_buf()));
    let (_stop, mut shutdown) = guichet::app::Shutdown::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    while runtime.block_on(guichet::workers::sender::send_due(&d.app, &transport, &mut shutdown)).unwrap() > 0 {}
    let files: Vec<String> = std::fs::read_dir(sent.path())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .filter(|m| m.contains("Auto-Submitted: auto-replied"))
        .collect();
    assert_eq!(files.len(), 2, "two acknowledgements written");
    for who in ["one@customer.example", "three@customer.example"] {
        let ack = files.iter().find(|m| header(m, "To") == Some(who)).unwrap_or_else(|| panic!("{who} acknowledged"));
        assert!(header(ack, "Subject").unwrap().contains("Recu : Panne"), "{ack}");
    }
    let rows: Vec<OutboxRow> = d
        .app
        .store
        .read(|c| {
            Ok(outbox::table
                .filter(outbox::recipient.eq("bad@customer.example"))
                .select(OutboxRow::as_select())
                .load(c)?)
        })
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, "failed");
    let error = rows[0].last_error.clone().unwrap_or_default();
    assert!(error.contains("cannot compose the mail") && error.contains("no_such_variable"), "{error}");
    let events: Vec<String> = d.ticket(2).messages.unwrap().into_iter().map(|m| m.text).collect();
    assert!(events.iter().any(|t| t.contains("bad@customer.example") && t.contains("refusée")), "{events:?}");
}

#[test]
fn no_automatic_mail_to_system_addresses_or_auto_generated_senders() {
    let d = Desk::new();
    d.mail("From: no-reply@shop.example\nTo: support@example.com\nSubject: Votre commande\nMessage-ID: <nr@shop.example>\n\nx\n");
    d.mail("From: news@list.example\nTo: support@example.com\nSubject: Lettre\nList-Id: <news.list.example>\nMessage-ID: <nl@list.example>\n\nx\n");
    assert!(d.sent_to("no-reply@shop.example").is_empty());
    assert!(d.sent_to("news@list.example").is_empty());
}

#[test]
fn a_dmarc_failure_opens_an_unverified_ticket_and_never_reaches_an_existing_one() {
    let d = opened();
    let r = d.mail("Authentication-Results: mx.example.com; dmarc=fail header.from=customer.example\nFrom: marie@customer.example\nTo: support@example.com\nSubject: Re: [Ticket #1] Imprimante\nMessage-ID: <forged@evil.example>\n\nforged\n");
    assert_eq!(r, Outcome::Ticket { number: 2, created: true });
    assert!(d.ticket(2).unverified);
    // Claiming a staff address does not make a staff answer either: an unverified note.
    let r = d.mail("Authentication-Results: mx.example.com; dmarc=fail header.from=example.com\nFrom: alice@example.com\nTo: support@example.com\nSubject: Re: [Ticket #1]\nMessage-ID: <forged2@evil.example>\n\n#status closed\n");
    assert_eq!(r, Outcome::Ticket { number: 1, created: false });
    assert_eq!(d.ticket(1).status, "new");
    assert!(d.ticket(1).messages.unwrap().iter().any(|m| m.kind == "note" && m.unverified));
    assert_eq!(d.ticket_count(), 2);
    // A result from another server is not trusted.
    let r = d.mail("Authentication-Results: mx.evil.example; dmarc=fail header.from=customer.example\nFrom: marie@customer.example\nTo: support@example.com\nSubject: Re: [Ticket #1] Imprimante\nMessage-ID: <m7@customer.example>\n\nok\n");
    assert_eq!(r, Outcome::Ticket { number: 1, created: false });
}

#[test]
fn company_members_join_shared_company_tickets() {
    let d = Desk::new();
    d.mail("From: a@cisa.example\nTo: support@example.com\nSubject: panne\nMessage-ID: <c1@cisa.example>\n\nx\n");
    let r = d.mail("From: b@cisa.example\nTo: support@example.com\nSubject: Re: [Ticket #1] panne\nMessage-ID: <c2@cisa.example>\n\nmoi aussi\n");
    assert_eq!(r, Outcome::Ticket { number: 1, created: false });
    assert_eq!(d.ticket(1).company.as_deref(), Some("Cisa"));
}

#[test]
fn a_reply_to_a_ticket_closed_too_long_ago_opens_a_new_one_that_refers_to_it() {
    let d = Desk::with("reopen_window_days = 0");
    d.mail(FIRST);
    d.staff_reply("alice@example.com", "Subject: Re: [Ticket #1]\nMessage-ID: <cl@example.com>\n\n#status closed\n");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = d.mail("From: marie@customer.example\nTo: support@example.com\nSubject: Re: [Ticket #1] Imprimante bloquée\nMessage-ID: <late@customer.example>\n\nencore\n");
    assert_eq!(r, Outcome::Ticket { number: 2, created: true });
    assert_eq!(d.ticket(2).refers_to, Some(1));
    assert_eq!(d.ticket(1).status, "closed");
}

#[test]
fn a_mail_over_max_message_bytes_is_quarantined() {
    let d = Desk::with("max_message_bytes = 1000");
    let raw = format!(
        "From: a@customer.example\nTo: support@example.com\nSubject: gros\nMessage-ID: <g@c.example>\n\n{}\n",
        "x".repeat(2000)
    );
    assert!(matches!(d.mail(&raw), Outcome::Quarantined(r) if r.contains("too large")));
}

#[test]
fn header_injection_in_a_subject_or_name_yields_a_clean_mail() {
    let d = Desk::new();
    d.mail("From: =?UTF-8?B?RXZlDQpCY2M6IHZpY3RpbUB4LmNvbQ==?= <eve@customer.example>\nTo: support@example.com\nSubject: =?UTF-8?B?SGVsbG8NCkJjYzogdmljdGltQHguY29t?=\nMessage-ID: <inj@customer.example>\n\nx\n");
    for (_, _, mail) in d.outbox() {
        let head: Vec<&str> = mail.split("\r\n\r\n").next().unwrap().lines().collect();
        assert!(!head.iter().any(|l| l.to_ascii_lowercase().starts_with("bcc:")), "{mail}");
    }
}

/// Two daemons (two `App`s on one database) storing the same new file at the same moment: the
/// second waits for the first's transaction and both mails keep the file. On PostgreSQL the
/// second's insert of the file met the first's uncommitted row and its mail went to quarantine.
#[test]
fn the_same_new_file_stored_by_two_daemons_at_once_is_kept_by_both_mails() {
    use base64::Engine;
    use guichet::desk::actions::Mailing;
    use guichet::desk::inbound;
    let first = Desk::new();
    let settings = first.app.settings.as_ref().clone();
    let second = App::open(settings).unwrap();
    let pdf = base64::engine::general_purpose::STANDARD.encode(b"%PDF-1.4 the same contract");
    let mail = |who: &str| {
        format!(
            "From: {who}@customer.example\nTo: support@example.com\nSubject: contrat\nMessage-ID: <{who}@customer.example>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nle contrat\n--b\nContent-Type: application/pdf\nContent-Disposition: attachment; filename=\"contrat.pdf\"\nContent-Transfer-Encoding: base64\n\n{pdf}\n--b--\n"
        )
        .replace('\n', "\r\n")
    };
    let (stored, go) = std::sync::mpsc::channel();
    let outcomes = std::thread::scope(|s| {
        let a = s.spawn(|| {
            first.app.store.write(|c| {
                let o = inbound::ingest(c, &first.app.desk, mail("anne").as_bytes(), "a", Mailing::Send, 0)?;
                // The file is in this open transaction; the other daemon stores it meanwhile.
                stored.send(()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(500));
                Ok(o)
            })
        });
        let second = &second;
        let b = s.spawn(move || {
            go.recv().unwrap();
            second.ingest_one(mail("bruno").as_bytes(), "b")
        });
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert!(matches!(outcomes.0, Outcome::Ticket { created: true, .. }), "{outcomes:?}");
    assert!(matches!(outcomes.1, Outcome::Ticket { created: true, .. }), "{outcomes:?}");
    for n in [1, 2] {
        let m = &first.ticket(n).messages.unwrap()[0];
        assert_eq!(m.attachments.len(), 1, "ticket {n}");
        assert_eq!(m.attachments[0].name, "contrat.pdf");
    }
}

#[test]
fn the_daily_digest_lists_each_staff_members_tickets_and_the_unassigned_ones_once() {
    let d = Desk::with(
        "staff_notify = [\"alice@example.com\", \"bob@support.example.com\"]\n[timers]\ndigest_at = \"08:00\"\n",
    );
    d.mail("From: marie@customer.example\nSubject: Imprimante\nMessage-ID: <g1@customer.example>\n\nPanne.\n");
    d.staff_reply("alice@example.com", "Subject: Re: [Ticket #1]\nMessage-ID: <g3@example.com>\n\nJe regarde.\n");
    d.mail("From: paul@customer.example\nSubject: VPN\nMessage-ID: <g2@customer.example>\n\nPlus d'accès.\n");
    assert_eq!(d.ticket(1).assignee.as_deref(), Some("alice@example.com"), "answering took it");

    let desk = &d.app.desk;
    let now = guichet::store::now();
    d.app.store.write(|c| guichet::desk::timers::schedule_digest(c, desk, now)).unwrap();
    assert_eq!(d.app.fire_due_timers().unwrap(), 0, "not before 08:00");
    // At 08:00 (the due time), whichever daemon claims it first sends it; the next claim fails.
    let due: i64 = d
        .app
        .store
        .read(|c| {
            use guichet::store::schema::timers::dsl::*;
            Ok(timers.filter(kind.eq("digest")).select(due_at).first::<i64>(c)?)
        })
        .unwrap();
    assert!(due > now && due <= now + 86_400);
    assert!(d.app.store.write(|c| guichet::desk::timers::fire(c, desk, 0, "digest", due)).unwrap());
    assert!(!d.app.store.write(|c| guichet::desk::timers::fire(c, desk, 0, "digest", due)).unwrap(), "once");

    let digests: Vec<(String, String)> =
        d.outbox().into_iter().filter(|(e, _, _)| e == "staff_digest").map(|(_, r, m)| (r, m)).collect();
    assert_eq!(digests.len(), 2, "{digests:?}");
    let alice = &digests.iter().find(|(r, _)| r == "alice@example.com").unwrap().1;
    assert!(alice.contains("Imprimante") && alice.contains("VPN"), "hers and the unassigned one: {alice}");
    let bob = &digests.iter().find(|(r, _)| r == "bob@support.example.com").unwrap().1;
    assert!(bob.contains("VPN") && !bob.contains("Imprimante"), "only the unassigned one: {bob}");
}

#[test]
fn a_batch_reads_back_its_own_mails_duplicates_threads_references_and_the_rate_limit() {
    // What a mail looks up of the mails before it, when they are in the same batch: on
    // PostgreSQL the batch's rows are only inserted just before COMMIT (`store::pg_batch`), and
    // these answers come from what it holds. The same outcomes as mail by mail (tests above).
    let d = Desk::new();
    let mail = |n: u32, subject: &str, extra: &str| {
        format!(
            "From: robot@customer.example\r\nTo: support@example.com\r\nSubject: {subject}\r\nMessage-ID: <h{n}@customer.example>\r\n{extra}\r\nPanne.\r\n"
        )
        .into_bytes()
    };
    let mut batch: Vec<Vec<u8>> = (0..15).map(|i| mail(i, &format!("alerte {i}"), "")).collect();
    batch.push(mail(0, "alerte 0", ""));
    batch.push(mail(
        100,
        "Re: alerte 1",
        "In-Reply-To: <h1@customer.example>\r\nReferences: <h1@customer.example>\r\n",
    ));
    let outcomes = d.app.ingest_batch(&batch, "test", guichet::desk::actions::Mailing::Send).unwrap();
    assert_eq!(outcomes[15], Outcome::Duplicate, "the same Message-ID twice in a batch");
    let Outcome::Ticket { number: first, created: true } = outcomes[1] else { panic!("{outcomes:?}") };
    assert_eq!(outcomes[16], Outcome::Ticket { number: first, created: false }, "a reply to a mail of its batch");
    assert_eq!(d.ticket_count(), 15);
    assert_eq!(d.sent_to("robot@customer.example").len(), 10, "the rate limit counts the batch's own acknowledgements");
    let answer: Vec<String> =
        d.outbox().into_iter().filter(|(event, _, _)| event == "customer_answer").map(|(_, _, mail)| mail).collect();
    assert!(!answer.is_empty());
    for mail in answer {
        let references = header(&mail, "References").expect("References");
        assert!(
            references.contains("<h1@customer.example>") && references.contains("<h100@customer.example>"),
            "{references}"
        );
    }
    // Nothing held is lost: every message, raw mail and keyword is in the database.
    assert_eq!(d.ticket(first).messages.unwrap().len(), 2);
    let raw =
        d.app.store.read(|c| guichet::store::raw::count_by_state(c, guichet::store::raw::RawState::Processed)).unwrap();
    assert_eq!(raw, 16);
}
