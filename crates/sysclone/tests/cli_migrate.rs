//! `sysclone migrate` on real loop devices: shrink ext4, NTFS and btrfs onto a smaller disk,
//! grow onto a larger one, leave a partition out (and its fstab/crypttab lines), refuse a
//! disk too small and an XFS that would have to shrink — filesystems checked by their own
//! tools, files compared, the source hashed before and after.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sysclone_testutil::{fill_tree, require_root, run, sha256, Loop};

const BIN: &str = env!("CARGO_BIN_EXE_sysclone");

/// Loop tests that attach and detach devices run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A system-like disk: ESP (FAT32), ext4 root with ~120 MiB spread over many directories,
/// swap. Returns the image.
fn system_disk(dir: &Path, size: &str, root_size: &str) -> PathBuf {
    let img = dir.join("src.img");
    run("truncate", &["-s", size, img.to_str().unwrap()]);
    let l = Loop::new(&img, 512);
    run("sgdisk", &["-n", "1:1M:+64M", "-t", "1:ef00", "-c", "1:ESP", "-n", &format!("2:0:+{root_size}"), "-t", "2:8304", "-c", "2:root", "-n", "3:0:+32M", "-t", "3:8200", "-c", "3:swap", &l.0]);
    run("mkfs.fat", &["-F", "32", "-n", "ESP", &l.part(1)]);
    let esp = dir.join("esp");
    fill_tree(&esp, 1 << 20, 7);
    for e in fs::read_dir(&esp).unwrap().flatten() {
        run("mcopy", &["-s", "-i", &l.part(1), e.path().to_str().unwrap(), "::/"]);
    }
    run("mkfs.ext4", &["-q", "-F", "-L", "root", &l.part(2)]);
    let mnt = dir.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    run("mount", &[&l.part(2), mnt.to_str().unwrap()]);
    for d in 0..10 {
        fill_tree(&mnt.join(format!("d{d}")), 4 << 20, d);
    }
    run("umount", &[mnt.to_str().unwrap()]);
    run("mkswap", &["-L", "swap", &l.part(3)]);
    img
}

fn tree_digest(dev: &str, dir: &Path, fat: bool) -> String {
    let d = dir.join(format!("view-{}", dev.trim_start_matches("/dev/")));
    fs::create_dir_all(&d).unwrap();
    if fat {
        run("mcopy", &["-s", "-n", "-i", dev, "::/", d.to_str().unwrap()]);
    } else {
        run("mount", &["-o", "ro", dev, d.to_str().unwrap()]);
    }
    let out = run("sh", &["-c", &format!("cd {} && find . -type f | LC_ALL=C sort | tr '\\n' '\\0' | xargs -0 sha256sum | sha256sum", d.display())]);
    if !fat {
        run("umount", &[d.to_str().unwrap()]);
    }
    out
}

fn migrate(args: &[&str]) -> std::process::Output {
    let mut a = vec!["migrate", "--yes", "--json", "--boot-policy", "none"];
    a.extend_from_slice(args);
    Command::new(BIN).args(&a).output().unwrap()
}

fn block_count(dev: &str) -> u64 {
    let info = run("dumpe2fs", &["-h", dev]);
    let get = |k: &str| -> u64 { info.lines().find(|l| l.starts_with(k)).unwrap().split_whitespace().last().unwrap().parse().unwrap() };
    get("Block count:") * get("Block size:")
}

