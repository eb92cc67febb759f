//! Attachment parts → [`Attachment`]s with decoded bytes and names safe to show and to offer
//! for download.

use super::{Attachment, RawSpan};
use mail_parser::{Encoding, Message, MessagePart, MimeHeaders, PartType};

/// Longest file name kept, in characters (the extension survives the cut).
const MAX_NAME_CHARS: usize = 200;
/// Longest extension that is still treated as one when a name is shortened.
const MAX_EXTENSION_CHARS: usize = 16;

/// Every attachment part of `message`, in order. Parts that are the text or HTML body are not
/// attachments; inline images, `winmail.dat` and attached mails (as `.eml`) are.
pub(super) fn collect(message: &Message<'_>) -> Vec<Attachment> {
    message
        .attachments
        .iter()
        .filter(|id| !is_body(message, **id))
        .filter_map(|&id| message.parts.get(id as usize))
        .filter_map(to_attachment)
        .collect()
}

fn is_body(message: &Message<'_>, id: u32) -> bool {
    let is_text =
        matches!(message.parts.get(id as usize).map(|p| &p.body), Some(PartType::Text(_) | PartType::Html(_)));
    is_text && (message.text_body.contains(&id) || message.html_body.contains(&id))
}

fn to_attachment(part: &MessagePart<'_>) -> Option<Attachment> {
    if part.content_type().is_some_and(|ct| ct.ctype().eq_ignore_ascii_case("multipart")) {
        // A multipart that could not be split (no boundary) is body text, not a file.
        return None;
    }
    let (data, default_type, fallback_stem): (Vec<u8>, &str, String) = match &part.body {
        PartType::Multipart(_) => return None,
        PartType::Message(nested) => {
            // Named after the attached mail's subject when the part carries no file name.
            let stem = nested.subject().map(|s| s.replace(['/', '\\'], "_")).unwrap_or_default();
            (nested.raw_message().to_vec(), "message/rfc822", stem)
        }
        PartType::Text(text) => (text.as_bytes().to_vec(), "text/plain", String::new()),
        PartType::Html(html) => (html.as_bytes().to_vec(), "text/html", String::new()),
        PartType::Binary(bytes) | PartType::InlineBinary(bytes) => {
            (bytes.to_vec(), "application/octet-stream", String::new())
        }
    };
    let content_type = part
        .content_type()
        .map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        })
        .map(|ct| ct.to_ascii_lowercase())
        .filter(|ct| ct.contains('/'))
        .unwrap_or_else(|| default_type.to_string());
    let mut name = sanitize_file_name(part.attachment_name().unwrap_or(&fallback_stem), &content_type);
    if content_type == "message/rfc822" && !name.to_ascii_lowercase().ends_with(".eml") {
        name = sanitize_file_name(&format!("{name}.eml"), &content_type);
    }
    let content_id = part
        .content_id()
        .map(|id| id.trim().trim_start_matches('<').trim_end_matches('>').trim().to_string())
        .filter(|id| !id.is_empty());
    let inline = match part.content_disposition() {
        Some(disposition) => disposition.ctype().eq_ignore_ascii_case("inline"),
        None => content_id.is_some() || matches!(part.body, PartType::InlineBinary(_)),
    };
    // Only base64 bodies decode from the raw bytes alone (no charset or line-end translation).
    let raw_span = (matches!(part.body, PartType::Binary(_) | PartType::InlineBinary(_))
        && part.encoding == Encoding::Base64
        && !part.is_encoding_problem)
        .then_some(RawSpan { start: part.offset_body as usize, end: part.offset_end as usize })
        .filter(|span| span.start < span.end);
    Some(Attachment::new(name, content_type, data, content_id, inline, raw_span))
}

/// The bytes of a file from the base64 body at `span` of `raw` (see [`RawSpan`]).
pub fn decode_span(raw: &[u8], span: RawSpan) -> Option<Vec<u8>> {
    mail_parser::decoders::base64::base64_decode(raw.get(span.start..span.end)?)
}

/// A file name safe to store and offer: no directory part (`/` or `\`), no control, NUL or
/// bidirectional-override characters (they disguise `exe` as `pdf`), no leading or trailing dots
/// and spaces, at most 200 characters with the extension kept, never empty.
pub fn sanitize_file_name(raw: &str, content_type: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base.chars().filter(|&c| !c.is_control() && !is_bidi_control(c)).collect();
    let trimmed = cleaned.trim_matches(|c: char| c == '.' || c.is_whitespace());
    let name = shorten_keeping_extension(trimmed);
    if name.is_empty() { format!("attachment.{}", extension_for(content_type)) } else { name }
}

