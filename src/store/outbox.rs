//! The outbox table: notifications queued in the change's transaction, claimed by a sender with a
//! short lease (a conditional UPDATE, so two daemons never claim the same row), then marked sent
//! or failed. Also the per-recipient facts the loop breakers need.

use diesel::prelude::*;
use serde::Serialize;

use super::schema::{outbox, undeliverable};
use super::{Conn, next_id, pg_batch};

/// A notification to queue. Its mail is described (`spec`: `notify::pending::PendingMail`), not
/// yet composed: the sender composes it when it sends it.
pub struct Queued<'a> {
    pub ticket_number: Option<i64>,
    pub event: &'a str,
    pub recipient: &'a str,
    pub envelope_from: &'a str,
    pub message_id: &'a str,
    pub automatic: bool,
    pub at: i64,
    pub spec: &'a str,
}

pub fn queue(conn: &mut Conn, queued: &Queued) -> anyhow::Result<()> {
    let row = OutboxRow {
        id: next_id(conn, "outbox")?,
        ticket_number: queued.ticket_number,
        event: queued.event.to_string(),
        recipient: queued.recipient.to_string(),
        envelope_from: queued.envelope_from.to_string(),
        message_id: queued.message_id.to_string(),
        automatic: queued.automatic,
        // Composed from `spec` by the sender when it sends it.
        data: Vec::new(),
        state: "pending".to_string(),
        attempts: 0,
        next_attempt_at: queued.at,
        locked_until: 0,
        last_error: None,
        created_at: queued.at,
        sent_at: None,
        spec: Some(queued.spec.to_string()),
    };
    super::Store::note_queued_mail();
    // In a PostgreSQL ingest batch the row is held and inserted with the batch's others.
    if let Some(row) = pg_batch::hold_outbox(row) {
        diesel::insert_into(outbox::table).values(&row).execute(conn)?;
    }
    Ok(())
}

/// A notification's row, as read and as written (by `queue`, or with a PostgreSQL batch's others).
#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = outbox)]
pub struct OutboxRow {
    pub id: i64,
    pub ticket_number: Option<i64>,
    pub event: String,
    pub recipient: String,
    pub envelope_from: String,
    pub message_id: String,
    pub automatic: bool,
    /// The mail's bytes: empty until the sender composes them from `spec` (kept as they are
    /// for rows queued before descriptions existed, which have no `spec`).
    pub data: Vec<u8>,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub locked_until: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    pub spec: Option<String>,
}

/// Whether any notification is due and unclaimed: one read of the `outbox_due` index, for the
/// idle sender's probe.
pub fn any_due(conn: &mut Conn, now: i64) -> anyhow::Result<bool> {
    let due = outbox::table
        .filter(outbox::state.eq("pending"))
        .filter(outbox::next_attempt_at.le(now))
        .filter(outbox::locked_until.lt(now));
    Ok(diesel::select(diesel::dsl::exists(due)).get_result(conn)?)
}

/// Claims up to `limit` due notifications for `lease` seconds. Each claim is a conditional
/// UPDATE, so concurrent senders (threads or daemons) never claim the same row.
pub fn claim_due(conn: &mut Conn, now: i64, limit: i64, lease: i64) -> anyhow::Result<Vec<OutboxRow>> {
    #[cfg(feature = "postgres")]
    if let super::AnyConnection::Postgresql(pg) = conn {
        return claim_due_postgres(pg, now, limit, lease);
    }
    let candidates: Vec<i64> = outbox::table
        .filter(outbox::state.eq("pending"))
        .filter(outbox::next_attempt_at.le(now))
        .filter(outbox::locked_until.lt(now))
        // Mails a person waits for (login links, relayed answers) before automatic ones.
        .order((outbox::automatic.asc(), outbox::id))
        .limit(limit)
        .select(outbox::id)
        .load(conn)?;
    let mut claimed = Vec::with_capacity(candidates.len());
    for id in candidates {
        let won = diesel::update(
            outbox::table.find(id).filter(outbox::state.eq("pending")).filter(outbox::locked_until.lt(now)),
        )
        .set(outbox::locked_until.eq(now + lease))
        .execute(conn)?;
        if won == 1 {
            claimed.push(id);
        }
    }
    Ok(outbox::table
        .filter(outbox::id.eq_any(&claimed))
        .order((outbox::automatic.asc(), outbox::id))
        .select(OutboxRow::as_select())
        .load(conn)?)
}

