//! Saving a disk into an image directory: the plan (pure) and the writer.
//!
//! What is stored is what a smart clone copies (`sysclone_copy::plan_smart`, fed with the
//! same `sysclone-fs` used maps): the area between the partition table and the first
//! partition, and per partition the blocks its filesystem uses (unknown, encrypted or
//! untrusted contents whole). The table head (sector 0, primary GPT) goes into the manifest.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;
use sysclone_copy::{plan_smart, PartitionUse};
use sysclone_disk::{human_bytes, Disk};
use sysclone_layout::migrate::{guid_to_string, name_from_utf16, type_name};
use sysclone_layout::RawGpt;

use crate::manifest::{self, sha256_hex, BaseRef, Chunk, DataFile, FsInfo, Manifest, PartitionInfo, SourceDisk, Table};
use crate::read::Image;
use crate::pool;

/// How to write an image.
#[derive(Debug, Clone)]
pub struct SaveOptions {
    /// zstd level (1–19).
    pub level: i32,
    /// Largest chunk (uncompressed bytes).
    pub chunk_bytes: u64,
    /// A data file is closed before it would pass this size (FAT32 holds files < 4 GiB).
    pub max_file_bytes: u64,
    /// Compression threads.
    pub threads: usize,
    /// An earlier image of the disk (a local directory): chunks it already holds are
    /// referenced, not stored again.
    pub base: Option<PathBuf>,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions { level: 3, chunk_bytes: 4 << 20, max_file_bytes: 4_000_000_000, threads: pool::default_threads(), base: None }
    }
}

/// Where a frame already stored in a base image lies: (index into `bases`, file, offset,
/// compressed length).
type Stored = (u32, u32, u64, u64);

/// The chunks of a base image (and of the images it references), by SHA-256.
struct BaseIndex {
    refs: Vec<BaseRef>,
    by_hash: HashMap<String, Stored>,
}

/// The path from directory `from` to directory `to`, both existing (`../monday`).
fn relative_path(from: &Path, to: &Path) -> Result<String> {
    let (a, b) = (from.canonicalize().with_context(|| format!("resolving {}", from.display()))?, to.canonicalize().with_context(|| format!("resolving {}", to.display()))?);
    let (ac, bc): (Vec<_>, Vec<_>) = (a.components().collect(), b.components().collect());
    let common = ac.iter().zip(&bc).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = vec!["..".to_string(); ac.len() - common];
    parts.extend(bc[common..].iter().map(|c| c.as_os_str().to_string_lossy().into_owned()));
    ensure!(!parts.is_empty(), "the base image is the image being written");
    Ok(parts.join("/"))
}

/// Open the base image `base` for an image written into `dir` and index its chunks.
fn index_base(dir: &Path, base: &Path) -> Result<BaseIndex> {
    let img = Image::open(base).with_context(|| format!("opening the base image {}", base.display()))?;
    let text = img.source.read_small(manifest::MANIFEST, manifest::MAX_MANIFEST_BYTES)?.unwrap_or_default();
    let rel = relative_path(dir, base)?;
    let m = &img.manifest;
    let mut refs = vec![BaseRef { id: sha256_hex(&text), location: rel.clone(), created_utc: m.created_utc.clone(), data_files: m.data_files.clone() }];
    // The base's own bases, located through it.
    for b in &m.bases {
        refs.push(BaseRef { location: format!("{rel}/{}", b.location), ..b.clone() });
    }
    let mut by_hash = HashMap::new();
    for c in &m.chunks {
        let r = c.base.map(|b| b + 1).unwrap_or(0);
        by_hash.entry(c.sha256.clone()).or_insert((r, c.file, c.file_offset, c.compressed_len));
    }
    Ok(BaseIndex { refs, by_hash })
}

/// One byte range of the source to store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Piece {
    pub offset: u64,
    pub len: u64,
    pub partition: Option<u32>,
}

/// What a save will store, computed without reading any data.
#[derive(Debug, Clone, Serialize)]
pub struct SavePlan {
    pub source: SourceDisk,
    pub source_text: String,
    pub table_kind: String,
    pub disk_guid: Option<String>,
    /// Bytes of the head (sector 0 up to the end of the primary GPT).
    pub head_bytes: u64,
    pub partitions: Vec<PartitionInfo>,
    /// Sorted, non-overlapping, each within one partition or before the first.
    pub pieces: Vec<Piece>,
    pub store_bytes: u64,
    pub notes: Vec<String>,
}

