//! Login by emailed link (SPEC §5): ask for a link, confirm it with one button, log out.
//!
//! `GET /login/{token}` only shows a button: mail scanners that prefetch links must not consume
//! them. `POST /login/{token}` consumes the token (one conditional UPDATE) and opens a session.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::client_ip::ClientIp;
use super::pages::{Page, text};
use super::session::{MaybeViewer, ReaderLang, Viewer, cookie, same_origin_post, session_cookie};
use super::{SESSION_COOKIE, WebError, no_store};
use crate::app::App;
use crate::auth::{self, LinkRequest};
use crate::domain::EmailAddress;
use crate::store;

#[derive(Deserialize, Default)]
pub struct NextQuery {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    next: Option<String>,
}

fn login_page(app: &App, lang: super::session::Lang, data: serde_json::Value) -> Result<String, WebError> {
    Page {
        template: "login",
        lang,
        title: text(lang, "login_title", &[]),
        viewer: None,
        helpdesk_name: &app.settings.helpdesk.name,
        data,
    }
    .render()
}

/// `GET /login`: the form asking for an address (or, when logged in already, the list).
pub async fn form(
    State(app): State<App>,
    ReaderLang(lang): ReaderLang,
    MaybeViewer(viewer): MaybeViewer,
    Query(q): Query<NextQuery>,
) -> Result<Response, WebError> {
    let next = q.next.as_deref().and_then(auth::safe_next).unwrap_or("").to_string();
    if viewer.is_some() {
        return Ok(Redirect::to(if next.is_empty() { "/" } else { &next }).into_response());
    }
    let page = login_page(&app, lang, json!({"next": next, "email": "", "sent": false, "error": ""}))?;
    Ok((no_store(), Html(page)).into_response())
}

/// `POST /login`: the same answer whether or not the address is known; a link is mailed only to
/// an address that may log in.
pub async fn request_link(
    State(app): State<App>,
    ReaderLang(lang): ReaderLang,
    ClientIp(client): ClientIp,
    headers: axum::http::HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    if !same_origin_post(&headers, &app.settings) {
        return Err(WebError::Forbidden);
    }
    let next = form.next.as_deref().and_then(auth::safe_next).map(str::to_string);
    let typed: String = form.email.trim().chars().take(254).collect();
    let Some(address) = EmailAddress::parse(&typed) else {
        let data = json!({"next": next.unwrap_or_default(), "email": typed, "sent": false, "error": text(lang, "login_bad_address", &[])});
        return Ok((StatusCode::BAD_REQUEST, no_store(), Html(login_page(&app, lang, data)?)).into_response());
    };
    let desk = app.desk.clone();
    let to = address.clone();
    let next_path = next.clone();
    let outcome = app
        .store
        .run(move |s| s.write(|c| auth::request_login_link(c, &desk, &to, &client, next_path.as_deref(), store::now())))
        .await?;
    match outcome {
        LinkRequest::RateLimited => Err(WebError::RateLimited),
        LinkRequest::Sent | LinkRequest::NotSent => {
            // Nothing of the address in the answer: it must not differ between known and unknown.
            let data = json!({"next": "", "email": "", "sent": true, "error": ""});
            Ok((no_store(), Html(login_page(&app, lang, data)?)).into_response())
        }
    }
}

/// `GET /login/{token}`: a confirmation page with one button; the token stays unused.
pub async fn confirm_page(
    State(app): State<App>,
    ReaderLang(lang): ReaderLang,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let t = token.clone();
    let email = app.store.run(move |s| s.read(|c| auth::peek_login_token(c, &t, store::now()))).await?;
    let status = if email.is_some() { StatusCode::OK } else { StatusCode::GONE };
    let page = Page {
        template: "login_confirm",
        lang,
        title: text(lang, "login_title", &[]),
        viewer: None,
        helpdesk_name: &app.settings.helpdesk.name,
        data: json!({"valid": email.is_some(), "email": email.unwrap_or_default(), "token": token}),
    }
    .render()?;
    Ok((status, no_store(), Html(page)).into_response())
}

/// `POST /login/{token}`: consumes the token, opens a session, lands on the page first asked for.
/// The session always gets a new id, and a session the browser held before (however it came
/// there: a planted cookie is the fixation attack) ends in the same transaction.
pub async fn confirm(
    State(app): State<App>,
    ReaderLang(lang): ReaderLang,
    headers: axum::http::HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    if !same_origin_post(&headers, &app.settings) {
        return Err(WebError::Forbidden);
    }
    let previous = cookie(&headers, SESSION_COOKIE);
    let opened = app
        .store
        .run(move |s| {
            s.write(|c| {
                let now = store::now();
                let Some((email, next)) = auth::consume_login_token(c, &token, now)? else { return Ok(None) };
                if let Some(previous) = &previous {
                    auth::end_session(c, previous)?;
                }
                let (cookie_value, _) = auth::create_session(c, &email, now)?;
                Ok(Some((cookie_value, next)))
            })
        })
        .await?;
    let Some((cookie_value, next)) = opened else {
        let page = Page {
            template: "login_confirm",
            lang,
            title: text(lang, "login_title", &[]),
            viewer: None,
            helpdesk_name: &app.settings.helpdesk.name,
            data: json!({"valid": false, "email": "", "token": ""}),
        }
        .render()?;
        return Ok((StatusCode::GONE, no_store(), Html(page)).into_response());
    };
    let target = next.as_deref().and_then(auth::safe_next).unwrap_or("/").to_string();
    Ok((
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, session_cookie(&app.settings, Some(&cookie_value))), (header::LOCATION, target)],
        no_store(),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: Option<String>,
}

/// `POST /logout`: ends the session (server side) and clears the cookie.
pub async fn logout(
    State(app): State<App>,
    viewer: Viewer,
    headers: axum::http::HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(form.csrf.as_deref())?;
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        app.store.run(move |s| s.write(|c| auth::end_session(c, &token))).await?;
    }
    Ok((
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, session_cookie(&app.settings, None)), (header::LOCATION, "/login".to_string())],
    )
        .into_response())
}
