//! `guichet check-config`: the settings are already valid when this runs (loading them checks
//! every key); here each outside party is tried for real — the database answers, every mailbox
//! logs in and has its folder, the SMTP server greets (EHLO, STARTTLS, AUTH) — one line each.
//! Nothing is written anywhere: a SQLite file that does not exist yet is not created.

use std::time::Duration;

use anyhow::Context;

use crate::config::{MailboxSettings, Settings, Smtp, SmtpTransport};
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
    for m in &settings.mailboxes {
        report(format!("mailbox {}", m.display_name()), rt.block_on(within(check_mailbox(m))));
    }
    match &settings.smtp {
        Some(smtp) => report(format!("smtp {}:{}", smtp.host, smtp.port), rt.block_on(within(check_smtp(smtp)))),
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

async fn check_mailbox(m: &MailboxSettings) -> anyhow::Result<String> {
    let mut session = crate::ingest::imap::connect(m).await?;
    let folder = session
        .examine(&m.folder)
        .await
        .with_context(|| format!("cannot open folder `{}` (mailbox.folder)", m.folder))?;
    let _ = session.logout().await;
    Ok(format!("logged in as {}, {} message(s) in {}", m.username, folder.exists, m.folder))
}

async fn check_smtp(smtp: &Smtp) -> anyhow::Result<String> {
    if smtp.transport == SmtpTransport::File {
        let dir = smtp.dir.as_ref().context("smtp.dir is required with transport = \"file\"")?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        probe_writable(dir)?;
        return Ok(format!("mail is written to {}", dir.display()));
    }
    let transport = crate::notify::sender::smtp_transport(smtp)?;
    transport.test_connection().await.map_err(|e| anyhow::anyhow!("{}", crate::notify::sender::error_text(&e)))?;
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
