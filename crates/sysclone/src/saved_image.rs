//! `sysclone image verify|info|export`: thin glue over `sysclone-imagefile`.

use std::path::Path;

use anyhow::Result;
use sysclone_imagefile::{info_text, Image};
use sysclone_init::console::{progress_printer, say};

pub fn verify(dir: &Path, json: bool) -> Result<()> {
    let img = Image::open_lenient(dir)?;
    let mut progress = progress_printer("verify");
    let r = img.verify(sysclone_imagefile::pool::default_threads(), &mut progress)?;
    if json {
        println!("{}", crate::json::doc(&r)?);
    }
    const SHOWN: usize = 50;
    for p in r.problems.iter().take(SHOWN) {
        say(&format!("problem: {}", p.message));
    }
    if r.problems.len() > SHOWN {
        say(&format!("… and {} more problems", r.problems.len() - SHOWN));
    }
    if !r.ok {
        let msg = format!("image {} is damaged: {} problem(s); {} of {} chunks are good", dir.display(), r.problems.len(), r.chunks_ok, r.chunks);
        return Err(sysclone_disk::VerifyFailed(msg).into());
    }
    say(&format!("image {} is good: manifest, {} chunks ({}) read, decompressed and hashed", dir.display(), r.chunks, sysclone_disk::human_bytes(r.bytes_checked)));
    Ok(())
}

pub fn info(dir: &Path, json: bool) -> Result<()> {
    let img = Image::open_lenient(dir)?;
    if json {
        let mut v = serde_json::to_value(&img.manifest)?;
        if let Some(o) = v.as_object_mut() {
            o.remove("chunks");
            o.get_mut("table").and_then(|t| t.as_object_mut()).map(|t| t.remove("head_hex"));
            o.insert("chunk_count".into(), img.manifest.chunks.len().into());
            o.insert("stored_bytes".into(), img.manifest.stored_bytes().into());
            o.insert("compressed_bytes".into(), img.manifest.compressed_bytes().into());
            o.insert("own_compressed_bytes".into(), img.manifest.own_compressed_bytes().into());
            o.insert("shared_bytes".into(), img.manifest.chunks.iter().filter(|c| c.base.is_some()).map(|c| c.len).sum::<u64>().into());
            o.insert("shared_chunks".into(), img.manifest.chunks.iter().filter(|c| c.base.is_some()).count().into());
            o.insert("bases_usable".into(), img.bases.iter().map(|b| b.is_ok()).collect::<Vec<_>>().into());
            o.insert("min_target_bytes".into(), img.manifest.min_target_bytes().into());
            o.insert("manifest_checksum_ok".into(), img.manifest_sum_ok.into());
            // The manifest's own `version` is the image format's (docs/image-format.md).
            o.insert("schema".into(), crate::json::SCHEMA.into());
        }
        println!("{v}");
    } else {
        print!("{}", info_text(&img));
    }
    Ok(())
}

pub fn export(dir: &Path, raw: &Path, json: bool) -> Result<()> {
    let img = Image::open(dir)?;
    let mut progress = progress_printer("export");
    let r = sysclone_imagefile::export_raw(&img, raw, sysclone_imagefile::pool::default_threads(), &mut progress)?;
    say(&format!("wrote {} ({} of data, sparse elsewhere) in {:.1} s", raw.display(), sysclone_disk::human_bytes(r.bytes_written), r.seconds));
    if json {
        println!("{}", crate::json::doc(&r)?);
    }
    Ok(())
}
