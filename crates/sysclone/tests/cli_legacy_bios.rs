//! Legacy BIOS systems through `sysclone clone --mode smart` on loop devices: an MBR disk with
//! boot code in sector 0 and GRUB's core image in the gap before the first partition, and a
//! GPT disk with a BIOS boot partition. The boot code, the gap and the BIOS boot partition
//! reach the target byte for byte, the filesystem checks clean, and the report says there is
//! no NVRAM to change.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use sysclone_testutil::{assert_same_files, fill_tree, noise, require_root, run, Loop};

const BIN: &str = env!("CARGO_BIN_EXE_sysclone");

/// Loop tests that attach and detach devices run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn write_at(img: &Path, off: u64, data: &[u8]) {
    OpenOptions::new().write(true).open(img).unwrap().write_all_at(data, off).unwrap();
}

fn read_at(img: &Path, off: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    File::open(img).unwrap().read_exact_at(&mut b, off).unwrap();
    b
}

/// An ext4 filesystem on `dev` with files.
fn ext4_with_files(dev: &str, dir: &Path) {
    run("mkfs.ext4", &["-q", "-F", "-L", "root", dev]);
    let mnt = dir.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    run("mount", &[dev, mnt.to_str().unwrap()]);
    fill_tree(&mnt, 2 << 20, 31);
    run("umount", &[mnt.to_str().unwrap()]);
}

fn smart_clone(src: &Loop, tgt: &Loop) -> String {
    let out = Command::new(BIN).args(["clone", "--yes", "--mode", "smart", "--source", &src.0, "--target", &tgt.0]).output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "clone failed:\n{log}");
    log
}

#[test]
fn mbr_boot_code_and_embedding_gap_survive_a_smart_clone() {
    require_root();
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let (src_img, tgt_img) = (t.path().join("src.img"), t.path().join("tgt.img"));
    run("truncate", &["-s", "96M", src_img.to_str().unwrap()]);
    run("truncate", &["-s", "128M", tgt_img.to_str().unwrap()]);
    // Sector 0: GRUB-like boot code, the disk signature, one bootable Linux partition from
    // 1 MiB to the end; then a core image in the sectors up to the first partition.
    let mut mbr = noise(440, 7);
    mbr.extend_from_slice(&0x5ec1_0e01u32.to_le_bytes());
    mbr.extend_from_slice(&[0, 0]);
    let sectors = (96u32 << 20) / 512;
    mbr.extend_from_slice(&[0x80, 0xfe, 0xff, 0xff, 0x83, 0xfe, 0xff, 0xff]);
    mbr.extend_from_slice(&2048u32.to_le_bytes());
    mbr.extend_from_slice(&(sectors - 2048).to_le_bytes());
    mbr.resize(510, 0);
    mbr.extend_from_slice(&[0x55, 0xaa]);
    let core = noise(2047 * 512, 8);
    write_at(&src_img, 0, &mbr);
    write_at(&src_img, 512, &core);
    let src = Loop::new(&src_img, 512);
    ext4_with_files(&src.part(1), t.path());
    let tgt = Loop::new(&tgt_img, 512);
    let log = smart_clone(&src, &tgt);
    assert!(log.contains("MBR/BIOS system: boot code kept, no NVRAM to change"), "{log}");
    assert_eq!(read_at(&tgt_img, 0, 512), read_at(&src_img, 0, 512), "sector 0 (boot code, signature, table)");
    assert_eq!(read_at(&tgt_img, 512, core.len()), core, "the gap before the first partition (GRUB's core image)");
    let fsck = Command::new("e2fsck").args(["-fn", &tgt.part(1)]).output().unwrap();
    assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stdout));
    assert_same_files(&src.part(1), &tgt.part(1), "ext4", t.path());
}

#[test]
fn gpt_bios_boot_partition_survives_a_smart_clone() {
    require_root();
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let (src_img, tgt_img) = (t.path().join("src.img"), t.path().join("tgt.img"));
    run("truncate", &["-s", "96M", src_img.to_str().unwrap()]);
    run("truncate", &["-s", "96M", tgt_img.to_str().unwrap()]);
    run("sgdisk", &["-n", "1:1M:+1M", "-t", "1:ef02", "-c", "1:bios", "-n", "2:0:0", "-t", "2:8304", "-c", "2:root", src_img.to_str().unwrap()]);
    let code = noise(440, 9);
    let core = noise(1 << 20, 10);
    write_at(&src_img, 0, &code);
    write_at(&src_img, 1 << 20, &core);
    let src = Loop::new(&src_img, 512);
    ext4_with_files(&src.part(2), t.path());
    let tgt = Loop::new(&tgt_img, 512);
    let log = smart_clone(&src, &tgt);
    let name = src.name();
    assert!(log.contains(&format!("no EFI System partition on {name} (gpt table): BIOS system, boot code kept, no NVRAM to change")), "{log}");
    assert_eq!(read_at(&tgt_img, 0, 440), code, "boot code in the protective MBR");
    assert_eq!(read_at(&tgt_img, 1 << 20, core.len()), core, "the BIOS boot partition (GRUB's core image)");
    let v = run("sgdisk", &["-v", tgt_img.to_str().unwrap()]);
    assert!(v.contains("No problems found"), "{v}");
    let fsck = Command::new("e2fsck").args(["-fn", &tgt.part(2)]).output().unwrap();
    assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stdout));
    assert_same_files(&src.part(2), &tgt.part(2), "ext4", t.path());
}
