//! Reading an image: opening and checking the manifest, fetching chunks (read, decompress,
//! hash-check — always before anyone may use the bytes), and `verify`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde::Serialize;

use sysclone_net::trust::{Checked, Policy};

use crate::manifest::{self, sha256_hex, BaseRef, Manifest};
use crate::pool;
use crate::source::{DirSource, Source};

/// Read and check `manifest.json` of `source`; also returns its text (for its checksum).
pub fn read_manifest(source: &dyn Source) -> Result<(Manifest, Vec<u8>)> {
    let (text, m) = read_manifest_text(source)?;
    Ok((m?, text))
}

/// The manifest's bytes, and what parsing them gave: a refusal by the trust policy comes
/// before a complaint about the contents of an untrusted manifest.
fn read_manifest_text(source: &dyn Source) -> Result<(Vec<u8>, Result<Manifest>)> {
    let loc = source.location();
    let text = source
        .read_small(manifest::MANIFEST, manifest::MAX_MANIFEST_BYTES)?
        .ok_or_else(|| anyhow!("{loc}: no {} (not an image, or its save did not finish)", manifest::MANIFEST))?;
    let m = Manifest::parse(&text).with_context(|| format!("{loc}/{}", manifest::MANIFEST));
    Ok((text, m))
}

/// Hold the manifest's bytes to `policy`, with its signature file when the policy looks for
/// one. A signature that cannot be fetched (other than missing) is an error, not "unsigned".
fn check_manifest(source: &dyn Source, text: &[u8], policy: &Policy) -> Result<Checked, String> {
    let what = format!("the manifest of image {}", source.location());
    let sig = if policy.wants_signature() {
        source.read_small(manifest::MANIFEST_SIG, sysclone_net::trust::MAX_SIG_BYTES).map_err(|e| format!("{what}: reading {}: {e:#}", manifest::MANIFEST_SIG))?
    } else {
        None
    };
    policy.check(&what, text, sig.as_deref()).map_err(|e| format!("{e:#}"))
}

/// Find a base image and check it is the one referenced: same manifest (by SHA-256), and
/// its data files as large as recorded.
fn resolve_base(source: &dyn Source, b: &BaseRef) -> Result<Arc<dyn Source>> {
    let s = source.relative(&b.location)?;
    let (_, text) = read_manifest(s.as_ref()).with_context(|| format!("base image {}", b.location))?;
    let id = sha256_hex(&text);
    ensure!(id == b.id, "{} holds another image (manifest SHA-256 {id}, expected {})", s.location(), b.id);
    for f in &b.data_files {
        let n = s.size(&f.name).with_context(|| format!("in base image {}", s.location()))?;
        ensure!(n == f.bytes, "{}/{} is {n} bytes, expected {}", s.location(), f.name, f.bytes);
    }
    Ok(s)
}

/// An image with a manifest that passed its checks, and its resolved bases.
#[derive(Debug, Clone)]
pub struct Image {
    /// Where it is, for messages.
    pub location: String,
    pub source: Arc<dyn Source>,
    pub manifest: Manifest,
    /// Whether `manifest.json.sha256` agrees with the manifest (`None`: the file is missing).
    pub manifest_sum_ok: Option<bool>,
    /// One per `manifest.bases`: the base image's files, or why they cannot be used.
    pub bases: Vec<Result<Arc<dyn Source>, String>>,
    /// With a trust policy: how the manifest passed it (signature, pin), or why not.
    pub trust: Option<Result<Checked, String>>,
}

/// A local directory, or an `http(s)://` URL (the client trusts `SYSCLONE_CA` besides the
/// usual roots, see `sysclone_net::Client::from_env`).
pub fn source_for(location: &Path) -> Result<Arc<dyn Source>> {
    match location.to_str().filter(|s| sysclone_net::is_url(s)) {
        Some(url) => Ok(crate::http_source::HttpSource::new(url, sysclone_net::Client::from_env()?)),
        None => Ok(DirSource::new(location)),
    }
}

impl Image {
    /// Open an image in a local directory, refusing a changed manifest or an unusable base.
    pub fn open(dir: &Path) -> Result<Image> {
        Self::open_from(source_for(dir)?)
    }

