//! btrfs on one device: every allocated chunk (block group) on the device, plus the first
//! MiB and the superblock copies.
//!
//! btrfs never overwrites live data in place and keeps everything it references, including
//! the fsync log tree, inside allocated chunks; the chunk tree lists them all. The map is
//! therefore coarser than the extent tree (a chunk is copied whole, used or not) but needs no
//! knowledge of the trees that change most. Superblock at 64 KiB; the system chunks in its
//! `sys_chunk_array` map the chunk tree, whose CHUNK_ITEMs give each chunk's stripes
//! (device id, physical offset). Only the single and DUP profiles are mapped (one device);
//! anything else is copied whole.

use std::collections::HashSet;

use crate::extents::ExtentSet;
use crate::{le16, le32, le64, read, read_vec, u8_at, whole, Parsed, Source, R};

const SB: u64 = 0x10000;
const SB_LEN: usize = 4096;
/// Superblock copies: 64 KiB, 64 MiB, 256 GiB, 1 PiB.
const SB_COPIES: [u64; 4] = [SB, 64 << 20, 256 << 30, 1 << 50];
const CHUNK_ITEM: u8 = 228;
const HEADER: usize = 101;
const KEY: usize = 17;
/// Profiles other than single and DUP (which this map understands): RAID0, RAID1, RAID10, RAID5, RAID6, RAID1C3, RAID1C4.
const PROFILE_OTHER: u64 = (1 << 3) | (1 << 4) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10);
/// mixed_backref, default_subvol, mixed_groups, compress_lzo, compress_zstd, big_metadata,
/// extended_iref, raid56, skinny_metadata, no_holes, metadata_uuid, raid1c34. Not zoned,
/// extent_tree_v2, raid_stripe_tree or anything newer.
const INCOMPAT_KNOWN: u64 = 0xFFF;
const INCOMPAT_METADATA_UUID: u64 = 0x400;
/// The most chunk tree nodes read before giving up (a real chunk tree has a few hundred).
const MAX_NODES: usize = 1 << 16;

struct Chunk {
    logical: u64,
    length: u64,
    /// (device id, physical offset)
    stripes: Vec<(u64, u64)>,
}

fn parse_chunk(logical: u64, b: &[u8]) -> R<Chunk> {
    let length = le64(b, 0)?;
    let ty = le64(b, 24)?;
    let n = le16(b, 44)? as usize;
    if n == 0 || 48 + 32 * n > b.len() || length == 0 {
        whole!("chunk item at {logical} is invalid");
    }
    if ty & PROFILE_OTHER != 0 {
        whole!("chunk profile {ty:#x} (RAID) is not mapped");
    }
    let mut stripes = Vec::with_capacity(n);
    for i in 0..n {
        stripes.push((le64(b, 48 + 32 * i)?, le64(b, 48 + 32 * i + 8)?));
    }
    Ok(Chunk { logical, length, stripes })
}

struct Fs<'a> {
    src: &'a dyn Source,
    devid: u64,
    dev_bytes: u64,
    nodesize: usize,
    fsid: [u8; 16],
    sys: Vec<Chunk>,
}

impl Fs<'_> {
    /// Physical offset of `[logical, logical + nodesize)` through the system chunks.
    fn phys(&self, logical: u64) -> R<u64> {
        for c in &self.sys {
            let n = self.nodesize as u64;
            // Checked: a hostile chunk length near 2^64 must not wrap (found by fuzzing).
            let rel = logical.checked_sub(c.logical);
            if let Some(rel) = rel.filter(|&r| r.checked_add(n).is_some_and(|e| e <= c.length)) {
                if let Some(&(_, off)) = c.stripes.iter().find(|s| s.0 == self.devid) {
                    return match off.checked_add(rel) {
                        Some(p) if p.checked_add(n).is_some_and(|e| e <= self.dev_bytes) => Ok(p),
                        _ => whole!("chunk tree node {logical} maps outside the device"),
                    };
                }
            }
        }
        whole!("chunk tree node {logical} is not in a system chunk")
    }

    /// Add this device's stripes of a chunk.
    fn add_chunk(&self, c: &Chunk, set: &mut ExtentSet) -> R<()> {
        for &(dev, off) in &c.stripes {
            if dev != self.devid {
                continue;
            }
            match off.checked_add(c.length) {
                Some(e) if e <= self.dev_bytes => set.add(off, c.length),
                _ => whole!("chunk at {} lies outside the device", c.logical),
            }
        }
        Ok(())
    }
}

