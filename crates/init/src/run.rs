//! One clone, from selectors to report: discover → plan → show → confirm → execute → boot entry.
//!
//! The CLI (`sysclone clone`) and the rescue image's job runner both come through here.

use std::io::BufRead;
use std::os::fd::AsFd;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use sysclone_copy::{execute, plan_exact, plan_smart, CloneReport, ExecOptions, Mode, PartitionUse};
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
    /// One target, or several for a duplicator (the source read once, written to all).
    pub targets: Vec<Selector>,
    pub protect: Vec<Selector>,
    pub boot_entry: BootEntry,
    /// Delete boot entries whose partition is on no attached disk.
    pub prune_stale: bool,
    /// efivarfs directory.
    pub efivars: PathBuf,
    /// PARTUUID of the partition sysclone was booted from (the boot medium), if known.
    pub boot_partuuid: Option<String>,
    pub dry_run: bool,
    pub confirm: Confirm,
    pub mode: Mode,
    /// Read the target back and compare.
    pub verify: bool,
    /// ddrescue-format map: written as the clone goes, resumed from when it exists.
    pub map: Option<PathBuf>,
    /// TRIM what a smart clone did not write.
    pub discard_unused: bool,
}

/// What a clone did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub copy: Option<CloneReport>,
    /// With several targets: each one's report or error, in the order given.
    pub targets: Vec<TargetOutcome>,
    /// The Boot#### made for the target (first in BootOrder with policy `first`).
    pub boot_entry: Option<String>,
    pub loader: Option<String>,
    /// The boot policy's report: variables before (hex), old and new BootOrder, entries.
    pub boot: Option<crate::boot::BootReport>,
}

/// One target of a duplicator.
#[derive(Debug, Clone, Serialize)]
pub struct TargetOutcome {
    pub target: String,
    pub report: Option<CloneReport>,
    pub error: Option<String>,
}

/// Where the rescue system's PID 1 writes the PARTUUID its boot loader started from, so the
/// commands run from its shell (`/init disks`, `/init clone`) know the boot medium too.
pub const BOOT_PARTUUID_FILE: &str = "/run/sysclone/boot-partuuid";

/// The PARTUUID of the partition sysclone booted from: `given`, else what the rescue
/// system's PID 1 recorded in `record`, else `sysclone.boot-partuuid=` on the kernel command
/// line. The firmware's `LoaderDevicePartUUID` is read by PID 1 only (and so reaches here
/// through `record`): on an installed system it names that system's own ESP, which is not a
/// boot medium.
pub fn boot_partuuid_from(given: Option<&str>, record: &std::path::Path, cmdline: &crate::cmdline::Cmdline) -> Option<String> {
    let valid = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')).then(|| s.to_string())
    };
    given
        .and_then(valid)
        .or_else(|| std::fs::read_to_string(record).ok().as_deref().and_then(valid))
        .or_else(|| cmdline.get("sysclone.boot-partuuid").and_then(valid))
}

/// Discover disks and tag the boot medium (see [`boot_partuuid_from`] for where its
/// PARTUUID comes from when `boot_partuuid` is `None`).
pub fn disks_now(boot_partuuid: Option<&str>) -> Result<Vec<Disk>> {
    let mut disks = discover(&Roots::default()).context("discovering disks")?;
    if let Some(u) = boot_partuuid_from(boot_partuuid, std::path::Path::new(BOOT_PARTUUID_FILE), &crate::cmdline::Cmdline::read()) {
        mark_boot_medium(&mut disks, &u);
    }
    // The disk the firmware's BootCurrent entry points at is the running system's.
    if let Some(u) = boot_current_partuuid(std::path::Path::new(sysclone_efi::vars::DEFAULT_EFIVARS_DIR)) {
        sysclone_disk::mark_system(&mut disks, &u);
    }
    check_tables(&mut disks);
    Ok(disks)
}

/// Fill each disk's `warnings` with what is wrong with its partition table: a damaged or
/// hostile GPT is listed as the kernel and the gpt crate see it, and the warnings say the
/// rest (partitions beyond the disk or overlapping, a backup that is missing or differs).
/// Reads only; a disk that cannot be opened is left as it is.
pub fn check_tables(disks: &mut [Disk]) {
    for d in disks.iter_mut().filter(|d| d.table == "gpt" || d.table == "unreadable") {
        if let Ok(mut f) = std::fs::File::open(&d.path) {
            d.warnings = sysclone_layout::check_table(&mut f, d.logical_sector, d.size_bytes);
        }
    }
}

pub fn ask_serial(target: &Disk) -> Result<()> {
    ask_serial_for(target, "Everything on this disk will be overwritten:")
}

