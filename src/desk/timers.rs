//! Timers (SPEC §8): each is a row with its due time in `timers`, never a sleep, so they survive
//! restarts; a daemon's loop asks every few seconds for what is due (an indexed read that finds
//! nothing when nothing is due) and fires each row once — the conditional update that claims it
//! is the lock, so with several daemons on PostgreSQL one of them fires it.
//!
//! - `remind`: the ticket has waited on its customer for `remind_waiting` → one reminder to them;
//! - `close`: then `close_waiting` more (from the start of the wait when there is no reminder) →
//!   closed, with a mail saying how to reopen;
//! - `escalate`: a customer's message unanswered by staff for `escalate_<priority>` → announced
//!   again to the ticket's staff (or assignee) and marked overdue;
//! - `digest` (ticket 0): at `digest_at` each staff member gets their open and unassigned tickets.
//!
//! [`sync`] puts a ticket's rows in line with its state after every change (`desk::actions`): a
//! fired row stays (fired) until the ticket leaves the state that set it, so it fires once.

use chrono::{TimeZone, Timelike};
use diesel::prelude::*;
use serde_json::json;

use super::Desk;
use super::actions::{self, Mailing};
use super::notices::{Kind, Notice, queue};
use crate::domain::{EmailAddress, Event, Priority, Status};
use crate::store::Conn;
use crate::store::schema::{tickets, timers};
use crate::store::tickets::{self as store_tickets, TicketRow};

const REMIND: &str = "remind";
const CLOSE: &str = "close";
const ESCALATE: &str = "escalate";
const DIGEST: &str = "digest";

/// Puts the timers of `ticket` (as it is now) in line with its state.
pub fn sync(conn: &mut Conn, desk: &Desk, number: i64, now: i64) -> anyhow::Result<()> {
    let settings = &desk.settings.timers;
    // Without ticket timers (the default), ingesting pays nothing for them.
    if !settings.any_ticket_timer() {
        return Ok(());
    }
    let Some(t) = store_tickets::get_ticket(conn, number)? else { return Ok(()) };
    if t.status() == Status::Waiting {
        let remind = settings.seconds("remind_waiting");
        if let Some(d) = remind {
            insert_if_absent(conn, number, REMIND, now + d)?;
        }
        if let Some(d) = settings.seconds("close_waiting") {
            insert_if_absent(conn, number, CLOSE, now + remind.unwrap_or(0) + d)?;
        }
    } else {
        remove(conn, number, &[REMIND, CLOSE])?;
    }
    let escalation = settings.seconds(match t.priority() {
        Priority::Blocking => "escalate_blocking",
        Priority::Normal => "escalate_normal",
        Priority::Low => "escalate_low",
    });
    match (t.waiting_since.filter(|_| t.status() != Status::Closed), escalation) {
        (Some(since), Some(d)) => set_unfired(conn, number, ESCALATE, since + d)?,
        _ => remove(conn, number, &[ESCALATE])?,
    }
    Ok(())
}

/// Changes to one ticket run in one transaction at a time (its mail, its page): a plain
/// check-then-insert is enough.
fn insert_if_absent(conn: &mut Conn, number: i64, kind: &str, due: i64) -> anyhow::Result<()> {
    let exists: i64 = timers::table.find((number, kind)).count().get_result(conn)?;
    if exists == 0 {
        diesel::insert_into(timers::table)
            .values((timers::ticket_number.eq(number), timers::kind.eq(kind), timers::due_at.eq(due)))
            .execute(conn)?;
    }
    Ok(())
}

/// Inserts, or moves the due time of a row that has not fired (a priority changed).
fn set_unfired(conn: &mut Conn, number: i64, kind: &str, due: i64) -> anyhow::Result<()> {
    insert_if_absent(conn, number, kind, due)?;
    diesel::update(timers::table.find((number, kind)).filter(timers::fired_at.is_null()))
        .set(timers::due_at.eq(due))
        .execute(conn)?;
    Ok(())
}

fn remove(conn: &mut Conn, number: i64, kinds: &[&str]) -> anyhow::Result<()> {
    diesel::delete(timers::table.filter(timers::ticket_number.eq(number)).filter(timers::kind.eq_any(kinds)))
        .execute(conn)?;
    Ok(())
}

/// The next due timers (at most `limit`), oldest first.
pub fn due(conn: &mut Conn, now: i64, limit: i64) -> anyhow::Result<Vec<(i64, String)>> {
    Ok(timers::table
        .filter(timers::fired_at.is_null())
        .filter(timers::due_at.le(now))
        .order(timers::due_at)
        .select((timers::ticket_number, timers::kind))
        .limit(limit)
        .load(conn)?)
}

