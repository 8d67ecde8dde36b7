//! The write guard: the one way to open a disk for writing, and the read-only source open.
//!
//! Every rule that keeps sysclone from writing the wrong disk lives here, each with a
//! message that names the disk, the rule, and what to do instead.

use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::libc;

use crate::discover::{discover, Disk, Roots};
use crate::select::Selector;
use crate::sys;

/// Why the guard said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    BootMedium,
    Source,
    Protected,
    Gone,
    IdentityChanged,
    ReadOnly,
    Mounted,
    Swap,
    Held,
    TooSmall,
    SectorSize,
}

/// A refusal by the write guard.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub rule: Rule,
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
impl std::error::Error for Refusal {}

/// What the guard knows about the job around the write.
#[derive(Debug, Clone, Default)]
pub struct GuardContext {
    /// Disk the running system booted from (kernel name), if known.
    pub boot_medium: Option<String>,
    /// The job's source disk.
    pub source: Option<Disk>,
    /// Disks that must never be written.
    pub protected: Vec<Selector>,
    pub roots: Roots,
}

/// A target disk opened for writing, after every rule passed.
#[derive(Debug)]
pub struct TargetHandle {
    pub disk: Disk,
    pub file: File,
}

fn refuse(rule: Rule, message: String) -> anyhow::Error {
    Refusal { rule, message }.into()
}

/// The rules that need no I/O: never the boot medium, the source, or a protected disk.
/// Checked as soon as a target is chosen, before any planning, and again by [`open_target`].
pub fn check_target(target: &Disk, ctx: &GuardContext) -> Result<()> {
    let who = target.describe();
    if target.roles.iter().any(|r| r == "boot-medium") || ctx.boot_medium.as_deref() == Some(target.name.as_str()) {
        return Err(refuse(Rule::BootMedium, format!("refusing to write {who}: it is the boot medium sysclone started from; choose another target disk")));
    }
    if let Some(src) = &ctx.source {
        if src.name == target.name || (!src.devno.is_empty() && src.devno == target.devno) {
            return Err(refuse(Rule::Source, format!("refusing to write {who}: it is the source of this job; the source is only ever read. Choose a different target disk")));
        }
    }
    for p in &ctx.protected {
        if p.select(std::slice::from_ref(target), &[], &ctx.roots.dev).is_ok() {
            return Err(refuse(Rule::Protected, format!("refusing to write {who}: it is on the write-protect list ({p}); choose another target, or take it off the list (--protect / the job's protect) if it really is to be overwritten")));
        }
    }
    Ok(())
}

/// Check `target` against every rule, then open it read-write and exclusively.
///
/// `required_bytes` is the least size the operation needs. The disk's identity (serial and
/// size) is read again from the kernel, so a disk swapped since selection is refused.
pub fn open_target(target: &Disk, ctx: &GuardContext, required_bytes: u64, logical_sector: Option<u32>) -> Result<TargetHandle> {
    let now = check_target_now(target, ctx, required_bytes, logical_sector)?;
    let who = target.describe();
    let file = open_exclusive(&now.path).map_err(|e| {
        if e.raw_os_error() == Some(libc::EBUSY) {
            refuse(Rule::Held, format!("refusing to write {who}: the kernel says it is busy (opened exclusively, mounted or held); close what uses it (mounts, swap, LVM/RAID/dm, another sysclone) and run again"))
        } else if e.raw_os_error() == Some(libc::EROFS) || e.raw_os_error() == Some(libc::EACCES) {
            refuse(Rule::ReadOnly, format!("refusing to write {who}: opening it for writing failed: {e}; check its write protection, or choose another target"))
        } else {
            anyhow::Error::new(e).context(format!("opening {} for writing", now.path.display()))
        }
    })?;
    if file.metadata().map(|m| m.file_type().is_block_device()).unwrap_or(false) && sys::is_read_only(file.as_fd()).unwrap_or(false) {
        return Err(refuse(Rule::ReadOnly, format!("refusing to write {who}: the kernel reports it read-only; run `blockdev --setrw {}` if that is a leftover software flag, or choose another target", now.path.display())));
    }
    Ok(TargetHandle { disk: now, file })
}