/// Show `headline` and `target`, and ask for the last characters of its serial.
pub fn ask_serial_for(target: &Disk, headline: &str) -> Result<()> {
    let serial = target.serial.clone().unwrap_or_else(|| target.name.clone());
    let want: String = serial.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    crate::console::prompt(&format!(
        "{headline}\n{}Type the last {} characters of its serial ({}) to go on: ",
        sysclone_disk::discover::format_table(std::slice::from_ref(target)),
        want.len(),
        "*".repeat(serial.len().saturating_sub(want.len())) + &want
    ));
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != want {
        bail!("not confirmed: nothing was written to {}", target.describe());
    }
    Ok(())
}

/// Select source and target, say them, and check the target against the guard's identity
/// rules (boot medium, source, protect list) before anything is planned.
pub fn choose_disks(source: &Selector, target: &Selector, protect: &[Selector], boot_partuuid: Option<&str>) -> Result<(Disk, Disk, GuardContext)> {
    let (src, mut tgts, ctx) = choose_targets(source, std::slice::from_ref(target), protect, boot_partuuid)?;
    Ok((src, tgts.remove(0), ctx))
}

/// [`choose_disks`] for one or more targets, which must be different disks.
pub fn choose_targets(source: &Selector, targets: &[Selector], protect: &[Selector], boot_partuuid: Option<&str>) -> Result<(Disk, Vec<Disk>, GuardContext)> {
    let disks = disks_now(boot_partuuid)?;
    let dev = std::path::Path::new("/dev");
    let src = source.select(&disks, &[], dev).context("choosing the source disk")?.clone();
    let mut tgts: Vec<Disk> = Vec::new();
    for t in targets {
        let tgt = t.select(&disks, &[&src.name], dev).context("choosing the target disk")?.clone();
        if let Some(other) = tgts.iter().find(|d| d.name == tgt.name) {
            bail!("target selectors {:?} and an earlier one both choose {}", t.text, other.describe());
        }
        tgts.push(tgt);
    }
    say(&format!("source: {}", src.describe()));
    for tgt in &tgts {
        say(&format!("target: {}", tgt.describe()));
    }
    let ctx = GuardContext {
        boot_medium: disks.iter().find(|d| d.roles.iter().any(|r| r == "boot-medium")).map(|d| d.name.clone()),
        source: Some(src.clone()),
        protected: protect.to_vec(),
        roots: Roots::default(),
    };
    for tgt in &tgts {
        check_target(tgt, &ctx)?;
    }
    Ok((src, tgts, ctx))
}

/// Run one clone (exact or smart).
pub fn run_clone(opts: &CloneOptions) -> Result<Outcome> {
    if opts.targets.len() > 1 {
        return run_duplicate(opts);
    }
    let target = opts.targets.first().ok_or_else(|| anyhow::anyhow!("no target disk named"))?;
    let (src, tgt, ctx) = choose_disks(&opts.source, target, &opts.protect, opts.boot_partuuid.as_deref())?;
    let sh = open_source(&src)?;
    let gpt = read_source_gpt(&src, &sh.file)?;
    let plan = plan_for(opts.mode, &src, &sh.file, gpt.as_ref(), &tgt, &mut None)?;
    say(&plan.show());
    let need = plan.regions.iter().map(|r| r.start + r.len).max().unwrap_or(0).max(plan.head_bytes);
    if opts.dry_run {
        // The rules the write would meet, checked now (a plan staged for --offline too).
        sysclone_disk::check_target_now(&tgt, &ctx, need, Some(src.logical_sector))?;
        say("dry run: nothing written");
        return Ok(Outcome { copy: None, targets: Vec::new(), boot_entry: None, loader: None, boot: None });
    }
    if opts.confirm == Confirm::Ask {
        ask_serial(&tgt)?;
    }
    let th = open_target(&tgt, &ctx, need, Some(src.logical_sector))?;
    let mut progress = progress_printer("copy");
    let exec = ExecOptions { verify: opts.verify, map: opts.map.clone(), discard_unused: opts.discard_unused, ..Default::default() };
    let busy = crate::state::Busy::enter(format!("cloning {} to {}", src.name, tgt.name));
    let report = execute(&plan, &sh.file, &th.file, &exec, &mut progress).with_context(|| format!("cloning {} to {}", src.name, tgt.name))?;
    drop(busy);
    say(&format!(
        "copied {} MiB in {:.1} s ({:.1} MiB/s{}){}{}; peak memory {} MiB",
        report.bytes_written >> 20,
        report.seconds,
        report.mib_per_second,
        if report.direct_io { ", direct I/O" } else { "" },
        match report.verified {
            Some(true) => ", verified",
            Some(false) => ", VERIFY FAILED",
            None => "",
        },
        if report.bytes_resumed > 0 { format!(", {} MiB already done by an earlier run", report.bytes_resumed >> 20) } else { String::new() },
        report.peak_rss_bytes >> 20
    ));
    for (off, len) in &report.bad_ranges {
        say(&format!("unreadable: {len} bytes at {off} ({}), written as zeros", where_on(&src, *off)));
    }
    if report.verified == Some(false) {
        let msg = format!("verification failed: the target differs from what was written at {} place(s), first at byte {}", report.mismatches.len(), report.mismatches[0]);
        return Err(sysclone_disk::VerifyFailed(msg).into());
    }
    if let Err(e) = sysclone_disk::sys::reread_partitions(th.file.as_fd()) {
        say(&format!("note: the kernel did not re-read {}'s partitions ({e:#}); they show after a reboot", tgt.name));
    }
    drop(th);
    drop(sh);
    // The disks as they are now (the target has new partitions).
    let disks = disks_now(opts.boot_partuuid.as_deref())?;
    let boot_opts = crate::boot::BootOptions { policy: opts.boot_entry, efivars: &opts.efivars, prune_stale: opts.prune_stale, disks: &disks, guard: Some(&ctx) };
    let boot = crate::boot::entry_for_target(&tgt, &src, &boot_opts)?;
    let first = boot.first_entry().filter(|c| c.number.is_some());
    let (boot_entry, loader) = (first.map(|c| c.name.clone()), first.and_then(|c| c.loader.clone()));
    Ok(Outcome { copy: Some(report), targets: Vec::new(), boot_entry, loader, boot: Some(boot) })
}