pub(crate) fn map(src: &dyn Source, set: &mut ExtentSet) -> R<Parsed> {
    let sb = read_vec(src, SB, SB_LEN)?;
    if sb.get(0x40..0x48) != Some(b"_BHRfS_M") || le64(&sb, 0x30)? != SB {
        whole!("invalid superblock");
    }
    let incompat = le64(&sb, 0xBC)?;
    if incompat & !INCOMPAT_KNOWN != 0 {
        whole!("unknown incompatible features {:#x}", incompat & !INCOMPAT_KNOWN);
    }
    let num_devices = le64(&sb, 0x88)?;
    if num_devices != 1 {
        whole!("{num_devices} devices: only single-device filesystems are mapped");
    }
    let sectorsize = le32(&sb, 0x90)? as u64;
    let nodesize = le32(&sb, 0x94)? as usize;
    if !sectorsize.is_power_of_two() || !(4096..=65536).contains(&sectorsize) || !nodesize.is_power_of_two() || !(4096..=65536).contains(&nodesize) {
        whole!("sector size {sectorsize} or node size {nodesize} is invalid");
    }
    let devid = le64(&sb, 0xC9)?;
    let dev_bytes = le64(&sb, 0xD1)?;
    if dev_bytes > src.len() || dev_bytes < (1 << 20) {
        whole!("the device size in the superblock ({dev_bytes}) does not fit the partition ({})", src.len());
    }
    let mut fsid = [0u8; 16];
    let fsid_at = if incompat & INCOMPAT_METADATA_UUID != 0 { 0x23B } else { 0x20 };
    fsid.copy_from_slice(&sb[fsid_at..fsid_at + 16]);

    // The system chunks, from the superblock.
    let n = le32(&sb, 0xA0)? as usize;
    if n > 2048 {
        whole!("sys_chunk_array size {n} is invalid");
    }
    let arr = &sb[0x32B..0x32B + n];
    let mut sys = Vec::new();
    let mut pos = 0;
    while pos < n {
        let Some(key) = arr.get(pos..pos + KEY) else { whole!("sys_chunk_array is truncated") };
        if key[8] != CHUNK_ITEM {
            whole!("sys_chunk_array holds a non-chunk item");
        }
        let logical = le64(key, 9)?;
        let body = &arr[pos + KEY..];
        let ns = le16(body, 44)? as usize;
        let c = parse_chunk(logical, body.get(..48 + 32 * ns).unwrap_or(&[]))?;
        pos += KEY + 48 + 32 * ns;
        sys.push(c);
    }
    let fs = Fs { src, devid, dev_bytes, nodesize, fsid, sys };

    // Walk the chunk tree; each node is read once.
    let root = le64(&sb, 0x58)?;
    let root_level = u8_at(&sb, 0xC7)?;
    if root_level > 7 {
        whole!("chunk tree level {root_level} is invalid");
    }
    let mut stack = vec![(root, root_level)];
    let mut seen = HashSet::new();
    let mut node = vec![0u8; nodesize];
    while let Some((logical, level)) = stack.pop() {
        if !seen.insert(logical) || seen.len() > MAX_NODES {
            whole!("the chunk tree revisits node {logical} or is too large");
        }
        read(fs.src, fs.phys(logical)?, &mut node)?;
        if le64(&node, 0x30)? != logical || node[0x20..0x30] != fs.fsid || u8_at(&node, 0x64)? != level {
            whole!("chunk tree node {logical} does not belong here (address, fsid or level)");
        }
        let items = le32(&node, 0x60)? as usize;
        if level == 0 {
            if HEADER + items * 25 > nodesize {
                whole!("chunk tree leaf {logical} has too many items");
            }
            for i in 0..items {
                let it = HEADER + i * 25;
                if node[it + 8] != CHUNK_ITEM {
                    continue;
                }
                let off = le32(&node, it + KEY)? as usize;
                let size = le32(&node, it + KEY + 4)? as usize;
                let Some(body) = node.get(HEADER + off..HEADER + off + size) else { whole!("chunk item outside its leaf") };
                let c = parse_chunk(le64(&node, it + 9)?, body)?;
                fs.add_chunk(&c, set)?;
            }
        } else {
            if HEADER + items * 33 > nodesize {
                whole!("chunk tree node {logical} has too many pointers");
            }
            for i in 0..items {
                stack.push((le64(&node, HEADER + i * 33 + KEY)?, level - 1));
            }
        }
    }
    for c in &fs.sys {
        fs.add_chunk(c, set)?;
    }
    // The first MiB (boot area, primary superblock) and the superblock copies.
    set.add(0, 1 << 20);
    for s in SB_COPIES {
        if s + SB_LEN as u64 <= dev_bytes {
            set.add(s, SB_LEN as u64);
        }
    }
    Ok(Parsed { block_size: sectorsize, note: Some("btrfs: allocated chunks are copied whole".into()) })
}

#[cfg(test)]
mod tests {
    use crate::map_bytes;

    fn put(b: &mut [u8], o: usize, v: &[u8]) {
        b[o..o + v.len()].copy_from_slice(v);
    }

    /// Found by fuzzing (fuzz/fuzz_targets/fs_btrfs.rs): a system chunk of length near 2^64
    /// and a chunk root near its end overflowed `offset + nodesize` (a panic in debug
    /// builds, a wrapped bound in release). It must be invalid content: a whole-partition map.
    #[test]
    fn huge_system_chunk_is_whole_not_an_overflow() {
        let len = 2usize << 20;
        let mut b = vec![0u8; len];
        let sb = 0x10000;
        put(&mut b, sb + 0x30, &0x10000u64.to_le_bytes());
        put(&mut b, sb + 0x40, b"_BHRfS_M");
        put(&mut b, sb + 0x88, &1u64.to_le_bytes()); // one device
        put(&mut b, sb + 0x90, &4096u32.to_le_bytes()); // sector size
        put(&mut b, sb + 0x94, &16384u32.to_le_bytes()); // node size
        put(&mut b, sb + 0xC9, &1u64.to_le_bytes()); // devid
        put(&mut b, sb + 0xD1, &(len as u64).to_le_bytes()); // device bytes
        put(&mut b, sb + 0x58, &(u64::MAX - 100).to_le_bytes()); // chunk root
        // sys_chunk_array: one CHUNK_ITEM at logical 0 of length 2^64 - 1, one stripe on devid 1.
        let mut item = vec![0u8; 17 + 48 + 32];
        item[8] = 228;
        put(&mut item, 17, &u64::MAX.to_le_bytes());
        put(&mut item, 17 + 44, &1u16.to_le_bytes());
        put(&mut item, 17 + 48, &1u64.to_le_bytes());
        put(&mut b, sb + 0xA0, &(item.len() as u32).to_le_bytes());
        put(&mut b, sb + 0x32B, &item);
        let m = map_bytes(&b);
        assert_eq!(m.fs, "btrfs");
        assert!(m.whole, "{m:?}");
        assert!(m.note.unwrap().contains("chunk tree node"));
    }
}