/// Every rule of [`open_target`] except the exclusive open itself: identity, read-only,
/// mounted, swap, holders, size, sector size, checked against the kernel's view now. Returns
/// the disk as it is now. A plan staged for later (`--offline`) is checked with this.
pub fn check_target_now(target: &Disk, ctx: &GuardContext, required_bytes: u64, logical_sector: Option<u32>) -> Result<Disk> {
    check_target(target, ctx)?;
    let who = target.describe();
    // Identity again, from the kernel, now.
    let now = discover(&ctx.roots)?.into_iter().find(|d| d.name == target.name);
    let Some(now) = now else {
        return Err(refuse(Rule::Gone, format!("refusing to write {who}: the disk is gone since it was selected; check cables and run the job again")));
    };
    if now.serial != target.serial || now.size_bytes != target.size_bytes {
        return Err(refuse(
            Rule::IdentityChanged,
            format!("refusing to write {who}: its identity changed since it was selected (now {}); select it again", now.describe()),
        ));
    }
    if now.read_only {
        return Err(refuse(Rule::ReadOnly, format!("refusing to write {who}: the kernel reports it read-only (write-protect switch, or set by policy); slide the switch off or run `blockdev --setrw {}`, or choose another target", now.path.display())));
    }
    if !now.mounts.is_empty() {
        return Err(refuse(Rule::Mounted, format!("refusing to write {who}: it is mounted at {}; unmount it first", now.mounts.join(", "))));
    }
    if !now.swaps.is_empty() {
        return Err(refuse(Rule::Swap, format!("refusing to write {who}: swap is active on {}; swapoff first", now.swaps.join(", "))));
    }
    if !now.holders.is_empty() {
        return Err(refuse(Rule::Held, format!("refusing to write {who}: it is held by {} (device mapper, RAID or LVM); stop those first", now.holders.join(", "))));
    }
    if now.size_bytes < required_bytes {
        return Err(refuse(
            Rule::TooSmall,
            format!("refusing to write {who}: it has {} bytes but the job needs {required_bytes}; choose a larger disk or migrate to shrink", now.size_bytes),
        ));
    }
    if let Some(ls) = logical_sector {
        if now.logical_sector != ls {
            return Err(refuse(
                Rule::SectorSize,
                format!("refusing to write {who}: its logical sector size is {} but the source's is {ls}; an exact clone cannot change it (use migrate)", now.logical_sector),
            ));
        }
    }
    Ok(now)
}

fn open_exclusive(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).custom_flags(libc::O_EXCL | libc::O_CLOEXEC).open(path)
}

/// A source disk opened read-only. While it lives, the kernel's read-only flag is set on the
/// device (when it was not already); dropping it restores the flag.
#[derive(Debug)]
pub struct SourceHandle {
    pub disk: Disk,
    pub file: File,
    restore_rw: bool,
}

/// Open the source disk read-only, and mark the block device read-only while cloning.
pub fn open_source(disk: &Disk) -> Result<SourceHandle> {
    let file = OpenOptions::new().read(true).custom_flags(libc::O_CLOEXEC).open(&disk.path).with_context(|| format!("opening source {} read-only", disk.describe()))?;
    let meta = file.metadata()?;
    let mut restore_rw = false;
    if meta.file_type().is_block_device() && !sys::is_read_only(file.as_fd()).unwrap_or(true) && disk.mounts.is_empty() {
        restore_rw = sys::set_read_only(file.as_fd(), true).is_ok();
    }
    if meta.len() == 0 && !meta.file_type().is_block_device() {
        bail!("source {} is empty", disk.describe());
    }
    let _ = meta.ino();
    Ok(SourceHandle { disk: disk.clone(), file, restore_rw })
}