fn source_of(src: &Disk) -> SourceDisk {
    SourceDisk {
        name: src.name.clone(),
        bus: src.bus.as_str().into(),
        model: src.model.clone(),
        serial: src.serial.clone(),
        wwn: src.wwn.clone(),
        size_bytes: src.size_bytes,
        logical_sector: src.logical_sector,
        physical_sector: src.physical_sector,
    }
}

/// Plan a save of `src` (primary GPT `gpt`, used maps `uses`), optionally of some partitions
/// only (`only`; the others are listed but not stored).
pub fn plan_save(src: &Disk, gpt: Option<&RawGpt>, uses: &[PartitionUse], only: Option<&[u32]>) -> Result<SavePlan> {
    let lbs = src.logical_sector as u64;
    if let Some(only) = only {
        for n in only {
            ensure!(src.partitions.iter().any(|p| p.number == *n), "source {} has no partition {n}", src.describe());
        }
    }
    let (head_bytes, regions, mut notes) = if src.partitions.is_empty() {
        ensure!(only.is_none(), "source {} has no partitions to choose from", src.describe());
        (lbs, vec![Piece { offset: lbs, len: src.size_bytes - lbs, partition: None }], vec!["no partition table sysclone understands: every byte after sector 0 is stored".to_string()])
    } else {
        let plan = plan_smart(src, gpt, src, uses).with_context(|| format!("planning which blocks of {} to store", src.describe()))?;
        let part_of = |off: u64| src.partitions.iter().find(|p| p.start_bytes <= off && off < p.start_bytes + p.size_bytes).map(|p| p.number);
        let pieces = plan.regions.iter().map(|r| Piece { offset: r.start, len: r.len, partition: part_of(r.start) }).collect();
        (plan.head_bytes, pieces, plan.notes)
    };
    let wanted = |n: u32| only.is_none_or(|o| o.contains(&n));
    let pieces: Vec<Piece> = regions.into_iter().filter(|p| p.partition.is_none_or(wanted)).collect();
    let entry_of = |n: u32| -> Option<&[u8]> {
        let g = gpt?;
        let es = g.header.entry_size as usize;
        g.entries.chunks(es).nth(n.checked_sub(1)? as usize)
    };
    let mut partitions = Vec::new();
    for p in &src.partitions {
        let u = uses.iter().find(|u| u.number == p.number);
        let stored_bytes = pieces.iter().filter(|x| x.partition == Some(p.number)).map(|x| x.len).sum();
        let (stored, note) = match u {
            _ if !wanted(p.number) => ("none", Some("left out (--partitions)".to_string())),
            Some(u) if !u.whole => ("used", u.note.clone()),
            Some(u) => ("whole", u.note.clone().or(Some(u.fs.clone()))),
            None => ("whole", Some("not analysed".into())),
        };
        let e = entry_of(p.number);
        let field = |a: usize, b: usize| e.map(|e| e[a..b].to_vec());
        partitions.push(PartitionInfo {
            number: p.number,
            start: p.start_bytes,
            size: p.size_bytes,
            type_guid: field(0, 16).map(|g| guid_to_string(&g.try_into().expect("16 bytes"))).unwrap_or_else(|| p.type_id.clone()),
            type_name: field(0, 16).map(|g| type_name(&g.try_into().expect("16 bytes"))).unwrap_or_else(|| p.type_name.clone()),
            unique_guid: field(16, 32).map(|g| guid_to_string(&g.try_into().expect("16 bytes"))).or_else(|| p.part_uuid.clone()),
            name: field(56, 128).map(|n| name_from_utf16(&n.try_into().expect("72 bytes"))).or_else(|| p.label.clone()),
            attributes: field(48, 56).map(|a| u64::from_le_bytes(a.try_into().expect("8 bytes"))).unwrap_or(0),
            fs: p.fs.as_ref().map(|f| FsInfo { kind: f.kind.clone(), label: f.label.clone(), uuid: f.uuid.clone() }),
            stored: stored.into(),
            note,
            stored_bytes,
            extents: match u {
                Some(u) if stored == "used" => u.extents.clone(),
                _ => Vec::new(),
            },
        });
        if !wanted(p.number) {
            notes.push(format!("partition {}: left out (--partitions)", p.number));
        }
    }
    let store_bytes = pieces.iter().map(|p| p.len).sum();
    Ok(SavePlan {
        source: source_of(src),
        source_text: src.describe(),
        table_kind: if gpt.is_some() { "gpt".into() } else { src.table.clone() },
        disk_guid: src.disk_guid.clone(),
        head_bytes,
        partitions,
        pieces,
        store_bytes,
        notes,
    })
}

