//! ext2/3/4: the block bitmap of every group.
//!
//! Layout facts used (from the ext4 on-disk format documentation):
//! - superblock at byte 1024; group descriptors (32 bytes, or `s_desc_size` with
//!   INCOMPAT_64BIT) in the block after the superblock's, or per meta group with META_BG;
//! - each descriptor names its group's block bitmap, inode bitmap and inode table, which
//!   with FLEX_BG may live in another group;
//! - with GDT_CSUM / METADATA_CSUM a group flagged BLOCK_UNINIT has no bitmap on disk: its
//!   used blocks are its superblock/GDT backup area (SPARSE_SUPER / SPARSE_SUPER2 rules,
//!   reserved GDT blocks, META_BG descriptor blocks) plus any group's metadata placed in it;
//! - with BIGALLOC a bitmap bit is a cluster of `2^(log_cluster - log_block)` blocks.
//!
//! Metadata blocks (bitmaps, inode tables) of every group are always marked, whatever the
//! bitmaps say, so a BLOCK_UNINIT group that holds another group's tables is covered.

use crate::crc::{crc16, crc32c};
use crate::extents::{add_bitmap_runs, ExtentSet};
use crate::{le16, le32, read, read_vec, whole, Parsed, Source, R};

const COMPAT_HAS_JOURNAL: u32 = 0x4;
const COMPAT_SPARSE_SUPER2: u32 = 0x200;

const INCOMPAT_FILETYPE: u32 = 0x2;
const INCOMPAT_RECOVER: u32 = 0x4;
const INCOMPAT_JOURNAL_DEV: u32 = 0x8;
const INCOMPAT_META_BG: u32 = 0x10;
const INCOMPAT_EXTENTS: u32 = 0x40;
const INCOMPAT_64BIT: u32 = 0x80;
const INCOMPAT_MMP: u32 = 0x100;
const INCOMPAT_FLEX_BG: u32 = 0x200;
const INCOMPAT_EA_INODE: u32 = 0x400;
const INCOMPAT_DIRDATA: u32 = 0x1000;
const INCOMPAT_CSUM_SEED: u32 = 0x2000;
const INCOMPAT_LARGEDIR: u32 = 0x4000;
const INCOMPAT_INLINE_DATA: u32 = 0x8000;
const INCOMPAT_ENCRYPT: u32 = 0x10000;
const INCOMPAT_CASEFOLD: u32 = 0x20000;
/// Features that leave the meaning of the block bitmaps alone.
const INCOMPAT_KNOWN: u32 = INCOMPAT_FILETYPE
    | INCOMPAT_META_BG
    | INCOMPAT_EXTENTS
    | INCOMPAT_64BIT
    | INCOMPAT_MMP
    | INCOMPAT_FLEX_BG
    | INCOMPAT_EA_INODE
    | INCOMPAT_DIRDATA
    | INCOMPAT_CSUM_SEED
    | INCOMPAT_LARGEDIR
    | INCOMPAT_INLINE_DATA
    | INCOMPAT_ENCRYPT
    | INCOMPAT_CASEFOLD;

const RO_SPARSE_SUPER: u32 = 0x1;
const RO_GDT_CSUM: u32 = 0x10;
const RO_BIGALLOC: u32 = 0x200;
const RO_METADATA_CSUM: u32 = 0x400;
/// sparse_super, large_file, btree_dir, huge_file, gdt_csum, dir_nlink, extra_isize, quota,
/// bigalloc, metadata_csum, readonly, project, shared_blocks, verity, orphan_present.
/// Not: has_snapshot (0x80), replica (0x800).
const RO_KNOWN: u32 = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | 0x40 | 0x100 | 0x200 | 0x400 | 0x1000 | 0x2000 | 0x4000 | 0x8000 | 0x10000;

const STATE_VALID: u16 = 0x1;
const STATE_ERROR: u16 = 0x2;
const BG_BLOCK_UNINIT: u16 = 0x2;

/// What the superblock says, validated.
struct Geo {
    bs: u64,
    blocks: u64,
    fdb: u64,
    bpg: u64,
    /// Blocks per bitmap bit (1 unless bigalloc).
    ratio: u64,
    itb: u64,
    desc: u64,
    is64: bool,
    groups: u64,
    dpb: u64,
    gdt_blocks: u64,
    meta_bg: bool,
    first_meta_bg: u64,
    reserved_gdt: u64,
    sparse: bool,
    sparse2: Option<[u64; 2]>,
    csum: Csum,
}

