//! End-to-end tests in QEMU: OVMF firmware, Debian's kernel, the rescue USB image, disks on
//! several buses. The artifacts come from scripts/test (or scripts/demo), which set
//! SYSCLONE_E2E_DIR; without it these tests fail with a message, they never skip.

mod console;
mod faults;
mod imaging;
mod lab;
mod media;
mod network;
mod offline;
mod power;
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

/// `sysclone save` on the host of the disk image file `disk` (through a read-only loop
/// device) into `to`, with `extra` options; its JSON report.
pub(crate) fn save_on_host(disk: &Path, to: &Path, extra: &[&str]) -> serde_json::Value {
    let bin = std::env::var("SYSCLONE_BIN").expect("SYSCLONE_BIN is not set: run scripts/test");
    let dev = run("losetup", &["--find", "--show", "--read-only", disk.to_str().unwrap()]).trim().to_string();
    let saved = std::process::Command::new(&bin).args(["--progress", "none", "save", "--source", &dev, "--to", to.to_str().unwrap(), "--json"]).args(extra).output().unwrap();
    run("losetup", &["-d", &dev]);
    assert!(saved.status.success(), "save {extra:?} on the host failed:\n{}", String::from_utf8_lossy(&saved.stderr));
    serde_json::from_slice(&saved.stdout).unwrap()
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

/// Run a read-only check (`["e2fsck", "-fn"]`, `["fsck.fat", "-n"]`) on partition `n` of the
/// disk image `img`, through a read-only loop device: (clean, its output).
pub(crate) fn fsck_partition(img: &Path, n: u32, fsck: &[&str]) -> (bool, String) {
    let dev = run("losetup", &["-P", "-f", "--show", "-r", img.to_str().unwrap()]).trim().to_string();
    // Partition nodes of loop devices are not always made here by the kernel's scan alone.
    let _ = Command::new("partx").args(["-a", &dev]).output();
    let part = format!("{dev}p{n}");
    for _ in 0..50 {
        if Path::new(&part).exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = Command::new(fsck[0]).args(&fsck[1..]).arg(&part).output();
    run("losetup", &["-d", &dev]);
    let out = out.unwrap_or_else(|e| panic!("running {fsck:?}: {e}"));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
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
    assert!(log.lines().any(|l| l.contains("nvme") && l.contains("serial=SRC1") && l.contains("[system]")), "NVMe source not listed as the system disk:\n{log}");
    assert!(log.lines().any(|l| l.contains("virtio") && l.contains("serial=TGT1") && !l.split_once("] ").is_some_and(|(_, rest)| rest.contains('['))), "virtio target not listed, or listed with a role:\n{log}");
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
    // The kernel shows no EUI-64 or UUID for QEMU's NVMe namespace even when set (nvme-ns
    // eui64= and uuid= tried): its wwid is the `nvme.<vendor>-<serial>-<model>-<nsid>` form.
    m.disk(Disk::nvme_4k(&img("nvme4k.img", "64M"), "NV4K"));
    m.disk(Disk::virtio_ro(&img("vro.img", "48M"), "VRO"));
    m.disk(Disk::sata(&img("sata.img", "40M"), "SATA1", "SATAMODEL", 0).and("wwn=0x5000c50000000001"));
    m.disk(Disk::scsi(&img("scsi1.img", "56M"), "SCSI1", "TWIN", true).and("wwn=0x5000c50000000002"));
    m.disk(Disk::scsi(&img("scsi2.img", "56M"), "SCSI2", "TWIN", false));
    let log = m.run(600);
    let line = line_with(&log, "SYSCLONE-DISKS-JSON ");
    let doc: serde_json::Value = serde_json::from_str(line.split_once("SYSCLONE-DISKS-JSON ").unwrap().1).unwrap();
    assert_eq!(doc["version"], 1);
    println!("{doc:#}");
    let disks = doc["disks"].as_array().unwrap();
    let by_serial = |s: &str| disks.iter().find(|d| d["serial"] == s).unwrap_or_else(|| panic!("no disk with serial {s}: {doc:#}"));
    // serial, bus, size, logical and physical sector, read-only, WWN
    let expect = [
        ("NV4K", "nvme", 64u64 << 20, 4096u64, 4096u64, false, Some("nvme.1b36-4e56344b-51454d55204e564d65204374726c-00000001".to_string())),
        ("VRO", "virtio", 48 << 20, 512, 512, true, None),
        ("SATA1", "sata", 40 << 20, 512, 512, false, Some("naa.5000c50000000001".to_string())),
        ("SCSI1", "scsi", 56 << 20, 512, 512, false, Some("naa.5000c50000000002".to_string())),
        ("SCSI2", "scsi", 56 << 20, 512, 512, false, None),
        ("STICK1", "usb", fs::metadata(&stick).unwrap().len(), 512, 512, false, None),
    ];
    for (serial, bus, size, lbs, pbs, ro, wwn) in expect {
        let d = by_serial(serial);
        assert_eq!(d["bus"], bus, "{serial}: {d}");
        assert_eq!(d["size_bytes"].as_u64().unwrap(), size, "{serial}: {d}");
        assert_eq!(d["logical_sector"].as_u64().unwrap(), lbs, "{serial}: {d}");
        assert_eq!(d["physical_sector"].as_u64().unwrap(), pbs, "{serial}: {d}");
        assert_eq!(d["read_only"].as_bool().unwrap(), ro, "{serial}: {d}");
        if let Some(w) = wwn {
            assert_eq!(d["wwn"].as_str().unwrap_or_default().to_ascii_lowercase(), w, "{serial}: {d}");
        }
        if serial != "STICK1" {
            assert_eq!(d["roles"], serde_json::json!([]), "{serial}: a blank disk has no role: {d}");
            assert_eq!(d["removable"], false, "{serial}: {d}");
        }
    }
    assert_eq!(disks.len(), 6, "{doc:#}");
    assert_eq!(by_serial("STICK1")["roles"], serde_json::json!(["boot-medium"]));
    assert_eq!(by_serial("STICK1")["removable"], true);
    assert_eq!(by_serial("SATA1")["model"], "SATAMODEL");
    // The twins: same model and size, told apart by serial only.
    assert_eq!(by_serial("SCSI1")["model"], by_serial("SCSI2")["model"]);
    assert!(by_serial("SCSI1")["model"].as_str().unwrap().contains("TWIN"));
    // Stable names built from sysfs (there is no udev in the rescue image).
    let names = |s: &str, key: &str| -> Vec<String> { by_serial(s)[key].as_array().unwrap_or_else(|| panic!("{s}: no {key}")).iter().map(|v| v.as_str().unwrap().to_string()).collect() };
    let has = |s: &str, key: &str, want: &str| assert!(names(s, key).iter().any(|n| n == want), "{s}: {key} {:?} lacks {want}", names(s, key));
    let ends = |s: &str, key: &str, tail: &str| assert!(names(s, key).iter().any(|n| n.starts_with("pci-") && n.ends_with(tail)), "{s}: {key} {:?}: none ends {tail}", names(s, key));
    has("NV4K", "by_id", "nvme-QEMU_NVMe_Ctrl_NV4K");
    has("NV4K", "by_id", "nvme-nvme.1b36-4e56344b-51454d55204e564d65204374726c-00000001");
    ends("NV4K", "by_path", "-nvme-1");
    has("VRO", "by_id", "virtio-VRO");
    has("SATA1", "by_id", "ata-SATAMODEL_SATA1");
    has("SATA1", "by_id", "wwn-0x5000c50000000001");
    ends("SATA1", "by_path", "-ata-1");
    has("SCSI1", "by_id", "scsi-35000c50000000002");
    has("SCSI1", "by_id", "wwn-0x5000c50000000002");
    has("SCSI2", "by_id", "scsi-0SYSCLONETWIN_SCSI2");
    ends("SCSI1", "by_path", ":0");
    assert_ne!(names("SCSI1", "by_path"), names("SCSI2", "by_path"));
    has("STICK1", "by_id", "usb-QEMU_QEMU_HARDDISK_STICK1-0:0");
    ends("STICK1", "by_path", "-usb-0:1:1.0-scsi-0:0:0:0");
}

/// The rescue shell, one boot: `/init disks --json` typed there knows the boot medium (PID 1
/// recorded it), `/init clone` onto the stick is refused and writes nothing; by-id selectors
/// work without udev; a disk on a controller hot-plugged after boot, whose driver was not
/// loaded, shows up after `/init disks --rescan`.
#[test]
fn the_rescue_shell_knows_its_boot_medium() {
    let a = artifacts();
    let work = tempfile::tempdir_in(&a).unwrap();
    let w = work.path();
    let (src, stick, hot) = (w.join("src.img"), w.join("stick.img"), w.join("hot.img"));
    fs::copy(a.join("fixture/fixture.img"), &src).unwrap();
    fs::copy(a.join("rescue-shell/sysclone-usb.img"), &stick).unwrap();
    run("truncate", &["-s", "200M", hot.to_str().unwrap()]);
    let head = |p: &Path| fs::read(p).unwrap()[..1 << 20].to_vec();
    let (stick_before, src_before) = (head(&stick), run("sha256sum", &[src.to_str().unwrap()]));
    let mut m = Machine::new(w, "shell-disks");
    m.usb_boot(&stick);
    m.disk(Disk::virtio(&src, "SRC1"));
    m.disk(Disk::pcie_root_port("rp1", 1));
    // `J""-A` in the typed line prints as `J-A`: the markers match the output, not the echo.
    let log = m.run_session(
        900,
        &[
            ("disks listed at", ""),
            ("#", "dmesg -n 1; echo \"J\"\"-A $(/init disks --json | tr -d '\\n') J\"\"-B\""),
            ("J-B", "/init clone --source serial=SRC1 --target serial=STICK1 --yes; echo CLONE-RC\"\"=$?"),
            ("CLONE-RC=", &format!("@drive_add 0 if=none,id=hot,format=raw,file={}", hot.display())),
            ("", "@device_add virtio-scsi-pci,id=hscsi,bus=rp1"),
            ("", "@device_add scsi-hd,drive=hot,bus=hscsi.0,serial=HOT1,vendor=SYSCLONE,product=HOTPLUG"),
            ("", "sleep 5; echo BEFORE\"\"-RESCAN $(/init disks | grep -c HOT1) $(cat /sys/bus/virtio/devices/*/modalias | grep -c d00000008v)"),
            ("BEFORE-RESCAN", "echo \"J\"\"-C $(/init disks --rescan --json | tr -d '\\n') J\"\"-D\""),
            ("J-D", "/init clone --source by-id=virtio-SRC1 --target by-id=scsi-0SYSCLONEHOTPLUG_HOT1 --dry-run; echo DRY-RC\"\"=$?"),
            ("DRY-RC=", "poweroff -f"),
        ],
    );
    let json = |from: &str, to: &str| -> serde_json::Value {
        let l = log.split(from).nth(1).and_then(|r| r.split(to).next()).unwrap_or_else(|| panic!("no {from} … {to}:\n{log}"));
        serde_json::from_str(l.trim()).unwrap_or_else(|e| panic!("{e}: {l}"))
    };
    let serials = |doc: &serde_json::Value| -> Vec<(String, serde_json::Value)> {
        doc["disks"].as_array().unwrap().iter().map(|d| (d["serial"].as_str().unwrap_or("-").to_string(), d["roles"].clone())).collect()
    };
    let first = serials(&json("J-A", "J-B"));
    assert!(first.contains(&("STICK1".into(), serde_json::json!(["boot-medium"]))), "{first:?}");
    assert!(first.contains(&("SRC1".into(), serde_json::json!(["system"]))), "{first:?}");
    let rc = line_with(&log, "CLONE-RC=");
    assert!(rc.ends_with("CLONE-RC=3"), "the clone onto the stick was not refused by the guard: {rc}\n{log}");
    let refusal = line_with(&log, "refusing to write");
    assert!(refusal.contains("STICK1") && refusal.contains("boot medium"), "{refusal}");
    // Hot-plugged on a controller whose driver was not loaded: the kernel sees the controller
    // (one virtio SCSI device, id 8), but its disk is not there until the rescan.
    assert!(line_with(&log, "BEFORE-RESCAN").trim_end().ends_with("BEFORE-RESCAN 0 1"), "{log}");
    let after = serials(&json("J-C", "J-D"));
    assert!(after.iter().any(|(s, r)| s == "HOT1" && r == &serde_json::json!([])), "{after:?}");
    assert!(line_with(&log, "rescan:").contains("1 new block device"), "{log}");
    // by-id selectors, no udev: the dry run names both disks and writes nothing.
    assert!(line_with(&log, "DRY-RC=").trim_end().ends_with("DRY-RC=0"), "{log}");
    let dry = log.split("J-D").nth(1).unwrap();
    assert!(line_with(dry, "target: ").contains("HOT1") && line_with(dry, "source: ").contains("SRC1"), "{dry}");
    assert!(dry.contains("dry run: nothing written"), "{dry}");
    assert_eq!(head(&stick), stick_before, "the boot medium's first MiB changed");
    assert_eq!(run("sha256sum", &[src.to_str().unwrap()]), src_before);
    assert!(fs::read(&hot).unwrap().iter().all(|&b| b == 0), "a dry run wrote the hot-plugged disk");
}

/// `boot_entry = "next"` with a smart, verified clone: the first boot goes to the clone's
/// entry (BootNext), the one after that to BootOrder again, which the job left as it was.
/// The source's own entry is put first in that order after the job ran (as an installed
/// system's is; before, OVMF would have deleted it: the stick's run has a `bootindex`), so
/// the second boot must start the source.
#[test]
fn boot_next_tries_the_clone_once() {
    let Scene { a, work, src, tgt, stick } = Scene::new("rescue-next", "200M");
    let w = work.path();
    let expect_root = fs::read_to_string(a.join("fixture/root-sha256")).unwrap().trim().to_string();
    let esp_uuid = fs::read_to_string(a.join("fixture/esp-partuuid")).unwrap().trim().to_string();

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

    // The source's entry, first in the order the job left.
    let mut m2 = Machine::with_vars(w, "next2", &m.vars);
    let source_entry = load_option("fixture", 1, FIXTURE_ESP.0, FIXTURE_ESP.1, &esp_uuid, "\\EFI\\systemd\\systemd-bootx64.efi", &[]);
    let order: Vec<u16> = std::iter::once(SEEDED).chain(order).collect();
    seed_vars(&m2.vars, SEEDED, &source_entry, "BootOrder", &order);
    assert_eq!(var(&firmware_vars(&m2.vars), "BootNext"), Some(next), "BootNext kept");

    // First boot: BootNext, the clone's entry.
    m2.disk(Disk::virtio(&tgt, "TGT1"));
    let log2 = m2.run(600);
    let check = line_with(&log2, "SYSCLONE-BOOTCHECK");
    assert_eq!(field(check, "bootcurrent"), format!("{n:04X}"), "{check}");
    assert_eq!(field(check, "serial"), "TGT1", "{check}");
    assert_eq!(field(check, "root-sha256"), expect_root, "{check}");
    assert!(var(&firmware_vars(&m2.vars), "BootNext").is_none(), "the firmware keeps BootNext after using it");

    // Second boot: BootOrder (the job's part of it is checked above: the clone's entry is not
    // in it), which starts with the source's entry. Only the source is attached: the clone
    // has the source's GUIDs, so with both disks an HD() path could reach either.
    let mut m3 = Machine::with_vars(w, "next3", &m2.vars);
    m3.disk(Disk::nvme(&src, "SRC1"));
    let check = line_with(&m3.run(600), "SYSCLONE-BOOTCHECK").to_string();
    assert_eq!(field(&check, "bootcurrent"), format!("{SEEDED:04X}"), "the source's entry was not the one started: {check}");
    assert_eq!((field(&check, "serial"), field(&check, "root-serial")), ("SRC1", "SRC1"), "{check}");
    assert_eq!(field(&check, "root-sha256"), expect_root, "{check}");
}

/// Migrate the fixture system onto a smaller disk (root shrunk) and onto a larger 4Kn disk
/// (root grown, ESP rebuilt for 4096-byte sectors); each clone is checked on the host
/// (`sgdisk -v`, `fsck.fat -n`, `e2fsck -fn` on a loop device with the disk's sector size),
/// its boot entry names its ESP (GUID, start and size in its own sectors), and it boots alone
/// through that entry with its files.
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
        } else {
            assert!(log.contains("rebuilt for 4096-byte sectors"), "{name}:\n{log}");
        }
        let entry = boot_entry_of(&log);
        // The job's report, kept on the stick: the offline check passed, and the NVRAM space
        // was checked (Debian's 6.1 kernel reports OVMF's through efivarfs' statfs: about
        // 256 KiB, most of it free).
        let report = stick_report(&stick);
        assert_eq!(report["bootability"]["errors"], serde_json::json!([]), "{name}: {report:#}");
        let boot = &report["boot"];
        assert_eq!(boot["created"][0]["name"], format!("Boot{entry}"), "{name}: {boot:#}");
        let space = boot["space"].as_object().unwrap_or_else(|| panic!("{name}: no NVRAM space in the report: {boot:#}"));
        let (total, free) = (space["total_bytes"].as_u64().unwrap(), space["free_bytes"].as_u64().unwrap());
        assert!(free > 4096 && free <= total && total >= 64 << 10, "{name}: NVRAM space {space:?}");
        let vars = firmware_vars(&m.vars);
        assert_eq!(format!("{:04X}", u16s(var(&vars, "BootOrder").expect("BootOrder"))[0]), entry, "{name}: the clone's entry is not first");
        let hd = hd_node(var(&vars, &format!("Boot{entry}")).expect("the clone's entry"));

        // The target on the host, with its own sector size.
        let t = sysclone_testutil::Loop::new(&tgt, lbs);
        let v = run("sgdisk", &["-v", &t.0]);
        assert!(v.contains("No problems found"), "{name}: {v}");
        let esp = part_geometry(&t.0, 1);
        assert_eq!(hd, (1, esp.0, esp.1, esp.2.clone()), "{name}: the boot entry's HD() is not the target's ESP in {lbs}-byte sectors");
        run("fsck.fat", &["-n", &t.part(1)]);
        run("e2fsck", &["-fn", &t.part(2)]);
        assert_eq!(run("blkid", &["-p", "-s", "TYPE", "-o", "value", &t.part(3)]).trim(), "swap", "{name}: swap");
        let disk_bytes = fs::metadata(&tgt).unwrap().len();
        let (root, swap) = (part_geometry(&t.0, 2), part_geometry(&t.0, 3));
        let root_bytes = root.1 * lbs as u64;
        let fs_bytes = ext4_bytes(&t.part(2));
        assert!(fs_bytes <= root_bytes && fs_bytes + (4 << 20) > root_bytes, "{name}: ext4 of {fs_bytes} bytes in a partition of {root_bytes}");
        let swap_end = (swap.0 + swap.1) * lbs as u64;
        assert!(disk_bytes - swap_end < 2 << 20, "{name}: {} bytes unused at the end", disk_bytes - swap_end);
        if lbs == 4096 {
            assert!(root_bytes > 300 << 20, "{name}: root did not take the new space: {root_bytes}");
        } else {
            assert!(root_bytes < 64 << 20, "{name}: root was not shrunk: {root_bytes}");
        }
        drop(t);

        let mut m2 = Machine::with_vars(w, &format!("{name}2"), &m.vars);
        m2.disk(if lbs == 4096 { Disk::virtio_4k(&tgt, "TGT1") } else { Disk::virtio(&tgt, "TGT1") });
        let log2 = m2.run(600);
        let check = line_with(&log2, "SYSCLONE-BOOTCHECK");
        assert_eq!(field(check, "serial"), "TGT1", "{name}: {check}");
        assert_eq!(field(check, "bootcurrent"), entry, "{name}: the firmware booted another entry: {check}");
        assert_eq!(field(check, "fstab"), "own", "{name}: {check}");
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
    // The clone's loader entry names its own root (root=UUID= rewritten), not the source's.
    assert_eq!(field(&check, "root-serial"), "TGT1", "the clone's kernel command line names another disk's root: {check}");
    assert_eq!(field(&check, "fstab"), "own", "the clone's fstab names another disk: {check}");
    // (Its root's files differ from the source's in /etc/fstab, rewritten to the new IDs.)

    // The source, with the clone still attached: picked once from the firmware (BootNext to
    // an entry for the source's ESP), it boots from its own ESP and root.
    let mut m3 = Machine::with_vars(w, "new3", &m2.vars);
    let source_entry = load_option("fixture", 1, FIXTURE_ESP.0, FIXTURE_ESP.1, &esp_uuid, "\\EFI\\systemd\\systemd-bootx64.efi", &[]);
    seed_vars(&m3.vars, SEEDED, &source_entry, "BootNext", &[SEEDED]);
    m3.disk(Disk::nvme(&src, "SRC1"));
    m3.disk(Disk::virtio(&tgt, "TGT1"));
    let check = line_with(&m3.run(600), "SYSCLONE-BOOTCHECK").to_string();
    assert_eq!(field(&check, "bootcurrent"), format!("{SEEDED:04X}"), "{check}");
    assert_eq!((field(&check, "serial"), field(&check, "partuuid"), field(&check, "root-serial"), field(&check, "fstab")), ("SRC1", esp_uuid.as_str(), "SRC1", "own"), "{check}");
    assert_eq!(field(&check, "root-sha256"), expect_root, "{check}");
}

