//! Events → mail text: Handlebars templates in strict mode (SPEC §4 "Templates").
//!
//! The templates live in `mail-templates/<language>/` and are compiled into the binary; a directory
//! given by `templates_dir` overrides them file by file (same layout, only the files to change).
//! Each event has three files, `<event>.subject.hbs`, `<event>.txt.hbs` and `<event>.html.hbs`.
//! Files starting with `_` are partials: `_<name>.txt.hbs` for subjects and text bodies,
//! `_<name>.html.hbs` for HTML bodies (the built-in ones are `footer` and the HTML `layout`).
//!
//! Subjects and text bodies are rendered without escaping; HTML bodies are escaped by Handlebars, and
//! the `{{nl2br value}}` helper escapes a text then turns its line breaks into `<br>`.
//! Strict mode: a variable a template names but the context lacks is an error, not an empty string.
//! `{{#if x}}` tolerates a missing `x`, which is how the optional variables below are written.
//!
//! # Context
//! Common variables (build them all for every ticket event; `null` where a value is not set):
//! - `helpdesk_name`: the helpdesk's name (`helpdesk.name`)
//! - `token`: the ticket's subject token, e.g. `"[Ticket #42]"`
//! - `ticket`: `{number, subject, status, status_label, priority, priority_label, requester, product,
//!   service}` — `status`/`priority` are the codes (`open`, `blocking`), the labels are in the mail's
//!   language; `product` and `service` may be `null`
//! - `ticket_url`: the direct link to the ticket page
//! - `body`: the text of the message relayed or announced (may be empty)
//! - `author`: display name of who acted (may be empty)
//!
//! Per event (besides `helpdesk_name`; "ticket" means `token`, `ticket`, `ticket_url`):
//! | event | required | optional |
//! | --- | --- | --- |
//! | `ticket_created` (to the requester) | ticket | `files`, `limit` (refused attachments) |
//! | `staff_alert_created` (to staff) | ticket, `author`, `body` | |
//! | `staff_answer` (to requester and watchers) | ticket, `body` | `author` |
//! | `status_changed` | ticket | `body` |
//! | `ticket_closed` | ticket | `author`, `body` |
//! | `ticket_reopened` | ticket, `reason` | `author` |
//! | `customer_answer` (to staff) | ticket, `author`, `body` | |
//! | `login_link` | `link` | |
//! | `attachment_refused` | ticket, `files` (list of `{name, size}`), `limit` | |
//! | `unknown_command` (to a staff member) | `commands` (the unknown command lines) | ticket |
//! | `unverified_staff_mail` (to the staff member a mail claimed to be from) | `body`, `personal_address` | ticket |
//! | `ticket_assigned` (to the new assignee) | ticket | |
//! | `staff_alert_overdue` (to the assignee or the queue's staff) | ticket, `waited` | |
//! | `waiting_reminder` (to requester and watchers) | ticket | |
//! | `ticket_closed_waiting` (to requester and watchers) | ticket | |
//! | `priority_changed` (to requester and watchers) | ticket | |
//! | `customer_closed` (to the assignee or the queue's staff) | ticket, `author` | `reason` |
//! | `staff_digest` (to a staff member) | `tickets` (`{token, subject, status_label, priority_label, overdue, assigned, url}`), `count` | |
//!
//! `size` and `limit` are human sizes in the mail's language: see [`human_size`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::LazyLock;

use anyhow::{Context as _, bail, ensure};
use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderError, RenderErrorReason, html_escape,
    no_escape,
};
use include_dir::{Dir, include_dir};
use serde_json::Value;

use super::compose::{MAX_SUBJECT_CHARS, header_text, shorten_subject};
use crate::catalog;

static BUILT_IN: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/mail-templates");

