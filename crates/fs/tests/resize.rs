//! `sysclone_fs::resize` and `min_size` on real loop devices: each filesystem made by its own
//! mkfs and filled (random data, many small files, some deleted), then grown (image made
//! larger, `losetup -c`), shrunk (and the image then cut to the new size, so nothing past it
//! can still be needed), shrunk to `min_size`; after each step the filesystem's own checker
//! runs, its own tool reports the size, and the files are compared with what was written.
//! Needs root (loop devices, mounts) and the filesystems' tools; fails, never skips,
//! without them.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use common::*;
use sysclone_fs::{min_size, resize, ResizeOutcome};

const MIB: u64 = 1 << 20;

/// A loop device over an image file; detached on drop.
struct Loop {
    dev: String,
    img: PathBuf,
}

impl Loop {
    fn new(img: &Path, len: u64) -> Loop {
        need_root("loop devices");
        need_tool("losetup", "mount");
        sparse_image(img, len);
        let dev = run("losetup", &["--find", "--show", p(img)]).trim().to_string();
        Loop { dev, img: img.into() }
    }

    fn path(&self) -> &Path {
        Path::new(&self.dev)
    }

    /// Make the image `len` bytes and tell the kernel.
    fn set_len(&self, len: u64) {
        OpenOptions::new().write(true).open(&self.img).unwrap().set_len(len).unwrap();
        run("losetup", &["-c", &self.dev]);
        assert_eq!(dev_len(self.path()), len, "{} did not take the new size", self.dev);
    }

    /// A second, read-only loop device over the same image (the way the caller asks for the
    /// source's minimum size).
    fn read_only(&self) -> Loop {
        let dev = run("losetup", &["--find", "--show", "--read-only", p(&self.img)]).trim().to_string();
        Loop { dev, img: self.img.clone() }
    }

