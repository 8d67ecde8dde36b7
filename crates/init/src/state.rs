//! What the rescue system is doing right now, and the faults a test may inject into it.
//!
//! - [`Busy`]: held while a disk is being written, so Ctrl-Alt-Del does not cut a clone short
//!   by accident (see [`cad_action`]).
//! - [`fault`]: `sysclone.debug=panic@STAGE,abort@STAGE` on the kernel command line makes the
//!   named stage panic (or abort the process) the first time it is reached, so tests can
//!   prove that PID 1 survives both. A fired fault is remembered under `/run`, so a retry or a
//!   restarted worker goes on past it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

static BUSY: Mutex<Option<String>> = Mutex::new(None);

/// Marks a disk write in progress for as long as it lives.
pub struct Busy(());

impl Busy {
    pub fn enter(what: impl Into<String>) -> Busy {
        if let Ok(mut b) = BUSY.lock() {
            *b = Some(what.into());
        }
        Busy(())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Ok(mut b) = BUSY.lock() {
            *b = None;
        }
    }
}

/// What is being written now, if anything.
pub fn busy() -> Option<String> {
    BUSY.lock().ok().and_then(|b| b.clone())
}

/// What Ctrl-Alt-Del does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CadAction {
    /// Nothing is being written: reboot now.
    Reboot,
    /// A write is in progress and this is the first press: warn, wait for a second one.
    Warn(String),
    /// A second press within the grace time: reboot anyway.
    Force(String),
}

/// How long a second Ctrl-Alt-Del counts as "yes, really".
pub const CAD_GRACE: Duration = Duration::from_secs(10);

/// Decide what a Ctrl-Alt-Del press at `now` does, given what is being written and when the
/// previous press was.
pub fn cad_action(busy: Option<&str>, previous: Option<Instant>, now: Instant) -> CadAction {
    match busy {
        None => CadAction::Reboot,
        Some(what) if previous.is_some_and(|p| now.duration_since(p) <= CAD_GRACE) => CadAction::Force(what.to_string()),
        Some(what) => CadAction::Warn(what.to_string()),
    }
}

const FIRED: &str = "/run/sysclone/faults-fired";

/// Faults asked for on the command line: `(kind, stage)` pairs from `panic@job,abort@disks`.
pub fn parse_faults(debug: &str) -> Vec<(String, String)> {
    debug
        .split(',')
        .filter_map(|w| w.split_once('@'))
        .filter(|(k, _)| matches!(*k, "panic" | "abort"))
        .map(|(k, s)| (k.to_string(), s.to_string()))
        .collect()
}

/// Reached `stage`: fire the fault injected there, once per boot.
pub fn fault(stage: &str) {
    let debug = crate::cmdline::Cmdline::read().get("sysclone.debug").unwrap_or_default().to_string();
    let fired = std::fs::read_to_string(FIRED).unwrap_or_default();
    for (kind, at) in parse_faults(&debug) {
        let key = format!("{kind}@{at}");
        if at != stage || fired.lines().any(|l| l == key) {
            continue;
        }
        let _ = std::fs::create_dir_all("/run/sysclone");
        let _ = std::fs::write(FIRED, format!("{fired}{key}\n"));
        crate::console::say(&format!("debug: injecting {kind} at stage {stage}"));
        if kind == "abort" {
            std::process::abort();
        }
        panic!("injected by sysclone.debug={key}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_alt_del_spares_a_running_write_once() {
        let t0 = Instant::now();
        assert_eq!(cad_action(None, None, t0), CadAction::Reboot);
        assert_eq!(cad_action(Some("cloning"), None, t0), CadAction::Warn("cloning".into()));
        assert_eq!(cad_action(Some("cloning"), Some(t0), t0 + Duration::from_secs(3)), CadAction::Force("cloning".into()));
        assert_eq!(cad_action(Some("cloning"), Some(t0), t0 + Duration::from_secs(30)), CadAction::Warn("cloning".into()));
    }

    #[test]
    fn busy_lasts_as_long_as_its_guard() {
        assert_eq!(busy(), None);
        {
            let _b = Busy::enter("cloning a to b");
            assert_eq!(busy().as_deref(), Some("cloning a to b"));
        }
        assert_eq!(busy(), None);
    }

    #[test]
    fn fault_words() {
        assert_eq!(parse_faults("panic@job,abort@disks,verbose,bogus@x"), vec![("panic".into(), "job".into()), ("abort".into(), "disks".into())]);
        assert!(parse_faults("").is_empty());
    }
}
