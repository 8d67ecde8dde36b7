//! Restoring a saved image onto a disk of another size through the migration planner.
//!
//! image manifest → planner source layout (`sysclone_imagefile::layout`; minimum filesystem
//! sizes measured on the image itself when the target is smaller) → plan
//! (`sysclone_layout::plan_migration`, the same policies as `migrate`) → show / confirm →
//! each partition's chunks, hash-checked, written at the partition's new offset → filesystems
//! grown in place, or shrunk through the copy-on-write overlay whose lower layer is the image
//! (random access: chunk index + a few decompressed chunks) → new GPT, primary last.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use sysclone_disk::human_bytes;
use sysclone_imagefile::random::DiskReader;
use sysclone_imagefile::{Image, Rescue};
use sysclone_layout::migrate::{FsAction, MigratePlan, SourceLayout};

use crate::console::{progress_printer, say};
use crate::migrate::PartReport;

/// The image's disk as the overlay's read-only lower layer.
struct ImageBase(DiskReader);

impl sysclone_overlay::BaseRead for ImageBase {
    fn read_base(&mut self, buf: &mut [u8], off: u64) -> std::io::Result<()> {
        self.0.read_at(buf, off).map_err(|e| std::io::Error::other(format!("{e:#}")))
    }
}

fn image_base(img: &Image) -> Result<Box<dyn sysclone_overlay::BaseRead>> {
    Ok(Box::new(ImageBase(DiskReader::new(img.clone()))))
}

/// The smallest size each shrinkable filesystem of the image can take, measured by its own
/// tool (`resize2fs -P`, `ntfsresize`, btrfs) on a read-only loop device over the image,
/// decompressed on demand. Filesystems whose size cannot be measured keep `None`.
pub fn measure_min_sizes(img: &Image, layout: &mut SourceLayout) {
    use sysclone_disk::sys::{loop_attach, loop_detach, LO_FLAGS_READ_ONLY};
    for p in layout.parts.iter_mut() {
        let Some(fs) = p.fs.clone().filter(|k| matches!(k.as_str(), "ext2" | "ext3" | "ext4" | "ntfs" | "btrfs")) else { continue };
        if img.manifest.partitions.iter().any(|q| q.number == p.number && q.stored == "none") {
            continue;
        }
        let r = (|| -> Result<Option<u64>> {
            let mnt = PathBuf::from(format!("/run/sysclone-image-part-{}-{}", std::process::id(), p.number));
            // Nothing is written to the head (it is empty); it only has to be a file.
            let head = File::from(nix::sys::memfd::memfd_create(c"sysclone-empty", nix::sys::memfd::MFdFlags::empty())?);
            let ov = sysclone_overlay::Overlay::mount(sysclone_overlay::Layers { base: image_base(img)?, base_off: p.start, head, head_off: 0, head_len: 0, size: p.size }, &mnt)?;
            let file = File::open(ov.file())?;
            let n = loop_attach(file.as_fd(), 0, 0, layout.logical_sector, LO_FLAGS_READ_ONLY);
            drop(file);
            let r = n.and_then(|n| {
                let r = sysclone_fs::min_size(Path::new(&format!("/dev/loop{n}")), &fs);
                let _ = loop_detach(n);
                r
            });
            ov.finish()?;
            let _ = std::fs::remove_file(&mnt);
            r
        })();
        match r {
            Ok(Some(min)) => {
                say(&format!("partition {}: {fs} can shrink to {} (measured on the image)", p.number, human_bytes(min)));
                p.min_size = Some(min);
                // As in migrate: with the overlay the filesystem may end where its tool says.
                p.used_end = Some(min);
            }
            Ok(None) => {}
            Err(e) => say(&format!("partition {}: could not measure how far {fs} shrinks ({e:#}); it keeps its used end", p.number)),
        }
    }
}

