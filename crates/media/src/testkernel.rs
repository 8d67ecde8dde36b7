//! Test helper: locate the Debian kernel tree fetched by `scripts/fetch-kernel`.

use std::path::{Path, PathBuf};

/// A located kernel tree.
pub struct KernelTree {
    /// Unpacked package root (has `boot/` and `lib/modules/`).
    pub root: PathBuf,
    /// `lib/modules/<kver>`.
    pub modules_dir: PathBuf,
    /// Kernel release.
    pub kver: String,
}

fn from_root(root: &Path) -> Option<KernelTree> {
    let lm = root.join("lib/modules");
    let mut kvers: Vec<String> = std::fs::read_dir(&lm)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("kernel").is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    kvers.sort();
    let kver = kvers.pop()?;
    Some(KernelTree {
        root: root.to_path_buf(),
        modules_dir: lm.join(&kver),
        kver,
    })
}

/// Finds the kernel tree at `$SYSCLONE_KERNEL_DIR` (the unpacked package root, or a
/// `lib/modules/<kver>` directory), else `<workspace>/.cache/kernel/linux-image-*`.
/// Panics with a clear message when there is none: tests using it must fail, not pass.
pub fn kernel_tree() -> KernelTree {
    if let Some(dir) = std::env::var_os("SYSCLONE_KERNEL_DIR") {
        let dir = PathBuf::from(dir);
        if let Some(t) = from_root(&dir) {
            return t;
        }
        if dir.join("kernel").is_dir() {
            let kver = dir.file_name().unwrap().to_string_lossy().into_owned();
            let root = dir.ancestors().nth(3).unwrap_or(&dir).to_path_buf();
            return KernelTree {
                root,
                modules_dir: dir,
                kver,
            };
        }
        panic!(
            "SYSCLONE_KERNEL_DIR={} holds no lib/modules/<kver>/kernel tree; run scripts/fetch-kernel",
            dir.display()
        );
    }
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/kernel");
    let mut roots: Vec<PathBuf> = std::fs::read_dir(&cache)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.is_dir()
                        && p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with("linux-image-"))
                })
                .collect()
        })
        .unwrap_or_default();
    roots.sort();
    for r in roots.iter().rev() {
        if let Some(t) = from_root(r) {
            return t;
        }
    }
    panic!(
        "Debian kernel tree not found (looked at $SYSCLONE_KERNEL_DIR and {}/linux-image-*): run scripts/fetch-kernel",
        cache.display()
    );
}
