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
use guichet::domain::{MessageKind, Priority, Status};
use guichet::store::messages::{self, NewMessage};
use guichet::store::tickets::{self, NewTicket};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

// ---- Seeding ------------------------------------------------------------------------------------

const WORDS: &[&str] = &[
    "imprimante",
    "bloquée",
    "erreur",
    "serveur",
    "connexion",
    "mot",
    "passe",
    "réseau",
    "écran",
    "clavier",
    "souris",
    "licence",
    "facture",
    "contrat",
    "logiciel",
    "mise",
    "jour",
    "version",
    "sauvegarde",
    "restauration",
    "messagerie",
    "boîte",
    "courriel",
    "pièce",
    "jointe",
    "accès",
    "droits",
    "utilisateur",
    "compte",
    "poste",
    "portable",
    "batterie",
    "chargeur",
    "wifi",
    "vpn",
    "pare",
    "feu",
    "antivirus",
    "disque",
    "mémoire",
    "lent",
    "plante",
    "redémarrage",
    "installation",
    "paramètre",
    "configuration",
    "téléphone",
    "standard",
    "ligne",
    "bonjour",
    "merci",
    "cordialement",
    "depuis",
    "hier",
    "matin",
    "toujours",
    "problème",
    "urgent",
    "demande",
    "technicien",
    "intervention",
    "rendez",
    "vous",
    "devis",
    "commande",
    "livraison",
    "toner",
    "cartouche",
    "papier",
    "bourrage",
    "scanner",
    "copie",
    "badge",
    "salle",
    "réunion",
    "projecteur",
    "câble",
    "prise",
];

fn sentence(rng: &mut StdRng, words: usize) -> String {
    let mut s = String::new();
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        // A skewed pick: some words are everywhere, most are rarer; plus synthetic words.
        let u: f64 = rng.random();
        if u < 0.7 {
            let idx = ((u / 0.7).powi(2) * WORDS.len() as f64) as usize;
            s.push_str(WORDS[idx.min(WORDS.len() - 1)]);
        } else {
            s.push_str(&format!("mot{}", rng.random_range(0..20_000)));
        }
    }
    s
}

