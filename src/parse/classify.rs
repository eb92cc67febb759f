//! Header-level verdicts: is the mail automatic (RFC 3834 and common practice), what did the
//! receiving server say about DMARC (RFC 8601).

use super::{AuthResult, AutoKind};
use regex::Regex;
use std::sync::LazyLock;

/// The header facts [`auto_kind`] decides on; each field is a raw, unfolded header value.
#[derive(Debug, Default)]
pub(super) struct AutoSignals<'a> {
    pub auto_submitted: Vec<&'a str>,
    pub precedence: Vec<&'a str>,
    /// `X-Autoreply` / `X-Autorespond` values.
    pub x_autoreply: Vec<&'a str>,
    pub has_list_id: bool,
    pub empty_return_path: bool,
    pub from_local_part: &'a str,
    pub subject: &'a str,
    /// Any `multipart/report` (delivery or read reports): always machine-written.
    pub is_report: bool,
}

/// Answers to people come first: an out-of-office is `AutoReply` even when its server also marks it
/// bulk, because staff want it on the ticket while it must still get no answer.
pub(super) fn auto_kind(signals: &AutoSignals<'_>) -> AutoKind {
    if signals.is_report {
        return AutoKind::Bulk;
    }
    let auto_submitted: Vec<String> = signals
        .auto_submitted
        .iter()
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty() && v != "no")
        .collect();
    let precedence: Vec<String> = signals.precedence.iter().map(|v| v.trim().to_ascii_lowercase()).collect();
    let says_autoreply = auto_submitted.iter().any(|v| v == "auto-replied")
        || signals.x_autoreply.iter().any(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "no" | "false" | "0"))
        || precedence.iter().any(|v| v == "auto_reply")
        || is_out_of_office_subject(signals.subject);
    if says_autoreply {
        return AutoKind::AutoReply;
    }
    let local = signals.from_local_part.to_ascii_lowercase();
    let says_bulk = !auto_submitted.is_empty()
        || precedence.iter().any(|v| matches!(v.as_str(), "bulk" | "junk" | "list"))
        || signals.has_list_id
        || signals.empty_return_path
        || local == "mailer-daemon"
        || local == "postmaster";
    if says_bulk { AutoKind::Bulk } else { AutoKind::Human }
}

fn is_out_of_office_subject(subject: &str) -> bool {
    static OUT_OF_OFFICE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?i)^\s*(?:out of (?:the )?office|automatic reply|auto[- ]?reply\b|réponse automatique|absence du bureau|absent du bureau|abwesenheitsnotiz|automatische antwort|respuesta automática|auto\s*:)",
        )
        .expect("out-of-office regex")
    });
    OUT_OF_OFFICE.is_match(subject)
}

/// Reads one `Authentication-Results` value: `authserv-id [version]; method=result props; …`.
/// Only the `dmarc` and `dkim` methods matter to Guichet (`trust`); comments are dropped first
/// since some servers write `dmarc=pass` inside an `arc=` comment.
pub(super) fn parse_auth_results(value: &str) -> Option<AuthResult> {
    let value = strip_comments(value);
    let mut statements = value.split(';');
    let authserv_id = statements.next()?.split_whitespace().next()?.to_ascii_lowercase();
    let mut result =
        AuthResult { authserv_id, dmarc: None, header_from: None, dkim_pass: Vec::new(), dkim_seen: false };
    for statement in statements {
        let mut tokens = statement.split_whitespace();
        let Some(first) = tokens.next() else { continue };
        let property = |tokens: &mut std::str::SplitWhitespace, name: &str| {
            tokens.find_map(|t| strip_prefix_ignore_case(t, name)).map(|d| d.trim_matches('"').to_ascii_lowercase())
        };
        if let Some(verdict) = strip_prefix_ignore_case(first, "dmarc=") {
            if result.dmarc.is_none() {
                result.dmarc = Some(verdict.to_ascii_lowercase());
                result.header_from = property(&mut tokens, "header.from=");
            }
        } else if let Some(verdict) = strip_prefix_ignore_case(first, "dkim=") {
            result.dkim_seen = true;
            if verdict.eq_ignore_ascii_case("pass") && result.dkim_pass.len() < 10 {
                let props: Vec<&str> = tokens.collect();
                let domain = props
                    .iter()
                    .find_map(|t| strip_prefix_ignore_case(t, "header.d="))
                    .or_else(|| {
                        props
                            .iter()
                            .find_map(|t| strip_prefix_ignore_case(t, "header.i="))
                            .map(|i| i.rsplit('@').next().unwrap_or(i))
                    })
                    .map(|d| d.trim_matches('"').to_ascii_lowercase());
                result.dkim_pass.extend(domain);
            }
        }
    }
    Some(result)
}

fn strip_prefix_ignore_case<'a>(token: &'a str, prefix: &str) -> Option<&'a str> {
    let head = token.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &token[prefix.len()..]).filter(|rest| !rest.is_empty())
}

/// Removes RFC 5322 comments (nested parentheses) outside quoted strings.
fn strip_comments(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(value: &str) -> (String, Option<String>, Option<String>) {
        let r = parse_auth_results(value).expect("parsed");
        (r.authserv_id, r.dmarc, r.header_from)
    }

    #[test]
    fn dmarc_verdicts_are_read_with_their_domain() {
        assert_eq!(
            verdict(
                "mx.example.com; spf=pass smtp.mailfrom=a.org; dkim=pass header.d=a.org; dmarc=pass (p=none dis=none) header.from=A.org"
            ),
            ("mx.example.com".into(), Some("pass".into()), Some("a.org".into()))
        );
        assert_eq!(
            verdict("MX.Example.com 1; DMARC=FAIL header.from=evil.example"),
            ("mx.example.com".into(), Some("fail".into()), Some("evil.example".into()))
        );
    }

    #[test]
    fn verdicts_inside_comments_do_not_count() {
        assert_eq!(
            verdict("mx.google.com; arc=pass (i=1 dmarc=pass fromdomain=a.org); spf=pass smtp.mailfrom=a.org"),
            ("mx.google.com".into(), None, None)
        );
        assert_eq!(verdict("mx.example.com; none"), ("mx.example.com".into(), None, None));
        assert!(parse_auth_results("   ").is_none());
    }

    #[test]
    fn auto_replies_win_over_bulk_markers() {
        let signals =
            AutoSignals { auto_submitted: vec!["auto-replied"], empty_return_path: true, ..Default::default() };
        assert_eq!(auto_kind(&signals), AutoKind::AutoReply);
        let signals = AutoSignals { subject: "Réponse automatique : [Ticket #3] x", ..Default::default() };
        assert_eq!(auto_kind(&signals), AutoKind::AutoReply);
    }

    #[test]
    fn bulk_markers_are_recognised() {
        for signals in [
            AutoSignals { auto_submitted: vec!["auto-generated"], ..Default::default() },
            AutoSignals { precedence: vec![" Bulk"], ..Default::default() },
            AutoSignals { has_list_id: true, ..Default::default() },
            AutoSignals { empty_return_path: true, ..Default::default() },
            AutoSignals { from_local_part: "MAILER-DAEMON", ..Default::default() },
        ] {
            assert_eq!(auto_kind(&signals), AutoKind::Bulk, "{signals:?}");
        }
        let human =
            AutoSignals { auto_submitted: vec!["no"], subject: "Automatisation du tableau", ..Default::default() };
        assert_eq!(auto_kind(&human), AutoKind::Human);
    }
}
