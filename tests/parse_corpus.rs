//! Runs every `.eml` under `tests/fixtures/mail/{clients,rfc,malformed}` through
//! `guichet::parse::parse` and checks it against its sibling `NAME.expected.toml`
//! (format: `tests/fixtures/mail/README.md`).

use guichet::parse::{AutoKind, InboundMail, ParseError, parse};
use serde::Deserialize;
use std::path::{Path, PathBuf};

const FOLDERS: &[&str] = &["clients", "rfc", "malformed"];
const MIN_FIXTURES: usize = 30;

/// One fixture's expected outcome; every key is optional and only the keys present are checked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    /// What the fixture is about (not checked).
    #[allow(dead_code)]
    description: Option<String>,
    /// `not_a_mail` or `no_sender`: the parse must fail so.
    error: Option<String>,
    subject: Option<String>,
    from: Option<String>,
    from_name: Option<String>,
    to: Option<Vec<String>>,
    to_count: Option<usize>,
    cc: Option<Vec<String>>,
    reply_to: Option<Vec<String>>,
    delivered_to: Option<Vec<String>>,
    /// `""` means the mail has no usable Message-ID.
    message_id: Option<String>,
    references: Option<Vec<String>>,
    references_count: Option<usize>,
    /// Unix seconds; `0` means no readable date.
    date: Option<i64>,
    auto: Option<String>,
    new_text: Option<String>,
    new_text_contains: Option<Vec<String>>,
    new_text_excludes: Option<Vec<String>>,
    text_contains: Option<Vec<String>>,
    text_excludes: Option<Vec<String>>,
    /// `false`: no HTML body.
    html: Option<bool>,
    html_contains: Option<Vec<String>>,
    /// Sanitised names, in order.
    attachments: Option<Vec<String>>,
    /// Details of the attachments, by position.
    attachment: Option<Vec<ExpectedAttachment>>,
    /// `false`: not a delivery report.
    dsn: Option<bool>,
    /// `""` means the report names no original message.
    dsn_original_message_id: Option<String>,
    /// `"address action status"` per recipient.
    dsn_recipients: Option<Vec<String>>,
    /// `""` means no loop header.
    loop_header: Option<String>,
    empty_return_path: Option<bool>,
    /// `"authserv-id dmarc header.from"` per header, `-` for a missing value.
    auth_results: Option<Vec<String>>,
    /// `"Name <address>"` or `"address"`; `""` means none.
    forwarded_from: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedAttachment {
    name: Option<String>,
    content_type: Option<String>,
    size: Option<usize>,
    /// `""` means no Content-ID.
    content_id: Option<String>,
    inline: Option<bool>,
    /// The decoded bytes start with these (as UTF-8 text).
    starts_with: Option<String>,
}

#[test]
fn every_fixture_parses_as_its_expectation_says() {
    let fixtures = fixtures();
    let mut failures = Vec::new();
    for eml in &fixtures {
        let problems = check_fixture(eml);
        if !problems.is_empty() {
            failures.push(format!("{}:\n  - {}", eml.display(), problems.join("\n  - ")));
        }
    }
    assert!(failures.is_empty(), "{} of {} fixtures failed:\n{}", failures.len(), fixtures.len(), failures.join("\n"));
    assert!(fixtures.len() >= MIN_FIXTURES, "only {} fixtures found, expected at least {MIN_FIXTURES}", fixtures.len());
}

#[test]
fn every_folder_holds_fixtures() {
    for folder in FOLDERS {
        let count = fixtures().iter().filter(|p| p.parent().is_some_and(|d| d.ends_with(folder))).count();
        assert!(count > 0, "no fixture in {folder}");
    }
}

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mail")
}

