//! Separates the new text of a reply from its quoted history and signature.
//!
//! Works line by line on text already decoded to UTF-8. The first reply header in any language of
//! `crate::languages` ("Le … a écrit :", "On … wrote:", "Am … schrieb …:", an Outlook `De : …
//! Envoyé : …` or `Von: … Gesendet: …` block, a separator) or the first signature line ends the
//! new text; a `>` quote block left at its end belongs to the history too. Quote lines between new
//! lines (inline answers) stay in the new text.

use crate::languages::{self, FirstLetters};
use regex::Regex;
use std::sync::LazyLock;

/// How many lines a client's header block spans at most (`From`, `Sent`, `To`, `Cc`, `Subject`
/// and a wrapped recipient list).
const HEADER_BLOCK_SPAN: usize = 8;
/// Longest line looked at as an attribution (bytes): long wrapped prose never is one.
const MAX_ATTRIBUTION_BYTES: usize = 1200;
/// How many lines below a mobile signature the history (or the end of the text) must start.
const SIGNATURE_LOOKAHEAD: usize = 20;
/// What may end the reply's sentence just before an attribution on the same line.
const SENTENCE_STOPS: &str = ".!?…)。！？";
/// Longest mobile signature line ("Sent from my iPhone"; "Envoyé depuis mon appareil Galaxy").
const MAX_SIGNATURE_BYTES: usize = 120;

/// Where the history starts: a line, and a byte offset in it when the attribution shares its
/// line with the end of the reply ("Thanks! On Mon, … wrote:").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cut {
    line: usize,
    col: usize,
}

/// Returns the new text of `text` (quoted history, reply headers and signature removed), trimmed.
pub fn new_text(text: &str) -> String {
    split(text).0
}

/// Splits `text` into its new text and the rest (reply header, quoted history, signature), both
/// trimmed. The web page shows the new text and folds the rest.
pub fn split(text: &str) -> (String, String) {
    split_with_hint(text, None)
}

/// [`split`], with the line where an HTML body marked its quoted history (`gmail_quote`,
/// `divRplyFwdMsg`…): the cut when no reply header of a known language is found.
pub fn split_with_hint(text: &str, history_line: Option<usize>) -> (String, String) {
    let lines: Vec<&str> = text.lines().collect();
    // Only a top-posted reply (text above the container) is cut at the mark: below or between
    // quotes the text rules keep the answers.
    let hinted = history_line
        .filter(|&line| line < lines.len() && lines[..line].iter().any(|l| !l.trim().is_empty()))
        .map(|line| Cut { line, col: 0 });
    let cut = match (first_history(&lines, 0), hinted) {
        (Some(found), Some(hint)) if hint.line < found.line => Some(hint),
        (found, hint) => found.or(hint),
    };
    match cut {
        Some(Cut { line, col }) if col > 0 => {
            // The reply's last words share the attribution's line: both halves keep their part.
            let (head, tail) = lines[line].split_at(col);
            let new = lines[..line].iter().copied().chain([head]).collect::<Vec<_>>();
            let rest = [tail].into_iter().chain(lines[line + 1..].iter().copied()).collect::<Vec<_>>();
            (join(&new), join(&rest))
        }
        cut => {
            let cut = cut.map_or(lines.len(), |c| c.line);
            let new_end = without_trailing_quotes(&lines, 0, cut);
            if lines[..new_end].iter().all(|l| l.trim().is_empty())
                && let Some(bottom_posted) = answer_below_attribution(&lines, cut)
            {
                return bottom_posted;
            }
            (join(&lines[..new_end]), join(&lines[new_end..]))
        }
    }
}

