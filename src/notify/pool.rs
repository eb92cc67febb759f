//! A few threads (one per core) that render and compose notification mails while the write
//! transaction that queued them goes on (`store::held`). A job is pure work: it never waits on
//! anything, so the transaction waiting for its result cannot deadlock.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// A mail being composed.
pub struct Composing(Receiver<anyhow::Result<Vec<u8>>>);

impl Composing {
    /// Waits for the mail's bytes.
    pub fn wait(self) -> anyhow::Result<Vec<u8>> {
        self.0.recv().unwrap_or_else(|_| Err(anyhow::anyhow!("composing the mail panicked")))
    }
}

/// Starts composing on the pool.
pub fn start(job: impl FnOnce() -> anyhow::Result<Vec<u8>> + Send + 'static) -> Composing {
    let (tell, result) = mpsc::sync_channel(1);
    let run: Job = Box::new(move || {
        let _ = tell.send(job());
    });
    if let Err(mpsc::SendError(run)) = workers().send(run) {
        run(); // no pool (cannot happen once started): compose here
    }
    Composing(result)
}

fn workers() -> &'static Sender<Job> {
    static WORKERS: OnceLock<Sender<Job>> = OnceLock::new();
    WORKERS.get_or_init(|| {
        let (send, receive) = mpsc::channel::<Job>();
        let receive = Arc::new(Mutex::new(receive));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        for i in 0..threads {
            let receive = receive.clone();
            let spawned = std::thread::Builder::new().name(format!("compose-{i}")).spawn(move || {
                loop {
                    let job = match receive.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    };
                    // A panicking job drops its sender (its waiter gets an error); the thread
                    // lives on for the next one.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start a compose thread");
            }
        }
        send
    })
}
