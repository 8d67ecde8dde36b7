//! Which filesystem a partition holds, by its magic numbers. The names and the order of
//! the checks are those of `sysclone_disk::probe` (the integration tests compare the two on
//! real images); kept here so that hostile fields never reach code outside this crate's
//! validation.

/// How many bytes of the partition [`identify`] looks at (the btrfs superblock at 64 KiB
/// and a 64 KiB swap page end below this).
pub(crate) const HEAD: usize = 70 * 1024;

fn has(b: &[u8], o: usize, magic: &[u8]) -> bool {
    b.get(o..o + magic.len()) == Some(magic)
}

fn le32(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]])).unwrap_or(0)
}

/// `crypto_LUKS`, `LVM2_member`, `xfs`, `btrfs`, `ext2`/`ext3`/`ext4`, `ntfs`, `vfat`,
/// `swap`, or `unknown`.
pub(crate) fn identify(b: &[u8]) -> &'static str {
    if has(b, 0, b"LUKS\xba\xbe") {
        return "crypto_LUKS";
    }
    if has(b, 512, b"LABELONE") && has(b, 512 + 24, b"LVM2 001") {
        return "LVM2_member";
    }
    if has(b, 0, b"XFSB") {
        return "xfs";
    }
    if has(b, 65536 + 64, b"_BHRfS_M") {
        return "btrfs";
    }
    if has(b, 1024 + 56, &0xEF53u16.to_le_bytes()) {
        let (compat, incompat, ro) = (le32(b, 1024 + 0x5C), le32(b, 1024 + 0x60), le32(b, 1024 + 0x64));
        // extents, 64bit or flex_bg; huge_file, dir_nlink or extra_isize: ext4.
        return if incompat & (0x40 | 0x80 | 0x200) != 0 || ro & (0x8 | 0x20 | 0x40) != 0 {
            "ext4"
        } else if compat & 0x4 != 0 {
            "ext3"
        } else {
            "ext2"
        };
    }
    if has(b, 3, b"NTFS    ") {
        return "ntfs";
    }
    if has(b, 510, b"\x55\xAA") && (has(b, 82, b"FAT32   ") || has(b, 54, b"FAT1")) {
        return "vfat";
    }
    for page in [4096usize, 8192, 16384, 65536] {
        if has(b, page - 10, b"SWAPSPACE2") || has(b, page - 10, b"SWAP-SPACE") {
            return "swap";
        }
    }
    "unknown"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics() {
        assert_eq!(identify(&[]), "unknown");
        assert_eq!(identify(&[0xff; 5000]), "unknown");
        let mut b = vec![0u8; HEAD];
        b[1024 + 56] = 0x53;
        b[1024 + 57] = 0xEF;
        assert_eq!(identify(&b), "ext2");
        b[1024 + 0x5C] = 4;
        assert_eq!(identify(&b), "ext3");
        b[1024 + 0x60] = 0x40;
        assert_eq!(identify(&b), "ext4");
        let mut b = vec![0u8; 1024];
        b[54..58].copy_from_slice(b"FAT1");
        assert_eq!(identify(&b), "unknown");
        b[510] = 0x55;
        b[511] = 0xAA;
        assert_eq!(identify(&b), "vfat");
        let mut b = vec![0u8; 8192];
        b[8182..].copy_from_slice(b"SWAPSPACE2");
        assert_eq!(identify(&b), "swap");
    }
}
