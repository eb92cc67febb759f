//! The web view (SPEC §1 routes, §5 login and security): an axum router of server-rendered pages
//! that work without JavaScript, the JSON API beside them, and the CSV / XLSX exports.
//!
//! Layers, outermost first: HTTP latency histogram → security headers → error pages. Handlers
//! return [`WebError`] for everything that goes wrong; [`render_errors`] turns those into a page in
//! the reader's language, a JSON error for `/api/…`, or a redirect to the login page — the one
//! place where errors become responses.
//!
//! Module map:
//! - `session`: the [`session::Viewer`] extractor (session cookie → person, audience, CSRF token),
//!   the reader's language, the cookie and Origin helpers;
//! - `login`: `/login`, `/login/{token}`, `/logout`;
//! - `criteria`: the list criteria as query parameters, both ways;
//! - `list`: `/` and saving / forgetting criteria; `api`: `/api/…`; `export`: CSV and XLSX;
//! - `ticket`: one ticket's page, its forms, attachments and the sandboxed HTML of a mail;
//! - `new_ticket`: `/tickets/new` and `POST /tickets`; `forms`: multipart uploads;
//! - `routes`: the route table (method, path, body, who may use it) the router is built from;
//! - `html`: the allowlist sanitiser for HTML mail; `pages`: Handlebars templates
//!   (`web-templates/`, compiled in) and their strings; `assets`: the CSS and JS files.
//!
//! Staff-only forms (documented here since SPEC leaves their names open):
//! `POST /tickets/{n}/status` (`status`), `POST /tickets/{n}/priority` (`priority`),
//! `POST /tickets/{n}/note` (multipart `body`, `files`), `POST /tickets/{n}/assign` (`assignee`:
//! `me`, `none` or a staff address). Saved criteria: `POST /criteria/save`
//! (`query`), `POST /criteria/forget`. A mail's sanitised HTML: `GET /messages/{id}/html`.

mod api;
mod assets;
mod client_ip;
mod criteria;
mod export;
mod forms;
mod html;
mod list;
mod login;
mod new_ticket;
mod pages;
pub mod routes;
mod server;
mod session;
mod staff_forms;
mod ticket;

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::app::{App, Shutdown};

pub use html::sanitize_mail_html;
pub use session::SESSION_COOKIE;

/// The policy of every page: nothing but our own files; no inline script or style.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router(app: App) -> Router {
    // The recorder must exist before the first histogram is recorded.
    crate::telemetry::metrics_handle();
    // Each file may reach max_attachment_bytes; a form may carry several, and one over the limit
    // must still arrive whole to be named in a clear message.
    let per_file = app.settings.helpdesk.max_attachment_bytes as usize;
    let files_limit = per_file.saturating_mul(12).saturating_add(1 << 20);
    // Every route but the three that take files reads 16 KB at most: a larger Content-Length is
    // refused (413) before the handler runs, and a body that grows past it is cut.
    let without_files =
        routes::router(routes::Body::Form).layer(middleware::from_fn_with_state(app.clone(), limit_form_body));
    let with_files = routes::router(routes::Body::Files).layer(DefaultBodyLimit::max(files_limit));
    without_files
        .merge(with_files)
        .fallback(|| async { WebError::NotFound })
        .layer(middleware::from_fn_with_state(app.clone(), render_errors))
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn(track_latency))
        .with_state(app)
}

/// The body of any form without files (login, status, criteria…): SPEC §7 reads at most 16 KB.
pub const FORM_LIMIT: usize = 16 * 1024;
/// What an over-long body may still send while it is answered 413: read and dropped, so that
/// closing the connection never resets it under the client before it reads the answer.
const DRAIN_LIMIT: usize = 8 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// 413 for a body announced over [`FORM_LIMIT`] before the handler runs; a body without a length
/// is cut at the limit as it streams (the extractors answer 413 then).
async fn limit_form_body(State(app): State<App>, req: Request, next: Next) -> Response {
    let announced =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > FORM_LIMIT) {
        use http_body_util::BodyExt;
        let lang = session::Lang::of(req.headers(), &app.settings);
        let mut body = http_body_util::Limited::new(req.into_body(), DRAIN_LIMIT);
        let _ = tokio::time::timeout(DRAIN_TIME, async { while let Some(Ok(_)) = body.frame().await {} }).await;
        return WebError::TooLarge(pages::text(lang, "form_too_large", &[])).into_response();
    }
    let (parts, body) = req.into_parts();
    next.run(Request::from_parts(parts, axum::body::Body::new(http_body_util::Limited::new(body, FORM_LIMIT)))).await
}

