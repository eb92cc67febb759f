//! A fuzzing driver for stable Rust: runs every file of `corpus/<target>/` through its target,
//! then pseudo-random mutations of them (xorshift, seeded, so a run can be replayed) until the
//! time given to the target is spent. The mutations are libFuzzer's simplest ones (bit flips,
//! interesting bytes, insertions, deletions, duplications, splices, dictionary words) without its
//! coverage feedback: a smoke run for CI, not a replacement for `cargo +nightly fuzz run`.
//!
//! ```text
//! run_corpus [--seconds N] [--seed S] [--corpus DIR] [--artifacts DIR] [TARGET…]
//! ```
//!
//! A panic or a failed check is written to `artifacts/<target>/crash-<hash>` and the run exits 1;
//! an input that takes longer than `--slow-ms` (default 5000) is written as `slow-<hash>` and
//! fails the run too. Prints, per target, the corpus size and the executions done.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use guichet_fuzz::{TARGETS, Target};

/// Longest input the mutator makes (beyond the longest corpus file).
const MAX_LEN: usize = 64 * 1024;

const DICTIONARY: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"\n\n",
    b"From: ",
    b"To: ",
    b"Cc: ",
    b"Subject: ",
    b"Message-ID: <",
    b"In-Reply-To: <",
    b"References: <",
    b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n",
    b"Content-Type: message/rfc822\r\n\r\n",
    b"Content-Type: text/html; charset=iso-8859-1\r\n\r\n<div>",
    b"Content-Transfer-Encoding: base64\r\n\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n=C3=A9=\r\n",
    b"Content-Disposition: attachment; filename*=UTF-8''..%2F",
    b"filename*0*=",
    b"\r\n--b--\r\n",
    b"=?utf-8?B?",
    b"=?iso-8859-1?Q?",
    b"?=",
    b"Authentication-Results: mx.example.com; dmarc=fail header.from=",
    b"Auto-Submitted: auto-replied\r\n",
    b"Content-Type: multipart/report; report-type=delivery-status\r\n",
    b"Final-Recipient: rfc822; ",
    b"X-Guichet-Loop: ",
    b"[Ticket #",
    b"] ",
    b"Re: ",
    b"TR: ",
    b"Fwd: ",
    b"#status closed\n",
    b"#priority ",
    b"#requester ",
    b"#note\n",
    b"Le lun. 30 nov. 2026 a \xc3\xa9crit :\n",
    b"On Mon, Nov 30, 2026 at 9:00 AM Marie <m@c.example> wrote:\n",
    b"De : Marie\nEnvoy\xc3\xa9 : lundi\n\xc3\x80 : support\nObjet : x\n",
    b"> ",
    b"-- \n",
    b"guichet.1.0123456789abcdef.0123456789abcdef@example.com",
    b"\xe2\x80\xae",
    b"\xe2\x81\xa6",
    b"\x00",
    b"\xfe",
    b"../",
    b"..\\",
    b"<blockquote>",
    b"&#x202E;",
];

/// xorshift64*: small, fast, seedable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>], input: &mut Vec<u8>, max_len: usize) {
    for _ in 0..1 + rng.below(8) {
        let len = input.len();
        match rng.below(9) {
            0 if len > 0 => {
                let at = rng.below(len);
                input[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                input[at] = [0u8, 0x7f, 0x80, 0xff, b'\n', b'\r', b' ', b'<', b'>', b'"', b'=', b':'][rng.below(12)];
            }
            2 => {
                let at = rng.below(len + 1);
                let bytes: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                input.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(64)).min(len);
                input.drain(at..end);
            }
            4 if len > 0 => {
                // Repeat a piece many times: deep nesting, long lines, many parts.
                let at = rng.below(len);
                let end = (at + 1 + rng.below(128)).min(len);
                let piece = input[at..end].to_vec();
                let many = rng.below(8) == 0;
                let times = 1 + rng.below(if many { 200 } else { 4 });
                let to = rng.below(len + 1);
                input.splice(to..to, piece.iter().copied().cycle().take(piece.len() * times));
            }
            5 if !corpus.is_empty() => {
                // Splice: our head, another input's tail.
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            6 | 7 => {
                let word = DICTIONARY[rng.below(DICTIONARY.len())];
                let at = rng.below(len + 1);
                input.splice(at..at, word.iter().copied());
            }
            _ if len > 1 => {
                // Swap two bytes.
                let (a, b) = (rng.below(len), rng.below(len));
                input.swap(a, b);
            }
            _ => input.push(rng.next() as u8),
        }
    }
    input.truncate(max_len);
}

