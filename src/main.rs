//! The `guichet` command: parse the command line, load the settings, run the application.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use guichet::app::App;
use guichet::config::Settings;
use guichet::desk::inbound::Outcome;
use guichet::{cli, run};

#[derive(Parser)]
#[command(name = "guichet", version, about = "Email-driven helpdesk daemon")]
struct Cli {
    /// Configuration file (also GUICHET_CONFIG)
    #[arg(short = 'c', long = "config", env = "GUICHET_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything on embedded defaults: SQLite in ./guichet-demo/, sample mails, web view
    Demo {
        /// Ingest the samples and print the login link, then exit (no web server)
        #[arg(long)]
        no_serve: bool,
    },
    /// The daemon: mailboxes, outbox sender and web server, until SIGINT/SIGTERM
    Run,
    /// Apply pending database migrations and exit
    Migrate,
    /// MTA pipe mode: ingest raw mails from files or stdin (exit 75 = temporary failure)
    Ingest { files: Vec<PathBuf> },
    /// Print a fresh login URL for an address
    LoginLink { email: String },
    /// Print a staff member's personal command address (mail sent there is authenticated as theirs)
    StaffAddress { email: String },
    /// List all tickets
    Tickets {
        #[arg(long)]
        json: bool,
    },
    /// One ticket with its whole conversation, internal notes included
    Ticket {
        number: i64,
        #[arg(long)]
        json: bool,
    },
    /// Mails that could not be processed
    Quarantine {
        #[command(subcommand)]
        action: QuarantineAction,
    },
    /// Mailboxes and outbox at a glance
    Status {
        #[arg(long)]
        json: bool,
    },
    /// OAuth 2.0 device-code login for a mailbox's account: prints a code to type, keeps the refresh token
    OauthLogin {
        /// The mailbox's (or [smtp]'s) username
        username: String,
    },
    /// Check the configuration and connect to the database, every mailbox and the SMTP server
    CheckConfig,
    /// Write a consistent copy of a SQLite installation, also while the daemon runs
    Backup { file: PathBuf },
    /// Erase a person (GDPR): their messages, files, raw mails, sessions and address
    Forget { email: String },
    /// Copy the whole installation into another, empty database (e.g. SQLite → PostgreSQL)
    CopyTo {
        /// The target database URL (sqlite://… or postgres://…); it is migrated first
        url: String,
    },
}

#[derive(Subcommand)]
enum QuarantineAction {
    /// List quarantined mails with their reason
    List {
        #[arg(long)]
        json: bool,
    },
    /// Process a quarantined mail again
    Retry { id: i64 },
}

/// sysexits.h: the MTA keeps the mail and tries again later.
const EX_TEMPFAIL: u8 = 75;
const EX_CONFIG: u8 = 78;

/// glibc gives every thread that allocates under contention an arena of its own and keeps their
/// freed memory: with tokio's blocking threads each handling megabyte mails, the daemon's heap
/// grew to ~580 MiB against ~120 MiB with two arenas, at no measurable cost in speed
/// (BENCHMARKS.md, "Ingest"). `MALLOC_ARENA_MAX` in the environment still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A pipe transport with a wrong argument is a configuration error too: the MTA keeps the mail.
        Err(e) if e.use_stderr() && std::env::args().any(|a| a == "ingest") => {
            let _ = e.print();
            return ExitCode::from(EX_TEMPFAIL);
        }
        Err(e) => e.exit(),
    };
    if let Command::Demo { no_serve } = cli.command {
        guichet::telemetry::init(Default::default());
        return report(run::demo(!no_serve));
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("guichet: {e:#}");
            if matches!(cli.command, Command::CheckConfig) {
                println!("configuration: FAILED: {e:#}");
            }
            // In pipe mode a configuration error is not the mail's fault: the MTA keeps it and
            // retries (SPEC §7) rather than bouncing it to the customer.
            let code = if matches!(cli.command, Command::Ingest { .. }) { EX_TEMPFAIL } else { EX_CONFIG };
            return ExitCode::from(code);
        }
    };
    guichet::telemetry::init(settings.log.format);
    match cli.command {
        Command::Ingest { files } => ingest(settings, files),
        Command::CheckConfig => match guichet::ops::check::check_config(&settings) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => report(Err(e)),
        },
        Command::Migrate => report(guichet::store::Store::open(&settings.database.url, 2).and_then(|s| {
            let applied = s.migrate()?;
            println!("{} migration(s) applied", applied.len());
            Ok(())
        })),
        Command::Run => report(App::open_daemon(settings).and_then(run::daemon)),
        Command::CopyTo { url } => report(cli::copy_to(&settings, &url)),
        other => report(App::open(settings).and_then(|app| match other {
            Command::LoginLink { email } => cli::login_link(&app, &email),
            Command::StaffAddress { email } => cli::staff_address(&app, &email),
            Command::Tickets { json } => cli::tickets(&app, json),
            Command::Ticket { number, json } => cli::ticket(&app, number, json),
            Command::Quarantine { action: QuarantineAction::List { json } } => cli::quarantine_list(&app, json),
            Command::Quarantine { action: QuarantineAction::Retry { id } } => cli::quarantine_retry(&app, id),
            Command::Status { json } => cli::status(&app, json),
            Command::OauthLogin { username } => cli::oauth_login(&app, &username),
            Command::Backup { file } => guichet::ops::commands::backup(&app, &file),
            Command::Forget { email } => guichet::ops::commands::forget(&app, &email),
            Command::Demo { .. }
            | Command::CheckConfig
            | Command::Run
            | Command::Migrate
            | Command::Ingest { .. }
            | Command::CopyTo { .. } => {
                unreachable!()
            }
        })),
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("guichet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Pipe mode: exit 0 only once every mail is durably stored (as a ticket change, a duplicate
/// or in quarantine); any failure to store is temporary for the MTA (75), which retries.
fn ingest(settings: Settings, files: Vec<PathBuf>) -> ExitCode {
    let app = match App::open(settings) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("guichet: {e:#}");
            return ExitCode::from(EX_TEMPFAIL);
        }
    };
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    if files.is_empty() {
        let mut data = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut data) {
            eprintln!("guichet: cannot read standard input: {e}");
            return ExitCode::from(EX_TEMPFAIL);
        }
        inputs.push(("stdin".into(), data));
    } else {
        for f in &files {
            match std::fs::read(f) {
                Ok(data) => inputs.push((f.display().to_string(), data)),
                Err(e) => {
                    eprintln!("guichet: cannot read {}: {e}", f.display());
                    return ExitCode::from(EX_TEMPFAIL);
                }
            }
        }
    }
    for (name, data) in inputs {
        match app.ingest_one(&data, "pipe") {
            Ok(Outcome::Ticket { number, created }) => {
                println!("{name}: {} ticket #{number}", if created { "opened" } else { "added to" })
            }
            Ok(Outcome::Duplicate) => println!("{name}: already ingested"),
            Ok(Outcome::Dropped(why)) => println!("{name}: kept, not ticketed ({why})"),
            Ok(Outcome::Report { ticket }) => println!("{name}: delivery report (ticket {ticket:?})"),
            Ok(Outcome::Quarantined(why)) => println!("{name}: quarantined ({why})"),
            Err(e) => {
                eprintln!("guichet: {name}: not stored, try again later: {e:#}");
                return ExitCode::from(EX_TEMPFAIL);
            }
        }
    }
    ExitCode::SUCCESS
}
