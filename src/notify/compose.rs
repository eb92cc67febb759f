//! An outgoing mail as RFC 5322 bytes, built with lettre (SPEC §4 "Headers").
//!
//! Invariant: no CR, LF or other control character from any input reaches a header. Free text
//! (subject, display name, file names, loop id) is cleaned by [`header_text`]; addresses and our own
//! Message-ID are refused when malformed; foreign Message-IDs in `In-Reply-To`/`References` that are
//! not plain printable ASCII are left out (one odd id from a customer's mail client must not stop the
//! notification). Pure: no IO, the envelope (and its empty sender for automatic error mails) is the
//! transport's business.

use anyhow::{Context as _, bail, ensure};
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Body, Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};

use crate::threading;

/// Subjects longer than this are shortened (the token kept), see [`shorten_subject`].
pub const MAX_SUBJECT_CHARS: usize = 150;

const AUTO_SUBMITTED: HeaderName = HeaderName::new_from_ascii_str("Auto-Submitted");
const X_AUTO_RESPONSE_SUPPRESS: HeaderName = HeaderName::new_from_ascii_str("X-Auto-Response-Suppress");
const X_GUICHET_LOOP: HeaderName = HeaderName::new_from_ascii_str("X-Guichet-Loop");
/// RFC 3834 values; `no` is the absence of the header.
pub const AUTO_SUBMITTED_VALUES: &[&str] = &["auto-replied", "auto-generated", "auto-notified"];

/// Everything a notification mail is made of, decided by the caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutgoingMail {
    pub from_name: String,
    pub from_address: String,
    /// Bare addresses, already validated by the caller.
    pub to: Vec<String>,
    /// Where the recipient's "Reply" goes: their signed reply address (`trust`), shown with the
    /// helpdesk's name.
    pub reply_to: Option<String>,
    pub subject: String,
    /// Without `<>`; see [`super::message_id::ours`].
    pub message_id: String,
    /// Without `<>` (brackets are tolerated).
    pub in_reply_to: Option<String>,
    /// Oldest first, without `<>` (brackets are tolerated).
    pub references: Vec<String>,
    /// `"auto-replied"` (acknowledgements) or `"auto-generated"` (status mails); `None` for relayed answers.
    pub auto_submitted: Option<&'static str>,
    /// Value of `X-Guichet-Loop`, by which we recognise our own mail coming back.
    pub loop_id: String,
    pub text: String,
    pub html: Option<String>,
    /// (file name, content type, bytes)
    pub attachments: Vec<(String, String, Vec<u8>)>,
}

/// The full RFC 5322 message: headers, `multipart/alternative` text + HTML, wrapped in
/// `multipart/mixed` when there are attachments.
pub fn compose(mail: &OutgoingMail) -> anyhow::Result<Vec<u8>> {
    ensure!(!mail.to.is_empty(), "a mail needs at least one recipient");
    let from = Mailbox::new(non_empty(header_text(&mail.from_name)), address(&mail.from_address)?);
    let message_id = message_id(&mail.message_id).context("invalid Message-ID of our own")?;
    let mut builder = Message::builder().from(from).subject(header_text(&mail.subject)).message_id(Some(message_id));
    for to in &mail.to {
        builder = builder.to(Mailbox::new(None, address(to)?));
    }
    if let Some(reply_to) = &mail.reply_to {
        builder = builder.reply_to(Mailbox::new(non_empty(header_text(&mail.from_name)), address(reply_to)?));
    }
    if let Some(id) = mail.in_reply_to.as_deref().and_then(message_id_or_skip) {
        builder = builder.in_reply_to(id);
    }
    let references = threading::capped(mail.references.iter().filter_map(|id| message_id_or_skip(id)).collect());
    if !references.is_empty() {
        builder = builder.references(references.join(" "));
    }
    if let Some(value) = mail.auto_submitted {
        ensure!(AUTO_SUBMITTED_VALUES.contains(&value), "invalid Auto-Submitted value `{value}`");
        builder = builder.raw_header(HeaderValue::new(AUTO_SUBMITTED, value.to_string()));
    }
    builder = builder.raw_header(HeaderValue::new(X_AUTO_RESPONSE_SUPPRESS, "All".to_string()));
    let loop_id = header_text(&mail.loop_id);
    ensure!(!loop_id.is_empty(), "X-Guichet-Loop needs a value");
    builder = builder.raw_header(HeaderValue::new(X_GUICHET_LOOP, loop_id));

    let message = if mail.attachments.is_empty() {
        match &mail.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(mail.text.clone(), html.clone())),
            None => builder.singlepart(SinglePart::plain(mail.text.clone())),
        }
    } else {
        let mut mixed = match &mail.html {
            Some(html) => {
                MultiPart::mixed().multipart(MultiPart::alternative_plain_html(mail.text.clone(), html.clone()))
            }
            None => MultiPart::mixed().singlepart(SinglePart::plain(mail.text.clone())),
        };
        for (name, content_type, bytes) in &mail.attachments {
            mixed = mixed.singlepart(attachment(name, content_type, bytes));
        }
        builder.multipart(mixed)
    }
    .context("building the mail")?;
    Ok(message.formatted())
}

