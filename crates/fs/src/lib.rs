//! Filesystem used-block maps for the smart clone mode.
//!
//! [`used_map`] identifies what a partition holds (by magic numbers, with the names
//! `sysclone_disk::probe` uses) and, for the filesystems it understands, returns the byte
//! ranges that filesystem marks as in use:
//!
//! | fs | source of truth |
//! |---|---|
//! | ext2/3/4 | block bitmaps per group (descriptor checksums verified); `BLOCK_UNINIT` groups computed (superblock/GDT backups, metadata) |
//! | FAT12/16/32 | reserved area + FATs + root directory, then every cluster whose FAT entry is non-zero |
//! | NTFS | `$Bitmap` (MFT record 6, found through `$MFT`'s own runlist), boot sector and its backup |
//! | swap | the header page only |
//! | btrfs (one device) | every allocated chunk on the device (chunk tree), the superblock copies, the first MiB |
//! | anything else | the whole partition (`whole = true`, with a note) |
//!
//! Every parser validates what it reads. A structure that does not make sense, or a state
//! in which the allocation map cannot be trusted (an ext journal that needs recovery, an
//! uncleanly unmounted ext2, a descriptor failing its checksum, a dirty NTFS volume,
//! multi-device or RAID btrfs) turns into a whole-partition map with a note: over-copying is
//! safe, under-copying is not. Errors (`Err`) are reserved for failing reads of the device.
//! Memory stays bounded: metadata is streamed in chunks, and an extent list that grows past
//! [`MAX_EXTENTS`] is coarsened by merging the smallest gaps (which only over-copies).
//!
//! [`resize`] grows or shrinks a filesystem on the target after the copy, and [`min_size`]
//! says how far it could shrink (see the `resize` module: e2fsprogs and ntfsresize, the btrfs
//! and XFS resize ioctls on a private temporary mount, FAT32 and swap natively). The ioctls
//! live in `sys.rs`, this crate's only `unsafe`.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use anyhow::Context;
use serde::Serialize;

mod btrfs;
mod crc;
mod ext;
mod extents;
mod fat;
mod ident;
mod ntfs;
mod resize;
mod swap;
mod sys;

use extents::ExtentSet;
pub use extents::MAX_EXTENTS;
pub use resize::{min_size, resize, ResizeOutcome};

/// A byte range relative to the partition start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Extent {
    pub start: u64,
    pub len: u64,
}

impl Extent {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// The bytes of one partition that its filesystem uses.
#[derive(Debug, Clone, Serialize)]
pub struct UsedMap {
    /// `ext2`, `ext3`, `ext4`, `vfat`, `ntfs`, `swap`, `xfs`, `btrfs`, `crypto_LUKS`,
    /// `LVM2_member` or `unknown` (the names `sysclone_disk::probe` uses).
    pub fs: String,
    /// The filesystem's allocation unit (block or cluster) in bytes; 512 when unknown.
    pub block_size: u64,
    /// Sorted, merged, non-overlapping, within `[0, part_len)`.
    pub extents: Vec<Extent>,
    /// Sum of the extents' lengths.
    pub used_bytes: u64,
    /// True when the map is the whole partition (unknown or unhandled content).
    pub whole: bool,
    /// Why the map is whole, or anything else worth telling (e.g. "swap: header page only").
    pub note: Option<String>,
}

/// The used-block map of the partition `[part_start, part_start + part_len)` of `dev`.
///
/// Reads with positional reads only (`read_exact_at`), so `dev` may be shared with other
/// threads. Returns `Err` only when reading the device fails; content that cannot be
/// parsed gives a whole-partition map with a note.
/// Bytes a partition's head must hold for [`io_unit`] (btrfs's superblock is at 64 KiB).
pub const IO_UNIT_HEAD: usize = 0x10000 + 4096;

/// The smallest unit a filesystem reads and writes on its device, from the first
/// [`IO_UNIT_HEAD`] bytes of its partition: ext2/3/4's block size, XFS's sector size, btrfs's
/// sector size. The kernel cannot mount it on a disk whose logical sectors are larger (a
/// 1 KiB-block ext4 on a 4Kn disk). `None` for other filesystems or a short head.
pub fn io_unit(kind: &str, head: &[u8]) -> Option<u32> {
    let le32 = |o: usize| head.get(o..o + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
    match kind {
        "ext2" | "ext3" | "ext4" => le32(1024 + 24).filter(|&l| l <= 6).map(|l| 1024u32 << l),
        "xfs" => head.get(102..104).map(|b| u16::from_be_bytes([b[0], b[1]]) as u32).filter(|s| s.is_power_of_two()),
        "btrfs" => le32(0x10000 + 0x90).filter(|s| s.is_power_of_two()),
        _ => None,
    }
}

pub fn used_map(dev: &File, part_start: u64, part_len: u64) -> anyhow::Result<UsedMap> {
    part_start.checked_add(part_len).context("partition start + length overflows")?;
    let src = PartFile { dev, start: part_start, len: part_len };
    map_source(&src).with_context(|| format!("reading the partition at byte {part_start} (length {part_len})"))
}

/// What parsers read from: a partition of `len` bytes.
pub(crate) trait Source {
    fn len(&self) -> u64;
    /// Fill `buf` from byte `off` of the partition; `off + buf.len() <= len()` is checked by [`read`].
    fn read_raw(&self, off: u64, buf: &mut [u8]) -> io::Result<()>;
}

struct PartFile<'a> {
    dev: &'a File,
    start: u64,
    len: u64,
}

impl Source for PartFile<'_> {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_raw(&self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        self.dev.read_exact_at(buf, self.start + off)
    }
}