/// The fixture's ESP (scripts/make-fixture): first LBA and size in 512-byte sectors.
const FIXTURE_ESP: (u64, u64) = (2048, 64 << 11);

/// The Boot#### number the tests give an entry of their own for the source.
const SEEDED: u16 = 0x0042;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A GUID's on-disk (mixed-endian) bytes.
fn guid_bytes(g: &str) -> [u8; 16] {
    let h: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&g.replace('-', "")[2 * i..2 * i + 2], 16).unwrap()).collect();
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&[h[3], h[2], h[1], h[0]]);
    b[4..6].copy_from_slice(&[h[5], h[4]]);
    b[6..8].copy_from_slice(&[h[7], h[6]]);
    b[8..].copy_from_slice(&h[8..]);
    b
}

/// An active EFI_LOAD_OPTION `HD(part,GPT,guid,start,size)/File(path)` with `data`, encoded
/// here after the UEFI specification (3.1.3, 10.3.5.1, 10.3.5.4), not by sysclone.
fn load_option(desc: &str, part: u32, start: u64, size: u64, guid: &str, path: &str, data: &[u8]) -> Vec<u8> {
    let ucs2 = |s: &str| -> Vec<u8> { s.encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect() };
    let mut dp = vec![4, 1, 42, 0];
    dp.extend(part.to_le_bytes());
    dp.extend(start.to_le_bytes());
    dp.extend(size.to_le_bytes());
    dp.extend(guid_bytes(guid));
    dp.extend([2, 2]);
    let file = ucs2(path);
    dp.extend([4, 4]);
    dp.extend(((4 + file.len()) as u16).to_le_bytes());
    dp.extend(file);
    dp.extend([0x7f, 0xff, 4, 0]);
    let mut b = 1u32.to_le_bytes().to_vec();
    b.extend((dp.len() as u16).to_le_bytes());
    b.extend(ucs2(desc));
    b.extend(dp);
    b.extend(data);
    b
}

