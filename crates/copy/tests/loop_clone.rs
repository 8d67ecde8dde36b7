//! Exact clones between real loop devices, with filesystems made by their own mkfs and
//! checked by their own fsck. Needs root (losetup); fails, never skips, without it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sysclone_disk::{discover, open_source, open_target, GuardContext, Roots, Rule, Selector};

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Loop(String);
impl Loop {
    fn new(img: &Path, sector: u32) -> Loop {
        let dev = run("losetup", &["--find", "--show", "--sector-size", &sector.to_string(), img.to_str().unwrap()]).trim().to_string();
        Loop(dev)
    }
}
impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

fn require_root() {
    assert!(nix_is_root(), "these tests need root for loop devices (run scripts/test as root)");
}
fn nix_is_root() -> bool {
    fs::read_to_string("/proc/self/status").unwrap().lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

/// A GPT disk image with an ESP (FAT32) and an ext4 root holding known files.
fn make_source(dir: &Path, sector: u32) -> PathBuf {
    let img = dir.join("src.img");
    run("truncate", &["-s", "96M", img.to_str().unwrap()]);
    // sgdisk works on the loop device so that it sees the sector size.
    let l = Loop::new(&img, sector);
    run("sgdisk", &["-n", "1:1M:+40M", "-t", "1:ef00", "-c", "1:ESP", "-n", "2:0:0", "-t", "2:8300", "-c", "2:root", &l.0]);
    run("partx", &["-u", &l.0]);
    let p1 = format!("{}p1", l.0);
    let p2 = format!("{}p2", l.0);
    for _ in 0..50 {
        if Path::new(&p2).exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let content = dir.join("content");
    fs::create_dir_all(content.join("etc")).unwrap();
    fs::write(content.join("etc/hostname"), "fixture\n").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    fs::write(content.join("big.bin"), big).unwrap();
    run("mkfs.fat", &["-F", "32", "-S", &sector.to_string(), "-n", "ESP", &p1]);
    run("mkfs.ext4", &["-q", "-F", "-b", "4096", "-d", content.to_str().unwrap(), "-L", "root", &p2]);
    drop(l);
    img
}

fn clone_case(sector: u32) {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let src_img = make_source(t.path(), sector);
    let tgt_img = t.path().join("tgt.img");
    run("truncate", &["-s", "160M", tgt_img.to_str().unwrap()]);
    // Garbage on the target first, so the test sees that everything was written.
    run("dd", &["if=/dev/urandom", &format!("of={}", tgt_img.display()), "bs=1M", "count=160", "conv=notrunc", "status=none"]);
    let src_hash_before = run("sha256sum", &[src_img.to_str().unwrap()]);

    let src = Loop::new(&src_img, sector);
    let tgt = Loop::new(&tgt_img, sector);
    let roots = Roots::default();
    let disks = discover(&roots).unwrap();
    let dev = Path::new("/dev");
    let s = Selector::parse(&src.0).unwrap().select(&disks, &[], dev).unwrap().clone();
    let d = Selector::parse(&tgt.0).unwrap().select(&disks, &[], dev).unwrap().clone();
    assert_eq!(s.table, "gpt");
    assert_eq!(s.logical_sector, sector);

    let ctx = GuardContext { source: Some(s.clone()), ..Default::default() };
    // The guard refuses the source as a target.
    let e = open_target(&s, &ctx, s.size_bytes, Some(sector)).unwrap_err();
    assert_eq!(e.downcast_ref::<sysclone_disk::Refusal>().unwrap().rule, Rule::Source);

    let sh = open_source(&s).unwrap();
    let th = open_target(&d, &ctx, s.size_bytes, Some(sector)).unwrap();
    let mut f = sh.file.try_clone().unwrap();
    let gpt = sysclone_layout::read_gpt(&mut f, sector, s.size_bytes).unwrap();
    let plan = sysclone_copy::plan_exact(&s, gpt.as_ref(), &d).unwrap();
    assert!(plan.show().contains("exact clone"));
    let mut calls = 0;
    let report = sysclone_copy::execute_exact(&plan, &sh.file, &th.file, &mut |_, _| calls += 1).unwrap();
    assert!(report.verified && calls > 0);
    drop(th);
    drop(sh);
    drop(src);
    drop(tgt);

    // Source untouched.
    assert_eq!(run("sha256sum", &[src_img.to_str().unwrap()]), src_hash_before);
    // Bytes equal except the GPT headers and the protective MBR's size field.
    let a = fs::read(&src_img).unwrap();
    let b = fs::read(&tgt_img).unwrap();
    let l = sector as usize;
    assert_eq!(a[..446 + 12], b[..446 + 12], "boot code and MBR start");
    assert_eq!(a[2 * l..], b[2 * l..a.len()], "everything after the primary header");
    assert_ne!(a[l..2 * l], b[l..2 * l], "primary header rewritten for the target");
    // The target's GPT is valid for its own size.
    let tgt = Loop::new(&tgt_img, sector);
    let v = run("sgdisk", &["-v", &tgt.0]);
    assert!(v.contains("No problems found"), "sgdisk -v: {v}");
    run("partx", &["-u", &tgt.0]);
    let p2 = format!("{}p2", tgt.0);
    for _ in 0..50 {
        if Path::new(&p2).exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    run("e2fsck", &["-fn", &p2]);
    run("fsck.fat", &["-n", &format!("{}p1", tgt.0)]);
}

#[test]
fn exact_clone_512_on_loop_devices() {
    clone_case(512);
}

#[test]
fn exact_clone_4096_on_loop_devices() {
    clone_case(4096);
}

#[test]
fn too_small_target_is_refused_and_untouched() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let src_img = make_source(t.path(), 512);
    let tgt_img = t.path().join("small.img");
    run("truncate", &["-s", "64M", tgt_img.to_str().unwrap()]);
    run("dd", &["if=/dev/urandom", &format!("of={}", tgt_img.display()), "bs=1M", "count=64", "conv=notrunc", "status=none"]);
    let before = run("sha256sum", &[tgt_img.to_str().unwrap()]);
    let src = Loop::new(&src_img, 512);
    let tgt = Loop::new(&tgt_img, 512);
    let disks = discover(&Roots::default()).unwrap();
    let dev = Path::new("/dev");
    let s = Selector::parse(&src.0).unwrap().select(&disks, &[], dev).unwrap().clone();
    let d = Selector::parse(&tgt.0).unwrap().select(&disks, &[], dev).unwrap().clone();
    let ctx = GuardContext { source: Some(s.clone()), ..Default::default() };
    let e = open_target(&d, &ctx, s.size_bytes, Some(512)).unwrap_err();
    assert_eq!(e.downcast_ref::<sysclone_disk::Refusal>().unwrap().rule, Rule::TooSmall);
    assert!(e.to_string().contains("choose a larger disk"), "{e}");
    assert!(sysclone_copy::plan_exact(&s, None, &d).is_err());
    drop(tgt);
    drop(src);
    assert_eq!(run("sha256sum", &[tgt_img.to_str().unwrap()]), before);
}
