//! End-to-end tests in QEMU: OVMF firmware, Debian's kernel, the rescue USB image, disks on
//! several buses. The artifacts come from scripts/test (or scripts/demo), which set
//! SYSCLONE_E2E_DIR; without it these tests fail with a message, they never skip.

mod faults;
mod imaging;
mod media;
mod network;
mod offline;
mod qemu;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use qemu::{Disk, Machine};

fn artifacts() -> PathBuf {
    let dir = std::env::var_os("SYSCLONE_E2E_DIR").expect("SYSCLONE_E2E_DIR is not set: run scripts/test (it builds the images these tests boot)");
    PathBuf::from(dir)
}

/// Replace `path` on the stick's ESP (which starts at 1 MiB) with `text`.
pub(crate) fn put_on_stick(stick: &Path, path: &str, text: &str) {
    let tmp = stick.with_extension("put");
    fs::write(&tmp, text).unwrap();
    run("mcopy", &["-o", "-i", &format!("{}@@1M", stick.display()), tmp.to_str().unwrap(), &format!("::/{path}")]);
}

pub(crate) fn loader_entry(extra: &str) -> String {
    format!(
        "title sysclone\nlinux /EFI/sysclone/vmlinuz\ninitrd /EFI/sysclone/initramfs.img\noptions console=tty0 console=ttyS0,115200 panic=10 {extra}\n"
    )
}

/// One test's work directory: a copy of the fixture system disk (`src`), a blank target of
/// the given size (`tgt`) and a copy of the named rescue image's USB stick (`stick`).
struct Scene {
    a: PathBuf,
    work: tempfile::TempDir,
    src: PathBuf,
    tgt: PathBuf,
    stick: PathBuf,
}

impl Scene {
    fn new(rescue: &str, target_size: &str) -> Scene {
        let a = artifacts();
        let work = tempfile::tempdir_in(&a).unwrap();
        let w = work.path();
        let (src, tgt, stick) = (w.join("src.img"), w.join("tgt.img"), w.join("stick.img"));
        fs::copy(a.join("fixture/fixture.img"), &src).unwrap();
        fs::copy(a.join(format!("{rescue}/sysclone-usb.img")), &stick).unwrap();
        run("truncate", &["-s", target_size, tgt.to_str().unwrap()]);
        Scene { a, work, src, tgt, stick }
    }
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?} failed:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn line_with<'a>(log: &'a str, marker: &str) -> &'a str {
    log.lines().find(|l| l.contains(marker)).unwrap_or_else(|| panic!("no line with {marker:?} on the console:\n{log}"))
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace().find_map(|w| w.strip_prefix(&format!("{key}="))).unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// The firmware's variable store, as virt-firmware (PyPI) reads it.
fn firmware_vars(vars: &Path) -> serde_json::Value {
    let json = vars.with_extension("json");
    run("virt-fw-vars", &["-i", vars.to_str().unwrap(), "--output-json", json.to_str().unwrap()]);
    serde_json::from_slice(&fs::read(&json).unwrap()).unwrap()
}

fn var<'a>(vars: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    vars["variables"].as_array().unwrap().iter().find(|v| v["name"] == name).and_then(|v| v["data"].as_str())
}

fn u16s(hex: &str) -> Vec<u16> {
    (0..hex.len() / 4).map(|i| u16::from_str_radix(&format!("{}{}", &hex[4 * i + 2..4 * i + 4], &hex[4 * i..4 * i + 2]), 16).unwrap()).collect()
}

/// UCS-2 description of a Boot#### variable's hex data.
fn boot_description(hex: &str) -> String {
    let b: Vec<u8> = (0..hex.len() / 2).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect();
    let units: Vec<u16> = b[6..].chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|&u| u != 0).collect();
    String::from_utf16_lossy(&units)
}

