//! The keyword index of messages (FTS5 on SQLite, a tsvector table on PostgreSQL).
//!
//! On SQLite, a write transaction's new messages are indexed together just before COMMIT
//! (`store::held`).

use diesel::prelude::*;

use super::{AnyConnection, Conn};

/// Adds a message's words to the index, now or (in a SQLite write transaction) at its commit.
pub(crate) fn add(conn: &mut Conn, id: i64, text: String) -> anyhow::Result<()> {
    // PostgreSQL: in an ingest batch, with the batch's other messages (`store::pg_batch`).
    let Some(text) = super::pg_batch::hold_words(id, text) else { return Ok(()) };
    match super::held::hold_words(conn, id, text) {
        Some(text) => insert(conn, id, &text),
        None => Ok(()),
    }
}

pub(super) fn insert(conn: &mut Conn, id: i64, text: &str) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use diesel::sql_types::BigInt;

    use super::*;
    use crate::store::held::mark;
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
                assert_eq!(mark(), crate::store::held::Mark::of_words(2), "held until commit");
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
        assert_eq!(mark(), crate::store::held::Mark::of_words(0));
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
