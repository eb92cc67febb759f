//! The statements of a held batch: its rows written a table at a time, and the lookups asked
//! once per batch (PostgreSQL only; without the feature, stand-ins that are never reached).

#[cfg(feature = "postgres")]
use super::*;

#[cfg(feature = "postgres")]
pub(super) fn write_raws(conn: &mut crate::store::Conn, raws: &[Raw]) -> anyhow::Result<()> {
    use crate::store::schema::raw_mails::dsl::*;
    use diesel::prelude::*;
    if raws.is_empty() {
        return Ok(());
    }
    let pg = pg(conn)?;
    let mut start = 0;
    while start < raws.len() {
        // Up to RAW_BYTES per statement, one mail at least.
        let mut end = start + 1;
        let mut bytes = raws[start].data.len();
        while end < raws.len() && bytes + raws[end].data.len() <= RAW_BYTES {
            bytes += raws[end].data.len();
            end += 1;
        }
        let values: Vec<_> = raws[start..end]
            .iter()
            .map(|r| {
                (
                    id.eq(r.id),
                    message_key.eq(r.key.as_str()),
                    source.eq(r.source.as_str()),
                    received_at.eq(r.at),
                    size.eq(r.data.len() as i64),
                    data.eq(r.data.as_slice()),
                    state.eq(r.state),
                    reason.eq(r.reason.as_deref()),
                    ticket_number.eq(r.ticket),
                )
            })
            .collect();
        diesel::insert_into(raw_mails).values(values).execute(pg)?;
        start = end;
    }
    Ok(())
}

/// Rows per INSERT at most (PostgreSQL takes 65,535 parameters; messages have 15 columns).
#[cfg(feature = "postgres")]
const ROWS: usize = 1000;

#[cfg(feature = "postgres")]
pub(super) fn write_rest(conn: &mut crate::store::Conn, rows: &Rows) -> anyhow::Result<()> {
    use diesel::prelude::*;
    use diesel::sql_types::{Array, BigInt, Text};

    let pg = pg(conn)?;
    let started = std::time::Instant::now();
    let ms = |t: std::time::Instant| t.elapsed().as_secs_f64() * 1e3;
    for chunk in rows.messages.chunks(ROWS) {
        diesel::insert_into(crate::store::schema::messages::table).values(chunk).execute(pg)?;
    }
    for chunk in rows.blobs.chunks(ROWS) {
        use crate::store::schema::blobs::dsl::*;
        let values: Vec<_> = chunk
            .iter()
            .map(|b| {
                (
                    sha256.eq(b.sha256.as_str()),
                    size.eq(b.size),
                    data.eq(b.data.as_slice()),
                    raw_mail_id.eq(b.raw_mail_id),
                    raw_start.eq(b.raw_start),
                    raw_end.eq(b.raw_end),
                )
            })
            .collect();
        diesel::insert_into(blobs).values(values).on_conflict_do_nothing().execute(pg)?;
    }
    for chunk in rows.attachments.chunks(ROWS) {
        diesel::insert_into(crate::store::schema::attachments::table).values(chunk).execute(pg)?;
    }
    for chunk in rows.threads.chunks(ROWS) {
        use crate::store::schema::thread_ids::dsl::*;
        let values: Vec<_> =
            chunk.iter().map(|(mid, number)| (message_id.eq(mid.as_str()), ticket_number.eq(*number))).collect();
        diesel::insert_into(thread_ids).values(values).on_conflict_do_nothing().execute(pg)?;
    }
    let before_words = std::time::Instant::now();
    let small_ms = ms(started);
    if !rows.words.is_empty() {
        // The same expression as `search_index::insert`, over the batch's messages at once (their
        // words made by `search_index::lexemes` when held).
        let (ids, words): (Vec<i64>, Vec<&str>) = rows.words.iter().map(|(id, w)| (*id, w.as_str())).unzip();
        diesel::sql_query(
            "INSERT INTO message_search (message_id, tsv) \
             SELECT id, array_to_tsvector(string_to_array(w, ' ')) FROM unnest($1, $2) AS u(id, w)",
        )
        .bind::<Array<BigInt>, _>(ids)
        .bind::<Array<Text>, _>(words)
        .execute(pg)?;
    }
    let words_ms = ms(before_words);
    let before_outbox = std::time::Instant::now();
    for chunk in rows.outbox.chunks(ROWS) {
        diesel::insert_into(crate::store::schema::outbox::table).values(chunk).execute(pg)?;
    }
    tracing::debug!(small_ms, words_ms, outbox_ms = ms(before_outbox), "batch rows: messages…threads, words, outbox");
    Ok(())
}

