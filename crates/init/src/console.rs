//! Console output with boot-clock timestamps, and the in-memory log.

use std::io::Write;
use std::sync::Mutex;

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// In the rescue system the log is also appended to a file under `/run`, so it outlives a
/// worker that dies (see `supervise`): the next worker's log starts with it.
static LOG_FILE: std::sync::OnceLock<Mutex<std::fs::File>> = std::sync::OnceLock::new();
const LOG_PATH: &str = "/run/sysclone/console.log";

/// `quiet` on the kernel command line: detail lines go to the log only.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Keep the log in `/run/sysclone/console.log` from now on (PID 1 only; `/run` mounted).
pub fn keep_log_in_run() {
    let _ = std::fs::create_dir_all("/run/sysclone");
    if let Ok(f) = std::fs::OpenOptions::new().create(true).append(true).open(LOG_PATH) {
        let _ = LOG_FILE.set(Mutex::new(f));
    }
}

pub fn set_quiet(q: bool) {
    QUIET.store(q, std::sync::atomic::Ordering::Relaxed);
}

/// A line that matters only when something goes wrong (drivers, timings): on the console
/// unless `quiet`, always in the log.
pub fn detail(msg: &str) {
    emit(msg, !QUIET.load(std::sync::atomic::Ordering::Relaxed));
}

fn keep(l: String) {
    if let Some(f) = LOG_FILE.get().and_then(|f| f.lock().ok()).as_mut() {
        let _ = writeln!(f, "{l}");
    }
    if let Ok(mut log) = LOG.lock() {
        log.push(l);
    }
}

/// The kernel's other active consoles (screen and serial both, when the command line names
/// both): standard error is /dev/console, the last one; the others get a copy of every line.
/// Each with its name.
static MIRRORS: Mutex<Vec<(String, std::fs::File)>> = Mutex::new(Vec::new());

/// Copy console output to every active console (PID 1 only). Called again once drivers are
/// loaded: a console that came with a module (a virtual machine's hvc0) is added then and
/// first gets what was said before it came.
pub fn mirror_to_all_consoles() {
    let names = std::fs::read_to_string("/sys/class/tty/console/active").unwrap_or_default();
    let mut names: Vec<&str> = names.split_whitespace().collect();
    // The last one named is /dev/console itself.
    names.pop();
    let Ok(mut mirrors) = MIRRORS.lock() else { return };
    let first = mirrors.is_empty();
    for n in names {
        if mirrors.iter().any(|(m, _)| m == n) {
            continue;
        }
        let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(format!("/dev/{n}")) else { continue };
        if !first {
            let _ = writeln!(f, "{}", log_text());
        }
        mirrors.push((n.to_string(), f));
    }
}

/// Seconds since boot (CLOCK_BOOTTIME), the same clock the kernel's log uses.
pub fn uptime() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
        .unwrap_or(0.0)
}

/// Print one line to the console (standard error: on the CLI, standard output carries only
/// results), stamped with the boot clock, and keep it in the log.
pub fn say(msg: &str) {
    emit(msg, true);
}

/// Show a question (no stamp, no newline: the answer is typed after it) on every console,
/// as [`say`] shows lines. Answers are read from the console (standard input) only.
pub fn prompt(msg: &str) {
    let mut out = std::io::stderr().lock();
    let _ = write!(out, "{msg}");
    let _ = out.flush();
    for (_, m) in MIRRORS.lock().iter_mut().flat_map(|ms| ms.iter_mut()) {
        let _ = write!(m, "{msg}");
        let _ = m.flush();
    }
}

/// Stamp each line of `msg`, keep it in the log, and show it on every console if `show`.
fn emit(msg: &str, show: bool) {
    let t = uptime();
    let mut out = std::io::stderr().lock();
    let mut mirrors = MIRRORS.lock().ok();
    for line in msg.lines() {
        let l = format!("[{t:8.3}] {line}");
        if show {
            let _ = writeln!(out, "{l}");
            for (_, m) in mirrors.iter_mut().flat_map(|ms| ms.iter_mut()) {
                let _ = writeln!(m, "{l}");
            }
        }
        keep(l);
    }
    let _ = out.flush();
}

/// Everything said so far.
pub fn log_text() -> String {
    if LOG_FILE.get().is_some() {
        if let Ok(t) = std::fs::read_to_string(LOG_PATH) {
            return t.trim_end().to_string();
        }
    }
    LOG.lock().map(|l| l.join("\n")).unwrap_or_default()
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressStyle {
    /// A live bar, redrawn in place (a terminal).
    Bar,
    /// A line every 10 % or 10 seconds (serial consoles, logs).
    Plain,
    /// One JSON object a second: `{"event":"progress",…}`.
    Json,
    /// Nothing.
    Quiet,
}

static STYLE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);

/// Choose the progress style for this process.
pub fn set_progress_style(s: ProgressStyle) {
    STYLE.store(s as u8, std::sync::atomic::Ordering::Relaxed);
}

fn style() -> ProgressStyle {
    match STYLE.load(std::sync::atomic::Ordering::Relaxed) {
        0 => ProgressStyle::Bar,
        2 => ProgressStyle::Json,
        3 => ProgressStyle::Quiet,
        _ => ProgressStyle::Plain,
    }
}

/// `1:02:03` or `2:03`.
pub fn clock(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// A progress reporter for one phase (`copy`, `verify`, …): bytes done and total, rate, ETA,
/// in the process's [`ProgressStyle`].
pub fn progress_printer(phase: &str) -> impl FnMut(u64, u64) + '_ {
    let t0 = uptime();
    let mut last_t = f64::MIN;
    let mut last_pct = u64::MAX;
    let style = style();
    move |done, total| {
        let now = uptime();
        let secs = (now - t0).max(1e-3);
        let rate = done as f64 / secs;
        let eta = if rate > 0.0 { (total.saturating_sub(done)) as f64 / rate } else { 0.0 };
        let pct = done.saturating_mul(100) / total.max(1);
        let end = done >= total;
        match style {
            ProgressStyle::Quiet => {}
            ProgressStyle::Bar => {
                if now - last_t < 0.1 && !end {
                    return;
                }
                last_t = now;
                let filled = (pct as usize * 30 / 100).min(30);
                eprint!(
                    "\r{phase}: [{}{}] {pct:3}%  {} / {}  {:.0} MiB/s  ETA {}   ",
                    "#".repeat(filled),
                    ".".repeat(30 - filled),
                    sysclone_disk::human_bytes(done),
                    sysclone_disk::human_bytes(total),
                    rate / 1048576.0,
                    clock(eta)
                );
                if end {
                    eprintln!();
                }
            }
            ProgressStyle::Plain => {
                if (pct / 10 == last_pct / 10 && now - last_t < 10.0) && !(end && last_pct != pct) {
                    return;
                }
                last_pct = pct;
                last_t = now;
                say(&format!("{phase}: {pct:3}%  {} of {}  {:.1} MiB/s  ETA {}", sysclone_disk::human_bytes(done), sysclone_disk::human_bytes(total), rate / 1048576.0, clock(eta)));
            }
            ProgressStyle::Json => {
                if now - last_t < 1.0 && !end {
                    return;
                }
                last_t = now;
                eprintln!("{{\"event\":\"progress\",\"phase\":\"{phase}\",\"done\":{done},\"total\":{total},\"bytes_per_second\":{:.0},\"eta_seconds\":{:.0}}}", rate, eta);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks() {
        assert_eq!(clock(0.0), "0:00");
        assert_eq!(clock(75.4), "1:15");
        assert_eq!(clock(3723.0), "1:02:03");
    }
}