/// Bottom-posting: nothing above `On … wrote:`, the quote, then the answer below it (possibly
/// quote and answer in turns). The answer is the new text, its quotes kept as context.
fn answer_below_attribution(lines: &[&str], at: usize) -> Option<(String, String)> {
    let start = at + attribution_at(lines, at).filter(|a| a.col == 0)?.lines;
    if !next_non_empty(lines, start).is_some_and(|j| is_quote_line(lines[j])) {
        return None;
    }
    let end = first_history(lines, start).map_or(lines.len(), |c| c.line);
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

/// The first place from line `from` on that starts the history or the signature.
fn first_history(lines: &[&str], from: usize) -> Option<Cut> {
    (from..lines.len()).find_map(|i| {
        if is_signature_line(lines, i) {
            return Some(Cut { line: i, col: 0 });
        }
        let col = reply_header_at(lines, i)?;
        Some(Cut { line: i, col })
    })
}

fn is_quote_line(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

/// The `-- ` delimiter (RFC 3676 §4.3, often stripped to `--`) anywhere; a mobile app's or
/// webmail's one-line signature only where nothing but history or more signature follows it
/// (a sentence may start "Sent from my…" too).
fn is_signature_line(lines: &[&str], i: usize) -> bool {
    if is_delimiter(lines[i]) {
        return true;
    }
    if !is_mobile_signature(lines[i]) {
        return false;
    }
    // A bounded look: hostile mail of a million signature lines costs no more than a short one.
    let end = lines.len().min(i + 1 + SIGNATURE_LOOKAHEAD);
    match (i + 1..end).find(|&j| !lines[j].trim().is_empty() && !is_mobile_signature(lines[j])) {
        None => end == lines.len(),
        Some(j) => is_delimiter(lines[j]) || is_quote_line(lines[j]) || reply_header_at(lines, j).is_some(),
    }
}

/// The `-- ` signature delimiter, or the `--` a client left of it.
fn is_delimiter(line: &str) -> bool {
    matches!(line.trim_end_matches('\r'), "-- " | "--")
}

/// "Sent from my iPhone", "Von meinem iPhone gesendet", "Get Outlook for Android"… in every
/// language of the table.
fn is_mobile_signature(line: &str) -> bool {
    static FIRST: LazyLock<FirstLetters> = LazyLock::new(|| FirstLetters::of(languages::all(|l| l.signatures)));
    static MOBILE: LazyLock<Regex> = LazyLock::new(|| {
        let phrases = languages::literal_alternation(languages::all(|l| l.signatures));
        // No word boundary after the phrase: "从我的" runs into "Galaxy"; the placement rule of
        // `is_signature_line` keeps prose out.
        Regex::new(&format!(r"(?i)^{phrases}")).expect("mobile signature regex")
    });
    let line = line.trim();
    line.len() <= MAX_SIGNATURE_BYTES && !line.ends_with(':') && FIRST.starts(line) && MOBILE.is_match(line)
}

/// Byte offset where an attribution ("Le … a écrit :", "On … wrote:", "Am … schrieb …:", …)
/// starts in `line`, when the line ends with one: at its start (after blanks) or after the end of
/// a sentence. A date is always in it, so every pattern asks for a digit: that keeps ordinary
/// sentences ending in "wrote:" out.
fn attribution_start(line: &str) -> Option<usize> {
    static ATTRIBUTION: LazyLock<Regex> = LazyLock::new(|| {
        let rows: Vec<String> = languages::all(|l| l.attributions).map(|p| format!("(?:{p})")).collect();
        Regex::new(&format!(r"(?i)(?:^\s*|[.!?…)]\s+|[。！？]\s*)(?:{})\s*[:：]$", rows.join("|")))
            .expect("attribution regex")
    });
    // Clients always write the year ("2024", "03/06/24", "2024年"): a sentence that names only a
    // day or an hour ("On Monday at 10:00 our manager wrote:") is prose.
    static YEAR: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\d{4}|(?-u:\b)\d{1,2}[./-]\s?\d{1,2}[./-]\s?\d{2}(?-u:\b)").expect("year regex"));
    let line = line.trim_end();
    if !(line.ends_with(':') || line.ends_with('：'))
        || line.len() > MAX_ATTRIBUTION_BYTES
        || !line.bytes().any(|b| b.is_ascii_digit())
        || !YEAR.is_match(line)
    {
        return None;
    }
    // `find`, not `captures`: the DFA alone answers; the attribution starts past the sentence end
    // (and blanks) the match opens with.
    let found = ATTRIBUTION.find(line)?.start();
    let start = found + line[found..].find(|c: char| !c.is_whitespace() && !SENTENCE_STOPS.contains(c)).unwrap_or(0);
    if !line[..start].trim().is_empty() {
        return Some(start);
    }
    // Patterns that open on the date match from the line's start: a sentence ending before the
    // date ("Kiitos! ma 3.6.2024 klo 10.12 … kirjoitti:") is the reply's, not the attribution's.
    Some(
        sentence_end_before_date(line)
            .filter(|&end| ATTRIBUTION.find(&line[end..]).is_some_and(|m| m.start() == 0))
            .unwrap_or(0),
    )
}

/// Byte offset just past the first sentence end (`!`, `?`, `…`, CJK stops, or `.` after a word
/// of four letters or more: "lun." and "man." are abbreviations) before the line's first digit.
fn sentence_end_before_date(line: &str) -> Option<usize> {
    static SENTENCE_END: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\S(?:[!?…]\s+|[。！？]\s*|\p{L}{4}\.\s+)").expect("sentence end regex"));
    let first_digit = line.find(|c: char| c.is_ascii_digit())?;
    let end = SENTENCE_END.find(&line[..first_digit])?.end();
    (end < first_digit && !line[..end].trim().is_empty()).then_some(end)
}

/// Separator lines that open a quoted or forwarded original on their own: the words of any
/// language between dashes ("-----Original Message-----", "---------- Message transféré
/// ---------"), or an introduction ("Begin forwarded message:").
pub(super) fn is_original_separator(line: &str) -> bool {
    static SEPARATOR: LazyLock<Regex> = LazyLock::new(|| {
        let words = languages::literal_alternation(languages::all(|l| l.separators));
        let intros = languages::literal_alternation(languages::all(|l| l.forward_intros));
        Regex::new(&format!(r"(?i)^(?:[-=]{{2,}}\s*{words}\s*[-=]{{2,}}|{intros}\s*[:：])$")).expect("separator regex")
    });
    let line = line.trim();
    (line.starts_with(['-', '=']) || line.ends_with([':', '：'])) && SEPARATOR.is_match(line)
}

/// Outlook's `________________________________` line (it precedes the header block).
pub(super) fn is_underscore_rule(line: &str) -> bool {
    let line = line.trim();
    line.len() >= 20 && line.chars().all(|c| c == '_')
}

/// The role of a header-block field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    From,
    Date,
    To,
    Subject,
}

/// A header-block field line of any language: its role and value (`From: x`, `De : x`,
/// `**Von:** x` from an HTML conversion, `差出人: x`).
fn field(line: &str) -> Option<(Field, &str)> {
    static FIRST: LazyLock<FirstLetters> = LazyLock::new(|| {
        let names = languages::all(|l| l.from).chain(languages::all(|l| l.date));
        FirstLetters::of(names.chain(languages::all(|l| l.to)).chain(languages::all(|l| l.subject)).chain(["*"]))
    });
    // One regex per role, each answered by the DFA alone (`find`: no capture groups to fill).
    static FIELDS: LazyLock<[(Field, Regex); 4]> = LazyLock::new(|| {
        let role = |f: fn(&languages::Language) -> &'static [&'static str]| {
            let names = languages::literal_alternation(languages::all(f));
            Regex::new(&format!(r"(?i)^\*{{0,2}}{names}\*{{0,2}}\s*[:：]\s*\*{{0,2}}\s*")).expect("header field regex")
        };
        [
            (Field::From, role(|l| l.from)),
            (Field::Date, role(|l| l.date)),
            (Field::To, role(|l| l.to)),
            (Field::Subject, role(|l| l.subject)),
        ]
    });
    let line = line.trim();
    // Field names are short: most lines of prose have no colon near their start.
    let head = &line.as_bytes()[..line.len().min(48)];
    if !FIRST.starts(line) || !head.contains(&b':') && !head.windows(3).any(|w| w == "：".as_bytes()) {
        return None;
    }
    FIELDS.iter().find_map(|(role, regex)| regex.find(line).map(|m| (*role, line[m.end()..].trim_end())))
}

