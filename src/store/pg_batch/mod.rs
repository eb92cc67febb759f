//! PostgreSQL: an ingest batch written with a few statements per table instead of a few per mail.
//!
//! Written statement by statement, a mail cost ~21 round trips to PostgreSQL (BENCHMARKS.md,
//! "PostgreSQL and two daemons"), each one waking the daemon and a backend in turn. When a batch
//! is written without savepoints (`desk::inbound::Isolation::Batch`), the rows that the batch does
//! not read back through SQL — raw mails, messages, their files and blobs, thread ids, the
//! keyword index, queued notifications — are kept here and inserted just before COMMIT, one
//! multi-row INSERT per table ([`flush`]). What the batch does read back of them is answered from
//! here, together with lookups made once for the whole batch ([`prefetch`]): whether a mail's key
//! is already ingested, which ticket a Message-ID belongs to, the Message-IDs of a ticket for
//! References, how many automatic mails an address was sent, whether it is undeliverable. The ids
//! of raw mails, messages, files and notifications come from their sequences in blocks (unused
//! ones are skipped, as a rollback skips them); ticket numbers still come one by one.
//!
//! A lookup answered here is the database as it was at the batch's start plus the batch's own
//! rows: another daemon's commit in between is seen by the next batch (the per-mail statements
//! it replaces could miss it just as well, by a few milliseconds). Should the flush fail (a row
//! PostgreSQL refuses), the caller writes the batch again with a savepoint per mail and none of
//! this, so that the mail at fault goes to quarantine alone.
// Without the `postgres` feature nothing is held, and the rows' fields are never read.
#![cfg_attr(not(feature = "postgres"), allow(dead_code))]

use std::collections::{HashMap, HashSet};

use super::held;
use super::messages::{AttachmentRow, MessageRow};
use super::outbox::OutboxRow;

mod sql;
use sql::*;

/// A raw mail row (`raw::NewRaw`, owned).
pub(crate) struct Raw {
    pub id: i64,
    pub key: String,
    pub source: String,
    pub at: i64,
    pub data: Vec<u8>,
    pub state: &'static str,
    pub reason: Option<String>,
    pub ticket: Option<i64>,
}

pub(crate) struct Blob {
    pub sha256: String,
    pub size: i64,
    pub data: Vec<u8>,
    pub raw_mail_id: Option<i64>,
    pub raw_start: Option<i64>,
    pub raw_end: Option<i64>,
}

/// Raw mails are inserted once this many bytes are held (memory stays bounded; a batch is up to
/// 32 MB of mail).
const RAW_BYTES: usize = 8 << 20;

/// What a batch holds: rows to insert, and what it knows of the database.
#[derive(Default)]
pub(crate) struct Rows {
    /// Ids reserved at once per sequence (the batch's size).
    block: i64,
    /// Free reserved ids per sequence, the next one last.
    ids: HashMap<&'static str, Vec<i64>>,
    raws: Vec<Raw>,
    raw_bytes: usize,
    /// Keys of the raw mails written by this batch.
    keys: HashSet<String>,
    /// Keys looked up in the database, and those found.
    asked_keys: HashSet<String>,
    known_keys: HashSet<String>,
    messages: Vec<MessageRow>,
    attachments: Vec<AttachmentRow>,
    blobs: Vec<Blob>,
    blob_shas: HashSet<String>,
    /// Thread ids to insert (`ON CONFLICT DO NOTHING`: an existing one wins, as before), and the
    /// same as a map.
    threads: Vec<(String, i64)>,
    threads_held: HashMap<String, i64>,
    /// Thread ids looked up in the database: the ticket, or none.
    threads_db: HashMap<String, Option<i64>>,
    /// Messages' ids and their distinct words, space-separated (`search_index::lexemes`).
    words: Vec<(i64, String)>,
    outbox: Vec<OutboxRow>,
    /// Addresses looked up in `undeliverable`: until when, or not there.
    undeliverable: HashMap<String, Option<i64>>,
    /// Automatic mails in the database per (recipient, since).
    automatic_db: HashMap<(String, i64), i64>,
    /// A ticket's (message id, Message-ID) in the database, by id.
    references_db: HashMap<i64, Vec<(i64, String)>>,
    /// Tickets opened by this batch: nothing of theirs is in the database yet.
    new_tickets: HashSet<i64>,
}

