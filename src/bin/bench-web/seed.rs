//! Seeding the benchmark database: tickets, messages and words with a realistic spread, and the query plans.

use super::*;

pub(crate) const WORDS: &[&str] = &[
    "imprimante",
    "bloquée",
    "erreur",
    "serveur",
    "connexion",
    "mot",
    "passe",
    "réseau",
    "écran",
    "clavier",
    "souris",
    "licence",
    "facture",
    "contrat",
    "logiciel",
    "mise",
    "jour",
    "version",
    "sauvegarde",
    "restauration",
    "messagerie",
    "boîte",
    "courriel",
    "pièce",
    "jointe",
    "accès",
    "droits",
    "utilisateur",
    "compte",
    "poste",
    "portable",
    "batterie",
    "chargeur",
    "wifi",
    "vpn",
    "pare",
    "feu",
    "antivirus",
    "disque",
    "mémoire",
    "lent",
    "plante",
    "redémarrage",
    "installation",
    "paramètre",
    "configuration",
    "téléphone",
    "standard",
    "ligne",
    "bonjour",
    "merci",
    "cordialement",
    "depuis",
    "hier",
    "matin",
    "toujours",
    "problème",
    "urgent",
    "demande",
    "technicien",
    "intervention",
    "rendez",
    "vous",
    "devis",
    "commande",
    "livraison",
    "toner",
    "cartouche",
    "papier",
    "bourrage",
    "scanner",
    "copie",
    "badge",
    "salle",
    "réunion",
    "projecteur",
    "câble",
    "prise",
];

pub(crate) fn sentence(rng: &mut StdRng, words: usize) -> String {
    let mut s = String::new();
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        // A skewed pick: some words are everywhere, most are rarer; plus synthetic words.
        let u: f64 = rng.random();
        if u < 0.7 {
            let idx = ((u / 0.7).powi(2) * WORDS.len() as f64) as usize;
            s.push_str(WORDS[idx.min(WORDS.len() - 1)]);
        } else {
            s.push_str(&format!("mot{}", rng.random_range(0..20_000)));
        }
    }
    s
}

