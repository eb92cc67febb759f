//! The database: one concrete store for SQLite (default, bundled) and PostgreSQL (feature
//! `postgres`), through diesel's `MultiConnection` so that every query is written once.
//!
//! Writes go through [`Store::write`], which opens an IMMEDIATE transaction on SQLite so that
//! concurrent writers queue on the busy timeout instead of failing on a lock upgrade.
//!
//! Single-row lookups use `get_result`, not `first`: `first` binds `LIMIT ?`, and SQLite 3.53
//! re-prepares a statement whenever a value is bound to a parameter its plan depends on (5 % of
//! the ingest's CPU, measured; see BENCHMARKS.md, "Ingest").

mod checkpointer;
pub mod copy;
pub mod held;
pub mod listing;
pub mod mailboxes;
pub mod maintenance;
pub mod messages;
pub mod oauth_tokens;
pub mod outbox;
pub(crate) mod pg_batch;
mod pg_url;
pub mod raw;
pub mod reads;
pub mod schema;
pub(crate) mod search_index;
pub mod tickets;
pub mod views;
pub mod visibility;

use std::time::Duration;

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use checkpointer::{CheckpointTurns, CheckpointerHandle, spawn_checkpointer};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
#[cfg(feature = "postgres")]
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    #[cfg(feature = "postgres")]
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

pub type Conn = AnyConnection;
pub type PooledConn = PooledConnection<ConnectionManager<AnyConnection>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool<ConnectionManager<AnyConnection>>,
    /// SQLite: the connections of [`Store::browse`] (`MMAP_BROWSING`).
    browse_pool: Option<Pool<ConnectionManager<AnyConnection>>>,
    backend: Backend,
    sqlite_path: Option<std::path::PathBuf>,
    /// Set with background checkpoints: the checkpointer stops when the last clone is gone.
    checkpointer: Option<std::sync::Arc<CheckpointerHandle>>,
    /// Woken at every commit: a commit may have queued mail, and the outbox sender of this
    /// process sends it at once instead of at its next poll (SPEC §11 latency).
    committed: std::sync::Arc<tokio::sync::Notify>,
}

/// Who copies the SQLite write-ahead log back into the database file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checkpoints {
    /// The connection whose commit fills the log (SQLite's default): short-lived commands.
    Inline,
    /// A thread of its own, beside the writers: the daemon, whose ingest transactions would
    /// otherwise pay for copying every page a second time (see BENCHMARKS.md, "Ingest").
    Background,
}

#[derive(Debug)]
struct SqlitePragmas {
    checkpoints: Checkpoints,
    /// `mmap_size`: [`MMAP_BOUNDED`], or [`MMAP_BROWSING`] for the pool of [`Store::browse`].
    mmap_bytes: u64,
}

/// The mapping of the daemon's connections: every mapped page read counts in its resident memory
/// (SPEC §11: ≤ 150 MB during a drain), and a drain or the sender reading mail bodies touched
/// hundreds of MB of them ("Ingest", fifth and sixth rounds).
const MMAP_BOUNDED: u64 = 64 << 20;
/// The mapping of the connections that serve people browsing: a search on a large database reads
/// thousands of pages, each a system call beyond the mapping (7 instead of 3 ms of CPU for a rare
/// word at 1M messages: BENCHMARKS.md, "Issues 17 and 18 re-measured"). Pages of the file, shared
/// with the OS cache, that the kernel reclaims under pressure.
const MMAP_BROWSING: u64 = 1 << 30;

