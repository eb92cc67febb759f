//! Hostile mail (SPEC §2.4–2.9, ARCHITECTURE "parsing never panics on hostile input"): each mail
//! below is built to hurt — by its shape, its size, its names or its lies — and must be handled as
//! SPEC says, without a panic and within bounded time (each parse under 2 s of CPU in a debug
//! build, each ingest under 20 s) and memory (a 30 MB mail ingested by the real `guichet ingest`
//! under 400 MB peak RSS).
//!
//! Fast: `guichet::parse::parse` directly, and `App::ingest_one` on a temporary SQLite file.

#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::mail_stack::crlf;
use diesel::prelude::*;
use guichet::app::App;
use guichet::config::Settings;
use guichet::desk::inbound::Outcome;
use guichet::parse::{InboundMail, parse};
use guichet::store::schema::outbox;
use guichet::store::views::TicketJson;

/// The bound on one parse of a hostile mail (debug build, a loaded 2-core machine).
const PARSE_BOUND: Duration = Duration::from_secs(2);
/// The bound on one whole ingest (parse, threading, storage, notifications) of a hostile mail.
const INGEST_BOUND: Duration = Duration::from_secs(20);
const MAX_ATTACHMENT: usize = 2_097_152;

struct Desk {
    app: App,
    dir: tempfile::TempDir,
}

impl Desk {
    fn new() -> Desk {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::with_overlay(&config_toml(&dir)).unwrap();
        Desk { app: App::open(settings).unwrap(), dir }
    }

    /// Ingests one mail (LF line ends become CRLF) and checks the time it took.
    fn ingest(&self, what: &str, raw: &[u8]) -> Outcome {
        let raw = crlf(raw);
        let began = Instant::now();
        let outcome = self.app.ingest_one(&raw, "hostile").unwrap_or_else(|e| panic!("{what}: ingest failed: {e:#}"));
        let took = began.elapsed();
        println!("{what}: {} bytes ingested in {took:?}: {outcome:?}", raw.len());
        assert!(took < INGEST_BOUND, "{what}: ingest took {took:?}");
        outcome
    }

    fn ticket(&self, n: i64) -> TicketJson {
        self.app
            .store
            .read(|c| {
                guichet::store::views::ticket_with_messages(
                    c,
                    n,
                    &guichet::store::visibility::Audience::Staff,
                    self.app.desk.lang(),
                )
            })
            .unwrap()
            .expect("ticket exists")
    }

    /// (event, recipient) of every queued notification, oldest first.
    fn outbox(&self) -> Vec<(String, String)> {
        self.app
            .store
            .read(|c| Ok(outbox::table.order(outbox::id).select((outbox::event, outbox::recipient)).load(c)?))
            .unwrap()
    }

    /// The Message-ID of the first notification queued for `recipient`.
    fn our_message_id_to(&self, recipient: &str) -> String {
        self.app
            .store
            .read(|c| {
                Ok(outbox::table
                    .filter(outbox::recipient.eq(recipient))
                    .order(outbox::id)
                    .select(outbox::message_id)
                    .first::<String>(c)?)
            })
            .unwrap()
    }
}

fn config_toml(dir: &tempfile::TempDir) -> String {
    format!(
        r#"
[helpdesk]
address = "support@example.com"
staff = ["alice@example.com", "@support.example.com"]
trusted_authserv_id = "mx.example.com"
max_attachment_bytes = {MAX_ATTACHMENT}

[database]
url = "sqlite://{}/g.db"
"#,
        dir.path().display()
    )
}

/// CPU time of the calling thread so far (`/proc/thread-self/schedstat`, in ns), when readable.
/// The bound is on the work a mail costs, not on how busy the machine is with other tests.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(stat.split_whitespace().next()?.parse().ok()?))
}

