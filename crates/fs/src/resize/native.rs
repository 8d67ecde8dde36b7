//! FAT32 and swap, resized here without tools (the device is opened exclusively, so the
//! kernel refuses while it is mounted or an active swap area).
//!
//! FAT32 grows in place when the existing FAT has entries to spare: the FAT is never moved
//! or enlarged, so the new cluster count is at most what the FAT's sectors can describe
//! (mkfs.fat sizes the FAT for a little more than it needs). The new entries are made free
//! (zero) in every FAT copy, the FSInfo free count is raised, and the total sector count is
//! written to the backup boot sector, then to the primary boot sector last: until that last
//! write the volume is its old self. FAT12/16 are left at their size. Clusters are never
//! removed; only sectors after the last cluster may be dropped.
//!
//! A swap area's content is scratch, so it is resized by writing a new header page: same
//! page size, byte order, UUID and label, the new last page, no bad pages (those were
//! numbered for the old device).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::{le, open_exclusive, read_full};

// ---------------------------------------------------------------------------------------
// FAT

/// The boot sector's geometry, validated.
#[derive(Debug, Clone, PartialEq)]
struct Bpb {
    bps: u64,
    spc: u64,
    rsvd: u64,
    nfats: u64,
    /// Sectors per FAT.
    fatsz: u64,
    tot: u64,
    data_sec: u64,
    clusters: u64,
    /// FAT32 layout (32-bit FAT size and sector count, no fixed root directory).
    fat32: bool,
    fsinfo: u64,
    bkboot: u64,
}

/// The most clusters FAT32 allows (entries 2..=0x0FFFFFF6).
const FAT32_MAX_CLUSTERS: u64 = 0x0FFF_FFF5;

fn parse_bpb(b: &[u8]) -> Result<Bpb> {
    if le(b, 510, 2)? != 0xAA55 {
        bail!("no boot sector signature");
    }
    let bps = le(b, 11, 2)?;
    if !matches!(bps, 512 | 1024 | 2048 | 4096) {
        bail!("bytes per sector {bps} is invalid");
    }
    let spc = le(b, 13, 1)?;
    if spc == 0 || !spc.is_power_of_two() {
        bail!("sectors per cluster {spc} is invalid");
    }
    let (rsvd, nfats, root_ent, tot16, fatsz16) = (le(b, 14, 2)?, le(b, 16, 1)?, le(b, 17, 2)?, le(b, 19, 2)?, le(b, 22, 2)?);
    let (tot32, fatsz32) = (le(b, 32, 4)?, le(b, 36, 4)?);
    let tot = if tot16 != 0 { tot16 } else { tot32 };
    let fatsz = if fatsz16 != 0 { fatsz16 } else { fatsz32 };
    if rsvd == 0 || nfats == 0 || nfats > 4 || fatsz == 0 || tot == 0 {
        bail!("reserved sectors, FAT count, FAT size or sector count is zero or out of range");
    }
    let data_sec = rsvd + nfats * fatsz + (root_ent * 32).div_ceil(bps);
    if data_sec >= tot {
        bail!("no room for data clusters");
    }
    let clusters = (tot - data_sec) / spc;
    let fat32 = fatsz16 == 0 && root_ent == 0 && tot16 == 0;
    if fat32 && (clusters + 2) * 4 > fatsz * bps {
        bail!("the FAT is too small for {clusters} clusters");
    }
    let (fsinfo, bkboot) = if fat32 { (le(b, 48, 2)?, le(b, 50, 2)?) } else { (0, 0) };
    Ok(Bpb { bps, spc, rsvd, nfats, fatsz, tot, data_sec, clusters, fat32, fsinfo, bkboot })
}

/// The new (total sectors, cluster count, whether the FAT limited the growth) for a request
/// of `new_size` bytes: as many clusters as both the request and the FAT allow, never fewer
/// than now.
fn plan_fat32(b: &Bpb, new_size: u64) -> Result<(u64, u64, bool)> {
    let want = (new_size / b.bps).min(u32::MAX as u64);
    let cand = want.saturating_sub(b.data_sec) / b.spc;
    let by_fat = (b.fatsz * b.bps / 4 - 2).min(FAT32_MAX_CLUSTERS);
    let n = cand.min(by_fat);
    if want <= b.data_sec || n < b.clusters {
        bail!("FAT cannot shrink: its {} clusters end at byte {}, {new_size} bytes were asked for", b.clusters, (b.data_sec + b.clusters * b.spc) * b.bps);
    }
    let tot = if n == cand { want } else { (b.data_sec + n * b.spc).max(b.tot.min(want)) };
    Ok((tot, n, n < cand))
}

