//! Filling the mailbox: IMAP APPEND over several pipelined connections (LITERAL+), a writer and a reader per connection.

use super::*;

/// A mail to APPEND: its position in the plan, its bytes, and when to send it (None: at once).
pub(crate) type ToAppend = (usize, Vec<u8>, Option<Instant>);

pub(crate) struct Appended {
    /// When the APPEND command was written.
    pub(crate) sent: Instant,
    /// When the server's tagged OK was read.
    pub(crate) ok: Instant,
}

/// Opens a connection and logs in; checks LITERAL+ (needed to pipeline APPENDs).
pub(crate) fn imap_login(a: &ImapArgs) -> anyhow::Result<(TcpStream, BufReader<TcpStream>)> {
    let stream = TcpStream::connect((a.imap_host.as_str(), a.imap_port))
        .with_context(|| format!("cannot connect to IMAP {}:{}", a.imap_host, a.imap_port))?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if !line.starts_with("* OK") {
        bail!("IMAP greeting: {line}");
    }
    let mut w = stream.try_clone()?;
    write!(w, "l1 LOGIN \"{}\" \"{}\"\r\n", a.user, a.password)?;
    let mut caps = line.clone();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("IMAP connection closed during LOGIN");
        }
        caps.push_str(&line);
        if line.starts_with("l1 ") {
            if !line.starts_with("l1 OK") {
                bail!("IMAP LOGIN: {line}");
            }
            break;
        }
    }
    if !caps.contains("LITERAL+") {
        bail!("the IMAP server does not announce LITERAL+ (needed to pipeline APPENDs)");
    }
    Ok((stream, reader))
}

/// APPENDs `mails` (position, bytes, optional send time) on one connection with up to `window`
/// commands in flight; `group` mails per command (MULTIAPPEND, RFC 3502: Dovecot saves them in one
/// transaction, one lock and one sync of the mailbox instead of one per mail; a timed stream uses
/// 1). Returns the send and OK times by position.
pub(crate) fn append_connection(
    a: &ImapArgs,
    mails: impl Iterator<Item = ToAppend>,
    total: usize,
    group: usize,
) -> anyhow::Result<Vec<(usize, Appended)>> {
    let (mut stream, mut reader) = imap_login(a)?;
    let (slot_tx, slot_rx) = std::sync::mpsc::sync_channel::<()>(a.window.max(1));
    // Tag (the first position of a command) → the positions that command carries.
    let commands: Arc<Mutex<HashMap<usize, Vec<usize>>>> = Arc::default();
    let commands2 = commands.clone();
    let mut sent_at: HashMap<usize, Instant> = HashMap::with_capacity(total);
    let reader_thread = std::thread::spawn(move || -> anyhow::Result<Vec<(usize, Instant)>> {
        let mut done = Vec::with_capacity(total);
        let mut line = String::new();
        while done.len() < total {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                bail!("IMAP connection closed with {} APPENDs unanswered", total - done.len());
            }
            let Some(rest) = line.strip_prefix('a') else { continue };
            let Some((tag, answer)) = rest.split_once(' ') else { continue };
            let Ok(tag) = tag.parse::<usize>() else { continue };
            if !answer.starts_with("OK") {
                bail!("APPEND refused: {}", line.trim_end());
            }
            let now = Instant::now();
            let positions = commands2.lock().unwrap().remove(&tag).unwrap_or_default();
            done.extend(positions.into_iter().map(|p| (p, now)));
            let _ = slot_rx.recv();
        }
        Ok(done)
    });
    let mut written = 0usize;
    let mut mails = mails.peekable();
    while mails.peek().is_some() {
        let batch: Vec<ToAppend> = mails.by_ref().take(group.max(1)).collect();
        if let Some(at) = batch[0].2 {
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
        }
        if slot_tx.send(()).is_err() {
            break; // the reader stopped: its error is reported below
        }
        let tag = batch[0].0;
        commands.lock().unwrap().insert(tag, batch.iter().map(|m| m.0).collect());
        let mut ok = write!(stream, "a{tag} APPEND {}", a.folder).is_ok();
        let now = Instant::now();
        for (pos, data, _) in &batch {
            sent_at.insert(*pos, now);
            ok = ok && write!(stream, " {{{}+}}\r\n", data.len()).is_ok() && stream.write_all(data).is_ok();
        }
        if !(ok && stream.write_all(b"\r\n").is_ok()) {
            break;
        }
        written += batch.len();
    }
    drop(slot_tx);
    let done = reader_thread.join().map_err(|_| anyhow::anyhow!("IMAP reader panicked"))??;
    if written != total {
        bail!("only {written} of {total} APPENDs written");
    }
    let _ = stream.write_all(b"z LOGOUT\r\n");
    Ok(done.into_iter().map(|(pos, ok)| (pos, Appended { sent: sent_at[&pos], ok })).collect())
}

/// APPENDs the plan's mails `range` over `conns` connections, as fast as the server takes them.
/// With several mailbox users, mail i goes to user i mod M, and connection c logs in as user
/// c mod M (at least one connection per user). Mails are generated on the fly by each
/// connection's thread. Returns the bytes appended.
pub(crate) fn fill(a: &ImapArgs, plan: &Plan, range: std::ops::Range<usize>) -> anyhow::Result<u64> {
    let users = a.users();
    let m = users.len();
    let conns = a.conns.max(m);
    let bytes = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..conns)
            .map(|c| {
                let (u, k) = (c % m, c / m);
                let of_user = (conns - u).div_ceil(m);
                let positions: Vec<usize> = range.clone().filter(|i| i % m == u && (i / m) % of_user == k).collect();
                let (bytes, plan) = (&bytes, plan);
                let a = a.as_user(&users[u]);
                s.spawn(move || {
                    let total = positions.len();
                    let mails = positions.into_iter().map(move |i| {
                        let data = plan.render(i);
                        bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                        (i, data, None)
                    });
                    append_connection(&a, mails, total, 10)
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("fill thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(bytes.into_inner())
}
