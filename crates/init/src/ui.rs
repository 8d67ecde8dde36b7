//! The interactive console: numbered menus that work on a serial line and on an 80×24 text
//! console, keyboard only. Every choice ends in the same plan → show → typed confirmation →
//! execute path as jobs and the CLI.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use sysclone_disk::{human_bytes, Disk, Selector};

use crate::console::say;
use crate::job::{After, BootEntry, Mode};
use crate::run::{disks_now, run_clone, CloneOptions, Confirm};

/// Print `prompt`, read one line from the console.
pub fn read_line(prompt: &str) -> Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut l = String::new();
    if std::io::stdin().lock().read_line(&mut l)? == 0 {
        bail!("no console input");
    }
    Ok(l.trim().to_string())
}

fn disk_line(i: usize, d: &Disk) -> String {
    format!(
        "{:>2}) {:<9} {:<6} {:<20} serial={:<12} {:>9} {:<4}{}",
        i + 1,
        d.name,
        d.bus.as_str(),
        d.model.as_deref().unwrap_or("-").chars().take(20).collect::<String>(),
        d.serial.as_deref().unwrap_or("-"),
        human_bytes(d.size_bytes),
        d.table,
        if d.roles.is_empty() { String::new() } else { format!(" [{}]", d.roles.join(",")) }
    )
}

/// Ask for a disk by its number in the list; `None` when the answer is empty (back).
fn pick<'a>(disks: &'a [Disk], what: &str, not: Option<&Disk>) -> Result<Option<&'a Disk>> {
    loop {
        let a = read_line(&format!("{what} disk number (Enter: back): "))?;
        if a.is_empty() {
            return Ok(None);
        }
        match a.parse::<usize>().ok().and_then(|n| n.checked_sub(1)).and_then(|i| disks.get(i)) {
            Some(d) if not.is_some_and(|n| n.name == d.name) => say("that is the source; choose another disk"),
            Some(d) => return Ok(Some(d)),
            None => say(&format!("no disk number {a:?}; type a number from the list")),
        }
    }
}

fn clone_flow(disks: &[Disk], boot_partuuid: Option<&str>, efivars: &Path) -> Result<Option<After>> {
    let Some(src) = pick(disks, "source", None)? else { return Ok(None) };
    let Some(tgt) = pick(disks, "target", Some(src))? else { return Ok(None) };
    let mode = match read_line("copy: e) every byte (exact)  s) used blocks only (smart) [e]: ")?.as_str() {
        "s" | "S" => Mode::Smart,
        _ => Mode::Exact,
    };
    let opts = CloneOptions {
        source: Selector::parse(&format!("name={}", src.name))?,
        targets: vec![Selector::parse(&format!("name={}", tgt.name))?],
        protect: Vec::new(),
        boot_entry: BootEntry::First,
        prune_stale: false,
        efivars: efivars.to_path_buf(),
        boot_partuuid: boot_partuuid.map(str::to_string),
        dry_run: false,
        confirm: Confirm::Ask,
        mode,
        verify: true,
        map: None,
        discard_unused: false,
    };
    let outcome = run_clone(&opts)?;
    say("-- result ------------------------------------------------");
    if let Some(r) = &outcome.copy {
        say(&format!(
            "{} -> {}\n{} MiB copied in {:.0} s, {}, {} unreadable range(s)",
            src.name,
            tgt.name,
            r.bytes_written >> 20,
            r.seconds,
            if r.verified == Some(true) { "verified" } else { "NOT verified" },
            r.bad_ranges.len()
        ));
    }
    if let Some(b) = &outcome.boot {
        say(&format!("boot order: {:04X?} -> {:04X?}", b.old_order, b.new_order));
    }
    say("SYSCLONE-RESULT ok");
    after_result()
}

/// After a clone or migration: reboot into it, power off, or back to the menu.
fn after_result() -> Result<Option<After>> {
    loop {
        match read_line("r) reboot into it  p) power off  m) menu: ")?.as_str() {
            "r" => return Ok(Some(After::Reboot)),
            "p" => return Ok(Some(After::Poweroff)),
            "m" | "" => return Ok(None),
            _ => {}
        }
    }
}

