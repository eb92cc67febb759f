//! The keyword index of messages (FTS5 on SQLite, a tsvector table on PostgreSQL).
//!
//! On SQLite, a write transaction's new messages are indexed together just before COMMIT
//! (`store::held`). On PostgreSQL the words are made here ([`lexemes`]) and stored with
//! `array_to_tsvector`: PostgreSQL's own parser (`to_tsvector`) cost 0.74 ms of the backend's CPU
//! per message of 9 kB, most of an ingest batch's flush, where `array_to_tsvector` of the words
//! costs 0.013 ms, and folding them here 0.5 % of a drain's CPU samples (BENCHMARKS.md, "Ingest",
//! tenth round). A search folds its words the same way ([`tsquery`]), so what is indexed and what
//! is asked agree.

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
                "INSERT INTO message_search (message_id, tsv) VALUES ($1, array_to_tsvector(string_to_array($2, ' ')))",
            )
            .bind::<BigInt, _>(id)
            .bind::<Text, _>(lexemes(text))
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

/// Whether `c` belongs to a word: letters, digits and the marks that write some languages'
/// vowels (Devanagari, Thai…). Everything else separates words.
pub fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || unicode_normalization::char::is_combining_mark(c)
}

/// Words longer than this many bytes are not indexed (hashes, base64): PostgreSQL's own parser
/// dropped those over 2,047.
const LONGEST_WORD: usize = 255;
/// A tsvector holds at most 1 MiB of words: a text with more distinct words (a log dump) keeps
/// its first ones. Counted with 8 bytes of overhead a word, as the migration that re-indexed the
/// old rows (`postgres/2026-12-08-000000_search_words`) counts them.
const WORD_BYTES: usize = 1_000_000;

/// The distinct words of `text` for PostgreSQL's index, space-separated, in order of first
/// appearance: lower-case, with accents dropped and ligatures opened (NFKD, then `œ` → `oe`,
/// `ß` → `ss`… as PostgreSQL's `unaccent` does), split at every character that is not part of a
/// word ([`is_word_char`]).
pub fn lexemes(text: &str) -> String {
    let folded = fold(text);
    let mut seen = std::collections::HashSet::new();
    let mut out = String::new();
    let mut bytes = 0;
    for word in folded.split(' ').filter(|w| !w.is_empty() && w.len() <= LONGEST_WORD) {
        if bytes + word.len() + 8 > WORD_BYTES {
            break;
        }
        if seen.insert(word) {
            bytes += word.len() + 8;
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(word);
        }
    }
    out
}

/// A search's words as a PostgreSQL `tsquery` (`'w1' & 'w2'`): folded as [`lexemes`], all
/// required. The words are letters and digits only, so no query syntax gets through.
pub fn tsquery(words: &str) -> String {
    lexemes(words).split(' ').filter(|w| !w.is_empty()).map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" & ")
}

/// `text` lower-cased and folded, each run of non-word characters one space.
fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let separate = |out: &mut String| {
        if !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
    };
    for c in text.chars() {
        if c.is_ascii() {
            if c.is_ascii_alphanumeric() {
                out.push(c.to_ascii_lowercase());
            } else {
                separate(&mut out);
            }
            continue;
        }
        if !is_word_char(c) {
            separate(&mut out);
            continue;
        }
        unicode_normalization::char::decompose_compatible(c, |d| {
            if unicode_normalization::char::is_combining_mark(d) {
                return;
            }
            if !d.is_alphanumeric() {
                return separate(&mut out);
            }
            for l in d.to_lowercase() {
                match l {
                    'œ' => out.push_str("oe"),
                    'æ' => out.push_str("ae"),
                    'ß' => out.push_str("ss"),
                    'ø' => out.push('o'),
                    'đ' | 'ð' => out.push('d'),
                    'ł' => out.push('l'),
                    'þ' => out.push_str("th"),
                    'ı' => out.push('i'),
                    l => out.push(l),
                }
            }
        });
    }
    out
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
    fn words_are_folded_split_and_counted_once() {
        assert_eq!(
            lexemes("Élève, ÉLÈVE; l'œuvre de Strauß à Łódź — 3.14 jean-pierre@exemple.fr"),
            "eleve l oeuvre de strauss a lodz 3 14 jean pierre exemple fr"
        );
        // Composed or not, the same word; full-width letters and ligatures as plain ones.
        assert_eq!(lexemes("cafe\u{301} café ｃａｆｅ ﬁn"), "cafe fin");
        // Marks that write vowels stay inside their word (then dropped, on both sides alike).
        assert_eq!(lexemes("किताब पढ़ो"), lexemes("किताब पढ़ो"));
        assert_eq!(lexemes("किताब").split(' ').count(), 1);
        assert_eq!(lexemes(&format!("a {} b", "x".repeat(300))), "a b");
        assert_eq!(lexemes(" ,; "), "");
        let many: String = (0..200_000).map(|i| format!("w{i} ")).collect();
        let kept = lexemes(&many);
        assert!(kept.split(' ').map(|w| w.len() + 8).sum::<usize>() <= WORD_BYTES);
        assert!(kept.starts_with("w0 w1 w2 "));
        assert_eq!(tsquery("\"Imprimante\" \"bloquée\""), "'imprimante' & 'bloquee'");
        assert_eq!(tsquery("\"'\" \"&\""), "");
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