/// Fires one timer in the caller's transaction; false when another daemon fired it first.
pub fn fire(conn: &mut Conn, desk: &Desk, number: i64, kind: &str, now: i64) -> anyhow::Result<bool> {
    // The claim: only one transaction turns fired_at from NULL (PostgreSQL makes the other wait
    // for this one's commit, then finds nothing to update).
    // Due now too: a digest another daemon just fired is already set for tomorrow.
    let claimed = diesel::update(
        timers::table.find((number, kind)).filter(timers::fired_at.is_null()).filter(timers::due_at.le(now)),
    )
    .set(timers::fired_at.eq(Some(now)))
    .execute(conn)?;
    if claimed == 0 {
        return Ok(false);
    }
    if kind == DIGEST {
        send_digests(conn, desk, now)?;
        schedule_digest(conn, desk, now)?;
        return Ok(true);
    }
    let Some(ticket) = store_tickets::get_ticket(conn, number)? else { return Ok(true) };
    // A timer switched off since it was set does nothing.
    let on = |key: &str| desk.settings.timers.seconds(key).is_some();
    let escalation_on = on("escalate_blocking") || on("escalate_normal") || on("escalate_low");
    match kind {
        REMIND if !on("remind_waiting") => {}
        CLOSE if !on("close_waiting") => {}
        ESCALATE if !escalation_on => {}
        REMIND if ticket.status() == Status::Waiting => remind(conn, desk, &ticket, now)?,
        CLOSE if ticket.status() == Status::Waiting => close(conn, desk, &ticket, now)?,
        ESCALATE if ticket.status() != Status::Closed && ticket.waiting_since.is_some() => {
            escalate(conn, desk, &ticket, now)?
        }
        _ => {}
    }
    Ok(true)
}

fn remind(conn: &mut Conn, desk: &Desk, ticket: &TicketRow, now: i64) -> anyhow::Result<()> {
    let mut n = Notice::new("waiting_reminder", Some(ticket), Kind::Automatic);
    n.recipients = actions::customers_of(conn, ticket)?;
    queue(conn, desk, n, now)?;
    actions::record_event(conn, desk, ticket.number, &desk.helpdesk, Event::ReminderSent {}, now)
}

fn close(conn: &mut Conn, desk: &Desk, ticket: &TicketRow, now: i64) -> anyhow::Result<()> {
    actions::change_status(conn, desk, ticket, Status::Closed, &desk.helpdesk, Mailing::Silent, now)?;
    let closed = store_tickets::get_ticket(conn, ticket.number)?.expect("exists");
    let mut n = Notice::new("ticket_closed_waiting", Some(&closed), Kind::Automatic);
    n.recipients = actions::customers_of(conn, &closed)?;
    queue(conn, desk, n, now)?;
    Ok(())
}

fn escalate(conn: &mut Conn, desk: &Desk, ticket: &TicketRow, now: i64) -> anyhow::Result<()> {
    let waited = now - ticket.waiting_since.unwrap_or(now);
    actions::record_event(conn, desk, ticket.number, &desk.helpdesk, Event::Overdue {}, now)?;
    let ticket = store_tickets::get_ticket(conn, ticket.number)?.expect("exists");
    let mut n = Notice::new("staff_alert_overdue", Some(&ticket), Kind::Automatic);
    n.recipients = desk.alert_recipients(&ticket);
    n.extra = json!({ "waited": human_duration(waited, desk.lang()) });
    queue(conn, desk, n, now)?;
    Ok(())
}

/// The tickets whose escalation fired and that no staff answer reached since.
pub fn overdue_tickets(conn: &mut Conn) -> anyhow::Result<Vec<i64>> {
    Ok(timers::table
        .filter(timers::kind.eq(ESCALATE))
        .filter(timers::fired_at.is_not_null())
        .select(timers::ticket_number)
        .load(conn)?)
}

/// Whether one ticket is overdue (see [`overdue_tickets`]).
pub fn is_overdue(conn: &mut Conn, number: i64) -> anyhow::Result<bool> {
    Ok(timers::table.find((number, ESCALATE)).filter(timers::fired_at.is_not_null()).count().get_result::<i64>(conn)?
        > 0)
}

/// "2 h 05", "3 j 4 h" (or "3 d 4 h"): how long a customer has waited.
pub fn human_duration(seconds: i64, lang: &str) -> String {
    let (d, h, m) = (seconds / 86_400, seconds % 86_400 / 3600, seconds % 3600 / 60);
    let day = crate::catalog::word(lang, "unit_day");
    match (d, h) {
        (0, 0) => format!("{m} min"),
        (0, _) => format!("{h} h {m:02}"),
        _ => format!("{d} {day} {h} h"),
    }
}

