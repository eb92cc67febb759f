//! End to end in real headless Chromium over WebDriver: a customer asks for a link, confirms it,
//! searches, reads and answers a ticket with a file; a hostile HTML mail runs nothing and loads
//! nothing. Needs the Debian packages chromium and chromium-driver (scripts/install-test-deps).

#[allow(dead_code)]
mod common;
mod web_support;

use std::time::Duration;

use common::webdriver::{self, Driver};
use web_support::{MARIE, STAFF, Spy, mail, mail_with, spawn};

/// Saves a screenshot under $GUICHET_SCREENSHOTS when set (to look at the pages).
async fn snapshot(session: &webdriver::Session, name: &str) {
    if let Ok(dir) = std::env::var("GUICHET_SCREENSHOTS") {
        let _ = std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), session.screenshot().await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_logs_in_searches_reads_and_answers_in_a_real_browser() {
    let app = spawn("", "").await;
    let printer = app.ingest(mail(MARIE, "Imprimante bloquée", "Elle affiche une erreur 0x42."));
    app.staff_reply(printer, "Il faut changer le tambour photoconducteur.");
    app.ingest(mail(MARIE, "Accès VPN", "Je ne peux plus me connecter."));
    let driver = Driver::start().await;
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.session(profile.path(), "fr-FR").await;

    // Ask for a link; read it from the outbox, as the customer would from their mailbox.
    browser.goto(&app.url("/login")).await;
    let email = browser.find("#email").await;
    browser.type_into(&email, MARIE).await;
    browser.click(&browser.find("form[action='/login'] button").await).await;
    browser.find("#login-sent").await;
    let token = app.login_token_from_outbox(MARIE).expect("a login link was mailed");

    // The link's page only shows a button; clicking it logs in and lands on the list.
    browser.goto(&app.url(&format!("/login/{token}"))).await;
    snapshot(&browser, "1-confirm").await;
    browser.click(&browser.find("#confirm").await).await;
    browser.find("#tickets").await;
    assert_eq!(browser.url().await, app.url("/"));
    let rows = browser.execute("return document.querySelectorAll('#tickets tbody tr').length").await;
    assert_eq!(rows, 2);
    snapshot(&browser, "2-list").await;

    // A word found only in staff's answer.
    let q = browser.find("#f-q").await;
    browser.type_into(&q, "photoconducteur").await;
    browser.click(&browser.find("#search").await).await;
    assert!(browser.wait_until("return location.search.includes('photoconducteur')", Duration::from_secs(10)).await);
    browser.find("#tickets").await;
    let found = browser
        .execute("return Array.from(document.querySelectorAll('#tickets tbody tr')).map(r => r.dataset.number)")
        .await;
    assert_eq!(found, serde_json::json!([printer.to_string()]));

    // Open it and answer with a file.
    browser.click(&browser.find(&format!("#tickets a[href='/tickets/{printer}']")).await).await;
    browser.find("#reply-form").await;
    let page = browser.source().await;
    assert!(page.contains("tambour photoconducteur"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("capture-erreur.txt");
    std::fs::write(&file, "erreur 0x42 au démarrage").unwrap();
    browser.type_into(&browser.find("#body").await, "Voici la capture demandée.").await;
    browser.type_into(&browser.find("#files").await, file.to_str().unwrap()).await;
    browser.click(&browser.find("#send-reply").await).await;
    browser.find("#flash").await;
    snapshot(&browser, "3-ticket").await;
    let page = browser.source().await;
    assert!(page.contains("Voici la capture demandée."));
    assert!(page.contains("capture-erreur.txt"));
    assert_eq!(app.outbox_for(STAFF, "customer_answer").len(), 1, "staff hear of the answer");
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_html_mail_runs_nothing_and_loads_nothing_in_a_real_browser() {
    let listener = Spy::start().await;
    let app = spawn("", "").await;
    let spy = &listener.base;
    let html = format!(
        r#"<html><head><title>pwned</title><script>document.title='pwned';fetch('{spy}/head-script')</script>
<link rel="stylesheet" href="{spy}/style.css"><meta http-equiv="refresh" content="0;url={spy}/refresh">
<style>@import url({spy}/import.css); body {{ background: url({spy}/bg.png) }}</style></head>
<body onload="fetch('{spy}/onload')">
<p>Bonjour, voici le devis.</p>
<script>top.document.title='pwned'; new Image().src='{spy}/script'; fetch('{spy}/fetch')</script>
<img src="{spy}/remote.png" alt="remote">
<img src="x" onerror="top.document.title='pwned';fetch('{spy}/onerror')">
<a id="js" href="javascript:fetch('{spy}/js-link')">cliquez</a>
<svg xmlns="http://www.w3.org/2000/svg" onload="fetch('{spy}/svg-onload')"><script>fetch('{spy}/svg-script')</script>
<image href="{spy}/svg-image.png" width="10" height="10"/></svg>
<iframe src="{spy}/frame"></iframe><object data="{spy}/object"></object><embed src="{spy}/embed">
<video poster="{spy}/poster.png" src="{spy}/video.mp4"></video>
<form action="{spy}/form"><input type="image" src="{spy}/input.png"><button>Envoyer</button></form>
<div style="background-image: url('{spy}/style-attr.png')">fond</div>
<table background="{spy}/table-bg.png"><tr><td>cellule</td></tr></table>
</body></html>"#
    );
    let n = app.ingest(mail_with(MARIE, "Devis", &[], "text/html; charset=utf-8", &html));
    let driver = Driver::start().await;
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.session(profile.path(), "fr-FR").await;
    browser.goto(&app.url(&format!("/login/{}", app.login_token(MARIE)))).await;
    browser.click(&browser.find("#confirm").await).await;
    browser.find("#tickets").await;

    browser.goto(&app.url(&format!("/tickets/{n}"))).await;
    let title = browser.title().await;
    assert!(title.contains("Devis"), "{title}");
    // Open the formatted version and let everything that could load, load.
    browser.click(&browser.find("details.html summary").await).await;
    let frame = browser.find("details.html iframe").await;
    assert!(
        browser
            .wait_until(
                "const d = document.querySelector('details.html iframe').contentDocument; return !!d && d.readyState === 'complete' && d.body && d.body.textContent.includes('Bonjour')",
                Duration::from_secs(10)
            )
            .await,
        "the mail shows in its frame"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    snapshot(&browser, "4-hostile").await;
    // Inside the frame: no script, no handler, no javascript: link; clicking the link does nothing.
    browser.enter_frame(&frame).await;
    let leftovers = browser
        .execute("return document.querySelectorAll('script, iframe, object, embed, svg, form, [onerror], [onload], a[href^=\"javascript\"]').length")
        .await;
    assert_eq!(leftovers, 0);
    if let Some(link) = browser.wait_for("a", Duration::from_millis(500)).await {
        browser.click(&link).await;
    }
    browser.leave_frame().await;
    // And the frame's address opened directly: its own policy forbids scripts as well.
    browser.goto(&app.url(&format!("/messages/{}/html", n_first_message(&app, n)))).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let direct_title = browser.title().await;

    assert_eq!(listener.seen(), Vec::<String>::new(), "something was loaded from the remote address");
    assert!(!direct_title.contains("pwned"), "{direct_title}");
    browser.goto(&app.url(&format!("/tickets/{n}"))).await;
    browser.find("#ticket-subject").await;
    assert!(!browser.title().await.contains("pwned"));
    browser.quit().await;
}

/// The id of a ticket's first message.
fn n_first_message(app: &web_support::TestApp, n: i64) -> i64 {
    app.app
        .store
        .read(|c| Ok(guichet::store::messages::messages_of(c, n, &guichet::store::visibility::Audience::Staff)?[0].id))
        .unwrap()
}
