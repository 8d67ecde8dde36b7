//! The rescue console (issue 8): output reaches every console the kernel command line names,
//! and a person at the serial console saves a disk to an image and restores it.

use std::fs;

use crate::imaging::ext4_disk;
use crate::qemu::{Disk, Machine};
use crate::{fsck_partition, line_with, put_on_stick, run, Scene};

/// `console=tty0 console=hvc0 console=ttyS0`: ttyS0 (the test's serial line, /dev/console)
/// takes the answers; the screen and hvc0 (a virtio console, a file here, whose driver is a
/// module loaded by coldplug) get a copy of everything: the disk list, the menu, the
/// questions, and what was said before the console came.
#[test]
fn output_reaches_every_console() {
    let Scene { work, src, stick, .. } = Scene::new("rescue-ui", "1M");
    let w = work.path();
    put_on_stick(
        &stick,
        "loader/entries/sysclone.conf",
        "title sysclone\nlinux /EFI/sysclone/vmlinuz\ninitrd /EFI/sysclone/initramfs.img\noptions console=tty0 console=hvc0 console=ttyS0,115200 panic=10 sysclone.mode=interactive\n",
    );
    let second = w.join("hvc0.log");
    let mut m = Machine::new(w, "consoles");
    m.virtconsole(&second);
    m.usb_boot(&stick);
    m.disk(Disk::nvme(&src, "SRC1"));
    let log = m.run_session(300, &[("p) power off", "c"), ("source disk number", ""), ("p) power off", "p")]);
    let other = String::from_utf8_lossy(&fs::read(&second).unwrap()).replace('\r', "");
    for (name, text) in [("ttyS0", &log), ("hvc0", &other)] {
        assert!(text.contains("disks listed (2 found)"), "{name}: no disk list:\n{text}");
        assert!(text.lines().any(|l| l.contains("nvme") && l.contains("serial=SRC1")), "{name}: the source is not listed:\n{text}");
        assert_eq!(text.matches("c) clone a disk").count(), 2, "{name}: the menu is not shown twice:\n{text}");
        assert!(text.contains("source disk number (Enter: back): "), "{name}: the question is missing:\n{text}");
        assert!(text.contains("powering off"), "{name}:\n{text}");
    }
    // What was said before hvc0's driver was loaded reached it too.
    assert!(other.contains("starting as init"), "{other}");
}

/// At the serial console: save the source disk to an image on the ext4 partition of another
/// disk (its serial typed to go on), then restore that image onto a blank disk — a wrong
/// confirmation first (nothing written), then the right one. On the host afterwards: the
/// image verifies, the restored disk's table and filesystems check clean, the source is
/// unchanged.
#[test]
fn interactive_save_then_restore() {
    let Scene { work, src, tgt, stick, .. } = Scene::new("rescue-ui", "200M");
    let w = work.path();
    let images = w.join("images.img");
    ext4_disk(&images, 120, None);
    let src_sum = run("sha256sum", &[src.to_str().unwrap()]);
    let mut m = Machine::new(w, "saverestore");
    m.usb_boot(&stick);
    m.disk(Disk::nvme(&src, "SRC1"));
    m.disk(Disk::virtio(&images, "IMAGES1"));
    m.disk(Disk::virtio(&tgt, "TGT1"));
    // Listed by kernel name: 1) nvme0n1 (SRC1), 2) sda (the stick), 3) vda (IMAGES1),
    // 4) vdb (TGT1).
    let log = m.run_session(
        600,
        &[
            ("p) power off", "v"),
            ("source disk number", "1"),
            ("images disk number", "1"),
            ("that is the source", "3"),
            ("partition number", "1"),
            ("image directory on that partition [images/SRC1]: ", ""),
            ("to go on: ", "GES1"),
            ("m) menu: ", "m"),
            ("p) power off", "t"),
            ("images disk number", "3"),
            ("partition number", "1"),
            ("image number", "1"),
            ("target disk number", "3"),
            ("that is the disk holding the image", "4"),
            ("to go on: ", "XXXX"),
            ("not confirmed", ""),
            ("p) power off", "t"),
            ("images disk number", "3"),
            ("partition number", "1"),
            ("image number", "1"),
            ("target disk number", "4"),
            ("to go on: ", "TGT1"),
            ("m) menu: ", "p"),
        ],
    );
    assert!(log.contains("mounted read-write") && log.contains("mounted read-only"), "{log}");
    let saved = line_with(&log, "of used blocks stored as");
    assert!(saved.contains("0 unreadable"), "{saved}");
    assert!(log.contains("not confirmed: nothing was written"), "{log}");
    assert!(line_with(&log, "images/SRC1 -> ").contains("images/SRC1 -> vdb (exact)"), "{log}");
    let restored = line_with(&log, " written in ");
    assert!(restored.contains("verified") && !restored.contains("NOT"), "{restored}");
    assert_eq!(log.matches("SYSCLONE-RESULT ok").count(), 2, "{log}");
    assert!(log.contains("powering off"), "{log}");
    assert_eq!(run("sha256sum", &[src.to_str().unwrap()]), src_sum, "the source changed");

    // The images partition was unmounted cleanly and holds an image that verifies.
    let (ok, out) = fsck_partition(&images, 1, &["e2fsck", "-fn"]);
    assert!(ok, "the images partition: {out}");
    let dev = run("losetup", &["-f", "--show", "-r", "-o", "1048576", images.to_str().unwrap()]).trim().to_string();
    let mnt = w.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    run("mount", &["-o", "ro", &dev, mnt.to_str().unwrap()]);
    let bin = std::env::var("SYSCLONE_BIN").expect("SYSCLONE_BIN is not set: run scripts/test");
    let verify = std::process::Command::new(&bin).args(["image", "verify", mnt.join("images/SRC1").to_str().unwrap()]).output().unwrap();
    run("umount", &[mnt.to_str().unwrap()]);
    run("losetup", &["-d", &dev]);
    assert!(verify.status.success(), "image verify:\n{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));

    let v = run("sgdisk", &["-v", tgt.to_str().unwrap()]);
    assert!(v.contains("No problems found"), "{v}");
    for (n, fsck) in [(1, &["fsck.fat", "-n"][..]), (2, &["e2fsck", "-fn"][..])] {
        let (ok, out) = fsck_partition(&tgt, n, fsck);
        assert!(ok, "partition {n} of the restored disk: {out}");
    }
}