#[test]
fn clone_then_boot_the_clone() {
    let a = artifacts();
    let work = tempfile::tempdir_in(&a).unwrap();
    let w = work.path();
    let src = w.join("src.img");
    let tgt = w.join("tgt.img");
    fs::copy(a.join("fixture/fixture.img"), &src).unwrap();
    run("truncate", &["-s", "320M", tgt.to_str().unwrap()]);
    let expect_root = fs::read_to_string(a.join("fixture/root-sha256")).unwrap().trim().to_string();
    let esp_uuid = fs::read_to_string(a.join("fixture/esp-partuuid")).unwrap().trim().to_string();
    let src_before = run("sha256sum", &[src.to_str().unwrap()]);

    // Run 1: boot the rescue stick; the job clones SRC1 (NVMe) to TGT1 (virtio) and reboots.
    let stick = w.join("stick.img");
    fs::copy(a.join("rescue/sysclone-usb.img"), &stick).unwrap();
    let mut m = Machine::new(w, "run1");
    m.usb_boot(&stick);
    m.disk(Disk::nvme(&src, "SRC1"));
    m.disk(Disk::virtio(&tgt, "TGT1"));
    let log = m.run(900);
    assert!(log.contains("SYSCLONE-RESULT ok"), "the clone job did not succeed:\n{log}");
    let listed = line_with(&log, "disks listed (");
    assert!(listed.contains("disks listed (3 found)"), "{listed}");
    assert!(log.lines().any(|l| l.contains("nvme") && l.contains("serial=SRC1")), "NVMe source not listed:\n{log}");
    assert!(log.lines().any(|l| l.contains("virtio") && l.contains("serial=TGT1")), "virtio target not listed:\n{log}");
    assert!(log.lines().any(|l| l.contains("usb") && l.contains("[boot-medium]")), "USB stick not tagged boot-medium:\n{log}");
    assert!(log.contains("rebooting"), "{log}");
    // The log is kept on the stick's ESP (1 MiB into the image), readable anywhere.
    let logs = run("mdir", &["-b", "-i", &format!("{}@@1M", stick.display()), "::/sysclone/logs"]);
    let saved = logs.lines().find(|l| l.ends_with("-ok.log")).unwrap_or_else(|| panic!("no log on the stick: {logs}"));
    let text = run("mtype", &["-i", &format!("{}@@1M", stick.display()), &format!("::{}", saved.trim_start_matches(':'))]);
    assert!(text.contains("SYSCLONE-RESULT ok") && text.contains("disks listed"), "{text}");

    // The source was only read.
    assert_eq!(run("sha256sum", &[src.to_str().unwrap()]), src_before, "the source disk changed");
    // Bytes: equal over the source's size, except the primary GPT header (LBA 1) and the
    // protective MBR's size field.
    let s = fs::read(&src).unwrap();
    let t = fs::read(&tgt).unwrap();
    assert_eq!(s[..458], t[..458]);
    assert_eq!(s[462..512], t[462..512]);
    assert_ne!(s[512..1024], t[512..1024]);
    assert!(s[1024..] == t[1024..s.len()], "target differs from the source beyond the GPT header");
    let v = run("sgdisk", &["-v", tgt.to_str().unwrap()]);
    assert!(v.contains("No problems found"), "sgdisk -v on the clone:\n{v}");

    // The firmware's store: a new entry for the clone's ESP, first in BootOrder.
    let vars = firmware_vars(&m.vars);
    let order = u16s(var(&vars, "BootOrder").expect("BootOrder"));
    let first = format!("Boot{:04X}", order[0]);
    let desc = boot_description(var(&vars, &first).expect("first boot entry"));
    assert_eq!(desc, "sysclone clone on TGT1", "BootOrder {order:04X?} starts with {first} = {desc:?}");
    let entry_line = line_with(&log, "boot entry Boot");
    assert!(entry_line.contains(&first), "{entry_line}");

    // Run 2, the reboot: only the clone is attached, no boot stick, same firmware store.
    let mut m2 = Machine::with_vars(w, "run2", &m.vars);
    m2.disk(Disk::virtio(&tgt, "TGT1"));
    let log2 = m2.run(600);
    let check = line_with(&log2, "SYSCLONE-BOOTCHECK");
    assert_eq!(field(check, "partuuid"), esp_uuid, "{check}");
    assert_eq!(field(check, "serial"), "TGT1", "{check}");
    assert_eq!(field(check, "root-sha256"), expect_root, "root content of the clone:\n{check}");
    assert_eq!(field(check, "bootcurrent"), &first[4..], "the firmware booted another entry: {check}");
}

