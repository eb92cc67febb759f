//! `guichet-bench`: the benchmark driver behind `scripts/bench-ingest` and `scripts/bench-sender`.
//! Not part of the `guichet` binary; it talks to the private mail stack (`scripts/mail-stack`),
//! runs the real `guichet` binary (one or several daemons), and reads its database (SQLite, or
//! PostgreSQL when built with the `postgres` feature) to time what it does.
//!
//! - `fill`: N realistic mails APPENDed over several pipelined IMAP connections (LITERAL+);
//! - `ingest`: fill, optionally time Dovecot alone, start `guichet run`, time the drain of the
//!   backlog, then a steady stream at a fixed rate with per-mail latency (APPEND → committed row);
//! - `profile-ingest`: the same mix parsed and committed through the library, no IMAP (where the
//!   time goes);
//! - `sender`: N pending notifications drained into the real Postfix, then a 10,000-deep queue;
//! - `html`: our HTML → text conversion against html5ever's bare tokenizer (issue 18);
//! - `free-port`: prints a free loopback TCP port.
//!
//! Every metric is printed as one line: `name  value  unit`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use clap::{Args, Parser, Subcommand};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use guichet::store::AnyConnection;
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};

mod imap;
mod mix;
#[macro_use]
mod daemon;
mod html;
mod ingest;
mod samplers;
mod sender;

use daemon::*;
use imap::*;
use ingest::*;
use mix::*;
use samplers::*;
use sender::*;

#[derive(Parser)]
#[command(name = "guichet-bench", about = "Benchmarks of Guichet against the private mail stack")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

// Parsed once per run: the size of the largest subcommand's arguments does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// APPEND N realistic mails to a mailbox (pipelined, several connections)
    Fill {
        #[command(flatten)]
        imap: ImapArgs,
        #[command(flatten)]
        mix: MixArgs,
    },
    /// Fill, then time `guichet run` draining the backlog, then a steady stream's latency
    Ingest {
        #[command(flatten)]
        imap: ImapArgs,
        #[command(flatten)]
        mix: MixArgs,
        #[command(flatten)]
        daemon: DaemonArgs,
        /// Steady stream: mails per second appended while the daemon runs (0 = no stream)
        #[arg(long, default_value_t = 200)]
        rate: u32,
        /// Steady stream: seconds
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        /// Also time Dovecot alone: UID FETCH of the whole backlog, 100 per command, no database
        #[arg(long)]
        baseline: bool,
        /// `guichet run` daemons on the same database (each mailbox is read by one at a time)
        #[arg(long, default_value_t = 1)]
        daemons: usize,
        /// Configuration of each daemon, in order (comma-separated; default: `--config` for all)
        #[arg(long, value_delimiter = ',')]
        daemon_configs: Vec<PathBuf>,
        /// Each daemon's `web.metrics_listen` (comma-separated, in order): statements per mail
        /// are read from its `guichet_db_statements_total`
        #[arg(long, value_delimiter = ',')]
        metrics: Vec<String>,
        /// The mail stack's Dovecot master: its CPU (and its children's) per mail
        #[arg(long)]
        dovecot_pid: Option<u32>,
        /// Seconds after the drain at which the daemons' steady memory is read (0 = not read)
        #[arg(long, default_value_t = 15)]
        settle: u64,
        /// A file created when the backlog is drained (a profiler started at the daemons' start
        /// stops there)
        #[arg(long)]
        drained_file: Option<PathBuf>,
    },
    /// Parse and commit the mix through the library (no IMAP): where the ingest time goes
    ProfileIngest {
        #[command(flatten)]
        mix: MixArgs,
        /// guichet configuration (its database is filled)
        #[arg(long)]
        config: PathBuf,
        /// Creates the (new) SQLite database with this page size first (experiment)
        #[arg(long)]
        page_size: Option<u32>,
    },
    /// Seed pending notifications, then time `guichet run` draining them into SMTP
    Sender {
        #[command(flatten)]
        daemon: DaemonArgs,
        /// Notifications in the first run
        #[arg(long, default_value_t = 2000)]
        count: usize,
        /// Depth of the second queue (claim query time, memory, drain time); 0 = skip
        #[arg(long, default_value_t = 10_000)]
        queue: usize,
        /// Domain of the customers (Postfix should discard it)
        #[arg(long, default_value = "discard.example")]
        domain: String,
        /// The same configuration with [smtp] on a null SMTP server (smtp-sink): a last run of
        /// `count` notifications measures the sender without Postfix
        #[arg(long)]
        sink_config: Option<PathBuf>,
    },
    /// Our HTML → text (parse/html.rs) against html5ever's bare tokenizer, same bodies
    Html {
        /// Timed rounds per case and side (best and median are printed)
        #[arg(long, default_value_t = 15)]
        rounds: usize,
        /// Where the `.eml` fixtures are (their `text/html` parts are the first case)
        #[arg(long)]
        fixtures: Option<PathBuf>,
    },
    /// Prints a free loopback TCP port
    FreePort,
}

