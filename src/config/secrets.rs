//! Secrets outside the configuration file (SPEC §9): each `password_file` is replaced by the
//! secret it holds, a relative name looked up in `$CREDENTIALS_DIRECTORY` first (systemd's
//! `LoadCredential=`), then beside the configuration file.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::Settings;

impl Settings {
    /// Replaces each `*_file` by the secret it holds (one trailing line break dropped).
    pub(super) fn read_secret_files(
        &mut self,
        env: &[(String, String)],
        config_dir: Option<&Path>,
    ) -> anyhow::Result<()> {
        let credentials = env.iter().find(|(k, _)| k == "CREDENTIALS_DIRECTORY").map(|(_, v)| PathBuf::from(v));
        let dirs = Dirs { credentials: credentials.as_deref(), config: config_dir };
        for (i, m) in self.mailboxes.iter_mut().enumerate() {
            if let Some(file) = &m.password_file {
                if !m.password.is_empty() {
                    bail!("configuration: mailbox[{i}] has both password and password_file: keep one");
                }
                m.password = read_secret(file, &dirs, &format!("mailbox[{i}].password_file"))?;
            }
            if let Some(file) = &m.oauth_client_secret_file {
                if m.oauth_client_secret.is_some() {
                    bail!(
                        "configuration: mailbox[{i}] has both oauth_client_secret and oauth_client_secret_file: keep one"
                    );
                }
                m.oauth_client_secret =
                    Some(read_secret(file, &dirs, &format!("mailbox[{i}].oauth_client_secret_file"))?);
            }
        }
        if let Some(smtp) = &mut self.smtp
            && let Some(file) = &smtp.oauth_client_secret_file
        {
            if smtp.oauth_client_secret.is_some() {
                bail!("configuration: smtp has both oauth_client_secret and oauth_client_secret_file: keep one");
            }
            smtp.oauth_client_secret = Some(read_secret(file, &dirs, "smtp.oauth_client_secret_file")?);
        }
        if let Some(smtp) = &mut self.smtp
            && let Some(file) = &smtp.password_file
        {
            if smtp.password.is_some() {
                bail!("configuration: smtp has both password and password_file: keep one");
            }
            smtp.password = Some(read_secret(file, &dirs, "smtp.password_file")?);
        }
        Ok(())
    }
}

/// Where relative secret files are looked for.
struct Dirs<'a> {
    credentials: Option<&'a Path>,
    config: Option<&'a Path>,
}

/// A secret from `file`: a relative name in `$CREDENTIALS_DIRECTORY` when it is there, else
/// beside the configuration file.
fn read_secret(file: &Path, dirs: &Dirs, key: &str) -> anyhow::Result<String> {
    let path = match (dirs.credentials, dirs.config) {
        (Some(dir), _) if file.is_relative() && dir.join(file).exists() => dir.join(file),
        (_, Some(dir)) if file.is_relative() => dir.join(file),
        _ => file.to_path_buf(),
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("configuration: {key}: cannot read {}", path.display()))?;
    let secret = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
    if secret.is_empty() {
        bail!("configuration: {key}: {} is empty", path.display());
    }
    Ok(secret.to_string())
}
