//! Boot media (issue 7): the Secure Boot USB image under OVMF enforcing Secure Boot with
//! Microsoft's keys, the USB image on a legacy BIOS (SeaBIOS), network boot with iPXE under
//! OVMF and with shim + GRUB under Secure Boot, the `generic` profile on every kind of disk
//! controller, and reproducible builds.
//! Every machine boots with `sysclone.mode=list`: init prints `SYSCLONE-DISKS-JSON {…}` and
//! powers off. Artifacts: scripts/lib/setup.sh `build_all` ($OUT/media-minimal,
//! $OUT/media-generic, $OUT/media-inputs).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::qemu::{Disk, Machine};
use crate::{artifacts, line_with, run};

fn img(dir: &Path, name: &str, size: &str) -> PathBuf {
    let p = dir.join(name);
    run("truncate", &["-s", size, p.to_str().unwrap()]);
    p
}

/// The disk list init printed, by serial (or by kernel name for disks without one).
fn disks_of(log: &str) -> Vec<serde_json::Value> {
    let line = line_with(log, "SYSCLONE-DISKS-JSON ");
    let doc: serde_json::Value = serde_json::from_str(line.split_once("SYSCLONE-DISKS-JSON ").unwrap().1).unwrap();
    doc["disks"].as_array().unwrap().clone()
}

fn disk<'a>(disks: &'a [serde_json::Value], serial: &str) -> &'a serde_json::Value {
    disks.iter().find(|d| d["serial"] == serial).unwrap_or_else(|| panic!("no disk with serial {serial}: {disks:#?}"))
}

/// The guest's own clock: when init started (kernel uptime), when the disks were listed.
fn timing(name: &str, log: &str) {
    let num = |marker: &str, before: &str| -> Option<f64> {
        let l = log.lines().find(|l| l.contains(marker))?;
        let rest = &l[l.find(marker)? + marker.len()..];
        rest.split(before).next()?.trim().parse().ok()
    };
    eprintln!(
        "[{name}] timing: init started at {:?} s (kernel up), disks listed at {:?} s after boot",
        num("starting as init (kernel up ", " s"),
        num("disks listed at ", " s")
    );
}

#[test]
fn secure_boot_with_microsoft_keys() {
    let a = artifacts();
    let work = tempfile::tempdir_in(&a).unwrap();
    let w = work.path();
    let stick = w.join("stick.img");
    fs::copy(a.join("media-minimal/sysclone-usb-secureboot.img"), &stick).unwrap();
    let mut m = Machine::secure_boot(w, "sb");
    m.usb_boot(&stick);
    m.disk(Disk::nvme(&img(w, "n.img", "64M"), "SBNVME"));
    let log = m.run(300);
    timing("sb", &log);
    // The firmware verified shim (Microsoft), shim verified GRUB and the kernel (Debian), the
    // kernel locked itself down and loaded only signed modules; init sees Secure Boot on.
    assert!(log.contains("secure boot: enabled"), "{log}");
    assert!(log.contains("Kernel is locked down from EFI Secure Boot"), "{log}");
    assert!(!log.contains("finit_module"), "a module did not load under lockdown:\n{log}");
    let disks = disks_of(&log);
    assert_eq!(disk(&disks, "SBNVME")["bus"], "nvme");
    // GRUB named the stick's ESP on the command line: the stick is the boot medium.
    assert_eq!(disk(&disks, "STICK1")["roles"], serde_json::json!(["boot-medium"]), "{disks:#?}");

    // Control: the same firmware refuses the unsigned systemd-boot of the plain image.
    let plain = w.join("plain.img");
    fs::copy(a.join("media-minimal/sysclone-usb.img"), &plain).unwrap();
    let mut m = Machine::secure_boot(w, "sb-unsigned");
    m.usb_boot(&plain);
    let log = m.run_until(240, Some("Access Denied"));
    assert!(log.contains("Access Denied") && !log.contains("sysclone"), "{log}");
}

