//! New filesystem identifiers on real filesystems made by their own mkfs on loop devices,
//! checked by their own tools (`blkid -p`, `dumpe2fs`, `e2fsck -fn`, `fsck.fat -n`,
//! `ntfsfix -n`, `xfs_repair -n`, `btrfs check`) and, where the host kernel has the driver,
//! by mounting. Needs root; tests fail with a message when root or a tool is missing.

mod common;

use std::fs;
use std::os::unix::fs::FileExt;

use common::*;
use sysclone_ident::{random_fs_id, read_fs_id, renew_fs_id, set_fs_uuid};

fn ext_case(kind: &str, opts: &[&str], want_feature: Option<&str>) {
    require_root();
    need_tool("mke2fs", "e2fsprogs");
    need_tool("tune2fs", "e2fsprogs");
    need_tool("dumpe2fs", "e2fsprogs");
    need_tool("blkid", "util-linux");
    let t = tempfile::tempdir().unwrap();
    let content = t.path().join("content");
    fs::create_dir_all(content.join("etc")).unwrap();
    fs::write(content.join("etc/hostname"), "clone\n").unwrap();
    fs::write(content.join("data.bin"), vec![0x5au8; 3 << 20]).unwrap();
    let (_img, dev) = fs_image(t.path(), "ext.img", "64M");
    let mut args = vec!["-q", "-F", "-t", kind];
    args.extend_from_slice(opts);
    args.extend_from_slice(&["-d", p(&content), dev.dev()]);
    run("mke2fs", &args);
    let features = run("dumpe2fs", &["-h", dev.dev()]);
    if let Some(f) = want_feature {
        assert!(
            features
                .lines()
                .any(|l| l.starts_with("Filesystem features:")
                    && l.split_whitespace().any(|w| w == f)),
            "{kind} {opts:?}: mke2fs did not enable {f}:\n{features}"
        );
    }
    let old = blkid(dev.dev(), "UUID");
    let new = random_fs_id(kind);
    set_fs_uuid(dev.path(), kind, &new).unwrap();
    assert_ne!(old, new);
    assert_eq!(blkid(dev.dev(), "UUID"), new, "{kind} {opts:?}");
    let dump = run("dumpe2fs", &["-h", dev.dev()]);
    let shown = dump
        .lines()
        .find_map(|l| l.strip_prefix("Filesystem UUID:"))
        .map(str::trim)
        .unwrap_or_default();
    assert_eq!(shown, new, "dumpe2fs");
    let (ok, out) = run_status("e2fsck", &["-fn", dev.dev()]);
    assert!(
        ok,
        "{kind} {opts:?}: e2fsck -fn after the UUID change:\n{out}"
    );
    // The kernel verifies every metadata checksum it reads.
    let m = Mounted::new(dev.dev(), &t.path().join("mnt"), "ro");
    assert_eq!(
        fs::read_to_string(m.dir.join("etc/hostname")).unwrap(),
        "clone\n"
    );
    assert_eq!(fs::read(m.dir.join("data.bin")).unwrap().len(), 3 << 20);
    drop(m);
    assert_eq!(read_fs_id(dev.path()).unwrap().unwrap().uuid.unwrap(), new);
}

#[test]
fn ext4_with_metadata_csum() {
    ext_case("ext4", &["-O", "metadata_csum"], Some("metadata_csum"));
}

#[test]
fn ext4_with_metadata_csum_seed() {
    ext_case(
        "ext4",
        &["-O", "metadata_csum,metadata_csum_seed"],
        Some("metadata_csum_seed"),
    );
}

#[test]
fn ext4_without_metadata_csum() {
    ext_case("ext4", &["-O", "^metadata_csum"], None);
}

#[test]
fn ext3_and_ext2() {
    ext_case("ext3", &[], Some("has_journal"));
    ext_case("ext2", &[], None);
}

