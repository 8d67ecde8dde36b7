//! Save, verify, export and restore with plain files as disks (no root): chunking, data file
//! splitting, partitions stored used / whole / not at all, and the restore plan's refusals.

use std::fs::{self, File, OpenOptions};
use std::path::Path;
use std::process::Command;

use sysclone_copy::PartitionUse;
use sysclone_disk::{Bus, Disk, Partition};
use sysclone_imagefile::{export_raw, plan_restore, plan_save, restore, save, Image, SaveOptions};
use sysclone_testutil::noise;

const MIB: u64 = 1 << 20;

fn sgdisk(args: &[&str]) -> String {
    let out = Command::new("sgdisk").args(args).output().expect("sgdisk (package gdisk)");
    assert!(out.status.success(), "sgdisk {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A 24 MiB GPT disk file with three 6 MiB partitions full of data, and its `Disk`.
fn source(dir: &Path) -> (std::path::PathBuf, Disk) {
    let img = dir.join("src.img");
    let mut bytes = noise(24 << 20, 7);
    // Half of it compressible.
    for b in bytes.iter_mut().step_by(2) {
        *b = 0;
    }
    fs::write(&img, &bytes).unwrap();
    let p = img.to_str().unwrap();
    sgdisk(&["-Z", p]);
    sgdisk(&["-n", "1:1M:+6M", "-c", "1:one", "-n", "2:0:+6M", "-c", "2:two", "-A", "2:set:63", "-n", "3:0:+6M", "-c", "3:three", p]);
    let part = |n: u32| Partition {
        number: n,
        name: None,
        start_bytes: MIB + (n as u64 - 1) * 6 * MIB,
        size_bytes: 6 * MIB,
        type_id: "0fc63daf-8483-4772-8e79-3d69d8477de4".into(),
        type_name: "Linux filesystem".into(),
        label: None,
        part_uuid: None,
        fs: None,
    };
    let disk = Disk {
        name: "file0".into(),
        path: img.clone(),
        bus: Bus::Other,
        model: Some("FILE".into()),
        serial: Some("S123".into()),
        size_bytes: 24 << 20,
        logical_sector: 512,
        physical_sector: 512,
        table: "gpt".into(),
        partitions: vec![part(1), part(2), part(3)],
        ..Default::default()
    };
    (img, disk)
}

/// The source disk file, opened, and the save plan of partitions 1 and 2 with `uses`.
fn source_plan(dir: &Path, uses: &[PartitionUse]) -> (std::path::PathBuf, File, sysclone_imagefile::SavePlan) {
    let (img, disk) = source(dir);
    let f = File::open(&img).unwrap();
    let gpt = sysclone_layout::read_gpt(&mut f.try_clone().unwrap(), 512, disk.size_bytes).unwrap();
    let plan = plan_save(&disk, gpt.as_ref(), uses, Some(&[1, 2])).unwrap();
    (img, f, plan)
}

#[test]
fn save_verify_export_and_restore_files() {
    let t = tempfile::tempdir().unwrap();
    let uses = vec![
        PartitionUse { number: 1, fs: "ext4".into(), extents: vec![(0, 65536), (MIB, 300_000), (5 * MIB, 4096)], whole: false, note: None },
        PartitionUse { number: 2, fs: "unknown".into(), extents: vec![], whole: true, note: Some("unknown content".into()) },
    ];
    let (img, f, plan) = source_plan(t.path(), &uses);
    assert_eq!(plan.head_bytes, 17408);
    let p = &plan.partitions;
    assert_eq!((p[0].stored.as_str(), p[1].stored.as_str(), p[2].stored.as_str()), ("used", "whole", "none"));
    assert_eq!(p[1].attributes, 1 << 63);
    assert_eq!(p[1].name.as_deref(), Some("two"));
    // Boot area, three rounded extents, the whole of partition 2.
    let want = (MIB - 17408) + 65536 + 300_032 + 4096 + 6 * MIB;
    assert_eq!(plan.store_bytes, want);

    let dir = t.path().join("image");
    let opts = SaveOptions { chunk_bytes: 256 << 10, max_file_bytes: 1 << 20, threads: 3, ..Default::default() };
    let mut last = (0, 0);
    let r = save(&plan, &f, &dir, &opts, &mut |d, n| last = (d, n), None).unwrap();
    assert_eq!(last, (want, want));
    assert_eq!(r.bytes_used, want);
    assert!(r.data_files >= 3, "{r:?}");
    for e in fs::read_dir(&dir).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("data-") {
            assert!(e.metadata().unwrap().len() <= 1 << 20);
        }
    }
    // A second save into the same directory is refused.
    assert!(save(&plan, &f, &dir, &opts, &mut |_, _| {}, None).is_err());
    let half = t.path().join("half");
    fs::create_dir_all(&half).unwrap();
    fs::write(half.join("data-00000.zst"), b"x").unwrap();
    let e = save(&plan, &f, &half, &opts, &mut |_, _| {}, None).unwrap_err();
    assert!(e.to_string().contains("unfinished save"), "{e}");
    assert!(Image::open(&half).unwrap_err().to_string().contains("no manifest.json"));

    let image = Image::open(&dir).unwrap();
    assert!(image.manifest.chunks.iter().all(|c| c.len <= 256 << 10));
    let v = image.verify(2, &mut |_, _| {}).unwrap();
    assert!(v.ok, "{v:?}");
    assert!(sysclone_imagefile::info_text(&image).contains("three"));

    damage_is_always_found(&dir, &t.path().join("damaged"));

    // Export: equal where stored, holes (zeros) elsewhere, the table as saved.
    let raw = t.path().join("export.raw");
    export_raw(&image, &raw, 2, &mut |_, _| {}).unwrap();
    let (a, b) = (fs::read(&img).unwrap(), fs::read(&raw).unwrap());
    assert_eq!(a.len(), b.len());
    assert_eq!(a[..MIB as usize], b[..MIB as usize]);
    let p1 = MIB as usize;
    assert_eq!(a[p1..p1 + 65536], b[p1..p1 + 65536]);
    assert!(b[p1 + 65536..p1 + MIB as usize].iter().all(|&x| x == 0));
    assert_eq!(a[7 * MIB as usize..13 * MIB as usize], b[7 * MIB as usize..13 * MIB as usize]);
    assert!(b[13 * MIB as usize..19 * MIB as usize].iter().all(|&x| x == 0), "partition 3 was left out");
    assert!(sgdisk(&["-v", raw.to_str().unwrap()]).contains("No problems found"));

    // Restore onto a larger "disk" full of old data.
    let tgt_path = t.path().join("tgt.img");
    fs::write(&tgt_path, vec![0x5Au8; 40 << 20]).unwrap();
    let tgt = OpenOptions::new().read(true).write(true).open(&tgt_path).unwrap();
    assert!(format!("{:#}", plan_restore(&image, 40 << 20, 4096).unwrap_err()).contains("4096-byte sectors"));
    assert!(format!("{:#}", plan_restore(&image, 19 * MIB, 512).unwrap_err()).contains("needs at least"));
    let rp = plan_restore(&image, 40 << 20, 512).unwrap();
    assert_eq!(rp.zero, vec![(13 * MIB, MIB)]);
    let rr = restore(&image, &rp, &tgt, "tgt.img", 2, true, &mut |_, _| {}).unwrap();
    assert_eq!(rr.verified, Some(true), "{rr:?}");
    assert_eq!(rr.bytes_written, want);
    let c = fs::read(&tgt_path).unwrap();
    assert_eq!(a[1024..17408], c[1024..17408], "entries");
    assert_eq!(a[17408..MIB as usize], c[17408..MIB as usize], "boot area");
    assert_eq!(a[7 * MIB as usize..13 * MIB as usize], c[7 * MIB as usize..13 * MIB as usize]);
    assert!(c[13 * MIB as usize..14 * MIB as usize].iter().all(|&x| x == 0), "left-out partition's first MiB zeroed");
    let v = sgdisk(&["-v", tgt_path.to_str().unwrap()]);
    assert!(v.contains("No problems found"), "{v}");
    assert!(sgdisk(&["-i", "2", tgt_path.to_str().unwrap()]).contains("0x8000000000000000") || sgdisk(&["-A", "2:show", tgt_path.to_str().unwrap()]).contains("63"));
}

/// Flip random bits in the data files of a copy of `dir`: `verify` names only chunks whose
/// frames were hit, finds damage in every round, and never panics. (A flip the decoder does
/// not notice and that leaves the bytes intact — a larger window size in a frame header — is
/// harmless; anything else changes the SHA-256.)
fn damage_is_always_found(dir: &Path, copy: &Path) {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..8 {
        let _ = fs::remove_dir_all(copy);
        fs::create_dir_all(copy).unwrap();
        for e in fs::read_dir(dir).unwrap().flatten() {
            fs::copy(e.path(), copy.join(e.file_name())).unwrap();
        }
        let m = Image::open(copy).unwrap().manifest;
        let mut hit = std::collections::BTreeSet::new();
        for _ in 0..=round {
            let i = (next() % m.chunks.len() as u64) as usize;
            let c = &m.chunks[i];
            let path = copy.join(&m.data_files[c.file as usize].name);
            let mut data = fs::read(&path).unwrap();
            let at = (c.file_offset + next() % c.compressed_len) as usize;
            data[at] ^= 1 << (next() % 8);
            fs::write(&path, data).unwrap();
            hit.insert(i);
        }
        let v = Image::open(copy).unwrap().verify(2, &mut |_, _| {}).unwrap();
        let found: std::collections::BTreeSet<usize> = v.problems.iter().filter_map(|p| p.chunk).collect();
        assert!(!found.is_empty() && found.is_subset(&hit), "round {round}: hit {hit:?}, found {found:?}");
        assert!(v.problems.iter().all(|p| p.chunk.is_some()), "{v:?}");
    }
    fs::remove_dir_all(copy).unwrap();
}

/// Random access to an image's disk: every byte in a chunk as on the source (across chunk
/// boundaries, through the cache), zeros where nothing was stored; and the planner's view of
/// the image's disk.
#[test]
fn random_access_and_source_layout() {
    let t = tempfile::tempdir().unwrap();
    let uses = vec![PartitionUse { number: 1, fs: "ext4".into(), extents: vec![(0, 65536), (MIB, 300_000)], whole: false, note: None }];
    let (img, f, plan) = source_plan(t.path(), &uses);
    let dir = t.path().join("image");
    let opts = SaveOptions { chunk_bytes: 128 << 10, threads: 2, ..Default::default() };
    save(&plan, &f, &dir, &opts, &mut |_, _| {}, None).unwrap();
    let image = Image::open(&dir).unwrap();
    // Chunks are cut on the 128 KiB grid.
    assert!(image.manifest.chunks.iter().all(|c| c.offset / (128 << 10) == (c.offset + c.len - 1) / (128 << 10)));
    let src = fs::read(&img).unwrap();
    let mut r = sysclone_imagefile::random::DiskReader::new(image.clone());
    let p1 = MIB as usize;
    for (off, len) in [(p1, 65536), (p1 + 1000, 200_000), (p1 + MIB as usize + 100, 299_000), (7 * MIB as usize - 5, 10)] {
        let mut buf = vec![0xEEu8; len];
        r.read_at(&mut buf, off as u64).unwrap();
        // Stored: partition 2 whole, partition 1's extents (rounded to sectors); else zeros.
        for (i, b) in buf.iter().enumerate() {
            let o = off + i;
            let rel = o - p1;
            let stored = (o >= 7 * MIB as usize && o < 13 * MIB as usize) || rel < 65536 || (rel >= MIB as usize && rel < MIB as usize + 300_032);
            assert_eq!(*b, if stored { src[o] } else { 0 }, "byte {o}");
        }
    }
    assert!(r.chunks_decoded > 0 && r.chunks_decoded < image.manifest.chunks.len() as u64);
    let layout = sysclone_imagefile::layout::source_layout(&image.manifest).unwrap();
    assert_eq!(layout.parts.len(), 3);
    assert_eq!((layout.parts[0].used_end, layout.parts[0].used_bytes), (Some(MIB + 300_000), Some(365_536)));
    assert_eq!(layout.parts[1].used_end, None, "stored whole: its use is unknown");
    assert_eq!(layout.parts[1].attrs, 1 << 63);
}
