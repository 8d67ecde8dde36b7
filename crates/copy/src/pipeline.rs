//! The copy pipeline: a small pool of workers, each with one large aligned buffer, takes the
//! pieces of a copy in order and reads, then writes them; with `depth` workers up to `depth`
//! requests are in flight at once (reads and writes mixed), so the source and the target are
//! both kept busy, and memory stays at `depth × chunk` whatever the disk size.
//!
//! Neighbouring ranges closer than `merge_gap` are read and written as one piece (the few
//! free bytes between them go along), so a fragmented used-blocks map becomes few large
//! requests.
//!
//! With `hash`, every piece's source data is hashed as it is read and, where the target is
//! written with O_DIRECT (the write is on the device when it returns), read back by verifier
//! threads shortly behind the writers, so verification overlaps the copy. Without O_DIRECT
//! the hashes are kept for a read-back after the final flush ([`verify_hashes`]).
//!
//! Read errors do not stop a copy (GNU ddrescue's approach): a failed large read is skipped
//! and marked non-trimmed; afterwards those areas are read again sector by sector with
//! retries, and sectors that stay unreadable are written as zeros and marked bad.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use xxhash_rust::xxh3::xxh3_128;

use crate::aligned::AlignedBuf;
use crate::map::{RescueMap, Status};

/// Free gaps up to this size between two ranges to copy are read and written along with
/// them (one request instead of two; copying free blocks is harmless).
pub const MERGE_GAP: u64 = 64 << 10;

/// Tuning and behaviour of one copy.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Bytes per request (a multiple of 4096).
    pub chunk: usize,
    /// Requests in flight: worker threads, each with one `chunk`-sized buffer.
    pub depth: usize,
    /// Logical sector size: the unit of retries and of bad ranges.
    pub sector: u32,
    /// Extra attempts per sector before it is declared bad.
    pub retries: u32,
    /// Use O_DIRECT (bypass the page cache) when both sides allow it.
    pub direct: bool,
    /// Verify: hash every piece as it is read and read the target back (see the module).
    pub hash: bool,
    /// Where the target's bytes go: target offset = source offset + shift (migrations move
    /// partitions; clones keep offsets, shift 0).
    pub shift: i64,
    /// Flush the target and call the checkpoint every 2 s (only worth it with a map to save).
    pub checkpoint: bool,
    /// Ranges closer than this are copied as one piece, the gap included.
    pub merge_gap: u64,
}

impl Default for CopyOptions {
    /// 16 requests of 2 MiB in flight (measured against 4 × 8 MiB and 8 × 4 MiB, same
    /// memory: docs/performance.md); for measurements, `SYSCLONE_COPY_DEPTH` and
    /// `SYSCLONE_COPY_CHUNK_KIB` override the two.
    fn default() -> Self {
        let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse::<usize>().ok()).filter(|&n| n > 0 && n <= 1 << 20).unwrap_or(default);
        CopyOptions { chunk: env("SYSCLONE_COPY_CHUNK_KIB", 2 << 10) << 10, depth: env("SYSCLONE_COPY_DEPTH", 16).min(64), sector: 512, retries: 2, direct: true, hash: false, shift: 0, checkpoint: false, merge_gap: MERGE_GAP }
    }
}

/// What a copy did.
#[derive(Debug, Clone, Default)]
pub struct CopyStats {
    /// Bytes read from the source (gaps read along included).
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Bytes of the gaps between ranges that were read and written along (`merge_gap`).
    pub bytes_gaps: u64,
    /// Sector ranges that could not be read (written as zeros).
    pub bad: Vec<(u64, u64)>,
    /// (target offset, length, xxh3-128) of the pieces written but not yet read back, when
    /// hashing: for [`verify_hashes`] after the final flush.
    pub hashes: Vec<(u64, u64, u128)>,
    /// Per target: offsets of the pieces already read back during the copy that differed.
    pub mismatches: Vec<Vec<u64>>,
    /// Bytes read back and compared during the copy (per target).
    pub bytes_verified: u64,
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

/// The requests of a copy over sorted, disjoint `ranges`: pieces of at most `chunk` bytes,
/// where a range that starts at most `gap` bytes after the previous one ends joins its piece.
/// A piece never starts or ends in a gap.
pub struct Pieces<'a> {
    ranges: &'a [(u64, u64)],
    i: usize,
    pos: u64,
    chunk: u64,
    gap: u64,
}

