//! `guichet run` (the daemon) and `guichet demo` (the same on embedded defaults).

use std::time::Duration;

use anyhow::Context;
use include_dir::{Dir, include_dir};

use crate::app::{App, Shutdown, termination_signal};
use crate::config::Settings;
use crate::ingest::imap::run_mailbox;
use crate::store;
use crate::workers::sender::{Transport, run_sender, send_due};

/// Sample mails shipped in the binary, so that `guichet demo` needs nothing else.
static EXAMPLES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/examples");

/// Everything of the daemon until SIGINT/SIGTERM: mailboxes, outbox sender, web server.
pub fn daemon(app: App) -> anyhow::Result<()> {
    crate::ops::memory::bound();
    runtime()?.block_on(serve_all(app, true))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

async fn serve_all(app: App, with_mailboxes: bool) -> anyhow::Result<()> {
    let (stop, shutdown) = Shutdown::new();
    let mut tasks = tokio::task::JoinSet::new();
    let holder = crate::ingest::imap::lease_holder();
    if with_mailboxes {
        for m in app.settings.mailboxes.clone() {
            tasks.spawn(run_mailbox(app.clone(), m, holder.clone(), shutdown.clone()));
        }
        tasks.spawn(crate::ops::retention::run(app.clone(), shutdown.clone()));
    }
    match &app.settings.smtp {
        Some(smtp) => {
            let transport = Transport::from_settings(smtp, &app.store)?;
            tasks.spawn(run_sender(app.clone(), transport, shutdown.clone()));
        }
        None => tracing::warn!("no [smtp] configured: notifications wait in the outbox"),
    }
    tasks.spawn(run_timers(app.clone(), shutdown.clone()));
    tasks.spawn(crate::ops::memory::trim_when_idle(shutdown.clone()));
    let listener = tokio::net::TcpListener::bind(&app.settings.web.listen)
        .await
        .with_context(|| format!("cannot listen on {}", app.settings.web.listen))?;
    tracing::info!(listen = %app.settings.web.listen, "web view listening");
    let web = tokio::spawn(crate::web::serve(app.clone(), listener, shutdown.clone()));
    let watchdog = crate::ops::sd_notify::watchdog_interval().map(|interval| (app.clone(), interval, shutdown.clone()));
    let metrics_listen = app.settings.web.metrics_listen.clone();
    if !metrics_listen.is_empty() {
        // Metrics are for the operator: a port taken (another daemon on this machine) is logged,
        // never a reason to stop serving mail.
        match tokio::net::TcpListener::bind(&metrics_listen).await {
            Ok(listener) => {
                tracing::info!(listen = %metrics_listen, "metrics listening");
                tasks.spawn(async move {
                    if let Err(e) = crate::web::serve_metrics(app.clone(), listener, shutdown.clone()).await {
                        tracing::error!(error = %e, "metrics listener failed");
                    }
                });
            }
            Err(e) => tracing::error!(listen = %metrics_listen, error = %e, "cannot listen for /metrics; not served"),
        }
    }
    // Listening, mailboxes and sender started: systemd may start what depends on us.
    crate::ops::sd_notify::notify("READY=1");
    // From now on systemd expects a sign of life every WatchdogSec (when the unit sets one).
    if let Some((app, interval, shutdown)) = watchdog {
        tasks.spawn(crate::ops::sd_notify::run_watchdog(app, interval, shutdown));
    }
    termination_signal().await;
    crate::ops::sd_notify::notify("STOPPING=1");
    tracing::info!("stopping: finishing the mail in hand");
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    web.await.context("web task")??;
    Ok(())
}

/// How often the daemon looks for due timers: a read of an index that finds nothing when nothing
/// is due, so it costs nothing when idle.
const TIMER_CHECK: Duration = Duration::from_secs(2);

/// Fires due timers (`desk::timers`) until shutdown; errors are logged and retried.
async fn run_timers(app: App, mut shutdown: Shutdown) {
    let desk = app.desk.clone();
    if let Err(e) =
        app.store.run(move |s| s.write(|c| crate::desk::timers::schedule_digest(c, &desk, store::now()))).await
    {
        tracing::error!(error = %format!("{e:#}"), "cannot schedule the daily digest");
    }
    loop {
        let a = app.clone();
        match tokio::task::spawn_blocking(move || a.fire_due_timers()).await {
            Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "timers"),
            Err(e) => tracing::error!(error = %e, "timers task"),
            Ok(Ok(_)) => {}
        }
        if shutdown.sleep(TIMER_CHECK).await {
            return;
        }
    }
}

const DEMO_SETTINGS: &str = r#"
[helpdesk]
address = "support@example.com"
name = "Support Démo"
staff = ["alice@example.com"]
public_url = "http://127.0.0.1:8080"

[[company]]
name = "Cisa Informatique"
domains = ["cisa.example"]
shared = true

[database]
url = "sqlite://guichet-demo/guichet.db"

[smtp]
transport = "file"
dir = "guichet-demo/outbox"

[web]
listen = "127.0.0.1:8080"
"#;

/// The sample customer whose login link the demo prints.
pub const DEMO_CUSTOMER: &str = "marie.dupont@cisa.example";

/// The main job on embedded defaults: SQLite in ./guichet-demo/, sample mails ingested, mail
/// written as .eml files under ./guichet-demo/outbox/, web view on 127.0.0.1:8080.
pub fn demo(serve: bool) -> anyhow::Result<()> {
    let settings = Settings::with_overlay(DEMO_SETTINGS)?;
    let app = App::open(settings)?;
    let mut files: Vec<_> = EXAMPLES.files().filter(|f| f.path().extension().is_some_and(|e| e == "eml")).collect();
    files.sort_by_key(|f| f.path().to_path_buf());
    for f in files {
        let outcome = app.ingest_one(f.contents(), "demo")?;
        println!("{}: {outcome:?}", f.path().display());
    }
    let rt = runtime()?;
    let transport = Transport::from_settings(app.settings.smtp.as_ref().context("demo smtp")?, &app.store)?;
    let transport = std::sync::Arc::new(transport);
    let (_stop, mut shutdown) = Shutdown::new();
    rt.block_on(async {
        while send_due(&app, &transport, &mut shutdown).await? > 0 {}
        anyhow::Ok(())
    })?;
    let token = app.store.write(|c| crate::auth::create_login_token(c, DEMO_CUSTOMER, None, store::now()))?;
    let staff_token =
        app.store.write(|c| crate::auth::create_login_token(c, "alice@example.com", None, store::now()))?;
    println!();
    println!("Guichet demo: database guichet-demo/guichet.db, outgoing mail in guichet-demo/outbox/");
    println!("Customer login ({DEMO_CUSTOMER}): {}", crate::auth::login_url(&app.settings.helpdesk.public_url, &token));
    println!(
        "Staff login (alice@example.com): {}",
        crate::auth::login_url(&app.settings.helpdesk.public_url, &staff_token)
    );
    if !serve {
        return Ok(());
    }
    println!("Web view on http://{} — Ctrl-C to stop", app.settings.web.listen);
    let _ = Duration::from_secs(0);
    rt.block_on(serve_all(app, false))
}
