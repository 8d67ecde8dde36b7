//! Reading a disk's partition table (GPT through the `gpt` crate, MBR by hand).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use anyhow::{Context, Result};

/// A partition as the table describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePartition {
    /// GPT entry index (1-based) or MBR slot (1–4).
    pub number: u32,
    pub start_bytes: u64,
    pub size_bytes: u64,
    pub type_id: String,
    pub type_name: String,
    pub label: Option<String>,
    pub part_uuid: Option<String>,
}

/// What [`read_table`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTable {
    /// `gpt`, `mbr` or `none`.
    pub kind: &'static str,
    pub disk_guid: Option<String>,
    pub partitions: Vec<TablePartition>,
}

/// Human name of a GPT partition type GUID (lowercase text form).
pub fn gpt_type_name(guid: &str) -> &'static str {
    match guid.to_ascii_lowercase().as_str() {
        "c12a7328-f81f-11d2-ba4b-00a0c93ec93b" => "EFI System",
        "21686148-6449-6e6f-744e-656564454649" => "BIOS boot",
        "0fc63daf-8483-4772-8e79-3d69d8477de4" => "Linux filesystem",
        "4f68bce3-e8cd-4db1-96e7-fbcaf984b709" => "Linux root (x86-64)",
        "44479540-f297-41b2-9af7-d131d5f0458a" => "Linux root (x86)",
        "933ac7e1-2eb4-4f13-b844-0e14e2aef915" => "Linux home",
        "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f" => "Linux swap",
        "e6d6d379-f507-44c2-a23c-238f2a3df928" => "Linux LVM",
        "a19d880f-05fc-4d3b-a006-743f0f84911e" => "Linux RAID",
        "ca7d7ccb-63ed-4c53-861c-1742536059cc" => "Linux LUKS",
        "bc13c2ff-59e6-4262-a352-b275fd6f7172" => "Linux extended boot",
        "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7" => "Microsoft basic data",
        "e3c9e316-0b5c-4db8-817d-f92df00215ae" => "Microsoft reserved",
        "de94bba4-06d1-4d40-a16a-bfd50179d6ac" => "Windows recovery",
        _ => "unknown",
    }
}

fn mbr_type_name(t: u8) -> &'static str {
    match t {
        0x01 | 0x04 | 0x06 | 0x0b | 0x0c | 0x0e => "FAT",
        0x07 => "NTFS/exFAT",
        0x05 | 0x0f | 0x85 => "Extended",
        0x82 => "Linux swap",
        0x83 => "Linux",
        0x8e => "Linux LVM",
        0xef => "EFI System",
        0xee => "GPT protective",
        _ => "unknown",
    }
}

fn read_at<D: Read + Seek>(f: &mut D, off: u64, buf: &mut [u8]) -> std::io::Result<()> {
    f.seek(SeekFrom::Start(off))?;
    f.read_exact(buf)
}

/// The most GPT entries read (the usual count is 128).
const MAX_GPT_ENTRIES: u32 = 65536;

/// Refuse the entry arrays the `gpt` crate cannot read safely, before it reads them: it
/// asserts (panics) on entries of another size than 128 bytes (found by fuzzing) and reads
/// as many entries as the header names (2^32 - 1 would be 512 GiB of reads). The header it
/// will use is the primary when that passes its CRC, else the backup on the last LBA.
fn check_entry_array<D: Read + Seek>(dev: &mut D, lb: gpt::disk::LogicalBlockSize) -> Result<()> {
    let (entries, size) = match gpt::header::read_header_from_arbitrary_device(dev, lb) {
        Ok(h) => (h.num_parts, h.part_size),
        Err(_) => {
            let lbs: u64 = lb.into();
            let end = dev.seek(SeekFrom::End(0))?;
            let mut h = [0u8; 92];
            if end < 3 * lbs || read_at(dev, end / lbs * lbs - lbs, &mut h).is_err() || &h[0..8] != b"EFI PART" {
                return Ok(()); // no backup either: the gpt crate reports that itself
            }
            let le32 = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().expect("4 bytes"));
            (le32(80), le32(84))
        }
    };
    anyhow::ensure!(size == 128, "GPT entries of {size} bytes are not supported (only 128)");
    anyhow::ensure!(entries <= MAX_GPT_ENTRIES, "GPT header names {entries} entries, more than {MAX_GPT_ENTRIES}");
    Ok(())
}

/// Read the partition table of the disk open in `f` (`logical` = its logical sector size).
pub fn read_table(f: &mut File, logical: u32, size: u64) -> Result<PartitionTable> {
    parse_table(f.try_clone()?, logical, size)
}

