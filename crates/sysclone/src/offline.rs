//! `--offline` for clone, migrate and save: plan on the live disks, stage a rescue kernel +
//! initramfs + job file on this system's ESP, make a one-shot boot entry (BootNext only),
//! and reboot into it; `sysclone offline --cancel` and `sysclone status`. The rescue image's
//! side (unstage, run, log) is in `sysclone_init::pid1` and `sysclone_init::offline`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use sysclone_disk::{human_bytes, Disk};
use sysclone_efi::EfiVars;
use sysclone_init::console::say;
use sysclone_init::offline::{self as off, Esp, Staged, StagedJob};
use sysclone_media::usbimage::EspFile;

/// The options every command that can run offline takes.
#[derive(Args, Debug, Clone, Default)]
pub struct OfflineArgs {
    /// Run it offline: stage the job and a rescue image on this system's ESP, start it once
    /// at the next boot (BootNext), come back afterwards (see docs/offline.md)
    #[arg(long, help_heading = "Offline (instead of now)")]
    pub offline: bool,
    /// With --offline: reboot as soon as the job is staged
    #[arg(long, requires = "offline", help_heading = "Offline (instead of now)")]
    pub reboot: bool,
    /// With --offline: the rescue kernel [default: /boot/vmlinuz-RELEASE of the running
    /// kernel]
    #[arg(long, requires = "offline", value_name = "FILE", help_heading = "Offline (instead of now)")]
    pub kernel: Option<PathBuf>,
    /// With --offline: that kernel's modules [default: /lib/modules/RELEASE]
    #[arg(long, requires = "offline", value_name = "DIR", help_heading = "Offline (instead of now)")]
    pub modules: Option<PathBuf>,
    /// With --offline: stage this initramfs (from `sysclone image build`) instead of
    /// building one from the kernel's modules
    #[arg(long, requires = "offline", conflicts_with = "modules", value_name = "FILE", help_heading = "Offline (instead of now)")]
    pub initramfs: Option<PathBuf>,
    /// With --offline: the ESP to stage on, by PARTUUID [default: the one the firmware
    /// booted this system from]
    #[arg(long, requires = "offline", value_name = "PARTUUID", help_heading = "Offline (instead of now)")]
    pub esp: Option<String>,
}

/// A job ready to stage: what it does in words, its TOML, and the disks it names.
pub struct StagePlan {
    pub summary: String,
    pub job: toml::Table,
    pub source: Disk,
    /// Disks the job writes (the ESP must not be on one of them).
    pub writes: Vec<Disk>,
}

/// `--map`, `--discard-unused`… have no job key: refuse them with --offline, by name.
pub fn refuse_options(given: &[(&str, bool)]) -> Result<()> {
    let bad: Vec<&str> = given.iter().filter(|(_, g)| *g).map(|(n, _)| *n).collect();
    if !bad.is_empty() {
        bail!("{} cannot be used with --offline (an offline job takes the options a job file has; see docs/jobs.md)", bad.join(", "));
    }
    Ok(())
}

/// Disks as they are now, and the stable selector of the one `sel` picks.
pub fn stable(sel: &sysclone_disk::Selector, others: &[&str]) -> Result<(Disk, String)> {
    let disks = sysclone_init::run::disks_now(None)?;
    let d = sel.select(&disks, others, Path::new("/dev"))?.clone();
    let s = off::stable_selector(&d, &disks)?;
    Ok((d, s))
}

/// Protect selectors as given, unless they are device paths (which change between boots).
pub fn protect_list(protect: &[String]) -> Result<Vec<String>> {
    protect
        .iter()
        .map(|p| {
            if p.starts_with('/') {
                Ok(stable(&sysclone_disk::Selector::parse(p)?, &[])?.1)
            } else {
                Ok(p.clone())
            }
        })
        .collect()
}

