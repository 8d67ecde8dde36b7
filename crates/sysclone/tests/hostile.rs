//! Hostile source disks on real loop devices: a GPT whose partition reaches beyond the
//! disk, overlapping partitions, a backup GPT that differs from the primary, an ext4 whose
//! superblock claims more blocks than its partition holds. `disks`, `clone --mode smart`,
//! `migrate --dry-run` and `save` report, refuse or fall back to copying every byte; none
//! panics, the source is never written, and nothing lands outside the target (the target
//! loop device is a window in the middle of a file whose bytes around it are checked).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sysclone_testutil::{patch_gpt_entry, require_root, run, sha256, Loop};

const BIN: &str = env!("CARGO_BIN_EXE_sysclone");
const MIB: u64 = 1 << 20;

fn sysclone(args: &[&str]) -> Output {
    let out = Command::new(BIN).args(args).output().expect("running sysclone");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && out.status.code() != Some(101), "sysclone {args:?} panicked:\n{err}");
    out
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A 64 MiB GPT disk: ESP (8 MiB, unformatted) and an ext4 root (a few files) after it.
fn source_disk(dir: &Path, name: &str) -> PathBuf {
    let img = dir.join(name);
    run("truncate", &["-s", "64M", img.to_str().unwrap()]);
    let l = Loop::new(&img, 512);
    run("sgdisk", &["-n", "1:1M:+8M", "-t", "1:ef00", "-n", "2:0:0", "-t", "2:8300", &l.0]);
    let content = dir.join(format!("{name}.content"));
    fs::create_dir_all(&content).unwrap();
    fs::write(content.join("data.bin"), sysclone_testutil::noise(2 << 20, 7)).unwrap();
    run("mkfs.ext4", &["-q", "-F", "-b", "4096", "-d", content.to_str().unwrap(), &l.part(2)]);
    img
}

/// [`patch_gpt_entry`] on an image file.
fn patch_gpt(img: &Path, primary: bool, backup: bool, idx: usize, field: usize, val: u64) {
    let mut b = fs::read(img).unwrap();
    patch_gpt_entry(&mut b, primary, backup, idx, field, val);
    fs::write(img, b).unwrap();
}

/// A target loop device of `size` bytes in the middle of a file, with 1 MiB of a known
/// pattern before and after it.
struct FencedTarget {
    file: PathBuf,
    dev: Loop,
    size: u64,
}

const FENCE_BEFORE: u8 = 0xA5;
const FENCE_AFTER: u8 = 0x5A;

impl FencedTarget {
    fn new(dir: &Path, size: u64) -> FencedTarget {
        let file = dir.join("fenced.img");
        let mut b = vec![FENCE_BEFORE; MIB as usize];
        b.resize((MIB + size) as usize, 0x11);
        b.resize((2 * MIB + size) as usize, FENCE_AFTER);
        fs::write(&file, b).unwrap();
        let dev = Loop::with_args(&file, &["--offset", &MIB.to_string(), "--sizelimit", &size.to_string()]);
        FencedTarget { file, dev, size }
    }

    fn assert_fences_intact(&self) {
        let b = fs::read(&self.file).unwrap();
        let m = MIB as usize;
        assert!(b[..m].iter().all(|&x| x == FENCE_BEFORE), "bytes before the target were written");
        assert!(b[m + self.size as usize..].iter().all(|&x| x == FENCE_AFTER), "bytes after the target were written");
    }

    fn target_bytes(&self) -> Vec<u8> {
        let b = fs::read(&self.file).unwrap();
        b[MIB as usize..(MIB + self.size) as usize].to_vec()
    }
}

