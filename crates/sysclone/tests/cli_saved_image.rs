//! `sysclone save`, `restore` and `image verify|info|export` on real loop devices: a disk
//! with FAT32, ext4, NTFS and swap is saved, checked, restored onto a larger disk and exported;
//! damaged images are reported precisely and never restored past the damage.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use sysclone_testutil::{assert_multi_fs_copy, make_gpt_disk, make_multi_fs_disk, require_root, run, FaultyDisk, Loop};

const BIN: &str = env!("CARGO_BIN_EXE_sysclone");

struct Fixture {
    dir: PathBuf,
    src_img: PathBuf,
    image: PathBuf,
    save_report: Value,
}

/// One source disk and its image, made once for every test in this file.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        require_root();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("saved-image");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let src_img = make_multi_fs_disk(&dir);
        let image = dir.join("image");
        let src = Loop::with_args(&src_img, &["--read-only"]);
        // Small data files, so an image has several of them.
        let out = sysclone(&["save", "--source", &src.0, "--to", image.to_str().unwrap(), "--split-size", "8M", "--json"]);
        assert!(out.status.success(), "save failed: {}", String::from_utf8_lossy(&out.stderr));
        let save_report: Value = serde_json::from_slice(&out.stdout).unwrap();
        Fixture { dir, src_img, image, save_report }
    })
}

