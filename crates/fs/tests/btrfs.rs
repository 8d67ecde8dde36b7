//! btrfs made by mkfs.btrfs (`--rootdir`), churned through the kernel's driver, mapped,
//! copied extent by extent onto garbage, checked with `btrfs check --readonly
//! --check-data-csum` (every data block against its checksum) and compared file by file on a
//! read-only mount. Needs root (loop mounts) and btrfs-progs.

mod common;

use common::*;

fn super_field(dump: &str, key: &str) -> u64 {
    dump.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or_else(|| panic!("dump-super: no {key}"))
}

fn btrfs_case(name: &str, opts: &[&str], size: u64, max_share: f64) {
    need_root("loop mounts");
    need_tool("mkfs.btrfs", "btrfs-progs");
    need_tool("btrfs", "btrfs-progs");
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("src.img");
    let mut rng = Rng(0xb7f5 ^ size ^ opts.len() as u64);
    let mut tree = initial_tree(&mut rng, 3 << 20);
    let staging = t.path().join("content");
    write_tree(&staging, &tree);
    sparse_image(&img, size);
    let mut args = vec!["-q", "-f"];
    args.extend_from_slice(opts);
    args.extend_from_slice(&["--rootdir", p(&staging), p(&img)]);
    run("mkfs.btrfs", &args);
    let m = Mount::kernel(&img, &t.path().join("mnt"), "");
    churn(&m.dir, &mut tree, &mut rng);
    m.unmount();
    run("btrfs", &["check", "--readonly", p(&img)]);

    let map = map_image(&img);
    assert_eq!(map.fs, "btrfs");
    assert!(!map.whole, "{name}: {:?}", map.note);
    let dump = run("btrfs", &["inspect-internal", "dump-super", p(&img)]);
    let allocated = super_field(&dump, "dev_item.bytes_used");
    assert!(map.used_bytes >= allocated, "{name}: map {} < allocated {allocated}", map.used_bytes);
    assert!(map.used_bytes <= allocated + (1 << 20) + 3 * 4096, "{name}: map {} is more than the allocated chunks {allocated}", map.used_bytes);
    let share = map.used_bytes as f64 / size as f64;
    eprintln!("{name}: {} extents, {} of {size} bytes ({:.1}%)", map.extents.len(), map.used_bytes, share * 100.0);
    assert!(share < max_share, "{name}: {:.1}% mapped", share * 100.0);

    let clone = t.path().join("clone.img");
    smart_copy(&img, &clone, &map, 31);
    let (ok, out) = run_status("btrfs", &["check", "--readonly", "--check-data-csum", p(&clone)]);
    assert!(ok, "{name}: btrfs check on the clone failed:\n{out}");
    let m = Mount::kernel(&clone, &t.path().join("clone-mnt"), "ro");
    let got = read_tree(&m.dir, &[]);
    m.unmount();
    if let Err(e) = diff_trees(&tree, &got) {
        panic!("{name}: files differ in the clone: {e}");
    }
}

#[test]
fn btrfs_default_dup_metadata() {
    // Chunk granularity: mkfs and the kernel allocate generous DUP metadata chunks.
    btrfs_case("btrfs", &[], 1 << 30, 0.3);
}

#[test]
fn btrfs_single_profiles() {
    btrfs_case("btrfs-single", &["-m", "single", "-d", "single"], 512 << 20, 0.15);
}

#[test]
fn btrfs_mixed_block_groups() {
    btrfs_case("btrfs-mixed", &["--mixed"], 512 << 20, 0.2);
}