impl<'a> Pieces<'a> {
    pub fn new(ranges: &'a [(u64, u64)], chunk: u64, gap: u64) -> Pieces<'a> {
        Pieces { ranges, i: 0, pos: ranges.first().map(|r| r.0).unwrap_or(0), chunk: chunk.max(1), gap }
    }
}

impl Iterator for Pieces<'_> {
    type Item = (u64, u64);
    fn next(&mut self) -> Option<(u64, u64)> {
        while self.i < self.ranges.len() && self.pos >= self.ranges[self.i].0 + self.ranges[self.i].1 {
            self.i += 1;
            self.pos = self.ranges.get(self.i).map(|r| r.0).unwrap_or(self.pos);
        }
        let &(s, l) = self.ranges.get(self.i)?;
        let start = self.pos.max(s);
        let limit = start.saturating_add(self.chunk);
        let mut end = (s + l).min(limit);
        while end == self.ranges[self.i].0 + self.ranges[self.i].1 {
            match self.ranges.get(self.i + 1) {
                Some(&(ns, nl)) if ns - end <= self.gap && ns < limit => {
                    self.i += 1;
                    end = (ns + nl).min(limit);
                }
                _ => break,
            }
        }
        self.pos = end;
        Some((start, end - start))
    }
}

/// The parts of sorted, disjoint `ranges` within `[off, off+len)`.
fn within(ranges: &[(u64, u64)], off: u64, len: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
    let end = off + len;
    let first = ranges.partition_point(|&(s, l)| s + l <= off);
    ranges[first..].iter().take_while(move |r| r.0 < end).map(move |&(s, l)| (s.max(off), (s + l).min(end) - s.max(off)))
}

/// Requests and extra bytes of copying sorted, disjoint `ranges` with gaps up to `gap`
/// merged (no size limit per request): what a plan costs to read.
pub fn merged_cost(ranges: &[(u64, u64)], gap: u64) -> (usize, u64) {
    let needed: u64 = ranges.iter().map(|r| r.1).sum();
    let (n, bytes) = Pieces::new(ranges, u64::MAX, gap).fold((0, 0), |(n, b), p| (n + 1, b + p.1));
    (n, bytes - needed)
}

/// Sort `ranges` and join the ones that overlap or touch.
fn normalize(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (s, l) in ranges.into_iter().filter(|r| r.1 > 0) {
        match out.last_mut() {
            Some((ps, pl)) if *ps + *pl >= s => *pl = (*pl).max(s + l - *ps),
            _ => out.push((s, l)),
        }
    }
    out
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
/// write (or read-back) fails drops out (its error kept) and the others go on.
struct Targets {
    files: Vec<File>,
    failed: Mutex<Vec<Option<anyhow::Error>>>,
}

impl Targets {
    fn live(&self) -> Vec<usize> {
        let failed = self.failed.lock().expect("not poisoned");
        (0..self.files.len()).filter(|&i| failed[i].is_none()).collect()
    }

    /// Take target `i` out with `e` (its first error stands).
    fn fail(&self, i: usize, e: anyhow::Error) {
        let mut failed = self.failed.lock().expect("not poisoned");
        if failed[i].is_none() {
            failed[i] = Some(e);
        }
    }

    /// Do `op` on every live target (in parallel when there are several); a failure takes
    /// that target out. Errs only when no target is left.
    fn each(&self, what: &dyn Fn() -> String, op: impl Fn(&File) -> std::io::Result<()> + Sync) -> Result<()> {
        let live = self.live();
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
                self.fail(i, anyhow!(e).context(what()));
            }
        }
        let mut failed = self.failed.lock().expect("not poisoned");
        if failed.iter().all(|f| f.is_some()) {
            // Every target failed: the first one's error stands for all.
            return Err(failed.iter_mut().find_map(|f| f.take()).expect("a failure"));
        }
        Ok(())
    }

    fn into_failed(self) -> Vec<Option<anyhow::Error>> {
        self.failed.into_inner().expect("not poisoned")
    }
}

