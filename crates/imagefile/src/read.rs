//! Reading an image: opening and checking the manifest, fetching chunks (read, decompress,
//! hash-check — always before anyone may use the bytes), and `verify`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use crate::manifest::{self, sha256_hex, Manifest};
use crate::pool;

/// An image directory with a manifest that passed its checks.
#[derive(Debug, Clone)]
pub struct Image {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Whether `manifest.json.sha256` agrees with the manifest (`None`: the file is missing).
    pub manifest_sum_ok: Option<bool>,
}

impl Image {
    /// Open an image for reading. Unlike [`Image::open_lenient`], a manifest whose checksum
    /// file disagrees is refused: a changed manifest could send bytes anywhere.
    pub fn open(dir: &Path) -> Result<Image> {
        let img = Self::open_lenient(dir)?;
        match img.manifest_sum_ok {
            Some(true) => Ok(img),
            Some(false) => bail!("{}: the manifest does not match {} (it was changed after the save); run `sysclone image verify`", dir.display(), manifest::MANIFEST_SUM),
            None => bail!("{}: {} is missing; the image is incomplete or was changed", dir.display(), manifest::MANIFEST_SUM),
        }
    }

    /// Open an image, noting (not refusing) a checksum mismatch of the manifest.
    pub fn open_lenient(dir: &Path) -> Result<Image> {
        let path = dir.join(manifest::MANIFEST);
        let meta = std::fs::metadata(&path).with_context(|| format!("{}: no {} (not an image, or its save did not finish)", dir.display(), manifest::MANIFEST))?;
        if meta.len() > manifest::MAX_MANIFEST_BYTES {
            bail!("{} is {} bytes, larger than any sysclone writes", path.display(), meta.len());
        }
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let m = Manifest::parse(&text).with_context(|| format!("{}", path.display()))?;
        let sum = std::fs::read_to_string(dir.join(manifest::MANIFEST_SUM)).ok();
        let manifest_sum_ok = sum.map(|s| s.split_whitespace().next() == Some(sha256_hex(&text).as_str()));
        Ok(Image { dir: dir.to_path_buf(), manifest: m, manifest_sum_ok })
    }

    fn data_path(&self, file: u32) -> PathBuf {
        self.dir.join(&self.manifest.data_files[file as usize].name)
    }

    /// Run every chunk through read → decompress → hash check (on all cores, bounded), and
    /// hand `sink` each chunk index with its bytes or the reason they are not usable, in
    /// order. `sink` stops the run by returning an error.
    pub fn for_each_chunk(&self, threads: usize, sink: &mut dyn FnMut(usize, Result<Vec<u8>>) -> Result<()>) -> Result<()> {
        let m = &self.manifest;
        let mut handles: Vec<Option<std::io::Result<File>>> = (0..m.data_files.len()).map(|_| None).collect();
        let mut i = 0usize;
        pool::ordered(
            threads,
            threads * 2 + 2,
            || {
                let c = m.chunks.get(i)?;
                let idx = i;
                i += 1;
                let h = handles[c.file as usize].get_or_insert_with(|| File::open(self.data_path(c.file)));
                let raw = match h {
                    Ok(f) => {
                        let mut buf = vec![0u8; c.compressed_len as usize];
                        match f.read_exact_at(&mut buf, c.file_offset) {
                            Ok(()) => Ok(buf),
                            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                                let have = f.metadata().map(|m| m.len()).unwrap_or(0);
                                Err(anyhow!("{} is {have} bytes, too short for this chunk (truncated?)", m.data_files[c.file as usize].name))
                            }
                            Err(e) => Err(anyhow!(e).context(format!("reading {}", m.data_files[c.file as usize].name))),
                        }
                    }
                    Err(e) => Err(anyhow!("cannot open {}: {e}", m.data_files[c.file as usize].name)),
                };
                Some((idx, raw))
            },
            |(idx, raw): (usize, Result<Vec<u8>>)| {
                let c = &m.chunks[idx];
                let data = raw.and_then(|z| {
                    let d = zstd::bulk::decompress(&z, c.len as usize).map_err(|e| anyhow!("does not decompress ({e})"))?;
                    if d.len() as u64 != c.len {
                        bail!("decompresses to {} bytes, not {}", d.len(), c.len);
                    }
                    let h = sha256_hex(&d);
                    if h != c.sha256 {
                        bail!("SHA-256 mismatch (manifest {}, data {h})", c.sha256);
                    }
                    Ok(d)
                });
                (idx, data.map_err(|e| e.context(m.chunk_place(idx))))
            },
            |(idx, data)| sink(idx, data),
        )
    }

    /// Check everything: the manifest's checksum, the data files' sizes, and every chunk
    /// (read, decompressed, hashed). Reports every problem, not only the first.
    pub fn verify(&self, threads: usize, progress: &mut dyn FnMut(u64, u64)) -> Result<VerifyReport> {
        let m = &self.manifest;
        let mut problems = Vec::new();
        match self.manifest_sum_ok {
            Some(true) => {}
            Some(false) => problems.push(Problem::general(format!("{} does not match {}: the manifest was changed after the save", manifest::MANIFEST, manifest::MANIFEST_SUM))),
            None => problems.push(Problem::general(format!("{} is missing", manifest::MANIFEST_SUM))),
        }
        for (i, f) in m.data_files.iter().enumerate() {
            match std::fs::metadata(self.data_path(i as u32)) {
                Ok(md) if md.len() == f.bytes => {}
                Ok(md) => problems.push(Problem::general(format!("{} is {} bytes, the manifest says {}", f.name, md.len(), f.bytes))),
                Err(e) => problems.push(Problem::general(format!("{} is missing ({e})", f.name))),
            }
        }
        let total = m.stored_bytes();
        let mut done = 0;
        let mut ok = 0;
        self.for_each_chunk(threads, &mut |i, data| {
            let c = &m.chunks[i];
            match data {
                Ok(_) => ok += 1,
                Err(e) => problems.push(Problem { chunk: Some(i), partition: c.partition, disk_offset: Some(c.offset), file: Some(m.data_files[c.file as usize].name.clone()), message: format!("{e:#}") }),
            }
            done += c.len;
            progress(done, total);
            Ok(())
        })?;
        Ok(VerifyReport { image: self.dir.clone(), chunks: m.chunks.len(), chunks_ok: ok, bytes_checked: total, ok: problems.is_empty(), problems })
    }
}

/// One thing wrong with an image.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub chunk: Option<usize>,
    pub partition: Option<u32>,
    pub disk_offset: Option<u64>,
    pub file: Option<String>,
    pub message: String,
}

impl Problem {
    fn general(message: String) -> Problem {
        Problem { chunk: None, partition: None, disk_offset: None, file: None, message }
    }
}

/// What `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub image: PathBuf,
    pub ok: bool,
    pub chunks: usize,
    pub chunks_ok: usize,
    pub bytes_checked: u64,
    pub problems: Vec<Problem>,
}
