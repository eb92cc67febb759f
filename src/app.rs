//! The application: settings, store and desk wired together, and the long-running tasks of
//! `guichet run` sharing one shutdown signal.

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::Settings;
use crate::desk::Desk;
use crate::desk::actions::Mailing;
use crate::desk::inbound::{self, Isolation, Outcome};
use crate::notify::render::Renderer;
use crate::store::{self, Store};

#[derive(Clone)]
pub struct App {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub desk: Desk,
    /// The mail templates (checked when the app opens), for the sender and [`App::outbox_mail`].
    pub renderer: Arc<Renderer>,
}

impl App {
    /// Opens the database, applies pending migrations and loads the templates.
    pub fn open(settings: Settings) -> anyhow::Result<App> {
        App::open_with(settings, store::Checkpoints::Inline)
    }

    /// [`App::open`] for a long-running process: SQLite's log is checkpointed by a thread of its
    /// own rather than by the commits of the ingest and the sender.
    pub fn open_daemon(settings: Settings) -> anyhow::Result<App> {
        App::open_with(settings, store::Checkpoints::Background)
    }

    fn open_with(settings: Settings, checkpoints: store::Checkpoints) -> anyhow::Result<App> {
        let store = Store::open_and_migrate_with(&settings.database.url, settings.database.pool_size, checkpoints)?;
        let secret = store.secret()?;
        let settings = Arc::new(settings);
        let desk = Desk::new(settings.clone(), secret)?;
        let renderer = Arc::new(Renderer::new(settings.helpdesk.templates_dir.as_deref())?);
        Ok(App { settings, store, desk, renderer })
    }

    /// Ingests one raw mail in its own transaction (pipe mode, `quarantine retry`, tests).
    pub fn ingest_one(&self, data: &[u8], source: &str) -> anyhow::Result<Outcome> {
        let desk = &self.desk;
        let outcome =
            self.store.write(|conn| inbound::ingest(conn, desk, data, source, Mailing::Send, store::now()))?;
        record_outcome_metrics(source, &outcome);
        Ok(outcome)
    }

    /// Fires the timers that are due (SPEC §8), each in its own transaction; how many fired.
    pub fn fire_due_timers(&self) -> anyhow::Result<usize> {
        let desk = &self.desk;
        let now = store::now();
        let due = self.store.read(|c| crate::desk::timers::due(c, now, 100))?;
        let mut fired = 0;
        for (number, kind) in due {
            if self.store.write(|c| crate::desk::timers::fire(c, desk, number, &kind, now))? {
                tracing::info!(ticket = number, timer = %kind, "timer fired");
                fired += 1;
            }
        }
        Ok(fired)
    }

    /// The mail an outbox row sends, composed as the sender composes it (`notify::pending`).
    pub fn outbox_mail(&self, row: &store::outbox::OutboxRow) -> anyhow::Result<Vec<u8>> {
        use crate::notify::pending::{CannotCompose, files_of, mail_of};
        mail_of(&mut files_of(&self.store), &self.renderer, row)?
            .map_err(|CannotCompose(e)| anyhow::anyhow!("cannot compose the mail: {e}"))
    }

    /// Ingests a batch of mails in one transaction ([`App::commit_batch_with`]).
    pub fn ingest_batch(&self, mails: &[Vec<u8>], source: &str, mailing: Mailing) -> anyhow::Result<Vec<Outcome>> {
        self.commit_batch_with(mails, self.prepare_batch(mails), source, mailing, |_, _| Ok(()))
    }

    /// The database-free half of a batch's ingest: parsing, most of a mail's CPU, done on every
    /// core. The IMAP loop runs it while the batch before is still being committed.
    pub fn prepare_batch(&self, mails: &[Vec<u8>]) -> PreparedBatch {
        PreparedBatch { started: std::time::Instant::now(), mails: prepare_all(&self.desk, mails) }
    }

