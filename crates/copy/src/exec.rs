//! Carrying out a clone plan.
//!
//! Order of writes, so that an interrupted clone never looks complete:
//! 1. the target's sector 0, primary GPT header and last sector are zeroed;
//! 2. the plan's regions are copied (read errors recorded, see the pipeline);
//! 3. with `verify`, every region written is read back and compared — during the copy, right
//!    behind the writer, on O_DIRECT targets; afterwards otherwise (a target that differs
//!    stops here, without a table: it never looks complete);
//! 4. the backup GPT (entries, header) is written at the target's end;
//! 5. sector 0 (boot code, protective MBR resized), the primary header and entries — last,
//!    then read back with the backup header.
//!
//! So a primary GPT on the target means every byte was written and, with `verify`, read back.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;

use crate::map::{RescueMap, Status};
use crate::pipeline::{copy_ranges_to_many, verify_hashes, CopyOptions, CopyStats, Progress};
use crate::plan::{ClonePlan, Mode};

/// How to carry out a plan.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub copy: CopyOptions,
    /// Read the target back and compare with what was written.
    pub verify: bool,
    /// Keep a ddrescue-format map here (and resume from it if it exists).
    pub map: Option<PathBuf>,
    /// After a smart clone, discard (TRIM) the target's space the plan did not write.
    pub discard_unused: bool,
}

/// What a clone did.
#[derive(Debug, Clone, Serialize)]
pub struct CloneReport {
    pub mode: Mode,
    pub source: String,
    pub target: String,
    pub bytes_planned: u64,
    /// Bytes read from the source, `bytes_gaps` included.
    pub bytes_read: u64,
    /// Free bytes between used ranges read and written along with them (gaps of at most
    /// [`crate::pipeline::MERGE_GAP`], so that one request replaces two).
    pub bytes_gaps: u64,
    pub bytes_written: u64,
    /// Bytes already finished according to the map of an earlier, interrupted run.
    pub bytes_resumed: u64,
    pub seconds: f64,
    pub mib_per_second: f64,
    pub direct_io: bool,
    /// `None` when not asked to verify.
    pub verified: Option<bool>,
    /// Target offsets whose read-back differed.
    pub mismatches: Vec<u64>,
    /// Unreadable source ranges (byte offset, length), written as zeros.
    pub bad_ranges: Vec<(u64, u64)>,
    pub gpt_relocated: bool,
    /// Bytes of the target discarded (`--discard-unused`).
    pub bytes_discarded: u64,
    pub peak_rss_bytes: u64,
}

/// Peak resident set size of this process (VmHWM).
pub fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .unwrap_or(0)
        * 1024
}

fn map_comment(plan: &ClonePlan) -> String {
    format!("sysclone {:?} clone\nsource: {}\ntarget: {}", plan.mode, plan.source_id, plan.target_id)
}

/// Load the map to resume from, or start a new one.
fn open_map(plan: &ClonePlan, opts: &ExecOptions) -> Result<RescueMap> {
    let comment = map_comment(plan);
    if let Some(p) = &opts.map {
        if p.exists() {
            let m = RescueMap::load(p)?;
            if m.size() != plan.source_bytes || m.comment.trim() != comment.trim() {
                bail!("map {} belongs to another clone ({}); remove it or name another map file", p.display(), m.comment.replace('\n', "; "));
            }
            return Ok(m);
        }
    }
    let mut m = RescueMap::new(plan.source_bytes);
    m.comment = comment;
    Ok(m)
}

/// Run a clone plan. `src` must be open read-only, `tgt` through the write guard.
pub fn execute(plan: &ClonePlan, src: &File, tgt: &File, opts: &ExecOptions, progress: Progress<'_>) -> Result<CloneReport> {
    let mut reports = execute_many(std::slice::from_ref(plan), src, &[tgt], opts, progress)?;
    reports.pop().expect("one target, one result")
}

/// 1. Make a target look blank while it is incomplete.
fn blank(plan: &ClonePlan, tgt: &File) -> Result<()> {
    let lbs = plan.logical_sector as u64;
    let zero = vec![0u8; lbs as usize];
    for off in [0, lbs, plan.target_bytes - lbs] {
        tgt.write_all_at(&zero, off).with_context(|| format!("clearing the target's old table at byte {off}"))?;
    }
    tgt.sync_all().context("flushing the target")
}

