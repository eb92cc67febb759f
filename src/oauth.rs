//! OAuth 2.0 for IMAP and SMTP (SPEC §9): the device-code login that obtains a refresh token
//! (`guichet oauth-login`), and the access tokens the mail clients log in with — obtained from the
//! stored refresh token (or by `client_credentials`), cached in memory until shortly before they
//! expire, and dropped after the mail server refuses one.
//!
//! Tokens never reach a log line; errors name the account and what to do about it.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::store::{self, Store, oauth_tokens};

/// An access token is renewed this long before the provider says it expires: a login that
/// starts just before the expiry must not be refused halfway.
const RENEW_AHEAD: Duration = Duration::from_secs(60);
/// A provider that gives no lifetime: assume one hour (RFC 6749 makes `expires_in` optional).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The SASL mechanism the mail server is asked for.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    #[default]
    Password,
    Xoauth2,
    Oauthbearer,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    /// A person logs in once (`guichet oauth-login`); the refresh token is kept in the database.
    #[default]
    RefreshToken,
    /// The application's own credentials, no person involved (app-only access).
    ClientCredentials,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Microsoft,
    Google,
}

/// One account's resolved OAuth settings (provider presets applied, secrets read).
#[derive(Clone, Debug)]
pub struct OAuthConfig {
    pub method: AuthMethod,
    pub username: String,
    pub token_url: String,
    pub device_url: Option<String>,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
    pub grant: Grant,
}

/// What a provider preset fills in: token URL, device URL and scopes for `grant`.
pub fn preset(provider: Provider, tenant: &str, grant: Grant) -> (String, String, Vec<String>) {
    match provider {
        Provider::Microsoft => {
            let base = format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0");
            let scopes: &[&str] = match grant {
                Grant::RefreshToken => &[
                    "https://outlook.office365.com/IMAP.AccessAsUser.All",
                    "https://outlook.office365.com/SMTP.Send",
                    "offline_access",
                ],
                Grant::ClientCredentials => &["https://outlook.office365.com/.default"],
            };
            (format!("{base}/token"), format!("{base}/devicecode"), scopes.iter().map(|s| s.to_string()).collect())
        }
        Provider::Google => (
            "https://oauth2.googleapis.com/token".into(),
            "https://oauth2.googleapis.com/device/code".into(),
            vec!["https://mail.google.com/".into()],
        ),
    }
}

/// The SASL initial response for `method` (XOAUTH2, or OAUTHBEARER of RFC 7628).
pub fn sasl_response(method: AuthMethod, username: &str, token: &str, host: &str, port: u16) -> String {
    match method {
        AuthMethod::Oauthbearer => {
            format!("n,a={username},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01")
        }
        _ => format!("user={username}\x01auth=Bearer {token}\x01\x01"),
    }
}

impl AuthMethod {
    /// The name of the SASL mechanism, as IMAP's AUTHENTICATE takes it.
    pub fn sasl_name(self) -> &'static str {
        match self {
            AuthMethod::Oauthbearer => "OAUTHBEARER",
            _ => "XOAUTH2",
        }
    }
}

/// Why no access token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Nothing will work until a person logs in again: no refresh token, or it was refused.
    #[error("{0}")]
    NeedsLogin(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The token endpoint's answer (RFC 6749 §5.1) or error (§5.2).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<u64>,
    error: Option<String>,
    error_description: Option<String>,
}

impl TokenResponse {
    fn error_text(&self) -> String {
        let error = self.error.as_deref().unwrap_or("no access_token");
        match &self.error_description {
            Some(d) => format!("{error}: {d}"),
            None => error.to_string(),
        }
    }
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder().timeout(HTTP_TIMEOUT).build().context("cannot build the HTTP client")
}