fn seed(app: &App, o: &Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(42);
    let now = guichet::store::now();
    let batch = 2_000u64;
    let mut done = 0u64;
    println!("seeding {} tickets with {} messages each…", o.tickets, o.messages_per_ticket);
    while done < o.tickets {
        let n = batch.min(o.tickets - done);
        let seeds: Vec<u64> = (0..n).map(|_| rng.random()).collect();
        app.store.write(|c| {
            for s in &seeds {
                let mut r = StdRng::seed_from_u64(*s);
                let customer = r.random_range(0..20_000u32);
                let (requester, company) = if r.random_bool(0.01) {
                    (format!("user{}@bigcorp.example", customer % 300), Some("BigCorp"))
                } else {
                    (format!("client{customer}@cust{}.example", customer % 2_000), None)
                };
                let created = now - r.random_range(0..3 * 365 * 86_400i64);
                let words = r.random_range(3..7);
                let subject = sentence(&mut r, words);
                let number = tickets::insert_ticket(
                    c,
                    &NewTicket {
                        subject: &subject,
                        requester: &requester,
                        priority: [Priority::Low, Priority::Normal, Priority::Normal, Priority::Blocking]
                            [r.random_range(0..4)],
                        company,
                        product: Some(["Imprimantes", "Réseau", "Messagerie", "Postes"][r.random_range(0..4)]),
                        service: Some("Support"),
                        unverified: false,
                        refers_to: None,
                        queue: "support@example.com",
                        at: created,
                    },
                )?;
                let mut at = created;
                for i in 0..o.messages_per_ticket {
                    at += r.random_range(60..86_400);
                    let (kind, from) = match i % 5 {
                        4 => (MessageKind::Event, STAFF.to_string()),
                        1 | 3 => (MessageKind::Staff, STAFF.to_string()),
                        _ => (MessageKind::Customer, requester.clone()),
                    };
                    let words = r.random_range(15..60);
                    let mut text = sentence(&mut r, words);
                    if r.random_bool(0.001) {
                        text.push_str(&format!(" {RARE_WORD}"));
                    }
                    messages::insert_message(
                        c,
                        &NewMessage {
                            ticket_number: number,
                            kind,
                            from_addr: &from,
                            from_name: None,
                            at,
                            subject: if i == 0 { &subject } else { "" },
                            text: &text,
                            full_text: &text,
                            html: None,
                            mail_message_id: None,
                            raw_mail_id: None,
                            auto: false,
                            refused: &[],
                            unverified: false,
                            event: None,
                        },
                    )?;
                }
                let status = if at < now - 30 * 86_400 || r.random_bool(0.5) {
                    Status::Closed
                } else {
                    [Status::New, Status::Open, Status::Waiting][r.random_range(0..3)]
                };
                tickets::set_status(c, number, status, at)?;
            }
            Ok(())
        })?;
        done += n;
        if done.is_multiple_of(20_000) || done == o.tickets {
            println!("  {done} tickets ({:.0} s)", started.elapsed().as_secs_f64());
        }
    }
    // What an administrator runs after a bulk import: statistics for the query planner, and the
    // full-text index merged into one segment (day to day, FTS5's automerge keeps it compact).
    let sqlite = o.database_url.is_none();
    app.store.write(|c| {
        use diesel::connection::SimpleConnection;
        c.batch_execute(if sqlite {
            "ANALYZE; INSERT INTO message_search(message_search) VALUES('optimize');"
        } else {
            "ANALYZE"
        })?;
        Ok(())
    })?;
    println!("seeded in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Prints SQLite's plans (of the bundled SQLite) for the list queries of the scenarios.
fn explain(app: &App) -> anyhow::Result<()> {
    #[derive(diesel::QueryableByName)]
    struct Step {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }
    let customer = "(t.requester = 'client7654@cust1654.example' OR t.number IN (SELECT w.ticket_number FROM watchers w WHERE w.address = 'client7654@cust1654.example'))";
    let fts = |q: &str| {
        format!(
            "EXISTS (SELECT 1 FROM messages m CROSS JOIN message_search ON message_search.rowid = m.id WHERE m.ticket_number = t.number AND m.kind <> 'note' AND message_search MATCH '{q}')"
        )
    };
    let page = |w: &str| {
        format!(
            "SELECT t.number FROM tickets t LEFT JOIN reads r ON r.email = 'x' AND r.ticket_number = t.number WHERE {w} ORDER BY t.updated_at DESC, t.number DESC LIMIT 25"
        )
    };
    let queries = [
        page("+t.status IN ('new', 'open', 'waiting')"),
        page(customer),
        page(&format!("{customer} AND {}", fts("\"imprimante\""))),
        page(
            "t.number IN (SELECT m.ticket_number FROM messages m WHERE m.id IN (SELECT rowid FROM message_search WHERE message_search MATCH '\"photoconducteur\"'))",
        ),
    ];
    let sqlite_version: Vec<Step> = app.store.read(|c| {
        use diesel::RunQueryDsl;
        Ok(diesel::sql_query("SELECT sqlite_version() AS detail").load(c)?)
    })?;
    println!("SQLite {}", sqlite_version[0].detail);
    for q in queries {
        let steps: Vec<Step> = app.store.read(|c| {
            use diesel::RunQueryDsl;
            Ok(diesel::sql_query(format!("EXPLAIN QUERY PLAN {q}")).load(c)?)
        })?;
        println!("\n{q}");
        for s in steps {
            println!("  {}", s.detail);
        }
        let t = Instant::now();
        app.store.read(|c| {
            use diesel::RunQueryDsl;
            diesel::sql_query(q.clone()).execute(c)?;
            Ok(())
        })?;
        println!("  took {:.2} ms", ms(t.elapsed()));
    }
    Ok(())
}

// ---- Measuring ----------------------------------------------------------------------------------

/// A keep-alive HTTP/1.1 connection that sends GETs with a session cookie.
struct Conn {
    stream: TcpStream,
    host: String,
    cookie: String,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: std::net::SocketAddr, cookie: &str) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn { stream, host: addr.to_string(), cookie: cookie.to_string(), buf: Vec::with_capacity(1 << 16) })
    }

    /// GET `path`; returns (status, body length).
    async fn get(&mut self, path: &str) -> anyhow::Result<(u16, usize)> {
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: {}\r\nCookie: guichet_session={}\r\n\r\n", self.host, self.cookie);
        self.stream.write_all(req.as_bytes()).await?;
        self.buf.clear();
        let mut chunk = [0u8; 16 * 1024];
        let header_end = loop {
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("connection closed");
            }
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
        };
        let head = std::str::from_utf8(&self.buf[..header_end])?.to_ascii_lowercase();
        let status: u16 = head.get(9..12).unwrap_or("0").parse()?;
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
            .context("no content-length")?;
        while self.buf.len() < header_end + length {
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("connection closed in a body");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        Ok((status, length))
    }
}