/// The used-block map of a partition image held in memory (tests and fuzzing): the same
/// parsers as [`used_map`], reading from `image` instead of a device.
pub fn used_map_of_image(image: &[u8]) -> UsedMap {
    map_source(&Mem(image)).expect("in-memory reads cannot fail")
}

/// The used-block map of a sparse partition image of `len` bytes (tests and fuzzing):
/// zeros except for `blocks` (`(offset, bytes)`, later ones win where they overlap; bytes
/// beyond `len` are ignored). Lets a 100 MiB filesystem be described by its few KiB of
/// metadata.
pub fn used_map_of_sparse(len: u64, blocks: &[(u64, &[u8])]) -> UsedMap {
    map_source(&Sparse { len, blocks }).expect("in-memory reads cannot fail")
}

struct Sparse<'a> {
    len: u64,
    blocks: &'a [(u64, &'a [u8])],
}

impl Source for Sparse<'_> {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_raw(&self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        buf.fill(0);
        let end = off + buf.len() as u64;
        for &(at, bytes) in self.blocks {
            let (s, e) = (at.max(off), at.saturating_add(bytes.len() as u64).min(end));
            if s < e {
                buf[(s - off) as usize..(e - off) as usize].copy_from_slice(&bytes[(s - at) as usize..(e - at) as usize]);
            }
        }
        Ok(())
    }
}

/// An image in memory.
pub(crate) struct Mem<'a>(pub &'a [u8]);

impl Source for Mem<'_> {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_raw(&self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        let o = off as usize;
        buf.copy_from_slice(&self.0[o..o + buf.len()]);
        Ok(())
    }
}

/// Why a parser gave up.
#[derive(Debug)]
pub(crate) enum FsError {
    /// The device could not be read: the caller's problem, reported as `Err`.
    Io(io::Error),
    /// The content is invalid, hostile, or uses something this crate does not map:
    /// the partition is copied whole.
    Whole(String),
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsError::Io(e) => write!(f, "{e}"),
            FsError::Whole(s) => f.write_str(s),
        }
    }
}

pub(crate) type R<T> = Result<T, FsError>;

/// Give up with a whole-partition map; `format!`-style arguments.
macro_rules! whole {
    ($($t:tt)*) => { return Err($crate::FsError::Whole(format!($($t)*))) };
}
pub(crate) use whole;

/// Read `buf.len()` bytes at `off`, refusing anything outside the partition.
pub(crate) fn read(src: &dyn Source, off: u64, buf: &mut [u8]) -> R<()> {
    match off.checked_add(buf.len() as u64) {
        Some(end) if end <= src.len() => src.read_raw(off, buf).map_err(FsError::Io),
        _ => whole!("a structure points outside the partition (byte {off}, length {})", buf.len()),
    }
}

/// Read `len` bytes at `off` into a new buffer; `len` must already be validated as small.
pub(crate) fn read_vec(src: &dyn Source, off: u64, len: usize) -> R<Vec<u8>> {
    let mut b = vec![0u8; len];
    read(src, off, &mut b)?;
    Ok(b)
}

/// Bounds-checked little/big-endian field readers: a bad offset is invalid content, never a panic.
pub(crate) fn field<const N: usize>(b: &[u8], o: usize) -> R<[u8; N]> {
    match o.checked_add(N).and_then(|e| b.get(o..e)) {
        Some(s) => {
            let mut a = [0u8; N];
            a.copy_from_slice(s);
            Ok(a)
        }
        None => whole!("field at offset {o} is outside its structure"),
    }
}
pub(crate) fn u8_at(b: &[u8], o: usize) -> R<u8> {
    Ok(field::<1>(b, o)?[0])
}
pub(crate) fn le16(b: &[u8], o: usize) -> R<u16> {
    Ok(u16::from_le_bytes(field(b, o)?))
}
pub(crate) fn le32(b: &[u8], o: usize) -> R<u32> {
    Ok(u32::from_le_bytes(field(b, o)?))
}
pub(crate) fn le64(b: &[u8], o: usize) -> R<u64> {
    Ok(u64::from_le_bytes(field(b, o)?))
}