/// Each filesystem's smallest I/O unit, read from the image (the planner refuses a target
/// whose sectors are larger).
pub fn read_fs_blocks(img: &Image, layout: &mut SourceLayout) {
    let mut r = DiskReader::new(img.clone());
    for p in layout.parts.iter_mut() {
        let Some(fs) = p.fs.clone() else { continue };
        let mut head = vec![0u8; sysclone_fs::IO_UNIT_HEAD.min(p.size as usize)];
        if r.read_at(&mut head, p.start).is_ok() {
            p.fs_block = sysclone_fs::io_unit(&fs, &head);
        }
    }
}

/// Write the image onto `tgt` as `plan` lays it out: clear the old table, the boot area,
/// each partition's chunks at its new offset (each hash-checked before it is written), grow
/// or shrink filesystems, then the new GPT (backup, primary, sector 0 with the image's boot
/// code) last.
pub fn execute(img: &Image, plan: &MigratePlan, layout: &SourceLayout, tgt: &File, target: &str, threads: usize, rescue: &mut Rescue) -> Result<Vec<PartReport>> {
    let m = &img.manifest;
    let tl = plan.target_sector as u64;
    let zero = vec![0u8; tl as usize];
    for off in [0, tl, plan.target_size - tl] {
        tgt.write_all_at(&zero, off).with_context(|| format!("clearing the old partition table of {target} at byte {off}"))?;
    }
    tgt.sync_all().with_context(|| format!("flushing {target}"))?;
    // The boot area (between the table and the first partition) where it still fits.
    let first = plan.parts.iter().map(|p| p.start).min().unwrap_or(plan.target_size);
    let boot: Vec<usize> = m.chunks.iter().enumerate().filter(|(_, c)| c.partition.is_none() && c.offset + c.len <= first).map(|(i, _)| i).collect();
    write_chunks(img, &boot, 0, u64::MAX, tgt, target, threads, rescue)?;
    let mut reports = Vec::new();
    for tp in &plan.parts {
        let sp = layout.parts.iter().find(|p| p.number == tp.source_number).ok_or_else(|| anyhow!("plan names source partition {} which does not exist", tp.source_number))?;
        let fs = tp.fs.clone().unwrap_or_else(|| "unknown".into());
        if fs == "vfat" && plan.target_sector != plan.source_sector {
            // A FAT cannot change its sector size in place: a new one, the image's files in it.
            let n = crate::migrate::rebuild_fat(&|| Ok(sysclone_imagefile::random::DiskCursor::new(img.clone())), sp, tgt, tp, plan.target_sector)
                .with_context(|| format!("rebuilding partition {} (vfat) for {}-byte sectors on {target}", sp.number, plan.target_sector))?;
            say(&format!("partition {} → {}: vfat rebuilt for {}-byte sectors, {n} files copied from the image", sp.number, tp.number, plan.target_sector));
            reports.push(PartReport { number: tp.number, source_number: sp.number, fs: tp.fs.clone(), start: tp.start, size: tp.size, bytes_copied: 0, resize: Some(format!("FAT rebuilt for {}-byte sectors", plan.target_sector)) });
            continue;
        }
        // Chunks of this partition below its new end (a shrink brings the rest in later).
        let limit = sp.start + tp.size.min(sp.size);
        let which: Vec<usize> = m.chunks.iter().enumerate().filter(|(_, c)| c.partition == Some(sp.number) && c.offset < limit).map(|(i, _)| i).collect();
        let shift = tp.start as i64 - sp.start as i64;
        let written = write_chunks(img, &which, shift, limit, tgt, target, threads, rescue).with_context(|| format!("restoring partition {} ({fs}) to partition {} of {target}", sp.number, tp.number))?;
        let resize = match tp.action {
            FsAction::Grow | FsAction::Shrink if tp.size != sp.size => {
                tgt.sync_all().with_context(|| format!("flushing {target}"))?;
                Some(crate::migrate::resize_on_target(tp.action, &fs, sp, tp, &|| image_base(img), tgt, plan.target_sector)?)
            }
            _ => None,
        };
        say(&format!("partition {} → {}: {fs}, {} restored{}", sp.number, tp.number, human_bytes(written), resize.as_deref().map(|r| format!(", {r}")).unwrap_or_default()));
        reports.push(PartReport { number: tp.number, source_number: sp.number, fs: tp.fs.clone(), start: tp.start, size: tp.size, bytes_copied: written, resize });
    }
    tgt.sync_all().with_context(|| format!("flushing {target}"))?;
    let mut gpt = plan.gpt_bytes()?;
    // The image's boot code (BIOS loaders put their first stage in sector 0's first 440 bytes).
    let head = m.head()?;
    gpt.lba0[..440].copy_from_slice(&head[..440]);
    let mut w = tgt.try_clone()?;
    gpt.write_to(&mut w).with_context(|| format!("writing the partition table of {target}"))?;
    tgt.sync_all().with_context(|| format!("flushing {target}"))?;
    Ok(reports)
}

