//! What a write transaction holds back until just before its COMMIT, on the thread that runs it:
//!
//! on SQLite, the keyword index's additions. FTS5 writes its pending terms out as a new segment
//! at every savepoint, and the ingest opens one per mail, so indexing each message as it was
//! stored made a segment per mail and kept FTS5 merging them (18 % of a batch transaction's CPU,
//! measured; BENCHMARKS.md).
//!
//! Also, on SQLite, the ids of `next_id`: a transaction reserves them in blocks of ID_BLOCK
//! (one counter update per block instead of one per row; diesel prepares an upsert again at every
//! call: 3.6 % of the ingest's CPU, measured) and writes the last one it used just before COMMIT,
//! so a sequence has no gaps. SQLite has one writer at a time: nobody else takes ids meanwhile.
//!
//! A savepoint that is rolled back drops what was held after its start (`mark`, `undo_to`),
//! and gives back the ids taken since.

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
    /// The ids reserved by this transaction, per sequence.
    ids: Vec<Ids>,
    /// PostgreSQL, an ingest batch without savepoints: its rows (`store::pg_batch`).
    rows: Option<Box<super::pg_batch::Rows>>,
}

/// A sequence's ids reserved by the transaction: `first..=last`, of which `next` is the next free.
struct Ids {
    sequence: String,
    first: i64,
    next: i64,
    last: i64,
}

/// Ids reserved at once by a transaction that needs one.
pub(crate) const ID_BLOCK: i64 = 64;

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
    /// segment), and sets each sequence to the last id used.
    pub(crate) fn flush(&self, conn: &mut Conn) -> anyhow::Result<()> {
        super::pg_batch::flush(conn)?;
        let held = HELD.with_borrow_mut(|h| h.as_mut().map(std::mem::take).unwrap_or_default());
        for (id, text) in &held.words {
            super::search_index::insert(conn, *id, text)?;
        }
        for ids in &held.ids {
            super::set_counter(conn, &ids.sequence, ids.next - 1)?;
        }
        Ok(())
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        HELD.set(self.outer.take());
    }
}

/// Makes the write transaction of this thread hold `rows` (`store::pg_batch`); false outside one.
pub(crate) fn set_rows(rows: Box<super::pg_batch::Rows>) -> bool {
    HELD.with_borrow_mut(|h| match h {
        Some(held) => {
            held.rows = Some(rows);
            true
        }
        None => false,
    })
}

/// `f` on the rows held by the write transaction of this thread, if it holds any.
pub(crate) fn with_rows<T>(f: impl FnOnce(&mut super::pg_batch::Rows) -> T) -> Option<T> {
    HELD.with_borrow_mut(|h| h.as_mut()?.rows.as_deref_mut().map(f))
}