/// The ESP to stage on: `--esp`, else the partition the firmware booted from (the boot
/// loader's LoaderDevicePartUUID, the BootCurrent entry's partition), else the ESP mounted
/// at /boot/efi, /efi or /boot, else the source disk's only ESP.
fn choose_esp(o: &OfflineArgs, vars: &EfiVars, source: &Disk) -> Result<Esp> {
    let disks = sysclone_init::run::disks_now(None)?;
    let all = off::esps(&disks);
    if all.is_empty() {
        bail!("no EFI System Partition on any disk: an offline job is staged on the ESP the firmware boots from");
    }
    let by_uuid = |u: &str, why: &str| -> Result<Esp> {
        all.iter().find(|e| e.part.part_uuid.as_deref().is_some_and(|p| p.eq_ignore_ascii_case(u))).cloned().ok_or_else(|| anyhow!("{why} names partition {u}, which is no ESP on the disks here"))
    };
    if let Some(u) = &o.esp {
        return by_uuid(u, "--esp");
    }
    if let Some(u) = vars.loader_device_part_uuid().ok().flatten() {
        return by_uuid(&u, "the boot loader's LoaderDevicePartUUID");
    }
    if let Some(u) = sysclone_init::run::boot_current_partuuid(vars.dir()) {
        if let Ok(e) = by_uuid(&u, "BootCurrent") {
            return Ok(e);
        }
    }
    for m in ["/boot/efi", "/efi", "/boot"] {
        if let Some(e) = all.iter().find(|e| e.mountpoint.as_deref() == Some(Path::new(m))) {
            return Ok(e.clone());
        }
    }
    let on_source: Vec<&Esp> = all.iter().filter(|e| e.disk.name == source.name).collect();
    if on_source.len() == 1 {
        return Ok(on_source[0].clone());
    }
    bail!("cannot tell which ESP this system booted from; name it with --esp PARTUUID (ESPs: {})", all.iter().map(|e| e.describe()).collect::<Vec<_>>().join("; "))
}

/// What the firmware would refuse: say it before anything is written.
fn check_secure_boot(efivars: &Path) -> Result<()> {
    if off::secure_boot(efivars) != Some(true) {
        return Ok(());
    }
    let signed = [("shim", "/usr/lib/shim/shimx64.efi.signed"), ("GRUB", "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed")];
    let found: Vec<String> = signed.iter().filter(|(_, p)| Path::new(p).is_file()).map(|(n, p)| format!("{n} ({p})")).collect();
    let chain = if found.len() == signed.len() {
        format!("This system has Debian's signed chain ({}), but staging it for an offline job is not implemented yet.", found.join(", "))
    } else {
        "Debian's signed chain (shim-signed, grub-efi-amd64-signed) is not installed here either.".to_string()
    };
    bail!(
        "Secure Boot is on: the firmware starts only signed images, and the staged rescue image (the kernel with an initramfs built here, started directly) is not signed by a key it trusts, so it would not boot; nothing was staged. {chain} Use a rescue stick made with `sysclone image build --boot-files …` (its Secure Boot image boots through shim + GRUB), or turn Secure Boot off for this run."
    )
}

/// The running kernel's image and modules (or `--kernel`/`--modules`).
fn kernel_files(o: &OfflineArgs) -> Result<(PathBuf, Option<PathBuf>)> {
    let rel = nix::sys::utsname::uname()?.release().to_string_lossy().into_owned();
    let kernel = o.kernel.clone().unwrap_or_else(|| PathBuf::from(format!("/boot/vmlinuz-{rel}")));
    if !kernel.is_file() {
        bail!("the rescue kernel {} is not there; name one with --kernel FILE (and its --modules DIR, or an --initramfs)", kernel.display());
    }
    if o.initramfs.is_some() {
        return Ok((kernel, None));
    }
    let modules = o.modules.clone().unwrap_or_else(|| PathBuf::from(format!("/lib/modules/{rel}")));
    if !modules.is_dir() {
        bail!("the kernel modules {} are not there; name them with --modules DIR (or give an --initramfs)", modules.display());
    }
    if o.kernel.is_some() && o.modules.is_none() {
        bail!("--kernel needs the modules of that kernel: --modules DIR (or an --initramfs)");
    }
    Ok((kernel, Some(modules)))
}

/// Kernel command line words of the running system that the rescue kernel needs on the same
/// machine too: its consoles, and the hardware workarounds it was booted with.
const KEPT_WORDS: &[&str] = &["console", "earlycon", "no_timer_check", "noapic", "nolapic", "acpi", "pci", "iommu", "intel_iommu", "amd_iommu", "nomodeset", "libata.force"];

fn kept_kernel_words(cmdline: &str) -> String {
    cmdline.split_whitespace().filter(|w| KEPT_WORDS.contains(&w.split('=').next().unwrap_or(w))).collect::<Vec<_>>().join(" ")
}

fn round_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to.max(1)) * to.max(1)
}

