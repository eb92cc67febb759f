//! OAuth 2.0 refresh tokens, one per account (SPEC §9): written by `guichet oauth-login` and
//! whenever the identity provider rotates the token, read by the daemon to get access tokens.

use diesel::prelude::*;

use super::Conn;
use super::schema::oauth_tokens as ot;

pub fn get(conn: &mut Conn, username: &str) -> anyhow::Result<Option<String>> {
    Ok(ot::table.find(username).select(ot::refresh_token).get_result(conn).optional()?)
}

/// Keeps `token` as the account's refresh token (replacing the previous one), in the caller's
/// transaction. Delete-then-insert: the same SQL on both backends.
pub fn put(conn: &mut Conn, username: &str, token: &str, now: i64) -> anyhow::Result<()> {
    diesel::delete(ot::table.find(username)).execute(conn)?;
    diesel::insert_into(ot::table)
        .values((ot::username.eq(username), ot::refresh_token.eq(token), ot::updated_at.eq(now)))
        .execute(conn)?;
    Ok(())
}