/// Every event that has templates.
pub const EVENTS: &[&str] = &[
    "ticket_created",
    "staff_alert_created",
    "staff_answer",
    "status_changed",
    "ticket_closed",
    "ticket_reopened",
    "customer_answer",
    "login_link",
    "attachment_refused",
    "unknown_command",
    "unverified_staff_mail",
    "ticket_assigned",
    "staff_alert_overdue",
    "waiting_reminder",
    "ticket_closed_waiting",
    "staff_digest",
    "priority_changed",
    "customer_closed",
];
/// The languages with templates: those of the catalog (`locales/`), the default first.
pub static LANGUAGES: LazyLock<Vec<&'static str>> = LazyLock::new(|| catalog::languages().collect());
pub use crate::catalog::DEFAULT_LANGUAGE;
const PARTS: &[&str] = &["subject", "txt", "html"];

/// One rendered mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// One line, at most [`MAX_SUBJECT_CHARS`] characters, its token kept.
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The compiled templates of every language. Build it once at start: a broken template is a start-up
/// error, not a failed notification hours later.
pub struct Renderer {
    languages: BTreeMap<&'static str, Registries>,
}

/// One language: subjects and text bodies (no escaping) apart from HTML bodies (escaped).
struct Registries {
    text: Handlebars<'static>,
    html: Handlebars<'static>,
}

/// What a template file is, from its name.
enum FileKind {
    /// `<event>.<part>.hbs`, registered as `<event>.<part>`.
    Template { name: String, html: bool },
    /// `_<name>.<txt|html>.hbs`, registered as the partial `<name>`.
    Partial { name: String, html: bool },
}

impl Renderer {
    /// The compiled-in templates, each replaced by `templates_dir/<language>/<file>` when that file exists.
    pub fn new(templates_dir: Option<&Path>) -> anyhow::Result<Renderer> {
        let mut languages = BTreeMap::new();
        for &lang in LANGUAGES.iter() {
            let sources = sources(lang, templates_dir)?;
            languages.insert(lang, Registries::compile(lang, &sources)?);
        }
        Ok(Renderer { languages })
    }

    /// Renders `event` in `lang` (a tag like `en` or `en-GB`; unknown languages fall back to French).
    pub fn render(&self, lang: &str, event: &str, ctx: &Value) -> anyhow::Result<Rendered> {
        ensure!(EVENTS.contains(&event), "unknown mail event `{event}`");
        let lang = language(lang);
        let registries = &self.languages[lang];
        let render = |registry: &Handlebars<'static>, part: &str| {
            registry
                .render(&format!("{event}.{part}"), ctx)
                .with_context(|| format!("rendering {lang}/{event}.{part}.hbs"))
        };
        let subject = header_text(&render(&registries.text, "subject")?);
        let token = ctx.get("token").and_then(Value::as_str).unwrap_or("");
        Ok(Rendered {
            subject: shorten_subject(&subject, token, MAX_SUBJECT_CHARS),
            text: format!("{}\n", render(&registries.text, "txt")?.trim_end()),
            html: format!("{}\n", render(&registries.html, "html")?.trim_end()),
        })
    }
}

impl Registries {
    fn compile(lang: &str, sources: &BTreeMap<String, String>) -> anyhow::Result<Registries> {
        let mut text = Handlebars::new();
        text.set_strict_mode(true);
        text.register_escape_fn(no_escape);
        let mut html = Handlebars::new();
        html.set_strict_mode(true);
        html.register_helper("nl2br", Box::new(nl2br));
        for (file, source) in sources {
            let registered = match classify(file) {
                Some(FileKind::Template { name, html: false }) => text.register_template_string(&name, source),
                Some(FileKind::Template { name, html: true }) => html.register_template_string(&name, source),
                Some(FileKind::Partial { name, html: false }) => text.register_partial(&name, source),
                Some(FileKind::Partial { name, html: true }) => html.register_partial(&name, source),
                None => bail!(
                    "unexpected mail template {lang}/{file}: expected <event>.<subject|txt|html>.hbs with an event \
                     among {EVENTS:?}, or a partial _<name>.<txt|html>.hbs"
                ),
            };
            registered.with_context(|| format!("compiling mail template {lang}/{file}"))?;
        }
        for event in EVENTS {
            for part in PARTS {
                let registry = if *part == "html" { &html } else { &text };
                ensure!(
                    registry.has_template(&format!("{event}.{part}")),
                    "mail template {lang}/{event}.{part}.hbs is missing"
                );
            }
        }
        Ok(Registries { text, html })
    }
}

