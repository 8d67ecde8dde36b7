//! Power cuts and small machines (issue 11): QEMU is killed in the middle of a rescue job's
//! clone, at a different point each time, and the rescue image does its work in 512 MiB of RAM.

use std::fs;
use std::path::Path;

use crate::imaging::images_disk;
use crate::qemu::{Disk, Machine};
use crate::{fsck_partition, line_with, loader_entry, put_on_stick, run, Scene};

/// RAM of every machine here: the smallest the rescue image promises to work in.
const SMALL_MIB: u32 = 512;

fn clone_job(mode: &str) -> String {
    format!("operation = \"clone\"\nmode = \"{mode}\"\nsource = \"serial=SRC1\"\ntarget = \"serial=TGT1\"\nconfirm = \"serial\"\nverify = true\nboot_entry = \"none\"\non_success = \"poweroff\"\non_failure = \"poweroff\"\n")
}

fn has_primary_gpt(img: &Path) -> bool {
    let b = fs::read(img).unwrap();
    &b[512..520] == b"EFI PART"
}

/// Whether `tgt` is a complete clone of `src`: every byte the same over the source's size
/// except the primary header (LBA 1) and the protective MBR's size field, and a GPT that
/// `sgdisk -v` finds no problem with.
fn is_complete_clone(src: &Path, tgt: &Path) -> bool {
    let (s, t) = (fs::read(src).unwrap(), fs::read(tgt).unwrap());
    s[..458] == t[..458] && s[462..512] == t[462..512] && s[1024..] == t[1024..s.len()] && run("sgdisk", &["-v", tgt.to_str().unwrap()]).contains("No problems found")
}

/// The machine is switched off (QEMU killed) as the console shows 20 %, then 60 %, then
/// 100 % of the copy (the read-back, the table and the report follow); each time the rescue
/// job is started again on the same target — the cut ones are resumes too. After every cut:
/// the source is unchanged and the target has no primary GPT, or is a complete clone. The
/// last boot is not cut and ends with a verified, byte-identical clone. (The rescue job keeps
/// no map, so a resume is a fresh clone over what the cut left.)
#[test]
fn power_cuts_mid_clone_leave_no_complete_looking_target() {
    let Scene { work, src, tgt, stick, .. } = Scene::new("rescue", "200M");
    let w = work.path();
    let src_sum = run("sha256sum", &[src.to_str().unwrap()]);
    let blank = run("sha256sum", &[tgt.to_str().unwrap()]);
    put_on_stick(&stick, "sysclone/job.toml", &clone_job("exact"));
    put_on_stick(&stick, "loader/entries/sysclone.conf", &loader_entry("sysclone.job=sysclone/job.toml"));
    let mut cuts = Vec::new();
    for (i, at) in ["copy:  20%", "copy:  60%", "copy: 100%"].into_iter().enumerate() {
        let mut m = Machine::new(w, &format!("cut{i}"));
        m.memory(SMALL_MIB);
        m.usb_boot(&stick);
        m.disk(Disk::nvme(&src, "SRC1"));
        m.disk(Disk::virtio(&tgt, "TGT1"));
        let log = m.run_until(900, Some(at));
        assert!(log.contains(at) && log.contains("job: clone"), "cut {i}: the clone never reached {at:?}:\n{log}");
        assert!(!log.contains("SYSCLONE-RESULT"), "cut {i}: the job ended before the cut:\n{log}");
        assert_eq!(run("sha256sum", &[src.to_str().unwrap()]), src_sum, "cut {i} at {at:?}: the source changed");
        assert_ne!(run("sha256sum", &[tgt.to_str().unwrap()]), blank, "cut {i} at {at:?}: nothing was written before the cut");
        let state = if !has_primary_gpt(&tgt) {
            "no primary GPT"
        } else {
            assert!(is_complete_clone(&src, &tgt), "cut {i} at {at:?}: the target has a primary GPT but is not a complete clone");
            "complete"
        };
        eprintln!("cut {i} at {at:?}: target {state}");
        cuts.push(state);
    }
    // The cuts during the copy must find the target incomplete (a complete one there would
    // mean the cut came too late to test anything).
    assert_eq!(&cuts[..2], ["no primary GPT", "no primary GPT"]);

    let mut m = Machine::new(w, "resume");
    m.memory(SMALL_MIB);
    m.usb_boot(&stick);
    m.disk(Disk::nvme(&src, "SRC1"));
    m.disk(Disk::virtio(&tgt, "TGT1"));
    let log = m.run(900);
    assert!(log.contains("SYSCLONE-RESULT ok") && log.contains("powering off"), "the resumed job did not finish:\n{log}");
    let copied = line_with(&log, "] copied ");
    assert!(copied.contains(", verified"), "{copied}");
    assert_eq!(run("sha256sum", &[src.to_str().unwrap()]), src_sum, "the source changed");
    assert!(is_complete_clone(&src, &tgt), "the resumed clone differs from the source");
    eprintln!("{}", line_with(&log, "memory: worker peak"));
}

