//! Gives freed heap memory back to the operating system once a burst is over.
//!
//! glibc's allocator keeps what the program frees inside its arenas, and
//! returns to the kernel only a free stretch at the very top of an arena. A
//! flood of connections spreads buffers over two or three arenas; when they
//! close, most likely a few long-lived allocations near each arena's top pin the
//! freed memory below them. Measured (BENCHMARKS.md, "Soak"): after three
//! 10,000-subscriber floods and the topics deleted, the server sat at 271 MB
//! RSS with 0.4 MB of live heap; `malloc_trim(0)` brought it to 10 MB. Not a
//! leak, but an operator cannot tell the difference, and the memory is lost
//! to everything else on the machine.
//!
//! So a background task looks every [`CHECK_EVERY`] at how much of the
//! process's resident memory the allocator holds without using it (RSS minus
//! the live heap, from `mallinfo2`) and calls `malloc_trim(0)` when that is
//! over [`TRIM_ABOVE`]. After a trim the pages are no longer resident, so the
//! next check sees the difference gone and does nothing. Nothing changes per
//! connection: idle memory is what it was (mimalloc, which returns memory on
//! its own, cost 58% more per idle connection and was rejected), and a trim
//! happens only after a burst's memory was freed. A trim of about 135 MB
//! took 50-80 ms on a blocking thread (the arena locks are held meanwhile,
//! so an allocation may wait that long once after a burst). With other allocators
//! (musl, other platforms) the task is not started.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often the process's memory is looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(10);

/// Resident bytes beyond the live heap that make a trim worth its cost.
/// It also covers what is resident but no heap at all (code, stacks: about
/// 8 MB), so an idle server never trims.
pub const TRIM_ABOVE: u64 = 48 << 20;

/// Starts the trimming task (glibc only); it ends with `shutdown`.
pub fn spawn_trimmer(shutdown: CancellationToken) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            // The cheap read first: mallinfo2 walks the free lists.
            let Some(rss) = crate::metrics::process_rss_bytes() else {
                return;
            };
            if rss > TRIM_ABOVE && rss.saturating_sub(live_heap_bytes()) > TRIM_ABOVE {
                // A trim takes the arena locks: off the async workers.
                let _ = tokio::task::spawn_blocking(move || trim(rss)).await;
            }
        }
    });
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = shutdown;
}

/// Bytes the program has allocated and not freed (arenas and mmapped).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn live_heap_bytes() -> u64 {
    // SAFETY: mallinfo2 takes no arguments and returns a plain struct.
    let info = unsafe { libc::mallinfo2() };
    (info.uordblks + info.hblkhd) as u64
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim(rss_before: u64) {
    let started = std::time::Instant::now();
    // SAFETY: malloc_trim only releases free pages; any thread may call it.
    unsafe { libc::malloc_trim(0) };
    let rss_after = crate::metrics::process_rss_bytes().unwrap_or(rss_before);
    tracing::info!(
        rss_before_mib = rss_before >> 20,
        rss_after_mib = rss_after >> 20,
        took_ms = started.elapsed().as_millis() as u64,
        "returned freed heap memory to the OS"
    );
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// What the task relies on: memory freed below a live allocation stays
    /// resident until a trim, the live-heap figure tells it apart from memory
    /// in use, and a trim hands it back.
    #[test]
    fn trim_returns_freed_memory_the_allocator_kept() {
        let rss = || crate::metrics::process_rss_bytes().expect("VmRSS");
        // 64 MiB in small, touched blocks, then one allocation above them.
        let blocks: Vec<Vec<u8>> = (0..16_384).map(|i| vec![i as u8; 4096]).collect();
        let pin = vec![1u8; 64];
        let live_with_blocks = live_heap_bytes();
        drop(blocks);
        let live = live_heap_bytes();
        assert!(
            live_with_blocks - live > 60 << 20,
            "live heap {live_with_blocks} -> {live}"
        );
        let before = rss();
        assert!(before - live > 48 << 20, "freed memory still resident");
        trim(before);
        let after = rss();
        assert!(before - after > 48 << 20, "RSS {before} -> {after}");
        drop(pin);
    }
}