/// The template files of `lang`: built-in ones, then those of the override directory on top.
fn sources(lang: &str, templates_dir: Option<&Path>) -> anyhow::Result<BTreeMap<String, String>> {
    let mut sources = BTreeMap::new();
    let built_in = BUILT_IN.get_dir(lang).with_context(|| format!("no built-in mail templates for `{lang}`"))?;
    for file in built_in.files() {
        let name = file.path().file_name().and_then(|n| n.to_str()).context("built-in template file name")?;
        let text = file.contents_utf8().with_context(|| format!("built-in template {lang}/{name} is not UTF-8"))?;
        sources.insert(name.to_string(), text.to_string());
    }
    let Some(dir) = templates_dir else { return Ok(sources) };
    ensure!(dir.is_dir(), "templates_dir {} is not a directory", dir.display());
    let dir = dir.join(lang);
    if !dir.is_dir() {
        return Ok(sources);
    }
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry.with_context(|| format!("reading {}", dir.display()))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).filter(|n| n.ends_with(".hbs")) else { continue };
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        sources.insert(name.to_string(), text);
    }
    Ok(sources)
}

fn classify(file: &str) -> Option<FileKind> {
    let (stem, part) = file.strip_suffix(".hbs")?.rsplit_once('.')?;
    if let Some(name) = stem.strip_prefix('_') {
        let html = match part {
            "txt" => false,
            "html" => true,
            _ => return None,
        };
        return (!name.is_empty()).then(|| FileKind::Partial { name: name.to_string(), html });
    }
    (EVENTS.contains(&stem) && PARTS.contains(&part))
        .then(|| FileKind::Template { name: format!("{stem}.{part}"), html: part == "html" })
}

/// `en`, `en-GB`, `EN_us` → `en`; anything without templates → the default.
fn language(tag: &str) -> &'static str {
    let primary = tag.trim().split(['-', '_']).next().unwrap_or("").to_ascii_lowercase();
    LANGUAGES.iter().copied().find(|l| *l == primary).unwrap_or(DEFAULT_LANGUAGE)
}

