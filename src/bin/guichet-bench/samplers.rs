//! Samplers of PostgreSQL's backends, Dovecot's baseline and the in-process ingest profile.

use super::*;

/// On PostgreSQL, every 20 ms: which backends of the database serve the daemons (the driver's
/// own connections are named `guichet-bench`), how many of them wait on a lock (row locks of
/// concurrent transactions), and each one's CPU time and voluntary context switches from /proc
/// (a backend sleeps once per statement it waits for, so switches ≈ round trips). None on SQLite.
pub(crate) struct PgSampler {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) handle: std::thread::JoinHandle<PgSamples>,
}

#[derive(Default)]
pub(crate) struct PgSamples {
    pub(crate) samples: usize,
    /// Samples in which at least one backend waited on a lock.
    pub(crate) waiting: usize,
    /// Sum over samples of the backends waiting on a lock.
    pub(crate) waiters: i64,
    /// Backend pid → (CPU seconds, voluntary context switches), last seen.
    pub(crate) backends: HashMap<i64, (f64, u64)>,
}

#[derive(QueryableByName)]
pub(crate) struct BackendRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) pid: i64,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub(crate) waiting: bool,
}

/// (CPU seconds, voluntary context switches) of a process, from /proc.
pub(crate) fn proc_cpu_and_switches(pid: i64) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let cpu = (f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let switches = status.lines().find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?.trim().parse().ok()?;
    Some((cpu, switches))
}

impl PgSampler {
    pub(crate) fn start(url: &str) -> anyhow::Result<Option<PgSampler>> {
        if !url.starts_with("postgres") {
            return Ok(None);
        }
        let mut c = connect_db(url)?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let sql = "SELECT pid::bigint AS pid, coalesce(wait_event_type = 'Lock', false) AS waiting \
                       FROM pg_stat_activity WHERE datname = current_database() \
                       AND backend_type = 'client backend' AND application_name <> 'guichet-bench'";
            let mut out = PgSamples::default();
            while !s.load(Ordering::Relaxed) {
                let rows: QueryResult<Vec<BackendRow>> = on_backend!(&mut c, c => diesel::sql_query(sql).load(c));
                if let Ok(rows) = rows {
                    out.samples += 1;
                    let w = rows.iter().filter(|r| r.waiting).count() as i64;
                    out.waiting += usize::from(w > 0);
                    out.waiters += w;
                    for r in rows {
                        if let Some(v) = proc_cpu_and_switches(r.pid) {
                            out.backends.insert(r.pid, v);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            out
        });
        Ok(Some(PgSampler { stop, handle }))
    }

    pub(crate) fn finish(self) -> PgSamples {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// Dovecot alone: the whole INBOX fetched the way the daemon fetches it (100 UIDs per command).
pub(crate) fn dovecot_baseline(a: &ImapArgs) -> anyhow::Result<(usize, u64, f64)> {
    use futures::TryStreamExt;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect((a.imap_host.as_str(), a.imap_port)).await?;
        tcp.set_nodelay(true)?;
        let mut client = async_imap::Client::new(tcp);
        client.read_response().await.context("greeting")?;
        let mut session = client.login(&a.user, &a.password).await.map_err(|(e, _)| anyhow::anyhow!("login: {e}"))?;
        session.select(&a.folder).await?;
        let t = Instant::now();
        let mut uids: Vec<u32> = session.uid_search("ALL").await?.into_iter().collect();
        uids.sort_unstable();
        let (mut count, mut bytes) = (0usize, 0u64);
        for chunk in uids.chunks(100) {
            let set = chunk.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
            let fetches: Vec<_> = session.uid_fetch(set, "(UID BODY.PEEK[])").await?.try_collect().await?;
            for f in &fetches {
                if let Some(b) = f.body() {
                    count += 1;
                    bytes += b.len() as u64;
                }
            }
        }
        let secs = t.elapsed().as_secs_f64();
        let _ = session.logout().await;
        Ok((count, bytes, secs))
    })
}

/// The mix parsed, then parsed + committed through the library in batches of 100 (no IMAP).
pub(crate) fn profile_ingest(mix: &MixArgs, config: &Path, page_size: Option<u32>) -> anyhow::Result<()> {
    use guichet::desk::actions::Mailing;
    let plan = Plan::new(mix, 0);
    let t = Instant::now();
    let mails: Vec<Vec<u8>> = (0..plan.len()).map(|i| plan.render(i)).collect();
    let bytes: u64 = mails.iter().map(|m| m.len() as u64).sum();
    metric("profile_generate_seconds", t.elapsed().as_secs_f64(), "s (not part of ingest)");
    metric("profile_mails", mails.len() as f64, "mails");
    metric("profile_mb", mb(bytes), "MB");

    let t = Instant::now();
    for m in &mails {
        let _ = guichet::parse::parse(m);
    }
    let parse = t.elapsed().as_secs_f64();
    metric("profile_parse_mails_per_s", mails.len() as f64 / parse, "mails/s (guichet::parse::parse alone)");
    metric("profile_parse_mb_per_s", mb(bytes) / parse, "MB/s");

    let settings = guichet::config::Settings::load(Some(config))?;
    if let (Some(size), Some(path)) = (page_size, settings.database.url.strip_prefix("sqlite://")) {
        let mut c = SqliteConnection::establish(path)?;
        c.batch_execute(&format!("PRAGMA page_size = {size}; PRAGMA journal_mode = WAL;"))?;
    }
    let app = guichet::app::App::open(settings)?;
    let t = Instant::now();
    for batch in mails.chunks(100) {
        app.ingest_batch(batch, "support", Mailing::Send)?;
    }
    let full = t.elapsed().as_secs_f64();
    metric("profile_ingest_mails_per_s", mails.len() as f64 / full, "mails/s (App::ingest_batch, 100 per transaction)");
    metric("profile_ingest_mb_per_s", mb(bytes) / full, "MB/s");
    metric("profile_parse_share", parse / full * 100.0, "% of ingest time spent parsing");
    Ok(())
}
