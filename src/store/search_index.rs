//! The keyword index of messages (FTS5 on SQLite, a tsvector table on PostgreSQL).
//!
//! On SQLite, a write transaction's new messages are indexed together just before COMMIT rather
//! than one by one: FTS5 writes its pending terms out as a new segment at every savepoint, and
//! the ingest opens one per mail, so indexing each message as it was stored made a segment per
//! mail and kept FTS5 merging them (18 % of a batch transaction's CPU, measured; BENCHMARKS.md).
//! A message whose savepoint is rolled back is dropped from the pending list with it.

use std::cell::RefCell;

use diesel::prelude::*;

use super::{AnyConnection, Conn};

thread_local! {
    /// `Some` inside a SQLite write transaction of this thread: the (message id, text) to index.
    static PENDING: RefCell<Option<Vec<(i64, String)>>> = const { RefCell::new(None) };
}

/// Adds a message's words to the index, now or (in a SQLite write transaction) at its commit.
pub(crate) fn add(conn: &mut Conn, id: i64, text: String) -> anyhow::Result<()> {
    let held = PENDING.with_borrow_mut(|p| match p {
        Some(pending) if matches!(conn, AnyConnection::Sqlite(_)) => {
            pending.push((id, text));
            None
        }
        _ => Some(text),
    });
    match held {
        Some(text) => insert(conn, id, &text),
        None => Ok(()),
    }
}

fn insert(conn: &mut Conn, id: i64, text: &str) -> anyhow::Result<()> {
    use diesel::sql_types::{BigInt, Text};
    match conn {
        #[cfg(feature = "postgres")]
        AnyConnection::Postgresql(pg) => {
            diesel::sql_query(
                "INSERT INTO message_search (message_id, tsv) VALUES ($1, to_tsvector('simple', unaccent_simple($2)))",
            )
            .bind::<BigInt, _>(id)
            .bind::<Text, _>(text)
            .execute(pg)?;
        }
        AnyConnection::Sqlite(sqlite) => {
            diesel::sql_query("INSERT INTO message_search (rowid, text) VALUES (?, ?)")
                .bind::<BigInt, _>(id)
                .bind::<Text, _>(text)
                .execute(sqlite)?;
        }
    }
    Ok(())
}

/// Holds the index's additions for the transaction that `begin` was called in; dropped (commit
/// or not), nothing of it is held any more.
pub(crate) struct Deferred {
    /// Whether this transaction holds its additions (SQLite).
    holds: bool,
    /// What an enclosing transaction of this thread (another connection) was holding, given back
    /// when this one ends.
    outer: Option<Vec<(i64, String)>>,
}

impl Deferred {
    /// Called right after BEGIN.
    pub(crate) fn begin(conn: &Conn) -> Deferred {
        if !matches!(conn, AnyConnection::Sqlite(_)) {
            return Deferred { holds: false, outer: None };
        }
        Deferred { holds: true, outer: PENDING.replace(Some(Vec::new())) }
    }

    /// Called right before COMMIT: indexes what was held, in one run of statements (one FTS5
    /// segment).
    pub(crate) fn flush(&self, conn: &mut Conn) -> anyhow::Result<()> {
        if !self.holds {
            return Ok(());
        }
        let pending = PENDING.with_borrow_mut(|p| p.as_mut().map(std::mem::take).unwrap_or_default());
        for (id, text) in &pending {
            insert(conn, *id, text)?;
        }
        Ok(())
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        if self.holds {
            PENDING.set(self.outer.take());
        }
    }
}

/// How many additions are held: a savepoint notes it at its start…
pub(crate) fn mark() -> usize {
    PENDING.with_borrow(|p| p.as_ref().map_or(0, Vec::len))
}

/// …and forgets the ones made after it when it is rolled back.
pub(crate) fn undo_to(mark: usize) {
    PENDING.with_borrow_mut(|p| {
        if let Some(pending) = p {
            pending.truncate(mark);
        }
    });
}

#[cfg(test)]
mod tests {
    use diesel::sql_types::BigInt;

    use super::*;
    use crate::store::{Store, savepoint};

    #[derive(QueryableByName)]
    struct Hit {
        #[diesel(sql_type = BigInt)]
        rowid: i64,
    }

    fn found(store: &Store, word: &str) -> Vec<i64> {
        store
            .read(|c| {
                let q = format!("SELECT rowid FROM message_search WHERE message_search MATCH '{word}' ORDER BY rowid");
                let hits = match c {
                    AnyConnection::Sqlite(c) => diesel::sql_query(q).load::<Hit>(c)?,
                    #[cfg(feature = "postgres")]
                    _ => unreachable!("a SQLite store"),
                };
                Ok(hits.into_iter().map(|h| h.rowid).collect())
            })
            .unwrap()
    }

    #[test]
    fn held_words_are_indexed_at_commit_and_a_rolled_back_savepoint_takes_its_own_away() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_and_migrate(&format!("sqlite://{}", dir.path().join("g.db").display()), 2).unwrap();
        store
            .write(|c| {
                add(c, 1, "imprimante kept".into())?;
                let failed: anyhow::Result<()> = savepoint(c, |c| {
                    add(c, 2, "imprimante undone".into())?;
                    anyhow::bail!("this mail goes to quarantine")
                });
                assert!(failed.is_err());
                savepoint(c, |c| add(c, 3, "imprimante later".into()))?;
                assert_eq!(mark(), 2, "held until commit");
                Ok(())
            })
            .unwrap();
        assert_eq!(found(&store, "imprimante"), vec![1, 3]);
        assert_eq!(found(&store, "undone"), Vec::<i64>::new());
        // A transaction that fails indexes nothing, and leaves nothing held behind it.
        let failed: anyhow::Result<()> = store.write(|c| {
            add(c, 4, "imprimante rolled".into())?;
            anyhow::bail!("disk full")
        });
        assert!(failed.is_err());
        assert_eq!(mark(), 0);
        assert_eq!(found(&store, "rolled"), Vec::<i64>::new());
        // A transaction on another database, inside this one's, indexes its own words into its own.
        let other = Store::open_and_migrate(&format!("sqlite://{}", dir.path().join("h.db").display()), 2).unwrap();
        store
            .write(|c| {
                add(c, 6, "outer".into())?;
                other.write(|o| add(o, 7, "inner".into()))?;
                add(c, 8, "outer".into())
            })
            .unwrap();
        assert_eq!((found(&store, "outer"), found(&store, "inner")), (vec![6, 8], vec![]));
        assert_eq!(found(&other, "inner"), vec![7]);
        // Outside a transaction, words go in at once.
        store.read(|c| add(c, 5, "imprimante direct".into())).unwrap();
        assert_eq!(found(&store, "direct"), vec![5]);
    }
}