#[test]
fn the_rescue_stick_is_never_a_target() {
    let a = artifacts();
    let work = tempfile::tempdir_in(&a).unwrap();
    let w = work.path();
    let src = w.join("src.img");
    let stick = w.join("stick.img");
    fs::copy(a.join("fixture/fixture.img"), &src).unwrap();
    fs::copy(a.join("rescue-refuse/sysclone-usb.img"), &stick).unwrap();
    let head = |p: &Path| fs::read(p).unwrap()[..1 << 20].to_vec();
    let before = (run("sha256sum", &[src.to_str().unwrap()]), head(&stick));
    let mut m = Machine::new(w, "refuse");
    m.usb_boot(&stick);
    m.disk(Disk::nvme(&src, "SRC1"));
    let log = m.run(600);
    let err = line_with(&log, "ERROR:");
    assert!(err.contains("refusing to write sda") && err.contains("boot medium"), "{err}");
    assert!(log.contains("SYSCLONE-RESULT failed") && log.contains("powering off"), "{log}");
    assert!(!log.contains("SYSCLONE-RESULT ok"), "{log}");
    let after = (run("sha256sum", &[src.to_str().unwrap()]), head(&stick));
    assert!(before == after, "a refused job wrote the source or the stick's partition table");
    // Only the log of the failure was added to the stick's ESP.
    let logs = run("mdir", &["-b", "-i", &format!("{}@@1M", stick.display()), "::/sysclone/logs"]);
    assert!(logs.lines().any(|l| l.ends_with("-failed.log")), "{logs}");
}

#[test]
fn disks_on_every_bus_are_seen_as_they_are() {
    let a = artifacts();
    let work = tempfile::tempdir_in(&a).unwrap();
    let w = work.path();
    let img = |name: &str, size: &str| {
        let p = w.join(name);
        run("truncate", &["-s", size, p.to_str().unwrap()]);
        p
    };
    let stick = w.join("stick.img");
    fs::copy(a.join("rescue-list/sysclone-usb.img"), &stick).unwrap();
    let mut m = Machine::new(w, "disks");
    m.usb_boot(&stick);
    m.disk(Disk::nvme_4k(&img("nvme4k.img", "64M"), "NV4K"));
    m.disk(Disk::virtio_ro(&img("vro.img", "48M"), "VRO"));
    m.disk(Disk::sata(&img("sata.img", "40M"), "SATA1", "SATAMODEL", 0));
    m.disk(Disk::scsi(&img("scsi1.img", "56M"), "SCSI1", "TWIN", true));
    m.disk(Disk::scsi(&img("scsi2.img", "56M"), "SCSI2", "TWIN", false));
    let log = m.run(600);
    let line = line_with(&log, "SYSCLONE-DISKS-JSON ");
    let doc: serde_json::Value = serde_json::from_str(line.split_once("SYSCLONE-DISKS-JSON ").unwrap().1).unwrap();
    assert_eq!(doc["version"], 1);
    let disks = doc["disks"].as_array().unwrap();
    let by_serial = |s: &str| disks.iter().find(|d| d["serial"] == s).unwrap_or_else(|| panic!("no disk with serial {s}: {doc:#}"));
    let expect = [
        ("NV4K", "nvme", 64u64 << 20, 4096u64, false),
        ("VRO", "virtio", 48 << 20, 512, true),
        ("SATA1", "sata", 40 << 20, 512, false),
        ("SCSI1", "scsi", 56 << 20, 512, false),
        ("SCSI2", "scsi", 56 << 20, 512, false),
        ("STICK1", "usb", fs::metadata(&stick).unwrap().len(), 512, false),
    ];
    for (serial, bus, size, lbs, ro) in expect {
        let d = by_serial(serial);
        assert_eq!(d["bus"], bus, "{serial}: {d}");
        assert_eq!(d["size_bytes"].as_u64().unwrap(), size, "{serial}: {d}");
        assert_eq!(d["logical_sector"].as_u64().unwrap(), lbs, "{serial}: {d}");
        assert_eq!(d["read_only"].as_bool().unwrap(), ro, "{serial}: {d}");
    }
    assert_eq!(disks.len(), 6, "{doc:#}");
    assert_eq!(by_serial("NV4K")["physical_sector"], 4096);
    assert_eq!(by_serial("STICK1")["roles"], serde_json::json!(["boot-medium"]));
    assert_eq!(by_serial("STICK1")["removable"], true);
    assert_eq!(by_serial("SATA1")["model"], "SATAMODEL");
    // The twins: same model and size, told apart by serial only.
    assert_eq!(by_serial("SCSI1")["model"], by_serial("SCSI2")["model"]);
    assert!(by_serial("SCSI1")["model"].as_str().unwrap().contains("TWIN"));
}

