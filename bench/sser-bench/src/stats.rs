//! Measurement plumbing: the payload clock, sharded latency histograms, our
//! own CPU time, a server's memory from `/proc`, and the file limit.

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde_json::{Value, json};

/// Nanoseconds on the machine's monotonic clock (`CLOCK_MONOTONIC`, since
/// boot). One clock for every process on the box: a payload's send time
/// stamped by one `sser-bench` process and its receive time read by another
/// (`hold`, `send`) compare directly.
pub fn now_ns() -> u64 {
    // SAFETY: clock_gettime writes into the struct we pass; CLOCK_MONOTONIC
    // always exists on Linux.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn new_histogram() -> Histogram<u64> {
    // Microseconds, 1 µs .. 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds")
}

/// Histograms split in shards so thousands of subscriber tasks on several
/// threads rarely contend for the same lock.
pub struct Sharded {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Sharded {
    pub fn new(n: usize) -> Sharded {
        Sharded {
            shards: (0..n.max(1)).map(|_| Mutex::new(new_histogram())).collect(),
        }
    }

    pub fn record_many(&self, key: usize, values_us: &[u64]) {
        if values_us.is_empty() {
            return;
        }
        let mut h = self.shards[key % self.shards.len()].lock();
        for &v in values_us {
            h.saturating_record(v.max(1));
        }
    }

    pub fn merged(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for s in &self.shards {
            let _ = all.add(&*s.lock());
        }
        all
    }
}

/// p50/p90/p99/p99.9/max in milliseconds.
pub fn latency_json(h: &Histogram<u64>) -> Value {
    let ms = |v: u64| (v as f64) / 1000.0;
    if h.is_empty() {
        return Value::Null;
    }
    json!({
        "count": h.len(),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p90_ms": ms(h.value_at_quantile(0.90)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "p999_ms": ms(h.value_at_quantile(0.999)),
        "max_ms": ms(h.max()),
        "mean_ms": h.mean() / 1000.0,
    })
}

/// User + system CPU seconds this process has used.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Raises `RLIMIT_NOFILE` as far as allowed (the hard limit, or beyond it
/// when we may). Returns the soft limit now in force.
pub fn raise_nofile(want: u64) -> u64 {
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_max < want {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: want,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return want;
            }
        }
        lim.rlim_cur = lim.rlim_max.min(want.max(lim.rlim_cur));
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}

/// Memory of a process and its direct children (nginx: master + workers),
/// in KiB: resident set, and proportional set (shared pages split, so
/// workers sharing nchan's shared memory are not counted twice).
#[derive(Debug, Clone, Copy, Default)]
pub struct Mem {
    pub rss_kib: u64,
    pub pss_kib: u64,
}

pub fn process_mem(pid: u32) -> Option<Mem> {
    let mut mem = Mem::default();
    let mut found = false;
    for p in process_and_children(pid) {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")) else {
            continue;
        };
        found = true;
        mem.rss_kib += field_kib(&status, "Rss:");
        mem.pss_kib += field_kib(&status, "Pss:");
    }
    found.then_some(mem)
}

/// `pid` and its direct children (nginx's workers, say).
fn process_and_children(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(children) = std::fs::read_to_string(t.path().join("children")) {
                pids.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
    }
    pids
}

/// CPU seconds (user + system) a process and its children have used so
/// far, from `/proc/<pid>/stat`.
pub fn process_cpu_secs(pid: u32) -> Option<f64> {
    // SAFETY: sysconf has no preconditions.
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks_per_sec <= 0 {
        return None;
    }
    let mut ticks = 0u64;
    let mut found = false;
    for p in process_and_children(pid) {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // Fields after the command name (which may hold spaces), from state
        // (field 3): utime and stime are fields 14 and 15.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        if let (Some(user), Some(system)) = (field(14), field(15)) {
            ticks += user + system;
            found = true;
        }
    }
    found.then(|| ticks as f64 / ticks_per_sec as f64)
}

fn field_kib(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn self_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| field_kib(&s, "VmRSS:"))
        .unwrap_or(0)
}

/// The 1-minute load average of the machine.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}
