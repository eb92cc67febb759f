use super::classify::{AutoSignals, auto_kind, parse_auth_results};
use super::{AutoKind, InboundMail, Mailbox, ParseError, attachments, dsn, forward, quotes};
use crate::domain::{EmailAddress, ForwardPrefixes};
use mail_parser::{Address, HeaderName, HeaderValue, Message, MessageParser, MimeHeaders, PartType};

/// `In-Reply-To` + `References` entries kept; threading needs the last few, not a hostile thousand.
const MAX_REFERENCES: usize = 50;
/// Addresses kept per `To` / `Cc` / `Reply-To` list.
const MAX_ADDRESSES: usize = 100;
/// Values kept of a repeatable header (`Authentication-Results`, `Delivered-To`…).
const MAX_HEADER_VALUES: usize = 20;
/// RFC 5322's line limit: longer subjects are cut, not refused.
const MAX_SUBJECT_CHARS: usize = 998;
/// Header bytes inspected to tell a mail from garbage.
const HEADER_SNIFF_BYTES: usize = 64 * 1024;

/// Parses raw RFC 5322 bytes. `max_attachment_bytes` is not applied here (the store decides);
/// all attachments are returned decoded. Forwards are known by the built-in subject prefixes.
pub fn parse(raw: &[u8]) -> Result<InboundMail, ParseError> {
    parse_with(raw, ForwardPrefixes::built_in())
}

/// [`parse`], forwards known by `forward_prefixes` (the desk's, configuration included).
pub fn parse_with(raw: &[u8], forward_prefixes: &ForwardPrefixes) -> Result<InboundMail, ParseError> {
    check_header_block(raw)?;
    let (message, headers_only) = match std::panic::catch_unwind(|| MessageParser::default().parse(raw)) {
        Ok(message) => (message, false),
        // Some broken MIME trees trip a debug assertion inside mail-parser (release builds carry
        // on): the headers alone still make a mail worth keeping, its body shown as raw text.
        Err(_) => (MessageParser::default().parse_headers(raw), true),
    };
    let message = message.ok_or(ParseError::NotAMail("no header block"))?;
    let from = message.from().and_then(|a| mailboxes(a, 1).into_iter().next()).ok_or(ParseError::NoSender)?;

    let subject = clean_subject(message.subject().unwrap_or(""));
    let (text, history_hint) = if headers_only { (raw_body_text(raw), None) } else { body_text(&message, raw) };
    let html = message.html_bodies().find_map(|part| match &part.body {
        PartType::Html(html) => Some(html.replace('\0', "")),
        _ => None,
    });
    let attachments = attachments::collect(&message);

    let return_path = raw_values(&message, "Return-Path").next();
    let empty_return_path = return_path.as_deref().is_some_and(is_empty_path);
    let dsn = dsn::delivery_report(&message, is_system_sender(&from.address));
    let auto = if dsn.is_some() { AutoKind::Bulk } else { auto_kind_of(&message, &from, &subject, empty_return_path) };

    let forwarded_from = forward_prefixes
        .is_forward(&subject)
        .then(|| forward::forwarded_sender(&text).or_else(|| attached_original_sender(&message)))
        .flatten();
    let new_text = match quotes::split_with_hint(&text, history_hint).0 {
        // A bare forward has no new text of its own: the forwarded mail is the request.
        new if new.is_empty() && forwarded_from.is_some() => text.trim().to_string(),
        new => new,
    };

    Ok(InboundMail {
        message_id: message.message_id().and_then(clean_id),
        references: references(&message),
        subject,
        reply_to: message.reply_to().map(|a| mailboxes(a, MAX_ADDRESSES)).unwrap_or_default(),
        to: message.all_to().flat_map(|a| mailboxes(a, MAX_ADDRESSES)).take(MAX_ADDRESSES).collect(),
        cc: message.all_cc().flat_map(|a| mailboxes(a, MAX_ADDRESSES)).take(MAX_ADDRESSES).collect(),
        from: Some(from),
        from_count: from_count(&message),
        delivered_to: delivered_to(&message),
        date: message.date().filter(|d| d.is_valid()).map(|d| d.to_timestamp()),
        text,
        html,
        new_text,
        attachments,
        auto,
        dsn,
        loop_header: raw_values(&message, "X-Guichet-Loop").next().filter(|v| !v.is_empty()),
        empty_return_path,
        auth_results: raw_values(&message, "Authentication-Results")
            .take(MAX_HEADER_VALUES)
            .filter_map(|v| parse_auth_results(&v))
            .collect(),
        forwarded_from,
        spam_headers: spam_headers(&message),
        urgency: urgency(&message),
        size: raw.len(),
    })
}