/// 4.–5. The backup GPT at the target's end, then the head: the target is complete.
fn write_table(plan: &ClonePlan, src: &File, tgt: &File) -> Result<Vec<u8>> {
    let lbs = plan.logical_sector as u64;
    if let Some(g) = &plan.gpt {
        tgt.write_all_at(&g.entries, g.backup_entries_lba * lbs).context("writing the backup GPT entries")?;
        tgt.write_all_at(&g.backup_header, g.backup_header_lba * lbs).context("writing the backup GPT header")?;
    }
    tgt.sync_all().context("flushing the target")?;
    let head = expected_head(plan, src)?;
    tgt.write_all_at(&head, 0).context("writing sector 0 and the primary GPT")?;
    tgt.sync_all().context("flushing the target")?;
    Ok(head)
}

/// 3. Read back every piece the copy wrote and did not read back already while copying
///    (before the table: see the module's order).
fn verify_regions(tgt: &File, hashes: &[(u64, u64, u128)]) -> Result<Vec<u64>> {
    let mut quiet = |_: u64, _: u64| {};
    verify_hashes(tgt, hashes, &mut quiet)
}

/// 5. Read back the head and the backup header just written.
fn verify_table(plan: &ClonePlan, tgt: &File, head: &[u8]) -> Result<Vec<u64>> {
    let lbs = plan.logical_sector as u64;
    let mut bad = Vec::new();
    let mut back = vec![0u8; head.len()];
    tgt.read_exact_at(&mut back, 0).context("reading back the target's head")?;
    if back != head {
        bad.push(0);
    }
    if let Some(g) = &plan.gpt {
        let mut b = vec![0u8; g.backup_header.len()];
        tgt.read_exact_at(&mut b, g.backup_header_lba * lbs).context("reading back the backup GPT header")?;
        if b != g.backup_header {
            bad.push(g.backup_header_lba * lbs);
        }
    }
    Ok(bad)
}

/// Run one plan per target with the source read once (a duplicator): the plans must copy the
/// same regions (they differ in where each target's backup GPT goes). One result per
/// target; a target that fails does not stop the others. Errs only on what concerns them
/// all (the source, the map, plans that do not match).
pub fn execute_many(plans: &[ClonePlan], src: &File, tgts: &[&File], opts: &ExecOptions, progress: Progress<'_>) -> Result<Vec<Result<CloneReport>>> {
    ensure!(!plans.is_empty() && plans.len() == tgts.len(), "one plan per target");
    let plan0 = &plans[0];
    let same = plans.iter().all(|p| {
        p.logical_sector == plan0.logical_sector && p.head_bytes == plan0.head_bytes && p.regions.len() == plan0.regions.len() && p.regions.iter().zip(&plan0.regions).all(|(a, b)| (a.start, a.len) == (b.start, b.len))
    });
    ensure!(same, "the targets' plans copy different regions; clone them one at a time");
    ensure!(opts.map.is_none() || plans.len() == 1, "a rescue map follows one target; clone to several targets without --map");
    let t0 = Instant::now();
    let lbs = plan0.logical_sector as u64;
    let mut map = open_map(plan0, opts)?;
    let ranges: Vec<(u64, u64)> = plan0.regions.iter().map(|r| (r.start, r.len)).collect();
    let resumed: u64 = plan0.copy_bytes - ranges.iter().flat_map(|&(s, l)| map.unfinished_within(s, l)).map(|r| r.1).sum::<u64>();
    // 1. Every target blank while incomplete.
    let mut errors: Vec<Option<anyhow::Error>> = plans.iter().zip(tgts).map(|(p, t)| blank(p, t).err()).collect();
    if plans.len() == 1 && plan0.target_bytes - lbs < plan0.source_bytes {
        // That sector was just cleared; a resumed run must copy it again.
        map.mark(plan0.target_bytes - lbs, lbs, Status::NonTried);
    }
    // 2. The regions, to every target still standing.
    let live: Vec<usize> = (0..plans.len()).filter(|&i| errors[i].is_none()).collect();
    let live_files: Vec<&File> = live.iter().map(|&i| tgts[i]).collect();
    let copy = CopyOptions { sector: plan0.logical_sector, hash: opts.verify, checkpoint: opts.map.is_some(), ..opts.copy.clone() };
    let map_path = opts.map.clone();
    let mut save = |m: &RescueMap| -> Result<()> {
        match &map_path {
            Some(p) => m.save(p, 0, 1),
            None => Ok(()),
        }
    };
    let mut stats = CopyStats::default();
    // Per target: mismatches found while copying.
    let mut during: Vec<Vec<u64>> = vec![Vec::new(); plans.len()];
    if !live.is_empty() {
        match copy_ranges_to_many(src, &live_files, &ranges, &mut map, &copy, progress, &mut save) {
            Ok((mut st, failed)) => {
                for (k, f) in failed.into_iter().enumerate() {
                    errors[live[k]] = f;
                    during[live[k]] = std::mem::take(&mut st.mismatches[k]);
                }
                stats = st;
            }
            Err(e) if live.len() == 1 => errors[live[0]] = Some(e),
            Err(e) => {
                for &i in &live {
                    errors[i] = Some(anyhow::anyhow!("{e:#}"));
                }
            }
        }
    }
    // 3.–5. per target.
    let mut out = Vec::new();
    for (i, (plan, tgt)) in plans.iter().zip(tgts).enumerate() {
        if let Some(e) = errors[i].take() {
            out.push(Err(e));
            continue;
        }
        let done = (|| -> Result<CloneReport> {
            // What the copy read back as it went (O_DIRECT targets), and the rest now.
            let mut mismatches = if opts.verify {
                let mut bad = verify_regions(tgt, &stats.hashes)?;
                bad.extend_from_slice(&during[i]);
                bad.sort_unstable();
                bad
            } else {
                Vec::new()
            };
            // A target that differs from what was written gets no table: it is not a clone.
            let head = if mismatches.is_empty() { Some(write_table(plan, src, tgt)?) } else { None };
            if plans.len() == 1 && head.is_some() {
                map.mark(0, plan.head_bytes, Status::Finished);
                save(&map)?;
            }
            let bytes_discarded = if opts.discard_unused && plan.mode == Mode::Smart && head.is_some() { discard_unused(plan, tgt)? } else { 0 };
            if let (true, Some(head)) = (opts.verify, &head) {
                mismatches = verify_table(plan, tgt, head)?;
            }
            let verified = opts.verify.then_some(mismatches.is_empty());
            let seconds = t0.elapsed().as_secs_f64();
            Ok(CloneReport {
                mode: plan.mode,
                source: plan.source.clone(),
                target: plan.target.clone(),
                bytes_planned: plan.copy_bytes,
                bytes_read: stats.bytes_read,
                bytes_gaps: stats.bytes_gaps,
                bytes_written: stats.bytes_written,
                bytes_resumed: resumed,
                seconds,
                mib_per_second: stats.bytes_written as f64 / (1 << 20) as f64 / seconds.max(1e-9),
                direct_io: stats.direct,
                verified,
                mismatches,
                bad_ranges: stats.bad.clone(),
                gpt_relocated: plan.gpt.is_some(),
                bytes_discarded,
                peak_rss_bytes: peak_rss(),
            })
        })();
        out.push(done);
    }
    Ok(out)
}

