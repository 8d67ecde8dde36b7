//! ext2/3/4 made by mke2fs, filled by `mke2fs -d` and then through the kernel's driver (new
//! files, deleted files whose blocks keep stale data, a rewritten file), mapped, copied
//! extent by extent onto garbage, then checked by `e2fsck -fn` and compared file by file
//! (`debugfs rdump`). The map must also agree exactly with the filesystem's own count of
//! used blocks. Needs root (loop mounts) and e2fsprogs.

mod common;

use std::path::Path;

use common::*;

struct Case<'a> {
    name: &'a str,
    mkfs: &'a str,
    opts: &'a [&'a str],
    size: u64,
    fs: &'a str,
    /// dumpe2fs must show BLOCK_UNINIT groups after the churn.
    uninit: bool,
    /// Compare used_bytes with the filesystem's own used-block count.
    exact: bool,
    /// used_bytes must stay below this share of the partition.
    max_share: f64,
}

fn seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

fn dumpe2fs_field(h: &str, key: &str) -> u64 {
    h.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().parse().ok()).unwrap_or_else(|| panic!("dumpe2fs: no {key}\n{h}"))
}

fn extract(img: &Path, out: &Path) -> Tree {
    std::fs::create_dir_all(out).unwrap();
    run("debugfs", &["-R", &format!("rdump / {}", p(out)), p(img)]);
    read_tree(out, &["lost+found"])
}

fn check_clone(src: &Path, clone: &Path, want: &Tree, work: &Path) -> Result<(), String> {
    let (ok, out) = run_status("e2fsck", &["-fn", p(clone)]);
    if !ok {
        return Err(format!("e2fsck -fn on the clone failed:\n{out}"));
    }
    let _ = src;
    let _ = std::fs::remove_dir_all(work);
    diff_trees(want, &extract(clone, work))
}

/// Every metadata block range dumpe2fs lists (superblock and descriptor copies, reserved
/// GDT blocks, bitmaps, inode tables), as (first, last) block numbers.
fn metadata_regions(dump: &str) -> Vec<(u64, u64)> {
    let keys = ["superblock at ", "Group descriptors at ", "Reserved GDT blocks at ", "Block bitmap at ", "Inode bitmap at ", "Inode table at "];
    let mut out = Vec::new();
    for l in dump.lines() {
        for k in keys {
            let Some(i) = l.find(k) else { continue };
            let tok: String = l[i + k.len()..].chars().take_while(|c| c.is_ascii_digit() || *c == '-').collect();
            let (a, b) = tok.split_once('-').unwrap_or((&tok, &tok));
            out.push((a.parse().unwrap(), b.parse().unwrap()));
        }
    }
    out
}

/// The clone holds the source's bytes in every metadata region, including the backups
/// in BLOCK_UNINIT groups that neither e2fsck -fn nor the file comparison reads.
fn compare_metadata(src: &Path, clone: &Path, bs: u64) -> usize {
    use std::os::unix::fs::FileExt;
    let dump = run("dumpe2fs", &[p(src)]);
    let regions = metadata_regions(&dump);
    let (a, b) = (std::fs::File::open(src).unwrap(), std::fs::File::open(clone).unwrap());
    let mut x = vec![0u8; bs as usize];
    let mut y = vec![0u8; bs as usize];
    for &(first, last) in &regions {
        for blk in first..=last {
            a.read_exact_at(&mut x, blk * bs).unwrap();
            b.read_exact_at(&mut y, blk * bs).unwrap();
            assert!(x == y, "metadata block {blk} differs in the clone");
        }
    }
    regions.len()
}