    /// Writes a prepared batch (`prepared` from [`App::prepare_batch`] of the same `mails`) in one
    /// transaction, with `also` run on the outcomes in it (the mailbox's cursor and counters:
    /// committed with the mails or not at all).
    pub fn commit_batch_with(
        &self,
        mails: &[Vec<u8>],
        prepared: PreparedBatch,
        source: &str,
        mailing: Mailing,
        also: impl Fn(&mut store::Conn, &[Outcome]) -> anyhow::Result<()>,
    ) -> anyhow::Result<Vec<Outcome>> {
        let desk = &self.desk;
        assert_eq!(mails.len(), prepared.mails.len(), "a batch is committed with its own preparation");
        let PreparedBatch { started, mails: prepared } = prepared;
        let write = |prepared: Vec<inbound::Prepared>, isolation| {
            self.store.write(|conn| {
                let now = store::now();
                // PostgreSQL: the batch's rows written a table at a time just before COMMIT, what
                // it looks up asked at once (`store::pg_batch`); should the rows fail, the batch
                // is written again, each mail in a savepoint.
                let deciding = std::time::Instant::now();
                let held = isolation == Isolation::Batch && store::pg_batch::begin(conn, mails.len());
                if held {
                    inbound::prefetch(conn, desk, &prepared, now)?;
                }
                let outcomes = mails
                    .iter()
                    .zip(prepared)
                    .map(|(m, p)| inbound::ingest_prepared(conn, desk, m, p, source, mailing, now, isolation))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                also(conn, &outcomes)?;
                let decide_ms = deciding.elapsed().as_secs_f64() * 1e3;
                if held {
                    store::pg_batch::flush(conn).map_err(|e| e.context(inbound::MailFailed))?;
                }
                tracing::debug!(
                    decide_ms,
                    flush_ms = deciding.elapsed().as_secs_f64() * 1e3 - decide_ms,
                    "batch decided and flushed"
                );
                Ok(outcomes)
            })
        };
        let statements = store::thread_statements();
        // Without a savepoint per mail first; should one mail fail, the batch is written again
        // with them, so that it goes to quarantine alone (`inbound::Isolation`).
        let outcomes = match write(prepared, Isolation::Batch) {
            Err(e) if e.downcast_ref::<inbound::MailFailed>().is_some() => {
                tracing::warn!(error = %format!("{e:#}"), "writing the batch again, each mail in a savepoint");
                write(self.prepare_batch(mails).mails, Isolation::Savepoint)
            }
            other => other,
        }?;
        let statements = store::thread_statements() - statements;
        tracing::debug!(count = mails.len(), statements, "batch statements (BEGIN and COMMIT included)");
        metrics::counter!("guichet_ingest_statements_total").increment(statements);
        // Parse-to-commit time of a batch: what a mail in it waited for, once fetched.
        metrics::histogram!("guichet_ingest_batch_seconds", "mailbox" => source.to_string())
            .record(started.elapsed().as_secs_f64());
        for o in &outcomes {
            record_outcome_metrics(source, o);
        }
        Ok(outcomes)
    }
}

/// A batch's mails parsed, waiting for the write transaction.
pub struct PreparedBatch {
    started: std::time::Instant,
    mails: Vec<inbound::Prepared>,
}

/// [`inbound::prepare`] of every mail, in order, spread over the machine's cores.
fn prepare_all(desk: &Desk, mails: &[Vec<u8>]) -> Vec<inbound::Prepared> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(mails.len());
    if threads <= 1 {
        return mails.iter().map(|m| inbound::prepare(desk, m)).collect();
    }
    // Interleaved rather than in halves: mail sizes vary a lot, neighbours less so.
    let mut slots: Vec<Option<inbound::Prepared>> = std::iter::repeat_with(|| None).take(mails.len()).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..mails.len())
                        .step_by(threads)
                        .map(|i| (i, inbound::prepare(desk, &mails[i])))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for worker in workers {
            for (i, p) in worker.join().expect("parsing never panics") {
                slots[i] = Some(p);
            }
        }
    });
    slots.into_iter().map(|p| p.expect("every mail prepared")).collect()
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
