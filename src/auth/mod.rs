//! Login by emailed link and server-side sessions (SPEC §5). Tokens are 256 random bits from the
//! OS CSPRNG, stored only as SHA-256 digests, single use, valid 15 minutes.

use base64::Engine;
use diesel::prelude::*;
use sha2::Digest;

use crate::desk::Desk;
use crate::desk::notices::{Kind, Notice, queue};
use crate::domain::EmailAddress;
use crate::store::Conn;
use crate::store::schema::{login_tokens, rate_events, sessions};
use crate::store::tickets;

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
    diesel::delete(login_tokens::table.filter(login_tokens::expires_at.lt(now - 86_400))).execute(conn)?;
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
        .get_result(conn)
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
    Ok(Some(login_tokens::table.find(&hash).select((login_tokens::email, login_tokens::next_path)).get_result(conn)?))
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
    diesel::delete(sessions::table.filter(sessions::expires_at.lt(now))).execute(conn)?;
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
        .get_result(conn)
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

/// Login links mailed to one address: at most this many per token lifetime. The window is the
/// lifetime on purpose: whenever an address is limited, the links mailed within the window are
/// all still valid, so someone flooding requests for an address never locks its owner out — the
/// owner logs in with a link already in their mailbox (SPEC §7, web).
pub const LINKS_PER_ADDRESS_PER_WINDOW: i64 = 5;
/// Login links asked from one client (IP address): at most this many per hour.
pub const LINKS_PER_CLIENT_PER_HOUR: i64 = 30;

/// What became of a request for a login link. The page answers `Sent` and `NotSent` alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkRequest {
    /// A link was queued in the outbox.
    Sent,
    /// The address has no right to a link (no ticket, not staff): nothing sent.
    NotSent,
    /// Over the per-address or per-client limit: nothing sent.
    RateLimited,
}

/// Whether an address may receive a login link: staff, an address that has tickets (requester or
/// watcher), or a member of a company that shares its tickets and has some.
pub fn may_log_in(conn: &mut Conn, desk: &Desk, address: &EmailAddress) -> anyhow::Result<bool> {
    if desk.is_staff(address) || tickets::has_tickets(conn, address.as_str())? {
        return Ok(true);
    }
    match desk.company_of(address) {
        Some((company, true)) => tickets::company_has_tickets(conn, company),
        _ => Ok(false),
    }
}

/// A login link asked for from the login page (SPEC §5): counted against the address's and the
/// client's limits whether or not the address is known (so the limit reveals nothing either), then
/// mailed through the outbox only to an address that may log in. `next` is the page to land on.
pub fn request_login_link(
    conn: &mut Conn,
    desk: &Desk,
    address: &EmailAddress,
    client: &str,
    next: Option<&str>,
    now: i64,
) -> anyhow::Result<LinkRequest> {
    let by_client = rate_allow(conn, &format!("login-client:{client}"), LINKS_PER_CLIENT_PER_HOUR, 3600, now)?;
    let by_address = by_client
        && rate_allow(
            conn,
            &format!("login-address:{address}"),
            LINKS_PER_ADDRESS_PER_WINDOW,
            LOGIN_TOKEN_SECONDS,
            now,
        )?;
    if !by_address {
        return Ok(LinkRequest::RateLimited);
    }
    if !may_log_in(conn, desk, address)? {
        return Ok(LinkRequest::NotSent);
    }
    let token = create_login_token(conn, address.as_str(), next, now)?;
    let mut notice = Notice::new("login_link", None, Kind::Requested);
    notice.recipients = vec![address.clone()];
    notice.extra = serde_json::json!({ "link": login_url(&desk.settings.helpdesk.public_url, &token) });
    queue(conn, desk, notice, now)?;
    Ok(LinkRequest::Sent)
}

/// A path inside this site to land on after login; anything else (another site, `//host`,
/// backslashes, control characters) is refused.
pub fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control())
        && !next.starts_with("/login")
        && next.len() <= 1000;
    ok.then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_landing_pages() {
        assert_eq!(safe_next("/tickets/4?x=1"), Some("/tickets/4?x=1"));
        for bad in ["https://evil.example/", "//evil.example/", "/\\evil.example", "/login/abc", "x", "/a\nb"] {
            assert_eq!(safe_next(bad), None, "{bad}");
        }
    }
}