/// Refuses bytes that do not open with a header field (`Name: value`), optionally after an mbox
/// `From ` line, or whose header block is mostly binary.
fn check_header_block(raw: &[u8]) -> Result<(), ParseError> {
    let start = raw.iter().position(|b| !b.is_ascii_whitespace()).ok_or(ParseError::NotAMail("empty"))?;
    let mut head = &raw[start..raw.len().min(start + HEADER_SNIFF_BYTES)];
    if head.starts_with(b"From ") {
        let line_end = head.iter().position(|&b| b == b'\n').map_or(head.len(), |p| p + 1);
        head = &head[line_end..];
    }
    let name_len = head.iter().take_while(|&&b| b.is_ascii_graphic() && b != b':').count();
    let after_name = head.get(name_len..).unwrap_or_default();
    let colon = after_name.iter().position(|&b| b != b' ' && b != b'\t');
    if name_len == 0 || name_len > 76 || colon.and_then(|p| after_name.get(p)) != Some(&b':') {
        return Err(ParseError::NotAMail("no header block"));
    }
    let header_end = body_start(head).unwrap_or(head.len());
    let binary = head[..header_end].iter().filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n' | 0x1b)).count();
    if binary * 10 > header_end {
        return Err(ParseError::NotAMail("binary data"));
    }
    Ok(())
}

/// Where the body starts: just past the first empty line (`\n\n` or `\n\r\n`).
fn body_start(bytes: &[u8]) -> Option<usize> {
    bytes.iter().enumerate().filter(|&(_, &b)| b == b'\n').find_map(|(i, _)| match bytes.get(i + 1..) {
        Some([b'\n', ..]) => Some(i + 2),
        Some([b'\r', b'\n', ..]) => Some(i + 3),
        _ => None,
    })
}

/// The parseable addresses of one address header, at most `limit`.
fn mailboxes(address: &Address<'_>, limit: usize) -> Vec<Mailbox> {
    address
        .iter()
        .filter_map(|addr| {
            let address = EmailAddress::parse(addr.address.as_deref()?)?;
            let name = addr.name.as_deref().map(clean_line).filter(|n| !n.is_empty() && *n != address.as_str());
            Some(Mailbox { name, address })
        })
        .take(limit)
        .collect()
}

/// A subject on one line: decoded by mail-parser, controls removed, spaces collapsed.
fn clean_subject(subject: &str) -> String {
    clean_line(subject).chars().take(MAX_SUBJECT_CHARS).collect()
}

