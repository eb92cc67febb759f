//! Copies a whole installation from one database to another (SQLite → PostgreSQL, or back):
//! every ticket, message, attachment, raw mail, notification and cursor. The keyword index is
//! rebuilt on the target. Login tokens, sessions and rate-limit events are not copied (people
//! log in again).

use anyhow::bail;
use diesel::prelude::*;

use super::{Conn, Store, schema, write_tx};

/// Rows copied per round trip (raw mails and blobs can be megabytes each).
const CHUNK: i64 = 200;

macro_rules! copy_table {
    ($src:expr, $dst:expr, $table:ident, ($($col:ident: $ty:ty),+ $(,)?)) => {{
        use schema::$table::dsl as t;
        let mut copied = 0usize;
        let mut offset = 0i64;
        loop {
            let rows: Vec<($($ty,)+)> = schema::$table::table
                .select(($(t::$col,)+))
                .order(diesel::Table::primary_key(&schema::$table::table))
                .limit(CHUNK)
                .offset(offset)
                .load($src)?;
            if rows.is_empty() {
                break;
            }
            offset += rows.len() as i64;
            write_tx($dst, |dst| {
                for ($($col,)+) in &rows {
                    diesel::insert_into(schema::$table::table).values(($(t::$col.eq($col),)+)).execute(dst)?;
                }
                Ok(())
            })?;
            copied += rows.len();
        }
        (stringify!($table), copied)
    }};
}

/// Copies everything from `from` into the empty, migrated `to`; returns (table, rows) counts.
pub fn copy_all(from: &Store, to: &Store) -> anyhow::Result<Vec<(&'static str, usize)>> {
    let mut src = from.conn()?;
    let mut dst = to.conn()?;
    let src: &mut Conn = &mut src;
    let dst: &mut Conn = &mut dst;
    let existing: i64 = schema::raw_mails::table.count().get_result(dst)?;
    let tickets: i64 = schema::tickets::table.count().get_result(dst)?;
    if existing > 0 || tickets > 0 {
        bail!(
            "the target database is not empty ({tickets} tickets, {existing} raw mails): refusing to mix installations"
        );
    }
    // The target's own fresh secret and counters give way to the source's.
    diesel::delete(schema::meta::table).execute(dst)?;
    diesel::delete(schema::counters::table).execute(dst)?;
    let counts = vec![
        copy_table!(src, dst, meta, (key: String, value: String)),
        copy_table!(src, dst, counters, (name: String, value: i64)),
        copy_table!(src, dst, raw_mails, (id: i64, message_key: String, source: String, received_at: i64, size: i64,
            data: Vec<u8>, state: String, reason: Option<String>, ticket_number: Option<i64>)),
        copy_table!(src, dst, tickets, (number: i64, subject: String, status: String, priority: String, requester: String,
            company: Option<String>, product: Option<String>, service: Option<String>, unverified: bool,
            refers_to: Option<i64>, created_at: i64, updated_at: i64, closed_at: Option<i64>, assignee: Option<String>,
            queue: Option<String>, waiting_since: Option<i64>)),
        copy_table!(src, dst, watchers, (ticket_number: i64, address: String)),
        copy_table!(src, dst, messages, (id: i64, ticket_number: i64, kind: String, from_addr: String,
            from_name: Option<String>, at: i64, subject: String, text: String, full_text: String, html: Option<String>,
            mail_message_id: Option<String>, raw_mail_id: Option<i64>, auto: bool, refused: String, unverified: bool,
            event: Option<String>)),
        copy_table!(src, dst, thread_ids, (message_id: String, ticket_number: i64)),
        copy_table!(src, dst, blobs, (sha256: String, size: i64, data: Vec<u8>, raw_mail_id: Option<i64>,
            raw_start: Option<i64>, raw_end: Option<i64>)),
        copy_table!(src, dst, attachments, (id: i64, message_id: i64, blob_sha256: String, name: String,
            content_type: String, size: i64, content_id: Option<String>, inline: bool)),
        copy_table!(src, dst, outbox, (id: i64, ticket_number: Option<i64>, event: String, recipient: String,
            envelope_from: String, message_id: String, automatic: bool, data: Vec<u8>, state: String, attempts: i32,
            next_attempt_at: i64, locked_until: i64, last_error: Option<String>, created_at: i64, sent_at: Option<i64>)),
        copy_table!(src, dst, undeliverable, (address: String, until_at: i64, reason: String)),
        copy_table!(src, dst, mailbox_state, (name: String, uidvalidity: Option<i64>, last_uid: i64, server_count: i64,
            ingested: i64, quarantined: i64, last_poll: Option<i64>, last_error: Option<String>,
            lease_holder: Option<String>, lease_until: i64, last_success: Option<i64>, failing_since: Option<i64>)),
        copy_table!(src, dst, reads, (email: String, ticket_number: i64, read_at: i64)),
        copy_table!(src, dst, saved_criteria, (email: String, query: String)),
        copy_table!(src, dst, timers, (ticket_number: i64, kind: String, due_at: i64, fired_at: Option<i64>)),
        copy_table!(src, dst, oauth_tokens, (username: String, refresh_token: String, updated_at: i64)),
    ];
    reindex(dst)?;
    resync_ids(dst)?;
    Ok(counts)
}

