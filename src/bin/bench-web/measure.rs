//! Measuring: HTTP/1.1 clients on kept-alive connections, the scenarios, latency and CPU per request.

use super::*;

/// A keep-alive HTTP/1.1 connection that sends GETs with a session cookie.
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) host: String,
    pub(crate) cookie: String,
    pub(crate) buf: Vec<u8>,
}

impl Conn {
    pub(crate) async fn open(addr: std::net::SocketAddr, cookie: &str) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn { stream, host: addr.to_string(), cookie: cookie.to_string(), buf: Vec::with_capacity(1 << 16) })
    }

    /// GET `path`; returns (status, body length).
    pub(crate) async fn get(&mut self, path: &str) -> anyhow::Result<(u16, usize)> {
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

pub(crate) struct Scenario {
    pub(crate) name: String,
    pub(crate) cookie: String,
    pub(crate) paths: Vec<String>,
    /// Requested once before measuring (caches; tickets already read).
    pub(crate) warm: Vec<String>,
    /// Requests measured, when not the command line's number.
    pub(crate) requests: Option<usize>,
}

impl Scenario {
    /// Warmed with its own paths: the steady state.
    pub(crate) fn new(name: &str, cookie: &str, paths: Vec<String>) -> Scenario {
        Scenario { name: name.into(), cookie: cookie.into(), warm: paths.clone(), paths, requests: None }
    }
}

pub(crate) async fn run(app: App, o: Options) -> anyhow::Result<()> {
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
pub(crate) fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime and stime are the 12th and
    // 13th, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `clients` connections each send requests back to back until `total` are done (after a warm-up).
pub(crate) async fn measure(
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