/// Controls and line breaks become single spaces; a no-break space is left alone (French
/// typography puts one before `:`). Bidirectional controls are removed, as from file names: an
/// unbalanced override would reverse the rest of a subject line ("[Ticket #12] …" included)
/// wherever it is shown.
pub(super) fn clean_line(value: &str) -> String {
    value
        .split(|c: char| c.is_control() || c.is_ascii_whitespace() || matches!(c, '\u{2028}' | '\u{2029}'))
        .map(|word| word.replace(attachments::is_bidi_control, ""))
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn clean_id(id: &str) -> Option<String> {
    let id = id.trim().trim_start_matches('<').trim_end_matches('>').trim();
    (!id.is_empty() && !id.contains(|c: char| c.is_control() || c.is_whitespace())).then(|| id.to_string())
}

/// `In-Reply-To` first, then `References` from the most recent, without duplicates.
fn references(message: &Message<'_>) -> Vec<String> {
    let ids = |value: &HeaderValue<'_>| -> Vec<String> {
        match value {
            HeaderValue::Text(id) => vec![id.to_string()],
            HeaderValue::TextList(ids) => ids.iter().map(|id| id.to_string()).collect(),
            _ => Vec::new(),
        }
    };
    let in_reply_to = ids(message.in_reply_to());
    let mut references = ids(message.references());
    references.reverse();
    let mut out: Vec<String> = Vec::new();
    for id in in_reply_to.iter().chain(references.iter()).filter_map(|id| clean_id(id)) {
        if out.len() == MAX_REFERENCES {
            break;
        }
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// Envelope recipients the MTA recorded, without duplicates.
fn delivered_to(message: &Message<'_>) -> Vec<EmailAddress> {
    let mut out: Vec<EmailAddress> = Vec::new();
    let values = raw_values(message, "Delivered-To").chain(raw_values(message, "X-Original-To"));
    for address in values.take(MAX_HEADER_VALUES).filter_map(|v| EmailAddress::parse(&v)) {
        if !out.contains(&address) {
            out.push(address);
        }
    }
    out
}

/// Addresses in all `From` headers together (a header that holds none still counts as one).
fn from_count(message: &Message<'_>) -> usize {
    message
        .headers()
        .iter()
        .filter(|h| h.name == HeaderName::From)
        .map(|h| match &h.value {
            HeaderValue::Address(a) => a.iter().count().max(1),
            _ => 1,
        })
        .sum()
}

/// `X-Spam…` headers (name, unfolded value), capped: the receiving server's spam verdict.
fn spam_headers(message: &Message<'_>) -> Vec<(String, String)> {
    message
        .headers()
        .iter()
        .filter(|h| h.name.as_str().get(..6).is_some_and(|p| p.eq_ignore_ascii_case("x-spam")))
        .take(MAX_HEADER_VALUES)
        .filter_map(|h| {
            let name = h.name.as_str().to_string();
            raw_values(message, h.name.as_str()).next().map(|v| (name, v))
        })
        .collect()
}

/// `Importance: high` / `X-Priority: 1|2` → blocking; `low` / `4|5` → low; anything else → none.
fn urgency(message: &Message<'_>) -> Option<crate::domain::Priority> {
    use crate::domain::Priority;
    let importance = raw_values(message, "Importance").next().map(|v| v.trim().to_ascii_lowercase());
    match importance.as_deref() {
        Some("high") => return Some(Priority::Blocking),
        Some("low") => return Some(Priority::Low),
        _ => {}
    }
    // "1 (Highest)", "5 (Lowest)": the number leads.
    let x_priority = raw_values(message, "X-Priority").next()?;
    match x_priority.trim().chars().next()? {
        '1' | '2' => Some(Priority::Blocking),
        '4' | '5' => Some(Priority::Low),
        _ => None,
    }
}

/// Raw values of every top-level header named `name` (any case), unfolded and trimmed.
pub(super) fn raw_values<'m>(message: &'m Message<'_>, name: &'m str) -> impl Iterator<Item = String> + 'm {
    message.headers().iter().filter(move |h| h.name.as_str().eq_ignore_ascii_case(name)).filter_map(move |h| {
        let bytes = message.raw_message.get(h.offset_start as usize..h.offset_end as usize)?;
        Some(
            String::from_utf8_lossy(bytes)
                .split(['\r', '\n'])
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        )
    })
}

/// `<>` (or nothing at all between the brackets): the envelope sender of bounces and auto-replies.
fn is_empty_path(value: &str) -> bool {
    value.trim().trim_start_matches('<').trim_end_matches('>').trim().is_empty()
}

fn is_system_sender(address: &EmailAddress) -> bool {
    let local = address.local_part();
    local.eq_ignore_ascii_case("mailer-daemon") || local.eq_ignore_ascii_case("postmaster")
}

fn auto_kind_of(message: &Message<'_>, from: &Mailbox, subject: &str, empty_return_path: bool) -> AutoKind {
    let auto_submitted: Vec<String> = raw_values(message, "Auto-Submitted").take(MAX_HEADER_VALUES).collect();
    let precedence: Vec<String> = raw_values(message, "Precedence").take(MAX_HEADER_VALUES).collect();
    let x_autoreply: Vec<String> = raw_values(message, "X-Autoreply")
        .chain(raw_values(message, "X-Autorespond"))
        .take(MAX_HEADER_VALUES)
        .collect();
    auto_kind(&AutoSignals {
        auto_submitted: auto_submitted.iter().map(String::as_str).collect(),
        precedence: precedence.iter().map(String::as_str).collect(),
        x_autoreply: x_autoreply.iter().map(String::as_str).collect(),
        has_list_id: message.header(HeaderName::ListId).is_some(),
        empty_return_path,
        from_local_part: from.address.local_part(),
        subject,
        is_report: dsn::is_report(message),
    })
}

