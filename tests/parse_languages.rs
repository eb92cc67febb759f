//! Replies and forwards of every common mail client in every supported language, run through the
//! real parser (`guichet::parse::parse` on the full raw mail): the new text of each reply and the
//! original sender of each forward against `tests/fixtures/{replies,forwards}/expected.toml`
//! (written by `scripts/gen-language-corpus`). Prints the accuracy per language and per client
//! and fails below `MIN_ACCURACY` or when the corpus shrinks below its coverage.

use guichet::parse::parse;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The share of cases that must come out right, in each corpus.
const MIN_ACCURACY: f64 = 0.95;
const MIN_LANGUAGES: usize = 15;
const MIN_CLIENTS: usize = 10;

#[derive(Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    file: String,
    language: String,
    client: String,
    /// `plain`, `html` or `attachment`: how the client sent it (reported, not checked).
    #[allow(dead_code)]
    format: String,
    /// Replies: what a reader calls the new text.
    new_text: Option<String>,
    /// Forwards: the original sender's address.
    sender: Option<String>,
}

/// Blank lines and trailing blanks carry no meaning for a reader: compared without them.
fn normalized(text: &str) -> String {
    text.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("\n")
}

/// Runs one corpus; returns the failures as readable lines and prints the accuracy tables.
fn run(folder: &str, check: impl Fn(&Case, &guichet::parse::InboundMail) -> Result<(), String>) -> (f64, Vec<String>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(folder);
    let corpus: Corpus = toml::from_str(&std::fs::read_to_string(dir.join("expected.toml")).expect("expected.toml"))
        .expect("expected.toml parses");
    let mut by_language: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut by_client: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in &corpus.case {
        let raw = std::fs::read(dir.join(&case.file)).unwrap_or_else(|e| panic!("{}: {e}", case.file));
        let outcome = parse(&raw).map_err(|e| e.to_string()).and_then(|mail| check(case, &mail));
        let ok = outcome.is_ok();
        if let Err(why) = outcome {
            failures.push(format!("{folder}/{}: {why}", case.file));
        }
        for (table, key) in [(&mut by_language, case.language.as_str()), (&mut by_client, case.client.as_str())] {
            let entry = table.entry(key).or_default();
            entry.0 += usize::from(ok);
            entry.1 += 1;
        }
    }
    let files: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("fixture folder")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".eml"))
        .collect();
    let listed: BTreeSet<String> = corpus.case.iter().map(|c| c.file.clone()).collect();
    assert_eq!(files, listed, "{folder}: every .eml has one expectation and every expectation a file");
    assert!(by_language.len() >= MIN_LANGUAGES, "{folder}: {} languages", by_language.len());
    assert!(by_client.len() >= MIN_CLIENTS, "{folder}: {} clients", by_client.len());
    let right: usize = by_language.values().map(|(ok, _)| ok).sum();
    let accuracy = right as f64 / corpus.case.len() as f64;
    println!("\n{folder}: {right}/{} right ({:.1} %)", corpus.case.len(), accuracy * 100.0);
    for (title, table) in [("language", &by_language), ("client", &by_client)] {
        let cells: Vec<String> = table.iter().map(|(k, (ok, n))| format!("{k} {ok}/{n}")).collect();
        println!("  by {title}: {}", cells.join(", "));
    }
    (accuracy, failures)
}

#[test]
fn replies_and_forwards_of_every_client_and_language_are_read_right() {
    let (replies, mut failures) = run("replies", |case, mail| {
        let expected = case.new_text.as_deref().ok_or("no new_text expected")?;
        let (want, got) = (normalized(expected), normalized(&mail.new_text));
        if want == got { Ok(()) } else { Err(format!("new text\n--- expected\n{want}\n--- got\n{got}\n")) }
    });
    let (forwards, forward_failures) = run("forwards", |case, mail| {
        let expected = case.sender.as_deref().ok_or("no sender expected")?;
        let got = mail.forwarded_from.as_ref().map(|m| m.address.to_string());
        if got.as_deref() == Some(expected) { Ok(()) } else { Err(format!("sender {got:?}, expected {expected}")) }
    });
    failures.extend(forward_failures);
    for failure in &failures {
        println!("FAILED {failure}");
    }
    assert!(replies >= MIN_ACCURACY, "replies: {:.1} % right", replies * 100.0);
    assert!(forwards >= MIN_ACCURACY, "forwards: {:.1} % right", forwards * 100.0);
}