impl CustomizeConnection<AnyConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut AnyConnection) -> Result<(), diesel::r2d2::Error> {
        // WAL lets readers work beside the writer; FULL makes every commit durable before we
        // tell an IMAP server or an MTA that a mail is stored. cache_spill = OFF: a transaction
        // keeps its dirty pages in memory until commit (bounded: an ingest batch is at most 32 MB
        // of mail) instead of spilling them to the WAL mid-transaction, which, under the per-mail
        // savepoints, also copies every spilled page into a statement journal (measured: the
        // mail's bytes written three times and read back once more; see BENCHMARKS.md).
        // mmap_size: reads go through the OS page cache without a system call per page, up to
        // a bound (MMAP_BOUNDED, MMAP_BROWSING).
        // page_size (new databases only): a 1 MB attachment is 64 pages of 16 KiB rather than
        // 256 of 4 KiB, as many log frames and copies fewer ("Ingest", fifth round).
        conn.batch_execute(&format!(
            "PRAGMA page_size = 16384; PRAGMA busy_timeout = 15000; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF; PRAGMA cache_spill = OFF; PRAGMA mmap_size = {};",
            self.mmap_bytes
        ))
        .map_err(diesel::r2d2::Error::QueryError)?;
        if self.checkpoints == Checkpoints::Background {
            conn.batch_execute("PRAGMA wal_autocheckpoint = 0;").map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

impl Store {
    /// Opens (creating the SQLite file when needed) without migrating.
    pub fn open(url: &str, pool_size: u32) -> anyhow::Result<Store> {
        Store::open_with(url, pool_size, Checkpoints::Inline)
    }

    /// [`Store::open`], choosing who checkpoints SQLite's log (no effect on PostgreSQL).
    pub fn open_with(url: &str, pool_size: u32, checkpoints: Checkpoints) -> anyhow::Result<Store> {
        // Before the first connection: each connection counts its statements from its start.
        count_statements();
        let (conn_url, backend) = if let Some(path) = url.strip_prefix("sqlite://") {
            // sqlite://relative/path or sqlite:///absolute/path
            if let Some(parent) = std::path::Path::new(path).parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
            }
            (path.to_string(), Backend::Sqlite)
        } else if url.starts_with("postgres") {
            if !cfg!(feature = "postgres") {
                anyhow::bail!("database.url is PostgreSQL but this guichet was built without the `postgres` feature");
            }
            (pg_url::connection_url(url), Backend::Postgres)
        } else {
            anyhow::bail!("database.url must start with sqlite:// or postgres://");
        };
        // No idle minimum: r2d2 opens connections on its own worker threads, and with one it
        // opens a replacement in the background as soon as a connection is taken. A command
        // that had finished its work then exited while that thread was in libpq's TLS handshake
        // with PostgreSQL, and OpenSSL's exit handlers freed what the handshake used: SIGSEGV
        // at exit, 2 % of `guichet ticket N` runs (issue 17). Connections are now opened only
        // when asked for, and the one asked for is complete before `get` returns.
        let builder =
            || Pool::builder().max_size(pool_size.max(2)).min_idle(Some(0)).connection_timeout(Duration::from_secs(30));
        // A SQLite connection is a file handle, never broken by a server going away: no `SELECT 1`
        // before each use (PostgreSQL keeps it, to drop connections a restart cut).
        let sqlite_pool = |mmap_bytes| {
            builder()
                .connection_customizer(Box::new(SqlitePragmas { checkpoints, mmap_bytes }))
                .test_on_check_out(false)
                .build(ConnectionManager::<AnyConnection>::new(conn_url.clone()))
                .context("cannot open the database")
        };
        let (pool, browse_pool) = match backend {
            Backend::Sqlite => (sqlite_pool(MMAP_BOUNDED)?, Some(sqlite_pool(MMAP_BROWSING)?)),
            Backend::Postgres => (
                builder()
                    .build(ConnectionManager::<AnyConnection>::new(conn_url.clone()))
                    .context("cannot connect to the database")?,
                None,
            ),
        };
        let sqlite_path =
            (backend == Backend::Sqlite).then(|| std::path::PathBuf::from(url.trim_start_matches("sqlite://")));
        let mut checkpointer = None;
        if let (Some(path), Checkpoints::Background) = (&sqlite_path, checkpoints) {
            let turns = std::sync::Arc::new(CheckpointTurns::default());
            spawn_checkpointer(path.clone(), turns.clone())?;
            checkpointer = Some(std::sync::Arc::new(CheckpointerHandle(turns)));
        }
        Ok(Store { pool, browse_pool, backend, sqlite_path, checkpointer, committed: Default::default() })
    }

    /// Opens and applies pending migrations.
    pub fn open_and_migrate(url: &str, pool_size: u32) -> anyhow::Result<Store> {
        Store::open_and_migrate_with(url, pool_size, Checkpoints::Inline)
    }

    /// [`Store::open_and_migrate`] with a choice of checkpoints.
    pub fn open_and_migrate_with(url: &str, pool_size: u32, checkpoints: Checkpoints) -> anyhow::Result<Store> {
        let store = Store::open_with(url, pool_size, checkpoints)?;
        store.migrate()?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies pending migrations. Several processes may start at once (a daemon and a CLI, or
    /// several daemons): a lock makes them take turns — a file lock beside the SQLite file, an
    /// advisory lock on PostgreSQL.
    pub fn migrate(&self) -> anyhow::Result<Vec<String>> {
        let mut conn = self.conn()?;
        let applied = match &mut *conn {
            #[cfg(feature = "postgres")]
            AnyConnection::Postgresql(pg) => {
                pg.batch_execute("SELECT pg_advisory_lock(7263541)")?;
                let result =
                    pg.run_pending_migrations(POSTGRES_MIGRATIONS).map(|v| v.iter().map(|m| m.to_string()).collect());
                pg.batch_execute("SELECT pg_advisory_unlock(7263541)")?;
                result
            }
            AnyConnection::Sqlite(sqlite) => {
                let _lock = match &self.sqlite_path {
                    Some(path) => Some(lock_file(path)?),
                    None => None,
                };
                sqlite.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.iter().map(|m| m.to_string()).collect())
            }
        }
        .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
        Ok(applied)
    }

    /// Reverts the newest applied migration (its `down.sql`); returns its name. For tests of a
    /// migration's data conversion, and for a downgrade by hand.
    pub fn revert_last_migration(&self) -> anyhow::Result<String> {
        let mut conn = self.conn()?;
        let reverted = match &mut *conn {
            #[cfg(feature = "postgres")]
            AnyConnection::Postgresql(pg) => pg.revert_last_migration(POSTGRES_MIGRATIONS).map(|m| m.to_string()),
            AnyConnection::Sqlite(sqlite) => sqlite.revert_last_migration(SQLITE_MIGRATIONS).map(|m| m.to_string()),
        }
        .map_err(|e| anyhow::anyhow!("reverting a migration failed: {e}"))?;
        Ok(reverted)
    }

    pub fn conn(&self) -> anyhow::Result<PooledConn> {
        self.pool.get().context("no database connection available")
    }

    /// Runs `f` in one write transaction (IMMEDIATE on SQLite); commits when it returns Ok.
    pub fn write<T>(&self, f: impl FnOnce(&mut Conn) -> anyhow::Result<T>) -> anyhow::Result<T> {
        QUEUED_MAIL.set(false);
        let mut conn = self.conn()?;
        let result = match &self.checkpointer {
            None => write_tx(&mut conn, f),
            Some(checkpointer) => {
                checkpointer.0.wait_for_checkpoint();
                let result = write_tx(&mut conn, f);
                checkpointer.0.committed();
                result
            }
        };
        // Only a commit that queued mail wakes the sender: its own claims and records, which
        // are commits too, woke it at once and an idle daemon claimed nothing in a busy loop.
        if result.is_ok() && QUEUED_MAIL.take() {
            self.committed.notify_one();
        }
        result
    }

    /// Notes that the write transaction of this thread queued mail (`outbox::queue`).
    pub(crate) fn note_queued_mail() {
        QUEUED_MAIL.set(true);
    }

    /// Resolves after the next commit of this process that queued mail (or at once if one came
    /// since the last call): what the outbox sender waits on between rounds.
    pub async fn mail_queued(&self) {
        self.committed.notified().await
    }

    /// Runs `f` with a connection (reads; no transaction).
    pub fn read<T>(&self, f: impl FnOnce(&mut Conn) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let mut conn = self.conn()?;
        f(&mut conn)
    }

    /// Runs `f` with a connection for people browsing — the web view's lists, searches and
    /// tickets, `/api` — (reads; no transaction): on SQLite one that maps up to 1 GiB of the
    /// file, so large searches read pages without a system call each; the daemon's own work keeps
    /// its bounded mapping.
    pub fn browse<T>(&self, f: impl FnOnce(&mut Conn) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let Some(pool) = &self.browse_pool else { return self.read(f) };
        let mut conn = pool.get().context("no database connection available")?;
        f(&mut conn)
    }

    /// Runs a blocking store closure off the async runtime.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store)).await.context("database task panicked")?
    }

    /// A secret shared by every daemon of this database (HMAC of our Message-IDs), made once.
    pub fn secret(&self) -> anyhow::Result<Vec<u8>> {
        use schema::meta::dsl::*;
        if let Some(v) =
            self.read(|c| Ok(meta.filter(key.eq("secret")).select(value).get_result::<String>(c).optional()?))?
        {
            return hex::decode(v).context("meta.secret is not hex");
        }
        let fresh: [u8; 32] = rand::random();
        self.write(|c| {
            diesel::insert_into(meta).values((key.eq("secret"), value.eq(hex::encode(fresh)))).execute(c).ok();
            Ok(())
        })?;
        let stored = self.read(|c| Ok(meta.filter(key.eq("secret")).select(value).get_result::<String>(c)?))?;
        hex::decode(stored).context("meta.secret is not hex")
    }
}

static STATEMENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

thread_local! {
    static THREAD_STATEMENTS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// Whether the write transaction running on this thread queued a notification.
    static QUEUED_MAIL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Counts every statement sent to the database (diesel's instrumentation: each query and each
/// `batch_execute`, BEGIN and COMMIT included), for the statements-per-mail figure of
/// `scripts/bench-ingest` (`guichet_db_statements_total` on /metrics) and the ingest's per-batch
/// debug log. A relaxed atomic and a thread-local counter: nothing measurable per statement.
fn count_statements() {
    use diesel::connection::{Instrumentation, InstrumentationEvent, set_default_instrumentation};
    fn counter() -> Option<Box<dyn Instrumentation>> {
        Some(Box::new(|event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { query, .. } = event {
                STATEMENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                THREAD_STATEMENTS.set(THREAD_STATEMENTS.get() + 1);
                // Each statement's SQL with `RUST_LOG=guichet::sql=trace`: which statements a
                // path sends, to count them by kind (off by default: one level check).
                if tracing::enabled!(target: "guichet::sql", tracing::Level::TRACE) {
                    tracing::trace!(target: "guichet::sql", "{}", sql_head(query));
                }
            }
        }))
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = set_default_instrumentation(counter);
    });
}

/// A statement's first 1,000 characters (its binds can be megabytes of mail).
fn sql_head(query: &dyn std::fmt::Display) -> String {
    struct Head(String);
    impl std::fmt::Write for Head {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let room = 1000usize.saturating_sub(self.0.len());
            self.0.extend(s.chars().take(room));
            if s.len() > room { Err(std::fmt::Error) } else { Ok(()) }
        }
    }
    let mut head = Head(String::new());
    let _ = std::fmt::write(&mut head, format_args!("{query}"));
    head.0
}

