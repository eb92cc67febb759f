//! Separates the new text of a reply from its quoted history and signature.
//!
//! Works line by line on text already decoded to UTF-8. The first reply header ("Le … a écrit :",
//! "On … wrote:", an Outlook `De : … Envoyé : …` block, a forwarded-message separator) or the first
//! signature line ends the new text; a `>` quote block left at its end belongs to the history too.
//! Quote lines between new lines (inline answers) stay in the new text.

use regex::Regex;
use std::sync::LazyLock;

/// How many lines below a `From:` / `De :` line the rest of an Outlook header block may start.
const HEADER_BLOCK_SPAN: usize = 6;

/// Returns the new text of `text` (quoted history, reply headers and signature removed), trimmed.
pub fn new_text(text: &str) -> String {
    split(text).0
}

/// Splits `text` into its new text and the rest (reply header, quoted history, signature), both
/// trimmed. The web page shows the new text and folds the rest.
pub fn split(text: &str) -> (String, String) {
    let lines: Vec<&str> = text.lines().collect();
    let cut = first_history_line(&lines, 0).unwrap_or(lines.len());
    let new_end = without_trailing_quotes(&lines, 0, cut);
    if lines[..new_end].iter().all(|l| l.trim().is_empty())
        && let Some(bottom_posted) = answer_below_attribution(&lines, cut)
    {
        return bottom_posted;
    }
    (join(&lines[..new_end]), join(&lines[new_end..]))
}

/// Bottom-posting: nothing above `On … wrote:`, the quote, then the answer below it (possibly
/// quote and answer in turns). The answer is the new text, its quotes kept as context.
fn answer_below_attribution(lines: &[&str], at: usize) -> Option<(String, String)> {
    let start = at + attribution_len(lines, at)?;
    if !next_non_empty(lines, start).is_some_and(|j| is_quote_line(lines[j])) {
        return None;
    }
    let end = first_history_line(lines, start).unwrap_or(lines.len());
    let answer_end = without_trailing_quotes(lines, start, end);
    let answer = &lines[start..answer_end];
    if !answer.iter().any(|l| !l.trim().is_empty() && !is_quote_line(l)) {
        return None;
    }
    let rest: Vec<&str> = lines[at..start].iter().chain(&lines[answer_end..]).copied().collect();
    Some((join(answer), join(&rest)))
}

/// End of `lines[start..end]` once a trailing quote block is dropped: quotes ending the new text are
/// history whose reply header was lost (or never written).
fn without_trailing_quotes(lines: &[&str], start: usize, mut end: usize) -> usize {
    while end > start && (is_quote_line(lines[end - 1]) || lines[end - 1].trim().is_empty()) {
        end -= 1;
    }
    end
}

fn join(lines: &[&str]) -> String {
    lines.join("\n").trim().to_string()
}

/// Index of the first line from `from` on that starts the history or the signature.
fn first_history_line(lines: &[&str], from: usize) -> Option<usize> {
    (from..lines.len()).find(|&i| is_signature_line(lines[i]) || starts_reply_header(lines, i))
}

fn is_quote_line(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

/// The `-- ` delimiter (RFC 3676 §4.3, often stripped to `--`) or a mobile client's signature.
fn is_signature_line(line: &str) -> bool {
    static MOBILE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?i)^(?:envoyé (?:de|depuis) (?:mon|ma|outlook|yahoo)|envoyé à partir de (?:mon|outlook|courrier)|sent from (?:my|outlook|mail for|yahoo|samsung)|get outlook for|obtenir outlook pour|télécharger outlook pour|provenance : courrier pour)\b.{0,60}$",
        )
        .expect("mobile signature regex")
    });
    let line = line.trim_end_matches('\r');
    line == "-- " || line == "--" || starts_with_one_of(line.trim(), "esgotp") && MOBILE.is_match(line.trim())
}

/// Whether `line` starts with one of `letters` (ASCII, any case): a cheap test that spares most
/// lines of prose the regexes below, run on every line of every mail.
fn starts_with_one_of(line: &str, letters: &str) -> bool {
    line.bytes().next().is_some_and(|b| letters.as_bytes().contains(&b.to_ascii_lowercase()))
}

