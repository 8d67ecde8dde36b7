//! Saved images in the rescue image (issue 9): an image of the fixture system disk, saved on
//! the host with `sysclone save` onto an ext4 partition of a second disk, is restored by a job
//! onto a blank, smaller disk (through the migration planner: the root shrinks, read from the
//! image), and the machine then boots the restored disk.

use std::fs;
use std::path::{Path, PathBuf};

use crate::qemu::{Disk, Machine};
use crate::{field, line_with, run, Scene};

#[test]
fn restored_image_boots_on_a_smaller_disk() {
    // The fixture's disk is 160 MiB; the blank target 128 MiB.
    let Scene { a, work, src, tgt, stick } = Scene::new("rescue-restore", "128M");
    let w = work.path();
    let expect_root = fs::read_to_string(a.join("fixture/root-sha256")).unwrap().trim().to_string();
    let esp_uuid = fs::read_to_string(a.join("fixture/esp-partuuid")).unwrap().trim().to_string();

    let images = images_disk(w, &src);
    let images_before = run("sha256sum", &[images.to_str().unwrap()]);

    // Run 1: the rescue stick's job restores the image onto the blank disk and reboots.
    let mut m = Machine::new(w, "restore1");
    m.usb_boot(&stick);
    m.disk(Disk::virtio(&images, "IMAGES1"));
    m.disk(Disk::virtio(&tgt, "TGT1"));
    let log = m.run(900);
    assert!(log.contains("SYSCLONE-RESULT ok"), "the restore job did not succeed:\n{log}");
    assert!(log.contains("mounted read-only"), "{log}");
    assert!(log.contains("migration planner") && log.contains("shrunk"), "no shrink through the planner:\n{log}");
    assert!(log.contains("rebooting"), "{log}");
    assert_eq!(run("sha256sum", &[images.to_str().unwrap()]), images_before, "the images disk changed");
    let v = run("sgdisk", &["-v", tgt.to_str().unwrap()]);
    assert!(v.contains("No problems found"), "sgdisk -v on the restored disk:\n{v}");

    // Run 2, the reboot: only the restored disk, same firmware store.
    let mut m2 = Machine::with_vars(w, "restore2", &m.vars);
    m2.disk(Disk::virtio(&tgt, "TGT1"));
    let log2 = m2.run(600);
    let check = line_with(&log2, "SYSCLONE-BOOTCHECK");
    assert_eq!(field(check, "partuuid"), esp_uuid, "{check}");
    assert_eq!(field(check, "serial"), "TGT1", "{check}");
    assert_eq!(field(check, "fstab"), "own", "{check}");
    assert_eq!(field(check, "root-sha256"), expect_root, "root content of the restored disk:\n{check}");
}

/// The images disk (serial IMAGES1 in the tests): GPT, one ext4 partition holding
/// `images/fixture`, an image of `src` saved on the host with `sysclone save` from a
/// read-only loop device (made by mkfs -d).
pub(crate) fn images_disk(w: &Path, src: &Path) -> PathBuf {
    let staging = w.join("staging");
    crate::save_on_host(src, &staging.join("images/fixture"), &[]);

    let images = w.join("images.img");
    ext4_disk(&images, 97, Some(&staging));
    images
}

/// A GPT disk image of `size_mib` with one ext4 partition (label `images`) over all of it but
/// the table, holding a copy of `content` if given (mkfs -d).
pub(crate) fn ext4_disk(path: &Path, size_mib: u64, content: Option<&Path>) {
    let part = path.with_extension("part");
    run("truncate", &["-s", &format!("{}M", size_mib - 2), part.to_str().unwrap()]);
    let mut mkfs = vec!["-q", "-F", "-L", "images"];
    if let Some(c) = content {
        mkfs.extend(["-d", c.to_str().unwrap()]);
    }
    mkfs.push(part.to_str().unwrap());
    run("mkfs.ext4", &mkfs);
    run("truncate", &["-s", &format!("{size_mib}M"), path.to_str().unwrap()]);
    run("sgdisk", &["-n", &format!("1:2048:+{}M", size_mib - 2), "-t", "1:8300", path.to_str().unwrap()]);
    run("dd", &[&format!("if={}", part.display()), &format!("of={}", path.display()), "bs=1M", "seek=1", "conv=notrunc,sparse", "status=none"]);
    fs::remove_file(part).unwrap();
}