/// POSTs a form to the token endpoint; error answers (400 with `error`) come back as values.
async fn token_request(
    http: &reqwest::Client,
    config: &OAuthConfig,
    form: &[(&str, &str)],
) -> anyhow::Result<TokenResponse> {
    // An empty scope is left out: the provider's default scopes apply.
    let mut form: Vec<(&str, &str)> = form.iter().copied().filter(|(k, v)| !(*k == "scope" && v.is_empty())).collect();
    form.push(("client_id", &config.client_id));
    if let Some(secret) = &config.client_secret {
        form.push(("client_secret", secret));
    }
    let answer = http
        .post(&config.token_url)
        .form(&form)
        .send()
        .await
        .with_context(|| format!("cannot reach the token endpoint {}", config.token_url))?;
    let status = answer.status();
    let body = answer.text().await.context("token endpoint: reading the answer")?;
    serde_json::from_str(&body)
        .with_context(|| format!("token endpoint {}: unexpected answer (HTTP {status})", config.token_url))
}

/// The access tokens of one account, cached in memory. One per mailbox loop or SMTP sender.
pub struct TokenSource {
    config: OAuthConfig,
    store: Store,
    http: reqwest::Client,
    cached: tokio::sync::Mutex<Option<(String, Instant)>>,
}

impl TokenSource {
    pub fn new(config: OAuthConfig, store: Store) -> anyhow::Result<TokenSource> {
        Ok(TokenSource { config, store, http: http_client()?, cached: tokio::sync::Mutex::new(None) })
    }

    pub fn config(&self) -> &OAuthConfig {
        &self.config
    }

    /// A valid access token: the cached one unless it expires within a minute, else a new one.
    pub async fn access_token(&self) -> Result<String, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, renew_at)) = cached.as_ref()
            && Instant::now() < *renew_at
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = self.fetch().await?;
        let renew_at = Instant::now() + lifetime.saturating_sub(RENEW_AHEAD).max(lifetime / 2);
        *cached = Some((token.clone(), renew_at));
        Ok(token)
    }

    /// The server refused the token (revoked, or expired early): the next call fetches a new one.
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(&self) -> Result<(String, Duration), TokenError> {
        let config = &self.config;
        let user = &config.username;
        let scope = config.scopes.join(" ");
        let answer = match config.grant {
            Grant::ClientCredentials => {
                let answer =
                    token_request(&self.http, config, &[("grant_type", "client_credentials"), ("scope", &scope)])
                        .await?;
                if answer.error.as_deref() == Some("invalid_client") {
                    return Err(TokenError::NeedsLogin(format!(
                        "the identity provider refused the client credentials of {user} ({}): check oauth_client_id and oauth_client_secret",
                        answer.error_text()
                    )));
                }
                answer
            }
            Grant::RefreshToken => {
                // Read at every refresh: another process (or this one's SMTP sender) may have rotated it.
                let name = user.clone();
                let refresh = self.store.run(move |s| s.read(|c| oauth_tokens::get(c, &name))).await?;
                let Some(refresh) = refresh else {
                    return Err(TokenError::NeedsLogin(format!(
                        "no OAuth refresh token for {user}: run guichet oauth-login {user}"
                    )));
                };
                let answer = token_request(
                    &self.http,
                    config,
                    &[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("scope", &scope)],
                )
                .await?;
                if answer.error.as_deref() == Some("invalid_grant") {
                    // Expired or revoked: kept anyway (a new login replaces it), so that every
                    // retry says the same thing in `status`.
                    return Err(TokenError::NeedsLogin(format!(
                        "the OAuth refresh token of {user} was refused ({}): run guichet oauth-login {user}",
                        answer.error_text()
                    )));
                }
                if let Some(new) = answer.refresh_token.as_ref().filter(|new| **new != refresh) {
                    let (name, new) = (user.clone(), new.clone());
                    self.store.run(move |s| s.write(|c| oauth_tokens::put(c, &name, &new, store::now()))).await?;
                    tracing::info!(account = %user, "the identity provider rotated the refresh token; the new one is kept");
                }
                answer
            }
        };
        let lifetime = answer.expires_in.map(Duration::from_secs).unwrap_or(DEFAULT_LIFETIME);
        match answer.access_token {
            Some(token) => Ok((token, lifetime)),
            None => Err(TokenError::Unexpected(anyhow::anyhow!(
                "the token endpoint gave no access token for {user} ({})",
                answer.error_text()
            ))),
        }
    }
}

