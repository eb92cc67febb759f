//! The application: settings, store and desk wired together, and the long-running tasks of
//! `guichet run` sharing one shutdown signal.

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::Settings;
use crate::desk::Desk;
use crate::desk::actions::Mailing;
use crate::desk::inbound::{self, Outcome};
use crate::store::{self, Store};

#[derive(Clone)]
pub struct App {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub desk: Desk,
}

impl App {
    /// Opens the database, applies pending migrations and loads the templates.
    pub fn open(settings: Settings) -> anyhow::Result<App> {
        let store = Store::open_and_migrate(&settings.database.url, settings.database.pool_size)?;
        let secret = store.secret()?;
        let settings = Arc::new(settings);
        let desk = Desk::new(settings.clone(), secret)?;
        Ok(App { settings, store, desk })
    }

    /// Ingests one raw mail in its own transaction (pipe mode, `quarantine retry`, tests).
    pub fn ingest_one(&self, data: &[u8], source: &str) -> anyhow::Result<Outcome> {
        let desk = &self.desk;
        let outcome =
            self.store.write(|conn| inbound::ingest(conn, desk, data, source, Mailing::Send, store::now()))?;
        record_outcome_metrics(source, &outcome);
        Ok(outcome)
    }

    /// Ingests a batch of mails in one transaction (each in its own savepoint).
    pub fn ingest_batch(&self, mails: &[Vec<u8>], source: &str, mailing: Mailing) -> anyhow::Result<Vec<Outcome>> {
        self.ingest_batch_with(mails, source, mailing, |_, _| Ok(()))
    }

    /// Like [`App::ingest_batch`], with `also` run on the outcomes in the same transaction (the
    /// mailbox's cursor and counters: committed with the mails or not at all).
    pub fn ingest_batch_with(
        &self,
        mails: &[Vec<u8>],
        source: &str,
        mailing: Mailing,
        also: impl FnOnce(&mut store::Conn, &[Outcome]) -> anyhow::Result<()>,
    ) -> anyhow::Result<Vec<Outcome>> {
        let desk = &self.desk;
        let started = std::time::Instant::now();
        let outcomes = self.store.write(|conn| {
            let now = store::now();
            let outcomes = mails
                .iter()
                .map(|m| inbound::ingest(conn, desk, m, source, mailing, now))
                .collect::<anyhow::Result<Vec<_>>>()?;
            also(conn, &outcomes)?;
            Ok(outcomes)
        })?;
        // Fetch-to-commit time of a batch: what a mail in it waited for, once fetched.
        metrics::histogram!("guichet_ingest_batch_seconds", "mailbox" => source.to_string())
            .record(started.elapsed().as_secs_f64());
        for o in &outcomes {
            record_outcome_metrics(source, o);
        }
        Ok(outcomes)
    }
}

fn record_outcome_metrics(source: &str, outcome: &Outcome) {
    let kind = match outcome {
        Outcome::Ticket { .. } | Outcome::Report { .. } => "ingested",
        Outcome::Duplicate => "duplicate",
        Outcome::Dropped(_) => "dropped",
        Outcome::Quarantined(_) => "quarantined",
    };
    metrics::counter!("guichet_mails_total", "mailbox" => source.to_string(), "outcome" => kind).increment(1);
}

/// One shutdown signal handed to every task; each finishes its unit of work before it exits.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    pub fn new() -> (watch::Sender<bool>, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (tx, Shutdown { rx })
    }

    pub fn is_set(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves when shutdown is asked for.
    pub async fn wait(&mut self) {
        while !*self.rx.borrow() {
            if self.rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Sleeps `d` or until shutdown; true when shutting down.
    pub async fn sleep(&mut self, d: std::time::Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => self.is_set(),
            _ = self.wait() => true,
        }
    }
}

/// Waits for SIGINT or SIGTERM.
pub async fn termination_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
