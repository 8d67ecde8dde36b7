//! An image's disk as the migration planner sees a source: partitions with their GPT entry
//! bytes (from the saved table head), filesystems and used blocks (from the manifest). Pure.

use anyhow::{anyhow, ensure, Context, Result};
use sysclone_layout::migrate::{SourceLayout, SourcePart};

use crate::manifest::Manifest;

/// The planner's source layout of the image's disk. `min_size` (how far a filesystem can
/// shrink) is not in the manifest: callers that may shrink fill it in (see `init::restore`).
/// Partitions the image left out (`stored = none`) are listed; callers leave them out.
pub fn source_layout(m: &Manifest) -> Result<SourceLayout> {
    ensure!(m.table.kind == "gpt", "the image's disk has a {} partition table; restoring onto another size or layout needs GPT (restore it as saved with --policy exact)", m.table.kind);
    let lbs = m.source.logical_sector;
    let head = m.head()?;
    let gpt = sysclone_layout::read_gpt(&mut std::io::Cursor::new(&head), lbs, m.source.size_bytes)
        .context("reading the GPT kept in the manifest")?
        .ok_or_else(|| anyhow!("the manifest says GPT but its table head has no GPT header"))?;
    let es = gpt.header.entry_size as usize;
    let mut parts = Vec::new();
    for p in &m.partitions {
        let e = gpt.entries.chunks(es).nth(p.number as usize - 1).filter(|e| e.len() >= 128).ok_or_else(|| anyhow!("partition {} has no entry in the saved GPT", p.number))?;
        let used = p.stored == "used";
        parts.push(SourcePart {
            number: p.number,
            start: p.start,
            size: p.size,
            type_guid: e[0..16].try_into().expect("16 bytes"),
            part_guid: e[16..32].try_into().expect("16 bytes"),
            name_utf16: e[56..128].try_into().expect("72 bytes"),
            attrs: u64::from_le_bytes(e[48..56].try_into().expect("8 bytes")),
            fs: p.fs.as_ref().map(|f| f.kind.clone()).filter(|k| k != "unknown"),
            used_bytes: used.then(|| p.extents.iter().map(|x| x.1).sum()),
            used_end: if used { p.extents.iter().map(|x| x.0 + x.1).max().or(Some(0)) } else { None },
            min_size: None,
            fs_block: None,
        });
    }
    Ok(SourceLayout { logical_sector: lbs, size: m.source.size_bytes, disk_guid: gpt.header.disk_guid, parts })
}
