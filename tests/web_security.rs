//! The web security checklist of issue 7, one test per promise of SECURITY.md that web_http.rs and
//! web_browser.rs do not hold already: login tokens (entropy, digests only in the database, single
//! use under a race, the exact lifetimes), no account enumeration by timing, the per-client rate
//! limit, session fixation, CSRF on every form, 404 on every route for what is not one's own, the
//! security headers on every kind of answer, header injection through the web forms, and XSS in
//! real headless Chromium (needs the Debian packages chromium and chromium-driver).

#[allow(dead_code)]
mod common;
mod web_support;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use common::webdriver::{Driver, Session};
use diesel::prelude::*;
use guichet::store::schema::{login_tokens, sessions};
use guichet::web::routes::{self, Access, Body};
use reqwest::cookie::{CookieStore, Jar};
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use sha2::Digest;
use web_support::{
    BOB, MARIE, PAUL, STAFF, Spy, TestApp, client, client_at, csrf_of, mail, mail_with, mail_with_file, spawn,
};

async fn text(r: reqwest::Response) -> String {
    r.text().await.unwrap()
}

async fn get(c: &reqwest::Client, app: &TestApp, path: &str) -> reqwest::Response {
    c.get(app.url(path)).send().await.unwrap()
}

/// 127.0.0.`n`: each is another client IP to the server (rate limits are per client).
fn loopback(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// The session cookie's value in a response's `Set-Cookie`.
fn set_session(r: &reqwest::Response) -> String {
    let header = r.headers()["set-cookie"].to_str().unwrap();
    let value = header.strip_prefix("guichet_session=").expect("the session cookie");
    value.split(';').next().unwrap().to_string()
}

/// A client that sends `guichet_session=value` and nothing else (no jar: what an attacker holds).
fn holding(value: &str) -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("cookie", format!("guichet_session={value}").parse().unwrap());
    reqwest::Client::builder().default_headers(h).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Sends a request: the status and body of its answer.
async fn outcome(r: reqwest::RequestBuilder) -> (u16, String) {
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn sha256_hex(s: &str) -> String {
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

// ---- Login tokens and sessions: entropy, digests, single use, lifetimes ---------------------------

const BASE64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The bytes a token encodes (hex or unpadded base64url, whichever its alphabet is).
fn token_bytes(token: &str) -> Vec<u8> {
    if token.len().is_multiple_of(2) && token.chars().all(|c| c.is_ascii_hexdigit()) {
        return hex::decode(token).unwrap();
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).unwrap_or_else(|e| panic!("{token}: {e}"))
}

/// What every secret the server hands out must look like: at least 128 bits in its encoding
/// (length × log2 of its alphabet), all distinct, no long prefix shared by two of them.
fn assert_unguessable(kind: &str, tokens: &[String]) {
    for t in tokens {
        let alphabet: f64 = if t.chars().all(|c| c.is_ascii_hexdigit()) { 16.0 } else { 64.0 };
        assert!(t.chars().all(|c| BASE64URL.contains(c)), "{kind} `{t}`: not URL-safe");
        let bits = t.len() as f64 * alphabet.log2();
        assert!(bits >= 128.0, "{kind} `{t}`: {bits} bits at most");
        assert!(token_bytes(t).len() * 8 >= 128, "{kind} `{t}` encodes fewer than 128 bits");
    }
    let distinct: HashSet<&String> = tokens.iter().collect();
    assert_eq!(distinct.len(), tokens.len(), "{kind}: a token came twice");
    let mut sorted = tokens.to_vec();
    sorted.sort();
    let shared = |a: &str, b: &str| a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let longest = sorted.windows(2).map(|w| shared(&w[0], &w[1])).max().unwrap_or(0);
    // Among a few hundred random base64 strings the longest shared prefix is 2 or 3 characters
    // (6 or more: about one chance in ten million); a timestamp or a counter in front shows at once.
    assert!(longest <= 5, "{kind}: two tokens share a prefix of {longest} characters");
}

/// The bits of many tokens look like a CSPRNG's: balanced, and every byte position takes many values
/// (a counter, a clock or a fixed byte anywhere in the token shows as a position with few values).
fn assert_random_bits(kind: &str, tokens: &[String]) {
    assert!(tokens.len() >= 200, "{kind}: too few tokens for statistics");
    let decoded: Vec<Vec<u8>> = tokens.iter().map(|t| token_bytes(t)).collect();
    let width = decoded[0].len();
    assert!(decoded.iter().all(|d| d.len() == width));
    let ones: u32 = decoded.iter().flatten().map(|b| b.count_ones()).sum();
    let share = f64::from(ones) / (decoded.len() * width * 8) as f64;
    // 200 × 256 bits: one standard deviation is 0.2 %; 3 % is more than ten of them.
    assert!((0.47..=0.53).contains(&share), "{kind}: {:.1} % of the bits are ones", share * 100.0);
    for position in 0..width {
        let values: HashSet<u8> = decoded.iter().map(|d| d[position]).collect();
        // 200 draws of a random byte give about 139 distinct values (σ ≈ 5).
        assert!(values.len() >= 100, "{kind}: byte {position} takes only {} values", values.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_tokens_and_session_ids_are_random_and_only_their_digests_are_stored() {
    let app = spawn("", "").await;
    app.ingest(mail(MARIE, "Imprimante", "x"));

    // Arrange: tokens by every way there is — mailed by POST /login (5: the per-address limit), printed
    // by `guichet login-link`, and many made by the same function — and sessions opened with them.
    let mut mailed = Vec::new();
    let c = client();
    for _ in 0..5 {
        assert_eq!(c.post(app.url("/login")).form(&[("email", MARIE)]).send().await.unwrap().status(), 200);
        mailed.push(app.login_token_from_outbox(MARIE).expect("a mailed link"));
    }
    let mut printed = Vec::new();
    for _ in 0..3 {
        let mut cli = std::process::Command::new(env!("CARGO_BIN_EXE_guichet"));
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("GUICHET")) {
            cli.env_remove(k);
        }
        let out = cli.arg("-c").arg(app.config_file()).args(["login-link", MARIE]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let token = url.strip_prefix(&format!("{}/login/", app.base)).unwrap_or_else(|| panic!("{url}"));
        printed.push(token.to_string());
    }
    let now = guichet::store::now();
    let made: Vec<String> = app
        .app
        .store
        .write(|c| (0..200).map(|_| guichet::auth::create_login_token(c, MARIE, None, now)).collect())
        .unwrap();
    let mut opened = Vec::new();
    for token in &mailed {
        let r = client().post(app.url(&format!("/login/{token}"))).send().await.unwrap();
        assert_eq!(r.status(), 303);
        opened.push(set_session(&r));
    }
    let made_sessions: Vec<String> = app
        .app
        .store
        .write(|c| (0..200).map(|_| Ok(guichet::auth::create_session(c, MARIE, now)?.0)).collect())
        .unwrap();
    let csrf_tokens: Vec<String> = app.app.store.read(|c| Ok(sessions::table.select(sessions::csrf).load(c)?)).unwrap();

    // Entropy.
    let all_tokens: Vec<String> = mailed.iter().chain(&printed).chain(&made).cloned().collect();
    assert_unguessable("login token", &all_tokens);
    assert_random_bits("login token", &made);
    let all_sessions: Vec<String> = opened.iter().chain(&made_sessions).cloned().collect();
    assert_unguessable("session id", &all_sessions);
    assert_random_bits("session id", &made_sessions);
    assert_unguessable("csrf token", &csrf_tokens);
    assert_random_bits("csrf token", &csrf_tokens);

    // Hashing: the tables hold each secret's SHA-256, never the secret.
    let rows: Vec<(String, String, Option<String>)> = app
        .app
        .store
        .read(|c| {
            Ok(login_tokens::table
                .select((login_tokens::hash, login_tokens::email, login_tokens::next_path))
                .load(c)?)
        })
        .unwrap();
    let hashes: HashSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    for t in &all_tokens {
        assert!(hashes.contains(sha256_hex(t).as_str()), "no digest stored for a token");
        assert!(
            !rows.iter().any(|(h, e, n)| h == t
                || e.contains(t.as_str())
                || n.as_deref().is_some_and(|n| n.contains(t.as_str())))
        );
    }
    let session_rows: Vec<(String, String)> =
        app.app.store.read(|c| Ok(sessions::table.select((sessions::hash, sessions::email)).load(c)?)).unwrap();
    let session_hashes: HashSet<&str> = session_rows.iter().map(|r| r.0.as_str()).collect();
    for s in &all_sessions {
        assert!(session_hashes.contains(sha256_hex(s).as_str()), "no digest stored for a session");
        assert!(!session_rows.iter().any(|(h, e)| h == s || e.contains(s.as_str())));
    }
    // And nowhere in the SQLite files (database and write-ahead log), in any encoding: the token,
    // the hex of its bytes, or its bytes. Mailed tokens are left out: their mail is in the outbox
    // table, the residual risk SECURITY.md names.
    if let Some(path) = app.app.settings.database.url.strip_prefix("sqlite://") {
        let path = std::path::Path::new(path);
        let stem = path.file_name().unwrap().to_str().unwrap().to_string();
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(path.parent().unwrap()).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name().to_str().unwrap_or("").starts_with(&stem) {
                bytes.extend(std::fs::read(entry.path()).unwrap());
            }
        }
        assert!(bytes.len() > 10_000, "the database files were read");
        // As text (the secrets are ASCII) and as hex (for raw bytes anywhere in the files).
        let as_text = String::from_utf8_lossy(&bytes);
        let as_hex = hex::encode(&bytes);
        assert!(as_text.contains(&sha256_hex(&made[0])), "digests are where the scan looks");
        let sample = printed.iter().chain(&made[..20]).chain(&opened).chain(&made_sessions[..20]);
        for secret in sample {
            let raw_hex = hex::encode(token_bytes(secret));
            assert!(
                !as_text.contains(secret.as_str()) && !as_text.contains(&raw_hex) && !as_hex.contains(&raw_hex),
                "a secret is stored in clear in the database files"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_raced_by_several_clients_opens_one_session() {
    let app = spawn("", "").await;
    app.ingest(mail(MARIE, "Imprimante", "x"));
    let token = app.login_token(MARIE);
    let url = app.url(&format!("/login/{token}"));

    // Eight clients ready first, then released together.
    let start = Arc::new(tokio::sync::Barrier::new(8));
    let tries: Vec<_> = (0..8)
        .map(|_| {
            let (c, url, start) = (client(), url.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let r = c.post(&url).send().await.unwrap();
                (r.status().as_u16(), r.headers().contains_key("set-cookie"))
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tries {
        results.push(t.await.unwrap());
    }

    results.sort();
    let mut expected = vec![(410, false); 7];
    expected.push((303, true));
    expected.sort();
    assert_eq!(results, expected, "exactly one client wins the link");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_lasts_fifteen_minutes_and_a_session_seven_days_not_a_second_more() {
    let app = spawn("", "").await;
    app.ingest(mail(MARIE, "Imprimante", "x"));
    let now = guichet::store::now();
    let token_made = |at: i64| app.app.store.write(|c| guichet::auth::create_login_token(c, MARIE, None, at)).unwrap();
    let session_made = |at: i64| app.app.store.write(|c| guichet::auth::create_session(c, MARIE, at)).unwrap().0;

    // A link made 14 minutes ago still works; one made 15 minutes and 2 seconds ago does not.
    let recent = token_made(now - 14 * 60);
    let stale = token_made(now - 15 * 60 - 2);
    assert_eq!(get(&client(), &app, &format!("/login/{stale}")).await.status(), 410);
    assert_eq!(client().post(app.url(&format!("/login/{stale}"))).send().await.unwrap().status(), 410);
    assert_eq!(client().post(app.url(&format!("/login/{recent}"))).send().await.unwrap().status(), 303);

    // A session opened 7 days less a minute ago is still valid; one of 7 days and 2 seconds is over.
    let week = 7 * 86_400;
    let alive = session_made(now - week + 60);
    let over = session_made(now - week - 2);
    assert_eq!(get(&holding(&alive), &app, "/api/tickets").await.status(), 200);
    assert_eq!(get(&holding(&over), &app, "/api/tickets").await.status(), 401);
    assert_eq!(get(&holding(&over), &app, "/").await.status(), 303, "back to the login page");
}

// ---- Account enumeration and rate limits -------------------------------------------------------

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len().is_multiple_of(2) { (v[m - 1] + v[m]) / 2.0 } else { v[m] }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_for_a_link_takes_as_long_for_a_known_address_as_for_an_unknown_one() {
    // Arrange: 30 customers with a ticket each, 30 addresses nobody knows; one request per address
    // (the per-address limit is 5) from 6 client addresses (10 requests each, the limit is 30).
    const PAIRS: usize = 30;
    let app = spawn("", "").await;
    let known: Vec<String> = (0..PAIRS).map(|i| format!("client{i}@known{i}.example")).collect();
    let unknown: Vec<String> = (0..PAIRS).map(|i| format!("client{i}@unknown{i}.example")).collect();
    for k in &known {
        app.ingest(mail(k, "Imprimante", "x"));
    }
    let clients: Vec<reqwest::Client> = (0..PAIRS / 5).map(|i| client_at(loopback(20 + i as u8))).collect();
    let ask = |c: &reqwest::Client, email: &str| {
        let request = c.post(app.url("/login")).form(&[("email", email)]);
        async move {
            let started = Instant::now();
            let r = request.send().await.unwrap();
            let status = r.status();
            let body = r.text().await.unwrap();
            (started.elapsed().as_secs_f64() * 1000.0, status, body)
        }
    };
    // Warm-up, not measured: each client's connection, the first queries and template renderings.
    for (i, c) in clients.iter().enumerate() {
        ask(c, &format!("warm{i}@unknown.example")).await;
    }

    // Act: known and unknown alternate, each first in turn, so that load on the machine falls on both.
    let (mut known_ms, mut unknown_ms) = (Vec::new(), Vec::new());
    let mut bodies = HashSet::new();
    for i in 0..PAIRS {
        let c = &clients[i / 5];
        let order = if i % 2 == 0 { [true, false] } else { [false, true] };
        for is_known in order {
            let (ms, status, body) = ask(c, if is_known { &known[i] } else { &unknown[i] }).await;
            assert_eq!(status, 200);
            bodies.insert(body);
            if is_known { known_ms.push(ms) } else { unknown_ms.push(ms) }
        }
    }

    // Assert: one page for all, a link for each known address only, and the same time: the median
    // of the differences within each pair (back to back, so the machine's load falls on both) under
    // max(25 ms, half the slower median) — loose enough for a loaded 2-core machine and a debug
    // build, tight enough to catch work done only for known addresses before answering (such as
    // sending the mail over SMTP).
    assert_eq!(bodies.len(), 1, "the page differs between known and unknown addresses");
    let links = app.outbox().into_iter().filter(|r| r.event == "login_link").count();
    assert_eq!(links, PAIRS);
    let (k, u) = (median(known_ms.clone()), median(unknown_ms.clone()));
    let gap = median(known_ms.iter().zip(&unknown_ms).map(|(k, u)| k - u).collect());
    let tolerance = f64::max(25.0, 0.5 * k.max(u));
    eprintln!("POST /login: median {k:.1} ms for known addresses, {u:.1} ms for unknown ones, {gap:.1} ms apart");
    assert!(
        gap.abs() < tolerance,
        "known addresses answered {gap:.1} ms later (tolerance {tolerance:.1} ms): medians {k:.1} and {u:.1} ms\n\
         known: {known_ms:.1?}\nunknown: {unknown_ms:.1?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_are_rate_limited_per_client_whatever_the_addresses() {
    let app = spawn("", "").await;
    app.ingest(mail(MARIE, "Imprimante", "x"));
    let one = client_at(loopback(40));

    // 30 requests an hour from one client, each for another address: served.
    for i in 0..30 {
        let r = one.post(app.url("/login")).form(&[("email", format!("n{i}@nowhere.example"))]).send().await.unwrap();
        assert_eq!(r.status(), 200, "request {i}");
    }
    // The 31st is refused, for a known address as for an unknown one, with the same answer.
    let refused_known = one.post(app.url("/login")).form(&[("email", MARIE)]).send().await.unwrap();
    assert_eq!(refused_known.status(), 429);
    let refused_known = text(refused_known).await;
    let refused_unknown = one.post(app.url("/login")).form(&[("email", "n99@nowhere.example")]).send().await.unwrap();
    assert_eq!(refused_unknown.status(), 429);
    assert_eq!(text(refused_unknown).await, refused_known);
    assert!(app.outbox_for(MARIE, "login_link").is_empty(), "nothing mailed past the limit");

    // Another client is not held back by the first one.
    let other = client_at(loopback(41));
    assert_eq!(other.post(app.url("/login")).form(&[("email", MARIE)]).send().await.unwrap().status(), 200);
    assert_eq!(app.outbox_for(MARIE, "login_link").len(), 1);
}

// ---- Behind a reverse proxy, and floods (SPEC §7, web) ------------------------------------------

/// A link request as the proxy at 127.0.0.1 passes it on, for a client at `forwarded`.
async fn ask_through_proxy(app: &TestApp, proxy: &reqwest::Client, forwarded: &str, email: &str) -> u16 {
    let r = proxy.post(app.url("/login")).header("x-forwarded-for", forwarded).form(&[("email", email)]);
    r.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let app = spawn("", "trusted_proxies = [\"127.0.0.1\"]").await;
    app.ingest(mail(MARIE, "Imprimante", "x"));
    let proxy = client_at(loopback(1));
    // 40 visitors behind the proxy: none is held back by the others.
    for i in 0..40 {
        let status =
            ask_through_proxy(&app, &proxy, &format!("198.51.100.{i}"), &format!("n{i}@nowhere.example")).await;
        assert_eq!(status, 200, "visitor {i}");
    }
    // One visitor still meets its own limit, whatever it writes to the left of the proxy's hop.
    for i in 0..30 {
        let forged = format!("203.0.113.{i}, 192.0.2.1");
        assert_eq!(ask_through_proxy(&app, &proxy, &forged, &format!("m{i}@nowhere.example")).await, 200);
    }
    assert_eq!(ask_through_proxy(&app, &proxy, "203.0.113.99, 192.0.2.1", MARIE).await, 429);

    // A peer that is not a trusted proxy cannot choose its address with the header.
    let untrusted = client_at(loopback(2));
    for i in 0..30 {
        let status =
            ask_through_proxy(&app, &untrusted, &format!("198.18.0.{i}"), &format!("u{i}@nowhere.example")).await;
        assert_eq!(status, 200);
    }
    assert_eq!(ask_through_proxy(&app, &untrusted, "198.18.1.1", "y@nowhere.example").await, 429);

    // Without trusted_proxies, everyone behind the proxy shares its counter (the old flaw).
    let plain = spawn("", "").await;
    let proxy = client_at(loopback(3));
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for i in 0..31 {
            v.push(
                ask_through_proxy(&plain, &proxy, &format!("198.51.100.{i}"), &format!("n{i}@nowhere.example")).await,
            );
        }
        v
    };
    assert_eq!(statuses[30], 429, "the 31st visitor is refused when the proxy is not trusted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooding_link_requests_for_an_address_never_locks_its_owner_out() {
    let app = spawn("", "trusted_proxies = [\"127.0.0.0/8\"]").await;
    app.ingest(mail(MARIE, "Imprimante", "x"));
    let proxy = client_at(loopback(1));
    let mut statuses = Vec::new();
    for i in 0..40 {
        statuses.push(ask_through_proxy(&app, &proxy, &format!("198.51.100.{i}"), MARIE).await);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5, "{statuses:?}");
    let mailed = app.outbox_for(MARIE, "login_link");
    assert_eq!(mailed.len(), 5, "at most 5 links reach the mailbox in a link's lifetime");
    // Marie asks herself, is refused as well — and logs in with any link already in her mailbox.
    assert_eq!(ask_through_proxy(&app, &proxy, "192.0.2.10", MARIE).await, 429);
    let token = app.login_token_from_outbox(MARIE).expect("a link in her mailbox");
    let marie = client();
    let r = marie.post(app.url(&format!("/login/{token}"))).send().await.unwrap();
    assert_eq!(r.status(), 303, "the link from her own mailbox opens a session");
    assert_eq!(get(&marie, &app, "/").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_limited_per_route() {
    let app = spawn("", "").await;
    let n = app.ingest(mail(MARIE, "Imprimante", "x"));
    let c = client();
    let big = "a".repeat(1 << 20);
    // A 1 MB login form: refused before it is read.
    let r = c.post(app.url("/login")).form(&[("email", big.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 413);
    let r = c.post(app.url("/login/abc")).body(big.clone()).send().await.unwrap();
    assert_eq!(r.status(), 413, "the link's button posts nothing: a body is refused too");
    // A logged-in customer's forms without files read 16 KB at most too…
    let marie = app.client_for(MARIE).await;
    let page = text(get(&marie, &app, &format!("/tickets/{n}")).await).await;
    let csrf = web_support::csrf_of(&page);
    let r = marie
        .post(app.url(&format!("/tickets/{n}/close")))
        .form(&[("csrf", csrf.as_str()), ("reason", big.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // …while the reply form takes a file of 1.5 MB.
    let file = Part::bytes(vec![b'x'; 1_500_000]).file_name("journal.txt").mime_str("text/plain").unwrap();
    let form = Form::new().text("csrf", csrf.clone()).text("body", "Le journal.").part("files", file);
    let r = marie.post(app.url(&format!("/tickets/{n}/reply"))).multipart(form).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(text(get(&marie, &app, &format!("/tickets/{n}")).await).await.contains("journal.txt"));
    assert_eq!(app.outbox_for(STAFF, "customer_answer").len(), 1, "the answer with its file arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_half_open_connections_leave_the_pages_answering() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn("", "").await;
    let address = format!("127.0.0.1:{}", app.port);
    // 300 clients that open a connection and send half a request header, slowly (slowloris).
    let mut idle = Vec::new();
    for _ in 0..300 {
        let mut s = tokio::net::TcpStream::connect(&address).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        idle.push(s);
    }
    let c = client();
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(get(&c, &app, "/healthz").await.status(), 200);
        assert!(started.elapsed() < Duration::from_secs(2), "answered in {:?}", started.elapsed());
        assert_eq!(get(&c, &app, "/login").await.status(), 200);
    }
    // The server closes them once the header read timeout (10 s) has passed.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let mut closed = 0;
    for s in &mut idle {
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
            Ok(Ok(_)) | Ok(Err(_)) => closed += 1, // EOF, a 408 then EOF, or a reset
            Err(_) => {}
        }
    }
    assert_eq!(closed, 300, "every half-open connection was closed by the server");
}

// ---- Session fixation --------------------------------------------------------------------------

/// The value of the session cookie a jar would send to `app`.
fn jar_session(jar: &Jar, app: &TestApp) -> Option<String> {
    let header = jar.cookies(&app.base.parse().unwrap())?;
    header.to_str().unwrap().split(';').find_map(|p| p.trim().strip_prefix("guichet_session=").map(str::to_string))
}

/// A victim's browser holding `planted` as its session cookie, then logging in as Marie.
async fn victim_logs_in_with(app: &TestApp, planted: &str) -> (reqwest::Client, Arc<Jar>) {
    let jar = Arc::new(Jar::default());
    jar.add_cookie_str(&format!("guichet_session={planted}; Path=/"), &app.base.parse().unwrap());
    let victim = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token = app.login_token(MARIE);
    let r = victim.post(app.url(&format!("/login/{token}"))).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    assert_ne!(set_session(&r), planted, "the session id set before login was kept");
    (victim, jar)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_planted_before_login_is_replaced_and_never_gets_the_victims_rights() {
    let app = spawn("", "").await;
    app.ingest(mail(MARIE, "Facture de Marie", "x"));
    app.ingest(mail(BOB, "Ticket de Bob", "y"));

    // A made-up value, in the form of a real id.
    let made_up = "fixated-by-the-attacker-0123456789abcdefgh";
    let (victim, jar) = victim_logs_in_with(&app, made_up).await;
    let now_held = jar_session(&jar, &app).unwrap();
    assert_ne!(now_held, made_up, "the victim's browser still holds the planted id");
    assert!(text(get(&victim, &app, "/").await).await.contains("Facture de Marie"));
    assert_eq!(get(&holding(made_up), &app, "/api/tickets").await.status(), 401);

    // A valid session of the attacker's own login (Bob), planted in the victim's browser.
    let bobs_login = client().post(app.url(&format!("/login/{}", app.login_token(BOB)))).send().await.unwrap();
    let bobs_session = set_session(&bobs_login);
    let (victim, jar) = victim_logs_in_with(&app, &bobs_session).await;
    assert_ne!(jar_session(&jar, &app).unwrap(), bobs_session);
    let list = text(get(&victim, &app, "/").await).await;
    assert!(list.contains("Facture de Marie") && !list.contains("Ticket de Bob"), "{list}");
    // The planted id is not Marie's, and the login ended it: it opens nothing any more.
    let attacker = get(&holding(&bobs_session), &app, "/api/tickets").await;
    assert_eq!(attacker.status(), 401, "the session the browser held before login still works");
}

// ---- CSRF --------------------------------------------------------------------------------------

/// Every POST route of a logged-in person, from the router's own table, as (path for ticket `n`,
/// multipart?, staff only?).
fn forms_of(n: i64) -> Vec<(String, bool, bool)> {
    routes::all()
        .into_iter()
        .filter(|r| r.method == "POST" && r.access != Access::Public)
        .map(|r| (r.path.replace("{n}", &n.to_string()), r.body == Body::Files, r.access == Access::Staff))
        .collect()
}

/// A route's path with its parameter filled in: `n` for tickets, `file` for attachments,
/// `html` for a mail's HTML. A route with a parameter this does not know fails the test, so
/// that whoever adds it says what it names.
fn instance(path: &str, n: i64, file: i64, html: i64) -> String {
    if path.contains("{n}") {
        path.replace("{n}", &n.to_string())
    } else if path == "/attachments/{id}" {
        format!("/attachments/{file}")
    } else if path == "/messages/{id}/html" {
        format!("/messages/{html}/html")
    } else {
        assert!(!path.contains('{'), "a route with a parameter the test does not know: {path}");
        path.to_string()
    }
}

async fn post_form(c: &reqwest::Client, app: &TestApp, path: &str, multipart: bool, csrf: Option<&str>) -> u16 {
    let fields = [
        ("subject", "Sujet"),
        ("body", "Texte"),
        ("reason", "Raison"),
        ("status", "closed"),
        ("priority", "blocking"),
        ("query", "q=x"),
    ];
    let request = c.post(app.url(path));
    let request = if multipart {
        let mut form = Form::new();
        for (k, v) in fields.iter().chain(csrf.map(|t| ("csrf", t)).as_ref()) {
            form = form.text(k.to_string(), v.to_string());
        }
        request.multipart(form.part("files", Part::bytes(b"x".to_vec()).file_name("x.txt")))
    } else {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.extend(csrf.map(|t| ("csrf", t)));
        request.form(&form)
    };
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_form_refuses_a_missing_or_foreign_csrf_token_and_changes_nothing() {
    let app = spawn("", "").await;
    let n = app.ingest(mail(MARIE, "Imprimante", "x"));
    let c_marie = app.client_for(MARIE).await;
    let c_staff = app.client_for(STAFF).await;
    let paul = app.client_for(PAUL).await;
    // A valid token, but of another session (Paul's, who sees the same ticket).
    let foreign = csrf_of(&text(get(&paul, &app, &format!("/tickets/{n}")).await).await);
    let before = (app.outbox().len(), text(get(&c_marie, &app, &format!("/api/tickets/{n}")).await).await);

    for (who, c) in [("customer", &c_marie), ("staff", &c_staff)] {
        for (path, multipart, staff_only) in forms_of(n) {
            for csrf in [None, Some(""), Some(foreign.as_str())] {
                let status = post_form(c, &app, &path, multipart, csrf).await;
                // Staff-only forms answer a customer 404 before anything else (nothing to tell).
                let expected = if who == "customer" && staff_only { 404 } else { 403 };
                assert_eq!(status, expected, "{who} {path} with csrf {csrf:?}");
            }
        }
    }

    let after = (app.outbox().len(), text(get(&c_marie, &app, &format!("/api/tickets/{n}")).await).await);
    assert_eq!(after, before, "a refused form changed something");
    assert_eq!(get(&c_marie, &app, "/api/tickets?status=all").await.json::<Value>().await.unwrap()["total"], 1);
    // And the login forms: a same-site (not same-origin) POST is refused as well.
    let r = client().post(app.url("/login")).header("sec-fetch-site", "same-site").form(&[("email", MARIE)]);
    assert_eq!(r.send().await.unwrap().status(), 403);
    let r = client().post(app.url("/login")).header("origin", "null").form(&[("email", MARIE)]);
    assert_eq!(r.send().await.unwrap().status(), 403);
    assert!(app.outbox_for(MARIE, "login_link").is_empty());
}

// ---- What is not one's own: 404 on every route, identical to what does not exist ---------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_elses_ticket_message_or_file_looks_exactly_like_none_on_every_route() {
    let app = spawn("", "").await;
    let maries =
        app.ingest(mail_with_file(MARIE, "Facture", "Voir pièce jointe", "facture.pdf", "application/pdf", b"%PDF"));
    app.ingest(mail_with(
        MARIE,
        &format!("Re: [Ticket #{maries}] Facture"),
        &[],
        "text/html; charset=utf-8",
        "<p>Version HTML</p>",
    ));
    app.ingest(mail(BOB, "Autre", "Rien à voir"));
    // An internal note with a file: staff's, even for the customer who sees the ticket.
    let alice = app.client_for(STAFF).await;
    let csrf = csrf_of(&text(get(&alice, &app, &format!("/tickets/{maries}")).await).await);
    let note = Form::new()
        .text("csrf", csrf)
        .text("body", "Note interne")
        .part("files", Part::bytes(b"interne".to_vec()).file_name("interne.txt"));
    assert_eq!(
        alice.post(app.url(&format!("/tickets/{maries}/note"))).multipart(note).send().await.unwrap().status(),
        303
    );
    let json: Value = get(&alice, &app, &format!("/api/tickets/{maries}")).await.json().await.unwrap();
    let messages = json["messages"].as_array().unwrap();
    let file = messages[0]["attachments"][0]["id"].as_i64().unwrap();
    let html_message = messages.iter().find(|m| m["html"].is_string()).unwrap()["id"].as_i64().unwrap();
    let note = messages.iter().find(|m| m["kind"] == "note").unwrap();
    let note_file = note["attachments"][0]["id"].as_i64().unwrap();
    const NONE: i64 = 999_999;

    let bob = app.client_for(BOB).await;
    let bob_csrf = csrf_of(&text(get(&bob, &app, "/").await).await);
    let marie = app.client_for(MARIE).await;
    let marie_csrf = csrf_of(&text(get(&marie, &app, "/").await).await);
    let read = |c: &reqwest::Client, path: &str| outcome(c.get(app.url(path)));
    let act = |c: &reqwest::Client, path: &str, csrf: &str| {
        outcome(c.post(app.url(path)).multipart(Form::new().text("csrf", csrf.to_string()).text("body", "intrusion")))
    };
    let post = |c: &reqwest::Client, path: &str, csrf: &str| {
        let fields = [("csrf", csrf), ("reason", "intrusion"), ("status", "closed"), ("priority", "low")];
        outcome(c.post(app.url(path)).form(&fields))
    };

    // Bob, with his own valid CSRF token, on Marie's ticket: every route of the router's table that
    // names a ticket, a message or a file, read or write.
    let mut walked = 0;
    for r in routes::all().into_iter().filter(|r| r.access != Access::Public && r.path.contains('{')) {
        let (theirs, none) = (instance(r.path, maries, file, html_message), instance(r.path, NONE, NONE, NONE));
        let mut answers = Vec::new();
        for path in [&theirs, &none] {
            answers.push(match (r.method, r.body) {
                ("GET", _) => read(&bob, path).await,
                (_, Body::Files) => act(&bob, path, &bob_csrf).await,
                _ => post(&bob, path, &bob_csrf).await,
            });
        }
        let (a, b) = (answers[0].clone(), answers[1].clone());
        assert_eq!(a.0, 404, "{} {theirs}", r.method);
        assert_eq!(a, b, "{} {theirs} does not look like nothing", r.method);
        walked += 1;
    }
    assert!(walked >= 11, "the table's routes with a parameter: {walked}");
    // Nor does the list, its search or its exports let a trace through.
    let listed: Value =
        get(&bob, &app, &format!("/api/tickets?status=all&number={maries}")).await.json().await.unwrap();
    assert_eq!(listed["total"], 0);
    let searched: Value = get(&bob, &app, "/api/tickets?status=all&q=Facture").await.json().await.unwrap();
    assert_eq!(searched["total"], 0);
    let csv = text(get(&bob, &app, "/tickets/export.csv?status=all").await).await;
    assert!(!csv.contains("Facture") && csv.contains("Autre"), "{csv}");

    // Marie sees her ticket, but not the file of staff's note, which looks like nothing too.
    let (a, b) =
        (read(&marie, &format!("/attachments/{note_file}")).await, read(&marie, &format!("/attachments/{NONE}")).await);
    assert_eq!(a.0, 404);
    assert_eq!(a, b, "the file of a note");
    assert_eq!(read(&alice, &format!("/attachments/{note_file}")).await.0, 200, "staff download it");
    let (a, b) = (
        post(&marie, &format!("/tickets/{maries}/status"), &marie_csrf).await,
        post(&marie, &format!("/tickets/{NONE}/status"), &marie_csrf).await,
    );
    assert_eq!((a.0, &a.1), (404, &b.1), "a staff form looks like nothing to a customer");

    // Nothing was changed by all this.
    let after: Value = get(&alice, &app, &format!("/api/tickets/{maries}")).await.json().await.unwrap();
    assert_eq!(after["status"], json["status"]);
    assert_eq!(after["priority"], json["priority"]);
    assert_eq!(after["messages"].as_array().unwrap().len(), messages.len());
}

// ---- Security headers on every kind of answer ---------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_redirects_and_downloads_carry_the_security_headers_too() {
    let app = spawn("", "").await;
    let n = app.ingest(mail_with_file(MARIE, "Facture", "x", "facture.pdf", "application/pdf", b"%PDF"));
    app.ingest(mail_with(MARIE, &format!("Re: [Ticket #{n}] Facture"), &[], "text/html; charset=utf-8", "<p>HTML</p>"));
    let marie = app.client_for(MARIE).await;
    let json: Value = get(&marie, &app, &format!("/api/tickets/{n}")).await.json().await.unwrap();
    let file = json["messages"][0]["attachments"][0]["id"].as_i64().unwrap();
    let html_message = json["messages"][1]["id"].as_i64().unwrap();
    let used = app.login_token(MARIE);
    client().post(app.url(&format!("/login/{used}"))).send().await.unwrap();
    let limited = client_at(loopback(60));
    for _ in 0..5 {
        limited.post(app.url("/login")).form(&[("email", BOB)]).send().await.unwrap();
    }

    let answers: Vec<(&str, reqwest::Response)> = vec![
        ("303 to login", get(&client(), &app, "/").await),
        (
            "303 after a form",
            marie
                .post(app.url(&format!("/tickets/{n}/close")))
                .form(&[("csrf", csrf_of(&text(get(&marie, &app, "/").await).await))])
                .send()
                .await
                .unwrap(),
        ),
        ("400", client().post(app.url("/login")).form(&[("email", "pas une adresse")]).send().await.unwrap()),
        ("401", get(&client(), &app, "/api/tickets").await),
        ("403", marie.post(app.url(&format!("/tickets/{n}/reopen"))).form(&[("reason", "x")]).send().await.unwrap()),
        ("404", get(&marie, &app, "/tickets/999999").await),
        ("405", get(&marie, &app, "/logout").await),
        ("410", get(&client(), &app, &format!("/login/{used}")).await),
        ("429", limited.post(app.url("/login")).form(&[("email", BOB)]).send().await.unwrap()),
        ("download", get(&marie, &app, &format!("/attachments/{file}")).await),
        ("mail html", get(&marie, &app, &format!("/messages/{html_message}/html")).await),
        ("api", get(&marie, &app, &format!("/api/tickets/{n}")).await),
    ];
    let expected_status = [303, 303, 400, 401, 403, 404, 405, 410, 429, 200, 200, 200];
    for ((what, r), status) in answers.iter().zip(expected_status) {
        let h = r.headers();
        assert_eq!(r.status(), status, "{what}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("script-src 'unsafe") && !csp.contains("*"),
            "{what}: {csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'") || csp.contains("sandbox"), "{what}: {csp}");
        assert!(
            h["x-frame-options"] == "DENY" || *what == "mail html" && h["x-frame-options"] == "SAMEORIGIN",
            "{what}"
        );
        assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    }
    // What is personal is never kept by a cache.
    for (what, r) in &answers {
        if ["download", "mail html", "api"].contains(what) {
            assert!(r.headers()["cache-control"].to_str().unwrap().contains("no-store"), "{what}");
        }
    }
}

// ---- Header injection in outgoing mail through the web forms ------------------------------------

/// The header lines of a mail (continuation lines unfolded), as (lower-case name, value).
fn header_fields(data: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(data);
    let head = text.split("\r\n\r\n").next().unwrap();
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            fields.last_mut().expect("a continuation after a field").1.push_str(line);
        } else {
            let (name, value) = line.split_once(':').unwrap_or_else(|| panic!("not a header line: {line:?}"));
            fields.push((name.to_ascii_lowercase(), value.to_string()));
        }
    }
    fields
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_breaks_typed_into_web_forms_never_reach_the_headers_of_outgoing_mail() {
    let app = spawn("", "").await;
    app.ingest(mail(MARIE, "Premier", "x"));
    let marie = app.client_for(MARIE).await;
    let alice = app.client_for(STAFF).await;
    let injected = "\r\nBcc: victim@evil.example\r\nX-Injected: yes\n\nbody";

    // A customer opens tickets whose subject and product carry line breaks (CRLF, LF, CR alone).
    let mut opened = Vec::new();
    for (subject, product) in [
        (format!("Écran noir{injected}"), format!("Poste{injected}")),
        ("Printer\nBcc: victim@evil.example".to_string(), "P\rX-Injected: yes".to_string()),
    ] {
        let csrf = csrf_of(&text(get(&marie, &app, "/tickets/new").await).await);
        let form = Form::new()
            .text("csrf", csrf)
            .text("subject", subject)
            .text("product", product)
            .text("body", "Rien ne s'affiche.");
        let r = marie.post(app.url("/tickets")).multipart(form).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let n: i64 = r.headers()["location"]
            .to_str()
            .unwrap()
            .trim_start_matches("/tickets/")
            .split('?')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        opened.push(n);
    }
    // Then the conversation goes on from the web: staff answer, the customer answers, closes, and
    // reopens with a reason that carries header lines too.
    let n = opened[0];
    for (c, body) in [(&alice, format!("Réponse{injected}")), (&marie, format!("Merci{injected}"))] {
        let csrf = csrf_of(&text(get(c, &app, &format!("/tickets/{n}")).await).await);
        let form = Form::new().text("csrf", csrf).text("body", body);
        assert_eq!(c.post(app.url(&format!("/tickets/{n}/reply"))).multipart(form).send().await.unwrap().status(), 303);
    }
    let csrf = csrf_of(&text(get(&marie, &app, &format!("/tickets/{n}")).await).await);
    marie.post(app.url(&format!("/tickets/{n}/close"))).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    let reason = format!("Revenu{injected}");
    let r = marie
        .post(app.url(&format!("/tickets/{n}/reopen")))
        .form(&[("csrf", csrf.as_str()), ("reason", reason.as_str())]);
    assert_eq!(r.send().await.unwrap().status(), 303);
    // Addresses with header lines are refused outright: the login form, staff opening on behalf.
    let r =
        client().post(app.url("/login")).form(&[("email", "marie.dupont@cisa.example\r\nBcc: victim@evil.example")]);
    assert_eq!(r.send().await.unwrap().status(), 400);
    let csrf = csrf_of(&text(get(&alice, &app, "/tickets/new").await).await);
    let form = Form::new()
        .text("csrf", csrf)
        .text("requester", "marie.dupont@cisa.example\r\nBcc: victim@evil.example")
        .text("subject", "Pour Marie")
        .text("body", "x");
    assert_eq!(alice.post(app.url("/tickets")).multipart(form).send().await.unwrap().status(), 400);

    // Every mail queued: no injected field, no line break left in a subject, only known recipients.
    let mails: Vec<_> =
        app.outbox().into_iter().filter(|r| r.ticket_number.is_some_and(|t| opened.contains(&t))).collect();
    let events: HashSet<&str> = mails.iter().map(|m| m.event.as_str()).collect();
    for e in [
        "ticket_created",
        "staff_alert_created",
        "staff_answer",
        "customer_answer",
        "customer_closed",
        "ticket_reopened",
    ] {
        assert!(events.contains(e), "no {e} mail in {events:?}");
    }
    for m in &mails {
        assert!([MARIE, STAFF].contains(&m.recipient.as_str()), "mail to {}", m.recipient);
        let fields = header_fields(&m.data);
        for (name, value) in &fields {
            assert!(!["bcc", "x-injected"].contains(&name.as_str()), "{} mail: injected `{name}:{value}`", m.event);
        }
        let parsed = mail_parser::MessageParser::default().parse(&m.data[..]).unwrap();
        assert!(parsed.header("Bcc").is_none() && parsed.header("X-Injected").is_none(), "{}", m.event);
        let subject = parsed.subject().unwrap_or_default();
        assert!(!subject.contains(['\r', '\n']), "{} mail: subject {subject:?}", m.event);
        let recipients: Vec<String> = ["To", "Cc"]
            .iter()
            .filter_map(|h| parsed.header(*h))
            .filter_map(|v| v.as_address())
            .flat_map(|a| a.iter().filter_map(|a| a.address()).map(str::to_string).collect::<Vec<_>>())
            .collect();
        assert!(!recipients.iter().any(|r| r.contains("evil")), "{} mail to {recipients:?}", m.event);
    }
    assert!(app.outbox().iter().all(|m| !m.recipient.contains("evil")));
    // And the stored subject is one line.
    let json: Value = get(&marie, &app, &format!("/api/tickets/{n}")).await.json().await.unwrap();
    assert!(!json["subject"].as_str().unwrap().contains(['\r', '\n']), "{}", json["subject"]);
}

// ---- XSS in a real browser -------------------------------------------------------------------------

/// Script that, if it ever runs, leaves a mark in the top page and calls the spy with `label`.
/// No space and no double quote: it fits in an unquoted attribute and in a quoted display name.
fn payload_js(spy: &Spy, label: &str) -> String {
    format!("top.__xss='{label}';fetch('{}/{label}')", spy.base)
}

/// The same for file names, which lose everything up to a slash or a backslash: neither in it.
fn payload_js_for_a_file(spy: &Spy, label: &str) -> String {
    let slash = "'+String.fromCharCode(47)+'";
    payload_js(spy, label).replace('/', slash)
}

/// Percent-encodes a file name for `filename*=utf-8''…` (RFC 2231).
fn rfc2231(name: &str) -> String {
    name.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// Run in a page (or in the mail's frame): what should not be there — the mark of a payload, a
/// script other than ours, an event handler, a `javascript:` URL, an element a payload would bring.
/// An empty list when all is well.
const PAGE_PROBLEMS: &str = r#"
const bad = [];
const show = el => el.outerHTML.slice(0, 100);
if (window.top.__xss !== undefined) bad.push('a payload ran: ' + window.top.__xss);
for (const s of document.querySelectorAll('script')) {
  if (!s.src.endsWith('/static/guichet.js')) bad.push('script ' + show(s));
}
for (const el of document.querySelectorAll('*')) {
  for (const a of el.attributes) {
    const url = a.value.replace(/[\s\x00-\x1f]/g, '');
    if (/^on/i.test(a.name)) bad.push(el.tagName + ' [' + a.name + ']');
    if (/^(javascript|vbscript|data:text)/i.test(url)) bad.push(el.tagName + ' [' + a.name + '=' + a.value + ']');
    if (a.name === 'srcdoc' || a.name === 'formaction') bad.push(el.tagName + ' [' + a.name + ']');
  }
}
const foreign = 'svg, math, object, embed, base, meta[http-equiv], img[src="x"], style, noscript, template';
for (const el of document.querySelectorAll(foreign)) bad.push('element ' + show(el));
for (const f of document.querySelectorAll('iframe')) {
  const ours = f.matches('details.html iframe') && f.getAttribute('src').startsWith('/messages/');
  if (!ours) bad.push('frame ' + show(f));
}
return bad;
"#;

async fn problems(browser: &Session, where_: &str) -> Vec<String> {
    let v = browser.execute(PAGE_PROBLEMS).await;
    v.as_array()
        .unwrap_or_else(|| panic!("{where_}: {v}"))
        .iter()
        .map(|p| format!("{where_}: {}", p.as_str().unwrap_or("")))
        .collect()
}

/// The page's visible text of the elements matching `css`.
async fn texts(browser: &Session, css: &str) -> Vec<String> {
    let v = browser
        .execute(&format!("return Array.from(document.querySelectorAll({css:?})).map(e => e.textContent)"))
        .await;
    v.as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_in_subjects_names_file_names_and_bodies_never_runs_in_a_real_browser() {
    let spy = Spy::start().await;
    let p = |label: &str| payload_js(&spy, label);
    // Payloads for the page's text and attributes, with a label each (which one ran, if one does).
    const MARKUP: &[(&str, &str)] = &[
        ("script", "<script>{js}</script>"),
        ("img", "<img src=x onerror={js}>"),
        ("svg", "<svg onload={js}>"),
        ("js", "<a href=javascript:{js}>lien</a>"),
        ("css", "<div style=width:expression({js})>css</div>"),
        ("title", "</title><script>{js}</script>"),
        ("attr", "\"><img src=x onerror={js}>"),
    ];
    // And more for an HTML body, against the sanitiser (mutation XSS, encoded schemes, frames…).
    const HTML: &[(&str, &str)] = &[
        ("svg-script", "<svg><script>{js}</script></svg>"),
        ("tab-js", "<a href=\"jav&#x09;ascript:{js}\">lien</a>"),
        ("mxss", "<math><mtext><table><mglyph><style><img src=x onerror={js}></style></mglyph></table></mtext></math>"),
        ("noscript", "<noscript><p title=\"</noscript><img src=x onerror={js}>\"></p></noscript>"),
        ("srcdoc", "<iframe srcdoc=\"<script>{js}</script>\"></iframe>"),
        ("formaction", "<form><button formaction=\"javascript:{js}\">go</button></form>"),
        ("object", "<object data=\"javascript:{js}\"></object>"),
        ("toggle", "<details open ontoggle={js}>x</details>"),
        ("focus", "<input autofocus onfocus={js}>"),
        ("base", "<base href=\"javascript:{js}//\">"),
        ("refresh", "<meta http-equiv=\"refresh\" content=\"0;url=javascript:{js}\">"),
    ];
    let fill = |templates: &[(&str, &str)], prefix: &str| {
        let filled: Vec<String> =
            templates.iter().map(|(label, t)| t.replace("{js}", &p(&format!("{prefix}-{label}")))).collect();
        filled.join(" ")
    };
    let subject = fill(MARKUP, "subject");
    // A display name: a quoted string, so no double quote in it.
    let name = format!("<img src=x onerror={}><script>{}</script>", p("name-img"), p("name-script"));
    // File names lose everything up to a slash: none in these.
    let f = |label: &str| payload_js_for_a_file(&spy, label);
    let file_txt = format!("<img src=x onerror={}>.txt", f("file-img"));
    let file_png = format!("\"><svg onload={}>.png", f("file-alt"));
    let file_big = format!("<script>{}<script>.bin", f("file-refused"));
    let body_text = format!("Bonjour.\n{}", fill(MARKUP, "text"));
    let body_html = format!(
        "<html><head><title>x</title></head><body>\n<p>Bonjour, voici le devis.</p>\n{}\n{}\n</body></html>",
        fill(MARKUP, "html"),
        fill(HTML, "html")
    );
    let png = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\nnot really");
    let big = base64::engine::general_purpose::STANDARD.encode(vec![b'A'; 3000]);
    let body = format!(
        "--MIX\r\nContent-Type: multipart/alternative; boundary=\"ALT\"\r\n\r\n\
         --ALT\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body_text}\r\n\
         --ALT\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         {body_html}\r\n--ALT--\r\n\
         --MIX\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename*=utf-8''{}\r\n\r\njournal\r\n\
         --MIX\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\n\
         Content-Disposition: inline; filename*=utf-8''{}\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{png}\r\n\
         --MIX\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=utf-8''{}\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{big}\r\n--MIX--",
        rfc2231(&file_txt),
        rfc2231(&file_png),
        rfc2231(&file_big),
    );
    // Paul writes it; Marie, his colleague (the company shares its tickets), and staff read it.
    let app = spawn("max_attachment_bytes = 2000", "").await;
    let n = app.ingest(mail_with(
        &format!("\"{name}\" <{PAUL}>"),
        &subject,
        &[],
        "multipart/mixed; boundary=\"MIX\"",
        &body,
    ));
    let stored: Value = app
        .app
        .store
        .read(|c| {
            Ok(serde_json::to_value(guichet::store::views::ticket_with_messages(
                c,
                n,
                &guichet::store::visibility::Audience::Customer { email: "x@example.org".into(), shared_company: None },
                "fr",
            )?)?)
        })
        .unwrap();
    assert_eq!(stored["subject"], subject.as_str(), "the subject is stored as sent");
    assert_eq!(stored["messages"][0]["from_name"], name.as_str(), "the name is stored as sent");

    let driver = Driver::start().await;
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.session(profile.path(), "fr-FR").await;
    let mut found = Vec::new();
    for who in [MARIE, STAFF] {
        browser.goto(&app.url(&format!("/login/{}", app.login_token(who)))).await;
        browser.click(&browser.find("#confirm").await).await;
        browser.find("#tickets").await;

        // The list: the subject shows as text, and nothing ran.
        found.extend(problems(&browser, &format!("{who} list")).await);
        assert!(
            texts(&browser, "#tickets td.subject a").await.contains(&subject),
            "{who}: the subject is not shown as text"
        );

        // The ticket: subject (page and title), author, file names, text, and the mail's frame.
        browser.goto(&app.url(&format!("/tickets/{n}"))).await;
        browser.find("#ticket-subject").await;
        assert_eq!(texts(&browser, "#ticket-subject").await, vec![subject.clone()]);
        assert!(
            browser.title().await.starts_with(&format!("#{n} {subject}")),
            "{who}: title {}",
            browser.title().await
        );
        assert!(texts(&browser, ".msg .author").await.contains(&name), "{who}: the name is not shown as text");
        let files = texts(&browser, ".files a.file").await;
        assert!(files.contains(&file_txt) && files.contains(&file_png), "{who}: {files:?}");
        let alt = browser.execute("return Array.from(document.querySelectorAll('.files img')).map(i => i.alt)").await;
        assert_eq!(alt, serde_json::json!([file_png]), "{who}: the image's alt text");
        assert!(texts(&browser, ".refused li").await.iter().any(|t| t.contains(&file_big)), "{who}: refused file");
        assert!(
            texts(&browser, ".msg .text").await.iter().any(|t| t.contains(&fill(MARKUP, "text"))),
            "{who}: text body"
        );
        browser.click(&browser.find("details.html summary").await).await;
        let frame = browser.find("details.html iframe").await;
        assert!(
            browser
                .wait_until(
                    "const d = document.querySelector('details.html iframe').contentDocument; \
                     return !!d && d.readyState === 'complete' && !!d.body \
                         && d.body.textContent.includes('voici le devis')",
                    Duration::from_secs(10)
                )
                .await,
            "{who}: the mail shows in its frame"
        );
        found.extend(problems(&browser, &format!("{who} ticket")).await);
        browser.enter_frame(&frame).await;
        found.extend(problems(&browser, &format!("{who} mail frame")).await);
        browser.leave_frame().await;
    }
    // Whatever was started asynchronously (a fetch, an image) has had time to arrive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    found.extend(problems(&browser, "at the end").await);
    browser.quit().await;
    assert_eq!(spy.seen(), Vec::<String>::new(), "a payload ran or loaded something");
    assert!(found.is_empty(), "{found:#?}");
}
