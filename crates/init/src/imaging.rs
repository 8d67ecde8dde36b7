//! Saving a disk to an image directory and restoring one, from selectors to report. The CLI
//! (`sysclone save`, `sysclone restore`) comes through here; the format and engine live in
//! `sysclone-imagefile`.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use sysclone_disk::{check_target, human_bytes, open_source, open_target, Disk, GuardContext, Refusal, Roots, Rule, Selector};
use sysclone_imagefile::{plan_restore, plan_save, Image, RestoreReport, SaveOptions, SaveReport};
use sysclone_layout::migrate::{plan_migration, Identities, MigrateRequest, Policy};
use sysclone_net::trust::Policy as TrustPolicy;

use crate::job::BootEntry;
use crate::migrate::PartReport;

use crate::console::{progress_printer, say};
use crate::run::{ask_serial, disks_now, used_maps, Confirm};

/// What `sysclone save` needs.
#[derive(Debug, Clone)]
pub struct SaveRequest {
    pub source: Selector,
    pub to: PathBuf,
    /// Only these partitions (the others are listed but not stored).
    pub partitions: Option<Vec<u32>>,
    pub options: SaveOptions,
    pub dry_run: bool,
    /// Ask on the console, after the plan is shown, for the last characters of this disk's
    /// serial (the disk the image is written to; the interactive console).
    pub confirm_on: Option<Disk>,
}

/// The mount point a path lies on (the longest mount point that is a prefix of it).
fn mount_point_of(path: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| m.replace("\\040", " "))
        .filter(|m| path.starts_with(m))
        .max_by_key(|m| m.len())
}

/// Where a directory on this system lies, as a job names it: the disk, the partition number
/// and the path relative to that partition's root (for `save --offline`, whose rescue image
/// mounts the partition by selector).
pub fn image_location(path: &Path) -> Result<(Disk, u32, String)> {
    let abs = std::env::current_dir().context("reading the current directory")?.join(path);
    let existing = abs.ancestors().find(|a| a.exists()).unwrap_or(Path::new("/"));
    let parent = existing.canonicalize()?;
    let full = parent.join(abs.strip_prefix(existing).unwrap_or(Path::new("")));
    let info = std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    // Field 5 is the mount point; after " - ": type, source.
    let (mp, source) = info
        .lines()
        .filter_map(|l| {
            let mp = l.split(' ').nth(4)?.replace("\\040", " ");
            let src = l.split(" - ").nth(1)?.split(' ').nth(1)?.to_string();
            Some((mp, src))
        })
        .filter(|(m, _)| parent.starts_with(m))
        .max_by_key(|(m, _)| m.len())
        .ok_or_else(|| anyhow::anyhow!("{} is on no mounted filesystem", path.display()))?;
    let name = std::fs::canonicalize(&source).ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).unwrap_or_default();
    let disks = disks_now(None)?;
    let (disk, part) = disks
        .iter()
        .find_map(|d| d.partitions.iter().find(|p| p.name.as_deref() == Some(name.as_str())).map(|p| (d.clone(), p.number)))
        .ok_or_else(|| anyhow::anyhow!("{} is on {source} (mounted at {mp}), which is no partition of a disk here; an offline job mounts its images partition by disk and number", path.display()))?;
    let rel = full.strip_prefix(&mp).unwrap_or(&full).to_string_lossy().trim_start_matches('/').to_string();
    if rel.is_empty() {
        bail!("{}: give a directory below the partition's root ({mp}) for the image", path.display());
    }
    Ok((disk, part, rel))
}

