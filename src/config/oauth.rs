//! The OAuth keys of `[[mailbox]]` and `[smtp]` (SPEC §9), checked and resolved into an
//! `OAuthConfig` (provider presets applied) at load.

use anyhow::bail;

use super::Settings;
use crate::oauth::{AuthMethod, Grant, OAuthConfig, Provider};

/// The `OAuthKeys` of a `MailboxSettings` or a `Smtp`: the same field names in both.
macro_rules! oauth_keys {
    ($s:expr) => {
        OAuthKeys {
            auth: $s.auth,
            provider: $s.oauth_provider,
            tenant: $s.oauth_tenant.as_deref(),
            token_url: $s.oauth_token_url.as_deref(),
            device_url: $s.oauth_device_url.as_deref(),
            client_id: $s.oauth_client_id.as_deref(),
            client_secret: $s.oauth_client_secret.as_deref(),
            scopes: $s.oauth_scopes.as_deref(),
            grant: $s.oauth_grant,
        }
    };
}

impl Settings {
    /// Applies the OAuth presets and checks the OAuth keys of every mailbox and of `[smtp]`.
    pub(super) fn resolve_oauth(&mut self) -> anyhow::Result<()> {
        for (i, m) in self.mailboxes.iter_mut().enumerate() {
            let keys = oauth_keys!(m);
            m.oauth = keys.resolve(&format!("mailbox[{i}]"), Some(&m.username))?;
        }
        if let Some(smtp) = &mut self.smtp {
            if smtp.auth == AuthMethod::Oauthbearer {
                bail!("configuration: smtp.auth = \"oauthbearer\" is not offered for SMTP: use \"xoauth2\"");
            }
            let keys = oauth_keys!(smtp);
            smtp.oauth = keys.resolve("smtp", smtp.username.as_deref())?;
        }
        Ok(())
    }
}

/// The OAuth keys, the same in `[[mailbox]]` and `[smtp]` (serde cannot flatten them into a
/// struct that denies unknown keys).
struct OAuthKeys<'a> {
    auth: AuthMethod,
    provider: Option<Provider>,
    tenant: Option<&'a str>,
    token_url: Option<&'a str>,
    device_url: Option<&'a str>,
    client_id: Option<&'a str>,
    client_secret: Option<&'a str>,
    scopes: Option<&'a [String]>,
    grant: Grant,
}

impl OAuthKeys<'_> {
    /// None with `auth = "password"`; else the settings with the provider's preset under what the
    /// operator wrote. Errors name the key (`mailbox[0].oauth_client_id`).
    fn resolve(&self, at: &str, username: Option<&str>) -> anyhow::Result<Option<OAuthConfig>> {
        if self.auth == AuthMethod::Password {
            return Ok(None);
        }
        let Some(username) = username.filter(|u| !u.is_empty()) else {
            bail!("configuration: {at}.username is required with auth = \"{}\"", self.auth.sasl_name().to_lowercase());
        };
        if self.provider == Some(Provider::Google) && self.grant == Grant::ClientCredentials {
            bail!(
                "configuration: {at}.oauth_grant = \"client_credentials\" is not offered by oauth_provider = \"google\""
            );
        }
        let tenant = self.tenant.unwrap_or("organizations");
        let preset = self.provider.map(|p| crate::oauth::preset(p, tenant, self.grant));
        let token_url = match (self.token_url, &preset) {
            (Some(url), _) => url.to_string(),
            (None, Some((url, _, _))) => url.clone(),
            (None, None) => bail!(
                "configuration: {at}.oauth_token_url (or oauth_provider) is required with auth = \"{}\"",
                self.auth.sasl_name().to_lowercase()
            ),
        };
        let device_url = self.device_url.map(str::to_string).or_else(|| preset.as_ref().map(|p| p.1.clone()));
        for (key, url) in [("oauth_token_url", Some(&token_url)), ("oauth_device_url", device_url.as_ref())] {
            if let Some(url) = url
                && !(url.starts_with("https://") || url.starts_with("http://"))
            {
                bail!("configuration: {at}.{key} `{url}` must start with https:// (or http://)");
            }
        }
        let Some(client_id) = self.client_id.filter(|c| !c.is_empty()) else {
            bail!(
                "configuration: {at}.oauth_client_id is required with auth = \"{}\"",
                self.auth.sasl_name().to_lowercase()
            );
        };
        if self.grant == Grant::ClientCredentials && self.client_secret.is_none() {
            bail!(
                "configuration: {at}.oauth_client_secret (or oauth_client_secret_file) is required with oauth_grant = \"client_credentials\""
            );
        }
        let scopes = match (self.scopes, &preset) {
            (Some(scopes), _) => scopes.to_vec(),
            (None, Some((_, _, scopes))) => scopes.clone(),
            (None, None) => Vec::new(),
        };
        Ok(Some(OAuthConfig {
            method: self.auth,
            username: username.to_string(),
            token_url,
            device_url,
            client_id: client_id.to_string(),
            client_secret: self.client_secret.map(str::to_string),
            scopes,
            grant: self.grant,
        }))
    }
}