/// `subject` shortened to `max_chars` characters with "…", keeping `token` whole.
///
/// When the subject is too long and contains the token, the result starts with the token, followed by
/// as much of the rest as fits. A subject without the token is simply cut. A token longer than
/// `max_chars` is returned alone: threading matters more than the length.
pub fn shorten_subject(subject: &str, token: &str, max_chars: usize) -> String {
    if subject.chars().count() <= max_chars {
        return subject.to_string();
    }
    let token = token.trim();
    let (prefix, rest) = match subject.find(token) {
        Some(at) if !token.is_empty() => {
            (format!("{token} "), format!("{} {}", &subject[..at], &subject[at + token.len()..]))
        }
        _ => (String::new(), subject.to_string()),
    };
    let rest = rest.split_whitespace().collect::<Vec<_>>().join(" ");
    // Room for the rest of the subject, once the token, its space and the ellipsis are counted.
    let Some(room) = max_chars.checked_sub(prefix.chars().count() + 1).filter(|room| *room > 0) else {
        return if token.is_empty() { subject.chars().take(max_chars).collect() } else { token.to_string() };
    };
    let cut: String = rest.chars().take(room).collect();
    // Cut at the last word boundary when one is not too far back.
    let cut = match cut.rfind(' ') {
        Some(space) if rest.chars().nth(room).is_some_and(|c| c != ' ') && space >= cut.len() / 2 => &cut[..space],
        _ => cut.as_str(),
    };
    format!("{prefix}{}…", cut.trim_end())
}

/// Free text made fit for a header: control characters (CR, LF, tab, NUL, DEL, C1…) and Unicode line
/// separators become spaces, bidirectional overrides (which can disguise a display name) are removed,
/// runs of white space collapse to one, and the ends are trimmed.
pub fn header_text(text: &str) -> String {
    let cleaned: String =
        text.chars().filter(|c| !is_bidi_control(*c)).map(|c| if c.is_control() { ' ' } else { c }).collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn address(raw: &str) -> anyhow::Result<Address> {
    ensure!(!raw.chars().any(|c| c.is_control() || c.is_whitespace()), "invalid mail address {raw:?}");
    raw.parse::<Address>().with_context(|| format!("invalid mail address {raw:?}"))
}

/// `<id>` from an id with or without brackets, if it is a plain printable ASCII id.
fn message_id(raw: &str) -> anyhow::Result<String> {
    let id = raw.trim();
    let id = id.strip_prefix('<').and_then(|s| s.strip_suffix('>')).unwrap_or(id);
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>') {
        bail!("malformed Message-ID {raw:?}");
    }
    Ok(format!("<{id}>"))
}

fn message_id_or_skip(raw: &str) -> Option<String> {
    match message_id(raw) {
        Ok(id) => Some(id),
        Err(error) => {
            tracing::debug!(%error, "leaving a foreign Message-ID out of the threading headers");
            None
        }
    }
}

