//! Short-lived commands exit cleanly, every time (issue 17): on PostgreSQL (GUICHET_TEST_POSTGRES)
//! `guichet ticket N --json` used to die of SIGSEGV after printing its whole answer, in 2 % of
//! runs, when the connection pool was still opening a connection on a thread of its own while the
//! process exited; `guichet ingest`, the MTA pipe, would then have reported a stored mail as failed.

mod common;

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use common::guichet::TestDatabase;

const INGESTS: usize = 120;
const READS: usize = 150;

fn guichet(db: &str, args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args(args)
        .env("GUICHET__DATABASE__URL", db)
        .env_remove("GUICHET_CONFIG")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("guichet runs");
    if let Some(bytes) = stdin {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn assert_clean(what: &str, out: &std::process::Output) {
    assert_eq!(out.status.signal(), None, "{what} died of a signal: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what}: {:?} {}", out.status, String::from_utf8_lossy(&out.stderr));
}

#[test]
fn commands_and_the_pipe_exit_without_a_signal_hundreds_of_times() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::new(dir.path());
    assert_clean("migrate", &guichet(&db.url, &["migrate"], None));

    for i in 0..INGESTS {
        let mail = format!(
            "From: client{i}@customer.example\r\nTo: support@example.com\r\nSubject: Panne {i}\r\n\
             Message-ID: <exit{i}@customer.example>\r\n\r\nPlus rien ne marche.\r\n"
        );
        let out = guichet(&db.url, &["ingest"], Some(mail.as_bytes()));
        assert_clean(&format!("ingest #{i}"), &out);
    }
    for i in 0..READS {
        let n = (i % INGESTS + 1).to_string();
        let out = guichet(&db.url, &["ticket", &n, "--json"], None);
        assert_clean(&format!("ticket {n} --json (run {i})"), &out);
        let t: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the whole JSON");
        assert_eq!(t["number"].to_string(), n);
    }
    let out = guichet(&db.url, &["tickets", "--json"], None);
    assert_clean("tickets --json", &out);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["total"], INGESTS);
}
