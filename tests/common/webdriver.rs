//! A tiny W3C WebDriver client for end-to-end tests in real headless Chromium: starts
//! `chromedriver` on a free port (Debian packages `chromium` and `chromium-driver`), opens one
//! browser session with a throw-away profile, and speaks JSON to it with reqwest. Only what the
//! tests use: navigate, find, click, type, run a script, read, frames, screenshots.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Chromium's real binary (Debian's /usr/bin/chromium is a wrapper script).
fn chromium_binary() -> &'static str {
    ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("/usr/bin/chromium")
}

/// A running chromedriver; stopped (this process only, by its handle) when dropped.
pub struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts chromedriver on a free loopback port and waits until it is ready.
    pub async fn start() -> Driver {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists(),
            "{CHROMEDRIVER} is missing: install the Debian packages chromium and chromium-driver (scripts/install-test-deps)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver { child, base: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new() };
        // Generous: on 2 busy cores (a build beside the tests) its start took over 20 s once.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = driver.http.get(format!("{}/status", driver.base)).send().await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        driver
    }

    /// A new headless browser with its own empty profile under `profile`.
    pub async fn session(&self, profile: &std::path::Path, accept_language: &str) -> Session {
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1200,900".into(),
            format!("--lang={accept_language}"),
            format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium_binary(), "args": args,
                                   "prefs": {"intl.accept_languages": accept_language}},
        }}});
        let r: Value =
            self.http.post(format!("{}/session", self.base)).json(&caps).send().await.unwrap().json().await.unwrap();
        let id = r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no browser session: {r}")).to_string();
        Session { http: self.http.clone(), base: format!("{}/session/{id}", self.base) }
    }
}

/// One browser; closed when dropped is not possible asynchronously, so call [`Session::quit`].
pub struct Session {
    http: reqwest::Client,
    base: String,
}

/// An element reference.
#[derive(Clone, Debug)]
pub struct Element(pub String);

impl Session {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        if let Some(err) = v["value"].get("error") {
            panic!("webdriver {path}: {err} {}", v["value"]["message"]);
        }
        v["value"].clone()
    }

    async fn try_call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
        match v["value"].get("error") {
            Some(err) => Err(format!("{err}")),
            None => Ok(v["value"].clone()),
        }
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_string()
    }

    pub async fn title(&self) -> String {
        self.call(reqwest::Method::GET, "/title", None).await.as_str().unwrap_or_default().to_string()
    }

    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None).await.as_str().unwrap_or_default().to_string()
    }

    pub async fn find(&self, css: &str) -> Element {
        match self.wait_for(css, Duration::from_secs(10)).await {
            Some(e) => e,
            None => {
                let source: String = self.source().await.chars().take(3000).collect();
                panic!("no element `{css}` on {}:\n{source}", self.url().await)
            }
        }
    }

    /// The first element matching `css`, waiting up to `timeout` for it to appear.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Option<Element> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .try_call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css})))
                .await;
            if let Ok(v) = found
                && let Some(id) = v[ELEMENT].as_str()
            {
                return Some(Element(id.to_string()));
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, e: &Element) {
        self.call(reqwest::Method::POST, &format!("/element/{}/click", e.0), Some(json!({}))).await;
    }

    /// Types `text` into an input (for a file input: the file's path).
    pub async fn type_into(&self, e: &Element, text: &str) {
        self.call(reqwest::Method::POST, &format!("/element/{}/value", e.0), Some(json!({"text": text}))).await;
    }

    pub async fn clear(&self, e: &Element) {
        self.call(reqwest::Method::POST, &format!("/element/{}/clear", e.0), Some(json!({}))).await;
    }

    pub async fn text(&self, e: &Element) -> String {
        self.call(reqwest::Method::GET, &format!("/element/{}/text", e.0), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs a synchronous script in the page and returns its value.
    pub async fn execute(&self, script: &str) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": []}))).await
    }

    /// Enters a frame of the current page.
    pub async fn enter_frame(&self, e: &Element) {
        self.call(reqwest::Method::POST, "/frame", Some(json!({"id": {ELEMENT: e.0}}))).await;
    }

    pub async fn leave_frame(&self) {
        self.call(reqwest::Method::POST, "/frame/parent", Some(json!({}))).await;
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let b64 = self.call(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap_or_default()).unwrap_or_default()
    }

    /// Waits until `script` returns `true`, up to `timeout`.
    pub async fn wait_until(&self, script: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.execute(script).await == Value::Bool(true) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn quit(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}