struct Scenario {
    name: String,
    cookie: String,
    paths: Vec<String>,
    /// Requested once before measuring (caches; tickets already read).
    warm: Vec<String>,
    /// Requests measured, when not the command line's number.
    requests: Option<usize>,
}

impl Scenario {
    /// Warmed with its own paths: the steady state.
    fn new(name: &str, cookie: &str, paths: Vec<String>) -> Scenario {
        Scenario { name: name.into(), cookie: cookie.into(), warm: paths.clone(), paths, requests: None }
    }
}

async fn run(app: App, o: Options) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, shutdown) = Shutdown::new();
    let server = tokio::spawn(guichet::web::serve(app.clone(), listener, shutdown));

    let now = guichet::store::now();
    let (staff_cookie, _) = app.store.write(|c| guichet::auth::create_session(c, STAFF, now))?;
    let (company_cookie, _) = app.store.write(|c| guichet::auth::create_session(c, COMPANY_MEMBER, now))?;
    // The customer with the most tickets, and some ticket numbers to open (distinct, random).
    let (customer, customer_tickets, staff_tickets): (String, Vec<i64>, Vec<i64>) = app.store.read(|c| {
        use diesel::dsl::count_star;
        use diesel::prelude::*;
        use guichet::store::schema::tickets::dsl as t;
        let (who, _): (String, i64) = t::tickets
            .group_by(t::requester)
            .select((t::requester, count_star()))
            .order(count_star().desc())
            .first(c)?;
        let theirs: Vec<i64> = t::tickets.filter(t::requester.eq(&who)).select(t::number).load(c)?;
        let max: i64 = t::tickets.select(diesel::dsl::max(t::number)).first::<Option<i64>>(c)?.unwrap_or(1);
        let mut r = StdRng::seed_from_u64(7);
        let mut any: Vec<i64> = Vec::new();
        while any.len() < 500 {
            let n = r.random_range(1..=max);
            if !any.contains(&n) {
                any.push(n);
            }
        }
        Ok((who, theirs, any))
    })?;
    let (customer_cookie, _) = app.store.write(|c| guichet::auth::create_session(c, &customer, now))?;
    println!(
        "{} clients, {} requests per scenario; customer {customer} has {} tickets",
        o.clients,
        o.requests,
        customer_tickets.len()
    );
    let search = format!("/?q={RARE_WORD}&status=all");
    let staff_pages = |range: std::ops::Range<usize>| -> Vec<String> {
        staff_tickets[range].iter().map(|n| format!("/tickets/{n}")).collect()
    };
    let mut first_views =
        Scenario::new("ticket page, staff, first view (marks read)", &staff_cookie, staff_pages(250..500));
    first_views.warm = vec!["/".into()];
    let scenarios = vec![
        Scenario::new("list page, staff (all tickets)", &staff_cookie, vec!["/".into()]),
        Scenario::new("list page, customer", &customer_cookie, vec!["/".into()]),
        Scenario::new("list page, company member (shared)", &company_cookie, vec!["/".into()]),
        Scenario::new("keyword search, staff", &staff_cookie, vec![search.clone()]),
        Scenario::new("keyword search, customer", &customer_cookie, vec![search.clone()]),
        Scenario::new("keyword search, company member", &company_cookie, vec![search.clone()]),
        Scenario::new(
            "keyword search, common word, customer",
            &customer_cookie,
            vec!["/?q=imprimante&status=all".into()],
        ),
        Scenario::new("ticket page, staff", &staff_cookie, staff_pages(0..250)),
        Scenario::new(
            "ticket page, customer",
            &customer_cookie,
            customer_tickets.iter().map(|n| format!("/tickets/{n}")).collect(),
        ),
        first_views,
        Scenario::new(
            "keyword search, common word, company member",
            &company_cookie,
            vec!["/?q=imprimante&status=all".into()],
        ),
        Scenario::new("keyword search, common word, staff, open tickets", &staff_cookie, vec!["/?q=imprimante".into()]),
        Scenario::new(
            "keyword search, two common words, staff",
            &staff_cookie,
            vec!["/?q=imprimante,bonjour&status=all".into()],
        ),
        Scenario::new(
            "keyword search, common and rare word, staff",
            &staff_cookie,
            vec![format!("/?q=imprimante,{RARE_WORD}&status=all")],
        ),
        Scenario {
            requests: Some(o.stress_requests),
            ..Scenario::new(
                "keyword search, most common word, staff (stress)",
                &staff_cookie,
                vec!["/?q=imprimante&status=all".into()],
            )
        },
    ];
    let mut results: BTreeMap<usize, (String, Duration, Duration, Duration, f64, f64)> = BTreeMap::new();
    let chosen = |s: &&Scenario| o.only.as_ref().is_none_or(|only| s.name.contains(only.as_str()));
    for (i, s) in scenarios.iter().enumerate().filter(|(_, s)| chosen(s)) {
        let requests = s.requests.unwrap_or(o.requests);
        let cpu_before = cpu_seconds();
        let (p50, p99, max, rps) = measure(addr, s, o.clients, requests).await?;
        let cpu = (cpu_seconds() - cpu_before) * 1000.0 / requests as f64;
        println!(
            "{:<50} p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms   {:>6.0} req/s   {cpu:>5.2} ms CPU/req",
            s.name,
            ms(p50),
            ms(p99),
            ms(max),
            rps
        );
        results.insert(i, (s.name.clone(), p50, p99, max, rps, cpu));
    }
    println!("\nload average after measuring: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    println!("\n| scenario | p50 (ms) | p99 (ms) | max (ms) | req/s | CPU per request (ms) |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, p50, p99, max, rps, cpu) in results.values() {
        println!("| {name} | {:.2} | {:.2} | {:.2} | {rps:.0} | {cpu:.2} |", ms(*p50), ms(*p99), ms(*max));
    }
    let _ = stop.send(true);
    server.await??;
    Ok(())
}