/// What a parser reports besides the extents it added.
pub(crate) struct Parsed {
    pub block_size: u64,
    pub note: Option<String>,
}

fn map_source(src: &dyn Source) -> anyhow::Result<UsedMap> {
    let len = src.len();
    let head_len = (ident::HEAD as u64).min(len) as usize;
    let mut head = vec![0u8; head_len];
    src.read_raw(0, &mut head)?;
    let kind = ident::identify(&head).to_string();
    let mut set = ExtentSet::new(len);
    let r = match kind.as_str() {
        "ext2" | "ext3" | "ext4" => ext::map(src, &mut set),
        "vfat" => fat::map(src, &mut set),
        "ntfs" => ntfs::map(src, &mut set),
        "swap" => swap::map(src, &head, &mut set),
        "btrfs" => btrfs::map(src, &mut set),
        "xfs" => Err(FsError::Whole("used-block map not implemented".into())),
        "crypto_LUKS" => Err(FsError::Whole("encrypted: contents unknown".into())),
        "LVM2_member" => Err(FsError::Whole("LVM physical volume: contents not mapped".into())),
        _ => Err(FsError::Whole("no known filesystem".into())),
    };
    match r {
        Ok(p) => {
            let (extents, used_bytes) = set.finish();
            Ok(UsedMap { fs: kind, block_size: p.block_size, extents, used_bytes, whole: false, note: p.note })
        }
        Err(FsError::Io(e)) => Err(anyhow::Error::new(e).context(format!("{kind}: reading metadata"))),
        Err(FsError::Whole(why)) => Ok(whole_map(kind, len, why)),
    }
}

fn whole_map(fs: String, len: u64, why: String) -> UsedMap {
    let extents = if len > 0 { vec![Extent { start: 0, len }] } else { Vec::new() };
    let note = Some(format!("{fs}: whole partition ({why})"));
    UsedMap { fs, block_size: 512, extents, used_bytes: len, whole: true, note }
}

#[cfg(test)]
pub(crate) fn map_bytes(b: &[u8]) -> UsedMap {
    used_map_of_image(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_empty_are_whole() {
        let m = map_bytes(&[0u8; 8192]);
        assert!(m.whole);
        assert_eq!(m.fs, "unknown");
        assert_eq!(m.extents, vec![Extent { start: 0, len: 8192 }]);
        assert_eq!(m.used_bytes, 8192);
        assert!(m.note.unwrap().contains("whole partition"));
        let m = map_bytes(&[]);
        assert!(m.whole && m.extents.is_empty() && m.used_bytes == 0);
    }

    #[test]
    fn luks_is_whole() {
        let mut b = vec![0u8; 100_000];
        b[..6].copy_from_slice(b"LUKS\xba\xbe");
        let m = map_bytes(&b);
        assert!(m.whole);
        assert_eq!(m.fs, "crypto_LUKS");
    }

    #[test]
    fn reads_outside_are_refused() {
        let b = [0u8; 100];
        assert!(matches!(read(&Mem(&b), 90, &mut [0u8; 20]), Err(FsError::Whole(_))));
        assert!(matches!(read(&Mem(&b), u64::MAX, &mut [0u8; 2]), Err(FsError::Whole(_))));
        assert!(read(&Mem(&b), 80, &mut [0u8; 20]).is_ok());
        assert!(le32(&b, usize::MAX - 1).is_err());
        assert!(le16(&b, 99).is_err());
    }
}

#[cfg(test)]
mod io_unit_tests {
    use super::*;

    #[test]
    fn io_unit_reads_ext_xfs_and_btrfs_heads() {
        let mut h = vec![0u8; IO_UNIT_HEAD];
        h[1024 + 24] = 0; // s_log_block_size 0: 1 KiB
        assert_eq!(io_unit("ext4", &h), Some(1024));
        h[1024 + 24] = 2;
        assert_eq!(io_unit("ext2", &h), Some(4096));
        h[102..104].copy_from_slice(&512u16.to_be_bytes());
        assert_eq!(io_unit("xfs", &h), Some(512));
        h[0x10090..0x10094].copy_from_slice(&4096u32.to_le_bytes());
        assert_eq!(io_unit("btrfs", &h), Some(4096));
        assert_eq!(io_unit("vfat", &h), None);
        assert_eq!(io_unit("ext4", &h[..100]), None, "a short head is not a guess");
        h[1024 + 24] = 40;
        assert_eq!(io_unit("ext4", &h), None, "an absurd shift is not a block size");
    }
}
