//! The copy pipeline: one reader thread and the writing caller, a bounded queue of large
//! aligned buffers between them, so memory stays at `depth × chunk` whatever the disk size.
//!
//! Read errors do not stop a copy (GNU ddrescue's approach): a failed large read is skipped
//! and marked non-trimmed; afterwards those areas are read again sector by sector with
//! retries, and sectors that stay unreadable are written as zeros and marked bad.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::mpsc::sync_channel;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use xxhash_rust::xxh3::xxh3_128;

use crate::aligned::AlignedBuf;
use crate::map::{RescueMap, Status};

/// Tuning and behaviour of one copy.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Bytes per read (a multiple of 4096).
    pub chunk: usize,
    /// Buffers in flight.
    pub depth: usize,
    /// Logical sector size: the unit of retries and of bad ranges.
    pub sector: u32,
    /// Extra attempts per sector before it is declared bad.
    pub retries: u32,
    /// Use O_DIRECT (bypass the page cache) when both sides allow it.
    pub direct: bool,
    /// Record a hash of every written piece, for verification.
    pub hash: bool,
    /// Where the target's bytes go: target offset = source offset + shift (migrations move
    /// partitions; clones keep offsets, shift 0).
    pub shift: i64,
    /// Flush the target and call the checkpoint every 2 s (only worth it with a map to save).
    pub checkpoint: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions { chunk: 8 << 20, depth: 4, sector: 512, retries: 2, direct: true, hash: false, shift: 0, checkpoint: false }
    }
}

/// What a copy did.
#[derive(Debug, Clone, Default)]
pub struct CopyStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Sector ranges that could not be read (written as zeros).
    pub bad: Vec<(u64, u64)>,
    /// (offset, length, xxh3-128) of every piece written, when hashing.
    pub hashes: Vec<(u64, u64, u128)>,
    /// Whether O_DIRECT was used.
    pub direct: bool,
}

/// Progress callback: (bytes done, bytes total).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);
/// Called now and then with the map, after the target was flushed: persist it.
pub type Checkpoint<'a> = &'a mut dyn FnMut(&RescueMap) -> Result<()>;

/// Reopen `f` (via /proc/self/fd) with O_DIRECT; `None` where that is refused.
pub fn reopen_direct(f: &File, write: bool) -> Option<File> {
    let path = format!("/proc/self/fd/{}", f.as_raw_fd());
    OpenOptions::new().read(true).write(write).custom_flags(nix::libc::O_DIRECT | nix::libc::O_CLOEXEC).open(path).ok()
}

enum Piece {
    Data(u64, AlignedBuf),
    /// A read failed; the buffer comes back for reuse.
    Failed(u64, u64, AlignedBuf),
}

/// Copy the parts of `ranges` (absolute byte ranges, same offsets on both sides) that `map`
/// does not show finished. `map` is updated as pieces land.
pub fn copy_ranges(src: &File, dst: &File, ranges: &[(u64, u64)], map: &mut RescueMap, opts: &CopyOptions, progress: Progress<'_>, checkpoint: Checkpoint<'_>) -> Result<CopyStats> {
    let (stats, mut failed) = copy_ranges_to_many(src, &[dst], ranges, map, opts, progress, checkpoint)?;
    match failed.pop().flatten() {
        Some(e) => Err(e),
        None => Ok(stats),
    }
}

/// The targets of one copy: each written with the same pieces, in parallel. A target whose
/// write fails drops out (its error kept) and the others go on.
struct Targets {
    files: Vec<File>,
    failed: Vec<Option<anyhow::Error>>,
}

impl Targets {
    fn live(&self) -> usize {
        self.failed.iter().filter(|f| f.is_none()).count()
    }

