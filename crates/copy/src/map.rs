//! The rescue map: which byte ranges are copied, still to do, or unreadable, in GNU
//! ddrescue's mapfile format, so a clone can be resumed and the map read by ddrescue's tools.
//!
//! Status characters (ddrescue): `?` non-tried, `*` non-trimmed (a large read failed here),
//! `/` non-scraped, `-` bad sector (unreadable after retries), `+` finished.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Status of a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    NonTried,
    NonTrimmed,
    NonScraped,
    Bad,
    Finished,
}

impl Status {
    pub fn char(self) -> char {
        match self {
            Status::NonTried => '?',
            Status::NonTrimmed => '*',
            Status::NonScraped => '/',
            Status::Bad => '-',
            Status::Finished => '+',
        }
    }
    fn from_char(c: char) -> Option<Status> {
        Some(match c {
            '?' => Status::NonTried,
            '*' => Status::NonTrimmed,
            '/' => Status::NonScraped,
            '-' => Status::Bad,
            '+' => Status::Finished,
            _ => return None,
        })
    }
}

/// A map over `[0, size)`; every byte has exactly one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RescueMap {
    size: u64,
    /// start → (len, status); contiguous, non-overlapping, merged.
    ranges: BTreeMap<u64, (u64, Status)>,
    /// Free text for the header (e.g. which source and target).
    pub comment: String,
}