fn ext_case(c: Case) {
    need_root("loop mounts");
    for (t, pkg) in [(c.mkfs, "e2fsprogs"), ("e2fsck", "e2fsprogs"), ("debugfs", "e2fsprogs"), ("dumpe2fs", "e2fsprogs")] {
        need_tool(t, pkg);
    }
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("src.img");
    let mut rng = Rng(seed(c.name));
    let mut tree = initial_tree(&mut rng, 2 << 20);
    let staging = t.path().join("content");
    write_tree(&staging, &tree);
    sparse_image(&img, c.size);
    let mut args = vec!["-q", "-F"];
    args.extend_from_slice(c.opts);
    args.extend_from_slice(&["-d", p(&staging), p(&img)]);
    run(c.mkfs, &args);
    let m = Mount::kernel(&img, &t.path().join("mnt"), "");
    churn(&m.dir, &mut tree, &mut rng);
    m.unmount();
    run("e2fsck", &["-fn", p(&img)]);
    assert!(diff_trees(&tree, &extract(&img, &t.path().join("src-files"))).is_ok(), "the source itself does not hold the expected files");

    let map = map_image(&img);
    assert_eq!(map.fs, c.fs, "{}", c.name);
    assert!(!map.whole, "{}: whole map: {:?}", c.name, map.note);
    let h = run("dumpe2fs", &["-h", p(&img)]);
    let bs = dumpe2fs_field(&h, "Block size:");
    let blocks = dumpe2fs_field(&h, "Block count:");
    let free = dumpe2fs_field(&h, "Free blocks:");
    assert_eq!(map.block_size % bs, 0);
    if c.exact {
        assert_eq!(map.used_bytes, (blocks - free) * bs, "{}: the map disagrees with the filesystem's own count of used blocks", c.name);
    } else {
        assert!(map.used_bytes >= (blocks - free) * bs, "{}: fewer bytes than the filesystem uses", c.name);
    }
    if c.uninit {
        let full = run("dumpe2fs", &[p(&img)]);
        let n = full.matches("BLOCK_UNINIT").count();
        assert!(n > 0, "{}: expected BLOCK_UNINIT groups, dumpe2fs shows none", c.name);
        eprintln!("{}: {n} BLOCK_UNINIT groups", c.name);
    }
    let share = map.used_bytes as f64 / c.size as f64;
    eprintln!("{}: {} extents, {} of {} bytes used ({:.1}%)", c.name, map.extents.len(), map.used_bytes, c.size, share * 100.0);
    assert!(share < c.max_share, "{}: {:.1}% of the partition mapped", c.name, share * 100.0);

    let clone = t.path().join("clone.img");
    smart_copy(&img, &clone, &map, seed(c.name) ^ 0x5555);
    if let Err(e) = check_clone(&img, &clone, &tree, &t.path().join("clone-files")) {
        panic!("{}: {e}", c.name);
    }
    let n = compare_metadata(&img, &clone, bs);
    assert!(n >= 5, "{}: dumpe2fs listed only {n} metadata regions", c.name);
}

#[test]
fn ext2() {
    ext_case(Case { name: "ext2", mkfs: "mkfs.ext2", opts: &[], size: 64 << 20, fs: "ext2", uninit: false, exact: true, max_share: 0.25 });
}

#[test]
fn ext3() {
    ext_case(Case { name: "ext3", mkfs: "mkfs.ext3", opts: &[], size: 96 << 20, fs: "ext3", uninit: false, exact: true, max_share: 0.25 });
}

#[test]
fn ext4_default() {
    ext_case(Case { name: "ext4", mkfs: "mkfs.ext4", opts: &[], size: 128 << 20, fs: "ext4", uninit: false, exact: true, max_share: 0.2 });
}

#[test]
fn ext4_without_flex_bg() {
    ext_case(Case {
        name: "ext4-noflex",
        mkfs: "mkfs.ext4",
        opts: &["-O", "^flex_bg"],
        size: 128 << 20,
        fs: "ext4",
        uninit: false,
        exact: true,
        max_share: 0.2,
    });
}

#[test]
fn ext4_1k_blocks() {
    ext_case(Case { name: "ext4-1k", mkfs: "mkfs.ext4", opts: &["-b", "1024"], size: 64 << 20, fs: "ext4", uninit: true, exact: true, max_share: 0.3 });
}