pub(crate) fn seed(app: &App, o: &Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(42);
    let now = guichet::store::now();
    let batch = 2_000u64;
    let mut done = 0u64;
    println!("seeding {} tickets with {} messages each…", o.tickets, o.messages_per_ticket);
    while done < o.tickets {
        let n = batch.min(o.tickets - done);
        let seeds: Vec<u64> = (0..n).map(|_| rng.random()).collect();
        app.store.write(|c| {
            for s in &seeds {
                let mut r = StdRng::seed_from_u64(*s);
                let customer = r.random_range(0..20_000u32);
                let (requester, company) = if r.random_bool(0.01) {
                    (format!("user{}@bigcorp.example", customer % 300), Some("BigCorp"))
                } else {
                    (format!("client{customer}@cust{}.example", customer % 2_000), None)
                };
                let created = now - r.random_range(0..3 * 365 * 86_400i64);
                let words = r.random_range(3..7);
                let subject = sentence(&mut r, words);
                let number = tickets::insert_ticket(
                    c,
                    &NewTicket {
                        subject: &subject,
                        requester: &requester,
                        priority: [Priority::Low, Priority::Normal, Priority::Normal, Priority::Blocking]
                            [r.random_range(0..4)],
                        company,
                        product: Some(["Imprimantes", "Réseau", "Messagerie", "Postes"][r.random_range(0..4)]),
                        service: Some("Support"),
                        unverified: false,
                        refers_to: None,
                        queue: "support@example.com",
                        at: created,
                        waiting_since: None,
                    },
                )?
                .number;
                let mut at = created;
                for i in 0..o.messages_per_ticket {
                    at += r.random_range(60..86_400);
                    let (kind, from) = match i % 5 {
                        4 => (MessageKind::Event, STAFF.to_string()),
                        1 | 3 => (MessageKind::Staff, STAFF.to_string()),
                        _ => (MessageKind::Customer, requester.clone()),
                    };
                    // Events are facts, told in the reader's language when shown (as desk::actions
                    // stores them); the other messages are words, some of them the rare one.
                    let event = (kind == MessageKind::Event).then_some(Event::StatusChanged {
                        from: Status::Open,
                        to: [Status::Waiting, Status::Closed][r.random_range(0..2)],
                    });
                    let text = match &event {
                        Some(event) => event.text("fr"),
                        None => {
                            let words = r.random_range(15..60);
                            let mut text = sentence(&mut r, words);
                            if r.random_bool(0.001) {
                                text.push_str(&format!(" {RARE_WORD}"));
                            }
                            text
                        }
                    };
                    messages::insert_message(
                        c,
                        &NewMessage {
                            subject: if i == 0 { &subject } else { "" },
                            event: event.as_ref(),
                            ..NewMessage::plain(number, kind, &from, at, &text)
                        },
                    )?;
                }
                let status = if at < now - 30 * 86_400 || r.random_bool(0.5) {
                    Status::Closed
                } else {
                    [Status::New, Status::Open, Status::Waiting][r.random_range(0..3)]
                };
                tickets::set_status(c, number, status, at)?;
            }
            Ok(())
        })?;
        done += n;
        if done.is_multiple_of(20_000) || done == o.tickets {
            println!("  {done} tickets ({:.0} s)", started.elapsed().as_secs_f64());
        }
    }
    // What an administrator runs after a bulk import: statistics for the query planner, and the
    // full-text index merged into one segment (day to day, FTS5's automerge keeps it compact).
    let sqlite = o.database_url.is_none();
    app.store.write(|c| {
        use diesel::connection::SimpleConnection;
        c.batch_execute(if sqlite {
            "ANALYZE; INSERT INTO message_search(message_search) VALUES('optimize');"
        } else {
            "ANALYZE"
        })?;
        Ok(())
    })?;
    println!("seeded in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Prints SQLite's plans (of the bundled SQLite) for the list queries of the scenarios.
pub(crate) fn explain(app: &App) -> anyhow::Result<()> {
    #[derive(diesel::QueryableByName)]
    struct Step {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }
    let customer = "(t.requester = 'client7654@cust1654.example' OR t.number IN (SELECT w.ticket_number FROM watchers w WHERE w.address = 'client7654@cust1654.example'))";
    let fts = |q: &str| {
        format!(
            "EXISTS (SELECT 1 FROM messages m CROSS JOIN message_search ON message_search.rowid = m.id WHERE m.ticket_number = t.number AND m.kind <> 'note' AND message_search MATCH '{q}')"
        )
    };
    let page = |w: &str| {
        format!(
            "SELECT t.number FROM tickets t LEFT JOIN reads r ON r.email = 'x' AND r.ticket_number = t.number WHERE {w} ORDER BY t.updated_at DESC, t.number DESC LIMIT 25"
        )
    };
    let queries = [
        page("+t.status IN ('new', 'open', 'waiting')"),
        page(customer),
        page(&format!("{customer} AND {}", fts("\"imprimante\""))),
        page(
            "t.number IN (SELECT m.ticket_number FROM messages m WHERE m.id IN (SELECT rowid FROM message_search WHERE message_search MATCH '\"photoconducteur\"'))",
        ),
    ];
    let sqlite_version: Vec<Step> = app.store.read(|c| {
        use diesel::RunQueryDsl;
        Ok(diesel::sql_query("SELECT sqlite_version() AS detail").load(c)?)
    })?;
    println!("SQLite {}", sqlite_version[0].detail);
    for q in queries {
        let steps: Vec<Step> = app.store.read(|c| {
            use diesel::RunQueryDsl;
            Ok(diesel::sql_query(format!("EXPLAIN QUERY PLAN {q}")).load(c)?)
        })?;
        println!("\n{q}");
        for s in steps {
            println!("  {}", s.detail);
        }
        let t = Instant::now();
        app.store.read(|c| {
            use diesel::RunQueryDsl;
            diesel::sql_query(q.clone()).execute(c)?;
            Ok(())
        })?;
        println!("  took {:.2} ms", ms(t.elapsed()));
    }
    Ok(())
}