/// How group descriptors are checksummed.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Csum {
    None,
    /// GDT_CSUM: CRC-16 over the UUID, the group number and the descriptor.
    Crc16 {
        uuid: [u8; 16],
    },
    /// METADATA_CSUM: CRC-32C from the filesystem's seed, low 16 bits kept.
    Crc32c {
        seed: u32,
    },
}

impl Geo {
    fn parse(sb: &[u8], part_len: u64) -> R<Geo> {
        if le16(sb, 0x38)? != 0xEF53 {
            whole!("no ext superblock magic");
        }
        let log_bs = le32(sb, 0x18)?;
        if log_bs > 6 {
            whole!("block size 2^(10+{log_bs}) is out of range");
        }
        let bs = 1024u64 << log_bs;
        let rev = le32(sb, 0x4C)?;
        if rev > 1 {
            whole!("unknown revision {rev}");
        }
        let (compat, incompat, ro) = if rev == 0 { (0, 0, 0) } else { (le32(sb, 0x5C)?, le32(sb, 0x60)?, le32(sb, 0x64)?) };
        if incompat & INCOMPAT_RECOVER != 0 {
            whole!("the journal needs recovery: run e2fsck or mount it once for a smart copy");
        }
        if incompat & INCOMPAT_JOURNAL_DEV != 0 {
            whole!("external journal device");
        }
        if incompat & !INCOMPAT_KNOWN != 0 {
            whole!("unknown incompatible features {:#x}", incompat & !INCOMPAT_KNOWN);
        }
        if ro & !RO_KNOWN != 0 {
            whole!("unknown read-only-compatible features {:#x}", ro & !RO_KNOWN);
        }
        let state = le16(sb, 0x3A)?;
        if state & STATE_ERROR != 0 {
            whole!("the filesystem is marked as having errors: run e2fsck for a smart copy");
        }
        // Without a journal, an unclean unmount can leave allocations out of the bitmaps.
        if state & STATE_VALID == 0 && compat & COMPAT_HAS_JOURNAL == 0 {
            whole!("not cleanly unmounted: run e2fsck for a smart copy");
        }
        let is64 = incompat & INCOMPAT_64BIT != 0;
        let blocks = le32(sb, 0x04)? as u64 | if is64 { (le32(sb, 0x150)? as u64) << 32 } else { 0 };
        let fdb = le32(sb, 0x14)? as u64;
        if fdb > 1 || (fdb == 1 && bs != 1024) {
            whole!("first data block {fdb} is invalid for {bs}-byte blocks");
        }
        let bigalloc = ro & RO_BIGALLOC != 0;
        let bpg = le32(sb, 0x20)? as u64;
        let ratio = if bigalloc {
            let log_cs = le32(sb, 0x1C)?;
            if log_cs < log_bs || log_cs - log_bs > 16 || fdb != 0 {
                whole!("invalid bigalloc cluster size");
            }
            let ratio = 1u64 << (log_cs - log_bs);
            let cpg = le32(sb, 0x24)? as u64;
            if cpg == 0 || cpg > 8 * bs || cpg * ratio != bpg {
                whole!("invalid clusters per group {cpg}");
            }
            ratio
        } else {
            if bpg > 8 * bs {
                whole!("blocks per group {bpg} exceed one bitmap block");
            }
            1
        };
        if bpg < 8 {
            whole!("blocks per group {bpg} is too small");
        }
        let ipg = le32(sb, 0x28)? as u64;
        if ipg == 0 || ipg > 8 * bs {
            whole!("inodes per group {ipg} is out of range");
        }
        let isz = if rev == 0 { 128 } else { le16(sb, 0x58)? as u64 };
        if !isz.is_power_of_two() || isz < 128 || isz > bs {
            whole!("inode size {isz} is invalid");
        }
        let itb = (ipg * isz).div_ceil(bs);
        let desc = if is64 {
            let d = le16(sb, 0xFE)? as u64;
            if !(64..=1024).contains(&d) || !d.is_power_of_two() {
                whole!("group descriptor size {d} is invalid");
            }
            d
        } else {
            32
        };
        if blocks <= fdb {
            whole!("block count {blocks} is too small");
        }
        match blocks.checked_mul(bs) {
            Some(n) if n <= part_len => {}
            _ => whole!("the filesystem ({blocks} blocks of {bs} bytes) is larger than the partition ({part_len} bytes)"),
        }
        let groups = (blocks - fdb).div_ceil(bpg);
        let dpb = bs / desc;
        let gdt_blocks = groups.div_ceil(dpb);
        let meta_bg = incompat & INCOMPAT_META_BG != 0;
        let first_meta_bg = if meta_bg { le32(sb, 0x104)? as u64 } else { 0 };
        if first_meta_bg > gdt_blocks {
            whole!("first meta block group {first_meta_bg} is beyond the descriptor blocks");
        }
        let reserved_gdt = le16(sb, 0xCE)? as u64;
        if reserved_gdt > bs / 4 {
            whole!("{reserved_gdt} reserved GDT blocks is out of range");
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&sb[0x68..0x78]);
        let csum = if ro & RO_METADATA_CSUM != 0 {
            let seed = if incompat & INCOMPAT_CSUM_SEED != 0 { le32(sb, 0x270)? } else { crc32c(!0, &uuid) };
            Csum::Crc32c { seed }
        } else if ro & RO_GDT_CSUM != 0 {
            Csum::Crc16 { uuid }
        } else {
            Csum::None
        };
        let sparse2 = if compat & COMPAT_SPARSE_SUPER2 != 0 { Some([le32(sb, 0x24C)? as u64, le32(sb, 0x250)? as u64]) } else { None };
        Ok(Geo {
            bs,
            blocks,
            fdb,
            bpg,
            ratio,
            itb,
            desc,
            is64,
            groups,
            dpb,
            gdt_blocks,
            meta_bg,
            first_meta_bg,
            reserved_gdt,
            sparse: ro & RO_SPARSE_SUPER != 0,
            sparse2,
            csum,
        })
    }

