//! Who is asking: the session cookie → [`Viewer`]; the reader's language; the checks that keep
//! other sites from posting our forms.
//!
//! CSRF: every form of a logged-in person carries the session's random `csrf` token in a hidden
//! field, compared in constant time ([`Viewer::check_csrf`]); the session cookie is also
//! `SameSite=Lax`. The two login forms have no session yet: they are protected by an Origin check
//! ([`same_origin_post`]) that reads the browser's Fetch metadata (`Sec-Fetch-Site`), or the
//! `Origin` header where a browser sends no metadata. Every browser sends one of the two on a
//! cross-site POST, so a forged login (logging a victim into the attacker's account) is refused;
//! clients that send neither (curl, scripts) are not browsers and cannot be the vehicle of CSRF.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::WebError;
use crate::app::App;
use crate::auth::{self, Session};
use crate::config::Settings;
use crate::desk::actions::Actor;
use crate::domain::EmailAddress;
use crate::store::visibility::Audience;

pub const SESSION_COOKIE: &str = "guichet_session";

/// The language of a page: one with a catalog (`locales/<code>.toml`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lang(&'static str);

#[allow(non_upper_case_globals)]
impl Lang {
    #[cfg(test)]
    pub const Fr: Lang = Lang("fr");
    #[cfg(test)]
    pub const En: Lang = Lang("en");

    pub fn code(self) -> &'static str {
        self.0
    }

    /// `code` (`en`, `en-GB`) if the catalog has its language.
    pub fn known(code: &str) -> Option<Lang> {
        let primary = code.trim().split(['-', '_']).next().unwrap_or("").to_ascii_lowercase();
        crate::catalog::languages().find(|l| *l == primary).map(Lang)
    }

    /// The reader's language: the first in `Accept-Language` (by weight) that has a catalog, else
    /// the helpdesk's `language`.
    pub fn of(headers: &HeaderMap, settings: &Settings) -> Lang {
        let configured = Lang(crate::catalog::language(&settings.helpdesk.language));
        let Some(accept) = headers.get(axum::http::header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()) else {
            return configured;
        };
        let mut ranked: Vec<(f32, Lang)> = accept
            .split(',')
            .filter_map(|item| {
                let mut parts = item.trim().split(';');
                let lang = Lang::known(parts.next()?)?;
                let q =
                    parts.find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok())).unwrap_or(1.0);
                (q > 0.0).then_some((q, lang))
            })
            .collect();
        // Stable sort: equal weights keep the header's order.
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranked.first().map_or(configured, |(_, l)| *l)
    }
}

/// A logged-in person.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub address: EmailAddress,
    pub session: Session,
    pub audience: Audience,
    pub lang: Lang,
}

impl Viewer {
    pub fn is_staff(&self) -> bool {
        self.audience.is_staff()
    }

    /// The person as the desk's operations see them.
    pub fn actor(&self) -> Actor {
        Actor { address: self.address.clone(), name: None, staff: self.is_staff() }
    }

    /// The form's `csrf` field must be this session's token.
    pub fn check_csrf(&self, presented: Option<&str>) -> Result<(), WebError> {
        match presented {
            Some(p) if constant_time_eq(p.as_bytes(), self.session.csrf.as_bytes()) => Ok(()),
            _ => Err(WebError::Forbidden),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a person may see, from their address and the configuration.
pub fn audience_of(app: &App, address: &EmailAddress) -> Audience {
    if app.desk.is_staff(address) {
        return Audience::Staff;
    }
    let shared_company = app.desk.company_of(address).filter(|(_, shared)| *shared).map(|(name, _)| name.to_string());
    Audience::Customer { email: address.as_str().to_string(), shared_company }
}

impl FromRequestParts<App> for Viewer {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        MaybeViewer::from_request_parts(parts, app).await?.0.ok_or(WebError::LoginRequired)
    }
}

/// The viewer when there is a valid session (login pages).
pub struct MaybeViewer(pub Option<Viewer>);

impl FromRequestParts<App> for MaybeViewer {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let lang = Lang::of(&parts.headers, &app.settings);
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else { return Ok(MaybeViewer(None)) };
        let session = app.store.run(move |s| s.read(|c| auth::session(c, &token, crate::store::now()))).await?;
        let Some(session) = session else { return Ok(MaybeViewer(None)) };
        let Some(address) = EmailAddress::parse(&session.email) else { return Ok(MaybeViewer(None)) };
        let audience = audience_of(app, &address);
        Ok(MaybeViewer(Some(Viewer { address, session, audience, lang })))
    }
}

/// The reader's language, for pages without a session.
pub struct ReaderLang(pub Lang);

impl FromRequestParts<App> for ReaderLang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        Ok(ReaderLang(Lang::of(&parts.headers, &app.settings)))
    }
}

