//! The fuzz targets of Guichet, one function each, shared by the cargo-fuzz binaries
//! (`fuzz_targets/*.rs`, libFuzzer, nightly) and the stable driver (`src/bin/run_corpus.rs`).
//!
//! Each function takes arbitrary bytes, must never panic, and checks the promises its code makes
//! beyond "no crash" (an `assert!` failing is a finding, like a panic):
//! - [`parse_mail`]: raw mail → `InboundMail` (mail-parser, charsets, HTML to text, quotes,
//!   attachments, classification, DSN, `Authentication-Results`), then what threading reads of it;
//! - [`quotes`]: the new text of a reply vs its quoted history and signature;
//! - [`thread_subject`]: subject tokens, reply prefixes, title cleaning, subject shortening;
//! - [`staff_commands`]: the `#status`… lines at the top of a staff mail;
//! - [`file_name`]: attachment and upload names made safe;
//! - [`outgoing_mail`]: hostile subjects, names and ids composed into our own mail: no header
//!   injection, one of each header, our loop header intact;
//! - [`sanitize_html`]: HTML mail made safe to show (the web view's allowlist sanitiser): no
//!   script, handler, frame, form or remote load survives.

use guichet::desk::inbound::StaffCommands;
use guichet::domain::{SubjectToken, is_forward_subject, strip_reply_prefixes};
use guichet::notify::compose::{OutgoingMail, compose, header_text, shorten_subject};
use guichet::parse::{parse, quotes::new_text, quotes::split, sanitize_file_name};

/// A fuzz target: arbitrary bytes in, a panic when something is wrong.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus folder and cargo-fuzz binary.
pub const TARGETS: &[(&str, Target)] = &[
    ("parse_mail", parse_mail),
    ("quotes", quotes),
    ("thread_subject", thread_subject),
    ("staff_commands", staff_commands),
    ("file_name", file_name),
    ("outgoing_mail", outgoing_mail),
    ("sanitize_html", sanitize_html),
];

const SECRET: &[u8] = b"fuzzing secret";

/// The token finder of a helpdesk tagged "Ticket" with two legacy tags (built once: it compiles a
/// regex).
fn token() -> &'static SubjectToken {
    static TOKEN: std::sync::LazyLock<SubjectToken> =
        std::sync::LazyLock::new(|| SubjectToken::new("Ticket", &["Support".to_string(), "Demande".to_string()]));
    &TOKEN
}

