//! The outgoing-mail benchmark: pending notifications drained into the real Postfix.

use super::*;

/// Seeds at least `target` more pending notifications: new tickets from distinct customers of
/// `domain`, ingested through the library (each queues an acknowledgement, rendered and composed
/// by the real templates). Returns the number pending afterwards.
pub(crate) fn seed_outbox(
    config: &Path,
    db: &str,
    target: usize,
    domain: &str,
    offset: usize,
) -> anyhow::Result<usize> {
    use guichet::desk::actions::Mailing;
    let settings = guichet::config::Settings::load(Some(config))?;
    let app = guichet::app::App::open(settings)?;
    let mut c = open_db(db, Duration::from_secs(10))?;
    let pending0 = count(&mut c, "SELECT count(*) AS n FROM outbox WHERE state = 'pending'")? as usize;
    let mut k = offset;
    // Notifications queued per new ticket (an acknowledgement, a staff alert…), learnt as we go.
    let mut per_mail = 1.0f64;
    loop {
        let pending = count(&mut c, "SELECT count(*) AS n FROM outbox WHERE state = 'pending'")? as usize;
        if k > offset {
            per_mail = ((pending - pending0) as f64 / (k - offset) as f64).max(0.1);
        }
        if pending >= pending0 + target {
            return Ok(pending);
        }
        let missing = ((pending0 + target - pending) as f64 / per_mail).ceil() as usize;
        let batch: Vec<Vec<u8>> = (0..missing.clamp(1, if k == offset { 20 } else { 200 }))
            .map(|j| {
                let i = k + j;
                format!(
                    "From: Client {i} <client{i}@{domain}>\r\nTo: Support <support@example.com>\r\nSubject: Demande {i} : imprimante bloquée\r\nMessage-ID: <seed-{i}-{:08x}@{domain}>\r\nDate: Mon, 30 Nov 2026 09:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nBonjour,\r\n\r\nL'imprimante du deuxième étage est bloquée depuis ce matin.\r\nPourriez-vous regarder ?\r\n\r\nMerci,\r\nClient {i}\r\n",
                    rand::random::<u32>()
                )
                .into_bytes()
            })
            .collect();
        k += batch.len();
        app.ingest_batch(&batch, "seed", Mailing::Send)?;
    }
}

