//! Login by emailed link and server-side sessions (SPEC §5). Tokens are 256 random bits from the
//! OS CSPRNG, stored only as SHA-256 digests, single use, valid 15 minutes.

use base64::Engine;
use diesel::prelude::*;
use sha2::Digest;

use crate::store::Conn;
use crate::store::schema::{login_tokens, rate_events, sessions};

pub const LOGIN_TOKEN_SECONDS: i64 = 15 * 60;
pub const SESSION_SECONDS: i64 = 7 * 86_400;

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn digest(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// A fresh login token for `email`; `next` is the page to land on after login.
pub fn create_login_token(conn: &mut Conn, email: &str, next: Option<&str>, now: i64) -> anyhow::Result<String> {
    let token = random_token();
    diesel::insert_into(login_tokens::table)
        .values((
            login_tokens::hash.eq(digest(&token)),
            login_tokens::email.eq(email),
            login_tokens::created_at.eq(now),
            login_tokens::expires_at.eq(now + LOGIN_TOKEN_SECONDS),
            login_tokens::next_path.eq(next),
        ))
        .execute(conn)?;
    Ok(token)
}

/// Whether a token is valid now (the confirmation page), without consuming it.
pub fn peek_login_token(conn: &mut Conn, token: &str, now: i64) -> anyhow::Result<Option<String>> {
    Ok(login_tokens::table
        .find(digest(token))
        .filter(login_tokens::used_at.is_null())
        .filter(login_tokens::expires_at.gt(now))
        .select(login_tokens::email)
        .first(conn)
        .optional()?)
}

/// Consumes a token: one conditional UPDATE, so two concurrent POSTs cannot both win.
pub fn consume_login_token(conn: &mut Conn, token: &str, now: i64) -> anyhow::Result<Option<(String, Option<String>)>> {
    let hash = digest(token);
    let won = diesel::update(
        login_tokens::table
            .find(&hash)
            .filter(login_tokens::used_at.is_null())
            .filter(login_tokens::expires_at.gt(now)),
    )
    .set(login_tokens::used_at.eq(now))
    .execute(conn)?;
    if won != 1 {
        return Ok(None);
    }
    Ok(Some(login_tokens::table.find(&hash).select((login_tokens::email, login_tokens::next_path)).first(conn)?))
}

#[derive(Clone, Debug)]
pub struct Session {
    pub email: String,
    pub csrf: String,
}

/// Creates a session; returns (cookie value, session). Always a new id: no session fixation.
pub fn create_session(conn: &mut Conn, email: &str, now: i64) -> anyhow::Result<(String, Session)> {
    let token = random_token();
    let csrf = random_token();
    diesel::insert_into(sessions::table)
        .values((
            sessions::hash.eq(digest(&token)),
            sessions::email.eq(email),
            sessions::csrf.eq(&csrf),
            sessions::created_at.eq(now),
            sessions::expires_at.eq(now + SESSION_SECONDS),
        ))
        .execute(conn)?;
    Ok((token, Session { email: email.to_string(), csrf }))
}

pub fn session(conn: &mut Conn, token: &str, now: i64) -> anyhow::Result<Option<Session>> {
    let found: Option<(String, String)> = sessions::table
        .find(digest(token))
        .filter(sessions::expires_at.gt(now))
        .select((sessions::email, sessions::csrf))
        .first(conn)
        .optional()?;
    Ok(found.map(|(email, csrf)| Session { email, csrf }))
}

pub fn end_session(conn: &mut Conn, token: &str) -> anyhow::Result<()> {
    diesel::delete(sessions::table.find(digest(token))).execute(conn)?;
    Ok(())
}

/// Counts an event under `key` and says whether it stays within `limit` per `window` seconds.
pub fn rate_allow(conn: &mut Conn, key: &str, limit: i64, window: i64, now: i64) -> anyhow::Result<bool> {
    diesel::delete(rate_events::table.filter(rate_events::at.lt(now - 86_400))).execute(conn)?;
    let recent: i64 = rate_events::table
        .filter(rate_events::key.eq(key))
        .filter(rate_events::at.gt(now - window))
        .count()
        .get_result(conn)?;
    if recent >= limit {
        return Ok(false);
    }
    diesel::insert_into(rate_events::table)
        .values((rate_events::key.eq(key), rate_events::at.eq(now)))
        .execute(conn)?;
    Ok(true)
}

pub fn login_url(public_url: &str, token: &str) -> String {
    format!("{}/login/{token}", public_url.trim_end_matches('/'))
}