/// Stage `plan` (nothing is written with `dry_run`); reboot when asked.
pub fn stage(o: &OfflineArgs, efivars: &Path, plan: StagePlan, dry_run: bool) -> Result<()> {
    let vars = EfiVars::new(efivars);
    if !vars.is_available() {
        bail!("no EFI variables at {}: offline jobs need a system booted through UEFI (use a rescue stick otherwise)", efivars.display());
    }
    check_secure_boot(efivars)?;
    let job_text = toml::to_string(&plan.job)?;
    sysclone_init::job::Job::parse(&job_text).context("the offline job made from these options")?;
    let esp = choose_esp(o, &vars, &plan.source)?;
    let esp_uuid = esp.partuuid()?;
    if plan.writes.iter().any(|d| d.name == esp.disk.name) {
        bail!("the ESP to stage on ({}) is on a disk this job overwrites; choose another with --esp", esp.describe());
    }
    if esp.disk.table != "gpt" {
        bail!("the ESP {} is on an {} disk; offline jobs are staged on GPT disks only", esp.describe(), esp.disk.table);
    }
    if let Some((state, files)) = off::staged_on(&esp)? {
        bail!(
            "a job is already staged on {} ({}; {} files under \\EFI\\sysclone\\offline\\); `sysclone status` shows it, `sysclone offline --cancel` removes it",
            esp.describe(),
            state.map(|s| s.summary).unwrap_or_else(|| "no readable record".into()),
            files.len()
        );
    }
    say(&format!("ESP: {}", esp.describe()));

    // The rescue image: built here from the kernel's modules, unless one is given.
    let (kernel, modules) = kernel_files(o)?;
    let tmp = tempfile::Builder::new().prefix("sysclone-offline-").tempdir().context("making a temporary directory for the rescue image")?;
    let initramfs = match (&o.initramfs, &modules) {
        (Some(i), _) => i.clone(),
        (None, Some(m)) => {
            say(&format!("building the rescue initramfs from {} (kernel {})", m.display(), kernel.display()));
            let args = ["image", "build", "--initramfs-only", "--compression", "zstd:9", "--out", &tmp.path().to_string_lossy(), "--kernel", &kernel.to_string_lossy(), "--modules", &m.to_string_lossy()];
            let cli = <crate::cli::Cli as clap::Parser>::try_parse_from(std::iter::once("sysclone").chain(args.iter().copied())).map_err(|e| anyhow!("{e}"))?;
            let crate::cli::Cmd::Image(crate::cli::ImageCmd::Build(b)) = cli.cmd else { unreachable!("parsed as image build") };
            crate::image::build(b).context("building the rescue initramfs")?;
            tmp.path().join("initramfs.img")
        }
        (None, None) => unreachable!("kernel_files gives modules without --initramfs"),
    };

    let job_sha = sysclone_net::http::sha256_hex(job_text.as_bytes());
    let cmdline = format!(
        "initrd=\\{} {} panic=10 sysclone.offline sysclone.boot-partuuid={esp_uuid} sysclone.job={} sysclone.job.sha256={job_sha}",
        off::INITRD.replace('/', "\\"),
        kept_kernel_words(&std::fs::read_to_string("/proc/cmdline").unwrap_or_default()),
        off::JOB
    )
    .split_whitespace()
    .collect::<Vec<_>>()
    .join(" ");
    let ksize = std::fs::metadata(&kernel).with_context(|| format!("reading {}", kernel.display()))?.len();
    let isize = std::fs::metadata(&initramfs).with_context(|| format!("reading {}", initramfs.display()))?.len();
    let number = sysclone_efi::find_identical(&vars, &entry(&esp, &cmdline)?)?.map(Ok).unwrap_or_else(|| vars.free_boot_number())?;
    let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut state = Staged {
        created,
        summary: plan.summary.clone(),
        esp_partuuid: esp_uuid.clone(),
        boot_entry: sysclone_efi::boot_var_name(number),
        kernel: kernel.display().to_string(),
        initramfs: o.initramfs.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| format!("built from {}", modules.as_ref().map(|m| m.display().to_string()).unwrap_or_default())),
        cmdline: cmdline.clone(),
        files: vec![(off::KERNEL.into(), ksize), (off::INITRD.into(), isize), (off::JOB.into(), job_text.len() as u64)],
    };
    // The record's own size is in the sum too (its text does not change length by much: a
    // few bytes of slack are covered by the cluster rounding below).
    let state_len = serde_json::to_vec_pretty(&state)?.len() as u64 + 64;
    state.files.push((off::STATE.into(), state_len));

    // Space, before anything is written.
    let (free, cluster) = esp.free_space()?;
    let dirs = if esp.list("EFI").map(|v| v.is_empty()).unwrap_or(true) { 2 } else { 1 };
    let need: u64 = state.files.iter().map(|(_, n)| round_up(*n, cluster)).sum::<u64>() + dirs * cluster;
    let parts = format!(
        "kernel {ksize}, initramfs {isize}, job {} and record {state_len} bytes, each rounded up to the {cluster}-byte cluster, plus {dirs} cluster(s) for directories",
        job_text.len()
    );
    if free < need {
        bail!(
            "not enough space on the ESP {}: staging needs {need} bytes ({}) but {free} bytes ({}) are free; free {} more bytes (old kernels or files under \\EFI\\), or name a smaller --kernel/--initramfs; nothing was written",
            esp.describe(),
            human_bytes(need),
            human_bytes(free),
            need - free
        );
    }
    say(&format!("ESP space: {need} bytes needed ({parts}), {free} bytes free"));
    say(&format!("job ({}):\n{}", plan.summary, job_text.trim_end()));
    if dry_run {
        say("dry run: nothing staged");
        return Ok(());
    }

    // Files first, then the entry, then BootNext; any failure undoes what was done.
    let state_json = serde_json::to_vec_pretty(&state)?;
    let files = vec![
        EspFile::bytes(off::JOB, job_text.clone().into_bytes()),
        EspFile::bytes(off::STATE, state_json),
        EspFile::from_path(off::KERNEL, &kernel),
        EspFile::from_path(off::INITRD, &initramfs),
    ];
    let r = (|| -> Result<u16> {
        esp.write(&files)?;
        // Read the job back: the rescue image checks its sha256 before running it.
        let back = esp.read(off::JOB)?.ok_or_else(|| anyhow!("{} is not on the ESP after writing it", off::JOB))?;
        if back != job_text.as_bytes() {
            bail!("{} reads back different from what was written", off::JOB);
        }
        let n = sysclone_efi::create_entry(&vars, &entry(&esp, &cmdline)?).context("creating the one-shot boot entry")?;
        vars.set_boot_next(Some(n)).context("setting BootNext")?;
        Ok(n)
    })();
    let n = match r {
        Ok(n) => n,
        Err(e) => {
            let undo = off::unstage(&esp, &vars);
            bail!("{e:#}; {}", match undo {
                Ok(_) => "what was staged has been removed again".to_string(),
                Err(u) => format!("removing what was staged failed too ({u:#}): run `sysclone offline --cancel`"),
            });
        }
    };
    say(&format!(
        "staged under \\EFI\\sysclone\\offline\\ on {}: vmlinuz.efi ({}), initrd.img ({}), job.toml, staged.json",
        esp.describe(),
        human_bytes(ksize),
        human_bytes(isize)
    ));
    say(&format!("boot entry {} \"{}\", BootNext = {n:04X} (BootOrder unchanged)", sysclone_efi::boot_var_name(n), off::ENTRY_LABEL));
    say("at the next boot the job runs unattended and the machine restarts (into the clone when the job makes it first, else back here); a failed or interrupted run comes back here too");
    say("afterwards `sysclone status` shows the report; `sysclone offline --cancel` removes the job before it runs");
    if o.reboot {
        return reboot_now();
    }
    say("reboot to start it (or stage with --reboot)");
    Ok(())
}

