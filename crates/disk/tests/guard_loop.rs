//! Every rule of the write guard on real loop devices: each refuses with its own message,
//! and nothing is written. Needs root; fails, never skips, without it.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sysclone_disk::{discover, open_source, open_target, Disk, GuardContext, Roots, Rule, Selector};
use sysclone_testutil::{make_gpt_disk, require_root, run, sha256, Loop};

/// Loop device numbers are reused at once; tests that detach one run alone.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn select(dev: &str) -> Disk {
    let disks = discover(&Roots::default()).unwrap();
    Selector::parse(dev).unwrap().select(&disks, &[], Path::new("/dev")).unwrap().clone()
}

/// Assert the guard refuses `d` by `rule` with a message containing `words`.
fn refused(d: &Disk, rule: Rule, words: &str) {
    refused_in(d, &GuardContext::default(), None, rule, words);
}

fn refused_in(d: &Disk, ctx: &GuardContext, sector: Option<u32>, rule: Rule, words: &str) {
    let e = open_target(d, ctx, 1 << 20, sector).expect_err("the guard let it through");
    let r = e.downcast_ref::<sysclone_disk::Refusal>().unwrap_or_else(|| panic!("not a refusal: {e:#}"));
    assert_eq!(r.rule, rule, "{r}");
    assert!(r.message.contains(&d.name) && r.message.contains(words), "{r}");
}

/// `blockdev --getro` of a device: whether the kernel's read-only flag is set.
fn getro(dev: &str) -> bool {
    run("blockdev", &["--getro", dev]).trim() == "1"
}

fn image(dir: &Path, name: &str) -> PathBuf {
    let img = dir.join(name);
    run("truncate", &["-s", "32M", img.to_str().unwrap()]);
    run("dd", &["if=/dev/urandom", &format!("of={}", img.display()), "bs=1M", "count=32", "conv=notrunc", "status=none"]);
    img
}

#[test]
fn mounted_disk_is_refused() {
    require_root();
    let _alone = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let img = make_gpt_disk(t.path(), "m.img", "96M", 512);
    let l = Loop::new(&img, 512);
    let mnt = t.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let before = sha256(&img);
    // `noload`: a read-only mount that does not even replay the journal writes nothing.
    run("mount", &["-o", "ro,noload", &l.part(2), mnt.to_str().unwrap()]);
    let d = select(&l.0);
    let r = std::panic::catch_unwind(|| refused(&d, Rule::Mounted, "unmount it first"));
    run("umount", &[mnt.to_str().unwrap()]);
    r.unwrap();
    drop(l);
    assert_eq!(sha256(&img), before, "a refused disk was written");
}

#[test]
fn swap_disk_is_refused() {
    require_root();
    let _alone = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), "s.img");
    let l = Loop::new(&img, 512);
    run("mkswap", &[&l.0]);
    let before = sha256(&img);
    run("swapon", &[&l.0]);
    let d = select(&l.0);
    let r = std::panic::catch_unwind(|| refused(&d, Rule::Swap, "swapoff"));
    // The kernel may page out to it (then the whole image may differ, by the kernel's doing):
    // compare the whole image only when nothing was swapped out, else the swap header.
    let used = std::fs::read_to_string("/proc/swaps").unwrap().lines().find(|x| x.starts_with(&l.0)).and_then(|x| x.split_whitespace().nth(3).map(str::to_string));
    run("swapoff", &[&l.0]);
    r.unwrap();
    drop(l);
    if used.as_deref() == Some("0") {
        assert_eq!(sha256(&img), before, "a refused disk was written");
    } else {
        eprintln!("the kernel swapped out to the test disk ({used:?} KiB): comparing its header only");
    }
    let head = std::fs::read(&img).unwrap()[..4096].to_vec();
    assert_eq!(&head[4086..4096], b"SWAPSPACE2");
}

#[test]
fn disk_opened_exclusively_elsewhere_is_refused() {
    require_root();
    let _alone = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), "x.img");
    let before = sha256(&img);
    let l = Loop::new(&img, 512);
    let _excl = OpenOptions::new().read(true).custom_flags(nix_o_excl()).open(&l.0).unwrap();
    refused(&select(&l.0), Rule::Held, "busy (opened exclusively, mounted or held); close what uses it");
    drop(l);
    assert_eq!(sha256(&img), before);
}

fn nix_o_excl() -> i32 {
    0o200 // O_EXCL on Linux
}

#[test]
fn read_only_disk_is_refused() {
    require_root();
    let _alone = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), "r.img");
    let before = sha256(&img);
    let l = Loop::with_args(&img, &["--read-only"]);
    refused(&select(&l.0), Rule::ReadOnly, "blockdev --setrw");
    drop(l);
    assert_eq!(sha256(&img), before);
}