/// The target ranges a smart plan leaves alone: between the head and the backup GPT, outside
/// every region. Pure, for testing.
pub fn unused_ranges(plan: &ClonePlan) -> Vec<(u64, u64)> {
    let lbs = plan.logical_sector as u64;
    let end = plan.gpt.as_ref().map(|g| g.backup_entries_lba * lbs).unwrap_or(plan.target_bytes);
    let mut out = Vec::new();
    let mut pos = plan.head_bytes;
    for r in &plan.regions {
        if r.start > pos {
            out.push((pos, r.start.min(end) - pos));
        }
        pos = pos.max(r.start + r.len);
    }
    if end > pos {
        out.push((pos, end - pos));
    }
    out.retain(|r| r.1 > 0);
    out
}

fn discard_unused(plan: &ClonePlan, tgt: &File) -> Result<u64> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileTypeExt;
    if !tgt.metadata()?.file_type().is_block_device() {
        return Ok(0);
    }
    let mut n = 0;
    for (s, l) in unused_ranges(plan) {
        match sysclone_disk::sys::discard(tgt.as_fd(), s, l) {
            Ok(()) => n += l,
            // Devices without discard support: nothing to do.
            Err(_) => return Ok(n),
        }
    }
    Ok(n)
}

/// The first `head_bytes` of the target: the source's, with the protective MBR resized and
/// the primary header replaced.
fn expected_head(plan: &ClonePlan, src: &File) -> Result<Vec<u8>> {
    let mut head = vec![0u8; plan.head_bytes as usize];
    src.read_exact_at(&mut head, 0).context("reading the source's sector 0 and primary GPT")?;
    if let Some(g) = &plan.gpt {
        g.apply_to_head(&mut head, plan.target_bytes);
    }
    Ok(head)
}