    /// Open an image for reading. Unlike [`Image::open_lenient`], a manifest whose checksum
    /// file disagrees is refused (a changed manifest could send bytes anywhere), and so is a
    /// base image that is missing or is not the one the image was saved against.
    pub fn open_from(source: Arc<dyn Source>) -> Result<Image> {
        Self::open_trusted_from(source, None)
    }

    /// [`Image::open`] that also holds the manifest to `policy` (its signature
    /// `manifest.json.minisig`, pins) before anything else of the image is read.
    pub fn open_trusted(location: &Path, policy: &Policy) -> Result<Image> {
        Self::open_trusted_from(source_for(location)?, Some(policy))
    }

    fn open_trusted_from(source: Arc<dyn Source>, policy: Option<&Policy>) -> Result<Image> {
        let img = Self::open_inner(source, policy, true)?;
        let loc = &img.location;
        match img.manifest_sum_ok {
            Some(true) => {}
            Some(false) => bail!("{loc}: the manifest does not match {} (it was changed after the save); run `sysclone image verify`", manifest::MANIFEST_SUM),
            None => bail!("{loc}: {} is missing; the image is incomplete or was changed", manifest::MANIFEST_SUM),
        }
        for (b, r) in img.manifest.bases.iter().zip(&img.bases) {
            if let Err(e) = r {
                bail!("{loc}: its base image {} (saved {}) is needed and cannot be used: {e}", b.location, b.created_utc);
            }
        }
        Ok(img)
    }

    /// Open an image in a local directory, noting (not refusing) a checksum mismatch.
    pub fn open_lenient(dir: &Path) -> Result<Image> {
        Self::open_lenient_from(source_for(dir)?)
    }

    /// Open an image, noting (not refusing) a checksum mismatch of the manifest and bases
    /// that cannot be used.
    pub fn open_lenient_from(source: Arc<dyn Source>) -> Result<Image> {
        Self::open_inner(source, None, false)
    }

    /// [`Image::open_lenient`] that also holds the manifest to `policy`, noting the outcome
    /// in [`Image::trust`] (for `image verify --trust`).
    pub fn open_lenient_trusted(location: &Path, policy: &Policy) -> Result<Image> {
        Self::open_inner(source_for(location)?, Some(policy), false)
    }

    /// Read the manifest; with a policy, check it against the policy first (`strict`: a
    /// refusal is the error; else it is noted); then its checksum file and the bases.
    fn open_inner(source: Arc<dyn Source>, policy: Option<&Policy>, strict: bool) -> Result<Image> {
        let location = source.location();
        let (text, m) = read_manifest_text(source.as_ref())?;
        let trust = match policy {
            None => None,
            Some(p) => {
                let r = check_manifest(source.as_ref(), &text, p);
                if strict {
                    r.as_ref().map_err(|e| anyhow!("{e}"))?;
                }
                Some(r)
            }
        };
        let m = m?;
        let sum = source.read_small(manifest::MANIFEST_SUM, 4096).ok().flatten();
        let manifest_sum_ok = sum.map(|s| String::from_utf8_lossy(&s).split_whitespace().next() == Some(sha256_hex(&text).as_str()));
        let bases = m.bases.iter().map(|b| resolve_base(source.as_ref(), b).map_err(|e| format!("{e:#}"))).collect();
        Ok(Image { location, source, manifest: m, manifest_sum_ok, bases, trust })
    }

    /// Read, decompress and hash-check chunk `i`: its bytes, or why they are not usable.
    pub fn read_chunk(&self, i: usize) -> Result<Vec<u8>> {
        let raw = self.read_frame(i);
        self.decode(i, raw)
    }

    fn read_frame(&self, i: usize) -> Result<Vec<u8>> {
        let m = &self.manifest;
        let c = &m.chunks[i];
        let src: &dyn Source = match c.base {
            None => self.source.as_ref(),
            Some(b) => match &self.bases[b as usize] {
                Ok(s) => s.as_ref(),
                Err(e) => bail!("its base image {} cannot be used: {e}", m.bases[b as usize].location),
            },
        };
        let name = &m.files_of(c)[c.file as usize].name;
        let mut buf = vec![0u8; c.compressed_len as usize];
        src.read_at(name, c.file_offset, &mut buf)?;
        Ok(buf)
    }

