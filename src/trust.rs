//! Who a mail is authenticated as (SPEC §7). Pure: no IO.
//!
//! A mail's `From` is easy to forge, so what a mail may do depends on whether it is
//! *authenticated as* its sender A: A is its one and only `From` address, and either
//! - it was sent to a **reply address** signed for A: `<local>+<ticket>-<mac>@<domain>` of the
//!   helpdesk, where `<mac>` is the first 8 bytes (16 lower-case hex digits) of
//!   HMAC-SHA256(secret, `reply.<ticket>.<A>`). Every notification to A carries one in `Reply-To`,
//!   so a mail client's "Reply" brings the proof back (in `To`, `Cc`, `Delivered-To` or
//!   `X-Original-To`). Ticket `0` is a staff member's personal command address
//!   (`guichet staff-address`), for new mails and forwards;
//! - or the trusted receiving server (`trusted_authserv_id`) reports `dmarc=pass` for A's domain,
//!   or a `dkim=pass` whose signing domain is aligned with it.
//!
//! The MAC binds the ticket to the address, so a reply address leaked by a forwarded mail proves
//! nothing for anyone else, and cannot be turned towards another ticket.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::domain::EmailAddress;
use crate::parse::{AuthResult, InboundMail};

const MAC_HEX: usize = 16;

/// The signed reply address of `recipient` for `ticket` (`0`: the personal command address).
pub fn reply_address(secret: &[u8], helpdesk: &EmailAddress, ticket: i64, recipient: &EmailAddress) -> EmailAddress {
    let local = helpdesk.local_part().split('+').next().unwrap_or_default();
    let tag = format!("{}-{}", ticket.max(0), mac_hex(secret, ticket.max(0), recipient));
    EmailAddress::parse(&format!("{local}+{tag}@{}", helpdesk.domain())).expect("built from a valid address")
}

/// The ticket a reply address names when it is signed for `sender` (`Some(0)` for a personal
/// command address), `None` when it is not a reply address of ours or not signed for `sender`.
pub fn reply_ticket(
    secret: &[u8],
    ours: &[EmailAddress],
    address: &EmailAddress,
    sender: &EmailAddress,
) -> Option<i64> {
    let (base, tag) = address.plus_tag()?;
    if !ours.contains(&base) {
        return None;
    }
    let (digits, mac) = tag.split_once('-')?;
    let canonical = !digits.is_empty()
        && digits.len() <= 19
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if !canonical || mac.len() != MAC_HEX || !mac.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let ticket: i64 = digits.parse().ok()?;
    let tag = hex::decode(mac).ok()?;
    // Compared in constant time.
    hmac_of(secret, ticket, sender).verify_truncated_left(&tag).ok()?;
    Some(ticket)
}

fn hmac_of(secret: &[u8], ticket: i64, address: &EmailAddress) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(format!("reply.{ticket}.{}", address.as_str()).as_bytes());
    mac
}

fn mac_hex(secret: &[u8], ticket: i64, address: &EmailAddress) -> String {
    hex::encode(&hmac_of(secret, ticket, address).finalize().into_bytes()[..MAC_HEX / 2])
}

/// How a mail proved who sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proof {
    /// Sent to a reply address signed for its sender; the ticket it names (`None` for a personal
    /// command address).
    ReplyAddress(Option<i64>),
    /// The trusted receiving server reported DMARC (or aligned DKIM) pass for the sender's domain.
    Server,
}

/// What [`authenticate`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// `Some` when the mail is authenticated as its one `From` address.
    pub proof: Option<Proof>,
    /// The trusted server said DMARC failed for the `From` domain: a forgery, most likely.
    pub dmarc_failed: bool,
}

impl Verdict {
    pub fn authenticated(&self) -> bool {
        self.proof.is_some()
    }

    /// The ticket named by the signed reply address the mail was sent to, if any.
    pub fn reply_ticket(&self) -> Option<i64> {
        match self.proof {
            Some(Proof::ReplyAddress(ticket)) => ticket,
            _ => None,
        }
    }
}

