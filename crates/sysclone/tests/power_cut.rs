//! Power cuts and failing targets on real loop devices.
//!
//! `sysclone clone` is SIGKILLed at random moments (exact and smart, with and without a
//! rescue map; the source is throttled so that a clone takes two to three seconds, past the
//! first map checkpoint at 2 s). After each
//! cut: the source's bytes are unchanged, the target has no primary GPT (or the clone had
//! finished and the target is the source), and a run with the same map resumes and ends
//! with a byte-identical, verified clone. `SYSCLONE_CUT_SEED` repeats a run's kill points.
//!
//! A target whose writes fail part way (a loop device over a file on a tiny tmpfs) ends in
//! a clear error and a target without a primary GPT.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sysclone_testutil::{noise, require_root, run, sha256, FaultyDisk, Loop};

const BIN: &str = env!("CARGO_BIN_EXE_sysclone");

/// A 40 MiB GPT disk: an 8 MiB ESP (unformatted: smart copies it whole) and an ext4 root
/// holding 16 MiB of incompressible files.
fn source_disk(dir: &Path) -> PathBuf {
    let img = dir.join("src.img");
    run("truncate", &["-s", "40M", img.to_str().unwrap()]);
    let l = Loop::new(&img, 512);
    run("sgdisk", &["-n", "1:1M:+8M", "-t", "1:ef00", "-n", "2:0:0", "-t", "2:8300", &l.0]);
    let content = dir.join("content");
    fs::create_dir_all(&content).unwrap();
    for i in 0..4 {
        fs::write(content.join(format!("f{i}.bin")), noise(4 << 20, i)).unwrap();
    }
    run("mkfs.ext4", &["-q", "-F", "-b", "4096", "-d", content.to_str().unwrap(), &l.part(2)]);
    img
}

/// xorshift64*: the kill points, reproducible from the printed seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn has_primary_gpt(img: &Path) -> bool {
    let b = fs::read(img).unwrap();
    &b[512..520] == b"EFI PART"
}