fn fixtures() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for folder in FOLDERS {
        let dir = fixtures_root().join(folder);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.extension().is_some_and(|e| e == "eml") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn check_fixture(eml: &Path) -> Vec<String> {
    let expected_path = eml.with_extension("expected.toml");
    let expected: Expected = match std::fs::read_to_string(&expected_path) {
        Ok(text) => match toml::from_str(&text) {
            Ok(expected) => expected,
            Err(e) => return vec![format!("bad {}: {e}", expected_path.display())],
        },
        Err(e) => return vec![format!("missing {}: {e}", expected_path.display())],
    };
    let raw = std::fs::read(eml).expect("fixture readable");
    let mut problems = Vec::new();
    match (parse(&raw), expected.error.as_deref()) {
        (Ok(mail), None) => {
            check_invariants(&mail, &mut problems);
            check_mail(&mail, &expected, &mut problems);
        }
        (Ok(_), Some(error)) => problems.push(format!("parsed, expected error {error}")),
        (Err(e), None) => problems.push(format!("failed: {e}")),
        (Err(e), Some(error)) => {
            let kind = match e {
                ParseError::NotAMail(_) => "not_a_mail",
                ParseError::NoSender => "no_sender",
            };
            if kind != error {
                problems.push(format!("error {kind} ({e}), expected {error}"));
            }
        }
    }
    problems
}

/// What holds for every mail, whatever the fixture says.
fn check_invariants(mail: &InboundMail, problems: &mut Vec<String>) {
    if mail.subject.chars().any(char::is_control) {
        problems.push(format!("control character in subject {:?}", mail.subject));
    }
    if mail.text.contains(['\0', '\r']) || mail.new_text.contains(['\0', '\r']) {
        problems.push("NUL or CR left in the text".into());
    }
    for a in &mail.attachments {
        let bad = a.name.is_empty()
            || a.name.contains(['/', '\\'])
            || a.name.chars().any(|c| c.is_control() || ('\u{202A}'..='\u{202E}').contains(&c))
            || a.name.chars().count() > 200;
        if bad {
            problems.push(format!("unsafe attachment name {:?}", a.name));
        }
    }
    if mail.references.len() > 50 || mail.to.len() > 100 || mail.cc.len() > 100 {
        problems.push("a list exceeds its cap".into());
    }
}

fn check_mail(mail: &InboundMail, e: &Expected, problems: &mut Vec<String>) {
    let mut check = |what: &str, ok: bool, actual: &dyn std::fmt::Debug| {
        if !ok {
            problems.push(format!("{what}: got {actual:?}"));
        }
    };
    if let Some(subject) = &e.subject {
        check(&format!("subject {subject:?}"), &mail.subject == subject, &mail.subject);
    }
    let from = mail.from.as_ref();
    if let Some(address) = &e.from {
        check(&format!("from {address}"), from.is_some_and(|f| f.address.as_str() == address), &from);
    }
    if let Some(name) = &e.from_name {
        check(&format!("from name {name:?}"), from.is_some_and(|f| f.name.as_deref() == Some(name)), &from);
    }
    let addresses = |list: &[guichet::parse::Mailbox]| list.iter().map(|m| m.address.to_string()).collect::<Vec<_>>();
    if let Some(to) = &e.to {
        check(&format!("to {to:?}"), &addresses(&mail.to) == to, &addresses(&mail.to));
    }
    if let Some(count) = e.to_count {
        check(&format!("{count} To addresses"), mail.to.len() == count, &mail.to.len());
    }
    if let Some(cc) = &e.cc {
        check(&format!("cc {cc:?}"), &addresses(&mail.cc) == cc, &addresses(&mail.cc));
    }
    if let Some(reply_to) = &e.reply_to {
        check(&format!("reply-to {reply_to:?}"), &addresses(&mail.reply_to) == reply_to, &addresses(&mail.reply_to));
    }
    if let Some(delivered) = &e.delivered_to {
        let actual: Vec<String> = mail.delivered_to.iter().map(|a| a.to_string()).collect();
        check(&format!("delivered-to {delivered:?}"), &actual == delivered, &actual);
    }
    if let Some(id) = &e.message_id {
        check(&format!("message-id {id:?}"), mail.message_id.as_deref().unwrap_or("") == id, &mail.message_id);
    }
    if let Some(refs) = &e.references {
        check(&format!("references {refs:?}"), &mail.references == refs, &mail.references);
    }
    if let Some(count) = e.references_count {
        check(&format!("{count} references"), mail.references.len() == count, &mail.references.len());
    }
    if let Some(date) = e.date {
        check(&format!("date {date}"), mail.date.unwrap_or(0) == date, &mail.date);
    }
    if let Some(auto) = &e.auto {
        let actual = match mail.auto {
            AutoKind::Human => "human",
            AutoKind::AutoReply => "auto_reply",
            AutoKind::Bulk => "bulk",
        };
        check(&format!("auto {auto}"), actual == auto, &actual);
    }
    if let Some(new_text) = &e.new_text {
        check(&format!("new text {new_text:?}"), mail.new_text == new_text.trim(), &mail.new_text);
    }
    for needle in e.new_text_contains.iter().flatten() {
        check(&format!("new text contains {needle:?}"), mail.new_text.contains(needle.as_str()), &mail.new_text);
    }
    for needle in e.new_text_excludes.iter().flatten() {
        check(&format!("new text excludes {needle:?}"), !mail.new_text.contains(needle.as_str()), &mail.new_text);
    }
    for needle in e.text_contains.iter().flatten() {
        check(&format!("text contains {needle:?}"), mail.text.contains(needle.as_str()), &mail.text);
    }
    for needle in e.text_excludes.iter().flatten() {
        check(&format!("text excludes {needle:?}"), !mail.text.contains(needle.as_str()), &mail.text);
    }
    if let Some(has_html) = e.html {
        check(&format!("has html {has_html}"), mail.html.is_some() == has_html, &mail.html.is_some());
    }
    for needle in e.html_contains.iter().flatten() {
        let html = mail.html.as_deref().unwrap_or("");
        check(&format!("html contains {needle:?}"), html.contains(needle.as_str()), &html);
    }
    let names: Vec<&str> = mail.attachments.iter().map(|a| a.name.as_str()).collect();
    if let Some(expected_names) = &e.attachments {
        check(&format!("attachments {expected_names:?}"), &names == expected_names, &names);
    }
    for (i, expected) in e.attachment.iter().flatten().enumerate() {
        let Some(actual) = mail.attachments.get(i) else {
            check(&format!("attachment #{i}"), false, &names);
            continue;
        };
        let summary = (&actual.name, &actual.content_type, actual.data.len(), &actual.content_id, actual.inline);
        let ok = expected.name.as_ref().is_none_or(|n| n == &actual.name)
            && expected.content_type.as_ref().is_none_or(|t| t == &actual.content_type)
            && expected.size.is_none_or(|s| s == actual.data.len())
            && expected.content_id.as_ref().is_none_or(|id| actual.content_id.as_deref().unwrap_or("") == id)
            && expected.inline.is_none_or(|inline| inline == actual.inline)
            && expected.starts_with.as_ref().is_none_or(|head| actual.data.starts_with(head.as_bytes()));
        check(&format!("attachment #{i} {expected:?}"), ok, &summary);
    }
    if let Some(is_dsn) = e.dsn {
        check(&format!("is dsn {is_dsn}"), mail.dsn.is_some() == is_dsn, &mail.dsn);
    }
    if let Some(id) = &e.dsn_original_message_id {
        let actual = mail.dsn.as_ref().and_then(|d| d.original_message_id.as_deref());
        check(&format!("dsn original message-id {id:?}"), mail.dsn.is_some() && actual.unwrap_or("") == id, &actual);
    }
    if let Some(recipients) = &e.dsn_recipients {
        let actual: Vec<String> = mail
            .dsn
            .iter()
            .flat_map(|d| &d.recipients)
            .map(|r| format!("{} {} {}", r.address, r.action, r.status))
            .collect();
        check(&format!("dsn recipients {recipients:?}"), &actual == recipients, &actual);
    }
    if let Some(header) = &e.loop_header {
        check(
            &format!("loop header {header:?}"),
            mail.loop_header.as_deref().unwrap_or("") == header,
            &mail.loop_header,
        );
    }
    if let Some(empty) = e.empty_return_path {
        check(&format!("empty return path {empty}"), mail.empty_return_path == empty, &mail.empty_return_path);
    }
    if let Some(results) = &e.auth_results {
        let actual: Vec<String> = mail
            .auth_results
            .iter()
            .map(|r| {
                format!(
                    "{} {} {}",
                    r.authserv_id,
                    r.dmarc.as_deref().unwrap_or("-"),
                    r.header_from.as_deref().unwrap_or("-")
                )
            })
            .collect();
        check(&format!("auth results {results:?}"), &actual == results, &actual);
    }
    if let Some(forwarded) = &e.forwarded_from {
        let actual = mail.forwarded_from.as_ref().map_or(String::new(), |m| match &m.name {
            Some(name) => format!("{name} <{}>", m.address),
            None => m.address.to_string(),
        });
        check(&format!("forwarded from {forwarded:?}"), &actual == forwarded, &actual);
    }
}

/// Hostile or damaged mail must give a value or an error, never a panic: every fixture is parsed
/// cut at many lengths and with bytes overwritten.
#[test]
fn truncated_or_corrupted_fixtures_never_panic() {
    for eml in fixtures() {
        let raw = std::fs::read(&eml).expect("fixture readable");
        for cut in (0..raw.len()).step_by(37) {
            let _ = parse(&raw[..cut]);
        }
        for (i, junk) in [0u8, b'\n', b'=', b'<', b'"', b'-', 0xff].iter().cycle().take(64).enumerate() {
            let mut damaged = raw.clone();
            let at = (i * 7919) % damaged.len().max(1);
            if let Some(byte) = damaged.get_mut(at) {
                *byte = *junk;
            }
            let _ = parse(&damaged);
        }
    }
}