/// The rows held, taken: nothing is held any more.
pub(crate) fn take_rows() -> Option<Box<super::pg_batch::Rows>> {
    HELD.with_borrow_mut(|h| h.as_mut()?.rows.take())
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

/// Whether `next_id` reserves ids in blocks now (SQLite, in a write transaction).
pub(crate) fn holds_ids(conn: &Conn) -> bool {
    matches!(conn, AnyConnection::Sqlite(_)) && HELD.with_borrow(Option::is_some)
}

/// The next id of `sequence` from the transaction's reserve, if it has one left.
pub(crate) fn take_id(sequence: &str) -> Option<i64> {
    HELD.with_borrow_mut(|h| {
        let ids = h.as_mut()?.ids.iter_mut().find(|i| i.sequence == sequence)?;
        (ids.next <= ids.last).then(|| {
            ids.next += 1;
            ids.next - 1
        })
    })
}

/// Adds `first..=last` (just reserved: it follows what the transaction already had) to the
/// reserve of `sequence` and takes its first id.
pub(crate) fn reserve_ids(sequence: &str, first: i64, last: i64) -> i64 {
    HELD.with_borrow_mut(|h| {
        let Some(held) = h.as_mut() else { return first };
        match held.ids.iter_mut().find(|i| i.sequence == sequence) {
            Some(ids) => {
                ids.next = first + 1;
                ids.last = last;
            }
            None => held.ids.push(Ids { sequence: sequence.to_string(), first, next: first + 1, last }),
        }
        first
    })
}

/// How much is held: a savepoint notes it at its start…
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mark {
    words: usize,
    /// (sequence, next free id).
    ids: Vec<(String, i64)>,
}

#[cfg(test)]
impl Mark {
    pub(crate) fn of_words(words: usize) -> Mark {
        Mark { words, ids: Vec::new() }
    }
}

pub(crate) fn mark() -> Mark {
    HELD.with_borrow(|h| match h {
        Some(held) => {
            Mark { words: held.words.len(), ids: held.ids.iter().map(|i| (i.sequence.clone(), i.next)).collect() }
        }
        None => Mark { words: 0, ids: Vec::new() },
    })
}

/// …and forgets what was held after it when it is rolled back.
pub(crate) fn undo_to(mark: Mark) {
    HELD.with_borrow_mut(|h| {
        if let Some(held) = h {
            held.words.truncate(mark.words);
            for ids in &mut held.ids {
                ids.next = mark.ids.iter().find(|(s, _)| *s == ids.sequence).map_or(ids.first, |(_, next)| *next);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use diesel::prelude::*;

    use crate::store::schema::counters;
    use crate::store::{Store, next_id, savepoint};

    fn counter(store: &Store, name: &str) -> Option<i64> {
        store.read(|c| Ok(counters::table.find(name).select(counters::value).get_result(c).optional()?)).unwrap()
    }

    #[test]
    fn ids_taken_in_blocks_have_no_gaps_and_a_rolled_back_savepoint_gives_its_own_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_and_migrate(&format!("sqlite://{}", dir.path().join("g.db").display()), 2).unwrap();
        let ids = store
            .write(|c| {
                let mut ids = vec![next_id(c, "ticket")?];
                let failed: anyhow::Result<()> = savepoint(c, |c| {
                    next_id(c, "ticket")?;
                    next_id(c, "ticket")?;
                    anyhow::bail!("this mail goes to quarantine")
                });
                assert!(failed.is_err());
                // More than a block, across the savepoints of many mails.
                for _ in 0..150 {
                    ids.push(savepoint(c, |c| next_id(c, "ticket"))?);
                }
                Ok(ids)
            })
            .unwrap();
        assert_eq!(ids, (1..=151).collect::<Vec<i64>>(), "no gap, the undone ids taken again");
        assert_eq!(counter(&store, "ticket"), Some(151), "the counter says the last id used");

        // A transaction that fails takes nothing; outside a transaction, one id at a time.
        let failed: anyhow::Result<()> = store.write(|c| {
            next_id(c, "ticket")?;
            anyhow::bail!("rolled back")
        });
        assert!(failed.is_err());
        assert_eq!(counter(&store, "ticket"), Some(151));
        assert_eq!(store.read(|c| next_id(c, "ticket")).unwrap(), 152);
        assert_eq!(store.write(|c| next_id(c, "ticket")).unwrap(), 153);
        assert_eq!(counter(&store, "ticket"), Some(153));

        // A sequence's first block reserved in a savepoint that is rolled back: its counter row
        // goes with it, and is written again at COMMIT.
        store
            .write(|c| {
                let failed: anyhow::Result<i64> = savepoint(c, |c| {
                    next_id(c, "outbox")?;
                    anyhow::bail!("quarantined")
                });
                assert!(failed.is_err());
                assert_eq!(next_id(c, "outbox")?, 1);
                Ok(())
            })
            .unwrap();
        assert_eq!(counter(&store, "outbox"), Some(1));
        assert_eq!(store.write(|c| next_id(c, "outbox")).unwrap(), 2);
    }
}