#[test]
fn mounted_filesystem_is_refused() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let (_img, dev) = fs_image(t.path(), "m.img", "32M");
    run("mkfs.ext4", &["-q", "-F", dev.dev()]);
    let old = blkid(dev.dev(), "UUID");
    let m = Mounted::new(dev.dev(), &t.path().join("mnt"), "");
    let e = set_fs_uuid(dev.path(), "ext4", &random_fs_id("ext4"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("is mounted on"), "{e}");
    drop(m);
    assert_eq!(blkid(dev.dev(), "UUID"), old);
    // And the filesystem kind must be the one named.
    let e = set_fs_uuid(dev.path(), "vfat", "1234-5678")
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds ext4, not vfat"), "{e}");
}

fn vfat_case(bits: &str, size: &str) {
    require_root();
    need_tool("mkfs.fat", "dosfstools");
    need_tool("fsck.fat", "dosfstools");
    need_tool("mcopy", "mtools");
    let t = tempfile::tempdir().unwrap();
    let (_img, dev) = fs_image(t.path(), "fat.img", size);
    run(
        "mkfs.fat",
        &["-I", "-F", bits, "-n", "ESP", "-i", "1234ABCD", dev.dev()],
    );
    let f = t.path().join("hello.txt");
    fs::write(&f, "hello\n").unwrap();
    run("mcopy", &["-i", dev.dev(), p(&f), "::/hello.txt"]);
    assert_eq!(blkid(dev.dev(), "UUID"), "1234-ABCD");
    let new = random_fs_id("vfat");
    set_fs_uuid(dev.path(), "vfat", &new).unwrap();
    assert_eq!(blkid(dev.dev(), "UUID"), new, "FAT{bits}");
    assert_eq!(blkid(dev.dev(), "LABEL"), "ESP", "label kept");
    let (ok, out) = run_status("fsck.fat", &["-n", "-v", dev.dev()]);
    assert!(ok, "FAT{bits}: fsck.fat -n:\n{out}");
    assert!(
        !out.to_lowercase().contains("differ"),
        "FAT{bits}: boot sector and backup differ:\n{out}"
    );
    let serial_hex = new.replace('-', "");
    let info = run("minfo", &["-i", dev.dev()]);
    assert!(
        info.contains(&format!("serial number: {serial_hex}")),
        "minfo shows the serial:\n{info}"
    );
    let typed = run("mtype", &["-i", dev.dev(), "::/hello.txt"]);
    assert_eq!(typed, "hello\n");
    if bits == "32" {
        let file = fs::File::open(dev.path()).unwrap();
        let (mut a, mut b) = (vec![0u8; 512], vec![0u8; 512]);
        file.read_exact_at(&mut a, 0).unwrap();
        file.read_exact_at(&mut b, 6 * 512).unwrap();
        assert_eq!(a, b, "FAT32 backup boot sector equals the primary");
    }
}

#[test]
fn vfat_fat32_serial() {
    vfat_case("32", "64M");
}

#[test]
fn vfat_fat16_and_fat12_serial() {
    vfat_case("16", "32M");
    vfat_case("12", "4M");
}

