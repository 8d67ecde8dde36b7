//! Helpers for the host tests: loop devices over sparse images, mounts that are undone on
//! drop, external tools. Tests that need root or a tool fail with a message; they never skip.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub use sysclone_testutil::{require_root, run, Loop};

pub fn has_tool(cmd: &str) -> bool {
    sysclone_ident::fs_uuid::find_tool(cmd).is_some()
}

/// Panic unless `cmd` is installed.
pub fn need_tool(cmd: &str, pkg: &str) {
    assert!(
        has_tool(cmd),
        "this test needs `{cmd}`: install the Debian package {pkg} (apt-get install -y {pkg})"
    );
}

/// Run a command; (success, stdout + stderr).
pub fn run_status(cmd: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// `blkid -p` (low-level probe, no cache) value of `tag`, empty if none.
pub fn blkid(dev: &str, tag: &str) -> String {
    let out = Command::new("blkid")
        .args(["-p", "-o", "value", "-s", tag, dev])
        .output()
        .expect("running blkid");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A loop device over a whole image (no partition table).
pub struct Dev(pub Loop);

impl Dev {
    pub fn dev(&self) -> &str {
        &self.0 .0
    }
    pub fn path(&self) -> &Path {
        Path::new(&self.0 .0)
    }
}

/// A sparse image of `size` (truncate syntax) attached as a loop device.
pub fn fs_image(dir: &Path, name: &str, size: &str) -> (PathBuf, Dev) {
    let img = dir.join(name);
    run("truncate", &["-s", size, p(&img)]);
    let l = Loop::with_args(&img, &[]);
    (img, Dev(l))
}

/// A mount, unmounted on drop.
pub struct Mounted {
    pub dir: PathBuf,
}

impl Mounted {
    pub fn new(dev: &str, dir: &Path, opts: &str) -> Mounted {
        fs::create_dir_all(dir).expect("mount point");
        let mut args = vec![dev, p(dir)];
        if !opts.is_empty() {
            args.extend_from_slice(&["-o", opts]);
        }
        run("mount", &args);
        Mounted {
            dir: dir.to_path_buf(),
        }
    }

    /// Takes over a mount made otherwise (e.g. by ntfs-3g).
    pub fn adopt(dir: &Path) -> Mounted {
        Mounted {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// Sets an extended attribute (through Python's os.setxattr; no `attr` package needed).
pub fn set_xattr(path: &Path, name: &str, value: &str) -> bool {
    run_status(
        "python3",
        &[
            "-c",
            "import os,sys; os.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode())",
            p(path),
            name,
            value,
        ],
    )
    .0
}

/// An extended attribute's value (NULs trimmed), through Python's os.getxattr.
pub fn get_xattr(path: &Path, name: &str) -> String {
    run("python3", &["-c", "import os,sys; sys.stdout.write(os.getxattr(sys.argv[1], sys.argv[2]).decode().rstrip(chr(0)))", p(path), name])
}