/// Characters that reorder displayed text (U+202A–U+202E, U+2066–U+2069, LRM, RLM, ALM).
pub(super) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

fn shorten_keeping_extension(name: &str) -> String {
    if name.chars().count() <= MAX_NAME_CHARS {
        return name.to_string();
    }
    let extension = name.rsplit_once('.').map(|(_, ext)| ext).filter(|ext| {
        let len = ext.chars().count();
        len > 0 && len <= MAX_EXTENSION_CHARS
    });
    let shortened = match extension {
        Some(ext) => {
            let stem_chars = MAX_NAME_CHARS - ext.chars().count() - 1;
            let stem: String = name.chars().take(stem_chars).collect();
            format!("{}.{ext}", stem.trim_end_matches(|c: char| c == '.' || c.is_whitespace()))
        }
        None => name.chars().take(MAX_NAME_CHARS).collect(),
    };
    shortened.trim_matches(|c: char| c == '.' || c.is_whitespace()).to_string()
}

/// File extension for an attachment that came without a name.
fn extension_for(content_type: &str) -> &'static str {
    match content_type {
        "application/pdf" => "pdf",
        "image/png" => "png",
        "image/jpeg" | "image/jpg" | "image/pjpeg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "text/plain" | "message/delivery-status" | "text/rfc822-headers" => "txt",
        "text/html" => "html",
        "text/calendar" => "ics",
        "message/rfc822" => "eml",
        _ => "bin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every base64 file of `raw` decodes from its span to the bytes the parser gave.
    fn spans_decode_as_parsed(raw: &[u8]) -> usize {
        let mail = crate::parse::parse(raw).expect("a mail");
        let mut checked = 0;
        for a in &mail.attachments {
            if let Some(span) = a.raw_span {
                assert_eq!(decode_span(raw, span).as_deref(), Some(&a.data[..]), "{}", a.name);
                checked += 1;
            }
        }
        checked
    }

    #[test]
    fn base64_files_decode_from_their_span_in_the_raw_mail() {
        use base64::Engine;
        let bytes: Vec<u8> = (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let lines: Vec<&str> = b64.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap()).collect();
        let body = lines.join("\r\n");
        let multipart = format!(
            "From: a@b.example\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n\
             --XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
             --XX\r\nContent-Type: application/pdf; name=\"f.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}\r\n\
             --XX\r\nContent-Type: image/png\r\nContent-ID: <img1>\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}\r\n\r\n\
             --XX--\r\n"
        );
        assert_eq!(spans_decode_as_parsed(multipart.as_bytes()), 2);
        // Bare LF line ends, as some MTAs deliver.
        assert_eq!(spans_decode_as_parsed(multipart.replace("\r\n", "\n").as_bytes()), 2);
        // A mail that is one base64 file, no multipart.
        let single = format!(
            "From: a@b.example\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: application/zip; name=a.zip\r\n\
             Content-Disposition: attachment\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}\r\n"
        );
        assert_eq!(spans_decode_as_parsed(single.as_bytes()), 1);
    }

    #[test]
    fn paths_are_stripped_from_names() {
        assert_eq!(sanitize_file_name("../../etc/passwd", "text/plain"), "passwd");
        assert_eq!(sanitize_file_name("C:\\Users\\marie\\Desktop\\facture.pdf", "application/pdf"), "facture.pdf");
        assert_eq!(sanitize_file_name("..\\..\\boot.ini", "text/plain"), "boot.ini");
    }

    #[test]
    fn control_and_bidi_characters_are_removed() {
        assert_eq!(sanitize_file_name("invoice\u{202E}fdp.exe", "application/octet-stream"), "invoicefdp.exe");
        assert_eq!(sanitize_file_name("a\u{0}b\r\nc\u{2066}.txt\u{200F}", "text/plain"), "abc.txt");
    }

    #[test]
    fn dots_and_spaces_are_trimmed_and_names_are_never_empty() {
        assert_eq!(sanitize_file_name("  .hidden.txt. ", "text/plain"), "hidden.txt");
        assert_eq!(sanitize_file_name("...", "application/pdf"), "attachment.pdf");
        assert_eq!(sanitize_file_name("", "application/x-whatever"), "attachment.bin");
        assert_eq!(sanitize_file_name("dir/", "image/png"), "attachment.png");
    }

    #[test]
    fn long_names_keep_their_extension() {
        let long = format!("{}.pdf", "é".repeat(300));
        let short = sanitize_file_name(&long, "application/pdf");
        assert_eq!(short.chars().count(), 200);
        assert!(short.ends_with("é.pdf"));
        let no_extension = "x".repeat(250);
        assert_eq!(sanitize_file_name(&no_extension, "text/plain").chars().count(), 200);
    }
}