#[test]
fn power_cut_at_random_points_loses_nothing_and_resumes() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let src_img = source_disk(t.path());
    let src_sum = sha256(&src_img);
    let src_bytes = fs::read(&src_img).unwrap();
    let tgt_img = t.path().join("tgt.img");
    run("truncate", &["-s", "40M", tgt_img.to_str().unwrap()]);
    let tgt = Loop::new(&tgt_img, 512);
    // 12 MiB/s: an exact clone takes about 3.3 s, a smart one (25 MiB) about 2.1 s.
    let slow = FaultyDisk::with_limit(&src_img, &[], Some(12 << 20));
    let fast = Loop::with_args(&src_img, &["--read-only"]);
    let seed = std::env::var("SYSCLONE_CUT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    eprintln!("power cut campaign: SYSCLONE_CUT_SEED={seed}");
    let mut rng = Rng(seed);
    let t0 = Instant::now();
    let (mut cuts, mut finished_first, mut resumed) = (0, 0, 0);
    for i in 0..24u32 {
        let mode = if i % 2 == 0 { "exact" } else { "smart" };
        let with_map = i % 4 < 2;
        let map = t.path().join(format!("cut{i}.map"));
        // The target starts without any table, so a table on it can only come from this run.
        run("dd", &["if=/dev/zero", &format!("of={}", tgt.0), "bs=64K", "count=1", "oflag=direct", "status=none"]);
        let mut args = vec!["clone", "--source", slow.dev(), "--target", &tgt.0, "--mode", mode, "--yes", "--boot-policy", "none", "--progress", "none"];
        let map_s = map.to_str().unwrap().to_string();
        if with_map {
            args.extend(["--map", &map_s]);
        }
        // Anywhere in the run; exact runs with a map are cut after the first checkpoint, so
        // their resumes must reuse the work recorded before the cut.
        let delay = Duration::from_millis(match (mode, with_map) {
            ("exact", true) => 2700 + rng.next() % 600,
            ("exact", false) => 50 + rng.next() % 3200,
            _ => 50 + rng.next() % 2000,
        });
        let mut child = Command::new(BIN).args(&args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let start = Instant::now();
        let mut exited = None;
        while start.elapsed() < delay {
            if let Some(st) = child.try_wait().unwrap() {
                exited = Some(st);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        match exited {
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                cuts += 1;
            }
            Some(st) => {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                assert!(st.success(), "run {i} ({mode}) failed on its own: {err}");
                finished_first += 1;
            }
        }
        assert_eq!(sha256(&src_img), src_sum, "run {i}: the source changed");
        let complete = fs::read(&tgt_img).unwrap() == src_bytes;
        assert!(complete || !has_primary_gpt(&tgt_img), "run {i} ({mode}, cut after {delay:?}): an interrupted clone has a primary GPT");
        if exited.is_some() {
            assert!(complete, "run {i} ({mode}) finished but the target differs from the source");
        }
        if with_map && exited.is_none() {
            let out = Command::new(BIN)
                .args(["clone", "--source", &fast.0, "--target", &tgt.0, "--mode", mode, "--yes", "--verify", "--boot-policy", "none", "--progress", "none", "--json", "--map", &map_s])
                .output()
                .unwrap();
            assert!(out.status.success(), "run {i} ({mode}): resume failed: {}", String::from_utf8_lossy(&out.stderr));
            let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(r["verified"], true, "{r}");
            assert_eq!(r["bytes_read"].as_u64().unwrap() - r["bytes_gaps"].as_u64().unwrap() + r["bytes_resumed"].as_u64().unwrap(), r["bytes_planned"].as_u64().unwrap(), "{r}");
            if r["bytes_resumed"].as_u64().unwrap() > 0 {
                resumed += 1;
            }
            assert!(fs::read(&tgt_img).unwrap() == src_bytes, "run {i} ({mode}, cut after {delay:?}): the resumed clone differs from the source");
            assert_eq!(sha256(&src_img), src_sum, "run {i}: the source changed during the resume");
        }
    }
    eprintln!("power cut campaign: {cuts} cuts, {finished_first} runs finished before their cut, {resumed} resumes reused earlier work, {:.1} s", t0.elapsed().as_secs_f64());
    assert!(cuts >= 20, "only {cuts} of 24 runs were cut (seed {seed})");
    assert!(resumed >= 2, "only {resumed} resumes reused work from the cut run (seed {seed})");
}

#[test]
fn target_that_fills_up_mid_copy_is_a_clear_error_without_a_table() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let src_img = source_disk(t.path());
    let src_sum = sha256(&src_img);
    // The target's file lives on a 12 MiB tmpfs but claims 48 MiB: writes fail part way.
    let small = t.path().join("small");
    fs::create_dir(&small).unwrap();
    run("mount", &["-t", "tmpfs", "-o", "size=12m", "tmpfs", small.to_str().unwrap()]);
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(small.clone());
    let tgt_img = small.join("tgt.img");
    run("truncate", &["-s", "48M", tgt_img.to_str().unwrap()]);
    {
        let tgt = Loop::new(&tgt_img, 512);
        let src = Loop::with_args(&src_img, &["--read-only"]);
        let map = t.path().join("full.map");
        let out = Command::new(BIN)
            .args(["clone", "--source", &src.0, "--target", &tgt.0, "--yes", "--boot-policy", "none", "--progress", "none", "--map", map.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "a clone onto a full target succeeded: {err}");
        assert_ne!(out.status.code(), Some(101), "panicked: {err}");
        assert!(err.contains("error:") && (err.contains("writing") || err.contains("write")), "unclear error: {err}");
        assert!(!has_primary_gpt(&tgt_img), "a failed clone left a primary GPT");
    }
    assert_eq!(sha256(&src_img), src_sum, "the source changed");
}
