//! Collecting used byte ranges with bounded memory.

use crate::Extent;

/// The most extents a map holds. Past it, the closest neighbours are merged (the gap
/// between them is copied too), so memory stays bounded whatever the bitmaps say.
pub const MAX_EXTENTS: usize = 1 << 19;

/// Used ranges of a partition of `limit` bytes, added in any order.
pub(crate) struct ExtentSet {
    limit: u64,
    /// `(start, end)` pairs; sorted and merged up to `sorted`, appended after it.
    v: Vec<(u64, u64)>,
    sorted: usize,
    /// Gaps up to this many bytes are merged away (0 = only touching ranges merge).
    gap: u64,
    max: usize,
}

impl ExtentSet {
    pub fn new(limit: u64) -> Self {
        Self::with_max(limit, MAX_EXTENTS)
    }

    pub fn with_max(limit: u64, max: usize) -> Self {
        ExtentSet { limit, v: Vec::new(), sorted: 0, gap: 0, max: max.max(1) }
    }

    /// Mark `[start, start + len)` used; clipped to the partition.
    pub fn add(&mut self, start: u64, len: u64) {
        let end = start.saturating_add(len).min(self.limit);
        if start >= end {
            return;
        }
        // Fast path: input that arrives in order (bitmaps walked front to back).
        if self.sorted == self.v.len() {
            if let Some(last) = self.v.last_mut() {
                if start >= last.0 && start <= last.1.saturating_add(self.gap) {
                    last.1 = last.1.max(end);
                    return;
                }
                if start > last.1 {
                    self.v.push((start, end));
                    self.sorted = self.v.len();
                    self.bound();
                    return;
                }
            } else {
                self.v.push((start, end));
                self.sorted = 1;
                return;
            }
        }
        self.v.push((start, end));
        if self.v.len() >= 2 * self.max {
            self.normalize();
        }
    }

    /// Mark `[start, end)` used.
    pub fn add_range(&mut self, start: u64, end: u64) {
        self.add(start, end.saturating_sub(start));
    }

    fn bound(&mut self) {
        if self.v.len() > self.max {
            self.normalize();
        }
    }

    /// Sort, merge, and coarsen until at most `max` extents remain.
    fn normalize(&mut self) {
        self.v.sort_unstable();
        self.merge();
        while self.v.len() > self.max {
            self.gap = (self.gap * 2).max(4096);
            self.merge();
        }
        self.sorted = self.v.len();
    }

    fn merge(&mut self) {
        let gap = self.gap;
        let mut out = 0usize;
        for i in 0..self.v.len() {
            let (s, e) = self.v[i];
            if out > 0 && s <= self.v[out - 1].1.saturating_add(gap) {
                self.v[out - 1].1 = self.v[out - 1].1.max(e);
            } else {
                self.v[out] = (s, e);
                out += 1;
            }
        }
        self.v.truncate(out);
    }

    /// The extents (sorted, merged, within the partition) and their total length.
    pub fn finish(mut self) -> (Vec<Extent>, u64) {
        self.normalize();
        let ext: Vec<Extent> = self.v.iter().map(|&(s, e)| Extent { start: s, len: e - s }).collect();
        let used = ext.iter().map(|e| e.len).sum();
        (ext, used)
    }
}

/// Add the runs of set bits of `bitmap` (LSB first): bit `i` covers
/// `[base + i * unit, base + (i + 1) * unit)`, for `i < nbits`.
pub(crate) fn add_bitmap_runs(set: &mut ExtentSet, bitmap: &[u8], nbits: u64, base: u64, unit: u64) {
    let nbits = nbits.min(bitmap.len() as u64 * 8);
    let mut i = 0u64;
    let mut run: Option<u64> = None;
    while i < nbits {
        let byte = bitmap[(i / 8) as usize];
        // Whole bytes at once when aligned and uniform.
        if i % 8 == 0 && i + 8 <= nbits && (byte == 0 || byte == 0xff) {
            match (byte, run) {
                (0, Some(r)) => {
                    set.add(base.saturating_add(r.saturating_mul(unit)), (i - r).saturating_mul(unit));
                    run = None;
                }
                (0xff, None) => run = Some(i),
                _ => {}
            }
            i += 8;
            continue;
        }
        let bit = byte >> (i % 8) & 1 == 1;
        match (bit, run) {
            (false, Some(r)) => {
                set.add(base.saturating_add(r.saturating_mul(unit)), (i - r).saturating_mul(unit));
                run = None;
            }
            (true, None) => run = Some(i),
            _ => {}
        }
        i += 1;
    }
    if let Some(r) = run {
        set.add(base.saturating_add(r.saturating_mul(unit)), (nbits - r).saturating_mul(unit));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(v: &[(u64, u64)]) -> Vec<Extent> {
        v.iter().map(|&(s, l)| Extent { start: s, len: l }).collect()
    }

    #[test]
    fn merges_sorts_and_clips() {
        let mut s = ExtentSet::new(100);
        s.add(50, 10);
        s.add(0, 10);
        s.add(10, 5);
        s.add(55, 20);
        s.add(95, 50);
        s.add(200, 5);
        s.add(3, 0);
        let (e, used) = s.finish();
        assert_eq!(e, ex(&[(0, 15), (50, 25), (95, 5)]));
        assert_eq!(used, 45);
    }

    #[test]
    fn coarsens_past_the_limit() {
        let mut s = ExtentSet::with_max(10_000_000, 100);
        for i in 0..1000u64 {
            s.add(i * 8192, 512);
        }
        let (e, used) = s.finish();
        assert!(e.len() <= 100, "{}", e.len());
        // Every original byte is still covered.
        for i in 0..1000u64 {
            let b = i * 8192;
            assert!(e.iter().any(|x| x.start <= b && b + 512 <= x.end()));
        }
        assert!(used >= 512_000);
        for w in e.windows(2) {
            assert!(w[0].end() < w[1].start);
        }
    }

    #[test]
    fn bitmap_runs() {
        let mut s = ExtentSet::new(u64::MAX);
        // bits 0,1 set; 8..16 set; 17 set; 20..(24 limit) set
        add_bitmap_runs(&mut s, &[0b0000_0011, 0xff, 0b1111_0010], 24, 1000, 10);
        let (e, _) = s.finish();
        assert_eq!(e, ex(&[(1000, 20), (1080, 80), (1170, 10), (1200, 40)]));
        let mut s = ExtentSet::new(u64::MAX);
        add_bitmap_runs(&mut s, &[0xff, 0xff], 11, 0, 1);
        assert_eq!(s.finish().0, ex(&[(0, 11)]));
        let mut s = ExtentSet::new(u64::MAX);
        add_bitmap_runs(&mut s, &[0xff], 100, 0, 1);
        assert_eq!(s.finish().0, ex(&[(0, 8)]));
    }
}
