//! `guichet copy-to URL` moves an installation to another database (SQLite → PostgreSQL when
//! GUICHET_TEST_POSTGRES is set, else SQLite → SQLite) keeping every ticket, message,
//! attachment and raw mail (and the OAuth refresh tokens).

mod common;

use std::process::Command;

use common::guichet::TestDatabase;

fn guichet(db: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args(args)
        .env("GUICHET__DATABASE__URL", db)
        .output()
        .expect("guichet runs");
    assert!(out.status.success(), "guichet {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn an_installation_copied_to_another_database_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("sqlite://{}/source.db", dir.path().display());
    let target = TestDatabase::new(&dir.path().join("target"));
    std::fs::create_dir_all(dir.path().join("target")).unwrap();
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut files: Vec<String> = std::fs::read_dir(examples)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".eml"))
        .collect();
    files.sort();
    let mut args = vec!["ingest"];
    args.extend(files.iter().map(String::as_str));
    guichet(&source, &args);
    guichet(&source, &["ingest"]); // stdin empty: quarantined, kept
    // A mailbox's OAuth refresh token (SPEC §9) goes along.
    let oauth_token = |url: &str| guichet::store::Store::open_and_migrate(url, 1).unwrap();
    oauth_token(&source)
        .write(|c| guichet::store::oauth_tokens::put(c, "support@example.com", "refresh-1", 1))
        .unwrap();
    let out = guichet(&source, &["copy-to", &target.url]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("raw_mails"));
    let copied =
        oauth_token(&target.url).read(|c| guichet::store::oauth_tokens::get(c, "support@example.com")).unwrap();
    assert_eq!(copied.as_deref(), Some("refresh-1"));

    let before = guichet(&source, &["tickets", "--json"]).stdout;
    let after = guichet(&target.url, &["tickets", "--json"]).stdout;
    assert_eq!(String::from_utf8_lossy(&before), String::from_utf8_lossy(&after));
    for n in ["1", "2"] {
        let a = guichet(&source, &["ticket", n, "--json"]).stdout;
        let b = guichet(&target.url, &["ticket", n, "--json"]).stdout;
        assert_eq!(String::from_utf8_lossy(&a), String::from_utf8_lossy(&b), "ticket {n}");
    }
    let q1 = guichet(&source, &["quarantine", "list", "--json"]).stdout;
    let q2 = guichet(&target.url, &["quarantine", "list", "--json"]).stdout;
    assert_eq!(q1, q2);
    // The copy goes on working: the same mail again is a duplicate there too, new mail numbers on.
    let out = guichet(&target.url, &["ingest", &files[0]]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("already ingested"));
    let listed = |out: &[u8]| -> Vec<serde_json::Value> {
        serde_json::from_slice::<serde_json::Value>(out).unwrap()["tickets"].as_array().unwrap().clone()
    };
    let highest = listed(&before).iter().filter_map(|t| t["number"].as_i64()).max().unwrap();
    let fresh = dir.path().join("fresh.eml");
    std::fs::write(
        &fresh,
        "From: Nouveau Client <nouveau@client.example>\r\nTo: support@example.com\r\n\
         Subject: Après la migration\r\nMessage-ID: <after-copy@client.example>\r\n\r\nBonjour.\r\n",
    )
    .unwrap();
    guichet(&target.url, &["ingest", &fresh.display().to_string()]);
    let after = listed(&guichet(&target.url, &["tickets", "--json"]).stdout);
    assert!(
        after.iter().any(|t| t["number"].as_i64() == Some(highest + 1) && t["subject"] == "Après la migration"),
        "a new mail on the copy opens ticket {}: {after:?}",
        highest + 1
    );
    // A second copy into a non-empty database is refused.
    let refused = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args(["copy-to", &target.url])
        .env("GUICHET__DATABASE__URL", &source)
        .output()
        .unwrap();
    assert!(!refused.status.success());
}