/// Parses within [`PARSE_BOUND`] of CPU time (wall-clock time where that cannot be read);
/// returns the result and prints the times.
fn timed_parse(what: &str, raw: &[u8]) -> InboundMail {
    let raw = crlf(raw);
    let (wall, cpu) = (Instant::now(), thread_cpu_time());
    let parsed = parse(&raw);
    let wall = wall.elapsed();
    let cpu = cpu.zip(thread_cpu_time()).map(|(before, after)| after - before);
    println!("{what}: {} bytes parsed in {wall:?} ({cpu:?} of CPU)", raw.len());
    let took = cpu.unwrap_or(wall);
    assert!(took < PARSE_BOUND, "{what}: parse took {took:?}");
    parsed.unwrap_or_else(|e| panic!("{what}: not parsed: {e}"))
}

fn head(from: &str, subject: &str, id: &str) -> String {
    format!("From: {from}\nTo: support@example.com\nSubject: {subject}\nMessage-ID: <{id}>\nMIME-Version: 1.0\n")
}

fn base64_lines(data: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    encoded.as_bytes().chunks(76).map(|l| std::str::from_utf8(l).unwrap()).collect::<Vec<_>>().join("\n")
}

/// A mail from marie with a text body and one base64 attachment.
fn with_attachment(id: &str, disposition: &str, content_type: &str, data: &[u8]) -> Vec<u8> {
    with_attachment_under(&head("marie@customer.example", "Pièce jointe", id), disposition, content_type, data)
}

/// A mail with these headers, a text body and one base64 attachment.
fn with_attachment_under(headers: &str, disposition: &str, content_type: &str, data: &[u8]) -> Vec<u8> {
    format!(
        "{headers}Content-Type: multipart/mixed; boundary=\"outer\"\n\n--outer\nContent-Type: text/plain; charset=utf-8\n\nVoir la pièce jointe.\n--outer\nContent-Type: {content_type}\nContent-Disposition: {disposition}\nContent-Transfer-Encoding: base64\n\n{}\n--outer--\n",
        base64_lines(data)
    )
    .into_bytes()
}

#[test]
fn two_hundred_levels_of_mime_nesting_parse_in_bounded_time() {
    let d = Desk::new();
    let depth = 200;
    // multipart inside multipart…
    let mut body = String::from("Content-Type: text/plain; charset=utf-8\n\nLe texte tout au fond.\n");
    for level in (0..depth).rev() {
        body = format!("Content-Type: multipart/mixed; boundary=\"b{level}\"\n\n--b{level}\n{body}\n--b{level}--\n");
    }
    let raw = format!("{}{body}", head("marie@customer.example", "Imbriqué", "nest@customer.example"));
    timed_parse("multipart nested 200 deep", raw.as_bytes());
    assert!(matches!(d.ingest("multipart nested 200 deep", raw.as_bytes()), Outcome::Ticket { created: true, .. }));

    // …and mails attached inside mails.
    let mut inner = "From: deep@customer.example\nSubject: fond\n\nau fond\n".to_string();
    for level in 0..depth {
        inner = format!(
            "From: l{level}@customer.example\nSubject: niveau {level}\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"m{level}\"\n\n--m{level}\nContent-Type: text/plain\n\nniveau {level}\n--m{level}\nContent-Type: message/rfc822\n\n{inner}\n--m{level}--\n"
        );
    }
    let raw = format!("To: support@example.com\nMessage-ID: <rfc822nest@customer.example>\n{inner}");
    let mail = timed_parse("message/rfc822 nested 200 deep", raw.as_bytes());
    assert_eq!(mail.from.unwrap().address.as_str(), "l199@customer.example");
    assert!(matches!(d.ingest("message/rfc822 nested 200 deep", raw.as_bytes()), Outcome::Ticket { .. }));
}

