//! Searches that no word can make slow (issue 17): a common word's page is found by walking the
//! list and its count stops at a cap. The walked search must select exactly what the search from
//! the word's matches selects, in the same order, notes and other people's tickets aside; only the
//! count differs, capped. Run on SQLite, and on PostgreSQL with `GUICHET_TEST_POSTGRES`.

#[allow(dead_code)]
mod common;
mod web_support;

use guichet::domain::{MessageKind, Priority, Status};
use guichet::store::listing::{self, Count, ListCriteria, SearchLimits, SortKey};
use guichet::store::messages::{self, NewMessage};
use guichet::store::tickets::{self, NewTicket};
use guichet::store::visibility::Audience;
use web_support::{STAFF, spawn};

const MEMBER: &str = "lea@cisa.example";
const COMPANY: &str = "Cisa Informatique";

/// 14 tickets: "commun" in the messages of most, "rare" in two; in two tickets "commun" is only in
/// an internal note; half of them the company's. Returns the tickets' numbers.
fn seed(app: &guichet::app::App) -> Vec<i64> {
    let now = guichet::store::now();
    app.store
        .write(|c| {
            let mut numbers = Vec::new();
            for i in 0..14i64 {
                let company = i % 2 == 0;
                let requester = if company { format!("p{i}@cisa.example") } else { format!("c{i}@ailleurs.example") };
                let number = tickets::insert_ticket(
                    c,
                    &NewTicket {
                        subject: &format!("Demande {i}"),
                        requester: &requester,
                        priority: Priority::Normal,
                        company: company.then_some(COMPANY),
                        product: None,
                        service: None,
                        unverified: false,
                        refers_to: None,
                        queue: "support@example.com",
                        at: now - 10_000,
                        waiting_since: None,
                    },
                )?
                .number;
                let only_in_note = i == 3 || i == 4;
                let texts = [
                    (MessageKind::Customer, if i % 5 == 1 { "rien à voir" } else { "un mot commun ici" }),
                    (MessageKind::Staff, if i == 6 || i == 9 { "un mot rare" } else { "réponse" }),
                    (MessageKind::Note, "note commun interne"),
                ];
                for (k, (kind, text)) in texts.iter().enumerate() {
                    let text = if only_in_note && k == 0 { "rien à voir" } else { text };
                    messages::insert_message(
                        c,
                        &NewMessage::plain(
                            number,
                            *kind,
                            if *kind == MessageKind::Customer { &requester } else { STAFF },
                            now - 9_000 + k as i64,
                            text,
                        ),
                    )?;
                }
                // Ties on the date (pairs of tickets) are broken by number, as on any list.
                let status = if i % 3 == 0 { Status::Closed } else { Status::Open };
                tickets::set_status(c, number, status, now - 1_000 + (i * 7 % 5) * 10)?;
                numbers.push(number);
            }
            Ok(numbers)
        })
        .unwrap()
}

