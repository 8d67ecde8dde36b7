//! Offline jobs (docs/offline.md): a running UEFI system stages a clone of itself for the
//! next boot, the firmware starts the rescue image once (BootNext), the job clones and the
//! machine comes back up from the clone; a power cut during the offline clone leaves the
//! machine booting its untouched source; a job that fails reboots to the source too.
//!
//! The "running system" is the fixture disk (GPT, ESP with systemd-boot and Debian's
//! kernel, ext4 root) booting the rescue initramfs in shell mode — a real UEFI Linux with
//! efivarfs and LoaderDevicePartUUID, but not a distribution with systemd (see
//! docs/offline.md, "Tests"). The command runs in its shell over the serial console.

use std::fs;
use std::path::{Path, PathBuf};

use crate::qemu::{Disk, Machine, WAIT};
use crate::{artifacts, boot_description, firmware_vars, line_with, run, u16s, var};

/// The fixture's root partition: sector 133120 (after the 64 MiB ESP at 1 MiB), 64 MiB.
const ROOT: std::ops::Range<usize> = 68_157_440..68_157_440 + (64 << 20);

/// The fixture system disk, its loader entry starting the shell image instead of the
/// boot check. `no_timer_check`, as VMs are often booted: under TCG on a loaded host the
/// kernel's IO-APIC timer check can fail and panic; `--offline` carries the word over to the
/// rescue kernel.
fn running_system(a: &Path, w: &Path) -> PathBuf {
    let src = w.join("src.img");
    fs::copy(a.join("fixture/fixture.img"), &src).unwrap();
    let esp = format!("{}@@1M", src.display());
    run("mcopy", &["-o", "-i", &esp, a.join("rescue-shell/initramfs.img").to_str().unwrap(), "::/EFI/fixture/initramfs.img"]);
    let entry = w.join("fixture.conf");
    fs::write(&entry, "title fixture system\nlinux /EFI/fixture/vmlinuz\ninitrd /EFI/fixture/initramfs.img\noptions console=ttyS0,115200 panic=10 no_timer_check sysclone.mode=shell\n").unwrap();
    run("mcopy", &["-o", "-i", &esp, entry.to_str().unwrap(), "::/loader/entries/fixture.conf"]);
    src
}

/// Boot the system; in its shell list the boot entries and the offline status, run `cmd`;
/// power off at the end (unless `cmd` restarts the machine itself).
fn shell_session(m: &Machine, cmd: &str, power_off: bool) -> String {
    // The shell prints END-OF-42; the echo of the typed line shows END-OF-$((6*7)).
    let line = format!("/init boot list | sed 's/^/LIST /'; /init status 2>&1 | sed 's/^/STATUS /'; {cmd}; echo END-OF-$((6*7))");
    let mut steps = vec![("disks listed at", ""), ("#", line.as_str())];
    if power_off {
        steps.extend([("END-OF-42", WAIT), ("#", "poweroff -f")]);
    }
    m.run_session(900, &steps)
}

fn listed<'a>(log: &'a str, prefix: &str, key: &str) -> &'a str {
    line_with(log, &format!("{prefix} {key}")).split(": ").nth(1).unwrap().trim()
}

