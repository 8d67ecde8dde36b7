//! Writing an image back: onto a disk (`restore`) or into a sparse raw file (`export`).
//!
//! Order of writes on a disk, so that a restore that stops never looks complete:
//! 1. the target's sector 0, primary GPT header and last sector are zeroed;
//! 2. chunks, in disk order, each only after its hash was checked;
//! 3. the first MiB of partitions the image left out is zeroed (no stale filesystem shows);
//! 4. the backup GPT, relocated to the target's end;
//! 5. sector 0 and the primary GPT — last.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;
use sysclone_disk::human_bytes;
use sysclone_layout::{read_gpt, RelocatedGpt};

use crate::manifest::sha256_hex;
use crate::read::Image;

/// What a restore will write, computed without touching the target.
#[derive(Debug, Clone, Serialize)]
pub struct RestorePlan {
    pub target_bytes: u64,
    pub logical_sector: u32,
    /// The head as it will be written last (protective MBR and primary header fitted to the
    /// target).
    #[serde(skip)]
    pub head: Vec<u8>,
    #[serde(skip)]
    pub gpt: Option<RelocatedGpt>,
    /// Byte ranges zeroed for partitions the image left out.
    pub zero: Vec<(u64, u64)>,
    pub write_bytes: u64,
    /// Delta restore: read the target first and fetch only the chunks whose bytes it does not
    /// already hold at their place (re-imaging a disk that drifted a little).
    pub delta: bool,
    /// Rescue: a chunk that cannot be used (missing, truncated, corrupt) is recorded, its
    /// place on the target is zeroed, and the restore goes on; otherwise the first one stops
    /// it before anything of it is written.
    pub rescue: bool,
}

/// Plan a restore of `img` onto a target of `target_bytes` with `sector`-byte sectors, or
/// `target_bytes` of an exported file with `relocate = false` (the head exactly as saved).
pub fn plan_restore(img: &Image, target_bytes: u64, sector: u32) -> Result<RestorePlan> {
    let m = &img.manifest;
    ensure!(
        sector == m.source.logical_sector,
        "the target has {sector}-byte sectors but the image was saved from a disk with {}-byte sectors; restoring cannot convert (a migration can, later)",
        m.source.logical_sector
    );
    let need = m.min_target_bytes();
    ensure!(target_bytes >= need, "the target has {target_bytes} bytes ({}) but the image needs at least {need} ({}): its partitions and backup GPT must fit", human_bytes(target_bytes), human_bytes(need));
    let mut head = m.head()?;
    let gpt = if m.table.kind == "gpt" {
        let raw = read_gpt(&mut std::io::Cursor::new(&head), sector, m.source.size_bytes).context("reading the GPT kept in the manifest")?;
        let raw = raw.ok_or_else(|| anyhow::anyhow!("the manifest says GPT but its table head has no GPT header"))?;
        let g = raw.relocate(target_bytes).context("fitting the image's GPT to the target")?;
        g.apply_to_head(&mut head, target_bytes);
        Some(g)
    } else {
        None
    };
    let zero = m.partitions.iter().filter(|p| p.stored == "none").map(|p| (p.start, p.size.min(1 << 20))).collect();
    Ok(RestorePlan { target_bytes, logical_sector: sector, head, gpt, zero, write_bytes: m.stored_bytes(), delta: false, rescue: false })
}

impl RestorePlan {
    /// The plan as a person reads it before confirming.
    pub fn show(&self, img: &Image, target: &str) -> String {
        let m = &img.manifest;
        let mut s = format!(
            "restore\n  image:  {} (saved {} from {})\n  target: {}  (everything on it is overwritten)\n  write:  {} in {} chunks, each checked before it is written\n",
            img.location,
            m.created_utc,
            describe_source(img),
            target,
            human_bytes(self.write_bytes),
            m.chunks.len()
        );
        for p in &m.partitions {
            s.push_str(&format!(
                "          partition {}: {} {}, {} stored ({}){}\n",
                p.number,
                human_bytes(p.size),
                p.fs.as_ref().map(|f| f.kind.as_str()).unwrap_or("-"),
                human_bytes(p.stored_bytes),
                p.stored,
                if p.stored == "none" { ", first MiB zeroed" } else { "" }
            ));
        }
        match &self.gpt {
            Some(g) => s.push_str(&format!("  GPT:    entries as saved; backup header at LBA {} (target end); primary written last\n", g.backup_header_lba)),
            None => s.push_str("  table:  sector 0 written last\n"),
        }
        if self.target_bytes > m.source.size_bytes {
            s.push_str(&format!("  unused: {} at the end of the target stay as they are\n", human_bytes(self.target_bytes - m.source.size_bytes)));
        }
        s
    }
}

