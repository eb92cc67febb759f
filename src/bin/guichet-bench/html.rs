//! `html`: our HTML → text conversion (`parse/html.rs`) against html5ever's bare tokenizer on
//! the same bodies (issue 18: must ours stay?).
//!
//! The html5ever side is a lower bound of any html5ever-based conversion: its tokenizer alone
//! (no tree builder), a sink that counts the tokens and appends the character tokens to a
//! `String`, and switches to raw text after `<style>`/`<script>` as a tree builder would (so the
//! CSS is not tokenized as markup). Ours does the whole job: lines per block, `> ` quote
//! prefixes, entities, the quoted-history mark.
//!
//! Cases: the HTML parts of the `.eml` fixtures (replies, forwards, mail) taken as one set, then
//! synthetic large bodies (a ~200 KB newsletter, a deep Gmail quote chain, an Outlook reply).
//! Each case is run `--rounds` times per side, alternately; best and median are printed.

use std::cell::{Cell, RefCell};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{BufferQueue, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts};
use html5ever::{TokenizerResult, local_name};
use mail_parser::{MessageParser, PartType};

use super::{load_average, metric};

/// Minimal sink: counts tokens, keeps the text (not that of `<style>`/`<script>`).
#[derive(Default)]
struct TextSink {
    tokens: Cell<usize>,
    text: RefCell<String>,
    raw: Cell<bool>,
}

impl TokenSink for TextSink {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        self.tokens.set(self.tokens.get() + 1);
        match token {
            Token::CharacterTokens(t) if !self.raw.get() => self.text.borrow_mut().push_str(&t),
            Token::TagToken(tag) if tag.name == local_name!("style") || tag.name == local_name!("script") => {
                self.raw.set(tag.kind == TagKind::StartTag);
                if tag.kind == TagKind::StartTag {
                    return TokenSinkResult::RawData(RawKind::Rawtext);
                }
            }
            _ => {}
        }
        TokenSinkResult::Continue
    }
}

/// html5ever's tokenizer over one body: (tokens, text length).
fn html5ever_tokens(html: &str) -> (usize, usize) {
    let tokenizer = Tokenizer::new(TextSink::default(), TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    while let TokenizerResult::Script(()) = tokenizer.feed(&input) {}
    tokenizer.end();
    (tokenizer.sink.tokens.get(), tokenizer.sink.text.borrow().len())
}

/// Ours over one body: (text length, line of the quoted history + 1 or 0).
fn ours(html: &str) -> (usize, usize) {
    let (text, history) = guichet::parse::html_to_text_with_history(html);
    (text.len(), history.map_or(0, |h| h + 1))
}

struct Case {
    name: String,
    bodies: Vec<String>,
}

impl Case {
    fn bytes(&self) -> usize {
        self.bodies.iter().map(String::len).sum()
    }
}

/// Every `text/html` part of every `.eml` under `dir` (recursively).
fn fixture_bodies(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "eml") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut bodies = Vec::new();
    for path in files {
        let raw = std::fs::read(&path)?;
        let Some(message) = MessageParser::default().parse(&raw) else { continue };
        for part in &message.parts {
            if let PartType::Html(html) = &part.body {
                bodies.push(html.to_string());
            }
        }
    }
    Ok(bodies)
}

