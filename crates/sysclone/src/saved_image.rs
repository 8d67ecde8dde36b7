//! `sysclone image verify|info|export`: thin glue over `sysclone-imagefile`.

use std::path::Path;

use anyhow::Result;
use sysclone_imagefile::{info_text, Image};
use sysclone_init::console::{progress_printer, say};

pub fn verify(dir: &Path, json: bool, policy: &sysclone_net::trust::Policy) -> Result<()> {
    let img = if policy.wants_signature() { Image::open_lenient_trusted(dir, policy)? } else { Image::open_lenient(dir)? };
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
    if let Some(t) = &r.trust {
        say(&format!("manifest: {t}; every chunk's SHA-256 is in it, so the signature covers the whole image"));
    }
    Ok(())
}

/// Sign the image's manifest with the `minisign` tool (which asks for the key's password on
/// the terminal, unless the key has none): `manifest.json.minisig` beside it.
pub fn sign(dir: &Path, key: &Path) -> Result<()> {
    use anyhow::Context;
    let manifest = dir.join(sysclone_imagefile::manifest::MANIFEST);
    let sig = dir.join(sysclone_imagefile::manifest::MANIFEST_SIG);
    let st = std::process::Command::new("minisign")
        .arg("-S")
        .arg("-s")
        .arg(key)
        .arg("-m")
        .arg(&manifest)
        .arg("-x")
        .arg(&sig)
        .arg("-t")
        .arg(format!("timestamp:{} sysclone image manifest sha256:{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0), sysclone_net::http::sha256_hex(&std::fs::read(&manifest).with_context(|| format!("reading {}", manifest.display()))?)))
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| if e.kind() == std::io::ErrorKind::NotFound { anyhow::anyhow!("the minisign tool is not installed (Debian: apt install minisign)") } else { anyhow::anyhow!(e) })
        .with_context(|| format!("the image {} is saved but not signed", dir.display()))?;
    anyhow::ensure!(st.success(), "minisign could not sign {} ({st}); the image is saved but not signed", manifest.display());
    say(&format!("signed: {} (minisign key {})", sig.display(), key.display()));
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
            let sig = img.source.read_small(sysclone_imagefile::manifest::MANIFEST_SIG, sysclone_net::trust::MAX_SIG_BYTES).ok().flatten();
            o.insert("signed".into(), sig.is_some().into());
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
