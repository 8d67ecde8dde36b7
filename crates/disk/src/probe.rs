//! Filesystem and container identification by superblock magic.
//!
//! Pure functions over the first bytes of a partition; no mounting, no kernel help.

use serde::Serialize;

/// How many bytes of a partition [`probe`] wants to see.
pub const PROBE_BYTES: usize = 70 * 1024;

/// What a partition holds, as far as its superblock tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FsInfo {
    /// `vfat`, `ext2`, `ext3`, `ext4`, `xfs`, `btrfs`, `ntfs`, `swap`, `crypto_LUKS`, `LVM2_member`.
    pub kind: String,
    pub label: Option<String>,
    pub uuid: Option<String>,
    /// Bytes in use, where the superblock says so cheaply (ext2/3/4, XFS, btrfs).
    pub used_bytes: Option<u64>,
}

fn le16(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn le32(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn text(b: &[u8]) -> Option<String> {
    let s: String = String::from_utf8_lossy(b).trim_end_matches(['\0', ' ']).to_string();
    (!s.is_empty()).then_some(s)
}
fn uuid_text(b: &[u8]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}
fn has(b: &[u8], o: usize, magic: &[u8]) -> bool {
    b.get(o..o + magic.len()) == Some(magic)
}

/// Identify the filesystem in `b` (the first [`PROBE_BYTES`] of a partition, or fewer).
pub fn probe(b: &[u8]) -> Option<FsInfo> {
    let fs = |kind: &str, label, uuid| Some(FsInfo { kind: kind.into(), label, uuid, used_bytes: None });
    if has(b, 0, b"LUKS\xba\xbe") {
        return fs("crypto_LUKS", None, b.get(168..208).and_then(text));
    }
    if has(b, 512 + 24, b"LVM2 001") && has(b, 512, b"LABELONE") {
        return fs("LVM2_member", None, b.get(512 + 32..512 + 64).and_then(text));
    }
    if has(b, 0, b"XFSB") {
        return fs("xfs", b.get(108..120).and_then(text), b.get(32..48).map(uuid_text));
    }
    if has(b, 65536 + 64, b"_BHRfS_M") {
        let sb = 65536;
        return fs("btrfs", b.get(sb + 299..sb + 299 + 256).and_then(text), b.get(sb + 32..sb + 48).map(uuid_text));
    }
    if le16(b, 1024 + 56) == Some(0xEF53) {
        let sb = 1024;
        let compat = le32(b, sb + 92).unwrap_or(0);
        let incompat = le32(b, sb + 96).unwrap_or(0);
        let ro_compat = le32(b, sb + 100).unwrap_or(0);
        // extents, 64bit, flex_bg, or huge_file/dir_nlink/extra_isize mean ext4.
        let kind = if incompat & (0x40 | 0x80 | 0x200) != 0 || ro_compat & (0x8 | 0x20 | 0x40) != 0 {
            "ext4"
        } else if compat & 0x4 != 0 {
            "ext3"
        } else {
            "ext2"
        };
        let mut info = fs(kind, b.get(sb + 120..sb + 136).and_then(text), b.get(sb + 104..sb + 120).map(uuid_text))?;
        let log = le32(b, sb + 24).unwrap_or(99);
        if log <= 6 {
            let bsize = 1024u64 << log;
            let hi = |o: usize| if incompat & 0x80 != 0 { le32(b, o).unwrap_or(0) as u64 } else { 0 };
            let blocks = le32(b, sb + 4).unwrap_or(0) as u64 | hi(sb + 0x150) << 32;
            let free = le32(b, sb + 12).unwrap_or(0) as u64 | hi(sb + 0x158) << 32;
            info.used_bytes = blocks.checked_sub(free).and_then(|u| u.checked_mul(bsize));
        }
        return Some(info);
    }
    if has(b, 3, b"NTFS    ") {
        let serial = b.get(72..80).map(|s| s.iter().rev().map(|x| format!("{x:02X}")).collect());
        return fs("ntfs", None, serial);
    }
    if has(b, 510, b"\x55\xAA") {
        let serial = |o: usize| le32(b, o).map(|v| format!("{:04X}-{:04X}", v >> 16, v & 0xffff));
        if has(b, 82, b"FAT32   ") {
            return fs("vfat", b.get(71..82).and_then(text).filter(|l| l != "NO NAME"), serial(67));
        }
        if has(b, 54, b"FAT1") {
            return fs("vfat", b.get(43..54).and_then(text).filter(|l| l != "NO NAME"), serial(39));
        }
    }
    for page in [4096usize, 8192, 16384, 65536] {
        if has(b, page - 10, b"SWAPSPACE2") || has(b, page - 10, b"SWAP-SPACE") {
            return fs("swap", b.get(1024 + 28..1024 + 44).and_then(text), b.get(1024 + 12..1024 + 28).map(uuid_text));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_garbage_are_unknown() {
        assert_eq!(probe(&[]), None);
        assert_eq!(probe(&[0xffu8; 100]), None);
        assert_eq!(probe(&vec![0u8; PROBE_BYTES]), None);
    }

    #[test]
    fn ext4_superblock() {
        let mut b = vec![0u8; 4096];
        b[1024 + 56..1024 + 58].copy_from_slice(&0xEF53u16.to_le_bytes());
        b[1024 + 96..1024 + 100].copy_from_slice(&0x40u32.to_le_bytes());
        b[1024 + 120..1024 + 124].copy_from_slice(b"root");
        b[1024 + 104] = 0xab;
        let i = probe(&b).unwrap();
        assert_eq!(i.kind, "ext4");
        assert_eq!(i.label.as_deref(), Some("root"));
        assert!(i.uuid.unwrap().starts_with("ab000000-"));
        assert_eq!(i.used_bytes, Some(0));
    }

    #[test]
    fn fat32_boot_sector() {
        let mut b = vec![0u8; 1024];
        b[82..90].copy_from_slice(b"FAT32   ");
        b[510] = 0x55;
        b[511] = 0xAA;
        b[67..71].copy_from_slice(&0x1234ABCDu32.to_le_bytes());
        b[71..82].copy_from_slice(b"ESP        ");
        let i = probe(&b).unwrap();
        assert_eq!((i.kind.as_str(), i.label.as_deref(), i.uuid.as_deref()), ("vfat", Some("ESP"), Some("1234-ABCD")));
    }
}
