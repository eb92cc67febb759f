//! What a write transaction holds back until just before its COMMIT, on the thread that runs it:
//!
//! on SQLite, the keyword index's additions. FTS5 writes its pending terms out as a new segment
//! at every savepoint, and the ingest opens one per mail, so indexing each message as it was
//! stored made a segment per mail and kept FTS5 merging them (18 % of a batch transaction's CPU,
//! measured; BENCHMARKS.md).
//!
//! A savepoint that is rolled back drops what was held after its start (`mark`, `undo_to`).

use std::cell::RefCell;

use super::{AnyConnection, Conn};

thread_local! {
    /// `Some` inside a write transaction of this thread.
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

#[derive(Default)]
struct Held {
    /// (message id, text) to index.
    words: Vec<(i64, String)>,
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
    /// segment).
    pub(crate) fn flush(&self, conn: &mut Conn) -> anyhow::Result<()> {
        let held = HELD.with_borrow_mut(|h| h.as_mut().map(std::mem::take).unwrap_or_default());
        for (id, text) in &held.words {
            super::search_index::insert(conn, *id, text)?;
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

/// How much is held: a savepoint notes it at its start…
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mark {
    words: usize,
}

#[cfg(test)]
impl Mark {
    pub(crate) fn of_words(words: usize) -> Mark {
        Mark { words }
    }
}

pub(crate) fn mark() -> Mark {
    HELD.with_borrow(|h| match h {
        Some(held) => Mark { words: held.words.len() },
        None => Mark { words: 0 },
    })
}

/// …and forgets what was held after it when it is rolled back.
pub(crate) fn undo_to(mark: Mark) {
    HELD.with_borrow_mut(|h| {
        if let Some(held) = h {
            held.words.truncate(mark.words);
        }
    });
}
