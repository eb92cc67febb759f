//! Settings and their loading: built-in defaults → `config/default.toml` → the `-c` file (or
//! `GUICHET_CONFIG`) → `GUICHET__SECTION__KEY` environment variables. Unknown keys and bad values
//! are errors that name the key.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::domain::{EmailAddress, ForwardPrefixes, StaffList, SubjectToken};

/// The defaults compiled into the binary (the same file as `config/default.toml`).
mod oauth;
mod secrets;
mod servers;
mod timers;
mod web;

pub use servers::{FirstRun, MailboxSettings, Smtp, SmtpTransport, TlsMode};
pub use timers::{Timers, parse_duration, parse_time_of_day};
pub use web::Web;

const BUILT_IN_DEFAULTS: &str = include_str!("../../config/default.toml");

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub helpdesk: Helpdesk,
    pub database: Database,
    #[serde(default, rename = "mailbox")]
    pub mailboxes: Vec<MailboxSettings>,
    #[serde(default)]
    pub smtp: Option<Smtp>,
    pub web: Web,
    #[serde(default, rename = "company")]
    pub companies: Vec<Company>,
    #[serde(default)]
    pub timers: Timers,
    #[serde(default)]
    pub log: crate::ops::LogSettings,
    #[serde(default)]
    pub retention: crate::ops::RetentionSettings,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Helpdesk {
    pub address: String,
    pub name: String,
    pub subject_tag: String,
    pub public_url: String,
    pub language: String,
    #[serde(default)]
    pub staff: Vec<String>,
    /// Where new tickets and customer answers are announced; the staff addresses when empty.
    #[serde(default)]
    pub staff_notify: Vec<String>,
    pub max_attachment_bytes: u64,
    pub reopen_window_days: u32,
    #[serde(default)]
    pub legacy_subject_tags: Vec<String>,
    pub max_message_bytes: u64,
    #[serde(default)]
    pub auto_reply_limit: AutoReplyLimit,
    #[serde(default)]
    pub trusted_authserv_id: Option<String>,
    #[serde(default)]
    pub templates_dir: Option<PathBuf>,
    /// Other addresses of ours (aliases): never a watcher, never sent automatic mail.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Thread `<local>+<n>@domain` recipients into ticket n.
    #[serde(default)]
    pub plus_addressing: bool,
    /// The receiving server's spam verdicts, as `"Header-Name: value"`: a mail with such a header
    /// (name in any case, value starting so, in any case) goes to quarantine with reason `spam`.
    #[serde(default = "default_spam_headers")]
    pub spam_headers: Vec<String>,
    /// SPEC §8: a staff member who answers an unassigned ticket takes it.
    #[serde(default = "yes")]
    pub take_on_answer: bool,
    /// SPEC §8: a new ticket's priority follows `Importance` / `X-Priority`.
    #[serde(default = "yes")]
    pub mail_priority: bool,
    /// Time zone of the digest and of times shown without JavaScript (IANA name).
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Subject prefixes, without their colon, that mark a forward besides the built-in ones of
    /// every language (`Fwd`, `TR`, `WG`, `RV`, `I`, `Doorst`, `PD`…).
    #[serde(default)]
    pub forward_prefixes: Vec<String>,
}

fn yes() -> bool {
    true
}
fn default_time_zone() -> String {
    "Europe/Paris".into()
}