#[test]
fn hostile_partition_tables_are_reported_refused_or_copied_whole() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let base = source_disk(t.path(), "base.img");
    let fence = FencedTarget::new(t.path(), 80 * MIB);
    let clean_img = t.path().join("clean.img");
    fs::copy(&base, &clean_img).unwrap();
    let clean = Loop::with_args(&clean_img, &["--read-only"]);
    let lbas = 64 * MIB / 512;
    // (name, how to spoil it, what `disks` and the clone say, does a clone/save go on)
    type Spoil = fn(&Path, u64);
    let cases: [(&str, Spoil, &str, bool); 3] = [
        ("beyond", |p, lbas| patch_gpt(p, true, true, 1, 40, lbas * 2), "outside the usable range", false),
        ("overlap", |p, _| patch_gpt(p, true, true, 1, 32, 4096), "partitions 1 and 2 overlap", true),
        ("mismatch", |p, _| patch_gpt(p, false, true, 1, 40, 100_000), "backup GPT entries differ from the primary", true),
    ];
    for (name, spoil, says, goes_on) in cases {
        let img = t.path().join(format!("{name}.img"));
        fs::copy(&base, &img).unwrap();
        spoil(&img, lbas);
        let before = sha256(&img);
        let src = Loop::with_args(&img, &["--read-only"]);
        let target_before = sha256(&fence.file);

        // `disks`: the warning under the disk in the table, in its `warnings` in the JSON;
        // a clean disk beside it has none.
        let o = sysclone(&["disks"]);
        assert!(o.status.success(), "{name}: disks failed: {}", text(&o));
        let table = String::from_utf8_lossy(&o.stdout);
        let under = table.split('\n').skip_while(|l| !l.starts_with(&format!("{} ", src.name()))).skip(1).take_while(|l| l.starts_with(' ')).collect::<Vec<_>>().join("\n");
        assert!(under.lines().any(|l| l.trim_start().starts_with("warning: ") && l.contains(says)), "{name}: disks does not say {says:?} under {}:\n{table}", src.name());
        let o = sysclone(&["disks", "--json"]);
        assert!(o.status.success(), "{name}: disks --json failed: {}", text(&o));
        let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{name}: disks --json: {e}:\n{}", text(&o)));
        let by_name = |n: &str| doc["disks"].as_array().unwrap().iter().find(|d| d["name"] == n).unwrap_or_else(|| panic!("{name}: no disk {n} in {doc:#}")).clone();
        let warnings = by_name(src.name())["warnings"].as_array().unwrap_or_else(|| panic!("{name}: no warnings array: {doc:#}")).clone();
        assert!(warnings.iter().any(|w| w.as_str().unwrap().contains(says)), "{name}: the JSON's warnings do not say {says:?}: {warnings:?}");
        assert_eq!(by_name(clean.name())["warnings"], serde_json::json!([]), "{name}: the clean disk has warnings");

        let o = sysclone(&["migrate", "--source", &src.0, "--target", &fence.dev.0, "--dry-run", "--progress", "none"]);
        assert!(text(&o).contains(says), "{name}: migrate --dry-run does not say {says:?}:\n{}", text(&o));
        if name != "mismatch" {
            assert!(!o.status.success(), "{name}: migrate planned a hostile table:\n{}", text(&o));
        }

        let o = sysclone(&["clone", "--source", &src.0, "--target", &fence.dev.0, "--mode", "smart", "--yes", "--verify", "--boot-policy", "none", "--progress", "none"]);
        assert!(text(&o).contains(says), "{name}: clone does not say {says:?}:\n{}", text(&o));
        fence.assert_fences_intact();
        if goes_on {
            assert!(o.status.success(), "{name}: clone failed:\n{}", text(&o));
            let (a, b) = (fs::read(&img).unwrap(), fence.target_bytes());
            // Everything after the primary GPT is the source's (overlap: copied whole).
            assert!(a[34 * 512..a.len() - 33 * 512] == b[34 * 512..a.len() - 33 * 512], "{name}: the clone differs from the source");
            if name == "overlap" {
                assert!(text(&o).contains("every byte is copied"), "{}", text(&o));
            } else {
                // The target's backup is rebuilt from the primary: a consistent table.
                let v = run("sgdisk", &["-v", &fence.dev.0]);
                assert!(v.contains("No problems found"), "{name}: {v}");
            }
        } else {
            assert!(!o.status.success(), "{name}: clone accepted a hostile table:\n{}", text(&o));
            assert_eq!(sha256(&fence.file), target_before, "{name}: a refused clone wrote to the target");
        }

        let to = t.path().join(format!("{name}.saved"));
        let o = sysclone(&["save", "--source", &src.0, "--to", to.to_str().unwrap(), "--progress", "none"]);
        assert!(text(&o).contains(says), "{name}: save does not say {says:?}:\n{}", text(&o));
        assert_eq!(o.status.success(), goes_on, "{name}: save:\n{}", text(&o));

        drop(src);
        assert_eq!(sha256(&img), before, "{name}: the source was written");
    }
}

#[test]
fn ext4_claiming_more_blocks_than_its_partition_is_copied_whole() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let img = source_disk(t.path(), "src.img");
    {
        let l = Loop::new(&img, 512);
        // 55 MiB partition, 4 KiB blocks: 14080 blocks; the superblock now claims 10x that
        // (debugfs keeps the superblock checksum right, so only the size is a lie).
        run("debugfs", &["-w", "-R", "ssv blocks_count 140800", &l.part(2)]);
    }
    let before = sha256(&img);
    let fence = FencedTarget::new(t.path(), 80 * MIB);
    let src = Loop::with_args(&img, &["--read-only"]);
    let o = sysclone(&["clone", "--source", &src.0, "--target", &fence.dev.0, "--mode", "smart", "--yes", "--verify", "--boot-policy", "none", "--progress", "none", "--json"]);
    assert!(o.status.success(), "clone failed:\n{}", text(&o));
    assert!(text(&o).contains("partition 2: whole") && text(&o).contains("is larger than the partition"), "the lying ext4 was not copied whole:\n{}", text(&o));
    fence.assert_fences_intact();
    let (a, b) = (fs::read(&img).unwrap(), fence.target_bytes());
    assert!(a[34 * 512..a.len() - 33 * 512] == b[34 * 512..a.len() - 33 * 512], "the clone differs from the source");
    let to = t.path().join("saved");
    let o = sysclone(&["save", "--source", &src.0, "--to", to.to_str().unwrap(), "--progress", "none"]);
    assert!(o.status.success(), "save failed:\n{}", text(&o));
    assert!(text(&o).contains("whole"), "{}", text(&o));
    drop(src);
    assert_eq!(sha256(&img), before, "the source was written");
}
