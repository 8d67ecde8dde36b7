//! `sysclone image write` on real loop devices: a blank stick is written and read back; a
//! stick made by sysclone before is written again; a system disk and a mounted disk are
//! refused (exit 3) and left as they were.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sysclone_media::usbimage::{build_usb_image, BiosBoot, UsbIds, UsbImageSpec};
use sysclone_testutil::{make_gpt_disk, require_root, run, sha256, Loop};

const BIN: &str = env!("CARGO_BIN_EXE_sysclone");

/// A small USB image with a BIOS boot partition (fake loader, kernel, GRUB).
fn image(dir: &Path, seed: &str) -> PathBuf {
    let w = |n: &str, data: &[u8]| {
        let p = dir.join(n);
        fs::write(&p, data).unwrap();
        p
    };
    let mut boot_img = vec![0u8; 512];
    boot_img[0x66] = 0xEB;
    boot_img[510..].copy_from_slice(&[0x55, 0xAA]);
    let mut core_img = vec![7u8; 512 * 4];
    core_img[0x1f4..0x200].copy_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0x20, 0x08]);
    let spec = UsbImageSpec {
        kernel: w("vmlinuz", &vec![1u8; 100_000]),
        initramfs: w("initrd", seed.as_bytes()),
        loader_efi: w("loader.efi", b"MZ loader"),
        title: "sysclone test".into(),
        bios: Some(BiosBoot { boot_img, core_img }),
        ids: Some(UsbIds::from_seed(seed.as_bytes())),
        timestamp: Some(1_700_000_000),
        ..Default::default()
    };
    let out = dir.join(format!("{seed}.img"));
    build_usb_image(&spec, &out).unwrap();
    out
}

fn write(img: &Path, to: &str) -> std::process::Output {
    Command::new(BIN).args(["image", "write", "--yes", "--to", to]).arg(img).output().unwrap()
}

fn head_equals(dev_file: &Path, img: &Path) -> bool {
    let a = fs::read(img).unwrap();
    let b = fs::read(dev_file).unwrap();
    b.len() >= a.len() && b[..a.len()] == a[..]
}

#[test]
fn writes_a_stick_and_refuses_system_and_mounted_disks() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let first = image(t.path(), "first");
    let second = image(t.path(), "second");

    // A blank stick: written, read back.
    let stick_file = t.path().join("stick.raw");
    run("truncate", &["-s", "80M", stick_file.to_str().unwrap()]);
    let stick = Loop::new(&stick_file, 512);
    let o = write(&first, &stick.0);
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("verified"), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(head_equals(&stick_file, &first));
    let table = run("sgdisk", &["-p", &stick.0]);
    assert!(table.contains("sysclone ESP") && table.contains("BIOS boot"), "{table}");

    // The same stick again (now ESP + BIOS boot: not taken for a system disk).
    let o = write(&second, &stick.0);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(head_equals(&stick_file, &second));
    drop(stick);

    // A system disk (ESP + root filesystem): refused, unchanged.
    let sys_img = make_gpt_disk(t.path(), "system.img", "96M", 512);
    let before = sha256(&sys_img);
    let sys = Loop::new(&sys_img, 512);
    let o = write(&first, &sys.0);
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("looks like a system disk"), "{}", String::from_utf8_lossy(&o.stderr));
    drop(sys);
    assert_eq!(sha256(&sys_img), before);

    // A mounted disk: refused, unchanged.
    let m_file = t.path().join("mounted.raw");
    run("truncate", &["-s", "80M", m_file.to_str().unwrap()]);
    run("mkfs.ext4", &["-q", "-F", m_file.to_str().unwrap()]);
    let m = Loop::new(&m_file, 512);
    let mnt = t.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    run("mount", &[&m.0, mnt.to_str().unwrap()]);
    let o = write(&first, &m.0);
    run("umount", &[mnt.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("mounted"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!head_equals(&m_file, &first));

    // Not an image: an error, nothing selected or written.
    let junk = t.path().join("junk.img");
    fs::write(&junk, vec![0u8; 1 << 20]).unwrap();
    let o = write(&junk, &m.0);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no GPT"), "{}", String::from_utf8_lossy(&o.stderr));
}
