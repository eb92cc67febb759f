//! Server-rendered pages: Handlebars templates from `web-templates/`, compiled into the binary and
//! registered once, in strict mode (a variable a template names but the context lacks is an error)
//! with HTML escaping on. The words of the pages are the catalog's (`locales/<code>.toml`, see
//! [`crate::catalog`]); every template reaches them as `t.<key>`.
//!
//! Every page gets the common context of [`Page`]: `t`, `lang`, `title`, `helpdesk_name`, and
//! `viewer` (`{email, staff, csrf}`, or `false` before login).

use std::sync::LazyLock;

use handlebars::Handlebars;
use include_dir::{Dir, include_dir};
use serde_json::{Value, json};

use super::WebError;
use super::session::{Lang, Viewer};
use crate::catalog;

static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/web-templates");

static REGISTRY: LazyLock<Handlebars<'static>> = LazyLock::new(|| build_registry().expect("web templates compile"));

/// The page templates, by name (file name without `.hbs`; `_name` files are partials).
pub const PAGES: &[&str] = &["login", "login_confirm", "list", "ticket", "new_ticket", "error"];

fn build_registry() -> anyhow::Result<Handlebars<'static>> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.set_dev_mode(false);
    for file in TEMPLATES.files() {
        let name = file.path().file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let Some(stem) = name.strip_suffix(".hbs") else { continue };
        let source = file.contents_utf8().ok_or_else(|| anyhow::anyhow!("{name} is not UTF-8"))?;
        match stem.strip_prefix('_') {
            Some(partial) => hb.register_partial(partial, source)?,
            None => hb.register_template_string(stem, source)?,
        }
    }
    for page in PAGES {
        anyhow::ensure!(hb.has_template(page), "web template {page}.hbs is missing");
    }
    Ok(hb)
}

/// The strings of a language (`t` in the templates): the catalog's.
pub fn strings(lang: Lang) -> &'static Value {
    catalog::strings(lang.code())
}

/// One string, with `{name}` placeholders replaced.
pub fn text(lang: Lang, key: &str, args: &[(&str, String)]) -> String {
    catalog::text(lang.code(), key, args)
}

/// A page about to be rendered.
pub struct Page<'a> {
    pub template: &'static str,
    pub lang: Lang,
    pub title: String,
    pub viewer: Option<&'a Viewer>,
    pub helpdesk_name: &'a str,
    /// The page's own variables, merged into the common ones.
    pub data: Value,
}

impl Page<'_> {
    pub fn render(self) -> Result<String, WebError> {
        let mut ctx = json!({
            "t": strings(self.lang),
            "lang": self.lang.code(),
            "title": self.title,
            "helpdesk_name": self.helpdesk_name,
            "viewer": match self.viewer {
                Some(v) => json!({"email": v.address.as_str(), "staff": v.is_staff(), "csrf": v.session.csrf}),
                None => json!(false),
            },
        });
        if let (Some(base), Value::Object(extra)) = (ctx.as_object_mut(), self.data) {
            base.extend(extra);
        }
        REGISTRY
            .render(self.template, &ctx)
            .map_err(|e| WebError::Unexpected(anyhow::anyhow!("rendering {}.hbs: {e}", self.template)))
    }
}

/// The page of an error (never fails: a plain text fallback if the template does).
pub fn error_page(lang: Lang, code: &str, message: Option<&str>, helpdesk_name: &str) -> String {
    let heading = text(lang, &format!("error_{code}"), &[]);
    let page = Page {
        template: "error",
        lang,
        title: heading.clone(),
        viewer: None,
        helpdesk_name,
        data: json!({"heading": heading, "message": message.unwrap_or(""), "code": code}),
    };
    page.render().unwrap_or(heading)
}

/// A time for people: `30/11/2026 09:05` (fr) or `2026-11-30 09:05` (en), in UTC; pages wrap it in
/// `<time datetime=…>` and the progressive script shows it in the reader's time zone.
/// A time as read without JavaScript: in the helpdesk's time zone (`helpdesk.time_zone`), with
/// its abbreviation (the optional script shows it in the reader's own zone).
pub fn human_time(lang: Lang, zone: chrono_tz::Tz, t: i64) -> String {
    use chrono::TimeZone;
    let Some(dt) = zone.timestamp_opt(t, 0).single() else { return crate::store::rfc3339(t) };
    dt.format(catalog::word(lang.code(), "date_format")).to_string()
}

/// `{human, iso}` for templates.
pub fn time_json(lang: Lang, zone: chrono_tz::Tz, t: i64) -> Value {
    json!({"human": human_time(lang, zone, t), "iso": crate::store::rfc3339(t)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_templates_compile_and_error_pages_render_in_both_languages() {
        LazyLock::force(&REGISTRY);
        for lang in [Lang::Fr, Lang::En] {
            for code in
                ["not_found", "login_required", "forbidden", "bad_request", "too_large", "rate_limited", "internal"]
            {
                let page = error_page(lang, code, Some("<b>détail</b>"), "Support & Co");
                assert!(page.contains("<html"), "{code}: {page}");
                assert!(page.contains("&lt;b&gt;détail"), "escaped: {page}");
                assert!(page.contains("Support &amp; Co"));
            }
        }
    }
}