impl SavePlan {
    /// The plan as a person reads it before the save starts.
    pub fn show(&self, dir: &Path) -> String {
        let mut s = format!(
            "save (used blocks only, zstd)\n  source: {}\n  image:  {}\n  store:  {} ({} bytes) of {}\n",
            self.source_text,
            dir.display(),
            human_bytes(self.store_bytes),
            self.store_bytes,
            human_bytes(self.source.size_bytes)
        );
        for n in &self.notes {
            s.push_str(&format!("          {n}\n"));
        }
        s.push_str(&format!("  table:  {} ({} bytes of head kept in the manifest)\n", self.table_kind, self.head_bytes));
        s
    }

    /// Split the pieces into chunks of at most `chunk_bytes`, cut at disk offsets that are
    /// multiples of `chunk_bytes`: a chunk is a piece's part within one cell of that fixed
    /// grid. A change of which blocks are used (a file written) so only changes the chunks of
    /// the cells it touches; an incremental save finds every other chunk in its base.
    pub fn chunks(&self, chunk_bytes: u64) -> Vec<Piece> {
        let mut out = Vec::new();
        for p in &self.pieces {
            let mut off = p.offset;
            while off < p.offset + p.len {
                let cell_end = (off / chunk_bytes + 1) * chunk_bytes;
                let len = (p.offset + p.len).min(cell_end) - off;
                out.push(Piece { offset: off, len, partition: p.partition });
                off += len;
            }
        }
        out
    }
}

/// What a save did.
#[derive(Debug, Clone, Serialize)]
pub struct SaveReport {
    pub image: PathBuf,
    pub source: String,
    /// Bytes of the disk in use (what was stored, uncompressed).
    pub bytes_used: u64,
    /// Bytes written to the data files.
    pub bytes_stored: u64,
    /// bytes_used / bytes_stored.
    pub ratio: f64,
    pub chunks: usize,
    pub data_files: usize,
    pub seconds: f64,
    /// Uncompressed MiB per second.
    pub mib_per_second: f64,
    pub threads: usize,
    pub peak_rss_bytes: u64,
    /// Source ranges `(offset, length)` that could not be read, stored as zeros.
    pub unreadable: Vec<(u64, u64)>,
    /// With a base image: bytes (uncompressed) and chunks found there and referenced.
    pub bytes_shared: u64,
    pub chunks_shared: usize,
}

/// One piece as read from the source.
struct Raw {
    bytes: Vec<u8>,
    /// Ranges that could not be read (zeros in `bytes`).
    unreadable: Vec<(u64, u64)>,
}

/// One piece ready for its data file (or found in the base image: `stored`).
struct Packed {
    zstd: Vec<u8>,
    stored: Option<Stored>,
    sha256: String,
    unreadable: Vec<(u64, u64)>,
}

struct Compressed {
    piece: Piece,
    data: Result<Packed>,
}

/// Attempts per sector before it counts as unreadable.
const SECTOR_TRIES: u32 = 3;