/// What a worker reports about one piece.
enum Done {
    /// Read and written (to every live target); the source data's hash when verifying.
    Data(u64, u64, Option<u128>),
    /// The read failed.
    Failed(u64, u64),
    /// Every target failed, or the piece has no place on the target.
    Fatal(anyhow::Error),
}

/// One piece to read back from every live target and compare.
struct Check {
    toff: u64,
    len: u64,
    hash: u128,
}

/// Read back what the writers wrote, shortly behind them: `files` are O_DIRECT read handles
/// of the targets (same order). Mismatching offsets per target go to `bad`.
fn verifier(jobs: &Mutex<Receiver<Check>>, files: &[File], targets: &Targets, chunk: usize, bad: &Mutex<Vec<Vec<u64>>>) -> u64 {
    let mut buf = AlignedBuf::new(chunk);
    let mut n = 0;
    loop {
        let job = jobs.lock().expect("not poisoned").recv();
        let Ok(Check { toff, len, hash }) = job else { return n };
        buf.set_len(len as usize);
        for i in targets.live() {
            match files[i].read_exact_at(&mut buf, toff) {
                Ok(()) if xxh3_128(&buf) == hash => {}
                Ok(()) => bad.lock().expect("not poisoned")[i].push(toff),
                Err(e) => targets.fail(i, anyhow!(e).context(format!("reading back the target at byte {toff} ({len} bytes)"))),
            }
        }
        n += len;
    }
}

