//! `sysclone disks --json` on a real loop disk whose partitions were made by each
//! filesystem's own mkfs: partition types, filesystem kinds, labels, UUIDs and PARTUUIDs as
//! blkid reads them, and used bytes as each filesystem's own tool reports them.

use std::process::Command;

use sysclone_testutil::{require_root, run, Loop};

const BIN: &str = env!("CARGO_BIN_EXE_sysclone");

fn blkid(dev: &str, tag: &str) -> String {
    run("blkid", &["-p", "-s", tag, "-o", "value", dev]).trim().to_string()
}

/// A number after `key` in a tool's output (`Block count:  12345`, `bytes_used 16384`).
fn number_after(text: &str, key: &str) -> u64 {
    let line = text.lines().find(|l| l.trim_start().starts_with(key)).unwrap_or_else(|| panic!("no {key:?} in:\n{text}"));
    line[line.find(key).unwrap() + key.len()..].trim_start_matches([':', ' ', '=', '\t']).split_whitespace().next().unwrap().parse().unwrap_or_else(|_| panic!("{line}"))
}

#[test]
fn disks_json_reports_every_filesystem_as_its_own_tools_do() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("multi.img");
    run("truncate", &["-s", "720M", img.to_str().unwrap()]);
    let l = Loop::new(&img, 512);
    run(
        "sgdisk",
        &[
            "-n", "1:1M:+40M", "-t", "1:ef00", "-c", "1:esp",
            "-n", "2:0:+64M", "-t", "2:8304", "-c", "2:root",
            "-n", "3:0:+300M", "-t", "3:8300", "-c", "3:data",
            "-n", "4:0:+128M", "-t", "4:8300",
            "-n", "5:0:+64M", "-t", "5:0700", "-c", "5:windows",
            "-n", "6:0:+32M", "-t", "6:8200",
            &l.0,
        ],
    );
    let p = |n: u32| l.part(n);
    run("mkfs.fat", &["-F", "32", "-n", "MYESP", &p(1)]);
    run("mkfs.ext4", &["-q", "-F", "-L", "rootfs", &p(2)]);
    run("mkfs.xfs", &["-q", "-f", "-L", "xdata", &p(3)]);
    run("mkfs.btrfs", &["-q", "-f", "-L", "bdata", &p(4)]);
    run("mkntfs", &["-Q", "-F", "-L", "WIN", &p(5)]);
    run("mkswap", &["-L", "swp", &p(6)]);

    let out = Command::new(BIN).args(["disks", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["schema"], 1);
    let disk = doc["disks"].as_array().unwrap().iter().find(|d| d["name"] == l.name()).unwrap_or_else(|| panic!("{} not listed: {doc:#}", l.name())).clone();
    assert_eq!(disk["bus"], "loop");
    assert_eq!(disk["table"], "gpt");
    assert_eq!(disk["size_bytes"].as_u64().unwrap(), 720 << 20);
    assert_eq!(disk["disk_guid"].as_str().unwrap(), run("sgdisk", &["-p", &l.0]).lines().find_map(|x| x.strip_prefix("Disk identifier (GUID): ")).unwrap().to_ascii_lowercase());
    // Nothing holds, mounts or swaps it; an ESP next to other partitions makes it `system`.
    assert_eq!(disk["roles"], serde_json::json!(["system"]), "an ESP next to other partitions: {disk}");
    let parts = disk["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 6, "{disk:#}");

    let expect = [
        (1, "EFI System", "vfat", "MYESP"),
        (2, "Linux root (x86-64)", "ext4", "rootfs"),
        (3, "Linux filesystem", "xfs", "xdata"),
        (4, "Linux filesystem", "btrfs", "bdata"),
        (5, "Microsoft basic data", "ntfs", "WIN"),
        (6, "Linux swap", "swap", "swp"),
    ];
    for (n, type_name, kind, label) in expect {
        let part = &parts[n as usize - 1];
        let dev = p(n);
        assert_eq!(part["number"], n);
        assert_eq!(part["type_name"], type_name, "partition {n}: {part}");
        assert_eq!(part["fs"]["kind"], kind, "partition {n}: {part}");
        assert_eq!(part["part_uuid"].as_str().unwrap(), blkid(&dev, "PART_ENTRY_UUID").to_ascii_lowercase(), "partition {n}");
        assert_eq!(part["name"].as_str().unwrap(), dev.trim_start_matches("/dev/"));
        // NTFS has no label in its boot sector (it is a file); blkid reads it from the MFT.
        if kind != "ntfs" {
            assert_eq!(part["fs"]["label"], label, "partition {n}: {part}");
        }
        let uuid = blkid(&dev, "UUID");
        assert!(part["fs"]["uuid"].as_str().unwrap().eq_ignore_ascii_case(&uuid), "partition {n}: {part} vs blkid {uuid}");
    }
    let used = |n: usize| parts[n - 1]["fs"]["used_bytes"].as_u64().unwrap_or_else(|| panic!("no used_bytes: {}", parts[n - 1]));
    let e2 = run("dumpe2fs", &["-h", &p(2)]);
    assert_eq!(used(2), (number_after(&e2, "Block count:") - number_after(&e2, "Free blocks:")) * number_after(&e2, "Block size:"));
    let x = run("xfs_db", &["-r", "-c", "sb 0", "-c", "p dblocks fdblocks blocksize", &p(3)]);
    assert_eq!(used(3), (number_after(&x, "dblocks =") - number_after(&x, "fdblocks =")) * number_after(&x, "blocksize ="));
    let b = run("btrfs", &["inspect-internal", "dump-super", &p(4)]);
    assert_eq!(used(4), number_after(&b, "bytes_used"));
    // fsck.fat: "N files, USED/TOTAL clusters" and "B bytes per cluster".
    let f = run("fsck.fat", &["-n", "-v", &p(1)]);
    let clusters: u64 = f.lines().find_map(|x| x.split_once(" files, ").map(|(_, r)| r.split('/').next().unwrap().parse().unwrap())).unwrap_or_else(|| panic!("{f}"));
    let cluster_bytes: u64 = f.lines().find(|x| x.contains("bytes per cluster")).and_then(|x| x.split_whitespace().next()).unwrap().parse().unwrap();
    assert_eq!(used(1), clusters * cluster_bytes, "{f}");
    assert!(parts[4]["fs"]["used_bytes"].is_null() && parts[5]["fs"]["used_bytes"].is_null(), "ntfs and swap have no cheap used count");
}
