//! Our own Message-IDs: they carry the ticket number, authenticated by an HMAC.
//!
//! Shape (without the angle brackets): `guichet.<ticket>.<random>.<mac>@<domain>`, where `<ticket>` is
//! the ticket number (`0` for mail that belongs to no ticket, such as a login link), `<random>` 16 hex
//! digits from the CSPRNG (so that every mail has its own id) and `<mac>` the first 8 bytes (16 hex
//! digits) of HMAC-SHA256 over `guichet.<ticket>.<random>`. A reply naming one of these ids in
//! `In-Reply-To`/`References` joins its ticket (SPEC §2.5 a); without the secret nobody can make an id
//! that points at someone else's ticket. The domain is not covered: it may change with the
//! configuration without orphaning the conversations already out there.
//!
//! Pure functions, no IO.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const PREFIX: &str = "guichet";
/// Hex digits of the random part and of the truncated MAC.
const RANDOM_HEX: usize = 16;
const MAC_HEX: usize = 16;
/// Ticket numbers are positive `i64`s: at most 19 digits.
const MAX_NUMBER_DIGITS: usize = 19;

/// A fresh Message-ID (without `<>`) for a mail of `ticket` (`None` for a mail outside any ticket).
pub fn ours(ticket: Option<i64>, secret: &[u8], domain: &str) -> String {
    let number = ticket.filter(|n| *n > 0).unwrap_or(0);
    let random = format!("{:016x}", rand::random::<u64>());
    let signed = signed_part(number, &random);
    let tag = hex::encode(&mac(secret, &signed).finalize().into_bytes()[..MAC_HEX / 2]);
    format!("{signed}.{tag}@{domain}")
}

/// The ticket named by one of our Message-IDs, if its MAC is genuine and it names a ticket.
///
/// Accepts the id with or without `<>` and surrounding spaces. Ids of other systems, altered or forged
/// ids, and our ids of mail outside any ticket (number 0) give `None`.
pub fn ticket_of(message_id: &str, secret: &[u8]) -> Option<i64> {
    verified_number(message_id, secret).filter(|n| *n > 0)
}

/// Whether `message_id` is one of ours with a genuine MAC, whether or not it names a ticket
/// (a delivery report about a login-link mail, for instance).
pub fn is_ours(message_id: &str, secret: &[u8]) -> bool {
    verified_number(message_id, secret).is_some()
}

