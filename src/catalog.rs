//! The one message catalog: every word Guichet shows or writes, per language — the web pages, the
//! values handed to the mails' templates, the labels of statuses and priorities, and the ticket
//! history (`event_<code>`, see [`crate::domain::Event`]).
//!
//! One file per language, `locales/<code>.toml`, compiled in; a flat table of strings with the same
//! keys in every language, `{name}` placeholders filled in by the code. The languages are the files:
//! adding one is adding `locales/<code>.toml` (and its mails, `mail-templates/<code>/`), no code.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use include_dir::{Dir, include_dir};
use serde_json::Value;

static LOCALES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/locales");

/// The language used when a configured or requested one has no catalog.
pub const DEFAULT_LANGUAGE: &str = "fr";

/// Language code → its strings (a JSON object, handed as is to the page templates as `t`).
static CATALOG: LazyLock<BTreeMap<&'static str, Value>> = LazyLock::new(|| load().expect("locales/ load"));

fn load() -> anyhow::Result<BTreeMap<&'static str, Value>> {
    let mut all = BTreeMap::new();
    for file in LOCALES.files() {
        let name = file.path().file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let Some(code) = name.strip_suffix(".toml") else { continue };
        let source = file.contents_utf8().ok_or_else(|| anyhow::anyhow!("locales/{name} is not UTF-8"))?;
        let table: BTreeMap<String, String> =
            toml::from_str(source).map_err(|e| anyhow::anyhow!("locales/{name}: {e}"))?;
        all.insert(code, serde_json::to_value(table)?);
    }
    anyhow::ensure!(all.contains_key(DEFAULT_LANGUAGE), "locales/{DEFAULT_LANGUAGE}.toml is missing");
    Ok(all)
}

/// Every language with a catalog, the default first.
pub fn languages() -> impl Iterator<Item = &'static str> {
    std::iter::once(DEFAULT_LANGUAGE).chain(CATALOG.keys().copied().filter(|l| *l != DEFAULT_LANGUAGE))
}

/// `lang` itself when it has a catalog, else the default language.
pub fn language(lang: &str) -> &'static str {
    CATALOG.get_key_value(lang).map(|(code, _)| *code).unwrap_or(DEFAULT_LANGUAGE)
}

/// The strings of a language (of the default one if `lang` has none).
pub fn strings(lang: &str) -> &'static Value {
    &CATALOG[language(lang)]
}

/// One string as written, if the catalog has it.
pub fn lookup(lang: &str, key: &str) -> Option<&'static str> {
    strings(lang).get(key).and_then(Value::as_str)
}

/// One string as written (the key itself if the catalog lacks it: visible, never a crash).
pub fn word<'k>(lang: &str, key: &'k str) -> &'k str {
    lookup(lang, key).unwrap_or(key)
}

/// One string with its `{name}` placeholders replaced.
pub fn text(lang: &str, key: &str, args: &[(&str, String)]) -> String {
    fill(word(lang, key), args)
}

/// `template` with each `{name}` replaced by its value, in one pass (a value is never re-read).
pub fn fill(template: &str, args: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            let name = &after[..close];
            args.iter().find(|(n, _)| *n == name).map(|(_, v)| (v, close))
        });
        match value {
            Some((v, close)) => {
                out.push_str(v);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholders(s: &str) -> Vec<&str> {
        let mut names: Vec<&str> =
            s.split('{').skip(1).filter_map(|part| part.split_once('}').map(|(name, _)| name)).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn every_key_exists_in_every_language_with_the_same_placeholders() {
        let reference = strings(DEFAULT_LANGUAGE).as_object().unwrap();
        assert!(reference.len() > 100, "the catalog looks empty");
        let langs: Vec<&str> = languages().collect();
        assert!(langs.contains(&"fr") && langs.contains(&"en"), "{langs:?}");
        for lang in langs {
            let table = strings(lang).as_object().unwrap();
            let missing: Vec<_> = reference.keys().filter(|k| !table.contains_key(*k)).collect();
            let extra: Vec<_> = table.keys().filter(|k| !reference.contains_key(*k)).collect();
            assert!(missing.is_empty() && extra.is_empty(), "{lang}: missing {missing:?}, extra {extra:?}");
            for (key, value) in table {
                let theirs = placeholders(value.as_str().unwrap());
                let ours = placeholders(reference[key].as_str().unwrap());
                assert_eq!(theirs, ours, "{lang}.{key}: placeholders differ from {DEFAULT_LANGUAGE}");
            }
        }
    }

    #[test]
    fn placeholders_are_filled_once_and_unknown_ones_stay() {
        let args = [("a", "{b}".to_string()), ("b", "x".to_string())];
        assert_eq!(fill("{a} and {b} and {c} {", &args), "{b} and x and {c} {");
    }

    #[test]
    fn an_unknown_language_reads_as_the_default_and_an_unknown_key_as_itself() {
        assert_eq!(language("de"), DEFAULT_LANGUAGE);
        assert_eq!(word("en", "status_open"), "In progress");
        assert_eq!(word("de", "status_open"), "En cours");
        assert_eq!(word("en", "no_such_key"), "no_such_key");
    }
}
