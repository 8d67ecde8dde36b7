//! Saved disk images for offline disaster recovery: a directory holding `manifest.json`
//! (format version, source identity, partition table bytes, partitions and filesystems, the
//! chunk list) and `data-NNNNN.zst` files of zstd frames, one per chunk of used blocks.
//! The format is specified in `docs/image-format.md`.
//!
//! - [`plan_save`] / [`save`]: what to store (the smart clone's used blocks) and the writer,
//!   compressing on every core with a bounded queue;
//! - [`Image`]: open and check a manifest, read chunks (every chunk's SHA-256 checked before
//!   its bytes are handed on), [`Image::verify`];
//! - [`plan_restore`] / [`restore`]: onto a disk of at least the image's size, primary GPT
//!   last; [`export_raw`]: a sparse raw disk file.
//!
//! Chunks are hashed with SHA-256 rather than BLAKE3: it is already a workspace dependency
//! (pure Rust, no assembly to build for musl), runs at several hundred MiB/s per core with the
//! CPU's SHA extensions — faster than zstd decompression is the limit on restore anyway — and
//! anyone can check a chunk with `zstd -d | sha256sum` on any rescue system.

pub mod http_source;
pub mod layout;
pub mod manifest;
pub mod pool;
pub mod random;
pub mod read;
pub mod restore;
pub mod save;
pub mod source;

pub use manifest::{Manifest, FORMAT_VERSION};
pub use read::{Image, Problem, VerifyReport};
pub use restore::{describe_source, export_raw, plan_restore, restore, DiskWriter, LostChunk, RestorePlan, Rescue, RestoreReport};
pub use save::{plan_save, save, Piece, SaveOptions, SavePlan, SaveReport};
pub use source::{DirSource, Source};

use sysclone_disk::human_bytes;

/// `image info`: the image as a person reads it.
pub fn info_text(img: &Image) -> String {
    let m = &img.manifest;
    let stored = m.stored_bytes();
    let comp = m.compressed_bytes();
    let mut s = format!(
        "image {}\n  format:  {} version {}, written by sysclone {} on {}{}\n  source:  {}\n  sectors: {} bytes logical, {} physical\n  table:   {}{}\n",
        img.location,
        m.format,
        m.format_version,
        m.tool_version,
        m.created_utc,
        m.host.as_deref().map(|h| format!(" at {h}")).unwrap_or_default(),
        describe_source(img),
        m.source.logical_sector,
        m.source.physical_sector,
        m.table.kind,
        m.table.disk_guid.as_deref().map(|g| format!(", disk GUID {g}")).unwrap_or_default(),
    );
    s.push_str("  #   start        size       type                  name        fs     label        stored\n");
    for p in &m.partitions {
        let fs = p.fs.as_ref();
        s.push_str(&format!(
            "  {:<3} {:<12} {:<10} {:<21} {:<11} {:<6} {:<12} {} ({})\n",
            p.number,
            p.start,
            human_bytes(p.size),
            p.type_name,
            p.name.as_deref().unwrap_or("-"),
            fs.map(|f| f.kind.as_str()).unwrap_or("-"),
            fs.and_then(|f| f.label.as_deref()).unwrap_or("-"),
            human_bytes(p.stored_bytes),
            p.stored
        ));
    }
    s.push_str(&format!(
        "  data:    {} ({stored} bytes) in {} chunks, {} compressed in {} file(s) (zstd level {}), ratio {:.2}\n",
        human_bytes(stored),
        m.chunks.len(),
        human_bytes(comp),
        m.data_files.len(),
        m.compression_level,
        stored as f64 / comp.max(1) as f64
    ));
    if !m.bases.is_empty() {
        let shared: Vec<&manifest::Chunk> = m.chunks.iter().filter(|c| c.base.is_some()).collect();
        let bytes: u64 = shared.iter().map(|c| c.len).sum();
        s.push_str(&format!(
            "  shared:  {} ({:.1} % of the data) in {} chunks lies in base images and is not stored here; this image's own files hold {}\n",
            human_bytes(bytes),
            100.0 * bytes as f64 / stored.max(1) as f64,
            shared.len(),
            human_bytes(m.own_compressed_bytes())
        ));
        for (i, (b, r)) in m.bases.iter().zip(&img.bases).enumerate() {
            let used: u64 = shared.iter().filter(|c| c.base == Some(i as u32)).map(|c| c.len).sum();
            let state = match r {
                Ok(_) => "present".to_string(),
                Err(e) => format!("NOT USABLE: {e}"),
            };
            s.push_str(&format!("  base {i}:  {} (saved {}, manifest {}…): {} referenced; {state}\n", b.location, b.created_utc, &b.id[..12], human_bytes(used)));
        }
    }
    s.push_str(&format!("  restore: needs a disk of at least {} with {}-byte sectors\n", human_bytes(m.min_target_bytes()), m.source.logical_sector));
    let bad = m.unreadable();
    if !bad.is_empty() {
        let list: Vec<String> = bad.iter().take(10).map(|(o, l)| format!("{l} bytes at {o}")).collect();
        s.push_str(&format!("  unreadable on the source (stored as zeros): {}{}\n", list.join(", "), if bad.len() > 10 { ", …" } else { "" }));
    }
    let signed = img.source.read_small(manifest::MANIFEST_SIG, sysclone_net::trust::MAX_SIG_BYTES).ok().flatten().is_some();
    s.push_str(if signed { "  signed:  yes, manifest.json.minisig (`image verify --trust KEY.pub` checks it)\n" } else { "  signed:  no\n" });
    if img.manifest_sum_ok != Some(true) {
        s.push_str("  WARNING: the manifest does not match its checksum file; run `sysclone image verify`\n");
    }
    s
}
