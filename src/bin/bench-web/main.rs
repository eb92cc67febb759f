//! `bench-web`: latency of the web view on a large SQLite database (issue 5, "Measure").
//!
//! Seeds (once; the file is kept for later runs) 100,000 tickets with 1,000,000 messages through the
//! store's own functions in big transactions, starts the real server on a loopback port, and has
//! concurrent clients (keep-alive HTTP/1.1 over TCP) request the list page, a keyword search and
//! ticket pages, as staff (who see every ticket) and as customers. Prints p50 / p99 per scenario.
//!
//! Run with `scripts/bench-web` (a release build); `--help` for the options.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use guichet::app::{App, Shutdown};
use guichet::config::Settings;
use guichet::domain::{Event, MessageKind, Priority, Status};
use guichet::store::messages::{self, NewMessage};
use guichet::store::tickets::{self, NewTicket};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod measure;
mod seed;

use measure::*;
use seed::*;

const STAFF: &str = "alice@example.com";
/// A customer of a company that shares its tickets (about 1% of all tickets).
const COMPANY_MEMBER: &str = "someone@bigcorp.example";
/// The rare word of the keyword search: in about 0.1% of the messages.
const RARE_WORD: &str = "photoconducteur";

struct Options {
    db: String,
    /// A PostgreSQL database instead of the SQLite file (`--database-url postgres://…`).
    database_url: Option<String>,
    tickets: u64,
    messages_per_ticket: u64,
    clients: usize,
    requests: usize,
    reseed: bool,
    explain: bool,
    /// Only the scenarios whose name contains this (for profiling one of them).
    only: Option<String>,
    /// Requests of the stress case (the most common word searched by staff).
    stress_requests: usize,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        db: "target/bench-web/guichet.db".into(),
        database_url: None,
        tickets: 100_000,
        messages_per_ticket: 10,
        clients: 8,
        requests: 2_000,
        reseed: false,
        explain: false,
        only: None,
        stress_requests: 40,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().context(format!("{a} needs a value"));
        match a.as_str() {
            "--db" => o.db = value()?,
            "--database-url" => o.database_url = Some(value()?),
            "--tickets" => o.tickets = value()?.parse()?,
            "--messages-per-ticket" => o.messages_per_ticket = value()?.parse()?,
            "--clients" => o.clients = value()?.parse()?,
            "--requests" => o.requests = value()?.parse()?,
            "--reseed" => o.reseed = true,
            "--explain" => o.explain = true,
            "--only" => o.only = Some(value()?),
            "--stress-requests" => o.stress_requests = value()?.parse()?,
            "--help" | "-h" => {
                println!(
                    "bench-web [--db FILE | --database-url postgres://…] [--tickets N] [--messages-per-ticket N] [--clients N] [--requests N] [--reseed] [--explain] [--only TEXT] [--stress-requests N]\n\
                     defaults: target/bench-web/guichet.db, 100000 tickets, 10 messages each, 8 clients, 2000 requests per scenario"
                );
                std::process::exit(0);
            }
            other => bail!("unknown option {other}"),
        }
    }
    Ok(o)
}

fn main() -> anyhow::Result<()> {
    let o = options()?;
    // The server's log on stderr when asked (`RUST_LOG=guichet::sql=trace`: every statement).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    if o.reseed {
        let _ = std::fs::remove_file(&o.db);
        let _ = std::fs::remove_file(format!("{}-wal", o.db));
        let _ = std::fs::remove_file(format!("{}-shm", o.db));
    }
    let path = std::fs::canonicalize(std::path::Path::new(&o.db).parent().unwrap_or(std::path::Path::new(".")))
        .or_else(|_| {
            std::fs::create_dir_all(std::path::Path::new(&o.db).parent().unwrap())?;
            std::fs::canonicalize(std::path::Path::new(&o.db).parent().unwrap())
        })?
        .join(std::path::Path::new(&o.db).file_name().unwrap());
    let overlay = format!(
        r#"
[helpdesk]
staff = ["{STAFF}"]
[[company]]
name = "BigCorp"
domains = ["bigcorp.example"]
shared = true
[database]
url = "{}"
pool_size = 16
[web]
listen = "127.0.0.1:0"
"#,
        o.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", path.display()))
    );
    // An explicit, empty environment: the benchmark's database is this file whatever GUICHET__ says.
    let file = std::env::temp_dir().join(format!("bench-web-{}.toml", std::process::id()));
    std::fs::write(&file, &overlay)?;
    let settings = Settings::load_from(Some(&file), std::path::Path::new("/nonexistent"), &[]);
    let _ = std::fs::remove_file(&file);
    let settings = settings?;
    let app = App::open(settings)?;
    let existing: i64 = app.store.read(|c| {
        use diesel::prelude::*;
        Ok(guichet::store::schema::tickets::table.count().get_result(c)?)
    })?;
    if existing == 0 {
        seed(&app, &o)?;
    } else {
        println!(
            "using the {existing} tickets already in {}",
            o.database_url.as_deref().unwrap_or(&path.display().to_string())
        );
    }
    if o.explain {
        return explain(&app);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(app, o))
}
