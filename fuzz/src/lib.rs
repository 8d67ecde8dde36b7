//! Helpers shared by the fuzz targets: invariants every parser's output must keep.

use sysclone_fs::UsedMap;

/// Largest partition a fuzz input may describe.
const MAX_SPARSE_LEN: u64 = 1 << 30;

/// Decode a sparse partition image: `u32` LE length in KiB, then records of `u64` LE
/// offset, `u16` LE length and that many bytes (the seeds are the non-zero blocks of real
/// mkfs images, written by `fuzz/make-seeds`).
pub fn sparse_image(data: &[u8]) -> (u64, Vec<(u64, &[u8])>) {
    let Some(k) = data.get(0..4) else { return (0, Vec::new()) };
    let len = (u32::from_le_bytes(k.try_into().unwrap()) as u64 * 1024).min(MAX_SPARSE_LEN);
    let mut blocks = Vec::new();
    let mut rest = &data[4..];
    while rest.len() >= 10 {
        let off = u64::from_le_bytes(rest[0..8].try_into().unwrap());
        let n = (u16::from_le_bytes(rest[8..10].try_into().unwrap()) as usize).min(rest.len() - 10);
        blocks.push((off, &rest[10..10 + n]));
        rest = &rest[10 + n..];
    }
    (len, blocks)
}

/// Map a sparse partition image (see [`sparse_image`]) and check what `UsedMap` promises:
/// extents sorted, merged, non-empty, inside the partition, summing to `used_bytes`; a
/// whole map is the partition.
pub fn map_and_check(data: &[u8]) -> UsedMap {
    let (len, blocks) = sparse_image(data);
    let m = sysclone_fs::used_map_of_sparse(len, &blocks);
    let mut prev_end: Option<u64> = None;
    let mut sum = 0u64;
    for e in &m.extents {
        assert!(e.len > 0, "empty extent in {m:?}");
        let end = e.start.checked_add(e.len).expect("extent end overflows");
        assert!(end <= len, "extent {e:?} beyond the partition ({len} bytes)");
        if let Some(p) = prev_end {
            assert!(e.start > p, "extents not sorted and merged: {:?}", m.extents);
        }
        prev_end = Some(end);
        sum += e.len;
    }
    assert_eq!(sum, m.used_bytes, "used_bytes disagrees with the extents");
    if m.whole {
        assert_eq!(m.used_bytes, len);
    }
    assert!(m.block_size > 0);
    m
}

fn le32(d: &[u8], o: usize) -> Option<usize> {
    Some(u32::from_le_bytes(d.get(o..o + 4)?.try_into().ok()?) as usize)
}

/// Make the CRCs of the GPT headers in `d` (the primary at LBA 1 and a backup on the last
/// sector, `lbs`-byte sectors) and of the entry arrays they name right again, so that
/// mutations reach the fields behind the checksums instead of stopping at them.
pub fn fix_gpt_crcs(d: &mut [u8], lbs: usize) {
    let last = (d.len() / lbs).saturating_sub(1) * lbs;
    for ho in [lbs, last] {
        if ho == 0 || d.get(ho..ho + 8) != Some(b"EFI PART") || d.len() < ho + lbs {
            continue;
        }
        let (Some(n), Some(esz)) = (le32(d, ho + 80), le32(d, ho + 84)) else { continue };
        let elba = u64::from_le_bytes(d[ho + 72..ho + 80].try_into().unwrap());
        let start = elba.checked_mul(lbs as u64).and_then(|s| usize::try_from(s).ok());
        if let Some(s) = start.filter(|&s| n.checked_mul(esz).and_then(|a| s.checked_add(a)).is_some_and(|e| e <= d.len())) {
            let crc = crc32fast::hash(&d[s..s + n * esz]);
            d[ho + 88..ho + 92].copy_from_slice(&crc.to_le_bytes());
        }
        let hsz = le32(d, ho + 12).unwrap_or(92).clamp(92, lbs);
        d[ho + 16..ho + 20].fill(0);
        let crc = crc32fast::hash(&d[ho..ho + hsz]);
        d[ho + 16..ho + 20].copy_from_slice(&crc.to_le_bytes());
    }
}
