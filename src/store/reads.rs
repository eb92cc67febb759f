//! Per-person read markers and saved list criteria.

use diesel::prelude::*;

use super::Conn;
use super::tickets::TicketRow;

/// Marks a ticket read by `email` (a write only when it was unread, so reading stays cheap).
pub fn mark_read(conn: &mut Conn, email: &str, ticket: &TicketRow, at: i64) -> anyhow::Result<()> {
    use super::schema::reads;
    let read_at: Option<i64> =
        reads::table.find((email, ticket.number)).select(reads::read_at).get_result(conn).optional()?;
    match read_at {
        Some(r) if r >= ticket.updated_at => {}
        Some(_) => {
            diesel::update(reads::table.find((email, ticket.number))).set(reads::read_at.eq(at)).execute(conn)?;
        }
        None => {
            diesel::insert_into(reads::table)
                .values((reads::email.eq(email), reads::ticket_number.eq(ticket.number), reads::read_at.eq(at)))
                .execute(conn)?;
        }
    }
    Ok(())
}

/// Whether `ticket` changed since `email` last read it.
pub fn is_unread(conn: &mut Conn, email: &str, ticket: &TicketRow) -> anyhow::Result<bool> {
    use super::schema::reads;
    let read_at: Option<i64> =
        reads::table.find((email, ticket.number)).select(reads::read_at).get_result(conn).optional()?;
    Ok(read_at.is_none_or(|r| r < ticket.updated_at))
}

/// The list criteria a person saved (a query string), if any.
pub fn saved_criteria(conn: &mut Conn, email: &str) -> anyhow::Result<Option<String>> {
    use super::schema::saved_criteria;
    Ok(saved_criteria::table.find(email).select(saved_criteria::query).get_result(conn).optional()?)
}

pub fn save_criteria(conn: &mut Conn, email: &str, query: &str) -> anyhow::Result<()> {
    use super::schema::saved_criteria;
    diesel::delete(saved_criteria::table.find(email)).execute(conn)?;
    diesel::insert_into(saved_criteria::table)
        .values((saved_criteria::email.eq(email), saved_criteria::query.eq(query)))
        .execute(conn)?;
    Ok(())
}

pub fn forget_criteria(conn: &mut Conn, email: &str) -> anyhow::Result<()> {
    use super::schema::saved_criteria;
    diesel::delete(saved_criteria::table.find(email)).execute(conn)?;
    Ok(())
}
