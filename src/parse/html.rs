//! HTML body → plain text that keeps the shape the quote splitter needs: one line per block
//! (`div`, `p`, `br`, table rows…) and `blockquote` content prefixed with `> `.
//!
//! mail-parser's own conversion only breaks lines at `br` and `</p>`, which glues the `div`
//! lines of Gmail and Outlook together, reply headers included.
//!
//! Clients also mark where the quoted history starts (Gmail's `gmail_quote`, Outlook's
//! `divRplyFwdMsg` and `appendonsend` or its border-top header box, Yahoo's `yahoo_quoted`,
//! Thunderbird's `moz-cite-prefix`, Apple Mail's `blockquote type="cite"`): the first such mark
//! is returned as a line number, for reply headers in a language the text rules do not know.

use mail_parser::decoders::html::add_html_token;

/// Longest entity looked for after `&` (`&CounterClockwiseContourIntegral;` is 33).
const MAX_ENTITY_LEN: usize = 40;

/// The text, and the line where the first quoted-history container starts (if any).
pub(super) fn html_to_text_with_history(html: &str) -> (String, Option<usize>) {
    let mut out = TextBuilder::default();
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => rest = out.tag(rest),
            '&' => {
                // `&name;`, `&#233;`, `&#xE9;`; anything else is a literal `&`.
                let entity_end = rest
                    .char_indices()
                    .skip(1)
                    .take(MAX_ENTITY_LEN)
                    .find(|&(_, c)| c == ';' || c == '<' || c == '&' || c.is_whitespace());
                match entity_end {
                    Some((end, ';')) if end > 1 => {
                        let mut decoded = String::new();
                        add_html_token(&mut decoded, &rest.as_bytes()[..=end], false);
                        out.text(&decoded);
                        rest = &rest[end + 1..];
                    }
                    _ => {
                        out.text("&");
                        rest = &rest[1..];
                    }
                }
            }
            _ => {
                let end = rest.find(['<', '&']).unwrap_or(rest.len());
                out.text(&rest[..end]);
                rest = &rest[end..];
            }
        }
    }
    out.finish()
}

#[derive(Default)]
struct TextBuilder {
    lines: Vec<String>,
    line: String,
    /// Quote depth of the current line, fixed by its first visible character.
    line_depth: usize,
    blockquote_depth: usize,
    pre_depth: usize,
    pending_space: bool,
    /// Index in `lines` where the first quoted-history container opened.
    history_line: Option<usize>,
}

/// Attribute fragments by which clients mark the container of the quoted history.
const HISTORY_MARKS: &[&str] = &[
    "gmail_quote",
    "yahoo_quoted",
    "moz-cite-prefix",
    "moz-forward-container",
    "divrplyfwdmsg",
    "appendonsend",
    "border-top:solid",
    "type=\"cite\"",
];

/// Whether the inside of a `div` or `blockquote` tag carries one of `HISTORY_MARKS`.
fn marks_history(inside: &str) -> bool {
    let bytes = inside.as_bytes();
    HISTORY_MARKS.iter().any(|mark| bytes.windows(mark.len()).any(|w| w.eq_ignore_ascii_case(mark.as_bytes())))
}

