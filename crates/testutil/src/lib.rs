//! Helpers for host tests that use real loop devices and the filesystems' own tools.
//! Tests that need root fail with a message when run without it; they never skip.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Run a command; panic with its output if it fails. Returns stdout.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// SHA-256 of a file, via sha256sum.
pub fn sha256(path: &Path) -> String {
    run("sha256sum", &[path.to_str().expect("utf-8 path")]).split_whitespace().next().unwrap_or_default().to_string()
}

/// Panic unless running as root.
pub fn require_root() {
    let root = fs::read_to_string("/proc/self/status").unwrap_or_default().lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    assert!(root, "this test needs root for loop devices (run scripts/test as root)");
}

/// A loop device over an image file, detached on drop.
pub struct Loop(pub String);

impl Loop {
    pub fn new(img: &Path, sector: u32) -> Loop {
        Self::with_args(img, &["--sector-size", &sector.to_string()])
    }

    pub fn with_args(img: &Path, extra: &[&str]) -> Loop {
        let mut args = vec!["--find", "--show"];
        args.extend_from_slice(extra);
        let p = img.to_str().expect("utf-8 path");
        args.push(p);
        Loop(run("losetup", &args).trim().to_string())
    }

    /// Detach now (the device number may be reused at once by someone else).
    pub fn detach(self) {
        run("losetup", &["-d", &self.0]);
        std::mem::forget(self);
    }

    /// Kernel name, e.g. `loop3`.
    pub fn name(&self) -> &str {
        self.0.trim_start_matches("/dev/")
    }

    /// Partition `n`'s device node, after asking the kernel to scan and waiting for it.
    pub fn part(&self, n: u32) -> String {
        let p = format!("{}p{n}", self.0);
        let _ = Command::new("partx").args(["-u", &self.0]).status();
        for _ in 0..100 {
            if Path::new(&p).exists() {
                return p;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{p} did not appear");
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

/// A GPT disk image of `size` (e.g. "96M") with an ESP (FAT32, 40 MiB) and an ext4 root
/// filling the rest, holding a few known files. Returns the image path.
pub fn make_gpt_disk(dir: &Path, name: &str, size: &str, sector: u32) -> PathBuf {
    let img = dir.join(name);
    run("truncate", &["-s", size, img.to_str().expect("utf-8 path")]);
    let l = Loop::new(&img, sector);
    run("sgdisk", &["-n", "1:1M:+40M", "-t", "1:ef00", "-c", "1:ESP", "-n", "2:0:0", "-t", "2:8300", "-c", "2:root", &l.0]);
    let p1 = l.part(1);
    let p2 = l.part(2);
    let content = dir.join(format!("{name}.content"));
    fs::create_dir_all(content.join("etc")).expect("content dir");
    fs::write(content.join("etc/hostname"), "fixture\n").expect("file");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    fs::write(content.join("big.bin"), big).expect("file");
    run("mkfs.fat", &["-F", "32", "-S", &sector.to_string(), "-n", "ESP", &p1]);
    run("mkfs.ext4", &["-q", "-F", "-b", "4096", "-d", content.to_str().expect("utf-8"), "-L", "root", &p2]);
    img
}