/// Statements sent by this process so far (every connection, every thread).
pub fn statements() -> u64 {
    STATEMENTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Statements sent by this thread so far.
pub fn thread_statements() -> u64 {
    THREAD_STATEMENTS.get()
}

/// An exclusive lock on `<database>.lock`, released when the file is dropped.
fn lock_file(db: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&name)?;
    file.lock().context("cannot lock the database for migration")?;
    Ok(file)
}

/// Begins, runs `f`, commits (or rolls back on error).
pub fn write_tx<T>(conn: &mut Conn, f: impl FnOnce(&mut Conn) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let begin = match conn {
        #[cfg(feature = "postgres")]
        AnyConnection::Postgresql(_) => "BEGIN",
        AnyConnection::Sqlite(_) => "BEGIN IMMEDIATE",
    };
    conn.batch_execute(begin).context("cannot begin a transaction")?;
    let held = held::Holding::begin();
    match f(conn).and_then(|value| held.flush(conn).map(|()| value)) {
        Ok(value) => {
            conn.batch_execute("COMMIT").context("commit failed")?;
            Ok(value)
        }
        Err(e) => {
            let _ = conn.batch_execute("ROLLBACK");
            Err(e)
        }
    }
}

/// Runs `f` inside a savepoint: its changes are undone alone when it fails.
pub fn savepoint<T>(conn: &mut Conn, f: impl FnOnce(&mut Conn) -> anyhow::Result<T>) -> anyhow::Result<T> {
    // Held rows cannot be undone by a savepoint: written before it, and no more held after.
    pg_batch::flush(conn)?;
    conn.batch_execute("SAVEPOINT one_mail")?;
    let held = held::mark();
    match f(conn) {
        Ok(v) => {
            conn.batch_execute("RELEASE SAVEPOINT one_mail")?;
            Ok(v)
        }
        Err(e) => {
            held::undo_to(held);
            conn.batch_execute("ROLLBACK TO SAVEPOINT one_mail")?;
            conn.batch_execute("RELEASE SAVEPOINT one_mail")?;
            Err(e)
        }
    }
}

