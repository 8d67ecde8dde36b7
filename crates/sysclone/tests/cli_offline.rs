//! `clone --offline` staging, `status` and `offline --cancel` on real loop devices: a source
//! disk with a FAT32 ESP (made by mkfs.fat, checked by fsck.fat), a target with a partition
//! table, and an efivarfs stand-in directory. The rescue side runs in tests/e2e/offline.rs.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use sysclone_testutil::{make_gpt_disk, require_root, run, sha256, Loop};

const BIN: &str = env!("CARGO_BIN_EXE_sysclone");
const GLOBAL: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";

fn sysclone(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env("NO_COLOR", "1").output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Files below `dir` on the FAT at `part` (mtools; the host kernel has no vfat).
fn fat_files(part: &str, dir: &str) -> String {
    let o = Command::new("mdir").args(["-b", "-/", "-i", part, &format!("::/{dir}")]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn var(dir: &Path, name: &str) -> Option<Vec<u8>> {
    fs::read(dir.join(format!("{name}-{GLOBAL}"))).ok().map(|b| b[4..].to_vec())
}

fn ucs2(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn stage_status_cancel_and_refusals() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let w = t.path();
    let src_img = make_gpt_disk(w, "src.img", "96M", 512);
    let tgt_img = make_gpt_disk(w, "tgt.img", "128M", 512);
    let src = Loop::new(&src_img, 512);
    let tgt = Loop::new(&tgt_img, 512);
    let esp = src.part(1);
    let esp_uuid = run("blkid", &["-s", "PARTUUID", "-o", "value", &esp]).trim().to_string();
    let src_guid = run("sgdisk", &["-p", &src.0]).lines().find(|l| l.starts_with("Disk identifier (GUID)")).unwrap().split(": ").nth(1).unwrap().trim().to_ascii_lowercase();

    // An efivarfs stand-in with one entry in BootOrder, which staging must leave alone.
    let efi = w.join("efivars");
    fs::create_dir(&efi).unwrap();
    let mut boot1 = vec![7, 0, 0, 0, 1, 0, 0, 0, 4, 0];
    boot1.extend(ucs2("debian\0"));
    boot1.extend([0x7f, 0xff, 4, 0]);
    fs::write(efi.join(format!("Boot0001-{GLOBAL}")), &boot1).unwrap();
    fs::write(efi.join(format!("BootOrder-{GLOBAL}")), [7, 0, 0, 0, 1, 0]).unwrap();
    let efi_s = efi.to_str().unwrap();

    // Stand-ins for the rescue kernel and initramfs (the e2e test stages real ones).
    let kernel = w.join("vmlinuz");
    let initrd = w.join("initrd.img");
    fs::write(&kernel, vec![0x4du8; 3 << 20]).unwrap();
    fs::write(&initrd, vec![0x07u8; (5 << 20) + 123]).unwrap();
    let (k, i) = (kernel.to_str().unwrap(), initrd.to_str().unwrap());
    let stage = |extra: &[&str]| {
        let mut a = vec!["clone", "--source", &src.0, "--target", &tgt.0, "--offline", "--yes", "--efivars", efi_s, "--kernel", k, "--initramfs", i];
        a.extend_from_slice(extra);
        sysclone(&a)
    };
    let esp_before = sha256(Path::new(&esp));

    // 1. Not enough room: a kernel larger than the 40 MiB ESP. The message says how much
    //    is needed and free; nothing is written.
    let huge = w.join("huge");
    fs::write(&huge, vec![1u8; 45 << 20]).unwrap();
    let o = sysclone(&["clone", "--source", &src.0, "--target", &tgt.0, "--offline", "--yes", "--efivars", efi_s, "--kernel", huge.to_str().unwrap(), "--initramfs", i]);
    let msg = text(&o);
    assert!(!o.status.success(), "{msg}");
    assert!(msg.contains("not enough space on the ESP") && msg.contains("staging needs") && msg.contains(") are free") && msg.contains("nothing was written"), "{msg}");
    assert_eq!(sha256(Path::new(&esp)), esp_before, "a refused staging wrote the ESP");
    assert!(var(&efi, "BootNext").is_none());

    // 2. Secure Boot on: refused, with the reason.
    fs::write(efi.join(format!("SecureBoot-{GLOBAL}")), [6, 0, 0, 0, 1]).unwrap();
    let o = stage(&[]);
    let msg = text(&o);
    assert!(!o.status.success() && msg.contains("Secure Boot is on") && msg.contains("would not boot"), "{msg}");
    assert_eq!(sha256(Path::new(&esp)), esp_before);
    fs::write(efi.join(format!("SecureBoot-{GLOBAL}")), [6, 0, 0, 0, 0]).unwrap();

    // 3. The guard's rules hold now, not only in the rescue image: a mounted target is refused.
    let mnt = w.join("mnt");
    fs::create_dir(&mnt).unwrap();
    run("mount", &[&tgt.part(2), mnt.to_str().unwrap()]);
    let o = stage(&[]);
    run("umount", &[mnt.to_str().unwrap()]);
    // (Mounting wrote the target's superblock; from here on it must not change.)
    let tgt_before = sha256(&tgt_img);
    let msg = text(&o);
    assert_eq!(o.status.code(), Some(3), "{msg}");
    assert!(msg.contains("mounted"), "{msg}");
    assert_eq!(sha256(Path::new(&esp)), esp_before);

    // 4. Staged: the files on the ESP (fsck-clean), one entry outside BootOrder, BootNext.
    let o = stage(&[]);
    let msg = text(&o);
    assert!(o.status.success(), "{msg}");
    assert!(msg.contains("ESP space:") && msg.contains("bytes needed"), "{msg}");
    let files = fat_files(&esp, "EFI/sysclone/offline");
    for f in ["vmlinuz.efi", "initrd.img", "job.toml", "staged.json"] {
        assert!(files.contains(f), "{f} not staged: {files}");
    }
    let fsck = run("fsck.fat", &["-n", &esp]);
    assert!(!fsck.contains("differ") && !fsck.contains("corrupt"), "{fsck}");
    let staged_initrd = run("mtype", &["-i", &esp, "::/EFI/sysclone/offline/initrd.img"]);
    assert_eq!(staged_initrd.len(), (5 << 20) + 123);
    let job = run("mtype", &["-i", &esp, "::/EFI/sysclone/offline/job.toml"]);
    // Stable names for after the reboot (loop devices have no serial: the table's GUID).
    assert!(job.contains(&format!("source = \"ptuuid={src_guid},size=100663296\"")), "{job}");
    assert!(job.contains("target = \"ptuuid=") && job.contains("on_failure = \"reboot\"") && job.contains("boot_entry = \"first\""), "{job}");
    assert_eq!(var(&efi, "BootOrder").unwrap(), vec![1, 0], "BootOrder changed");
    let next = var(&efi, "BootNext").expect("BootNext set");
    let n = u16::from_le_bytes([next[0], next[1]]);
    let entry = var(&efi, &format!("Boot{n:04X}")).expect("the staged entry");
    assert!(contains(&entry, &ucs2("sysclone offline job")), "description");
    assert!(contains(&entry, &ucs2("\\EFI\\sysclone\\offline\\vmlinuz.efi")), "loader path");
    assert!(contains(&entry, &ucs2("initrd=\\EFI\\sysclone\\offline\\initrd.img")), "initrd on the command line");
    assert!(contains(&entry, &ucs2(&format!("sysclone.boot-partuuid={esp_uuid}"))), "ESP named on the command line");
    assert!(contains(&entry, &ucs2("sysclone.offline sysclone.boot-partuuid=")) && contains(&entry, &ucs2("sysclone.job=EFI/sysclone/offline/job.toml sysclone.job.sha256=")), "job on the command line");
    assert_eq!(sha256(&tgt_img), tgt_before, "staging wrote the target");

    // 5. A second job is refused while one is staged; status shows the staged one.
    let o = stage(&[]);
    assert!(!o.status.success() && text(&o).contains("already staged"), "{}", text(&o));
    let o = sysclone(&["status", "--efivars", efi_s]);
    let msg = text(&o);
    assert!(o.status.success() && msg.contains("staged: clone ptuuid=") && msg.contains(&format!("BootNext = {n:04X}: it runs at the next boot")), "{msg}");
    let o = sysclone(&["status", "--efivars", efi_s, "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["staged"][0]["boot_next_armed"], true, "{doc}");

    // 6. Cancelled: files, entry and BootNext gone; BootOrder and Boot0001 as they were; the
    //    ESP checks clean and has its space back.
    let o = sysclone(&["offline", "--cancel", "--efivars", efi_s]);
    let msg = text(&o);
    assert!(o.status.success() && msg.contains("cancelled the staged job") && msg.contains("BootNext cleared"), "{msg}");
    assert!(!fat_files(&esp, "EFI").to_ascii_lowercase().contains("sysclone"), "{}", fat_files(&esp, "EFI"));
    assert!(var(&efi, "BootNext").is_none() && var(&efi, &format!("Boot{n:04X}")).is_none());
    assert_eq!(var(&efi, "BootOrder").unwrap(), vec![1, 0]);
    assert_eq!(var(&efi, "Boot0001").unwrap(), boot1[4..].to_vec());
    let fsck = Command::new("fsck.fat").args(["-n", &esp]).output().unwrap();
    assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stdout));
    let o = sysclone(&["status", "--efivars", efi_s]);
    assert!(text(&o).contains("no offline job is staged"), "{}", text(&o));
    let o = sysclone(&["offline", "--cancel", "--efivars", efi_s]);
    assert!(o.status.success() && text(&o).contains("no offline job is staged"), "{}", text(&o));
    assert_eq!(sha256(&tgt_img), tgt_before, "the target was written");

    // 7. migrate and save plan the same way; --dry-run prints the job and stages nothing.
    let o = sysclone(&["migrate", "--source", &src.0, "--target", &tgt.0, "--policy", "grow", "--offline", "--dry-run", "--efivars", efi_s, "--kernel", k, "--initramfs", i]);
    let msg = text(&o);
    assert!(o.status.success(), "{msg}");
    assert!(msg.contains("operation = \"migrate\"") && msg.contains("policy = \"grow\"") && msg.contains("identities = \"keep\"") && msg.contains("dry run: nothing staged"), "{msg}");
    run("mount", &[&tgt.part(2), mnt.to_str().unwrap()]);
    let to = mnt.join("images/monday");
    let o = sysclone(&["save", "--source", &src.0, "--to", to.to_str().unwrap(), "--offline", "--dry-run", "--efivars", efi_s, "--kernel", k, "--initramfs", i]);
    let refused = sysclone(&["save", "--source", &src.0, "--to", to.to_str().unwrap(), "--offline", "--level", "9", "--efivars", efi_s, "--kernel", k, "--initramfs", i]);
    let made = to.exists();
    run("umount", &[mnt.to_str().unwrap()]);
    let msg = text(&o);
    assert!(o.status.success(), "{msg}");
    assert!(!made, "a dry run made the image directory");
    assert!(msg.contains("operation = \"save\"") && msg.contains("partition = 2") && msg.contains("path = \"images/monday\"") && msg.contains("disk = \"ptuuid="), "{msg}");
    assert!(text(&refused).contains("--level cannot be used with --offline"), "{}", text(&refused));
    assert!(!fat_files(&esp, "EFI").to_ascii_lowercase().contains("sysclone"), "a dry run staged");
    assert!(var(&efi, "BootNext").is_none());
}