/// The value of a `From:` / `De :` / `Von:` / `От:` line.
pub(super) fn from_line_value(line: &str) -> Option<&str> {
    field(line).filter(|(role, value)| *role == Field::From && !value.is_empty()).map(|(_, value)| value)
}

/// The `From` value of the header block starting at line `i`: consecutive field lines (a wrapped
/// recipient list tolerated) holding a `From` and a date or a subject. Outlook starts with `From`,
/// GMX with `Gesendet`, Thunderbird's forward with `Subject`.
pub(super) fn header_block_from<'a>(lines: &[&'a str], i: usize) -> Option<&'a str> {
    field(lines[i])?;
    let mut from = None;
    let (mut dated, mut fields, mut strays) = (false, 0, 0);
    for line in lines.iter().skip(i).take(HEADER_BLOCK_SPAN) {
        match field(line) {
            Some((Field::From, value)) => from = from.or(Some(value)),
            Some((Field::Date | Field::Subject, _)) => dated = true,
            Some((Field::To, _)) => {}
            None if line.trim().is_empty() || strays == 1 => break,
            None => {
                strays += 1;
                continue;
            }
        }
        fields += 1;
    }
    (fields >= 2 && dated).then_some(from).flatten()
}

/// True when line `i` opens a header block (see [`header_block_from`]).
pub(super) fn starts_header_block(lines: &[&str], i: usize) -> bool {
    header_block_from(lines, i).is_some()
}

