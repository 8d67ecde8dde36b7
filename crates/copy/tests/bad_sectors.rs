//! Read errors on a real block device (qemu-storage-daemon + blkdebug, exported over FUSE,
//! attached as a loop device): the clone completes, the map lists exactly the failing
//! sectors, everything else is identical, and a resumed run reads only what is missing.

use std::fs;
use std::path::Path;

use sysclone_copy::{ExecOptions, RescueMap, Status};
use sysclone_disk::{discover, open_source, open_target, Disk, GuardContext, Roots, Selector};
use sysclone_testutil::{make_gpt_disk, require_root, run, FaultyDisk, Loop};

fn select(dev: &str) -> Disk {
    let disks = discover(&Roots::default()).unwrap();
    Selector::parse(dev).unwrap().select(&disks, &[], Path::new("/dev")).unwrap().clone()
}

fn clone(src_dev: &str, tgt_dev: &str, map: &Path) -> sysclone_copy::CloneReport {
    let (s, d) = (select(src_dev), select(tgt_dev));
    let sh = open_source(&s).unwrap();
    let ctx = GuardContext { source: Some(s.clone()), ..Default::default() };
    let th = open_target(&d, &ctx, s.size_bytes, Some(512)).unwrap();
    let mut f = sh.file.try_clone().unwrap();
    let gpt = sysclone_layout::read_gpt(&mut f, 512, s.size_bytes).unwrap();
    let plan = sysclone_copy::plan_exact(&s, gpt.as_ref(), &d).unwrap();
    let opts = ExecOptions { verify: true, map: Some(map.to_path_buf()), ..Default::default() };
    sysclone_copy::execute(&plan, &sh.file, &th.file, &opts, &mut |_, _| {}).unwrap()
}

#[test]
fn unreadable_sectors_are_mapped_zeroed_and_resumed() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let src_img = make_gpt_disk(t.path(), "src.img", "96M", 512);
    let tgt_img = t.path().join("tgt.img");
    run("truncate", &["-s", "128M", tgt_img.to_str().unwrap()]);
    run("dd", &["if=/dev/urandom", &format!("of={}", tgt_img.display()), "bs=1M", "count=96", "conv=notrunc", "status=none"]);
    // Two 4 KiB groups (the loop device reads its backing file in pages): one in the ESP,
    // one in the ext4 partition.
    let bad: Vec<u64> = (20480..20488).chain(150000..150008).collect();
    let map = t.path().join("clone.map");

    let report = {
        let faulty = FaultyDisk::new(&src_img, &bad);
        let tgt = Loop::new(&tgt_img, 512);
        clone(faulty.dev(), &tgt.0, &map)
    };
    assert_eq!(report.bad_ranges, vec![(20480 * 512, 4096), (150000 * 512, 4096)]);
    assert_eq!(report.verified, Some(true));
    let m = RescueMap::load(&map).unwrap();
    assert_eq!(m.ranges_with(Status::Bad), report.bad_ranges);
    assert_eq!(m.bytes_with(Status::Finished) + 8192, m.size());

    // Everything but the bad sectors (zeros) and the GPT header is the source's.
    let a = fs::read(&src_img).unwrap();
    let b = fs::read(&tgt_img).unwrap();
    for &(off, len) in &report.bad_ranges {
        let (o, l) = (off as usize, len as usize);
        assert!(b[o..o + l].iter().all(|&x| x == 0), "bad range at {o} not zeroed");
    }
    let mut a2 = a.clone();
    for &(off, len) in &report.bad_ranges {
        a2[off as usize..(off + len) as usize].fill(0);
    }
    assert!(a2[1024..] == b[1024..a.len()], "target differs outside the bad ranges");

    // The disk "recovers" (read it without faults): resuming reads only the 8 KiB missing.
    let report = {
        let src = Loop::with_args(&src_img, &["--read-only"]);
        let tgt = Loop::new(&tgt_img, 512);
        clone(&src.0, &tgt.0, &map)
    };
    assert!(report.bad_ranges.is_empty());
    assert_eq!(report.bytes_read, 8192, "the resumed run read more than what was missing");
    let b = fs::read(&tgt_img).unwrap();
    assert!(a[1024..] == b[1024..a.len()], "after resume the target equals the source");
    assert_eq!(RescueMap::load(&map).unwrap().bytes_with(Status::Finished), a.len() as u64);
}
