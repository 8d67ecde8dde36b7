//! `sysclone save --base`: an incremental image of a disk where about 1 % of the files changed
//! stores only a small fraction of new data, references the rest in its base, and both images
//! verify and restore (fsck clean, every file's hash as at its save).

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use sysclone_testutil::{files_of, noise, require_root, run, tree_sha256, Loop};

const BIN: &str = env!("CARGO_BIN_EXE_sysclone");

fn sysclone(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn ok(out: Output, what: &str) -> Output {
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Mount partition 2 of `disk`, run `f` on it, unmount; returns the file tree's hashes.
fn with_root(disk: &Loop, mnt: &Path, f: impl FnOnce(&Path)) -> String {
    fs::create_dir_all(mnt).unwrap();
    run("mount", &[&disk.part(2), mnt.to_str().unwrap()]);
    f(mnt);
    let sums = tree_sha256(mnt);
    run("umount", &[mnt.to_str().unwrap()]);
    sums
}

/// Restore `image` onto a fresh 256 MiB disk; fsck it and return its root's file hashes.
fn restored_sums(image: &Path, dir: &Path, name: &str) -> String {
    let t = dir.join(name);
    fs::write(&t, vec![0x5Au8; 256 << 20]).unwrap();
    let l = Loop::new(&t, 512);
    ok(sysclone(&["--progress", "none", "restore", "--from", image.to_str().unwrap(), "--target", &l.0, "--yes"]), "restore");
    run("e2fsck", &["-fn", &l.part(2)]);
    run("fsck.fat", &["-n", &l.part(1)]);
    let d = files_of(&l.part(2), "ext4", &dir.join(format!("{name}.m")));
    let sums = tree_sha256(&d);
    run("umount", &[d.to_str().unwrap()]);
    sums
}

#[test]
fn incremental_save_stores_only_what_changed_and_both_restore() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let img = dir.join("disk.img");
    run("truncate", &["-s", "256M", img.to_str().unwrap()]);
    let disk = Loop::new(&img, 512);
    run("sgdisk", &["-n", "1:1M:+32M", "-t", "1:ef00", "-c", "1:ESP", "-n", "2:0:0", "-t", "2:8300", "-c", "2:root", &disk.0]);
    run("mkfs.fat", &["-F", "32", "-n", "ESP", &disk.part(1)]);
    run("mkfs.ext4", &["-q", "-F", "-L", "root", &disk.part(2)]);
    let mnt = dir.join("mnt");
    // 100 files of 1 MiB and 100 small ones.
    let sums_a = with_root(&disk, &mnt, |m| {
        for i in 0..100u32 {
            fs::write(m.join(format!("f{i:03}.bin")), noise(1 << 20, i)).unwrap();
            fs::write(m.join(format!("s{i:03}.txt")), format!("small {i}\n")).unwrap();
        }
    });
    let (a, b) = (dir.join("monday"), dir.join("tuesday"));
    ok(sysclone(&["--progress", "none", "save", "--source", &disk.0, "--to", a.to_str().unwrap(), "--chunk-size", "1M"]), "save");
    // About 1 % of the files change: one big file rewritten, one small file edited.
    let sums_b = with_root(&disk, &mnt, |m| {
        fs::write(m.join("f042.bin"), noise(1 << 20, 4242)).unwrap();
        fs::write(m.join("s007.txt"), "changed\n").unwrap();
    });
    assert_ne!(sums_a, sums_b);
    let out = ok(sysclone(&["--progress", "none", "save", "--source", &disk.0, "--to", b.to_str().unwrap(), "--base", a.to_str().unwrap(), "--json"]), "incremental save");
    drop(disk);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (used, shared, stored) = (r["bytes_used"].as_u64().unwrap(), r["bytes_shared"].as_u64().unwrap(), r["bytes_stored"].as_u64().unwrap());
    let full: u64 = serde_json::from_slice::<Value>(&sysclone(&["image", "info", a.to_str().unwrap(), "--json"]).stdout).unwrap()["compressed_bytes"].as_u64().unwrap();
    let new_fraction = (used - shared) as f64 / used as f64;
    println!(
        "incremental: {used} bytes used, {shared} found in the base; new data {:.1} % of the used bytes; the new image's own files hold {stored} bytes = {:.1} % of the full image's {full}",
        100.0 * new_fraction,
        100.0 * stored as f64 / full as f64
    );
    // The incremental save took the base's 1 MiB chunk grid.
    assert!(new_fraction < 0.08 && stored * 10 < full, "{r}");
    let m: Value = serde_json::from_slice(&fs::read(b.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["format_version"], 2);
    assert_eq!(m["bases"][0]["location"], "../monday");
    let info = String::from_utf8(ok(sysclone(&["image", "info", b.to_str().unwrap()]), "info").stdout).unwrap();
    assert!(info.contains("lies in base images") && info.contains("../monday") && info.contains("present"), "{info}");

    // Both verify (the incremental one through its base) and both restore.
    for i in [&a, &b] {
        ok(sysclone(&["--progress", "none", "image", "verify", i.to_str().unwrap()]), "verify");
    }
    assert_eq!(restored_sums(&a, dir, "ta.img"), sums_a);
    assert_eq!(restored_sums(&b, dir, "tb.img"), sums_b);

    // A damaged base: verify of the new image names the base's chunk; restore refuses.
    let moved = dir.join("monday.away");
    fs::rename(&a, &moved).unwrap();
    let out = sysclone(&["--progress", "none", "image", "verify", b.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("base image ../monday"), "{err}");
    let out = sysclone(&["--progress", "none", "restore", "--from", b.to_str().unwrap(), "--target", "/dev/null", "--yes"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("its base image ../monday"), "{}", String::from_utf8_lossy(&out.stderr));
    fs::rename(&moved, &a).unwrap();
    // A damaged chunk in the base is named as the base's.
    let c = m["chunks"].as_array().unwrap().iter().find(|c| c["base"] == 0 && c["partition"] == 2).unwrap().clone();
    let data = a.join(m["bases"][0]["data_files"][c["file"].as_u64().unwrap() as usize]["name"].as_str().unwrap());
    let mut bytes = fs::read(&data).unwrap();
    bytes[(c["file_offset"].as_u64().unwrap() + c["compressed_len"].as_u64().unwrap() / 2) as usize] ^= 1;
    fs::write(&data, &bytes).unwrap();
    let out = sysclone(&["--progress", "none", "image", "verify", b.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("of base image ../monday"), "{err}");
}