/// A newsletter of about `target` bytes: `<style>` head, nested layout tables, inline styles,
/// long tracking links, images, entities.
fn newsletter(target: usize) -> String {
    let mut s = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Weekly digest</title><style>\
         body{margin:0;padding:0}.wrap{width:100%;background:#f4f4f4}.col{width:600px}\
         @media only screen and (max-width:600px){.col{width:100%!important}}\
         a{color:#1a73e8;text-decoration:none}</style></head><body><table class=\"wrap\" \
         role=\"presentation\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" width=\"100%\">",
    );
    let mut i = 0;
    while s.len() < target {
        i += 1;
        s.push_str(&format!(
            "<tr><td align=\"center\" style=\"padding:24px 16px;font-family:Helvetica,Arial,\
             sans-serif;font-size:16px;line-height:24px;color:#333333\"><table class=\"col\" \
             role=\"presentation\" width=\"600\"><tr><td><a href=\"https://click.example.com/\
             ls/click?upn=aHR0cHM6Ly9leGFtcGxlLmNvbS9hcnRpY2xlLzEyMzQ1Njc4OTA{i}&amp;utm_source\
             =newsletter&amp;utm_medium=email\" target=\"_blank\"><img src=\"https://cdn.example\
             .com/img/{i}.jpg\" width=\"568\" alt=\"Article {i}\" style=\"display:block;border:0\
             \"></a></td></tr><tr><td style=\"padding-top:12px\"><h2 style=\"margin:0;font-size:\
             20px\">Story n&#176;{i}: what&#8217;s new this week</h2><p style=\"margin:8px 0\">\
             Lorem ipsum dolor sit amet, consectetur adipiscing elit&nbsp;&mdash; sed do eiusmod \
             tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis \
             nostrud exercitation ullamco laboris&hellip;</p><p><a href=\"https://click.example\
             .com/ls/click?upn={i}\" style=\"font-weight:bold\">Read more &raquo;</a></p></td>\
             </tr></table></td></tr>\n"
        ));
    }
    s.push_str(
        "<tr><td style=\"font-size:12px;color:#999\">You receive this because you subscribed. \
         <a href=\"https://example.com/unsubscribe\">Unsubscribe</a> &copy; 2026 Example \
         Inc.</td></tr></table></body></html>",
    );
    s
}

/// A Gmail reply chain `depth` deep: each level a `gmail_quote` div, its attribution and a
/// `blockquote` holding the previous message.
fn gmail_chain(depth: usize) -> String {
    let mut s = String::from("<div dir=\"ltr\">Thanks, that fixed it.<div><br></div></div><br>");
    for level in 0..depth {
        s.push_str(&format!(
            "<div class=\"gmail_quote\"><div dir=\"ltr\" class=\"gmail_attr\">On Mon, Dec {} \
             2026 at 10:{:02} AM Support &lt;support@example.com&gt; wrote:<br></div>\
             <blockquote class=\"gmail_quote\" style=\"margin:0px 0px 0px 0.8ex;border-left:1px \
             solid rgb(204,204,204);padding-left:1ex\"><div dir=\"ltr\"><div>Hello,</div><div>\
             <br></div><div>Message {level}: could you try again with the latest version and \
             tell us what happens? If it still fails, please send the log file.</div><div><br>\
             </div><div>Regards,</div><div>-- <br><div dir=\"ltr\" class=\"gmail_signature\">\
             Example Support<br><a href=\"https://example.com\">https://example.com</a></div>\
             </div></div><br>",
            1 + level % 28,
            level % 60
        ));
    }
    for _ in 0..depth {
        s.push_str("</blockquote></div>");
    }
    s
}

/// An Outlook reply: the big `mso` style head, `MsoNormal` paragraphs with `<o:p>`, the
/// `divRplyFwdMsg` header box, `replies` earlier messages.
fn outlook_reply(replies: usize) -> String {
    let mut s = String::from(
        "<html xmlns:v=\"urn:schemas-microsoft-com:vml\" xmlns:o=\"urn:schemas-microsoft-com:\
         office:office\"><head><meta name=\"Generator\" content=\"Microsoft Word 15 (filtered \
         medium)\"><style><!--\n",
    );
    for k in 0..60 {
        s.push_str(&format!(
            "@font-face {{font-family:\"Font {k}\"; panose-1:2 15 5 2 2 2 4 3 2 4;}}\n\
             p.MsoStyle{k}, li.MsoStyle{k}, div.MsoStyle{k} {{margin:0cm; font-size:11.0pt; \
             font-family:\"Calibri\",sans-serif; mso-fareast-language:EN-US;}}\n"
        ));
    }
    s.push_str("--></style></head><body lang=\"FR\" link=\"#0563C1\"><div class=\"WordSection1\">");
    for r in 0..replies {
        s.push_str(&format!(
            "<p class=\"MsoNormal\">Bonjour,<o:p></o:p></p><p class=\"MsoNormal\"><o:p>&nbsp;\
             </o:p></p><p class=\"MsoNormal\">R&eacute;ponse {r}&nbsp;: le probl&egrave;me \
             persiste apr&egrave;s la mise &agrave; jour.<o:p></o:p></p><p class=\"MsoNormal\">\
             Cordialement,<o:p></o:p></p><div id=\"appendonsend\"></div><hr style=\"display:\
             inline-block;width:98%\" tabindex=\"-1\"><div id=\"divRplyFwdMsg\" dir=\"ltr\"><font \
             face=\"Calibri, sans-serif\" style=\"font-size:11pt\" color=\"#000000\"><b>De&nbsp;:\
             </b> Support &lt;support@example.com&gt;<br><b>Envoy&eacute;&nbsp;:</b> lundi 7 \
             d&eacute;cembre 2026 10:{:02}<br><b>&Agrave;&nbsp;:</b> Client &lt;client@example\
             .org&gt;<br><b>Objet&nbsp;:</b> RE: Ticket #1234</font><div>&nbsp;</div></div>",
            r % 60
        ));
    }
    s.push_str("</div></body></html>");
    s
}

/// Runs `f` over every body of the case `passes` times; returns the seconds per pass.
fn time_case(case: &Case, passes: usize, f: fn(&str) -> (usize, usize)) -> f64 {
    let t = Instant::now();
    for _ in 0..passes {
        for body in &case.bodies {
            black_box(f(black_box(body)));
        }
    }
    t.elapsed().as_secs_f64() / passes as f64
}

fn best_median(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2])
}