#[test]
fn five_thousand_parts_are_all_kept_within_bounds() {
    let d = Desk::new();
    let mut raw = format!(
        "{}Content-Type: multipart/mixed; boundary=\"p\"\n\n--p\nContent-Type: text/plain\n\nBeaucoup de pièces.\n",
        head("marie@customer.example", "5000 pièces", "parts@customer.example")
    );
    for i in 0..5_000 {
        raw.push_str(&format!(
            "--p\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"piece-{i}.bin\"\n\nbytes of part {}\n",
            i % 7
        ));
    }
    raw.push_str("--p--\n");
    let mail = timed_parse("5000 parts", raw.as_bytes());
    assert_eq!(mail.attachments.len(), 5_000);
    assert!(matches!(d.ingest("5000 parts", raw.as_bytes()), Outcome::Ticket { number: 1, created: true }));
    let files = &d.ticket(1).messages.unwrap()[0].attachments;
    assert_eq!(files.len(), 5_000, "every part is kept (identical contents stored once)");
}

#[test]
fn five_megabytes_of_headers_parse_in_bounded_time() {
    let d = Desk::new();
    let mut raw = String::with_capacity(5_300_000);
    raw.push_str("Received: from a (a [192.0.2.1]) by mx.example.com; Mon, 30 Nov 2026 09:00:00 +0100\n");
    let mut i = 0;
    while raw.len() < 5 * 1024 * 1024 {
        match i % 5 {
            0 => raw.push_str(&format!("X-Junk-{i}: {}\n", "j".repeat(60))),
            1 => raw.push_str(&format!(
                "Received: from relay{i}.example by relay{}.example; Mon, 30 Nov 2026 09:00:00 +0100\n",
                i + 1
            )),
            2 => raw.push_str(&format!("References: <ref{i}@elsewhere.example>\n")),
            3 => raw.push_str(&format!("Cc: person{i}@customer.example\n")),
            _ => raw.push_str(&format!("X-Folded-{i}: a\n\tfolded\n\tvalue {}\n", "f".repeat(40))),
        }
        i += 1;
    }
    raw.push_str(&head("marie@customer.example", "Gros en-têtes", "headers@customer.example"));
    raw.push_str("\nLe corps.\n");
    let mail = timed_parse("5 MB of headers", raw.as_bytes());
    assert!(mail.references.len() <= 50, "references are capped: {}", mail.references.len());
    assert!(mail.cc.len() <= 100, "Cc lists are capped: {}", mail.cc.len());
    assert!(matches!(d.ingest("5 MB of headers", raw.as_bytes()), Outcome::Ticket { created: true, .. }));
    let t = d.ticket(1);
    assert_eq!(t.messages.unwrap()[0].text, "Le corps.");
    assert!(t.watchers.len() <= 100, "watchers from a hostile Cc list are capped: {}", t.watchers.len());
}

#[test]
fn lying_charsets_still_give_readable_utf8() {
    // Declared Latin-1, really UTF-8.
    let mut raw = head("marie@customer.example", "Accents", "lie1@customer.example").into_bytes();
    raw.extend_from_slice(b"Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\n");
    raw.extend_from_slice("Réponse: l'écran reste noir à l'allumage.\n".as_bytes());
    assert!(timed_parse("latin-1 that is utf-8", &raw).text.contains("l'écran reste noir à l'allumage"));

    // Declared UTF-8, really Latin-1.
    let mut raw = head("marie@customer.example", "Accents", "lie2@customer.example").into_bytes();
    raw.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n");
    raw.extend_from_slice(b"R\xe9ponse: l'\xe9cran reste noir \xe0 l'allumage.\n");
    assert!(timed_parse("utf-8 that is latin-1", &raw).text.contains("l'écran reste noir à l'allumage"));

    // An unknown charset, a UTF-16 claim over 8-bit bytes, and a charset name full of junk.
    for charset in ["x-klingon", "utf-16", "\"utf-8\\\"; \x01\x02\"", "utf-7"] {
        let mut raw = head("marie@customer.example", "Charset", "lie3@customer.example").into_bytes();
        raw.extend_from_slice(format!("Content-Type: text/plain; charset={charset}\n\n").as_bytes());
        raw.extend_from_slice(b"plain words \xff\xfe\x00\x01 and more\n");
        let mail = timed_parse(&format!("charset {charset:?}"), &raw);
        assert!(!mail.text.contains('\0'), "charset {charset:?}: NUL reached the text");
    }
    // Encoded words that lie about their charset in the subject.
    let raw = "From: marie@customer.example\nSubject: =?iso-8859-1?Q?R=C3=A9ponse?= =?x-unknown?B?//79?= =?utf-8?B?gICA?=\nMessage-ID: <lie4@customer.example>\n\nx\n";
    let mail = timed_parse("lying encoded words", raw.as_bytes());
    assert!(!mail.subject.chars().any(char::is_control), "{:?}", mail.subject);
}

