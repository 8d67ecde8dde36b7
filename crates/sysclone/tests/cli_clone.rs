//! The `sysclone clone` command on real loop devices: killed mid-clone, the target does not
//! look complete; run again with the same map, it resumes and finishes.

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sysclone_testutil::{make_gpt_disk, require_root, run, FaultyDisk, Loop};

const BIN: &str = env!("CARGO_BIN_EXE_sysclone");

#[test]
fn killed_clone_is_incomplete_and_resumes_from_its_map() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let src_img = make_gpt_disk(t.path(), "src.img", "96M", 512);
    let tgt_img = t.path().join("tgt.img");
    run("truncate", &["-s", "128M", tgt_img.to_str().unwrap()]);
    let map = t.path().join("clone.map");
    let tgt = Loop::new(&tgt_img, 512);

    // A slow source (8 MiB/s), killed after about four seconds.
    {
        let slow = FaultyDisk::with_limit(&src_img, &[], Some(8 << 20));
        let mut child = Command::new(BIN)
            .args(["clone", "--source", slow.dev(), "--target", &tgt.0, "--yes", "--map", map.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while !(map.exists() && t0.elapsed() > Duration::from_secs(4)) {
            assert!(t0.elapsed() < Duration::from_secs(60), "no map after 60 s");
            assert!(child.try_wait().unwrap().is_none(), "the clone ended before it could be killed");
            std::thread::sleep(Duration::from_millis(100));
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let b = fs::read(&tgt_img).unwrap();
    assert_ne!(&b[512..520], b"EFI PART", "an interrupted clone must not have a primary GPT");
    let map_text = fs::read_to_string(&map).unwrap();
    assert!(map_text.contains("  +") && map_text.contains("  ?"), "map of a half-done clone:\n{map_text}");

    // Resume at full speed.
    let src = Loop::with_args(&src_img, &["--read-only"]);
    let out = Command::new(BIN).args(["clone", "--source", &src.0, "--target", &tgt.0, "--yes", "--verify", "--map", map.to_str().unwrap(), "--json"]).output().unwrap();
    assert!(out.status.success(), "resume failed: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let resumed = report["bytes_resumed"].as_u64().unwrap();
    let read = report["bytes_read"].as_u64().unwrap();
    assert!(resumed > 8 << 20, "{report}");
    assert_eq!(read - report["bytes_gaps"].as_u64().unwrap() + resumed, report["bytes_planned"].as_u64().unwrap(), "{report}");
    assert_eq!(report["verified"], true);
    drop(src);
    let a = fs::read(&src_img).unwrap();
    let b = fs::read(&tgt_img).unwrap();
    assert!(a[1024..] == b[1024..a.len()], "the resumed clone differs from the source");
    let v = run("sgdisk", &["-v", &tgt.0]);
    assert!(v.contains("No problems found"), "{v}");
}

#[test]
fn guard_refusal_exits_3_and_writes_nothing() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let src_img = make_gpt_disk(t.path(), "src.img", "96M", 512);
    let src = Loop::new(&src_img, 512);
    let before = sysclone_testutil::sha256(&src_img);
    let out = Command::new(BIN).args(["clone", "--source", &src.0, "--target", &src.0, "--yes"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("it is the source of this job"));
    drop(src);
    assert_eq!(sysclone_testutil::sha256(&src_img), before);
}

/// `--protect` names a disk that must never be written: the clone onto it exits 3, names the
/// rule, and the disk keeps every byte.
#[test]
fn protected_target_exits_3_and_writes_nothing() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let (src, tgt, tgt_img) = source_and_blank_target(t.path());
    run("dd", &["if=/dev/urandom", &format!("of={}", tgt.0), "bs=1M", "count=4", "status=none"]);
    let before = sysclone_testutil::sha256(&tgt_img);
    let sel = format!("name={}", tgt.0.trim_start_matches("/dev/"));
    let out = Command::new(BIN).args(["clone", "--source", &src.0, "--target", &tgt.0, "--protect", &sel, "--yes"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("write-protect list") && err.contains(&sel), "{err}");
    drop(tgt);
    assert_eq!(sysclone_testutil::sha256(&tgt_img), before);
}

/// A job writes without a typed confirmation only when it says `confirm = "serial"`; without
/// it, the wrong characters write nothing.
#[test]
fn job_without_confirm_asks_and_a_wrong_answer_writes_nothing() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let (src, tgt, tgt_img) = source_and_blank_target(t.path());
    let name = |l: &Loop| l.0.trim_start_matches("/dev/").to_string();
    let job = t.path().join("job.toml");
    let text = format!("operation = \"clone\"\nsource = \"name={}\"\ntarget = \"name={}\"\nboot_entry = \"none\"\n", name(&src), name(&tgt));
    fs::write(&job, &text).unwrap();
    let before = sysclone_testutil::sha256(&tgt_img);
    let mut child = Command::new(BIN).args(["--progress", "none", "job", "run", job.to_str().unwrap()]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"zzzz\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("Type the last") && err.contains("not confirmed"), "{err}");
    assert_eq!(sysclone_testutil::sha256(&tgt_img), before, "a job that was not confirmed wrote its target");
    // The same job with confirm = "serial" runs unattended.
    fs::write(&job, format!("{text}confirm = \"serial\"\n")).unwrap();
    let out = Command::new(BIN).args(["--progress", "none", "job", "run", job.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    drop(tgt);
    assert_ne!(sysclone_testutil::sha256(&tgt_img), before, "the confirmed job wrote nothing");
    assert_eq!(&fs::read(&tgt_img).unwrap()[512..520], b"EFI PART");
}

#[test]
fn smart_clone_copies_only_used_blocks_and_filesystems_check_clean() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let src_img = sysclone_testutil::make_multi_fs_disk(t.path());
    let tgt_img = t.path().join("tgt.img");
    run("truncate", &["-s", "300M", tgt_img.to_str().unwrap()]);
    run("dd", &["if=/dev/urandom", &format!("of={}", tgt_img.display()), "bs=1M", "count=300", "conv=notrunc", "status=none"]);
    let src = Loop::with_args(&src_img, &["--read-only"]);
    let tgt = Loop::new(&tgt_img, 512);
    let allocated = |p: &std::path::Path| run("du", &["-k", p.to_str().unwrap()]).split_whitespace().next().unwrap().parse::<u64>().unwrap() << 10;
    assert!(allocated(&tgt_img) >= 299 << 20);
    let out = Command::new(BIN).args(["clone", "--mode", "smart", "--source", &src.0, "--target", &tgt.0, "--yes", "--verify", "--discard-unused", "--json"]).output().unwrap();
    assert!(out.status.success(), "smart clone failed: {}", String::from_utf8_lossy(&out.stderr));
    let log = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let planned = report["bytes_planned"].as_u64().unwrap();
    // What was read is the plan plus the small free gaps read along with it, each at most
    // 64 KiB and between two planned ranges: large free areas are not read.
    let (read, gaps) = (report["bytes_read"].as_u64().unwrap(), report["bytes_gaps"].as_u64().unwrap());
    assert_eq!(read - gaps, planned, "read more than the plan: {report}");
    let ranges = log.lines().find_map(|l| l.split_once("reads:")).and_then(|l| l.1.split_whitespace().next()).map(|n| n.parse::<u64>().unwrap()).unwrap_or(1);
    assert!(gaps <= (ranges - 1) * (64 << 10), "{gaps} bytes of gaps for {ranges} ranges: {report}\n{log}");
    assert!(gaps < planned / 8, "the gaps read along are not small: {report}");
    assert!(planned < 96 << 20, "a mostly empty 256 MiB disk should need far less: {report}\n{log}");
    assert_eq!(report["verified"], true);
    // The loop device passes discards on as holes in its backing file.
    let discarded = report["bytes_discarded"].as_u64().unwrap();
    assert!(discarded > 100 << 20, "{report}");
    assert!(allocated(&tgt_img) < (300 << 20) - discarded + (8 << 20), "target still fully allocated after discard");
    for fs_kind in ["vfat", "ext4", "ntfs"] {
        assert!(log.contains(&format!(", {fs_kind}, ")) || log.contains(&format!("{fs_kind},")), "plan does not mention {fs_kind}:\n{log}");
    }

    sysclone_testutil::assert_multi_fs_copy(&src, &tgt, &t.path().join("m"));
}

/// A duplicator: one source, three targets of different sizes, one of which runs out of
/// space halfway (a loop device over a file on a small tmpfs). The source is read once;
/// the two good targets are complete, verified and carry a GPT fitted to their size; the
/// failed one is named in the error and does not look complete.
#[test]
fn duplicator_writes_every_target_from_one_read() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let src_img = make_gpt_disk(t.path(), "src.img", "96M", 512);
    let small = t.path().join("small");
    fs::create_dir(&small).unwrap();
    run("mount", &["-t", "tmpfs", "-o", "size=40M", "tmpfs", small.to_str().unwrap()]);
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(small.clone());
    let imgs = [t.path().join("t1.img"), t.path().join("t2.img"), small.join("t3.img")];
    for (img, size) in imgs.iter().zip(["128M", "160M", "128M"]) {
        run("truncate", &["-s", size, img.to_str().unwrap()]);
    }
    let src = Loop::with_args(&src_img, &["--read-only"]);
    let tgts: Vec<Loop> = imgs.iter().map(|i| Loop::new(i, 512)).collect();
    let mut args = vec!["clone", "--source", &src.0, "--yes", "--verify", "--json"];
    for l in &tgts {
        args.extend(["--target", &l.0]);
    }
    let out = Command::new(BIN).args(&args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a failed target must fail the run: {err}");
    assert!(err.contains("1 of 3 targets failed") && err.contains(tgts[2].0.trim_start_matches("/dev/")), "{err}");
    assert!(err.contains("No space left"), "{err}");
    drop(tgts);
    drop(src);
    let a = fs::read(&src_img).unwrap();
    for img in &imgs[..2] {
        let b = fs::read(img).unwrap();
        assert!(a[1024..] == b[1024..a.len()], "{} differs from the source", img.display());
        let v = run("sgdisk", &["-v", img.to_str().unwrap()]);
        assert!(v.contains("No problems found"), "{}: {v}", img.display());
    }
    let b = fs::read(&imgs[2]).unwrap();
    assert_ne!(&b[512..520], b"EFI PART", "the target that ran out of space must not look complete");
}

/// A 96 MiB GPT source (ESP + ext4 root) and a blank 128 MiB target, on loop devices; and
/// the target's image file.
fn source_and_blank_target(dir: &std::path::Path) -> (Loop, Loop, std::path::PathBuf) {
    let src_img = make_gpt_disk(dir, "src.img", "96M", 512);
    let tgt_img = dir.join("tgt.img");
    run("truncate", &["-s", "128M", tgt_img.to_str().unwrap()]);
    (Loop::new(&src_img, 512), Loop::new(&tgt_img, 512), tgt_img)
}

/// `job check --plan` finds the job's disks on this machine and prints the plan; nothing is
/// written.
#[test]
fn job_check_prints_the_plan_and_writes_nothing() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let (src, tgt, tgt_img) = source_and_blank_target(t.path());
    let job = t.path().join("job.toml");
    let name = |l: &Loop| l.0.trim_start_matches("/dev/").to_string();
    fs::write(&job, format!("operation = \"clone\"\nmode = \"smart\"\nsource = \"name={}\"\ntarget = \"name={}\"\nboot_entry = \"none\"\n", name(&src), name(&tgt))).unwrap();
    let before = sysclone_testutil::sha256(&tgt_img);
    let out = Command::new(BIN).args(["job", "check", "--plan", job.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("smart clone") && text.contains("dry run: nothing written") && text.contains(&name(&tgt)), "{text}");
    drop(tgt);
    assert_eq!(sysclone_testutil::sha256(&tgt_img), before);
}

/// `job run` with a machines table: the clone gets the hostname of this machine's row (found
/// by its MAC); the source keeps its own.
#[test]
fn job_run_names_the_clone_after_this_machine() {
    require_root();
    let Some(me) = sysclone_net::wired_interfaces(std::path::Path::new("/sys/class/net")).into_iter().next() else {
        panic!("this test needs a wired (Ethernet-type) network interface to match by MAC");
    };
    let mac: Vec<String> = me.mac.iter().map(|b| format!("{b:02x}")).collect();
    let t = tempfile::tempdir().unwrap();
    let (src, tgt, _tgt_img) = source_and_blank_target(t.path());
    let name = |l: &Loop| l.0.trim_start_matches("/dev/").to_string();
    let job = t.path().join("job.toml");
    fs::write(
        &job,
        format!(
            "operation = \"clone\"\nsource = \"name={}\"\ntarget = \"name={}\"\nboot_entry = \"none\"\n\n[[machines]]\nmac = \"aa:bb:cc:dd:ee:ff\"\nhostname = \"other\"\n\n[[machines]]\nmac = \"{}\"\nhostname = \"lab07\"\n",
            name(&src),
            name(&tgt),
            mac.join(":")
        ),
    )
    .unwrap();
    // Neither --yes nor confirm = "serial": the target is shown and its serial asked for;
    // no answer (standard input at its end) writes nothing.
    let out = Command::new(BIN).args(["job", "run", job.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("Type the last") && err.contains("not confirmed: nothing was written"), "job run without --yes must ask: {err}");
    let out = Command::new(BIN).args(["--progress", "none", "job", "run", job.to_str().unwrap(), "--yes"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("/etc/hostname = lab07"), "{}", String::from_utf8_lossy(&out.stdout));
    let read_hostname = |l: &Loop| {
        let out = Command::new("debugfs").args(["-R", "cat /etc/hostname", &l.part(2)]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    run("partx", &["-u", &tgt.0]);
    assert_eq!(read_hostname(&tgt), "lab07\n");
    assert_eq!(read_hostname(&src), "fixture\n", "the source must keep its hostname");
    let fsck = Command::new("e2fsck").args(["-fn", &tgt.part(2)]).output().unwrap();
    assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stdout));
}
