//! Firmware for the chosen modules: every `firmware=` file a module names (its
//! `MODULE_FIRMWARE`), looked up in firmware directories (an unpacked Debian firmware package,
//! the build host's `/lib/firmware`, …) as `NAME`, `NAME.xz` or `NAME.zst`, and put into the
//! image uncompressed at `lib/firmware/NAME`, where the kernel's direct loader finds it.
//! Files no directory has are listed as missing (many are optional: drivers name every
//! revision they can use).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Result};
use serde::Serialize;

use crate::decompress::Packed;
use crate::fnmatch::fnmatch;

/// One firmware file for the image.
#[derive(Debug, Clone, Serialize)]
pub struct FirmwareFile {
    /// Path below `lib/firmware`, as the module names it.
    pub name: String,
    /// Where it was found (possibly compressed).
    pub source: PathBuf,
    /// Size on the build host (before unpacking).
    pub source_size: u64,
    /// The modules that name it.
    pub wanted_by: Vec<String>,
}

/// What [`collect`] found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FirmwareSet {
    /// Files found, sorted by name.
    pub files: Vec<FirmwareFile>,
    /// (name, modules) of files no directory has.
    pub missing: Vec<(String, Vec<String>)>,
}

fn check_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('/') && name.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

fn find_one(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    for d in dirs {
        for suffix in ["", ".xz", ".zst"] {
            let p = d.join(format!("{name}{suffix}"));
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Names under `dir` matching the glob `pattern` (a few modules name firmware with `*`).
fn glob_names(dirs: &[PathBuf], pattern: &str) -> Vec<String> {
    let (sub, _) = pattern.rsplit_once('/').unwrap_or(("", pattern));
    let mut out = Vec::new();
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(d.join(sub)) else { continue };
        for e in rd.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            let plain = Packed::from_name(&file).map(|p| file.trim_end_matches(p.suffix()).to_string()).unwrap_or(file);
            let rel = if sub.is_empty() { plain } else { format!("{sub}/{plain}") };
            if fnmatch(pattern, &rel) && !out.contains(&rel) {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

/// The firmware files `modules` (name, `firmware=` entries) need, found in `dirs` (searched
/// in order, the first hit wins).
pub fn collect<'a>(modules: impl IntoIterator<Item = (&'a str, &'a [String])>, dirs: &[PathBuf]) -> Result<FirmwareSet> {
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (m, names) in modules {
        for n in names {
            let n = n.trim();
            ensure!(check_name(n), "module {m} names firmware {n:?}, which is not a relative path");
            let names = if n.contains(['*', '?', '[']) { glob_names(dirs, n) } else { vec![n.to_string()] };
            for n in names {
                let v = wanted.entry(n).or_default();
                if !v.iter().any(|x| x == m) {
                    v.push(m.to_string());
                }
            }
        }
    }
    let mut set = FirmwareSet::default();
    for (name, mods) in wanted {
        match find_one(dirs, &name) {
            Some(p) => {
                let source_size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                set.files.push(FirmwareFile { name, source: p, source_size, wanted_by: mods });
            }
            None => set.missing.push((name, mods)),
        }
    }
    Ok(set)
}

/// Default firmware directories for a kernel: `lib/firmware` of an unpacked kernel package
/// root (when `kernel_root` is given and has one), then the build host's `/lib/firmware`.
pub fn default_dirs(kernel_root: Option<&Path>) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(r) = kernel_root {
        let d = r.join("lib/firmware");
        if d.is_dir() {
            v.push(d);
        }
    }
    if Path::new("/lib/firmware").is_dir() {
        v.push(PathBuf::from("/lib/firmware"));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_plain_and_packed_in_order() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(a.path().join("rtl_nic")).unwrap();
        std::fs::create_dir_all(b.path().join("rtl_nic")).unwrap();
        std::fs::write(a.path().join("rtl_nic/one.fw"), b"A1").unwrap();
        std::fs::write(b.path().join("rtl_nic/one.fw"), b"B1").unwrap();
        std::fs::write(b.path().join("rtl_nic/two.fw.xz"), b"xz").unwrap();
        std::fs::write(b.path().join("tg3.bin"), b"t").unwrap();
        let names1 = ["rtl_nic/one.fw".to_string(), "rtl_nic/two.fw".to_string(), "rtl_nic/three.fw".to_string()];
        let names2 = ["rtl_nic/one.fw".to_string(), "tg*.bin".to_string()];
        let set = collect([("r8169", &names1[..]), ("r8152", &names2[..])], &[a.path().to_path_buf(), b.path().to_path_buf()]).unwrap();
        let got: Vec<(&str, &Path)> = set.files.iter().map(|f| (f.name.as_str(), f.source.as_path())).collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], ("rtl_nic/one.fw", a.path().join("rtl_nic/one.fw").as_path()));
        assert_eq!(set.files[0].wanted_by, ["r8169", "r8152"]);
        assert_eq!(got[1], ("rtl_nic/two.fw", b.path().join("rtl_nic/two.fw.xz").as_path()));
        assert_eq!(got[2].0, "tg3.bin");
        assert_eq!(set.missing, vec![("rtl_nic/three.fw".to_string(), vec!["r8169".to_string()])]);
        let bad = ["../etc/passwd".to_string()];
        assert!(collect([("evil", &bad[..])], &[]).is_err());
    }
}