/// Write chunks `which` at their disk offset + `shift`, each cut at source offset `limit`.
#[allow(clippy::too_many_arguments)]
fn write_chunks(img: &Image, which: &[usize], shift: i64, limit: u64, tgt: &File, target: &str, threads: usize, rescue: &mut Rescue) -> Result<u64> {
    let m = &img.manifest;
    let total: u64 = which.iter().map(|&i| m.chunks[i].len).sum();
    let mut done = 0u64;
    let mut progress = progress_printer("restore");
    let mut w = sysclone_imagefile::DiskWriter::new(tgt, m.source.logical_sector, m.chunk_bytes);
    img.for_each_chunk_of(which, threads, &mut |i, data| {
        let c = &m.chunks[i];
        let at = c.offset.checked_add_signed(shift).ok_or_else(|| anyhow!("chunk {i} would land before the start of {target}"))?;
        let data = rescue.chunk(img, i, data, at, target)?;
        let n = (limit.min(c.offset + c.len) - c.offset) as usize;
        w.write_at(&data[..n], at).with_context(|| format!("writing {} to {target} at byte {at}", m.chunk_place(i)))?;
        done += c.len;
        progress(done, total);
        Ok(())
    })?;
    Ok(done)
}

/// Read back, past the page cache where the device allows, every chunk of the partitions
/// whose filesystem was not resized (a resize rewrites metadata, so its chunks no longer match
/// the image) and compare with the image's hashes. Returns the target offsets that differ and
/// how many chunks were checked.
/// Chunks in `skip` (lost in a rescue restore) are left out.
pub fn read_back(img: &Image, plan: &MigratePlan, layout: &SourceLayout, parts: &[PartReport], skip: &[usize], tgt: &File, target: &str) -> Result<(Vec<u64>, usize)> {
    let m = &img.manifest;
    let direct = sysclone_copy::reopen_direct(tgt, false);
    let f = direct.as_ref().unwrap_or(tgt);
    let mut buf = sysclone_copy::aligned::AlignedBuf::new(m.chunk_bytes as usize);
    let (mut bad, mut checked) = (Vec::new(), 0);
    for (tp, r) in plan.parts.iter().zip(parts) {
        let Some(sp) = layout.parts.iter().find(|p| p.number == tp.source_number) else { continue };
        if r.resize.is_some() {
            continue;
        }
        for (_, c) in m.chunks.iter().enumerate().filter(|(i, c)| !skip.contains(i) && c.partition == Some(sp.number) && c.offset + c.len <= sp.start + tp.size) {
            let at = tp.start + (c.offset - sp.start);
            buf.set_len(c.len as usize);
            f.read_exact_at(&mut buf, at).with_context(|| format!("reading back {} bytes at {at} of {target}", c.len))?;
            if sysclone_imagefile::manifest::sha256_hex(&buf) != c.sha256 {
                bad.push(at);
            }
            checked += 1;
        }
    }
    Ok((bad, checked))
}
