//! `manifest.json`: what an image holds, and the checks that make a hostile or damaged
//! manifest an error instead of a panic, a huge allocation or a write outside the disk.
//!
//! The format is described for people in `docs/image-format.md`; keep both in step and bump
//! [`FORMAT_VERSION`] for any change an older reader would misunderstand.

use std::collections::HashSet;

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

/// The value of `format`.
pub const FORMAT_NAME: &str = "sysclone-image";
/// The highest version this code reads. It writes version 1 unless the image references a
/// base image (an incremental save), which is version 2.
pub const FORMAT_VERSION: u32 = 2;
/// The manifest's file name inside an image directory.
pub const MANIFEST: &str = "manifest.json";
/// A `sha256sum`-format file holding the manifest's own hash.
pub const MANIFEST_SUM: &str = "manifest.json.sha256";
/// A minisign signature of the manifest's bytes (`minisign -Sm manifest.json` writes it;
/// `sysclone save --sign` runs that). The manifest names every chunk's SHA-256, so a good
/// signature vouches for every byte a restore writes (docs/image-format.md, "Signatures").
pub const MANIFEST_SIG: &str = "manifest.json.minisig";
/// The largest chunk a reader accepts (uncompressed bytes): bounds a reader's memory.
pub const MAX_CHUNK_BYTES: u64 = 64 << 20;
/// The largest head (sector 0 up to the end of the primary GPT) a reader accepts.
pub const MAX_HEAD_BYTES: u64 = 1 << 20;
/// The largest manifest a reader accepts.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 30;

/// The whole manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    pub format_version: u32,
    /// sysclone's version that wrote the image.
    pub tool_version: String,
    /// Seconds since 1970 (UTC), and the same as ISO 8601 text.
    pub created_unix: u64,
    pub created_utc: String,
    /// Host name of the machine that saved the image, when known.
    pub host: Option<String>,
    pub source: SourceDisk,
    pub table: Table,
    pub partitions: Vec<PartitionInfo>,
    /// Compression of every chunk: always `zstd`.
    pub compression: String,
    pub compression_level: i32,
    /// Hash of every chunk's uncompressed bytes: always `sha256`.
    pub hash: String,
    /// Largest chunk the writer made (uncompressed).
    pub chunk_bytes: u64,
    pub data_files: Vec<DataFile>,
    /// Version 2: images whose data files this one references (an incremental save's base,
    /// and the bases that one references), resolved when the image is opened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bases: Vec<BaseRef>,
    /// Sorted by `offset`, non-overlapping.
    pub chunks: Vec<Chunk>,
}

/// Another image whose data files hold some of this image's chunks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BaseRef {
    /// The base's identity: the SHA-256 of its `manifest.json` (what its `manifest.json.sha256`
    /// holds). A base at `location` with another manifest is refused.
    pub id: String,
    /// Where it is, relative to this image's location (`../monday`).
    pub location: String,
    /// When the base was saved (informative).
    pub created_utc: String,
    /// The base's data files, as its manifest lists them.
    pub data_files: Vec<DataFile>,
}

/// The disk the image was saved from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceDisk {
    /// Kernel name at save time (`nvme0n1`); informative only.
    pub name: String,
    pub bus: String,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub wwn: Option<String>,
    pub size_bytes: u64,
    pub logical_sector: u32,
    pub physical_sector: u32,
}

/// The partition table and the bytes that rebuild it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// `gpt`, `mbr` or `none`.
    pub kind: String,
    /// GPT disk GUID, or MBR signature as `0xNNNNNNNN`.
    pub disk_guid: Option<String>,
    /// The disk's first bytes: sector 0 and, with GPT, the primary header and entry array,
    /// exactly as they were on the source (lowercase hex). Written last on restore.
    pub head_hex: String,
    /// SHA-256 of those bytes.
    pub head_sha256: String,
}

