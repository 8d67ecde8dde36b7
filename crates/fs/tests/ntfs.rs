//! NTFS made by mkntfs, filled and churned through ntfs-3g (FUSE), mapped, copied extent by
//! extent onto garbage, checked with `ntfsfix -n`, mounted read-only with ntfs-3g and
//! compared file by file. The map must agree with the volume's own count of free clusters
//! (statfs through ntfs-3g). Needs root (FUSE mounts) and ntfs-3g.

mod common;

use std::path::Path;

use common::*;

fn statfs_used(dir: &Path) -> (u64, u64) {
    // %S fundamental block size (the cluster), %b total blocks, %f free blocks
    let out = run("stat", &["-f", "-c", "%S %b %f", p(dir)]);
    let v: Vec<u64> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
    (v[0], (v[1] - v[2]) * v[0])
}

fn ntfs_case(name: &str, mkntfs_args: &[&str], size: u64, max_share: f64) {
    need_root("FUSE mounts");
    for (t, pkg) in [("mkntfs", "ntfs-3g"), ("ntfsfix", "ntfs-3g"), ("ntfs-3g", "ntfs-3g")] {
        need_tool(t, pkg);
    }
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("src.img");
    sparse_image(&img, size);
    let mut args = vec!["-F", "-f", "-q"];
    args.extend_from_slice(mkntfs_args);
    args.push(p(&img));
    run("mkntfs", &args);

    let mut rng = Rng(0xbeef ^ size);
    let mut tree = initial_tree(&mut rng, 3 << 20);
    let m = Mount::ntfs3g(&img, &t.path().join("mnt"), false);
    write_tree(&m.dir, &tree);
    churn(&m.dir, &mut tree, &mut rng);
    let (cluster, used) = statfs_used(&m.dir);
    m.unmount();
    run("ntfsfix", &["-n", p(&img)]);

    let map = map_image(&img);
    assert_eq!(map.fs, "ntfs");
    assert!(!map.whole, "{name}: {:?}", map.note);
    assert_eq!(map.block_size, cluster);
    // The bitmap's clusters, plus the backup boot sector after the last cluster.
    let extra = map.used_bytes.checked_sub(used).unwrap_or_else(|| panic!("{name}: map {} < used {used}", map.used_bytes));
    assert!(extra <= 2 * cluster, "{name}: the map has {extra} bytes more than the volume uses");
    let share = map.used_bytes as f64 / size as f64;
    eprintln!("{name}: {} extents, {} of {size} bytes ({:.1}%)", map.extents.len(), map.used_bytes, share * 100.0);
    assert!(share < max_share, "{name}: {:.1}% mapped", share * 100.0);
    assert!(map.extents.last().unwrap().end() == size, "{name}: the backup boot sector at the end is not kept");

    let clone = t.path().join("clone.img");
    smart_copy(&img, &clone, &map, 77);
    let (ok, out) = run_status("ntfsfix", &["-n", p(&clone)]);
    assert!(ok, "{name}: ntfsfix -n on the clone failed:\n{out}");
    let m = Mount::ntfs3g(&clone, &t.path().join("clone-mnt"), true);
    let got = read_tree(&m.dir, &[]);
    m.unmount();
    if let Err(e) = diff_trees(&tree, &got) {
        panic!("{name}: files differ in the clone: {e}");
    }
}

#[test]
fn ntfs_default() {
    ntfs_case("ntfs", &[], 256 << 20, 0.15);
}

#[test]
fn ntfs_512_byte_clusters() {
    ntfs_case("ntfs-c512", &["-c", "512"], 128 << 20, 0.25);
}

#[test]
fn ntfs_64k_clusters() {
    ntfs_case("ntfs-c64k", &["-c", "65536"], 512 << 20, 0.15);
}

#[test]
fn ntfs_4k_sectors() {
    ntfs_case("ntfs-s4096", &["-s", "4096"], 256 << 20, 0.15);
}

/// A volume marked dirty may have allocations only its log knows about: whole copy.
#[test]
fn dirty_volume_is_copied_whole() {
    use std::os::unix::fs::FileExt;
    need_tool("mkntfs", "ntfs-3g");
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("n.img");
    sparse_image(&img, 32 << 20);
    run("mkntfs", &["-F", "-f", "-q", p(&img)]);
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&img).unwrap();
    let len = 32 << 20;
    assert!(!sysclone_fs::used_map(&f, 0, len).unwrap().whole);
    // $Volume is MFT record 3; find its $VOLUME_INFORMATION (0x70) and set VOLUME_IS_DIRTY.
    let mut b = [0u8; 512];
    f.read_exact_at(&mut b, 0).unwrap();
    let cs = u16::from_le_bytes([b[11], b[12]]) as u64 * b[13] as u64;
    let rec_off = u64::from_le_bytes(b[0x30..0x38].try_into().unwrap()) * cs + 3 * 1024;
    let mut r = vec![0u8; 1024];
    f.read_exact_at(&mut r, rec_off).unwrap();
    assert_eq!(&r[..4], b"FILE");
    let mut a = u16::from_le_bytes([r[0x14], r[0x15]]) as usize;
    let flags_at = loop {
        let ty = u32::from_le_bytes(r[a..a + 4].try_into().unwrap());
        assert_ne!(ty, 0xFFFF_FFFF, "no $VOLUME_INFORMATION");
        if ty == 0x70 {
            break a + u16::from_le_bytes([r[a + 0x14], r[a + 0x15]]) as usize + 0x0A;
        }
        a += u32::from_le_bytes(r[a + 4..a + 8].try_into().unwrap()) as usize;
    };
    assert!(flags_at % 512 < 510, "the flags sit under a fixup");
    f.write_all_at(&[r[flags_at] | 1], rec_off + flags_at as u64).unwrap();
    let m = sysclone_fs::used_map(&f, 0, len).unwrap();
    assert!(m.whole && m.note.as_deref().unwrap().contains("dirty"), "{m:?}");
    assert_eq!(m.fs, "ntfs");
}
