//! Per-mailbox cursor (UIDVALIDITY + last UID), counters for `status`, and the lease that lets
//! one daemon at a time read a mailbox.

use diesel::prelude::*;
use serde::Serialize;

use super::schema::mailbox_state as ms;
use super::{Conn, rfc3339};

#[derive(Queryable, Selectable, Clone, Debug, Default)]
#[diesel(table_name = ms)]
pub struct MailboxState {
    pub name: String,
    pub uidvalidity: Option<i64>,
    pub last_uid: i64,
    pub server_count: i64,
    pub ingested: i64,
    pub quarantined: i64,
    pub last_poll: Option<i64>,
    pub last_error: Option<String>,
    pub lease_holder: Option<String>,
    pub lease_until: i64,
    /// The last poll without error.
    pub last_success: Option<i64>,
    /// Set by the first error after a success; cleared with `last_error`.
    pub failing_since: Option<i64>,
}

/// Creates the mailbox's row when missing; two daemons (or loops) may do it at once.
pub fn ensure(conn: &mut Conn, name: &str) -> anyhow::Result<()> {
    use diesel::sql_types::Text;
    match conn {
        #[cfg(feature = "postgres")]
        super::AnyConnection::Postgresql(pg) => {
            diesel::sql_query("INSERT INTO mailbox_state (name) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind::<Text, _>(name)
                .execute(pg)?;
        }
        super::AnyConnection::Sqlite(sqlite) => {
            diesel::sql_query("INSERT INTO mailbox_state (name) VALUES (?) ON CONFLICT DO NOTHING")
                .bind::<Text, _>(name)
                .execute(sqlite)?;
        }
    }
    Ok(())
}

pub fn get(conn: &mut Conn, name: &str) -> anyhow::Result<MailboxState> {
    ensure(conn, name)?;
    Ok(ms::table.find(name).select(MailboxState::as_select()).get_result(conn)?)
}

pub fn all(conn: &mut Conn) -> anyhow::Result<Vec<MailboxState>> {
    Ok(ms::table.order(ms::name).select(MailboxState::as_select()).load(conn)?)
}

/// A new UIDVALIDITY means the server renumbered: start over from UID 0 (exactly-once keys on
/// the Message-ID, so re-reading costs time, never a duplicate).
pub fn set_uidvalidity(conn: &mut Conn, name: &str, validity: i64) -> anyhow::Result<()> {
    diesel::update(ms::table.find(name)).set((ms::uidvalidity.eq(validity), ms::last_uid.eq(0i64))).execute(conn)?;
    Ok(())
}

/// Advances the cursor (never backwards) and the counters, in the caller's transaction.
pub fn advance(conn: &mut Conn, name: &str, uid: i64, ingested: i64, quarantined: i64) -> anyhow::Result<()> {
    let current: i64 = ms::table.find(name).select(ms::last_uid).get_result(conn)?;
    diesel::update(ms::table.find(name))
        .set((
            ms::last_uid.eq(current.max(uid)),
            ms::ingested.eq(ms::ingested + ingested),
            ms::quarantined.eq(ms::quarantined + quarantined),
            // A batch committed: whatever went wrong before is over.
            ms::last_error.eq(None::<String>),
            ms::failing_since.eq(None::<i64>),
        ))
        .execute(conn)?;
    Ok(())
}

/// A poll of the server: what it holds, and when. The last error is cleared only when `all_done`
/// (nothing left to fetch) — otherwise by the next batch that commits, so that a fault met after
/// the poll (a full disk refusing the batch) stays in `status` while it lasts.
pub fn record_poll(conn: &mut Conn, name: &str, server_count: i64, at: i64, all_done: bool) -> anyhow::Result<()> {
    ensure(conn, name)?;
    diesel::update(ms::table.find(name))
        .set((ms::server_count.eq(server_count), ms::last_poll.eq(at), ms::last_success.eq(at)))
        .execute(conn)?;
    if all_done {
        diesel::update(ms::table.find(name))
            .set((ms::last_error.eq(None::<String>), ms::failing_since.eq(None::<i64>)))
            .execute(conn)?;
    }
    Ok(())
}

pub fn record_error(conn: &mut Conn, name: &str, at: i64, error: &str) -> anyhow::Result<()> {
    ensure(conn, name)?;
    diesel::update(ms::table.find(name)).set((ms::last_poll.eq(at), ms::last_error.eq(error))).execute(conn)?;
    diesel::update(ms::table.find(name).filter(ms::failing_since.is_null()))
        .set(ms::failing_since.eq(at))
        .execute(conn)?;
    Ok(())
}

/// Takes or renews the lease on a mailbox; false when another live daemon holds it.
pub fn take_lease(conn: &mut Conn, name: &str, holder: &str, now: i64, seconds: i64) -> anyhow::Result<bool> {
    ensure(conn, name)?;
    let taken = diesel::update(
        ms::table
            .find(name)
            .filter(ms::lease_holder.eq(holder).or(ms::lease_holder.is_null()).or(ms::lease_until.lt(now))),
    )
    .set((ms::lease_holder.eq(holder), ms::lease_until.eq(now + seconds)))
    .execute(conn)?;
    Ok(taken == 1)
}

/// Takes the lease from `previous`, a holder known to be dead; false if someone else got it first.
pub fn take_over_lease(
    conn: &mut Conn,
    name: &str,
    previous: &str,
    holder: &str,
    now: i64,
    seconds: i64,
) -> anyhow::Result<bool> {
    let taken = diesel::update(ms::table.find(name).filter(ms::lease_holder.eq(previous)))
        .set((ms::lease_holder.eq(holder), ms::lease_until.eq(now + seconds)))
        .execute(conn)?;
    Ok(taken == 1)
}

pub fn release_lease(conn: &mut Conn, name: &str, holder: &str) -> anyhow::Result<()> {
    diesel::update(ms::table.find(name).filter(ms::lease_holder.eq(holder)))
        .set((ms::lease_holder.eq(None::<String>), ms::lease_until.eq(0i64)))
        .execute(conn)?;
    Ok(())
}

#[derive(Serialize, Debug)]
pub struct MailboxStatus {
    pub name: String,
    pub on_server: i64,
    pub ingested: i64,
    pub quarantined: i64,
    pub last_uid: i64,
    pub uidvalidity: Option<i64>,
    pub last_poll: Option<String>,
    pub last_error: Option<String>,
    /// The last poll without error.
    pub last_success: Option<String>,
    /// Since when the mailbox has been failing (while `last_error` is set).
    pub failing_since: Option<String>,
}

impl From<MailboxState> for MailboxStatus {
    fn from(s: MailboxState) -> Self {
        MailboxStatus {
            name: s.name,
            on_server: s.server_count,
            ingested: s.ingested,
            quarantined: s.quarantined,
            last_uid: s.last_uid,
            uidvalidity: s.uidvalidity,
            last_poll: s.last_poll.map(rfc3339),
            last_error: s.last_error,
            last_success: s.last_success.map(rfc3339),
            failing_since: s.failing_since.map(rfc3339),
        }
    }
}