/// Whether `mail` is authenticated as its sender (see the module's documentation).
pub fn authenticate(
    mail: &InboundMail,
    secret: &[u8],
    ours: &[EmailAddress],
    trusted_authserv_id: Option<&str>,
) -> Verdict {
    let Some(from) = mail.from.as_ref().map(|m| &m.address) else { return Verdict::default() };
    let server = trusted_authserv_id.map(|id| server_verdict(&mail.auth_results, id, from.domain()));
    let dmarc_failed = server == Some(ServerVerdict::Fail);
    // Several From headers or addresses: whom would it be authenticated as?
    if mail.from_count != 1 {
        return Verdict { proof: None, dmarc_failed };
    }
    let signed = mail
        .to
        .iter()
        .chain(&mail.cc)
        .map(|m| &m.address)
        .chain(&mail.delivered_to)
        .find_map(|a| reply_ticket(secret, ours, a, from));
    let proof = match (signed, server) {
        (Some(ticket), _) => Some(Proof::ReplyAddress((ticket > 0).then_some(ticket))),
        (None, Some(ServerVerdict::Pass)) => Some(Proof::Server),
        _ => None,
    };
    Verdict { proof, dmarc_failed }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ServerVerdict {
    Pass,
    Fail,
    Unknown,
}

/// The trusted server's verdict for `domain`.
///
/// Only the topmost `Authentication-Results` of the trusted server that carries a verdict of a
/// method counts for that method: the receiving server adds its header above every header the mail
/// arrived with, so one with the same authserv-id further down was written by the sender
/// (RFC 8601 §5) — a forged "pass" below a real "fail" is ignored.
fn server_verdict(results: &[AuthResult], trusted: &str, domain: &str) -> ServerVerdict {
    let trusted_results = || results.iter().filter(|r| r.authserv_id.eq_ignore_ascii_case(trusted));
    if let Some(r) = trusted_results().find(|r| r.dmarc.is_some()) {
        let verdict = r.dmarc.as_deref().unwrap_or_default();
        let for_domain = r.header_from.as_deref().is_none_or(|d| d.eq_ignore_ascii_case(domain));
        if for_domain && matches!(verdict, "fail" | "quarantine" | "reject" | "permerror") {
            return ServerVerdict::Fail;
        }
        if verdict == "pass" && r.header_from.as_deref().is_some_and(|d| d.eq_ignore_ascii_case(domain)) {
            return ServerVerdict::Pass;
        }
    }
    if let Some(r) = trusted_results().find(|r| r.dkim_seen)
        && r.dkim_pass.iter().any(|d| aligned(d, domain))
    {
        return ServerVerdict::Pass;
    }
    ServerVerdict::Unknown
}

/// Relaxed DMARC alignment, without a public-suffix list: the same domain, or one a parent of the
/// other where the parent still has a dot (`example.com` signs for `mail.example.com`; `com` never).
fn aligned(signing: &str, from: &str) -> bool {
    let (s, f) = (signing.to_ascii_lowercase(), from.to_ascii_lowercase());
    let parent_of = |parent: &str, child: &str| parent.contains('.') && child.ends_with(&format!(".{parent}"));
    s == f || parent_of(&s, &f) || parent_of(&f, &s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Mailbox;

    const SECRET: &[u8] = b"the database secret";

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn helpdesk() -> EmailAddress {
        addr("support@example.com")
    }

    fn mail(from: &str, to: &[EmailAddress]) -> InboundMail {
        InboundMail {
            from: Some(Mailbox { name: None, address: addr(from) }),
            from_count: 1,
            to: to.iter().map(|a| Mailbox { name: None, address: a.clone() }).collect(),
            ..Default::default()
        }
    }

    fn auth(id: &str, dmarc: Option<&str>, header_from: Option<&str>, dkim_pass: &[&str]) -> AuthResult {
        AuthResult {
            authserv_id: id.into(),
            dmarc: dmarc.map(str::to_string),
            header_from: header_from.map(str::to_string),
            dkim_pass: dkim_pass.iter().map(|d| d.to_string()).collect(),
            dkim_seen: !dkim_pass.is_empty(),
        }
    }

    #[test]
    fn a_reply_to_the_signed_address_authenticates_its_recipient() {
        let client = addr("client@customer.example");
        let reply = reply_address(SECRET, &helpdesk(), 42, &client);

        let verdict =
            authenticate(&mail("client@customer.example", std::slice::from_ref(&reply)), SECRET, &[helpdesk()], None);

        assert!(reply.as_str().starts_with("support+42-"), "{reply}");
        assert_eq!(verdict.proof, Some(Proof::ReplyAddress(Some(42))));
        assert_eq!(verdict.reply_ticket(), Some(42));
    }

    #[test]
    fn someone_else_sending_to_that_address_is_not_authenticated() {
        let reply = reply_address(SECRET, &helpdesk(), 42, &addr("client@customer.example"));

        let verdict = authenticate(&mail("attacker@evil.example", &[reply]), SECRET, &[helpdesk()], None);

        assert!(!verdict.authenticated());
    }

    #[test]
    fn the_address_cannot_be_turned_towards_another_ticket_or_secret() {
        let client = addr("client@customer.example");
        let reply = reply_address(SECRET, &helpdesk(), 42, &client);
        let other_ticket = EmailAddress::parse(&reply.as_str().replace("+42-", "+43-")).unwrap();

        assert_eq!(reply_ticket(SECRET, &[helpdesk()], &other_ticket, &client), None);
        assert_eq!(reply_ticket(b"another secret", &[helpdesk()], &reply, &client), None);
        assert_eq!(reply_ticket(SECRET, &[addr("other@example.com")], &reply, &client), None);
    }

    #[test]
    fn a_personal_command_address_names_no_ticket() {
        let alice = addr("alice@example.com");
        let personal = reply_address(SECRET, &helpdesk(), 0, &alice);

        let verdict = authenticate(&mail("alice@example.com", &[personal]), SECRET, &[helpdesk()], None);

        assert_eq!(verdict.proof, Some(Proof::ReplyAddress(None)));
        assert_eq!(verdict.reply_ticket(), None);
    }

    #[test]
    fn several_from_addresses_are_never_authenticated() {
        let client = addr("client@customer.example");
        let mut m = mail("client@customer.example", &[reply_address(SECRET, &helpdesk(), 42, &client)]);
        m.from_count = 2;
        m.auth_results = vec![auth("mx.example.com", Some("pass"), Some("customer.example"), &[])];

        assert!(!authenticate(&m, SECRET, &[helpdesk()], Some("mx.example.com")).authenticated());
    }

    #[test]
    fn a_trusted_dmarc_pass_for_the_from_domain_authenticates() {
        let mut m = mail("alice@example.com", &[helpdesk()]);
        m.auth_results = vec![auth("mx.example.com", Some("pass"), Some("example.com"), &[])];

        assert_eq!(authenticate(&m, SECRET, &[helpdesk()], Some("mx.example.com")).proof, Some(Proof::Server));
        assert!(!authenticate(&m, SECRET, &[helpdesk()], Some("mx.other.example")).authenticated());
        assert!(!authenticate(&m, SECRET, &[helpdesk()], None).authenticated());
    }

    #[test]
    fn a_pass_for_another_domain_or_below_the_servers_own_header_does_not() {
        let mut m = mail("alice@example.com", &[helpdesk()]);
        m.auth_results = vec![auth("mx.example.com", Some("pass"), Some("evil.example"), &[])];
        assert!(!authenticate(&m, SECRET, &[helpdesk()], Some("mx.example.com")).authenticated());

        m.auth_results = vec![
            auth("mx.example.com", Some("fail"), Some("example.com"), &[]),
            auth("mx.example.com", Some("pass"), Some("example.com"), &[]),
        ];
        let verdict = authenticate(&m, SECRET, &[helpdesk()], Some("mx.example.com"));
        assert!(!verdict.authenticated());
        assert!(verdict.dmarc_failed);
    }

    #[test]
    fn an_aligned_dkim_pass_authenticates() {
        let mut m = mail("alice@mail.example.com", &[helpdesk()]);
        m.auth_results = vec![auth("mx.example.com", None, None, &["example.com"])];
        assert_eq!(authenticate(&m, SECRET, &[helpdesk()], Some("mx.example.com")).proof, Some(Proof::Server));

        m.auth_results = vec![auth("mx.example.com", None, None, &["evil.example", "com"])];
        assert!(!authenticate(&m, SECRET, &[helpdesk()], Some("mx.example.com")).authenticated());
    }
}