/// Starts holding rows for the write transaction of this thread (PostgreSQL only; `block`: about
/// how many mails the batch holds). False when nothing is held (SQLite, no transaction).
pub(crate) fn begin(conn: &super::Conn, block: usize) -> bool {
    if matches!(conn, super::AnyConnection::Sqlite(_)) {
        return false;
    }
    held::set_rows(Box::new(Rows { block: block.clamp(16, 1000) as i64, ..Rows::default() }))
}

/// Whether this thread's transaction holds rows.
pub(crate) fn active() -> bool {
    held::with_rows(|_| ()).is_some()
}

fn with<T>(f: impl FnOnce(&mut Rows) -> T) -> Option<T> {
    held::with_rows(f)
}

/// The next id of `sequence` from the batch's reserve (`None`: not held, or a ticket number).
pub(crate) fn next_id(conn: &mut super::Conn, sequence: &str) -> anyhow::Result<Option<i64>> {
    let Some(sequence) = ["raw_mail", "message", "attachment", "outbox"].into_iter().find(|s| *s == sequence) else {
        return Ok(None);
    };
    let Some(block) = with(|r| r.ids.get_mut(sequence).and_then(Vec::pop).ok_or(r.block)) else {
        return Ok(None);
    };
    match block {
        Ok(id) => Ok(Some(id)),
        Err(block) => {
            let mut ids = reserve(conn, sequence, block)?;
            ids.reverse();
            let id = ids.pop().ok_or_else(|| anyhow::anyhow!("no id reserved for {sequence}"))?;
            with(|r| r.ids.insert(sequence, ids));
            Ok(Some(id))
        }
    }
}

#[cfg(feature = "postgres")]
fn reserve(conn: &mut super::Conn, sequence: &str, n: i64) -> anyhow::Result<Vec<i64>> {
    use diesel::prelude::*;
    use diesel::sql_types::BigInt;
    #[derive(QueryableByName)]
    struct Next {
        #[diesel(sql_type = BigInt)]
        value: i64,
    }
    let pg = pg(conn)?;
    let ids: Vec<Next> =
        diesel::sql_query(format!("SELECT nextval('guichet_id_{sequence}') AS value FROM generate_series(1, $1)"))
            .bind::<BigInt, _>(n)
            .load(pg)?;
    Ok(ids.into_iter().map(|n| n.value).collect())
}

#[cfg(not(feature = "postgres"))]
fn reserve(_: &mut super::Conn, _: &str, _: i64) -> anyhow::Result<Vec<i64>> {
    anyhow::bail!("rows are held on PostgreSQL only")
}

#[cfg(feature = "postgres")]
fn pg(conn: &mut super::Conn) -> anyhow::Result<&mut diesel::PgConnection> {
    match conn {
        super::AnyConnection::Postgresql(pg) => Ok(pg),
        super::AnyConnection::Sqlite(_) => anyhow::bail!("rows are held on PostgreSQL only"),
    }
}

/// Whether a mail's key is ingested, if the batch knows (`None`: ask the database).
pub(crate) fn known_key(key: &str) -> Option<bool> {
    with(|r| {
        if r.keys.contains(key) || r.known_keys.contains(key) {
            Some(true)
        } else if r.asked_keys.contains(key) {
            Some(false)
        } else {
            None
        }
    })
    .flatten()
}

/// Holds a raw mail row; false when rows are not held. Inserts the held raw mails once they
/// weigh RAW_BYTES.
pub(crate) fn hold_raw(conn: &mut super::Conn, raw: Raw) -> anyhow::Result<bool> {
    let full = with(move |r| {
        r.keys.insert(raw.key.clone());
        r.raw_bytes += raw.data.len();
        r.raws.push(raw);
        r.raw_bytes >= RAW_BYTES
    });
    match full {
        None => Ok(false),
        Some(false) => Ok(true),
        Some(true) => {
            let raws = with(|r| {
                r.raw_bytes = 0;
                std::mem::take(&mut r.raws)
            })
            .unwrap_or_default();
            let started = std::time::Instant::now();
            write_raws(conn, &raws)?;
            tracing::debug!(
                count = raws.len(),
                ms = started.elapsed().as_secs_f64() * 1e3,
                "raw mails written before the flush"
            );
            Ok(true)
        }
    }
}