pub(crate) fn html_bench(fixtures: &Path, rounds: usize) -> anyhow::Result<()> {
    let rounds = rounds.max(1);
    let mut cases = vec![Case { name: "fixtures".into(), bodies: fixture_bodies(fixtures)? }];
    cases.push(Case { name: "newsletter_200k".into(), bodies: vec![newsletter(200_000)] });
    cases.push(Case { name: "gmail_chain_40".into(), bodies: vec![gmail_chain(40)] });
    cases.push(Case { name: "outlook_reply_10".into(), bodies: vec![outlook_reply(10)] });
    metric("load_average_1min_start", load_average(), "");
    for case in &cases {
        let bytes = case.bytes();
        let n = case.bodies.len();
        metric(&format!("{}_bodies", case.name), n as f64, "bodies");
        metric(&format!("{}_kb", case.name), bytes as f64 / 1000.0, "KB");
        if n == 0 {
            continue;
        }
        let texts: Vec<String> = case.bodies.iter().map(|b| guichet::parse::html_to_text_with_history(b).0).collect();
        let ours_len: usize = texts.iter().map(String::len).sum();
        let ours_lines: usize = texts.iter().map(|t| t.lines().count()).sum();
        let (h5_tokens, h5_len) =
            case.bodies.iter().map(|b| html5ever_tokens(b)).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        metric(&format!("{}_ours_text_kb", case.name), ours_len as f64 / 1000.0, "KB");
        metric(&format!("{}_ours_lines", case.name), ours_lines as f64, "lines");
        metric(&format!("{}_html5ever_text_kb", case.name), h5_len as f64 / 1000.0, "KB");
        metric(&format!("{}_html5ever_tokens", case.name), h5_tokens as f64, "tokens");
        // Passes per round: about 20 ms of our conversion, at least one.
        let one = time_case(case, 1, ours).max(1e-7);
        let passes = ((0.02 / one).ceil() as usize).max(1);
        let (mut ours_s, mut h5_s) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            ours_s.push(time_case(case, passes, ours));
            h5_s.push(time_case(case, passes, html5ever_tokens));
        }
        let mbs = |s: f64| bytes as f64 / s / 1e6;
        let ns = |s: f64| s * 1e9 / n as f64;
        let (ours_best, ours_med) = best_median(ours_s);
        let (h5_best, h5_med) = best_median(h5_s);
        let c = &case.name;
        metric(&format!("{c}_ours_mb_per_s_best"), mbs(ours_best), "MB/s");
        metric(&format!("{c}_ours_mb_per_s_median"), mbs(ours_med), "MB/s");
        metric(&format!("{c}_ours_ns_per_body_best"), ns(ours_best), "ns");
        metric(&format!("{c}_ours_ns_per_body_median"), ns(ours_med), "ns");
        metric(&format!("{c}_html5ever_mb_per_s_best"), mbs(h5_best), "MB/s");
        metric(&format!("{c}_html5ever_mb_per_s_median"), mbs(h5_med), "MB/s");
        metric(&format!("{c}_html5ever_ns_per_body_best"), ns(h5_best), "ns");
        metric(&format!("{c}_html5ever_ns_per_body_median"), ns(h5_med), "ns");
        metric(&format!("{c}_html5ever_over_ours_median"), h5_med / ours_med, "x time");
    }
    metric("load_average_1min_end", load_average(), "");
    Ok(())
}

/// Where the fixtures are by default: `tests/fixtures` of the source tree.
pub(crate) fn default_fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}