thread_local! {
    /// The message and place of the last panic on this thread (the default hook is silenced:
    /// the parser catches some panics of mail-parser on purpose, and those are not findings).
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

struct Finding {
    kind: &'static str,
    detail: String,
    input: Vec<u8>,
}

fn run_one(target: Target, input: &[u8], slow: Duration) -> Result<(), Finding> {
    let began = Instant::now();
    let result = std::panic::catch_unwind(|| target(input));
    let took = began.elapsed();
    if result.is_err() {
        let detail = LAST_PANIC.with(|p| p.borrow().clone());
        return Err(Finding { kind: "crash", detail, input: input.to_vec() });
    }
    if took > slow {
        return Err(Finding { kind: "slow", detail: format!("took {took:?}"), input: input.to_vec() });
    }
    Ok(())
}

fn load_corpus(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|f| std::fs::read(f).ok()).collect()
}

fn save(artifacts: &Path, target: &str, finding: &Finding) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    finding.input.hash(&mut hasher);
    let dir = artifacts.join(target);
    std::fs::create_dir_all(&dir).expect("create the artifacts folder");
    let path = dir.join(format!("{}-{:016x}", finding.kind, hasher.finish()));
    std::fs::write(&path, &finding.input).expect("write the artifact");
    path
}

struct Args {
    seconds: f64,
    seed: u64,
    corpus: PathBuf,
    artifacts: PathBuf,
    slow: Duration,
    targets: Vec<String>,
}

fn args() -> Args {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut a = Args {
        seconds: 30.0,
        seed: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64),
        corpus: here.join("corpus"),
        artifacts: here.join("artifacts"),
        slow: Duration::from_millis(5000),
        targets: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().unwrap_or_else(|| panic!("{name} needs a value"));
        match arg.as_str() {
            "--seconds" => a.seconds = value("--seconds").parse().expect("--seconds N"),
            "--seed" => a.seed = value("--seed").parse().expect("--seed S"),
            "--corpus" => a.corpus = value("--corpus").into(),
            "--artifacts" => a.artifacts = value("--artifacts").into(),
            "--slow-ms" => a.slow = Duration::from_millis(value("--slow-ms").parse().expect("--slow-ms N")),
            "-h" | "--help" => {
                println!(
                    "run_corpus [--seconds N] [--seed S] [--corpus DIR] [--artifacts DIR] [--slow-ms N] [TARGET…]"
                );
                println!("targets: {}", TARGETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "));
                std::process::exit(0);
            }
            name => a.targets.push(name.to_string()),
        }
    }
    a.seed |= 1;
    a
}

fn main() {
    let args = args();
    std::panic::set_hook(Box::new(|info| {
        let text = format!("{info}");
        LAST_PANIC.with(|p| *p.borrow_mut() = text);
    }));
    let selected: Vec<(&str, Target)> = TARGETS
        .iter()
        .copied()
        .filter(|(name, _)| args.targets.is_empty() || args.targets.iter().any(|t| t == name))
        .collect();
    if selected.is_empty() {
        eprintln!("no such target: {:?}", args.targets);
        std::process::exit(2);
    }
    println!(
        "fuzz smoke: seed {} (replay with --seed {}), {:.0} s over {} target(s)",
        args.seed,
        args.seed,
        args.seconds,
        selected.len()
    );
    let per_target = Duration::from_secs_f64(args.seconds / selected.len() as f64);
    let mut rng = Rng(args.seed);
    let (mut total, mut findings) = (0u64, 0usize);
    let began = Instant::now();
    for (name, target) in selected {
        let corpus = load_corpus(&args.corpus.join(name));
        let max_len = corpus.iter().map(Vec::len).max().unwrap_or(0).max(MAX_LEN);
        let started = Instant::now();
        let mut execs = 0u64;
        let report = |finding: Finding, findings: &mut usize| {
            let path = save(&args.artifacts, name, &finding);
            eprintln!("{name}: {} ({}) saved as {}", finding.kind, finding.detail.trim(), path.display());
            *findings += 1;
        };
        // The corpus as it is, then mutations until the target's time is spent.
        for input in &corpus {
            execs += 1;
            if let Err(f) = run_one(target, input, args.slow) {
                report(f, &mut findings);
            }
        }
        let mut input = Vec::new();
        while started.elapsed() < per_target {
            input.clear();
            if !corpus.is_empty() && rng.below(16) != 0 {
                input.extend_from_slice(&corpus[rng.below(corpus.len())]);
            }
            mutate(&mut rng, &corpus, &mut input, max_len);
            execs += 1;
            if let Err(f) = run_one(target, &input, args.slow) {
                report(f, &mut findings);
                if findings >= 20 {
                    break;
                }
            }
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{name}: {} corpus file(s), {execs} executions in {secs:.1} s ({:.0}/s)",
            corpus.len(),
            execs as f64 / secs.max(1e-9)
        );
        total += execs;
    }
    println!("fuzz smoke: {total} executions in {:.1} s, {findings} finding(s)", began.elapsed().as_secs_f64());
    if findings > 0 {
        std::process::exit(1);
    }
}