#[derive(Args, Clone)]
struct ImapArgs {
    #[arg(long, default_value = "127.0.0.1")]
    imap_host: String,
    #[arg(long)]
    imap_port: u16,
    #[arg(long, default_value = "support@example.com")]
    user: String,
    /// Spread the mails over these mailbox users (comma-separated; default: `--user` alone).
    /// Mail i goes to user i mod M; the fill's connections are shared out among them.
    #[arg(long, value_delimiter = ',')]
    mailbox_users: Vec<String>,
    #[arg(long, default_value = "secret")]
    password: String,
    #[arg(long, default_value = "INBOX")]
    folder: String,
    /// Parallel IMAP connections for the fill
    #[arg(long, default_value_t = 4)]
    conns: usize,
    /// APPENDs in flight per connection
    #[arg(long, default_value_t = 16)]
    window: usize,
}

impl ImapArgs {
    /// The mailbox users the mails are spread over (at least one).
    fn users(&self) -> Vec<String> {
        if self.mailbox_users.is_empty() { vec![self.user.clone()] } else { self.mailbox_users.clone() }
    }

    /// The same server, logged in as `user`.
    fn as_user(&self, user: &str) -> ImapArgs {
        ImapArgs { user: user.to_string(), ..self.clone() }
    }
}

#[derive(Args, Clone)]
struct MixArgs {
    /// Mails in the backlog
    #[arg(long, default_value_t = 5000)]
    count: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Instead of the mix: every mail carries one attachment of this many bytes (memory test)
    #[arg(long)]
    attachment_bytes: Option<usize>,
}

#[derive(Args, Clone)]
struct DaemonArgs {
    /// The guichet binary to run
    #[arg(long)]
    guichet: PathBuf,
    #[arg(long)]
    config: PathBuf,
    /// The SQLite file of that configuration
    #[arg(long, required_unless_present = "database_url", conflicts_with = "database_url")]
    db: Option<PathBuf>,
    /// Or its database URL (`sqlite://…`, or `postgres://…` with the `postgres` feature)
    #[arg(long)]
    database_url: Option<String>,
    /// Where the daemon's pid is written (so that the calling script can always stop it)
    #[arg(long)]
    pidfile: PathBuf,
    /// Daemon logs go here
    #[arg(long)]
    logdir: PathBuf,
    /// Gives up after this many seconds
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Fill { imap, mix } => {
            let plan = Plan::new(&mix, 0);
            let t = Instant::now();
            let bytes = fill(&imap, &plan, 0..plan.n_fill)?;
            let secs = t.elapsed().as_secs_f64();
            metric("fill_mails", plan.n_fill as f64, "mails");
            metric("fill_mb", mb(bytes), "MB");
            metric("fill_mails_per_s", plan.n_fill as f64 / secs, "mails/s");
            Ok(())
        }
        Cmd::Ingest {
            imap,
            mix,
            daemon,
            rate,
            seconds,
            baseline,
            daemons,
            daemon_configs,
            metrics,
            dovecot_pid,
            settle,
            drained_file,
        } => {
            let configs: Vec<PathBuf> = (0..daemons.max(1))
                .map(|k| daemon_configs.get(k).cloned().unwrap_or_else(|| daemon.config.clone()))
                .collect();
            let extra = Observe { metrics, dovecot_pid, settle: Duration::from_secs(settle), drained_file };
            ingest_bench(&imap, &mix, &daemon, &configs, rate, seconds, baseline, &extra)
        }
        Cmd::ProfileIngest { mix, config, page_size } => profile_ingest(&mix, &config, page_size),
        Cmd::Sender { daemon, count, queue, domain, sink_config } => {
            sender_bench(&daemon, count, queue, &domain, sink_config.as_deref())
        }
        Cmd::Html { rounds, fixtures } => html::html_bench(&fixtures.unwrap_or_else(html::default_fixtures), rounds),
        Cmd::FreePort => {
            println!("{}", std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port());
            Ok(())
        }
    }
}

fn metric(name: &str, value: f64, unit: &str) {
    let v = if value.abs() >= 100.0 || value == value.trunc() { format!("{value:.0}") } else { format!("{value:.2}") };
    println!("{name:<36} {v:>12}  {unit}");
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}