/// FSInfo signatures: lead, structure, trail.
fn fsinfo_valid(s: &[u8]) -> bool {
    le(s, 0, 4).ok() == Some(0x4161_5252) && le(s, 484, 4).ok() == Some(0x6141_7272) && le(s, 508, 4).ok() == Some(0xAA55_0000)
}

/// Make FAT entries `[first, end)` free in every copy; returns how many were not already.
fn free_entries(f: &File, b: &Bpb, first: u64, end: u64) -> Result<u64> {
    const CHUNK: u64 = 1 << 18;
    let mut changed = 0;
    for copy in 0..b.nfats {
        let base = (b.rsvd + copy * b.fatsz) * b.bps;
        let mut e = first;
        while e < end {
            let n = (end - e).min(CHUNK);
            let mut buf = vec![0u8; (n * 4) as usize];
            f.read_exact_at(&mut buf, base + e * 4).context("reading the FAT")?;
            let used = buf.chunks_exact(4).filter(|x| x.iter().any(|&v| v != 0)).count() as u64;
            if used > 0 {
                changed += used;
                f.write_all_at(&vec![0u8; buf.len()], base + e * 4).context("writing the FAT")?;
            }
            e += n;
        }
    }
    Ok(changed)
}

/// Raise the FSInfo free count at `sector` by `added` clusters (when the sector is a valid
/// FSInfo and the count is known).
fn update_fsinfo(f: &File, b: &Bpb, sector: u64, added: u64, log: &mut String) -> Result<()> {
    if sector == 0 || sector >= b.rsvd {
        return Ok(());
    }
    let mut s = vec![0u8; b.bps as usize];
    f.read_exact_at(&mut s, sector * b.bps).context("reading FSInfo")?;
    if !fsinfo_valid(&s) {
        log.push_str(&format!("sector {sector}: no valid FSInfo, left alone\n"));
        return Ok(());
    }
    let free = le(&s, 488, 4)?;
    let new = if free <= b.clusters { free + added } else { 0xFFFF_FFFF };
    s[488..492].copy_from_slice(&(new as u32).to_le_bytes());
    f.write_all_at(&s, sector * b.bps).context("writing FSInfo")?;
    log.push_str(&format!("FSInfo in sector {sector}: free clusters {free:#x} -> {new:#x}\n"));
    Ok(())
}

pub(super) fn fat_resize(dev: &Path, new_size: u64, log: &mut String) -> Result<(u64, u64, &'static str)> {
    let f = open_exclusive(dev)?;
    let mut boot = vec![0u8; 512];
    f.read_exact_at(&mut boot, 0).context("reading the boot sector")?;
    let b = parse_bpb(&boot)?;
    let old = b.tot * b.bps;
    if !b.fat32 {
        if new_size / b.bps >= b.tot {
            log.push_str("FAT left at its size: only FAT32 is grown\n");
            return Ok((old, old, "none"));
        }
        bail!("FAT cannot shrink: the filesystem has {old} bytes, {new_size} were asked for");
    }
    let (tot, n, limited) = plan_fat32(&b, new_size)?;
    if tot == b.tot {
        if limited {
            log.push_str(&format!("FAT left at its size: its FAT has no entries for more than {} clusters\n", b.clusters));
        } else {
            log.push_str(&format!("vfat: already {old} bytes; nothing to do\n"));
        }
        return Ok((old, old, "none"));
    }
    if n > b.clusters {
        let freed = free_entries(&f, &b, b.clusters + 2, n + 2)?;
        log.push_str(&format!("FAT entries {}..{} made free in {} FAT(s)", b.clusters + 2, n + 2, b.nfats));
        log.push_str(&if freed > 0 { format!(" ({freed} were not zero)\n") } else { " (already zero)\n".into() });
        f.sync_all().context("syncing the FAT")?;
        update_fsinfo(&f, &b, b.fsinfo, n - b.clusters, log)?;
        if b.bkboot != 0 && b.bkboot + b.fsinfo < b.rsvd {
            update_fsinfo(&f, &b, b.bkboot + b.fsinfo, n - b.clusters, log)?;
        }
    }
    if b.bkboot != 0 && b.bkboot < b.rsvd {
        let mut s = vec![0u8; 512];
        f.read_exact_at(&mut s, b.bkboot * b.bps).context("reading the backup boot sector")?;
        if parse_bpb(&s).ok() == Some(b.clone()) {
            s[32..36].copy_from_slice(&(tot as u32).to_le_bytes());
            f.write_all_at(&s, b.bkboot * b.bps).context("writing the backup boot sector")?;
            f.sync_all().context("syncing")?;
        } else {
            log.push_str(&format!("sector {}: not a copy of the boot sector, left alone\n", b.bkboot));
        }
    }
    boot[32..36].copy_from_slice(&(tot as u32).to_le_bytes());
    f.write_all_at(&boot, 0).context("writing the boot sector")?;
    f.sync_all().context("syncing")?;
    log.push_str(&format!("FAT32: {} -> {n} clusters of {} bytes; {} -> {tot} sectors\n", b.clusters, b.spc * b.bps, b.tot));
    if limited {
        log.push_str(&format!("note: FAT left at its size: its {} sectors hold entries for {n} clusters, so the filesystem ends at byte {}\n", b.fatsz, tot * b.bps));
    }
    Ok((old, tot * b.bps, "native FAT32"))
}

