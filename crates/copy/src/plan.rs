//! Clone plans: what will be copied, computed without touching any disk.

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;
use sysclone_disk::{human_bytes, Disk};
use sysclone_layout::{RawGpt, RelocatedGpt};

use crate::pipeline::{merged_cost, MERGE_GAP};

/// How much of the source is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every byte.
    Exact,
    /// The partition table, boot areas, and per partition only the blocks in use.
    Smart,
}

/// One byte range to copy (same offset on source and target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Region {
    pub start: u64,
    pub len: u64,
    pub what: String,
}

/// What one partition's filesystem uses (input of a smart plan).
#[derive(Debug, Clone, Serialize)]
pub struct PartitionUse {
    pub number: u32,
    pub fs: String,
    /// Byte ranges relative to the partition start.
    pub extents: Vec<(u64, u64)>,
    /// True when the whole partition must be copied.
    pub whole: bool,
    pub note: Option<String>,
}

/// A clone plan. Offsets on the target are the source's.
#[derive(Debug, Clone, Serialize)]
pub struct ClonePlan {
    pub mode: Mode,
    pub source: String,
    pub target: String,
    /// Stable identities (no kernel names) of the source, with its partition table's GUID,
    /// and of the target: what a rescue map is tied to.
    pub source_id: String,
    pub target_id: String,
    pub source_bytes: u64,
    pub target_bytes: u64,
    pub logical_sector: u32,
    /// Bytes at the start written last (sector 0 and the primary GPT).
    pub head_bytes: u64,
    pub regions: Vec<Region>,
    /// Bytes the regions cover.
    pub copy_bytes: u64,
    pub notes: Vec<String>,
    #[serde(skip)]
    pub gpt: Option<RelocatedGpt>,
}

fn check_sectors(src: &Disk, tgt: &Disk) -> Result<()> {
    ensure!(
        tgt.logical_sector == src.logical_sector,
        "target {} has {}-byte sectors but source {} has {}; a clone cannot convert (use migrate)",
        tgt.describe(),
        tgt.logical_sector,
        src.describe(),
        src.logical_sector
    );
    Ok(())
}

fn head_of(src: &Disk, gpt: &Option<RelocatedGpt>) -> u64 {
    gpt.as_ref().map(|g| g.primary_end_bytes()).unwrap_or(src.logical_sector as u64)
}

/// Plan an exact clone of `src` (whose primary GPT, if any, is `gpt`) onto `tgt`.
pub fn plan_exact(src: &Disk, gpt: Option<&RawGpt>, tgt: &Disk) -> Result<ClonePlan> {
    ensure!(
        tgt.size_bytes >= src.size_bytes,
        "target {} is smaller than source {} ({} < {} bytes); an exact clone needs at least the source's size (use smart mode or migrate)",
        tgt.describe(),
        src.describe(),
        tgt.size_bytes,
        src.size_bytes
    );
    check_sectors(src, tgt)?;
    let gpt = gpt.map(|g| g.relocate(tgt.size_bytes)).transpose().context("fitting the source's GPT to the target")?;
    let head_bytes = head_of(src, &gpt);
    let regions = vec![Region { start: head_bytes, len: src.size_bytes - head_bytes, what: "everything after the partition table".into() }];
    Ok(finish(Mode::Exact, src, tgt, head_bytes, regions, Vec::new(), gpt))
}

fn finish(mode: Mode, src: &Disk, tgt: &Disk, head_bytes: u64, mut regions: Vec<Region>, notes: Vec<String>, gpt: Option<RelocatedGpt>) -> ClonePlan {
    regions.retain(|r| r.len > 0);
    regions.sort_by_key(|r| r.start);
    let copy_bytes = regions.iter().map(|r| r.len).sum();
    ClonePlan {
        mode,
        source: src.describe(),
        target: tgt.describe(),
        source_id: format!("{} table={}", src.stable_identity(), src.disk_guid.as_deref().unwrap_or("-")),
        target_id: tgt.stable_identity(),
        source_bytes: src.size_bytes,
        target_bytes: tgt.size_bytes,
        logical_sector: src.logical_sector,
        head_bytes,
        regions,
        copy_bytes,
        notes,
        gpt,
    }
}