/// Save the selected disk's used blocks into `req.to`.
pub fn run_save(req: &SaveRequest) -> Result<Option<SaveReport>> {
    let disks = disks_now(None)?;
    let src = req.source.select(&disks, &[], Path::new("/dev")).context("choosing the disk to save")?.clone();
    say(&format!("source: {}", src.describe()));
    // The image must not land on the disk it is made of.
    let abs = std::env::current_dir().context("reading the current directory")?.join(&req.to);
    let parent = abs.ancestors().find(|a| a.exists()).map(|a| a.canonicalize()).transpose()?.unwrap_or_default();
    if let Some(mp) = mount_point_of(&parent) {
        if src.mounts.contains(&mp) {
            bail!("{} lies on {} (mounted at {mp}), the disk being saved; save to another disk", req.to.display(), src.describe());
        }
    }
    if !src.mounts.is_empty() {
        say(&format!("warning: {} is mounted ({}); files changing during the save make an inconsistent image", src.name, src.mounts.join(", ")));
    }
    let sh = open_source(&src)?;
    let gpt = crate::run::read_source_gpt(&src, &sh.file)?;
    let uses = used_maps(&src, &sh.file);
    let plan = plan_save(&src, gpt.as_ref(), &uses, req.partitions.as_deref())?;
    say(&plan.show(&req.to));
    if req.dry_run {
        say("dry run: nothing written");
        return Ok(None);
    }
    if let Some(d) = &req.confirm_on {
        crate::run::ask_serial_for(d, &format!("The image is written to {} on this disk:", req.to.display()))?;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()).filter(|h| !h.is_empty());
    let mut progress = progress_printer("save");
    let r = sysclone_imagefile::save(&plan, &sh.file, &req.to, &req.options, &mut progress, host).with_context(|| format!("saving {} to {}", src.name, req.to.display()))?;
    say(&format!(
        "saved {} of used blocks as {} ({:.2}:1) in {} chunks, {} data file(s); {:.1} s, {:.1} MiB/s on {} threads; peak memory {} MiB",
        sysclone_disk::human_bytes(r.bytes_used),
        sysclone_disk::human_bytes(r.bytes_stored),
        r.ratio,
        r.chunks,
        r.data_files,
        r.seconds,
        r.mib_per_second,
        r.threads,
        r.peak_rss_bytes >> 20
    ));
    if req.options.base.is_some() {
        say(&format!(
            "incremental: {} of {} ({:.1} %) in {} chunks found in the base image and referenced; {} of new data stored ({:.1} % of the used bytes)",
            sysclone_disk::human_bytes(r.bytes_shared),
            sysclone_disk::human_bytes(r.bytes_used),
            100.0 * r.bytes_shared as f64 / r.bytes_used.max(1) as f64,
            r.chunks_shared,
            sysclone_disk::human_bytes(r.bytes_used - r.bytes_shared),
            100.0 * (r.bytes_used - r.bytes_shared) as f64 / r.bytes_used.max(1) as f64
        ));
    }
    for (off, len) in &r.unreadable {
        say(&format!("unreadable: {len} bytes at {off} ({}), stored as zeros", crate::run::where_on(&src, *off)));
    }
    Ok(Some(r))
}

/// How a restore lays the image out on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestorePolicy {
    /// As saved when the target holds it (same offsets, table and boot code byte for byte);
    /// otherwise through the planner with `grow` (one partition gives up the missing space).
    Auto,
    /// Byte for byte as saved; the target must hold every partition.
    Exact,
    /// Through the migration planner, as `sysclone migrate` does.
    Plan(Policy),
}

/// What `sysclone restore` needs.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    pub from: PathBuf,
    pub target: Selector,
    pub protect: Vec<Selector>,
    pub threads: usize,
    /// Read the target back afterwards and compare with the image's hashes (through the
    /// planner: the partitions that were not resized).
    pub verify: bool,
    pub confirm: Confirm,
    pub dry_run: bool,
    pub policy: RestorePolicy,
    /// Only these partitions of the image (planner restores); `None`: every stored one.
    pub include: Option<Vec<u32>>,
    /// The EFI post-clone boot policy (`None` touches no variable).
    pub boot_entry: BootEntry,
    pub efivars: PathBuf,
    pub boot_partuuid: Option<String>,
    pub prune_stale: bool,
    /// Fetch and write only the chunks the target does not already hold at their place
    /// (exact restores).
    pub delta: bool,
    /// Go on past chunks that cannot be used (their places zeroed, listed in the report).
    pub rescue: bool,
    /// What the image's manifest must satisfy (trusted keys, pins) before anything of it is
    /// used; the default checks nothing.
    pub trust: TrustPolicy,
}