/// A cookie's value from the `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value of a new session (or, with `None`, of its removal).
pub fn session_cookie(settings: &Settings, token: Option<&str>) -> String {
    let secure = if settings.helpdesk.public_url.starts_with("https://") { "; Secure" } else { "" };
    match token {
        Some(t) => {
            format!("{SESSION_COOKIE}={t}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}", auth::SESSION_SECONDS)
        }
        None => format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    }
}

/// Whether a POST without a session comes from our own pages (see the module comment).
pub fn same_origin_post(headers: &HeaderMap, settings: &Settings) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(site) = get("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match get("origin") {
        None => true,
        Some("null") => false,
        Some(origin) => {
            let public = settings.helpdesk.public_url.trim_end_matches('/');
            let public_origin = public.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
            let host = get("host").unwrap_or("");
            origin.eq_ignore_ascii_case(&public_origin)
                || origin.split_once("://").is_some_and(|(_, rest)| !host.is_empty() && rest.eq_ignore_ascii_case(host))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn settings(lang: &str) -> Settings {
        Settings::load_from(
            None,
            std::path::Path::new("/nonexistent"),
            &[("GUICHET__HELPDESK__LANGUAGE".into(), lang.into())],
        )
        .unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_language_follows_accept_language_then_the_configuration() {
        let fr = settings("fr");
        assert_eq!(Lang::of(&headers(&[]), &fr), Lang::Fr);
        assert_eq!(Lang::of(&headers(&[("accept-language", "en-US,en;q=0.9")]), &fr), Lang::En);
        assert_eq!(Lang::of(&headers(&[("accept-language", "de-DE, en;q=0.5, fr;q=0.8")]), &fr), Lang::Fr);
        assert_eq!(Lang::of(&headers(&[("accept-language", "de")]), &settings("en")), Lang::En);
    }

    #[test]
    fn cookies_are_found_among_others() {
        let h = headers(&[("cookie", "a=1; guichet_session=abc; b=2")]);
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers(&[("cookie", "guichet_session=")]), SESSION_COOKIE), None);
    }

    #[test]
    fn cross_site_posts_are_refused() {
        let s = settings("fr");
        assert!(same_origin_post(&headers(&[("sec-fetch-site", "same-origin")]), &s));
        assert!(!same_origin_post(&headers(&[("sec-fetch-site", "cross-site")]), &s));
        assert!(same_origin_post(&headers(&[("origin", "http://127.0.0.1:8080")]), &s));
        assert!(!same_origin_post(&headers(&[("origin", "https://evil.example")]), &s));
        assert!(same_origin_post(&headers(&[("origin", "http://localhost:9000"), ("host", "localhost:9000")]), &s));
        assert!(!same_origin_post(&headers(&[("origin", "null")]), &s));
        assert!(same_origin_post(&headers(&[]), &s));
    }

    #[test]
    fn session_cookies_are_http_only_lax_and_secure_on_https() {
        let mut s = settings("fr");
        let c = session_cookie(&s, Some("t"));
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && !c.contains("Secure"));
        s.helpdesk.public_url = "https://help.example.com".into();
        assert!(session_cookie(&s, Some("t")).contains("; Secure"));
    }
}