/// Read one piece of the source. A read failing with EIO is retried sector by sector
/// (through O_DIRECT when `direct` is given, so one bad sector does not spoil its neighbours in
/// the page cache); sectors that stay unreadable become zeros and are returned as ranges. Any
/// other error (a device that is gone) stops the save.
fn read_piece(src: &File, direct: Option<&File>, piece: &Piece, sector: u64) -> Result<Raw> {
    let is_eio = |e: &std::io::Error| e.raw_os_error() == Some(nix::libc::EIO);
    let mut buf = vec![0u8; piece.len as usize];
    match src.read_exact_at(&mut buf, piece.offset) {
        Ok(()) => return Ok(Raw { bytes: buf, unreadable: Vec::new() }),
        Err(e) if !is_eio(&e) => return Err(e.into()),
        Err(_) => {}
    }
    let mut bad: Vec<(u64, u64)> = Vec::new();
    let mut one = sysclone_copy::aligned::AlignedBuf::new(sector as usize);
    let f = direct.unwrap_or(src);
    let mut off = piece.offset;
    while off < piece.offset + piece.len {
        let n = sector.min(piece.offset + piece.len - off);
        one.set_len(n as usize);
        let mut ok = false;
        for _ in 0..SECTOR_TRIES {
            match f.read_exact_at(&mut one, off) {
                Ok(()) => ok = true,
                Err(e) if !is_eio(&e) => return Err(anyhow::Error::new(e).context(format!("reading sector at byte {off}"))),
                Err(_) => continue,
            }
            break;
        }
        let at = (off - piece.offset) as usize;
        if ok {
            buf[at..at + n as usize].copy_from_slice(&one);
        } else {
            buf[at..at + n as usize].fill(0);
            match bad.last_mut() {
                Some((s, l)) if *s + *l == off => *l += n,
                _ => bad.push((off, n)),
            }
        }
        off += n;
    }
    Ok(Raw { bytes: buf, unreadable: bad })
}