/// The source of an image in one line.
pub fn describe_source(img: &Image) -> String {
    let s = &img.manifest.source;
    format!("{} ({}, {}, serial {}, {})", s.name, s.bus, s.model.as_deref().unwrap_or("unknown model"), s.serial.as_deref().unwrap_or("none"), human_bytes(s.size_bytes))
}

/// What a restore or export did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub image: String,
    pub target: String,
    pub chunks: usize,
    pub bytes_written: u64,
    pub seconds: f64,
    pub mib_per_second: f64,
    pub gpt_relocated: bool,
    pub peak_rss_bytes: u64,
    /// With `--verify`: whether every chunk and the table read back as written.
    pub verified: Option<bool>,
    /// Disk offsets of chunks (or the table) that read back differently.
    pub mismatches: Vec<u64>,
    /// Delta restore: bytes the target already held (not fetched, not written).
    pub bytes_already_there: u64,
    /// Bytes of chunks fetched from the image (before decompression: `bytes_written`).
    pub bytes_fetched: u64,
    /// With rescue: the chunks that could not be used; their places hold zeros.
    pub lost: Vec<LostChunk>,
}

/// A chunk a rescue restore could not use.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LostChunk {
    pub chunk: usize,
    /// Image partition number; `None`: the area before the first partition.
    pub partition: Option<u32>,
    /// Where its bytes went on the target (zeros now).
    pub target_offset: u64,
    pub bytes: u64,
    pub error: String,
}

/// What a restore does with a chunk it cannot use: stop (the default), or with `on` record
/// it in `lost` and write zeros in its place.
#[derive(Debug, Default)]
pub struct Rescue {
    pub on: bool,
    pub lost: Vec<LostChunk>,
}

impl Rescue {
    pub fn new(on: bool) -> Rescue {
        Rescue { on, lost: Vec::new() }
    }

    /// Chunk `i`'s bytes, or the reason they are unusable: the error (naming `what` as
    /// incomplete), or with rescue on zeros to write at `target_offset`, recorded.
    pub fn chunk(&mut self, img: &Image, i: usize, data: Result<Vec<u8>>, target_offset: u64, what: &str) -> Result<Vec<u8>> {
        let c = &img.manifest.chunks[i];
        match data {
            Ok(d) => Ok(d),
            Err(e) if self.on => {
                self.lost.push(LostChunk { chunk: i, partition: c.partition, target_offset, bytes: c.len, error: format!("{e:#}") });
                Ok(vec![0u8; c.len as usize])
            }
            Err(e) => Err(e.context(format!("stopped before writing it: {what} is incomplete and has no valid partition table (`--rescue` goes on past unusable chunks)"))),
        }
    }

    /// The chunks lost so far (left out of a read-back).
    pub fn skip(&self) -> Vec<usize> {
        self.lost.iter().map(|l| l.chunk).collect()
    }
}

/// Which chunks the target already holds, byte for byte, at their place (by SHA-256 of what
/// is there). Chunks touching the sectors a restore clears first are always fetched.
/// Reads a target back past the page cache where it allows (O_DIRECT, aligned buffer).
struct TargetReader<'a> {
    tgt: &'a File,
    direct: Option<File>,
    buf: sysclone_copy::aligned::AlignedBuf,
    target: &'a str,
}

impl<'a> TargetReader<'a> {
    fn new(tgt: &'a File, max_len: u64, target: &'a str) -> TargetReader<'a> {
        TargetReader { tgt, direct: sysclone_copy::reopen_direct(tgt, false), buf: sysclone_copy::aligned::AlignedBuf::new(max_len as usize), target }
    }

    fn read(&mut self, off: u64, len: u64) -> Result<&[u8]> {
        self.buf.set_len(len as usize);
        let f = self.direct.as_ref().unwrap_or(self.tgt);
        f.read_exact_at(&mut self.buf, off).with_context(|| format!("reading back {len} bytes at {off} of {}", self.target))?;
        Ok(&self.buf)
    }
}

fn chunks_already_there(img: &Image, plan: &RestorePlan, tgt: &File, target: &str) -> Result<Vec<bool>> {
    let m = &img.manifest;
    let lbs = plan.logical_sector as u64;
    let mut r = TargetReader::new(tgt, m.chunk_bytes, target);
    let mut have = Vec::with_capacity(m.chunks.len());
    for c in &m.chunks {
        let end = c.offset + c.len;
        let cleared = c.offset < 2 * lbs || end > plan.target_bytes - lbs;
        if cleared || end > plan.target_bytes || c.len > m.chunk_bytes {
            have.push(false);
            continue;
        }
        have.push(sha256_hex(r.read(c.offset, c.len)?) == c.sha256);
    }
    Ok(have)
}