    /// Whether descriptor `d` of group `g` carries the right checksum (always, without one).
    fn desc_ok(&self, g: u64, d: &[u8]) -> bool {
        let group = (g as u32).to_le_bytes();
        let stored = u16::from_le_bytes([d[0x1E], d[0x1F]]);
        let computed = match self.csum {
            Csum::None => return true,
            Csum::Crc32c { seed } => {
                let c = crc32c(seed, &group);
                let c = crc32c(c, &d[..0x1E]);
                let c = crc32c(c, &[0, 0]);
                (crc32c(c, &d[0x20..]) & 0xFFFF) as u16
            }
            Csum::Crc16 { uuid } => {
                let c = crc16(!0, &uuid);
                let c = crc16(c, &group);
                let c = crc16(c, &d[..0x1E]);
                if self.is64 {
                    crc16(c, &d[0x20..])
                } else {
                    c
                }
            }
        };
        stored == computed
    }

    fn group_first(&self, g: u64) -> u64 {
        self.fdb + g * self.bpg
    }

    /// Whether group `g` holds a superblock (and, outside META_BG, a GDT) copy.
    fn has_super(&self, g: u64) -> bool {
        if g == 0 {
            return true;
        }
        if let Some(b) = self.sparse2 {
            return g == b[0] || g == b[1];
        }
        if !self.sparse || g == 1 {
            return true;
        }
        if g % 2 == 0 {
            return false;
        }
        [3u64, 5, 7].iter().any(|&b| {
            let mut x = b;
            while x < g {
                x *= b;
            }
            x == g
        })
    }

    /// Block holding group `g`'s descriptor, and the byte offset in it.
    fn desc_loc(&self, g: u64) -> (u64, usize) {
        let bi = g / self.dpb;
        let block = if !self.meta_bg || bi < self.first_meta_bg {
            self.fdb + 1 + bi
        } else {
            let g0 = bi * self.dpb;
            self.group_first(g0) + self.has_super(g0) as u64
        };
        (block, ((g % self.dpb) * self.desc) as usize)
    }

    /// Blocks at the start of group `g` taken by the superblock and descriptor copies
    /// (generous: with META_BG the old-style area is counted in every backup group).
    fn base_meta(&self, g: u64) -> u64 {
        let mut n = 0;
        if self.has_super(g) {
            let old = if self.meta_bg { self.first_meta_bg } else { self.gdt_blocks };
            n += 1 + old + self.reserved_gdt;
        }
        if self.meta_bg {
            let (bi, r) = (g / self.dpb, g % self.dpb);
            if bi >= self.first_meta_bg && (r == 0 || r == 1 || r + 1 == self.dpb) {
                n += 1;
            }
        }
        n
    }
}

