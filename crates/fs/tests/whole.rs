//! Content without a used-block map is copied whole, with a note saying why.

mod common;

use common::*;

#[test]
fn xfs_is_copied_whole() {
    need_tool("mkfs.xfs", "xfsprogs");
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("x.img");
    sparse_image(&img, 320 << 20);
    run("mkfs.xfs", &["-q", "-f", p(&img)]);
    let m = map_image(&img);
    assert_eq!(m.fs, "xfs");
    assert!(m.whole);
    assert_eq!(m.used_bytes, 320 << 20);
    assert_eq!(m.note.as_deref(), Some("xfs: whole partition (used-block map not implemented)"));
}

#[test]
fn unknown_content_is_copied_whole() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("u.img");
    let mut rng = Rng(3);
    std::fs::write(&img, rng.bytes(3 << 20)).unwrap();
    let m = map_image(&img);
    assert_eq!((m.fs.as_str(), m.whole, m.used_bytes), ("unknown", true, 3 << 20));
    assert_eq!(m.extents, vec![sysclone_fs::Extent { start: 0, len: 3 << 20 }]);
    let j = serde_json::to_value(&m).unwrap();
    assert_eq!(j["note"], "unknown: whole partition (no known filesystem)");
}

/// Offsets are relative to the partition: a filesystem inside a bigger file maps the same.
#[test]
fn partition_offset() {
    need_tool("mkfs.fat", "dosfstools");
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("f.img");
    sparse_image(&img, 16 << 20);
    run("mkfs.fat", &["-F", "16", p(&img)]);
    let alone = map_image(&img);
    let disk = t.path().join("disk.img");
    let body = std::fs::read(&img).unwrap();
    let mut d = vec![0xAAu8; 1 << 20];
    d.extend_from_slice(&body);
    d.extend(vec![0x55u8; 1 << 20]);
    std::fs::write(&disk, d).unwrap();
    let f = std::fs::File::open(&disk).unwrap();
    let m = sysclone_fs::used_map(&f, 1 << 20, 16 << 20).unwrap();
    check_invariants(&m, 16 << 20);
    assert_eq!((m.extents.clone(), m.fs.as_str()), (alone.extents.clone(), "vfat"));
    assert!(sysclone_fs::used_map(&f, u64::MAX - 10, 100).is_err(), "overflowing partition bounds");
    assert!(sysclone_fs::used_map(&f, 20 << 20, 16 << 20).is_err(), "a partition beyond the device is a read error");
}