#[test]
fn ntfs_serial() {
    require_root();
    need_tool("mkntfs", "ntfs-3g");
    need_tool("ntfsfix", "ntfs-3g");
    let t = tempfile::tempdir().unwrap();
    let (img, dev) = fs_image(t.path(), "ntfs.img", "64M");
    run("mkntfs", &["-Q", "-F", "-L", "data", dev.dev()]);
    let old = blkid(dev.dev(), "UUID");
    let new = random_fs_id("ntfs");
    set_fs_uuid(dev.path(), "ntfs", &new).unwrap();
    assert_ne!(old, new);
    assert_eq!(blkid(dev.dev(), "UUID"), new);
    let (ok, out) = run_status("ntfsfix", &["-n", dev.dev()]);
    assert!(ok, "ntfsfix -n:\n{out}");
    let file = fs::File::open(dev.path()).unwrap();
    let size = fs::metadata(&img).unwrap().len();
    let (mut a, mut b) = (vec![0u8; 512], vec![0u8; 512]);
    file.read_exact_at(&mut a, 0).unwrap();
    file.read_exact_at(&mut b, size - 512).unwrap();
    assert_eq!(
        &b[3..11],
        b"NTFS    ",
        "backup boot sector in the last sector"
    );
    assert_eq!(a, b, "backup boot sector updated too");
    // ntfs-3g mounts it (when installed).
    if common::has_tool("ntfs-3g") {
        let mnt = t.path().join("mnt");
        fs::create_dir_all(&mnt).unwrap();
        run("ntfs-3g", &["-o", "ro", dev.dev(), p(&mnt)]);
        let _m = Mounted::adopt(&mnt);
        assert!(fs::read_dir(&mnt).is_ok());
    }
}

#[test]
fn swap_uuid() {
    require_root();
    need_tool("mkswap", "util-linux");
    let t = tempfile::tempdir().unwrap();
    let (_img, dev) = fs_image(t.path(), "swap.img", "16M");
    run("mkswap", &["-L", "sw", dev.dev()]);
    let c = renew_fs_id(dev.path()).unwrap();
    assert_eq!(c.fs, "swap");
    assert_ne!(c.old, c.new);
    assert_eq!(blkid(dev.dev(), "UUID"), c.new);
    assert_eq!(blkid(dev.dev(), "LABEL"), "sw");
    assert_eq!(blkid(dev.dev(), "TYPE"), "swap");
}

#[test]
fn xfs_uuid() {
    require_root();
    need_tool("mkfs.xfs", "xfsprogs");
    need_tool("xfs_admin", "xfsprogs");
    need_tool("xfs_repair", "xfsprogs");
    let t = tempfile::tempdir().unwrap();
    let (_img, dev) = fs_image(t.path(), "xfs.img", "320M");
    run("mkfs.xfs", &["-q", "-f", dev.dev()]);
    {
        let m = Mounted::new(dev.dev(), &t.path().join("mnt"), "");
        fs::write(m.dir.join("f.txt"), "xfs\n").unwrap();
    }
    let new = random_fs_id("xfs");
    set_fs_uuid(dev.path(), "xfs", &new).unwrap();
    assert_eq!(blkid(dev.dev(), "UUID"), new);
    let (ok, out) = run_status("xfs_repair", &["-n", dev.dev()]);
    assert!(ok, "xfs_repair -n:\n{out}");
    let m = Mounted::new(dev.dev(), &t.path().join("mnt2"), "ro");
    assert_eq!(fs::read_to_string(m.dir.join("f.txt")).unwrap(), "xfs\n");
}

#[test]
fn btrfs_uuid() {
    require_root();
    need_tool("mkfs.btrfs", "btrfs-progs");
    need_tool("btrfstune", "btrfs-progs");
    need_tool("btrfs", "btrfs-progs");
    let t = tempfile::tempdir().unwrap();
    let content = t.path().join("content");
    fs::create_dir_all(&content).unwrap();
    fs::write(content.join("f.txt"), "btrfs\n").unwrap();
    let (_img, dev) = fs_image(t.path(), "btrfs.img", "256M");
    run(
        "mkfs.btrfs",
        &["-q", "-f", "--rootdir", p(&content), dev.dev()],
    );
    let new = random_fs_id("btrfs");
    set_fs_uuid(dev.path(), "btrfs", &new).unwrap();
    assert_eq!(blkid(dev.dev(), "UUID"), new);
    let (ok, out) = run_status("btrfs", &["check", "--readonly", dev.dev()]);
    assert!(ok, "btrfs check:\n{out}");
    let m = Mounted::new(dev.dev(), &t.path().join("mnt"), "ro");
    assert_eq!(fs::read_to_string(m.dir.join("f.txt")).unwrap(), "btrfs\n");
}