/// Write the image of `plan` from `src` into `dir` (created; must not hold an image). The
/// manifest is written last, so an interrupted save leaves no manifest and is never taken
/// for an image.
pub fn save(plan: &SavePlan, src: &File, dir: &Path, opts: &SaveOptions, progress: &mut dyn FnMut(u64, u64), host: Option<String>) -> Result<SaveReport> {
    let t0 = Instant::now();
    ensure!(opts.level >= 1 && opts.level <= 19, "zstd level {} is outside 1..=19", opts.level);
    ensure!(opts.chunk_bytes >= 4096 && opts.chunk_bytes <= manifest::MAX_CHUNK_BYTES, "chunk size {} is outside 4 KiB..64 MiB", opts.chunk_bytes);
    fs::create_dir_all(dir).with_context(|| format!("creating image directory {}", dir.display()))?;
    if dir.join(manifest::MANIFEST).exists() {
        bail!("{} already holds an image; choose an empty directory", dir.display());
    }
    let stale = fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?.flatten().any(|e| e.file_name().to_string_lossy().starts_with("data-"));
    if stale {
        bail!("{} holds data files of an unfinished save; remove them or choose an empty directory", dir.display());
    }
    let mut head = vec![0u8; plan.head_bytes as usize];
    src.read_exact_at(&mut head, 0).with_context(|| format!("reading the partition table (first {} bytes) of {}", plan.head_bytes, plan.source_text))?;
    let base = opts.base.as_deref().map(|b| index_base(dir, b)).transpose()?;
    let chunks = plan.chunks(opts.chunk_bytes);
    let total = plan.store_bytes;
    let mut files: Vec<DataFile> = Vec::new();
    let mut out: Option<File> = None;
    let mut records: Vec<Chunk> = Vec::with_capacity(chunks.len());
    let mut done = 0u64;
    let mut shared = 0u64;
    let mut next = chunks.into_iter();
    let source_text = plan.source_text.clone();
    let level = opts.level;
    let sector = plan.source.logical_sector as u64;
    let direct = sysclone_copy::reopen_direct(src, false);
    pool::ordered(
        opts.threads,
        opts.threads * 2 + 2,
        || {
            let piece = next.next()?;
            let data = read_piece(src, direct.as_ref(), &piece, sector).with_context(|| format!("reading {} at byte {} ({} bytes)", source_text, piece.offset, piece.len));
            Some((piece, data))
        },
        |(piece, data): (Piece, Result<Raw>)| {
            let data = data.and_then(|raw| {
                let sha256 = sha256_hex(&raw.bytes);
                // Unreadable pieces are always stored: their zeros are not the base's bytes.
                let stored = base.as_ref().filter(|_| raw.unreadable.is_empty()).and_then(|b| b.by_hash.get(&sha256)).copied();
                let zstd = if stored.is_some() { Vec::new() } else { zstd::bulk::compress(&raw.bytes, level).context("compressing")? };
                Ok(Packed { zstd, stored, sha256, unreadable: raw.unreadable })
            });
            Compressed { piece, data }
        },
        |c: Compressed| {
            let Packed { zstd: z, stored, sha256, unreadable } = c.data?;
            if let Some((b, file, file_offset, compressed_len)) = stored {
                records.push(Chunk { offset: c.piece.offset, len: c.piece.len, partition: c.piece.partition, file, file_offset, compressed_len, sha256, base: Some(b), unreadable });
                shared += c.piece.len;
                done += c.piece.len;
                progress(done, total);
                return Ok(());
            }
            let need_new = match (&out, files.last()) {
                (Some(_), Some(f)) => f.bytes > 0 && f.bytes + z.len() as u64 > opts.max_file_bytes,
                _ => true,
            };
            if need_new {
                if let Some(f) = out.take() {
                    f.sync_all().context("flushing a data file")?;
                }
                let name = manifest::data_file_name(files.len());
                let path = dir.join(&name);
                out = Some(OpenOptions::new().write(true).create(true).truncate(true).open(&path).with_context(|| format!("creating {}", path.display()))?);
                files.push(DataFile { name, bytes: 0 });
            }
            let file = (files.len() - 1) as u32;
            let f = files.last_mut().expect("a data file is open");
            out.as_mut().expect("a data file is open").write_all(&z).with_context(|| format!("writing {}", dir.join(&f.name).display()))?;
            records.push(Chunk {
                offset: c.piece.offset,
                len: c.piece.len,
                partition: c.piece.partition,
                file,
                file_offset: f.bytes,
                compressed_len: z.len() as u64,
                sha256,
                base: None,
                unreadable,
            });
            f.bytes += z.len() as u64;
            done += c.piece.len;
            progress(done, total);
            Ok(())
        },
    )?;
    if let Some(f) = out.take() {
        f.sync_all().context("flushing a data file")?;
    }
    progress(total, total);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let bases = base.map(|b| b.refs).unwrap_or_default();
    let m = Manifest {
        format: manifest::FORMAT_NAME.into(),
        format_version: if bases.is_empty() { 1 } else { 2 },
        tool_version: env!("CARGO_PKG_VERSION").into(),
        created_unix: now,
        created_utc: manifest::utc_text(now),
        host,
        source: plan.source.clone(),
        table: Table { kind: plan.table_kind.clone(), disk_guid: plan.disk_guid.clone(), head_hex: manifest::to_hex(&head), head_sha256: sha256_hex(&head) },
        partitions: plan.partitions.clone(),
        compression: "zstd".into(),
        compression_level: opts.level,
        hash: "sha256".into(),
        chunk_bytes: opts.chunk_bytes,
        data_files: files,
        bases,
        chunks: records,
    };
    m.check().context("the manifest just made fails its own checks (a bug)")?;
    write_manifest(dir, &m)?;
    let seconds = t0.elapsed().as_secs_f64();
    let stored = m.own_compressed_bytes();
    Ok(SaveReport {
        image: dir.to_path_buf(),
        source: plan.source_text.clone(),
        bytes_used: m.stored_bytes(),
        bytes_stored: stored,
        ratio: m.stored_bytes() as f64 / stored.max(1) as f64,
        chunks: m.chunks.len(),
        data_files: m.data_files.len(),
        seconds,
        mib_per_second: m.stored_bytes() as f64 / (1 << 20) as f64 / seconds.max(1e-9),
        threads: opts.threads,
        peak_rss_bytes: sysclone_copy::peak_rss(),
        unreadable: m.unreadable(),
        bytes_shared: shared,
        chunks_shared: m.chunks.iter().filter(|c| c.base.is_some()).count(),
    })
}

/// Write `manifest.json` (through a temporary name, flushed, renamed) and its checksum file.
pub fn write_manifest(dir: &Path, m: &Manifest) -> Result<()> {
    let text = m.to_json();
    let tmp = dir.join(format!("{}.tmp", manifest::MANIFEST));
    let path = dir.join(manifest::MANIFEST);
    {
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(text.as_bytes()).and_then(|_| f.sync_all()).with_context(|| format!("writing {}", tmp.display()))?;
    }
    fs::rename(&tmp, &path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    let sum = format!("{}  {}\n", sha256_hex(text.as_bytes()), manifest::MANIFEST);
    fs::write(dir.join(manifest::MANIFEST_SUM), sum).with_context(|| format!("writing {}", dir.join(manifest::MANIFEST_SUM).display()))?;
    // Some filesystems (FUSE, network) refuse fsync on a directory; only a real I/O error counts.
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        if e.raw_os_error() == Some(nix::libc::EIO) {
            return Err(anyhow::Error::new(e).context(format!("flushing directory {}", dir.display())));
        }
    }
    Ok(())
}
