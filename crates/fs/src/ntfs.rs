//! NTFS: `$Bitmap`, one bit per cluster.
//!
//! The boot sector gives the geometry and `$MFT`'s first cluster. MFT record 0 (`$MFT`
//! itself, update-sequence fixups applied) gives the runlist of the MFT; through it we read
//! record 3 (`$Volume`: a dirty volume is copied whole, as its log may hold allocations the
//! bitmap does not show yet) and record 6 (`$Bitmap`), whose unnamed `$DATA` attribute is the
//! cluster bitmap. The boot sector and its backup (the sector after the volume, normally the
//! partition's last) are always kept; the backup lies outside the clusters the bitmap covers.

use crate::extents::{add_bitmap_runs, ExtentSet};
use crate::{le16, le32, le64, read, read_vec, u8_at, whole, Parsed, Source, R};

/// Update sequence stride: fixups protect the last two bytes of every 512 bytes.
const STRIDE: usize = 512;
const AT_VOLUME_INFORMATION: u32 = 0x70;
const AT_DATA: u32 = 0x80;
const AT_END: u32 = 0xFFFF_FFFF;
const VOLUME_DIRTY: u16 = 0x0001;
/// Bitmap bytes read at a time.
const CHUNK: u64 = 1 << 20;

struct Vol {
    bps: u64,
    cs: u64,
    total_sectors: u64,
    clusters: u64,
    mft_lcn: u64,
    rec: u64,
}

/// A run of clusters: `len` clusters of the stream from `vcn` are at `lcn`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Run {
    vcn: u64,
    lcn: u64,
    len: u64,
}

fn parse_boot(b: &[u8], part_len: u64) -> R<Vol> {
    if b.get(3..11) != Some(b"NTFS    ") {
        whole!("no NTFS signature");
    }
    let bps = le16(b, 0x0B)? as u64;
    if !matches!(bps, 256 | 512 | 1024 | 2048 | 4096) {
        whole!("bytes per sector {bps} is invalid");
    }
    let v = u8_at(b, 0x0D)?;
    let spc: u64 = match v {
        1..=0x80 if v.is_power_of_two() => v as u64,
        // Large clusters: the byte is -log2(sectors per cluster).
        0xF4..=0xFF => 1 << (256 - v as u32),
        _ => whole!("sectors per cluster byte {v:#x} is invalid"),
    };
    let cs = spc * bps;
    if cs > 2 << 20 {
        whole!("cluster size {cs} is out of range");
    }
    let total_sectors = le64(b, 0x28)?;
    match total_sectors.checked_mul(bps) {
        Some(n) if n <= part_len && total_sectors > 0 => {}
        _ => whole!("the volume ({total_sectors} sectors of {bps} bytes) does not fit the partition ({part_len} bytes)"),
    }
    let clusters = total_sectors / spc;
    let mft_lcn = le64(b, 0x30)?;
    if mft_lcn >= clusters {
        whole!("$MFT cluster {mft_lcn} is outside the volume");
    }
    let r = u8_at(b, 0x40)? as i8;
    let rec = match r {
        1..=127 => r as u64 * cs,
        -16..=-9 => 1u64 << -(r as i32),
        _ => whole!("MFT record size byte {r} is invalid"),
    };
    if !rec.is_power_of_two() || !(512..=65536).contains(&rec) {
        whole!("MFT record size {rec} is invalid");
    }
    Ok(Vol { bps, cs, total_sectors, clusters, mft_lcn, rec })
}

/// Check the record's magic and undo the update sequence fixups.
fn fixup(rec: &mut [u8]) -> R<()> {
    if rec.get(0..4) != Some(b"FILE") {
        whole!("MFT record without FILE magic");
    }
    let uso = le16(rec, 4)? as usize;
    let usc = le16(rec, 6)? as usize;
    let sectors = rec.len() / STRIDE;
    if usc != sectors + 1 || uso < 0x28 || uso + 2 * usc > rec.len() {
        whole!("MFT record update sequence is invalid");
    }
    let usn = [rec[uso], rec[uso + 1]];
    for i in 0..sectors {
        let end = (i + 1) * STRIDE - 2;
        if rec[end..end + 2] != usn {
            whole!("MFT record is torn (update sequence mismatch)");
        }
        let fix = uso + 2 + 2 * i;
        rec[end] = rec[fix];
        rec[end + 1] = rec[fix + 1];
    }
    Ok(())
}

