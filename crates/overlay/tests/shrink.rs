//! Shrink an ext4 filesystem onto a smaller target through the overlay, with the real
//! resize2fs, on loop devices; the source is never written.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;

use sysclone_overlay::{Layers, Overlay};
use sysclone_testutil::{fill_tree, require_root, run, sha256, Loop};

#[test]
fn ext4_shrinks_onto_a_smaller_target_without_writing_the_source() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src.img");
    let tgt = t.path().join("tgt.img");
    run("truncate", &["-s", "160M", src.to_str().unwrap()]);
    run("mkfs.ext4", &["-q", "-F", "-b", "4096", "-L", "root", src.to_str().unwrap()]);
    let mnt = t.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    {
        let l = Loop::new(&src, 512);
        run("mount", &[&l.0, mnt.to_str().unwrap()]);
        // Many directories: the allocator spreads them over the block groups, so there are
        // used blocks beyond the new end.
        for d in 0..12 {
            fill_tree(&mnt.join(format!("d{d}")), 1 << 20, d);
        }
        run("umount", &[mnt.to_str().unwrap()]);
    }
    let before = sha256(&src);
    let digest = |dev: &str| {
        run("mount", &["-o", "ro", dev, mnt.to_str().unwrap()]);
        let out = run("sh", &["-c", &format!("cd {} && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum", mnt.display())]);
        run("umount", &[mnt.to_str().unwrap()]);
        out
    };
    let want = {
        let l = Loop::with_args(&src, &["--read-only"]);
        digest(&l.0)
    };

    // Copy every used block below the new end (what a smart copy does), no more.
    let new_size: u64 = 96 << 20;
    let srcf = File::open(&src).unwrap();
    let map = sysclone_fs::used_map(&srcf, 0, 160 << 20).unwrap();
    assert!(!map.whole && map.extents.iter().any(|e| e.start + e.len > new_size), "test needs used blocks beyond the new end: {:?}", map.note);
    run("truncate", &["-s", &new_size.to_string(), tgt.to_str().unwrap()]);
    let tgtf = OpenOptions::new().read(true).write(true).open(&tgt).unwrap();
    let mut buf = Vec::new();
    for e in &map.extents {
        let end = (e.start + e.len).min(new_size);
        if e.start >= end {
            continue;
        }
        buf.resize((end - e.start) as usize, 0);
        srcf.read_exact_at(&mut buf, e.start).unwrap();
        tgtf.write_all_at(&buf, e.start).unwrap();
    }

    let ov = Overlay::mount(
        Layers { base: Box::new(File::open(&src).unwrap()), base_off: 0, head: tgtf.try_clone().unwrap(), head_off: 0, head_len: new_size, size: 160 << 20 },
        &t.path().join("overlay"),
    )
    .unwrap();
    {
        let l = Loop::new(ov.file(), 512);
        let fsck = std::process::Command::new("e2fsck").args(["-f", "-y", &l.0]).output().unwrap();
        assert!(fsck.status.code().unwrap_or(8) < 4, "e2fsck on the overlay: {}", String::from_utf8_lossy(&fsck.stdout));
        run("resize2fs", &[&l.0, &format!("{}K", new_size >> 10)]);
    }
    let stats = ov.finish().unwrap();
    assert!(stats.bytes_read_base > 0, "nothing was moved from beyond the new end: {stats:?}");

    assert_eq!(sha256(&src), before, "the source was written");
    run("e2fsck", &["-fn", tgt.to_str().unwrap()]);
    let l = Loop::with_args(&tgt, &["--read-only"]);
    assert_eq!(digest(&l.0), want, "files differ after the shrink");
    let info = run("dumpe2fs", &["-h", &l.0]);
    let blocks: u64 = info.lines().find(|l| l.starts_with("Block count:")).unwrap().split_whitespace().last().unwrap().parse().unwrap();
    assert_eq!(blocks * 4096, new_size);
}
