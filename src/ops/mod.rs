//! Operations (SPEC §10): what an administrator runs and watches beside the helpdesk itself.
//!
//! - `check`: `guichet check-config`, one line per part (configuration, database, each mailbox,
//!   SMTP);
//! - `health`: `/healthz` and `/readyz`, and the per-mailbox gauges of `/metrics`;
//! - `commands`: `guichet backup FILE` and `guichet forget EMAIL` (the SQL is in
//!   `store::maintenance`);
//! - `memory`: the daemon gives freed memory back to the system once idle;
//! - `retention`: the daemon's task that drops raw mail of old closed tickets;
//! - `sd_notify`: READY=1 / STOPPING=1 to systemd (`Type=notify`), and WATCHDOG=1 while the
//!   database answers (`WatchdogSec=`).
//!
//! The `[log]` and `[retention]` settings live here rather than in `config.rs`.

pub mod check;
pub mod commands;
pub mod health;
pub mod memory;
pub mod retention;
pub mod sd_notify;

use serde::Deserialize;

use crate::config::Settings;

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people: colours on a terminal only (and never with `NO_COLOR`).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// `[log]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    #[serde(default)]
    pub format: LogFormat,
}

/// `[retention]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Raw mail of tickets closed this many days ago loses its bytes (messages and files stay);
    /// 0 as soon as the ticket is closed; absent, raw mail is kept forever.
    #[serde(default)]
    pub raw_mail_days: Option<u32>,
}

/// Checks of the settings above that serde cannot express.
pub fn validate(settings: &Settings) -> anyhow::Result<()> {
    if settings.retention.raw_mail_days.is_some_and(|days| days > 36_500) {
        anyhow::bail!("configuration: retention.raw_mail_days must be at most 36500 (leave it out to keep raw mail)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn load(toml: &str) -> anyhow::Result<Settings> {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), toml).unwrap();
        Settings::load_from(Some(file.path()), Path::new("/nonexistent/default.toml"), &[])
    }

    #[test]
    fn log_and_retention_default_to_text_and_keeping_everything() {
        let s = load("").unwrap();
        assert_eq!(s.log.format, LogFormat::Text);
        assert_eq!(s.retention.raw_mail_days, None);
        let s = load("[log]\nformat = \"json\"\n[retention]\nraw_mail_days = 90\n").unwrap();
        assert_eq!(s.log.format, LogFormat::Json);
        assert_eq!(s.retention.raw_mail_days, Some(90));
    }

    #[test]
    fn bad_log_and_retention_values_name_the_key() {
        let err = load("[log]\nformat = \"xml\"\n").unwrap_err().to_string();
        assert!(err.contains("log.format"), "{err}");
        let err = load("[retention]\nraw_mail_days = -1\n").unwrap_err().to_string();
        assert!(err.contains("retention.raw_mail_days"), "{err}");
        let err = load("[retention]\nraw_mail_days = 100000\n").unwrap_err().to_string();
        assert!(err.contains("retention.raw_mail_days"), "{err}");
    }
}