/// Holds a message row, or gives it back when rows are not held (the caller inserts it).
pub(crate) fn hold_message(message: MessageRow) -> Option<MessageRow> {
    let mut message = Some(message);
    with(|r| r.messages.extend(message.take()));
    message
}

/// Holds a file's attachment row and its blob (unless the batch holds that blob already; one in
/// the database wins at the insert, `ON CONFLICT DO NOTHING`); gives the row back when rows are
/// not held (the caller inserts it and its blob).
pub(crate) fn hold_attachment(attachment: AttachmentRow, blob: impl FnOnce() -> Blob) -> Option<AttachmentRow> {
    let mut attachment = Some(attachment);
    with(|r| {
        let Some(a) = attachment.take() else { return };
        if !r.blob_shas.contains(&a.blob_sha256) {
            r.blob_shas.insert(a.blob_sha256.clone());
            r.blobs.push(blob());
        }
        r.attachments.push(a);
    });
    attachment
}

/// The ticket of a thread id, if the batch knows (`None`: ask the database, then [`note_thread`]).
pub(crate) fn thread_ticket(message_id: &str) -> Option<Option<i64>> {
    with(|r| match r.threads_db.get(message_id) {
        Some(Some(n)) => Some(Some(*n)),
        Some(None) => Some(r.threads_held.get(message_id).copied()),
        None => None,
    })
    .flatten()
}

/// What the database said of a thread id.
pub(crate) fn note_thread(message_id: &str, ticket: Option<i64>) {
    with(|r| r.threads_db.insert(message_id.to_string(), ticket));
}

/// Holds a thread id (kept only if none exists); false when rows are not held.
pub(crate) fn hold_thread_id(message_id: &str, number: i64) -> bool {
    with(|r| {
        if matches!(r.threads_db.get(message_id), Some(Some(_))) || r.threads_held.contains_key(message_id) {
            return;
        }
        r.threads_held.insert(message_id.to_string(), number);
        r.threads.push((message_id.to_string(), number));
    })
    .is_some()
}

/// Holds a message's words; gives them back when rows are not held.
pub(crate) fn hold_words(id: i64, text: String) -> Option<String> {
    let mut text = Some(text);
    with(|r| r.words.extend(text.take().map(|t| (id, super::search_index::lexemes(&t)))));
    text
}

/// Holds a notification row; gives it back when rows are not held (the caller inserts it).
pub(crate) fn hold_outbox(row: OutboxRow) -> Option<OutboxRow> {
    let mut row = Some(row);
    with(|r| r.outbox.extend(row.take()));
    row
}

/// Notes a ticket opened by this batch.
pub(crate) fn note_new_ticket(number: i64) {
    with(|r| r.new_tickets.insert(number));
}

/// A ticket's (message id, Message-ID) with a Message-ID, by id: the database's and the batch's.
/// `None` when rows are not held.
pub(crate) fn thread_references(conn: &mut super::Conn, number: i64) -> anyhow::Result<Option<Vec<String>>> {
    let Some(known) = with(|r| r.new_tickets.contains(&number) || r.references_db.contains_key(&number)) else {
        return Ok(None);
    };
    if !known {
        let rows = db_references(conn, number)?;
        with(|r| r.references_db.insert(number, rows));
    }
    Ok(with(|r| {
        let mut all: Vec<(i64, &str)> = r
            .references_db
            .get(&number)
            .into_iter()
            .flatten()
            .map(|(id, mid)| (*id, mid.as_str()))
            .chain(
                r.messages
                    .iter()
                    .filter(|m| m.ticket_number == number)
                    .filter_map(|m| m.mail_message_id.as_deref().map(|mid| (m.id, mid))),
            )
            .collect();
        all.sort_by_key(|(id, _)| *id);
        all.into_iter().map(|(_, mid)| mid.to_string()).collect()
    }))
}

