//! `guichet check-config`: the settings are already valid when this runs (loading them checks
//! every key); here each outside party is tried for real — the database answers, every mailbox
//! logs in and has its folder, the SMTP server greets (EHLO, STARTTLS, AUTH) — one line each.
//! Nothing is written anywhere (but an OAuth refresh token the provider rotates while an access
//! token is fetched): a SQLite file that does not exist yet is not created.

use std::time::Duration;

use anyhow::Context;

use crate::config::{MailboxSettings, Settings, Smtp, SmtpTransport};
use crate::oauth::TokenSource;
use crate::store::Store;

/// How long one part may take before it counts as failed.
const PART_TIMEOUT: Duration = Duration::from_secs(30);

/// Prints one line per part; true when every part works.
pub fn check_config(settings: &Settings) -> anyhow::Result<bool> {
    println!("configuration: ok");
    let mut all_ok = true;
    let mut report = |part: String, result: anyhow::Result<String>| match result {
        Ok(detail) => println!("{part}: ok, {detail}"),
        Err(e) => {
            all_ok = false;
            println!("{part}: FAILED: {e:#}");
        }
    };
    report("database".into(), check_database(&settings.database.url));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if settings.mailboxes.is_empty() {
        println!("mailboxes: none configured (mail arrives by `guichet ingest` only)");
    }
    // OAuth accounts take their token from the database (kept there by `guichet oauth-login`).
    let store = || Store::open(&settings.database.url, 1);
    for m in &settings.mailboxes {
        report(format!("mailbox {}", m.display_name()), rt.block_on(within(check_mailbox(m, store))));
    }
    match &settings.smtp {
        Some(smtp) => report(format!("smtp {}:{}", smtp.host, smtp.port), rt.block_on(within(check_smtp(smtp, store)))),
        None => report("smtp".into(), Err(anyhow::anyhow!("no [smtp] section: notifications would never leave"))),
    }
    Ok(all_ok)
}

async fn within(part: impl Future<Output = anyhow::Result<String>>) -> anyhow::Result<String> {
    tokio::time::timeout(PART_TIMEOUT, part).await.map_err(|_| anyhow::anyhow!("no answer within {PART_TIMEOUT:?}"))?
}

fn check_database(url: &str) -> anyhow::Result<String> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = std::path::Path::new(path);
        if !path.exists() {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            return probe_writable(dir)
                .with_context(|| format!("{} does not exist and cannot be created", path.display()))
                .map(|()| format!("{} will be created at the first start", path.display()));
        }
    }
    let store = Store::open(url, 1)?;
    store.ping(Duration::from_secs(10))?;
    let schema = if store.has_schema()? { "" } else { " (no tables yet: `guichet migrate` or `run` creates them)" };
    Ok(format!("{:?} answers{schema}", store.backend()))
}

/// The access token source of an OAuth account (`None` for a password).
fn tokens(
    oauth: Option<&crate::oauth::OAuthConfig>,
    store: impl Fn() -> anyhow::Result<Store>,
) -> anyhow::Result<Option<TokenSource>> {
    oauth
        .map(|config| {
            let store = store().context("the OAuth token is kept in the database, which does not open")?;
            TokenSource::new(config.clone(), store)
        })
        .transpose()
}

async fn check_mailbox(m: &MailboxSettings, store: impl Fn() -> anyhow::Result<Store>) -> anyhow::Result<String> {
    let tokens = tokens(m.oauth.as_ref(), store)?;
    let mut session = crate::ingest::imap::connect(m, tokens.as_ref()).await?;
    let folder = session
        .examine(&m.folder)
        .await
        .with_context(|| format!("cannot open folder `{}` (mailbox.folder)", m.folder))?;
    let _ = session.logout().await;
    Ok(format!("logged in as {}, {} message(s) in {}", m.username, folder.exists, m.folder))
}

async fn check_smtp(smtp: &Smtp, store: impl Fn() -> anyhow::Result<Store>) -> anyhow::Result<String> {
    if smtp.transport == SmtpTransport::File {
        let dir = smtp.dir.as_ref().context("smtp.dir is required with transport = \"file\"")?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        probe_writable(dir)?;
        return Ok(format!("mail is written to {}", dir.display()));
    }
    let token = match tokens(smtp.oauth.as_ref(), store)? {
        Some(source) => Some(source.access_token().await.map_err(|e| anyhow::anyhow!("{e}"))?),
        None => None,
    };
    let transport = crate::workers::sender::smtp_transport(smtp, token.as_deref())?;
    transport.test_connection().await.map_err(|e| anyhow::anyhow!("{}", crate::workers::sender::error_text(&e)))?;
    let login = if smtp.username.is_some() { "greeted and logged in" } else { "greeted" };
    Ok(login.to_string())
}

/// Creates and removes a file in `dir`.
fn probe_writable(dir: &std::path::Path) -> anyhow::Result<()> {
    let probe = dir.join(format!(".guichet-check-{}", std::process::id()));
    std::fs::write(&probe, b"").with_context(|| format!("cannot write in {}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}
