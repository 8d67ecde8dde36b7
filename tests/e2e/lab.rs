//! Lab scale (issue 10; run by `scripts/bench-lab`, not by `scripts/test`: several guests
//! under TCG take many minutes). LAB_MACHINES QEMU machines (default 4) PXE-boot at once
//! from one nginx, each restores the same golden image (LAB_USED_MIB of used data, default
//! 600) onto its blank disk, posts its report and powers off. Prints per-machine times, the
//! aggregate throughput and the bytes nginx sent; asserts every machine succeeded and every
//! target holds the same, fsck-clean disk.

use std::fs;
use std::time::Instant;

use sysclone_testutil::Nginx;

use crate::qemu::{Disk, Machine};
use crate::network::{lab_base, pxe_lab_server};
use crate::{artifacts, run};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A golden disk of `size` with an ESP and an ext4 holding `used_mib` of incompressible
/// files (filled through a real mount).
fn golden_disk(w: &std::path::Path, size: &str, used_mib: u64) -> std::path::PathBuf {
    let img = w.join("golden.img");
    run("truncate", &["-s", size, img.to_str().unwrap()]);
    run("sgdisk", &["-n", "1:1M:+64M", "-t", "1:ef00", "-c", "1:ESP", "-n", "2:0:0", "-t", "2:8304", "-c", "2:root", img.to_str().unwrap()]);
    let dev = run("losetup", &["--find", "--show", "--partscan", img.to_str().unwrap()]).trim().to_string();
    let _ = std::process::Command::new("partx").args(["-a", &dev]).status();
    let (p1, p2) = (format!("{dev}p1"), format!("{dev}p2"));
    run("mkfs.fat", &["-F", "32", "-n", "ESP", &p1]);
    run("mkfs.ext4", &["-q", "-F", "-b", "4096", "-L", "root", &p2]);
    let mnt = w.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    run("mount", &[&p2, mnt.to_str().unwrap()]);
    let mut left = used_mib;
    let mut i = 0;
    while left > 0 {
        let n = left.min(16);
        run("dd", &["if=/dev/urandom", &format!("of={}/f{i:04}", mnt.display()), "bs=1M", &format!("count={n}"), "status=none"]);
        left -= n;
        i += 1;
    }
    run("umount", &[mnt.to_str().unwrap()]);
    run("losetup", &["-d", &dev]);
    img
}

