//! GPT headers and entry arrays at the byte level (UEFI spec, "GUID Partition Table").

use std::io::{Read, Seek, SeekFrom};

use anyhow::{bail, ensure, Context, Result};

/// The fields of a GPT header that matter for moving it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptHeader {
    pub header_size: u32,
    pub current_lba: u64,
    pub backup_lba: u64,
    pub first_usable: u64,
    pub last_usable: u64,
    pub disk_guid: [u8; 16],
    pub entries_lba: u64,
    pub num_entries: u32,
    pub entry_size: u32,
    pub entries_crc: u32,
}

/// A primary header with its (CRC-checked) entry array, as read from a disk.
#[derive(Debug, Clone)]
pub struct RawGpt {
    pub logical_sector: u32,
    /// The header sector exactly as on disk.
    pub header_sector: Vec<u8>,
    pub header: GptHeader,
    pub entries: Vec<u8>,
}

/// New primary and backup structures for a target of another size.
#[derive(Debug, Clone)]
pub struct RelocatedGpt {
    pub logical_sector: u32,
    /// Primary header sector (goes to LBA 1).
    pub primary_header: Vec<u8>,
    /// The entry array (unchanged), for LBA `entries_lba` and the backup array.
    pub entries: Vec<u8>,
    pub primary_entries_lba: u64,
    pub backup_entries_lba: u64,
    pub backup_header_lba: u64,
    pub backup_header: Vec<u8>,
}

impl RelocatedGpt {
    /// Byte offset just past the primary structures (MBR, header, entry array).
    pub fn primary_end_bytes(&self) -> u64 {
        (self.primary_entries_lba * self.logical_sector as u64) + self.entries.len() as u64
    }

