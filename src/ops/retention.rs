//! `[retention] raw_mail_days`: the daemon drops the raw bytes of mail on tickets closed longer
//! ago, at start and then every ten minutes (`store::maintenance::drop_old_raw_mail`). Messages and files
//! stay; the raw mail row stays too, keeping its key so that the mail is never ingested twice.

use std::time::Duration;

use crate::app::{App, Shutdown};
use crate::store;

/// How often the daemon looks for raw mail to drop: a scan of the processed raw mails' rows
/// (not their bytes), cheap at this pace.
const EVERY: Duration = Duration::from_secs(600);
/// Raw mails per transaction: short transactions beside the ingest.
const BATCH: i64 = 200;

/// Runs until shutdown; nothing to do without `raw_mail_days`.
pub async fn run(app: App, mut shutdown: Shutdown) {
    let Some(days) = app.settings.retention.raw_mail_days else { return };
    loop {
        let cutoff = store::now() - i64::from(days) * 86_400;
        match app.store.run(move |s| drop_all(s, cutoff)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(mails = n, days, "retention: raw mail of closed tickets dropped"),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "retention failed; tried again later"),
        }
        if shutdown.sleep(EVERY).await {
            return;
        }
    }
}

/// Drops every raw mail older than `cutoff` on a ticket closed before it; how many.
pub fn drop_all(store: &store::Store, cutoff: i64) -> anyhow::Result<usize> {
    let mut total = 0;
    loop {
        let n = store.write(|c| store::maintenance::drop_old_raw_mail(c, cutoff, BATCH))?;
        total += n;
        if n < BATCH as usize {
            return Ok(total);
        }
    }
}