#[test]
fn bios_boots_the_usb_image() {
    let a = artifacts();
    let work = tempfile::tempdir_in(&a).unwrap();
    let w = work.path();
    let stick = w.join("stick.img");
    fs::copy(a.join("media-minimal/sysclone-usb.img"), &stick).unwrap();
    let mut m = Machine::seabios(w, "bios");
    m.usb_boot(&stick);
    m.disk(Disk::sata(&img(w, "s.img", "48M"), "BIOSSATA", "M", 0));
    let log = m.run(300);
    timing("bios", &log);
    assert!(log.contains("sysclone: loading the kernel and initramfs (pc)"), "GRUB for BIOS did not run:\n{log}");
    assert!(!log.contains("secure boot:"), "a BIOS boot has no EFI variables:\n{log}");
    let disks = disks_of(&log);
    assert_eq!(disk(&disks, "BIOSSATA")["bus"], "sata");
    assert_eq!(disk(&disks, "STICK1")["roles"], serde_json::json!(["boot-medium"]), "{disks:#?}");
}

#[test]
fn network_boot_with_ipxe() {
    let a = artifacts();
    let work = tempfile::tempdir_in(&a).unwrap();
    let w = work.path();
    let pxe = a.join("media-minimal/pxe");
    let mut m = Machine::new(w, "pxe");
    m.net_boot(&pxe, "boot.ipxe");
    m.disk(Disk::virtio(&img(w, "v.img", "40M"), "PXEVIRTIO"));
    let log = m.run(300);
    timing("pxe", &log);
    assert!(log.contains("sysclone: loading the kernel and initramfs"), "the iPXE script did not run:\n{log}");
    let disks = disks_of(&log);
    assert_eq!(disk(&disks, "PXEVIRTIO")["bus"], "virtio");
    assert_eq!(disks.len(), 1, "{disks:#?}");
    assert!(!log.contains("boot-medium"), "{log}");
}

/// Secure Boot over the network: OVMF's own PXE client fetches shim, shim fetches Debian's
/// network GRUB from the same TFTP directory, GRUB reads grub/grub.cfg and fetches the kernel
/// and initramfs; every signature checks.
#[test]
fn network_boot_with_secure_boot() {
    let a = artifacts();
    let work = tempfile::tempdir_in(&a).unwrap();
    let w = work.path();
    let mut m = Machine::secure_boot(w, "pxe-sb");
    m.net_boot_firmware_pxe(&a.join("media-minimal/pxe"), "bootx64.efi");
    m.disk(Disk::virtio(&img(w, "v.img", "40M"), "PXESB"));
    let log = m.run(300);
    timing("pxe-sb", &log);
    assert!(log.contains("Fetching Netboot Image grubx64.efi"), "shim did not fetch GRUB:\n{log}");
    assert!(log.contains("sysclone: loading the kernel and initramfs over the network"), "GRUB did not read grub/grub.cfg:\n{log}");
    assert!(log.contains("secure boot: enabled"), "{log}");
    let disks = disks_of(&log);
    assert_eq!(disk(&disks, "PXESB")["bus"], "virtio");
}