fn attachment(name: &str, content_type: &str, bytes: &[u8]) -> SinglePart {
    let name = header_text(&name.replace(['/', '\\'], "_"));
    let name = if name.is_empty() { "attachment".to_string() } else { name };
    let content_type = ContentType::parse(&header_text(content_type))
        .unwrap_or_else(|_| ContentType::parse("application/octet-stream").expect("a valid content type"));
    // Base64 whatever the type: the bytes come back exactly as they went (no CRLF rewriting of text).
    let body =
        Body::new_with_encoding(bytes.to_vec(), ContentTransferEncoding::Base64).expect("base64 can encode any bytes");
    Attachment::new(name).body(body, content_type)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::{HeaderValue as Parsed, MessageParser, MimeHeaders};

    fn sample() -> OutgoingMail {
        OutgoingMail {
            from_name: "Support Cisa".into(),
            from_address: "support@example.com".into(),
            to: vec!["client@customer.example".into(), "boss@customer.example".into()],
            reply_to: Some("support+42-0123456789abcdef@support.example.com".into()),
            subject: "[Ticket #42] Imprimante bloquée".into(),
            message_id: "guichet.42.0123456789abcdef.fedcba9876543210@example.com".into(),
            in_reply_to: Some("CAF-first@mail.customer.example".into()),
            references: vec!["CAF-first@mail.customer.example".into(), "<guichet.42.a.b@example.com>".into()],
            auto_submitted: Some("auto-replied"),
            loop_id: "support@example.com".into(),
            text: "Bonjour,\n\nVotre demande est enregistrée.\n".into(),
            html: Some("<p>Bonjour,</p><p>Votre demande est enregistrée.</p>".into()),
            attachments: vec![],
        }
    }

    fn parse(bytes: &[u8]) -> mail_parser::Message<'_> {
        MessageParser::default().parse(bytes).expect("a parsable mail")
    }

    fn text_list(value: &Parsed<'_>) -> Vec<String> {
        match value {
            Parsed::Text(one) => vec![one.to_string()],
            Parsed::TextList(many) => many.iter().map(|s| s.to_string()).collect(),
            _ => vec![],
        }
    }

    /// Header names and raw values of the top level, unfolded.
    fn top_headers(bytes: &[u8]) -> Vec<(String, String)> {
        parse(bytes).headers_raw().map(|(name, value)| (name.to_string(), value.replace("\r\n", ""))).collect()
    }

    #[test]
    fn every_header_survives_a_round_trip() {
        let mail = sample();

        let bytes = compose(&mail).unwrap();

        let parsed = parse(&bytes);
        let from = parsed.from().and_then(|a| a.first()).unwrap();
        assert_eq!(from.name(), Some("Support Cisa"));
        assert_eq!(from.address(), Some("support@example.com"));
        let to: Vec<_> = parsed.to().unwrap().iter().filter_map(|a| a.address()).collect();
        assert_eq!(to, ["client@customer.example", "boss@customer.example"]);
        assert_eq!(parsed.subject(), Some("[Ticket #42] Imprimante bloquée"));
        assert!(parsed.date().is_some());
        assert_eq!(parsed.message_id(), Some("guichet.42.0123456789abcdef.fedcba9876543210@example.com"));
        assert_eq!(parsed.in_reply_to().as_text(), Some("CAF-first@mail.customer.example"));
        let reply_to = parsed.reply_to().and_then(|a| a.first()).unwrap();
        assert_eq!(reply_to.address(), Some("support+42-0123456789abcdef@support.example.com"));
        assert_eq!(reply_to.name(), Some("Support Cisa"));
        assert_eq!(text_list(parsed.references()), ["CAF-first@mail.customer.example", "guichet.42.a.b@example.com"]);
        assert_eq!(parsed.header_raw("Auto-Submitted").map(str::trim), Some("auto-replied"));
        assert_eq!(parsed.header_raw("X-Auto-Response-Suppress").map(str::trim), Some("All"));
        assert_eq!(parsed.header_raw("X-Guichet-Loop").map(str::trim), Some("support@example.com"));
        assert!(parsed.bcc().is_none());
    }

    #[test]
    fn text_and_html_are_alternatives() {
        let bytes = compose(&sample()).unwrap();

        let parsed = parse(&bytes);
        assert!(parsed.content_type().is_some_and(|ct| ct.c_subtype.as_deref() == Some("alternative")));
        assert_eq!(parsed.body_text(0).unwrap().replace("\r\n", "\n"), "Bonjour,\n\nVotre demande est enregistrée.\n");
        assert_eq!(parsed.body_html(0).unwrap().trim_end(), "<p>Bonjour,</p><p>Votre demande est enregistrée.</p>");
        assert_eq!(parsed.attachment_count(), 0);
    }

    #[test]
    fn a_relayed_answer_has_no_auto_submitted_and_may_be_text_only() {
        let mail = OutgoingMail { auto_submitted: None, html: None, in_reply_to: None, references: vec![], ..sample() };

        let bytes = compose(&mail).unwrap();

        let parsed = parse(&bytes);
        assert!(parsed.header_raw("Auto-Submitted").is_none());
        assert!(parsed.header_raw("In-Reply-To").is_none() && parsed.header_raw("References").is_none());
        assert_eq!(parsed.header_raw("X-Auto-Response-Suppress").map(str::trim), Some("All"));
        assert!(parsed.body_text(0).unwrap().starts_with("Bonjour,"));
        assert!(!String::from_utf8_lossy(&bytes).contains("text/html"));
    }

    #[test]
    fn attachments_come_back_byte_for_byte() {
        let binary: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let mail = OutgoingMail {
            attachments: vec![
                ("photo.png".into(), "image/png".into(), binary.clone()),
                ("notes été.txt".into(), "text/plain; charset=utf-8".into(), b"line 1\nline 2\r\n".to_vec()),
            ],
            ..sample()
        };

        let bytes = compose(&mail).unwrap();

        let parsed = parse(&bytes);
        assert!(parsed.content_type().is_some_and(|ct| ct.c_subtype.as_deref() == Some("mixed")));
        let attachments: Vec<_> = parsed.attachments().collect();
        assert_eq!(attachments.len(), 2);
        assert_eq!(attachments[0].attachment_name(), Some("photo.png"));
        assert_eq!(attachments[0].content_type().map(|ct| ct.c_type.as_ref()), Some("image"));
        assert_eq!(attachments[0].contents(), binary.as_slice());
        assert_eq!(attachments[1].attachment_name(), Some("notes été.txt"));
        assert_eq!(attachments[1].contents(), b"line 1\nline 2\r\n");
        assert!(parsed.body_text(0).unwrap().starts_with("Bonjour,"));
        assert!(parsed.body_html(0).unwrap().starts_with("<p>Bonjour,"));
    }

    #[test]
    fn a_bad_content_type_falls_back_to_octet_stream() {
        let mail = OutgoingMail {
            attachments: vec![("x.bin".into(), "not a type\r\nBcc: a@b.c".into(), vec![1, 2])],
            ..sample()
        };

        let bytes = compose(&mail).unwrap();

        let parsed = parse(&bytes);
        let part = parsed.attachment(0).unwrap();
        assert_eq!(part.content_type().and_then(|ct| ct.c_subtype.as_deref()), Some("octet-stream"));
        assert_eq!(part.contents(), [1, 2]);
    }

    #[test]
    fn injected_line_breaks_never_make_a_header() {
        let mail = OutgoingMail {
            subject: "[Ticket #42] Hello\r\nBcc: evil@x.com".into(),
            from_name: "Alice\r\nBcc: evil@x.com".into(),
            loop_id: "support@example.com\nBcc: evil@x.com".into(),
            attachments: vec![("a\r\nBcc: evil@x.com.txt".into(), "text/plain".into(), b"x".to_vec())],
            ..sample()
        };

        let bytes = compose(&mail).unwrap();

        let parsed = parse(&bytes);
        assert!(parsed.bcc().is_none());
        let names: Vec<String> = top_headers(&bytes).into_iter().map(|(name, _)| name.to_ascii_lowercase()).collect();
        assert!(!names.iter().any(|n| n == "bcc"), "{names:?}");
        let raw = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
        assert!(!raw.contains("\nbcc:"), "{raw}");
        assert_eq!(parsed.subject(), Some("[Ticket #42] Hello Bcc: evil@x.com"));
        assert_eq!(parsed.from().and_then(|a| a.first()).and_then(|a| a.name()), Some("Alice Bcc: evil@x.com"));
        assert_eq!(parsed.attachment(0).unwrap().attachment_name(), Some("a Bcc: evil@x.com.txt"));
    }

    #[test]
    fn addresses_with_control_characters_are_refused() {
        for bad in
            ["client@customer.example\r\nBcc: evil@x.com", "client@customer.example\n", "a\u{0}@b.c", "no-at-sign"]
        {
            let to = OutgoingMail { to: vec![bad.into()], ..sample() };
            let from = OutgoingMail { from_address: bad.into(), ..sample() };

            assert!(compose(&to).is_err(), "{bad:?}");
            assert!(compose(&from).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_malformed_own_message_id_is_refused_and_foreign_ones_are_left_out() {
        let ours = OutgoingMail { message_id: "a b@example.com\r\nBcc: evil@x.com".into(), ..sample() };
        assert!(compose(&ours).is_err());

        let foreign = OutgoingMail {
            in_reply_to: Some("bad\r\nBcc: evil@x.com".into()),
            references: vec!["good@example.com".into(), "bad id@example.com".into(), "".into()],
            ..sample()
        };
        let bytes = compose(&foreign).unwrap();
        let parsed = parse(&bytes);
        assert!(parsed.header_raw("In-Reply-To").is_none());
        assert_eq!(text_list(parsed.references()), ["good@example.com"]);
        assert!(parsed.bcc().is_none());
    }

    #[test]
    fn references_keep_the_first_and_the_latest() {
        let references: Vec<String> = (0..50).map(|n| format!("id{n}@example.com")).collect();
        let mail = OutgoingMail { references, ..sample() };

        let bytes = compose(&mail).unwrap();

        let kept = text_list(parse(&bytes).references());
        assert_eq!(kept.len(), threading::MAX_REFERENCES);
        assert_eq!(kept[0], "id0@example.com");
        assert_eq!(kept[1], "id31@example.com");
        assert_eq!(kept[threading::MAX_REFERENCES - 1], "id49@example.com");
    }

    #[test]
    fn nonsense_is_refused() {
        assert!(compose(&OutgoingMail { to: vec![], ..sample() }).is_err());
        assert!(compose(&OutgoingMail { auto_submitted: Some("yes please"), ..sample() }).is_err());
        assert!(compose(&OutgoingMail { loop_id: " \r\n ".into(), ..sample() }).is_err());
    }

    #[test]
    fn an_empty_display_name_gives_a_bare_address() {
        let bytes = compose(&OutgoingMail { from_name: " \t".into(), ..sample() }).unwrap();

        let parsed = parse(&bytes);
        let from = parsed.from().and_then(|a| a.first()).unwrap();
        assert_eq!(from.name(), None);
        assert_eq!(from.address(), Some("support@example.com"));
    }

    #[test]
    fn a_long_subject_is_shortened_around_its_token() {
        let long = format!("[Ticket #42] {}", "mot ".repeat(100));

        let short = shorten_subject(&long, "[Ticket #42]", MAX_SUBJECT_CHARS);

        assert!(short.starts_with("[Ticket #42] mot mot"), "{short}");
        assert!(short.ends_with("mot…"), "{short}");
        assert!(short.chars().count() <= MAX_SUBJECT_CHARS);
    }

    #[test]
    fn a_token_at_the_end_moves_to_the_front_when_shortening() {
        let long = format!("Re: {} [Ticket #42]", "x".repeat(300));

        let short = shorten_subject(&long, "[Ticket #42]", 40);

        assert_eq!(short, format!("[Ticket #42] Re: {}…", "x".repeat(22)));
        assert_eq!(short.chars().count(), 40);
    }

    #[test]
    fn a_short_subject_is_left_alone() {
        assert_eq!(shorten_subject("[Ticket #42] Court", "[Ticket #42]", 150), "[Ticket #42] Court");
        let exact = "é".repeat(150);
        assert_eq!(shorten_subject(&exact, "", 150), exact);
    }

    #[test]
    fn a_subject_without_its_token_is_simply_cut() {
        let short = shorten_subject(&"é".repeat(200), "[Ticket #42]", 10);

        assert_eq!(short, format!("{}…", "é".repeat(9)));
    }

    #[test]
    fn a_token_longer_than_the_limit_is_kept_whole() {
        assert_eq!(shorten_subject("[Ticket #42] something long", "[Ticket #42]", 5), "[Ticket #42]");
    }

    #[test]
    fn header_text_flattens_controls_and_bidi_overrides() {
        assert_eq!(header_text(" a\r\nb\tc\u{0}d\u{7f}e\u{85}f\u{2028}g "), "a b c d e f g");
        assert_eq!(header_text("Alice\u{202E}moc.live"), "Alicemoc.live");
    }
}