#[test]
fn disk_that_changed_since_selection_is_refused() {
    require_root();
    let _alone = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), "c.img");
    let l = Loop::new(&img, 512);
    let d = select(&l.0);
    run("truncate", &["-s", "48M", img.to_str().unwrap()]);
    run("losetup", &["-c", &l.0]);
    let before = sha256(&img);
    refused(&d, Rule::IdentityChanged, "identity changed");
    drop(l);
    assert_eq!(sha256(&img), before);
}

#[test]
fn disk_gone_since_selection_is_refused() {
    require_root();
    let _alone = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), "g.img");
    let before = sha256(&img);
    let l = Loop::new(&img, 512);
    let d = select(&l.0);
    l.detach();
    std::thread::sleep(std::time::Duration::from_millis(200));
    refused(&d, Rule::Gone, "gone");
    assert_eq!(sha256(&img), before);
}

/// The write-protect list by partition-table GUID, partition GUID and filesystem UUID, read
/// from the disk itself: each refuses with its selector named, and nothing is written.
#[test]
fn protected_disk_is_refused_by_each_identifier() {
    require_root();
    let _alone = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let img = make_gpt_disk(t.path(), "p.img", "96M", 512);
    let before = sha256(&img);
    let l = Loop::new(&img, 512);
    let d = select(&l.0);
    let ptuuid = d.disk_guid.clone().expect("a GPT disk GUID");
    let partuuid = d.partitions[1].part_uuid.clone().expect("a PARTUUID");
    let fsuuid = d.partitions[1].fs.as_ref().and_then(|f| f.uuid.clone()).expect("an ext4 UUID");
    assert_eq!(run("blkid", &["-s", "UUID", "-o", "value", &l.part(2)]).trim(), fsuuid);
    for sel in [format!("ptuuid={ptuuid}"), format!("partuuid={}", partuuid.to_ascii_uppercase()), format!("uuid={fsuuid}"), "serial=OTHER,bus=nvme".to_string()] {
        let ctx = GuardContext { protected: vec![Selector::parse("serial=SOMETHING-ELSE").unwrap(), Selector::parse(&sel).unwrap()], ..Default::default() };
        if sel.starts_with("serial=") {
            // A protect entry that names another disk does not stop this one.
            let h = open_target(&d, &ctx, 1 << 20, None).unwrap_or_else(|e| panic!("{sel}: {e:#}"));
            drop(h);
            continue;
        }
        refused_in(&d, &ctx, None, Rule::Protected, &format!("write-protect list ({sel}); choose another target"));
    }
    drop(l);
    assert_eq!(sha256(&img), before, "a protected disk was written");
}

/// An exact clone cannot change the sector size: a 4096-byte target for a 512-byte source
/// (and the other way round) is refused, and nothing is written.
#[test]
fn other_sector_size_is_refused() {
    require_root();
    let _alone = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let (i4, i5) = (image(t.path(), "4k.img"), image(t.path(), "512.img"));
    let before = (sha256(&i4), sha256(&i5));
    let (l4, l5) = (Loop::new(&i4, 4096), Loop::new(&i5, 512));
    let (d4, d5) = (select(&l4.0), select(&l5.0));
    assert_eq!((d4.logical_sector, d5.logical_sector), (4096, 512));
    let ctx = GuardContext::default();
    refused_in(&d4, &ctx, Some(512), Rule::SectorSize, "logical sector size is 4096 but the source's is 512");
    refused_in(&d5, &ctx, Some(4096), Rule::SectorSize, "use migrate");
    // The same size passes.
    drop(open_target(&d4, &ctx, 1 << 20, Some(4096)).unwrap());
    drop((l4, l5));
    assert_eq!((sha256(&i4), sha256(&i5)), before);
}

/// While a clone reads the source, the kernel's read-only flag is set on it (BLKROSET): a
/// write through another descriptor fails; dropping the handle clears the flag again.
#[test]
fn source_is_read_only_while_open() {
    require_root();
    let _alone = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), "src.img");
    let before = sha256(&img);
    let l = Loop::new(&img, 512);
    let d = select(&l.0);
    assert!(!getro(&l.0));
    let h = open_source(&d).unwrap();
    assert!(getro(&l.0), "BLKROSET was not applied to the source");
    let w = std::fs::OpenOptions::new().write(true).open(&l.0).and_then(|mut f| std::io::Write::write_all(&mut f, &[0u8; 512]));
    assert!(w.is_err(), "a write to the source went through while it was being read");
    // A target open of the source is refused by the guard too (read-only now).
    refused(&d, Rule::ReadOnly, "read-only");
    drop(h);
    assert!(!getro(&l.0), "the read-only flag stayed after the source was closed");
    drop(l);
    assert_eq!(sha256(&img), before);
    // A source already read-only stays so after the handle is dropped.
    let l = Loop::with_args(&img, &["--read-only"]);
    let h = open_source(&select(&l.0)).unwrap();
    drop(h);
    assert!(getro(&l.0));
}
