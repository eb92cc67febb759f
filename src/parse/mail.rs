use super::classify::{AutoSignals, auto_kind, parse_auth_results};
use super::{AutoKind, InboundMail, Mailbox, ParseError, attachments, dsn, forward, quotes};
use crate::domain::{EmailAddress, is_forward_subject};
use mail_parser::{Address, HeaderName, HeaderValue, Message, MessageParser, PartType};

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
/// all attachments are returned decoded.
pub fn parse(raw: &[u8]) -> Result<InboundMail, ParseError> {
    check_header_block(raw)?;
    let message = MessageParser::default().parse(raw).ok_or(ParseError::NotAMail("no header block"))?;
    let from = message.from().and_then(|a| mailboxes(a, 1).into_iter().next()).ok_or(ParseError::NoSender)?;

    let subject = clean_subject(message.subject().unwrap_or(""));
    let text = body_text(&message, raw);
    let html = message.html_bodies().find_map(|part| match &part.body {
        PartType::Html(html) => Some(html.replace('\0', "")),
        _ => None,
    });
    let attachments = attachments::collect(&message);

    let return_path = raw_values(&message, "Return-Path").next();
    let empty_return_path = return_path.as_deref().is_some_and(is_empty_path);
    let dsn = dsn::delivery_report(&message, is_system_sender(&from.address));
    let auto = if dsn.is_some() { AutoKind::Bulk } else { auto_kind_of(&message, &from, &subject, empty_return_path) };

    let forwarded_from = is_forward_subject(&subject)
        .then(|| forward::forwarded_sender(&text).or_else(|| attached_original_sender(&message)))
        .flatten();
    let new_text = match quotes::new_text(&text) {
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
    let header_end = find_blank_line(head).unwrap_or(head.len());
    let binary = head[..header_end].iter().filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n' | 0x1b)).count();
    if binary * 10 > header_end {
        return Err(ParseError::NotAMail("binary data"));
    }
    Ok(())
}

fn find_blank_line(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\n\n").or_else(|| bytes.windows(4).position(|w| w == b"\r\n\r\n"))
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
/// typography puts one before `:`).
fn clean_line(value: &str) -> String {
    value
        .split(|c: char| c.is_control() || c.is_ascii_whitespace() || matches!(c, '\u{2028}' | '\u{2029}'))
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
/// text rendering), with line ends normalised to `\n` and control characters other than tab removed.
fn body_text(message: &Message<'_>, raw: &[u8]) -> String {
    let mut text = String::new();
    for &id in &message.text_body {
        let Some(part) = message.parts.get(id as usize) else { continue };
        let piece = match &part.body {
            PartType::Text(decoded) => super::charset::repair(part, decoded, raw),
            PartType::Html(html) => super::html::html_to_text(html),
            _ => continue,
        };
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&piece);
    }
    clean_text(&text)
}

fn clean_text(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .filter(|&c| c != '\u{feff}')
        .collect()
}
