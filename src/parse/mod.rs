//! Raw RFC 5322 bytes → [`InboundMail`]. Pure: no IO, never panics on hostile input.
//!
//! Parsing does not fail on a merely odd mail: it returns what it could read. It fails only when
//! the bytes are not a mail at all (no header block, no From address): such mail goes to quarantine.
//!
//! - `mail`: the entry point; headers, addresses, references, bodies (on top of mail-parser)
//! - `charset`: second opinion when a text part lies about its charset
//! - `html`: HTML body → text with one line per block and `>` for blockquotes, and the line where
//!   the clients' quoted-history container starts
//! - [`quotes`]: new text vs quoted history and signature, in every language of `crate::languages`
//! - `forward`: the original sender of a forwarded mail, in every language of `crate::languages`
//! - `attachments`: attachment parts, [`sanitize_file_name`] (also for files uploaded on the web)
//! - `classify`: automatic-mail verdict, `Authentication-Results`
//! - `dsn`: delivery status notifications (RFC 3464)
//!
//! Fixtures: `tests/fixtures/mail/` (see its README), run by `tests/parse_corpus.rs`; replies and
//! forwards of 14 clients in 20 languages in `tests/fixtures/{replies,forwards}/`, run by
//! `tests/parse_languages.rs`.

mod attachments;
mod charset;
mod classify;
mod dsn;
mod forward;
mod html;
mod mail;
pub mod quotes;

pub use attachments::{decode_span, sanitize_file_name};
pub use mail::{parse, parse_with};

use crate::domain::EmailAddress;

/// An HTML body as the parser turns it into text, with the line where the quoted history
/// starts: only for `guichet-bench html` (issue 18).
#[doc(hidden)]
pub fn html_to_text_with_history(html: &str) -> (String, Option<usize>) {
    html::html_to_text_with_history(html)
}

/// What the rest of Guichet knows about one inbound mail.
#[derive(Clone, Debug, Default)]
pub struct InboundMail {
    /// `Message-ID` without angle brackets; `None` when the mail has none.
    pub message_id: Option<String>,
    /// `In-Reply-To` then `References` (most recent first), without brackets, deduplicated, capped.
    pub references: Vec<String>,
    pub subject: String,
    pub from: Option<Mailbox>,
    /// How many addresses the `From` headers hold, all of them together: a mail is authenticated
    /// only as its one and only sender (`trust`).
    pub from_count: usize,
    pub reply_to: Vec<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    /// Envelope addresses from `Delivered-To` / `X-Original-To` (helps find plus-addresses).
    pub delivered_to: Vec<EmailAddress>,
    /// Seconds since the epoch from `Date:`, when readable.
    pub date: Option<i64>,
    /// The whole text body (text/plain, or text derived from HTML), UTF-8.
    pub text: String,
    /// The HTML body as received (unsanitised: the web layer sanitises before showing it).
    pub html: Option<String>,
    /// The new text of the message: quoted history and signature removed.
    pub new_text: String,
    pub attachments: Vec<Attachment>,
    pub auto: AutoKind,
    /// Set when this mail is a delivery status notification (RFC 3464).
    pub dsn: Option<DeliveryReport>,
    /// Value of our own `X-Guichet-Loop` header, when present.
    pub loop_header: Option<String>,
    /// `Return-Path: <>` (empty envelope sender).
    pub empty_return_path: bool,
    /// The DMARC verdict from `Authentication-Results` headers, keyed by authserv-id.
    pub auth_results: Vec<AuthResult>,
    /// For a forwarded mail (`Fwd:`/`TR:`): the original sender found in the forwarded header block.
    pub forwarded_from: Option<Mailbox>,
    /// `X-Spam…` headers as (name, value): the receiving server's spam verdict, read by `desk`.
    pub spam_headers: Vec<(String, String)>,
    /// The sender's urgency from `Importance` / `X-Priority` (SPEC §8), when it says one.
    pub urgency: Option<crate::domain::Priority>,
    /// Size of the raw mail in bytes.
    pub size: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: EmailAddress,
}

#[derive(Clone, Debug)]
pub struct Attachment {
    /// Sanitised file name: no path, no control or bidi characters, never empty.
    pub name: String,
    pub content_type: String,
    /// Decoded bytes.
    pub data: Vec<u8>,
    /// `Content-ID` without brackets, for inline images referenced as `cid:`.
    pub content_id: Option<String>,
    pub inline: bool,
    /// Where the file lies base64-encoded in the raw mail, when it does: the store then keeps the
    /// raw mail's copy instead of a second one.
    pub raw_span: Option<RawSpan>,
    /// SHA-256 of `data` in hex, the blob's key: computed with the parsing, on every core, rather
    /// than in the write transaction.
    pub sha256: String,
}

impl Attachment {
    pub fn new(
        name: String,
        content_type: String,
        data: Vec<u8>,
        content_id: Option<String>,
        inline: bool,
        raw_span: Option<RawSpan>,
    ) -> Attachment {
        use sha2::Digest;
        let sha256 = hex::encode(sha2::Sha256::digest(&data));
        Attachment { name, content_type, data, content_id, inline, raw_span, sha256 }
    }
}

/// A base64 body in the raw mail: bytes `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawSpan {
    pub start: usize,
    pub end: usize,
}

/// Why a mail counts as automatically generated (it must never get an automatic answer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AutoKind {
    #[default]
    Human,
    /// `Auto-Submitted: auto-replied`, `X-Autoreply`, out-of-office subjects…
    AutoReply,
    /// `Auto-Submitted: auto-generated`, `Precedence: bulk|junk|list`, `List-Id`, empty return path,
    /// MAILER-DAEMON / postmaster senders.
    Bulk,
}

impl AutoKind {
    pub fn is_auto(self) -> bool {
        self != AutoKind::Human
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Message-ID of the mail the report is about (from the returned headers), without brackets.
    pub original_message_id: Option<String>,
    /// Final recipients with their action (`failed`, `delayed`, `delivered`…) and status code (`5.1.1`).
    pub recipients: Vec<DsnRecipient>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DsnRecipient {
    pub address: EmailAddress,
    pub action: String,
    pub status: String,
    pub diagnostic: Option<String>,
}

impl DsnRecipient {
    pub fn is_permanent_failure(&self) -> bool {
        self.action.eq_ignore_ascii_case("failed") || self.status.starts_with('5')
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthResult {
    pub authserv_id: String,
    /// `pass`, `fail`, `none`, `quarantine`… of the `dmarc=` method, lower-cased.
    pub dmarc: Option<String>,
    /// `header.from=` domain of the dmarc result, lower-cased.
    pub header_from: Option<String>,
    /// Signing domains (`header.d=`, else the domain of `header.i=`) of the `dkim=pass` results.
    pub dkim_pass: Vec<String>,
    /// Whether the header holds any `dkim=` result.
    pub dkim_seen: bool,
}

/// Why a mail could not be parsed at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("not a mail: {0}")]
    NotAMail(&'static str),
    #[error("mail has no usable From address")]
    NoSender,
}