/// `boot_entry = "next"` with a smart, verified clone: the first boot goes to the clone's
/// entry (BootNext), the one after that to the unchanged BootOrder again.
#[test]
fn boot_next_tries_the_clone_once() {
    let Scene { a, work, src, tgt, stick } = Scene::new("rescue-next", "200M");
    let w = work.path();
    let expect_root = fs::read_to_string(a.join("fixture/root-sha256")).unwrap().trim().to_string();

    let mut m = Machine::new(w, "next1");
    m.usb_boot(&stick);
    m.disk(Disk::nvme(&src, "SRC1"));
    m.disk(Disk::virtio(&tgt, "TGT1"));
    let log = m.run(900);
    assert!(log.contains("SYSCLONE-RESULT ok"), "{log}");
    assert!(log.contains("smart clone"), "{log}");
    let vars = firmware_vars(&m.vars);
    let next = var(&vars, "BootNext").expect("BootNext set");
    let n = u16s(next)[0];
    let order = u16s(var(&vars, "BootOrder").unwrap());
    assert!(!order.contains(&n), "with boot_entry = \"next\" the job must not touch BootOrder: {order:04X?}");
    assert_eq!(boot_description(var(&vars, &format!("Boot{n:04X}")).unwrap()), "sysclone clone on TGT1");
    let v = run("sgdisk", &["-v", tgt.to_str().unwrap()]);
    assert!(v.contains("No problems found"), "{v}");

    // First boot: BootNext, the clone's entry.
    let m2 = {
        let mut m2 = Machine::with_vars(w, "next2", &m.vars);
        m2.disk(Disk::virtio(&tgt, "TGT1"));
        m2
    };
    let log2 = m2.run(600);
    let check = line_with(&log2, "SYSCLONE-BOOTCHECK");
    assert_eq!(field(check, "bootcurrent"), format!("{n:04X}"), "{check}");
    assert_eq!(field(check, "root-sha256"), expect_root, "{check}");
    assert!(var(&firmware_vars(&m2.vars), "BootNext").is_none(), "the firmware keeps BootNext after using it");

    // Second boot: back to BootOrder (unchanged by the job), which does not start with the
    // clone's entry. The firmware names what it starts; stop there. (Under QEMU, OVMF pruned
    // the source's own auto-created entry when the stick was given a bootindex, so what it
    // starts here is the next entry of the old order, not the source disk.)
    let mut m3 = Machine::with_vars(w, "next3", &m2.vars);
    m3.disk(Disk::nvme(&src, "SRC1"));
    m3.disk(Disk::virtio(&tgt, "TGT1"));
    let log3 = m3.run_until(600, Some("BdsDxe: starting Boot"));
    let started = line_with(&log3, "BdsDxe: starting Boot");
    assert!(!started.contains(&format!("Boot{n:04X}")), "the clone's entry was booted again: {started}");
}