/// CPU time of this process (server and clients), user + system, in seconds (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime and stime are the 12th and
    // 13th, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `clients` connections each send requests back to back until `total` are done (after a warm-up).
async fn measure(
    addr: std::net::SocketAddr,
    s: &Scenario,
    clients: usize,
    total: usize,
) -> anyhow::Result<(Duration, Duration, Duration, f64)> {
    // Warm-up: caches and the connection pool, not counted.
    let mut warm = Conn::open(addr, &s.cookie).await?;
    for p in &s.warm {
        let (status, _) = warm.get(p).await?;
        if status != 200 {
            bail!("{} answered {status} for {p}", s.name);
        }
    }
    let paths = Arc::new(s.paths.clone());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let paths = paths.clone();
        let next = next.clone();
        let cookie = s.cookie.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr, &cookie).await?;
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let path = &paths[i % paths.len()];
                let t = Instant::now();
                let (status, _) = conn.get(path).await?;
                latencies.push(t.elapsed());
                if status != 200 {
                    bail!("{path} answered {status}");
                }
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = started.elapsed();
    all.sort();
    let pick = |q: f64| all[((all.len() as f64 * q).ceil() as usize).saturating_sub(1).min(all.len() - 1)];
    Ok((pick(0.50), pick(0.99), *all.last().unwrap(), all.len() as f64 / elapsed.as_secs_f64()))
}