fn sysclone(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn manifest(image: &Path) -> Value {
    serde_json::from_slice(&fs::read(image.join("manifest.json")).unwrap()).unwrap()
}

/// A copy of the fixture's image to damage.
fn image_copy(name: &str) -> PathBuf {
    let f = fixture();
    let d = f.dir.join(name);
    let _ = fs::remove_dir_all(&d);
    run("cp", &["-r", f.image.to_str().unwrap(), d.to_str().unwrap()]);
    d
}

/// `image verify --json`: must fail; returns its report.
fn verify_fails(image: &Path) -> Value {
    let out = sysclone(&["--progress", "none", "image", "verify", image.to_str().unwrap(), "--json"]);
    // Exit status 4: verification failed (docs/exit-codes.md).
    assert_eq!(out.status.code(), Some(4), "verify passed a damaged image: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// A target image of `size` holding an old GPT and a known pattern elsewhere.
fn target(name: &str, size: u64) -> PathBuf {
    let p = fixture().dir.join(name);
    fs::write(&p, vec![0xA5u8; size as usize]).unwrap();
    run("sgdisk", &["-o", "-n", "1:1M:+8M", p.to_str().unwrap()]);
    p
}

fn has_primary_gpt(img: &Path) -> bool {
    let b = fs::read(img).unwrap();
    &b[512..520] == b"EFI PART"
}

/// Restore `image` onto a fresh target; must fail. Returns (stderr, target bytes).
fn restore_fails(image: &Path, name: &str) -> (String, Vec<u8>) {
    let t = target(name, 300 << 20);
    let l = Loop::new(&t, 512);
    let out = sysclone(&["--progress", "none", "restore", "--from", image.to_str().unwrap(), "--target", &l.0, "--yes"]);
    drop(l);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "restore of a damaged image succeeded:\n{err}");
    let bytes = fs::read(&t).unwrap();
    fs::remove_file(&t).unwrap();
    (err, bytes)
}

#[test]
fn save_verify_restore_export_round_trip() {
    let f = fixture();
    let r = &f.save_report;
    let (used, stored) = (r["bytes_used"].as_u64().unwrap(), r["bytes_stored"].as_u64().unwrap());
    assert!(used > 10 << 20 && used < 96 << 20, "a mostly empty 256 MiB disk: {r}");
    assert!(stored < used, "compression did nothing: {r}");
    assert!(r["data_files"].as_u64().unwrap() >= 2, "--split-size 8M made one data file: {r}");
    for e in fs::read_dir(&f.image).unwrap().flatten() {
        assert!(e.metadata().unwrap().len() <= 8 << 20, "{:?} is larger than the split size", e.path());
    }
    let out = sysclone(&["--progress", "none", "image", "verify", f.image.to_str().unwrap()]);
    assert!(out.status.success(), "verify: {}", String::from_utf8_lossy(&out.stderr));

    let out = sysclone(&["image", "info", f.image.to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = info["partitions"].as_array().unwrap().iter().map(|p| p["fs"]["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["vfat", "ext4", "ntfs", "swap"], "{info}");
    assert_eq!(info["stored_bytes"].as_u64(), Some(used));
    assert_eq!(info["table"]["kind"], "gpt");
    assert_eq!(info["partitions"][1]["name"], "root");
    let text = String::from_utf8(sysclone(&["image", "info", f.image.to_str().unwrap()]).stdout).unwrap();
    assert!(text.contains("ratio") && text.contains("Microsoft basic data"), "{text}");

    // Restore onto a larger disk holding an old table and a pattern.
    let tgt_img = target("round-trip-target.img", 300 << 20);
    let tgt = Loop::new(&tgt_img, 512);
    let out = sysclone(&["--progress", "none", "restore", "--from", f.image.to_str().unwrap(), "--target", &tgt.0, "--yes", "--verify", "--json"]);
    assert!(out.status.success(), "restore failed: {}", String::from_utf8_lossy(&out.stderr));
    let rr: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rr["verified"], true, "{rr}");
    assert_eq!(rr["bytes_written"].as_u64(), Some(used), "{rr}");
    let src = Loop::with_args(&f.src_img, &["--read-only"]);
    assert_multi_fs_copy(&src, &tgt, &f.dir.join("m"));
    drop(src);
    drop(tgt);
    let (a, b) = (fs::read(&f.src_img).unwrap(), fs::read(&tgt_img).unwrap());
    assert_eq!(a[1024..17408], b[1024..17408], "GPT entries differ");
    assert_eq!(a[..446], b[..446], "boot code differs");

    // Export: byte-identical to the source in every stored area and the partition table.
    let raw = f.dir.join("export.raw");
    let _ = fs::remove_file(&raw);
    let out = sysclone(&["--progress", "none", "image", "export", f.image.to_str().unwrap(), "--raw", raw.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "export: {}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["schema"] == 1 && r["bytes_written"].as_u64().unwrap() > 0, "{r}");
    let v = run("sgdisk", &["-v", raw.to_str().unwrap()]);
    assert!(v.contains("No problems found"), "{v}");
    let x = fs::read(&raw).unwrap();
    assert_eq!(x.len(), a.len());
    assert!(x[..17408] == a[..17408] && x[a.len() - 33 * 512..] == a[a.len() - 33 * 512..], "table areas differ");
    for c in manifest(&f.image)["chunks"].as_array().unwrap() {
        let (o, l) = (c["offset"].as_u64().unwrap() as usize, c["len"].as_u64().unwrap() as usize);
        assert!(x[o..o + l] == a[o..o + l], "export differs from the source at {o}+{l}");
    }
    let allocated = run("du", &["-k", raw.to_str().unwrap()]).split_whitespace().next().unwrap().parse::<u64>().unwrap() << 10;
    assert!(allocated < used + (4 << 20), "export is not sparse: {allocated} bytes allocated");
    fs::remove_file(&raw).unwrap();
    // An existing file is never overwritten.
    fs::write(&raw, b"keep").unwrap();
    assert!(!sysclone(&["image", "export", f.image.to_str().unwrap(), "--raw", raw.to_str().unwrap()]).status.success());
    assert_eq!(fs::read(&raw).unwrap(), b"keep");
}

/// Flip one byte in the middle of the first large ext4 chunk of `img`; returns the chunk's
/// index and manifest entry.
fn flip_an_ext4_chunk(img: &Path) -> (usize, Value) {
    let m = manifest(img);
    let chunks = m["chunks"].as_array().unwrap();
    let k = chunks.iter().position(|c| c["partition"] == 2 && c["len"].as_u64().unwrap() > 65536).expect("an ext4 chunk");
    let c = chunks[k].clone();
    let file = img.join(m["data_files"][c["file"].as_u64().unwrap() as usize]["name"].as_str().unwrap());
    let mut data = fs::read(&file).unwrap();
    data[(c["file_offset"].as_u64().unwrap() + c["compressed_len"].as_u64().unwrap() / 2) as usize] ^= 0x40;
    fs::write(&file, data).unwrap();
    (k, c)
}

#[test]
fn flipped_byte_is_named_and_never_written() {
    let img = image_copy("flipped");
    let (k, c) = flip_an_ext4_chunk(&img);
    let off = c["offset"].as_u64().unwrap();

    let r = verify_fails(&img);
    let problems = r["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{r}");
    assert_eq!(problems[0]["chunk"].as_u64(), Some(k as u64));
    assert_eq!(problems[0]["partition"], 2);
    assert_eq!(problems[0]["disk_offset"].as_u64(), Some(off));

    let (err, t) = restore_fails(&img, "flipped-target.img");
    assert!(err.contains(&format!("chunk {k} (partition 2, disk offset {off}")), "{err}");
    assert_ne!(&t[512..520], b"EFI PART", "a stopped restore has a primary GPT");
    let len = c["len"].as_u64().unwrap() as usize;
    assert!(t[off as usize..off as usize + len].iter().all(|&b| b == 0xA5), "the bad chunk was written");
}

#[test]
fn truncated_and_deleted_data_files_are_named() {
    let img = image_copy("truncated");
    let m = manifest(&img);
    let last = m["data_files"].as_array().unwrap().len() - 1;
    let name = m["data_files"][last]["name"].as_str().unwrap().to_string();
    let full = m["data_files"][last]["bytes"].as_u64().unwrap();
    run("truncate", &["-s", &(full / 2).to_string(), img.join(&name).to_str().unwrap()]);
    let first_cut = m["chunks"].as_array().unwrap().iter().position(|c| c["file"].as_u64() == Some(last as u64) && c["file_offset"].as_u64().unwrap() + c["compressed_len"].as_u64().unwrap() > full / 2).unwrap();
    let r = verify_fails(&img);
    let text = r.to_string();
    assert!(text.contains(&format!("{name} is {} bytes, the manifest says {full}", full / 2)), "{text}");
    let bad: Vec<u64> = r["problems"].as_array().unwrap().iter().filter_map(|p| p["chunk"].as_u64()).collect();
    assert_eq!(bad.first().copied(), Some(first_cut as u64), "{text}");
    assert!(text.contains("too short for this chunk (truncated?)"), "{text}");
    let (err, t) = restore_fails(&img, "truncated-target.img");
    assert!(err.contains(&format!("chunk {first_cut} (")) && err.contains("truncated"), "{err}");
    assert_ne!(&t[512..520], b"EFI PART");

    fs::remove_file(img.join(&name)).unwrap();
    let in_file = m["chunks"].as_array().unwrap().iter().filter(|c| c["file"].as_u64() == Some(last as u64)).count();
    let first = m["chunks"].as_array().unwrap().iter().position(|c| c["file"].as_u64() == Some(last as u64)).unwrap();
    let r = verify_fails(&img);
    let text = r.to_string();
    assert!(text.contains(&format!("{name} is missing")), "{text}");
    assert_eq!(r["problems"].as_array().unwrap().iter().filter(|p| p["chunk"].is_u64()).count(), in_file, "{text}");
    let (err, t) = restore_fails(&img, "deleted-target.img");
    assert!(err.contains(&format!("chunk {first} (")) && err.contains(&format!("cannot open {name}")), "{err}");
    assert_ne!(&t[512..520], b"EFI PART");
}

#[test]
fn altered_manifest_is_refused() {
    let img = image_copy("altered");
    let text = fs::read_to_string(img.join("manifest.json")).unwrap();
    let mut m: Value = serde_json::from_str(&text).unwrap();
    let k = 3;
    m["chunks"][k]["sha256"] = Value::String("0".repeat(64));
    let altered = serde_json::to_string_pretty(&m).unwrap();
    fs::write(img.join("manifest.json"), &altered).unwrap();
    // Changed behind the checksum's back: verify says both; restore writes nothing at all.
    let r = verify_fails(&img);
    let s = r.to_string();
    assert!(s.contains("the manifest was changed after the save"), "{s}");
    assert!(r["problems"].as_array().unwrap().iter().any(|p| p["chunk"].as_u64() == Some(k as u64) && p["message"].as_str().unwrap().contains("SHA-256 mismatch")), "{s}");
    let (err, t) = restore_fails(&img, "altered-target.img");
    assert!(err.contains("does not match manifest.json.sha256"), "{err}");
    assert_eq!(&t[512..520], b"EFI PART", "the target was touched although the manifest was refused");
    assert!(t[2 << 20..3 << 20].iter().all(|&b| b == 0xA5));

    // Changed with a matching checksum (damage the checksum cannot see): the chunk stops it.
    let sum = run("sh", &["-c", "cd \"$1\" && sha256sum manifest.json > manifest.json.sha256", "sh", img.to_str().unwrap()]);
    assert!(sum.is_empty());
    let r = verify_fails(&img);
    assert_eq!(r["problems"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["problems"][0]["chunk"].as_u64(), Some(k as u64));
    let (err, t) = restore_fails(&img, "altered2-target.img");
    assert!(err.contains(&format!("chunk {k} (")) && err.contains("SHA-256 mismatch"), "{err}");
    assert_ne!(&t[512..520], b"EFI PART");

    // A chunk entry dropped (checksum updated): the hole is found before anything is written.
    let mut m: Value = serde_json::from_str(&text).unwrap();
    m["chunks"].as_array_mut().unwrap().remove(5);
    fs::write(img.join("manifest.json"), serde_json::to_string_pretty(&m).unwrap()).unwrap();
    run("sh", &["-c", "cd \"$1\" && sha256sum manifest.json > manifest.json.sha256", "sh", img.to_str().unwrap()]);
    let out = sysclone(&["image", "verify", img.to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("are in no chunk"), "{}", String::from_utf8_lossy(&out.stderr));
    let (err, t) = restore_fails(&img, "hole-target.img");
    assert!(err.contains("chunk entries are missing from the manifest"), "{err}");
    assert_eq!(&t[512..520], b"EFI PART", "the target was touched although the manifest was refused");

    // Not JSON any more.
    fs::write(img.join("manifest.json"), &altered[..altered.len() / 2]).unwrap();
    let out = sysclone(&["image", "verify", img.to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("manifest is not valid JSON"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn too_small_target_is_refused_by_the_guard() {
    let f = fixture();
    // Not even the planner can fit it: the ESP alone is 40 MiB.
    let t = target("small-target.img", 48 << 20);
    let before = sysclone_testutil::sha256(&t);
    let l = Loop::new(&t, 512);
    let out = sysclone(&["restore", "--from", f.image.to_str().unwrap(), "--target", &l.0, "--yes"]);
    drop(l);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("refusing to write") && err.contains("the image does not fit") && err.contains("minimum target size"), "{err}");
    assert_eq!(sysclone_testutil::sha256(&t), before);
    assert!(has_primary_gpt(&t));
    fs::remove_file(&t).unwrap();
}

#[test]
fn unreadable_sectors_are_stored_as_zeros_and_reported() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let src_img = make_gpt_disk(t.path(), "bad.img", "96M", 512);
    // Two bad sectors in the boot area (always stored, whatever the filesystems use).
    let image = t.path().join("image");
    {
        let bad = FaultyDisk::new(&src_img, &[100, 1500]);
        let out = sysclone(&["--progress", "none", "save", "--source", bad.dev(), "--to", image.to_str().unwrap(), "--json"]);
        // Exit status 5: finished, with unreadable sectors stored as zeros.
        assert_eq!(out.status.code(), Some(5), "save: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("8 KiB of the source could not be read"), "{}", String::from_utf8_lossy(&out.stderr));
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["schema"], 1, "{r}");
        // The loop device over the FUSE export fails whole 4 KiB pages around each bad sector.
        assert_eq!(r["unreadable"], serde_json::json!([[49152, 4096], [765952, 4096]]), "{r}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("unreadable: 4096 bytes at 49152 (outside any partition), stored as zeros"));
    }
    assert!(sysclone(&["--progress", "none", "image", "verify", image.to_str().unwrap()]).status.success());
    let info = String::from_utf8(sysclone(&["image", "info", image.to_str().unwrap()]).stdout).unwrap();
    assert!(info.contains("unreadable on the source (stored as zeros): 4096 bytes at 49152, 4096 bytes at 765952"), "{info}");

    let tgt_img = t.path().join("tgt.img");
    fs::write(&tgt_img, vec![0xA5u8; 128 << 20]).unwrap();
    let tgt = Loop::new(&tgt_img, 512);
    let out = sysclone(&["--progress", "none", "restore", "--from", image.to_str().unwrap(), "--target", &tgt.0, "--yes"]);
    assert!(out.status.success(), "restore failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not be read when the image was saved"));
    run("e2fsck", &["-fn", &tgt.part(2)]);
    drop(tgt);
    let (a, b) = (fs::read(&src_img).unwrap(), fs::read(&tgt_img).unwrap());
    for (s, e) in [(17408, 49152), (53248, 765952), (770048, 1 << 20)] {
        assert!(a[s..e] == b[s..e], "boot area {s}..{e} differs");
    }
    assert!(b[49152..53248].iter().chain(&b[765952..770048]).all(|&x| x == 0), "unreadable sectors not zero");
}

#[test]
fn save_refuses_the_disk_it_saves_and_dry_run_writes_nothing() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let src_img = make_gpt_disk(t.path(), "own.img", "96M", 512);
    let src = Loop::new(&src_img, 512);
    let dry = t.path().join("dry");
    let out = sysclone(&["save", "--source", &src.0, "--to", dry.to_str().unwrap(), "--dry-run"]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stderr).contains("dry run: nothing written"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!dry.exists());
    // Only partition 2: partition 1 is listed, not stored.
    let some = t.path().join("some");
    let out = sysclone(&["--progress", "none", "save", "--source", &src.0, "--to", some.to_str().unwrap(), "--partitions", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info: Value = serde_json::from_slice(&sysclone(&["image", "info", some.to_str().unwrap(), "--json"]).stdout).unwrap();
    assert_eq!(info["partitions"][0]["stored"], "none", "{info}");
    assert_eq!(info["partitions"][0]["stored_bytes"], 0);
    assert_eq!(info["partitions"][1]["stored"], "used");
    assert!(manifest(&some)["chunks"].as_array().unwrap().iter().all(|c| c["partition"] != 1));
    let out = sysclone(&["save", "--source", &src.0, "--to", t.path().join("x").to_str().unwrap(), "--partitions", "7"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("has no partition 7"));
    let mnt = t.path().join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    run("mount", &[&src.part(2), mnt.to_str().unwrap()]);
    let out = sysclone(&["save", "--source", &src.0, "--to", mnt.join("img").to_str().unwrap()]);
    // A relative path too.
    let rel = Command::new(BIN).args(["save", "--source", &src.0, "--to", "sub/img"]).current_dir(&mnt).output().unwrap();
    run("umount", &[mnt.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("the disk being saved"), "{err}");
    let err = String::from_utf8_lossy(&rel.stderr);
    assert!(!rel.status.success() && err.contains("the disk being saved"), "{err}");
}

/// The target's layout: (start, size) in bytes of partitions 1–4, as the kernel sees them.
fn table_of(tgt: &Loop) -> Vec<(u64, u64)> {
    let sys = |n: u32, what: &str| -> u64 {
        let name = tgt.part(n).trim_start_matches("/dev/").to_string();
        fs::read_to_string(format!("/sys/class/block/{name}/{what}")).unwrap().trim().parse::<u64>().unwrap() * 512
    };
    (1..=4).map(|n| (sys(n, "start"), sys(n, "size"))).collect()
}

fn check_restored(f: &Fixture, tgt: &Loop, name: &str) {
    let src = Loop::with_args(&f.src_img, &["--read-only"]);
    assert_multi_fs_copy(&src, tgt, &f.dir.join(name));
}

#[test]
fn restore_onto_a_smaller_disk_shrinks_from_the_image() {
    let f = fixture();
    let t = target("smaller-target.img", 220 << 20);
    let tgt = Loop::new(&t, 512);
    let before = sysclone_testutil::sha256(&t);
    let args = ["--progress", "none", "restore", "--from", f.image.to_str().unwrap(), "--target", &tgt.0, "--yes", "--policy", "grow", "--grow-part", "2"];
    let out = sysclone(&[&args[..], &["--dry-run"]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("dry run: nothing written") && err.contains("can shrink to"), "{err}");
    assert_eq!(sysclone_testutil::sha256(&t), before, "a dry run wrote");
    let out = sysclone(&[&args[..], &["--json"]].concat());
    assert!(out.status.success(), "restore failed: {}", String::from_utf8_lossy(&out.stderr));
    let rr: Value = serde_json::from_slice(&out.stdout).unwrap();
    let parts = rr["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 4, "{rr}");
    assert!(parts[1]["resize"].as_str().unwrap().contains("shrunk"), "{rr}");
    let layout = table_of(&tgt);
    assert!(layout[1].1 < 100 << 20 && layout.iter().all(|p| p.0 + p.1 <= 220 << 20), "{layout:?}");
    check_restored(f, &tgt, "smaller");
}

#[test]
fn restore_onto_a_larger_disk_grows_with_the_grow_policy() {
    let f = fixture();
    let t = target("larger-target.img", 320 << 20);
    let tgt = Loop::new(&t, 512);
    let out = sysclone(&["--progress", "none", "restore", "--from", f.image.to_str().unwrap(), "--target", &tgt.0, "--yes", "--policy", "grow", "--verify", "--json"]);
    assert!(out.status.success(), "restore failed: {}", String::from_utf8_lossy(&out.stderr));
    let rr: Value = serde_json::from_slice(&out.stdout).unwrap();
    let layout = table_of(&tgt);
    // The last data partition (NTFS) takes the new space; the others keep their size.
    assert!(layout[2].1 > 120 << 20 && layout[1].1 == 100 << 20, "{layout:?} {rr}");
    assert_eq!(rr["verified"], true, "{rr}");
    check_restored(f, &tgt, "larger");
}

/// A TCP proxy to `upstream` that cuts each of the first `cuts` connections after it relayed
/// `after` bytes of response: a network that drops. Returns its port and the cut count.
fn dropping_proxy(upstream: u16, cuts: usize, after: usize) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let done2 = done.clone();
    std::thread::spawn(move || {
        for client in l.incoming() {
            let Ok(mut client) = client else { break };
            let Ok(mut server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else { continue };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut s2);
                let _ = s2.shutdown(std::net::Shutdown::Write);
            });
            let cut = done2.load(Ordering::SeqCst) < cuts;
            let done3 = done2.clone();
            std::thread::spawn(move || {
                let mut relayed = 0;
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n) = server.read(&mut buf) {
                    if n == 0 || client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    relayed += n;
                    if cut && relayed >= after {
                        done3.fetch_add(1, Ordering::SeqCst);
                        let _ = client.shutdown(std::net::Shutdown::Both);
                        let _ = server.shutdown(std::net::Shutdown::Both);
                        break;
                    }
                }
                let _ = client.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (port, done)
}

/// Restore from nginx over HTTP through a connection that drops twice: the chunk being
/// fetched is asked for again on a new connection, the restore completes, and the result is
/// the same as from the directory.
#[test]
fn restore_over_http_resumes_after_dropped_connections() {
    let f = fixture();
    let n = sysclone_testutil::Nginx::start();
    run("cp", &["-r", f.image.to_str().unwrap(), n.www().join("img").to_str().unwrap()]);
    let (port, cuts) = dropping_proxy(n.http, 2, 3 << 20);
    let t = target("http-target.img", 300 << 20);
    let tgt = Loop::new(&t, 512);
    let url = format!("http://127.0.0.1:{port}/img/");
    let out = sysclone(&["--progress", "none", "restore", "--from", &url, "--target", &tgt.0, "--yes", "--verify"]);
    assert!(out.status.success(), "restore over HTTP failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(cuts.load(std::sync::atomic::Ordering::SeqCst), 2, "the proxy should have cut two connections");
    check_restored(f, &tgt, "http");
    // A URL with nothing there is a clear error.
    let out = sysclone(&["--progress", "none", "restore", "--from", &format!("http://127.0.0.1:{}/nothing/", n.http), "--target", &tgt.0, "--yes"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("nothing"), "{err}");
}

/// Re-imaging a disk that drifted a little: restore, change some files on the source and
/// save again, restore the new image with --delta onto the restored disk — only the changed
/// chunks are fetched, and the result checks out like a fresh restore.
#[test]
fn delta_restore_fetches_only_what_changed() {
    let f = fixture();
    let t = target("delta-target.img", 300 << 20);
    let tgt = Loop::new(&t, 512);
    let out = sysclone(&["--progress", "none", "restore", "--from", f.image.to_str().unwrap(), "--target", &tgt.0, "--yes"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The source drifts: over 5 % of the files on its ext4 get new contents (every 19th file
    // after the three 6 MiB ones, in path order: small files; one changed 6 MiB file alone
    // would be 16 % of this small image's stored bytes).
    let src2 = f.dir.join("drifted.img");
    run("cp", &["--sparse=always", f.src_img.to_str().unwrap(), src2.to_str().unwrap()]);
    let s2 = Loop::new(&src2, 512);
    let mnt = f.dir.join("drift-mnt");
    fs::create_dir_all(&mnt).unwrap();
    run("mount", &[&s2.part(2), mnt.to_str().unwrap()]);
    let mut files: Vec<PathBuf> = run("find", &[mnt.to_str().unwrap(), "-type", "f"]).lines().map(PathBuf::from).collect();
    files.sort();
    let changed: Vec<&PathBuf> = files.iter().skip(3).step_by(19).collect();
    assert!(changed.len() * 100 >= files.len() * 5 && files.len() > 100, "{} of {} files", changed.len(), files.len());
    for (i, p) in changed.iter().enumerate() {
        let len = fs::metadata(p).unwrap().len() as usize;
        fs::write(p, sysclone_testutil::noise(len.max(1), 1000 + i as u32)).unwrap();
    }
    eprintln!("delta: {} of {} files on the ext4 changed", changed.len(), files.len());
    run("umount", &[mnt.to_str().unwrap()]);
    drop(s2);
    let img2 = f.dir.join("drifted-image");
    let _ = fs::remove_dir_all(&img2);
    let s2 = Loop::with_args(&src2, &["--read-only"]);
    let out = sysclone(&["--progress", "none", "save", "--source", &s2.0, "--to", img2.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stored: u64 = manifest(&img2)["chunks"].as_array().unwrap().iter().map(|c| c["compressed_len"].as_u64().unwrap()).sum();
    let out = sysclone(&["--progress", "none", "restore", "--from", img2.to_str().unwrap(), "--target", &tgt.0, "--yes", "--delta", "--verify", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let fetched = r["bytes_fetched"].as_u64().unwrap();
    let there = r["bytes_already_there"].as_u64().unwrap();
    eprintln!("delta: fetched {fetched} of {stored} stored bytes ({:.1} %), {there} bytes already there", fetched as f64 * 100.0 / stored as f64);
    assert!(fetched * 100 <= stored * 15, "fetched {fetched} of {stored}");
    assert!(there > 0 && r["verified"] == true, "{r}");
    assert_multi_fs_copy(&s2, &tgt, &f.dir.join("delta"));
    // The same bytes as a fresh restore of the new image, wherever the image holds data.
    let t2 = target("delta-fresh.img", 300 << 20);
    let fresh = Loop::new(&t2, 512);
    let out = sysclone(&["--progress", "none", "restore", "--from", img2.to_str().unwrap(), "--target", &fresh.0, "--yes"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    drop((fresh, tgt));
    let (a, b) = (fs::read(&t).unwrap(), fs::read(&t2).unwrap());
    assert!(a[..1 << 20] == b[..1 << 20], "the table and boot area differ from a fresh restore");
    for c in manifest(&img2)["chunks"].as_array().unwrap() {
        let (o, n) = (c["offset"].as_u64().unwrap() as usize, c["len"].as_u64().unwrap() as usize);
        assert!(a[o..o + n] == b[o..o + n], "the delta restore differs from a fresh one at byte {o}");
    }
    fs::remove_file(&t2).unwrap();
}

/// `restore --rescue`: a damaged chunk is listed, its place is zeroed, every other chunk is
/// restored byte for byte, the table is written, and the exit status says data was lost (5).
#[test]
fn rescue_restore_goes_past_a_damaged_chunk() {
    let f = fixture();
    let img = image_copy("rescue");
    let (k, c) = flip_an_ext4_chunk(&img);
    let m = manifest(&img);
    let chunks = m["chunks"].as_array().unwrap();
    let (off, len) = (c["offset"].as_u64().unwrap(), c["len"].as_u64().unwrap());

    let t = target("rescue-target.img", 300 << 20);
    let l = Loop::new(&t, 512);
    let out = sysclone(&["--progress", "none", "restore", "--from", img.to_str().unwrap(), "--target", &l.0, "--yes", "--rescue", "--verify", "--json"]);
    drop(l);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "a rescue restore with a lost chunk must exit 5:\n{err}");
    assert!(err.contains(&format!("LOST: chunk {k} (partition 2, {len} bytes) is written as zeros at byte {off}")), "{err}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let lost = r["lost"].as_array().unwrap();
    assert_eq!(lost.len(), 1, "{r}");
    assert_eq!((lost[0]["chunk"].as_u64(), lost[0]["target_offset"].as_u64(), lost[0]["bytes"].as_u64()), (Some(k as u64), Some(off), Some(len)));
    assert!(lost[0]["error"].as_str().unwrap().contains("SHA-256 mismatch") || lost[0]["error"].as_str().unwrap().contains("decompress"), "{r}");
    assert_eq!(r["verified"], true, "the read-back of the other chunks: {r}");

    let got = fs::read(&t).unwrap();
    let src = fs::read(&f.src_img).unwrap();
    assert_eq!(&got[512..520], b"EFI PART", "the table is written after a rescue restore");
    assert!(got[off as usize..(off + len) as usize].iter().all(|&b| b == 0), "the lost chunk's place is not zeroed");
    for (i, c) in chunks.iter().enumerate().filter(|(i, _)| *i != k) {
        let (o, n) = (c["offset"].as_u64().unwrap() as usize, c["len"].as_u64().unwrap() as usize);
        assert!(got[o..o + n] == src[o..o + n], "chunk {i} at {o} differs from the source");
    }
    fs::remove_file(&t).unwrap();
}

/// An image saved from a 512-byte-sector disk onto a 4096-byte-sector disk: through the
/// planner (table recomputed in 4 KiB LBAs, partitions re-aligned where needed), the FAT
/// rebuilt for 4 KiB sectors with every file, NTFS copied; fsck clean, files identical. The
/// fixture's ext4 has 1 KiB blocks, which no 4Kn disk can mount: it is refused by name, with
/// nothing written, and restoring the other partitions works.
#[test]
fn restore_onto_4k_sectors_converts_the_table_and_the_fat() {
    let f = fixture();
    let t = target("4k-target.img", 300 << 20);
    let tgt = Loop::new(&t, 4096);
    let before = sysclone_testutil::sha256(&t);
    let base = ["--progress", "none", "restore", "--from", f.image.to_str().unwrap(), "--target", &tgt.0, "--yes"];
    let out = sysclone(&base);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("partition 2") && err.contains("uses 1024-byte blocks; on a disk with 4096-byte sectors the kernel cannot mount it"), "{err}");
    assert_eq!(sysclone_testutil::sha256(&t), before, "a refused restore wrote");

    let out = sysclone(&[&base[..], &["--only", "1,3,4", "--verify", "--json"]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "restore onto 4Kn failed:\n{err}");
    assert!(err.contains("vfat rebuilt for 4096-byte sectors"), "{err}");
    let rr: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rr["parts"].as_array().unwrap().len(), 3, "{rr}");
    assert_eq!(rr["verified"], true, "{rr}");
    // LBA 1 of a 4Kn disk holds the primary header; sgdisk reads the loop device's sectors.
    let got = fs::read(&t).unwrap();
    assert_eq!(&got[4096..4104], b"EFI PART", "no primary GPT at LBA 1 (4096)");
    let v = run("sgdisk", &["-v", &tgt.0]);
    assert!(v.contains("No problems found"), "{v}");
    let src = Loop::with_args(&f.src_img, &["--read-only"]);
    run("fsck.fat", &["-n", &tgt.part(1)]);
    run("ntfsfix", &["-n", &tgt.part(2)]);
    assert!(run("file", &["-s", &tgt.part(3)]).contains("swap"), "swap signature missing");
    let dir = f.dir.join("4k");
    sysclone_testutil::assert_same_files(&src.part(1), &tgt.part(1), "fat", &dir);
    sysclone_testutil::assert_same_files(&src.part(3), &tgt.part(2), "ntfs", &dir);
    // As saved, without the planner, it is refused with the way out named.
    let out = sysclone(&[&base[..], &["--policy", "exact"]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("logical sector size is 4096 but the image's is 512") && err.contains("--policy keep"), "{err}");
}
