//! Delivery status notifications about our own mail (SPEC §2, §7): only the named notification's
//! own recipient is marked undeliverable; the failure shows on its ticket.

use super::Desk;
use super::actions;
use super::inbound::Outcome;
use crate::domain::Event;
use crate::parse;
use crate::store::{Conn, outbox};

/// A delivery report about one of our notifications: mark it failed and the address undeliverable
/// for 60 days; show it on the ticket. Reports about anything else are kept, not ticketed.
pub(super) fn delivery_report(
    conn: &mut Conn,
    desk: &Desk,
    report: &parse::DeliveryReport,
    now: i64,
) -> anyhow::Result<Outcome> {
    let Some(original) = report.original_message_id.as_deref() else {
        return Ok(Outcome::Dropped("delivery report about an unknown mail".into()));
    };
    let Some(row) = outbox::by_message_id(conn, original)? else {
        return Ok(Outcome::Dropped("delivery report about a mail that is not ours".into()));
    };
    // Only the notification's own recipient: a report naming anyone else changes nothing for them
    // (a forged report must not cut people off from their mail, SPEC §7).
    let failures: Vec<&parse::DsnRecipient> =
        report.recipients.iter().filter(|r| r.is_permanent_failure() && r.address.as_str() == row.recipient).collect();
    if failures.is_empty() {
        return Ok(Outcome::Report { ticket: row.ticket_number });
    }
    let mut reasons = Vec::new();
    for f in &failures {
        let reason = format!("{} {}", f.status, f.diagnostic.clone().unwrap_or_default()).trim().to_string();
        outbox::set_undeliverable(conn, f.address.as_str(), now + 60 * 86_400, &reason)?;
        reasons.push(format!("{}: {reason}", f.address));
    }
    outbox::mark_failed(conn, row.id, &format!("delivery report: {}", reasons.join("; ")))?;
    if let Some(number) = row.ticket_number {
        let event = Event::DeliveryFailed { notice: row.event.clone(), failures: reasons.join("; ") };
        actions::record_event(conn, desk, number, &desk.helpdesk, event, now)?;
    }
    Ok(Outcome::Report { ticket: row.ticket_number })
}