fn list(app: &guichet::app::App, audience: &Audience, c: &ListCriteria) -> (Count, Vec<i64>) {
    let viewer = match audience {
        Audience::Staff => STAFF.to_string(),
        Audience::Customer { email, .. } => email.clone(),
    };
    let (count, rows) = app.store.read(|conn| listing::list_tickets(conn, &viewer, audience, c)).unwrap();
    (count, rows.into_iter().map(|r| r.ticket.number).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walked_search_selects_what_the_full_search_selects_and_caps_its_count() {
    let app = spawn("", "").await;
    let numbers = seed(&app.app);
    let member = Audience::Customer { email: MEMBER.into(), shared_company: Some(COMPANY.into()) };
    // Every ticket is "common" from 2 matches on; the count stops at 4.
    let walked = SearchLimits { common: 2, count_cap: 4 };
    let exact = SearchLimits { common: i64::MAX, count_cap: i64::MAX };
    let mut capped_seen = 0;
    for audience in [Audience::Staff, member.clone()] {
        for keywords in [vec!["commun"], vec!["commun", "mot"], vec!["rare"], vec!["absent"]] {
            for (sort, descending) in [(SortKey::Updated, true), (SortKey::Number, false), (SortKey::Number, true)] {
                for statuses in [Vec::new(), vec![Status::Open]] {
                    for (offset, limit) in [(0, 3), (3, 3), (9, 3), (0, 25)] {
                        let criteria = ListCriteria {
                            keywords: keywords.iter().map(|k| k.to_string()).collect(),
                            statuses: statuses.clone(),
                            sort,
                            descending,
                            offset,
                            limit: Some(limit),
                            ..Default::default()
                        };
                        let what =
                            format!("{audience:?} {keywords:?} {sort:?} {descending} {statuses:?} {offset}+{limit}");
                        let (all, expected) =
                            list(&app.app, &audience, &ListCriteria { search: exact, ..criteria.clone() });
                        assert!(!all.capped, "{what}");
                        let (count, rows) = list(&app.app, &audience, &ListCriteria { search: walked, ..criteria });
                        assert_eq!(rows, expected, "{what}");
                        let want = if all.n > 4 { Count { n: 4, capped: true } } else { all };
                        assert_eq!(count, want, "{what}");
                        capped_seen += count.capped as usize;
                    }
                }
            }
        }
    }
    assert!(capped_seen > 0, "some counts were capped");

    // What the selections hold: staff find the word in notes, the company's member never does and
    // sees only the company's tickets.
    let all_of = |audience: &Audience, word: &str| {
        let c =
            ListCriteria { keywords: vec![word.into()], statuses: Vec::new(), limit: Some(25), ..Default::default() };
        let (count, mut rows) = list(&app.app, audience, &ListCriteria { search: walked, ..c });
        rows.sort();
        (count, rows)
    };
    let (count, rows) = all_of(&Audience::Staff, "commun");
    assert_eq!((count, rows), (Count { n: 4, capped: true }, numbers.clone()), "notes count for staff");
    // The company's tickets (even), whose customer message has the word (not 1, 6, 11; 3 and 4:
    // only in the note).
    let theirs: Vec<i64> = [0, 2, 8, 10, 12].iter().map(|i| numbers[*i]).collect();
    let (count, rows) = all_of(&member, "commun");
    assert_eq!((count, rows), (Count { n: 4, capped: true }, theirs), "no note, only the company's");
    assert_eq!(all_of(&member, "rare"), (Count::exact(1), vec![numbers[6]]));
    assert_eq!(all_of(&Audience::Staff, "rare"), (Count::exact(2), vec![numbers[6], numbers[9]]));
}

/// On PostgreSQL the index's words were PostgreSQL's parser's before `2026-12-08-000000_search_words`
/// (an address was one word there, and a search for it asks its parts): the migration makes the old
/// rows again, so what was indexed before is found as a search asks it now. On SQLite, FTS5 always
/// made the words: the same searches find the same ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn words_indexed_before_the_search_words_migration_are_found() {
    let app = spawn("", "").await;
    let number = app
        .app
        .store
        .write(|c| {
            let number = tickets::insert_ticket(
                c,
                &NewTicket {
                    subject: "Toner",
                    requester: MEMBER,
                    priority: Priority::Normal,
                    company: None,
                    product: None,
                    service: None,
                    unverified: false,
                    refers_to: None,
                    queue: "support@example.com",
                    at: guichet::store::now(),
                    waiting_since: None,
                },
            )?
            .number;
            let text = "Écrire à jean-pierre@exemple.fr pour la pièce KX-200.";
            messages::insert_message(c, &NewMessage::plain(number, MessageKind::Customer, MEMBER, 1, text))?;
            Ok(number)
        })
        .unwrap();
    if app.app.store.backend() == guichet::store::Backend::Postgres {
        // Back to the index as the code before wrote it (the migration's own `down`, any later
        // migration reverted first), then forward.
        let mut reverted = Vec::new();
        while reverted.last().map(String::as_str) != Some("20261208000000") {
            assert!(reverted.len() < 5, "the search words' migration is not among the newest: {reverted:?}");
            reverted.push(app.app.store.revert_last_migration().unwrap());
        }
        assert_eq!(app.app.store.migrate().unwrap().len(), reverted.len());
    }
    for word in ["jean-pierre@exemple.fr", "exemple.fr", "KX-200", "piece", "ECRIRE"] {
        let c = ListCriteria { keywords: vec![word.into()], statuses: Vec::new(), ..Default::default() };
        assert_eq!(list(&app.app, &Audience::Staff, &c).1, vec![number], "{word}");
    }
}