/// Writes Boot`number` = `option` into the variable store `vars` and sets `order_var`
/// (`BootOrder` or `BootNext`) to `order` (virt-fw-vars). Only between runs without a QEMU
/// `bootindex`: with one, OVMF deletes every `HD()` entry that does not match it.
fn seed_vars(vars: &Path, number: u16, option: &[u8], order_var: &str, order: &[u16]) {
    const GLOBAL: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
    let order: Vec<u8> = order.iter().flat_map(|n| n.to_le_bytes()).collect();
    let doc = serde_json::json!({"version": 2, "variables": [
        {"name": format!("Boot{number:04X}"), "guid": GLOBAL, "attr": 7, "data": hex(option)},
        {"name": order_var, "guid": GLOBAL, "attr": 7, "data": hex(&order)},
    ]});
    let json = vars.with_extension("seed.json");
    fs::write(&json, doc.to_string()).unwrap();
    run("virt-fw-vars", &["--inplace", vars.to_str().unwrap(), "--set-json", json.to_str().unwrap()]);
}

/// The JSON report of the job that ran from `stick` (kept beside its log on the stick's ESP).
fn stick_report(stick: &Path) -> serde_json::Value {
    let at = format!("{}@@1M", stick.display());
    let logs = run("mdir", &["-b", "-i", &at, "::/sysclone/logs"]);
    let json = logs.lines().find(|l| l.ends_with("-ok.json")).unwrap_or_else(|| panic!("no report on the stick: {logs}"));
    let text = run("mtype", &["-i", &at, &format!("::{}", json.trim_start_matches(':'))]);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("the report is not JSON ({e}): {text}"))
}

