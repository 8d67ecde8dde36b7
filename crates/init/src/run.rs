//! One clone, from selectors to report: discover → plan → show → confirm → execute → boot entry.
//!
//! The CLI (`sysclone clone`) and the rescue image's job runner both come through here.

use std::io::{BufRead, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use sysclone_copy::{execute_exact, plan_exact, CloneReport};
use sysclone_disk::{check_target, discover, mark_boot_medium, open_source, open_target, Disk, GuardContext, Roots, Selector};

use crate::console::{progress_printer, say};
use crate::job::BootEntry;

/// How the user agrees to overwrite the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// Already agreed (`--yes`, or a job file).
    Yes,
    /// Ask on the terminal for the last characters of the target's serial.
    Ask,
}

/// Everything a clone needs to know.
#[derive(Debug, Clone)]
pub struct CloneOptions {
    pub source: Selector,
    pub target: Selector,
    pub protect: Vec<Selector>,
    pub boot_entry: BootEntry,
    /// efivarfs directory.
    pub efivars: PathBuf,
    /// PARTUUID of the partition sysclone was booted from (the boot medium), if known.
    pub boot_partuuid: Option<String>,
    pub dry_run: bool,
    pub confirm: Confirm,
}

/// What a clone did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub copy: Option<CloneReport>,
    /// The Boot#### number made first in BootOrder.
    pub boot_entry: Option<String>,
    pub loader: Option<String>,
}

/// Discover disks and tag the boot medium.
pub fn disks_now(boot_partuuid: Option<&str>) -> Result<Vec<Disk>> {
    let mut disks = discover(&Roots::default()).context("discovering disks")?;
    if let Some(u) = boot_partuuid {
        mark_boot_medium(&mut disks, u);
    }
    // The disk the firmware's BootCurrent entry points at is the running system's.
    if let Some(u) = boot_current_partuuid(std::path::Path::new(sysclone_efi::vars::DEFAULT_EFIVARS_DIR)) {
        sysclone_disk::mark_system(&mut disks, &u);
    }
    Ok(disks)
}

fn ask_serial(target: &Disk) -> Result<()> {
    let serial = target.serial.clone().unwrap_or_else(|| target.name.clone());
    let want: String = serial.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    eprint!(
        "Everything on this disk will be overwritten:\n{}Type the last {} characters of its serial ({}) to go on: ",
        sysclone_disk::discover::format_table(std::slice::from_ref(target)),
        want.len(),
        "*".repeat(serial.len().saturating_sub(want.len())) + &want
    );
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != want {
        bail!("not confirmed: nothing was written to {}", target.describe());
    }
    Ok(())
}

/// Run one exact clone.
pub fn run_clone(opts: &CloneOptions) -> Result<Outcome> {
    let disks = disks_now(opts.boot_partuuid.as_deref())?;
    let dev = std::path::Path::new("/dev");
    let src = opts.source.select(&disks, &[], dev).context("choosing the source disk")?.clone();
    let tgt = opts.target.select(&disks, &[&src.name], dev).context("choosing the target disk")?.clone();
    say(&format!("source: {}", src.describe()));
    say(&format!("target: {}", tgt.describe()));
    let ctx = GuardContext {
        boot_medium: disks.iter().find(|d| d.roles.iter().any(|r| r == "boot-medium")).map(|d| d.name.clone()),
        source: Some(src.clone()),
        protected: opts.protect.clone(),
        roots: Roots::default(),
    };
    check_target(&tgt, &ctx)?;
    let sh = open_source(&src)?;
    let mut f = sh.file.try_clone()?;
    let gpt = sysclone_layout::read_gpt(&mut f, src.logical_sector, src.size_bytes).with_context(|| format!("reading the partition table of source {}", src.describe()))?;
    let plan = plan_exact(&src, gpt.as_ref(), &tgt)?;
    say(&plan.show());
    if opts.dry_run {
        say("dry run: nothing written");
        return Ok(Outcome { copy: None, boot_entry: None, loader: None });
    }
    if opts.confirm == Confirm::Ask {
        ask_serial(&tgt)?;
    }
    let th = open_target(&tgt, &ctx, src.size_bytes, Some(src.logical_sector))?;
    let mut progress = progress_printer("copy");
    let report = execute_exact(&plan, &sh.file, &th.file, &mut progress).with_context(|| format!("cloning {} to {}", src.name, tgt.name))?;
    say(&format!("copied and verified {} MiB in {:.1} s ({:.1} MiB/s), source sha256 {}", report.bytes_copied >> 20, report.seconds, report.mib_per_second, report.source_sha256));
    if let Err(e) = sysclone_disk::sys::reread_partitions(th.file.as_fd()) {
        say(&format!("note: the kernel did not re-read {}'s partitions ({e:#}); they show after a reboot", tgt.name));
    }
    drop(th);
    drop(sh);
    let (boot_entry, loader) = match opts.boot_entry {
        BootEntry::None => (None, None),
        policy => {
            let (n, loader) = crate::boot::entry_for_target(&tgt, &src, &opts.efivars, policy == BootEntry::First)?;
            (Some(format!("Boot{n:04X}")), Some(loader))
        }
    };
    Ok(Outcome { copy: Some(report), boot_entry, loader })
}

/// The partition GUID of the HD node of the firmware's BootCurrent entry, if any.
pub fn boot_current_partuuid(efivars: &std::path::Path) -> Option<String> {
    let vars = sysclone_efi::EfiVars::new(efivars);
    let opt = vars.read_boot(vars.boot_current().ok()??).ok()??;
    opt.path.iter().find_map(|n| match n {
        sysclone_efi::DevicePathNode::HardDrive { signature: sysclone_efi::HdSignature::Gpt(g), .. } => Some(sysclone_efi::guid::guid_from_disk_bytes(g)),
        _ => None,
    })
}

/// Read a whole file from a partition's FAT filesystem without mounting it.
pub fn read_from_fat(dev: &std::path::Path, start: u64, len: u64, path: &str) -> Result<Vec<u8>> {
    sysclone_media::usbimage::read_esp_file(dev, start, len, path).with_context(|| format!("reading {path} from the FAT filesystem on {}", dev.display()))
}