    fn decode(&self, idx: usize, raw: Result<Vec<u8>>) -> Result<Vec<u8>> {
        let c = &self.manifest.chunks[idx];
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
        data.map_err(|e| e.context(self.manifest.chunk_place(idx)))
    }

    /// Run every chunk through read → decompress → hash check (on all cores, bounded), and
    /// hand `sink` each chunk index with its bytes or the reason they are not usable, in
    /// order. `sink` stops the run by returning an error.
    pub fn for_each_chunk(&self, threads: usize, sink: &mut dyn FnMut(usize, Result<Vec<u8>>) -> Result<()>) -> Result<()> {
        self.for_each_chunk_of(&(0..self.manifest.chunks.len()).collect::<Vec<_>>(), threads, sink)
    }

    /// As [`Image::for_each_chunk`], for the chunks `which` (indexes, in that order).
    pub fn for_each_chunk_of(&self, which: &[usize], threads: usize, sink: &mut dyn FnMut(usize, Result<Vec<u8>>) -> Result<()>) -> Result<()> {
        let mut next = which.iter().copied();
        pool::ordered(
            threads,
            threads * 2 + 2,
            || {
                let idx = next.next()?;
                Some((idx, self.read_frame(idx)))
            },
            |(idx, raw): (usize, Result<Vec<u8>>)| (idx, self.decode(idx, raw)),
            |(idx, data)| sink(idx, data),
        )
    }

    /// Check everything: the manifest's checksum, the data files' sizes, and every chunk
    /// (read, decompressed, hashed). Reports every problem, not only the first.
    pub fn verify(&self, threads: usize, progress: &mut dyn FnMut(u64, u64)) -> Result<VerifyReport> {
        let m = &self.manifest;
        let mut problems = Vec::new();
        if let Some(Err(e)) = &self.trust {
            problems.push(Problem::general(e.clone()));
        }
        match self.manifest_sum_ok {
            Some(true) => {}
            Some(false) => problems.push(Problem::general(format!("{} does not match {}: the manifest was changed after the save", manifest::MANIFEST, manifest::MANIFEST_SUM))),
            None => problems.push(Problem::general(format!("{} is missing", manifest::MANIFEST_SUM))),
        }
        for f in &m.data_files {
            match self.source.size(&f.name) {
                Ok(n) if n == f.bytes => {}
                Ok(n) => problems.push(Problem::general(format!("{} is {n} bytes, the manifest says {}", f.name, f.bytes))),
                Err(e) => problems.push(Problem::general(format!("{e:#}"))),
            }
        }
        for (b, r) in m.bases.iter().zip(&self.bases) {
            match r {
                Ok(_) => {}
                Err(e) => problems.push(Problem::general(format!("base image {} (saved {}): {e}", b.location, b.created_utc))),
            }
        }
        let total = m.stored_bytes();
        let mut done = 0;
        let mut ok = 0;
        self.for_each_chunk(threads, &mut |i, data| {
            let c = &m.chunks[i];
            match data {
                Ok(_) => ok += 1,
                Err(e) => problems.push(Problem { chunk: Some(i), partition: c.partition, disk_offset: Some(c.offset), file: Some(m.files_of(c)[c.file as usize].name.clone()), message: format!("{e:#}") }),
            }
            done += c.len;
            progress(done, total);
            Ok(())
        })?;
        let trust = self.trust.as_ref().and_then(|t| t.as_ref().ok()).map(|c| c.to_string());
        Ok(VerifyReport { image: self.location.clone(), chunks: m.chunks.len(), chunks_ok: ok, bytes_checked: total, ok: problems.is_empty(), trust, problems })
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
    pub image: String,
    pub ok: bool,
    pub chunks: usize,
    pub chunks_ok: usize,
    pub bytes_checked: u64,
    /// With `--trust`: how the manifest passed (signature, pin); a refusal is a problem.
    pub trust: Option<String>,
    pub problems: Vec<Problem>,
}