/// "Le … a écrit :", "On … wrote:", "Am … schrieb …:" on one line. A date is always in it, so a
/// digit is required: it keeps ordinary sentences ending in "wrote:" out.
fn is_attribution(line: &str) -> bool {
    static ATTRIBUTION: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?i)^(?:(?:le|on|el|il|op)\s.*\d.*\b(?:a\s+écrit|wrote|escribió|ha\s+scritto|schreef)|am\s.*\d.*\bschrieb\b.*)\s*:$",
        )
        .expect("attribution regex")
    });
    line.ends_with(':')
        && starts_with_one_of(line, "loeia")
        && line.chars().count() <= 400
        && ATTRIBUTION.is_match(line)
}

/// Separator lines that open a quoted or forwarded original on their own.
pub(super) fn is_original_separator(line: &str) -> bool {
    static SEPARATOR: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?i)^(?:-{2,}\s*(?:original message|message d['’]origine|mail original|message original|ursprüngliche nachricht|forwarded message|message transféré|weitergeleitete nachricht)\s*-{2,}|begin forwarded message\s*:|début du message (?:réexpédié|transféré)\s*:)$",
        )
        .expect("separator regex")
    });
    let line = line.trim();
    starts_with_one_of(line, "-bd") && SEPARATOR.is_match(line)
}

/// Outlook's `________________________________` line (it precedes the header block).
pub(super) fn is_underscore_rule(line: &str) -> bool {
    let line = line.trim();
    line.len() >= 20 && line.chars().all(|c| c == '_')
}

/// The value of a `From:` / `De :` / `Von:` line (bold markers from HTML conversions tolerated).
pub(super) fn from_line_value(line: &str) -> Option<&str> {
    static FROM: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)^\*{0,2}(?:from|de|von)\*{0,2}\s*:\s*\*{0,2}\s*(\S.*)$").expect("from line regex")
    });
    let line = line.trim();
    if !starts_with_one_of(line, "*fdv") {
        return None;
    }
    FROM.captures(line).and_then(|c| c.get(1)).map(|m| m.as_str().trim_end())
}

/// Lines that follow `From:` in a client's header block.
fn is_header_block_line(line: &str) -> bool {
    static FIELD: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)^\*{0,2}(?:sent|envoyé|date|subject|objet|gesendet|betreff|datum)\*{0,2}\s*:")
            .expect("header field regex")
    });
    FIELD.is_match(line.trim())
}

/// `From: …` / `De : …` followed within a few lines by `Sent:`/`Envoyé :`/`Date:`/`Subject:`/`Objet :`.
pub(super) fn starts_header_block(lines: &[&str], i: usize) -> bool {
    from_line_value(lines[i]).is_some()
        && lines.iter().skip(i + 1).take(HEADER_BLOCK_SPAN).any(|line| is_header_block_line(line))
}

/// True when line `i` opens the quoted history: an attribution (possibly wrapped over two lines),
/// a separator, or an Outlook header block (possibly under its underscore rule).
fn starts_reply_header(lines: &[&str], i: usize) -> bool {
    let line = lines[i].trim();
    if line.is_empty() || is_quote_line(line) {
        return false;
    }
    attribution_len(lines, i).is_some()
        || is_original_separator(line)
        || starts_header_block(lines, i)
        || is_underscore_rule(line) && next_non_empty(lines, i + 1).is_some_and(|j| starts_header_block(lines, j))
}

/// How many lines the attribution starting at line `i` takes: clients wrap long ones in two.
fn attribution_len(lines: &[&str], i: usize) -> Option<usize> {
    let line = lines.get(i)?.trim();
    if line.is_empty() || is_quote_line(line) {
        return None;
    }
    if is_attribution(line) {
        return Some(1);
    }
    let next = lines.get(i + 1)?.trim();
    // The wrapped attribution ends with the next line's colon: only then is the join worth making.
    (next.ends_with(':') && is_attribution(&format!("{line} {next}"))).then_some(2)
}