/// The attributes of a fixed-up record: `(type, bytes of the attribute)`.
fn attributes(rec: &[u8]) -> R<Vec<(u32, &[u8])>> {
    if le16(rec, 0x16)? & 1 == 0 {
        whole!("MFT record is not in use");
    }
    let used = (le32(rec, 0x18)? as usize).min(rec.len());
    let mut off = le16(rec, 0x14)? as usize;
    let mut out = Vec::new();
    loop {
        let t = le32(&rec[..used], off)?;
        if t == AT_END {
            return Ok(out);
        }
        let len = le32(rec, off + 4)? as usize;
        if len < 24 || off + len > used {
            whole!("MFT attribute length {len} is invalid");
        }
        out.push((t, &rec[off..off + len]));
        off += len;
    }
}

/// The value of a resident attribute.
fn resident_value(a: &[u8]) -> R<&[u8]> {
    let len = le32(a, 0x10)? as usize;
    let off = le16(a, 0x14)? as usize;
    match off.checked_add(len).and_then(|e| a.get(off..e)) {
        Some(v) => Ok(v),
        None => whole!("resident attribute value is outside the attribute"),
    }
}

/// Where an unnamed `$DATA` lives.
enum Data<'a> {
    Resident(&'a [u8]),
    NonResident { runs: Vec<Run>, size: u64 },
}

fn unnamed_data<'a>(rec: &'a [u8], clusters: u64) -> R<Data<'a>> {
    for (t, a) in attributes(rec)? {
        if t != AT_DATA || u8_at(a, 9)? != 0 {
            continue;
        }
        if le16(a, 0x0C)? & (0x00FF | 0x4000 | 0x8000) != 0 {
            whole!("$DATA is compressed, encrypted or sparse");
        }
        if u8_at(a, 8)? == 0 {
            return Ok(Data::Resident(resident_value(a)?));
        }
        if le64(a, 0x10)? != 0 {
            whole!("$DATA does not start at VCN 0 (attribute lists are not supported)");
        }
        let size = le64(a, 0x30)?;
        let init = le64(a, 0x38)?;
        let off = le16(a, 0x20)? as usize;
        let Some(rl) = a.get(off..) else { whole!("runlist offset is outside the attribute") };
        return Ok(Data::NonResident { runs: decode_runs(rl, clusters)?, size: size.min(init) });
    }
    whole!("no unnamed $DATA attribute")
}

/// Decode a mapping-pairs array; every run must lie inside the volume.
fn decode_runs(b: &[u8], clusters: u64) -> R<Vec<Run>> {
    let mut runs = Vec::new();
    let (mut pos, mut vcn, mut lcn) = (0usize, 0u64, 0i64);
    loop {
        let h = u8_at(b, pos)?;
        if h == 0 {
            return Ok(runs);
        }
        let (ls, os) = ((h & 0xF) as usize, (h >> 4) as usize);
        if ls == 0 || ls > 8 || os > 8 {
            whole!("runlist header {h:#x} is invalid");
        }
        if os == 0 {
            whole!("sparse run in a metadata file");
        }
        let Some(f) = b.get(pos + 1..pos + 1 + ls + os) else { whole!("runlist is truncated") };
        let len = f[..ls].iter().rev().fold(0u64, |a, &x| a << 8 | x as u64);
        let mut delta = f[ls..].iter().rev().fold(0u64, |a, &x| a << 8 | x as u64);
        if os < 8 && f[ls + os - 1] & 0x80 != 0 {
            delta |= !0u64 << (8 * os);
        }
        lcn = match lcn.checked_add(delta as i64) {
            Some(l) if l >= 0 => l,
            _ => whole!("runlist points before the volume"),
        };
        let (start, len) = (lcn as u64, len);
        if len == 0 || start.checked_add(len).is_none_or(|e| e > clusters) {
            whole!("run at cluster {start} (+{len}) is outside the volume");
        }
        runs.push(Run { vcn, lcn: start, len });
        // A non-sparse stream cannot hold more clusters than the volume has.
        vcn = match vcn.checked_add(len) {
            Some(v) if v <= clusters => v,
            _ => whole!("runlist is longer than the volume"),
        };
        pos += 1 + ls + os;
    }
}

/// Read `buf.len()` bytes of a non-resident stream from byte `off`.
fn read_stream(src: &dyn Source, runs: &[Run], cs: u64, off: u64, buf: &mut [u8]) -> R<()> {
    let mut done = 0usize;
    while done < buf.len() {
        let pos = off + done as u64;
        let vcn = pos / cs;
        let Some(r) = runs.iter().find(|r| r.vcn <= vcn && vcn - r.vcn < r.len) else {
            whole!("stream offset {pos} is not mapped by the runlist");
        };
        let run_end = (r.vcn + r.len) * cs;
        let n = ((run_end - pos) as usize).min(buf.len() - done);
        let disk = (r.lcn + (vcn - r.vcn)) * cs + pos % cs;
        read(src, disk, &mut buf[done..done + n])?;
        done += n;
    }
    Ok(())
}

