//! The ingest benchmark: fill, baseline, drain, steady stream.

use super::*;

/// What the ingest benchmark reads besides the database and the daemons' /proc.
pub(crate) struct Observe {
    /// The daemons' metrics addresses.
    pub(crate) metrics: Vec<String>,
    pub(crate) dovecot_pid: Option<u32>,
    /// When the steady memory is read after the drain.
    pub(crate) settle: Duration,
    /// Created when the backlog is drained.
    pub(crate) drained_file: Option<PathBuf>,
}

/// A counter of a daemon's /metrics (`None`: not served, or not there).
pub(crate) fn scrape(address: &str, name: &str) -> Option<f64> {
    let mut s = TcpStream::connect(address).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
    let mut body = String::new();
    std::io::Read::read_to_string(&mut s, &mut body).ok()?;
    body.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// CPU seconds of a process and of its children, living (from /proc) or reaped (its cutime).
pub(crate) fn tree_cpu_seconds(pid: u32) -> f64 {
    let fields = |pid: u32| -> Option<Vec<String>> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(stat.rsplit_once(") ")?.1.split_whitespace().map(str::to_string).collect())
    };
    let ticks = |f: &[String], k: usize| f.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let Some(own) = fields(pid) else { return 0.0 };
    // utime(11) stime(12) cutime(13) cstime(14), after the command.
    let mut total = ticks(&own, 11) + ticks(&own, 12) + ticks(&own, 13) + ticks(&own, 14);
    let mut parents = vec![pid];
    while let Some(parent) = parents.pop() {
        let Ok(dir) = std::fs::read_dir("/proc") else { break };
        for entry in dir.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let Some(f) = fields(child) else { continue };
            if f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent) {
                total += ticks(&f, 11) + ticks(&f, 12) + ticks(&f, 13) + ticks(&f, 14);
                parents.push(child);
            }
        }
    }
    total / 100.0
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn ingest_bench(
    a: &ImapArgs,
    mix: &MixArgs,
    d: &DaemonArgs,
    configs: &[PathBuf],
    rate: u32,
    seconds: u32,
    baseline: bool,
    observe: &Observe,
) -> anyhow::Result<()> {
    let n_stream = (rate * seconds) as usize;
    let plan = Plan::new(mix, n_stream);
    let n = plan.n_fill;
    let users = a.users();
    let url = d.url();
    let kinds = |f: &dyn Fn(&Kind) -> bool| plan.metas[..n].iter().filter(|m| f(&m.kind)).count();
    eprintln!(
        "bench: backlog of {n} mails: {} text, {} text+HTML, {} with an attachment, {} replies; {} mailbox(es), {} daemon(s)",
        kinds(&|k| *k == Kind::Text),
        kinds(&|k| *k == Kind::Alternative),
        kinds(&|k| *k == Kind::Attachment),
        kinds(&|k| matches!(k, Kind::Reply { .. })),
        users.len(),
        configs.len()
    );

    // 1. The backlog.
    let t = Instant::now();
    let bytes = fill(a, &plan, 0..n)?;
    let fill_secs = t.elapsed().as_secs_f64();
    metric("fill_mails", n as f64, "mails");
    metric("fill_mb", mb(bytes), "MB");
    metric("fill_mean_mail_kb", bytes as f64 / n as f64 / 1000.0, "kB");
    metric("fill_append_rate", n as f64 / fill_secs, "mails/s (pipelined IMAP connections, MULTIAPPEND of 10)");

    if baseline {
        let (mut fetched, mut fetched_bytes, mut secs) = (0, 0, 0.0);
        for user in &users {
            let (f, b, s) = dovecot_baseline(&a.as_user(user))?;
            (fetched, fetched_bytes, secs) = (fetched + f, fetched_bytes + b, secs + s);
        }
        metric(
            "dovecot_fetch_mails_per_s",
            fetched as f64 / secs,
            "mails/s (UID FETCH BODY.PEEK[], 100 per command, no database)",
        );
        metric("dovecot_fetch_mb_per_s", mb(fetched_bytes) / secs, "MB/s");
    }

    // 2. The daemons drain the backlog.
    let dovecot0 = observe.dovecot_pid.map(tree_cpu_seconds);
    let t0 = Instant::now();
    let mut daemons = Vec::new();
    for (k, config) in configs.iter().enumerate() {
        let (label, pidfile) = if k == 0 {
            ("ingest".to_string(), d.pidfile.clone())
        } else {
            (format!("ingest-{}", k + 1), PathBuf::from(format!("{}.{}", d.pidfile.display(), k + 1)))
        };
        daemons.push(Daemon::start(d, config, &label, &pidfile)?);
    }
    let samplers: Vec<RssSampler> = daemons.iter().map(|x| RssSampler::start(x.pid())).collect();
    let mut db = open_db(&url, Duration::from_secs(60))?;
    let pg = PgSampler::start(&url)?;
    let deadline = t0 + Duration::from_secs(d.timeout);
    let mut first: Option<Instant> = None;
    let mut last_count = 0;
    let done = loop {
        let c = count(&mut db, "SELECT count(*) AS n FROM raw_mails")?;
        if c > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        if c != last_count {
            last_count = c;
        }
        if c as usize >= n {
            break Instant::now();
        }
        if !daemons.iter_mut().all(Daemon::alive) {
            bail!("guichet run exited with {last_count} of {n} mails ingested (see {})", d.logdir.display());
        }
        if Instant::now() > deadline {
            bail!("timed out with {last_count} of {n} mails ingested");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if let Some(file) = &observe.drained_file {
        std::fs::write(file, b"")?;
    }
    let cpus: Vec<f64> = daemons.iter().map(Daemon::cpu_seconds).collect();
    let cpu_backlog: f64 = cpus.iter().sum();
    let dovecot_cpu = observe.dovecot_pid.map(tree_cpu_seconds).zip(dovecot0).map(|(after, before)| after - before);
    let statements = |name: &str| observe.metrics.iter().map(|m| scrape(m, name)).sum::<Option<f64>>();
    let (statements, ingest_statements) =
        (statements("guichet_db_statements_total"), statements("guichet_ingest_statements_total"));
    let pg = pg.map(PgSampler::finish);
    let secs = (done - t0).as_secs_f64();
    let steady = (done - first.unwrap_or(t0)).as_secs_f64();
    metric("ingest_seconds", secs, "s (from `guichet run` start to the last commit)");
    metric("ingest_mails_per_s", n as f64 / secs, "mails/s");
    metric("ingest_mb_per_s", mb(bytes) / secs, "MB/s");
    metric("ingest_mails_per_s_after_first_commit", (n as f64 - 1.0) / steady.max(1e-9), "mails/s");
    metric("ingest_guichet_cpu", cpu_backlog / secs * 100.0, "% of one core (guichet processes)");
    metric("ingest_guichet_cpu_ms_per_mail", cpu_backlog * 1000.0 / n as f64, "ms of CPU per mail (guichet processes)");
    if let Some(cpu) = dovecot_cpu {
        metric(
            "ingest_dovecot_cpu_ms_per_mail",
            cpu * 1000.0 / n as f64,
            "ms of CPU per mail (the mail stack's Dovecot)",
        );
    }
    if let Some(statements) = ingest_statements.filter(|_| !observe.metrics.is_empty()) {
        metric(
            "ingest_statements_per_mail",
            statements / n as f64,
            "database statements per mail (the batches' transactions, BEGIN and COMMIT included)",
        );
    }
    if let Some(statements) = statements.filter(|_| !observe.metrics.is_empty()) {
        metric(
            "ingest_all_statements_per_mail",
            statements / n as f64,
            "database statements per mail (every statement of the daemons: start-up, IMAP loop, sender)",
        );
    }
    if daemons.len() > 1 {
        for (k, cpu) in cpus.iter().enumerate() {
            metric(&format!("ingest_daemon{}_cpu", k + 1), cpu / secs * 100.0, "% of one core");
        }
    }
    if let Some(pg) = pg {
        let samples = pg.samples.max(1) as f64;
        let (cpu, switches) = pg.backends.values().fold((0.0, 0), |(c, s), (c2, s2)| (c + c2, s + s2));
        metric(
            "ingest_pg_backends_cpu_ms_per_mail",
            cpu * 1000.0 / n as f64,
            &format!("ms of CPU per mail (the daemons' {} PostgreSQL backends)", pg.backends.len()),
        );
        metric(
            "ingest_pg_backends_wakeups_per_mail",
            switches as f64 / n as f64,
            "voluntary context switches of those backends per mail (≈ statements waited for)",
        );
        metric(
            "ingest_pg_lock_wait_share",
            pg.waiting as f64 / samples * 100.0,
            &format!("% of {} samples (every 20 ms) with a daemon's backend waiting on a lock", pg.samples),
        );
        metric("ingest_pg_lock_waiters_mean", pg.waiters as f64 / samples, "backends waiting on a lock, mean");
    }
    metric("load_average_1min", load_average(), "(other processes compete for the 2 cores)");
    let hwm: u64 = daemons.iter().map(|x| x.memory().1).max().unwrap_or(0);
    metric("ingest_peak_rss", hwm as f64 / 1024.0, "MiB (VmHWM after the backlog; the largest daemon)");
    let tickets = count(&mut db, "SELECT count(*) AS n FROM tickets")?;
    let quarantined = count(&mut db, "SELECT count(*) AS n FROM raw_mails WHERE state = 'quarantined'")?;
    let pending = count(&mut db, "SELECT count(*) AS n FROM outbox")?;
    metric("ingest_tickets", tickets as f64, "tickets");
    metric("ingest_quarantined", quarantined as f64, "mails");
    metric("ingest_notifications_queued", pending as f64, "notifications");
    // Which daemon read which mailbox: its lease holder is `host-boot-pid-random`.
    let pids: Vec<u32> = daemons.iter().map(Daemon::pid).collect();
    for (mailbox, mails, holder) in per_mailbox(&mut db)? {
        let who = holder
            .as_deref()
            .and_then(|h| h.rsplit('-').nth(1))
            .and_then(|p| p.parse::<u32>().ok())
            .and_then(|p| pids.iter().position(|x| *x == p))
            .map_or_else(|| "no daemon".to_string(), |k| format!("daemon {}", k + 1));
        eprintln!("bench: mailbox {mailbox}: {mails} mails; lease held by {who} after the drain");
    }

    // The memory the daemons keep once idle (their sender may still be at work).
    if !observe.settle.is_zero() {
        std::thread::sleep(observe.settle.saturating_sub(done.elapsed()));
        let statuses: Vec<String> = daemons
            .iter()
            .map(|x| std::fs::read_to_string(format!("/proc/{}/status", x.pid())).unwrap_or_default())
            .collect();
        let field = |name: &str| -> f64 {
            statuses
                .iter()
                .map(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix(name))
                        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()))
                        .unwrap_or(0)
                })
                .max()
                .unwrap_or(0) as f64
                / 1024.0
        };
        let after = observe.settle.as_secs();
        metric("steady_rss", field("VmRSS:"), &format!("MiB (VmRSS {after} s after the drain; the largest daemon)"));
        metric("steady_rss_anon", field("RssAnon:"), "MiB (RssAnon then: heap and buffers)");
        metric("steady_rss_file", field("RssFile:"), "MiB (RssFile then: binary + mmapped SQLite pages)");
    }

    // 3. A steady stream while the daemons run: latency from APPEND to the committed row.
    if n_stream > 0 {
        // Let the daemons go idle (moves finished, IDLE armed) before the stream starts.
        std::thread::sleep(Duration::from_secs(2));
        let mails: Vec<(usize, Vec<u8>)> = (n..plan.len()).map(|i| (i, plan.render(i))).collect();
        let stream_bytes: usize = mails.iter().map(|(_, m)| m.len()).sum();
        let keys: HashMap<String, usize> =
            (n..plan.len()).map(|i| (format!("mid:{}", plan.message_id(i)), i)).collect();
        let start_id = count(&mut db, "SELECT coalesce(max(id), 0) AS n FROM raw_mails")?;
        let seen: Arc<Mutex<HashMap<usize, Instant>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let (seen, stop, keys, url) = (seen.clone(), stop.clone(), keys.clone(), url.clone());
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut c = open_db(&url, Duration::from_secs(10))?;
                let mut last = start_id;
                while !stop.load(Ordering::Relaxed) {
                    let rows = raw_mails_after(&mut c, last)?;
                    let now = Instant::now();
                    let mut s = seen.lock().unwrap();
                    for (id, key) in rows {
                        last = last.max(id);
                        if let Some(i) = keys.get(&key) {
                            s.entry(*i).or_insert(now);
                        }
                    }
                    drop(s);
                    std::thread::sleep(Duration::from_millis(2));
                }
                Ok(())
            })
        };
        let cpu0: f64 = daemons.iter().map(Daemon::cpu_seconds).sum();
        // Two connections at least, one per mailbox user at least: mail k goes to connection
        // k mod conns, which is logged in as user (k mod conns) mod M.
        let conns = 2usize.max(users.len());
        let t_start = Instant::now() + Duration::from_millis(100);
        let per_mail = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
        let mut by_conn: Vec<Vec<ToAppend>> = vec![Vec::new(); conns];
        for (k, (i, data)) in mails.into_iter().enumerate() {
            by_conn[k % conns].push((i, data, Some(t_start + per_mail * k as u32)));
        }
        let appended: Vec<(usize, Appended)> = std::thread::scope(|s| -> anyhow::Result<Vec<_>> {
            let handles: Vec<_> = by_conn
                .into_iter()
                .enumerate()
                .map(|(c, list)| {
                    let total = list.len();
                    let a = a.as_user(&users[c % users.len()]);
                    s.spawn(move || append_connection(&a, list.into_iter(), total, 1))
                })
                .collect();
            let mut all = Vec::new();
            for h in handles {
                all.extend(h.join().map_err(|_| anyhow::anyhow!("stream thread panicked"))??);
            }
            Ok(all)
        })?;
        let append_secs = (Instant::now() - t_start).as_secs_f64();
        // Until every mail is committed, or 60 s without a new commit (a slow database drains
        // what the stream left behind for a while: its latencies count, they are not cut off).
        let (mut committed, mut progress_at) = (0, Instant::now());
        loop {
            let now_seen = seen.lock().unwrap().len();
            if now_seen > committed {
                (committed, progress_at) = (now_seen, Instant::now());
            }
            if now_seen >= n_stream
                || progress_at.elapsed() > Duration::from_secs(60)
                || !daemons.iter_mut().all(Daemon::alive)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        poller.join().map_err(|_| anyhow::anyhow!("poller panicked"))??;
        let cpu_stream = daemons.iter().map(Daemon::cpu_seconds).sum::<f64>() - cpu0;
        let seen = seen.lock().unwrap();
        let mut lat: Vec<f64> = appended
            .iter()
            .filter_map(|(i, ap)| seen.get(i).map(|t| t.saturating_duration_since(ap.ok).as_secs_f64() * 1000.0))
            .collect();
        let mut lat_sent: Vec<f64> = appended
            .iter()
            .filter_map(|(i, ap)| seen.get(i).map(|t| t.saturating_duration_since(ap.sent).as_secs_f64() * 1000.0))
            .collect();
        lat.sort_by(f64::total_cmp);
        lat_sent.sort_by(f64::total_cmp);
        metric("stream_mails", n_stream as f64, "mails");
        metric("stream_rate_target", f64::from(rate), "mails/s");
        metric("stream_rate_achieved", n_stream as f64 / append_secs, "mails/s (APPEND OKs)");
        metric("stream_mb_per_s", mb(stream_bytes as u64) / append_secs, "MB/s");
        metric("stream_committed", seen.len() as f64, "mails");
        metric("stream_latency_p50", percentile(&lat, 0.50), "ms (APPEND OK → committed row)");
        metric("stream_latency_p90", percentile(&lat, 0.90), "ms");
        metric("stream_latency_p99", percentile(&lat, 0.99), "ms");
        metric("stream_latency_max", percentile(&lat, 1.0), "ms");
        metric("stream_latency_from_send_p99", percentile(&lat_sent, 0.99), "ms (APPEND written → committed row)");
        metric("stream_guichet_cpu", cpu_stream / append_secs * 100.0, "% of one core (guichet processes)");
        metric("stream_guichet_cpu_ms_per_mail", cpu_stream * 1000.0 / n_stream as f64, "ms");
        if seen.len() < n_stream {
            eprintln!("bench: {} stream mails not committed (60 s without progress)", n_stream - seen.len());
        }
    }
    let hwm: u64 = daemons.iter().map(|x| x.memory().1).max().unwrap_or(0);
    let peaks: Vec<RssPeaks> = samplers.into_iter().map(RssSampler::finish).collect();
    let peak_of = |f: fn(&RssPeaks) -> u64| peaks.iter().map(f).max().unwrap_or(0) as f64 / 1024.0;
    let several = if daemons.len() > 1 { "; the largest daemon" } else { "" };
    metric("peak_rss", hwm as f64 / 1024.0, &format!("MiB (VmHWM of guichet run at the end{several})"));
    metric(
        "peak_rss_anon",
        peak_of(|p| p.anon),
        &format!("MiB (max RssAnon sampled every 25 ms: heap and buffers{several})"),
    );
    metric("peak_rss_file", peak_of(|p| p.file), &format!("MiB (max RssFile: binary + mmapped SQLite pages{several})"));
    for (k, daemon) in daemons.into_iter().enumerate() {
        if !daemon.stop() {
            eprintln!("bench: guichet run (daemon {}) did not exit cleanly on SIGTERM", k + 1);
        }
    }
    Ok(())
}