/// `{{nl2br text}}`: the text HTML-escaped, each line break made a `<br>`.
fn nl2br(
    h: &Helper<'_>,
    registry: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let param = h.param(0).ok_or(RenderErrorReason::ParamNotFoundForIndex("nl2br", 0))?;
    if registry.strict_mode() && param.is_value_missing() {
        return Err(RenderError::strict_error(param.relative_path()));
    }
    let text = match param.value() {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let escaped = html_escape(&text.replace("\r\n", "\n").replace('\r', "\n"));
    out.write(&escaped.replace('\n', "<br>\n"))?;
    Ok(())
}

/// A size for people, in the mail's language: `2 Mo` / `2 MB`, `1,5 Mo` / `1.5 MB`, `800 Ko`, `12 octets`.
/// Binary multiples, as the limit is configured in bytes (2 MB = 2,097,152 bytes).
pub fn human_size(bytes: u64, lang: &str) -> String {
    let lang = language(lang);
    let units = ["unit_bytes", "unit_kb", "unit_mb", "unit_gb"].map(|key| catalog::word(lang, key));
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let number = if unit == 0 {
        bytes.to_string()
    } else {
        // One decimal, none when it would be `.0`.
        let rounded = (value * 10.0).round() / 10.0;
        let number = if rounded.fract() == 0.0 { format!("{rounded:.0}") } else { format!("{rounded:.1}") };
        number.replace('.', catalog::word(lang, "decimal_separator"))
    };
    format!("{number} {}", units[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Priority, Status};
    use serde_json::json;

    const URL: &str = "http://127.0.0.1:8080/tickets/42";
    const LINK: &str = "http://127.0.0.1:8080/login/q2Xb7cV9kPz_Lw-3";

    fn sample_context(lang: &str) -> Value {
        json!({
            "helpdesk_name": "Support Cisa",
            "token": "[Ticket #42]",
            "ticket": {
                "number": 42, "subject": "Imprimante bloquée", "status": "open",
                "status_label": Status::Open.label(lang),
                "priority": "blocking", "priority_label": Priority::Blocking.label(lang),
                "requester": "client@customer.example", "product": "Sage Paie", "service": "Support",
            },
            "ticket_url": URL,
            "body": "Bonjour,\nl'imprimante du 2e étage affiche « Erreur 42 ».\n\nMerci",
            "author": "Alice Martin",
            "reason": "Le problème est revenu ce matin.",
            "files": [{"name": "scan.pdf", "size": human_size(3_500_000, lang)},
                      {"name": "video.mp4", "size": human_size(12_000_000, lang)}],
            "limit": human_size(2_097_152, lang),
            "link": LINK,
            "commands": ["#statut fermé"],
            "personal_address": "support+0-0123456789abcdef@example.com",
            "waited": "2 h 05",
            "count": 1,
            "tickets": [{"token": "[Ticket #42]", "subject": "Imprimante", "status_label": "Nouveau",
                         "priority_label": "Bloquante", "overdue": true, "assigned": false, "url": URL}],
        })
    }

    fn renderer() -> Renderer {
        Renderer::new(None).expect("the built-in templates compile")
    }

    #[test]
    fn every_template_renders_in_every_language_with_token_and_link() {
        let renderer = renderer();
        let mut rendered_count = 0;

        for lang in LANGUAGES.iter() {
            for event in EVENTS {
                let mail = renderer.render(lang, event, &sample_context(lang)).unwrap_or_else(|e| panic!("{e:#}"));

                let place = format!("{lang}/{event}");
                assert!(!mail.subject.is_empty() && !mail.subject.contains('\n'), "{place}: {:?}", mail.subject);
                assert!(mail.html.contains("<html lang=") && !mail.html.contains("<img"), "{place}");
                assert!(mail.text.ends_with('\n') && !mail.text.ends_with("\n\n"), "{place}");
                if *event == "staff_digest" {
                    // A list of tickets, not one: each with its token and link.
                    assert!(mail.subject.contains('1'), "{place}: {}", mail.subject);
                    assert!(mail.text.contains("[Ticket #42] Imprimante") && mail.text.contains(URL), "{place}");
                } else if *event == "login_link" {
                    assert!(mail.subject.contains("Support Cisa"), "{place}");
                    assert!(mail.text.contains(LINK) && mail.html.contains(LINK), "{place}");
                    assert!(mail.text.contains("15 minutes") && mail.html.contains("15 minutes"), "{place}");
                } else {
                    assert!(mail.subject.starts_with("[Ticket #42] "), "{place}: {}", mail.subject);
                    assert!(mail.text.contains(URL) && mail.html.contains(&format!("href=\"{URL}\"")), "{place}");
                    assert!(mail.text.contains("[Ticket #42]") && mail.html.contains("[Ticket #42]"), "{place}");
                }
                rendered_count += 1;
            }
        }

        assert_eq!(rendered_count, LANGUAGES.len() * EVENTS.len());
    }

    #[test]
    fn each_event_says_what_it_is_about() {
        let renderer = renderer();
        for lang in LANGUAGES.iter() {
            let ctx = sample_context(lang);
            let render = |event| renderer.render(lang, event, &ctx).unwrap();

            let answer = render("staff_answer");
            assert!(answer.text.starts_with("Bonjour,\nl'imprimante du 2e étage"), "{lang}: {}", answer.text);
            // Signed once: by the staff member's own words and the From name, not again by us.
            assert!(!answer.text.contains("Alice Martin"));
            let mut waiting = ctx.clone();
            waiting["ticket"]["status"] = serde_json::json!("waiting");
            let waits = renderer.render(lang, "staff_answer", &waiting).unwrap();
            let waiting_words = match *lang {
                "en" => "waiting for your answer",
                _ => "attendons votre réponse",
            };
            assert!(waits.text.contains(waiting_words), "{lang}");
            assert!(render("customer_answer").text.contains("« Erreur 42 »"));
            assert!(render("staff_alert_created").text.contains("client@customer.example"));
            assert!(render("staff_alert_created").text.contains("Sage Paie"));
            assert!(render("status_changed").subject.contains(Status::Open.label(lang)));
            let reopened = render("ticket_reopened");
            assert!(reopened.text.contains("Le problème est revenu ce matin."));
            assert!(reopened.html.contains("Le problème est revenu ce matin."));
            let refused = render("attachment_refused");
            let size = format!("2 {}", catalog::word(lang, "unit_mb"));
            for expected in ["scan.pdf", "video.mp4", size.as_str()] {
                assert!(refused.text.contains(expected) && refused.html.contains(expected), "{lang}: {expected}");
            }
            let unknown = render("unknown_command");
            for expected in
                ["#statut fermé", "#status new|open|waiting|closed", "#priority low|normal|blocking", "#note"]
            {
                assert!(unknown.text.contains(expected) && unknown.html.contains(expected), "{lang}: {expected}");
            }
            assert!(unknown.text.contains("#requester"));
        }
    }

    #[test]
    fn login_link_and_unknown_command_need_no_ticket() {
        let renderer = renderer();
        let login = json!({"helpdesk_name": "Support", "link": LINK});
        let unknown = json!({"helpdesk_name": "Support", "commands": ["#foo", "#bar baz"]});

        for lang in LANGUAGES.iter() {
            assert!(renderer.render(lang, "login_link", &login).unwrap().text.contains(LINK));
            let mail = renderer.render(lang, "unknown_command", &unknown).unwrap();
            assert!(!mail.subject.contains("Ticket") && mail.text.contains("#bar baz"), "{lang}: {mail:?}");
        }
    }

    #[test]
    fn optional_sections_disappear_when_empty() {
        let mut ctx = sample_context("fr");
        ctx["author"] = json!("");
        ctx["ticket"]["product"] = Value::Null;

        let closed = renderer().render("fr", "ticket_closed", &ctx).unwrap();
        let alert = renderer().render("fr", "staff_alert_created", &ctx).unwrap();

        assert!(closed.text.contains("a été clôturé.\n"), "{}", closed.text);
        assert!(!alert.text.contains("Produit"), "{}", alert.text);
    }

    #[test]
    fn a_missing_variable_is_an_error_in_strict_mode() {
        let mut ctx = sample_context("fr");
        ctx.as_object_mut().unwrap().remove("reason");

        let error = renderer().render("fr", "ticket_reopened", &ctx).unwrap_err();

        assert!(format!("{error:#}").contains("fr/ticket_reopened"), "{error:#}");
        let mut ctx = sample_context("fr");
        ctx.as_object_mut().unwrap().remove("body");
        assert!(renderer().render("fr", "staff_answer", &ctx).is_err(), "nl2br is strict too");
    }

    #[test]
    fn html_is_escaped_with_line_breaks_and_text_is_not() {
        let mut ctx = sample_context("fr");
        ctx["body"] = json!("<script>alert(1)</script>\r\nR&D \"ok\"");
        ctx["ticket"]["subject"] = json!("R&D <urgent>");

        let mail = renderer().render("fr", "staff_answer", &ctx).unwrap();

        assert!(
            mail.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;<br>\nR&amp;D &quot;ok&quot;"),
            "{}",
            mail.html
        );
        assert!(!mail.html.contains("<script>") && !mail.html.contains("<urgent>"));
        assert_eq!(mail.subject, "[Ticket #42] R&D <urgent>");
        assert!(mail.text.starts_with("<script>alert(1)</script>\r\nR&D \"ok\""));
    }

    #[test]
    fn a_subject_is_one_line_and_shortened_with_its_token() {
        let mut ctx = sample_context("fr");
        ctx["ticket"]["subject"] = json!(format!("Première ligne\r\nBcc: evil@x.com {}", "long ".repeat(60)));

        let mail = renderer().render("fr", "ticket_created", &ctx).unwrap();

        assert!(mail.subject.starts_with("[Ticket #42] Première ligne Bcc: evil@x.com long"), "{}", mail.subject);
        assert!(mail.subject.ends_with('…') && mail.subject.chars().count() <= MAX_SUBJECT_CHARS);
    }

    #[test]
    fn an_unknown_language_falls_back_to_french() {
        let renderer = renderer();
        let ctx = sample_context("fr");

        let german = renderer.render("de", "ticket_closed", &ctx).unwrap();
        let british = renderer.render("en-GB", "ticket_closed", &ctx).unwrap();

        assert!(german.subject.contains("Clôturé"), "{}", german.subject);
        assert!(british.subject.contains("Closed"), "{}", british.subject);
    }

    #[test]
    fn the_renderer_can_be_shared_between_tasks() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Renderer>();
    }

    #[test]
    fn an_unknown_event_is_an_error() {
        assert!(renderer().render("fr", "ticket_exploded", &sample_context("fr")).is_err());
    }

    #[test]
    fn a_directory_overrides_single_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("fr")).unwrap();
        std::fs::write(dir.path().join("fr/ticket_created.subject.hbs"), "{{token}} Reçu : {{ticket.subject}}")
            .unwrap();
        std::fs::write(dir.path().join("fr/_footer.txt.hbs"), "-- \nÀ bientôt ! {{ticket_url}}").unwrap();
        std::fs::write(dir.path().join("fr/README.md"), "not a template").unwrap();

        let renderer = Renderer::new(Some(dir.path())).unwrap();

        let mail = renderer.render("fr", "ticket_created", &sample_context("fr")).unwrap();
        assert_eq!(mail.subject, "[Ticket #42] Reçu : Imprimante bloquée");
        assert!(mail.text.contains("À bientôt ! http://127.0.0.1:8080/tickets/42"), "{}", mail.text);
        assert!(mail.html.contains("Voir le ticket"), "the HTML stays built-in");
        let english = renderer.render("en", "ticket_created", &sample_context("en")).unwrap();
        assert_eq!(english.subject, "[Ticket #42] Imprimante bloquée");
    }

    #[test]
    fn a_broken_or_misnamed_override_fails_at_start() {
        let broken = tempfile::tempdir().unwrap();
        std::fs::create_dir(broken.path().join("en")).unwrap();
        std::fs::write(broken.path().join("en/ticket_closed.txt.hbs"), "{{#if token}}unclosed").unwrap();
        let misnamed = tempfile::tempdir().unwrap();
        std::fs::create_dir(misnamed.path().join("fr")).unwrap();
        std::fs::write(misnamed.path().join("fr/ticket_close.txt.hbs"), "typo").unwrap();

        let broken = Renderer::new(Some(broken.path())).err().unwrap();
        let misnamed = Renderer::new(Some(misnamed.path())).err().unwrap();
        let absent = Renderer::new(Some(Path::new("/nonexistent/guichet-templates"))).err().unwrap();

        assert!(format!("{broken:#}").contains("en/ticket_closed.txt.hbs"), "{broken:#}");
        assert!(format!("{misnamed:#}").contains("fr/ticket_close.txt.hbs"), "{misnamed:#}");
        assert!(format!("{absent:#}").contains("/nonexistent/guichet-templates"), "{absent:#}");
    }

    #[test]
    fn the_built_in_directory_holds_exactly_the_expected_files() {
        for lang in LANGUAGES.iter() {
            let files = sources(lang, None).unwrap();
            let templates = files.keys().filter(|f| !f.starts_with('_')).count();
            assert_eq!(templates, EVENTS.len() * PARTS.len(), "{lang}");
            assert!(files.keys().all(|f| classify(f).is_some()), "{lang}: {:?}", files.keys());
        }
    }

    #[test]
    fn sizes_read_naturally_in_each_language() {
        assert_eq!(human_size(2_097_152, "fr"), "2 Mo");
        assert_eq!(human_size(2_097_152, "en"), "2 MB");
        assert_eq!(human_size(1_572_864, "fr"), "1,5 Mo");
        assert_eq!(human_size(1_572_864, "en"), "1.5 MB");
        assert_eq!(human_size(800 * 1024, "fr"), "800 Ko");
        assert_eq!(human_size(12, "fr"), "12 octets");
        assert_eq!(human_size(12, "en-US"), "12 bytes");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024, "en"), "3 GB");
    }
}