    /// Fit a copy of the source's head (sector 0 up to [`Self::primary_end_bytes`]) to the
    /// target of `target_bytes`: protective MBR resized, primary header and entries put in.
    pub fn apply_to_head(&self, head: &mut [u8], target_bytes: u64) {
        let lbs = self.logical_sector as usize;
        patch_protective_mbr(&mut head[..lbs], target_bytes, self.logical_sector);
        head[lbs..2 * lbs].copy_from_slice(&self.primary_header);
        let e = self.primary_entries_lba as usize * lbs;
        head[e..e + self.entries.len()].copy_from_slice(&self.entries);
    }
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// The largest GPT entry array read (a hostile header could otherwise ask for 256 MiB).
pub const MAX_ENTRY_ARRAY_BYTES: u64 = 4 << 20;

/// Parse and CRC-check a header sector.
pub fn parse_header(sector: &[u8]) -> Result<GptHeader> {
    ensure!(sector.len() >= 92, "GPT header sector too short");
    ensure!(&sector[0..8] == b"EFI PART", "no GPT signature");
    let header_size = u32_at(sector, 12);
    ensure!((92..=sector.len() as u32).contains(&header_size), "GPT header size {header_size} is invalid");
    let mut h = sector[..header_size as usize].to_vec();
    h[16..20].fill(0);
    let crc = crc32fast::hash(&h);
    ensure!(crc == u32_at(sector, 16), "GPT header CRC mismatch (stored {:08x}, computed {crc:08x})", u32_at(sector, 16));
    let entry_size = u32_at(sector, 84);
    let num_entries = u32_at(sector, 80);
    ensure!(entry_size >= 128 && entry_size % 8 == 0 && entry_size <= 4096, "GPT entry size {entry_size} is invalid");
    ensure!(num_entries > 0 && num_entries <= 65536, "GPT entry count {num_entries} is invalid");
    // Bounded before anything is allocated from it (128 entries of 128 bytes is usual).
    ensure!(num_entries as u64 * entry_size as u64 <= MAX_ENTRY_ARRAY_BYTES, "GPT entry array of {num_entries} x {entry_size} bytes is larger than {MAX_ENTRY_ARRAY_BYTES}");
    Ok(GptHeader {
        header_size,
        current_lba: u64_at(sector, 24),
        backup_lba: u64_at(sector, 32),
        first_usable: u64_at(sector, 40),
        last_usable: u64_at(sector, 48),
        disk_guid: sector[56..72].try_into().expect("16 bytes"),
        entries_lba: u64_at(sector, 72),
        num_entries,
        entry_size,
        entries_crc: u32_at(sector, 88),
    })
}

/// Read the primary GPT of a disk. `Ok(None)` when LBA 1 has no GPT signature.
pub fn read_gpt<R: Read + Seek>(dev: &mut R, logical_sector: u32, disk_bytes: u64) -> Result<Option<RawGpt>> {
    let lbs = logical_sector as u64;
    let mut sector = vec![0u8; logical_sector as usize];
    dev.seek(SeekFrom::Start(lbs))?;
    dev.read_exact(&mut sector).context("reading the GPT header at LBA 1")?;
    if &sector[0..8] != b"EFI PART" {
        return Ok(None);
    }
    let header = parse_header(&sector).context("primary GPT header")?;
    let lbas = disk_bytes / lbs;
    ensure!(header.current_lba == 1, "primary GPT header says it is at LBA {}", header.current_lba);
    let array_bytes = header.num_entries as u64 * header.entry_size as u64;
    let array_end = header.entries_lba.checked_mul(lbs).and_then(|b| b.checked_add(array_bytes));
    ensure!(header.entries_lba >= 2 && array_end.is_some_and(|e| Some(e) <= header.first_usable.checked_mul(lbs)), "GPT entry array (LBA {}) overlaps usable space", header.entries_lba);
    ensure!(header.first_usable <= header.last_usable && header.last_usable < lbas, "GPT usable range {}..{} does not fit the disk ({lbas} sectors)", header.first_usable, header.last_usable);
    let mut entries = vec![0u8; array_bytes as usize];
    dev.seek(SeekFrom::Start(header.entries_lba * lbs))?;
    dev.read_exact(&mut entries).context("reading the GPT entry array")?;
    ensure!(crc32fast::hash(&entries) == header.entries_crc, "GPT entry array CRC mismatch");
    // Every used entry must sit inside the usable range.
    for (i, e) in entries.chunks(header.entry_size as usize).enumerate() {
        if e[0..16].iter().all(|&b| b == 0) {
            continue;
        }
        let (first, last) = (u64_at(e, 32), u64_at(e, 40));
        if first < header.first_usable || last > header.last_usable || first > last {
            bail!("GPT entry {} spans LBA {first}..{last}, outside the usable range {}..{}", i + 1, header.first_usable, header.last_usable);
        }
    }
    Ok(Some(RawGpt { logical_sector, header_sector: sector, header, entries }))
}

/// What is wrong with a disk's GPT, in words (empty: nothing, or no GPT at all): a primary
/// that does not parse, partitions beyond the disk or its usable range, overlapping
/// partitions, a backup header or array that is missing, damaged or differs from the
/// primary. Reads only; never fails (a failing read is itself reported).
pub fn check_table<R: Read + Seek>(dev: &mut R, logical_sector: u32, disk_bytes: u64) -> Vec<String> {
    let lbs = logical_sector as u64;
    let mut problems = Vec::new();
    let primary = match read_gpt(dev, logical_sector, disk_bytes) {
        Ok(Some(g)) => g,
        Ok(None) => return problems,
        Err(e) => {
            problems.push(format!("primary GPT: {e:#}"));
            return problems;
        }
    };
    let h = &primary.header;
    let mut used: Vec<(u64, u64, usize)> = primary
        .entries
        .chunks(h.entry_size as usize)
        .enumerate()
        .filter(|(_, e)| e[0..16].iter().any(|&b| b != 0))
        .map(|(i, e)| (u64_at(e, 32), u64_at(e, 40), i + 1))
        .collect();
    used.sort();
    for w in used.windows(2) {
        if w[1].0 <= w[0].1 {
            problems.push(format!("partitions {} and {} overlap (LBA {}..{} and {}..{})", w[0].2, w[1].2, w[0].0, w[0].1, w[1].0, w[1].1));
        }
    }
    let lbas = disk_bytes / lbs;
    let backup_lba = if h.backup_lba < lbas { h.backup_lba } else { lbas.saturating_sub(1) };
    if h.backup_lba != lbas.saturating_sub(1) {
        problems.push(format!("the primary header puts the backup at LBA {}, not on the last LBA ({})", h.backup_lba, lbas.saturating_sub(1)));
    }
    let mut sector = vec![0u8; logical_sector as usize];
    let read = dev.seek(SeekFrom::Start(backup_lba * lbs)).and_then(|_| dev.read_exact(&mut sector));
    let backup = match read {
        Err(e) => return [problems, vec![format!("backup GPT header at LBA {backup_lba} cannot be read ({e})")]].concat(),
        Ok(()) if &sector[0..8] != b"EFI PART" => return [problems, vec![format!("no backup GPT header at LBA {backup_lba}")]].concat(),
        Ok(()) => match parse_header(&sector) {
            Ok(b) => b,
            Err(e) => return [problems, vec![format!("backup GPT header: {e:#}")]].concat(),
        },
    };
    if (backup.first_usable, backup.last_usable, backup.disk_guid, backup.num_entries, backup.entry_size, backup.current_lba)
        != (h.first_usable, h.last_usable, h.disk_guid, h.num_entries, h.entry_size, backup_lba)
    {
        problems.push("the backup GPT header differs from the primary".to_string());
    }
    let array_bytes = backup.num_entries as u64 * backup.entry_size as u64;
    let mut entries = vec![0u8; array_bytes as usize];
    let in_disk = backup.entries_lba.checked_mul(lbs).and_then(|o| o.checked_add(array_bytes)).is_some_and(|e| e <= disk_bytes);
    if !in_disk || dev.seek(SeekFrom::Start(backup.entries_lba * lbs)).and_then(|_| dev.read_exact(&mut entries)).is_err() {
        problems.push(format!("the backup GPT entry array (LBA {}) cannot be read", backup.entries_lba));
    } else if crc32fast::hash(&entries) != backup.entries_crc {
        problems.push("the backup GPT entry array fails its CRC".to_string());
    } else if entries != primary.entries {
        problems.push("the backup GPT entries differ from the primary's".to_string());
    }
    problems
}

pub(crate) fn finish_header(mut sector: Vec<u8>, header_size: u32) -> Vec<u8> {
    sector[16..20].fill(0);
    let crc = crc32fast::hash(&sector[..header_size as usize]);
    sector[16..20].copy_from_slice(&crc.to_le_bytes());
    sector
}

impl RawGpt {
    /// The last LBA any partition uses.
    pub fn last_used_lba(&self) -> u64 {
        self.entries
            .chunks(self.header.entry_size as usize)
            .filter(|e| e[0..16].iter().any(|&b| b != 0))
            .map(|e| u64_at(e, 40))
            .max()
            .unwrap_or(0)
    }