/// One partition, as the table and its filesystem describe it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PartitionInfo {
    pub number: u32,
    /// Bytes from the disk start.
    pub start: u64,
    pub size: u64,
    /// GPT type GUID (upper-case text) or MBR type `0xNN`.
    pub type_guid: String,
    pub type_name: String,
    /// GPT unique partition GUID (or MBR `SIG-NN`).
    pub unique_guid: Option<String>,
    /// GPT partition name.
    pub name: Option<String>,
    /// GPT attribute flags.
    pub attributes: u64,
    pub fs: Option<FsInfo>,
    /// `used` (the filesystem's used blocks), `whole` (every byte) or `none` (left out).
    pub stored: String,
    /// Why it is stored whole, or left out.
    pub note: Option<String>,
    /// Bytes of this partition held in chunks.
    pub stored_bytes: u64,
    /// With `stored = used`: the used extents `[start, length]`, relative to the partition.
    pub extents: Vec<(u64, u64)>,
}

/// A filesystem as its superblock names it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FsInfo {
    pub kind: String,
    pub label: Option<String>,
    pub uuid: Option<String>,
}

/// One data file: concatenated zstd frames, one per chunk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataFile {
    /// `data-NNNNN.zst`.
    pub name: String,
    pub bytes: u64,
}

/// One chunk: a contiguous piece of the disk, compressed as one zstd frame.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Chunk {
    /// Byte offset on the disk.
    pub offset: u64,
    /// Uncompressed length.
    pub len: u64,
    /// The partition it belongs to; `null` for the area before the first partition.
    pub partition: Option<u32>,
    /// Index into `data_files`.
    pub file: u32,
    pub file_offset: u64,
    pub compressed_len: u64,
    /// SHA-256 of the uncompressed bytes (lowercase hex).
    pub sha256: String,
    /// Version 2: index into `bases` when the frame lies in a base image's data file (`file`
    /// then indexes that base's `data_files`); absent when it is in this image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<u32>,
    /// Source ranges `[disk offset, length]` inside this chunk that could not be read
    /// (stored as zeros). Absent when everything was read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<(u64, u64)>,
}

/// The name of data file `i`.
pub fn data_file_name(i: usize) -> String {
    format!("data-{i:05}.zst")
}

/// Lowercase hex.
pub fn to_hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(DIGITS[(x >> 4) as usize] as char);
        s.push(DIGITS[(x & 15) as usize] as char);
    }
    s
}

/// Lowercase hex back to bytes.
pub fn from_hex(s: &str) -> Result<Vec<u8>> {
    ensure!(s.len() % 2 == 0, "hex text of odd length {}", s.len());
    let nibble = |c: u8| -> Result<u8> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            _ => bail!("{:?} is not a lowercase hex digit", c as char),
        }
    };
    s.as_bytes().chunks(2).map(|p| Ok(nibble(p[0])? << 4 | nibble(p[1])?)).collect()
}

