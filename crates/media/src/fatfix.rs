//! Post-processing for directories created by `fatfs` 0.3.6.
//!
//! `fatfs` 0.3.6 `Dir::create_dir` writes a long-file-name (LFN) entry in front of the `.` and
//! `..` entries of every new directory, so `.` is not in slot 0 and `..` not in slot 1.
//! `fsck.fat` then reports "Expected a valid '.' entry in this slot" and would "repair" the
//! directory; strict firmware FAT drivers may reject it. It also points `..` of first-level
//! directories at the FAT32 root cluster, where the FAT specification wants 0.
//!
//! [`fix_dot_entries`] walks the directory tree of an unmounted volume and rewrites each affected
//! directory in place: LFN entries belonging to `.`/`..` are dropped, the remaining entries
//! move up (keeping their order, so every LFN run still precedes its short entry), the freed
//! tail is zeroed, and a `..` that names the root directory gets cluster 0. Directories that
//! are already well-formed (e.g. made by mkfs.fat or Windows) are left untouched. On FAT32 the
//! FSInfo free-cluster count, which `fatfs` leaves "unknown", is filled in.

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom, Write};

use anyhow::{bail, ensure, Context, Result};

const ENTRY: usize = 32;
const ATTR_LFN: u8 = 0x0F;
const ATTR_VOLUME: u8 = 0x08;
const ATTR_DIR: u8 = 0x10;
const DOT: &[u8; 11] = b".          ";
const DOTDOT: &[u8; 11] = b"..         ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fat12,
    Fat16,
    Fat32,
}

struct Geometry {
    start: u64,
    bytes_per_sector: u64,
    cluster_bytes: u64,
    first_data_byte: u64,
    root_dir_byte: u64,
    root_dir_bytes: u64,
    root_cluster: u32,
    clusters: u32,
    kind: Kind,
    fat: Vec<u8>,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn read_at<D: Read + Seek>(dev: &mut D, off: u64, len: usize) -> Result<Vec<u8>> {
    let mut v = vec![0u8; len];
    dev.seek(SeekFrom::Start(off))?;
    dev.read_exact(&mut v)
        .with_context(|| format!("reading {len} bytes at byte {off}"))?;
    Ok(v)
}

impl Geometry {
    fn read<D: Read + Seek>(dev: &mut D, start: u64, len: u64) -> Result<Geometry> {
        let bs = read_at(dev, start, 512).context("reading FAT boot sector")?;
        ensure!(
            bs[510] == 0x55 && bs[511] == 0xAA,
            "no FAT boot sector signature"
        );
        let bps = u64::from(u16_at(&bs, 11));
        let spc = u64::from(bs[13]);
        let reserved = u64::from(u16_at(&bs, 14));
        let nfats = u64::from(bs[16]);
        let root_entries = u64::from(u16_at(&bs, 17));
        let total = match u16_at(&bs, 19) {
            0 => u64::from(u32_at(&bs, 32)),
            n => u64::from(n),
        };
        let fat_sectors = match u16_at(&bs, 22) {
            0 => u64::from(u32_at(&bs, 36)),
            n => u64::from(n),
        };
        ensure!(
            bps.is_power_of_two() && (512..=4096).contains(&bps) && spc.is_power_of_two(),
            "implausible FAT geometry (bytes/sector {bps}, sectors/cluster {spc})"
        );
        ensure!(
            nfats >= 1 && fat_sectors > 0 && reserved > 0,
            "implausible FAT layout"
        );
        ensure!(total * bps <= len, "FAT volume larger than its partition");
        let root_dir_sectors = (root_entries * 32).div_ceil(bps);
        let first_data = reserved + nfats * fat_sectors + root_dir_sectors;
        ensure!(total > first_data, "FAT volume has no data area");
        let clusters = (total - first_data) / spc;
        let kind = if clusters < 4085 {
            Kind::Fat12
        } else if clusters < 65525 {
            Kind::Fat16
        } else {
            Kind::Fat32
        };
        let fat_bytes = usize::try_from(fat_sectors * bps).context("FAT too large")?;
        ensure!(
            fat_bytes <= 256 << 20,
            "FAT of {fat_bytes} bytes is implausibly large"
        );
        let fat = read_at(dev, start + reserved * bps, fat_bytes).context("reading FAT")?;
        Ok(Geometry {
            start,
            bytes_per_sector: bps,
            cluster_bytes: spc * bps,
            first_data_byte: start + first_data * bps,
            root_dir_byte: start + (reserved + nfats * fat_sectors) * bps,
            root_dir_bytes: root_dir_sectors * bps,
            root_cluster: if kind == Kind::Fat32 {
                u32_at(&bs, 44)
            } else {
                0
            },
            clusters: u32::try_from(clusters).context("too many clusters")?,
            kind,
            fat,
        })
    }

