//! The daemons under test and what the driver reads of their database.

use super::*;

pub(crate) struct Daemon {
    pub(crate) child: Child,
    pub(crate) pidfile: PathBuf,
}

impl Daemon {
    /// `guichet -c config run`, logging to `guichet-{label}.log`, its pid written to `pidfile`.
    pub(crate) fn start(d: &DaemonArgs, config: &Path, label: &str, pidfile: &Path) -> anyhow::Result<Daemon> {
        let log = std::fs::File::create(d.logdir.join(format!("guichet-{label}.log")))?;
        let child = Command::new(&d.guichet)
            .arg("-c")
            .arg(config)
            .arg("run")
            .env(
                "RUST_LOG",
                std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "info,async_imap=warn,lettre=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", d.guichet.display()))?;
        std::fs::write(pidfile, child.id().to_string())?;
        Ok(Daemon { child, pidfile: pidfile.to_path_buf() })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// (VmRSS, VmHWM) in kB.
    pub(crate) fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// User + system CPU seconds used so far.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let after = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks = |k: usize| f.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // Fields after the command: state(0) … utime(11) stime(12); USER_HZ is 100 on Linux.
        (ticks(11) + ticks(12)) / 100.0
    }

    /// SIGTERM, then waits (SIGKILL after 30 s). True when it exited 0.
    pub(crate) fn stop(mut self) -> bool {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        let ok = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status.success(),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break false;
                }
            }
        };
        let _ = std::fs::remove_file(&self.pidfile);
        ok
    }
}

/// Peaks of the daemon's resident memory, sampled every 25 ms (kB): VmRSS, and its private part
/// (RssAnon: heap, buffers) apart from file pages (RssFile: the binary, and the SQLite file that
/// `PRAGMA mmap_size` maps, which the kernel can drop at any time).
#[derive(Default, Clone, Copy)]
pub(crate) struct RssPeaks {
    pub(crate) rss: u64,
    pub(crate) anon: u64,
    pub(crate) file: u64,
}

pub(crate) struct RssSampler {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) handle: std::thread::JoinHandle<RssPeaks>,
}

impl RssSampler {
    pub(crate) fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut peak = RssPeaks::default();
            while !s.load(Ordering::Relaxed) {
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let field = |name: &str| {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()))
                        .unwrap_or(0)
                };
                peak.rss = peak.rss.max(field("VmRSS:"));
                peak.anon = peak.anon.max(field("RssAnon:"));
                peak.file = peak.file.max(field("RssFile:"));
                std::thread::sleep(Duration::from_millis(25));
            }
            peak
        });
        RssSampler { stop, handle }
    }

    pub(crate) fn finish(self) -> RssPeaks {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

#[derive(QueryableByName)]
pub(crate) struct CountRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) n: i64,
}

#[derive(QueryableByName)]
pub(crate) struct StateRow {
    #[diesel(sql_type = Text)]
    pub(crate) state: String,
    #[diesel(sql_type = BigInt)]
    pub(crate) n: i64,
}

impl DaemonArgs {
    /// The database URL of the daemons' configuration.
    pub(crate) fn url(&self) -> String {
        match (&self.database_url, &self.db) {
            (Some(url), _) => url.clone(),
            (None, Some(path)) => format!("sqlite://{}", path.display()),
            (None, None) => String::new(), // clap requires one of them
        }
    }
}

/// Runs `$body` with `$c` bound to the concrete connection inside an [`AnyConnection`] (raw SQL
/// is checked per backend; the placeholders differ: `?` on SQLite, `$1` on PostgreSQL).
macro_rules! on_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            #[cfg(feature = "postgres")]
            AnyConnection::Postgresql($c) => $body,
            AnyConnection::Sqlite($c) => $body,
        }
    };
}