/// Read the source's primary GPT (refusing one that does not parse: partitions outside the
/// disk, bad CRCs) and warn about whatever else is wrong with its table (overlapping
/// partitions, a missing or different backup); the copy goes on from the primary.
pub fn read_source_gpt(src: &Disk, f: &std::fs::File) -> Result<Option<sysclone_layout::RawGpt>> {
    let mut r = f.try_clone()?;
    let gpt = sysclone_layout::read_gpt(&mut r, src.logical_sector, src.size_bytes).with_context(|| format!("reading the partition table of source {}", src.describe()))?;
    for p in sysclone_layout::check_table(&mut r, src.logical_sector, src.size_bytes) {
        say(&format!("warning: the partition table of {}: {p}", src.name));
    }
    Ok(gpt)
}

/// Plan a clone of `src` onto `tgt` in `mode`.
fn plan_for(mode: Mode, src: &Disk, sh: &std::fs::File, gpt: Option<&sysclone_layout::RawGpt>, tgt: &Disk, uses: &mut Option<Vec<PartitionUse>>) -> Result<sysclone_copy::ClonePlan> {
    match mode {
        Mode::Exact => plan_exact(src, gpt, tgt),
        Mode::Smart => plan_smart(src, gpt, tgt, uses.get_or_insert_with(|| used_maps(src, sh))),
    }
}