/// The rescue image in a machine with 512 MiB of RAM: a smart, verified clone, then a
/// restore of a saved image onto a smaller disk (through the migration planner: the root
/// shrinks, read from the image over the FUSE overlay). Each result is checked on the host
/// (the filesystems' own fsck, sgdisk); the memory the console reports is printed.
#[test]
fn the_rescue_image_clones_and_restores_in_512_mib() {
    let Scene { work, src, tgt, stick, a } = Scene::new("rescue", "200M");
    let w = work.path();
    let src_sum = run("sha256sum", &[src.to_str().unwrap()]);
    put_on_stick(&stick, "sysclone/job.toml", &clone_job("smart"));
    put_on_stick(&stick, "loader/entries/sysclone.conf", &loader_entry("sysclone.job=sysclone/job.toml"));
    let mut m = Machine::new(w, "clone512");
    m.memory(SMALL_MIB);
    m.usb_boot(&stick);
    m.disk(Disk::nvme(&src, "SRC1"));
    m.disk(Disk::virtio(&tgt, "TGT1"));
    let log = m.run(900);
    assert!(log.contains("SYSCLONE-RESULT ok"), "the clone failed in {SMALL_MIB} MiB:\n{log}");
    let copied = line_with(&log, "] copied ");
    assert!(log.contains("smart clone"), "{log}");
    assert!(copied.contains(", verified"), "{copied}");
    let total = line_with(&log, "memory: worker peak");
    eprintln!("clone: {copied}\nclone: {total}");
    assert_eq!(run("sha256sum", &[src.to_str().unwrap()]), src_sum, "the source changed");
    let v = run("sgdisk", &["-v", tgt.to_str().unwrap()]);
    assert!(v.contains("No problems found"), "{v}");
    for (n, fsck) in [(1, &["fsck.fat", "-n"][..]), (2, &["e2fsck", "-fn"][..])] {
        let (ok, out) = fsck_partition(&tgt, n, fsck);
        assert!(ok, "partition {n} of the clone: {out}");
    }

    // The restore: the image of the fixture onto a blank 128 MiB disk (the fixture is 160).
    let images = images_disk(w, &src);
    let small = w.join("small.img");
    run("truncate", &["-s", "128M", small.to_str().unwrap()]);
    let restore_stick = w.join("restore-stick.img");
    fs::copy(a.join("rescue-restore/sysclone-usb.img"), &restore_stick).unwrap();
    let mut m = Machine::new(w, "restore512");
    m.memory(SMALL_MIB);
    m.usb_boot(&restore_stick);
    m.disk(Disk::virtio(&images, "IMAGES1"));
    m.disk(Disk::virtio(&small, "TGT1"));
    let log = m.run(900);
    assert!(log.contains("SYSCLONE-RESULT ok"), "the restore failed in {SMALL_MIB} MiB:\n{log}");
    assert!(log.contains("shrunk"), "no shrink through the planner:\n{log}");
    eprintln!("restore: {}", line_with(&log, "memory: worker peak"));
    let v = run("sgdisk", &["-v", small.to_str().unwrap()]);
    assert!(v.contains("No problems found"), "{v}");
    for (n, fsck) in [(1, &["fsck.fat", "-n"][..]), (2, &["e2fsck", "-fn"][..])] {
        let (ok, out) = fsck_partition(&small, n, fsck);
        assert!(ok, "partition {n} of the restored disk: {out}");
    }
}