#[test]
fn rfc2231_names_with_paths_lose_their_directories() {
    let d = Desk::new();
    let cases = [
        // RFC 2231 extended, percent-encoded.
        ("attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd", "passwd"),
        // RFC 2231 continuations spelling a Windows path.
        ("attachment; filename*0*=UTF-8''C%3A%5CWindows%5C; filename*1=\"System32\\\\x.exe\"", "x.exe"),
        ("attachment; filename=\"C:\\\\Windows\\\\x.exe\"", "x.exe"),
        ("attachment; filename=\"/../../../../root/.ssh/authorized_keys\"", "authorized_keys"),
        ("attachment; filename*=''..%5C..%5C", "attachment.bin"),
    ];
    for (i, (disposition, expected)) in cases.iter().enumerate() {
        let raw = with_attachment(&format!("path{i}@customer.example"), disposition, "application/octet-stream", b"x");
        let mail = timed_parse(disposition, &raw);
        assert_eq!(mail.attachments.len(), 1, "{disposition}");
        let name = &mail.attachments[0].name;
        assert_eq!(name, expected, "{disposition}");
        assert!(!name.contains(['/', '\\']) && !name.starts_with('.'), "{disposition}: {name}");
    }
    // The stored name is the sanitised one.
    let raw = with_attachment("pathstored@customer.example", cases[0].0, "application/octet-stream", b"x");
    d.ingest("path in a stored name", &raw);
    assert_eq!(d.ticket(1).messages.unwrap()[0].attachments[0].name, "passwd");
}

#[test]
fn nul_and_bidi_characters_never_reach_names_or_subjects() {
    let d = Desk::new();
    // "invoice<RLO>fdp.exe" shows as "invoiceexe.pdf"; a NUL would cut the name in C code.
    let disposition = "attachment; filename*=UTF-8''invoice%E2%80%AEfdp%00.exe";
    let subject = "=?UTF-8?B?".to_string()
        + &base64::engine::general_purpose::STANDARD.encode("Facture\u{0}\u{202E}gnp.exe\u{2066} [Ticket #9]")
        + "?=";
    let headers = format!(
        "From: =?UTF-8?Q?Eve=00=E2=80=AE_Admin?= <eve@customer.example>\nTo: support@example.com\nSubject: {subject}\nMessage-ID: <bidi@customer.example>\nMIME-Version: 1.0\n"
    );
    let raw = with_attachment_under(&headers, disposition, "application/pdf", b"%PDF-1.4");
    let mail = timed_parse("NUL and bidi", &raw);
    let forbidden = |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    assert!(!mail.subject.contains(forbidden), "subject {:?}", mail.subject);
    let name = mail.from.as_ref().unwrap().name.clone().unwrap_or_default();
    assert!(!name.contains(forbidden), "display name {name:?}");
    assert_eq!(mail.attachments[0].name, "invoicefdp.exe");
    d.ingest("NUL and bidi", &raw);
    let t = d.ticket(1);
    assert!(!t.subject.contains(forbidden), "ticket subject {:?}", t.subject);
    assert_eq!(t.messages.unwrap()[0].attachments[0].name, "invoicefdp.exe");
}