#[test]
#[ignore = "a benchmark: scripts/bench-lab runs it"]
fn lab_of_machines_restores_one_image_at_once() {
    let machines = env_num("LAB_MACHINES", 4) as usize;
    let used_mib = env_num("LAB_USED_MIB", 600);
    let a = artifacts();
    let work = tempfile::tempdir_in(&a).unwrap();
    let w = work.path();
    let disk_size = format!("{}M", used_mib + 512);
    let golden = golden_disk(w, &disk_size, used_mib);
    let n = Nginx::start();
    let www = n.www();
    let base = lab_base(&n);
    let save = pxe_lab_server(&a, &n, &golden, "target = \"serial=LABDISK\"\nconfirm = \"serial\"\nboot_entry = \"none\"\non_success = \"poweroff\"\non_failure = \"poweroff\"\n");
    let (used, stored) = (save["bytes_used"].as_u64().unwrap(), save["bytes_stored"].as_u64().unwrap());
    let boot_bytes = fs::metadata(www.join("pxe/vmlinuz")).unwrap().len() + fs::metadata(www.join("pxe/initramfs.img")).unwrap().len();
    let sent_before = n.bytes_sent();

    // LAB_STAGGER_S: seconds between power-ons (a lab's machines are switched on one after
    // the other; under TCG on a small host, firmware started all at once starves).
    let stagger = env_num("LAB_STAGGER_S", 0);
    let t0 = Instant::now();
    let runs: Vec<_> = (0..machines)
        .map(|i| {
            if i > 0 {
                std::thread::sleep(std::time::Duration::from_secs(stagger));
            }
            let tgt = w.join(format!("lab{i}.img"));
            run("truncate", &["-s", &disk_size, tgt.to_str().unwrap()]);
            let mut m = Machine::new(w, &format!("lab{i}"));
            m.net_boot(&www, &format!("{base}/boot.ipxe"));
            m.disk(Disk::virtio(&tgt, "LABDISK"));
            std::thread::spawn(move || {
                let t = Instant::now();
                let log = m.run_until(3600, Some("ERROR:"));
                (tgt, log, t.elapsed().as_secs_f64())
            })
        })
        .collect();
    let results: Vec<_> = runs.into_iter().map(|h| h.join().unwrap()).collect();
    let wall = t0.elapsed().as_secs_f64();
    let sent = n.bytes_sent() - sent_before;

    println!("\nlab: {machines} machine(s) PXE-boot and restore one image from one nginx at once, {stagger} s between power-ons (QEMU TCG, 2 vCPUs each, on a {}-core host)", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    println!("image: {:.0} MiB used, {:.0} MiB stored (zstd), disk {disk_size}", used as f64 / 1048576.0, stored as f64 / 1048576.0);
    println!("| machine | boot to power-off s | restore s (guest) | restore MiB/s (guest) | result |");
    println!("|---|---:|---:|---:|---|");
    let mut restore_s = Vec::new();
    for (i, (_, log, secs)) in results.iter().enumerate() {
        let line = log.lines().find(|l| l.contains("restored ") && l.contains(" MiB/s")).unwrap_or("");
        let s: f64 = line.split(" in ").nth(2).and_then(|t| t.split(" s").next()).and_then(|t| t.trim().parse().ok()).unwrap_or(f64::NAN);
        restore_s.push(s);
        let ok = log.contains("SYSCLONE-RESULT ok");
        println!("| lab{i} | {secs:.0} | {s:.1} | {:.1} | {} |", used as f64 / 1048576.0 / s, if ok { "ok" } else { "FAILED" });
    }
    let slowest = restore_s.iter().cloned().fold(0.0, f64::max);
    println!("aggregate: {:.1} MiB/s restored ({} × {:.0} MiB in the slowest machine's {slowest:.1} s of restore); whole run {wall:.0} s", machines as f64 * used as f64 / 1048576.0 / slowest, machines, used as f64 / 1048576.0);
    println!(
        "nginx sent {:.1} MiB: {:.1} MiB per machine = boot files {:.1} MiB + image {:.1} MiB (stored {:.1} MiB)",
        sent as f64 / 1048576.0,
        sent as f64 / machines as f64 / 1048576.0,
        boot_bytes as f64 / 1048576.0,
        (sent as f64 / machines as f64 - boot_bytes as f64) / 1048576.0,
        stored as f64 / 1048576.0
    );
    let reports = n.reports();
    for (i, (tgt, log, _)) in results.iter().enumerate() {
        assert!(log.contains("SYSCLONE-RESULT ok"), "lab{i} did not restore:\n{log}");
        let v = run("sgdisk", &["-v", tgt.to_str().unwrap()]);
        assert!(v.contains("No problems found"), "lab{i}: {v}");
    }
    assert_eq!(reports.lines().filter(|l| l.contains("LABDISK") && l.contains("SYSCLONE-RESULT ok")).count(), machines, "one report per machine: {reports}");
    // Every target holds the same disk, and its ext4 is clean.
    let first = run("sha256sum", &[results[0].0.to_str().unwrap()]).split_whitespace().next().unwrap().to_string();
    for (i, (tgt, _, _)) in results.iter().enumerate() {
        let sum = run("sha256sum", &[tgt.to_str().unwrap()]).split_whitespace().next().unwrap().to_string();
        assert_eq!(sum, first, "lab{i}'s disk differs from lab0's");
    }
    let dev = run("losetup", &["--find", "--show", "--read-only", "--partscan", results[0].0.to_str().unwrap()]).trim().to_string();
    let _ = std::process::Command::new("partx").args(["-a", &dev]).status();
    let fsck = std::process::Command::new("e2fsck").args(["-fn", &format!("{dev}p2")]).output().unwrap();
    run("losetup", &["-d", &dev]);
    assert!(fsck.status.success(), "e2fsck of a restored lab disk: {}", String::from_utf8_lossy(&fsck.stdout));
}