#[test]
fn ext4_2k_blocks_uninit_bg_without_metadata_csum() {
    let opts = &["-b", "2048", "-O", "^metadata_csum,uninit_bg"];
    ext_case(Case { name: "ext4-2k-uninit_bg", mkfs: "mkfs.ext4", opts, size: 256 << 20, fs: "ext4", uninit: true, exact: true, max_share: 0.15 });
}

/// A big, nearly empty 64-bit filesystem: most groups stay BLOCK_UNINIT.
#[test]
fn ext4_64bit_lazy_itable_init_block_uninit() {
    let opts = &["-O", "64bit", "-E", "lazy_itable_init=1"];
    ext_case(Case { name: "ext4-64bit-uninit", mkfs: "mkfs.ext4", opts, size: 1 << 30, fs: "ext4", uninit: true, exact: true, max_share: 0.08 });
}

/// 1 KiB blocks on a larger image: 128 groups, most of them BLOCK_UNINIT, flex_bg
/// metadata packed in the first groups.
#[test]
fn ext4_1k_many_uninit_groups() {
    let opts = &["-b", "1024", "-O", "64bit", "-E", "lazy_itable_init=1"];
    ext_case(Case { name: "ext4-1k-many", mkfs: "mkfs.ext4", opts, size: 1 << 30, fs: "ext4", uninit: true, exact: true, max_share: 0.1 });
}

#[test]
fn ext4_meta_bg() {
    let opts = &["-O", "meta_bg,^resize_inode", "-b", "1024"];
    ext_case(Case { name: "ext4-meta_bg", mkfs: "mkfs.ext4", opts, size: 256 << 20, fs: "ext4", uninit: true, exact: true, max_share: 0.15 });
}

#[test]
fn ext4_sparse_super2() {
    let opts = &["-O", "sparse_super2", "-E", "num_backup_sb=1", "-b", "1024"];
    ext_case(Case { name: "ext4-sparse_super2", mkfs: "mkfs.ext4", opts, size: 256 << 20, fs: "ext4", uninit: true, exact: true, max_share: 0.15 });
}

#[test]
fn ext4_bigalloc() {
    let opts = &["-O", "bigalloc", "-C", "65536"];
    ext_case(Case { name: "ext4-bigalloc", mkfs: "mkfs.ext4", opts, size: 512 << 20, fs: "ext4", uninit: false, exact: false, max_share: 0.2 });
}

/// The check has teeth: leaving out one used extent (file data) is detected.
#[test]
fn leaving_out_a_used_extent_is_detected() {
    need_root("loop mounts");
    need_tool("mkfs.ext4", "e2fsprogs");
    need_tool("debugfs", "e2fsprogs");
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("src.img");
    let mut rng = Rng(7);
    let tree = initial_tree(&mut rng, 2 << 20);
    let staging = t.path().join("content");
    write_tree(&staging, &tree);
    sparse_image(&img, 64 << 20);
    run("mkfs.ext4", &["-q", "-F", "-d", p(&staging), p(&img)]);
    let mut map = map_image(&img);
    let clone = t.path().join("clone.img");
    smart_copy(&img, &clone, &map, 1);
    check_clone(&img, &clone, &tree, &t.path().join("ok")).unwrap();
    // Leave out 64 KiB of big.bin's data (logical block 100 on, as debugfs maps it).
    let out = run("debugfs", &["-R", "bmap /big.bin 100", p(&img)]);
    let pblk: u64 = out.trim().parse().unwrap_or_else(|_| panic!("debugfs bmap: {out}"));
    let bs = map.block_size;
    remove_range(&mut map, pblk * bs, 65536);
    smart_copy(&img, &clone, &map, 2);
    let e = check_clone(&img, &clone, &tree, &t.path().join("bad")).expect_err("a clone missing 64 KiB of used data passed the checks");
    assert!(e.contains("big.bin"), "{e}");
}