/// A zip whose one member is `size` zero bytes, deflated: a few hundred bytes per megabyte.
fn zip_bomb(size: usize) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(size > u32::MAX as usize);
    zip.start_file("zeros.bin", options).unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..size / chunk.len() {
        zip.write_all(&chunk).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[test]
fn a_zip_bomb_is_stored_as_an_opaque_file_never_expanded() {
    let d = Desk::new();
    let expands_to = 256 << 20;
    let bomb = zip_bomb(expands_to);
    println!("zip bomb: {} bytes expanding to {expands_to} bytes", bomb.len());
    assert!(bomb.len() < 1 << 20, "the bomb is small");
    let raw = with_attachment("bomb@customer.example", "attachment; filename=\"bomb.zip\"", "application/zip", &bomb);
    timed_parse("zip bomb", &raw);
    assert!(matches!(d.ingest("zip bomb", &raw), Outcome::Ticket { number: 1, created: true }));
    let files = &d.ticket(1).messages.unwrap()[0].attachments;
    assert_eq!(files.len(), 1);
    assert_eq!((files[0].name.as_str(), files[0].content_type.as_str()), ("bomb.zip", "application/zip"));
    assert_eq!(files[0].size, bomb.len() as i64, "stored as received: the compressed bytes");
}

#[test]
fn an_attachment_at_exactly_the_limit_is_kept_and_one_byte_over_is_refused_and_told() {
    let d = Desk::new();
    let at_limit: Vec<u8> = (0..MAX_ATTACHMENT).map(|i| (i * 31 % 251) as u8).collect();
    let raw = with_attachment(
        "limit@customer.example",
        "attachment; filename=\"exact.bin\"",
        "application/octet-stream",
        &at_limit,
    );
    d.ingest("attachment at the limit", &raw);
    let m = &d.ticket(1).messages.unwrap()[0];
    assert_eq!(m.attachments.len(), 1);
    assert_eq!(m.attachments[0].size, MAX_ATTACHMENT as i64);
    assert!(m.refused_attachments.is_empty());

    let mut over = at_limit.clone();
    over.push(7);
    let headers = head("paul@customer.example", "Pièce jointe", "over@customer.example");
    let raw = with_attachment_under(&headers, "attachment; filename=\"over.bin\"", "application/octet-stream", &over);
    assert!(matches!(d.ingest("attachment one byte over", &raw), Outcome::Ticket { number: 2, created: true }));
    let m = &d.ticket(2).messages.unwrap()[0];
    assert!(m.attachments.is_empty(), "not stored");
    assert_eq!(m.refused_attachments.len(), 1);
    assert_eq!(m.refused_attachments[0].name, "over.bin");
    assert_eq!(m.refused_attachments[0].size, MAX_ATTACHMENT as u64 + 1);
    // The sender is told in the acknowledgement (one inbound mail, one automatic mail).
    let told = |who: &str| -> Vec<String> {
        d.app
            .store
            .read(|c| {
                Ok(outbox::table
                    .filter(outbox::recipient.eq(who))
                    .filter(outbox::event.eq("ticket_created"))
                    .select(outbox::spec.assume_not_null())
                    .load::<String>(c)?)
            })
            .unwrap()
    };
    let paul = told("paul@customer.example");
    assert!(paul.len() == 1 && paul[0].contains("over.bin"), "the sender is told: {paul:?}");
    let limit = told("marie@customer.example");
    assert!(limit.len() == 1 && limit[0].contains(r#""files":[]"#), "nothing refused at the limit: {limit:?}");
    assert!(!d.outbox().iter().any(|(e, _)| e == "attachment_refused"), "no second automatic mail");
}

/// SPEC §2.9. Only our MX's verdict counts: the trusted `Authentication-Results` nearest the top.
/// Our MX adds its header above everything the mail came with, so a header with our authserv-id
/// further down was written by the sender (RFC 8601 §5) — whether it claims pass or fail.
#[test]
fn forged_authentication_results_are_ignored() {
    let d = Desk::new();
    d.ingest("first mail", b"From: marie@customer.example\nTo: support@example.com\nSubject: Imprimante\nMessage-ID: <ar0@customer.example>\n\nbloquee\n");

    // From another server: not trusted, whatever it says.
    let r = d.ingest("untrusted authserv-id", b"Authentication-Results: mx.evil.example; dmarc=fail header.from=customer.example\nAuthentication-Results: mx.example.com.evil.example; dmarc=fail header.from=customer.example\nFrom: marie@customer.example\nTo: support@example.com\nSubject: Re: [Ticket #1] Imprimante\nMessage-ID: <ar1@customer.example>\n\nsuite\n");
    assert_eq!(r, Outcome::Ticket { number: 1, created: false });

    // Our MX says fail; a "pass" with our id, forged below it, changes nothing.
    let r = d.ingest("forged pass below a real fail", b"Authentication-Results: mx.example.com; dmarc=fail (p=reject) header.from=example.com\nReceived: from evil.example by mx.example.com\nAuthentication-Results: mx.example.com; dmarc=pass header.from=example.com\nFrom: alice@example.com\nTo: support@example.com\nSubject: Re: [Ticket #1] Imprimante\nMessage-ID: <ar2@evil.example>\n\n#status closed\n");
    assert_eq!(r, Outcome::Ticket { number: 1, created: false }, "kept on ticket 1 as a note");
    let kept = d.ticket(1).messages.unwrap().into_iter().last().unwrap();
    assert!(kept.kind == "note" && kept.unverified, "not a staff action: {kept:?}");
    assert_eq!(d.ticket(1).status, "new");

    // Our MX says pass; a "fail" with our id forged below it is ignored as well.
    let r = d.ingest("forged fail below a real pass", b"Authentication-Results: mx.example.com; dkim=pass; dmarc=pass header.from=customer.example\nAuthentication-Results: mx.example.com; dmarc=fail header.from=customer.example\nFrom: marie@customer.example\nTo: support@example.com\nSubject: Re: [Ticket #1] Imprimante\nMessage-ID: <ar3@customer.example>\n\nencore\n");
    assert_eq!(r, Outcome::Ticket { number: 1, created: false });
}

#[test]
fn our_internal_headers_forged_from_outside_are_not_believed() {
    let d = Desk::new();
    d.ingest("first mail", b"From: marie@customer.example\nTo: support@example.com\nSubject: Imprimante\nMessage-ID: <ih0@customer.example>\n\nbloquee\n");

    // Another value of our loop header: not ours, so the mail is an ordinary request.
    let r = d.ingest("foreign X-Guichet-Loop", b"X-Guichet-Loop: helpdesk@other.example\nFrom: paul@customer.example\nTo: support@example.com\nSubject: Question\nMessage-ID: <ih1@customer.example>\n\nbonjour\n");
    assert_eq!(r, Outcome::Ticket { number: 2, created: true });
    // Our own value: our mail coming back, dropped (kept, never a ticket).
    let r = d.ingest("our X-Guichet-Loop", b"X-Guichet-Loop: support@example.com\nFrom: paul@customer.example\nTo: support@example.com\nSubject: Re: Question\nMessage-ID: <ih2@customer.example>\n\nboucle\n");
    assert!(matches!(r, Outcome::Dropped(_)), "{r:?}");

    // A Message-ID in our shape pointing at ticket 1, with a MAC made without our secret.
    let forged = "guichet.1.0123456789abcdef.fedcba9876543210@example.com";
    let raw = format!(
        "From: eve@other.example\nTo: support@example.com\nSubject: Re: vos tickets\nMessage-ID: <ih3@other.example>\nIn-Reply-To: <{forged}>\nReferences: <{forged}>\n\nlaissez-moi entrer\n"
    );
    let r = d.ingest("forged Message-ID of ours", raw.as_bytes());
    assert_eq!(r, Outcome::Ticket { number: 3, created: true });
    // Even a genuine id of ours (say, leaked) gives no right to a stranger.
    let genuine = d.our_message_id_to("marie@customer.example");
    let raw = format!(
        "From: eve@other.example\nTo: support@example.com\nSubject: Re: Imprimante\nMessage-ID: <ih4@other.example>\nIn-Reply-To: <{genuine}>\n\nencore moi\n"
    );
    let r = d.ingest("stolen Message-ID of ours", raw.as_bytes());
    assert_eq!(r, Outcome::Ticket { number: 4, created: true });
    assert_eq!(d.ticket(1).messages.unwrap().len(), 1, "ticket 1 untouched");
    // Its owner does join with it.
    let raw = format!(
        "From: marie@customer.example\nTo: support@example.com\nSubject: Re: Imprimante\nMessage-ID: <ih5@customer.example>\nIn-Reply-To: <{genuine}>\n\nmerci\n"
    );
    assert_eq!(d.ingest("genuine reply", raw.as_bytes()), Outcome::Ticket { number: 1, created: false });
}

/// Peak memory of the real binary ingesting a 30 MB mail (a refused 12 MB file, stored 2 MB
/// files, a 1 MB text body), read from the child's `VmHWM` while it runs. The high-water mark
/// only grows, and the last reading comes after the mail is stored, so it is the peak.
#[test]
fn a_thirty_megabyte_mail_is_ingested_by_the_binary_within_400_mb() {
    let d = Desk::new();
    let config = d.dir.path().join("guichet.toml");
    std::fs::write(&config, config_toml(&d.dir)).unwrap();
    let target = 30_000_000;
    let mut raw = head("marie@customer.example", "Trente mégaoctets", "big30@customer.example")
        .replace('\n', "\r\n")
        .into_bytes();
    raw.extend_from_slice(b"Content-Type: multipart/mixed; boundary=\"big\"\r\n\r\n--big\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
    for i in 0..20_000 {
        raw.extend_from_slice(format!("Ligne {i} du journal de la machine, rien d'anormal.\r\n").as_bytes());
    }
    let mut files = 0;
    while raw.len() < target - 200_000 {
        let room = (target - raw.len() - 200_000) * 3 / 4;
        let size = if files == 0 { 12 << 20 } else { room.min(MAX_ATTACHMENT) };
        let data: Vec<u8> = (0..size).map(|k| (k as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2]).collect();
        raw.extend_from_slice(
            format!(
                "--big\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"file{files}.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
                base64_lines(&data).replace('\n', "\r\n")
            )
            .as_bytes(),
        );
        files += 1;
    }
    raw.extend_from_slice(b"--big--\r\n");
    let file = d.dir.path().join("big.eml");
    std::fs::write(&file, &raw).unwrap();

    let began = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_guichet"))
        .arg("-c")
        .arg(&config)
        .arg("ingest")
        .arg(&file)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("guichet ingest starts");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    let status = loop {
        if let Some(kb) = std::fs::read_to_string(&status_file).ok().as_deref().and_then(vm_hwm_kb) {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let took = began.elapsed();
    let out = child.wait_with_output().unwrap();
    println!(
        "peak memory: guichet ingest of a {:.1} MB mail ({files} attachments): VmHWM {:.1} MB, {took:?}",
        raw.len() as f64 / 1e6,
        peak_kb as f64 / 1024.0
    );
    assert!(status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("opened ticket #1"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(peak_kb > 30_000, "the reading covers the mail in memory ({peak_kb} kB)");
    assert!(peak_kb < 400 * 1024, "peak RSS {peak_kb} kB");
    let m = &d.ticket(1).messages.unwrap()[0];
    assert_eq!(m.refused_attachments.len(), 1, "the 12 MB file is refused");
    assert_eq!(m.attachments.len(), files - 1);
}

fn vm_hwm_kb(status: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()
}