/// PostgreSQL: one statement, `FOR UPDATE SKIP LOCKED`, so daemons sharing the outbox never wait
/// on each other's rows.
#[cfg(feature = "postgres")]
fn claim_due_postgres(
    pg: &mut diesel::PgConnection,
    now: i64,
    limit: i64,
    lease: i64,
) -> anyhow::Result<Vec<OutboxRow>> {
    use diesel::sql_types::BigInt;
    #[derive(QueryableByName)]
    struct Claimed {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let claimed: Vec<Claimed> = diesel::sql_query(
        "UPDATE outbox SET locked_until = $1 WHERE id IN (
             SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_at <= $2 AND locked_until < $2
             ORDER BY automatic, id LIMIT $3 FOR UPDATE SKIP LOCKED)
         RETURNING id",
    )
    .bind::<BigInt, _>(now + lease)
    .bind::<BigInt, _>(now)
    .bind::<BigInt, _>(limit)
    .load(pg)?;
    let ids: Vec<i64> = claimed.into_iter().map(|c| c.id).collect();
    Ok(outbox::table
        .filter(outbox::id.eq_any(&ids))
        .order((outbox::automatic.asc(), outbox::id))
        .select(OutboxRow::as_select())
        .load(pg)?)
}

/// Marks notifications accepted by the SMTP server: one statement for all of a round's.
pub fn mark_sent(conn: &mut Conn, ids: &[i64], now: i64) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
        .set((
            outbox::state.eq("sent"),
            outbox::sent_at.eq(now),
            outbox::attempts.eq(outbox::attempts + 1),
            outbox::last_error.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn mark_retry(conn: &mut Conn, id: i64, error: &str, next_at: i64) -> anyhow::Result<()> {
    diesel::update(outbox::table.find(id))
        .set((
            outbox::attempts.eq(outbox::attempts + 1),
            outbox::last_error.eq(error),
            outbox::next_attempt_at.eq(next_at),
            outbox::locked_until.eq(0i64),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn mark_failed(conn: &mut Conn, id: i64, error: &str) -> anyhow::Result<()> {
    diesel::update(outbox::table.find(id))
        .set((
            outbox::state.eq("failed"),
            outbox::attempts.eq(outbox::attempts + 1),
            outbox::last_error.eq(error),
            outbox::locked_until.eq(0i64),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn by_message_id(conn: &mut Conn, message_id: &str) -> anyhow::Result<Option<OutboxRow>> {
    Ok(outbox::table
        .filter(outbox::message_id.eq(message_id))
        .select(OutboxRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// Automatic mails queued for `recipient` since `since` (the loop breaker's count).
pub fn automatic_since(conn: &mut Conn, recipient: &str, since: i64) -> anyhow::Result<i64> {
    if let Some(n) = pg_batch::automatic_since(conn, recipient, since)? {
        return Ok(n);
    }
    Ok(outbox::table
        .filter(outbox::recipient.eq(recipient))
        .filter(outbox::automatic.eq(true))
        .filter(outbox::created_at.ge(since))
        .count()
        .get_result(conn)?)
}

pub fn events_since(conn: &mut Conn, recipient: &str, event: &str, since: i64) -> anyhow::Result<i64> {
    Ok(outbox::table
        .filter(outbox::recipient.eq(recipient))
        .filter(outbox::event.eq(event))
        .filter(outbox::created_at.ge(since))
        .count()
        .get_result(conn)?)
}

pub fn is_undeliverable(conn: &mut Conn, address: &str, now: i64) -> anyhow::Result<bool> {
    if let Some(undeliverable) = pg_batch::is_undeliverable(conn, address, now)? {
        return Ok(undeliverable);
    }
    let until: Option<i64> =
        undeliverable::table.find(address).select(undeliverable::until_at).get_result(conn).optional()?;
    Ok(until.is_some_and(|u| u > now))
}

pub fn set_undeliverable(conn: &mut Conn, address: &str, until: i64, reason: &str) -> anyhow::Result<()> {
    diesel::delete(undeliverable::table.find(address)).execute(conn)?;
    diesel::insert_into(undeliverable::table)
        .values((
            undeliverable::address.eq(address),
            undeliverable::until_at.eq(until),
            undeliverable::reason.eq(reason),
        ))
        .execute(conn)?;
    pg_batch::note_undeliverable(address, until);
    Ok(())
}

#[derive(Serialize, Debug, Default)]
pub struct OutboxStatus {
    pub pending: i64,
    pub failed: i64,
    pub sent: i64,
    pub retrying: i64,
    pub oldest_pending_age_seconds: Option<i64>,
    /// Why the most recently retried notification is waiting (SMTP refusal, outage, timeout).
    pub last_error: Option<String>,
}

pub fn status(conn: &mut Conn, now: i64) -> anyhow::Result<OutboxStatus> {
    let count = |conn: &mut Conn, state: &str| -> anyhow::Result<i64> {
        Ok(outbox::table.filter(outbox::state.eq(state)).count().get_result(conn)?)
    };
    let oldest: Option<i64> = outbox::table
        .filter(outbox::state.eq("pending"))
        .select(diesel::dsl::min(outbox::created_at))
        .get_result(conn)?;
    let retrying =
        outbox::table.filter(outbox::state.eq("pending")).filter(outbox::attempts.gt(0)).count().get_result(conn)?;
    let last_error: Option<String> = outbox::table
        .filter(outbox::state.eq("pending"))
        .filter(outbox::last_error.is_not_null())
        .order(outbox::next_attempt_at.desc())
        .select(outbox::last_error)
        .get_result::<Option<String>>(conn)
        .optional()?
        .flatten();
    Ok(OutboxStatus {
        last_error,
        pending: count(conn, "pending")?,
        failed: count(conn, "failed")?,
        sent: count(conn, "sent")?,
        retrying,
        oldest_pending_age_seconds: oldest.map(|o| now - o),
    })
}

/// Delivery failures on a ticket's notifications, for staff.
pub fn failures_of_ticket(conn: &mut Conn, number: i64) -> anyhow::Result<Vec<(String, String, Option<String>)>> {
    Ok(outbox::table
        .filter(outbox::ticket_number.eq(number))
        .filter(outbox::state.eq("failed"))
        .select((outbox::recipient, outbox::event, outbox::last_error))
        .load(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn queue_at(store: &Store, message_id: &str, at: i64) {
        let queued = Queued {
            ticket_number: None,
            event: "ack",
            recipient: "marie@customer.example",
            envelope_from: "support@example.com",
            message_id,
            automatic: true,
            at,
            spec: "{}",
        };
        store.write(|c| queue(c, &queued)).unwrap();
    }

    #[test]
    fn the_idle_probe_sees_due_unclaimed_mail_only_and_a_round_is_marked_sent_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_and_migrate(&format!("sqlite://{}", dir.path().join("g.db").display()), 2).unwrap();
        let due = |now| store.read(|c| any_due(c, now)).unwrap();
        assert!(!due(1_000), "an empty outbox");
        queue_at(&store, "<later@example.com>", 2_000);
        assert!(!due(1_000), "queued for later");
        assert!(due(2_000), "due now");
        let claimed = store.write(|c| claim_due(c, 2_000, 10, 60)).unwrap();
        assert_eq!(claimed.len(), 1);
        assert!(!due(2_000), "claimed by a sender");
        queue_at(&store, "<second@example.com>", 2_000);
        let second = store.write(|c| claim_due(c, 2_000, 10, 60)).unwrap();
        let ids = [claimed[0].id, second[0].id];
        store.write(|c| mark_sent(c, &ids, 2_001)).unwrap();
        let status = store.read(|c| status(c, 2_100)).unwrap();
        assert_eq!((status.sent, status.pending), (2, 0), "{status:?}");
        assert!(!due(5_000), "sent mail is never due again");
    }
}
