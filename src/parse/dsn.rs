//! Delivery status notifications (RFC 3464): which recipients failed, and which mail of ours
//! the report is about.

use super::{DeliveryReport, DsnRecipient};
use crate::domain::EmailAddress;
use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};

/// Recipients kept from one report; a report lists a handful, a hostile one may list thousands.
const MAX_RECIPIENTS: usize = 100;

/// `multipart/report` of any kind (delivery, read receipt…): a machine wrote it.
pub(super) fn is_report(message: &Message<'_>) -> bool {
    message.root_part().is_content_type("multipart", "report")
}

/// The delivery report carried by `message`, if it is one: a `multipart/report;
/// report-type=delivery-status`, any mail holding a `message/delivery-status` part, or a
/// bounce from MAILER-DAEMON / postmaster returning our mail without the standard report.
pub(super) fn delivery_report(message: &Message<'_>, from_system: bool) -> Option<DeliveryReport> {
    let root_is_dsn = is_report(message)
        && message
            .root_part()
            .content_type()
            .and_then(|ct| ct.attribute("report-type"))
            .is_some_and(|t| t.eq_ignore_ascii_case("delivery-status"));
    let status_part = message.parts.iter().find(|p| is_delivery_status(p));
    let is_standard = root_is_dsn || status_part.is_some();
    if !is_standard && !from_system {
        return None;
    }
    let returned_id = message.parts.iter().skip(1).find_map(returned_message_id);
    if !is_standard && returned_id.is_none() {
        return None;
    }
    let recipients =
        status_part.map(|p| parse_delivery_status(&String::from_utf8_lossy(p.contents()))).unwrap_or_default();
    Some(DeliveryReport { original_message_id: returned_id, recipients })
}

fn is_delivery_status(part: &MessagePart<'_>) -> bool {
    part.is_content_type("message", "delivery-status") || part.is_content_type("message", "global-delivery-status")
}

/// Message-ID of the returned mail: a `message/rfc822` part, or only its headers
/// (`text/rfc822-headers`, `message/global-headers`).
fn returned_message_id(part: &MessagePart<'_>) -> Option<String> {
    let id = match &part.body {
        PartType::Message(nested) => nested.message_id().map(str::to_string),
        _ if part.is_content_type("text", "rfc822-headers") || part.is_content_type("message", "global-headers") => {
            MessageParser::default().parse_headers(part.contents()).and_then(|m| m.message_id().map(str::to_string))
        }
        _ => None,
    }?;
    let id = id.trim().trim_start_matches('<').trim_end_matches('>').trim().to_string();
    (!id.is_empty()).then_some(id)
}

/// Reads the per-recipient blocks of a `message/delivery-status` body.
pub(super) fn parse_delivery_status(text: &str) -> Vec<DsnRecipient> {
    let text = text.replace("\r\n", "\n");
    text.split("\n\n")
        .filter_map(|block| {
            let fields = unfold_fields(block);
            let field = |name: &str| fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
            let recipient = field("Final-Recipient").or_else(|| field("Original-Recipient"))?;
            // `rfc822; bob@example.com`: the address type comes first.
            let address = EmailAddress::parse(recipient.rsplit(';').next().unwrap_or(recipient))?;
            let action = field("Action").unwrap_or("").trim().to_ascii_lowercase();
            let status = field("Status").and_then(|s| s.split_whitespace().next()).unwrap_or("").to_string();
            let diagnostic = field("Diagnostic-Code")
                .map(|d| d.split_once(';').map_or(d, |(_, text)| text).trim().to_string())
                .filter(|d| !d.is_empty());
            Some(DsnRecipient { address, action, status, diagnostic })
        })
        .take(MAX_RECIPIENTS)
        .collect()
}

/// `Name: value` fields of one block, continuation lines joined.
fn unfold_fields(block: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in block.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_recipient_fields_are_read() {
        let text = "Reporting-MTA: dns; mx.example.com\r\nArrival-Date: Mon, 3 Jun 2024\r\n\r\n\
                    Final-Recipient: rfc822; Bob@Example.org\r\nOriginal-Recipient: rfc822;bob@example.org\r\n\
                    Action: failed\r\nStatus: 5.1.1 (bad mailbox)\r\nDiagnostic-Code: smtp; 550 5.1.1 <bob@example.org>:\r\n \
                    Recipient address rejected\r\n\r\nFinal-Recipient: rfc822; carol@example.org\r\nAction: delayed\r\nStatus: 4.4.1\r\n";
        let recipients = parse_delivery_status(text);
        assert_eq!(recipients.len(), 2);
        assert_eq!(recipients[0].address.as_str(), "bob@example.org");
        assert_eq!((recipients[0].action.as_str(), recipients[0].status.as_str()), ("failed", "5.1.1"));
        assert_eq!(
            recipients[0].diagnostic.as_deref(),
            Some("550 5.1.1 <bob@example.org>: Recipient address rejected")
        );
        assert!(recipients[0].is_permanent_failure());
        assert!(!recipients[1].is_permanent_failure());
    }
}