impl RescueMap {
    /// A map of `size` bytes, all non-tried.
    pub fn new(size: u64) -> RescueMap {
        let mut ranges = BTreeMap::new();
        if size > 0 {
            ranges.insert(0, (size, Status::NonTried));
        }
        RescueMap { size, ranges, comment: String::new() }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Set `[start, start+len)` to `status`.
    pub fn mark(&mut self, start: u64, len: u64, status: Status) {
        let end = (start + len).min(self.size);
        if start >= end {
            return;
        }
        // Split the ranges that straddle start and end.
        for cut in [start, end] {
            if let Some((&s, &(l, st))) = self.ranges.range(..=cut).next_back() {
                if s < cut && cut < s + l {
                    self.ranges.insert(s, (cut - s, st));
                    self.ranges.insert(cut, (s + l - cut, st));
                }
            }
        }
        let inside: Vec<u64> = self.ranges.range(start..end).map(|(&s, _)| s).collect();
        for s in inside {
            self.ranges.remove(&s);
        }
        self.ranges.insert(start, (end - start, status));
        self.merge_around(start, end);
    }

    fn merge_around(&mut self, start: u64, end: u64) {
        let first = self.ranges.range(..start).next_back().map(|(&s, _)| s).unwrap_or(start);
        let keys: Vec<u64> = self.ranges.range(first..=end).map(|(&s, _)| s).collect();
        let mut prev: Option<u64> = None;
        for k in keys {
            if let Some(p) = prev {
                let (pl, ps) = self.ranges[&p];
                let (kl, ks) = self.ranges[&k];
                if ps == ks && p + pl == k {
                    self.ranges.insert(p, (pl + kl, ps));
                    self.ranges.remove(&k);
                    continue;
                }
            }
            prev = Some(k);
        }
    }

    /// Ranges with this status, in order.
    pub fn ranges_with(&self, status: Status) -> Vec<(u64, u64)> {
        self.ranges.iter().filter(|(_, (_, s))| *s == status).map(|(&s, &(l, _))| (s, l)).collect()
    }

    /// Parts of `[start, start+len)` not yet finished.
    pub fn unfinished_within(&self, start: u64, len: u64) -> Vec<(u64, u64)> {
        let end = start + len;
        let mut out = Vec::new();
        let from = self.ranges.range(..=start).next_back().map(|(&s, _)| s).unwrap_or(0);
        for (&s, &(l, st)) in self.ranges.range(from..end) {
            let (a, b) = (s.max(start), (s + l).min(end));
            if a < b && st != Status::Finished {
                match out.last_mut() {
                    Some((ps, pl)) if *ps + *pl == a => *pl += b - a,
                    _ => out.push((a, b - a)),
                }
            }
        }
        out
    }

    /// Total bytes with this status.
    pub fn bytes_with(&self, status: Status) -> u64 {
        self.ranges_with(status).iter().map(|r| r.1).sum()
    }

    /// The mapfile text.
    pub fn to_text(&self, current_pos: u64, pass: u32) -> String {
        let mut s = String::new();
        s.push_str(&format!("# Mapfile. Created by sysclone {}\n", env!("CARGO_PKG_VERSION")));
        for line in self.comment.lines() {
            s.push_str(&format!("# {line}\n"));
        }
        s.push_str("# current_pos  current_status  current_pass\n");
        s.push_str(&format!("0x{current_pos:08X}     +               {pass}\n"));
        s.push_str("#      pos        size  status\n");
        for (&st, &(l, status)) in &self.ranges {
            s.push_str(&format!("0x{st:08X}  0x{l:08X}  {}\n", status.char()));
        }
        s
    }

    /// Parse a mapfile. Every byte of `[0, size)` must be covered exactly once.
    pub fn parse(text: &str) -> Result<RescueMap> {
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        let comment = text.lines().filter_map(|l| l.strip_prefix("# ")).filter(|l| !l.starts_with("Mapfile") && !l.contains("current_pos") && !l.contains("pos        size")).collect::<Vec<_>>().join("\n");
        lines.next().context("mapfile has no status line")?;
        let num = |s: &str, n: usize| -> Result<u64> {
            let v = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"));
            match v {
                Some(h) => u64::from_str_radix(h, 16),
                None => s.parse::<u64>(),
            }
            .with_context(|| format!("mapfile line {n}: bad number {s:?}"))
        };
        let mut ranges = BTreeMap::new();
        let mut expect = 0u64;
        for (i, l) in lines {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 3 {
                bail!("mapfile line {}: expected `pos size status`", i + 1);
            }
            let (pos, size) = (num(f[0], i + 1)?, num(f[1], i + 1)?);
            let st = f[2].chars().next().and_then(Status::from_char).with_context(|| format!("mapfile line {}: bad status {:?}", i + 1, f[2]))?;
            if pos != expect || size == 0 {
                bail!("mapfile line {}: block at 0x{pos:X} does not follow the previous one (expected 0x{expect:X})", i + 1);
            }
            ranges.insert(pos, (size, st));
            expect = pos.checked_add(size).context("mapfile: size overflows")?;
        }
        Ok(RescueMap { size: expect, ranges, comment })
    }

    /// Write the map atomically (temp file, fsync, rename).
    pub fn save(&self, path: &Path, current_pos: u64, pass: u32) -> Result<()> {
        let tmp = path.with_extension("tmp");
        let mut f = fs::File::create(&tmp).with_context(|| format!("writing map {}", tmp.display()))?;
        f.write_all(self.to_text(current_pos, pass).as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path).with_context(|| format!("renaming map to {}", path.display()))?;
        Ok(())
    }

    pub fn load(path: &Path) -> Result<RescueMap> {
        let text = fs::read_to_string(path).with_context(|| format!("reading map {}", path.display()))?;
        RescueMap::parse(&text).with_context(|| format!("map {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_split_merge() {
        let mut m = RescueMap::new(100);
        m.mark(10, 20, Status::Finished);
        m.mark(30, 10, Status::Finished);
        assert_eq!(m.ranges_with(Status::Finished), vec![(10, 30)]);
        m.mark(15, 2, Status::Bad);
        assert_eq!(m.ranges_with(Status::Finished), vec![(10, 5), (17, 23)]);
        assert_eq!(m.ranges_with(Status::Bad), vec![(15, 2)]);
        assert_eq!(m.ranges_with(Status::NonTried), vec![(0, 10), (40, 60)]);
        assert_eq!(m.unfinished_within(0, 50), vec![(0, 10), (15, 2), (40, 10)]);
        m.mark(0, 100, Status::Finished);
        assert_eq!(m.ranges_with(Status::Finished), vec![(0, 100)]);
        m.mark(90, 50, Status::Bad);
        assert_eq!(m.ranges_with(Status::Bad), vec![(90, 10)]);
    }

    #[test]
    fn text_round_trip() {
        let mut m = RescueMap::new(1 << 20);
        m.comment = "source: SRC1\ntarget: TGT1".into();
        m.mark(4096, 512, Status::Bad);
        m.mark(0, 4096, Status::Finished);
        let t = m.to_text(0, 1);
        assert!(t.contains("0x00001000  0x00000200  -"), "{t}");
        let back = RescueMap::parse(&t).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn bad_maps_are_errors() {
        assert!(RescueMap::parse("").is_err());
        assert!(RescueMap::parse("0x0 + 1\n0x0 0x10 +\n0x20 0x10 +\n").is_err());
        assert!(RescueMap::parse("0x0 + 1\n0x0 0x10 x\n").is_err());
        assert!(RescueMap::parse("0x0 + 1\n0x0 0xFFFFFFFFFFFFFFFF +\n0xFFFFFFFFFFFFFFFF 0x10 +\n").is_err());
        let m = RescueMap::parse("0x0 + 1\n0x0 0x10 +\n0x10 0x10 ?\n").unwrap();
        assert_eq!(m.size(), 32);
    }
}