/// The `XXXX` of the console's `boot entry BootXXXX …` line.
fn boot_entry_of(log: &str) -> String {
    let l = line_with(log, "boot entry Boot");
    let i = l.find("boot entry Boot").unwrap() + "boot entry Boot".len();
    l[i..i + 4].to_string()
}

/// The HD() node of a Boot#### variable (virt-fw-vars hex): partition number, first LBA,
/// size in LBAs, partition GUID (lowercase).
fn hd_node(data: &str) -> (u32, u64, u64, String) {
    let b: Vec<u8> = (0..data.len() / 2).map(|i| u8::from_str_radix(&data[2 * i..2 * i + 2], 16).unwrap()).collect();
    let mut i = 6;
    while u16::from_le_bytes([b[i], b[i + 1]]) != 0 {
        i += 2;
    }
    i += 2;
    loop {
        let (t, st, len) = (b[i], b[i + 1], u16::from_le_bytes([b[i + 2], b[i + 3]]) as usize);
        assert!(t != 0x7f && len >= 4, "no HD() node in {data}");
        if (t, st) == (4, 1) {
            let n = &b[i + 4..i + 42];
            let g = &n[20..36];
            let guid = format!(
                "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{}-{}",
                g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6],
                hex(&g[8..10]),
                hex(&g[10..16])
            );
            let u64_at = |o: usize| u64::from_le_bytes(n[o..o + 8].try_into().unwrap());
            return (u32::from_le_bytes(n[..4].try_into().unwrap()), u64_at(4), u64_at(12), guid);
        }
        i += len;
    }
}

