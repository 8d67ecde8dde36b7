//! PID 1 itself: a tiny supervisor that never runs anything that can fail.
//!
//! PID 1 forks the real work (the *worker*: drivers, disks, jobs, menus) into a child and
//! then only waits: it reaps every process that ends (orphans are re-parented to it), passes
//! Ctrl-Alt-Del on to the worker, and when the worker dies for any reason — a panic that
//! escaped, an abort, a crash, the OOM killer — starts a new one that shows what happened
//! and offers the menu. If PID 1 ever exited the kernel would panic; this loop never does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{kill, sigaction, signal, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

static CTRL_ALT_DEL: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: nix::libc::c_int) {
    // Only an atomic store: async-signal-safe.
    CTRL_ALT_DEL.store(true, Ordering::SeqCst);
}

/// Whether Ctrl-Alt-Del was pressed since the last call (in the worker: forwarded by PID 1).
pub fn ctrl_alt_del_pressed() -> bool {
    CTRL_ALT_DEL.swap(false, Ordering::SeqCst)
}

/// Ctrl-Alt-Del arrives as SIGINT (with the kernel's CAD reboot turned off); SIGTERM is
/// ignored, since nothing may stop init halfway. Both the supervisor and the worker (which
/// inherits this across fork) keep the handler.
fn install_handlers() {
    let _ = nix::sys::reboot::set_cad_enabled(false);
    // No SA_RESTART: the supervisor's waitpid returns EINTR so it can pass the key on.
    let cad = SigAction::new(SigHandler::Handler(on_sigint), SaFlags::empty(), SigSet::empty());
    // SAFETY: the handler only stores to an atomic; ignoring SIGTERM runs no code.
    unsafe {
        let _ = sigaction(Signal::SIGINT, &cad);
        let _ = signal(Signal::SIGTERM, SigHandler::SigIgn);
    }
}

fn death(status: WaitStatus) -> Option<String> {
    match status {
        WaitStatus::Exited(_, code) => Some(format!("the sysclone worker exited with status {code}")),
        WaitStatus::Signaled(_, sig, _) => Some(format!("the sysclone worker was killed by {sig}")),
        _ => None,
    }
}

/// Run `worker` in a child, again and again, forever. `worker` gets what ended the one
/// before it (`None` the first time).
pub fn run(worker: fn(Option<String>) -> !) -> ! {
    install_handlers();
    let mut previous: Option<String> = None;
    let mut pause = Duration::from_millis(500);
    loop {
        // SAFETY: PID 1 has started no threads (this loop never does), so the child may run
        // any code.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => worker(previous.take()),
            Ok(ForkResult::Parent { child }) => loop {
                match waitpid(None, None) {
                    Ok(status) if status.pid() == Some(child) => {
                        if let Some(why) = death(status) {
                            crate::console::say(&format!("{why}; starting it again"));
                            previous = Some(why);
                            break;
                        }
                    }
                    // An orphan, re-parented to init: reaped, nothing else to do.
                    Ok(_) => {}
                    Err(Errno::EINTR) => {
                        if ctrl_alt_del_pressed() {
                            let _ = kill(child, Signal::SIGINT);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            },
            Err(e) => {
                // Cannot fork (out of memory?): do the work in PID 1 itself rather than nothing.
                crate::console::say(&format!("cannot start the sysclone worker ({e}); running in init itself"));
                worker(previous.take());
            }
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}