    fn hash(&self) -> String {
        run("sha256sum", &[p(&self.img)]).split_whitespace().next().unwrap().to_string()
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

fn dev_len(dev: &Path) -> u64 {
    File::open(dev).unwrap().seek(SeekFrom::End(0)).unwrap()
}

/// A kernel mount of a block device; unmounted on drop.
struct KMount {
    dir: PathBuf,
    live: bool,
}

impl KMount {
    fn new(dev: &str, dir: &Path, opts: &str) -> KMount {
        fs::create_dir_all(dir).unwrap();
        let mut args = vec![];
        if !opts.is_empty() {
            args.extend(["-o", opts]);
        }
        args.extend([dev, p(dir)]);
        run("mount", &args);
        KMount { dir: dir.into(), live: true }
    }

    fn unmount(mut self) {
        run("umount", &[p(&self.dir)]);
        self.live = false;
    }
}

impl Drop for KMount {
    fn drop(&mut self) {
        if self.live {
            let _ = std::process::Command::new("umount").arg(&self.dir).status();
        }
    }
}

/// Fill a mounted filesystem: the common initial tree, then churn (new files, deletions, a
/// rewrite) through the same driver.
fn fill(root: &Path, seed: u64) -> Tree {
    let mut rng = Rng(seed);
    let mut tree = initial_tree(&mut rng, 3 << 20);
    write_tree(root, &tree);
    churn(root, &mut tree, &mut rng);
    tree
}

fn total_bytes(t: &Tree) -> u64 {
    t.values().flatten().map(|v| v.len() as u64).sum()
}

fn compare(name: &str, step: &str, want: &Tree, root: &Path, ignore: &[&str]) {
    let got = read_tree(root, ignore);
    if let Err(e) = diff_trees(want, &got) {
        panic!("{name} after {step}: files differ: {e}");
    }
}

fn show(o: &ResizeOutcome) {
    eprintln!("{} {} -> {} by {}\n{}", o.fs, o.old_size, o.new_size, o.method, o.log);
}

// ---------------------------------------------------------------------------------------
// ext2/3/4

fn ext_check(name: &str, step: &str, l: &Loop, t: &Path, tree: &Tree, size: u64) {
    let (ok, out) = run_status("e2fsck", &["-f", "-n", &l.dev]);
    assert!(ok, "{name} after {step}: e2fsck -fn failed:\n{out}");
    let d = run("dumpe2fs", &["-h", &l.dev]);
    let field = |k: &str| -> u64 { d.lines().find_map(|x| x.strip_prefix(k)).unwrap_or_else(|| panic!("dumpe2fs: no {k}")).trim().parse().unwrap() };
    assert_eq!(field("Block count:") * field("Block size:"), size, "{name} after {step}: dumpe2fs size");
    let m = KMount::new(&l.dev, &t.join("check"), "ro");
    compare(name, step, tree, &m.dir, &["lost+found"]);
    let st = run("stat", &["-f", "-c", "%S %b", p(&m.dir)]);
    m.unmount();
    eprintln!("{name} after {step}: statfs {st}");
}

fn ext_case(name: &str, mkfs: &[&str], s0: u64, grow: u64, shrink: u64) {
    need_root("loop devices and mounts");
    for t in ["mke2fs", "e2fsck", "resize2fs", "dumpe2fs"] {
        need_tool(t, "e2fsprogs");
    }
    need_tool("blkid", "util-linux");
    let t = tempfile::tempdir().unwrap();
    let l = Loop::new(&t.path().join("ext.img"), s0);
    let mut args = vec!["-q", "-F"];
    args.extend_from_slice(mkfs);
    args.push(&l.dev);
    run("mke2fs", &args);
    let m = KMount::new(&l.dev, &t.path().join("mnt"), "");
    let tree = fill(&m.dir, 0xe47 ^ s0);
    m.unmount();
    let fs = run("blkid", &["-p", "-o", "value", "-s", "TYPE", &l.dev]).trim().to_string();

    // Unchanged size: nothing run.
    let o = resize(l.path(), &fs, s0).unwrap();
    assert_eq!((o.method.as_str(), o.old_size, o.new_size), ("none", s0, s0), "{name}");

    l.set_len(grow);
    let o = resize(l.path(), &fs, grow).unwrap();
    show(&o);
    assert_eq!((o.fs.as_str(), o.method.as_str(), o.old_size), (fs.as_str(), "resize2fs", s0), "{name}: grow");
    // resize2fs may leave out a last block group too small to hold its own metadata.
    assert!(o.new_size <= grow && o.new_size > grow - 4 * MIB, "{name}: grow to {grow} gave {}", o.new_size);
    assert!(o.log.contains("e2fsck") && o.log.contains("resize2fs"), "{name}: the log lacks the tools' output");
    ext_check(name, "grow", &l, t.path(), &tree, o.new_size);
    let grown = o.new_size;

    let o = resize(l.path(), &fs, shrink).unwrap();
    show(&o);
    assert_eq!((o.old_size, o.new_size), (grown, shrink), "{name}: shrink");
    l.set_len(shrink);
    ext_check(name, "shrink", &l, t.path(), &tree, shrink);

    // Below what the data needs: resize2fs refuses, the error carries its words, and the
    // filesystem is as it was.
    let e = format!("{:#}", resize(l.path(), &fs, 4 * MIB).unwrap_err());
    eprintln!("{name}: refused as expected: {e}");
    assert!(e.contains("resize2fs failed") && e.contains("smaller than minimum"), "{name}: {e}");
    ext_check(name, "a refused shrink", &l, t.path(), &tree, shrink);

    let before = l.hash();
    let min = min_size(l.path(), &fs).unwrap().expect("ext has a minimum size");
    assert_eq!(l.hash(), before, "{name}: min_size wrote to the device");
    let ro = l.read_only();
    assert_eq!(min_size(ro.path(), &fs).unwrap(), Some(min), "{name}: min_size on a read-only device");
    drop(ro);
    eprintln!("{name}: min_size {min}, data {}", total_bytes(&tree));
    assert!(min > total_bytes(&tree) && min < shrink, "{name}: min_size {min} is implausible");
    let o = resize(l.path(), &fs, min).unwrap();
    assert_eq!(o.new_size, min, "{name}: shrinking to min_size");
    l.set_len(min);
    ext_check(name, "shrink to min_size", &l, t.path(), &tree, min);
}

#[test]
fn ext4_grow_shrink_min() {
    ext_case("ext4", &["-t", "ext4", "-b", "4096"], 64 * MIB, 160 * MIB, 40 * MIB);
}

#[test]
fn ext3_1k_blocks_grow_shrink_min() {
    ext_case("ext3", &["-t", "ext3", "-b", "1024"], 48 * MIB, 100 * MIB, 36 * MIB);
}

#[test]
fn ext2_grow_shrink_min() {
    ext_case("ext2", &["-t", "ext2"], 48 * MIB, 80 * MIB + 4096, 32 * MIB);
}

#[test]
fn mounted_filesystem_is_refused() {
    need_root("loop devices and mounts");
    need_tool("mke2fs", "e2fsprogs");
    let t = tempfile::tempdir().unwrap();
    let l = Loop::new(&t.path().join("m.img"), 32 * MIB);
    run("mke2fs", &["-q", "-F", "-t", "ext4", &l.dev]);
    let m = KMount::new(&l.dev, &t.path().join("mnt"), "ro");
    l.set_len(48 * MIB);
    let before = l.hash();
    let e = format!("{:#}", resize(l.path(), "ext4", 48 * MIB).unwrap_err());
    assert!(e.contains("mounted at"), "{e}");
    assert_eq!(l.hash(), before);
    m.unmount();
}

// ---------------------------------------------------------------------------------------
// NTFS

/// (clusters × cluster size, cluster size) as ntfsinfo reports the volume.
fn ntfs_info(dev: &str) -> (u64, u64) {
    let info = run("ntfsinfo", &["-m", "-f", dev]);
    let f = |k: &str| -> u64 { info.lines().find_map(|x| x.trim().strip_prefix(k)).unwrap_or_else(|| panic!("ntfsinfo: no {k}")).trim().parse().unwrap() };
    let cs = f("Cluster Size:");
    (f("Volume Size in Clusters:") * cs, cs)
}

/// `size` (the boot sector's sectors and the backup boot sector after them) agrees with
/// the clusters ntfsinfo reports: at most a cluster's tail and the backup sector more.
fn ntfs_size_agrees(name: &str, step: &str, dev: &str, size: u64) {
    let (bytes, cs) = ntfs_info(dev);
    assert!(bytes < size && size <= bytes + cs + 512, "{name} after {step}: ntfsinfo says {bytes} bytes in clusters, the outcome {size}");
}

fn ntfs_check(name: &str, step: &str, l: &Loop, t: &Path, tree: &Tree, size: u64) {
    let (ok, out) = run_status("ntfsfix", &["-n", &l.dev]);
    assert!(ok && out.contains("alternate boot sector... OK"), "{name} after {step}: ntfsfix -n:\n{out}");
    ntfs_size_agrees(name, step, &l.dev, size);
    let m = Mount::ntfs3g(l.path(), &t.join("check"), true);
    compare(name, step, tree, &m.dir, &[]);
    m.unmount();
}

#[test]
fn ntfs_grow_shrink_min() {
    let name = "ntfs";
    need_root("loop devices and FUSE mounts");
    for t in ["mkntfs", "ntfsresize", "ntfsfix", "ntfs-3g"] {
        need_tool(t, "ntfs-3g");
    }
    let t = tempfile::tempdir().unwrap();
    let (s0, grow, shrink) = (64 * MIB, 160 * MIB, 48 * MIB);
    let l = Loop::new(&t.path().join("ntfs.img"), s0);
    run("mkntfs", &["-F", "-f", "-q", &l.dev]);
    let m = Mount::ntfs3g(l.path(), &t.path().join("mnt"), false);
    let tree = fill(&m.dir, 0x27f5);
    m.unmount();
    need_tool("ntfsinfo", "ntfs-3g");

    l.set_len(grow);
    let o = resize(l.path(), "ntfs", grow).unwrap();
    show(&o);
    assert_eq!((o.method.as_str(), o.old_size), ("ntfsresize", s0), "{name}: grow");
    assert!(o.new_size <= grow && o.new_size > grow - 8192, "{name}: grow to {grow} gave {}", o.new_size);
    assert!(o.log.contains("chkdsk"), "{name}: the log does not mention the scheduled chkdsk");
    ntfs_check(name, "grow", &l, t.path(), &tree, o.new_size);

    let o = resize(l.path(), "ntfs", shrink).unwrap();
    show(&o);
    assert!(o.new_size <= shrink && o.new_size > shrink - 8192, "{name}: shrink to {shrink} gave {}", o.new_size);
    l.set_len(shrink);
    ntfs_check(name, "shrink", &l, t.path(), &tree, o.new_size);

    // Below what the data needs: the test run fails, nothing is written.
    let before = l.hash();
    let e = format!("{:#}", resize(l.path(), "ntfs", 4 * MIB).unwrap_err());
    eprintln!("{name}: refused as expected: {e}");
    assert!(e.contains("--no-action) failed") && e.contains("ntfsresize"), "{name}: {e}");
    assert_eq!(l.hash(), before, "{name}: a refused shrink wrote to the device");

    let before = l.hash();
    let min = min_size(l.path(), "ntfs").unwrap().expect("ntfs has a minimum size");
    assert_eq!(l.hash(), before, "{name}: min_size wrote to the device");
    let ro = l.read_only();
    assert_eq!(min_size(ro.path(), "ntfs").unwrap(), Some(min), "{name}: min_size on a read-only device");
    drop(ro);
    eprintln!("{name}: min_size {min}, data {}", total_bytes(&tree));
    assert!(min > total_bytes(&tree) && min < shrink, "{name}: min_size {min} is implausible");
    // A partition size: the minimum rounded up to a MiB.
    let part = min.div_ceil(MIB) * MIB;
    let o = resize(l.path(), "ntfs", part).unwrap();
    assert!(o.new_size <= part && o.new_size >= min, "{name}: shrink to {part} gave {}", o.new_size);
    l.set_len(part);
    ntfs_check(name, "shrink to min_size", &l, t.path(), &tree, o.new_size);
}

// ---------------------------------------------------------------------------------------
// btrfs

fn btrfs_dev_size(dev: &str) -> u64 {
    let d = run("btrfs", &["inspect-internal", "dump-super", dev]);
    d.lines().find_map(|x| x.strip_prefix("dev_item.total_bytes")).and_then(|v| v.split_whitespace().next()?.parse().ok()).expect("dump-super: dev_item.total_bytes")
}

fn btrfs_check(name: &str, step: &str, l: &Loop, t: &Path, tree: &Tree, size: u64) {
    let (ok, out) = run_status("btrfs", &["check", "--readonly", "--check-data-csum", &l.dev]);
    assert!(ok, "{name} after {step}: btrfs check failed:\n{out}");
    assert_eq!(btrfs_dev_size(&l.dev), size, "{name} after {step}: the size dump-super reports");
    let m = KMount::new(&l.dev, &t.join("check"), "ro");
    compare(name, step, tree, &m.dir, &[]);
    let show = run("btrfs", &["filesystem", "show", "--raw", p(&m.dir)]);
    assert!(show.contains(&format!("size {size} ")), "{name} after {step}: btrfs filesystem show:\n{show}");
    m.unmount();
    run("btrfs", &["device", "scan", "--forget", &l.dev]);
}

#[test]
fn btrfs_grow_shrink_min_source_untouched() {
    let name = "btrfs";
    need_root("loop devices and mounts");
    need_tool("mkfs.btrfs", "btrfs-progs");
    need_tool("btrfs", "btrfs-progs");
    let t = tempfile::tempdir().unwrap();
    let (s0, grow, shrink) = (512 * MIB, 1024 * MIB, 300 * MIB);
    let src = Loop::new(&t.path().join("src.img"), s0);
    run("mkfs.btrfs", &["-q", "-f", &src.dev]);
    let m = KMount::new(&src.dev, &t.path().join("mnt"), "");
    let tree = fill(&m.dir, 0xb7f5);
    m.unmount();
    // The target is a copy of the source (same filesystem UUID), the way a clone is.
    let dst_img = t.path().join("dst.img");
    run("cp", &["--sparse=always", p(&src.img), p(&dst_img)]);
    let l = Loop { dev: run("losetup", &["--find", "--show", p(&dst_img)]).trim().to_string(), img: dst_img };
    let src_hash = src.hash();

    l.set_len(grow);
    let o = resize(l.path(), "btrfs", grow).unwrap();
    show(&o);
    assert_eq!((o.method.as_str(), o.old_size, o.new_size), ("btrfs ioctl", s0, grow), "{name}: grow");
    btrfs_check(name, "grow", &l, t.path(), &tree, grow);

    let o = resize(l.path(), "btrfs", shrink).unwrap();
    show(&o);
    assert_eq!((o.old_size, o.new_size), (grow, shrink), "{name}: shrink");
    l.set_len(shrink);
    btrfs_check(name, "shrink", &l, t.path(), &tree, shrink);

    let e = format!("{:#}", resize(l.path(), "btrfs", 200 * MIB).unwrap_err());
    assert!(e.contains("256 MiB"), "{e}");

    let before = l.hash();
    let min = min_size(l.path(), "btrfs").unwrap().expect("btrfs has a minimum size");
    assert_eq!(l.hash(), before, "{name}: min_size wrote to the device");
    let ro = l.read_only();
    assert_eq!(min_size(ro.path(), "btrfs").unwrap(), Some(min), "{name}: min_size on a read-only device");
    drop(ro);
    eprintln!("{name}: min_size {min}, data {}", total_bytes(&tree));
    assert!(min >= 256 * MIB && min <= shrink, "{name}: min_size {min} is implausible");
    let o = resize(l.path(), "btrfs", min).unwrap();
    assert_eq!(o.new_size, min, "{name}: shrinking to min_size");
    l.set_len(min);
    btrfs_check(name, "shrink to min_size", &l, t.path(), &tree, min);

    // The source: untouched, and still mountable although the kernel has seen a newer
    // generation of the same filesystem on the target.
    assert_eq!(src.hash(), src_hash, "{name}: the source changed");
    let m = KMount::new(&src.dev, &t.path().join("src-mnt"), "ro");
    compare(name, "resizing the clone (source)", &tree, &m.dir, &[]);
    m.unmount();
}

// ---------------------------------------------------------------------------------------
// XFS

fn xfs_size(dev: &str) -> u64 {
    let d = run("xfs_db", &["-r", "-c", "sb 0", "-c", "p dblocks", "-c", "p blocksize", dev]);
    let f = |k: &str| -> u64 { d.lines().find_map(|x| x.strip_prefix(k)).unwrap_or_else(|| panic!("xfs_db: no {k}")).trim().parse().unwrap() };
    f("dblocks = ") * f("blocksize = ")
}

#[test]
fn xfs_grow_and_shrink_refused() {
    let name = "xfs";
    need_root("loop devices and mounts");
    for t in ["mkfs.xfs", "xfs_repair", "xfs_db", "xfs_info"] {
        need_tool(t, "xfsprogs");
    }
    let t = tempfile::tempdir().unwrap();
    let (s0, grow) = (320 * MIB, 900 * MIB + 2048);
    let src = Loop::new(&t.path().join("src.img"), s0);
    run("mkfs.xfs", &["-q", "-f", &src.dev]);
    let m = KMount::new(&src.dev, &t.path().join("mnt"), "");
    let tree = fill(&m.dir, 0x8f5);
    m.unmount();
    let dst_img = t.path().join("dst.img");
    run("cp", &["--sparse=always", p(&src.img), p(&dst_img)]);
    let l = Loop { dev: run("losetup", &["--find", "--show", p(&dst_img)]).trim().to_string(), img: dst_img };
    // The source stays mounted while its clone is grown (same UUID).
    let src_mnt = KMount::new(&src.dev, &t.path().join("src-mnt"), "ro");

    l.set_len(grow);
    let o = resize(l.path(), "xfs", grow).unwrap();
    show(&o);
    assert_eq!((o.method.as_str(), o.old_size, o.new_size), ("xfs ioctl", s0, 900 * MIB), "{name}: grow");
    let (ok, out) = run_status("xfs_repair", &["-n", &l.dev]);
    assert!(ok, "{name}: xfs_repair -n failed:\n{out}");
    assert_eq!(xfs_size(&l.dev), 900 * MIB, "{name}: xfs_db size");
    let m = KMount::new(&l.dev, &t.path().join("check"), "ro,nouuid");
    compare(name, "grow", &tree, &m.dir, &[]);
    let info = run("xfs_info", &[p(&m.dir)]);
    assert!(info.contains(&format!("blocks={}", (900 * MIB) / 4096)), "{name}: xfs_info:\n{info}");
    m.unmount();

    let before = l.hash();
    let e = format!("{:#}", resize(l.path(), "xfs", s0).unwrap_err());
    assert!(e.contains("XFS cannot shrink"), "{e}");
    assert_eq!(min_size(l.path(), "xfs").unwrap(), None);
    assert_eq!(l.hash(), before, "{name}: the refused shrink wrote to the device");
    compare(name, "resizing the clone (source)", &tree, &src_mnt.dir, &[]);
    src_mnt.unmount();
}

// ---------------------------------------------------------------------------------------
// vfat

/// (clusters, cluster size, free clusters) as fsck.fat -n -v sees them; panics unless
/// fsck.fat finds the filesystem clean (its FSInfo free count included).
fn fat_check(name: &str, step: &str, dev: &str) -> (u64, u64, u64) {
    let (ok, out) = run_status("fsck.fat", &["-n", "-v", dev]);
    assert!(ok && !out.contains("wrong") && !out.contains("differ"), "{name} after {step}: fsck.fat -n:\n{out}");
    let clusters: u64 = out.lines().find(|l| l.contains(" data clusters")).and_then(|l| l.split_whitespace().next()?.parse().ok()).unwrap_or_else(|| panic!("fsck.fat: no cluster count:\n{out}"));
    let cs: u64 = out.lines().find_map(|l| l.trim().strip_suffix(" bytes per cluster")).and_then(|v| v.trim().parse().ok()).expect("fsck.fat: cluster size");
    let used: u64 = out.lines().find_map(|l| l.split_once(" files, ")).and_then(|(_, r)| r.split('/').next()?.parse().ok()).expect("fsck.fat: used clusters");
    (clusters, cs, clusters - used)
}

/// Copy the tree onto the FAT with mtools and read it back.
fn fat_fill(dev: &str, t: &Path, tree: &Tree) {
    let staging = t.join("content");
    write_tree(&staging, tree);
    for e in fs::read_dir(&staging).unwrap() {
        run("mcopy", &["-s", "-i", dev, p(&e.unwrap().path()), "::"]);
    }
}

fn fat_compare(name: &str, step: &str, dev: &str, t: &Path, tree: &Tree) {
    let out = t.join(format!("out-{}", step.replace(' ', "-")));
    fs::create_dir_all(&out).unwrap();
    run("mcopy", &["-s", "-n", "-i", dev, "::*", p(&out)]);
    compare(name, step, tree, &out, &[]);
}

#[test]
fn vfat_grow_within_the_fat() {
    let name = "vfat";
    need_root("loop devices");
    need_tool("mkfs.fat", "dosfstools");
    need_tool("fsck.fat", "dosfstools");
    need_tool("mcopy", "mtools");
    let t = tempfile::tempdir().unwrap();
    let s0 = 48 * MIB;
    let l = Loop::new(&t.path().join("fat.img"), s0);
    run("mkfs.fat", &["-I", "-F", "32", "-s", "1", &l.dev]);
    // mkfs.fat sizes the FAT for the device; as a volume whose FAT has room for more
    // clusters (one made for a larger device, or shrunk by another tool), cut 20000
    // clusters off its end in both boot sectors and the FSInfo copies; fsck.fat must agree
    // that this starting point is a clean FAT32 before anything else happens.
    let (c0, cs, free0) = fat_check(name, "mkfs", &l.dev);
    {
        let f = OpenOptions::new().read(true).write(true).open(l.path()).unwrap();
        use std::os::unix::fs::FileExt;
        for (boot, fsinfo) in [(0u64, 1u64), (6, 7)] {
            let mut b = [0u8; 512];
            f.read_exact_at(&mut b, boot * 512).unwrap();
            let tot = u32::from_le_bytes(b[32..36].try_into().unwrap()) - 20000;
            b[32..36].copy_from_slice(&tot.to_le_bytes());
            f.write_all_at(&b, boot * 512).unwrap();
            f.read_exact_at(&mut b, fsinfo * 512).unwrap();
            let free = u32::from_le_bytes(b[488..492].try_into().unwrap()) - 20000;
            b[488..492].copy_from_slice(&free.to_le_bytes());
            f.write_all_at(&b, fsinfo * 512).unwrap();
        }
        f.sync_all().unwrap();
    }
    let (c1, _, free1) = fat_check(name, "cutting 20000 clusters", &l.dev);
    assert_eq!((c1, free1), (c0 - 20000, free0 - 20000));
    let small = s0 - 20000 * 512;
    let mut rng = Rng(0xfa7);
    let tree = initial_tree(&mut rng, 3 << 20);
    fat_fill(&l.dev, t.path(), &tree);
    let (_, _, free_filled) = fat_check(name, "filling", &l.dev);

    // Grow by 10000 clusters: exactly as asked.
    let o = resize(l.path(), "vfat", small + 10000 * cs).unwrap();
    show(&o);
    assert_eq!((o.method.as_str(), o.old_size, o.new_size), ("native FAT32", small, small + 10000 * cs), "{name}: grow");
    let (c2, _, free2) = fat_check(name, "grow", &l.dev);
    assert_eq!((c2, free2), (c1 + 10000, free_filled + 10000), "{name}: clusters after grow");
    fat_compare(name, "grow", &l.dev, t.path(), &tree);

    // Ask for more than the FAT can describe: grows to the FAT's last entry, says so.
    l.set_len(s0 + 64 * MIB);
    let o = resize(l.path(), "vfat", s0 + 64 * MIB).unwrap();
    show(&o);
    assert!(o.log.contains("FAT left at its size"), "{name}: {}", o.log);
    let (c3, _, free3) = fat_check(name, "grow to the FAT's limit", &l.dev);
    assert!(c3 >= c0 && o.new_size < s0 + 64 * MIB && o.new_size >= s0 - cs, "{name}: {c3} clusters, {} bytes", o.new_size);
    assert_eq!(free3, free2 + (c3 - c2));
    fat_compare(name, "grow to the FAT's limit", &l.dev, t.path(), &tree);
    // Files written into the new clusters read back intact.
    let mut more = Tree::new();
    more.insert("late/fill.bin".into(), Some(rng.bytes(((free3 - 10) * cs) as usize)));
    fat_fill(&l.dev, t.path().join("more").as_path(), &more);
    fat_check(name, "filling the grown FAT", &l.dev);
    let mut all = tree.clone();
    all.extend(more);
    fat_compare(name, "filling the grown FAT", &l.dev, t.path(), &all);

    // Again: nothing more to do. Shrinking into clusters: refused, nothing written.
    let o = resize(l.path(), "vfat", s0 + 64 * MIB).unwrap();
    assert_eq!(o.method, "none");
    assert!(o.log.contains("FAT left at its size"), "{}", o.log);
    let before = l.hash();
    let e = format!("{:#}", resize(l.path(), "vfat", 30 * MIB).unwrap_err());
    assert!(e.contains("FAT cannot shrink"), "{e}");
    assert_eq!(min_size(l.path(), "vfat").unwrap(), None);
    assert_eq!(l.hash(), before);
}

#[test]
fn vfat_fat16_is_left_alone() {
    need_root("loop devices");
    need_tool("mkfs.fat", "dosfstools");
    let t = tempfile::tempdir().unwrap();
    let l = Loop::new(&t.path().join("fat16.img"), 64 * MIB);
    run("mkfs.fat", &["-I", "-F", "16", &l.dev]);
    l.set_len(96 * MIB);
    let before = l.hash();
    let o = resize(l.path(), "vfat", 96 * MIB).unwrap();
    assert_eq!((o.method.as_str(), o.old_size, o.new_size), ("none", 64 * MIB, 64 * MIB));
    assert!(o.log.contains("FAT left at its size"), "{}", o.log);
    assert_eq!(l.hash(), before);
}

// ---------------------------------------------------------------------------------------
// swap

#[test]
fn swap_header_as_mkswap_writes_it() {
    need_root("loop devices");
    need_tool("mkswap", "util-linux");
    need_tool("swaplabel", "util-linux");
    let t = tempfile::tempdir().unwrap();
    let uuid = "0b3a5d1e-2c4f-4e6a-8b9c-0d1e2f3a4b5c";
    let l = Loop::new(&t.path().join("swap.img"), 64 * MIB);
    run("mkswap", &["-L", "clone-swap", "-U", uuid, &l.dev]);
    for (step, size) in [("grow", 160 * MIB), ("shrink", 40 * MIB + 12345)] {
        if size > dev_len(l.path()) {
            l.set_len(size);
        }
        let o = resize(l.path(), "swap", size).unwrap();
        show(&o);
        let want = size / 4096 * 4096;
        assert_eq!((o.method.as_str(), o.new_size), ("native swap header", want), "{step}");
        // mkswap's own header for that size, UUID and label, on a scratch image.
        let reference = t.path().join(format!("ref-{step}.img"));
        sparse_image(&reference, want);
        run("mkswap", &["-L", "clone-swap", "-U", uuid, p(&reference)]);
        let mut ours = vec![0u8; 4096];
        let mut theirs = vec![0u8; 4096];
        use std::os::unix::fs::FileExt;
        File::open(l.path()).unwrap().read_exact_at(&mut ours, 0).unwrap();
        File::open(&reference).unwrap().read_exact_at(&mut theirs, 0).unwrap();
        assert!(ours[1024..] == theirs[1024..], "{step}: the header differs from mkswap's");
        let lab = run("swaplabel", &[&l.dev]);
        assert!(lab.contains("clone-swap") && lab.contains(uuid), "{step}: {lab}");
        if size < dev_len(l.path()) {
            l.set_len(want);
        }
    }
    assert_eq!(min_size(l.path(), "swap").unwrap(), Some(40960));
    let e = format!("{:#}", resize(l.path(), "swap", 16384).unwrap_err());
    assert!(e.contains("at least 10 pages"), "{e}");
}
