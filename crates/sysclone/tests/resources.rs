//! Memory stays bounded regardless of disk size: the same clone of a 256 MiB disk and of a
//! 64 GiB (sparse) disk, each with an ext4 filling it, peaks at about the same RSS (read from
//! the clone's JSON report). The larger filesystem has 256 times the block groups, bitmaps
//! and extents to map.

use std::path::Path;
use std::process::Command;

use sysclone_testutil::{require_root, run, Loop};

const BIN: &str = env!("CARGO_BIN_EXE_sysclone");

/// Smart-clone a fresh `size` GPT disk (ext4 filling it, 2 MiB of files) and return the
/// peak RSS and the number of bytes copied, from the JSON report.
fn clone_peak_rss(dir: &Path, size: &str) -> (u64, u64) {
    let src_img = dir.join(format!("src-{size}.img"));
    let tgt_img = dir.join(format!("tgt-{size}.img"));
    run("truncate", &["-s", size, src_img.to_str().unwrap(), tgt_img.to_str().unwrap()]);
    let src = Loop::new(&src_img, 512);
    run("sgdisk", &["-n", "1:1M:0", "-t", "1:8300", &src.0]);
    let content = dir.join(format!("content-{size}"));
    std::fs::create_dir_all(&content).unwrap();
    std::fs::write(content.join("a.bin"), sysclone_testutil::noise(2 << 20, 3)).unwrap();
    // Few inodes and a small journal keep the copy small; the block groups (and their
    // bitmaps) still scale with the size.
    run("mkfs.ext4", &["-q", "-F", "-N", "4096", "-J", "size=8", "-E", "lazy_itable_init=1,nodiscard", "-d", content.to_str().unwrap(), &src.part(1)]);
    let tgt = Loop::new(&tgt_img, 512);
    let out = Command::new(BIN)
        .args(["clone", "--source", &src.0, "--target", &tgt.0, "--mode", "smart", "--yes", "--verify", "--boot-policy", "none", "--progress", "none", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{size}: {}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["verified"], true, "{r}");
    (r["peak_rss_bytes"].as_u64().unwrap(), r["bytes_written"].as_u64().unwrap())
}

#[test]
fn clone_memory_does_not_grow_with_disk_size() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let (small, small_bytes) = clone_peak_rss(t.path(), "256M");
    let (large, large_bytes) = clone_peak_rss(t.path(), "64G");
    eprintln!("peak RSS: 256 MiB disk {} MiB ({} MiB copied), 64 GiB disk {} MiB ({} MiB copied)", small >> 20, small_bytes >> 20, large >> 20, large_bytes >> 20);
    assert!(small > 0 && large > 0);
    assert!(large <= small + (16 << 20), "peak RSS grew from {} MiB to {} MiB with the disk size", small >> 20, large >> 20);
    assert!(large < 256 << 20, "peak RSS {} MiB does not fit a 512 MiB machine with room to spare", large >> 20);
}