pub(crate) fn map(src: &dyn Source, set: &mut ExtentSet) -> R<Parsed> {
    let sb = read_vec(src, 1024, 1024)?;
    let geo = Geo::parse(&sb, src.len())?;
    let bs = geo.bs;
    // The boot block and the superblock.
    set.add(0, 2048u64.max((geo.fdb + 1) * bs));

    let mut gdt: Vec<u8> = vec![0u8; bs as usize];
    let mut gdt_block = u64::MAX;
    let mut bitmap = vec![0u8; bs as usize];
    for g in 0..geo.groups {
        let (blk, off) = geo.desc_loc(g);
        if blk >= geo.blocks {
            whole!("group {g}'s descriptor block {blk} is beyond the filesystem");
        }
        if blk != gdt_block {
            read(src, blk * bs, &mut gdt)?;
            gdt_block = blk;
            // The descriptor blocks themselves are metadata.
            set.add(blk * bs, bs);
        }
        let d = &gdt[off..off + geo.desc as usize];
        let hi = |o: usize| -> R<u64> { Ok(if geo.is64 { (le32(d, o)? as u64) << 32 } else { 0 }) };
        let bb = le32(d, 0x00)? as u64 | hi(0x20)?;
        let ib = le32(d, 0x04)? as u64 | hi(0x24)?;
        let it = le32(d, 0x08)? as u64 | hi(0x28)?;
        if !geo.desc_ok(g, d) {
            whole!("group {g}'s descriptor checksum does not match");
        }
        let flags = le16(d, 0x12)?;
        if bb >= geo.blocks || ib >= geo.blocks || it.checked_add(geo.itb).is_none_or(|e| e > geo.blocks) {
            whole!("group {g}'s bitmaps or inode table lie outside the filesystem");
        }
        set.add(bb * bs, bs);
        set.add(ib * bs, bs);
        set.add(it * bs, geo.itb * bs);

        let first = geo.group_first(g);
        let last = (first + geo.bpg).min(geo.blocks);
        if geo.csum != Csum::None && flags & BG_BLOCK_UNINIT != 0 {
            let end = first.saturating_add(geo.base_meta(g)).min(last);
            set.add_range(first * bs, end * bs);
        } else {
            read(src, bb * bs, &mut bitmap)?;
            let nbits = (last - first).div_ceil(geo.ratio);
            add_bitmap_runs(set, &bitmap, nbits, first * bs, geo.ratio * bs);
        }
    }
    Ok(Parsed { block_size: bs * geo.ratio, note: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo(sparse: bool, sparse2: Option<[u64; 2]>) -> Geo {
        Geo {
            bs: 4096,
            blocks: 1 << 20,
            fdb: 0,
            bpg: 32768,
            ratio: 1,
            itb: 512,
            desc: 64,
            is64: true,
            groups: 32,
            dpb: 64,
            gdt_blocks: 1,
            meta_bg: false,
            first_meta_bg: 0,
            reserved_gdt: 127,
            sparse,
            sparse2,
            csum: Csum::None,
        }
    }

    #[test]
    fn superblock_backups() {
        let g = geo(true, None);
        let with: Vec<u64> = (0..400).filter(|&i| g.has_super(i)).collect();
        assert_eq!(with, vec![0, 1, 3, 5, 7, 9, 25, 27, 49, 81, 125, 243, 343]);
        let g = geo(false, None);
        assert!((0..50).all(|i| g.has_super(i)));
        let g = geo(true, Some([1, 31]));
        let with: Vec<u64> = (0..400).filter(|&i| g.has_super(i)).collect();
        assert_eq!(with, vec![0, 1, 31]);
        let g = geo(true, Some([0, 0]));
        assert_eq!((0..400).filter(|&i| g.has_super(i)).count(), 1);
    }

    #[test]
    fn base_metadata_and_descriptors() {
        let g = geo(true, None);
        assert_eq!(g.base_meta(0), 1 + 1 + 127);
        assert_eq!(g.base_meta(2), 0);
        assert_eq!(g.base_meta(3), 129);
        assert_eq!(g.desc_loc(5), (1, 5 * 64));
        let mut m = geo(true, None);
        m.meta_bg = true;
        m.reserved_gdt = 0;
        m.groups = 256;
        m.gdt_blocks = 4;
        m.first_meta_bg = 1;
        // Meta group 1 = groups 64..128: descriptors in groups 64, 65 and 127.
        assert_eq!(m.desc_loc(70), (64 * 32768, 6 * 64));
        assert_eq!(m.desc_loc(3), (1, 3 * 64));
        assert_eq!(m.base_meta(64), 1);
        assert_eq!(m.base_meta(65), 1);
        assert_eq!(m.base_meta(127), 1);
        assert_eq!(m.base_meta(66), 0);
        assert_eq!(m.base_meta(125), 1 + 1); // 5^3: superblock + old-style area (1 block)
        assert_eq!(m.base_meta(1), 1 + 1);
    }
}