/// Like [`copy_ranges`] onto several targets at once, the source read once (a duplicator).
/// Returns the stats and, per target, the error that took it out (`None`: complete).
/// Errs when every target failed or the source cannot be handled.
pub fn copy_ranges_to_many(src: &File, dsts: &[&File], ranges: &[(u64, u64)], map: &mut RescueMap, opts: &CopyOptions, progress: Progress<'_>, checkpoint: Checkpoint<'_>) -> Result<(CopyStats, Vec<Option<anyhow::Error>>)> {
    let todo = normalize(ranges.iter().flat_map(|&(s, l)| map.unfinished_within(s, l)).collect());
    let total: u64 = todo.iter().map(|r| r.1).sum();
    let sector = opts.sector.max(512) as u64;
    let aligned = todo.iter().all(|&(s, l)| s % sector == 0 && l % sector == 0);
    let direct_src = if opts.direct && aligned { reopen_direct(src, false) } else { None };
    let direct_dsts: Option<Vec<File>> = direct_src.as_ref().and_then(|_| dsts.iter().map(|d| reopen_direct(d, true)).collect());
    let (rsrc, files) = match (direct_src, direct_dsts) {
        (Some(a), Some(b)) => (a, b),
        _ => (src.try_clone()?, dsts.iter().map(|d| d.try_clone()).collect::<std::io::Result<Vec<File>>>()?),
    };
    let direct = opts.direct && aligned && rsrc.as_raw_fd() != src.as_raw_fd();
    // Read-back handles for verifying during the copy (O_DIRECT only: a buffered read-back
    // would see the page cache, not the device).
    let readers: Option<Vec<File>> = if opts.hash && direct { dsts.iter().map(|d| reopen_direct(d, false)).collect() } else { None };
    let rdst = Targets { failed: Mutex::new(files.iter().map(|_| None).collect()), files };
    let mut stats = CopyStats { direct, mismatches: vec![Vec::new(); dsts.len()], ..Default::default() };
    let chunk = opts.chunk.max(4096) / 4096 * 4096;
    let workers = opts.depth.max(1);
    let gap = if aligned { opts.merge_gap / sector * sector } else { 0 };
    let pieces = Mutex::new(Pieces::new(&todo, chunk as u64, gap));
    let stop = AtomicBool::new(false);
    let bad = Mutex::new(vec![Vec::new(); dsts.len()]);
    let (done_tx, done_rx) = channel::<Done>();
    let (check_tx, check_rx) = sync_channel::<Check>(workers * 2);
    let check_rx = Mutex::new(check_rx);
    let mut result = Ok(());
    let verified = thread::scope(|s| {
        let verifiers: Vec<_> = match &readers {
            Some(files) => (0..workers.div_ceil(2))
                .map(|_| {
                    let (check_rx, rdst, bad) = (&check_rx, &rdst, &bad);
                    s.spawn(move || verifier(check_rx, files, rdst, chunk, bad))
                })
                .collect(),
            None => Vec::new(),
        };
        for _ in 0..workers {
            let (tx, rsrc, rdst, pieces, stop) = (done_tx.clone(), &rsrc, &rdst, &pieces, &stop);
            s.spawn(move || {
                let mut buf = AlignedBuf::new(chunk);
                while !stop.load(Ordering::Relaxed) {
                    let Some((off, len)) = pieces.lock().expect("not poisoned").next() else { return };
                    buf.set_len(len as usize);
                    let done = match rsrc.read_exact_at(&mut buf, off) {
                        Err(_) => Done::Failed(off, len),
                        Ok(()) => {
                            let data: &[u8] = &buf;
                            let written = target_offset(off, opts.shift).and_then(|toff| rdst.each(&|| format!("writing the target at byte {toff} ({len} bytes)"), |f| f.write_all_at(data, toff)));
                            match written {
                                Ok(()) => Done::Data(off, len, opts.hash.then(|| xxh3_128(&buf))),
                                Err(e) => {
                                    stop.store(true, Ordering::Relaxed);
                                    Done::Fatal(e)
                                }
                            }
                        }
                    };
                    if tx.send(done).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let mut done = 0u64;
        let mut last_save = Instant::now();
        for msg in done_rx.iter() {
            match msg {
                Done::Data(off, len, hash) => {
                    let needed: u64 = within(&todo, off, len).map(|r| r.1).sum();
                    stats.bytes_read += len;
                    stats.bytes_written += len;
                    stats.bytes_gaps += len - needed;
                    done += needed;
                    map.mark(off, len, Status::Finished);
                    if let Some(hash) = hash {
                        let toff = off.checked_add_signed(opts.shift).expect("checked by the writer");
                        if readers.is_some() {
                            // Blocks while the verifiers are behind: they set the pace.
                            let _ = check_tx.send(Check { toff, len, hash });
                        } else {
                            stats.hashes.push((toff, len, hash));
                        }
                    }
                }
                Done::Failed(off, len) => {
                    for (s, l) in within(&todo, off, len) {
                        map.mark(s, l, Status::NonTrimmed);
                        done += l;
                    }
                }
                Done::Fatal(e) => {
                    stop.store(true, Ordering::Relaxed);
                    if result.is_ok() {
                        result = Err(e);
                    }
                    continue;
                }
            }
            progress(done, total);
            if result.is_ok() && opts.checkpoint && last_save.elapsed() > Duration::from_secs(2) {
                if let Err(e) = rdst.each(&|| "flushing the target".into(), |f| f.sync_data()).and_then(|_| checkpoint(map)) {
                    stop.store(true, Ordering::Relaxed);
                    result = Err(e);
                }
                last_save = Instant::now();
            }
        }
        drop(check_tx);
        verifiers.into_iter().map(|h| h.join().unwrap_or(0)).sum::<u64>()
    });
    result?;
    stats.bytes_verified = verified;
    stats.mismatches = bad.into_inner().expect("not poisoned");
    for m in &mut stats.mismatches {
        m.sort_unstable();
    }
    scrape(&rsrc, &rdst, &todo, map, opts, &mut stats)?;
    rdst.each(&|| "flushing the target".into(), |f| f.sync_data())?;
    checkpoint(map)?;
    Ok((stats, rdst.into_failed()))
}

fn target_offset(off: u64, shift: i64) -> Result<u64> {
    off.checked_add_signed(shift).ok_or_else(|| anyhow!("target offset of source byte {off} moved by {shift} is out of range"))
}

/// Read the non-trimmed parts of `todo` sector by sector; write what reads, zero the rest.
fn scrape(src: &File, dst: &Targets, todo: &[(u64, u64)], map: &mut RescueMap, opts: &CopyOptions, stats: &mut CopyStats) -> Result<()> {
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
                dst.each(&|| format!("writing the target at byte {toff}"), |f| f.write_all_at(data, toff))?;
                if opts.hash {
                    stats.hashes.push((toff, sector, xxh3_128(&buf)));
                }
                stats.bytes_read += sector;
                stats.bytes_written += sector;
                map.mark(off, sector, Status::Finished);
            } else {
                let zeros: &[u8] = &zero[..sector as usize];
                dst.each(&|| format!("zeroing unreadable sector at byte {toff} on the target"), |f| f.write_all_at(zeros, toff))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1024;

    #[test]
    fn pieces_merge_small_gaps_only_and_respect_the_chunk() {
        let r = [(0, 4 * K), (8 * K, 4 * K), (8 * K + 4 * K + 64 * K, 4 * K), (1 << 20, 4 * K)];
        // Gaps of 4 KiB and 64 KiB go along; the 1 MiB-ish gap does not.
        let p: Vec<_> = Pieces::new(&r, 8 << 20, 64 * K).collect();
        assert_eq!(p, vec![(0, 80 * K), (1 << 20, 4 * K)]);
        // A gap one sector over the limit splits.
        let p: Vec<_> = Pieces::new(&r, 8 << 20, 64 * K - 512).collect();
        assert_eq!(p, vec![(0, 12 * K), (76 * K, 4 * K), (1 << 20, 4 * K)]);
        // Pieces stop at the chunk size and never start in a gap.
        let p: Vec<_> = Pieces::new(&r, 10 * K, 64 * K).collect();
        assert_eq!(p, vec![(0, 10 * K), (10 * K, 2 * K), (76 * K, 4 * K), (1 << 20, 4 * K)]);
        // One long range in chunks.
        let p: Vec<_> = Pieces::new(&[(4096, 20 * K)], 8 * K, 0).collect();
        assert_eq!(p, vec![(4096, 8 * K), (4096 + 8 * K, 8 * K), (4096 + 16 * K, 4 * K)]);
        assert_eq!(Pieces::new(&[], 8 * K, 0).count(), 0);
        assert_eq!(merged_cost(&r, 64 * K), (2, 68 * K));
        assert_eq!(merged_cost(&r, 0), (4, 0));
    }

    #[test]
    fn normalize_and_within() {
        assert_eq!(normalize(vec![(10, 5), (0, 10), (30, 0), (12, 10), (40, 1)]), vec![(0, 22), (40, 1)]);
        let r = [(0, 10), (20, 10), (40, 10)];
        assert_eq!(within(&r, 5, 30).collect::<Vec<_>>(), vec![(5, 5), (20, 10)]);
        assert_eq!(within(&r, 10, 10).count(), 0);
    }

    fn pattern(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8).collect()
    }

    /// A source file of `size` pattern bytes and a target file of `size` bytes `fill`:
    /// (their directory, the source's bytes, source, target).
    fn source_and_target(size: usize, seed: u8, fill: u8) -> (tempfile::TempDir, Vec<u8>, File, File) {
        let t = tempfile::tempdir().unwrap();
        let (sp, dp) = (t.path().join("src"), t.path().join("dst"));
        let src = pattern(size, seed);
        std::fs::write(&sp, &src).unwrap();
        std::fs::write(&dp, vec![fill; size]).unwrap();
        let s = File::open(&sp).unwrap();
        let d = OpenOptions::new().read(true).write(true).open(&dp).unwrap();
        (t, src, s, d)
    }

    /// Ranges with small and large gaps: the small gap is copied along and counted, the
    /// large one is neither read nor written; the map shows the ranges finished.
    #[test]
    fn gaps_copied_along_are_bounded_and_large_free_areas_untouched() {
        let size = 4 << 20;
        let (t, src, s, d) = source_and_target(size, 1, 0xee);
        let ranges = [(0, 4 * K), (8 * K, 12 * K), (2 << 20, 512)];
        let mut map = RescueMap::new(size as u64);
        let opts = CopyOptions { chunk: 64 * K as usize, depth: 3, hash: true, ..Default::default() };
        let mut last = (0, 0);
        let st = copy_ranges(&s, &d, &ranges, &mut map, &opts, &mut |a, b| last = (a, b), &mut |_| Ok(())).unwrap();
        assert_eq!((st.bytes_read, st.bytes_gaps, st.bytes_written), (20 * K + 512, 4 * K, 20 * K + 512));
        assert_eq!(last, (16 * K + 512, 16 * K + 512));
        let out = std::fs::read(t.path().join("dst")).unwrap();
        assert_eq!(out[..20 * K as usize], src[..20 * K as usize]);
        assert!(out[20 * K as usize..2 << 20].iter().all(|&b| b == 0xee), "the large gap was written");
        assert_eq!(out[2 << 20..(2 << 20) + 512], src[2 << 20..(2 << 20) + 512]);
        for &(s, l) in &ranges {
            assert!(map.unfinished_within(s, l).is_empty());
        }
        // Every written byte is covered by a hash, read back now or later.
        let hashed: u64 = st.hashes.iter().map(|h| h.1).sum::<u64>() + st.bytes_verified;
        assert_eq!(hashed, st.bytes_written);
        let mut quiet = |_: u64, _: u64| {};
        assert!(verify_hashes(&d, &st.hashes, &mut quiet).unwrap().is_empty());
    }

    /// Large copies through several workers land byte for byte, whatever order the pieces
    /// complete in.
    #[test]
    fn parallel_workers_copy_everything() {
        let size = 3 << 20;
        let (t, src, s, d) = source_and_target(size, 7, 0);
        let mut map = RescueMap::new(size as u64);
        let opts = CopyOptions { chunk: 8192, depth: 6, ..Default::default() };
        let st = copy_ranges(&s, &d, &[(512, size as u64 - 1024)], &mut map, &opts, &mut |_, _| {}, &mut |_| Ok(())).unwrap();
        assert_eq!(st.bytes_read, size as u64 - 1024);
        let out = std::fs::read(t.path().join("dst")).unwrap();
        assert_eq!(out[512..size - 512], src[512..size - 512]);
        assert!(out[..512].iter().chain(&out[size - 512..]).all(|&b| b == 0));
    }

    /// The verifier reads back every live target and names each piece that differs by its
    /// offset.
    #[test]
    fn verifier_reports_mismatches_by_offset() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("t");
        let data = pattern(64 * K as usize, 3);
        std::fs::write(&p, &data).unwrap();
        let f = File::open(&p).unwrap();
        let targets = Targets { files: vec![f.try_clone().unwrap(), f.try_clone().unwrap()], failed: Mutex::new(vec![None, None]) };
        let readers = vec![f.try_clone().unwrap(), f];
        let (tx, rx) = channel();
        let good = |o: u64, l: u64| Check { toff: o, len: l, hash: xxh3_128(&data[o as usize..(o + l) as usize]) };
        tx.send(good(0, 4096)).unwrap();
        tx.send(Check { toff: 8192, len: 4096, hash: 1 }).unwrap();
        tx.send(good(16384, 8192)).unwrap();
        drop(tx);
        let bad = Mutex::new(vec![Vec::new(); 2]);
        let n = verifier(&Mutex::new(rx), &readers, &targets, 8192, &bad);
        assert_eq!(n, 16384);
        assert_eq!(bad.into_inner().unwrap(), vec![vec![8192], vec![8192]]);
        assert!(targets.live().len() == 2);
    }
}
