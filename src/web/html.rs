//! HTML mail → HTML safe to show (SPEC §2.6): an allowlist sanitiser (ammonia). No script, no event
//! handler, no form, no frame, no `javascript:` or `data:` link, no relative URL (it would point
//! into our site); inline images (`cid:`) become links to their attachment; remote images are
//! dropped unless the reader asked for them. The result is then shown in a sandboxed frame whose
//! own Content-Security-Policy forbids scripts and, by default, every remote load.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use ammonia::{Builder, UrlRelative};

/// CSS properties kept in `style` attributes (layout and colours; nothing that loads anything).
const STYLE_PROPERTIES: &[&str] = &[
    "color",
    "background-color",
    "font-weight",
    "font-style",
    "font-size",
    "font-family",
    "text-align",
    "text-decoration",
    "vertical-align",
    "margin",
    "margin-top",
    "margin-bottom",
    "margin-left",
    "margin-right",
    "padding",
    "padding-top",
    "padding-bottom",
    "padding-left",
    "padding-right",
    "border",
    "border-top",
    "border-bottom",
    "border-left",
    "border-right",
    "border-collapse",
    "border-color",
    "border-width",
    "border-style",
    "width",
    "max-width",
    "height",
    "line-height",
    "white-space",
    "display",
];

/// Sanitises a mail's HTML. `cids` maps a `Content-ID` to the attachment id it is stored under;
/// `remote_images` keeps `http(s)` image sources (the reader asked to see them).
pub fn sanitize_mail_html(html: &str, cids: &HashMap<String, i64>, remote_images: bool) -> String {
    let cids: HashMap<String, i64> = cids.iter().map(|(k, v)| (k.to_ascii_lowercase(), *v)).collect();
    let mut b = Builder::default();
    b.add_tags(["font", "center"])
        .rm_tags(["area", "map"])
        .add_clean_content_tags(["title", "noscript", "template"])
        .add_generic_attributes(["style", "align", "valign", "bgcolor", "width", "height", "border", "dir"])
        .add_tag_attributes("font", ["color", "face", "size"])
        .add_tag_attributes("table", ["cellpadding", "cellspacing"])
        .url_schemes(HashSet::from(["http", "https", "mailto", "cid", "data"]))
        .filter_style_properties(STYLE_PROPERTIES.iter().copied().collect())
        .set_tag_attribute_value("a", "target", "_blank")
        .link_rel(Some("noopener noreferrer nofollow"))
        .strip_comments(true)
        .id_prefix(Some("mail-"))
        // Relative URLs would point into our own site; the only ones we make are attachments.
        .url_relative(UrlRelative::Custom(Box::new(keep_attachment_path)))
        .attribute_filter(move |element, attribute, value| filter_url(element, attribute, value, &cids, remote_images));
    b.clean(html).to_string()
}

fn keep_attachment_path(url: &str) -> Option<Cow<'_, str>> {
    is_attachment_path(url).then_some(Cow::Borrowed(url))
}

fn is_attachment_path(url: &str) -> bool {
    url.strip_prefix("/attachments/").is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

/// Decides each URL-valued attribute after the scheme allowlist: images may be `cid:` (rewritten),
/// `data:image/…` (raster only) or, on request, remote; links may be http(s) or mailto.
fn filter_url<'u>(
    element: &str,
    attribute: &str,
    value: &'u str,
    cids: &HashMap<String, i64>,
    remote_images: bool,
) -> Option<Cow<'u, str>> {
    let lower = value.trim().to_ascii_lowercase();
    let scheme = lower.split_once(':').map(|(s, _)| s).unwrap_or("");
    match (element, attribute) {
        ("img", "src") => match scheme {
            "cid" => {
                let cid = value.trim()[4..].trim_matches(|c| c == '<' || c == '>').to_ascii_lowercase();
                cids.get(&cid).map(|id| Cow::Owned(format!("/attachments/{id}")))
            }
            "data" => ["data:image/png", "data:image/jpeg", "data:image/gif", "data:image/webp"]
                .iter()
                .any(|p| lower.starts_with(p))
                .then_some(Cow::Borrowed(value)),
            "http" | "https" if remote_images => Some(Cow::Borrowed(value)),
            _ => None,
        },
        ("a", "href") => matches!(scheme, "http" | "https" | "mailto").then_some(Cow::Borrowed(value)),
        (_, "href" | "src" | "cite" | "longdesc" | "action" | "background" | "poster") => {
            matches!(scheme, "http" | "https").then_some(Cow::Borrowed(value))
        }
        (_, "dir") => matches!(lower.as_str(), "ltr" | "rtl" | "auto").then_some(Cow::Borrowed(value)),
        // A presentational attribute has no use for a script or data URL, whatever may read it
        // (found by fuzzing: `dir="javascript:…"` was kept as written).
        _ if matches!(scheme.trim(), "javascript" | "vbscript" | "data") => None,
        _ => Some(Cow::Borrowed(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(html: &str) -> String {
        sanitize_mail_html(html, &HashMap::from([("logo@x".to_string(), 7)]), false)
    }

    #[test]
    fn presentational_attributes_keep_only_sensible_values() {
        let out = clean("<div dir=\"javascript:alert(1)\" align=\"data:x\">a</div><p dir=\"rtl\">b</p>");
        assert!(!out.contains("javascript:") && !out.contains("data:"), "{out}");
        assert!(out.contains("dir=\"rtl\""), "{out}");
    }

    #[test]
    fn scripts_handlers_and_dangerous_links_are_removed() {
        let out = clean(
            "<p onclick=\"x()\">Hi<script>alert(1)</script></p><img src=x onerror=alert(1)>\
             <a href=\"javascript:alert(1)\">j</a><a href=\"data:text/html,<script>\">d</a>\
             <svg><script>alert(1)</script><image href=\"http://evil/\"/></svg>\
             <iframe src=\"http://evil/\"></iframe><form action=\"http://evil/\"><input></form>\
             <style>@import url(http://evil/)</style><link rel=stylesheet href=http://evil/>\
             <meta http-equiv=refresh content=\"0;url=http://evil/\"><object data=http://evil/></object>",
        );
        for bad in [
            "script",
            "onclick",
            "onerror",
            "javascript:",
            "data:text",
            "svg",
            "iframe",
            "form",
            "@import",
            "<link",
            "<meta",
            "object",
            "evil",
        ] {
            assert!(!out.to_ascii_lowercase().contains(bad), "{bad} survived in {out}");
        }
        assert!(out.contains("Hi"));
    }

    #[test]
    fn inline_images_point_to_their_attachment_and_remote_images_are_blocked() {
        let out = clean(
            "<img src=\"cid:LOGO@x\" alt=logo><img src=\"https://tracker.example/p.gif\"><img src=\"/etc/passwd\">",
        );
        assert!(out.contains("src=\"/attachments/7\""), "{out}");
        assert!(!out.contains("tracker"), "{out}");
        assert!(!out.contains("passwd"), "{out}");
        let shown = sanitize_mail_html("<img src=\"https://tracker.example/p.gif\">", &HashMap::new(), true);
        assert!(shown.contains("https://tracker.example/p.gif"));
    }

    #[test]
    fn links_open_outside_and_styles_keep_only_harmless_properties() {
        let out = clean(
            "<a href=\"https://example.com\">x</a><p style=\"color: red; background-image: url(http://evil/)\">y</p>",
        );
        assert!(out.contains("target=\"_blank\"") && out.contains("noopener"), "{out}");
        assert!(out.contains("color:red") && !out.contains("evil"), "{out}");
    }
}