/// Move a system onto a smaller or larger disk: source, target, sizing policy; the plan's
/// before/after table is shown before the typed confirmation.
fn migrate_flow(disks: &[Disk], boot_partuuid: Option<&str>, efivars: &Path) -> Result<Option<After>> {
    use sysclone_layout::migrate::Policy;
    let Some(src) = pick(disks, "source", None)? else { return Ok(None) };
    let Some(tgt) = pick(disks, "target", Some(src))? else { return Ok(None) };
    let policy = match read_line("sizes: g) the last data partition takes the difference  k) keep sizes  p) proportional [g]: ")?.as_str() {
        "k" | "K" => Policy::Keep,
        "p" | "P" => Policy::Proportional,
        _ => Policy::Grow { part: None },
    };
    let opts = crate::migrate::MigrateOptions {
        source: Selector::parse(&format!("name={}", src.name))?,
        target: Selector::parse(&format!("name={}", tgt.name))?,
        protect: Vec::new(),
        policy,
        include: None,
        exclude: Vec::new(),
        new_identities: false,
        boot_entry: BootEntry::First,
        efivars: efivars.to_path_buf(),
        boot_partuuid: boot_partuuid.map(str::to_string),
        dry_run: false,
        confirm: Confirm::Ask,
        prune_stale: false,
    };
    let r = crate::migrate::run_migrate(&opts)?;
    say("-- result ------------------------------------------------");
    say(&format!("{} -> {}, {:.0} s", src.name, tgt.name, r.seconds));
    for p in &r.parts {
        say(&format!(
            "  partition {} -> {}: {} at {}, {} copied{}",
            p.source_number,
            p.number,
            human_bytes(p.size),
            p.start,
            human_bytes(p.bytes_copied),
            p.resize.as_ref().map(|x| format!(", {x}")).unwrap_or_default()
        ));
    }
    if let Some(c) = &r.bootability {
        say(&format!("bootability check: {} passed, {} warning(s), {} error(s)", c.checked.len(), c.warnings.len(), c.errors.len()));
    }
    if let Some(b) = &r.boot {
        say(&format!("boot order: {:04X?} -> {:04X?}", b.old_order, b.new_order));
    }
    say("SYSCLONE-RESULT ok");
    after_result()
}

/// The main menu. Returns what to do with the machine.
pub fn main_menu(boot_partuuid: Option<&str>, efivars: &Path, shell: &dyn Fn()) -> Result<After> {
    loop {
        let disks = disks_now(boot_partuuid)?;
        say(&format!("-- sysclone {} - disks -----------------------------------", env!("CARGO_PKG_VERSION")));
        for (i, d) in disks.iter().enumerate() {
            say(&disk_line(i, d));
        }
        say("c) clone a disk   m) migrate to a smaller/larger disk   l) list disks again");
        say("s) shell   r) reboot   p) power off");
        let choice = read_line("> ")?;
        let r = match choice.as_str() {
            "c" => clone_flow(&disks, boot_partuuid, efivars),
            "m" => migrate_flow(&disks, boot_partuuid, efivars),
            "l" => crate::kmod::rescan().map(|()| None),
            "" => Ok(None),
            "s" => {
                shell();
                Ok(None)
            }
            "r" => Ok(Some(After::Reboot)),
            "p" => Ok(Some(After::Poweroff)),
            other => {
                say(&format!("unknown choice {other:?}"));
                Ok(None)
            }
        };
        match r {
            Ok(Some(after)) => return Ok(after),
            Ok(None) => {}
            Err(e) => {
                say(&format!("ERROR: {e:#}"));
                let _ = read_line("press Enter for the menu ")?;
            }
        }
    }
}

/// Where efivarfs is mounted in the rescue system.
pub fn efivars_dir() -> PathBuf {
    PathBuf::from(sysclone_efi::vars::DEFAULT_EFIVARS_DIR)
}