/// Plan a smart clone: the partition table, the area before the first partition (boot code),
/// and per partition what its filesystem uses (`uses`; a partition missing there is copied
/// whole). Partitions keep their offsets, so the target must reach the last partition's end.
///
/// Partitions that overlap make every used-block map suspect (one filesystem's free space is
/// another's data): the plan falls back to an exact clone, with a note, or is refused when
/// the target is smaller than the source.
pub fn plan_smart(src: &Disk, gpt: Option<&RawGpt>, tgt: &Disk, uses: &[PartitionUse]) -> Result<ClonePlan> {
    check_sectors(src, tgt)?;
    if src.partitions.is_empty() {
        bail!("source {} has no partition table sysclone understands; use --mode exact", src.describe());
    }
    if let Some(why) = overlap(src) {
        ensure!(tgt.size_bytes >= src.size_bytes, "source {}: {why}; its used blocks cannot be trusted, and an exact copy needs a target of at least {} bytes", src.describe(), src.size_bytes);
        let mut plan = plan_exact(src, gpt, tgt)?;
        plan.notes.push(format!("{why}: the filesystems' maps cannot be trusted, every byte is copied"));
        return Ok(plan);
    }
    let lbs = src.logical_sector as u64;
    let last_end = src.partitions.iter().map(|p| p.start_bytes + p.size_bytes).max().unwrap_or(0);
    let backup_room = if gpt.is_some() { 33 * 512u64.max(lbs) } else { 0 };
    ensure!(
        tgt.size_bytes >= last_end + backup_room,
        "target {} ({} bytes) ends before the source's last partition ({} bytes); choose a larger disk or migrate to shrink",
        tgt.describe(),
        tgt.size_bytes,
        last_end + backup_room
    );
    let gpt = gpt.map(|g| g.relocate(tgt.size_bytes)).transpose().context("fitting the source's GPT to the target")?;
    let head_bytes = head_of(src, &gpt);
    let first = src.partitions.iter().map(|p| p.start_bytes).min().unwrap_or(head_bytes);
    let mut regions = vec![Region { start: head_bytes, len: first.saturating_sub(head_bytes), what: "boot area before the first partition".into() }];
    let mut notes = Vec::new();
    for p in &src.partitions {
        let what = |kind: &str| format!("partition {} ({}, {})", p.number, p.type_name, kind);
        match uses.iter().find(|u| u.number == p.number) {
            Some(u) if !u.whole => {
                let mut n = 0;
                for &(s, l) in &u.extents {
                    ensure!(s.checked_add(l).is_some_and(|e| e <= p.size_bytes), "partition {}: used extent {s}+{l} lies outside the partition", p.number);
                    // Round out to whole sectors.
                    let a = s / lbs * lbs;
                    let b = (s + l).div_ceil(lbs) * lbs;
                    regions.push(Region { start: p.start_bytes + a, len: b.min(p.size_bytes) - a, what: what(&u.fs) });
                    n += 1;
                }
                notes.push(format!("partition {}: {}, {} used in {n} extents of {}", p.number, u.fs, human_bytes(u.extents.iter().map(|e| e.1).sum()), human_bytes(p.size_bytes)));
            }
            Some(u) => {
                regions.push(Region { start: p.start_bytes, len: p.size_bytes, what: what(&u.fs) });
                notes.push(format!("partition {}: whole ({})", p.number, u.note.clone().unwrap_or_else(|| u.fs.clone())));
            }
            None => {
                regions.push(Region { start: p.start_bytes, len: p.size_bytes, what: what("not analysed") });
                notes.push(format!("partition {}: whole (not analysed)", p.number));
            }
        }
    }
    // Merge touching or overlapping regions.
    regions.sort_by_key(|r| r.start);
    let mut merged: Vec<Region> = Vec::new();
    for r in regions.into_iter().filter(|r| r.len > 0) {
        match merged.last_mut() {
            Some(m) if m.start + m.len >= r.start && m.what == r.what => m.len = (r.start + r.len).max(m.start + m.len) - m.start,
            _ => merged.push(r),
        }
    }
    Ok(finish(Mode::Smart, src, tgt, head_bytes, merged, notes, gpt))
}

/// Two partitions of `src` that share bytes, in words.
fn overlap(src: &Disk) -> Option<String> {
    let mut parts: Vec<_> = src.partitions.iter().map(|p| (p.start_bytes, p.start_bytes.saturating_add(p.size_bytes), p.number)).collect();
    parts.sort();
    parts.windows(2).find(|w| w[1].0 < w[0].1).map(|w| format!("partitions {} and {} overlap", w[0].2, w[1].2))
}

impl ClonePlan {
    /// The plan as a person reads it before confirming.
    pub fn show(&self) -> String {
        let mode = match self.mode {
            Mode::Exact => "exact clone (every byte)",
            Mode::Smart => "smart clone (used blocks only)",
        };
        let mut s = format!(
            "{mode}\n  source: {}\n  target: {}  (everything on it is overwritten)\n  copy:   {} ({} bytes) of {}\n",
            self.source,
            self.target,
            human_bytes(self.copy_bytes),
            self.copy_bytes,
            human_bytes(self.source_bytes)
        );
        for n in &self.notes {
            s.push_str(&format!("          {n}\n"));
        }
        if self.mode == Mode::Smart {
            let ranges: Vec<(u64, u64)> = self.regions.iter().map(|r| (r.start, r.len)).collect();
            let (requests, gaps) = merged_cost(&ranges, MERGE_GAP);
            if gaps > 0 {
                s.push_str(&format!("  reads:  {} ranges as {requests}: free gaps of at most {} between them go along (+{})\n", ranges.len(), human_bytes(MERGE_GAP), human_bytes(gaps)));
            }
        }
        match &self.gpt {
            Some(g) => s.push_str(&format!("  GPT:    kept entry for entry; backup header moved to LBA {} (target end); primary written last\n", g.backup_header_lba)),
            None => s.push_str("  table:  no GPT; sector 0 (MBR and boot code) written last\n"),
        }
        if self.target_bytes > self.source_bytes {
            s.push_str(&format!("  unused: {} at the end of the target stay as they are\n", human_bytes(self.target_bytes - self.source_bytes)));
        }
        s
    }
}