impl Drop for SourceHandle {
    fn drop(&mut self) {
        if self.restore_rw {
            let _ = sys::set_read_only(self.file.as_fd(), false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::Bus;

    fn disk(name: &str, serial: &str) -> Disk {
        Disk {
            name: name.into(),
            path: format!("/dev/{name}").into(),
            devno: format!("8:{}", name.len()),
            bus: Bus::Sata,
            model: Some("M".into()),
            serial: Some(serial.into()),
            size_bytes: 1 << 30,
            logical_sector: 512,
            physical_sector: 512,
            table: "none".into(),
            ..Default::default()
        }
    }

    fn rule(r: Result<()>) -> Rule {
        r.unwrap_err().downcast_ref::<Refusal>().expect("a Refusal").rule
    }

    #[test]
    fn identity_rules() {
        let mut stick = disk("sda", "STICK");
        stick.roles.push("boot-medium".into());
        let src = disk("nvme0n1", "SRC");
        let tgt = disk("vda", "TGT");
        let ctx = GuardContext { source: Some(src.clone()), protected: vec![Selector::parse("serial=KEEP").unwrap()], ..Default::default() };
        assert_eq!(rule(check_target(&stick, &ctx)), Rule::BootMedium);
        assert_eq!(rule(check_target(&src, &ctx)), Rule::Source);
        assert_eq!(rule(check_target(&disk("sdz", "KEEP"), &ctx)), Rule::Protected);
        assert!(check_target(&tgt, &ctx).is_ok());
        // Each refusal says what to do instead.
        let msg = |d: &Disk| check_target(d, &ctx).unwrap_err().to_string();
        assert!(msg(&src).contains("Choose a different target disk"), "{}", msg(&src));
        assert!(msg(&disk("sdz", "KEEP")).contains("(serial=KEEP); choose another target, or take it off the list"), "{}", msg(&disk("sdz", "KEEP")));
        assert!(msg(&stick).contains("choose another target disk"), "{}", msg(&stick));
        let by_name = GuardContext { boot_medium: Some("vda".into()), ..Default::default() };
        let e = check_target(&tgt, &by_name).unwrap_err().to_string();
        assert!(e.contains("refusing to write vda") && e.contains("boot medium"), "{e}");
    }

    /// The holders rule on a fake sysfs tree (this host's kernel has no device mapper).
    #[test]
    fn held_disk_is_refused_and_untouched() {
        let t = tempfile::tempdir().unwrap();
        let roots = Roots { sys: t.path().join("sys"), dev: t.path().join("dev"), proc: t.path().join("proc") };
        let blk = roots.sys.join("block/sdq");
        std::fs::create_dir_all(blk.join("holders/dm-3")).unwrap();
        std::fs::create_dir_all(blk.join("queue")).unwrap();
        std::fs::create_dir_all(&roots.dev).unwrap();
        std::fs::create_dir_all(roots.proc.join("self")).unwrap();
        std::fs::write(blk.join("size"), "4096\n").unwrap();
        std::fs::write(blk.join("dev"), "65:0\n").unwrap();
        std::fs::write(roots.proc.join("self/mountinfo"), "").unwrap();
        let data = vec![0x5Au8; 4096 * 512];
        std::fs::write(roots.dev.join("sdq"), &data).unwrap();
        let d = crate::discover(&roots).unwrap().remove(0);
        assert_eq!(d.roles, vec!["in-use".to_string()]);
        let ctx = GuardContext { roots: roots.clone(), ..Default::default() };
        let e = open_target(&d, &ctx, 1 << 20, None).unwrap_err();
        let r = e.downcast_ref::<Refusal>().unwrap();
        assert_eq!(r.rule, Rule::Held);
        assert!(r.message.contains("held by dm-3"), "{r}");
        assert_eq!(std::fs::read(roots.dev.join("sdq")).unwrap(), data);
    }
}