/// The device authorization answer (RFC 8628 §3.2).
#[derive(Deserialize)]
struct DeviceAuthorization {
    device_code: String,
    user_code: String,
    verification_uri: Option<String>,
    /// Google's older name for it.
    verification_url: Option<String>,
    expires_in: Option<u64>,
    interval: Option<u64>,
}

/// `guichet oauth-login`: the device-code flow (RFC 8628). Prints where to go and what to type,
/// polls until the person approves, then keeps the refresh token for `config.username`.
pub async fn device_login(config: &OAuthConfig, store: &Store, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    if config.grant == Grant::ClientCredentials {
        bail!("{} uses oauth_grant = \"client_credentials\": no login is needed", config.username);
    }
    let Some(device_url) = &config.device_url else {
        bail!("no oauth_device_url (or oauth_provider) for {}", config.username);
    };
    let http = http_client()?;
    let scope = config.scopes.join(" ");
    let answer = http
        .post(device_url)
        .form(&[("client_id", config.client_id.as_str()), ("scope", scope.as_str())])
        .send()
        .await
        .with_context(|| format!("cannot reach the device authorization endpoint {device_url}"))?;
    let status = answer.status();
    let body = answer.text().await?;
    if !status.is_success() {
        bail!("the device authorization endpoint {device_url} answered HTTP {status}: {body}");
    }
    let device: DeviceAuthorization =
        serde_json::from_str(&body).with_context(|| format!("{device_url}: unexpected answer"))?;
    let uri = device.verification_uri.or(device.verification_url).context("no verification_uri in the answer")?;
    writeln!(out, "To let guichet read mail as {}, open {uri} and type {}", config.username, device.user_code)?;
    out.flush()?;

    let mut interval = Duration::from_secs(device.interval.unwrap_or(5).max(1));
    let deadline = Instant::now() + Duration::from_secs(device.expires_in.unwrap_or(900));
    loop {
        tokio::time::sleep(interval).await;
        if Instant::now() > deadline {
            bail!("the code expired before it was approved: run guichet oauth-login {} again", config.username);
        }
        let grant =
            [("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", &device.device_code)];
        let answer = token_request(&http, config, &grant).await?;
        match answer.error.as_deref() {
            Some("authorization_pending") => continue,
            // RFC 8628 §3.5: wait 5 s longer from now on.
            Some("slow_down") => interval += Duration::from_secs(5),
            Some("expired_token") => {
                bail!("the code expired before it was approved: run guichet oauth-login {} again", config.username)
            }
            Some(_) => bail!("the identity provider refused the login: {}", answer.error_text()),
            None => {
                let refresh = answer
                    .refresh_token
                    .context("the identity provider gave no refresh token (Microsoft: add the offline_access scope)")?;
                let name = config.username.clone();
                store.run(move |s| s.write(|c| oauth_tokens::put(c, &name, &refresh, store::now()))).await?;
                writeln!(out, "Logged in: the refresh token of {} is kept in the database", config.username)?;
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_strings_follow_the_mechanisms() {
        assert_eq!(sasl_response(AuthMethod::Xoauth2, "u@x", "T", "h", 1), "user=u@x\x01auth=Bearer T\x01\x01");
        assert_eq!(
            sasl_response(AuthMethod::Oauthbearer, "u@x", "T", "imap.x", 993),
            "n,a=u@x,\x01host=imap.x\x01port=993\x01auth=Bearer T\x01\x01"
        );
    }

    #[test]
    fn presets_fill_in_urls_and_scopes() {
        let (token, device, scopes) = preset(Provider::Microsoft, "contoso", Grant::RefreshToken);
        assert_eq!(token, "https://login.microsoftonline.com/contoso/oauth2/v2.0/token");
        assert_eq!(device, "https://login.microsoftonline.com/contoso/oauth2/v2.0/devicecode");
        assert!(scopes.contains(&"offline_access".to_string()));
        let (_, _, scopes) = preset(Provider::Microsoft, "contoso", Grant::ClientCredentials);
        assert_eq!(scopes, ["https://outlook.office365.com/.default"]);
        let (token, _, scopes) = preset(Provider::Google, "", Grant::RefreshToken);
        assert_eq!(
            (token.as_str(), scopes[0].as_str()),
            ("https://oauth2.googleapis.com/token", "https://mail.google.com/")
        );
    }
}