/// The one-shot entry: the kernel's EFI stub on the ESP, the initrd and job on its command line.
fn entry(esp: &Esp, cmdline: &str) -> Result<sysclone_efi::LoadOption> {
    let ls = u64::from(esp.disk.logical_sector.max(512));
    let guid = sysclone_efi::guid_to_disk_bytes(&esp.partuuid()?)?;
    let hd = sysclone_efi::HardDrive::gpt(esp.part.number, esp.part.start_bytes / ls, esp.part.size_bytes / ls, guid);
    let mut opt = sysclone_efi::LoadOption::disk_entry(off::ENTRY_LABEL, hd, off::KERNEL);
    opt.optional_data = sysclone_efi::ucs2_args(cmdline);
    Ok(opt)
}

/// Restart the machine the way this system does it: systemd, else (sysclone itself as PID 1,
/// a rescue shell) the reboot system call after sync, else `reboot`.
fn reboot_now() -> Result<()> {
    say("rebooting into the offline job");
    if Path::new("/run/systemd/system").is_dir() {
        let st = std::process::Command::new("systemctl").arg("reboot").status().context("running systemctl reboot")?;
        if !st.success() {
            bail!("systemctl reboot failed ({st}); the job stays staged: reboot by hand");
        }
        return Ok(());
    }
    let same = |a: &str, b: &str| std::fs::canonicalize(a).ok().zip(std::fs::canonicalize(b).ok()).is_some_and(|(x, y)| x == y);
    if same("/proc/1/exe", "/proc/self/exe") {
        // No init to unmount for us: leave every disk filesystem clean (a FAT left mounted
        // keeps its dirty bit) before the reboot system call.
        unmount_disk_filesystems();
        nix::unistd::sync();
        nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT)?;
        unreachable!("reboot(2) returned");
    }
    let st = std::process::Command::new("reboot").status().context("running reboot")?;
    if !st.success() {
        bail!("reboot failed ({st}); the job stays staged: reboot by hand");
    }
    Ok(())
}