/// States where the bitmaps cannot be trusted, or the partition is too small: whole copy.
#[test]
fn states_that_force_a_whole_copy() {
    use std::os::unix::fs::FileExt;
    need_tool("mkfs.ext4", "e2fsprogs");
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("e.img");
    sparse_image(&img, 16 << 20);
    run("mkfs.ext4", &["-q", "-F", p(&img)]);
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&img).unwrap();
    let len = 16 << 20;
    let ok = sysclone_fs::used_map(&f, 0, len).unwrap();
    assert!(!ok.whole && ok.fs == "ext4");
    let patch = |off: u64, or: u32, want: &str| {
        let mut b = [0u8; 4];
        f.read_exact_at(&mut b, off).unwrap();
        f.write_all_at(&(u32::from_le_bytes(b) | or).to_le_bytes(), off).unwrap();
        let m = sysclone_fs::used_map(&f, 0, len).unwrap();
        check_invariants(&m, len);
        assert!(m.whole && m.note.as_deref().unwrap_or("").contains(want), "{want}: {m:?}");
        f.write_all_at(&b, off).unwrap();
    };
    patch(1024 + 0x60, 0x4, "journal needs recovery");
    patch(1024 + 0x60, 0x8000_0000, "unknown incompatible");
    patch(1024 + 0x64, 0x80, "unknown read-only");
    patch(1024 + 0x3A - 2, 0x2 << 16, "errors");
    // A descriptor (group 0's, in block 2 of this 1 KiB-block filesystem) that fails its
    // checksum, so its BLOCK_UNINIT flag cannot be trusted either.
    assert_eq!(run("dumpe2fs", &["-h", p(&img)]).lines().find(|l| l.starts_with("Block size:")).unwrap().split_whitespace().last(), Some("1024"));
    patch(2048 + 0x0C, 0x4000, "checksum");
    // An ext2 that was not cleanly unmounted (no journal to tell what changed).
    let e2 = t.path().join("e2.img");
    sparse_image(&e2, 8 << 20);
    run("mkfs.ext2", &["-q", "-F", p(&e2)]);
    let g = std::fs::OpenOptions::new().read(true).write(true).open(&e2).unwrap();
    assert!(!sysclone_fs::used_map(&g, 0, 8 << 20).unwrap().whole);
    g.write_all_at(&[0u8, 0], 1024 + 0x3A).unwrap();
    let m = sysclone_fs::used_map(&g, 0, 8 << 20).unwrap();
    assert!(m.whole && m.note.unwrap().contains("not cleanly unmounted"));
    let m = sysclone_fs::used_map(&f, 0, len - 4096).unwrap();
    assert!(m.whole && m.note.unwrap().contains("larger than the partition"));
    // Every patch was undone.
    let m = sysclone_fs::used_map(&f, 0, len).unwrap();
    assert_eq!(m.extents, ok.extents);
}

/// metadata_csum_seed: descriptors are checksummed from the stored seed, not the UUID
/// (which `tune2fs -U` changed afterwards).
#[test]
fn ext4_metadata_csum_seed_after_uuid_change() {
    need_tool("mkfs.ext4", "e2fsprogs");
    need_tool("tune2fs", "e2fsprogs");
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("e.img");
    sparse_image(&img, 64 << 20);
    run("mkfs.ext4", &["-q", "-F", "-O", "metadata_csum_seed", p(&img)]);
    run("tune2fs", &["-U", "random", p(&img)]);
    run("e2fsck", &["-fn", p(&img)]);
    let m = map_image(&img);
    assert!(!m.whole, "{:?}", m.note);
    let h = run("dumpe2fs", &["-h", p(&img)]);
    let (bs, blocks, free) = (dumpe2fs_field(&h, "Block size:"), dumpe2fs_field(&h, "Block count:"), dumpe2fs_field(&h, "Free blocks:"));
    assert_eq!(m.used_bytes, (blocks - free) * bs);
}
