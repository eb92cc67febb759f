//! A small OAuth 2.0 identity provider for tests, served by axum on 127.0.0.1:0 inside the test
//! process: device authorization (RFC 8628), the token endpoint (grants `device_code`,
//! `refresh_token` — rotated at every use — and `client_credentials`) and the introspection
//! endpoint (RFC 7662) that the stack's Dovecot asks about every XOAUTH2/OAUTHBEARER token
//! (`MailStack::set_oauth`).
//!
//! ```ignore
//! let idp = IdentityProvider::start("support@example.com").await; // app-only tokens act as that user
//! stack.set_oauth(&idp.introspection_url());
//! idp.approve(&user_code, "support@example.com"); // what the person does in the browser
//! ```

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use serde_json::json;

/// Every access token lives this long.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(20);

pub const CLIENT_ID: &str = "guichet-test";
pub const CLIENT_SECRET: &str = "test-client-secret";

#[derive(Default)]
struct Device {
    user_code: String,
    approved_for: Option<String>,
    polls: u32,
}

/// What the provider knows and what it saw.
#[derive(Default)]
pub struct Books {
    devices: HashMap<String, Device>,
    /// refresh token → user
    refresh_tokens: HashMap<String, String>,
    /// access token → (user, expiry)
    access_tokens: HashMap<String, (String, Instant)>,
    next: u64,
    /// Access tokens issued, by grant type.
    pub issued: HashMap<String, u32>,
    /// Introspection requests answered active / not active.
    pub introspected_active: u32,
    pub introspected_inactive: u32,
    /// `scope` of the last device authorization request.
    pub device_scope: String,
}

impl Books {
    fn mint(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}-{}-{:016x}", self.next, rand::random::<u64>())
    }
}

#[derive(Clone)]
struct Shared {
    books: Arc<Mutex<Books>>,
    /// The user app-only (client_credentials) tokens act as.
    app_user: String,
    base: String,
}

pub struct IdentityProvider {
    books: Arc<Mutex<Books>>,
    pub base: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for IdentityProvider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl IdentityProvider {
    pub async fn start(app_user: &str) -> IdentityProvider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let books = Arc::new(Mutex::new(Books::default()));
        let shared = Shared { books: books.clone(), app_user: app_user.to_string(), base: base.clone() };
        let router = Router::new()
            .route("/device", post(device))
            .route("/token", post(token))
            .route("/introspect", post(introspect))
            .with_state(shared);
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        IdentityProvider { books, base, server }
    }

    pub fn token_url(&self) -> String {
        format!("{}/token", self.base)
    }
    pub fn device_url(&self) -> String {
        format!("{}/device", self.base)
    }
    pub fn introspection_url(&self) -> String {
        format!("{}/introspect", self.base)
    }

    /// The person typed `user_code` at the verification page and logged in as `user`.
    pub fn approve(&self, user_code: &str, user: &str) {
        let mut books = self.books.lock().unwrap();
        let device = books.devices.values_mut().find(|d| d.user_code == user_code).expect("a known user code");
        device.approved_for = Some(user.to_string());
    }

    /// The user's refresh tokens and access tokens stop working (an administrator revoked them).
    pub fn revoke(&self, user: &str) {
        let mut books = self.books.lock().unwrap();
        books.refresh_tokens.retain(|_, u| u != user);
        books.access_tokens.retain(|_, (u, _)| u != user);
    }

    pub fn refresh_tokens(&self) -> Vec<String> {
        self.books.lock().unwrap().refresh_tokens.keys().cloned().collect()
    }

    pub fn issued(&self, grant: &str) -> u32 {
        self.books.lock().unwrap().issued.get(grant).copied().unwrap_or(0)
    }

    pub fn introspected(&self) -> (u32, u32) {
        let books = self.books.lock().unwrap();
        (books.introspected_active, books.introspected_inactive)
    }

    pub fn device_scope(&self) -> String {
        self.books.lock().unwrap().device_scope.clone()
    }
}

fn error(status: StatusCode, code: &str) -> Response {
    (status, Json(json!({"error": code, "error_description": format!("test IdP: {code}")}))).into_response()
}

async fn device(State(s): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return error(StatusCode::BAD_REQUEST, "invalid_client");
    }
    let mut books = s.books.lock().unwrap();
    books.device_scope = form.get("scope").cloned().unwrap_or_default();
    let device_code = books.mint("device");
    let user_code = format!("{:04}-{:04}", rand::random::<u16>() % 10000, rand::random::<u16>() % 10000);
    books.devices.insert(device_code.clone(), Device { user_code: user_code.clone(), ..Device::default() });
    Json(json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": format!("{}/activate", s.base),
        "expires_in": 300,
        "interval": 1,
    }))
    .into_response()
}

async fn token(State(s): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if field("client_id") != CLIENT_ID {
        return error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let mut books = s.books.lock().unwrap();
    let (user, refresh) = match field("grant_type") {
        "urn:ietf:params:oauth:grant-type:device_code" => {
            let Some(device) = books.devices.get_mut(field("device_code")) else {
                return error(StatusCode::BAD_REQUEST, "expired_token");
            };
            device.polls += 1;
            // The second poll is told to slow down (RFC 8628 §3.5), as real providers do.
            if device.polls == 2 {
                return error(StatusCode::BAD_REQUEST, "slow_down");
            }
            let Some(user) = device.approved_for.clone() else {
                return error(StatusCode::BAD_REQUEST, "authorization_pending");
            };
            books.devices.remove(field("device_code"));
            (user, true)
        }
        "refresh_token" => {
            // Rotation: a refresh token works once; the answer carries the next one.
            let Some(user) = books.refresh_tokens.remove(field("refresh_token")) else {
                return error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            (user, true)
        }
        "client_credentials" => {
            if field("client_secret") != CLIENT_SECRET {
                return error(StatusCode::UNAUTHORIZED, "invalid_client");
            }
            (s.app_user.clone(), false)
        }
        _ => return error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    };
    *books.issued.entry(field("grant_type").to_string()).or_default() += 1;
    let access = books.mint("access");
    books.access_tokens.insert(access.clone(), (user.clone(), Instant::now() + TOKEN_LIFETIME));
    let mut answer = json!({"access_token": access, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME.as_secs()});
    if refresh {
        let next = books.mint("refresh");
        books.refresh_tokens.insert(next.clone(), user);
        answer["refresh_token"] = json!(next);
    }
    Json(answer).into_response()
}

async fn introspect(State(s): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut books = s.books.lock().unwrap();
    let token = form.get("token").cloned().unwrap_or_default();
    let user = books.access_tokens.get(&token).filter(|(_, until)| Instant::now() < *until).map(|(u, _)| u.clone());
    match user {
        Some(user) => {
            books.introspected_active += 1;
            Json(json!({"active": true, "username": user})).into_response()
        }
        None => {
            books.introspected_inactive += 1;
            Json(json!({"active": false})).into_response()
        }
    }
}