#[test]
fn shrink_onto_a_smaller_disk() {
    require_root();
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let src_img = system_disk(t.path(), "640M", "500M");
    let before = sha256(&src_img);
    let tgt_img = t.path().join("tgt.img");
    run("truncate", &["-s", "400M", tgt_img.to_str().unwrap()]);
    let src = Loop::with_args(&src_img, &["--read-only"]);
    let (want_esp, want_root) = (tree_digest(&src.part(1), t.path(), true), tree_digest(&src.part(2), t.path(), false));
    let tgt = Loop::new(&tgt_img, 512);
    let out = migrate(&["--source", &src.0, "--target", &tgt.0]);
    assert!(out.status.success(), "migrate failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("shrunk"), "{log}");
    let v = run("sgdisk", &["-v", &tgt.0]);
    assert!(v.contains("No problems found"), "{v}");
    run("fsck.fat", &["-n", &tgt.part(1)]);
    run("e2fsck", &["-fn", &tgt.part(2)]);
    assert!(run("file", &["-s", &tgt.part(3)]).contains("swap"));
    assert_eq!(tree_digest(&tgt.part(1), t.path(), true), want_esp, "ESP files differ");
    assert_eq!(tree_digest(&tgt.part(2), t.path(), false), want_root, "root files differ");
    let part2 = run("blockdev", &["--getsize64", &tgt.part(2)]).trim().parse::<u64>().unwrap();
    assert!(block_count(&tgt.part(2)) <= part2, "the filesystem is larger than its partition");
    drop(src);
    assert_eq!(sha256(&src_img), before, "the source was written");
}

#[test]
fn grow_onto_a_larger_disk_and_leave_out_swap() {
    require_root();
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let src_img = system_disk(t.path(), "400M", "300M");
    // BIOS boot code in sector 0 (a GRUB-style first stage): the clone keeps it.
    let code: Vec<u8> = (0..440u32).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::OpenOptions::new().write(true).open(&src_img).and_then(|f| std::os::unix::fs::FileExt::write_all_at(&f, &code, 0)).unwrap();
    let tgt_img = t.path().join("tgt.img");
    run("truncate", &["-s", "900M", tgt_img.to_str().unwrap()]);
    let src = Loop::with_args(&src_img, &["--read-only"]);
    let want_root = tree_digest(&src.part(2), t.path(), false);
    let tgt = Loop::new(&tgt_img, 512);
    let out = migrate(&["--source", &src.0, "--target", &tgt.0, "--exclude", "3"]);
    assert!(out.status.success(), "migrate failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let v = run("sgdisk", &["-v", &tgt.0]);
    assert!(v.contains("No problems found"), "{v}");
    let table = run("sgdisk", &["-p", &tgt.0]);
    assert!(!table.contains("swap") && !table.contains("  3  "), "swap partition not left out:\n{table}");
    run("e2fsck", &["-fn", &tgt.part(2)]);
    let part2 = run("blockdev", &["--getsize64", &tgt.part(2)]).trim().parse::<u64>().unwrap();
    assert!(part2 > 800 << 20, "root did not take the new space: {part2}");
    assert!(block_count(&tgt.part(2)) > part2 - (8 << 20), "the filesystem was not grown to its partition");
    assert_eq!(tree_digest(&tgt.part(2), t.path(), false), want_root);
    assert!(String::from_utf8_lossy(&out.stderr).contains("boot code (440 bytes) is kept"));
    let mut lba0 = [0u8; 512];
    std::os::unix::fs::FileExt::read_exact_at(&fs::File::open(&tgt_img).unwrap(), &mut lba0, 0).unwrap();
    assert_eq!(&lba0[..440], &code[..], "the boot code of sector 0 was not kept");
    assert_eq!((lba0[450], lba0[510], lba0[511]), (0xEE, 0x55, 0xAA), "protective MBR");
}

/// Migrates `src_img` onto a target of `mib` MiB of random bytes, which must be refused
/// without a byte of the target written; returns stderr.
fn refused(dir: &Path, src_img: &Path, mib: u32) -> String {
    let tgt_img = dir.join("tgt.img");
    run("truncate", &["-s", &format!("{mib}M"), tgt_img.to_str().unwrap()]);
    run("dd", &["if=/dev/urandom", &format!("of={}", tgt_img.display()), "bs=1M", &format!("count={mib}"), "conv=notrunc", "status=none"]);
    let before = sha256(&tgt_img);
    let src = Loop::with_args(src_img, &["--read-only"]);
    let tgt = Loop::new(&tgt_img, 512);
    let out = migrate(&["--source", &src.0, "--target", &tgt.0]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "not refused:\n{err}");
    drop(tgt);
    assert_eq!(sha256(&tgt_img), before, "a refused migration wrote the target");
    err
}

#[test]
fn refuses_a_disk_too_small_and_says_the_minimum() {
    require_root();
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let src_img = system_disk(t.path(), "400M", "300M");
    let err = refused(t.path(), &src_img, 96);
    assert!(err.contains("minimum target size"), "{err}");
}

#[test]
fn ntfs_data_partition_shrinks_onto_a_smaller_disk() {
    require_root();
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    // ESP 40M, ext4 100M, NTFS 80M, swap: 256 MiB in all (crates/testutil).
    let src_img = sysclone_testutil::make_multi_fs_disk(t.path());
    let before = sha256(&src_img);
    let tgt_img = t.path().join("tgt.img");
    run("truncate", &["-s", "220M", tgt_img.to_str().unwrap()]);
    let src = Loop::with_args(&src_img, &["--read-only"]);
    let tgt = Loop::new(&tgt_img, 512);
    let out = migrate(&["--source", &src.0, "--target", &tgt.0, "--grow-part", "3"]);
    assert!(out.status.success(), "migrate failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("ntfs shrunk"), "{log}");
    let v = run("sgdisk", &["-v", &tgt.0]);
    assert!(v.contains("No problems found"), "{v}");
    run("ntfsfix", &["-n", &tgt.part(3)]);
    run("e2fsck", &["-fn", &tgt.part(2)]);
    // Files through ntfs-3g, on both sides.
    let m = t.path().join("m");
    let (a, b) = (m.join("a"), m.join("b"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    run("ntfs-3g", &["-o", "ro", &src.part(3), a.to_str().unwrap()]);
    run("ntfs-3g", &["-o", "ro", &tgt.part(3), b.to_str().unwrap()]);
    let diff = Command::new("diff").args(["-r", a.to_str().unwrap(), b.to_str().unwrap()]).output().unwrap();
    let _ = Command::new("umount").arg(&a).status();
    let _ = Command::new("umount").arg(&b).status();
    assert!(diff.status.success(), "NTFS files differ:\n{}", String::from_utf8_lossy(&diff.stdout));
    drop(src);
    assert_eq!(sha256(&src_img), before, "the source was written");
}

fn blkid(dev: &str, tag: &str) -> String {
    run("blkid", &["-p", "-s", tag, "-o", "value", dev]).trim().to_string()
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("report is not JSON ({e}):\n{text}"))
}

#[test]
fn leaving_out_a_data_partition_named_in_fstab_leaves_no_trace() {
    require_root();
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let src_img = t.path().join("src.img");
    run("truncate", &["-s", "400M", src_img.to_str().unwrap()]);
    let l = Loop::new(&src_img, 512);
    run("sgdisk", &["-n", "1:1M:+64M", "-t", "1:ef00", "-c", "1:ESP", "-n", "2:0:+160M", "-t", "2:8304", "-c", "2:root", "-n", "3:0:+96M", "-t", "3:8300", "-c", "3:data", "-n", "4:0:+32M", "-t", "4:8200", "-c", "4:swap", &l.0]);
    run("mkfs.fat", &["-F", "32", "-n", "ESP", &l.part(1)]);
    run("mkfs.ext4", &["-q", "-F", "-L", "root", &l.part(2)]);
    run("mkfs.ext4", &["-q", "-F", "-L", "data", &l.part(3)]);
    run("mkswap", &["-L", "swap", &l.part(4)]);
    let (esp, root, data, swap) = (blkid(&l.part(1), "UUID"), blkid(&l.part(2), "UUID"), blkid(&l.part(3), "UUID"), blkid(&l.part(4), "UUID"));
    let data_partuuid = blkid(&l.part(3), "PART_ENTRY_UUID");
    assert!(!data.is_empty() && data_partuuid.len() == 36, "{data} {data_partuuid}");
    let mnt = t.path().join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    // The data partition holds a marker that must not reach the target.
    const MARKER: &str = "sysclone-left-out-partition-marker-7d1f";
    run("mount", &[&l.part(3), mnt.to_str().unwrap()]);
    fs::write(mnt.join("marker.txt"), MARKER.repeat(100)).unwrap();
    fill_tree(&mnt.join("d"), 1 << 20, 5);
    run("umount", &[mnt.to_str().unwrap()]);
    run("mount", &[&l.part(2), mnt.to_str().unwrap()]);
    fill_tree(&mnt.join("usr"), 2 << 20, 6);
    fs::create_dir_all(mnt.join("etc")).unwrap();
    let fstab_lines = [
        format!("UUID={root} / ext4 errors=remount-ro 0 1"),
        format!("UUID={esp} /boot/efi vfat umask=0077 0 1"),
        format!("UUID={data} /data ext4 defaults 0 2"),
        format!("PARTUUID={data_partuuid} /data2 ext4 defaults,nofail 0 2"),
        format!("UUID={swap} none swap sw 0 0"),
    ];
    fs::write(mnt.join("etc/fstab"), fstab_lines.join("\n") + "\n").unwrap();
    fs::write(mnt.join("etc/crypttab"), format!("# <target> <source> <key> <options>\ncdata PARTUUID={data_partuuid} none luks\n")).unwrap();
    run("umount", &[mnt.to_str().unwrap()]);
    l.detach();

    let tgt_img = t.path().join("tgt.img");
    run("truncate", &["-s", "400M", tgt_img.to_str().unwrap()]);
    let src = Loop::with_args(&src_img, &["--read-only"]);
    let tgt = Loop::new(&tgt_img, 512);
    let out = migrate(&["--source", &src.0, "--target", &tgt.0, "--exclude", "3"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "migrate failed:\n{log}");
    assert!(log.contains("leave out partition 3 \"data\""), "{log}");
    let rep = json_of(&out);
    let boot = &rep["bootability"];
    assert_eq!(boot["errors"].as_array().map(Vec::len), Some(0), "bootability check: {boot:#}");
    let changes = rep["references"].as_array().expect("references");
    let commented: Vec<(String, u64)> = changes.iter().map(|c| (c["file"].as_str().unwrap().to_string(), c["line"].as_u64().unwrap())).collect();
    assert_eq!(commented, [("etc/fstab".to_string(), 3), ("etc/fstab".to_string(), 4), ("etc/crypttab".to_string(), 2)], "{changes:#?}");

    // No partition of the target is the data partition, by number, name, GUID or UUID.
    let v = run("sgdisk", &["-v", &tgt.0]);
    assert!(v.contains("No problems found"), "{v}");
    let table = run("sgdisk", &["-p", &tgt.0]);
    let rows = table.lines().filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit())).count();
    assert!(!table.contains("data") && rows == 3, "{table}");
    for n in 1..=3 {
        let p = tgt.part(n);
        assert_ne!(blkid(&p, "PART_ENTRY_UUID").to_ascii_lowercase(), data_partuuid.to_ascii_lowercase(), "partition {n}");
        assert_ne!(run("blkid", &["-p", "-o", "value", "-s", "UUID", &p]).trim(), data, "partition {n}");
    }
    assert_eq!(blkid(&tgt.part(2), "UUID"), root);
    let grep = Command::new("grep").args(["-q", "-a", MARKER, tgt_img.to_str().unwrap()]).status().unwrap();
    assert!(!grep.success(), "the left-out partition's data reached the target");

    // The clone's fstab: the data lines are comments now, the others as they were.
    run("e2fsck", &["-fn", &tgt.part(2)]);
    run("mount", &["-o", "ro", &tgt.part(2), mnt.to_str().unwrap()]);
    let fstab = fs::read_to_string(mnt.join("etc/fstab")).unwrap();
    let crypttab = fs::read_to_string(mnt.join("etc/crypttab")).unwrap();
    run("umount", &[mnt.to_str().unwrap()]);
    let mark = "# sysclone: left out of the clone: ";
    let want: Vec<String> = fstab_lines.iter().enumerate().map(|(i, l)| if i == 2 || i == 3 { format!("{mark}{l}") } else { l.clone() }).collect();
    assert_eq!(fstab, want.join("\n") + "\n");
    assert_eq!(crypttab, format!("# <target> <source> <key> <options>\n{mark}cdata PARTUUID={data_partuuid} none luks\n"));
}

/// An ESP and one data partition of `fs` (made by `mkfs`, filled through a kernel mount
/// with ~60 MiB of files), on a GPT disk image of `size`. Returns the image.
fn data_disk(dir: &Path, size: &str, part_size: &str, mkfs: &[&str]) -> PathBuf {
    let img = dir.join("src.img");
    run("truncate", &["-s", size, img.to_str().unwrap()]);
    let l = Loop::new(&img, 512);
    run("sgdisk", &["-n", "1:1M:+32M", "-t", "1:ef00", "-c", "1:ESP", "-n", &format!("2:0:+{part_size}"), "-t", "2:8300", "-c", "2:data", &l.0]);
    run("mkfs.fat", &["-F", "32", "-n", "ESP", &l.part(1)]);
    let mut args = mkfs[1..].to_vec();
    let p2 = l.part(2);
    args.push(&p2);
    run(mkfs[0], &args);
    let mnt = dir.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    run("mount", &[&p2, mnt.to_str().unwrap()]);
    for d in 0..5 {
        fill_tree(&mnt.join(format!("d{d}")), 4 << 20, 20 + d);
    }
    run("umount", &[mnt.to_str().unwrap()]);
    img
}

#[test]
fn btrfs_data_partition_shrinks_onto_a_smaller_disk() {
    require_root();
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let src_img = data_disk(t.path(), "560M", "500M", &["mkfs.btrfs", "-q", "-f", "-L", "data"]);
    let before = sha256(&src_img);
    let tgt_img = t.path().join("tgt.img");
    run("truncate", &["-s", "360M", tgt_img.to_str().unwrap()]);
    let src = Loop::with_args(&src_img, &["--read-only"]);
    let want = tree_digest(&src.part(2), t.path(), false);
    let tgt = Loop::new(&tgt_img, 512);
    let out = migrate(&["--source", &src.0, "--target", &tgt.0]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "migrate failed:\n{log}");
    assert!(log.contains("btrfs shrunk"), "{log}");
    let v = run("sgdisk", &["-v", &tgt.0]);
    assert!(v.contains("No problems found"), "{v}");
    run("btrfs", &["check", "--readonly", "--check-data-csum", &tgt.part(2)]);
    // The filesystem fits its new partition.
    let part = run("blockdev", &["--getsize64", &tgt.part(2)]).trim().parse::<u64>().unwrap();
    assert!(part < 340 << 20, "partition 2 is {part} bytes");
    let show = run("btrfs", &["inspect-internal", "dump-super", &tgt.part(2)]);
    let total: u64 = show.lines().find(|l| l.starts_with("dev_item.total_bytes")).and_then(|l| l.split_whitespace().last()).unwrap().parse().unwrap();
    assert!(total <= part, "btrfs device size {total} > partition {part}");
    assert_eq!(tree_digest(&tgt.part(2), t.path(), false), want, "btrfs files differ");
    drop(src);
    assert_eq!(sha256(&src_img), before, "the source was written");
}

#[test]
fn xfs_that_would_have_to_shrink_is_refused_with_the_minimum_size() {
    require_root();
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let src_img = data_disk(t.path(), "400M", "340M", &["mkfs.xfs", "-q", "-f", "-L", "data"]);
    let err = refused(t.path(), &src_img, 300);
    assert!(err.contains("XFS cannot be shrunk"), "{err}");
    // ESP (32 MiB from 1 MiB) + the XFS partition as it is (340 MiB) + the backup GPT.
    let min = err.split("minimum target size: ").nth(1).and_then(|s| s.split(" (").nth(1)).and_then(|s| s.split(' ').next()).and_then(|s| s.parse::<u64>().ok());
    let min = min.unwrap_or_else(|| panic!("no minimum target size in bytes:\n{err}"));
    assert!(((373 << 20)..=(376 << 20)).contains(&min), "minimum target size {min}:\n{err}");
}
