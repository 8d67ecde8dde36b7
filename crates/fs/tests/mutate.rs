//! Randomized mutation tests: real images (made by each filesystem's mkfs) with their
//! superblocks, descriptors, FATs, MFT records and bitmaps corrupted at random, and cut
//! short. The map must never panic, never leave the partition, never be unsorted, and the
//! process must stay small. Reads come from a real file, as in production.

mod common;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::*;
use sysclone_fs::used_map;

/// A region worth corrupting, with a weight.
struct Hot {
    start: u64,
    len: u64,
    weight: u64,
}

/// `SYSCLONE_FS_MUTATIONS=N` multiplies the iterations by N for a longer soak.
fn mutate_case(name: &str, img: &Path, hot: &[Hot], iterations: usize, seed: u64) {
    let iterations = iterations * std::env::var("SYSCLONE_FS_MUTATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(1usize);
    let f = OpenOptions::new().read(true).write(true).open(img).unwrap();
    let len = f.metadata().unwrap().len();
    let clean = used_map(&f, 0, len).unwrap();
    assert!(!clean.whole, "{name}: the unmutated image maps whole: {:?}", clean.note);
    check_invariants(&clean, len);

    let mut rng = Rng(seed);
    let total: u64 = hot.iter().map(|h| h.weight).sum();
    let (mut whole, mut mapped, mut truncated) = (0, 0, 0);
    for it in 0..iterations {
        let mut saved: Vec<(u64, Vec<u8>)> = Vec::new();
        let n = 1 + rng.below(6);
        for _ in 0..n {
            let mut w = rng.below(total);
            let h = hot.iter().find(|h| {
                if w < h.weight {
                    true
                } else {
                    w -= h.weight;
                    false
                }
            });
            let h = h.unwrap();
            let width = [1u64, 1, 2, 4, 8][rng.below(5) as usize];
            let off = h.start + rng.below(h.len.saturating_sub(width).max(1));
            let off = if width > 1 { off / width * width } else { off };
            if off + width > len {
                continue;
            }
            let mut old = vec![0u8; width as usize];
            f.read_exact_at(&mut old, off).unwrap();
            let new: Vec<u8> = match rng.below(6) {
                0 => vec![0u8; width as usize],
                1 => vec![0xffu8; width as usize],
                2 => {
                    let mut v = old.clone();
                    let bit = rng.below(width * 8);
                    v[(bit / 8) as usize] ^= 1 << (bit % 8);
                    v
                }
                3 => {
                    // a small number: off-by-one counts, tiny sizes
                    let mut v = vec![0u8; width as usize];
                    v[0] = rng.below(4) as u8;
                    v
                }
                4 => {
                    let mut v = old.clone();
                    v[0] = v[0].wrapping_add(1);
                    v
                }
                _ => rng.bytes(width as usize),
            };
            f.write_all_at(&new, off).unwrap();
            saved.push((off, old));
        }
        let part_len = if rng.below(10) == 0 {
            truncated += 1;
            rng.below(len + 1)
        } else {
            len
        };
        let m = used_map(&f, 0, part_len).unwrap_or_else(|e| panic!("{name}: iteration {it}: {e:#}"));
        check_invariants(&m, part_len);
        if m.whole {
            whole += 1;
        } else {
            mapped += 1;
        }
        for (off, old) in saved.into_iter().rev() {
            f.write_all_at(&old, off).unwrap();
        }
    }
    eprintln!("{name}: {iterations} mutations: {mapped} mapped, {whole} whole, {truncated} truncated");
    assert!(mapped > iterations / 20, "{name}: almost every mutation was rejected; the test does not reach the parser");
    assert!(whole > iterations / 50, "{name}: no mutation was rejected; the test does not reach the checks");
    let after = used_map(&f, 0, len).unwrap();
    assert_eq!(after.extents, clean.extents, "{name}: image not restored");
    let hwm: u64 = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    assert!(hwm < 400 * 1024, "{name}: peak memory {hwm} KiB");
}

fn hot(start: u64, len: u64, weight: u64) -> Hot {
    Hot { start, len, weight }
}

#[test]
fn ext4_mutations() {
    need_tool("mkfs.ext4", "e2fsprogs");
    let t = tempfile::tempdir().unwrap();
    let mut rng = Rng(5);
    let staging = t.path().join("c");
    write_tree(&staging, &initial_tree(&mut rng, 300_000));
    for (name, opts) in [
        ("ext4-1k", &["-b", "1024", "-O", "64bit,meta_bg,^resize_inode"][..]),
        ("ext4-4k", &["-b", "4096", "-g", "2048", "-N", "512"][..]),
        ("ext2", &["-t", "ext2", "-b", "1024"][..]),
    ] {
        let img = t.path().join(format!("{name}.img"));
        sparse_image(&img, 24 << 20);
        let mut args = vec!["-q", "-F"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["-d", p(&staging), p(&img)]);
        run("mkfs.ext4", &args);
        // Superblock, descriptor blocks, the first bitmaps and inode tables.
        let regions = [hot(1024, 1024, 6), hot(2048, 6144, 3), hot(0, 1 << 20, 2), hot(0, 24 << 20, 1)];
        mutate_case(name, &img, &regions, 1500, 0x5eed ^ name.len() as u64);
    }
}

#[test]
fn fat_mutations() {
    need_tool("mkfs.fat", "dosfstools");
    need_tool("mcopy", "mtools");
    let t = tempfile::tempdir().unwrap();
    let mut rng = Rng(6);
    let staging = t.path().join("c");
    write_tree(&staging, &initial_tree(&mut rng, 300_000));
    for (bits, size) in [("12", 4u64 << 20), ("16", 24 << 20), ("32", 40 << 20)] {
        let img = t.path().join(format!("fat{bits}.img"));
        sparse_image(&img, size);
        run("mkfs.fat", &["-F", bits, p(&img)]);
        for e in std::fs::read_dir(&staging).unwrap() {
            let e = e.unwrap().path();
            let st = std::process::Command::new("mcopy").args(["-s", "-Q", "-i", p(&img), p(&e), "::/"]).env("MTOOLS_SKIP_CHECK", "1").status().unwrap();
            assert!(st.success());
        }
        // Boot sector (BPB), the FAT32 FSInfo/backup area, the FATs.
        let regions = [hot(0, 90, 8), hot(0, 512, 2), hot(512, 64 << 10, 3), hot(0, 1 << 20, 1)];
        mutate_case(&format!("fat{bits}"), &img, &regions, 1500, 0xfa7 ^ size);
    }
}

#[test]
fn ntfs_mutations() {
    need_tool("mkntfs", "ntfs-3g");
    let t = tempfile::tempdir().unwrap();
    for (name, opts) in [("ntfs", &[][..]), ("ntfs-c512", &["-c", "512"][..])] {
        let img = t.path().join(format!("{name}.img"));
        sparse_image(&img, 16 << 20);
        let mut args = vec!["-F", "-f", "-q"];
        args.extend_from_slice(opts);
        args.push(p(&img));
        run("mkntfs", &args);
        // Where mkntfs put the MFT: boot sector fields.
        let f = File::open(&img).unwrap();
        let mut b = [0u8; 512];
        f.read_exact_at(&mut b, 0).unwrap();
        let bps = u16::from_le_bytes([b[11], b[12]]) as u64;
        let cs = bps * b[13] as u64;
        let mft = u64::from_le_bytes(b[0x30..0x38].try_into().unwrap()) * cs;
        // Boot sector; MFT records 0..8 ($MFT, $Volume, $Bitmap among them); the bitmap.
        let regions =
            [hot(0, 0x50, 6), hot(mft, 1024, 6), hot(mft + 3 * 1024, 1024, 3), hot(mft + 6 * 1024, 1024, 6), hot(mft, 16 << 10, 2), hot(0, 16 << 20, 1)];
        mutate_case(name, &img, &regions, 1500, 0x27f5 ^ cs);
    }
}

#[test]
fn btrfs_mutations() {
    need_tool("mkfs.btrfs", "btrfs-progs");
    let t = tempfile::tempdir().unwrap();
    let mut rng = Rng(8);
    let staging = t.path().join("c");
    write_tree(&staging, &initial_tree(&mut rng, 300_000));
    let img = t.path().join("btrfs.img");
    sparse_image(&img, 128 << 20);
    run("mkfs.btrfs", &["-q", "-f", "--rootdir", p(&staging), p(&img)]);
    // Where the chunk tree's leaf is (its logical address; mkfs maps the first system
    // chunk 1:1 onto the device, as the superblock's sys_chunk_array shows).
    let dump = run("btrfs", &["inspect-internal", "dump-tree", "-t", "chunk", p(&img)]);
    let leaf: u64 = dump.lines().find_map(|l| l.strip_prefix("leaf ")).and_then(|v| v.split_whitespace().next()?.parse().ok()).expect("chunk tree leaf");
    // Superblock, its sys_chunk_array, the chunk tree leaf, the first MiB.
    let regions = [hot(0x10000, 0x100, 4), hot(0x10000 + 0x32B, 0x100, 4), hot(leaf, 16384, 4), hot(0, 1 << 20, 1)];
    mutate_case("btrfs", &img, &regions, 1500, 0xb7);
}

#[test]
fn swap_mutations() {
    need_tool("mkswap", "util-linux");
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("swap.img");
    sparse_image(&img, 8 << 20);
    run("mkswap", &[p(&img)]);
    let m = map_image(&img);
    assert_eq!((m.fs.as_str(), m.whole, m.used_bytes, m.note.as_deref()), ("swap", false, 4096, Some("swap: header page only")));
    mutate_case("swap", &img, &[hot(4086, 10, 3), hot(0, 4096, 1)], 500, 3);
}

/// Entirely random metadata behind valid magic numbers.
#[test]
fn random_superblocks_behind_valid_magic() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("r.img");
    let mut rng = Rng(11);
    let len = 4u64 << 20;
    let f = OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&img).unwrap();
    f.set_len(len).unwrap();
    for i in 0..3000 {
        let junk = rng.bytes(1 << 16);
        f.write_all_at(&junk, 0).unwrap();
        match i % 4 {
            0 => f.write_all_at(&0xEF53u16.to_le_bytes(), 1024 + 56).unwrap(),
            1 => {
                f.write_all_at(b"NTFS    ", 3).unwrap();
                f.write_all_at(&[0x55, 0xAA], 510).unwrap();
            }
            2 => {
                f.write_all_at(b"FAT32   ", 82).unwrap();
                f.write_all_at(&[0x55, 0xAA], 510).unwrap();
            }
            _ => {
                f.write_all_at(b"FAT16   ", 54).unwrap();
                f.write_all_at(&[0x55, 0xAA], 510).unwrap();
            }
        }
        // Small values in the size fields make the parsers go further.
        if rng.below(2) == 0 {
            f.write_all_at(&[0, 2, 1 << rng.below(8)], 11).unwrap();
            f.write_all_at(&[(rng.below(6)) as u8, 0, 0, 0], 1024 + 24).unwrap();
        }
        let part_len = if i % 7 == 0 { rng.below(len) } else { len };
        let m = used_map(&f, 0, part_len).unwrap();
        check_invariants(&m, part_len);
    }
}