fn default_spam_headers() -> Vec<String> {
    ["X-Spam-Flag: YES", "X-Spam: Yes", "X-Spam-Status: Yes"].map(String::from).to_vec()
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoReplyLimit {
    pub count: u32,
    pub hours: u32,
}

impl Default for AutoReplyLimit {
    fn default() -> Self {
        AutoReplyLimit { count: 10, hours: 3 }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    pub url: String,
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
}

fn default_pool_size() -> u32 {
    8
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Company {
    pub name: String,
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub shared: bool,
}

impl Settings {
    /// Loads every layer. `file` is the `-c` argument (or `GUICHET_CONFIG`).
    pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, Path::new("config/default.toml"), &env)
    }

    /// Built-in defaults, then `overlay` (TOML text), then the environment: the demo's settings.
    pub fn with_overlay(overlay: &str) -> anyhow::Result<Settings> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::build(None, None, Some(overlay), &env)
    }

    /// Loads with an explicit environment (tests) and default-file location.
    pub fn load_from(file: Option<&Path>, default_file: &Path, env: &[(String, String)]) -> anyhow::Result<Settings> {
        Self::build(Some(default_file), file, None, env)
    }

    fn build(
        default_file: Option<&Path>,
        file: Option<&Path>,
        overlay: Option<&str>,
        env: &[(String, String)],
    ) -> anyhow::Result<Settings> {
        let mut builder =
            config::Config::builder().add_source(config::File::from_str(BUILT_IN_DEFAULTS, config::FileFormat::Toml));
        if let Some(text) = overlay {
            builder = builder.add_source(config::File::from_str(text, config::FileFormat::Toml));
        }
        let default_file = default_file.filter(|f| f.exists());
        if let Some(default_file) = default_file {
            builder = builder.add_source(config::File::from(default_file).format(config::FileFormat::Toml));
        }
        if let Some(path) = file {
            if !path.exists() {
                bail!("configuration file {} does not exist", path.display());
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        for (key, value) in env {
            let Some(rest) = key.strip_prefix("GUICHET__") else { continue };
            let path = env_path(rest);
            builder = builder.set_override(path.clone(), env_value(&path, value)).context(path)?;
        }
        let raw = builder.build().context("cannot read the configuration")?;
        let mut settings: Settings = raw.try_deserialize().map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        settings.read_secret_files(env, file.and_then(Path::parent))?;
        settings.resolve_oauth()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let h = &self.helpdesk;
        if EmailAddress::parse(&h.address).is_none() {
            bail!("configuration: helpdesk.address `{}` is not an email address", h.address);
        }
        if !crate::catalog::languages().any(|l| l == h.language) {
            bail!("configuration: helpdesk.language must be one of {}, not `{}`", known_languages(), h.language);
        }
        if !(h.public_url.starts_with("http://") || h.public_url.starts_with("https://")) {
            bail!("configuration: helpdesk.public_url must start with http:// or https://");
        }
        if h.subject_tag.trim().is_empty() || h.subject_tag.contains(['[', ']', '#']) {
            bail!("configuration: helpdesk.subject_tag must be a plain word");
        }
        for s in h.staff.iter().chain(&h.staff_notify).chain(&h.aliases) {
            let ok = match s.strip_prefix('@') {
                Some(domain) => !domain.is_empty() && !domain.contains('@'),
                None => EmailAddress::parse(s).is_some(),
            };
            if !ok {
                bail!("configuration: helpdesk.staff entry `{s}` is neither an address nor @domain");
            }
        }
        for rule in &h.spam_headers {
            if rule.split_once(':').is_none_or(|(name, value)| name.trim().is_empty() || value.trim().is_empty()) {
                bail!("configuration: helpdesk.spam_headers entry `{rule}` must read `Header-Name: value`");
            }
        }
        for prefix in &h.forward_prefixes {
            // A prefix is matched before its colon: one inside it could never match.
            if prefix.trim().is_empty() || prefix.contains([':', '：']) {
                bail!("configuration: helpdesk.forward_prefixes entry `{prefix}` must be a word without its colon");
            }
        }
        if h.max_attachment_bytes == 0 {
            bail!("configuration: helpdesk.max_attachment_bytes must be positive");
        }
        if h.auto_reply_limit.hours == 0 {
            bail!("configuration: helpdesk.auto_reply_limit.hours must be positive");
        }
        if !(self.database.url.starts_with("sqlite://") || self.database.url.starts_with("postgres")) {
            bail!("configuration: database.url must start with sqlite:// or postgres://");
        }
        for (key, value) in self.timers.entries() {
            if let Err(e) = parse_duration(value) {
                bail!("configuration: timers.{key} {e}");
            }
        }
        if self.helpdesk.time_zone.parse::<chrono_tz::Tz>().is_err() {
            bail!(
                "configuration: helpdesk.time_zone `{}` is not an IANA time zone (e.g. Europe/Paris)",
                self.helpdesk.time_zone
            );
        }
        if let Err(e) = parse_time_of_day(&self.timers.digest_at) {
            bail!("configuration: timers.digest_at {e}");
        }
        for (i, m) in self.mailboxes.iter().enumerate() {
            if m.password.is_empty() && m.oauth.is_none() {
                bail!("configuration: mailbox[{i}].password (or password_file) is required");
            }
            if let Some(file) = &m.ca_file {
                crate::tls::roots(Some(file))
                    .map_err(|e| anyhow::anyhow!("configuration: mailbox[{i}].ca_file: {e:#}"))?;
            }
            if let Some(address) = &m.address
                && EmailAddress::parse(address).is_none()
            {
                bail!("configuration: mailbox[{i}].address `{address}` is not an email address");
            }
            if let Some(language) = &m.language
                && !crate::catalog::languages().any(|l| l == language)
            {
                bail!("configuration: mailbox[{i}].language must be one of {}, not `{language}`", known_languages());
            }
            for s in m.staff.iter().flatten() {
                if EmailAddress::parse(s).is_none() && !s.starts_with('@') {
                    bail!("configuration: mailbox[{i}].staff entry `{s}` is neither an address nor @domain");
                }
            }
            if m.tls == TlsMode::None && !is_loopback(&m.host) {
                bail!("configuration: mailbox[{i}].tls = \"none\" is allowed only for loopback hosts");
            }
            if m.poll_seconds == 0 {
                bail!("configuration: mailbox[{i}].poll_seconds must be positive");
            }
            if m.batch_size == 0 {
                bail!("configuration: mailbox[{i}].batch_size must be positive");
            }
        }
        if let Some(smtp) = &self.smtp {
            if let Some(file) = &smtp.ca_file {
                crate::tls::roots(Some(file)).map_err(|e| anyhow::anyhow!("configuration: smtp.ca_file: {e:#}"))?;
            }
            if smtp.transport == SmtpTransport::File && smtp.dir.is_none() {
                bail!("configuration: smtp.dir is required with smtp.transport = \"file\"");
            }
            if smtp.transport == SmtpTransport::Smtp && smtp.tls == TlsMode::None && !is_loopback(&smtp.host) {
                bail!("configuration: smtp.tls = \"none\" is allowed only for loopback hosts");
            }
        }
        if self.web.listen.parse::<std::net::SocketAddr>().is_err() {
            bail!("configuration: web.listen `{}` is not an address:port", self.web.listen);
        }
        let metrics = &self.web.metrics_listen;
        if !metrics.is_empty() && metrics.parse::<std::net::SocketAddr>().is_err() {
            bail!("configuration: web.metrics_listen `{metrics}` is not an address:port (or \"\" for none)");
        }
        if !metrics.is_empty() && *metrics == self.web.listen {
            bail!("configuration: web.metrics_listen must differ from web.listen: /metrics is never public");
        }
        for proxy in &self.web.trusted_proxies {
            if web::parse_network(proxy).is_none() {
                bail!("configuration: web.trusted_proxies entry `{proxy}` is neither an address nor a CIDR");
            }
        }
        if self.web.max_connections == 0 {
            bail!("configuration: web.max_connections must be positive");
        }
        crate::ops::validate(self)?;
        Ok(())
    }

    pub fn helpdesk_address(&self) -> EmailAddress {
        EmailAddress::parse(&self.helpdesk.address).expect("validated at load")
    }

    /// Every staff member: the helpdesk's and every queue's.
    pub fn staff(&self) -> StaffList {
        let mut all = self.helpdesk.staff.clone();
        all.extend(self.mailboxes.iter().flat_map(|m| m.staff.iter().flatten().cloned()));
        StaffList::new(&all)
    }

    pub fn token(&self) -> SubjectToken {
        SubjectToken::new(&self.helpdesk.subject_tag, &self.helpdesk.legacy_subject_tags)
    }

    pub fn forward_prefixes(&self) -> ForwardPrefixes {
        ForwardPrefixes::new(&self.helpdesk.forward_prefixes)
    }

    /// Our own addresses: the helpdesk, its aliases and every mailbox's login when it is an address.
    pub fn our_addresses(&self) -> Vec<EmailAddress> {
        let mut ours = vec![self.helpdesk_address()];
        ours.extend(self.helpdesk.aliases.iter().filter_map(|a| EmailAddress::parse(a)));
        ours.extend(self.mailboxes.iter().filter_map(|m| EmailAddress::parse(&m.username)));
        ours.extend(self.mailboxes.iter().filter_map(|m| m.address.as_deref().and_then(EmailAddress::parse)));
        ours.sort();
        ours.dedup();
        ours
    }

    /// The first of `headers` that `helpdesk.spam_headers` calls spam, as `Name: value`.
    pub fn spam_verdict(&self, headers: &[(String, String)]) -> Option<String> {
        headers.iter().find_map(|(name, value)| {
            self.helpdesk
                .spam_headers
                .iter()
                .any(|rule| {
                    let (rule_name, rule_value) = rule.split_once(':').unwrap_or((rule, ""));
                    let (rule_value, value) = (rule_value.trim(), value.trim());
                    rule_name.trim().eq_ignore_ascii_case(name)
                        && value.get(..rule_value.len()).is_some_and(|v| v.eq_ignore_ascii_case(rule_value))
                })
                .then(|| format!("{name}: {value}"))
        })
    }

    /// The company an address belongs to, by its domain.
    pub fn company_of(&self, address: &EmailAddress) -> Option<&Company> {
        self.companies
            .iter()
            .find(|c| c.domains.iter().any(|d| d.trim_start_matches('@').eq_ignore_ascii_case(address.domain())))
    }

    pub fn ticket_url(&self, number: i64) -> String {
        format!("{}/tickets/{number}", self.helpdesk.public_url.trim_end_matches('/'))
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

/// Environment values are strings: lists are comma-separated, numbers and booleans parsed.
/// `MAILBOX__0__PASSWORD` → `mailbox[0].password`: a number is an index into a list of tables
/// (`[[mailbox]]`), so that every key of every entry can come from the environment (SPEC §9).
fn env_path(rest: &str) -> String {
    let mut path = String::new();
    for part in rest.split("__") {
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) && !path.is_empty() {
            path.push_str(&format!("[{part}]"));
        } else {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&part.to_lowercase());
        }
    }
    path
}

fn env_value(path: &str, value: &str) -> config::Value {
    const LISTS: &[&str] = &[
        "helpdesk.staff",
        "helpdesk.staff_notify",
        "helpdesk.legacy_subject_tags",
        "helpdesk.aliases",
        "helpdesk.forward_prefixes",
    ];
    if LISTS.contains(&path) || path.ends_with(".oauth_scopes") {
        let items: Vec<config::Value> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| config::Value::from(s.to_string()))
            .collect();
        return config::Value::from(items);
    }
    if let Ok(n) = value.parse::<i64>() {
        return config::Value::from(n);
    }
    match value {
        "true" => config::Value::from(true),
        "false" => config::Value::from(false),
        _ => config::Value::from(value.to_string()),
    }
}

/// The languages with a catalog (`locales/`), for error messages: "`fr`, `en`".
fn known_languages() -> String {
    crate::catalog::languages().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::AuthMethod;
    use std::io::Write;

    fn load(toml: &str, env: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(toml.as_bytes()).unwrap();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::load_from(Some(f.path()), Path::new("/nonexistent/default.toml"), &env)
    }

    #[test]
    fn defaults_load_and_layers_override() {
        let s = load("[helpdesk]\nname = \"Aide\"\n", &[("GUICHET__DATABASE__URL", "sqlite:///tmp/x.db")]).unwrap();
        assert_eq!(s.helpdesk.name, "Aide");
        assert_eq!(s.helpdesk.language, "fr");
        assert_eq!(s.helpdesk.max_attachment_bytes, 2_097_152);
        assert_eq!(s.database.url, "sqlite:///tmp/x.db");
        assert_eq!(s.helpdesk.auto_reply_limit.count, 10);
    }

    #[test]
    fn env_lists_and_numbers_are_parsed() {
        let s = load(
            "",
            &[("GUICHET__HELPDESK__STAFF", "a@x.com, @y.com"), ("GUICHET__HELPDESK__REOPEN_WINDOW_DAYS", "7")],
        )
        .unwrap();
        assert_eq!(s.helpdesk.staff, vec!["a@x.com", "@y.com"]);
        assert_eq!(s.helpdesk.reopen_window_days, 7);
    }

    #[test]
    fn list_entries_take_environment_variables_and_secrets_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("imap-password"), "from-credentials\n").unwrap();
        let smtp_file = dir.path().join("smtp.secret");
        std::fs::write(&smtp_file, "smtp-secret").unwrap();
        let toml = format!(
            "[[mailbox]]\nhost = \"imap.example.com\"\nusername = \"a@example.com\"\npassword_file = \"imap-password\"\n\
             [[mailbox]]\nhost = \"imap.example.com\"\nusername = \"b@example.com\"\npassword = \"in-file\"\n\
             [smtp]\nhost = \"smtp.example.com\"\npassword_file = \"{}\"\n",
            smtp_file.display()
        );
        let credentials = dir.path().to_str().unwrap();
        let s = load(&toml, &[("CREDENTIALS_DIRECTORY", credentials), ("GUICHET__MAILBOX__1__PASSWORD", "from-env")])
            .unwrap();
        assert_eq!(s.mailboxes[0].password, "from-credentials");
        assert_eq!(s.mailboxes[1].password, "from-env");
        assert_eq!(s.smtp.unwrap().password.as_deref(), Some("smtp-secret"));
        // A file that is not there is named with its key.
        let err = load("[[mailbox]]\nhost = \"h\"\nusername = \"u\"\npassword_file = \"/nonexistent/pw\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("mailbox[0].password_file") && err.contains("/nonexistent/pw"), "{err}");
    }

    #[test]
    fn oauth_presets_fill_in_and_missing_keys_are_named() {
        let s = load(
            "[[mailbox]]\nhost = \"outlook.office365.com\"\nusername = \"desk@contoso.com\"\nauth = \"xoauth2\"\n\
             oauth_provider = \"microsoft\"\noauth_tenant = \"contoso.com\"\noauth_client_id = \"app\"\n\
             [smtp]\nhost = \"smtp.gmail.com\"\nusername = \"desk@example.com\"\nauth = \"xoauth2\"\n\
             oauth_provider = \"google\"\noauth_client_id = \"g\"\noauth_client_secret = \"s\"\n",
            &[],
        )
        .unwrap();
        let m = s.mailboxes[0].oauth.as_ref().unwrap();
        assert_eq!(m.token_url, "https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token");
        assert_eq!(m.scopes.len(), 3);
        assert_eq!(m.username, "desk@contoso.com");
        let smtp = s.smtp.as_ref().unwrap().oauth.as_ref().unwrap();
        assert_eq!((smtp.method, smtp.scopes[0].as_str()), (AuthMethod::Xoauth2, "https://mail.google.com/"));
        let err =
            load("[[mailbox]]\nhost = \"h\"\nusername = \"u\"\nauth = \"xoauth2\"\noauth_provider = \"google\"\n", &[])
                .unwrap_err()
                .to_string();
        assert!(err.contains("mailbox[0].oauth_client_id"), "{err}");
        let err =
            load("[[mailbox]]\nhost = \"h\"\nusername = \"u\"\nauth = \"xoauth2\"\noauth_client_id = \"c\"\n", &[])
                .unwrap_err()
                .to_string();
        assert!(err.contains("mailbox[0].oauth_token_url"), "{err}");
        let err = load(
            "[[mailbox]]\nhost = \"h\"\nusername = \"u\"\nauth = \"xoauth2\"\noauth_provider = \"microsoft\"\n\
             oauth_client_id = \"c\"\noauth_grant = \"client_credentials\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("mailbox[0].oauth_client_secret"), "{err}");
    }

    #[test]
    fn forward_prefixes_extend_the_built_in_ones_and_must_be_words() {
        let s = load("[helpdesk]\nforward_prefixes = [\"Doorgestuurd\"]\n", &[]).unwrap();
        assert!(s.forward_prefixes().is_forward("Doorgestuurd: x") && s.forward_prefixes().is_forward("WG: x"));
        let s = load("", &[("GUICHET__HELPDESK__FORWARD_PREFIXES", "Weiter, Fwd2")]).unwrap();
        assert_eq!(s.helpdesk.forward_prefixes, vec!["Weiter", "Fwd2"]);
        let err = load("[helpdesk]\nforward_prefixes = [\"Fwd:\"]\n", &[]).unwrap_err().to_string();
        assert!(err.contains("helpdesk.forward_prefixes"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = load("[helpdesk]\nadress = \"x@y.com\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("adress"), "{err}");
        let err = load("[helpdesk]\nmax_attachment_bytes = \"lots\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("max_attachment_bytes"), "{err}");
        let err = load("[helpdesk]\nlanguage = \"de\"\n", &[]).unwrap_err().to_string();
        assert!(err.contains("helpdesk.language"), "{err}");
        let err =
            load("[[mailbox]]\nhost = \"imap.example.com\"\nusername = \"u\"\npassword = \"p\"\ntls = \"none\"\n", &[])
                .unwrap_err()
                .to_string();
        assert!(err.contains("mailbox[0].tls"), "{err}");
    }
}