/// Writes chunks to a disk. Whole sectors go straight to the device (O_DIRECT, from an
/// aligned buffer), past the page cache; anything else, or a target that refuses O_DIRECT,
/// goes through the cache. Flush the target (`sync_all`) afterwards either way.
pub struct DiskWriter<'a> {
    tgt: &'a File,
    direct: Option<File>,
    sector: u64,
    aligned: sysclone_copy::aligned::AlignedBuf,
}

impl<'a> DiskWriter<'a> {
    /// `sector`: the target's logical sector size; `max`: the largest write.
    pub fn new(tgt: &'a File, sector: u32, max: u64) -> DiskWriter<'a> {
        DiskWriter { tgt, direct: sysclone_copy::reopen_direct(tgt, true), sector: sector as u64, aligned: sysclone_copy::aligned::AlignedBuf::new(max as usize) }
    }

    pub fn write_at(&mut self, data: &[u8], at: u64) -> std::io::Result<()> {
        if let Some(d) = &self.direct {
            if at % self.sector == 0 && data.len() as u64 % self.sector == 0 && data.len() <= self.aligned.capacity() {
                self.aligned.set_len(data.len());
                self.aligned.copy_from_slice(data);
                if d.write_all_at(&self.aligned, at).is_ok() {
                    return Ok(());
                }
            }
        }
        self.tgt.write_all_at(data, at)
    }
}

/// Write every chunk of `img` to `tgt`; each chunk's hash is checked before it is written,
/// and the first bad chunk stops everything (named in the error) unless `rescue` is on
/// (then it is listed in `lost` and its place zeroed).
fn write_chunks(img: &Image, which: &[usize], tgt: &File, threads: usize, what: &str, rescue: &mut Rescue, progress: &mut dyn FnMut(u64, u64)) -> Result<u64> {
    let m = &img.manifest;
    let total = which.iter().map(|&i| m.chunks[i].len).sum();
    let mut done = 0u64;
    let mut w = DiskWriter::new(tgt, m.source.logical_sector, m.chunk_bytes);
    img.for_each_chunk_of(which, threads, &mut |i, data| {
        let c = &m.chunks[i];
        let data = rescue.chunk(img, i, data, c.offset, what)?;
        w.write_at(&data, c.offset).with_context(|| format!("writing {} to {what}", m.chunk_place(i)))?;
        done += c.len;
        progress(done, total);
        Ok(())
    })?;
    Ok(done)
}

/// Restore `img` onto `tgt` (opened through the write guard) as `plan` says.
/// With `verify`, every chunk and the table are read back afterwards (bypassing the page
/// cache where the device allows) and compared with the image's hashes.
pub fn restore(img: &Image, plan: &RestorePlan, tgt: &File, target: &str, threads: usize, verify: bool, progress: &mut dyn FnMut(u64, u64)) -> Result<RestoreReport> {
    let t0 = Instant::now();
    let lbs = plan.logical_sector as u64;
    let m = &img.manifest;
    // 0. Delta: what the target already holds is neither fetched nor written.
    let have = if plan.delta { chunks_already_there(img, plan, tgt, target)? } else { vec![false; m.chunks.len()] };
    let which: Vec<usize> = (0..m.chunks.len()).filter(|&i| !have[i]).collect();
    let already: u64 = (0..m.chunks.len()).filter(|&i| have[i]).map(|i| m.chunks[i].len).sum();
    let fetched: u64 = which.iter().map(|&i| m.chunks[i].compressed_len).sum();
    // 1. Make the target look blank while it is incomplete.
    let zero = vec![0u8; lbs as usize];
    for off in [0, lbs, plan.target_bytes - lbs] {
        tgt.write_all_at(&zero, off).with_context(|| format!("clearing the old partition table of {target} at byte {off}"))?;
    }
    tgt.sync_all().with_context(|| format!("flushing {target}"))?;
    // 2. The chunks.
    let mut rescue = Rescue::new(plan.rescue);
    let written = write_chunks(img, &which, tgt, threads, target, &mut rescue, progress)?;
    // 3. Partitions left out of the image.
    for &(s, l) in &plan.zero {
        tgt.write_all_at(&vec![0u8; l as usize], s).with_context(|| format!("zeroing {l} bytes at {s} of {target}"))?;
    }
    // 4. Backup GPT at the end, 5. the head last.
    finish_table(tgt, plan.gpt.as_ref(), &plan.head, target)?;
    let mut r = report(img, target.to_string(), written, t0, plan.gpt.is_some());
    r.bytes_already_there = already;
    r.bytes_fetched = fetched;
    if verify {
        let bad = read_back(img, plan, tgt, target, &rescue.skip(), progress)?;
        r.verified = Some(bad.is_empty());
        r.mismatches = bad;
    }
    r.lost = rescue.lost;
    Ok(r)
}

/// Read the target back: every chunk against its SHA-256, the head and backup GPT byte for
/// byte; chunks in `skip` (lost in a rescue restore) are left out. Returns the disk offsets
/// that differ.
fn read_back(img: &Image, plan: &RestorePlan, tgt: &File, target: &str, skip: &[usize], progress: &mut dyn FnMut(u64, u64)) -> Result<Vec<u64>> {
    let m = &img.manifest;
    let mut r = TargetReader::new(tgt, m.chunk_bytes.max(plan.head.len() as u64), target);
    let mut same = |off: u64, len: usize, ok: &dyn Fn(&[u8]) -> bool| -> Result<bool> { Ok(ok(r.read(off, len as u64)?)) };
    let mut bad = Vec::new();
    if !same(0, plan.head.len(), &|b| b == plan.head.as_slice())? {
        bad.push(0);
    }
    if let Some(g) = &plan.gpt {
        let at = g.backup_header_lba * g.logical_sector as u64;
        if !same(at, g.backup_header.len(), &|b| b == g.backup_header.as_slice())? {
            bad.push(at);
        }
    }
    let (mut done, total) = (0, m.stored_bytes());
    for (i, c) in m.chunks.iter().enumerate() {
        if skip.contains(&i) {
            continue;
        }
        if !same(c.offset, c.len as usize, &|b| sha256_hex(b) == c.sha256)? {
            bad.push(c.offset);
        }
        done += c.len;
        progress(done, total);
    }
    Ok(bad)
}

fn report(img: &Image, target: String, written: u64, t0: Instant, gpt_relocated: bool) -> RestoreReport {
    let seconds = t0.elapsed().as_secs_f64();
    RestoreReport {
        image: img.location.clone(),
        target,
        chunks: img.manifest.chunks.len(),
        bytes_written: written,
        seconds,
        mib_per_second: written as f64 / (1 << 20) as f64 / seconds.max(1e-9),
        gpt_relocated,
        peak_rss_bytes: sysclone_copy::peak_rss(),
        verified: None,
        mismatches: Vec::new(),
        bytes_already_there: 0,
        bytes_fetched: 0,
        lost: Vec::new(),
    }
}

fn finish_table(tgt: &File, gpt: Option<&RelocatedGpt>, head: &[u8], target: &str) -> Result<()> {
    if let Some(g) = gpt {
        let lbs = g.logical_sector as u64;
        tgt.write_all_at(&g.entries, g.backup_entries_lba * lbs).with_context(|| format!("writing the backup GPT entries of {target}"))?;
        tgt.write_all_at(&g.backup_header, g.backup_header_lba * lbs).with_context(|| format!("writing the backup GPT header of {target}"))?;
    }
    tgt.sync_all().with_context(|| format!("flushing {target}"))?;
    tgt.write_all_at(head, 0).with_context(|| format!("writing sector 0 and the primary GPT of {target}"))?;
    tgt.sync_all().with_context(|| format!("flushing {target}"))?;
    Ok(())
}

/// Write `img` as a sparse raw disk file of the source's size: used areas and the partition
/// table byte for byte as on the source, holes elsewhere. `raw` must not exist yet.
pub fn export_raw(img: &Image, raw: &Path, threads: usize, progress: &mut dyn FnMut(u64, u64)) -> Result<RestoreReport> {
    let t0 = Instant::now();
    let m = &img.manifest;
    let head = m.head()?;
    let what = raw.display().to_string();
    let f = OpenOptions::new().write(true).create_new(true).open(raw).with_context(|| format!("creating {what} (it must not exist yet)"))?;
    let r = export_into(img, &f, &head, &what, threads, progress);
    if r.is_err() {
        // A partial export must not be mistaken for the disk.
        let _ = std::fs::remove_file(raw);
    }
    Ok(report(img, what, r?, t0, false))
}

fn export_into(img: &Image, f: &File, head: &[u8], what: &str, threads: usize, progress: &mut dyn FnMut(u64, u64)) -> Result<u64> {
    let m = &img.manifest;
    f.set_len(m.source.size_bytes).with_context(|| format!("sizing {what} to {} bytes", m.source.size_bytes))?;
    let written = write_chunks(img, &(0..m.chunks.len()).collect::<Vec<_>>(), f, threads, what, &mut Rescue::new(false), progress)?;
    // The backup GPT as the source had it (at its end); the head exactly as saved.
    let gpt = if m.table.kind == "gpt" {
        let raw_gpt = read_gpt(&mut std::io::Cursor::new(head), m.source.logical_sector, m.source.size_bytes).context("reading the GPT kept in the manifest")?;
        match raw_gpt {
            Some(g) => Some(g.relocate(m.source.size_bytes).context("placing the backup GPT")?),
            None => bail!("the manifest says GPT but its table head has no GPT header"),
        }
    } else {
        None
    };
    finish_table(f, gpt.as_ref(), head, what)?;
    Ok(written)
}
