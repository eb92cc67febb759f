//! What a write transaction holds back until just before its COMMIT, on the thread that runs it:
//!
//! - on SQLite, the keyword index's additions: FTS5 writes its pending terms out as a new segment
//!   at every savepoint, and the ingest opens one per mail, so indexing each message as it was
//!   stored made a segment per mail and kept FTS5 merging them (18 % of a batch transaction's
//!   CPU, measured; BENCHMARKS.md);
//! - the notifications: their mails are rendered and composed on other cores meanwhile
//!   (`notify::pool`) and written to the outbox once ready, instead of in the write lock, one
//!   after the other (a third of a batch transaction's CPU, measured).
//!
//! A savepoint that is rolled back drops what was held after its start (`mark`, `undo_to`).

use std::cell::{Cell, RefCell};

use super::outbox::Queued;
use super::{AnyConnection, Conn};

thread_local! {
    /// `Some` inside a write transaction of this thread.
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
    /// False while a batch is written again with its notifications composed as it goes (one of
    /// them could not be composed in the background: see `App::write_composing`).
    static HOLD_NOTIFICATIONS: Cell<bool> = const { Cell::new(true) };
}

#[derive(Default)]
struct Held {
    /// (message id, text) to index.
    words: Vec<(i64, String)>,
    notifications: Vec<Queued>,
}

/// Holds the work of the transaction that `begin` was called in; dropped (commit or not),
/// nothing of it is held any more.
pub(crate) struct Holding {
    /// What an enclosing transaction of this thread (on another connection) was holding, given
    /// back when this one ends.
    outer: Option<Held>,
}

impl Holding {
    /// Called right after BEGIN.
    pub(crate) fn begin() -> Holding {
        Holding { outer: HELD.replace(Some(Held::default())) }
    }

    /// Called right before COMMIT: indexes the held words in one run of statements (one FTS5
    /// segment), then writes each notification once its mail is composed.
    pub(crate) fn flush(&self, conn: &mut Conn) -> anyhow::Result<()> {
        let held = HELD.with_borrow_mut(|h| h.as_mut().map(std::mem::take).unwrap_or_default());
        for (id, text) in &held.words {
            super::search_index::insert(conn, *id, text)?;
        }
        for notification in held.notifications {
            super::outbox::insert_queued(conn, notification)?;
        }
        Ok(())
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        HELD.set(self.outer.take());
    }
}

/// Holds a message's words (SQLite, in a write transaction); gives them back otherwise.
pub(crate) fn hold_words(conn: &Conn, id: i64, text: String) -> Option<String> {
    if !matches!(conn, AnyConnection::Sqlite(_)) {
        return Some(text);
    }
    HELD.with_borrow_mut(|h| match h {
        Some(held) => {
            held.words.push((id, text));
            None
        }
        None => Some(text),
    })
}

/// Whether notifications queued now are held until COMMIT (inside a write transaction).
pub(crate) fn holds_notifications() -> bool {
    HOLD_NOTIFICATIONS.get() && HELD.with_borrow(Option::is_some)
}

/// Holds a notification (see `holds_notifications`); gives it back otherwise.
pub(crate) fn hold_notification(notification: Queued) -> Option<Queued> {
    if !holds_notifications() {
        return Some(notification);
    }
    HELD.with_borrow_mut(|h| match h {
        Some(held) => {
            held.notifications.push(notification);
            None
        }
        None => Some(notification),
    })
}

/// How many held notifications match `f` (the loop breakers count what this transaction queued).
pub(crate) fn count_notifications(f: impl Fn(&Queued) -> bool) -> i64 {
    HELD.with_borrow(|h| h.as_ref().map_or(0, |held| held.notifications.iter().filter(|n| f(n)).count() as i64))
}

/// Runs `f` with notifications composed as they are queued, not held.
pub fn composing_as_it_goes<T>(f: impl FnOnce() -> T) -> T {
    /// Gives the flag back even if `f` panics: the thread (a pooled one) goes on serving.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            HOLD_NOTIFICATIONS.set(self.0);
        }
    }
    let _restore = Restore(HOLD_NOTIFICATIONS.replace(false));
    f()
}

/// How much is held: a savepoint notes it at its start…
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mark {
    words: usize,
    notifications: usize,
}

#[cfg(test)]
impl Mark {
    pub(crate) fn of_words(words: usize) -> Mark {
        Mark { words, notifications: 0 }
    }
}

pub(crate) fn mark() -> Mark {
    HELD.with_borrow(|h| match h {
        Some(held) => Mark { words: held.words.len(), notifications: held.notifications.len() },
        None => Mark { words: 0, notifications: 0 },
    })
}

/// …and forgets what was held after it when it is rolled back.
pub(crate) fn undo_to(mark: Mark) {
    HELD.with_borrow_mut(|h| {
        if let Some(held) = h {
            held.words.truncate(mark.words);
            held.notifications.truncate(mark.notifications);
        }
    });
}
