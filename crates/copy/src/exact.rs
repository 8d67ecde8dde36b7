//! Exact clone: every byte of the source, with the GPT moved to fit the target.
//!
//! Order of writes, so that an interrupted clone never looks complete:
//! 1. the target's old GPT headers (LBA 1 and last LBA) and LBA 0 are zeroed;
//! 2. everything after the primary GPT structures is copied;
//! 3. the backup entry array and backup header are written at the target's end;
//! 4. LBA 0 (boot code, protective MBR resized), the primary header and entries — last.
//!
//! Then the target is read back and compared with what was read from the source.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use serde::Serialize;
use sysclone_disk::{human_bytes, Disk};
use sysclone_layout::{patch_protective_mbr, RawGpt, RelocatedGpt};

use crate::pipeline::{copy_range, hash_range, Progress};

/// What an exact clone will do. Built without touching any disk.
#[derive(Debug, Clone, Serialize)]
pub struct ExactPlan {
    pub source: String,
    pub target: String,
    pub source_bytes: u64,
    pub target_bytes: u64,
    pub logical_sector: u32,
    /// Bytes at the start written last (LBA 0 and primary GPT).
    pub head_bytes: u64,
    #[serde(skip)]
    pub gpt: Option<RelocatedGpt>,
}

/// What an exact clone did.
#[derive(Debug, Clone, Serialize)]
pub struct CloneReport {
    pub source: String,
    pub target: String,
    pub bytes_copied: u64,
    pub seconds: f64,
    pub mib_per_second: f64,
    pub source_sha256: String,
    pub verified: bool,
    pub gpt_relocated: bool,
}

/// Plan an exact clone of `src` (whose primary GPT, if any, is `gpt`) onto `tgt`.
pub fn plan_exact(src: &Disk, gpt: Option<&RawGpt>, tgt: &Disk) -> Result<ExactPlan> {
    ensure!(
        tgt.size_bytes >= src.size_bytes,
        "target {} is smaller than source {} ({} < {} bytes); an exact clone needs at least the source's size (use migrate to shrink)",
        tgt.describe(),
        src.describe(),
        tgt.size_bytes,
        src.size_bytes
    );
    ensure!(
        tgt.logical_sector == src.logical_sector,
        "target {} has {}-byte sectors but source {} has {}; an exact clone cannot convert (use migrate)",
        tgt.describe(),
        tgt.logical_sector,
        src.describe(),
        src.logical_sector
    );
    let gpt = gpt.map(|g| g.relocate(tgt.size_bytes)).transpose().context("fitting the source's GPT to the target")?;
    let head_bytes = gpt.as_ref().map(|g| g.primary_end_bytes()).unwrap_or(src.logical_sector as u64);
    Ok(ExactPlan {
        source: src.describe(),
        target: tgt.describe(),
        source_bytes: src.size_bytes,
        target_bytes: tgt.size_bytes,
        logical_sector: src.logical_sector,
        head_bytes,
        gpt,
    })
}

impl ExactPlan {
    /// The plan as a person reads it before confirming.
    pub fn show(&self) -> String {
        let mut s = format!(
            "exact clone\n  source: {}\n  target: {}  (everything on it is overwritten)\n  copy:   {} ({} bytes), every byte\n",
            self.source,
            self.target,
            human_bytes(self.source_bytes),
            self.source_bytes
        );
        match &self.gpt {
            Some(g) => s.push_str(&format!(
                "  GPT:    kept entry for entry; backup header moved to LBA {} (target end), written last\n",
                g.backup_header_lba
            )),
            None => s.push_str("  table:  no GPT; sector 0 written last\n"),
        }
        if self.target_bytes > self.source_bytes {
            s.push_str(&format!("  unused: {} at the end of the target stay as they are\n", human_bytes(self.target_bytes - self.source_bytes)));
        }
        s.push_str("  verify: the target is read back and compared (SHA-256)\n");
        s
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Run an exact clone plan. `src` must be open read-only, `tgt` through the write guard.
pub fn execute_exact(plan: &ExactPlan, src: &File, tgt: &File, progress: Progress<'_>) -> Result<CloneReport> {
    let t0 = Instant::now();
    let lbs = plan.logical_sector as u64;
    let zero = vec![0u8; lbs as usize];
    // 1. Make the target look blank while it is incomplete.
    for off in [0, lbs, plan.target_bytes - lbs] {
        tgt.write_all_at(&zero, off).with_context(|| format!("clearing the target's old table at byte {off}"))?;
    }
    tgt.sync_all().context("flushing the target")?;
    // 2. The body.
    let body = plan.source_bytes - plan.head_bytes;
    let digest = copy_range(src, tgt, plan.head_bytes, body, progress)?;
    // 3. Backup GPT at the end.
    if let Some(g) = &plan.gpt {
        tgt.write_all_at(&g.entries, g.backup_entries_lba * lbs).context("writing the backup GPT entries")?;
        tgt.write_all_at(&g.backup_header, g.backup_header_lba * lbs).context("writing the backup GPT header")?;
    }
    tgt.sync_all().context("flushing the target")?;
    // 4. The head, last.
    let head = expected_head(plan, src)?;
    tgt.write_all_at(&head, 0).context("writing sector 0 and the primary GPT")?;
    tgt.sync_all().context("flushing the target")?;
    // 5. Verify.
    let mut quiet = |_: u64, _: u64| {};
    let back = hash_range(tgt, plan.head_bytes, body, &mut quiet)?;
    let mut head_back = vec![0u8; head.len()];
    tgt.read_exact_at(&mut head_back, 0).context("reading back the target's head")?;
    let mut ok = back == digest && head_back == head;
    if let Some(g) = &plan.gpt {
        let mut b = vec![0u8; g.backup_header.len()];
        tgt.read_exact_at(&mut b, g.backup_header_lba * lbs)?;
        ok &= b == g.backup_header;
    }
    ensure!(ok, "verification failed: the target does not read back as written (source SHA-256 {})", hex(&digest));
    let seconds = t0.elapsed().as_secs_f64();
    Ok(CloneReport {
        source: plan.source.clone(),
        target: plan.target.clone(),
        bytes_copied: plan.source_bytes,
        seconds,
        mib_per_second: plan.source_bytes as f64 / (1 << 20) as f64 / seconds.max(1e-9),
        source_sha256: hex(&digest),
        verified: true,
        gpt_relocated: plan.gpt.is_some(),
    })
}

/// The first `head_bytes` of the target: the source's, with the protective MBR resized and
/// the primary header replaced.
fn expected_head(plan: &ExactPlan, src: &File) -> Result<Vec<u8>> {
    let mut head = vec![0u8; plan.head_bytes as usize];
    src.read_exact_at(&mut head, 0).context("reading the source's sector 0 and primary GPT")?;
    if let Some(g) = &plan.gpt {
        let lbs = plan.logical_sector as usize;
        patch_protective_mbr(&mut head[..lbs], plan.target_bytes, plan.logical_sector);
        head[lbs..2 * lbs].copy_from_slice(&g.primary_header);
        let e = g.primary_entries_lba as usize * lbs;
        head[e..e + g.entries.len()].copy_from_slice(&g.entries);
    }
    Ok(head)
}