// ---------------------------------------------------------------------------------------
// swap

/// A version-1 swap header: page size, byte order, last usable page, bad page count.
#[derive(Debug, PartialEq)]
struct SwapHeader {
    page: u64,
    big_endian: bool,
    last_page: u64,
    nr_bad: u64,
}

/// The smallest swap area mkswap makes: ten pages.
const SWAP_MIN_PAGES: u64 = 10;
const INFO: usize = 1024;

fn swap_header(head: &[u8]) -> Result<SwapHeader> {
    for page in [4096usize, 8192, 16384, 65536] {
        match head.get(page - 10..page) {
            Some(b"SWAPSPACE2") => {}
            Some(b"SWAP-SPACE") => bail!("old-style (version 0) swap area: not supported"),
            _ => continue,
        }
        let (big_endian, get) = match (le(head, INFO, 4)?, super::be(head, INFO, 4)?) {
            (1, _) => (false, le as fn(&[u8], usize, usize) -> Result<u64>),
            (_, 1) => (true, super::be as fn(&[u8], usize, usize) -> Result<u64>),
            (v, _) => bail!("swap header version {v:#x} is not 1"),
        };
        let last_page = get(head, INFO + 4, 4)?;
        let nr_bad = get(head, INFO + 8, 4)?;
        return Ok(SwapHeader { page: page as u64, big_endian, last_page, nr_bad });
    }
    bail!("no swap signature")
}

/// The header page for `pages` pages, from the old header page `old`.
fn swap_page(old: &[u8], h: &SwapHeader, pages: u64) -> Vec<u8> {
    let page = h.page as usize;
    let mut p = old[..page].to_vec();
    let put = |p: &mut Vec<u8>, o: usize, v: u32| p[o..o + 4].copy_from_slice(&if h.big_endian { v.to_be_bytes() } else { v.to_le_bytes() });
    put(&mut p, INFO, 1);
    put(&mut p, INFO + 4, (pages - 1) as u32);
    put(&mut p, INFO + 8, 0);
    // UUID (INFO + 12) and label (INFO + 28) stay; padding and the bad page list are cleared.
    p[INFO + 44..page - 10].fill(0);
    p[page - 10..].copy_from_slice(b"SWAPSPACE2");
    p
}

fn read_swap_head(f: &File) -> Result<Vec<u8>> {
    let mut head = vec![0u8; 65536];
    let n = read_full(f, &mut head).context("reading the swap header")?;
    head.truncate(n);
    Ok(head)
}

pub(super) fn swap_resize(dev: &Path, new_size: u64, log: &mut String) -> Result<(u64, u64, &'static str)> {
    let f = open_exclusive(dev)?;
    let head = read_swap_head(&f)?;
    let h = swap_header(&head)?;
    let old = (h.last_page + 1) * h.page;
    let pages = (new_size / h.page).min(u32::MAX as u64 + 1);
    if pages < SWAP_MIN_PAGES {
        bail!("a swap area needs at least {SWAP_MIN_PAGES} pages of {} bytes; {new_size} bytes were asked for", h.page);
    }
    if pages - 1 == h.last_page && h.nr_bad == 0 {
        log.push_str(&format!("swap: already {old} bytes; nothing to do\n"));
        return Ok((old, old, "none"));
    }
    f.write_all_at(&swap_page(&head, &h, pages), 0).context("writing the swap header")?;
    f.sync_all().context("syncing")?;
    log.push_str(&format!("swap header rewritten: {} pages of {} bytes (was {}), same UUID and label", pages, h.page, h.last_page + 1));
    log.push_str(&if h.nr_bad > 0 { format!("; the old list of {} bad pages dropped\n", h.nr_bad) } else { "\n".into() });
    let new = swap_header(&read_swap_head(&f)?).map(|h| (h.last_page + 1) * h.page)?;
    Ok((old, new, "native swap header"))
}