/// Migrate the fixture system onto a smaller disk (root shrunk) and onto a larger 4Kn disk
/// (root grown, ESP rebuilt for 4096-byte sectors); each clone boots alone with its files.
#[test]
fn migrated_systems_boot_smaller_and_on_4k_sectors() {
    let a = artifacts();
    let expect_root = fs::read_to_string(a.join("fixture/root-sha256")).unwrap().trim().to_string();
    for (name, size, lbs) in [("shrink", "128M", 512u32), ("grow4k", "400M", 4096)] {
        let work = tempfile::tempdir_in(&a).unwrap();
        let w = work.path();
        let src = w.join("src.img");
        let tgt = w.join("tgt.img");
        let stick = w.join("stick.img");
        fs::copy(a.join("fixture/fixture.img"), &src).unwrap();
        fs::copy(a.join("rescue-migrate/sysclone-usb.img"), &stick).unwrap();
        run("truncate", &["-s", size, tgt.to_str().unwrap()]);
        let src_before = run("sha256sum", &[src.to_str().unwrap()]);
        let mut m = Machine::new(w, &format!("{name}1"));
        m.usb_boot(&stick);
        m.disk(Disk::nvme(&src, "SRC1"));
        m.disk(if lbs == 4096 { Disk::virtio_4k(&tgt, "TGT1") } else { Disk::virtio(&tgt, "TGT1") });
        let log = m.run(900);
        assert!(log.contains("SYSCLONE-RESULT ok"), "{name}: migration failed:\n{log}");
        assert_eq!(run("sha256sum", &[src.to_str().unwrap()]), src_before, "{name}: the source changed");
        if lbs == 512 {
            assert!(log.contains("shrunk"), "{name}: no shrink reported:\n{log}");
            let v = run("sgdisk", &["-v", tgt.to_str().unwrap()]);
            assert!(v.contains("No problems found"), "{name}: {v}");
        } else {
            assert!(log.contains("rebuilt for 4096-byte sectors"), "{name}:\n{log}");
        }
        let mut m2 = Machine::with_vars(w, &format!("{name}2"), &m.vars);
        m2.disk(if lbs == 4096 { Disk::virtio_4k(&tgt, "TGT1") } else { Disk::virtio(&tgt, "TGT1") });
        let log2 = m2.run(600);
        let check = line_with(&log2, "SYSCLONE-BOOTCHECK");
        assert_eq!(field(check, "serial"), "TGT1", "{name}: {check}");
        assert_eq!(field(check, "root-sha256"), expect_root, "{name}: {check}");
    }
}

/// `identities = "new"`: with both disks attached the clone boots from its own ESP and its
/// fstab names its own partitions; the source, untouched, still boots as itself.
#[test]
fn migrated_clone_with_new_identities_boots_beside_its_source() {
    let Scene { a, work, src, tgt, stick } = Scene::new("rescue-migrate-new", "256M");
    let w = work.path();
    let esp_uuid = fs::read_to_string(a.join("fixture/esp-partuuid")).unwrap().trim().to_string();
    let expect_root = fs::read_to_string(a.join("fixture/root-sha256")).unwrap().trim().to_string();

    let mut m = Machine::new(w, "new1");
    m.usb_boot(&stick);
    m.disk(Disk::nvme(&src, "SRC1"));
    m.disk(Disk::virtio(&tgt, "TGT1"));
    let log = m.run(900);
    assert!(log.contains("SYSCLONE-RESULT ok"), "{log}");
    assert!(log.contains("etc/fstab line"), "fstab was not rewritten:\n{log}");

    let mut m2 = Machine::with_vars(w, "new2", &m.vars);
    m2.disk(Disk::nvme(&src, "SRC1"));
    m2.disk(Disk::virtio(&tgt, "TGT1"));
    let check = line_with(&m2.run(600), "SYSCLONE-BOOTCHECK").to_string();
    assert_eq!(field(&check, "serial"), "TGT1", "{check}");
    assert_ne!(field(&check, "partuuid"), esp_uuid, "the clone kept the source's ESP GUID: {check}");
    assert_eq!(field(&check, "fstab"), "own", "the clone's fstab names another disk: {check}");

    let mut m3 = Machine::new(w, "new3");
    m3.disk(Disk::nvme(&src, "SRC1"));
    let check = line_with(&m3.run(600), "SYSCLONE-BOOTCHECK").to_string();
    assert_eq!((field(&check, "serial"), field(&check, "partuuid"), field(&check, "fstab")), ("SRC1", esp_uuid.as_str(), "own"), "{check}");
    assert_eq!(field(&check, "root-sha256"), expect_root, "{check}");
}