#[cfg(feature = "postgres")]
pub(super) fn db_known_keys(conn: &mut crate::store::Conn, keys: &[String]) -> anyhow::Result<Vec<String>> {
    use crate::store::schema::raw_mails::dsl::*;
    use diesel::prelude::*;
    Ok(raw_mails.filter(message_key.eq_any(keys)).select(message_key).load(pg(conn)?)?)
}

#[cfg(feature = "postgres")]
pub(super) fn db_threads(conn: &mut crate::store::Conn, ids: &[String]) -> anyhow::Result<Vec<(String, i64)>> {
    use crate::store::schema::thread_ids::dsl::*;
    use diesel::prelude::*;
    Ok(thread_ids.filter(message_id.eq_any(ids)).select((message_id, ticket_number)).load(pg(conn)?)?)
}

#[cfg(feature = "postgres")]
pub(super) fn db_undeliverable(
    conn: &mut crate::store::Conn,
    addresses: &[String],
) -> anyhow::Result<Vec<(String, i64)>> {
    use crate::store::schema::undeliverable::dsl::*;
    use diesel::prelude::*;
    Ok(undeliverable.filter(address.eq_any(addresses)).select((address, until_at)).load(pg(conn)?)?)
}

#[cfg(feature = "postgres")]
pub(super) fn db_automatic(
    conn: &mut crate::store::Conn,
    recipients: &[String],
    since: i64,
) -> anyhow::Result<Vec<(String, i64)>> {
    use crate::store::schema::outbox::dsl::*;
    use diesel::prelude::*;
    Ok(outbox
        .filter(recipient.eq_any(recipients))
        .filter(automatic.eq(true))
        .filter(created_at.ge(since))
        .group_by(recipient)
        .select((recipient, diesel::dsl::count_star()))
        .load(pg(conn)?)?)
}

#[cfg(feature = "postgres")]
pub(super) fn db_references(conn: &mut crate::store::Conn, number: i64) -> anyhow::Result<Vec<(i64, String)>> {
    use crate::store::schema::messages::dsl::*;
    use diesel::prelude::*;
    Ok(messages
        .filter(ticket_number.eq(number))
        .filter(mail_message_id.is_not_null())
        .order(id)
        .select((id, mail_message_id.assume_not_null()))
        .load(pg(conn)?)?)
}

#[cfg(not(feature = "postgres"))]
mod sqlite_only {
    //! Without the `postgres` feature nothing is ever held ([`super::super::begin`] refuses SQLite).
    use super::super::{Raw, Rows};
    type C = crate::store::Conn;
    const NEVER: &str = "rows are held on PostgreSQL only";
    pub(in crate::store::pg_batch) fn write_raws(_: &mut C, raws: &[Raw]) -> anyhow::Result<()> {
        if raws.is_empty() { Ok(()) } else { anyhow::bail!(NEVER) }
    }
    pub(in crate::store::pg_batch) fn write_rest(_: &mut C, _: &Rows) -> anyhow::Result<()> {
        Ok(())
    }
    pub(in crate::store::pg_batch) fn db_known_keys(_: &mut C, _: &[String]) -> anyhow::Result<Vec<String>> {
        anyhow::bail!(NEVER)
    }
    pub(in crate::store::pg_batch) fn db_threads(_: &mut C, _: &[String]) -> anyhow::Result<Vec<(String, i64)>> {
        anyhow::bail!(NEVER)
    }
    pub(in crate::store::pg_batch) fn db_undeliverable(_: &mut C, _: &[String]) -> anyhow::Result<Vec<(String, i64)>> {
        anyhow::bail!(NEVER)
    }
    pub(in crate::store::pg_batch) fn db_automatic(
        _: &mut C,
        _: &[String],
        _: i64,
    ) -> anyhow::Result<Vec<(String, i64)>> {
        anyhow::bail!(NEVER)
    }
    pub(in crate::store::pg_batch) fn db_references(_: &mut C, _: i64) -> anyhow::Result<Vec<(i64, String)>> {
        anyhow::bail!(NEVER)
    }
}
#[cfg(not(feature = "postgres"))]
pub(super) use sqlite_only::*;