/// SHA-256 as lowercase hex.
pub use sysclone_net::http::sha256_hex;

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// `2026-11-24T22:39:39Z` for seconds since 1970.
pub fn utc_text(unix: u64) -> String {
    let (y, m, d, hh, mm, ss) = sysclone_disk::utc_from_unix(unix);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

impl Manifest {
    /// Parse and check a manifest. Every error names what is wrong and where.
    pub fn parse(text: &[u8]) -> Result<Manifest> {
        ensure!(text.len() as u64 <= MAX_MANIFEST_BYTES, "manifest of {} bytes is larger than any sysclone writes", text.len());
        // The version first, so a newer image gets a clear message rather than a field error.
        #[derive(Deserialize)]
        struct Head {
            format: Option<String>,
            format_version: Option<u32>,
        }
        let head: Head = serde_json::from_slice(text).context("manifest is not valid JSON")?;
        ensure!(head.format.as_deref() == Some(FORMAT_NAME), "not a sysclone image manifest (format {:?})", head.format);
        match head.format_version {
            Some(v) if v > FORMAT_VERSION => bail!("image format version {v} is newer than this sysclone reads ({FORMAT_VERSION}); use a newer sysclone"),
            Some(0) | None => bail!("manifest has no valid format_version"),
            _ => {}
        }
        let m: Manifest = serde_json::from_slice(text).with_context(|| format!("manifest does not match format version {}", head.format_version.unwrap_or(0)))?;
        m.check()?;
        Ok(m)
    }

    /// The manifest as written to disk.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a manifest always serializes") + "\n"
    }

    /// The head bytes (sector 0 up to the end of the primary GPT).
    pub fn head(&self) -> Result<Vec<u8>> {
        let h = from_hex(&self.table.head_hex).context("table.head_hex")?;
        ensure!(sha256_hex(&h) == self.table.head_sha256, "table.head_hex does not match table.head_sha256: the partition table bytes are damaged");
        Ok(h)
    }

    /// Which partition (or area) a chunk belongs to, for messages.
    pub fn chunk_place(&self, i: usize) -> String {
        let Some(c) = self.chunks.get(i) else { return format!("chunk {i} (no such chunk)") };
        let part = match c.partition {
            Some(n) => format!("partition {n}"),
            None => "the area before the first partition".to_string(),
        };
        let base = c.base.and_then(|b| self.bases.get(b as usize)).map(|b| format!(" of base image {}", b.location)).unwrap_or_default();
        format!("chunk {i} ({part}, disk offset {}, {} bytes, in {}{base} at {})", c.offset, c.len, self.files_of(c).get(c.file as usize).map(|f| f.name.as_str()).unwrap_or("?"), c.file_offset)
    }

    /// Bytes held in chunks.
    pub fn stored_bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.len).sum()
    }

    /// Source ranges that could not be read when the image was saved (stored as zeros).
    pub fn unreadable(&self) -> Vec<(u64, u64)> {
        self.chunks.iter().flat_map(|c| c.unreadable.iter().copied()).collect()
    }

    /// Compressed bytes of every chunk (in this image's data files and its bases').
    pub fn compressed_bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.compressed_len).sum()
    }

    /// Compressed bytes held in this image's own data files.
    pub fn own_compressed_bytes(&self) -> u64 {
        self.chunks.iter().filter(|c| c.base.is_none()).map(|c| c.compressed_len).sum()
    }

    /// The data files a chunk's frame lies in (this image's, or its base's).
    pub fn files_of(&self, c: &Chunk) -> &[DataFile] {
        match c.base {
            None => &self.data_files,
            Some(b) => self.bases.get(b as usize).map(|b| b.data_files.as_slice()).unwrap_or(&[]),
        }
    }

    /// The least target size that holds every partition, chunk and the relocated backup GPT.
    pub fn min_target_bytes(&self) -> u64 {
        let lbs = self.source.logical_sector as u64;
        let parts = self.partitions.iter().map(|p| p.start + p.size).max().unwrap_or(0);
        let chunks = self.chunks.last().map(|c| c.offset + c.len).unwrap_or(0);
        let backup = if self.table.kind == "gpt" { 33 * lbs.max(512) } else { 0 };
        (parts + backup).max(chunks).max(self.table.head_hex.len() as u64 / 2)
    }

    /// Every rule a reader relies on. Pure; no file is read.
    pub fn check(&self) -> Result<()> {
        ensure!(self.format == FORMAT_NAME, "format is {:?}, not {FORMAT_NAME:?}", self.format);
        ensure!((1..=FORMAT_VERSION).contains(&self.format_version), "format_version {} is not readable here", self.format_version);
        ensure!(self.compression == "zstd", "compression {:?} is not supported (only zstd)", self.compression);
        ensure!(self.hash == "sha256", "hash {:?} is not supported (only sha256)", self.hash);
        let s = &self.source;
        ensure!(matches!(s.logical_sector, 512 | 4096), "source.logical_sector {} is not 512 or 4096", s.logical_sector);
        let lbs = s.logical_sector as u64;
        ensure!(s.size_bytes >= lbs && s.size_bytes % lbs == 0, "source.size_bytes {} is not a whole number of {lbs}-byte sectors", s.size_bytes);
        ensure!(matches!(self.table.kind.as_str(), "gpt" | "mbr" | "none"), "table.kind {:?} is not gpt, mbr or none", self.table.kind);
        let head_len = self.table.head_hex.len() as u64 / 2;
        ensure!(self.table.head_hex.len() % 2 == 0 && head_len >= lbs && head_len <= MAX_HEAD_BYTES && head_len <= s.size_bytes, "table.head_hex holds {head_len} bytes, not between one sector and {MAX_HEAD_BYTES}");
        ensure!(is_sha256_hex(&self.table.head_sha256), "table.head_sha256 is not a SHA-256 in lowercase hex");
        self.head()?;
        let mut numbers = HashSet::new();
        for p in &self.partitions {
            let who = format!("partition {}", p.number);
            ensure!(numbers.insert(p.number), "{who} is listed twice");
            let end = p.start.checked_add(p.size).filter(|&e| e <= s.size_bytes);
            ensure!(end.is_some() && p.size > 0 && p.start % lbs == 0 && p.size % lbs == 0, "{who} ({}+{} bytes) does not lie on whole sectors within the disk ({} bytes)", p.start, p.size, s.size_bytes);
            ensure!(matches!(p.stored.as_str(), "used" | "whole" | "none"), "{who}: stored {:?} is not used, whole or none", p.stored);
            for &(a, l) in &p.extents {
                ensure!(a.checked_add(l).is_some_and(|e| e <= p.size), "{who}: extent {a}+{l} lies outside the partition");
            }
        }
        for (i, f) in self.data_files.iter().enumerate() {
            ensure!(f.name == data_file_name(i), "data file {i} is named {:?}, expected {:?}", f.name, data_file_name(i));
        }
        ensure!(self.format_version >= 2 || self.bases.is_empty(), "bases need format_version 2");
        for (b, base) in self.bases.iter().enumerate() {
            ensure!(is_sha256_hex(&base.id), "base {b}: id {:?} is not a SHA-256 in lowercase hex", base.id);
            crate::source::check_relative(&base.location).with_context(|| format!("base {b}"))?;
            for (i, f) in base.data_files.iter().enumerate() {
                ensure!(f.name == data_file_name(i), "base {b}: data file {i} is named {:?}, expected {:?}", f.name, data_file_name(i));
            }
        }
        ensure!(self.chunk_bytes > 0 && self.chunk_bytes <= MAX_CHUNK_BYTES, "chunk_bytes {} is not in 1..={MAX_CHUNK_BYTES}", self.chunk_bytes);
        let mut prev_end = head_len;
        for (i, c) in self.chunks.iter().enumerate() {
            let who = format!("chunk {i}");
            ensure!(c.len > 0 && c.len <= self.chunk_bytes, "{who}: length {} is not in 1..={}", c.len, self.chunk_bytes);
            let end = c.offset.checked_add(c.len).filter(|&e| e <= s.size_bytes);
            let Some(end) = end else { bail!("{who}: {}+{} bytes lies outside the disk ({} bytes)", c.offset, c.len, s.size_bytes) };
            ensure!(c.offset >= prev_end, "{who} at disk offset {} overlaps the one before it or the table head (which ends at {prev_end}); chunks must be sorted", c.offset);
            prev_end = end;
            if let Some(n) = c.partition {
                let p = self.partitions.iter().find(|p| p.number == n);
                ensure!(p.is_some_and(|p| c.offset >= p.start && end <= p.start + p.size), "{who} at disk offset {} is not inside partition {n}", c.offset);
            }
            ensure!(c.base.is_none_or(|b| (b as usize) < self.bases.len()), "{who}: base {:?} is not listed", c.base);
            let f = self.files_of(c).get(c.file as usize);
            let Some(f) = f else { bail!("{who}: data file {} is not listed", c.file) };
            ensure!(c.compressed_len > 0 && c.compressed_len <= zstd::zstd_safe::compress_bound(c.len as usize) as u64, "{who}: compressed length {} is impossible for {} bytes", c.compressed_len, c.len);
            ensure!(c.file_offset.checked_add(c.compressed_len).is_some_and(|e| e <= f.bytes), "{who}: {}+{} lies outside {} ({} bytes)", c.file_offset, c.compressed_len, f.name, f.bytes);
            ensure!(is_sha256_hex(&c.sha256), "{who}: sha256 {:?} is not a SHA-256 in lowercase hex", c.sha256);
            for &(a, l) in &c.unreadable {
                ensure!(a >= c.offset && a.checked_add(l).is_some_and(|e| e <= end), "{who}: unreadable range {a}+{l} lies outside the chunk");
            }
        }
        self.check_coverage()
    }

    /// Every byte the manifest says was stored lies in some chunk: the boot area and, per
    /// partition, its used extents (rounded out to sectors, as saved) or all of it. A chunk
    /// entry dropped from a manifest would otherwise leave an unnoticed hole on restore.
    fn check_coverage(&self) -> Result<()> {
        let lbs = self.source.logical_sector as u64;
        let covered = |start: u64, end: u64| -> bool {
            let mut i = self.chunks.partition_point(|c| c.offset + c.len <= start);
            let mut pos = start;
            while pos < end {
                match self.chunks.get(i) {
                    Some(c) if c.offset <= pos => pos = c.offset + c.len,
                    _ => return false,
                }
                i += 1;
            }
            true
        };
        let head_end = self.table.head_hex.len() as u64 / 2;
        let boot_end = self.partitions.iter().map(|p| p.start).min().unwrap_or(self.source.size_bytes);
        ensure!(head_end >= boot_end || covered(head_end, boot_end), "bytes {head_end}..{boot_end} (the area before the first partition) are in no chunk: chunk entries are missing from the manifest");
        for p in &self.partitions {
            let ranges: Vec<(u64, u64)> = match p.stored.as_str() {
                "whole" => vec![(0, p.size)],
                "used" => p.extents.iter().map(|&(a, l)| (a / lbs * lbs, (a + l).div_ceil(lbs).saturating_mul(lbs).min(p.size))).collect(),
                _ => Vec::new(),
            };
            for (a, b) in ranges {
                ensure!(covered(p.start + a, p.start + b), "partition {}: bytes {}..{} (stored {}) are in no chunk: chunk entries are missing from the manifest", p.number, p.start + a, p.start + b, p.stored);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Manifest {
        let head = vec![0u8; 1024];
        Manifest {
            format: FORMAT_NAME.into(),
            format_version: 1,
            tool_version: "0.1.0".into(),
            created_unix: 0,
            created_utc: utc_text(0),
            host: Some("h".into()),
            source: SourceDisk { name: "vda".into(), bus: "virtio".into(), model: None, serial: Some("S".into()), wwn: None, size_bytes: 64 << 20, logical_sector: 512, physical_sector: 512 },
            table: Table { kind: "gpt".into(), disk_guid: None, head_hex: to_hex(&head), head_sha256: sha256_hex(&head) },
            partitions: vec![PartitionInfo {
                number: 1,
                start: 1 << 20,
                size: 32 << 20,
                type_guid: "0FC63DAF-8483-4772-8E79-3D69D8477DE4".into(),
                type_name: "Linux filesystem".into(),
                unique_guid: None,
                name: Some("root".into()),
                attributes: 0,
                fs: Some(FsInfo { kind: "ext4".into(), label: None, uuid: None }),
                stored: "used".into(),
                note: None,
                stored_bytes: 8192,
                extents: vec![(0, 8192)],
            }],
            compression: "zstd".into(),
            compression_level: 3,
            hash: "sha256".into(),
            chunk_bytes: 4 << 20,
            data_files: vec![DataFile { name: data_file_name(0), bytes: 100 }],
            bases: vec![],
            chunks: vec![
                Chunk { offset: 1024, len: (1 << 20) - 1024, partition: None, file: 0, file_offset: 0, compressed_len: 50, sha256: "0".repeat(64), base: None, unreadable: vec![] },
                Chunk { offset: 1 << 20, len: 8192, partition: Some(1), file: 0, file_offset: 50, compressed_len: 50, sha256: "a".repeat(64), base: None, unreadable: vec![(1 << 20, 512)] },
            ],
        }
    }

    #[test]
    fn round_trip_and_dates() {
        let m = sample();
        assert_eq!(Manifest::parse(m.to_json().as_bytes()).unwrap(), m);
        assert_eq!(utc_text(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_text(1_795_041_579), "2026-11-18T22:39:39Z");
        assert_eq!(utc_text(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(from_hex(&to_hex(&[0, 0xab, 0xff])).unwrap(), vec![0, 0xab, 0xff]);
        assert!(from_hex("0g").is_err() && from_hex("abc").is_err());
    }

    fn refused(edit: impl Fn(&mut Manifest), want: &str) {
        let mut m = sample();
        edit(&mut m);
        let e = format!("{:#}", Manifest::parse(m.to_json().as_bytes()).unwrap_err());
        assert!(e.contains(want), "expected {want:?} in: {e}");
    }

    #[test]
    fn refuses_inconsistent_manifests() {
        refused(|m| m.format_version = 3, "newer than this sysclone reads");
        refused(|m| m.chunks[1].base = Some(0), "chunk 1: base Some(0) is not listed");
        refused(|m| m.chunks[1].offset = u64::MAX - 10, "outside the disk");
        refused(|m| m.chunks[1].len = u64::MAX, "is not in 1..=");
        refused(|m| m.chunks[1].offset = 17408, "overlaps");
        refused(|m| m.chunks[1].partition = Some(7), "not inside partition 7");
        refused(|m| m.chunks[1].file = 3, "data file 3 is not listed");
        refused(|m| m.chunks[1].compressed_len = 1 << 40, "impossible");
        refused(|m| m.chunks[1].file_offset = 90, "lies outside data-00000.zst");
        refused(|m| m.chunks[0].sha256 = "XYZ".into(), "not a SHA-256");
        refused(|m| m.data_files[0].name = "../../etc/passwd".into(), "expected \"data-00000.zst\"");
        refused(|m| m.partitions[0].size = 1 << 40, "within the disk");
        refused(|m| m.partitions[0].extents.push((1 << 30, 1)), "outside the partition");
        refused(|m| m.source.logical_sector = 0, "not 512 or 4096");
        refused(|m| m.table.head_hex = "zz".repeat(600), "hex");
        refused(|m| m.chunk_bytes = u64::MAX, "chunk_bytes");
        refused(|m| m.chunks[1].unreadable = vec![(0, 512)], "unreadable range 0+512 lies outside");
        refused(|m| drop(m.chunks.remove(1)), "partition 1: bytes 1048576..1056768 (stored used) are in no chunk");
        refused(|m| drop(m.chunks.remove(0)), "bytes 1024..1048576 (the area before the first partition) are in no chunk");
        refused(|m| m.partitions[0].stored = "whole".into(), "partition 1: bytes 1048576..34603008 (stored whole)");
        let e = Manifest::parse(b"{\"format\":\"sysclone-image\",\"format_version\":1,\"extra\":1}").unwrap_err();
        assert!(format!("{e:#}").contains("does not match"), "{e:#}");
        assert!(Manifest::parse(b"[]").is_err() && Manifest::parse(b"").is_err() && Manifest::parse(b"{}").is_err());
    }

    /// Random byte changes, truncations and numbers at the edges: errors, never panics.
    #[test]
    fn hostile_text_never_panics() {
        let text = sample().to_json().into_bytes();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..4000 {
            let mut t = text.clone();
            match round % 4 {
                0 => {
                    let i = next() as usize % t.len();
                    t[i] = next() as u8;
                }
                1 => t.truncate(next() as usize % t.len()),
                2 => {
                    // A digit run replaced by a huge or negative number.
                    let i = next() as usize % t.len();
                    if t[i].is_ascii_digit() {
                        let repl: &[u8] = [&b"18446744073709551615"[..], b"-1", b"1e309", b"4294967296"][next() as usize % 4];
                        t.splice(i..i + 1, repl.iter().copied());
                    }
                }
                _ => {
                    let i = next() as usize % t.len();
                    let j = (i + next() as usize % 64).min(t.len());
                    t.drain(i..j);
                }
            }
            if let Ok(m) = Manifest::parse(&t) {
                // Whatever parses must be safe to use.
                let _ = m.min_target_bytes();
                let _ = m.head();
                for i in 0..m.chunks.len() + 1 {
                    let _ = m.chunk_place(i);
                }
            }
        }
    }
}