/// Every ESP on `disks` with the job staged on it, if any. An ESP without a readable FAT (a
/// fresh partition, another tool's) holds no job and is skipped (`-v` says so).
fn readable_esps(disks: &[Disk]) -> Vec<(Esp, Option<StagedJob>)> {
    off::esps(disks)
        .into_iter()
        .filter_map(|esp| match off::staged_on(&esp) {
            Ok(s) => Some((esp, s)),
            Err(e) => {
                sysclone_init::console::detail(&format!("skipped {}: {e:#}", esp.describe()));
                None
            }
        })
        .collect()
}

/// Unmount every filesystem on a block device, the last mounted first; one that is busy is
/// remounted read-only instead. Failures are said, not fatal.
fn unmount_disk_filesystems() {
    use nix::mount::{mount, umount, MsFlags};
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounts: Vec<String> = info
        .lines()
        .filter(|l| l.split(" - ").nth(1).and_then(|r| r.split(' ').nth(1)).is_some_and(|src| src.starts_with("/dev/")))
        .filter_map(|l| l.split(' ').nth(4).map(|m| m.replace("\\040", " ")))
        .collect();
    for m in mounts.iter().rev() {
        if umount(m.as_str()).is_ok() {
            say(&format!("unmounted {m}"));
            continue;
        }
        if let Err(e) = mount(None::<&str>, m.as_str(), None::<&str>, MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, None::<&str>) {
            say(&format!("warning: {m} could not be unmounted or made read-only ({e}); it is synced"));
        }
    }
}

/// `sysclone offline --cancel`: remove every staged job (files, entry, BootNext) on any ESP.
pub fn cancel(efivars: &Path) -> Result<()> {
    let disks = sysclone_init::run::disks_now(None)?;
    let vars = EfiVars::new(efivars);
    let mut any = false;
    for (esp, staged) in readable_esps(&disks) {
        let entries = match esp.part.part_uuid.as_deref() {
            Some(u) if vars.is_available() => off::staged_entries(&vars, u)?,
            _ => Vec::new(),
        };
        if staged.is_none() && entries.is_empty() {
            continue;
        }
        any = true;
        let what = staged.as_ref().and_then(|(s, _)| s.as_ref().map(|s| s.summary.clone())).unwrap_or_else(|| "no readable record".into());
        let nfiles = staged.as_ref().map(|(_, f)| f.len()).unwrap_or(0);
        let u = off::unstage(&esp, &vars).with_context(|| format!("removing the staged job on {}", esp.describe()))?;
        say(&format!(
            "cancelled the staged job ({what}) on {}: {} files removed, boot entries removed: {}{}",
            esp.describe(),
            nfiles,
            if u.entries.is_empty() { "none".to_string() } else { u.entries.join(", ") },
            if u.boot_next_cleared { "; BootNext cleared (the next boot starts this system as usual)" } else { "" }
        ));
    }
    if !any {
        say("no offline job is staged on any ESP");
    }
    Ok(())
}