    /// Headers for the same entries on a disk of `target_bytes`: backup header on the last
    /// LBA, backup array just before it, usable range extended to meet it.
    pub fn relocate(&self, target_bytes: u64) -> Result<RelocatedGpt> {
        let lbs = self.logical_sector as u64;
        let h = &self.header;
        let lbas = target_bytes / lbs;
        let array_sectors = (self.entries.len() as u64).div_ceil(lbs);
        ensure!(lbas > h.first_usable + 2 * array_sectors + 2, "target of {target_bytes} bytes is too small for a GPT");
        let backup_header_lba = lbas - 1;
        let backup_entries_lba = backup_header_lba - array_sectors;
        let last_usable = backup_entries_lba - 1;
        ensure!(
            last_usable >= self.last_used_lba(),
            "partitions reach LBA {} but the target's last usable LBA would be {last_usable}",
            self.last_used_lba()
        );
        let mut primary = self.header_sector.clone();
        primary[32..40].copy_from_slice(&backup_header_lba.to_le_bytes());
        primary[48..56].copy_from_slice(&last_usable.to_le_bytes());
        let mut backup = primary.clone();
        backup[24..32].copy_from_slice(&backup_header_lba.to_le_bytes());
        backup[32..40].copy_from_slice(&1u64.to_le_bytes());
        backup[72..80].copy_from_slice(&backup_entries_lba.to_le_bytes());
        Ok(RelocatedGpt {
            logical_sector: self.logical_sector,
            primary_header: finish_header(primary, h.header_size),
            entries: self.entries.clone(),
            primary_entries_lba: h.entries_lba,
            backup_entries_lba,
            backup_header_lba,
            backup_header: finish_header(backup, h.header_size),
        })
    }
}

/// Fix the size of the protective (0xEE) MBR entry in a copy of LBA 0 for a disk of
/// `target_bytes`. Other MBRs (hybrid or plain) are left alone.
pub fn patch_protective_mbr(lba0: &mut [u8], target_bytes: u64, logical_sector: u32) {
    if lba0.len() < 512 || lba0[510..512] != [0x55, 0xAA] {
        return;
    }
    let lbas = target_bytes / logical_sector as u64;
    for i in 0..4 {
        let e = 446 + 16 * i;
        if lba0[e + 4] == 0xEE && u32_at(lba0, e + 8) == 1 {
            let len = (lbas - 1).min(0xFFFF_FFFF) as u32;
            lba0[e + 12..e + 16].copy_from_slice(&len.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    /// A GPT disk image made by the `gpt` crate, independent of this module.
    fn make_disk(bytes: u64, lbs: u32) -> Vec<u8> {
        let mut img = Cursor::new(vec![0u8; bytes as usize]);
        let lb = gpt::disk::LogicalBlockSize::try_from(lbs as u64).unwrap();
        let mbr = gpt::mbr::ProtectiveMBR::with_lb_size(((bytes / lbs as u64) - 1) as u32);
        mbr.overwrite_lba0(&mut img).unwrap();
        let mut disk = gpt::GptConfig::new().writable(true).logical_block_size(lb).create_from_device(img, None).unwrap();
        disk.add_partition("ESP", 1 << 20, gpt::partition_types::EFI, 0, Some(2048 * 512 / lbs as u64)).unwrap();
        disk.add_partition("root", 2 << 20, gpt::partition_types::LINUX_FS, 0, None).unwrap();
        let mut img = disk.write().unwrap();
        img.flush().unwrap();
        img.into_inner()
    }

    fn relocate_and_check(lbs: u32) {
        let src = make_disk(8 << 20, lbs);
        let g = read_gpt(&mut Cursor::new(&src), lbs, src.len() as u64).unwrap().unwrap();
        let target_bytes: u64 = 16 << 20;
        let r = g.relocate(target_bytes).unwrap();
        // Assemble the target as the clone engine would and read it back with the gpt crate.
        let mut tgt = vec![0u8; target_bytes as usize];
        tgt[..src.len()].copy_from_slice(&src);
        let l = lbs as usize;
        patch_protective_mbr(&mut tgt[..512], target_bytes, lbs);
        tgt[l..2 * l].copy_from_slice(&r.primary_header);
        let be = r.backup_entries_lba as usize * l;
        tgt[be..be + r.entries.len()].copy_from_slice(&r.entries);
        let bh = r.backup_header_lba as usize * l;
        tgt[bh..bh + l].copy_from_slice(&r.backup_header);
        let lb = gpt::disk::LogicalBlockSize::try_from(lbs as u64).unwrap();
        let disk = gpt::GptConfig::new().writable(false).only_valid_headers(true).logical_block_size(lb).open_from_device(Cursor::new(tgt.clone())).unwrap();
        assert_eq!(disk.primary_header().unwrap().backup_lba, target_bytes / lbs as u64 - 1);
        assert_eq!(disk.backup_header().unwrap().current_lba, target_bytes / lbs as u64 - 1);
        assert_eq!(disk.partitions().len(), 2);
        // Entries are byte-identical.
        let again = read_gpt(&mut Cursor::new(&tgt), lbs, target_bytes).unwrap().unwrap();
        assert_eq!(again.entries, g.entries);
        assert_eq!(u32_at(&tgt, 446 + 12) as u64, target_bytes / lbs as u64 - 1);
    }

    #[test]
    fn relocates_512() {
        relocate_and_check(512);
    }

    #[test]
    fn relocates_4096() {
        relocate_and_check(4096);
    }

    #[test]
    fn refuses_damaged_tables() {
        let mut src = make_disk(8 << 20, 512);
        src[512 + 40] ^= 1; // first_usable changes: header CRC no longer matches
        let e = read_gpt(&mut Cursor::new(&src), 512, src.len() as u64).unwrap_err();
        assert!(format!("{e:#}").contains("CRC"), "{e:#}");
        let mut src = make_disk(8 << 20, 512);
        src[1024 + 200] ^= 1; // entry array damaged
        assert!(read_gpt(&mut Cursor::new(&src), 512, src.len() as u64).is_err());
        let plain = vec![0u8; 1 << 20];
        assert!(read_gpt(&mut Cursor::new(&plain), 512, plain.len() as u64).unwrap().is_none());
    }

    #[test]
    fn refuses_target_smaller_than_partitions() {
        let src = make_disk(8 << 20, 512);
        let g = read_gpt(&mut Cursor::new(&src), 512, src.len() as u64).unwrap().unwrap();
        assert!(g.relocate(3 << 20).is_err());
    }

    #[test]
    fn check_table_names_each_problem() {
        let good = make_disk(8 << 20, 512);
        let n = good.len() as u64;
        assert_eq!(check_table(&mut Cursor::new(&good), 512, n), Vec::<String>::new());
        assert!(check_table(&mut Cursor::new(vec![0u8; 1 << 20]), 512, 1 << 20).is_empty());

        let mut overlap = good.clone();
        sysclone_testutil::patch_gpt_entry(&mut overlap, true, true, 1, 32, 2100); // partition 2 starts inside 1
        let p = check_table(&mut Cursor::new(&overlap), 512, n);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("partitions 1 and 2 overlap"), "{p:?}");

        let mut beyond = good.clone();
        sysclone_testutil::patch_gpt_entry(&mut beyond, true, true, 1, 40, n / 512 * 2);
        let p = check_table(&mut Cursor::new(&beyond), 512, n);
        assert!(p.len() == 1 && p[0].contains("outside the usable range"), "{p:?}");

        let mut mismatch = good.clone();
        sysclone_testutil::patch_gpt_entry(&mut mismatch, false, true, 1, 40, 9000);
        let p = check_table(&mut Cursor::new(&mismatch), 512, n);
        assert_eq!(p, vec!["the backup GPT entries differ from the primary's".to_string()]);

        let mut no_backup = good.clone();
        let l = no_backup.len();
        no_backup[l - 512..].fill(0);
        let p = check_table(&mut Cursor::new(&no_backup), 512, n);
        assert!(p.len() == 1 && p[0].contains("no backup GPT header"), "{p:?}");

        // Truncated disk: the backup the header names lies beyond the end.
        let p = check_table(&mut Cursor::new(&good[..(4 << 20)]), 512, 4 << 20);
        assert!(!p.is_empty(), "{p:?}");
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678u64;
        let base = make_disk(8 << 20, 512)[..17408].to_vec();
        for _ in 0..2000 {
            let mut s = base.clone();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let pos = 512 + (seed as usize % 92);
            s[pos] = (seed >> 32) as u8;
            let _ = parse_header(&s[512..1024]);
            let mut c = Cursor::new(s);
            let _ = read_gpt(&mut c, 512, 1 << 20);
        }
    }
}
