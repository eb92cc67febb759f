//! `[[mailbox]]` and `[smtp]`: the mail servers Guichet logs in to, how (TLS, password or
//! OAuth 2.0) and whom it trusts.

use std::path::PathBuf;

use serde::Deserialize;

use crate::oauth::{AuthMethod, Grant, OAuthConfig, Provider};

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    Tls,
    Starttls,
    None,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FirstRun {
    Process,
    Archive,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxSettings {
    /// A name for logs and `status`; `username@host/folder` when absent.
    #[serde(default)]
    pub name: Option<String>,
    pub host: String,
    #[serde(default = "default_imap_port")]
    pub port: u16,
    #[serde(default = "default_tls")]
    pub tls: TlsMode,
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// A private CA (PEM) trusted besides the system's trust store (SPEC §9).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The password read from a file instead (SPEC §9): a relative name is looked up in
    /// `$CREDENTIALS_DIRECTORY` (systemd's `LoadCredential`) first.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default = "default_folder")]
    pub folder: String,
    #[serde(default = "default_processed")]
    pub processed_folder: String,
    #[serde(default = "default_first_run")]
    pub on_first_run: FirstRun,
    #[serde(default = "default_poll")]
    pub poll_seconds: u64,
    #[serde(default)]
    pub service: Option<String>,
    /// Mails fetched per IMAP round trip.
    #[serde(default = "default_batch")]
    pub batch_size: u32,
    /// SPEC §8 queue: with `address`, this mailbox is a queue of its own — its tickets are answered
    /// from this address, under its `name`, in its `language`, and alerted to its `staff` (each
    /// falling back to `[helpdesk]`'s). Without, it feeds the helpdesk's queue.
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub staff: Option<Vec<String>>,
    /// SPEC §9: `password` (default), `xoauth2` or `oauthbearer`; the `oauth_*` keys below go with
    /// the last two (`crate::oauth`).
    #[serde(default)]
    pub auth: AuthMethod,
    #[serde(default)]
    pub oauth_provider: Option<Provider>,
    /// Microsoft's tenant (a domain or id); "organizations" when absent.
    #[serde(default)]
    pub oauth_tenant: Option<String>,
    #[serde(default)]
    pub oauth_token_url: Option<String>,
    #[serde(default)]
    pub oauth_device_url: Option<String>,
    #[serde(default)]
    pub oauth_client_id: Option<String>,
    #[serde(default)]
    pub oauth_client_secret: Option<String>,
    /// As `password_file`.
    #[serde(default)]
    pub oauth_client_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub oauth_scopes: Option<Vec<String>>,
    #[serde(default)]
    pub oauth_grant: Grant,
    /// The resolved OAuth settings (presets applied, secret read), set at load.
    #[serde(skip)]
    pub oauth: Option<OAuthConfig>,
}

impl MailboxSettings {
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| format!("{}@{}/{}", self.username, self.host, self.folder))
    }
}

fn default_imap_port() -> u16 {
    993
}
fn default_tls() -> TlsMode {
    TlsMode::Tls
}
fn default_folder() -> String {
    "INBOX".into()
}
fn default_processed() -> String {
    "Processed".into()
}
fn default_first_run() -> FirstRun {
    FirstRun::Process
}
fn default_poll() -> u64 {
    30
}
fn default_batch() -> u32 {
    100
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTransport {
    #[default]
    Smtp,
    File,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    #[serde(default)]
    pub transport: SmtpTransport,
    #[serde(default = "default_smtp_host")]
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    #[serde(default = "default_smtp_tls")]
    pub tls: TlsMode,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// As `[[mailbox]].password_file`.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// As `[[mailbox]].ca_file`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// For `transport = "file"`: where the .eml files go.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    #[serde(default = "default_smtp_timeout")]
    pub timeout_seconds: u64,
    /// The same OAuth keys as `[[mailbox]]` (declared twice: serde cannot flatten a shared struct
    /// into one that denies unknown keys); `oauthbearer` is refused for SMTP (lettre has XOAUTH2).
    #[serde(default)]
    pub auth: AuthMethod,
    #[serde(default)]
    pub oauth_provider: Option<Provider>,
    /// Microsoft's tenant (a domain or id); "organizations" when absent.
    #[serde(default)]
    pub oauth_tenant: Option<String>,
    #[serde(default)]
    pub oauth_token_url: Option<String>,
    #[serde(default)]
    pub oauth_device_url: Option<String>,
    #[serde(default)]
    pub oauth_client_id: Option<String>,
    #[serde(default)]
    pub oauth_client_secret: Option<String>,
    /// As `password_file`.
    #[serde(default)]
    pub oauth_client_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub oauth_scopes: Option<Vec<String>>,
    #[serde(default)]
    pub oauth_grant: Grant,
    /// The resolved OAuth settings (presets applied, secret read), set at load.
    #[serde(skip)]
    pub oauth: Option<OAuthConfig>,
}

fn default_smtp_host() -> String {
    "127.0.0.1".into()
}
fn default_smtp_port() -> u16 {
    587
}
fn default_smtp_tls() -> TlsMode {
    TlsMode::Starttls
}
fn default_smtp_timeout() -> u64 {
    30
}
