//! Memory given back to the system once the daemon goes idle (SPEC §11: a helpdesk daemon fits
//! beside others on a small VM).
//!
//! A drain allocates a lot and frees it all: two batches of up to 32 MB of mail with their parsed
//! copies, SQLite's dirty pages until COMMIT, composed notifications. glibc keeps what was freed in
//! the arenas of the threads that freed it (tokio's workers and blocking threads, the parsing
//! threads), so the daemon's resident memory stayed near its peak long after (111 MB 15 s after a
//! 2,000-mail drain, BENCHMARKS.md). `malloc_trim(0)` returns the free pages of every arena.

use std::time::Duration;

use crate::app::Shutdown;

/// How often the daemon looks whether it went idle.
const EVERY: Duration = Duration::from_secs(3);

/// Blocks of this size and more are mapped on their own and unmapped when freed (glibc's default
/// starts at 128 KiB but rises to 32 MiB as such blocks are freed, after which a drain's mail
/// bodies and decoded files stay in the arenas). Measured on a 2,000-mail drain (BENCHMARKS.md,
/// "Sixth round"): peak RSS 164–170 → 133 MiB, CPU per mail unchanged; 128 KiB gave 139 MiB but
/// cost 15 % more CPU (mail bodies average 136 kB).
const MMAP_THRESHOLD: i32 = 512 * 1024;

/// Sets the allocator up for a long-running process (glibc; nothing elsewhere).
pub fn bound() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of the allocator.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Returns the allocator's free memory to the system (glibc; nothing elsewhere).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own arenas, under their locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Private resident memory (resident minus file-backed pages) in bytes, from /proc/self/statm.
fn private_resident() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let mut fields = statm.split_whitespace().skip(1).map(|f| f.parse::<u64>().ok());
    let (resident, shared) = (fields.next()??, fields.next()??);
    Some(resident.saturating_sub(shared) * 4096)
}

/// Trims when the private resident memory grew by GROWTH since the last trim: after a drain
/// (and every EVERY during one, what is free by then: a few milliseconds), not while idle.
const GROWTH: u64 = 8 << 20;

/// Looks every EVERY whether memory grew, and trims then.
pub async fn trim_when_idle(mut shutdown: Shutdown) {
    let mut floor = private_resident().unwrap_or(0);
    while !shutdown.sleep(EVERY).await {
        let Some(now) = private_resident() else { return };
        if now > floor + GROWTH {
            let started = std::time::Instant::now();
            let _ = tokio::task::spawn_blocking(trim).await;
            floor = private_resident().unwrap_or(now);
            tracing::debug!(
                ms = started.elapsed().as_millis(),
                before_mb = now >> 20,
                after_mb = floor >> 20,
                "memory given back to the system"
            );
        } else {
            // Freed on its own (large blocks are unmapped at once): the floor follows.
            floor = floor.min(now);
        }
    }
}
