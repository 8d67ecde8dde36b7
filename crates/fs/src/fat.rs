//! FAT12/16/32: the reserved area, the FATs and the FAT12/16 root directory are always
//! used; a data cluster is used when its entry is neither free (0) nor bad in any FAT copy.
//!
//! The type follows from the cluster count, as the FAT specification says (< 4085: FAT12,
//! < 65525: FAT16, else FAT32). The FAT32 FSInfo sector and backup boot sector live in the
//! reserved area, so they are copied with it. FATs are read in bounded chunks.

use crate::extents::ExtentSet;
use crate::{le16, le32, read, read_vec, u8_at, whole, Parsed, Source, R};

/// Entries examined per chunk: a multiple of 2 (FAT12 packs two entries in three bytes).
const CHUNK_ENTRIES: u64 = 1 << 18;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Fat12,
    Fat16,
    Fat32,
}

struct Bpb {
    cluster: u64,
    fat_start: u64,
    fat_bytes: u64,
    nfats: u64,
    data_start: u64,
    clusters: u64,
    kind: Kind,
}

fn parse(b: &[u8], part_len: u64) -> R<Bpb> {
    if le16(b, 510)? != 0xAA55 {
        whole!("no boot sector signature");
    }
    let bps = le16(b, 11)? as u64;
    if !matches!(bps, 512 | 1024 | 2048 | 4096) {
        whole!("bytes per sector {bps} is invalid");
    }
    let spc = u8_at(b, 13)? as u64;
    if spc == 0 || !spc.is_power_of_two() {
        whole!("sectors per cluster {spc} is invalid");
    }
    let rsvd = le16(b, 14)? as u64;
    let nfats = u8_at(b, 16)? as u64;
    let root_ent = le16(b, 17)? as u64;
    let tot16 = le16(b, 19)? as u64;
    let fatsz16 = le16(b, 22)? as u64;
    let tot = if tot16 != 0 { tot16 } else { le32(b, 32)? as u64 };
    let fatsz = if fatsz16 != 0 { fatsz16 } else { le32(b, 36)? as u64 };
    if rsvd == 0 || nfats == 0 || nfats > 4 || fatsz == 0 || tot == 0 {
        whole!("reserved sectors, FAT count, FAT size or sector count is zero or out of range");
    }
    let root_sectors = (root_ent * 32).div_ceil(bps);
    // All in sectors; every term fits easily in u64 (u16/u32 inputs).
    let data_sec = rsvd + nfats * fatsz + root_sectors;
    if data_sec >= tot {
        whole!("no room for data clusters");
    }
    if tot * bps > part_len {
        whole!("the filesystem ({} bytes) is larger than the partition ({part_len} bytes)", tot * bps);
    }
    let clusters = (tot - data_sec) / spc;
    let kind = match clusters {
        0..4085 => Kind::Fat12,
        4085..65525 => Kind::Fat16,
        _ => Kind::Fat32,
    };
    if kind == Kind::Fat32 && (root_ent != 0 || fatsz16 != 0) {
        whole!("FAT32 cluster count with a FAT12/16 root directory");
    }
    if kind == Kind::Fat32 && clusters > 0x0FFF_FFF5 {
        whole!("too many clusters for FAT32");
    }
    let bits = match kind {
        Kind::Fat12 => 12,
        Kind::Fat16 => 16,
        Kind::Fat32 => 32,
    };
    if ((clusters + 2) * bits).div_ceil(8) > fatsz * bps {
        whole!("the FAT is too small for {clusters} clusters");
    }
    Ok(Bpb { cluster: spc * bps, fat_start: rsvd * bps, fat_bytes: fatsz * bps, nfats, data_start: data_sec * bps, clusters, kind })
}

/// Entry `n` (absolute cluster number) from `buf`, which holds the FAT from entry `base`
/// (even) on.
fn entry(kind: Kind, buf: &[u8], base: u64, n: u64) -> u32 {
    let get = |o: u64| buf.get(o as usize).copied().unwrap_or(0) as u32;
    match kind {
        Kind::Fat12 => {
            let o = (n - base) * 3 / 2;
            let v = get(o) | get(o + 1) << 8;
            if n % 2 == 0 {
                v & 0xFFF
            } else {
                v >> 4
            }
        }
        Kind::Fat16 => {
            let o = (n - base) * 2;
            get(o) | get(o + 1) << 8
        }
        Kind::Fat32 => {
            let o = (n - base) * 4;
            (get(o) | get(o + 1) << 8 | get(o + 2) << 16 | get(o + 3) << 24) & 0x0FFF_FFFF
        }
    }
}

/// Byte range of the FAT holding entries `[n0, n1)`, `n0` even.
fn byte_range(kind: Kind, n0: u64, n1: u64) -> (u64, u64) {
    match kind {
        Kind::Fat12 => (n0 * 3 / 2, (n1 * 3).div_ceil(2)),
        Kind::Fat16 => (n0 * 2, n1 * 2),
        Kind::Fat32 => (n0 * 4, n1 * 4),
    }
}

pub(crate) fn map(src: &dyn Source, set: &mut ExtentSet) -> R<Parsed> {
    let boot = read_vec(src, 0, 512)?;
    let bpb = parse(&boot, src.len())?;
    set.add(0, bpb.data_start);
    let bad = match bpb.kind {
        Kind::Fat12 => 0xFF7,
        Kind::Fat16 => 0xFFF7,
        Kind::Fat32 => 0x0FFF_FFF7,
    };
    let end = bpb.clusters + 2;
    let mut used = vec![false; CHUNK_ENTRIES as usize];
    let mut buf = Vec::new();
    let mut n0 = 0u64;
    while n0 < end {
        let n1 = (n0 + CHUNK_ENTRIES).min(end);
        let (b0, b1) = byte_range(bpb.kind, n0, n1);
        let b1 = b1.min(bpb.fat_bytes);
        buf.resize((b1 - b0) as usize, 0);
        used.iter_mut().for_each(|u| *u = false);
        for f in 0..bpb.nfats {
            read(src, bpb.fat_start + f * bpb.fat_bytes + b0, &mut buf)?;
            for n in n0.max(2)..n1 {
                let v = entry(bpb.kind, &buf, n0, n);
                if v != 0 && v != bad {
                    used[(n - n0) as usize] = true;
                }
            }
        }
        for n in n0.max(2)..n1 {
            if used[(n - n0) as usize] {
                set.add(bpb.data_start + (n - 2) * bpb.cluster, bpb.cluster);
            }
        }
        n0 = n1;
    }
    Ok(Parsed { block_size: bpb.cluster, note: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fat12_packing() {
        // Entries 0..4: 0xFF8, 0xFFF, 0x003, 0x000 packed as F8 FF FF 03 00 00
        let b = [0xF8, 0xFF, 0xFF, 0x03, 0x00, 0x00];
        let e: Vec<u32> = (0..4).map(|n| entry(Kind::Fat12, &b, 0, n)).collect();
        assert_eq!(e, vec![0xFF8, 0xFFF, 0x003, 0x000]);
        assert_eq!(byte_range(Kind::Fat12, 0, 4), (0, 6));
        assert_eq!(byte_range(Kind::Fat12, 4, 7), (6, 11));
        assert_eq!(entry(Kind::Fat32, &[1, 2, 3, 0xF4], 0, 0), 0x0403_0201);
    }
}