/// First sector, sectors and GUID (lowercase) of partition `n` of `dev`, in its own sectors.
fn part_geometry(dev: &str, n: u32) -> (u64, u64, String) {
    let info = run("sgdisk", &["-i", &n.to_string(), dev]);
    let after = |k: &str| info.lines().find_map(|l| l.strip_prefix(k)).unwrap_or_else(|| panic!("no {k:?} in {info}")).trim().to_string();
    let num = |k: &str| after(k).split_whitespace().next().unwrap().parse::<u64>().unwrap();
    (num("First sector:"), num("Partition size:"), after("Partition unique GUID:").to_ascii_lowercase())
}

/// The tests' own load option encoder and HD() decoder agree (no QEMU needed).
#[test]
fn seeded_load_option_decodes() {
    let g = "0b1c2d3e-4f50-4a6b-8c7d-8e9fa0b1c2d3";
    let opt = load_option("fixture", 1, 2048, 131072, g, "\\EFI\\x.efi", b"ab");
    assert_eq!(&opt[..4], &[1, 0, 0, 0]);
    assert_eq!(hd_node(&hex(&opt)), (1, 2048, 131072, g.to_string()));
    assert_eq!(&guid_bytes(g)[..4], &[0x3e, 0x2d, 0x1c, 0x0b]);
    assert!(opt.ends_with(&[0x7f, 0xff, 4, 0, b'a', b'b']));
}

