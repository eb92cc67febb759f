//! Raw inbound mails: kept byte for byte, keyed for exactly-once, and the quarantine.

use diesel::prelude::*;
use serde::Serialize;

use super::schema::raw_mails;
use super::{Conn, next_id, pg_batch, rfc3339};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawState {
    Processed,
    Quarantined,
    /// Kept but deliberately not turned into a ticket (our own mail coming back, a stray report).
    Dropped,
}

impl RawState {
    pub fn as_str(self) -> &'static str {
        match self {
            RawState::Processed => "processed",
            RawState::Quarantined => "quarantined",
            RawState::Dropped => "dropped",
        }
    }
}

/// The key of exactly-once: the Message-ID, or a digest of the bytes when there is none.
pub fn message_key(message_id: Option<&str>, raw: &[u8]) -> String {
    use sha2::Digest;
    match message_id {
        Some(id) if !id.trim().is_empty() => format!("mid:{}", id.trim()),
        _ => format!("sha256:{}", hex::encode(sha2::Sha256::digest(raw))),
    }
}

pub fn is_known(conn: &mut Conn, key: &str) -> anyhow::Result<bool> {
    if let Some(known) = pg_batch::known_key(key) {
        return Ok(known);
    }
    let found: Option<i64> =
        raw_mails::table.filter(raw_mails::message_key.eq(key)).select(raw_mails::id).get_result(conn).optional()?;
    Ok(found.is_some())
}

pub fn insert(
    conn: &mut Conn,
    key: &str,
    source: &str,
    data: &[u8],
    state: RawState,
    reason: Option<&str>,
    at: i64,
) -> anyhow::Result<i64> {
    let id = next_id(conn, "raw_mail")?;
    insert_row(conn, &NewRaw { id, key, source, data, state, reason, ticket: None, at })?;
    Ok(id)
}

/// A raw mail row written whole, under an id taken beforehand (`next_id(conn, "raw_mail")`).
pub struct NewRaw<'a> {
    pub id: i64,
    pub key: &'a str,
    pub source: &'a str,
    pub data: &'a [u8],
    pub state: RawState,
    pub reason: Option<&'a str>,
    pub ticket: Option<i64>,
    pub at: i64,
}

/// Inserts a raw mail with its final outcome. Writing the row once matters: SQLite rewrites a
/// whole record on UPDATE, so setting the outcome afterwards would write (and journal) the mail's
/// bytes a second time.
pub fn insert_row(conn: &mut Conn, r: &NewRaw) -> anyhow::Result<()> {
    if pg_batch::active() {
        let raw = pg_batch::Raw {
            id: r.id,
            key: r.key.to_string(),
            source: r.source.to_string(),
            at: r.at,
            data: r.data.to_vec(),
            state: r.state.as_str(),
            reason: r.reason.map(str::to_string),
            ticket: r.ticket,
        };
        if pg_batch::hold_raw(conn, raw)? {
            return Ok(());
        }
    }
    diesel::insert_into(raw_mails::table)
        .values((
            raw_mails::id.eq(r.id),
            raw_mails::message_key.eq(r.key),
            raw_mails::source.eq(r.source),
            raw_mails::received_at.eq(r.at),
            raw_mails::size.eq(r.data.len() as i64),
            raw_mails::data.eq(r.data),
            raw_mails::state.eq(r.state.as_str()),
            raw_mails::reason.eq(r.reason),
            raw_mails::ticket_number.eq(r.ticket),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn set_outcome(
    conn: &mut Conn,
    id: i64,
    state: RawState,
    reason: Option<&str>,
    ticket: Option<i64>,
) -> anyhow::Result<()> {
    diesel::update(raw_mails::table.find(id))
        .set((raw_mails::state.eq(state.as_str()), raw_mails::reason.eq(reason), raw_mails::ticket_number.eq(ticket)))
        .execute(conn)?;
    Ok(())
}

#[derive(Serialize, Clone, Debug)]
pub struct QuarantineEntry {
    pub id: i64,
    pub source: String,
    pub received_at: String,
    pub size: i64,
    pub reason: String,
    pub subject: String,
}

pub fn quarantined(conn: &mut Conn) -> anyhow::Result<Vec<QuarantineEntry>> {
    type Row = (i64, String, i64, i64, Option<String>, Vec<u8>);
    let rows: Vec<Row> = raw_mails::table
        .filter(raw_mails::state.eq(RawState::Quarantined.as_str()))
        .order(raw_mails::id)
        .select((
            raw_mails::id,
            raw_mails::source,
            raw_mails::received_at,
            raw_mails::size,
            raw_mails::reason,
            raw_mails::data,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, source, at, size, reason, data)| QuarantineEntry {
            id,
            source,
            received_at: rfc3339(at),
            size,
            reason: reason.unwrap_or_default(),
            subject: subject_line(&data),
        })
        .collect())
}

/// The Subject header line, read leniently (quarantined mail may not parse).
fn subject_line(data: &[u8]) -> String {
    let head = &data[..data.len().min(64 * 1024)];
    String::from_utf8_lossy(head)
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| l.strip_prefix("Subject:").or_else(|| l.strip_prefix("subject:")).map(|s| s.trim().to_string()))
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect()
}

pub fn get(conn: &mut Conn, id: i64) -> anyhow::Result<Option<(String, Vec<u8>, String)>> {
    Ok(raw_mails::table
        .find(id)
        .select((raw_mails::source, raw_mails::data, raw_mails::state))
        .get_result(conn)
        .optional()?)
}

pub fn count_by_state(conn: &mut Conn, state: RawState) -> anyhow::Result<i64> {
    Ok(raw_mails::table.filter(raw_mails::state.eq(state.as_str())).count().get_result(conn)?)
}