/// `sysclone status`: a staged job waiting for the next boot, and the last offline run's
/// report, on every ESP.
pub fn status(efivars: &Path, json: bool) -> Result<()> {
    let disks = sysclone_init::run::disks_now(None)?;
    let vars = EfiVars::new(efivars);
    let next = vars.boot_next().ok().flatten();
    let mut staged_doc = Vec::new();
    // (file name, ESP, path) of every offline run's log on every ESP.
    let mut logs: Vec<(String, Esp, String)> = Vec::new();
    for (esp, staged) in readable_esps(&disks) {
        if let Some((state, files)) = staged {
            let entries = esp.part.part_uuid.as_deref().filter(|_| vars.is_available()).map(|u| off::staged_entries(&vars, u)).transpose()?.unwrap_or_default();
            let armed = entries.iter().any(|n| Some(*n) == next);
            if !json {
                say(&format!("staged: {} on {}", state.as_ref().map(|s| s.summary.as_str()).unwrap_or("(no readable record)"), esp.describe()));
                if let Some(s) = &state {
                    say(&format!("  since {} UTC, kernel {}, initramfs {}", stamp_text(s.created), s.kernel, s.initramfs));
                }
                say(&format!(
                    "  {}",
                    match (armed, entries.is_empty()) {
                        (true, _) => format!("BootNext = {:04X}: it runs at the next boot", next.unwrap_or(0)),
                        (false, false) => "its boot entry is there but BootNext does not name it: the firmware started it already (it did not get far enough to remove itself) or BootNext was changed; `sysclone offline --cancel` removes it".to_string(),
                        (false, true) => "no boot entry starts it any more; `sysclone offline --cancel` removes the files".to_string(),
                    }
                ));
            }
            staged_doc.push(serde_json::json!({ "esp": esp.part.part_uuid, "record": state, "files": files, "boot_next_armed": armed, "entries": entries.iter().map(|n| sysclone_efi::boot_var_name(*n)).collect::<Vec<_>>() }));
        }
        for log in off::offline_logs(&esp).unwrap_or_default() {
            logs.push((log.rsplit('/').next().unwrap_or(&log).to_string(), esp.clone(), log));
        }
    }
    // The newest run (logs are named by its start); its result, or `running` when it never
    // wrote one.
    let newest = logs.iter().map(|(n, _, _)| n.get(..15).unwrap_or(n).to_string()).max();
    let run_logs: Vec<&(String, Esp, String)> = logs.iter().filter(|(n, _, _)| newest.as_deref().is_some_and(|s| n.starts_with(s))).collect();
    let last = run_logs.iter().find(|(n, _, _)| !n.ends_with("-running.log")).or(run_logs.first()).copied();
    let mut last_doc = serde_json::Value::Null;
    if let Some((name, esp, log)) = last {
        let result = name.trim_end_matches(".log").rsplit('-').next().unwrap_or("?").to_string();
        let text = String::from_utf8_lossy(&esp.read(log)?.unwrap_or_default()).into_owned();
        let report = esp.read(&log.replace(".log", ".json"))?.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        last_doc = serde_json::json!({ "log": log, "esp": esp.part.part_uuid, "result": result, "report": report });
        if !json {
            say(&format!("last offline run: {result} ({} on {})", log, esp.describe()));
            if result == "running" {
                say("  it started but wrote no result on any ESP here: it was interrupted (power cut, reset) or its report is on a disk not attached now; the source was left as it was (the job removed its staged files and boot entry before touching a disk)");
            }
            for l in text.lines().filter(|l| ["ERROR:", "offline job:", "copied ", "boot entry ", "SYSCLONE-RESULT", "job: ", "saved ", "migrated", "bootability check"].iter().any(|k| l.contains(k))) {
                say(&format!("  {}", l.trim()));
            }
        }
    }
    if json {
        let doc = serde_json::json!({ "staged": staged_doc, "last_run": last_doc });
        println!("{}", crate::json::doc(&doc)?);
    } else if staged_doc.is_empty() && last.is_none() {
        say("no offline job is staged, and no ESP holds the report of one");
    }
    Ok(())
}

fn stamp_text(secs: u64) -> String {
    let (y, m, d, hh, mm, ss) = sysclone_disk::utc_from_unix(secs);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn consoles_and_hardware_words_are_kept() {
        let c = "BOOT_IMAGE=/vmlinuz root=UUID=1 ro quiet console=tty0 console=ttyS0,115200n8 no_timer_check acpi=off splash sysclone.mode=shell";
        assert_eq!(super::kept_kernel_words(c), "console=tty0 console=ttyS0,115200n8 no_timer_check acpi=off");
        assert_eq!(super::kept_kernel_words(""), "");
    }
}