pub(super) fn swap_min(dev: &Path) -> Result<u64> {
    let f = File::open(dev).with_context(|| format!("opening {}", dev.display()))?;
    Ok(swap_header(&read_swap_head(&f)?)?.page * SWAP_MIN_PAGES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bpb32(bps: u16, spc: u8, rsvd: u16, fatsz: u32, tot: u32) -> Vec<u8> {
        let mut b = vec![0u8; 512];
        b[11..13].copy_from_slice(&bps.to_le_bytes());
        b[13] = spc;
        b[14..16].copy_from_slice(&rsvd.to_le_bytes());
        b[16] = 2;
        b[32..36].copy_from_slice(&tot.to_le_bytes());
        b[36..40].copy_from_slice(&fatsz.to_le_bytes());
        b[48] = 1;
        b[50] = 6;
        b[510] = 0x55;
        b[511] = 0xAA;
        b
    }

    #[test]
    fn fat32_plans() {
        // 32 reserved + 2 × 1000 FAT sectors, 1 sector per cluster: the FAT holds 128000
        // entries, i.e. 127998 clusters; 100000 clusters are used now.
        let b = parse_bpb(&bpb32(512, 1, 32, 1000, 2032 + 100_000)).unwrap();
        assert!(b.fat32);
        assert_eq!((b.data_sec, b.clusters, b.fsinfo, b.bkboot), (2032, 100_000, 1, 6));
        // Grow within the FAT: exactly as asked.
        assert_eq!(plan_fat32(&b, (2032 + 120_000) * 512).unwrap(), (2032 + 120_000, 120_000, false));
        // With a partial cluster at the end: kept in the sector count.
        assert_eq!(plan_fat32(&b, (2032 + 120_000) * 512 + 511).unwrap(), (2032 + 120_000, 120_000, false));
        // Beyond what the FAT can describe: as far as the FAT goes.
        assert_eq!(plan_fat32(&b, 1 << 30).unwrap(), (2032 + 127_998, 127_998, true));
        // Shrinking into clusters is refused; the request equal to the size is the size.
        assert!(plan_fat32(&b, (2032 + 99_999) * 512).unwrap_err().to_string().contains("FAT cannot shrink"));
        assert!(plan_fat32(&b, 100).is_err());
        assert_eq!(plan_fat32(&b, (2032 + 100_000) * 512).unwrap(), (2032 + 100_000, 100_000, false));

        // 4 sectors per cluster with a 3-sector tail: the tail may go, clusters may not.
        let b = parse_bpb(&bpb32(512, 4, 32, 1000, 2032 + 4 * 100_000 + 3)).unwrap();
        assert_eq!(b.clusters, 100_000);
        assert_eq!(plan_fat32(&b, (2032 + 400_000) * 512).unwrap(), (2032 + 400_000, 100_000, false));
        // A full FAT on a grow request keeps the old size (tail included).
        let full = parse_bpb(&bpb32(512, 1, 32, 1000, 2032 + 127_998)).unwrap();
        assert_eq!(plan_fat32(&full, 1 << 30).unwrap(), (2032 + 127_998, 127_998, true));

        // Invalid: a FAT too small for the clusters; FAT16 layout is not FAT32.
        assert!(parse_bpb(&bpb32(512, 1, 32, 1000, 2032 + 130_000)).is_err());
        let mut b16 = bpb32(512, 4, 4, 0, 0);
        b16[17..19].copy_from_slice(&512u16.to_le_bytes());
        b16[19..21].copy_from_slice(&60000u16.to_le_bytes());
        b16[22..24].copy_from_slice(&60u16.to_le_bytes());
        assert!(!parse_bpb(&b16).unwrap().fat32);
        assert!(parse_bpb(&[0u8; 512]).is_err());
    }

    #[test]
    fn swap_headers() {
        let mut p = vec![0u8; 8192];
        p[8182..].copy_from_slice(b"SWAPSPACE2");
        p[1024..1028].copy_from_slice(&1u32.to_be_bytes());
        p[1028..1032].copy_from_slice(&99u32.to_be_bytes());
        p[1032..1036].copy_from_slice(&2u32.to_be_bytes());
        p[1036..1052].copy_from_slice(&[7; 16]);
        p[1052..1058].copy_from_slice(b"label\0");
        p[1068..1076].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]); // bad page list
        let h = swap_header(&p).unwrap();
        assert_eq!(h, SwapHeader { page: 8192, big_endian: true, last_page: 99, nr_bad: 2 });
        let n = swap_page(&p, &h, 500);
        assert_eq!(swap_header(&n).unwrap(), SwapHeader { page: 8192, big_endian: true, last_page: 499, nr_bad: 0 });
        assert_eq!(n[1036..1068], p[1036..1068]);
        assert!(n[1068..8182].iter().all(|&x| x == 0));
        let mut v0 = vec![0u8; 4096];
        v0[4086..].copy_from_slice(b"SWAP-SPACE");
        assert!(swap_header(&v0).unwrap_err().to_string().contains("version 0"));
        assert!(swap_header(&[0u8; 4096]).is_err());
    }
}