pub(super) fn next_non_empty(lines: &[&str], from: usize) -> Option<usize> {
    (from..lines.len().min(from + 3)).find(|&j| !lines[j].trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn french_and_english_attributions_are_reply_headers() {
        for header in [
            "Le lun. 3 juin 2024 à 10:12, Marie Dupont <marie@example.fr> a écrit :",
            "Le 03/06/2024 à 10:12, Marie Dupont a écrit :",
            "Le 3 juin 2024 à 10:12, Marie <marie@example.fr> a\u{a0}écrit\u{a0}:",
            "On Mon, 3 Jun 2024 at 10:12, Marie Dupont <marie@example.com> wrote:",
            "On 3 Jun 2024, at 10:12, Marie <marie@example.com> wrote:",
            "Am 03.06.2024 um 10:12 schrieb Marie Dupont <marie@example.de>:",
        ] {
            assert!(is_attribution(header), "{header}");
        }
        assert!(!is_attribution("On the phone, Paul wrote:"));
        assert!(!is_attribution("Le technicien a écrit :"));
    }

    #[test]
    fn an_attribution_wrapped_over_two_lines_is_found() {
        let text = "Merci !\n\nLe lun. 3 juin 2024 à 10:12, Marie Dupont <\nmarie@example.fr> a écrit :\n> Bonjour";
        assert_eq!(
            split(text),
            (
                "Merci !".to_string(),
                "Le lun. 3 juin 2024 à 10:12, Marie Dupont <\nmarie@example.fr> a écrit :\n> Bonjour".to_string()
            )
        );
        let text = "Thanks\n\nOn Mon, Jun 3, 2024 at 10:12 AM Marie Dupont\n<marie@example.com> wrote:\n> Hello";
        assert_eq!(new_text(text), "Thanks");
    }

    #[test]
    fn outlook_header_blocks_are_reply_headers() {
        let fr = "C'est réparé.\n\nDe : Support <support@example.com>\nEnvoyé : lundi 3 juin 2024 10:12\nÀ : Marie\nObjet : RE: Imprimante";
        assert_eq!(new_text(fr), "C'est réparé.");
        let en = "Fixed.\r\n________________________________\r\nFrom: Support <support@example.com>\r\nSent: Monday, June 3, 2024 10:12 AM\r\nTo: Marie\r\nSubject: RE: Printer";
        assert_eq!(new_text(en), "Fixed.");
        let separator = "Vu.\n-----Message d'origine-----\nDe : x\n";
        assert_eq!(new_text(separator), "Vu.");
    }

    #[test]
    fn a_from_line_alone_is_not_a_header_block() {
        let text = "From: the accounting team\nwe need a new printer.\n\nThanks";
        assert_eq!(new_text(text), text);
    }

    #[test]
    fn signatures_are_cut() {
        assert_eq!(new_text("Bonjour\n-- \nMarie\n06 12 34 56 78"), "Bonjour");
        assert_eq!(new_text("Bonjour\n--\nMarie"), "Bonjour");
        assert_eq!(new_text("Ok\n\nEnvoyé de mon iPhone"), "Ok");
        assert_eq!(new_text("Ok\n\nGet Outlook for Android"), "Ok");
        assert_eq!(new_text("Ok\n\nEnvoyé à partir de Courrier pour Windows"), "Ok");
        assert_eq!(new_text("a -- b\n---\nc"), "a -- b\n---\nc");
        let sentence = "Sent from the accounting PC at 10:00.\nIt failed.";
        assert_eq!(new_text(sentence), sentence);
    }

    #[test]
    fn trailing_quotes_go_and_inline_answers_stay() {
        assert_eq!(new_text("Yes.\n\n> Is it broken?\n> Really?\n"), "Yes.");
        let inline = "> Is it broken?\nYes.\n> Since when?\nMonday.\n> Anything else?";
        assert_eq!(new_text(inline), "> Is it broken?\nYes.\n> Since when?\nMonday.");
        assert_eq!(new_text("> only quotes"), "");
    }

    #[test]
    fn an_answer_below_the_quote_is_the_new_text() {
        let text =
            "On Mon, 3 Jun 2024, Support <s@example.com> wrote:\n> Which version?\n\n7.4.2\n\n> Thanks\n-- \nJean";
        assert_eq!(
            split(text),
            (
                "> Which version?\n\n7.4.2".to_string(),
                "On Mon, 3 Jun 2024, Support <s@example.com> wrote:\n\n> Thanks\n-- \nJean".to_string()
            )
        );
        assert_eq!(new_text("On Mon, 3 Jun 2024, Support <s@example.com> wrote:\n> only a quote\n"), "");
    }

    #[test]
    fn split_keeps_the_rest_for_folding() {
        let (new, rest) = split("Ok\n\nOn Mon, 3 Jun 2024, Marie <m@example.com> wrote:\n> Hi");
        assert_eq!(new, "Ok");
        assert_eq!(rest, "On Mon, 3 Jun 2024, Marie <m@example.com> wrote:\n> Hi");
        assert_eq!(split("plain"), ("plain".to_string(), String::new()));
    }
}