/// Median and max time of the sender's claim (`outbox::claim_due`, 64 rows) and of the
/// `status` query, each in a transaction rolled back so that nothing is claimed.
pub(crate) fn queue_query_times(config: &Path) -> anyhow::Result<(f64, f64, f64)> {
    let settings = guichet::config::Settings::load(Some(config))?;
    let store = guichet::store::Store::open(&settings.database.url, 2)?;
    let mut conn = store.conn()?;
    let mut claims = Vec::new();
    let mut claimed = 0;
    for _ in 0..21 {
        let t = Instant::now();
        let r: anyhow::Result<()> = guichet::store::write_tx(&mut conn, |c| {
            claimed = guichet::store::outbox::claim_due(c, guichet::store::now(), 64, 120)?.len();
            bail!("rolled back on purpose")
        });
        let _ = r;
        claims.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut statuses = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        guichet::store::outbox::status(&mut conn, guichet::store::now())?;
        statuses.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    claims.sort_by(f64::total_cmp);
    statuses.sort_by(f64::total_cmp);
    eprintln!("bench: each claim took {claimed} rows");
    Ok((percentile(&claims, 0.5), percentile(&claims, 1.0), percentile(&statuses, 0.5)))
}

/// Runs the daemon until every notification is sent or failed; prints the metrics with `prefix`.
pub(crate) fn drain(d: &DaemonArgs, prefix: &str) -> anyhow::Result<()> {
    let mut db = open_db(&d.url(), Duration::from_secs(10))?;
    let before = outbox_states(&mut db)?;
    let pending = *before.get("pending").unwrap_or(&0);
    let base = before.get("sent").unwrap_or(&0) + before.get("failed").unwrap_or(&0);
    let t0 = Instant::now();
    let mut daemon = Daemon::start(d, &d.config, prefix, &d.pidfile)?;
    let sampler = RssSampler::start(daemon.pid());
    let deadline = t0 + Duration::from_secs(d.timeout);
    let mut first: Option<Instant> = None;
    let (done, states) = loop {
        let s = outbox_states(&mut db)?;
        let finished = s.get("sent").unwrap_or(&0) + s.get("failed").unwrap_or(&0) - base;
        if finished > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        if finished >= pending {
            break (Instant::now(), s);
        }
        if !daemon.alive() {
            bail!("guichet run exited with {finished} of {pending} notifications done");
        }
        if Instant::now() > deadline {
            bail!("timed out with {finished} of {pending} notifications done");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let cpu = daemon.cpu_seconds();
    let (_, hwm) = daemon.memory();
    let peak = sampler.finish();
    let hwm = hwm.max(peak.rss);
    let secs = (done - t0).as_secs_f64();
    let failed = states.get("failed").unwrap_or(&0) - before.get("failed").unwrap_or(&0);
    let bytes = mean_mail_bytes(&mut db)?;
    metric(&format!("{prefix}_notifications"), pending as f64, "notifications");
    metric(&format!("{prefix}_mean_mail_kb"), bytes / 1000.0, "kB (mean of the first 200 mails, composed)");
    metric(&format!("{prefix}_seconds"), secs, "s (from `guichet run` start to the last one sent)");
    metric(&format!("{prefix}_per_s"), pending as f64 / secs, "notifications/s");
    metric(&format!("{prefix}_load_average_1min"), load_average(), "");
    metric(
        &format!("{prefix}_per_s_after_first"),
        (pending as f64 - 1.0) / (done - first.unwrap_or(t0)).as_secs_f64().max(1e-9),
        "notifications/s",
    );
    metric(&format!("{prefix}_failed"), failed as f64, "notifications");
    metric(&format!("{prefix}_guichet_cpu"), cpu / secs * 100.0, "% of one core (guichet process)");
    metric(&format!("{prefix}_guichet_cpu_ms_per_notification"), cpu * 1000.0 / pending.max(1) as f64, "ms");
    metric(&format!("{prefix}_peak_rss"), hwm as f64 / 1024.0, "MiB (VmHWM)");
    metric(&format!("{prefix}_peak_rss_anon"), peak.anon as f64 / 1024.0, "MiB (max RssAnon)");
    if !daemon.stop() {
        eprintln!("bench: guichet run did not exit cleanly on SIGTERM");
    }
    Ok(())
}

pub(crate) fn sender_bench(
    d: &DaemonArgs,
    n: usize,
    queue: usize,
    domain: &str,
    sink: Option<&Path>,
) -> anyhow::Result<()> {
    // `migrate` first, so that the database exists before the seeding opens it.
    let status = Command::new(&d.guichet).arg("-c").arg(&d.config).arg("migrate").stdout(Stdio::null()).status()?;
    if !status.success() {
        bail!("guichet migrate failed");
    }
    let t = Instant::now();
    let pending = seed_outbox(&d.config, &d.url(), n, domain, 0)?;
    metric("seed_seconds", t.elapsed().as_secs_f64(), "s (not measured: tickets ingested through the library)");
    eprintln!("bench: {pending} notifications pending");
    drain(d, "send")?;

    if queue > 0 {
        let t = Instant::now();
        let pending = seed_outbox(&d.config, &d.url(), queue, domain, 1_000_000)?;
        metric("seed_queue_seconds", t.elapsed().as_secs_f64(), "s (not measured)");
        let (claim_p50, claim_max, status_p50) = queue_query_times(&d.config)?;
        metric("queue_pending", pending as f64, "notifications");
        metric("queue_claim_ms_p50", claim_p50, "ms (claim_due of 64 rows, then rolled back)");
        metric("queue_claim_ms_max", claim_max, "ms");
        metric("queue_status_ms_p50", status_p50, "ms (outbox::status, what `guichet status` runs)");
        drain(d, "queue")?;
        let (claim_p50, _, status_p50) = queue_query_times(&d.config)?;
        metric("queue_empty_claim_ms_p50", claim_p50, "ms (after the drain: nothing due)");
        metric("queue_empty_status_ms_p50", status_p50, "ms");
    }

    if let Some(sink) = sink {
        seed_outbox(&d.config, &d.url(), n, domain, 2_000_000)?;
        let to_sink = DaemonArgs { config: sink.to_path_buf(), ..d.clone() };
        drain(&to_sink, "sink")?;
    }
    Ok(())
}