/// New ids on the target go on after the highest copied, whichever way the source issued them
/// (a PostgreSQL source's sequences are not in its `counters` table): the counters rows, and
/// on PostgreSQL the sequences of [`super::PG_SEQUENCES`].
fn resync_ids(conn: &mut Conn) -> anyhow::Result<()> {
    use diesel::dsl::max;
    use schema::counters::dsl as c;
    let highest = [
        ("raw_mail", schema::raw_mails::table.select(max(schema::raw_mails::id)).get_result::<Option<i64>>(conn)?),
        ("ticket", schema::tickets::table.select(max(schema::tickets::number)).get_result::<Option<i64>>(conn)?),
        ("message", schema::messages::table.select(max(schema::messages::id)).get_result::<Option<i64>>(conn)?),
        (
            "attachment",
            schema::attachments::table.select(max(schema::attachments::id)).get_result::<Option<i64>>(conn)?,
        ),
        ("outbox", schema::outbox::table.select(max(schema::outbox::id)).get_result::<Option<i64>>(conn)?),
    ];
    write_tx(conn, |conn| {
        for (name, top) in highest {
            let counted: Option<i64> = c::counters.find(name).select(c::value).get_result(conn).optional()?;
            let last = top.unwrap_or(0).max(counted.unwrap_or(0));
            diesel::delete(c::counters.find(name)).execute(conn)?;
            diesel::insert_into(c::counters).values((c::name.eq(name), c::value.eq(last))).execute(conn)?;
            #[cfg(feature = "postgres")]
            if let super::AnyConnection::Postgresql(pg) = conn {
                use diesel::connection::SimpleConnection;
                pg.batch_execute(&format!("SELECT setval('guichet_id_{name}', {}, false)", last + 1))?;
            }
        }
        Ok(())
    })
}

/// Rebuilds the keyword index from the messages (the index is backend-specific).
fn reindex(conn: &mut Conn) -> anyhow::Result<()> {
    let mut offset = 0i64;
    loop {
        let rows: Vec<(i64, String, String)> = schema::messages::table
            .select((schema::messages::id, schema::messages::subject, schema::messages::full_text))
            .order(schema::messages::id)
            .limit(CHUNK)
            .offset(offset)
            .load(conn)?;
        if rows.is_empty() {
            return Ok(());
        }
        offset += rows.len() as i64;
        write_tx(conn, |c| {
            for (id, subject, text) in &rows {
                super::search_index::add(c, *id, format!("{subject}\n{text}"))?;
            }
            Ok(())
        })?;
    }
}
