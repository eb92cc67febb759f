//! The ticket history as facts (issue #18): a change made in one language reads in the reader's,
//! in the pages and in the JSON (`"event": {"code", "args"}` beside the told `text`); customers
//! never read a staff address in it; and the migration turns the prose written before into facts.
//! Real server over HTTP, on SQLite or (with `GUICHET_TEST_POSTGRES`) PostgreSQL.

#[allow(dead_code)]
mod common;
mod web_support;

use diesel::connection::SimpleConnection;
use guichet::store::Store;
use guichet::store::views::ticket_with_messages;
use guichet::store::visibility::Audience;
use serde_json::{Value, json};
use web_support::{MARIE, STAFF, TestApp, csrf_of, mail, spawn};

async fn page(c: &reqwest::Client, app: &TestApp, path: &str, lang: &str) -> String {
    c.get(app.url(path)).header("accept-language", lang).send().await.unwrap().text().await.unwrap()
}

async fn api(c: &reqwest::Client, app: &TestApp, n: i64, lang: &str) -> Value {
    let r = c.get(app.url(&format!("/api/tickets/{n}"))).header("accept-language", lang).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn events(ticket: &Value) -> Vec<&Value> {
    ticket["messages"].as_array().unwrap().iter().filter(|m| m["kind"] == "event").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_changed_in_french_reads_in_english_for_an_english_reader() {
    // The helpdesk writes French (the default); Alice works in French.
    let app = spawn("", "").await;
    let n = app.ingest(mail(MARIE, "Imprimante", "Elle ne marche plus."));
    let alice = app.client_for(STAFF).await;
    let form = page(&alice, &app, &format!("/tickets/{n}"), "fr").await;
    let r = alice
        .post(app.url(&format!("/tickets/{n}/status")))
        .form(&[("csrf", csrf_of(&form).as_str()), ("status", "waiting")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    let french = page(&alice, &app, &format!("/tickets/{n}"), "fr").await;
    let english = page(&alice, &app, &format!("/tickets/{n}"), "en-GB,en;q=0.9").await;
    assert!(french.contains("Statut : Nouveau → En attente client"), "{french}");
    assert!(english.contains("Status: New → Waiting on customer"), "{english}");
    assert!(!english.contains("Statut :"), "no French left in the English page");

    let json = api(&alice, &app, n, "en").await;
    let told = events(&json);
    assert_eq!(told.len(), 1, "{json}");
    assert_eq!(told[0]["event"], json!({"code": "status_changed", "args": {"from": "new", "to": "waiting"}}));
    assert_eq!(told[0]["text"], "Status: New → Waiting on customer");
    assert_eq!(api(&alice, &app, n, "fr").await["messages"][1]["text"], "Statut : Nouveau → En attente client");
    assert!(json["messages"][0].get("event").is_none(), "a mail is no event");

    // The CLI's JSON tells the history in `helpdesk.language`, with the same fact.
    let cli = app.app.store.read(|c| ticket_with_messages(c, n, &Audience::Staff, app.app.desk.lang())).unwrap();
    let cli = serde_json::to_value(cli).unwrap();
    assert_eq!(events(&cli)[0]["text"], "Statut : Nouveau → En attente client");
    assert_eq!(events(&cli)[0]["event"]["code"], "status_changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_reads_the_helpdesk_name_where_the_fact_names_a_staff_address() {
    let app = spawn("", "").await;
    let n = app.ingest(mail(MARIE, "Imprimante", "Elle ne marche plus."));
    let alice = app.client_for(STAFF).await;
    let form = page(&alice, &app, &format!("/tickets/{n}"), "en").await;
    let r = alice
        .post(app.url(&format!("/tickets/{n}/assign")))
        .form(&[("csrf", csrf_of(&form).as_str()), ("assignee", "me")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    let staff_json = api(&alice, &app, n, "en").await;
    assert_eq!(events(&staff_json)[0]["event"], json!({"code": "assigned", "args": {"to": STAFF}}));
    assert_eq!(events(&staff_json)[0]["text"], format!("Assigned to {STAFF}"));

    let marie = app.client_for(MARIE).await;
    let json = api(&marie, &app, n, "en").await;
    assert_eq!(events(&json)[0]["event"], json!({"code": "assigned", "args": {"to": "Support Test"}}));
    assert_eq!(events(&json)[0]["text"], "Assigned to Support Test");
    assert!(!json.to_string().contains(STAFF), "{json}");
    let her_page = page(&marie, &app, &format!("/tickets/{n}"), "fr").await;
    assert!(her_page.contains("Assigné à Support Test"), "{her_page}");
    assert!(!her_page.contains(STAFF));
}

/// Old prose rows, as the code wrote them before events were facts, and what each must become.
const OLD_PROSE: &[(&str, &str)] = &[
    ("Statut : Nouveau → En attente client", r#"{"code":"status_changed","args":{"from":"new","to":"waiting"}}"#),
    ("Status: In progress → Closed", r#"{"code":"status_changed","args":{"from":"open","to":"closed"}}"#),
    ("Priorité : Normale → Bloquante", r#"{"code":"priority_changed","args":{"from":"normal","to":"blocking"}}"#),
    ("Priority: Low → Normal", r#"{"code":"priority_changed","args":{"from":"low","to":"normal"}}"#),
    ("En copie : carol@example.org", r#"{"code":"watcher_added","args":{"address":"carol@example.org"}}"#),
    ("Assigned to agent@example.com", r#"{"code":"assigned","args":{"to":"agent@example.com"}}"#),
    ("Désassigné", r#"{"code":"unassigned","args":{}}"#),
    (
        "Ouvert par Alice pour le compte de bob@example.org",
        r#"{"code":"opened_on_behalf","args":{"by":"Alice","requester":"bob@example.org"}}"#,
    ),
    ("Follows up ticket #12", r#"{"code":"follows_up","args":{"ticket":12}}"#),
    ("Suite du ticket n° 7", r#"{"code":"follows_up","args":{"ticket":7}}"#),
    ("Expéditeur non vérifié : l'adresse From a échoué au contrôle DMARC", r#"{"code":"unverified","args":{}}"#),
    ("Rouvert : le problème est revenu", r#"{"code":"reopened","args":{"reason":"le problème est revenu"}}"#),
    ("Reopened by the customer's answer", r#"{"code":"reopened_by_customer","args":{}}"#),
    ("Relance envoyée au client", r#"{"code":"reminder_sent","args":{}}"#),
    ("Overdue: no staff answer yet", r#"{"code":"overdue","args":{}}"#),
    (
        "Échec de distribution (staff_answer) : bob@example.org: 5.1.1 unknown",
        r#"{"code":"delivery_failed","args":{"notice":"staff_answer","failures":"bob@example.org: 5.1.1 unknown"}}"#,
    ),
    (
        "Notification to bob@example.org refused: 550 no such user",
        r#"{"code":"notification_refused","args":{"recipient":"bob@example.org","error":"550 no such user"}}"#,
    ),
    // Matching no wording (a status label that never existed, free prose): kept as it was.
    ("Statut : Nouveau → Perdu", r#"{"code":"text","args":{"text":"Statut : Nouveau → Perdu"}}"#),
    ("Something else happened", r#"{"code":"text","args":{"text":"Something else happened"}}"#),
];

#[test]
fn the_migration_turns_the_old_prose_into_facts() {
    let dir = tempfile::tempdir().unwrap();
    let database = common::guichet::TestDatabase::new(dir.path());
    let store = Store::open_and_migrate(&database.url, 2).unwrap();
    // Back to the schema before facts (reverting any later migration first), with a ticket and
    // its history as prose.
    let mut reverted = Vec::new();
    while reverted.last().map(String::as_str) != Some("20261207400000") {
        assert!(reverted.len() < 5, "the facts' migration is not among the newest: {reverted:?}");
        reverted.push(store.revert_last_migration().unwrap());
    }
    let mut sql = String::from(
        "INSERT INTO tickets (number, subject, status, priority, requester, unverified, created_at, updated_at) \
         VALUES (1, 'Imprimante', 'open', 'normal', 'marie@example.org', FALSE, 0, 0);\n",
    );
    for (i, (prose, _)) in OLD_PROSE.iter().enumerate() {
        sql.push_str(&format!(
            "INSERT INTO messages (id, ticket_number, kind, from_addr, at, subject, text, full_text, auto, refused) \
             VALUES ({}, 1, 'event', 'support@example.com', {i}, '', '{p}', '{p}', FALSE, '[]');\n",
            1000 + i,
            p = prose.replace('\'', "''"),
        ));
    }
    store.write(|c| Ok(c.batch_execute(&sql)?)).unwrap();

    let applied = store.migrate().unwrap();
    assert_eq!(applied.len(), reverted.len(), "{applied:?}");

    let ticket = store.read(|c| ticket_with_messages(c, 1, &Audience::Staff, "en")).unwrap().unwrap();
    let messages = ticket.messages.unwrap();
    assert_eq!(messages.len(), OLD_PROSE.len());
    for (m, (prose, expected)) in messages.iter().zip(OLD_PROSE) {
        let expected: Value = serde_json::from_str(expected).unwrap();
        assert_eq!(serde_json::to_value(&m.event).unwrap(), expected, "{prose}");
    }
    // Told again in English, from the facts: the French prose is gone from the English reading.
    let english: Vec<&str> = messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(english[0], "Status: New → Waiting on customer");
    assert_eq!(english[2], "Priority: Normal → Blocking");
    assert_eq!(english[7], "Opened by Alice on behalf of bob@example.org");
    assert_eq!(english[9], "Follows up ticket #7");
    assert_eq!(english[17], "Statut : Nouveau → Perdu", "unknown prose stays as written");
}
