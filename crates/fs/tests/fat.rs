//! FAT12/16/32 made by mkfs.fat, filled and churned with mtools (new files, deleted files
//! whose clusters keep stale data, an overwritten file), mapped, copied extent by extent
//! onto garbage, checked with `fsck.fat -n` and compared file by file (`mcopy` out of the
//! clone). The map must agree exactly with fsck.fat's own count of used clusters.
//! Needs dosfstools and mtools (no root: this host kernel has no vfat).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// Run an mtools command on image `img`; panic with its output on failure.
fn mtools(cmd: &str, img: &Path, args: &[&str]) {
    let out = Command::new(cmd)
        .arg("-i")
        .arg(img)
        .args(args)
        .env("MTOOLS_SKIP_CHECK", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// Copy every top-level entry of `dir` into the image's root.
fn put_dir(img: &Path, dir: &Path) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for e in entries {
        mtools("mcopy", img, &["-s", "-o", "-Q", p(&e), "::/"]);
    }
}

fn field(out: &str, pat: &str) -> u64 {
    // e.g. "Data area starts at byte 51200 (sector 100)", "2048 bytes per cluster"
    for l in out.lines() {
        if let Some(i) = l.find(pat) {
            let before: Vec<&str> = l[..i].split_whitespace().collect();
            let after: Vec<&str> = l[i + pat.len()..].split_whitespace().collect();
            let cand = if pat.starts_with(' ') { before.last().copied() } else { after.first().copied() };
            if let Some(v) = cand.and_then(|v| v.parse().ok()) {
                return v;
            }
        }
    }
    panic!("fsck.fat: no {pat:?} in\n{out}");
}

fn used_clusters(out: &str) -> u64 {
    let l = out.lines().find(|l| l.contains(" clusters") && l.contains('/')).unwrap_or_else(|| panic!("fsck.fat: no cluster summary\n{out}"));
    let frac = l.split_whitespace().rev().nth(1).unwrap();
    frac.split('/').next().unwrap().parse().unwrap()
}

fn fat_case(name: &str, mkfs_args: &[&str], size: u64, big: usize, bits: &str, max_share: f64) {
    for (t, pkg) in [("mkfs.fat", "dosfstools"), ("fsck.fat", "dosfstools"), ("mcopy", "mtools"), ("mdel", "mtools")] {
        need_tool(t, pkg);
    }
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("src.img");
    sparse_image(&img, size);
    let mut args = mkfs_args.to_vec();
    args.push(p(&img));
    run("mkfs.fat", &args);
    let mut rng = Rng(0x1234 ^ size ^ big as u64);
    let mut tree = initial_tree(&mut rng, big);
    let staging = t.path().join("content");
    write_tree(&staging, &tree);
    put_dir(&img, &staging);

    // Churn: new files, files written then deleted (stale data in free clusters), an overwrite.
    let late_dir = t.path().join("late");
    let mut late = Tree::new();
    for i in 0..6 {
        let n = 10_000 + rng.below(big as u64 / 2) as usize;
        late.insert(format!("late/l{i}.bin"), Some(rng.bytes(n)));
    }
    for i in 0..3 {
        late.insert(format!("doomed/x{i}.bin"), Some(rng.bytes(big / 4 + 1000)));
    }
    write_tree(&late_dir, &late);
    put_dir(&img, &late_dir);
    tree.extend(late);
    let doomed: Vec<String> = tree
        .keys()
        .filter(|k| k.starts_with("doomed/x") || (k.starts_with("small/") && k.ends_with("3.txt")) || k.as_str() == "medium/m1.bin")
        .cloned()
        .collect();
    for k in &doomed {
        mtools("mdel", &img, &[&format!("::/{k}")]);
        tree.remove(k);
    }
    mtools("mrd", &img, &["::/doomed"]);
    let m2 = rng.bytes(77_777);
    let m2_path = t.path().join("m2.bin");
    std::fs::write(&m2_path, &m2).unwrap();
    mtools("mcopy", &img, &["-o", p(&m2_path), "::/medium/m2.bin"]);
    tree.insert("medium/m2.bin".into(), Some(m2));

    let check = run("fsck.fat", &["-n", "-v", p(&img)]);
    assert!(check.contains(&format!("{bits} bit entries")), "{name}: not FAT{bits}:\n{check}");

    let map = map_image(&img);
    assert_eq!(map.fs, "vfat");
    assert!(!map.whole, "{name}: {:?}", map.note);
    let data_start = field(&check, "Data area starts at byte ");
    let cluster = field(&check, " bytes per cluster");
    assert_eq!(map.block_size, cluster);
    assert_eq!(map.used_bytes, data_start + used_clusters(&check) * cluster, "{name}: the map disagrees with fsck.fat's count of used clusters");
    let share = map.used_bytes as f64 / size as f64;
    eprintln!("{name}: {} extents, {} of {size} bytes ({:.1}%)", map.extents.len(), map.used_bytes, share * 100.0);
    assert!(share < max_share, "{name}: {:.1}% mapped", share * 100.0);

    let clone = t.path().join("clone.img");
    smart_copy(&img, &clone, &map, 99);
    let (ok, out) = run_status("fsck.fat", &["-n", p(&clone)]);
    assert!(ok, "{name}: fsck.fat -n on the clone failed:\n{out}");
    let out_dir = t.path().join("clone-files");
    std::fs::create_dir_all(&out_dir).unwrap();
    mtools("mcopy", &clone, &["-s", "-n", "-Q", "::/", p(&out_dir)]);
    if let Err(e) = diff_trees(&tree, &read_tree(&out_dir, &[])) {
        panic!("{name}: files differ in the clone: {e}");
    }
}

#[test]
fn fat12() {
    fat_case("fat12", &["-F", "12"], 4 << 20, 600_000, "12", 0.8);
}

#[test]
fn fat16() {
    fat_case("fat16", &["-F", "16"], 64 << 20, 2 << 20, "16", 0.2);
}

#[test]
fn fat32() {
    fat_case("fat32", &["-F", "32"], 128 << 20, 2 << 20, "32", 0.15);
}

#[test]
fn fat32_one_sector_clusters() {
    fat_case("fat32-s1", &["-F", "32", "-s", "1"], 96 << 20, 2 << 20, "32", 0.2);
}

#[test]
fn fat32_4k_sectors() {
    fat_case("fat32-4k", &["-F", "32", "-S", "4096"], 512 << 20, 2 << 20, "32", 0.05);
}
