//! systemd's readiness protocol (`Type=notify`): one datagram to `$NOTIFY_SOCKET`, and the
//! watchdog (`WatchdogSec=`): `WATCHDOG=1` every half of `$WATCHDOG_USEC`, sent only while the
//! database answers, so that systemd restarts a daemon that is stuck rather than merely alive. A
//! few lines rather than a crate: the protocol is a text line on a Unix datagram socket.

use std::time::Duration;

use crate::app::{App, Shutdown};

/// Sends `state` (e.g. `READY=1`) when run under systemd; does nothing otherwise. Failures are
/// logged, never fatal: the helpdesk works without its supervisor's bookkeeping.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    if let Err(e) = send(&path, state) {
        tracing::warn!(error = %e, state, "cannot notify systemd");
    }
}

/// How often to send `WATCHDOG=1`: half the interval systemd asked for in `WATCHDOG_USEC`, when
/// that request is for this process (`WATCHDOG_PID` unset or ours); None otherwise.
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    interval_from(usec.as_deref(), pid.as_deref(), std::process::id())
}

fn interval_from(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if pid.is_some_and(|p| p.trim().parse::<u32>().ok() != Some(own_pid)) {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    Some(Duration::from_micros(usec / 2))
}

/// The daemon's proof of life until shutdown: every `interval`, `WATCHDOG=1` if the database
/// answers (the check of `/healthz`). A database that does not answer gets no ping: systemd then
/// restarts the service after `WatchdogSec`, which is what an operator would do by hand.
pub async fn run_watchdog(app: App, interval: Duration, mut shutdown: Shutdown) {
    tracing::info!(interval_ms = interval.as_millis() as u64, "systemd watchdog enabled");
    let mut failing = false;
    loop {
        match crate::ops::health::ping(&app).await {
            Ok(()) => {
                if failing {
                    tracing::info!("database answers again: watchdog pings resume");
                    failing = false;
                }
                notify("WATCHDOG=1");
            }
            Err(e) => {
                if !failing {
                    tracing::error!(error = %format!("{e:#}"), "database does not answer: no watchdog ping");
                    failing = true;
                }
            }
        }
        if shutdown.sleep(interval).await {
            return;
        }
    }
}

#[cfg(target_os = "linux")]
fn send(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let bytes = path.as_bytes();
    // A leading `@` names a socket in the abstract namespace.
    let address = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(std::path::Path::new(path))?,
    };
    UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &address)?;
    Ok(())
}

#[cfg(all(unix, not(target_os = "linux")))]
fn send(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    std::os::unix::net::UnixDatagram::unbound()?.send_to(state.as_bytes(), path)?;
    Ok(())
}

#[cfg(not(unix))]
fn send(_path: &std::ffi::OsStr, _state: &str) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_state_reaches_the_socket_named_by_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        super::send(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = socket.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[test]
    fn the_watchdog_pings_at_half_the_interval_systemd_asks_for_this_process() {
        use std::time::Duration;
        let own = 4242;
        assert_eq!(super::interval_from(Some("30000000"), None, own), Some(Duration::from_secs(15)));
        assert_eq!(super::interval_from(Some("1000000"), Some("4242"), own), Some(Duration::from_millis(500)));
        assert_eq!(super::interval_from(Some("1000000"), Some("17"), own), None, "another process's watchdog");
        assert_eq!(super::interval_from(None, None, own), None, "no watchdog");
        assert_eq!(super::interval_from(Some("0"), None, own), None);
        assert_eq!(super::interval_from(Some("soon"), None, own), None);
    }
}