pub(crate) fn map(src: &dyn Source, set: &mut ExtentSet) -> R<Parsed> {
    let boot = read_vec(src, 0, 512)?;
    let vol = parse_boot(&boot, src.len())?;
    let rec = vol.rec as usize;

    // $MFT's own record, read from where the boot sector says the MFT starts.
    let mut r0 = read_vec(src, vol.mft_lcn * vol.cs, rec)?;
    fixup(&mut r0)?;
    let mft_runs = match unnamed_data(&r0, vol.clusters)? {
        Data::NonResident { runs, .. } if runs.first().map(|r| r.lcn) == Some(vol.mft_lcn) => runs,
        _ => whole!("$MFT's runlist does not start where the boot sector says"),
    };
    let record = |n: u64| -> R<Vec<u8>> {
        let mut b = vec![0u8; rec];
        read_stream(src, &mft_runs, vol.cs, n * vol.rec, &mut b)?;
        fixup(&mut b)?;
        Ok(b)
    };

    let r3 = record(3)?;
    for (t, a) in attributes(&r3)? {
        if t == AT_VOLUME_INFORMATION && u8_at(a, 8)? == 0 && le16(resident_value(a)?, 0x0A)? & VOLUME_DIRTY != 0 {
            whole!("the volume is marked dirty: run chkdsk (or mount and unmount it cleanly) for a smart copy");
        }
    }

    let r6 = record(6)?;
    let need = vol.clusters.div_ceil(8);
    set.add(0, vol.bps);
    match unnamed_data(&r6, vol.clusters)? {
        Data::Resident(v) => {
            if (v.len() as u64) < need {
                whole!("$Bitmap is smaller than the volume");
            }
            add_bitmap_runs(set, v, vol.clusters, 0, vol.cs);
        }
        Data::NonResident { runs, size } => {
            if size < need {
                whole!("$Bitmap ({size} bytes) is smaller than the volume needs ({need})");
            }
            let mut buf = Vec::new();
            let mut off = 0u64;
            while off < need {
                let n = CHUNK.min(need - off);
                buf.resize(n as usize, 0);
                read_stream(src, &runs, vol.cs, off, &mut buf)?;
                let first = off * 8;
                add_bitmap_runs(set, &buf, (vol.clusters - first).min(n * 8), first * vol.cs, vol.cs);
                off += n;
            }
        }
    }
    // The backup boot sector: after the last volume sector, normally the partition's last.
    set.add(vol.total_sectors * vol.bps, vol.bps);
    set.add(src.len().saturating_sub(vol.bps), vol.bps);
    Ok(Parsed { block_size: vol.cs, note: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runlists() {
        // 0x21: len 1 byte, offset 2 bytes. 0x11 with negative offset. Then end.
        let b = [0x21, 0x10, 0x00, 0x01, 0x11, 0x05, 0xFF, 0x00];
        let r = decode_runs(&b, 1000).unwrap();
        assert_eq!(r, vec![Run { vcn: 0, lcn: 256, len: 16 }, Run { vcn: 16, lcn: 255, len: 5 }]);
        assert!(decode_runs(&b, 260).is_err(), "run beyond the volume");
        assert!(decode_runs(&[0x11, 0x05, 0x80, 0x00], 1000).is_err(), "negative lcn");
        assert!(decode_runs(&[0x01, 0x05, 0x00], 1000).is_err(), "sparse run");
        assert!(decode_runs(&[0x21, 0x10], 1000).is_err(), "truncated");
        assert!(decode_runs(&[0x91, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 1000).is_err());
    }

    #[test]
    fn fixups() {
        let mut r = vec![0u8; 1024];
        r[..4].copy_from_slice(b"FILE");
        r[4] = 0x30; // update sequence at 0x30, 3 entries
        r[6] = 3;
        r[0x30..0x36].copy_from_slice(&[0xAB, 0xCD, 1, 2, 3, 4]);
        r[510..512].copy_from_slice(&[0xAB, 0xCD]);
        r[1022..1024].copy_from_slice(&[0xAB, 0xCD]);
        let mut ok = r.clone();
        fixup(&mut ok).unwrap();
        assert_eq!(&ok[510..512], &[1, 2]);
        assert_eq!(&ok[1022..1024], &[3, 4]);
        r[1023] = 0;
        assert!(fixup(&mut r).is_err(), "torn record");
    }
}
