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
    /// Bytes in use, where the superblock says so cheaply (ext2/3/4, XFS, btrfs, FAT32).
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

fn le64(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}
fn be32(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn be64(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

/// FAT32 bytes in use: every cluster less the FSInfo sector's free count (when it has one).
fn fat32_used(b: &[u8]) -> Option<u64> {
    let sector = le16(b, 11)? as u64;
    let per_cluster = *b.get(13)? as u64;
    let (reserved, fats) = (le16(b, 14)? as u64, *b.get(16)? as u64);
    let total = match le16(b, 19)? { 0 => le32(b, 32)? as u64, n => n as u64 };
    let fat_size = le32(b, 36)? as u64;
    if !sector.is_power_of_two() || sector < 512 || per_cluster == 0 {
        return None;
    }
    let clusters = total.checked_sub(reserved + fats * fat_size)? / per_cluster;
    let fsinfo = (le16(b, 48)? as u64 * sector) as usize;
    if !has(b, fsinfo, b"RRaA") || !has(b, fsinfo + 484, b"rrAa") {
        return None;
    }
    let free = le32(b, fsinfo + 488)? as u64;
    clusters.checked_sub(free).map(|u| u * per_cluster * sector)
}

/// Identify the filesystem in `b` (the first [`PROBE_BYTES`] of a partition, or fewer).
pub fn probe(b: &[u8]) -> Option<FsInfo> {
    let fs = |kind: &str, label, uuid| Some(FsInfo { kind: kind.into(), label, uuid, used_bytes: None });
    if has(b, 0, b"LUKS\xba\xbe") {
        // LUKS1 and LUKS2 keep the UUID at 168; only LUKS2 has a label (at 24).
        let label = if b.get(6..8) == Some(&[0, 2]) { b.get(24..72).and_then(text) } else { None };
        return fs("crypto_LUKS", label, b.get(168..208).and_then(text));
    }
    // An LVM physical volume's label is in one of the first four sectors.
    if let Some(l) = (0..4).map(|s| s * 512).find(|&o| has(b, o, b"LABELONE") && has(b, o + 24, b"LVM2 001")) {
        // The PV UUID is 32 characters, shown (as LVM and blkid do) in groups 6-4-4-4-4-4-6.
        let uuid = b.get(l + 32..l + 64).and_then(text).map(|u| {
            let mut out = String::new();
            for (i, c) in u.chars().enumerate() {
                if [6, 10, 14, 18, 22, 26].contains(&i) {
                    out.push('-');
                }
                out.push(c);
            }
            out
        });
        return fs("LVM2_member", None, uuid);
    }
    if has(b, 0, b"XFSB") {
        let mut info = fs("xfs", b.get(108..120).and_then(text), b.get(32..48).map(uuid_text))?;
        // Data blocks less free blocks (as of the last unmount or mkfs), times the block size.
        let (bsize, dblocks, free) = (be32(b, 4).unwrap_or(0) as u64, be64(b, 8).unwrap_or(0), be64(b, 144).unwrap_or(u64::MAX));
        info.used_bytes = dblocks.checked_sub(free).and_then(|u| u.checked_mul(bsize)).filter(|_| bsize.is_power_of_two());
        return Some(info);
    }
    if has(b, 65536 + 64, b"_BHRfS_M") {
        let sb = 65536;
        let mut info = fs("btrfs", b.get(sb + 299..sb + 299 + 256).and_then(text), b.get(sb + 32..sb + 48).map(uuid_text))?;
        info.used_bytes = le64(b, sb + 0x78);
        return Some(info);
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
            let mut info = fs("vfat", b.get(71..82).and_then(text).filter(|l| l != "NO NAME"), serial(67))?;
            info.used_bytes = fat32_used(b);
            return Some(info);
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
    fn luks_headers() {
        let mut b = vec![0u8; 4096];
        b[..6].copy_from_slice(b"LUKS\xba\xbe");
        b[6..8].copy_from_slice(&1u16.to_be_bytes());
        b[8..11].copy_from_slice(b"aes");
        let uuid = b"0f3b9c1e-2d4a-4b5c-8d6e-7f8091a2b3c4";
        b[168..168 + uuid.len()].copy_from_slice(uuid);
        let i = probe(&b).unwrap();
        assert_eq!((i.kind.as_str(), i.label, i.uuid.as_deref()), ("crypto_LUKS", None, Some("0f3b9c1e-2d4a-4b5c-8d6e-7f8091a2b3c4")));
        // LUKS2: the same magic and UUID place, and a label.
        b[6..8].copy_from_slice(&2u16.to_be_bytes());
        b[8..11].fill(0);
        b[24..30].copy_from_slice(b"vault1");
        let i = probe(&b).unwrap();
        assert_eq!((i.kind.as_str(), i.label.as_deref(), i.uuid.as_deref()), ("crypto_LUKS", Some("vault1"), Some("0f3b9c1e-2d4a-4b5c-8d6e-7f8091a2b3c4")));
        // The magic elsewhere is not LUKS.
        let mut c = vec![0u8; 4096];
        c[1..7].copy_from_slice(b"LUKS\xba\xbe");
        assert_eq!(probe(&c), None);
    }

    #[test]
    fn lvm_physical_volume_label() {
        let pv_uuid = b"Vx3kQ2abcdEFGHijklMNOPqrstUVwx12";
        for sector in [1usize, 2] {
            let mut b = vec![0u8; 8192];
            let o = sector * 512;
            b[o..o + 8].copy_from_slice(b"LABELONE");
            b[o + 8..o + 16].copy_from_slice(&(sector as u64).to_le_bytes());
            b[o + 20..o + 24].copy_from_slice(&32u32.to_le_bytes());
            b[o + 24..o + 32].copy_from_slice(b"LVM2 001");
            b[o + 32..o + 64].copy_from_slice(pv_uuid);
            let i = probe(&b).unwrap();
            assert_eq!((i.kind.as_str(), i.uuid.as_deref()), ("LVM2_member", Some("Vx3kQ2-abcd-EFGH-ijkl-MNOP-qrst-UVwx12")), "label in sector {sector}");
        }
        // LABELONE without the LVM type is something else.
        let mut b = vec![0u8; 8192];
        b[512..520].copy_from_slice(b"LABELONE");
        assert_eq!(probe(&b), None);
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
