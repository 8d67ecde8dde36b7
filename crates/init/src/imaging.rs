//! Saving a disk to an image directory and restoring one, from selectors to report. The CLI
//! (`sysclone save`, `sysclone restore`) comes through here; the format and engine live in
//! `sysclone-imagefile`.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sysclone_disk::{check_target, open_source, open_target, GuardContext, Refusal, Roots, Rule, Selector};
use sysclone_imagefile::{plan_restore, plan_save, Image, RestoreReport, SaveOptions, SaveReport};

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
    for (off, len) in &r.unreadable {
        say(&format!("unreadable: {len} bytes at {off} ({}), stored as zeros", crate::run::where_on(&src, *off)));
    }
    Ok(Some(r))
}

/// What `sysclone restore` needs.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    pub from: PathBuf,
    pub target: Selector,
    pub protect: Vec<Selector>,
    pub threads: usize,
    /// Read the target back afterwards and compare with the image's hashes.
    pub verify: bool,
    pub confirm: Confirm,
    pub dry_run: bool,
}

/// Restore an image onto the selected disk.
pub fn run_restore(req: &RestoreRequest) -> Result<Option<RestoreReport>> {
    let img = Image::open(&req.from)?;
    let disks = disks_now(None)?;
    let tgt = req.target.select(&disks, &[], Path::new("/dev")).context("choosing the target disk")?.clone();
    say(&format!("image:  {} (from {})", img.dir.display(), sysclone_imagefile::describe_source(&img)));
    say(&format!("target: {}", tgt.describe()));
    let ctx = GuardContext {
        boot_medium: disks.iter().find(|d| d.roles.iter().any(|r| r == "boot-medium")).map(|d| d.name.clone()),
        source: None,
        protected: req.protect.clone(),
        roots: Roots::default(),
    };
    check_target(&tgt, &ctx)?;
    let need = img.manifest.min_target_bytes();
    if tgt.size_bytes < need {
        return Err(Refusal {
            rule: Rule::TooSmall,
            message: format!(
                "refusing to write {}: it has {} bytes but the image needs {need} (its partitions and the backup GPT); choose a larger disk (restoring onto a smaller one is a migration, not yet supported)",
                tgt.describe(),
                tgt.size_bytes
            ),
        }
        .into());
    }
    if tgt.logical_sector != img.manifest.source.logical_sector {
        return Err(Refusal {
            rule: Rule::SectorSize,
            message: format!("refusing to write {}: its logical sector size is {} but the image's is {}; a restore cannot convert", tgt.describe(), tgt.logical_sector, img.manifest.source.logical_sector),
        }
        .into());
    }
    let plan = plan_restore(&img, tgt.size_bytes, tgt.logical_sector).with_context(|| format!("planning the restore onto {}", tgt.describe()))?;
    say(&plan.show(&img, &tgt.describe()));
    let bad = img.manifest.unreadable();
    if !bad.is_empty() {
        say(&format!("warning: {} bytes in {} place(s) could not be read when the image was saved; they are restored as zeros", bad.iter().map(|b| b.1).sum::<u64>(), bad.len()));
    }
    if req.dry_run {
        say("dry run: nothing written");
        return Ok(None);
    }
    if req.confirm == Confirm::Ask {
        ask_serial(&tgt)?;
    }
    let th = open_target(&tgt, &ctx, need, Some(img.manifest.source.logical_sector))?;
    let mut progress = progress_printer("restore");
    let r = sysclone_imagefile::restore(&img, &plan, &th.file, &tgt.describe(), req.threads, req.verify, &mut progress)?;
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
        bail!("verification failed: {} read back differently from what was written at {} place(s), first at byte {}", tgt.describe(), r.mismatches.len(), r.mismatches[0]);
    }
    if let Err(e) = sysclone_disk::sys::reread_partitions(th.file.as_fd()) {
        say(&format!("note: the kernel did not re-read {}'s partitions ({e:#}); they show after a reboot", tgt.name));
    }
    Ok(Some(r))
}
