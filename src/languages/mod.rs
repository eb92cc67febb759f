//! What mail clients write around a reply or a forward, one table per language (`table.rs`):
//! attribution lines ("On … wrote:"), header-block field names ("From:", "De :", "Von:"),
//! separators ("-----Original Message-----"), forward introductions ("Begin forwarded message:"),
//! mobile and webmail signatures, and subject prefixes.
//!
//! Pure data: `parse::quotes`, `parse::forward` and `domain` compile it into one matcher each
//! (once, at first use). Adding a language is adding one table to `LANGUAGES`.

mod table;

pub use table::LANGUAGES;

/// One language's phrases. Everything but `attributions` is literal text, matched without regard
/// to case; `attributions` are regular expressions (they wrap a date and a name).
#[derive(Debug)]
pub struct Language {
    /// BCP 47 code, for reports and tests.
    pub code: &'static str,
    /// The attribution line above a quote, without its final colon (`:` or `：`). Each must
    /// require a digit: a date is always in it, and the digit keeps prose out. (`parse::quotes`
    /// also asks for a year.) Rows that open on the date rather than on a word ask for a time
    /// too (`\d{1,2}[:.]\d{2}`), which every client writes and prose seldom does. No `\b`: a
    /// Unicode word boundary sends the regex engine from its DFA to a far slower NFA on any
    /// non-ASCII line; `\s` before the verb says the same here.
    pub attributions: &'static [&'static str],
    /// Header-block field names, by role.
    pub from: &'static [&'static str],
    pub date: &'static [&'static str],
    pub to: &'static [&'static str],
    pub subject: &'static [&'static str],
    /// Words of the separators clients write between dashes: "Original Message".
    pub separators: &'static [&'static str],
    /// A line, ending with a colon, that introduces a forwarded mail: "Begin forwarded message".
    pub forward_intros: &'static [&'static str],
    /// How the one-line signatures of mobile apps and webmails start: "Sent from my".
    pub signatures: &'static [&'static str],
    /// Subject prefixes, without their colon.
    pub reply_prefixes: &'static [&'static str],
    pub forward_prefixes: &'static [&'static str],
}

/// Every language's entries of one field, in table order.
pub fn all(field: fn(&Language) -> &'static [&'static str]) -> impl Iterator<Item = &'static str> {
    LANGUAGES.iter().flat_map(move |language| field(language).iter().copied())
}

/// `(?:a|b|…)` of the escaped literals, longest first so that "Enviado el" wins over "Enviado".
pub fn literal_alternation<'a>(words: impl Iterator<Item = &'a str>) -> String {
    let mut words: Vec<&str> = words.collect();
    words.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
    words.dedup();
    let escaped: Vec<String> = words.iter().map(|w| regex::escape(w).replace(' ', r"\s+")).collect();
    format!("(?:{})", escaped.join("|"))
}

/// The lower-cased first letters of `words`: a cheap test that spares most lines of prose the
/// regexes built from them, run on every line of every mail.
#[derive(Debug)]
pub struct FirstLetters(Vec<char>);

impl FirstLetters {
    pub fn of<'a>(words: impl Iterator<Item = &'a str>) -> FirstLetters {
        let mut letters: Vec<char> = words.filter_map(|w| w.chars().next()).flat_map(char::to_lowercase).collect();
        letters.sort_unstable();
        letters.dedup();
        FirstLetters(letters)
    }

    /// Whether `text` starts with one of the letters (in any case).
    pub fn starts(&self, text: &str) -> bool {
        text.chars().next().is_some_and(|c| c.to_lowercase().any(|c| self.0.binary_search(&c).is_ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attribution_compiles_and_asks_for_a_digit() {
        for language in LANGUAGES {
            for pattern in language.attributions {
                regex::Regex::new(pattern).unwrap_or_else(|e| panic!("{}: {pattern}: {e}", language.code));
                assert!(pattern.contains(r"\d"), "{}: {pattern} needs a digit", language.code);
                assert!(!pattern.contains(r"\b"), "{}: {pattern}: no word boundary", language.code);
            }
        }
    }

    #[test]
    fn every_language_fills_its_table() {
        assert!(LANGUAGES.len() >= 15);
        for l in LANGUAGES {
            let fields = [l.attributions, l.from, l.date, l.to, l.subject, l.separators, l.forward_intros];
            assert!(fields.iter().all(|f| !f.is_empty()), "{} has an empty field", l.code);
            assert!(!l.forward_prefixes.is_empty(), "{}", l.code);
        }
    }

    #[test]
    fn literals_are_escaped_longest_first() {
        assert_eq!(literal_alternation(["a.b", "Enviado", "Enviado el"].into_iter()), r"(?:Enviado\s+el|Enviado|a\.b)");
    }
}
