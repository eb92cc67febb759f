//! How guichet connects to PostgreSQL (GUICHET_TEST_POSTGRES; on SQLite there is no connection to
//! check and the test says so): a server on this machine is reached without TLS unless the URL
//! asks for it (`store::pg_url`: TLS over loopback protects nothing and halved the ingest's pace).
//! Built with the `postgres` feature only.
#![cfg(feature = "postgres")]

#[allow(dead_code)]
mod common;

use diesel::prelude::*;
use diesel::sql_types::Bool;
use guichet::store::{AnyConnection, Store};

#[derive(QueryableByName)]
struct Encrypted {
    #[diesel(sql_type = Bool)]
    ssl: bool,
}

fn encrypted(url: &str) -> bool {
    let store = Store::open_and_migrate(url, 2).unwrap();
    store
        .read(|c| match c {
            AnyConnection::Postgresql(pg) => {
                Ok(diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                    .get_result::<Encrypted>(pg)?
                    .ssl)
            }
            _ => unreachable!("a PostgreSQL store"),
        })
        .unwrap()
}

#[test]
fn a_server_on_this_machine_is_reached_without_tls_unless_the_url_asks_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::guichet::TestDatabase::new(dir.path());
    if !db.url.starts_with("postgres") {
        eprintln!("SQLite: no connection to check (set GUICHET_TEST_POSTGRES)");
        return;
    }
    if std::env::var_os("PGSSLMODE").is_some() {
        eprintln!("PGSSLMODE is set: libpq's choice is the environment's");
        return;
    }
    assert!(db.url.contains("127.0.0.1") || db.url.contains("localhost"), "a server on this machine: {}", db.url);
    assert!(!encrypted(&db.url), "loopback without sslmode: no TLS");
    // A server offering TLS (Debian's, with its snakeoil certificate) still gets it when asked.
    if common::guichet::psql_output(&db.url, "SHOW ssl").trim() == "on" {
        assert!(encrypted(&format!("{}?sslmode=require", db.url)), "sslmode=require is kept");
    }
}