fn entries_named(vars: &serde_json::Value, what: &str) -> Vec<String> {
    vars["variables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["name"].as_str().is_some_and(|n| n.len() == 8 && n.starts_with("Boot") && n[4..].chars().all(|c| c.is_ascii_hexdigit())))
        .filter(|v| boot_description(v["data"].as_str().unwrap()) == what)
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect()
}

fn esp_dir(disk: &Path, dir: &str) -> String {
    let o = std::process::Command::new("mdir").args(["-b", "-/", "-i", &format!("{}@@1M", disk.display()), &format!("::/{dir}")]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn offline_clone_of_the_running_system_and_a_power_cut() {
    let a = artifacts();
    let work = tempfile::tempdir_in(&a).unwrap();
    let w = work.path();
    let src = running_system(&a, w);
    let tgt = w.join("tgt.img");
    run("truncate", &["-s", "320M", tgt.to_str().unwrap()]);
    let root_before = fs::read(&src).unwrap()[ROOT].to_vec();

    // Run 1, the running system: the ESP mounted at /boot/efi as an installed system has it,
    // the running kernel at /boot/vmlinuz-RELEASE; staged with the defaults and --reboot.
    let mut m1 = Machine::new(w, "stage");
    m1.disk(Disk::nvme(&src, "SRC1"));
    m1.disk(Disk::virtio(&tgt, "TGT1"));
    let log1 = shell_session(
        &m1,
        "mkdir -p /boot/efi && mount -t vfat /dev/nvme0n1p1 /boot/efi && cp /boot/efi/EFI/fixture/vmlinuz /boot/vmlinuz-$(uname -r) && /init clone --offline --source serial=SRC1 --target serial=TGT1 --yes --reboot --progress plain",
        false,
    );
    assert!(log1.contains("rebooting into the offline job"), "staging did not end in a reboot:\n{log1}");
    assert!(line_with(&log1, "] ESP: ").contains("mounted at /boot/efi"), "{log1}");
    let space = line_with(&log1, "ESP space:");
    assert!(space.contains("bytes needed") && space.contains("bytes free"), "{space}");
    assert!(log1.contains("initramfs: /tmp/sysclone-offline-"), "the rescue initramfs was not built from the running kernel's modules:\n{log1}");
    let source_boot = listed(&log1, "LIST", "BootCurrent").to_string();
    let order_before = listed(&log1, "LIST", "BootOrder").to_string();
    let vars1 = firmware_vars(&m1.vars);
    let staged = entries_named(&vars1, "sysclone offline job");
    assert_eq!(staged.len(), 1, "one staged entry: {staged:?}");
    let next = u16s(var(&vars1, "BootNext").expect("BootNext set"));
    assert_eq!(format!("Boot{:04X}", next[0]), staged[0]);
    let order1: Vec<String> = u16s(var(&vars1, "BootOrder").unwrap()).iter().map(|n| format!("{n:04X}")).collect();
    assert_eq!(order1.join(","), order_before, "staging changed BootOrder");
    let files = esp_dir(&src, "EFI/sysclone/offline");
    assert!(["vmlinuz.efi", "initrd.img", "job.toml", "staged.json"].iter().all(|f| files.contains(f)), "{files}");
    // Kept for the power cut below: the machine as staged.
    let (src_staged, vars_staged) = (w.join("src-staged.img"), w.join("staged.vars.fd"));
    fs::copy(&src, &src_staged).unwrap();
    fs::copy(&m1.vars, &vars_staged).unwrap();

    // Run 2, the reboot: the firmware starts the rescue image once; it removes what was
    // staged, clones, makes the clone's entry first, saves its log on the ESP, reboots.
    let mut m2 = Machine::with_vars(w, "offline", &m1.vars);
    m2.disk(Disk::nvme(&src, "SRC1"));
    m2.disk(Disk::virtio(&tgt, "TGT1"));
    let log2 = m2.run(900);
    assert!(log2.contains("SYSCLONE-RESULT ok") && log2.contains("rebooting"), "the offline job did not succeed:\n{log2}");
    let unstaged = line_with(&log2, "offline job: staged files removed");
    assert!(unstaged.contains(&staged[0]), "{unstaged}");
    let vars2 = firmware_vars(&m2.vars);
    assert!(entries_named(&vars2, "sysclone offline job").is_empty(), "the staged entry is still there");
    assert!(var(&vars2, "BootNext").is_none(), "BootNext is still set");
    let first = format!("Boot{:04X}", u16s(var(&vars2, "BootOrder").unwrap())[0]);
    assert_eq!(boot_description(var(&vars2, &first).unwrap()), "sysclone clone on TGT1");
    assert!(!esp_dir(&src, "EFI").to_ascii_lowercase().contains("sysclone"), "staged files left: {}", esp_dir(&src, "EFI"));
    let logs = esp_dir(&src, "sysclone/logs");
    assert!(logs.contains("-offline-ok.log") && logs.contains("-offline-ok.json"), "no report on the source's ESP: {logs}");
    let (s, t) = (fs::read(&src).unwrap(), fs::read(&tgt).unwrap());
    let esp_copy = w.join("esp.img");
    fs::write(&esp_copy, &s[1 << 20..(1 << 20) + (64 << 20)]).unwrap();
    let fsck = std::process::Command::new("fsck.fat").arg("-n").arg(&esp_copy).output().unwrap();
    assert!(fsck.status.success(), "the source's ESP does not check clean: {}", String::from_utf8_lossy(&fsck.stdout));
    assert!(s[ROOT] == root_before[..], "the source's root changed");
    assert!(t[ROOT] == root_before[..], "the clone's root differs from the source's");

    // Run 3: up from the clone; `sysclone status` there finds the report.
    let mut m3 = Machine::with_vars(w, "clone", &m2.vars);
    m3.disk(Disk::nvme(&src, "SRC1"));
    m3.disk(Disk::virtio(&tgt, "TGT1"));
    let log3 = shell_session(&m3, "true", true);
    assert_eq!(listed(&log3, "LIST", "BootCurrent"), &first[4..], "the machine did not come up from the clone:\n{log3}");
    assert!(line_with(&log3, "last offline run:").contains("last offline run: ok"), "{log3}");
    assert!(!log3.contains("STATUS staged:"), "{log3}");

    // The power cut: from the staged machine again, QEMU is killed as the offline clone
    // copies. The next boot starts the untouched source; status says the run was cut off.
    fs::copy(&src_staged, &src).unwrap();
    let tgt2 = w.join("tgt2.img");
    run("truncate", &["-s", "320M", tgt2.to_str().unwrap()]);
    let mut m4 = Machine::with_vars(w, "cut", &vars_staged);
    m4.disk(Disk::nvme(&src, "SRC1"));
    m4.disk(Disk::virtio(&tgt2, "TGT1"));
    // Cut at the progress line of 10-19 % ("copy:  1x%"; the plan's "copy:   160 MiB" and
    // "copy: 100%" do not match).
    let log4 = m4.run_until(900, Some("copy:  1"));
    assert!(log4.contains("offline job: staged files removed") && !log4.contains("copy: 100%"), "not cut during the copy:\n{log4}");
    let t = fs::read(&tgt2).unwrap();
    assert!(t[1 << 20..2 << 20].iter().any(|&b| b != 0), "the copy had not begun when the power was cut");
    assert_ne!(&t[512..520], b"EFI PART", "the cut clone must not look complete");
    let mut m5 = Machine::with_vars(w, "after-cut", &m4.vars);
    m5.disk(Disk::nvme(&src, "SRC1"));
    m5.disk(Disk::virtio(&tgt2, "TGT1"));
    let log5 = shell_session(&m5, "true", true);
    assert_eq!(listed(&log5, "LIST", "BootCurrent"), source_boot, "after the power cut the machine did not start its source:\n{log5}");
    assert!(!log5.contains("sysclone offline job"), "the staged entry survived the cut:\n{log5}");
    assert!(line_with(&log5, "last offline run:").contains("last offline run: running"), "{log5}");
    assert!(log5.contains("interrupted"), "{log5}");
    assert!(fs::read(&src).unwrap()[ROOT] == root_before[..], "the source's root changed");

    // A job that fails (its target is not attached): the rescue image says why, saves the
    // failure on the ESP and reboots (nobody is at its console) to the source: the entry and
    // BootNext are gone, BootOrder is as it was.
    fs::copy(&src_staged, &src).unwrap();
    let mut m6 = Machine::with_vars(w, "fails", &vars_staged);
    m6.disk(Disk::nvme(&src, "SRC1"));
    let log6 = m6.run(900);
    assert!(log6.contains("SYSCLONE-RESULT failed") && log6.contains("rebooting"), "a failed offline job must reboot:\n{log6}");
    assert!(line_with(&log6, "ERROR:").contains("TGT1"), "{log6}");
    let vars6 = firmware_vars(&m6.vars);
    assert!(entries_named(&vars6, "sysclone offline job").is_empty() && var(&vars6, "BootNext").is_none(), "the failed job left its entry or BootNext");
    // BootOrder as it was, except that OVMF itself drops its entry for the disk that is not
    // attached in this run (TGT1's "UEFI Misc Device").
    let order6: Vec<String> = u16s(var(&vars6, "BootOrder").unwrap()).iter().map(|n| format!("{n:04X}")).collect();
    let kept: Vec<&str> = order_before.split(',').filter(|n| order6.iter().any(|m| m == n)).collect();
    assert_eq!(order6.join(","), kept.join(","), "a failed job changed BootOrder (before: {order_before})");
    assert!(order6.len() + 1 >= order_before.split(',').count(), "more than the absent disk's entry left BootOrder: {order6:?} vs {order_before}");
    let logs = esp_dir(&src, "sysclone/logs");
    assert!(logs.contains("-offline-failed.log") && logs.contains("-offline-failed.json"), "no failure report on the ESP: {logs}");
    assert!(fs::read(&src).unwrap()[ROOT] == root_before[..], "the source's root changed");
}