/// [`read_table`] on any device (an image in memory, for tests and fuzzing); `dev` is only
/// read, never written.
pub fn parse_table<D: gpt::DiskDevice>(mut dev: D, logical: u32, size: u64) -> Result<PartitionTable> {
    let f = &mut dev;
    let mut lba0 = [0u8; 512];
    read_at(f, 0, &mut lba0).context("reading sector 0")?;
    let mut hdr = [0u8; 8];
    read_at(f, logical as u64, &mut hdr).context("reading sector 1")?;
    let protective = lba0[510..512] == [0x55, 0xAA] && (0..4).any(|i| lba0[446 + 16 * i + 4] == 0xEE);
    if &hdr == b"EFI PART" || protective {
        let lb = gpt::disk::LogicalBlockSize::try_from(logical as u64).map_err(|e| anyhow::anyhow!("sector size {logical}: {e}"))?;
        check_entry_array(f, lb)?;
        let disk = gpt::GptConfig::new().writable(false).logical_block_size(lb).open_from_device(dev).context("reading the GPT")?;
        let mut partitions = Vec::new();
        for (n, p) in disk.partitions() {
            if !p.is_used() {
                continue;
            }
            // An entry whose bytes do not fit the disk (or a u64) is no partition to list or
            // probe; `sysclone_layout::check_table` says what is wrong (found by fuzzing:
            // the multiplication overflowed).
            let lbs = logical as u64;
            let range = p.first_lba.checked_mul(lbs).zip(p.last_lba.checked_add(1).and_then(|e| e.checked_mul(lbs)));
            let Some((start_bytes, end_bytes)) = range.filter(|&(s, e)| s < e && e <= size) else { continue };
            let type_id = p.part_type_guid.guid.to_string();
            partitions.push(TablePartition {
                number: *n,
                start_bytes,
                size_bytes: end_bytes - start_bytes,
                type_name: gpt_type_name(&type_id).to_string(),
                type_id,
                label: (!p.name.is_empty()).then(|| p.name.clone()),
                part_uuid: Some(p.part_guid.to_string()),
            });
        }
        return Ok(PartitionTable { kind: "gpt", disk_guid: Some(disk.guid().to_string()), partitions });
    }
    if lba0[510..512] == [0x55, 0xAA] {
        let sig = u32::from_le_bytes(lba0[440..444].try_into().expect("4 bytes"));
        let mut partitions = Vec::new();
        for i in 0..4 {
            let e = &lba0[446 + 16 * i..446 + 16 * (i + 1)];
            let t = e[4];
            let start = u32::from_le_bytes(e[8..12].try_into().expect("4 bytes")) as u64;
            let len = u32::from_le_bytes(e[12..16].try_into().expect("4 bytes")) as u64;
            if t == 0 || len == 0 || e[0] & 0x7f != 0 {
                continue;
            }
            if (start + len) * logical as u64 > size {
                continue;
            }
            partitions.push(TablePartition {
                number: i as u32 + 1,
                start_bytes: start * logical as u64,
                size_bytes: len * logical as u64,
                type_id: format!("0x{t:02x}"),
                type_name: mbr_type_name(t).to_string(),
                label: None,
                part_uuid: Some(format!("{sig:08x}-{:02}", i + 1)),
            });
        }
        if !partitions.is_empty() {
            return Ok(PartitionTable { kind: "mbr", disk_guid: Some(format!("{sig:08x}")), partitions });
        }
    }
    Ok(PartitionTable { kind: "none", disk_guid: None, partitions: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    /// Found by fuzzing (fuzz/fuzz_targets/partition_table.rs): an entry's first LBA times
    /// the sector size overflowed. Entries that do not fit the disk are not listed.
    /// Found by fuzzing: the gpt crate asserts (panics) on an entry size other than 128,
    /// and would read 2^32-1 entries if a header said so. Both are errors, before it reads.
    #[test]
    fn unusual_entry_arrays_are_errors_not_panics() {
        let good = two_partitions();
        for (field, val, says) in [(84, 256u32, "entries of 256 bytes"), (80, u32::MAX, "more than 65536")] {
            // Primary only (the crate takes it, its CRC is right), then the backup only (the
            // crate falls back to it when the primary is damaged).
            for backup in [false, true] {
                let mut b = good.clone();
                let ho = if backup { b.len() - 512 } else { 512 };
                b[ho + field..ho + field + 4].copy_from_slice(&val.to_le_bytes());
                b[ho + 16..ho + 20].fill(0);
                let crc = sysclone_testutil::crc32(&b[ho..ho + 92]);
                b[ho + 16..ho + 20].copy_from_slice(&crc.to_le_bytes());
                if backup {
                    b[512 + 16] ^= 1; // primary CRC broken
                }
                let e = parse_table(Cursor::new(b), 512, good.len() as u64).unwrap_err();
                assert!(format!("{e:#}").contains(says), "{e:#}");
            }
        }
    }

    fn two_partitions() -> Vec<u8> {
        let bytes = 4u64 << 20;
        let mut img = Cursor::new(vec![0u8; bytes as usize]);
        gpt::mbr::ProtectiveMBR::with_lb_size((bytes / 512 - 1) as u32).overwrite_lba0(&mut img).unwrap();
        let mut d = gpt::GptConfig::new().writable(true).logical_block_size(gpt::disk::LogicalBlockSize::Lb512).create_from_device(img, None).unwrap();
        d.add_partition("a", 1 << 20, gpt::partition_types::LINUX_FS, 0, None).unwrap();
        d.add_partition("b", 1 << 20, gpt::partition_types::LINUX_FS, 0, None).unwrap();
        let mut img = d.write().unwrap();
        img.flush().unwrap();
        img.into_inner()
    }

    #[test]
    fn entries_beyond_the_disk_or_u64_are_not_listed() {
        let bytes = 4u64 << 20;
        let good = two_partitions();
        assert_eq!(parse_table(Cursor::new(good.clone()), 512, bytes).unwrap().partitions.len(), 2);
        for (field, val) in [(32, 1u64 << 62), (40, u64::MAX), (40, bytes / 512 + 100)] {
            let mut b = good.clone();
            sysclone_testutil::patch_gpt_entry(&mut b, true, true, 1, field, val);
            let t = parse_table(Cursor::new(b), 512, bytes).unwrap();
            assert_eq!(t.partitions.len(), 1, "entry 2 with field {field} = {val}: {t:?}");
            assert!(t.partitions.iter().all(|p| p.start_bytes + p.size_bytes <= bytes));
        }
    }
}