/// Bytes of the ext2/3/4 filesystem on `dev` (block count × block size).
fn ext4_bytes(dev: &str) -> u64 {
    let info = run("dumpe2fs", &["-h", dev]);
    let get = |k: &str| -> u64 { info.lines().find(|l| l.starts_with(k)).unwrap_or_else(|| panic!("no {k} in {info}")).split_whitespace().last().unwrap().parse().unwrap() };
    get("Block count:") * get("Block size:")
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
            ("#", "efibootmgr -q -c -d /dev/vda -p 1 -L FromEfibootmgr -l '\\EFI\\systemd\\systemd-bootx64.efi' -u 'quiet splash=1'; echo MARK-A0"),
            ("MARK-A0", "printf '\\001\\002\\376\\377' > /tmp/od.bin; efibootmgr -q -c -d /dev/vda -p 1 -L RawDataEntry -l '\\EFI\\BOOT\\BOOTX64.EFI' -@ /tmp/od.bin; echo MARK-A"),
            ("MARK-A", "/init boot create --disk serial=SRC1 --part 1 --loader '\\EFI\\BOOT\\BOOTX64.EFI' --label FromSysclone --args 'console=ttyS0 quiet' > /dev/null; echo MARK-B"),
            ("MARK-B", "efibootmgr -v | sed 's/^/EFIBOOTMGR /'; /init boot list -v | sed 's/^/SYSCLONE /'; /init boot list --json | sed 's/^/SYSJSON /'; echo MARK-C"),
            ("MARK-C", "poweroff -f"),
        ],
    );
    let lines = |prefix: &str, label: &str| -> String {
        let l = log.lines().find(|l| l.starts_with(prefix) && l.contains(label)).unwrap_or_else(|| panic!("{prefix}: no {label} entry:\n{log}"));
        l[prefix.len()..].trim().to_string()
    };
    let norm = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase();
    let json: String = log.lines().filter_map(|l| l.strip_prefix("SYSJSON ")).collect::<Vec<_>>().join("\n");
    let listing: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("boot list --json ({e}):\n{json}"));
    // Optional data (loader arguments as UCS-2, raw bytes) follows the path in both. sysclone
    // shows arguments as text and other bytes as hex (and the bytes in JSON); efibootmgr 17
    // shows every byte, '.' for those outside 32..=127: compare the bytes that way.
    for (label, shown, bytes) in [("FromEfibootmgr", "quiet splash=1", "q.u.i.e.t. .s.p.l.a.s.h.=.1."), ("RawDataEntry", "0102feff", "...."), ("FromSysclone", "console=ttys0 quiet", "c.o.n.s.o.l.e.=.t.t.y.s.0. .q.u.i.e.t.")] {
        let ours = norm(lines("SYSCLONE ", label));
        let theirs = norm(lines("EFIBOOTMGR ", label));
        let path_end = |s: &str| s.rfind(')').map_or(s.len(), |i| i + 1);
        assert!(ours.contains("hd(1,gpt,") && ours.contains("file("), "{ours}");
        assert_eq!(&ours[path_end(&ours)..], shown, "{label}: optional data as sysclone shows it: {ours}");
        assert_eq!(&ours[..path_end(&ours)], &theirs[..path_end(&theirs)], "{label}: sysclone and efibootmgr disagree");
        let entry = listing["entries"].as_array().unwrap().iter().find(|e| e["description"] == label).unwrap_or_else(|| panic!("{label} not in {listing:#}"));
        let hex = entry["optional_data"].as_str().unwrap();
        let dotted: String = (0..hex.len() / 2).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).map(|b| if (32..=127).contains(&b) { b as char } else { '.' }).collect();
        assert_eq!(norm(dotted.clone()), bytes, "{label}: the bytes sysclone read");
        assert_eq!(&theirs[path_end(&theirs)..], bytes, "{label}: the bytes efibootmgr read");
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
    let (ok, out) = fsck_partition(&small, 2, &["e2fsck", "-fn"]);
    assert!(ok, "the migrated root does not check clean: {out}");
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
