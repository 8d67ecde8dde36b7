//! btrfs and XFS, resized by their kernel drivers: the device is mounted on a private
//! temporary directory (nosuid, nodev, noexec), the resize ioctl is issued on the mount,
//! and the filesystem is unmounted again. The kernel must show the mount as coming from the
//! device asked for; anything else is unmounted and refused.

use std::fs::{DirBuilder, File};
use std::os::fd::AsFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::{be, block_dev_number, find_tool, le, mountinfo, path_str, read_head, run, same_device, HEAD};
use crate::sys;

/// A filesystem mounted on a fresh mode-0700 directory; unmounted and removed on drop.
struct TempMount {
    dir: PathBuf,
    mounted: bool,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A new empty directory only root can enter, under `$TMPDIR` (or `/tmp`), else `/run`.
fn private_dir() -> Result<PathBuf> {
    let mut last = None;
    for base in [std::env::temp_dir(), PathBuf::from("/run")] {
        for _ in 0..100 {
            let p = base.join(format!("sysclone-resize.{}.{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
            match DirBuilder::new().mode(0o700).create(&p) {
                Ok(()) => return std::fs::canonicalize(&p).with_context(|| format!("resolving {}", p.display())),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    last = Some(anyhow::Error::new(e).context(format!("creating {}", p.display())));
                    break;
                }
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no free temporary directory name")).context("creating a temporary mount point"))
}

impl TempMount {
    fn new(dev: &Path, fstype: &str, flags: MsFlags, data: &str) -> Result<TempMount> {
        let mut m = TempMount { dir: private_dir()?, mounted: false };
        let flags = flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        let data = (!data.is_empty()).then_some(data);
        mount(Some(dev), &m.dir, Some(fstype), flags, data).with_context(|| format!("mounting {} ({fstype}, options {data:?}) on {}", dev.display(), m.dir.display()))?;
        m.mounted = true;
        m.check_source(dev)?;
        Ok(m)
    }

    fn dir(&self) -> &Path {
        &self.dir
    }

    /// The mount must come from `dev` (by device number or path), never from another
    /// device holding the same filesystem UUID.
    fn check_source(&self, dev: &Path) -> Result<()> {
        let canon = std::fs::canonicalize(dev).with_context(|| format!("resolving {}", dev.display()))?;
        let num = block_dev_number(dev).map(|(a, b)| format!("{a}:{b}"));
        let dir = self.dir.to_string_lossy();
        let Some((mm, _, source)) = mountinfo().into_iter().rev().find(|(_, at, _)| *at == dir) else {
            bail!("{} does not appear in /proc/self/mountinfo after mounting", self.dir.display());
        };
        if Some(&mm) != num.as_ref() && !same_device(&source, dev, &canon) {
            bail!("the kernel mounted {source} ({mm}) instead of {}; not touching it", dev.display());
        }
        Ok(())
    }

    fn try_unmount(&self) -> Result<()> {
        for _ in 0..50 {
            match umount2(&self.dir, MntFlags::empty()) {
                Ok(()) => return Ok(()),
                Err(Errno::EBUSY) => std::thread::sleep(Duration::from_millis(100)),
                Err(e) => return Err(e).with_context(|| format!("unmounting {}", self.dir.display())),
            }
        }
        bail!("unmounting {}: still busy after 5 s", self.dir.display())
    }

    /// Unmount (the filesystem writes its final state here) and remove the directory.
    fn unmount(mut self) -> Result<()> {
        let r = self.try_unmount();
        if r.is_ok() {
            self.mounted = false;
        }
        r
    }
}

impl Drop for TempMount {
    fn drop(&mut self) {
        if self.mounted && self.try_unmount().is_err() {
            let _ = umount2(&self.dir, MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------
// btrfs

/// The kernel refuses to resize a btrfs device below 256 MiB.
const BTRFS_KERNEL_MIN: u64 = 256 << 20;
const SB: usize = 0x10000;
const FLAG_SEEDING: u64 = 1 << 32;

struct BtrfsSuper {
    devid: u64,
    /// This device's size as the filesystem knows it (dev_item.total_bytes).
    dev_bytes: u64,
    num_devices: u64,
    sectorsize: u64,
    flags: u64,
}

fn btrfs_super(head: &[u8]) -> Result<BtrfsSuper> {
    if head.get(SB + 0x40..SB + 0x48) != Some(b"_BHRfS_M") || le(head, SB + 0x30, 8)? != SB as u64 {
        bail!("no btrfs superblock at 64 KiB");
    }
    let sectorsize = le(head, SB + 0x90, 4)?;
    if !sectorsize.is_power_of_two() || !(4096..=65536).contains(&sectorsize) {
        bail!("btrfs sector size {sectorsize} is invalid");
    }
    Ok(BtrfsSuper { devid: le(head, SB + 0xC9, 8)?, dev_bytes: le(head, SB + 0xD1, 8)?, num_devices: le(head, SB + 0x88, 8)?, sectorsize, flags: le(head, SB + 0x38, 8)? })
}

fn btrfs_single(sb: &BtrfsSuper) -> Result<()> {
    if sb.num_devices != 1 {
        bail!("this btrfs spans {} devices: only single-device filesystems are resized", sb.num_devices);
    }
    if sb.flags & FLAG_SEEDING != 0 {
        bail!("this btrfs is a seed device (read-only by design): not resized");
    }
    Ok(())
}

/// Drop the kernel's record of `dev` (now unmounted), so that the clone's source, which has
/// the same filesystem UUID and an older generation, can still be mounted afterwards.
fn btrfs_forget(dev: &Path, log: &mut String) {
    let r = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/btrfs-control")
        .context("opening /dev/btrfs-control")
        .and_then(|c| sys::btrfs_forget_dev(&c, path_str(dev)?));
    match r {
        Ok(()) => log.push_str(&format!("kernel's record of {} dropped (BTRFS_IOC_FORGET_DEV)\n", dev.display())),
        Err(e) => log.push_str(&format!("note: could not drop the kernel's record of {}: {e:#}\n", dev.display())),
    }
}

pub(super) fn btrfs_resize(dev: &Path, new_size: u64, log: &mut String) -> Result<(u64, u64, &'static str)> {
    let sb = btrfs_super(&read_head(dev, HEAD)?)?;
    btrfs_single(&sb)?;
    let old = sb.dev_bytes;
    let target = new_size / sb.sectorsize * sb.sectorsize;
    if target == old {
        log.push_str(&format!("btrfs: already {old} bytes; nothing to do\n"));
        return Ok((old, old, "none"));
    }
    if target < BTRFS_KERNEL_MIN {
        bail!("btrfs cannot be made smaller than 256 MiB (the kernel's limit); asked for {new_size} bytes");
    }
    // skip_balance: an interrupted balance stays paused instead of competing with the resize.
    let m = TempMount::new(dev, "btrfs", MsFlags::empty(), "skip_balance")?;
    log.push_str(&format!("mounted {} on {} (nosuid,nodev,noexec,skip_balance)\n", dev.display(), m.dir().display()));
    let spec = format!("{}:{target}", sb.devid);
    let r = File::open(m.dir()).context("opening the mount point").and_then(|d| sys::btrfs_resize(d.as_fd(), &spec));
    match &r {
        Ok(()) => log.push_str(&format!("BTRFS_IOC_RESIZE \"{spec}\": done\n")),
        Err(e) => log.push_str(&format!("BTRFS_IOC_RESIZE \"{spec}\": {e:#}\n")),
    }
    let u = m.unmount();
    if u.is_ok() {
        log.push_str("unmounted\n");
    }
    btrfs_forget(dev, log);
    r?;
    u?;
    let new = btrfs_super(&read_head(dev, HEAD)?)?.dev_bytes;
    Ok((old, new, "btrfs ioctl"))
}

pub(super) fn btrfs_min(dev: &Path) -> Result<u64> {
    let sb = btrfs_super(&read_head(dev, HEAD)?)?;
    btrfs_single(&sb)?;
    // Read-only, and without replaying the fsync log (which would write).
    let m = match TempMount::new(dev, "btrfs", MsFlags::MS_RDONLY, "rescue=nologreplay") {
        Ok(m) => m,
        // Kernels before 5.9 know only the old spelling.
        Err(e) => TempMount::new(dev, "btrfs", MsFlags::MS_RDONLY, "nologreplay").map_err(|e2| e.context(format!("and with the option nologreplay: {e2:#}")))?,
    };
    let mut log = String::new();
    let r = (|| -> Result<u64> {
        if let Some(btrfs) = find_tool("btrfs") {
            let id = sb.devid.to_string();
            let r = run(&mut log, &btrfs, &["inspect-internal", "min-dev-size", "--id", &id, path_str(m.dir())?], None)?;
            match (r.code, r.text.split_whitespace().next().and_then(|v| v.parse::<u64>().ok())) {
                (Some(0), Some(v)) => Ok(v),
                _ => bail!("btrfs inspect-internal min-dev-size gave no size:\n{}", log.trim_end()),
            }
        } else {
            let st = nix::sys::statfs::statfs(m.dir()).context("statfs on the mount")?;
            // The field is signed with glibc and unsigned with musl.
            #[allow(clippy::useless_conversion)]
            let bsize = u64::try_from(st.block_size()).context("statfs block size")?;
            let used = st.blocks().saturating_sub(st.blocks_free()).saturating_mul(bsize);
            Ok(used.saturating_add(256 << 20))
        }
    })();
    let u = m.unmount();
    btrfs_forget(dev, &mut log);
    let v = r?;
    u?;
    Ok(v.max(BTRFS_KERNEL_MIN).div_ceil(sb.sectorsize) * sb.sectorsize)
}

// ---------------------------------------------------------------------------------------
// XFS

struct XfsSuper {
    blocksize: u64,
    dblocks: u64,
    rblocks: u64,
    logstart: u64,
}

fn xfs_super(head: &[u8]) -> Result<XfsSuper> {
    if head.get(0..4) != Some(b"XFSB") {
        bail!("no XFS superblock");
    }
    let blocksize = be(head, 4, 4)?;
    if !blocksize.is_power_of_two() || !(512..=65536).contains(&blocksize) {
        bail!("XFS block size {blocksize} is invalid");
    }
    Ok(XfsSuper { blocksize, dblocks: be(head, 8, 8)?, rblocks: be(head, 16, 8)?, logstart: be(head, 48, 8)? })
}

pub(super) fn xfs_resize(dev: &Path, new_size: u64, log: &mut String) -> Result<(u64, u64, &'static str)> {
    let sb = xfs_super(&read_head(dev, 4096)?)?;
    let old = sb.dblocks * sb.blocksize;
    if sb.logstart == 0 {
        bail!("this XFS keeps its log on another device: not supported");
    }
    if sb.rblocks != 0 {
        bail!("this XFS has a realtime device: not supported");
    }
    let want = new_size / sb.blocksize;
    if want < sb.dblocks {
        bail!("XFS cannot shrink: the filesystem has {old} bytes, {new_size} were asked for");
    }
    if want == sb.dblocks {
        log.push_str(&format!("xfs: already {old} bytes; nothing to do\n"));
        return Ok((old, old, "none"));
    }
    // nouuid: the clone's source, with the same UUID, may be mounted.
    let m = TempMount::new(dev, "xfs", MsFlags::empty(), "nouuid")?;
    log.push_str(&format!("mounted {} on {} (nosuid,nodev,noexec,nouuid)\n", dev.display(), m.dir().display()));
    let r = (|| -> Result<(u64, u64)> {
        let d = File::open(m.dir()).context("opening the mount point")?;
        let g = sys::xfs_geometry(d.as_fd())?;
        let bs = g.blocksize as u64;
        let newblocks = new_size / bs;
        if newblocks < g.datablocks {
            bail!("XFS cannot shrink: the mounted filesystem has {} blocks of {bs} bytes, {new_size} bytes were asked for", g.datablocks);
        }
        log.push_str(&format!("XFS_IOC_FSGEOMETRY: {} data blocks of {bs} bytes, {} allocation groups, imaxpct {}\n", g.datablocks, g.agcount, g.imaxpct));
        sys::xfs_grow_data(d.as_fd(), newblocks, g.imaxpct)?;
        let g2 = sys::xfs_geometry(d.as_fd())?;
        log.push_str(&format!("XFS_IOC_FSGROWFSDATA to {newblocks} blocks: now {} data blocks, {} allocation groups\n", g2.datablocks, g2.agcount));
        Ok((g2.datablocks, bs))
    })();
    let u = m.unmount();
    let (blocks, bs) = r?;
    u?;
    log.push_str("unmounted\n");
    let sb = xfs_super(&read_head(dev, 4096)?)?;
    let new = sb.dblocks * sb.blocksize;
    if new != blocks * bs {
        log.push_str(&format!("note: the superblock says {} blocks, the mounted filesystem said {blocks}\n", sb.dblocks));
    }
    Ok((old, new, "xfs ioctl"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superblocks() {
        let mut h = vec![0u8; HEAD];
        assert!(btrfs_super(&h).is_err());
        h[SB + 0x40..SB + 0x48].copy_from_slice(b"_BHRfS_M");
        h[SB + 0x30..SB + 0x38].copy_from_slice(&(SB as u64).to_le_bytes());
        h[SB + 0x90..SB + 0x94].copy_from_slice(&4096u32.to_le_bytes());
        h[SB + 0x88] = 2;
        h[SB + 0xC9] = 1;
        h[SB + 0xD1..SB + 0xD9].copy_from_slice(&(300u64 << 20).to_le_bytes());
        let sb = btrfs_super(&h).unwrap();
        assert_eq!((sb.devid, sb.dev_bytes, sb.sectorsize), (1, 300 << 20, 4096));
        assert!(btrfs_single(&sb).unwrap_err().to_string().contains("2 devices"));
        h[SB + 0x88] = 1;
        h[SB + 0x3C] = 1; // flags bit 32: seeding
        assert!(btrfs_single(&btrfs_super(&h).unwrap()).unwrap_err().to_string().contains("seed"));

        let mut x = vec![0u8; 4096];
        x[..4].copy_from_slice(b"XFSB");
        x[4..8].copy_from_slice(&4096u32.to_be_bytes());
        x[8..16].copy_from_slice(&81920u64.to_be_bytes());
        x[48..56].copy_from_slice(&65540u64.to_be_bytes());
        let sb = xfs_super(&x).unwrap();
        assert_eq!((sb.blocksize, sb.dblocks, sb.logstart, sb.rblocks), (4096, 81920, 65540, 0));
        x[4..8].copy_from_slice(&3000u32.to_be_bytes());
        assert!(xfs_super(&x).is_err());
    }
}