/// Serves the pages until shutdown, finishing requests in flight.
pub async fn serve(app: App, listener: tokio::net::TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    let max = app.settings.web.max_connections;
    server::serve(router(app), listener, max, shutdown).await;
    Ok(())
}

/// Serves `/metrics` (and `/healthz`, `/readyz`) on the metrics listener, never on the public one.
pub async fn serve_metrics(app: App, listener: tokio::net::TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    crate::telemetry::metrics_handle();
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(crate::ops::health::healthz_operator))
        .route("/readyz", get(crate::ops::health::readyz_operator))
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
        .with_state(app);
    server::serve(router, listener, 64, shutdown).await;
    Ok(())
}

/// Prometheus text; the outbox and mailbox gauges are read from the database at each scrape.
async fn metrics(State(app): State<App>) -> Result<Response, WebError> {
    let status = app.store.run(|s| s.read(crate::ops::health::scrape)).await?;
    metrics::gauge!("guichet_outbox_pending").set(status.pending as f64);
    metrics::gauge!("guichet_outbox_retrying").set(status.retrying as f64);
    metrics::gauge!("guichet_outbox_failed").set(status.failed as f64);
    metrics::gauge!("guichet_outbox_oldest_pending_age_seconds")
        .set(status.oldest_pending_age_seconds.unwrap_or(0) as f64);
    metrics::counter!("guichet_db_statements_total").absolute(crate::store::statements());
    let body = crate::telemetry::metrics_handle().render();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response())
}

/// Records each request's latency under its route pattern (never the raw path: bounded labels).
async fn track_latency(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let method = req.method().as_str().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("guichet_http_request_duration_seconds", "method" => method, "route" => route, "status" => status)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The security headers of SPEC §5 on every response; a route that needs its own (the sandboxed
/// HTML of a mail) sets them first and keeps them.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    let defaults: [(HeaderName, &str); 5] = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

/// Everything that can go wrong in a request, as the reader should see it.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Unknown, or not this person's: the same answer either way (never 403 for a ticket).
    #[error("not found")]
    NotFound,
    /// No valid session: pages redirect to the login page, `/api/…` answers 401.
    #[error("login required")]
    LoginRequired,
    /// A form without its CSRF token, or from another site.
    #[error("forbidden")]
    Forbidden,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("too many requests")]
    RateLimited,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// What [`render_errors`] needs to build the answer, carried from the handler in the response.
#[derive(Clone, Debug)]
struct Failure {
    code: &'static str,
    message: Option<String>,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            WebError::NotFound => (StatusCode::NOT_FOUND, "not_found", None),
            WebError::LoginRequired => (StatusCode::UNAUTHORIZED, "login_required", None),
            WebError::Forbidden => (StatusCode::FORBIDDEN, "forbidden", None),
            WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", Some(m)),
            WebError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", Some(m)),
            WebError::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", None),
            WebError::Unexpected(e) => {
                tracing::error!(error = format!("{e:#}"), "web request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", None)
            }
        };
        let mut response = status.into_response();
        response.extensions_mut().insert(Failure { code, message });
        response
    }
}

/// Turns a [`WebError`] into what the reader gets: a redirect to the login page (pages), a JSON
/// error (`/api/…`), or an error page in the reader's language.
async fn render_errors(State(app): State<App>, req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let get = req.method() == axum::http::Method::GET || req.method() == axum::http::Method::HEAD;
    let wanted = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    let lang = session::Lang::of(req.headers(), &app.settings);
    let response = next.run(req).await;
    let Some(failure) = response.extensions().get::<Failure>().cloned() else {
        return response;
    };
    let status = response.status();
    if api {
        let body = serde_json::json!({"error": failure.code, "message": failure.message});
        return (status, axum::Json(body)).into_response();
    }
    if failure.code == "login_required" {
        let target = if get { format!("/login?next={}", criteria::encode(&wanted)) } else { "/login".to_string() };
        return Redirect::to(&target).into_response();
    }
    let page = pages::error_page(lang, failure.code, failure.message.as_deref(), &app.settings.helpdesk.name);
    (status, no_store(), Html(page)).into_response()
}

/// `Cache-Control: no-store` for anything personal.
pub(crate) fn no_store() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h
}