/// The rescue image's shell (`sysclone.mode=shell`, image built with `--shell`), driven over
/// the serial console: an entry made by Debian's efibootmgr is listed identically by
/// `sysclone boot list -v`, and one made by `sysclone boot create` is listed by efibootmgr.
#[test]
fn efibootmgr_and_sysclone_agree_on_boot_entries() {
    let a = artifacts();
    let work = tempfile::tempdir_in(&a).unwrap();
    let w = work.path();
    let src = w.join("src.img");
    let stick = w.join("stick.img");
    fs::copy(a.join("fixture/fixture.img"), &src).unwrap();
    fs::copy(a.join("rescue-shell/sysclone-usb.img"), &stick).unwrap();
    let mut m = Machine::new(w, "efi");
    m.usb_boot(&stick);
    m.disk(Disk::virtio(&src, "SRC1"));
    let log = m.run_session(
        600,
        &[
            ("disks listed at", ""),
            ("#", "efibootmgr -q -c -d /dev/vda -p 1 -L FromEfibootmgr -l '\\EFI\\systemd\\systemd-bootx64.efi'; echo MARK-A"),
            ("MARK-A", "/init boot create --disk serial=SRC1 --part 1 --loader '\\EFI\\BOOT\\BOOTX64.EFI' --label FromSysclone > /dev/null; echo MARK-B"),
            ("MARK-B", "efibootmgr -v | sed 's/^/EFIBOOTMGR /'; /init boot list -v | sed 's/^/SYSCLONE /'; echo MARK-C"),
            ("MARK-C", "poweroff -f"),
        ],
    );
    let lines = |prefix: &str, label: &str| -> String {
        let l = log.lines().find(|l| l.starts_with(prefix) && l.contains(label)).unwrap_or_else(|| panic!("{prefix}: no {label} entry:\n{log}"));
        l[prefix.len()..].trim().to_string()
    };
    let norm = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase();
    for label in ["FromEfibootmgr", "FromSysclone"] {
        let ours = norm(lines("SYSCLONE ", label));
        let theirs = norm(lines("EFIBOOTMGR ", label));
        assert!(ours.contains("hd(1,gpt,") && ours.contains("file("), "{ours}");
        assert_eq!(ours, theirs, "{label}: sysclone and efibootmgr disagree");
    }
    // OVMF's own entries (firmware volume paths) read the same too, up to our attribute note.
    for label in ["UiApp", "EFI Internal Shell", "BootOrder", "BootCurrent"] {
        let ours = norm(lines("SYSCLONE ", label));
        let ours = ours.split(" [attributes").next().unwrap().to_string();
        assert_eq!(ours, norm(lines("EFIBOOTMGR ", label)), "{label}");
    }
}

