//! Image profiles: which kernel modules go into the rescue image. A profile is a text file in
//! `image/profiles/` (the built-in ones are compiled in) or anywhere else:
//!
//! ```text
//! # comment
//! include minimal               # every line of another profile
//! nvme                          # a module name (`-` and `_` are the same) or an alias
//! kernel/drivers/ata/*          # a glob over module paths below lib/modules/RELEASE
//! nls_*                         # a glob over module names
//! !kernel/drivers/scsi/scsi_debug.ko   # leave out what an entry above matched
//! ```
//!
//! Dependencies and soft dependencies are added by [`crate::ModuleIndex::resolve_closure`];
//! firmware named by the chosen modules is added by [`crate::firmware`].

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The profiles compiled into sysclone: (name, text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("minimal", include_str!("../../../image/profiles/minimal.conf")),
    ("generic", include_str!("../../../image/profiles/generic.conf")),
];

/// A profile with its includes expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The name it was asked for by (a built-in name or a path).
    pub name: String,
    /// Module entries and `!` exclusions, in order, includes expanded in place.
    pub entries: Vec<String>,
    /// Every profile read, the asked-for one first (built-in names or paths).
    pub sources: Vec<String>,
}

/// The text of a built-in profile.
pub fn builtin(name: &str) -> Option<&'static str> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Names of the built-in profiles.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}

fn looks_like_path(s: &str) -> bool {
    s.contains('/') || s.ends_with(".conf")
}

/// Loads a profile: `name_or_path` is a built-in name (`minimal`, `generic`) or a file. An
/// `include X` line in a file looks for `X` (or `X.conf`) next to that file first, then among
/// the built-in profiles.
pub fn load(name_or_path: &str) -> Result<Profile> {
    let mut p = Profile { name: name_or_path.to_string(), entries: Vec::new(), sources: Vec::new() };
    let mut stack = Vec::new();
    expand(name_or_path, None, &mut p, &mut stack)?;
    Ok(p)
}

fn read_source(name: &str, dir: Option<&Path>) -> Result<(String, String, Option<PathBuf>)> {
    if let Some(d) = dir {
        for cand in [d.join(name), d.join(format!("{name}.conf"))] {
            if cand.is_file() {
                let text = std::fs::read_to_string(&cand).with_context(|| format!("reading profile {}", cand.display()))?;
                return Ok((cand.display().to_string(), text, cand.parent().map(Path::to_path_buf)));
            }
        }
    }
    if !looks_like_path(name) {
        if let Some(t) = builtin(name) {
            return Ok((name.to_string(), t.to_string(), None));
        }
        if dir.is_none() {
            bail!("unknown profile {name:?}: the built-in profiles are {}; or give a file path", builtin_names().join(", "));
        }
    }
    let path = match dir {
        Some(d) if !Path::new(name).is_absolute() => d.join(name),
        _ => PathBuf::from(name),
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading profile {}", path.display()))?;
    Ok((path.display().to_string(), text, path.parent().map(Path::to_path_buf)))
}

fn expand(name: &str, dir: Option<&Path>, p: &mut Profile, stack: &mut Vec<String>) -> Result<()> {
    let (id, text, own_dir) = read_source(name, dir)?;
    if stack.contains(&id) {
        bail!("profile {id} includes itself (through {})", stack.join(" -> "));
    }
    if stack.len() > 16 {
        bail!("profile includes nested deeper than 16 levels at {id}");
    }
    stack.push(id.clone());
    if !p.sources.contains(&id) {
        p.sources.push(id.clone());
    }
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("include") {
            if rest.starts_with(char::is_whitespace) {
                let inc = rest.trim();
                expand(inc, own_dir.as_deref(), p, stack).with_context(|| format!("{id} line {}: include {inc}", i + 1))?;
                continue;
            }
        }
        if line.split_whitespace().count() != 1 {
            bail!("{id} line {}: one module, alias or glob per line, got {line:?}", i + 1);
        }
        p.entries.push(line.to_string());
    }
    stack.pop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_parse() {
        let m = load("minimal").unwrap();
        for want in ["efivarfs", "vfat", "ext4", "nvme", "ahci", "virtio_blk", "usb_storage", "uas", "fuse", "loop", "sd_mod"] {
            assert!(m.entries.iter().any(|e| e == want), "minimal lacks {want}: {:?}", m.entries);
        }
        let g = load("generic").unwrap();
        assert_eq!(g.sources[0], "generic");
        assert!(g.sources.contains(&"minimal".to_string()), "{:?}", g.sources);
        for want in ["vmd", "e1000e", "r8169", "tg3", "bnx2", "igb", "ixgbe", "virtio_net", "fuse", "loop", "btrfs"] {
            assert!(g.entries.iter().any(|e| e == want), "generic lacks {want}");
        }
        assert!(g.entries.iter().any(|e| e.starts_with('!')));
        let e = format!("{:#}", load("nosuch").unwrap_err());
        assert!(e.contains("minimal, generic"), "{e}");
    }

    #[test]
    fn files_and_includes() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("base.conf"), "# base\nahci\n").unwrap();
        std::fs::write(d.path().join("mine.conf"), "include base\ninclude minimal\nnvme  # comment\n!scsi_debug\n").unwrap();
        let p = load(d.path().join("mine.conf").to_str().unwrap()).unwrap();
        assert_eq!(p.entries[0], "ahci");
        assert!(p.entries.contains(&"efivarfs".to_string()));
        assert_eq!(p.entries[p.entries.len() - 2..], ["nvme".to_string(), "!scsi_debug".to_string()]);
        assert_eq!(p.sources.len(), 3);
        // Cycles and bad lines are errors naming the file and line.
        std::fs::write(d.path().join("a.conf"), "include b\n").unwrap();
        std::fs::write(d.path().join("b.conf"), "include a.conf\n").unwrap();
        let e = format!("{:#}", load(d.path().join("a.conf").to_str().unwrap()).unwrap_err());
        assert!(e.contains("includes itself"), "{e}");
        std::fs::write(d.path().join("c.conf"), "nvme ahci\n").unwrap();
        let e = format!("{:#}", load(d.path().join("c.conf").to_str().unwrap()).unwrap_err());
        assert!(e.contains("line 1"), "{e}");
    }
}