    /// Do `op` on every live target (in parallel when there are several); a failure takes
    /// that target out. Errs only when no target is left.
    fn each(&mut self, what: &str, op: impl Fn(&File) -> std::io::Result<()> + Sync) -> Result<()> {
        let live: Vec<usize> = (0..self.files.len()).filter(|&i| self.failed[i].is_none()).collect();
        let results: Vec<(usize, std::io::Result<()>)> = if live.len() == 1 {
            vec![(live[0], op(&self.files[live[0]]))]
        } else {
            thread::scope(|s| {
                let (files, op) = (&self.files, &op);
                let handles: Vec<_> = live.iter().map(|&i| (i, s.spawn(move || op(&files[i])))).collect();
                handles.into_iter().map(|(i, h)| (i, h.join().unwrap_or_else(|_| Err(std::io::Error::other("writer thread panicked"))))).collect()
            })
        };
        for (i, r) in results {
            if let Err(e) = r {
                self.failed[i] = Some(anyhow!(e).context(what.to_string()));
            }
        }
        if self.live() == 0 {
            // Every target failed: the first one's error stands for all.
            return Err(self.failed.iter_mut().find_map(|f| f.take()).expect("a failure"));
        }
        Ok(())
    }
}

/// Like [`copy_ranges`] onto several targets at once, the source read once (a duplicator).
/// Returns the stats and, per target, the error that took it out (`None`: complete).
/// Errs when every target failed or the source cannot be handled.
pub fn copy_ranges_to_many(src: &File, dsts: &[&File], ranges: &[(u64, u64)], map: &mut RescueMap, opts: &CopyOptions, progress: Progress<'_>, checkpoint: Checkpoint<'_>) -> Result<(CopyStats, Vec<Option<anyhow::Error>>)> {
    let todo: Vec<(u64, u64)> = ranges.iter().flat_map(|&(s, l)| map.unfinished_within(s, l)).collect();
    let total: u64 = todo.iter().map(|r| r.1).sum();
    let sector = opts.sector.max(512) as u64;
    let aligned = todo.iter().all(|&(s, l)| s % sector == 0 && l % sector == 0);
    let direct_src = if opts.direct && aligned { reopen_direct(src, false) } else { None };
    let direct_dsts: Option<Vec<File>> = direct_src.as_ref().and_then(|_| dsts.iter().map(|d| reopen_direct(d, true)).collect());
    let (rsrc, files) = match (direct_src, direct_dsts) {
        (Some(a), Some(b)) => (a, b),
        _ => (src.try_clone()?, dsts.iter().map(|d| d.try_clone()).collect::<std::io::Result<Vec<File>>>()?),
    };
    let mut rdst = Targets { failed: files.iter().map(|_| None).collect(), files };
    let mut stats = CopyStats { direct: opts.direct && aligned && rsrc.as_raw_fd() != src.as_raw_fd(), ..Default::default() };
    let chunk = opts.chunk.max(4096) / 4096 * 4096;
    let (full_tx, full_rx) = sync_channel::<Piece>(opts.depth);
    let (empty_tx, empty_rx) = sync_channel::<AlignedBuf>(opts.depth);
    for _ in 0..opts.depth {
        empty_tx.send(AlignedBuf::new(chunk)).expect("fresh channel");
    }
    let reader_src = rsrc.try_clone()?;
    let reader_todo = todo.clone();
    let reader = thread::spawn(move || {
        for (start, len) in reader_todo {
            let mut off = start;
            while off < start + len {
                let Ok(mut buf) = empty_rx.recv() else { return };
                let n = ((start + len - off) as usize).min(chunk);
                buf.set_len(n);
                let piece = match reader_src.read_exact_at(&mut buf, off) {
                    Ok(()) => Piece::Data(off, buf),
                    Err(_) => Piece::Failed(off, n as u64, buf),
                };
                if full_tx.send(piece).is_err() {
                    return;
                }
                off += n as u64;
            }
        }
    });
    let mut done = 0u64;
    let mut last_save = Instant::now();
    let mut result = Ok(());
    for piece in full_rx.iter() {
        match piece {
            Piece::Data(off, buf) => {
                let toff = target_offset(off, opts.shift)?;
                let data: &[u8] = &buf;
                if let Err(e) = rdst.each(&format!("writing the target at byte {toff} ({} bytes)", buf.len()), |f| f.write_all_at(data, toff)) {
                    result = Err(e);
                    break;
                }
                if opts.hash {
                    stats.hashes.push((toff, buf.len() as u64, xxh3_128(&buf)));
                }
                stats.bytes_read += buf.len() as u64;
                stats.bytes_written += buf.len() as u64;
                done += buf.len() as u64;
                map.mark(off, buf.len() as u64, Status::Finished);
                let _ = empty_tx.send(buf);
            }
            Piece::Failed(off, len, buf) => {
                map.mark(off, len, Status::NonTrimmed);
                done += len;
                let _ = empty_tx.send(buf);
            }
        }
        progress(done, total);
        if opts.checkpoint && last_save.elapsed() > Duration::from_secs(2) {
            if let Err(e) = rdst.each("flushing the target", |f| f.sync_data()).and_then(|_| checkpoint(map)) {
                result = Err(e);
                break;
            }
            last_save = Instant::now();
        }
    }
    drop(empty_tx);
    drop(full_rx);
    reader.join().map_err(|_| anyhow!("the reader thread panicked"))?;
    result?;
    scrape(&rsrc, &mut rdst, &todo, map, opts, &mut stats)?;
    rdst.each("flushing the target", |f| f.sync_data())?;
    checkpoint(map)?;
    Ok((stats, rdst.failed))
}