fn verified_number(message_id: &str, secret: &[u8]) -> Option<i64> {
    let id = message_id.trim();
    let id = id.strip_prefix('<').and_then(|s| s.strip_suffix('>')).unwrap_or(id);
    let (local, _domain) = id.rsplit_once('@')?;
    let mut fields = local.split('.');
    let (prefix, digits, random, tag) = (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some() || prefix != PREFIX {
        return None;
    }
    // Canonical forms only: one spelling per id, so the MAC input is exactly what `ours` signed.
    let canonical_number = !digits.is_empty()
        && digits.len() <= MAX_NUMBER_DIGITS
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if !canonical_number || !is_lower_hex(random, RANDOM_HEX) || !is_lower_hex(tag, MAC_HEX) {
        return None;
    }
    let number: i64 = digits.parse().ok()?;
    let tag = hex::decode(tag).ok()?;
    // `verify_truncated_left` compares in constant time.
    mac(secret, &signed_part(number, random)).verify_truncated_left(&tag).ok()?;
    Some(number)
}

fn signed_part(number: i64, random: &str) -> String {
    format!("{PREFIX}.{number}.{random}")
}

fn mac(secret: &[u8], signed: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(signed.as_bytes());
    mac
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a secret of the test";

    #[test]
    fn our_id_names_its_ticket() {
        let id = ours(Some(42), SECRET, "support.example.com");

        assert_eq!(ticket_of(&id, SECRET), Some(42));
        assert!(id.starts_with("guichet.42."), "{id}");
        assert!(id.ends_with("@support.example.com"), "{id}");
    }

    #[test]
    fn the_id_has_the_documented_shape() {
        let id = ours(Some(7), SECRET, "example.com");

        let (local, domain) = id.split_once('@').unwrap();
        let fields: Vec<&str> = local.split('.').collect();
        assert_eq!(domain, "example.com");
        assert_eq!(fields.len(), 4);
        assert_eq!(fields[..2], ["guichet", "7"]);
        assert!(is_lower_hex(fields[2], 16) && is_lower_hex(fields[3], 16), "{id}");
    }

    #[test]
    fn every_id_is_different() {
        let a = ours(Some(42), SECRET, "example.com");
        let b = ours(Some(42), SECRET, "example.com");

        assert_ne!(a, b);
    }

    #[test]
    fn brackets_spaces_and_another_domain_are_tolerated() {
        let id = ours(Some(42), SECRET, "example.com");
        let (local, _) = id.split_once('@').unwrap();

        assert_eq!(ticket_of(&format!(" <{id}> "), SECRET), Some(42));
        assert_eq!(ticket_of(&format!("{local}@new-name.example"), SECRET), Some(42));
    }

    #[test]
    fn an_id_outside_any_ticket_is_ours_but_names_no_ticket() {
        let none = ours(None, SECRET, "example.com");
        let zero = ours(Some(0), SECRET, "example.com");

        assert!(none.starts_with("guichet.0.") && zero.starts_with("guichet.0."));
        assert_eq!(ticket_of(&none, SECRET), None);
        assert!(is_ours(&none, SECRET));
    }

    #[test]
    fn another_secret_does_not_verify() {
        let id = ours(Some(42), SECRET, "example.com");

        assert_eq!(ticket_of(&id, b"another secret"), None);
        assert!(!is_ours(&id, b"another secret"));
    }

    #[test]
    fn a_changed_ticket_number_is_refused() {
        let id = ours(Some(42), SECRET, "example.com");

        let forged = id.replacen("guichet.42.", "guichet.43.", 1);
        assert_eq!(ticket_of(&forged, SECRET), None);
        let padded = id.replacen("guichet.42.", "guichet.042.", 1);
        assert_eq!(ticket_of(&padded, SECRET), None);
    }

    #[test]
    fn a_changed_random_part_or_mac_is_refused() {
        let id = ours(Some(42), SECRET, "example.com");
        let (local, domain) = id.split_once('@').unwrap();
        let fields: Vec<&str> = local.split('.').collect();
        let flip = |s: &str| {
            let mut chars: Vec<char> = s.chars().collect();
            chars[0] = if chars[0] == '0' { '1' } else { '0' };
            chars.into_iter().collect::<String>()
        };

        let random_changed = format!("guichet.42.{}.{}@{domain}", flip(fields[2]), fields[3]);
        let mac_changed = format!("guichet.42.{}.{}@{domain}", fields[2], flip(fields[3]));
        let mac_upper = format!("guichet.42.{}.{}@{domain}", fields[2], fields[3].to_uppercase());
        let mac_short = format!("guichet.42.{}.{}@{domain}", fields[2], &fields[3][..8]);
        for forged in [random_changed, mac_changed, mac_upper, mac_short] {
            assert_eq!(ticket_of(&forged, SECRET), None, "{forged}");
        }
    }

    #[test]
    fn other_systems_ids_and_garbage_are_not_ours() {
        for id in [
            "",
            "<>",
            "CAF=abc123@mail.gmail.com",
            "guichet.42@example.com",
            "guichet.42.0123456789abcdef@example.com",
            "guichet.42.0123456789abcdef.0123456789abcdef",
            "guichet.-1.0123456789abcdef.0123456789abcdef@example.com",
            "guichet.99999999999999999999.0123456789abcdef.0123456789abcdef@example.com",
            "guichet.42.0123456789abcdef.0123456789abcdef.extra@example.com",
        ] {
            assert_eq!(ticket_of(id, SECRET), None, "{id}");
            assert!(!is_ours(id, SECRET), "{id}");
        }
    }
}
