//! SQLite's write-ahead log copied back into the database by a thread of the daemon's own, in
//! turns with the writers (`Store::write`).

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

/// How often the background checkpointer looks at the log when no commit wakes it.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// The daemon's writers and its checkpointer take turns. After each commit the checkpointer copies
/// the log into the database. Once the log holds LOG_LIMIT bytes, a writer that begins while a
/// checkpoint runs waits for it: SQLite then starts the log over from its beginning at that write
/// transaction (nothing left to copy, no reader in it) instead of appending to it. A log that
/// keeps growing costs the kernel new blocks and fresh zeroed pages at every write (measured: 2.8
/// → 2.2 ms of CPU per ingested mail, see BENCHMARKS.md, "Fourth round"); waiting at every
/// commit put the checkpoint's 20–40 ms on the path of every batch ("Fifth round").
#[derive(Default)]
pub(super) struct CheckpointTurns {
    state: std::sync::Mutex<TurnState>,
    changed: std::sync::Condvar,
}

#[derive(Default)]
struct TurnState {
    /// A commit happened since the last checkpoint began.
    wanted: bool,
    /// The checkpointer is copying the log.
    running: bool,
    /// The store is gone: the checkpointer stops.
    closed: bool,
    /// The log's length as the last checkpoint found it; 0 once a writer began after a finished
    /// checkpoint (the log starts over then; should that checkpoint not have copied everything,
    /// the next one says so).
    log_bytes: u64,
}

/// See [`CheckpointTurns`]: a few ingest batches.
const LOG_LIMIT: u64 = 64 << 20;

impl CheckpointTurns {
    fn lock(&self) -> std::sync::MutexGuard<'_, TurnState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Before a write transaction begins.
    pub(super) fn wait_for_checkpoint(&self) {
        let mut state = self.lock();
        if state.log_bytes < LOG_LIMIT {
            return;
        }
        while state.running {
            state = self.changed.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        state.log_bytes = 0;
    }

    pub(super) fn committed(&self) {
        self.lock().wanted = true;
        self.changed.notify_all();
    }

    /// Waits for a commit (or the poll interval); false when the store is gone.
    fn start_checkpoint(&self) -> bool {
        let mut state = self.lock();
        if !state.wanted && !state.closed {
            state =
                self.changed.wait_timeout(state, CHECKPOINT_EVERY).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
        if state.closed {
            return false;
        }
        state.wanted = false;
        state.running = true;
        true
    }

    fn checkpoint_done(&self, log_bytes: Option<u64>) {
        let mut state = self.lock();
        state.running = false;
        if let Some(bytes) = log_bytes {
            state.log_bytes = bytes;
        }
        self.changed.notify_all();
    }
}

/// Closes the turns when the last clone of the store goes.
pub(super) struct CheckpointerHandle(pub(super) std::sync::Arc<CheckpointTurns>);

impl Drop for CheckpointerHandle {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.changed.notify_all();
    }
}

/// Checkpoints the log of `path` from a connection of its own, after each commit of this process
/// (and every CHECKPOINT_EVERY for other processes' commits), until the store is gone.
/// PASSIVE: never waits for readers or other processes' writers; what it cannot copy now it
/// copies next time.
pub(super) fn spawn_checkpointer(
    path: std::path::PathBuf,
    turns: std::sync::Arc<CheckpointTurns>,
) -> anyhow::Result<()> {
    use diesel::sql_types::Integer;
    /// What `PRAGMA wal_checkpoint` answers.
    #[derive(QueryableByName)]
    struct Checkpointed {
        #[diesel(sql_type = Integer)]
        log: i32,
    }
    #[derive(QueryableByName)]
    struct PageSize {
        #[diesel(sql_type = Integer)]
        page_size: i32,
    }
    let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())?;
    conn.batch_execute("PRAGMA busy_timeout = 15000; PRAGMA synchronous = FULL;")?;
    let page_size = diesel::sql_query("PRAGMA page_size").get_result::<PageSize>(&mut conn)?.page_size;
    std::thread::Builder::new().name("sqlite-checkpoint".into()).spawn(move || {
        while turns.start_checkpoint() {
            let started = std::time::Instant::now();
            let log_bytes =
                match diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result::<Checkpointed>(&mut conn) {
                    Ok(c) => Some(c.log.max(0) as u64 * page_size.max(0) as u64),
                    Err(e) => {
                        tracing::warn!(error = %e, "checkpoint failed; retried");
                        None
                    }
                };
            tracing::debug!(ms = started.elapsed().as_millis(), ?log_bytes, "checkpoint");
            turns.checkpoint_done(log_bytes);
        }
    })?;
    Ok(())
}