/// Characters that must never reach a one-line value (subject, display name): controls, line
/// separators, bidirectional overrides and isolates.
fn unsafe_in_line(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn check_file_name(name: &str) {
    assert!(!name.is_empty(), "empty file name");
    assert!(!name.contains(['/', '\\']), "path in file name {name:?}");
    let bidi =
        |c: char| matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    assert!(!name.chars().any(|c| c.is_control() || bidi(c)), "control or bidi character in file name {name:?}");
    assert!(name.chars().count() <= 200, "file name of {} characters", name.chars().count());
    assert!(!name.starts_with(['.', ' ']) && !name.ends_with(['.', ' ']), "file name {name:?} not trimmed");
}

fn check_id(id: &str) {
    assert!(!id.is_empty() && !id.contains(|c: char| c.is_whitespace() || c.is_control()), "message id {id:?}");
    assert!(!id.starts_with('<') || !id.ends_with('>'), "message id {id:?} keeps its brackets");
}

/// Raw bytes as a mail: parsing never fails on an odd mail and never lets through what the rest of
/// Guichet relies on being clean.
pub fn parse_mail(data: &[u8]) {
    let Ok(mail) = parse(data) else { return };
    assert!(!mail.subject.chars().any(unsafe_in_line), "subject {:?}", mail.subject);
    assert!(mail.subject.chars().count() <= 998, "subject not capped");
    let people = mail.from.iter().chain(&mail.to).chain(&mail.cc).chain(&mail.reply_to).chain(&mail.forwarded_from);
    for person in people {
        if let Some(name) = &person.name {
            assert!(!name.chars().any(unsafe_in_line), "display name {name:?}");
        }
    }
    assert!(mail.to.len() <= 100 && mail.cc.len() <= 100 && mail.reply_to.len() <= 100, "address lists not capped");
    assert!(mail.references.len() <= 50, "{} references", mail.references.len());
    mail.references.iter().chain(&mail.message_id).for_each(|id| check_id(id));
    for text in [&mail.text, &mail.new_text] {
        assert!(!text.chars().any(|c| c.is_control() && c != '\n' && c != '\t'), "control character in the text");
    }
    for a in &mail.attachments {
        check_file_name(&a.name);
        assert!(a.content_type.contains('/'), "content type {:?}", a.content_type);
    }
    // What threading then reads: tokens, our signed ids, reply prefixes.
    let token = token();
    let _ = token.find(&mail.subject);
    let _ = token.clean_subject(&mail.subject);
    for id in &mail.references {
        assert_eq!(guichet::notify::message_id::ticket_of(id, SECRET), None, "a forged id of ours verified: {id}");
    }
}

/// Any text as a mail body: the new text and the rest are pieces of the input.
pub fn quotes(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (new, rest) = split(&text);
    assert_eq!(new_text(&text), new);
    assert!(new.len() <= text.len() && rest.len() <= text.len());
    if text.len() <= 4096 {
        for line in new.lines().chain(rest.lines()) {
            assert!(text.contains(line), "line {line:?} is not from the input");
        }
    }
}

/// Any text as a subject: tokens are found and formatted both ways, cleaning and shortening keep
/// their promises.
pub fn thread_subject(data: &[u8]) {
    let subject = String::from_utf8_lossy(data);
    let token = token();
    if let Some(n) = token.find(&subject) {
        assert!(n >= 0);
        assert_eq!(token.find(&token.format(n)), Some(n), "token of {n} not found again");
    }
    let title = token.clean_subject(&subject);
    assert!(title.len() <= subject.len());
    // A reply to our mail keeps its ticket, whatever the title it carries.
    assert_eq!(token.find(&format!("RE : Re: {} {title}", token.format(42))), Some(42));
    let stripped = strip_reply_prefixes(&subject);
    assert!(subject.contains(stripped));
    let _ = is_forward_subject(&subject);
    let ours = token.format(7);
    let long = format!("{ours} {subject}");
    let short = shorten_subject(&long, &ours, 150);
    assert!(short.contains(&ours), "shortened subject {short:?} lost its token");
    assert!(short.chars().count() <= 150 || long.chars().count() <= 150, "subject not shortened");
    let line = header_text(&subject);
    assert!(!line.chars().any(unsafe_in_line), "header text {line:?}");
}

/// Any text as a staff mail: commands are read from the top only, and what remains has none.
pub fn staff_commands(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let commands = StaffCommands::parse(&text);
    assert!(commands.rest.len() <= text.len());
    for unknown in &commands.unknown {
        assert!(unknown.chars().count() <= 100 && !unknown.chars().any(char::is_control), "unknown {unknown:?}");
    }
    let again = StaffCommands::parse(&commands.rest);
    assert!(
        again.status.is_none()
            && again.priority.is_none()
            && !again.note
            && again.requester.is_none()
            && again.unknown.is_empty(),
        "commands left in the rest: {again:?}"
    );
}

/// Any text as a file name: safe, and sanitising it again changes nothing.
pub fn file_name(data: &[u8]) {
    let raw = String::from_utf8_lossy(data);
    for content_type in ["application/pdf", "application/x-unknown"] {
        let name = sanitize_file_name(&raw, content_type);
        check_file_name(&name);
        assert_eq!(sanitize_file_name(&name, content_type), name, "not idempotent");
    }
}

/// Fields of one of our mails from hostile input (separated by 0xFE bytes): whatever they hold,
/// the mail has one From, To, Reply-To, Subject, Message-ID and X-Guichet-Loop, no Cc or Bcc, and reads
/// back as ours.
pub fn outgoing_mail(data: &[u8]) {
    let mut fields = data.split(|&b| b == 0xFE).map(|f| String::from_utf8_lossy(f).into_owned());
    let mut next = || fields.next().unwrap_or_default();
    let (from_name, subject, in_reply_to, reference, file, text) = (next(), next(), next(), next(), next(), next());
    let mail = OutgoingMail {
        from_name,
        from_address: "support@example.com".into(),
        to: vec!["client@customer.example".into()],
        reply_to: Some("support+7-0123456789abcdef@example.com".into()),
        subject: shorten_subject(&subject, "[Ticket #7]", 150),
        message_id: guichet::notify::message_id::ours(Some(7), SECRET, "example.com"),
        in_reply_to: Some(in_reply_to),
        references: vec![reference],
        auto_submitted: Some("auto-replied"),
        loop_id: "support@example.com".into(),
        text,
        html: None,
        attachments: if file.is_empty() {
            Vec::new()
        } else {
            vec![(file, "application/octet-stream".into(), vec![1])]
        },
    };
    let Ok(raw) = compose(&mail) else { return };
    let header_end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a header block");
    let head = String::from_utf8_lossy(&raw[..header_end]);
    let names: Vec<String> = head
        .split("\r\n")
        .filter(|l| !l.starts_with([' ', '\t']))
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_ascii_lowercase()))
        .collect();
    for name in ["from", "to", "reply-to", "subject", "message-id", "x-guichet-loop", "auto-submitted"] {
        let count = names.iter().filter(|n| *n == name).count();
        assert!(count == 1 || (name == "subject" && count == 0), "{count} {name} headers in\n{head}");
    }
    for name in ["cc", "bcc", "sender", "return-path"] {
        assert!(!names.iter().any(|n| n == name), "injected {name} header in\n{head}");
    }
    let back = parse(&raw).expect("our own mail parses");
    assert_eq!(back.from.map(|f| f.address.to_string()).as_deref(), Some("support@example.com"));
    assert_eq!(back.to.len(), 1, "{head}");
    let reply_to: Vec<String> = back.reply_to.iter().map(|m| m.address.to_string()).collect();
    assert_eq!(reply_to, ["support+7-0123456789abcdef@example.com"], "the signed reply address, alone: {head}");
    assert!(back.cc.is_empty(), "{head}");
    assert_eq!(back.loop_header.as_deref(), Some("support@example.com"));
    assert_eq!(guichet::notify::message_id::ticket_of(back.message_id.as_deref().unwrap_or(""), SECRET), Some(7));
}