/// Sequences that are PostgreSQL sequences (`guichet_id_<name>`) rather than `counters` rows:
/// `nextval` is not held until COMMIT, so several daemons' batches do not queue on one row. Their
/// values are not given back by a rollback (a ticket number may be skipped, never repeated).
pub const PG_SEQUENCES: &[&str] = &["raw_mail", "ticket", "message", "attachment", "outbox"];

/// The next id of a sequence (`ticket`, `message`, …), inside the caller's transaction.
///
/// One upsert statement: two transactions using a sequence for the first time at once (two
/// mailboxes, two daemons) cannot both try to create its row, which made one of them fail and
/// its mail go to quarantine (seen on PostgreSQL with two mailboxes). On SQLite, a write
/// transaction takes its ids from a block it reserved (`store::held`).
pub fn next_id(conn: &mut Conn, sequence: &str) -> anyhow::Result<i64> {
    use diesel::sql_types::{BigInt, Text};
    #[derive(QueryableByName)]
    struct Next {
        #[diesel(sql_type = BigInt)]
        value: i64,
    }
    if let Some(id) = pg_batch::next_id(conn, sequence)? {
        return Ok(id);
    }
    let reserving = held::holds_ids(conn);
    let next: Next = match conn {
        #[cfg(feature = "postgres")]
        AnyConnection::Postgresql(pg) if PG_SEQUENCES.contains(&sequence) => {
            diesel::sql_query(format!("SELECT nextval('guichet_id_{sequence}') AS value")).get_result(pg)?
        }
        #[cfg(feature = "postgres")]
        AnyConnection::Postgresql(pg) => diesel::sql_query(
            "INSERT INTO counters (name, value) VALUES ($1, 1) \
             ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
        )
        .bind::<Text, _>(sequence)
        .get_result(pg)?,
        AnyConnection::Sqlite(sqlite) if reserving => {
            if let Some(id) = held::take_id(sequence) {
                return Ok(id);
            }
            let last: Next = diesel::sql_query(
                "INSERT INTO counters (name, value) VALUES (?, ?) \
                 ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value RETURNING value",
            )
            .bind::<Text, _>(sequence)
            .bind::<BigInt, _>(held::ID_BLOCK)
            .get_result(sqlite)?;
            return Ok(held::reserve_ids(sequence, last.value - held::ID_BLOCK + 1, last.value));
        }
        AnyConnection::Sqlite(sqlite) => diesel::sql_query(
            "INSERT INTO counters (name, value) VALUES (?, 1) \
             ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
        )
        .bind::<Text, _>(sequence)
        .get_result(sqlite)?,
    };
    Ok(next.value)
}

/// Sets a `counters` row (SQLite: the last id a transaction used, `store::held`). An upsert: the
/// savepoint that created the row may have been rolled back since.
fn set_counter(conn: &mut Conn, sequence: &str, value: i64) -> anyhow::Result<()> {
    use diesel::sql_types::{BigInt, Text};
    diesel::sql_query(
        "INSERT INTO counters (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind::<Text, _>(sequence)
    .bind::<BigInt, _>(value)
    .execute(conn)?;
    Ok(())
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// RFC 3339 in UTC, as the JSON shapes show times.
pub fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).unwrap_or_default().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