/// One source onto several targets at once, the source read once (a duplicator). A target
/// that fails does not stop the others; the error at the end names each one that failed.
fn run_duplicate(opts: &CloneOptions) -> Result<Outcome> {
    if opts.boot_entry != BootEntry::None {
        bail!("a boot entry names one disk; with {} targets use boot entry policy none", opts.targets.len());
    }
    if opts.map.is_some() {
        bail!("a rescue map follows one target; clone to several targets without --map");
    }
    let (src, tgts, ctx) = choose_targets(&opts.source, &opts.targets, &opts.protect, opts.boot_partuuid.as_deref())?;
    let sh = open_source(&src)?;
    let gpt = read_source_gpt(&src, &sh.file)?;
    let mut uses = None;
    let plans = tgts.iter().map(|t| plan_for(opts.mode, &src, &sh.file, gpt.as_ref(), t, &mut uses)).collect::<Result<Vec<_>>>()?;
    for p in &plans {
        say(&p.show());
    }
    if opts.dry_run {
        for (t, plan) in tgts.iter().zip(&plans) {
            sysclone_disk::check_target_now(t, &ctx, plan.regions.iter().map(|r| r.start + r.len).max().unwrap_or(0).max(plan.head_bytes), Some(src.logical_sector))?;
        }
        say("dry run: nothing written");
        return Ok(Outcome { copy: None, targets: Vec::new(), boot_entry: None, loader: None, boot: None });
    }
    if opts.confirm == Confirm::Ask {
        for t in &tgts {
            ask_serial(t)?;
        }
    }
    let handles = tgts
        .iter()
        .zip(&plans)
        .map(|(t, plan)| open_target(t, &ctx, plan.regions.iter().map(|r| r.start + r.len).max().unwrap_or(0).max(plan.head_bytes), Some(src.logical_sector)))
        .collect::<Result<Vec<_>>>()?;
    let files: Vec<&std::fs::File> = handles.iter().map(|h| &h.file).collect();
    let mut progress = progress_printer("copy");
    let exec = ExecOptions { verify: opts.verify, discard_unused: opts.discard_unused, ..Default::default() };
    let names: Vec<&str> = tgts.iter().map(|t| t.name.as_str()).collect();
    let busy = crate::state::Busy::enter(format!("cloning {} to {}", src.name, names.join(", ")));
    let results = sysclone_copy::execute_many(&plans, &sh.file, &files, &exec, &mut progress).with_context(|| format!("cloning {} to {}", src.name, names.join(", ")))?;
    drop(busy);
    let mut targets = Vec::new();
    let mut failed = Vec::new();
    for ((tgt, h), r) in tgts.iter().zip(&handles).zip(results) {
        let r = r.and_then(|rep| match rep.verified {
            Some(false) => bail!("verification failed at {} place(s), first at byte {}", rep.mismatches.len(), rep.mismatches[0]),
            _ => Ok(rep),
        });
        match r {
            Ok(rep) => {
                say(&format!("{}: {} MiB written in {:.1} s{}", tgt.describe(), rep.bytes_written >> 20, rep.seconds, if rep.verified == Some(true) { ", verified" } else { "" }));
                let _ = sysclone_disk::sys::reread_partitions(h.file.as_fd());
                targets.push(TargetOutcome { target: tgt.describe(), report: Some(rep), error: None });
            }
            Err(e) => {
                say(&format!("{}: FAILED: {e:#}", tgt.describe()));
                failed.push(format!("{}: {e:#}", tgt.name));
                targets.push(TargetOutcome { target: tgt.describe(), report: None, error: Some(format!("{e:#}")) });
            }
        }
    }
    if let Some(bad) = targets.iter().find_map(|t| t.report.as_ref()).map(|r| r.bad_ranges.clone()) {
        for (off, len) in bad {
            say(&format!("unreadable: {len} bytes at {off} ({}), written as zeros on every target", where_on(&src, off)));
        }
    }
    if !failed.is_empty() {
        bail!("{} of {} targets failed ({}); the others are complete", failed.len(), tgts.len(), failed.join("; "));
    }
    Ok(Outcome { copy: None, targets, boot_entry: None, loader: None, boot: None })
}

/// Which partition (or gap) a byte offset of `disk` falls in.
pub fn where_on(disk: &Disk, off: u64) -> String {
    disk.partitions
        .iter()
        .find(|p| p.start_bytes <= off && off < p.start_bytes + p.size_bytes)
        .map(|p| format!("partition {} ({}{})", p.number, p.type_name, p.fs.as_ref().map(|f| format!(", {}", f.kind)).unwrap_or_default()))
        .unwrap_or_else(|| "outside any partition".into())
}

/// What each partition's filesystem uses, for a smart plan. A partition whose map cannot be
/// read is copied whole (the note says why).
pub fn used_maps(src: &Disk, f: &std::fs::File) -> Vec<PartitionUse> {
    src.partitions
        .iter()
        .map(|p| match sysclone_fs::used_map(f, p.start_bytes, p.size_bytes) {
            Ok(m) => PartitionUse { number: p.number, fs: m.fs, extents: m.extents.iter().map(|e| (e.start, e.len)).collect(), whole: m.whole, note: m.note },
            Err(e) => PartitionUse { number: p.number, fs: "unknown".into(), extents: Vec::new(), whole: true, note: Some(format!("used blocks unreadable ({e:#}); copied whole")) },
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::Cmdline;

    /// Commands run from the rescue shell pass no PARTUUID: PID 1's record, then the kernel
    /// command line, name the boot medium.
    #[test]
    fn boot_partuuid_falls_back_to_the_record_then_the_command_line() {
        let t = tempfile::tempdir().unwrap();
        let rec = t.path().join("boot-partuuid");
        let cmd = Cmdline::parse("console=ttyS0 sysclone.boot-partuuid=bbbb-2222");
        assert_eq!(boot_partuuid_from(None, &rec, &Cmdline::default()), None);
        assert_eq!(boot_partuuid_from(None, &rec, &cmd).as_deref(), Some("bbbb-2222"));
        std::fs::write(&rec, "aaaa-1111\n").unwrap();
        assert_eq!(boot_partuuid_from(None, &rec, &cmd).as_deref(), Some("aaaa-1111"));
        assert_eq!(boot_partuuid_from(Some("cccc-3333"), &rec, &cmd).as_deref(), Some("cccc-3333"));
        std::fs::write(&rec, "not a uuid\n").unwrap();
        assert_eq!(boot_partuuid_from(None, &rec, &cmd).as_deref(), Some("bbbb-2222"));
    }
}
