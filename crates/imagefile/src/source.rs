//! Where an image's files come from. A reader asks a [`Source`] for `manifest.json`, its
//! checksum file and byte ranges of data files; it never opens paths itself. The local
//! directory ([`DirSource`]) is one implementation; an HTTP(S) client with range requests is
//! another (it only has to answer the same four questions).
//!
//! Names passed in are those the manifest allows (`manifest.json`, `data-NNNNN.zst`) or, for
//! an incremental image's base, a relative location checked by [`check_relative`].

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};

/// Read access to the files of one image.
pub trait Source: Send + Sync + std::fmt::Debug {
    /// Where the image is, for messages (`/mnt/img/monday`, `https://…/monday/`).
    fn location(&self) -> String;
    /// A whole small file (the manifest, its checksum); `Ok(None)` when it does not exist.
    fn read_small(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>>;
    /// The size of a file.
    fn size(&self, name: &str) -> Result<u64>;
    /// Exactly `buf.len()` bytes of `name` at `offset`; a file too short is an error saying so.
    fn read_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> Result<()>;
    /// The image at `rel` (a relative location, as an incremental image names its base),
    /// resolved against this one.
    fn relative(&self, rel: &str) -> Result<Arc<dyn Source>>;
}

/// A relative location as the manifest may hold it: `..`-style steps and plain names separated
/// by `/`, no absolute path, nothing empty.
pub fn check_relative(rel: &str) -> Result<()> {
    if rel.is_empty() || rel.starts_with('/') || rel.contains('\\') || rel.contains('\0') {
        bail!("base location {rel:?} is not a relative path");
    }
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(_) | Component::ParentDir | Component::CurDir => {}
            _ => bail!("base location {rel:?} is not a relative path"),
        }
    }
    Ok(())
}

/// An image in a local directory.
#[derive(Debug)]
pub struct DirSource {
    dir: PathBuf,
    /// Open data files, kept for the next read.
    open: Mutex<Vec<(String, Arc<File>)>>,
}

impl DirSource {
    pub fn new(dir: &Path) -> Arc<DirSource> {
        Arc::new(DirSource { dir: dir.to_path_buf(), open: Mutex::new(Vec::new()) })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, name: &str) -> Result<Arc<File>> {
        let mut open = self.open.lock().map_err(|_| anyhow!("a reader thread panicked"))?;
        if let Some((_, f)) = open.iter().find(|(n, _)| n == name) {
            return Ok(Arc::clone(f));
        }
        let f = Arc::new(File::open(self.dir.join(name)).map_err(|e| anyhow!("cannot open {name}: {e}"))?);
        // A handful of data files at a time is plenty (chunks are read in disk order).
        if open.len() >= 16 {
            open.remove(0);
        }
        open.push((name.to_string(), Arc::clone(&f)));
        Ok(f)
    }
}

impl Source for DirSource {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn read_small(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let path = self.dir.join(name);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(anyhow!(e).context(format!("reading {}", path.display()))),
        };
        if meta.len() > limit {
            bail!("{} is {} bytes, larger than any sysclone writes", path.display(), meta.len());
        }
        Ok(Some(std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?))
    }

    fn size(&self, name: &str) -> Result<u64> {
        let path = self.dir.join(name);
        Ok(std::fs::metadata(&path).map_err(|e| anyhow!("{name} is missing ({e})"))?.len())
    }

    fn read_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> Result<()> {
        let f = self.file(name)?;
        match f.read_exact_at(buf, offset) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                let have = f.metadata().map(|m| m.len()).unwrap_or(0);
                Err(anyhow!("{name} is {have} bytes, too short for this chunk (truncated?)"))
            }
            Err(e) => Err(anyhow!(e).context(format!("reading {name}"))),
        }
    }

    fn relative(&self, rel: &str) -> Result<Arc<dyn Source>> {
        check_relative(rel)?;
        Ok(DirSource::new(&self.dir.join(rel)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_locations() {
        for ok in ["../monday", "base", "./a/b", "../../x"] {
            check_relative(ok).unwrap();
        }
        for bad in ["", "/etc", "a\\b", "a\0b"] {
            assert!(check_relative(bad).is_err(), "{bad:?}");
        }
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f"), b"hello").unwrap();
        let s = DirSource::new(d.path());
        let mut b = [0u8; 3];
        s.read_at("f", 1, &mut b).unwrap();
        assert_eq!(&b, b"ell");
        assert!(format!("{:#}", s.read_at("f", 4, &mut b).unwrap_err()).contains("too short"));
        assert_eq!(s.read_small("nope", 10).unwrap(), None);
        assert!(s.read_small("f", 2).is_err());
        assert_eq!(s.relative("sub").unwrap().location(), d.path().join("sub").display().to_string());
    }
}