/// Any text as the HTML of a mail, sanitised for the web view with remote images off: every tag
/// left is harmless, no attribute is an event handler, and nothing loads from elsewhere.
pub fn sanitize_html(data: &[u8]) {
    let html = String::from_utf8_lossy(data);
    let cids = std::collections::HashMap::from([("logo@x".to_string(), 7)]);
    let out = guichet::web::sanitize_mail_html(&html, &cids, false);
    for (name, attributes) in tags(&out) {
        assert!(!FORBIDDEN_TAGS.contains(&name.as_str()), "<{name}> survived in {out}");
        for (attribute, value) in attributes {
            let value = value.replace("&amp;", "&").to_ascii_lowercase();
            let value = value.trim();
            assert!(!attribute.starts_with("on"), "handler {attribute} survived in {out}");
            assert!(
                !["javascript:", "vbscript:", "data:text", "data:image/svg"].iter().any(|s| value.starts_with(s)),
                "{attribute}={value:?} survived in {out}"
            );
            match attribute.as_str() {
                "src" => assert!(
                    value.starts_with("/attachments/") || value.starts_with("data:image/"),
                    "remote or relative source {value:?} in {out}"
                ),
                "href" => assert!(
                    ["http:", "https:", "mailto:"].iter().any(|s| value.starts_with(s)),
                    "link {value:?} in {out}"
                ),
                // `style` keeps only layout and colour properties (ammonia filters by name) whose
                // values pass as written: a `url(…)` there is invalid CSS for every one of them,
                // and the frame's own policy forbids remote loads. Not checked here.
                "srcset" | "background" | "poster" | "action" | "formaction" | "xlink:href" => {
                    panic!("{attribute} survived in {out}")
                }
                _ => {}
            }
        }
    }
}

const FORBIDDEN_TAGS: &[&str] = &[
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "form", "input", "button", "select",
    "textarea", "link", "meta", "base", "svg", "math", "template", "noscript", "title",
];

/// The start and end tags of serialised HTML with their attributes (names lower-cased, values as
/// written): text is escaped by the serialiser, so each `<` opens a tag, and attribute values are
/// double-quoted.
fn tags(html: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        rest = rest.strip_prefix('/').unwrap_or(rest);
        let name_len = rest.find(|c: char| c.is_whitespace() || c == '>' || c == '/').unwrap_or(rest.len());
        let name = rest[..name_len].to_ascii_lowercase();
        rest = &rest[name_len..];
        let mut attributes = Vec::new();
        loop {
            rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
            if rest.is_empty() || rest.starts_with('>') {
                break;
            }
            let end = rest.find(|c: char| c.is_whitespace() || c == '=' || c == '>').unwrap_or(rest.len());
            let attribute = rest[..end].to_ascii_lowercase();
            rest = &rest[end..];
            let mut value = String::new();
            if let Some(after) = rest.strip_prefix("=\"") {
                let close = after.find('"').unwrap_or(after.len());
                value = after[..close].to_string();
                rest = after.get(close + 1..).unwrap_or("");
            }
            attributes.push((attribute, value));
        }
        out.push((name, attributes));
    }
    out
}