/// A person at the serial console: picks source and target by number, types a wrong
/// confirmation (nothing is written), then the right one; sees progress and the result;
/// powers off. The clone is verified and its GPT valid.
#[test]
fn interactive_console_clone() {
    let Scene { work, src, tgt, stick, .. } = Scene::new("rescue-ui", "200M");
    let w = work.path();
    let blank = run("sha256sum", &[tgt.to_str().unwrap()]);
    let small = w.join("small.img");
    run("truncate", &["-s", "150M", small.to_str().unwrap()]);
    let mut m = Machine::new(w, "ui");
    m.usb_boot(&stick);
    m.disk(Disk::nvme(&src, "SRC1"));
    m.disk(Disk::virtio(&tgt, "TGT1"));
    m.disk(Disk::virtio(&small, "SMALL2"));
    // Disks are listed by kernel name: 1) nvme0n1 (SRC1), 2) sda (the stick), 3) vda (TGT1),
    // 4) vdb (SMALL2, smaller than the source: a migration).
    let log = m.run_session(
        300,
        &[
            ("p) power off", "c"),
            ("source disk number", "1"),
            ("target disk number", "1"),
            ("that is the source", "2"),
            ("copy: e)", "e"),
            ("ERROR:", ""),
            ("p) power off", "c"),
            ("source disk number", "1"),
            ("target disk number", "3"),
            ("copy: e)", "s"),
            ("to go on: ", "XXXX"),
            ("not confirmed", ""),
            ("p) power off", "c"),
            ("source disk number", "1"),
            ("target disk number", "3"),
            ("copy: e)", "s"),
            ("to go on: ", "TGT1"),
            ("m) menu", "m"),
            ("p) power off", "m"),
            ("source disk number", "1"),
            ("target disk number", "4"),
            ("sizes: g)", "g"),
            ("to go on: ", "ALL2"),
            ("m) menu", "p"),
        ],
    );
    let migrated = line_with(&log, "bootability check:");
    assert!(migrated.contains("0 error(s)"), "{migrated}");
    let v = run("sgdisk", &["-v", small.to_str().unwrap()]);
    assert!(v.contains("No problems found"), "{v}");
    let dev = run("losetup", &["-P", "-f", "--show", "-r", small.to_str().unwrap()]).trim().to_string();
    // Partition nodes of loop devices are not always made here by the kernel's scan alone.
    let _ = Command::new("partx").args(["-a", &dev]).output();
    let part = format!("{dev}p2");
    for _ in 0..50 {
        if Path::new(&part).exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let fsck = Command::new("e2fsck").args(["-fn", &part]).output().unwrap();
    run("losetup", &["-d", &dev]);
    assert!(fsck.status.success(), "the migrated root does not check clean: {}", String::from_utf8_lossy(&fsck.stdout));
    let refusal = line_with(&log, "ERROR: ");
    assert!(refusal.contains("boot medium"), "choosing the stick must be refused: {refusal}");
    assert!(log.contains("not confirmed: nothing was written"), "{log}");
    assert!(log.contains("smart clone"), "{log}");
    assert!(log.contains("copy: 100%"), "no progress shown:\n{log}");
    let result = line_with(&log, "MiB copied in");
    assert!(result.contains("verified") && !result.contains("NOT"), "{result}");
    assert!(log.contains("SYSCLONE-RESULT ok") && log.contains("powering off"), "{log}");
    assert_ne!(run("sha256sum", &[tgt.to_str().unwrap()]), blank);
    let v = run("sgdisk", &["-v", tgt.to_str().unwrap()]);
    assert!(v.contains("No problems found"), "{v}");
}

/// A job whose target selector matches two disks stops before writing anything, says which
/// disks matched, and waits at the console menu.
#[test]
fn ambiguous_job_stops_and_waits() {
    let a = artifacts();
    let work = tempfile::tempdir_in(&a).unwrap();
    let w = work.path();
    let src = w.join("src.img");
    let stick = w.join("stick.img");
    let (t1, t2) = (w.join("t1.img"), w.join("t2.img"));
    fs::copy(a.join("fixture/fixture.img"), &src).unwrap();
    fs::copy(a.join("rescue-ambiguous/sysclone-usb.img"), &stick).unwrap();
    for t in [&t1, &t2] {
        run("truncate", &["-s", "200M", t.to_str().unwrap()]);
        run("dd", &["if=/dev/urandom", &format!("of={}", t.display()), "bs=1M", "count=4", "conv=notrunc", "status=none"]);
    }
    let before: Vec<String> = [&src, &t1, &t2].iter().map(|p| run("sha256sum", &[p.to_str().unwrap()])).collect();
    let mut m = Machine::new(w, "ambiguous");
    m.usb_boot(&stick);
    m.disk(Disk::nvme(&src, "SRC1"));
    m.disk(Disk::virtio(&t1, "TGT1"));
    m.disk(Disk::virtio(&t2, "TGT2"));
    let log = m.run_until(600, Some("[r] retry"));
    let err = line_with(&log, "ERROR:");
    assert!(err.contains("matches 2 disks"), "{err}");
    assert!(log.contains("serial=TGT1") && log.contains("serial=TGT2"), "candidates not listed:\n{log}");
    let after: Vec<String> = [&src, &t1, &t2].iter().map(|p| run("sha256sum", &[p.to_str().unwrap()])).collect();
    assert_eq!(before, after, "an ambiguous job wrote a disk");
}