    fn next(&self, c: u32) -> Option<u32> {
        let v = match self.kind {
            Kind::Fat32 => {
                let o = c as usize * 4;
                u32_at(self.fat.get(o..o + 4)?, 0) & 0x0FFF_FFFF
            }
            Kind::Fat16 => {
                let o = c as usize * 2;
                u32::from(u16_at(self.fat.get(o..o + 2)?, 0))
            }
            Kind::Fat12 => {
                let o = c as usize + c as usize / 2;
                let w = u16_at(self.fat.get(o..o + 2)?, 0);
                u32::from(if c & 1 == 1 { w >> 4 } else { w & 0x0FFF })
            }
        };
        (2..self.clusters + 2).contains(&v).then_some(v)
    }

    fn chain(&self, first: u32) -> Result<Vec<u32>> {
        ensure!(
            (2..self.clusters + 2).contains(&first),
            "directory cluster {first} out of range"
        );
        let mut out = vec![first];
        let mut c = first;
        while let Some(n) = self.next(c) {
            ensure!(
                out.len() <= self.clusters as usize,
                "cluster chain loops at {n}"
            );
            out.push(n);
            c = n;
        }
        Ok(out)
    }

    fn cluster_byte(&self, c: u32) -> u64 {
        self.first_data_byte + u64::from(c - 2) * self.cluster_bytes
    }
}

fn entry_cluster(e: &[u8], kind: Kind) -> u32 {
    let lo = u32::from(u16_at(e, 26));
    let hi = if kind == Kind::Fat32 {
        u32::from(u16_at(e, 20))
    } else {
        0
    };
    (hi << 16) | lo
}

/// Subdirectory clusters listed in `data` (skipping `.`/`..`, deleted entries, LFNs, labels).
fn subdirs(data: &[u8], kind: Kind) -> Vec<u32> {
    let mut out = Vec::new();
    for e in data.chunks_exact(ENTRY) {
        match e[0] {
            0x00 => break,
            0xE5 => continue,
            _ => {}
        }
        let attr = e[11];
        if attr & 0x3F == ATTR_LFN || attr & ATTR_VOLUME != 0 || attr & ATTR_DIR == 0 {
            continue;
        }
        if &e[0..11] == DOT || &e[0..11] == DOTDOT {
            continue;
        }
        out.push(entry_cluster(e, kind));
    }
    out
}

/// Returns the repaired directory contents, or `None` if nothing needs changing.
fn repair(data: &[u8], kind: Kind, parent_is_root: bool) -> Option<Vec<u8>> {
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut pending_lfn: Vec<&[u8]> = Vec::new();
    let mut changed = false;
    let mut fixed_dotdot: Option<Vec<u8>> = None;
    for e in data.chunks_exact(ENTRY) {
        if e[0] == 0x00 {
            break;
        }
        if e[0] != 0xE5 && e[11] & 0x3F == ATTR_LFN {
            pending_lfn.push(e);
            continue;
        }
        let is_dot = &e[0..11] == DOT || &e[0..11] == DOTDOT;
        if is_dot && !pending_lfn.is_empty() {
            changed = true;
        } else {
            kept.append(&mut pending_lfn);
        }
        pending_lfn.clear();
        if &e[0..11] == DOTDOT
            && parent_is_root
            && kind == Kind::Fat32
            && entry_cluster(e, kind) != 0
        {
            let mut f = e.to_vec();
            f[20..22].fill(0);
            f[26..28].fill(0);
            fixed_dotdot = Some(f);
            changed = true;
            continue;
        }
        kept.push(e);
    }
    kept.append(&mut pending_lfn);
    if !changed {
        return None;
    }
    // Keep `.` and `..` first, in that order.
    let mut out = Vec::with_capacity(data.len());
    let dot = kept.iter().position(|e| &e[0..11] == DOT);
    if let Some(i) = dot {
        out.extend_from_slice(kept[i]);
    }
    let dotdot_i = kept.iter().position(|e| &e[0..11] == DOTDOT);
    match (&fixed_dotdot, dotdot_i) {
        (Some(f), _) => out.extend_from_slice(f),
        (None, Some(i)) => out.extend_from_slice(kept[i]),
        (None, None) => {}
    }
    for (i, e) in kept.iter().enumerate() {
        if Some(i) != dot && Some(i) != dotdot_i {
            out.extend_from_slice(e);
        }
    }
    out.resize(data.len(), 0);
    Some(out)
}

/// Repairs the `.`/`..` entries of every directory on the (unmounted) FAT volume at
/// `start`..`start + len` of `dev`; see the module documentation. Returns how many directories
/// were rewritten.
pub fn fix_dot_entries<D: Read + Write + Seek>(dev: &mut D, start: u64, len: u64) -> Result<usize> {
    let g = Geometry::read(dev, start, len)?;
    debug_assert!(g.start == start && g.bytes_per_sector >= 512);
    // (first cluster, parent is root)
    let mut queue: Vec<(u32, bool)> = Vec::new();
    let root_data = if g.kind == Kind::Fat32 {
        let chain = g.chain(g.root_cluster).context("root directory")?;
        let mut d = Vec::new();
        for c in &chain {
            d.extend(read_at(dev, g.cluster_byte(*c), g.cluster_bytes as usize)?);
        }
        d
    } else {
        read_at(dev, g.root_dir_byte, g.root_dir_bytes as usize).context("root directory")?
    };
    for c in subdirs(&root_data, g.kind) {
        queue.push((c, true));
    }
    let mut seen = BTreeSet::new();
    let mut fixed = 0;
    while let Some((first, parent_is_root)) = queue.pop() {
        if !seen.insert(first) {
            continue;
        }
        if seen.len() > g.clusters as usize {
            bail!("directory tree loops");
        }
        // A broken entry on a foreign volume is not ours to repair: skip it.
        let Ok(chain) = g.chain(first) else {
            continue;
        };
        let mut data = Vec::with_capacity(chain.len() * g.cluster_bytes as usize);
        for c in &chain {
            data.extend(read_at(dev, g.cluster_byte(*c), g.cluster_bytes as usize)?);
        }
        for c in subdirs(&data, g.kind) {
            queue.push((c, false));
        }
        if let Some(new) = repair(&data, g.kind, parent_is_root) {
            for (c, chunk) in chain.iter().zip(new.chunks(g.cluster_bytes as usize)) {
                dev.seek(SeekFrom::Start(g.cluster_byte(*c)))?;
                dev.write_all(chunk)
                    .with_context(|| format!("rewriting directory cluster {c}"))?;
            }
            fixed += 1;
        }
    }
    if g.kind == Kind::Fat32 {
        update_fsinfo(dev, &g).context("updating FAT32 FSInfo free-cluster count")?;
    }
    dev.flush()?;
    Ok(fixed)
}

/// Records the real free-cluster count and a next-free hint in the FAT32 FSInfo sector
/// (`fatfs` leaves them "unknown"), if the sector carries valid signatures.
fn update_fsinfo<D: Read + Write + Seek>(dev: &mut D, g: &Geometry) -> Result<()> {
    let bs = read_at(dev, g.start, 512)?;
    let sector = u64::from(u16_at(&bs, 48));
    if sector == 0 || sector == 0xFFFF {
        return Ok(());
    }
    let off = g.start + sector * g.bytes_per_sector;
    let mut fsi = read_at(dev, off, 512)?;
    if u32_at(&fsi, 0) != 0x4161_5252 || u32_at(&fsi, 484) != 0x6141_7272 {
        return Ok(());
    }
    let mut free = 0u32;
    let mut first_free = None;
    for c in 2..g.clusters + 2 {
        let o = c as usize * 4;
        let Some(b) = g.fat.get(o..o + 4) else { break };
        if u32_at(b, 0) & 0x0FFF_FFFF == 0 {
            free += 1;
            first_free.get_or_insert(c);
        }
    }
    fsi[488..492].copy_from_slice(&free.to_le_bytes());
    fsi[492..496].copy_from_slice(&first_free.unwrap_or(0xFFFF_FFFF).to_le_bytes());
    dev.seek(SeekFrom::Start(off))?;
    dev.write_all(&fsi)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sfn(name: &[u8; 11], attr: u8, cluster: u32) -> Vec<u8> {
        let mut e = vec![0u8; 32];
        e[0..11].copy_from_slice(name);
        e[11] = attr;
        e[20..22].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
        e[26..28].copy_from_slice(&(cluster as u16).to_le_bytes());
        e
    }

    fn lfn() -> Vec<u8> {
        let mut e = vec![0u8; 32];
        e[0] = 0x41;
        e[11] = ATTR_LFN;
        e
    }

    #[test]
    fn repair_moves_dots_first() {
        let mut d = Vec::new();
        d.extend(lfn());
        d.extend(sfn(DOT, ATTR_DIR, 5));
        d.extend(lfn());
        d.extend(sfn(DOTDOT, ATTR_DIR, 2));
        d.extend(lfn());
        d.extend(sfn(b"BOOT       ", ATTR_DIR, 6));
        d.resize(512, 0);
        let r = repair(&d, Kind::Fat32, true).unwrap();
        assert_eq!(&r[0..11], DOT);
        assert_eq!(&r[32..43], DOTDOT);
        assert_eq!(entry_cluster(&r[32..64], Kind::Fat32), 0);
        assert_eq!(r[64], 0x41);
        assert_eq!(&r[96..107], b"BOOT       ");
        assert!(r[128..].iter().all(|&b| b == 0));
        assert_eq!(r.len(), 512);
        // Already well-formed: untouched.
        assert!(repair(&r, Kind::Fat32, true).is_none());
        // Not under root: `..` keeps its cluster.
        let r2 = repair(&d, Kind::Fat32, false).unwrap();
        assert_eq!(entry_cluster(&r2[32..64], Kind::Fat32), 2);
    }

    #[test]
    fn garbage_is_error_not_panic() {
        let mut c = std::io::Cursor::new(vec![0u8; 4096]);
        assert!(fix_dot_entries(&mut c, 0, 4096).is_err());
        let mut v = vec![0xFFu8; 8192];
        v[510] = 0x55;
        v[511] = 0xAA;
        let mut c = std::io::Cursor::new(v);
        assert!(fix_dot_entries(&mut c, 0, 8192).is_err());
    }
}
