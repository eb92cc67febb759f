use std::fmt;

/// A lower-cased `local@domain` address. Built only through [`EmailAddress::parse`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Accepts a bare address (optionally in angle brackets); refuses anything with
    /// spaces, control characters, several `@` or an empty part.
    pub fn parse(raw: &str) -> Option<EmailAddress> {
        let s = raw.trim().trim_start_matches('<').trim_end_matches('>').trim();
        if s.len() > 254 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return None;
        }
        let (local, domain) = s.rsplit_once('@')?;
        if local.is_empty()
            || domain.is_empty()
            || domain.contains('@')
            || !domain.contains('.') && domain != "localhost"
        {
            return None;
        }
        if local.contains('@') || domain.starts_with('.') || domain.ends_with('.') {
            return None;
        }
        Some(EmailAddress(s.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map(|(l, _)| l).unwrap_or("")
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }

    /// System and no-reply mailboxes that must never receive automatic mail (SPEC §2.4).
    pub fn is_system(&self) -> bool {
        let local = self.local_part();
        let base = local.split('+').next().unwrap_or(local);
        matches!(
            base,
            "mailer-daemon" | "postmaster" | "abuse" | "noreply" | "no-reply" | "donotreply" | "do-not-reply"
        ) || base.starts_with("noreply")
            || base.starts_with("no-reply")
    }

    /// `local+tag@domain` → (`local@domain`, `tag`)
    pub fn plus_tag(&self) -> Option<(EmailAddress, &str)> {
        let (local, tag) = self.local_part().split_once('+')?;
        Some((EmailAddress(format!("{local}@{}", self.domain())), tag))
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Staff: whole addresses, or whole domains written with a leading `@`.
#[derive(Clone, Debug, Default)]
pub struct StaffList {
    addresses: Vec<String>,
    domains: Vec<String>,
}

impl StaffList {
    pub fn new(entries: &[String]) -> StaffList {
        let mut list = StaffList::default();
        for e in entries {
            let e = e.trim().to_lowercase();
            if let Some(domain) = e.strip_prefix('@') {
                list.domains.push(domain.to_string());
            } else if !e.is_empty() {
                list.addresses.push(e);
            }
        }
        list
    }

    pub fn contains(&self, address: &EmailAddress) -> bool {
        self.addresses.iter().any(|a| a == address.as_str()) || self.domains.iter().any(|d| d == address.domain())
    }

    /// The explicit staff addresses (domains cannot be written to).
    pub fn addresses(&self) -> impl Iterator<Item = EmailAddress> + '_ {
        self.addresses.iter().filter_map(|a| EmailAddress::parse(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_lower_cased_and_validated() {
        assert_eq!(EmailAddress::parse("<Bob@Example.COM>").unwrap().as_str(), "bob@example.com");
        assert!(EmailAddress::parse("bob@@x.com").is_none());
        assert!(EmailAddress::parse("bo b@x.com").is_none());
        assert!(EmailAddress::parse("bob@x.com\r\nBcc: evil@x.com").is_none());
        assert!(EmailAddress::parse("nobody").is_none());
    }

    #[test]
    fn system_addresses_are_recognised() {
        for a in ["MAILER-DAEMON@x.org", "postmaster@x.org", "no-reply@x.org", "noreply-billing@x.org"] {
            assert!(EmailAddress::parse(a).unwrap().is_system(), "{a}");
        }
        assert!(!EmailAddress::parse("marie@x.org").unwrap().is_system());
    }

    #[test]
    fn staff_matches_addresses_and_domains() {
        let staff = StaffList::new(&["alice@example.com".into(), "@support.example.com".into()]);
        assert!(staff.contains(&EmailAddress::parse("Alice@example.com").unwrap()));
        assert!(staff.contains(&EmailAddress::parse("bob@support.example.com").unwrap()));
        assert!(!staff.contains(&EmailAddress::parse("bob@example.com").unwrap()));
    }
}
