//! The original sender of a forwarded mail, read from the header block that mail clients write
//! above the forwarded text (Gmail, Outlook, Thunderbird, Apple Mail, Yahoo, GMX, Zimbra…), in
//! every language of `crate::languages`.

use super::Mailbox;
use super::quotes::{from_line_value, header_block_from, is_original_separator, is_underscore_rule, next_non_empty};
use crate::domain::EmailAddress;
use regex::Regex;
use std::sync::LazyLock;

/// How far below a separator the `From:` line may be (Thunderbird puts Subject and Date first).
const FROM_LINE_SPAN: usize = 8;

/// The sender named by the first forwarded header block of `text` that carries an address.
pub(super) fn forwarded_sender(text: &str) -> Option<Mailbox> {
    // Apple Mail and some webmails put the forwarded mail in a quote: its block reads the same.
    let lines: Vec<&str> = text.lines().map(|l| l.trim_start_matches(['>', ' '])).collect();
    (0..lines.len()).find_map(|i| {
        let line = lines[i];
        if is_original_separator(line) || is_underscore_rule(line) {
            let start = next_non_empty(&lines, i + 1)?;
            lines.iter().skip(start).take(FROM_LINE_SPAN).find_map(|l| from_line_value(l)).and_then(mailbox_from_text)
        } else {
            header_block_from(&lines, i).and_then(mailbox_from_text)
        }
    })
}

/// Reads `Name <a@b>`, `"Name" <a@b>`, `Name [mailto:a@b]`, `Name <mailto:a@b>` or a bare `a@b`.
pub(super) fn mailbox_from_text(value: &str) -> Option<Mailbox> {
    static ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)[<\[]\s*(?:mailto:)?([^\s<>\[\]]+@[^\s<>\[\]]+)\s*[>\]]|([^\s<>\[\]():;,]+@[^\s<>\[\]():;,]+)")
            .expect("address regex")
    });
    let captures = ADDRESS.captures(value)?;
    let found = captures.get(1).or_else(|| captures.get(2))?;
    let address = EmailAddress::parse(found.as_str().trim_end_matches('.'))?;
    let whole = captures.get(0)?;
    let name = format!("{}{}", &value[..whole.start()], &value[whole.end()..]);
    let name = super::mail::clean_line(&name);
    let name = name.trim_matches(|c| c == '"' || c == '\'' || c == '«' || c == '»').trim();
    let name = (!name.is_empty() && !name.contains('@')).then(|| name.to_string());
    Some(Mailbox { name, address })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender(text: &str) -> Option<String> {
        forwarded_sender(text).map(|m| format!("{} <{}>", m.name.unwrap_or_default(), m.address))
    }

    #[test]
    fn client_forward_blocks_name_their_sender() {
        let cases = [
            "fyi\n\n---------- Forwarded message ---------\nFrom: Marie Dupont <marie@example.fr>\nDate: Mon, 3 Jun 2024\n",
            "---------- Message transféré ---------\nDe : Marie Dupont <marie@example.fr>\nDate: lun. 3 juin 2024\n",
            "-------- Forwarded Message --------\nSubject: \tPrinter\nDate: \tMon, 3 Jun 2024\nFrom: \tMarie Dupont <marie@example.fr>\n",
            "Begin forwarded message:\n\nFrom: Marie Dupont <marie@example.fr>\nSubject: Printer\n",
            "Début du message réexpédié :\n\nDe : Marie Dupont <marie@example.fr>\nObjet : Imprimante\n",
            "________________________________\nDe : Marie Dupont [mailto:marie@example.fr]\nEnvoyé : lundi 3 juin 2024\n",
            "voir ci-dessous\n\nFrom: \"Marie Dupont\" <Marie@Example.FR>\nSent: Monday\nSubject: x\n",
        ];
        for text in cases {
            assert_eq!(sender(text).as_deref(), Some("Marie Dupont <marie@example.fr>"), "{text}");
        }
    }

    #[test]
    fn a_block_without_address_is_skipped() {
        assert_eq!(sender("________________________________\nDe : Marie Dupont\nEnvoyé : lundi\n"), None);
        assert_eq!(sender("just text, From: nobody"), None);
    }

    #[test]
    fn bare_addresses_are_read() {
        let mailbox = mailbox_from_text("marie@example.fr").expect("mailbox");
        assert_eq!((mailbox.name, mailbox.address.as_str()), (None, "marie@example.fr"));
    }
}
