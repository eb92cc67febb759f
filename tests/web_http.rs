//! The web view over real HTTP: the real server (`web::serve`) on its own port and SQLite file,
//! tickets made by ingesting real mails, driven with reqwest (SPEC §1 routes, §5 login and security).

#[allow(dead_code)]
mod common;
mod web_support;

use std::io::Read;

use reqwest::multipart::{Form, Part};
use web_support::{
    BOB, MARIE, PAUL, STAFF, TestApp, client, csrf_of, mail, mail_with, mail_with_file, spawn, spawn_with_url,
};

async fn text(r: reqwest::Response) -> String {
    r.text().await.unwrap()
}

async fn get(c: &reqwest::Client, app: &TestApp, path: &str) -> reqwest::Response {
    c.get(app.url(path)).send().await.unwrap()
}

// ---- Login --------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_for_a_link_answers_the_same_for_known_and_unknown_addresses() {
    let app = spawn("", "").await;
    app.ingest(mail(MARIE, "Imprimante bloquée", "Elle ne marche plus."));
    let before = app.outbox().len();

    let c = client();
    let known = c.post(app.url("/login")).form(&[("email", MARIE)]).send().await.unwrap();
    let known_status = known.status();
    let known_body = text(known).await;
    let unknown = c.post(app.url("/login")).form(&[("email", "nobody@nowhere.example")]).send().await.unwrap();
    let unknown_status = unknown.status();
    let unknown_body = text(unknown).await;

    assert_eq!(known_status, 200);
    assert_eq!(unknown_status, 200);
    assert_eq!(known_body, unknown_body, "the answer must not tell known from unknown addresses");
    let links: Vec<_> = app.outbox().into_iter().skip(before).collect();
    assert_eq!(links.len(), 1, "one link, to the known address only");
    assert_eq!(links[0].recipient, MARIE);
    assert_eq!(links[0].event, "login_link");
    assert!(app.login_token_from_outbox(MARIE).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_and_company_members_may_ask_for_a_link_too() {
    let app = spawn("", "").await;
    app.ingest(mail(MARIE, "Imprimante", "x"));
    let c = client();
    for who in [STAFF, PAUL] {
        c.post(app.url("/login")).form(&[("email", who)]).send().await.unwrap();
        assert!(app.login_token_from_outbox(who).is_some(), "{who} gets a link");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_link_survives_prefetching_and_works_once() {
    let app = spawn("", "").await;
    app.ingest(mail(MARIE, "Imprimante bloquée", "Elle ne marche plus."));
    let c = client();
    c.post(app.url("/login")).form(&[("email", MARIE)]).send().await.unwrap();
    let token = app.login_token_from_outbox(MARIE).expect("a link in the outbox");
    let link = app.url(&format!("/login/{token}"));

    // A mail scanner fetches the link (GET and HEAD): nothing is consumed.
    for _ in 0..2 {
        let page = c.get(&link).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let body = text(page).await;
        assert!(body.contains("<form method=\"post\""), "one button to confirm");
        assert!(body.contains(MARIE));
    }
    assert_eq!(c.head(&link).send().await.unwrap().status(), 200);

    let confirmed = c.post(&link).send().await.unwrap();
    assert_eq!(confirmed.status(), 303);
    assert_eq!(confirmed.headers()["location"], "/");
    let list = get(&c, &app, "/").await;
    assert_eq!(list.status(), 200);
    assert!(text(list).await.contains("Imprimante bloquée"));

    let again = client().post(&link).send().await.unwrap();
    assert_eq!(again.status(), 410, "a used link fails");
    assert!(again.headers().get("set-cookie").is_none());
    assert_eq!(client().get(&link).send().await.unwrap().status(), 410);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_link_fails() {
    let app = spawn("", "").await;
    app.ingest(mail(MARIE, "x", "y"));
    let an_hour_ago = guichet::store::now() - 3600;
    let token = app.app.store.write(|c| guichet::auth::create_login_token(c, MARIE, None, an_hour_ago)).unwrap();
    let c = client();
    assert_eq!(get(&c, &app, &format!("/login/{token}")).await.status(), 410);
    let r = c.post(app.url(&format!("/login/{token}"))).send().await.unwrap();
    assert_eq!(r.status(), 410);
    assert!(r.headers().get("set-cookie").is_none());
    assert_eq!(get(&c, &app, "/").await.status(), 303, "still not logged in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_lands_on_the_page_first_asked_for_and_logout_ends_the_session() {
    let app = spawn("", "").await;
    let n = app.ingest(mail(MARIE, "Imprimante", "x"));
    let c = client();
    let first = get(&c, &app, &format!("/tickets/{n}")).await;
    assert_eq!(first.status(), 303);
    let to_login = first.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(to_login, format!("/login?next=%2Ftickets%2F{n}"));
    let form = text(get(&c, &app, &to_login).await).await;
    assert!(form.contains(&format!("name=\"next\" value=\"/tickets/{n}\"")));

    c.post(app.url("/login")).form(&[("email", MARIE), ("next", &format!("/tickets/{n}"))]).send().await.unwrap();
    let token = app.login_token_from_outbox(MARIE).unwrap();
    let r = c.post(app.url(&format!("/login/{token}"))).send().await.unwrap();
    assert_eq!(r.headers()["location"], format!("/tickets/{n}").as_str());

    let page = text(get(&c, &app, &format!("/tickets/{n}")).await).await;
    let csrf = csrf_of(&page);
    let out = c.post(app.url("/logout")).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(out.status(), 303);
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(get(&c, &app, "/").await.status(), 303, "the session ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_are_rate_limited_per_address_without_telling_known_from_unknown() {
    let app = spawn("", "").await;
    app.ingest(mail(MARIE, "x", "y"));
    let c = client();
    for who in [MARIE, "nobody@nowhere.example"] {
        let statuses: Vec<u16> = {
            let mut v = Vec::new();
            for _ in 0..6 {
                v.push(c.post(app.url("/login")).form(&[("email", who)]).send().await.unwrap().status().as_u16());
            }
            v
        };
        assert_eq!(statuses, vec![200, 200, 200, 200, 200, 429], "{who}");
    }
    assert_eq!(app.outbox_for(MARIE, "login_link").len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_login_link_works_with_the_same_flow() {
    let app = spawn("", "").await;
    app.ingest(mail(MARIE, "x", "y"));
    let url = guichet::auth::login_url(&app.app.settings.helpdesk.public_url, &app.login_token(MARIE));
    let c = client();
    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(c.post(&url).send().await.unwrap().status(), 303);
    assert_eq!(get(&c, &app, "/").await.status(), 200);
}

// ---- Visibility ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_customers_ticket_and_attachment_answer_404() {
    let app = spawn("", "").await;
    let maries = app.ingest(mail_with_file(
        MARIE,
        "Facture",
        "Voir pièce jointe",
        "facture.pdf",
        "application/pdf",
        b"%PDF-1.4 secret",
    ));
    let bobs = app.ingest(mail(BOB, "Autre", "Rien à voir"));
    let json: serde_json::Value = app
        .app
        .store
        .read(|c| {
            Ok(serde_json::to_value(guichet::store::views::ticket_with_messages(
                c,
                maries,
                &guichet::store::visibility::Audience::Customer {
                    email: "marie@example.com".into(),
                    shared_company: None,
                },
                "fr",
            )?)?)
        })
        .unwrap();
    let file_id = json["messages"][0]["attachments"][0]["id"].as_i64().unwrap();

    let bob = app.client_for(BOB).await;
    let missing = text(get(&bob, &app, "/tickets/99999").await).await;
    for path in [
        format!("/tickets/{maries}"),
        format!("/api/tickets/{maries}"),
        format!("/attachments/{file_id}"),
        format!("/tickets/{maries}/reply"),
    ] {
        let r = get(&bob, &app, &path).await;
        assert!(r.status() == 404 || path.ends_with("/reply") && r.status() == 405, "{path}: {}", r.status());
    }
    let r = get(&bob, &app, &format!("/tickets/{maries}")).await;
    assert_eq!(text(r).await, missing, "someone else's ticket looks exactly like no ticket");
    let form = Form::new().text("csrf", "x").text("body", "intrusion");
    let r = bob.post(app.url(&format!("/tickets/{maries}/reply"))).multipart(form).send().await.unwrap();
    assert!(r.status() == 403 || r.status() == 404);
    let list = text(get(&bob, &app, "/?status=all").await).await;
    assert!(list.contains("Autre") && !list.contains("Facture"));
    assert_eq!(get(&bob, &app, &format!("/tickets/{bobs}")).await.status(), 200);

    // Marie and her colleague (the company shares its tickets) may download the file.
    for who in [MARIE, PAUL] {
        let c = app.client_for(who).await;
        let r = get(&c, &app, &format!("/attachments/{file_id}")).await;
        assert_eq!(r.status(), 200, "{who}");
        assert!(r.headers()["content-disposition"].to_str().unwrap().starts_with("attachment;"));
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(r.bytes().await.unwrap().as_ref(), b"%PDF-1.4 secret");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_pages_redirect_to_login_and_the_api_answers_401() {
    let app = spawn("", "").await;
    let c = client();
    for path in ["/", "/tickets/1", "/tickets/new", "/tickets/export.csv"] {
        let r = get(&c, &app, path).await;
        assert_eq!(r.status(), 303, "{path}");
        assert!(r.headers()["location"].to_str().unwrap().starts_with("/login?next="));
    }
    for path in ["/api/tickets", "/api/tickets/1"] {
        let r = get(&c, &app, path).await;
        assert_eq!(r.status(), 401, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "login_required");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_see_every_ticket_and_their_notes_never_reach_customers() {
    let app = spawn("", "").await;
    let maries = app.ingest(mail(MARIE, "Imprimante", "x"));
    app.ingest(mail(BOB, "VPN", "y"));
    let alice = app.client_for(STAFF).await;
    let list = text(get(&alice, &app, "/").await).await;
    assert!(list.contains("Imprimante") && list.contains("VPN"));

    let page = text(get(&alice, &app, &format!("/tickets/{maries}")).await).await;
    let csrf = csrf_of(&page);
    let note = Form::new().text("csrf", csrf.clone()).text("body", "Client difficile, voir contrat");
    let r = alice.post(app.url(&format!("/tickets/{maries}/note"))).multipart(note).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let r = alice
        .post(app.url(&format!("/tickets/{maries}/status")))
        .form(&[("csrf", csrf.as_str()), ("status", "open")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = alice
        .post(app.url(&format!("/tickets/{maries}/priority")))
        .form(&[("csrf", csrf.as_str()), ("priority", "blocking")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let staff_view = text(get(&alice, &app, &format!("/tickets/{maries}")).await).await;
    assert!(staff_view.contains("Client difficile"));

    let marie = app.client_for(MARIE).await;
    let page = text(get(&marie, &app, &format!("/tickets/{maries}")).await).await;
    assert!(!page.contains("Client difficile"));
    assert!(!page.contains(STAFF), "staff's own address never reaches a customer");
    let json: serde_json::Value = get(&marie, &app, &format!("/api/tickets/{maries}")).await.json().await.unwrap();
    assert_eq!(json["status"], "open");
    assert_eq!(json["priority"], "blocking");
    assert!(json["messages"].as_array().unwrap().iter().all(|m| m["kind"] != "note"));
    assert!(!json.to_string().contains("Client difficile"));
    // The customer was told of the status change, by the same code as `#status`.
    assert_eq!(app.outbox_for(MARIE, "status_changed").len(), 1);
    // A customer cannot use staff forms.
    let r = marie
        .post(app.url(&format!("/tickets/{maries}/status")))
        .form(&[("csrf", csrf_of(&page).as_str()), ("status", "closed")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_sees_what_was_relayed_never_the_staff_mail_behind_it() {
    let app = spawn("", "").await;
    let n = app.ingest(mail(MARIE, "Imprimante", "Elle affiche une erreur 0x42."));
    let html_answer = "--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n#status open\r\nChangez le tambour.\r\n\r\n\
        Le lun. 30 nov. 2026, Marie a écrit :\r\n> Elle affiche une erreur 0x42.\r\n--B\r\n\
        Content-Type: text/html; charset=utf-8\r\n\r\n<p>#status open</p><p>Changez le tambour.</p>\
        <blockquote>Secret interne de l'équipe</blockquote>\r\n--B--";
    app.staff_reply_with(n, "multipart/alternative; boundary=\"B\"", html_answer);
    let alice = app.client_for(STAFF).await;
    let staff_page = text(get(&alice, &app, &format!("/tickets/{n}")).await).await;
    assert!(staff_page.contains("#status open"), "staff see the whole mail");

    let marie = app.client_for(MARIE).await;
    let page = text(get(&marie, &app, &format!("/tickets/{n}")).await).await;
    assert!(page.contains("Changez le tambour."), "the relayed answer is shown: {page}");
    for leak in ["#status", "a écrit", STAFF] {
        assert!(!page.contains(leak), "`{leak}` leaks on the customer's page");
    }
    let json: serde_json::Value = get(&marie, &app, &format!("/api/tickets/{n}")).await.json().await.unwrap();
    let answer =
        json["messages"].as_array().unwrap().iter().find(|m| m["kind"] == "staff").expect("the answer").clone();
    assert_eq!(answer["from"], "support@example.com");
    assert!(answer["html"].is_null(), "{answer}");
    for leak in ["#status", "a écrit", STAFF, "Secret interne"] {
        assert!(!json.to_string().contains(leak), "`{leak}` leaks in /api: {json}");
    }
    let id = answer["id"].as_i64().unwrap();
    assert!(!page.contains(&format!("/messages/{id}/html")), "no frame of the staff mail's HTML");
    assert_eq!(get(&marie, &app, &format!("/messages/{id}/html")).await.status(), 404);
    assert_eq!(get(&alice, &app, &format!("/messages/{id}/html")).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_see_who_handles_what_and_who_waits_and_assign_from_the_page() {
    let app = spawn("", "").await;
    let n = app.ingest(mail(MARIE, "Imprimante", "Elle affiche une erreur."));
    let other = app.ingest(mail(PAUL, "VPN", "Plus d'accès."));
    app.staff_reply(n, "Changez le tambour.");
    app.ingest(mail(MARIE, &format!("Re: [Ticket #{n}] Imprimante"), "Toujours en panne."));
    let alice = app.client_for(STAFF).await;

    let waiting = text(get(&alice, &app, "/?waiting_on=us&assignee=me").await).await;
    assert!(waiting.contains(&format!("data-number=\"{n}\"")), "answered by Alice, waiting on us again");
    assert!(!waiting.contains(&format!("data-number=\"{other}\"")), "Paul's ticket is nobody's");
    assert!(waiting.contains("class=\"assignee\">alice@example.com<"), "the assignee column");
    assert!(waiting.contains("class=\"waited\">0 min<"), "how long the customer has waited");
    let unassigned = text(get(&alice, &app, &format!("/?assignee=none&requester={PAUL}")).await).await;
    assert!(
        unassigned.contains(&format!("data-number=\"{other}\""))
            && !unassigned.contains(&format!("data-number=\"{n}\""))
    );

    // Give Paul's ticket to Alice from its page, then back to the queue.
    let page = text(get(&alice, &app, &format!("/tickets/{other}")).await).await;
    let csrf = csrf_of(&page);
    for (value, expected) in [("me", serde_json::json!(STAFF)), ("none", serde_json::Value::Null)] {
        let r = alice
            .post(app.url(&format!("/tickets/{other}/assign")))
            .form(&[("csrf", csrf.as_str()), ("assignee", value)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let json: serde_json::Value = get(&alice, &app, &format!("/api/tickets/{other}")).await.json().await.unwrap();
        assert_eq!(json["assignee"], expected);
    }
    // Only staff may be assigned; a customer cannot use the form.
    let r = alice
        .post(app.url(&format!("/tickets/{other}/assign")))
        .form(&[("csrf", csrf.as_str()), ("assignee", PAUL)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let paul = app.client_for(PAUL).await;
    let paul_page = text(get(&paul, &app, &format!("/tickets/{other}")).await).await;
    let r = paul
        .post(app.url(&format!("/tickets/{other}/assign")))
        .form(&[("csrf", csrf_of(&paul_page).as_str()), ("assignee", "me")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

// ---- The list, its criteria and its exports -----------------------------------------------------

/// Three tickets of Marie's: one answered with a word found only in the answer, one closed.
fn seed(app: &TestApp) -> (i64, i64, i64) {
    let printer = app.ingest(mail(MARIE, "Imprimante bloquée", "Elle affiche une erreur."));
    app.ingest(mail(
        MARIE,
        &format!("Re: [Ticket #{printer}] Imprimante bloquée"),
        "Le technicien parle de tambour photoconducteur (pièce KX-200, voir jean-pierre@exemple.fr).",
    ));
    let vpn = app.ingest(mail(MARIE, "Accès VPN", "Je ne peux plus me connecter."));
    let old = app.ingest(mail(MARIE, "Vieux problème", "Réglé depuis."));
    app.staff_reply(old, "#status closed\nC'est réglé.");
    (printer, vpn, old)
}

fn numbers(json: &serde_json::Value) -> Vec<i64> {
    let mut v: Vec<i64> = json["tickets"].as_array().unwrap().iter().map(|t| t["number"].as_i64().unwrap()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_filters_by_status_keyword_number_and_unread() {
    let app = spawn("", "").await;
    let (printer, vpn, old) = seed(&app);
    let c = app.client_for(MARIE).await;
    let api = |q: String| {
        let c = c.clone();
        let url = app.url(&format!("/api/tickets{q}"));
        async move { c.get(url).send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    let api = |q: &str| api(q.to_string());

    let default = api("").await;
    assert_eq!(numbers(&default), vec![printer, vpn], "not closed by default");
    assert_eq!(default["total"], 2);
    assert_eq!(default["page"], 1);
    assert_eq!(default["per_page"], 25);
    assert!(default["tickets"][0].get("messages").is_none());
    assert!(default["tickets"][0]["unread"].is_boolean());
    assert_eq!(numbers(&api("?status=closed").await), vec![old]);
    assert_eq!(numbers(&api("?status=all").await), vec![printer, vpn, old]);
    assert_eq!(numbers(&api("?status=new").await), vec![printer, vpn]);
    assert_eq!(numbers(&api("?status=waiting&status=closed").await), vec![old]);
    // A colleague (the company shares its tickets) gets the same selections by status: the
    // filter is also applied inside the company's branch of who may see what.
    let paul = app.client_for(PAUL).await;
    for (q, expected) in
        [("", vec![printer, vpn]), ("?status=closed", vec![old]), ("?status=all", vec![printer, vpn, old])]
    {
        let r = paul.get(app.url(&format!("/api/tickets{q}"))).send().await.unwrap();
        assert_eq!(numbers(&r.json().await.unwrap()), expected, "{PAUL} {q}");
    }
    // A word that appears only in the answer, accents and case aside; several keywords all match.
    assert_eq!(numbers(&api("?q=photoconducteur").await), vec![printer]);
    assert_eq!(numbers(&api("?q=PHOTOCONDUCTEUR,%20tambour").await), vec![printer]);
    assert_eq!(numbers(&api("?q=photoconducteur,vpn").await), Vec::<i64>::new());
    assert_eq!(numbers(&api("?q=acces&status=all").await), vec![vpn], "subjects are searched, without accents");
    // An address or a part number is found whole or in parts, on both backends alike.
    for q in ["jean-pierre%40exemple.fr", "Jean-Pierre", "exemple.fr", "kx-200", "KX%20200", "Pi%C3%88CE"] {
        assert_eq!(numbers(&api(&format!("?q={q}")).await), vec![printer], "{q}");
    }
    assert_eq!(numbers(&api(&format!("?number={vpn}")).await), vec![vpn]);
    assert_eq!(numbers(&api("?from=2000-01-01&to=2000-12-31&status=all").await), Vec::<i64>::new());
    let sorted = api("?sort=number&status=all").await;
    let order: Vec<i64> = sorted["tickets"].as_array().unwrap().iter().map(|t| t["number"].as_i64().unwrap()).collect();
    assert_eq!(order, vec![printer, vpn, old]);
    let paged = api("?status=all&per_page=10&page=2").await;
    assert_eq!((paged["total"].as_i64(), paged["tickets"].as_array().unwrap().len()), (Some(3), 0));
    // With a keyword the page counts its own selection, a page past its end too.
    let searched = api("?q=photoconducteur&status=all").await;
    assert_eq!((searched["total"].as_i64(), numbers(&searched)), (Some(1), vec![printer]));
    let past = api("?q=photoconducteur&status=all&per_page=10&page=2").await;
    assert_eq!((past["total"].as_i64(), past["tickets"].as_array().unwrap().len()), (Some(1), 0));

    // Every ticket is unread until its page is viewed.
    assert_eq!(numbers(&api("?unread=1").await), vec![printer, vpn]);
    assert_eq!(get(&c, &app, &format!("/tickets/{printer}")).await.status(), 200);
    assert_eq!(numbers(&api("?unread=1").await), vec![vpn]);
    // A new answer makes it unread again.
    app.staff_reply(printer, "Le technicien passe demain.");
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    let unread = api("?unread=1").await;
    assert!(numbers(&unread).contains(&vpn));

    // The page shows the same selection, with its markers.
    let page = text(get(&c, &app, "/?q=photoconducteur").await).await;
    assert!(page.contains("Imprimante bloquée") && !page.contains("Accès VPN"));
    assert!(page.contains("value=\"photoconducteur\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_hold_the_selected_rows() {
    let app = spawn("", "").await;
    let (printer, vpn, old) = seed(&app);
    let c = app.client_for(MARIE).await;

    let r = get(&c, &app, "/tickets/export.csv?status=all&sort=number").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert!(r.headers()["content-disposition"].to_str().unwrap().starts_with("attachment;"));
    let body = text(r).await;
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "number");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let listed: Vec<i64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(listed, vec![printer, vpn, old]);
    assert_eq!(&rows[0][1], "Imprimante bloquée");

    let only: Vec<i64> =
        csv::Reader::from_reader(text(get(&c, &app, "/tickets/export.csv?q=photoconducteur").await).await.as_bytes())
            .records()
            .map(|r| r.unwrap()[0].parse().unwrap())
            .collect();
    assert_eq!(only, vec![printer]);

    let r = get(&c, &app, "/tickets/export.xlsx?status=closed").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    let bytes = r.bytes().await.unwrap();
    assert_eq!(&bytes[..2], b"PK");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut sheet = String::new();
    zip.by_name("xl/worksheets/sheet1.xml").unwrap().read_to_string(&mut sheet).unwrap();
    assert_eq!(sheet.matches("<row ").count(), 2, "a header row and the one closed ticket");
    let mut strings = String::new();
    zip.by_name("xl/sharedStrings.xml").unwrap().read_to_string(&mut strings).unwrap();
    assert!(strings.contains("Vieux problème") && !strings.contains("Accès VPN"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_criteria_apply_until_forgotten() {
    let app = spawn("", "").await;
    let (printer, _, _) = seed(&app);
    let c = app.client_for(MARIE).await;
    let page = text(get(&c, &app, "/").await).await;
    let csrf = csrf_of(&page);
    let r = c
        .post(app.url("/criteria/save"))
        .form(&[("csrf", csrf.as_str()), ("query", "q=photoconducteur")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let page = text(get(&c, &app, "/").await).await;
    assert!(page.contains("Imprimante bloquée") && !page.contains("Accès VPN"), "saved criteria applied on /");
    assert!(page.contains(&format!("/tickets/{printer}")));
    let all = text(get(&c, &app, "/?").await).await;
    assert!(all.contains("Accès VPN"), "explicit criteria win");
    c.post(app.url("/criteria/forget")).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert!(text(get(&c, &app, "/").await).await.contains("Accès VPN"));
}

// ---- Answers, attachments, status changes -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_with_a_file_is_stored_and_announced_to_staff() {
    let app = spawn("", "").await;
    let n = app.ingest(mail(MARIE, "Imprimante", "Elle est bloquée."));
    let c = app.client_for(MARIE).await;
    let csrf = csrf_of(&text(get(&c, &app, &format!("/tickets/{n}")).await).await);
    let before = app.outbox_for(STAFF, "customer_answer").len();
    let form = Form::new().text("csrf", csrf).text("body", "Voici la photo de l'écran.").part(
        "files",
        Part::bytes(b"\x89PNG\r\n\x1a\nfake".to_vec()).file_name("écran.png").mime_str("image/png").unwrap(),
    );
    let r = c.post(app.url(&format!("/tickets/{n}/reply"))).multipart(form).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"].to_str().unwrap().starts_with(&format!("/tickets/{n}?done=replied")));

    let page = text(get(&c, &app, &format!("/tickets/{n}")).await).await;
    assert!(page.contains("Voici la photo de l&#x27;écran.") || page.contains("Voici la photo de l'écran."), "{page}");
    assert!(page.contains("écran.png"));
    assert_eq!(app.outbox_for(STAFF, "customer_answer").len(), before + 1, "staff alerted, as by mail");
    let json: serde_json::Value = get(&c, &app, &format!("/api/tickets/{n}")).await.json().await.unwrap();
    let last = json["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "customer");
    assert_eq!(last["attachments"][0]["name"], "écran.png");
    let id = last["attachments"][0]["id"].as_i64().unwrap();
    let file = get(&c, &app, &format!("/attachments/{id}")).await;
    assert!(file.headers()["content-disposition"].to_str().unwrap().contains("filename*=UTF-8''%C3%A9cran.png"));
    assert_eq!(file.bytes().await.unwrap().as_ref(), b"\x89PNG\r\n\x1a\nfake");

    // Staff's answer from the web is relayed to the customer, as a mail answer would be.
    let alice = app.client_for(STAFF).await;
    let csrf = csrf_of(&text(get(&alice, &app, &format!("/tickets/{n}")).await).await);
    let form = Form::new().text("csrf", csrf).text("body", "Nous passons demain.");
    alice.post(app.url(&format!("/tickets/{n}/reply"))).multipart(form).send().await.unwrap();
    let relayed = app.outbox_for(MARIE, "staff_answer");
    assert_eq!(relayed.len(), 1);
    assert!(web_support::mail_text(&relayed[0].data).contains("Nous passons demain."));
    let json: serde_json::Value = get(&c, &app, &format!("/api/tickets/{n}")).await.json().await.unwrap();
    assert_eq!(json["status"], "waiting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_over_the_limit_is_refused_with_a_clear_message() {
    let app = spawn("max_attachment_bytes = 1000", "").await;
    let n = app.ingest(mail(MARIE, "Imprimante", "x"));
    let c = app.client_for(MARIE).await;
    let csrf = csrf_of(&text(get(&c, &app, &format!("/tickets/{n}")).await).await);
    let form = Form::new()
        .text("csrf", csrf)
        .text("body", "Mon long texte")
        .part("files", Part::bytes(vec![7u8; 5000]).file_name("gros.bin"));
    let r = c.post(app.url(&format!("/tickets/{n}/reply"))).multipart(form).send().await.unwrap();
    assert_eq!(r.status(), 413);
    let page = text(r).await;
    assert!(page.contains("gros.bin") && page.contains("Fichier trop volumineux"), "{page}");
    assert!(page.contains("Mon long texte"), "the typed text is kept");
    let json: serde_json::Value = get(&c, &app, &format!("/api/tickets/{n}")).await.json().await.unwrap();
    assert_eq!(json["messages"].as_array().unwrap().len(), 1, "nothing stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_and_reopening_with_a_reason_tell_staff() {
    let app = spawn("", "").await;
    let n = app.ingest(mail(MARIE, "Imprimante", "x"));
    let c = app.client_for(MARIE).await;
    let csrf = csrf_of(&text(get(&c, &app, &format!("/tickets/{n}")).await).await);
    let r = c.post(app.url(&format!("/tickets/{n}/close"))).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let page = text(get(&c, &app, &format!("/tickets/{n}")).await).await;
    assert!(page.contains("/reopen"), "a closed ticket offers reopening");
    let r = c
        .post(app.url(&format!("/tickets/{n}/reopen")))
        .form(&[("csrf", csrf.as_str()), ("reason", "  ")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a reason is needed");
    let r = c
        .post(app.url(&format!("/tickets/{n}/reopen")))
        .form(&[("csrf", csrf.as_str()), ("reason", "Le problème est revenu")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let json: serde_json::Value = get(&c, &app, &format!("/api/tickets/{n}")).await.json().await.unwrap();
    assert_eq!(json["status"], "open");
    assert!(json.to_string().contains("Le problème est revenu"));
    let closed = app.outbox_for(STAFF, "customer_closed");
    assert_eq!(closed.len(), 1, "staff hear of the customer's closing in their own words");
    assert!(String::from_utf8_lossy(&closed[0].data).contains(MARIE));
    assert_eq!(app.outbox_for(STAFF, "ticket_reopened").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_opened_from_the_web_is_acknowledged_and_announced() {
    let app = spawn("", "").await;
    app.ingest(mail(MARIE, "Premier", "x"));
    let c = app.client_for(MARIE).await;
    let csrf = csrf_of(&text(get(&c, &app, "/tickets/new").await).await);
    let form = Form::new()
        .text("csrf", csrf)
        .text("subject", "Écran noir")
        .text("product", "Poste 12")
        .text("priority", "blocking")
        .text("body", "Plus rien ne s'affiche.")
        .part("files", Part::bytes(b"log".to_vec()).file_name("journal.txt").mime_str("text/plain").unwrap());
    let r = c.post(app.url("/tickets")).multipart(form).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let n: i64 = location.trim_start_matches("/tickets/").split('?').next().unwrap().parse().unwrap();
    let json: serde_json::Value = get(&c, &app, &format!("/api/tickets/{n}")).await.json().await.unwrap();
    assert_eq!(
        (json["subject"].as_str(), json["priority"].as_str(), json["product"].as_str()),
        (Some("Écran noir"), Some("blocking"), Some("Poste 12"))
    );
    assert_eq!(json["company"], "Cisa Informatique");
    assert_eq!(json["messages"][0]["attachments"][0]["name"], "journal.txt");
    assert_eq!(app.outbox_for(MARIE, "ticket_created").len(), 2, "acknowledged, as by mail");
    assert_eq!(app.outbox_for(STAFF, "staff_alert_created").len(), 2);
}

// ---- Security -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() {
    let app = spawn("", "").await;
    let n = app.ingest(mail(MARIE, "x", "y"));
    let c = app.client_for(MARIE).await;
    for path in [
        "/login".to_string(),
        "/".to_string(),
        format!("/tickets/{n}"),
        "/nothing-here".into(),
        "/static/guichet.css".into(),
        "/api/tickets".into(),
    ] {
        let r = get(&c, &app, &path).await;
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        for directive in ["default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_http_only_lax_and_secure_behind_https() {
    for (url, secure) in [(None, false), (Some("https://help.example.com"), true)] {
        let app = spawn_with_url("", "", url).await;
        let token = app.login_token(MARIE);
        let r = client().post(app.url(&format!("/login/{token}"))).send().await.unwrap();
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(cookie.starts_with("guichet_session="));
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
            "{cookie}"
        );
        assert_eq!(cookie.contains("Secure"), secure, "{cookie}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_the_session_token_or_from_another_site_are_refused() {
    let app = spawn("", "").await;
    let n = app.ingest(mail(MARIE, "x", "y"));
    let c = app.client_for(MARIE).await;
    let r = c.post(app.url(&format!("/tickets/{n}/close"))).form(&[("reason", "x")]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = c.post(app.url(&format!("/tickets/{n}/close"))).form(&[("csrf", "forged")]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let form = Form::new().text("body", "sans jeton");
    assert_eq!(c.post(app.url(&format!("/tickets/{n}/reply"))).multipart(form).send().await.unwrap().status(), 403);
    let json: serde_json::Value = get(&c, &app, &format!("/api/tickets/{n}")).await.json().await.unwrap();
    assert_eq!(json["status"], "new");
    assert_eq!(json["messages"].as_array().unwrap().len(), 1);
    // The login forms check where the POST comes from.
    let r = client()
        .post(app.url("/login"))
        .header("origin", "https://evil.example")
        .form(&[("email", MARIE)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let token = app.login_token(MARIE);
    let r =
        client().post(app.url(&format!("/login/{token}"))).header("sec-fetch-site", "cross-site").send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        client().post(app.url(&format!("/login/{token}"))).send().await.unwrap().status(),
        303,
        "token not spent by the refusal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_subjects_file_names_and_html_are_escaped_or_sanitised() {
    let app = spawn("", "").await;
    let n = app.ingest(mail_with_file(
        MARIE,
        "<script>alert('sujet')</script>",
        "texte <b>gras</b>",
        "<img src=x onerror=alert(1)>.txt",
        "text/plain",
        b"x",
    ));
    let html = "<html><body><p>Bonjour</p><script>alert('corps')</script><img src=x onerror=\"alert(2)\"><a href=\"javascript:alert(3)\">lien</a></body></html>";
    app.ingest(mail_with(MARIE, &format!("Re: [Ticket #{n}] x"), &[], "text/html; charset=utf-8", html));
    let c = app.client_for(MARIE).await;
    for page in [text(get(&c, &app, "/").await).await, text(get(&c, &app, &format!("/tickets/{n}")).await).await] {
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(!page.contains("<img src=x"), "{page}");
        assert!(!page.contains("<b>gras"), "{page}");
        assert!(page.contains("&lt;script&gt;"), "{page}");
    }
    let json: serde_json::Value = get(&c, &app, &format!("/api/tickets/{n}")).await.json().await.unwrap();
    let id = json["messages"][1]["id"].as_i64().unwrap();
    let sanitized = json["messages"][1]["html"].as_str().unwrap();
    assert!(
        sanitized.contains("Bonjour")
            && !sanitized.contains("script")
            && !sanitized.contains("onerror")
            && !sanitized.contains("javascript:")
    );
    let frame = get(&c, &app, &format!("/messages/{id}/html")).await;
    assert_eq!(frame.status(), 200);
    let csp = frame.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("sandbox") && csp.contains("default-src 'none'") && !csp.contains("script-src"), "{csp}");
    let body = text(frame).await;
    assert!(
        body.contains("Bonjour")
            && !body.contains("<script")
            && !body.contains("onerror")
            && !body.contains("javascript:"),
        "{body}"
    );
    // Someone else cannot read that frame either.
    let bob = app.client_for(BOB).await;
    assert_eq!(get(&bob, &app, &format!("/messages/{id}/html")).await.status(), 404);
}

// ---- Operations ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_http_latency_and_the_outbox_depth() {
    let app = spawn("", "").await;
    app.ingest(mail(MARIE, "x", "y"));
    let c = client();
    assert_eq!(get(&c, &app, "/healthz").await.status(), 200);
    get(&c, &app, "/login").await;
    assert_eq!(get(&c, &app, "/metrics").await.status(), 404, "never on the public listener");
    let metrics = text(c.get(format!("{}/metrics", app.metrics_base)).send().await.unwrap()).await;
    assert!(metrics.contains("guichet_http_request_duration_seconds"), "{metrics}");
    assert!(metrics.contains("route=\"/login\""), "{metrics}");
    assert!(metrics.contains("guichet_outbox_pending"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_speak_english_when_asked() {
    let app = spawn("", "").await;
    let c = client();
    let fr = text(get(&c, &app, "/login").await).await;
    assert!(fr.contains("lang=\"fr\"") && fr.contains("Recevoir un lien"));
    let en = text(c.get(app.url("/login")).header("accept-language", "en-GB,en;q=0.9").send().await.unwrap()).await;
    assert!(en.contains("lang=\"en\"") && en.contains("Send me a login link"));
    let configured = spawn("language = \"en\"", "").await;
    assert!(text(get(&c, &configured, "/login").await).await.contains("Send me a login link"));
}