impl RestoreRequest {
    /// A restore with the defaults of the CLI: automatic layout, no boot entry.
    pub fn new(from: PathBuf, target: Selector) -> RestoreRequest {
        RestoreRequest {
            from,
            target,
            protect: Vec::new(),
            threads: sysclone_imagefile::pool::default_threads(),
            verify: false,
            confirm: Confirm::Ask,
            dry_run: false,
            policy: RestorePolicy::Auto,
            include: None,
            boot_entry: BootEntry::None,
            efivars: PathBuf::from("/sys/firmware/efi/efivars"),
            boot_partuuid: None,
            prune_stale: false,
            delta: false,
            rescue: false,
            trust: TrustPolicy::default(),
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreOutcome {
    #[serde(flatten)]
    pub restore: RestoreReport,
    /// `exact` or the planner's policy.
    pub layout: String,
    /// With the planner: each partition's new place and resize.
    pub parts: Vec<PartReport>,
    pub actions: Vec<String>,
    pub boot: Option<crate::boot::BootReport>,
    /// How the image's manifest passed the trust policy (signature, pins); `None` when
    /// nothing was checked.
    pub trust: Option<String>,
}

/// The image's source disk as the boot policy sees a clone's source.
fn image_disk(img: &Image) -> Disk {
    let m = &img.manifest;
    Disk {
        name: format!("{} (saved image)", m.source.name),
        path: PathBuf::from(&img.location),
        bus: sysclone_disk::Bus::Other,
        model: m.source.model.clone(),
        serial: m.source.serial.clone(),
        wwn: m.source.wwn.clone(),
        size_bytes: m.source.size_bytes,
        logical_sector: m.source.logical_sector,
        physical_sector: m.source.physical_sector,
        read_only: true,
        table: m.table.kind.clone(),
        disk_guid: m.table.disk_guid.clone(),
        partitions: m
            .partitions
            .iter()
            .map(|p| sysclone_disk::Partition {
                number: p.number,
                name: None,
                start_bytes: p.start,
                size_bytes: p.size,
                type_id: p.type_guid.to_ascii_lowercase(),
                type_name: p.type_name.clone(),
                label: p.name.clone(),
                part_uuid: p.unique_guid.as_ref().map(|u| u.to_ascii_lowercase()),
                fs: None,
            })
            .collect(),
        ..Default::default()
    }
}

fn too_small(tgt: &Disk, why: String) -> anyhow::Error {
    Refusal { rule: Rule::TooSmall, message: format!("refusing to write {}: {why}", tgt.describe()) }.into()
}

/// Restore an image onto the selected disk.
pub fn run_restore(req: &RestoreRequest) -> Result<Option<RestoreOutcome>> {
    let img = Image::open_trusted(&req.from, &req.trust)?;
    let trusted = img.trust.as_ref().and_then(|t| t.as_ref().ok()).filter(|c| !c.unchecked()).map(|c| c.to_string());
    if let Some(c) = &trusted {
        say(&format!("image {}: manifest {c}", img.location));
    }
    let m = &img.manifest;
    let disks = disks_now(req.boot_partuuid.as_deref())?;
    let tgt = req.target.select(&disks, &[], Path::new("/dev")).context("choosing the target disk")?.clone();
    say(&format!("image:  {} (from {})", img.location, sysclone_imagefile::describe_source(&img)));
    say(&format!("target: {}", tgt.describe()));
    let ctx = GuardContext {
        boot_medium: disks.iter().find(|d| d.roles.iter().any(|r| r == "boot-medium")).map(|d| d.name.clone()),
        source: None,
        protected: req.protect.clone(),
        roots: Roots::default(),
    };
    check_target(&tgt, &ctx)?;
    let need = m.min_target_bytes();
    let holds = tgt.size_bytes >= need;
    let same_sectors = tgt.logical_sector == m.source.logical_sector;
    let fits = holds && same_sectors;
    let policy = match &req.policy {
        RestorePolicy::Auto if req.include.is_some() && m.table.kind == "gpt" => Some(if holds { Policy::Keep } else { Policy::Grow { part: None } }),
        RestorePolicy::Auto if fits || m.table.kind != "gpt" => None,
        RestorePolicy::Auto if holds => {
            say(&format!(
                "the target has {}-byte sectors, the image's disk had {}-byte ones: restoring through the migration planner (keep), partition table recomputed for the target's sectors",
                tgt.logical_sector, m.source.logical_sector
            ));
            Some(Policy::Keep)
        }
        RestorePolicy::Auto => {
            say(&format!("the target is smaller than the image's disk ({} < {}): restoring through the migration planner, grow policy", human_bytes(tgt.size_bytes), human_bytes(need)));
            Some(Policy::Grow { part: None })
        }
        RestorePolicy::Exact => None,
        RestorePolicy::Plan(p) => Some(p.clone()),
    };
    if req.delta && policy.is_some() {
        bail!("--delta works on a restore as saved (same offsets); this one goes through the migration planner");
    }
    let bad = m.unreadable();
    if !bad.is_empty() {
        say(&format!("warning: {} bytes in {} place(s) could not be read when the image was saved; they are restored as zeros", bad.iter().map(|b| b.1).sum::<u64>(), bad.len()));
    }
    let mut out = match policy {
        None => {
            anyhow::ensure!(req.include.is_none(), "choosing partitions needs a restore through the planner (--policy keep|grow|proportional|explicit)");
            match restore_exact(req, &img, &tgt, &ctx)? {
                Some(r) => RestoreOutcome { restore: r, layout: "exact".into(), parts: Vec::new(), actions: Vec::new(), boot: None, trust: None },
                None => return Ok(None),
            }
        }
        Some(p) => match restore_planned(req, &img, &tgt, &ctx, p)? {
            Some(o) => o,
            None => return Ok(None),
        },
    };
    for l in &out.restore.lost {
        say(&format!(
            "LOST: chunk {} ({}, {} bytes) is written as zeros at byte {} of {}: {}",
            l.chunk,
            l.partition.map(|n| format!("partition {n}")).unwrap_or_else(|| "before the first partition".into()),
            l.bytes,
            l.target_offset,
            tgt.name,
            l.error
        ));
    }
    out.trust = trusted;
    out.boot = match req.boot_entry {
        BootEntry::None => None,
        policy => {
            let disks = disks_now(req.boot_partuuid.as_deref())?;
            let bo = crate::boot::BootOptions { policy, efivars: &req.efivars, prune_stale: req.prune_stale, disks: &disks, guard: Some(&ctx) };
            Some(crate::boot::entry_for_target(&tgt, &image_disk(&img), &bo)?)
        }
    };
    Ok(Some(out))
}

/// The image byte for byte at its saved offsets.
fn restore_exact(req: &RestoreRequest, img: &Image, tgt: &Disk, ctx: &GuardContext) -> Result<Option<RestoreReport>> {
    let need = img.manifest.min_target_bytes();
    if tgt.size_bytes < need {
        return Err(too_small(tgt, format!("it has {} bytes but the image needs {need} to restore as saved (its partitions and the backup GPT); choose a larger disk or a policy that resizes (--policy grow)", tgt.size_bytes)));
    }
    if tgt.logical_sector != img.manifest.source.logical_sector {
        return Err(Refusal {
            rule: Rule::SectorSize,
            message: format!(
                "refusing to write {}: its logical sector size is {} but the image's is {}; a restore as saved cannot convert (leave out --policy exact, or use --policy keep: the planner recomputes the table)",
                tgt.describe(),
                tgt.logical_sector,
                img.manifest.source.logical_sector
            ),
        }
        .into());
    }
    let mut plan = plan_restore(img, tgt.size_bytes, tgt.logical_sector).with_context(|| format!("planning the restore onto {}", tgt.describe()))?;
    plan.delta = req.delta;
    plan.rescue = req.rescue;
    say(&plan.show(img, &tgt.describe()));
    if req.dry_run {
        say("dry run: nothing written");
        return Ok(None);
    }
    if req.confirm == Confirm::Ask {
        ask_serial(tgt)?;
    }
    let th = open_target(tgt, ctx, need, Some(img.manifest.source.logical_sector))?;
    let busy = crate::state::Busy::enter(format!("restoring {} to {}", img.location, tgt.name));
    let mut progress = progress_printer("restore");
    let r = sysclone_imagefile::restore(img, &plan, &th.file, &tgt.describe(), req.threads, req.verify, &mut progress)?;
    drop(busy);
    if req.delta {
        say(&format!(
            "delta: {} already on {} (not fetched), {} fetched for {} written",
            sysclone_disk::human_bytes(r.bytes_already_there),
            tgt.name,
            sysclone_disk::human_bytes(r.bytes_fetched),
            sysclone_disk::human_bytes(r.bytes_written)
        ));
    }
    say(&format!(
        "restored {} in {} chunks, every one checked, in {:.1} s ({:.1} MiB/s){}; peak memory {} MiB",
        sysclone_disk::human_bytes(r.bytes_written),
        r.chunks,
        r.seconds,
        r.mib_per_second,
        match r.verified {
            Some(true) => ", read back and verified",
            Some(false) => ", VERIFY FAILED",
            None => "",
        },
        r.peak_rss_bytes >> 20
    ));
    if r.verified == Some(false) {
        let msg = format!("verification failed: {} read back differently from what was written at {} place(s), first at byte {}", tgt.describe(), r.mismatches.len(), r.mismatches[0]);
        return Err(sysclone_disk::VerifyFailed(msg).into());
    }
    if let Err(e) = sysclone_disk::sys::reread_partitions(th.file.as_fd()) {
        say(&format!("note: the kernel did not re-read {}'s partitions ({e:#}); they show after a reboot", tgt.name));
    }
    Ok(Some(r))
}

/// A planner policy as the CLI and job files name it.
fn policy_name(p: &Policy) -> String {
    match p {
        Policy::Keep => "keep".into(),
        Policy::Grow { part: None } => "grow".into(),
        Policy::Grow { part: Some(n) } => format!("grow partition {n}"),
        Policy::Proportional => "proportional".into(),
        Policy::Explicit(_) => "explicit".into(),
    }
}

/// Through the migration planner: partitions moved and resized.
fn restore_planned(req: &RestoreRequest, img: &Image, tgt: &Disk, ctx: &GuardContext, policy: Policy) -> Result<Option<RestoreOutcome>> {
    let t0 = std::time::Instant::now();
    let m = &img.manifest;
    let mut layout = sysclone_imagefile::layout::source_layout(m)?;
    let stored: Vec<u32> = m.partitions.iter().filter(|p| p.stored != "none").map(|p| p.number).collect();
    let include = match &req.include {
        Some(list) => {
            for n in list {
                anyhow::ensure!(!m.partitions.iter().any(|p| p.number == *n && p.stored == "none"), "partition {n} was left out of the image when it was saved; it cannot be restored");
            }
            Some(list.clone())
        }
        None if stored.len() < m.partitions.len() => Some(stored),
        None => None,
    };
    if tgt.size_bytes < m.source.size_bytes {
        crate::restore::measure_min_sizes(img, &mut layout);
    }
    if tgt.logical_sector > m.source.logical_sector {
        crate::restore::read_fs_blocks(img, &mut layout);
    }
    let mut mreq = MigrateRequest { policy, include, target_size: tgt.size_bytes, target_logical_sector: tgt.logical_sector, identities: Identities::Keep };
    let mut planned = plan_migration(&layout, &mreq);
    // Automatic sector conversion: `keep` when every partition is whole target sectors where
    // it is, else `grow`, which re-aligns them.
    let converting = req.policy == RestorePolicy::Auto && tgt.logical_sector != m.source.logical_sector;
    if converting && mreq.policy == Policy::Keep && planned.is_err() {
        say(&format!("some partitions are not whole {}-byte sectors where they are: the grow policy re-aligns them", tgt.logical_sector));
        mreq.policy = Policy::Grow { part: None };
        planned = plan_migration(&layout, &mreq);
    }
    let plan = match planned {
        Ok(p) => p,
        Err(e) => match e.downcast_ref::<sysclone_layout::migrate::Refusal>() {
            Some(r) => return Err(too_small(tgt, format!("the image does not fit: {r}"))),
            None => return Err(e.context(format!("planning the restore onto {}", tgt.describe()))),
        },
    };
    say(&plan.show(&layout));
    if req.dry_run {
        say("dry run: nothing written");
        return Ok(None);
    }
    if req.confirm == Confirm::Ask {
        ask_serial(tgt)?;
    }
    // The plan is made for the target's sector size, whatever the image's was.
    let th = open_target(tgt, ctx, plan.parts.iter().map(|p| p.end()).max().unwrap_or(0), None)?;
    let busy = crate::state::Busy::enter(format!("restoring {} to {}", img.location, tgt.name));
    let mut rescue = sysclone_imagefile::Rescue::new(req.rescue);
    let parts = crate::restore::execute(img, &plan, &layout, &th.file, &tgt.describe(), req.threads, &mut rescue)?;
    let verified = if req.verify {
        let (bad, checked) = crate::restore::read_back(img, &plan, &layout, &parts, &rescue.skip(), &th.file, &tgt.describe())?;
        say(&format!("read back {checked} chunks of the partitions not resized: {}", if bad.is_empty() { "all as in the image".to_string() } else { format!("{} DIFFER", bad.len()) }));
        Some(bad)
    } else {
        None
    };
    drop(busy);
    if let Err(e) = sysclone_disk::sys::reread_partitions(th.file.as_fd()) {
        say(&format!("note: the kernel did not re-read {}'s partitions ({e:#}); they show after a reboot", tgt.name));
    }
    let written: u64 = parts.iter().map(|p| p.bytes_copied).sum();
    let seconds = t0.elapsed().as_secs_f64();
    say(&format!("restored {} into {} partition(s), every chunk checked, in {seconds:.1} s", human_bytes(written), parts.len()));
    let restore = RestoreReport {
        image: img.location.clone(),
        target: tgt.describe(),
        chunks: m.chunks.len(),
        bytes_written: written,
        seconds,
        mib_per_second: written as f64 / (1 << 20) as f64 / seconds.max(1e-9),
        gpt_relocated: true,
        peak_rss_bytes: sysclone_copy::peak_rss(),
        verified: verified.as_ref().map(|b| b.is_empty()),
        mismatches: verified.clone().unwrap_or_default(),
        bytes_already_there: 0,
        bytes_fetched: m.chunks.iter().map(|c| c.compressed_len).sum(),
        lost: rescue.lost,
    };
    if let Some(first) = verified.as_ref().and_then(|b| b.first()) {
        bail!("verification failed: {} read back differently from the image at {} place(s), first at byte {first}", tgt.describe(), restore.mismatches.len());
    }
    Ok(Some(RestoreOutcome { restore, layout: policy_name(&mreq.policy), parts, actions: plan.actions.clone(), boot: None, trust: None }))
}

/// An image partition mounted for a job; unmounted when dropped.
pub struct ImageMount {
    pub dir: PathBuf,
    /// The disk holding it (protected from writes during a restore).
    pub disk: Disk,
}

impl Drop for ImageMount {
    fn drop(&mut self) {
        if let Err(e) = nix::mount::umount(&self.dir) {
            say(&format!("note: could not unmount {} ({e})", self.dir.display()));
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Mount partition `number` of the disk `disk` selects, read-write or read-only, with the
/// filesystem its superblock names (NTFS through the kernel's ntfs3).
pub fn mount_image_partition(disk: &Selector, number: u32, writable: bool, boot_partuuid: Option<&str>) -> Result<ImageMount> {
    use nix::mount::{mount, MsFlags};
    let disks = disks_now(boot_partuuid)?;
    let d = disk.select(&disks, &[], Path::new("/dev")).context("choosing the disk that holds the images")?.clone();
    let p = d.partitions.iter().find(|p| p.number == number).ok_or_else(|| anyhow::anyhow!("{} has no partition {number}", d.describe()))?;
    let name = p.name.as_deref().ok_or_else(|| anyhow::anyhow!("partition {number} of {} has no device node", d.describe()))?;
    let fs = p.fs.as_ref().map(|f| f.kind.as_str()).ok_or_else(|| anyhow::anyhow!("partition {number} of {} holds no filesystem sysclone recognises", d.describe()))?;
    let fstype = match fs {
        "ntfs" => "ntfs3",
        "ext2" | "ext3" | "ext4" | "vfat" | "exfat" | "xfs" | "btrfs" => fs,
        other => bail!("partition {number} of {} holds {other}; images live on ext4, vfat, exfat, ntfs, xfs or btrfs", d.describe()),
    };
    let dir = PathBuf::from(format!("/run/sysclone-images-{}-{number}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if !writable {
        flags |= MsFlags::MS_RDONLY;
    }
    let dev = PathBuf::from("/dev").join(name);
    if let Err(e) = mount(Some(&dev), &dir, Some(fstype), flags, None::<&str>) {
        let _ = std::fs::remove_dir(&dir);
        bail!("mounting {} ({fstype}, partition {number} of {}) {} on {}: {e}", dev.display(), d.describe(), if writable { "read-write" } else { "read-only" }, dir.display());
    }
    say(&format!("images: {} ({fstype}) mounted {} on {}", dev.display(), if writable { "read-write" } else { "read-only" }, dir.display()));
    Ok(ImageMount { dir, disk: d })
}

/// Run a job with `operation = "save"` or `"restore"`: mount the image partition, save or
/// restore, apply the boot policy (restore), unmount. Returns the JSON report.
/// `trust` is what an image to restore must satisfy (the job's `image.sha256` is added).
pub fn run_job(job: &crate::job::Job, efivars: &Path, boot_partuuid: Option<&str>, dry_run: bool, trust: &TrustPolicy) -> Result<String> {
    use crate::job::Operation;
    let loc = job.image.as_ref().ok_or_else(|| anyhow::anyhow!("the job names no image"))?;
    let save = job.operation == Operation::Save;
    if let Some(url) = &loc.url {
        if save {
            anyhow::bail!("a save writes to a partition, not to a URL");
        }
        say(&format!("job: restore {url} -> {}", job.target));
        let mut req = restore_request(job, PathBuf::from(url), efivars, boot_partuuid, dry_run, trust)?;
        req.delta = job.delta;
        return Ok(serde_json::to_string(&run_restore(&req)?)?);
    }
    let disk = Selector::parse(&loc.disk)?;
    let mnt = mount_image_partition(&disk, loc.partition, save && !dry_run, boot_partuuid)?;
    let path = mnt.dir.join(&loc.path);
    if save {
        say(&format!("job: save {} -> {} partition {}: {}", job.source, loc.disk, loc.partition, loc.path));
        let mut options = SaveOptions { base: loc.base.as_ref().map(|b| mnt.dir.join(b)), ..Default::default() };
        if let Some(b) = &options.base {
            options.chunk_bytes = Image::open(b)?.manifest.chunk_bytes;
        }
        let req = SaveRequest { source: Selector::parse(&job.source)?, to: path, partitions: None, options, dry_run, confirm_on: None };
        return Ok(serde_json::to_string(&run_save(&req)?)?);
    }
    say(&format!("job: restore {} partition {}: {} -> {}", loc.disk, loc.partition, loc.path, job.target));
    let mut req = restore_request(job, path, efivars, boot_partuuid, dry_run, trust)?;
    req.protect.push(disk);
    req.delta = job.delta;
    let r = run_restore(&req);
    drop(mnt);
    Ok(serde_json::to_string(&r?)?)
}

/// The restore a job asks for, from the image at `from`.
fn restore_request(job: &crate::job::Job, from: PathBuf, efivars: &Path, boot_partuuid: Option<&str>, dry_run: bool, trust: &TrustPolicy) -> Result<RestoreRequest> {
    let mut req = RestoreRequest::new(from, Selector::parse(&job.target)?);
    req.trust = trust.pinned("the job's image.sha256", job.image.as_ref().and_then(|i| i.sha256.as_deref()));
    req.protect = job.protect_selectors();
    req.verify = job.verify;
    req.confirm = job.confirmation();
    req.dry_run = dry_run;
    req.policy = match job.policy {
        None => RestorePolicy::Auto,
        Some(_) => RestorePolicy::Plan(job.migrate_policy()?),
    };
    req.include = job.include.clone();
    req.boot_entry = job.boot_entry();
    req.efivars = efivars.to_path_buf();
    req.boot_partuuid = boot_partuuid.map(str::to_string);
    Ok(req)
}
