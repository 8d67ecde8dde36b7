//! Every rule of the write guard on real loop devices: each refuses with its own message,
//! and nothing is written. Needs root; fails, never skips, without it.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sysclone_disk::{discover, open_target, Disk, GuardContext, Roots, Rule, Selector};
use sysclone_testutil::{make_gpt_disk, require_root, run, sha256, Loop};

/// Loop device numbers are reused at once; tests that detach one run alone.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn select(dev: &str) -> Disk {
    let disks = discover(&Roots::default()).unwrap();
    Selector::parse(dev).unwrap().select(&disks, &[], Path::new("/dev")).unwrap().clone()
}

/// Assert the guard refuses `d` by `rule` with a message containing `words`.
fn refused(d: &Disk, rule: Rule, words: &str) {
    let e = open_target(d, &GuardContext::default(), 1 << 20, None).expect_err("the guard let it through");
    let r = e.downcast_ref::<sysclone_disk::Refusal>().unwrap_or_else(|| panic!("not a refusal: {e:#}"));
    assert_eq!(r.rule, rule, "{r}");
    assert!(r.message.contains(&d.name) && r.message.contains(words), "{r}");
}

fn image(dir: &Path, name: &str) -> PathBuf {
    let img = dir.join(name);
    run("truncate", &["-s", "32M", img.to_str().unwrap()]);
    run("dd", &["if=/dev/urandom", &format!("of={}", img.display()), "bs=1M", "count=32", "conv=notrunc", "status=none"]);
    img
}

#[test]
fn mounted_disk_is_refused() {
    require_root();
    let _alone = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let img = make_gpt_disk(t.path(), "m.img", "96M", 512);
    let l = Loop::new(&img, 512);
    let mnt = t.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    run("mount", &["-o", "ro", &l.part(2), mnt.to_str().unwrap()]);
    let d = select(&l.0);
    let r = std::panic::catch_unwind(|| refused(&d, Rule::Mounted, "unmount it first"));
    run("umount", &[mnt.to_str().unwrap()]);
    r.unwrap();
}

#[test]
fn swap_disk_is_refused() {
    require_root();
    let _alone = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), "s.img");
    let l = Loop::new(&img, 512);
    run("mkswap", &[&l.0]);
    run("swapon", &[&l.0]);
    let d = select(&l.0);
    let r = std::panic::catch_unwind(|| refused(&d, Rule::Swap, "swapoff"));
    run("swapoff", &[&l.0]);
    r.unwrap();
}

#[test]
fn disk_opened_exclusively_elsewhere_is_refused() {
    require_root();
    let _alone = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), "x.img");
    let before = sha256(&img);
    let l = Loop::new(&img, 512);
    let _excl = OpenOptions::new().read(true).custom_flags(nix_o_excl()).open(&l.0).unwrap();
    refused(&select(&l.0), Rule::Held, "busy");
    drop(l);
    assert_eq!(sha256(&img), before);
}

fn nix_o_excl() -> i32 {
    0o200 // O_EXCL on Linux
}

#[test]
fn read_only_disk_is_refused() {
    require_root();
    let _alone = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), "r.img");
    let before = sha256(&img);
    let l = Loop::with_args(&img, &["--read-only"]);
    refused(&select(&l.0), Rule::ReadOnly, "read-only");
    drop(l);
    assert_eq!(sha256(&img), before);
}

#[test]
fn disk_that_changed_since_selection_is_refused() {
    require_root();
    let _alone = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), "c.img");
    let l = Loop::new(&img, 512);
    let d = select(&l.0);
    run("truncate", &["-s", "48M", img.to_str().unwrap()]);
    run("losetup", &["-c", &l.0]);
    let before = sha256(&img);
    refused(&d, Rule::IdentityChanged, "identity changed");
    drop(l);
    assert_eq!(sha256(&img), before);
}

#[test]
fn disk_gone_since_selection_is_refused() {
    require_root();
    let _alone = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), "g.img");
    let before = sha256(&img);
    let l = Loop::new(&img, 512);
    let d = select(&l.0);
    l.detach();
    std::thread::sleep(std::time::Duration::from_millis(200));
    refused(&d, Rule::Gone, "gone");
    assert_eq!(sha256(&img), before);
}
