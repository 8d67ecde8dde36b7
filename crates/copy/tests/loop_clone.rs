//! Exact clones between real loop devices, with filesystems made by their own mkfs and
//! checked by their own fsck. Needs root (losetup); fails, never skips, without it.

use std::fs;
use std::path::Path;

use sysclone_copy::ExecOptions;
use sysclone_disk::{discover, open_source, open_target, Disk, GuardContext, Roots, Rule, Selector};
use sysclone_testutil::{make_gpt_disk, require_root, run, sha256, Loop};

fn select(l: &Loop) -> Disk {
    let disks = discover(&Roots::default()).unwrap();
    Selector::parse(&l.0).unwrap().select(&disks, &[], Path::new("/dev")).unwrap().clone()
}

fn clone_case(sector: u32, target_size: &str) {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let src_img = make_gpt_disk(t.path(), "src.img", "97M", sector);
    let tgt_img = t.path().join("tgt.img");
    run("truncate", &["-s", target_size, tgt_img.to_str().unwrap()]);
    // Garbage on the target first, so the test sees that everything was written.
    run("dd", &["if=/dev/urandom", &format!("of={}", tgt_img.display()), "bs=1M", "count=97", "conv=notrunc", "status=none"]);
    let src_hash_before = sha256(&src_img);

    let src = Loop::new(&src_img, sector);
    let tgt = Loop::new(&tgt_img, sector);
    let s = select(&src);
    let d = select(&tgt);
    assert_eq!((s.table.as_str(), s.logical_sector), ("gpt", sector));

    let ctx = GuardContext { source: Some(s.clone()), ..Default::default() };
    let e = open_target(&s, &ctx, s.size_bytes, Some(sector)).unwrap_err();
    assert_eq!(e.downcast_ref::<sysclone_disk::Refusal>().unwrap().rule, Rule::Source);

    let sh = open_source(&s).unwrap();
    let th = open_target(&d, &ctx, s.size_bytes, Some(sector)).unwrap();
    let mut f = sh.file.try_clone().unwrap();
    let gpt = sysclone_layout::read_gpt(&mut f, sector, s.size_bytes).unwrap();
    let plan = sysclone_copy::plan_exact(&s, gpt.as_ref(), &d).unwrap();
    assert!(plan.show().contains("exact clone"));
    let mut calls = 0;
    let opts = ExecOptions { verify: true, ..Default::default() };
    let report = sysclone_copy::execute(&plan, &sh.file, &th.file, &opts, &mut |_, _| calls += 1).unwrap();
    assert!(report.verified == Some(true) && calls > 0 && report.bad_ranges.is_empty());
    assert_eq!(report.bytes_written, s.size_bytes - plan.head_bytes);
    drop((th, sh, src, tgt));

    assert_eq!(sha256(&src_img), src_hash_before, "the source changed");
    // Bytes equal except the primary GPT header and the protective MBR's size field.
    let a = fs::read(&src_img).unwrap();
    let b = fs::read(&tgt_img).unwrap();
    let l = sector as usize;
    assert_eq!(a[..446 + 12], b[..446 + 12], "boot code and MBR start");
    assert_eq!(a[2 * l..], b[2 * l..a.len()], "everything after the primary header");
    if b.len() > a.len() {
        assert_ne!(a[l..2 * l], b[l..2 * l], "primary header rewritten for the target");
    } else {
        assert!(a == b, "a same-size exact clone is identical byte for byte");
    }
    // The target's GPT is valid for its own size; the filesystems are clean.
    let tgt = Loop::new(&tgt_img, sector);
    let v = run("sgdisk", &["-v", &tgt.0]);
    assert!(v.contains("No problems found"), "sgdisk -v: {v}");
    run("e2fsck", &["-fn", &tgt.part(2)]);
    run("fsck.fat", &["-n", &tgt.part(1)]);
}

#[test]
fn exact_clone_512_on_loop_devices() {
    clone_case(512, "160M");
}

#[test]
fn exact_clone_4096_on_loop_devices() {
    clone_case(4096, "160M");
}

#[test]
fn exact_clone_onto_same_size_odd_length_disk() {
    // 97 MiB is not a multiple of the 4 MiB copy buffer.
    clone_case(512, "97M");
}

#[test]
fn too_small_target_is_refused_and_untouched() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let src_img = make_gpt_disk(t.path(), "src.img", "96M", 512);
    let tgt_img = t.path().join("small.img");
    run("truncate", &["-s", "64M", tgt_img.to_str().unwrap()]);
    run("dd", &["if=/dev/urandom", &format!("of={}", tgt_img.display()), "bs=1M", "count=64", "conv=notrunc", "status=none"]);
    let before = sha256(&tgt_img);
    let src = Loop::new(&src_img, 512);
    let tgt = Loop::new(&tgt_img, 512);
    let (s, d) = (select(&src), select(&tgt));
    let ctx = GuardContext { source: Some(s.clone()), ..Default::default() };
    let e = open_target(&d, &ctx, s.size_bytes, Some(512)).unwrap_err();
    assert_eq!(e.downcast_ref::<sysclone_disk::Refusal>().unwrap().rule, Rule::TooSmall);
    assert!(e.to_string().contains("choose a larger disk"), "{e}");
    assert!(sysclone_copy::plan_exact(&s, None, &d).is_err());
    drop((tgt, src));
    assert_eq!(sha256(&tgt_img), before);
}