/// Automatic mails queued for `recipient` since `since`: the database's and the batch's. `None`
/// when rows are not held.
pub(crate) fn automatic_since(conn: &mut super::Conn, recipient: &str, since: i64) -> anyhow::Result<Option<i64>> {
    let key = (recipient.to_string(), since);
    let Some(cached) = with(|r| r.automatic_db.get(&key).copied()) else { return Ok(None) };
    let in_db = match cached {
        Some(n) => n,
        None => {
            let n = db_automatic(conn, &[recipient.to_string()], since)?.into_iter().map(|(_, n)| n).sum();
            with(|r| r.automatic_db.insert(key, n));
            n
        }
    };
    let held = with(|r| {
        r.outbox.iter().filter(|o| o.automatic && o.recipient == recipient && o.created_at >= since).count() as i64
    })
    .unwrap_or(0);
    Ok(Some(in_db + held))
}

/// Whether an address is undeliverable now; `None` when rows are not held.
pub(crate) fn is_undeliverable(conn: &mut super::Conn, address: &str, now: i64) -> anyhow::Result<Option<bool>> {
    let Some(cached) = with(|r| r.undeliverable.get(address).copied()) else { return Ok(None) };
    let until = match cached {
        Some(until) => until,
        None => {
            let until = db_undeliverable(conn, &[address.to_string()])?.into_iter().next().map(|(_, u)| u);
            with(|r| r.undeliverable.insert(address.to_string(), until));
            until
        }
    };
    Ok(Some(until.is_some_and(|u| u > now)))
}

/// An address marked undeliverable by this batch (a delivery report).
pub(crate) fn note_undeliverable(address: &str, until: i64) {
    with(|r| r.undeliverable.insert(address.to_string(), Some(until)));
}

/// What the batch will ask the database, asked at once: which keys are ingested, which tickets
/// these Message-IDs belong to, and of these addresses, which are undeliverable and how many
/// automatic mails each got since `since`. Nothing when rows are not held.
pub(crate) fn prefetch(
    conn: &mut super::Conn,
    keys: Vec<String>,
    message_ids: Vec<String>,
    addresses: Vec<String>,
    since: i64,
) -> anyhow::Result<()> {
    if !active() {
        return Ok(());
    }
    let known = if keys.is_empty() { Vec::new() } else { db_known_keys(conn, &keys)? };
    let threads = if message_ids.is_empty() { Vec::new() } else { db_threads(conn, &message_ids)? };
    let (undeliverable, automatic) = if addresses.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        (db_undeliverable(conn, &addresses)?, db_automatic(conn, &addresses, since)?)
    };
    with(|r| {
        r.asked_keys.extend(keys);
        r.known_keys.extend(known);
        let threads: HashMap<String, i64> = threads.into_iter().collect();
        for mid in message_ids {
            let ticket = threads.get(&mid).copied();
            r.threads_db.insert(mid, ticket);
        }
        let undeliverable: HashMap<String, i64> = undeliverable.into_iter().collect();
        let automatic: HashMap<String, i64> = automatic.into_iter().collect();
        for a in addresses {
            r.undeliverable.insert(a.clone(), undeliverable.get(&a).copied());
            let n = automatic.get(&a).copied().unwrap_or(0);
            r.automatic_db.insert((a, since), n);
        }
    });
    Ok(())
}

/// Inserts what the batch holds, one statement per table (more for raw mails, a few MB each),
/// and holds nothing more.
pub(crate) fn flush(conn: &mut super::Conn) -> anyhow::Result<()> {
    let Some(rows) = held::take_rows() else { return Ok(()) };
    let started = std::time::Instant::now();
    write_raws(conn, &rows.raws)?;
    let raws_ms = started.elapsed().as_secs_f64() * 1e3;
    write_rest(conn, &rows)?;
    tracing::debug!(
        messages = rows.messages.len(),
        raws_ms,
        rest_ms = started.elapsed().as_secs_f64() * 1e3 - raws_ms,
        "batch rows flushed"
    );
    Ok(())
}