fn target_offset(off: u64, shift: i64) -> Result<u64> {
    off.checked_add_signed(shift).ok_or_else(|| anyhow!("target offset of source byte {off} moved by {shift} is out of range"))
}

/// Read the non-trimmed parts of `todo` sector by sector; write what reads, zero the rest.
fn scrape(src: &File, dst: &mut Targets, todo: &[(u64, u64)], map: &mut RescueMap, opts: &CopyOptions, stats: &mut CopyStats) -> Result<()> {
    let sector = opts.sector.max(512) as u64;
    let failed: Vec<(u64, u64)> = map
        .ranges_with(Status::NonTrimmed)
        .into_iter()
        .chain(map.ranges_with(Status::Bad))
        .filter(|&(s, l)| todo.iter().any(|&(ts, tl)| s < ts + tl && ts < s + l))
        .collect();
    let mut buf = AlignedBuf::new(sector as usize);
    buf.set_len(sector as usize);
    let zero = AlignedBuf::new(sector as usize);
    for (start, len) in failed {
        let mut off = start;
        while off < start + len {
            let mut ok = false;
            for _ in 0..=opts.retries {
                if src.read_exact_at(&mut buf, off).is_ok() {
                    ok = true;
                    break;
                }
            }
            let toff = target_offset(off, opts.shift)?;
            if ok {
                let data: &[u8] = &buf;
                dst.each(&format!("writing the target at byte {toff}"), |f| f.write_all_at(data, toff))?;
                if opts.hash {
                    stats.hashes.push((toff, sector, xxh3_128(&buf)));
                }
                stats.bytes_read += sector;
                stats.bytes_written += sector;
                map.mark(off, sector, Status::Finished);
            } else {
                let zeros: &[u8] = &zero[..sector as usize];
                dst.each(&format!("zeroing unreadable sector at byte {toff} on the target"), |f| f.write_all_at(zeros, toff))?;
                map.mark(off, sector, Status::Bad);
                match stats.bad.last_mut() {
                    Some((s, l)) if *s + *l == off => *l += sector,
                    _ => stats.bad.push((off, sector)),
                }
            }
            off += sector;
        }
    }
    Ok(())
}

/// Compare what `f` holds with recorded hashes. Returns the offsets of pieces that differ.
pub fn verify_hashes(f: &File, hashes: &[(u64, u64, u128)], progress: Progress<'_>) -> Result<Vec<u64>> {
    let total: u64 = hashes.iter().map(|h| h.1).sum();
    let f = reopen_direct(f, false).unwrap_or(f.try_clone()?);
    let max = hashes.iter().map(|h| h.1).max().unwrap_or(0) as usize;
    let mut buf = AlignedBuf::new(max.max(4096));
    let mut bad = Vec::new();
    let mut done = 0;
    for &(off, len, h) in hashes {
        buf.set_len(len as usize);
        f.read_exact_at(&mut buf, off).with_context(|| format!("reading back the target at byte {off}"))?;
        if xxh3_128(&buf) != h {
            bad.push(off);
        }
        done += len;
        progress(done, total);
    }
    Ok(bad)
}