/// The sender of a mail forwarded as an attachment (`message/rfc822`).
fn attached_original_sender(message: &Message<'_>) -> Option<Mailbox> {
    message.attachments().find_map(|part| match &part.body {
        PartType::Message(nested) => nested.from().and_then(|a| mailboxes(a, 1).into_iter().next()),
        _ => None,
    })
}

/// The whole text body as UTF-8: every text part of the body in order (HTML-only mail gives its
/// text rendering), with line ends normalised to `\n` and control characters other than tab removed;
/// and, for a body rendered from HTML, the line where its quoted-history container starts.
fn body_text(message: &Message<'_>, raw: &[u8]) -> (String, Option<usize>) {
    let mut text = String::new();
    let mut history_hint = None;
    for &id in &message.text_body {
        let Some(part) = message.parts.get(id as usize) else { continue };
        let (piece, hint) = match &part.body {
            PartType::Text(decoded) => (super::charset::repair(part, decoded, raw), None),
            PartType::Html(html) => super::html::html_to_text_with_history(html),
            _ => continue,
        };
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        if history_hint.is_none() {
            history_hint = hint.map(|line| line + line_ends(&text));
        }
        text.push_str(&piece);
    }
    if message.text_body.is_empty() && message.html_body.is_empty() {
        text = broken_multipart_text(message).unwrap_or(text);
    }
    (clean_text(&text), history_hint)
}

/// How many line ends `text` has once cleaned (`\r\n`, `\n` and a lone `\r` each end a line).
fn line_ends(text: &str) -> usize {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().filter(|&(i, &b)| b == b'\n' || b == b'\r' && bytes.get(i + 1) != Some(&b'\n')).count()
}

/// Everything after the header block, as text.
fn raw_body_text(raw: &[u8]) -> String {
    let body = body_start(raw).and_then(|start| raw.get(start..)).unwrap_or_default();
    clean_text(&String::from_utf8_lossy(body))
}

/// A `multipart/*` root without a usable boundary: mail-parser keeps it as one binary part, but
/// its bytes are the sender's text and are better shown than lost.
fn broken_multipart_text(message: &Message<'_>) -> Option<String> {
    let root = message.parts.first()?;
    let is_multipart = root.content_type().is_some_and(|ct| ct.ctype().eq_ignore_ascii_case("multipart"));
    match &root.body {
        PartType::Binary(bytes) | PartType::InlineBinary(bytes) if is_multipart => {
            Some(String::from_utf8_lossy(bytes).into_owned())
        }
        _ => None,
    }
}

