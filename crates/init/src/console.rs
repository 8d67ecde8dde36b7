//! Console output with boot-clock timestamps, and the in-memory log.

use std::io::Write;
use std::sync::Mutex;

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Seconds since boot (CLOCK_BOOTTIME), the same clock the kernel's log uses.
pub fn uptime() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
        .unwrap_or(0.0)
}

/// Print one line to the console (standard error: on the CLI, standard output carries only
/// results), stamped with the boot clock, and keep it in the log.
pub fn say(msg: &str) {
    let t = uptime();
    let mut out = std::io::stderr().lock();
    for line in msg.lines() {
        let l = format!("[{t:8.3}] {line}");
        let _ = writeln!(out, "{l}");
        if let Ok(mut log) = LOG.lock() {
            log.push(l);
        }
    }
    let _ = out.flush();
}

/// Everything said so far.
pub fn log_text() -> String {
    LOG.lock().map(|l| l.join("\n")).unwrap_or_default()
}

/// A progress printer that says something every 10 % (and at the end).
pub fn progress_printer(what: &str) -> impl FnMut(u64, u64) + '_ {
    let mut last = u64::MAX;
    let t0 = uptime();
    move |done, total| {
        let pct = done.saturating_mul(100) / total.max(1);
        if pct / 10 != last / 10 || done == total {
            if last == pct {
                return;
            }
            last = pct;
            let secs = (uptime() - t0).max(1e-3);
            say(&format!("{what}: {pct:3}%  {} MiB of {} MiB  {:.1} MiB/s", done >> 20, total >> 20, done as f64 / 1048576.0 / secs));
        }
    }
}