impl TextBuilder {
    /// Handles the tag at the start of `rest` and returns what follows it (and, for `script`,
    /// `style`, `head`…, what follows their closing tag).
    fn tag<'a>(&mut self, rest: &'a str) -> &'a str {
        if let Some(comment) = rest.strip_prefix("<!--") {
            return comment.find("-->").map_or("", |end| &comment[end + 3..]);
        }
        // An unterminated tag swallows the rest, as browsers do.
        let Some(end) = tag_end(rest) else { return "" };
        let inside = &rest[1..end - 1];
        let after = &rest[end..];
        let closing = inside.starts_with('/');
        let name: String = inside
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match name.as_str() {
            "head" | "style" | "script" | "template" | "title" if !closing => skip_past_closing(after, &name),
            "br" => {
                self.break_line(true);
                after
            }
            "blockquote" => {
                self.break_line(false);
                self.note_history(closing, inside);
                if closing {
                    self.blockquote_depth = self.blockquote_depth.saturating_sub(1);
                } else {
                    self.blockquote_depth += 1;
                }
                after
            }
            "pre" => {
                self.break_line(false);
                self.pre_depth = if closing { self.pre_depth.saturating_sub(1) } else { self.pre_depth + 1 };
                after
            }
            "li" if !closing => {
                self.break_line(false);
                self.text("- ");
                after
            }
            "td" | "th" if !closing => {
                self.pending_space = true;
                after
            }
            "div" => {
                self.break_line(false);
                self.note_history(closing, inside);
                after
            }
            "p" | "tr" | "li" | "ul" | "ol" | "table" | "hr" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "section"
            | "article" | "header" | "footer" | "address" | "center" | "dd" | "dt" | "dl" => {
                self.break_line(false);
                after
            }
            _ => after,
        }
    }

    /// Remembers the first line inside the first quoted-history container.
    fn note_history(&mut self, closing: bool, inside: &str) {
        if !closing && self.history_line.is_none() && marks_history(inside) {
            self.history_line = Some(self.lines.len());
        }
    }

    fn text(&mut self, text: &str) {
        if self.pre_depth > 0 {
            for (i, piece) in text.split('\n').enumerate() {
                if i > 0 {
                    self.break_line(true);
                }
                self.push_visible(piece.trim_end_matches('\r'));
            }
            return;
        }
        for (i, word) in text.split(|c: char| c.is_ascii_whitespace()).enumerate() {
            if i > 0 {
                self.pending_space = true;
            }
            if word.is_empty() {
                continue;
            }
            if self.pending_space && !self.line.is_empty() {
                self.line.push(' ');
            }
            self.pending_space = false;
            self.push_visible(word);
        }
    }

    fn push_visible(&mut self, piece: &str) {
        if self.line.is_empty() {
            self.line_depth = self.blockquote_depth;
        }
        self.line.push_str(piece);
    }

    /// Ends the current line. A block boundary (`always == false`) on an empty line adds
    /// nothing, so nested `div`s do not pile up blank lines; `br` always ends a line.
    fn break_line(&mut self, always: bool) {
        self.pending_space = false;
        let line = std::mem::take(&mut self.line);
        let blank = line.trim().is_empty();
        if blank && !always {
            return;
        }
        let depth = if blank { self.blockquote_depth } else { self.line_depth };
        let content = if blank { "" } else { line.trim_end() };
        self.lines.push(format!("{}{content}", "> ".repeat(depth)).trim_end().to_string());
    }

    fn finish(mut self) -> (String, Option<usize>) {
        self.break_line(false);
        // At most one blank line in a row, none at the start or the end; the history line is
        // renumbered as lines go.
        let mut out: Vec<String> = Vec::with_capacity(self.lines.len());
        let mut history_line = None;
        for (i, line) in self.lines.into_iter().enumerate() {
            if Some(i) == self.history_line {
                history_line = Some(out.len());
            }
            let blank = line.is_empty();
            if !(blank && out.last().is_none_or(|l| l.is_empty())) {
                out.push(line);
            }
        }
        while out.last().is_some_and(|l| l.is_empty()) {
            out.pop();
        }
        let history_line = history_line.filter(|&line| line < out.len());
        (out.join("\n"), history_line)
    }
}

/// Index just past the `>` that ends the tag at the start of `rest` (quoted attributes skipped).
fn tag_end(rest: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in rest.char_indices().skip(1) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// What follows the closing tag `</name…>` in `rest`; nothing when it never closes.
fn skip_past_closing<'a>(rest: &'a str, name: &str) -> &'a str {
    let mut from = 0;
    while let Some(found) = rest[from..].find("</") {
        let start = from + found;
        let candidate = rest.as_bytes().get(start + 2..start + 2 + name.len());
        if candidate.is_some_and(|c| c.eq_ignore_ascii_case(name.as_bytes())) {
            let after = &rest[start..];
            return tag_end(after).map_or("", |end| &after[end..]);
        }
        from = start + 2;
    }
    ""
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html_to_text(html: &str) -> String {
        super::html_to_text_with_history(html).0
    }

    #[test]
    fn blocks_become_lines() {
        let html = "<html><head><style>p{}</style></head><body><div>Bonjour,</div><div><br></div><div>Ligne&nbsp;2 &amp; fin</div><p>Para</p></body></html>";
        assert_eq!(html_to_text(html), "Bonjour,\n\nLigne\u{a0}2 & fin\nPara");
    }

    #[test]
    fn blockquotes_are_quoted() {
        let html = "<div>Ok</div><div class=\"gmail_quote\">On Mon, 3 Jun 2024, X &lt;x@example.com&gt; wrote:<br><blockquote>Hello<br>there<blockquote>deep</blockquote></blockquote></div>";
        assert_eq!(html_to_text(html), "Ok\nOn Mon, 3 Jun 2024, X <x@example.com> wrote:\n> Hello\n> there\n> > deep");
    }

    #[test]
    fn the_first_history_container_is_found() {
        let html = "<div>Ok</div><div><br></div><div class=\"gmail_quote\"><div>2024년 6월 3일 X 작성:</div><blockquote>Hi</blockquote></div>";
        assert_eq!(html_to_text_with_history(html), ("Ok\n\n2024년 6월 3일 X 작성:\n> Hi".to_string(), Some(2)));
        let outlook = "<p>Done</p><div id=\"appendonsend\"></div><hr><div id=\"divRplyFwdMsg\"><b>Od:</b> x</div>";
        assert_eq!(html_to_text_with_history(outlook).1, Some(1));
        assert_eq!(html_to_text_with_history("<div>a</div><blockquote>b</blockquote>").1, None);
    }

    #[test]
    fn scripts_comments_and_odd_markup_are_harmless() {
        assert_eq!(html_to_text("a<script>alert('<b>')</script>b<!-- c -->d"), "abd");
        assert_eq!(html_to_text("<a href=\"x>y\">link</a> & more &unknown"), "link & more &unknown");
        assert_eq!(html_to_text("<pre>  two\n  lines</pre>"), "  two\n  lines");
        assert_eq!(html_to_text("<div"), "");
        assert_eq!(html_to_text("x &#233;t&#xE9;"), "x été");
    }
}