fn clean_text(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .filter(|&c| c != '\u{feff}')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mail-parser's base64 decoder is patched (vendor/mail-parser/PATCH.md): whatever the line
    /// shapes, an attachment decodes to what the `base64` crate makes of the same text.
    #[test]
    fn base64_bodies_decode_as_the_base64_crate_does() {
        use base64::Engine as _;
        let mut seed = 7u32;
        let mut bytes = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (seed >> 16) as u8
                })
                .collect()
        };
        // Each shape turns the base64 text into the body's lines.
        type Shape = fn(&str) -> String;
        let wrap = |text: &str, width: usize, eol: &str| -> String {
            text.as_bytes().chunks(width).map(|l| std::str::from_utf8(l).unwrap()).collect::<Vec<_>>().join(eol)
        };
        let shapes: [(&str, Shape); 6] = [
            ("76 CRLF", |t| t.as_bytes().chunks(76).map(|l| String::from_utf8_lossy(l) + "\r\n").collect()),
            ("76 LF", |t| t.as_bytes().chunks(76).map(|l| String::from_utf8_lossy(l) + "\n").collect()),
            ("70, groups across lines", |t| {
                t.as_bytes().chunks(70).map(|l| String::from_utf8_lossy(l) + "\r\n").collect()
            }),
            ("trailing spaces", |t| t.as_bytes().chunks(76).map(|l| String::from_utf8_lossy(l) + " \r\n").collect()),
            ("one odd line midway", |t| {
                t.as_bytes()
                    .chunks(76)
                    .enumerate()
                    .map(|(i, l)| {
                        let l = String::from_utf8_lossy(l);
                        if i == 3 && l.len() > 8 { format!("{} {}\r\n", &l[..8], &l[8..]) } else { format!("{l}\r\n") }
                    })
                    .collect()
            }),
            ("one line", |t| format!("{t}\r\n")),
        ];
        for len in [0, 1, 2, 3, 56, 57, 58, 300, 4095, 20_000] {
            let data = bytes(len);
            let text = base64::engine::general_purpose::STANDARD.encode(&data);
            for (name, shape) in &shapes {
                let body = shape(&text);
                let raw = format!(
                    "From: a@customer.example\r\nTo: support@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n\
                     Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
                     --b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"f.bin\"\r\n\
                     Content-Transfer-Encoding: base64\r\n\r\n{body}--b--\r\n"
                );
                let mail = parse(raw.as_bytes()).unwrap();
                let files: Vec<_> = mail.attachments.iter().filter(|a| a.name == "f.bin").collect();
                assert_eq!(files.len(), 1, "{len} bytes, {name}");
                assert!(files[0].data == data, "{len} bytes, {name}: decoded differently");
            }
            // A whole mail in base64, its last line without a newline.
            let raw = format!(
                "From: a@customer.example\r\nSubject: s\r\nContent-Type: application/pdf; name=\"g.pdf\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n{}",
                wrap(&text, 76, "\r\n")
            );
            let mail = parse(raw.as_bytes()).unwrap();
            let decoded =
                mail.attachments.iter().find(|a| a.name == "g.pdf").map(|a| a.data.clone()).unwrap_or_default();
            assert!(decoded == data, "{len} bytes as a single part");
        }
    }

    #[test]
    fn line_ends_count_as_cleaning_makes_them() {
        assert_eq!(line_ends("a\r\nb\rc\nd"), 3);
        assert_eq!(clean_text("a\r\nb\rc\nd").matches('\n').count(), 3);
    }

    #[test]
    fn bytes_without_a_header_block_are_not_mail() {
        for raw in [&b""[..], b" \r\n\t", b"Hello, this is a note.\n", b": no name\n\n", b"\x00\x01\x02garbage"] {
            assert!(matches!(check_header_block(raw), Err(ParseError::NotAMail(_))), "{raw:?}");
        }
        assert_eq!(
            check_header_block(b"X-Junk: \x00\x01\x02\x03\x04\x05\x06\x07\x08\n\n"),
            Err(ParseError::NotAMail("binary data"))
        );
    }

    #[test]
    fn a_header_block_is_recognised_even_after_an_mbox_line() {
        assert_eq!(check_header_block(b"Subject: hi\r\n\r\nbody"), Ok(()));
        assert_eq!(check_header_block(b"\r\nSubject : spaced\n\n"), Ok(()));
        assert_eq!(check_header_block(b"From a@example.com Mon Jun  3 10:00:00 2024\nFrom: a@example.com\n\n"), Ok(()));
    }

    #[test]
    fn the_body_starts_after_the_first_empty_line() {
        assert_eq!(body_start(b"A: b\r\n\r\nbody"), Some(8));
        assert_eq!(body_start(b"A: b\n\nbody\r\n\r\n"), Some(6));
        assert_eq!(body_start(b"A: b\n"), None);
    }

    #[test]
    fn subjects_lose_line_breaks_and_controls_but_keep_no_break_spaces() {
        assert_eq!(clean_subject("Re:\r\n\t[Ticket #1]  x\u{0}y\u{2028}z"), "Re: [Ticket #1] x y z");
        assert_eq!(clean_subject("Réponse automatique\u{a0}: x"), "Réponse automatique\u{a0}: x");
        assert_eq!(clean_subject("Facture \u{202E}gnp.exe\u{2066} [Ticket #9]"), "Facture gnp.exe [Ticket #9]");
    }

    #[test]
    fn a_mime_tree_that_trips_mail_parser_still_gives_the_mail() {
        let raw = b"From: a@example.com\r\nSubject: nested\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
                    --outer\r\nContent-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\n\r\n--outer--\r\n";
        let mail = parse(raw).expect("parsed");
        assert_eq!(mail.from.map(|f| f.address.to_string()).as_deref(), Some("a@example.com"));
        assert_eq!(mail.subject, "nested");
    }
}