/// Makes sure the daily digest has its row (or none when `digest_at` is off); called at start.
pub fn schedule_digest(conn: &mut Conn, desk: &Desk, now: i64) -> anyhow::Result<()> {
    let Some(minute) = desk.settings.timers.digest_minute() else {
        return remove(conn, 0, &[DIGEST]);
    };
    let due = next_local_time(desk.time_zone(), minute, now);
    // A fired digest (or one due at another time: the setting changed) gets its next due time.
    let row: Option<(i64, Option<i64>)> =
        timers::table.find((0i64, DIGEST)).select((timers::due_at, timers::fired_at)).get_result(conn).optional()?;
    match row {
        None => insert_if_absent(conn, 0, DIGEST, due),
        Some((at, None)) if at == due || at <= now => Ok(()),
        Some(_) => {
            diesel::update(timers::table.find((0i64, DIGEST)))
                .set((timers::due_at.eq(due), timers::fired_at.eq(None::<i64>)))
                .execute(conn)?;
            Ok(())
        }
    }
}

/// The next moment after `now` when the clock in `zone` reads `minute` (after midnight).
fn next_local_time(tz: chrono_tz::Tz, minute: u32, now: i64) -> i64 {
    let local_now = tz.timestamp_opt(now, 0).single().expect("a valid timestamp");
    let mut day = local_now.date_naive();
    for _ in 0..3 {
        let at = day.and_hms_opt(minute / 60, minute % 60, 0).expect("a valid time");
        // A time skipped by a DST change: the first valid moment after it.
        if let Some(t) = tz.from_local_datetime(&at).earliest()
            && t.timestamp() > now
        {
            return t.timestamp();
        }
        day = day.succ_opt().expect("a next day");
    }
    now + 86_400 - i64::from(local_now.num_seconds_from_midnight()) + i64::from(minute) * 60
}

/// One mail per staff member with tickets to list: theirs (open), then unassigned ones of their
/// queues, overdue first.
fn send_digests(conn: &mut Conn, desk: &Desk, now: i64) -> anyhow::Result<()> {
    let mut open: Vec<TicketRow> = tickets::table
        .filter(tickets::status.ne(Status::Closed.as_str()))
        .order(tickets::updated_at.asc())
        .select(TicketRow::as_select())
        .limit(5000)
        .load(conn)?;
    let overdue = overdue_tickets(conn)?;
    open.sort_by_key(|t| !overdue.contains(&t.number));
    let lang = desk.lang();
    let mut staff: Vec<EmailAddress> = desk.queues.iter().flat_map(|q| q.alerted.clone()).collect();
    staff.sort();
    staff.dedup();
    for member in staff {
        let listed: Vec<serde_json::Value> = open
            .iter()
            .filter(|t| match &t.assignee {
                Some(a) => a == member.as_str(),
                None => desk.queue_of(Some(t)).alerted.contains(&member),
            })
            .take(200)
            .map(|t| {
                json!({
                    "token": desk.token.format(t.number),
                    "subject": t.subject,
                    "status_label": t.status().label(lang),
                    "priority_label": t.priority().label(lang),
                    "overdue": overdue.contains(&t.number),
                    "assigned": t.assignee.is_some(),
                    "url": desk.settings.ticket_url(t.number),
                })
            })
            .collect();
        if listed.is_empty() {
            continue;
        }
        let mut n = Notice::new("staff_digest", None, Kind::Automatic);
        n.recipients = vec![member];
        n.reply_as = None;
        n.extra = json!({ "tickets": listed, "count": listed.len() });
        queue(conn, desk, n, now)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_digest_is_at_the_local_time_in_the_zone() {
        // 2026-12-07 06:00 UTC is 07:00 in Paris: 08:00 Paris is 07:00 UTC the same day.
        let now = 1_796_623_200; // 2026-12-07T06:00:00Z
        assert_eq!(next_local_time(chrono_tz::Europe::Paris, 8 * 60, now), now + 3600);
        // Past it: the next day.
        // 06:00 Paris (05:00 UTC) has passed: tomorrow's, 23 hours on.
        assert_eq!(next_local_time(chrono_tz::Europe::Paris, 6 * 60, now), now + 23 * 3600);
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human_duration(125 * 60, "fr"), "2 h 05");
        assert_eq!(human_duration(3 * 86_400 + 4 * 3600, "en"), "3 d 4 h");
        assert_eq!(human_duration(59, "fr"), "0 min");
    }
}