/// Where the quoted history opens in line `i`, if it does: an attribution (possibly wrapped over
/// two lines, possibly after the reply's last words), a separator, or a header block (possibly
/// under its underscore rule).
fn reply_header_at(lines: &[&str], i: usize) -> Option<usize> {
    let line = lines[i].trim();
    if line.is_empty() || is_quote_line(line) {
        return None;
    }
    if let Some(attribution) = attribution_at(lines, i) {
        return Some(attribution.col);
    }
    let opens = is_original_separator(line)
        || starts_header_block(lines, i)
        || is_underscore_rule(line) && next_non_empty(lines, i + 1).is_some_and(|j| starts_header_block(lines, j));
    opens.then_some(0)
}

/// An attribution found at line `i`: how many lines it takes and where it starts in the first.
struct Attribution {
    lines: usize,
    col: usize,
}

/// The attribution starting at line `i`: clients wrap long ones in two.
fn attribution_at(lines: &[&str], i: usize) -> Option<Attribution> {
    let line = lines.get(i)?.trim_end();
    if line.trim().is_empty() || is_quote_line(line) {
        return None;
    }
    if let Some(col) = attribution_start(line) {
        return Some(Attribution { lines: 1, col });
    }
    let next = lines.get(i + 1)?.trim();
    // The wrapped attribution ends with the next line's colon: only then is the join worth making;
    // and a next line that is an attribution on its own is not the end of this one.
    if !(next.ends_with(':') || next.ends_with('：')) || is_quote_line(next) || attribution_start(next).is_some() {
        return None;
    }
    let col = attribution_start(&format!("{line} {next}"))?;
    // An attribution starting on the next line is that line's own.
    (col < line.len()).then_some(Attribution { lines: 2, col })
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
            assert_eq!(attribution_start(header), Some(0), "{header}");
        }
        assert_eq!(attribution_start("On the phone, Paul wrote:"), None);
        assert_eq!(attribution_start("On Monday at 10:00 our manager wrote:"), None);
        assert_eq!(attribution_start("Den 3. juni 2024 skrev jeg til jer om det samme:"), None);
        assert_eq!(attribution_start("Le technicien a écrit :"), None);
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
    fn an_html_history_mark_cuts_only_a_top_posted_reply() {
        // Hungarian is in no table.
        let text = "Ok\nX ezt írta (időpont: 2024. jún. 3., H, 10:12):\n> Hi";
        assert_eq!(new_text(text), "Ok\nX ezt írta (időpont: 2024. jún. 3., H, 10:12):");
        assert_eq!(split_with_hint(text, Some(1)).0, "Ok");
        // Answers between quotes (nothing above the mark) are the text rules' to read.
        assert_eq!(split_with_hint("> q\nanswer\n> q2\nanswer 2", Some(0)).0, "> q\nanswer\n> q2\nanswer 2");
    }

    #[test]
    fn localised_headers_and_signatures_are_reply_headers() {
        for text in [
            "Danke!\n\nAm Mo., 3. Juni 2024 um 10:12 Uhr schrieb Anna <a@example.de>:\n> Hallo",
            "Grazie\nIl giorno lun 3 giu 2024 alle ore 10:12 Marco <m@example.it> ha scritto:\n> Ciao",
            "Tack!\n\nFrån: Erik <e@example.se>\nSkickat: den 3 juni 2024 10:12\nTill: Elin\nÄmne: Skrivare",
            "Tak!\n\nGesendet: Montag, 03. Juni 2024 um 10:12 Uhr\nVon: \"Anna\" <a@example.de>\nAn: x@example.com",
            "Спасибо!\n\n-----Исходное сообщение-----\nОт: Иван",
            "谢谢！\n\n发自我的iPhone\n\n> 在 2024/6/3 10:12, 李伟 写道:",
            "Kiitos! ma 3.6.2024 klo 10.12 Mikko (<m@example.fi>) kirjoitti:\n> Hei",
        ] {
            let first_line = text.split(['\n', ' ']).next().unwrap();
            assert_eq!(new_text(text), first_line, "{text}");
        }
        // A sentence that starts like a signature, with more text after it, stays.
        let text = "Sent from my desk at 9.\nThe printer still jams.";
        assert_eq!(new_text(text), text);
    }

    #[test]
    fn a_flood_of_signature_lines_is_read_in_linear_time() {
        let flood = "Sent from my iPhone\n".repeat(50_000) + "and then prose";
        let started = std::time::Instant::now();
        assert!(new_text(&flood).ends_with("and then prose"));
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
    }

    #[test]
    fn split_keeps_the_rest_for_folding() {
        let (new, rest) = split("Ok\n\nOn Mon, 3 Jun 2024, Marie <m@example.com> wrote:\n> Hi");
        assert_eq!(new, "Ok");
        assert_eq!(rest, "On Mon, 3 Jun 2024, Marie <m@example.com> wrote:\n> Hi");
        assert_eq!(split("plain"), ("plain".to_string(), String::new()));
    }
}