/// A reader on the daemons' database: their SQLite file (WAL: it never blocks the daemon's
/// writer) or their PostgreSQL database. Waits until the daemon has created `raw_mails`.
pub(crate) fn open_db(url: &str, timeout: Duration) -> anyhow::Result<AnyConnection> {
    if url.starts_with("postgres") && !cfg!(feature = "postgres") {
        bail!("{url}: this guichet-bench was built without the `postgres` feature");
    }
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(mut c) = connect_db(url)
            && count(&mut c, "SELECT count(*) AS n FROM raw_mails").is_ok()
        {
            return Ok(c);
        }
        if Instant::now() > deadline {
            bail!("database {url} not ready after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn connect_db(url: &str) -> anyhow::Result<AnyConnection> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if !Path::new(path).exists() {
            bail!("{path} does not exist yet");
        }
        let mut c = SqliteConnection::establish(path)?;
        c.batch_execute("PRAGMA busy_timeout = 10000;")?;
        return Ok(AnyConnection::Sqlite(c));
    }
    #[cfg(feature = "postgres")]
    if url.starts_with("postgres") {
        let mut c = diesel::PgConnection::establish(url)?;
        // Told apart from the daemons' connections in pg_stat_activity.
        c.batch_execute("SET application_name = 'guichet-bench'")?;
        return Ok(AnyConnection::Postgresql(c));
    }
    bail!("unsupported database URL {url}")
}

pub(crate) fn count(c: &mut AnyConnection, sql: &str) -> anyhow::Result<i64> {
    Ok(on_backend!(c, c => diesel::sql_query(sql).get_result::<CountRow>(c)?.n))
}

/// The mean size of the outbox's mails as the sender composes them (the first 200: the outbox
/// keeps descriptions, `notify::pending`), with the compiled-in templates.
pub(crate) fn mean_mail_bytes(c: &mut AnyConnection) -> anyhow::Result<f64> {
    use guichet::store::outbox::OutboxRow;
    use guichet::store::schema::outbox;
    let rows: Vec<OutboxRow> = outbox::table.order(outbox::id).limit(200).select(OutboxRow::as_select()).load(c)?;
    let renderer = guichet::notify::render::Renderer::new(None)?;
    let mut total = 0;
    for row in &rows {
        let mail =
            guichet::notify::pending::mail_of(&mut |sha| guichet::store::messages::blob_data(c, sha), &renderer, row)?;
        total += mail.map_err(|e| anyhow::anyhow!("cannot compose notification {}: {}", row.id, e.0))?.len();
    }
    Ok(if rows.is_empty() { 0.0 } else { total as f64 / rows.len() as f64 })
}

pub(crate) fn outbox_states(c: &mut AnyConnection) -> anyhow::Result<HashMap<String, i64>> {
    let sql = "SELECT state, count(*) AS n FROM outbox GROUP BY state";
    let rows: Vec<StateRow> = on_backend!(c, c => diesel::sql_query(sql).load(c)?);
    Ok(rows.into_iter().map(|r| (r.state, r.n)).collect())
}

/// The raw mails committed after `last` (id order): (id, message key).
pub(crate) fn raw_mails_after(c: &mut AnyConnection, last: i64) -> anyhow::Result<Vec<(i64, String)>> {
    use guichet::store::schema::raw_mails::dsl as r;
    let q = r::raw_mails.filter(r::id.gt(last)).order(r::id).select((r::id, r::message_key));
    Ok(on_backend!(c, c => q.load(c)?))
}

/// Per mailbox (the `source` of its raw mails): mails committed, and the lease holder now.
pub(crate) fn per_mailbox(c: &mut AnyConnection) -> anyhow::Result<Vec<(String, i64, Option<String>)>> {
    use guichet::store::schema::mailbox_state::dsl as m;
    let rows: Vec<StateRow> = on_backend!(c, c => {
        diesel::sql_query("SELECT source AS state, count(*) AS n FROM raw_mails GROUP BY source").load(c)?
    });
    let q = m::mailbox_state.select((m::name, m::lease_holder));
    let holders: HashMap<String, Option<String>> = on_backend!(c, c => q.load(c)?).into_iter().collect();
    let mut out: Vec<_> =
        rows.into_iter().map(|r| (r.state.clone(), r.n, holders.get(&r.state).cloned().flatten())).collect();
    out.sort();
    Ok(out)
}
