//! A second opinion on the charset of a text part: mail often declares one and uses another.

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{Encoding, MessagePart, MimeHeaders};

/// Returns the text of `part` as mail-parser decoded it (`decoded`), unless the bytes show the
/// declared charset was wrong: UTF-8 (or no charset) that is not valid UTF-8 is read as
/// windows-1252, and a Latin charset whose bytes are valid multi-byte UTF-8 is read as UTF-8.
pub(super) fn repair(part: &MessagePart<'_>, decoded: &str, raw: &[u8]) -> String {
    let declared = part.content_type().and_then(|ct| ct.attribute("charset")).map(|c| c.trim().to_ascii_lowercase());
    let claims_utf8 = declared.as_deref().is_none_or(|c| c == "utf-8" || c == "utf8");
    let claims_latin = declared.as_deref().is_some_and(is_single_byte_latin);
    let suspicious = (claims_utf8 && decoded.contains('\u{FFFD}')) || (claims_latin && !decoded.is_ascii());
    if !suspicious {
        return decoded.to_string();
    }
    let Some(bytes) = transfer_decoded(part, raw) else {
        return decoded.to_string();
    };
    match std::str::from_utf8(&bytes) {
        Ok(utf8) if claims_latin => utf8.to_string(),
        Err(_) if claims_utf8 => {
            charset_decoder(b"windows-1252").map_or_else(|| decoded.to_string(), |cp1252| cp1252(&bytes))
        }
        _ => decoded.to_string(),
    }
}

fn is_single_byte_latin(charset: &str) -> bool {
    ["iso-8859-", "iso8859-", "windows-125", "cp125", "latin", "us-ascii", "ascii"]
        .iter()
        .any(|p| charset.starts_with(p))
}

/// The part's body bytes with the transfer encoding undone; `None` when they cannot be found.
fn transfer_decoded(part: &MessagePart<'_>, raw: &[u8]) -> Option<Vec<u8>> {
    let body = raw.get(part.offset_body as usize..part.offset_end as usize)?;
    match part.encoding {
        Encoding::QuotedPrintable => quoted_printable_decode(body),
        Encoding::Base64 => base64_decode(body),
        Encoding::None => Some(body.to_vec()),
    }
}