#[test]
fn generic_profile_sees_every_controller() {
    let a = artifacts();
    let work = tempfile::tempdir_in(&a).unwrap();
    let w = work.path();
    let stick = w.join("stick.img");
    fs::copy(a.join("media-generic/sysclone-usb.img"), &stick).unwrap();
    let mut m = Machine::new(w, "generic");
    m.usb_boot(&stick);
    m.disk(Disk::nvme(&img(w, "nvme.img", "33M"), "GNVME"));
    m.disk(Disk::sata(&img(w, "sata.img", "34M"), "GSATA", "GSATAMODEL", 0));
    m.disk(Disk::virtio(&img(w, "virtio.img", "35M"), "GVIRTIO"));
    m.disk(Disk::scsi(&img(w, "vscsi.img", "36M"), "GVSCSI", "VSCSI", true));
    m.disk(Disk::scsi_on("lsi53c895a", &img(w, "lsi.img", "37M"), "GLSI"));
    m.disk(Disk::scsi_on("megasas", &img(w, "mega.img", "38M"), "GMEGA"));
    m.disk(Disk::usb(&img(w, "usb.img", "39M"), "GUSB"));
    m.disk(Disk::uas(&img(w, "uas.img", "41M"), "GUAS"));
    m.disk(Disk::sd(&img(w, "sd.img", "64M")));
    let log = m.run(400);
    timing("generic", &log);
    let disks = disks_of(&log);
    for (serial, bus, mib) in [
        ("GNVME", "nvme", 33u64),
        ("GSATA", "sata", 34),
        ("GVIRTIO", "virtio", 35),
        ("GVSCSI", "scsi", 36),
        ("GLSI", "scsi", 37),
        ("GMEGA", "scsi", 38),
        ("GUSB", "usb", 39),
        ("GUAS", "usb", 41),
    ] {
        let d = disk(&disks, serial);
        assert_eq!(d["bus"], bus, "{serial}: {d}");
        assert_eq!(d["size_bytes"].as_u64().unwrap(), mib << 20, "{serial}: {d}");
    }
    let sd: Vec<_> = disks.iter().filter(|d| d["bus"] == "mmc").collect();
    assert_eq!(sd.len(), 1, "no SD card: {disks:#?}");
    assert_eq!(sd[0]["size_bytes"].as_u64().unwrap(), 64 << 20);
    assert_eq!(disks.len(), 10, "{disks:#?}");
}

/// Same inputs and SOURCE_DATE_EPOCH: the same bytes, for every output.
#[test]
fn same_inputs_same_bytes() {
    let a = artifacts();
    let inputs = fs::read_to_string(a.join("media-inputs")).expect("media-inputs (scripts/lib/setup.sh build_all)");
    let get = |k: &str| inputs.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap_or_else(|| panic!("{k} missing from media-inputs")).to_string();
    let bin = std::env::var("SYSCLONE_BIN").map(PathBuf::from).unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/x86_64-unknown-linux-musl/release/sysclone"));
    let work = tempfile::tempdir_in(&a).unwrap();
    let again = work.path().join("again");
    let o = Command::new(&bin)
        .args(["image", "build", "--kernel-dir", &get("KDIR"), "--boot-files", &get("BOOTFILES"), "--cmdline", "sysclone.mode=list", "--out"])
        .arg(&again)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let first = fs::read_to_string(a.join("media-minimal/SHA256SUMS")).unwrap();
    let second = fs::read_to_string(again.join("SHA256SUMS")).unwrap();
    for name in ["initramfs.img", "sysclone-usb.img", "sysclone-usb-secureboot.img", "pxe/boot.ipxe"] {
        assert!(first.lines().any(|l| l.ends_with(&format!("  {name}"))), "{name} not built:\n{first}");
    }
    assert_eq!(first, second, "two builds from the same inputs differ");
    // Another SOURCE_DATE_EPOCH: the same initramfs, but new identifiers on the stick.
    let other = work.path().join("other");
    let o = Command::new(&bin)
        .args(["image", "build", "--kernel-dir", &get("KDIR"), "--boot-files", &get("BOOTFILES"), "--cmdline", "sysclone.mode=list", "--no-pxe", "--out"])
        .arg(&other)
        .env("SOURCE_DATE_EPOCH", "1700000001")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let third = fs::read_to_string(other.join("SHA256SUMS")).unwrap();
    let sum = |t: &str, n: &str| t.lines().find(|l| l.ends_with(&format!("  {n}"))).unwrap().split_whitespace().next().unwrap().to_string();
    assert_eq!(sum(&first, "initramfs.img"), sum(&third, "initramfs.img"));
    assert_ne!(sum(&first, "sysclone-usb.img"), sum(&third, "sysclone-usb.img"));
}
