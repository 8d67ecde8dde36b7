//! The migration planner (`sysclone migrate`): from the source disk's layout, what each
//! filesystem uses, the target's size and logical sector size and the user's choices, compute
//! the target's partition layout, or refuse and say why and how big the target must be.
//! Then build the target's GPT at the byte level.
//!
//! Everything here is pure: no disk is touched, new GUIDs come in with the request.
//!
//! Rules:
//! - Partitions keep their physical order; target entry numbers are compact, in the order of
//!   the source's entry numbers. Type, name and attribute flags are kept.
//! - `Keep` keeps every offset and size (only the GPT moves to the new end). The other
//!   policies pack partitions from 1 MiB on, each start aligned to 1 MiB; sizes they compute
//!   are whole MiB, sizes they keep are rounded up to the target's sector.
//! - A partition is never made smaller than what its filesystem uses: its floor is
//!   `max(used_end, min_size)` plus a margin (10 % of the used bytes, at most 64 MiB),
//!   rounded up to 1 MiB. ext2/3/4, NTFS and btrfs shrink and grow; XFS and FAT only grow;
//!   swap is recreated at any size; anything else is copied whole and never shrinks.
//! - System partitions (EFI System, BIOS boot, Microsoft reserved, Windows recovery) are
//!   never resized unless named (`Grow { part }`, `Explicit`). `Grow` without a name picks
//!   the last data partition, or the last swap partition when there is no data partition.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{Seek, SeekFrom, Write};

use anyhow::{bail, ensure, Result};

use crate::gpt_raw::finish_header;

/// Alignment of every partition start the planner chooses.
pub const MIB: u64 = 1 << 20;
/// Entries in the GPT entry array the planner writes.
pub const GPT_ENTRIES: u32 = 128;
/// Size of one GPT entry.
pub const GPT_ENTRY_SIZE: u32 = 128;
const ARRAY_BYTES: u64 = GPT_ENTRIES as u64 * GPT_ENTRY_SIZE as u64;
const HEADER_SIZE: u32 = 92;
const MARGIN_CAP: u64 = 64 * MIB;

/// One partition of the source disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePart {
    /// GPT entry number (1-based).
    pub number: u32,
    /// Byte offset on the source disk.
    pub start: u64,
    /// Bytes.
    pub size: u64,
    /// Partition type GUID, on-disk (mixed-endian) bytes.
    pub type_guid: [u8; 16],
    /// Unique partition GUID, on-disk bytes.
    pub part_guid: [u8; 16],
    /// The raw GPT name field (UTF-16LE, NUL-padded).
    pub name_utf16: [u8; 72],
    /// GPT attribute flags.
    pub attrs: u64,
    /// `ext2`/`ext3`/`ext4`, `vfat`, `ntfs`, `xfs`, `btrfs`, `swap`, … (`sysclone_fs` names).
    pub fs: Option<String>,
    pub used_bytes: Option<u64>,
    /// Bytes from the partition start to the end of the last used block.
    pub used_end: Option<u64>,
    /// Smallest size the filesystem can be shrunk to, when known.
    pub min_size: Option<u64>,
    /// The smallest unit the filesystem reads and writes (ext block size, XFS/btrfs sector
    /// size), when known: a target with larger logical sectors cannot hold it as it is.
    pub fs_block: Option<u32>,
}

/// The source disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLayout {
    pub logical_sector: u32,
    /// Bytes.
    pub size: u64,
    pub disk_guid: [u8; 16],
    pub parts: Vec<SourcePart>,
}

/// How sizes are chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// Same offsets and sizes.
    Keep,
    /// One partition (the named one, or the last data partition that can grow) takes the
    /// difference: all new space on a larger target, the missing space on a smaller one.
    Grow { part: Option<u32> },
    /// Every resizable partition is scaled by target size / source size (like Clonezilla's
    /// `-k1`); system partitions and those copied whole keep their size.
    Proportional,
    /// `(source partition number, size in bytes)`; partitions not listed keep their size.
    Explicit(Vec<(u32, u64)>),
}

/// Disk and partition GUIDs of the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identities {
    /// The source's disk GUID and partition GUIDs.
    Keep,
    /// New GUIDs (on-disk bytes); `part_guids[i]` goes to target partition `i + 1`. Extra
    /// GUIDs are ignored, so callers may pass one per source partition.
    New { disk_guid: [u8; 16], part_guids: Vec<[u8; 16]> },
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateRequest {
    pub policy: Policy,
    /// Source partition numbers to migrate; `None` = all.
    pub include: Option<Vec<u32>>,
    /// Bytes.
    pub target_size: u64,
    /// 512 or 4096.
    pub target_logical_sector: u32,
    pub identities: Identities,
}

/// What happens to a partition's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsAction {
    /// Copied; the filesystem keeps its size.
    None,
    /// Copied, then the filesystem is grown to the partition. For swap: recreated with
    /// mkswap at the new size (same UUID and label), nothing copied.
    Grow,
    /// The filesystem is shrunk to the partition (its used data fits: see `used_end`). For
    /// swap: recreated, as for `Grow`.
    Shrink,
    /// Unknown contents: every byte is copied; the partition is at least as large as the source.
    CopyWhole,
}

/// One partition of the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPart {
    /// Entry number on the target (1-based, compact, in source numbering order).
    pub number: u32,
    pub source_number: u32,
    /// Byte offset on the target.
    pub start: u64,
    /// Bytes.
    pub size: u64,
    pub type_guid: [u8; 16],
    pub part_guid: [u8; 16],
    pub name_utf16: [u8; 72],
    pub attrs: u64,
    pub fs: Option<String>,
    pub action: FsAction,
}

impl TargetPart {
    /// First byte after the partition.
    pub fn end(&self) -> u64 {
        self.start + self.size
    }
}

/// The planner's answer. `parts` are in physical order (which is also entry order unless
/// the source's numbering differs from its physical order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigratePlan {
    pub source_size: u64,
    pub target_size: u64,
    pub source_sector: u32,
    pub target_sector: u32,
    pub disk_guid: [u8; 16],
    pub parts: Vec<TargetPart>,
    /// Source partition numbers not migrated.
    pub left_out: Vec<u32>,
    /// What will run, one human line each.
    pub actions: Vec<String>,
    /// The smallest target (bytes) this policy and selection could have used.
    pub min_target_size: u64,
}

/// The target's partition table, ready to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGpt {
    pub logical_sector: u32,
    /// Protective MBR, one logical sector, for LBA 0.
    pub lba0: Vec<u8>,
    /// Primary header sector followed by the entry array, for LBA 1.
    pub primary: Vec<u8>,
    pub backup_entries_lba: u64,
    /// Entry array followed by the backup header sector, for `backup_entries_lba`.
    pub backup: Vec<u8>,
}

impl TargetGpt {
    /// Write the table: backup structures first, then the primary header and array, then
    /// LBA 0, so an interrupted write never leaves a valid-looking primary.
    pub fn write_to<W: Write + Seek>(&self, dev: &mut W) -> std::io::Result<()> {
        let lbs = self.logical_sector as u64;
        dev.seek(SeekFrom::Start(self.backup_entries_lba * lbs))?;
        dev.write_all(&self.backup)?;
        dev.seek(SeekFrom::Start(lbs))?;
        dev.write_all(&self.primary)?;
        dev.seek(SeekFrom::Start(0))?;
        dev.write_all(&self.lba0)?;
        dev.flush()
    }
}

/// A clear "no": why, and the smallest target that would work (when size is the problem).
/// Carried inside the `anyhow::Error` of [`plan_migration`]; get it with `downcast_ref`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
    pub min_target_size: Option<u64>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)?;
        if let Some(m) = self.min_target_size {
            write!(f, "; minimum target size: {} ({m} bytes)", human(m))?;
        }
        Ok(())
    }
}

impl std::error::Error for Refusal {}

fn refuse(reason: impl Into<String>, min_target_size: Option<u64>) -> anyhow::Error {
    anyhow::Error::new(Refusal { reason: reason.into(), min_target_size })
}

// ---------------------------------------------------------------------------------------
// Small helpers, public because the CLI and tests print and build the same things.

/// `1.5 GiB`-style sizes, cut (not rounded) to one decimal: `128.0 GiB` is never shown
/// for a size just below 128 GiB; `127.9 GiB` is.
pub fn human(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[i])
    } else {
        format!("{:.1} {}", (v * 10.0).floor() / 10.0, UNITS[i])
    }
}

/// On-disk GUID bytes as the usual upper-case text (`C12A7328-F81F-11D2-…`).
pub fn guid_to_string(g: &[u8; 16]) -> String {
    let d1 = u32::from_le_bytes([g[0], g[1], g[2], g[3]]);
    let d2 = u16::from_le_bytes([g[4], g[5]]);
    let d3 = u16::from_le_bytes([g[6], g[7]]);
    let tail: String = g[8..].iter().map(|b| format!("{b:02X}")).collect();
    format!("{d1:08X}-{d2:04X}-{d3:04X}-{}-{}", &tail[..4], &tail[4..])
}

/// GUID text to on-disk bytes; `None` unless it is `8-4-4-4-12` hex digits.
pub fn guid_from_str(s: &str) -> Option<[u8; 16]> {
    let groups: Vec<&str> = s.split('-').collect();
    if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] || !s.chars().all(|c| c == '-' || c.is_ascii_hexdigit()) {
        return None;
    }
    let hex: String = groups.concat();
    let mut b = [0u8; 16];
    for (i, x) in b.iter_mut().enumerate() {
        *x = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    Some(b)
}

/// The GPT name field as text (up to the first NUL).
pub fn name_from_utf16(raw: &[u8; 72]) -> String {
    let units: Vec<u16> = raw.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|&u| u != 0).collect();
    String::from_utf16_lossy(&units)
}

/// Text to a GPT name field; longer names are cut at 36 UTF-16 units.
pub fn name_to_utf16(name: &str) -> [u8; 72] {
    let mut raw = [0u8; 72];
    for (i, u) in name.encode_utf16().take(36).enumerate() {
        raw[2 * i..2 * i + 2].copy_from_slice(&u.to_le_bytes());
    }
    raw
}

const KNOWN_TYPES: [(&str, &str, bool); 13] = [
    // (GUID, name, system partition: never resized unless named)
    ("C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "EFI System", true),
    ("21686148-6449-6E6F-744E-656564454649", "BIOS boot", true),
    ("E3C9E316-0B5C-4DB8-817D-F92DF00215AE", "Microsoft reserved", true),
    ("DE94BBA4-06D1-4D40-A16A-BFD50179D6AC", "Windows recovery", true),
    ("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", "Microsoft basic data", false),
    ("0FC63DAF-8483-4772-8E79-3D69D8477DE4", "Linux filesystem", false),
    ("0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "Linux swap", false),
    ("4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "Linux root (x86-64)", false),
    ("933AC7E1-2EB4-4F13-B844-0E14E2AEF915", "Linux home", false),
    ("BC13C2FF-59E6-4262-A352-B275FD6F7172", "Linux extended boot", false),
    ("E6D6D379-F507-44C2-A23C-238F2A3DF928", "Linux LVM", false),
    ("A19D880F-05FC-4D3B-A006-743F0F84911E", "Linux RAID", false),
    ("CA7D7CCB-63ED-4C53-861C-1742536059CC", "Linux LUKS", false),
];

/// A short name for well-known partition types, else the GUID.
pub fn type_name(type_guid: &[u8; 16]) -> String {
    let g = guid_to_string(type_guid);
    KNOWN_TYPES.iter().find(|(k, _, _)| *k == g).map(|(_, n, _)| n.to_string()).unwrap_or(g)
}

fn is_system_type(type_guid: &[u8; 16]) -> bool {
    let g = guid_to_string(type_guid);
    KNOWN_TYPES.iter().any(|(k, _, sys)| *k == g && *sys)
}

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

fn align_down(x: u64, a: u64) -> u64 {
    x / a * a
}

/// Bytes after the last usable byte: backup entry array and backup header.
fn backup_reserve(lbs: u64) -> u64 {
    ARRAY_BYTES.div_ceil(lbs) * lbs + lbs
}

/// The GPT geometry of a disk of `lbas` sectors of `lbs` bytes.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    lbs: u64,
    lbas: u64,
}

impl Geometry {
    fn new(size: u64, lbs: u64) -> Option<Geometry> {
        let g = Geometry { lbs, lbas: size / lbs };
        (g.lbas >= 2 * g.array_sectors() + 4).then_some(g)
    }
    fn array_sectors(&self) -> u64 {
        ARRAY_BYTES.div_ceil(self.lbs)
    }
    fn first_usable(&self) -> u64 {
        2 + self.array_sectors()
    }
    fn backup_entries(&self) -> u64 {
        self.lbas - 1 - self.array_sectors()
    }
    fn last_usable(&self) -> u64 {
        self.backup_entries() - 1
    }
    /// First byte after the usable range.
    fn usable_end(&self) -> u64 {
        (self.last_usable() + 1) * self.lbs
    }
}

// ---------------------------------------------------------------------------------------
// What each filesystem allows.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// ext2/3/4, NTFS, btrfs: grow and shrink.
    Resize,
    /// XFS, FAT: grow only.
    GrowOnly,
    /// swap: recreated at any size.
    Recreate,
    /// Anything else: copied whole, never smaller.
    Whole,
}

fn class_of(fs: Option<&str>) -> Class {
    match fs {
        Some("ext2" | "ext3" | "ext4" | "ntfs" | "btrfs") => Class::Resize,
        Some("xfs" | "vfat" | "fat" | "msdos") => Class::GrowOnly,
        Some("swap") => Class::Recreate,
        _ => Class::Whole,
    }
}

fn shrinkable(c: Class) -> bool {
    matches!(c, Class::Resize | Class::Recreate)
}

fn why_not_shrink(fs: Option<&str>) -> String {
    match fs {
        Some("xfs") => "XFS cannot be shrunk".into(),
        Some("vfat" | "fat" | "msdos") => "FAT is grown but never shrunk".into(),
        Some(f) if f != "unknown" => format!("{f} is copied whole and cannot be made smaller"),
        _ => "no filesystem was recognized, so it is copied whole and cannot be made smaller".into(),
    }
}

/// One included source partition and its limits on the target.
struct Item<'a> {
    p: &'a SourcePart,
    class: Class,
    system: bool,
    /// The source size rounded up to the target's sector.
    keep: u64,
    /// Smallest allowed size (≤ `keep`).
    floor: u64,
    floor_why: String,
}

impl Item<'_> {
    fn new(p: &SourcePart, tls: u64) -> Item<'_> {
        let class = class_of(p.fs.as_deref());
        let keep = align_up(p.size, tls);
        let (floor, floor_why) = match class {
            Class::Recreate => (MIB.min(keep), "swap is recreated".to_string()),
            Class::GrowOnly | Class::Whole => (keep, why_not_shrink(p.fs.as_deref())),
            Class::Resize => match p.used_end {
                None => (keep, "how much of it is used is unknown".to_string()),
                Some(ue) => {
                    let used = p.used_bytes.unwrap_or(ue);
                    let margin = (used / 10).min(MARGIN_CAP);
                    let min_fs = p.min_size.unwrap_or(0);
                    let base = ue.max(min_fs);
                    let floor = align_up(base.saturating_add(margin), MIB).max(MIB);
                    let mut why = format!("used data ends at {}", human(ue));
                    if min_fs > ue {
                        why += &format!(", the filesystem shrinks to no less than {}", human(min_fs));
                    }
                    why += &format!(", plus a margin of {}", human(margin));
                    (floor.min(keep), why)
                }
            },
        };
        Item { p, class, system: is_system_type(&p.type_guid), keep, floor, floor_why }
    }

    /// The smallest size the planner may give it when shrinking.
    fn lower(&self) -> u64 {
        if shrinkable(self.class) {
            self.floor
        } else {
            self.keep
        }
    }

    fn label(&self) -> String {
        label(self.p)
    }

    /// Why it cannot be smaller than `lower()`.
    fn limit_text(&self) -> String {
        if self.lower() == self.keep && shrinkable(self.class) {
            format!("{}: at least {} ({}, so it cannot shrink)", self.label(), bytes_cell(self.keep), self.floor_why)
        } else {
            format!("{}: at least {} ({})", self.label(), bytes_cell(self.lower()), self.floor_why)
        }
    }
}

fn label(p: &SourcePart) -> String {
    let name = name_from_utf16(&p.name_utf16);
    let fs = p.fs.as_deref().unwrap_or("no filesystem");
    if name.is_empty() {
        format!("partition {} ({fs})", p.number)
    } else {
        format!("partition {} \"{name}\" ({fs})", p.number)
    }
}

/// Starts and end of partitions packed from 1 MiB on, each start aligned to 1 MiB.
fn pack(sizes: &[u64]) -> (Vec<u64>, u64) {
    let mut cur = MIB;
    let starts = sizes
        .iter()
        .map(|s| {
            let st = align_up(cur, MIB);
            cur = st + s;
            st
        })
        .collect();
    (starts, cur)
}

fn check_source(src: &SourceLayout) -> Result<()> {
    let lbs = src.logical_sector as u64;
    ensure!(lbs >= 512 && lbs.is_power_of_two(), "source logical sector size {lbs} is not supported");
    let mut numbers = BTreeSet::new();
    let mut spans: Vec<(u64, u64, u32)> = Vec::new();
    for p in &src.parts {
        ensure!(p.number >= 1, "source partition number 0 is invalid");
        ensure!(numbers.insert(p.number), "source partition {} is listed twice", p.number);
        ensure!(p.size > 0, "source partition {} is empty", p.number);
        ensure!(p.start % lbs == 0 && p.size % lbs == 0, "source partition {} is not made of whole {lbs}-byte sectors", p.number);
        let end = p.start.checked_add(p.size).filter(|&e| e <= src.size);
        ensure!(end.is_some(), "source partition {} ends past the source disk", p.number);
        spans.push((p.start, p.start + p.size, p.number));
    }
    spans.sort();
    for w in spans.windows(2) {
        ensure!(w[0].1 <= w[1].0, "source partitions {} and {} overlap", w[0].2, w[1].2);
    }
    Ok(())
}

/// Compute the target layout for `req`, or refuse (the error then holds a [`Refusal`] when
/// the request itself is impossible, e.g. a target too small, with the minimum size).
pub fn plan_migration(src: &SourceLayout, req: &MigrateRequest) -> Result<MigratePlan> {
    check_source(src)?;
    let tls = req.target_logical_sector as u64;
    ensure!(tls == 512 || tls == 4096, "target logical sector size {tls} is not supported (512 or 4096)");
    let reserve = backup_reserve(tls);

    // Which partitions.
    let all: BTreeSet<u32> = src.parts.iter().map(|p| p.number).collect();
    let included: BTreeSet<u32> = match &req.include {
        None => all.clone(),
        Some(list) => {
            for n in list {
                ensure!(all.contains(n), "the source has no partition {n}");
            }
            list.iter().copied().collect()
        }
    };
    ensure!(!included.is_empty(), "no partitions selected");
    ensure!(included.len() <= GPT_ENTRIES as usize, "{} partitions do not fit a {GPT_ENTRIES}-entry GPT", included.len());
    let left_out: Vec<u32> = all.difference(&included).copied().collect();
    let mut chosen: Vec<&SourcePart> = src.parts.iter().filter(|p| included.contains(&p.number)).collect();
    chosen.sort_by_key(|p| p.start);
    for p in &chosen {
        if let Some(b) = p.fs_block.filter(|&b| (b as u64) < tls) {
            return Err(refuse(
                format!("{} uses {b}-byte blocks; on a disk with {tls}-byte sectors the kernel cannot mount it (a filesystem's blocks must be at least a sector). Choose a target with {}-byte sectors, leave the partition out, or copy its files onto a new filesystem", label(p), src.logical_sector),
                None,
            ));
        }
    }
    let items: Vec<Item> = chosen.iter().map(|p| Item::new(p, tls)).collect();

    let Some(geo) = Geometry::new(req.target_size, tls) else {
        let need = pack(&items.iter().map(Item::lower).collect::<Vec<_>>()).1 + reserve;
        return Err(refuse(format!("a target of {} bytes cannot hold a GPT", req.target_size), Some(need)));
    };
    let usable_end = geo.usable_end();
    let min_end_any = pack(&items.iter().map(Item::lower).collect::<Vec<_>>()).1;
    let hint = |policy_min: u64| {
        let any = min_end_any + reserve;
        if any < policy_min {
            format!(" (shrinking every resizable partition, as the proportional policy does, needs only {} ({any} bytes))", human(any))
        } else {
            String::new()
        }
    };
    let too_small = format!("the target ({}, {} bytes) is too small", human(req.target_size), req.target_size);

    let (starts, sizes, min_target_size): (Vec<u64>, Vec<u64>, u64) = match &req.policy {
        Policy::Keep => {
            let first = geo.first_usable() * tls;
            for it in &items {
                let p = it.p;
                if p.start % tls != 0 || p.size % tls != 0 {
                    return Err(refuse(
                        format!("{} (at byte {}, {} bytes) is not made of whole {tls}-byte sectors; the keep policy cannot move it (grow, proportional and explicit re-align)", it.label(), p.start, p.size),
                        None,
                    ));
                }
                if p.start < first {
                    return Err(refuse(format!("{} starts at byte {}, inside the target's GPT (first usable byte {first}); the keep policy cannot move it", it.label(), p.start), None));
                }
            }
            let end = items.iter().map(|it| it.p.start + it.p.size).max().unwrap_or(0);
            let min = end + reserve;
            if end > usable_end {
                let last = items.iter().max_by_key(|it| it.p.start + it.p.size).expect("non-empty");
                return Err(refuse(format!("{too_small} to keep the layout: {} ends at byte {end}{}", last.label(), hint(min)), Some(min)));
            }
            (items.iter().map(|it| it.p.start).collect(), items.iter().map(|it| it.p.size).collect(), min)
        }
        Policy::Grow { part } => {
            let gi = match part {
                Some(n) => {
                    let Some(i) = items.iter().position(|it| it.p.number == *n) else {
                        if all.contains(n) {
                            bail!("partition {n} is left out, so it cannot take the new space");
                        }
                        bail!("the source has no partition {n}");
                    };
                    if items[i].class == Class::Whole {
                        return Err(refuse(format!("{} cannot be resized: {}", items[i].label(), why_not_shrink(items[i].p.fs.as_deref())), None));
                    }
                    i
                }
                // The last data partition; swap only when there is none.
                None => items
                    .iter()
                    .rposition(|it| matches!(it.class, Class::Resize | Class::GrowOnly) && !it.system)
                    .or_else(|| items.iter().rposition(|it| it.class == Class::Recreate && !it.system))
                    .ok_or_else(|| {
                        refuse("no partition with a resizable filesystem (ext2/3/4, NTFS, btrfs, XFS, FAT, swap) can take the difference; name one, or use keep, proportional or explicit sizes", None)
                    })?,
            };
            let g = &items[gi];
            let mut sizes: Vec<u64> = items.iter().map(|it| it.keep).collect();
            sizes[gi] = g.lower();
            let min = pack(&sizes).1 + reserve;
            sizes[gi] = 0;
            let room = usable_end.saturating_sub(pack(&sizes).1);
            let fit = [g.keep.max(align_down(room, MIB)), align_down(room, MIB)].into_iter().find(|&s| {
                sizes[gi] = s;
                pack(&sizes).1 <= usable_end
            });
            let size = fit.unwrap_or(0);
            if size < g.lower() {
                let to = if size == 0 { "nothing".to_string() } else { human(size) };
                let why = if shrinkable(g.class) && g.floor < g.keep {
                    format!("{} would have to shrink to {to}, below its minimum of {} ({})", g.label(), bytes_cell(g.floor), g.floor_why)
                } else {
                    format!("{} would have to shrink from {} to {to}, but {}", g.label(), human(g.keep), g.floor_why)
                };
                return Err(refuse(format!("{too_small}: {why}{}", hint(min)), Some(min)));
            }
            sizes[gi] = size;
            let (starts, _) = pack(&sizes);
            (starts, sizes, min)
        }
        Policy::Proportional => {
            let (num, den) = (req.target_size as u128, src.size.max(1) as u128);
            let scalable = |it: &Item| it.class != Class::Whole && !it.system;
            let lowers: Vec<u64> = items.iter().map(|it| if scalable(it) { it.lower() } else { it.keep }).collect();
            let min = pack(&lowers).1 + reserve;
            let mut sizes: Vec<u64> = items
                .iter()
                .map(|it| {
                    if !scalable(it) {
                        return it.keep;
                    }
                    let scaled = align_down((it.keep as u128 * num / den).min(u64::MAX as u128) as u64, MIB);
                    if num >= den {
                        it.keep.max(scaled)
                    } else if shrinkable(it.class) {
                        scaled.max(it.floor).min(it.keep)
                    } else {
                        it.keep
                    }
                })
                .collect();
            loop {
                let end = pack(&sizes).1;
                if end <= usable_end {
                    break;
                }
                let Some(i) = (0..sizes.len()).rev().find(|&i| sizes[i] > lowers[i]) else {
                    let limits: Vec<String> = items.iter().map(Item::limit_text).collect();
                    return Err(refuse(format!("{too_small}: {}", limits.join("; ")), Some(min)));
                };
                sizes[i] -= align_up(end - usable_end, MIB).min(sizes[i] - lowers[i]);
            }
            (pack(&sizes).0, sizes, min)
        }
        Policy::Explicit(list) => {
            let mut want: BTreeMap<u32, u64> = BTreeMap::new();
            for &(n, size) in list {
                ensure!(all.contains(&n), "the source has no partition {n}");
                ensure!(included.contains(&n), "partition {n} is left out, so it cannot be given a size");
                ensure!(want.insert(n, size).is_none(), "partition {n} is given two sizes");
            }
            let mut sizes = Vec::with_capacity(items.len());
            for it in &items {
                let Some(&asked) = want.get(&it.p.number) else {
                    sizes.push(it.keep);
                    continue;
                };
                let size = align_down(asked, tls);
                if size < it.keep {
                    if !shrinkable(it.class) {
                        return Err(refuse(format!("{} cannot be made smaller than {} ({} bytes): {}", it.label(), human(it.keep), it.keep, it.floor_why), None));
                    }
                    if size < it.floor {
                        return Err(refuse(format!("{} cannot be made smaller than {} ({} bytes): {}", it.label(), human(it.floor), it.floor, it.floor_why), None));
                    }
                }
                sizes.push(size);
            }
            let (starts, end) = pack(&sizes);
            let min = end + reserve;
            if end > usable_end {
                return Err(refuse(format!("{too_small} for these sizes: the last partition would end at byte {end}{}", hint(min)), Some(min)));
            }
            (starts, sizes, min)
        }
    };

    // Internal consistency: everything inside the target's usable range, in order, whole sectors.
    let first_usable = geo.first_usable() * tls;
    let mut prev_end = first_usable;
    for (i, (&s, &z)) in starts.iter().zip(&sizes).enumerate() {
        ensure!(z > 0 && s % tls == 0 && z % tls == 0, "internal: partition {} is not sector-aligned", items[i].p.number);
        ensure!(s >= prev_end && s + z <= usable_end, "internal: partition {} does not fit", items[i].p.number);
        prev_end = s + z;
    }

    // Numbering: compact, in source numbering order.
    let number_of: BTreeMap<u32, u32> = included.iter().enumerate().map(|(i, &n)| (n, i as u32 + 1)).collect();
    let (disk_guid, new_ids) = match &req.identities {
        Identities::Keep => (src.disk_guid, None),
        Identities::New { disk_guid, part_guids } => {
            ensure!(part_guids.len() >= items.len(), "{} new partition GUIDs given for {} partitions", part_guids.len(), items.len());
            (*disk_guid, Some(part_guids))
        }
    };

    let mut parts = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        let p = it.p;
        let number = number_of[&p.number];
        let size = sizes[i];
        let action = if it.class == Class::Whole {
            FsAction::CopyWhole
        } else if size > it.keep {
            FsAction::Grow
        } else if size < it.keep {
            FsAction::Shrink
        } else {
            FsAction::None
        };
        parts.push(TargetPart {
            number,
            source_number: p.number,
            start: starts[i],
            size,
            type_guid: p.type_guid,
            part_guid: new_ids.map_or(p.part_guid, |g| g[number as usize - 1]),
            name_utf16: p.name_utf16,
            attrs: p.attrs,
            fs: p.fs.clone(),
            action,
        });
    }
    ensure!(disk_guid != [0; 16], "the disk GUID is all zeros");
    let mut seen = BTreeSet::new();
    for t in &parts {
        ensure!(t.part_guid != [0; 16], "target partition {} would have an all-zero GUID", t.number);
        ensure!(seen.insert(t.part_guid), "target partition {} would repeat the GUID {}; use new identities", t.number, guid_to_string(&t.part_guid));
        ensure!(t.type_guid != [0; 16], "source partition {} has an all-zero type GUID", t.source_number);
    }

    let mut plan = MigratePlan {
        source_size: src.size,
        target_size: req.target_size,
        source_sector: src.logical_sector,
        target_sector: req.target_logical_sector,
        disk_guid,
        parts,
        left_out,
        actions: Vec::new(),
        min_target_size,
    };
    plan.actions = describe_actions(src, &plan, geo, matches!(req.identities, Identities::New { .. }));
    Ok(plan)
}

fn describe_actions(src: &SourceLayout, plan: &MigratePlan, geo: Geometry, new_ids: bool) -> Vec<String> {
    let by_number: BTreeMap<u32, &SourcePart> = src.parts.iter().map(|p| (p.number, p)).collect();
    let mut out = Vec::new();
    out.push(format!(
        "create a GPT on the target: {} partitions, {}-byte sectors (source: {}), usable LBAs {}..{}, disk GUID {} ({})",
        plan.parts.len(),
        plan.target_sector,
        plan.source_sector,
        geo.first_usable(),
        geo.last_usable(),
        guid_to_string(&plan.disk_guid),
        if new_ids { "new" } else { "kept" }
    ));
    for t in &plan.parts {
        let p = by_number[&t.source_number];
        let fs = t.fs.as_deref().unwrap_or("no filesystem");
        let place = if t.start == p.start && t.number == p.number {
            format!("at {}", human(t.start))
        } else {
            format!("from {} to partition {} at {}", human(p.start), t.number, human(t.start))
        };
        let what = label(p);
        let line = match (t.action, class_of(t.fs.as_deref())) {
            (FsAction::Grow | FsAction::Shrink, Class::Recreate) => {
                format!("recreate swap {what} {place} with mkswap at {} (same UUID and label; contents not copied)", human(t.size))
            }
            (FsAction::None, _) => format!("copy {what}, {}, {place}", human(p.size)),
            (FsAction::Grow, _) => format!("copy {what} {place}, then grow {fs} from {} to {}", human(p.size), human(t.size)),
            (FsAction::Shrink, _) => format!(
                "shrink {fs} of {what} from {} to {} (used data ends at {}) and place it {place}",
                human(p.size),
                human(t.size),
                p.used_end.map(human).unwrap_or_else(|| "?".into())
            ),
            (FsAction::CopyWhole, _) if t.size > p.size => format!("copy {what} whole, {}, {place}; the {} after it stay unused", human(p.size), human(t.size - p.size)),
            (FsAction::CopyWhole, _) => format!("copy {what} whole, {}, {place}", human(p.size)),
        };
        out.push(line);
    }
    for n in &plan.left_out {
        let p = by_number[n];
        out.push(format!("leave out {}, {} at {}; lines of the clone's fstab, crypttab and resume files that name it are commented out", label(p), human(p.size), human(p.start)));
    }
    if new_ids {
        out.push("give the target a new disk GUID and new partition GUIDs (filesystem UUIDs are not changed)".into());
    }
    if plan.source_sector < plan.target_sector {
        out.push(format!(
            "note: {}-byte sectors on the target; a FAT is rebuilt for them (its files copied); other filesystems are copied as they are and must have blocks at least that large (ext4 with 1 KiB blocks or XFS with 512-byte sectors would not mount: such sources are refused when their block size is known)",
            plan.target_sector
        ));
    }
    let bios_boot_moved = plan.parts.iter().any(|t| {
        let p = by_number[&t.source_number];
        type_name(&t.type_guid) == "BIOS boot" && (t.start != p.start || plan.source_sector != plan.target_sector)
    });
    if bios_boot_moved {
        out.push("note: the BIOS boot partition moves or changes sector size; GRUB's boot code stores its LBA and must be reinstalled for BIOS boot".into());
    }
    out.push(format!(
        "write the backup GPT (entries at LBA {}, header at LBA {}), then the primary GPT at LBA 1 and the protective MBR, last",
        geo.backup_entries(),
        geo.lbas - 1
    ));
    out
}

/// Columns padded to their widest cell.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r.iter().enumerate().map(|(c, s)| format!("{s:<w$}", w = widths[c])).collect();
        out += "  ";
        out += line.join("  ").trim_end();
        out += "\n";
    }
    out
}

fn bytes_cell(b: u64) -> String {
    format!("{} ({b})", human(b))
}

impl MigratePlan {
    /// The dry-run text: the source and target partitions with every offset and size, then
    /// the actions. `end` is the first byte after a partition; LBAs are inclusive.
    pub fn show(&self, src: &SourceLayout) -> String {
        let head = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut out = String::new();
        let sl = src.logical_sector as u64;
        out += &format!(
            "source: {} ({} bytes), {}-byte sectors, disk GUID {}\n",
            human(src.size),
            src.size,
            src.logical_sector,
            guid_to_string(&src.disk_guid)
        );
        let mut rows = vec![head(&["#", "name", "type", "fs", "start", "end", "size", "LBAs", "used", "migrate"])];
        let mut sorted: Vec<&SourcePart> = src.parts.iter().collect();
        sorted.sort_by_key(|p| p.start);
        for p in sorted {
            let target = self.parts.iter().find(|t| t.source_number == p.number);
            rows.push(vec![
                p.number.to_string(),
                name_from_utf16(&p.name_utf16),
                type_name(&p.type_guid),
                p.fs.clone().unwrap_or_else(|| "-".into()),
                bytes_cell(p.start),
                bytes_cell(p.start + p.size),
                bytes_cell(p.size),
                format!("{}-{}", p.start / sl, (p.start + p.size) / sl - 1),
                match (p.used_bytes, p.used_end) {
                    (Some(u), Some(e)) => format!("{}, ends at {}", human(u), human(e)),
                    (Some(u), None) => human(u),
                    (None, Some(e)) => format!("ends at {}", human(e)),
                    (None, None) => "-".into(),
                },
                target.map_or("left out".into(), |t| format!("-> {}", t.number)),
            ]);
        }
        out += &table(&rows);
        let tl = self.target_sector as u64;
        out += &format!(
            "target: {} ({} bytes), {}-byte sectors, disk GUID {}{}\n",
            human(self.target_size),
            self.target_size,
            self.target_sector,
            guid_to_string(&self.disk_guid),
            if self.disk_guid == src.disk_guid { " (kept)" } else { " (new)" }
        );
        let mut rows = vec![head(&["#", "from", "name", "type", "fs", "start", "end", "size", "LBAs", "action"])];
        for t in &self.parts {
            let p = src.parts.iter().find(|p| p.number == t.source_number);
            let action = match t.action {
                FsAction::None if p.is_some_and(|p| p.start != t.start) => "copy (moved)".to_string(),
                FsAction::None => "copy".to_string(),
                FsAction::Grow | FsAction::Shrink if t.fs.as_deref() == Some("swap") => "recreate swap".to_string(),
                FsAction::Grow => format!("grow +{}", human(t.size - p.map_or(0, |p| p.size).min(t.size))),
                FsAction::Shrink => format!("shrink -{}", human(p.map_or(0, |p| p.size).saturating_sub(t.size))),
                FsAction::CopyWhole => "copy whole".to_string(),
            };
            rows.push(vec![
                t.number.to_string(),
                t.source_number.to_string(),
                name_from_utf16(&t.name_utf16),
                type_name(&t.type_guid),
                t.fs.clone().unwrap_or_else(|| "-".into()),
                bytes_cell(t.start),
                bytes_cell(t.end()),
                bytes_cell(t.size),
                format!("{}-{}", t.start / tl, t.end() / tl - 1),
                action,
            ]);
        }
        out += &table(&rows);
        out += "actions:\n";
        for a in &self.actions {
            out += &format!("  - {a}\n");
        }
        out += &format!("smallest target for this plan: {} ({} bytes)\n", human(self.min_target_size), self.min_target_size);
        out
    }

    /// The target's protective MBR, primary and backup GPT, built at the byte level:
    /// 128 entries of 128 bytes, revision 1.0, entry `number` at index `number - 1`.
    pub fn gpt_bytes(&self) -> Result<TargetGpt> {
        let lbs = self.target_sector as u64;
        ensure!(lbs == 512 || lbs == 4096, "target logical sector size {lbs} is not supported");
        let geo = Geometry::new(self.target_size, lbs).ok_or_else(|| anyhow::anyhow!("a target of {} bytes cannot hold a GPT", self.target_size))?;
        let mut entries = vec![0u8; ARRAY_BYTES as usize];
        let mut spans: Vec<(u64, u64, u32)> = Vec::new();
        for t in &self.parts {
            ensure!((1..=GPT_ENTRIES).contains(&t.number), "partition number {} does not fit a {GPT_ENTRIES}-entry GPT", t.number);
            ensure!(t.size > 0 && t.start % lbs == 0 && t.size % lbs == 0, "partition {} is not made of whole {lbs}-byte sectors", t.number);
            let (first, last) = (t.start / lbs, t.end() / lbs - 1);
            ensure!(first >= geo.first_usable() && last <= geo.last_usable(), "partition {} (LBA {first}..{last}) is outside the usable LBAs {}..{}", t.number, geo.first_usable(), geo.last_usable());
            ensure!(t.type_guid != [0; 16], "partition {} has an all-zero type GUID", t.number);
            let e = &mut entries[(t.number as usize - 1) * GPT_ENTRY_SIZE as usize..][..GPT_ENTRY_SIZE as usize];
            ensure!(e[0..16] == [0; 16], "partition number {} is used twice", t.number);
            e[0..16].copy_from_slice(&t.type_guid);
            e[16..32].copy_from_slice(&t.part_guid);
            e[32..40].copy_from_slice(&first.to_le_bytes());
            e[40..48].copy_from_slice(&last.to_le_bytes());
            e[48..56].copy_from_slice(&t.attrs.to_le_bytes());
            e[56..128].copy_from_slice(&t.name_utf16);
            spans.push((first, last, t.number));
        }
        spans.sort();
        for w in spans.windows(2) {
            ensure!(w[0].1 < w[1].0, "partitions {} and {} overlap", w[0].2, w[1].2);
        }
        let entries_crc = crc32fast::hash(&entries);
        let header = |current: u64, other: u64, entries_lba: u64| {
            let mut s = vec![0u8; lbs as usize];
            s[0..8].copy_from_slice(b"EFI PART");
            s[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
            s[12..16].copy_from_slice(&HEADER_SIZE.to_le_bytes());
            s[24..32].copy_from_slice(&current.to_le_bytes());
            s[32..40].copy_from_slice(&other.to_le_bytes());
            s[40..48].copy_from_slice(&geo.first_usable().to_le_bytes());
            s[48..56].copy_from_slice(&geo.last_usable().to_le_bytes());
            s[56..72].copy_from_slice(&self.disk_guid);
            s[72..80].copy_from_slice(&entries_lba.to_le_bytes());
            s[80..84].copy_from_slice(&GPT_ENTRIES.to_le_bytes());
            s[84..88].copy_from_slice(&GPT_ENTRY_SIZE.to_le_bytes());
            s[88..92].copy_from_slice(&entries_crc.to_le_bytes());
            finish_header(s, HEADER_SIZE)
        };
        let backup_lba = geo.lbas - 1;
        // The array takes whole sectors (it already does for 512 and 4096).
        let array_len = (geo.array_sectors() * lbs) as usize;
        entries.resize(array_len, 0);
        let mut primary = header(1, backup_lba, 2);
        primary.extend_from_slice(&entries);
        let mut backup = entries;
        backup.extend_from_slice(&header(backup_lba, 1, geo.backup_entries()));

        let mut lba0 = vec![0u8; lbs as usize];
        let e = 446;
        lba0[e..e + 8].copy_from_slice(&[0x00, 0x00, 0x02, 0x00, 0xEE, 0xFF, 0xFF, 0xFF]);
        lba0[e + 8..e + 12].copy_from_slice(&1u32.to_le_bytes());
        lba0[e + 12..e + 16].copy_from_slice(&((geo.lbas - 1).min(0xFFFF_FFFF) as u32).to_le_bytes());
        lba0[510] = 0x55;
        lba0[511] = 0xAA;
        Ok(TargetGpt { logical_sector: self.target_sector, lba0, primary, backup_entries_lba: geo.backup_entries(), backup })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
    const LINUX: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
    const SWAP: &str = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F";
    const BASIC: &str = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7";
    const MSR: &str = "E3C9E316-0B5C-4DB8-817D-F92DF00215AE";

    fn guid(n: u8) -> [u8; 16] {
        let mut g = [n; 16];
        g[7] = 0x40 | (n & 0x0f);
        g
    }

    fn part(number: u32, start: u64, size: u64, ty: &str, name: &str, fs: Option<&str>) -> SourcePart {
        SourcePart {
            number,
            start,
            size,
            type_guid: guid_from_str(ty).unwrap(),
            part_guid: guid(number as u8),
            name_utf16: name_to_utf16(name),
            attrs: 0,
            fs: fs.map(str::to_string),
            used_bytes: None,
            used_end: None,
            min_size: None,
            fs_block: None,
        }
    }

    /// 64 GiB, 512-byte sectors: ESP 512 MiB at 1 MiB, root ext4 54 GiB (10 GiB used,
    /// ending at 12 GiB, resize2fs minimum 11 GiB), swap 8 GiB; 511 MiB free at the end.
    fn linux() -> SourceLayout {
        let mut esp = part(1, MIB, 512 * MIB, ESP, "EFI", Some("vfat"));
        esp.used_bytes = Some(20 * MIB);
        esp.used_end = Some(30 * MIB);
        esp.attrs = 1; // required partition
        let mut root = part(2, 513 * MIB, 54 * GIB, LINUX, "root", Some("ext4"));
        root.used_bytes = Some(10 * GIB);
        root.used_end = Some(12 * GIB);
        root.min_size = Some(11 * GIB);
        root.attrs = 1 << 60 | 1 << 63;
        let swap = part(3, 513 * MIB + 54 * GIB, 8 * GIB, SWAP, "swap", Some("swap"));
        SourceLayout { logical_sector: 512, size: 64 * GIB, disk_guid: guid(0xd0), parts: vec![esp, root, swap] }
    }

    fn req(policy: Policy, target_size: u64, sector: u32) -> MigrateRequest {
        MigrateRequest { policy, include: None, target_size, target_logical_sector: sector, identities: Identities::Keep }
    }

    fn refusal(r: Result<MigratePlan>) -> Refusal {
        let e = r.expect_err("expected a refusal");
        e.downcast_ref::<Refusal>().unwrap_or_else(|| panic!("not a Refusal: {e:#}")).clone()
    }

    fn layout(plan: &MigratePlan) -> Vec<(u32, u32, u64, u64, FsAction)> {
        plan.parts.iter().map(|t| (t.number, t.source_number, t.start, t.size, t.action)).collect()
    }

    /// Every target partition 1 MiB aligned (for non-keep policies), inside the usable range,
    /// not overlapping, carrying the source's type, name and attributes.
    fn check_invariants(src: &SourceLayout, plan: &MigratePlan, aligned: bool) {
        let lbs = plan.target_sector as u64;
        let g = Geometry::new(plan.target_size, lbs).unwrap();
        let mut prev = g.first_usable() * lbs;
        for t in &plan.parts {
            assert!(t.start >= prev && t.end() <= g.usable_end(), "{t:?}");
            assert_eq!(t.start % lbs, 0);
            assert_eq!(t.size % lbs, 0);
            if aligned {
                assert_eq!(t.start % MIB, 0, "{t:?}");
            }
            let p = src.parts.iter().find(|p| p.number == t.source_number).unwrap();
            assert_eq!((t.type_guid, t.name_utf16, t.attrs, &t.fs), (p.type_guid, p.name_utf16, p.attrs, &p.fs));
            if let Some(ue) = p.used_end {
                assert!(t.size >= ue || t.action == FsAction::Grow || t.fs.as_deref() == Some("swap"), "used data cut off: {t:?}");
            }
            if t.action == FsAction::CopyWhole {
                assert!(t.size >= p.size);
            }
            prev = t.end();
        }
        // The GPT builds and reads back with our own reader.
        let gpt = plan.gpt_bytes().unwrap();
        let mut img = Sparse::default();
        gpt.write_to(&mut img).unwrap();
        let raw = crate::read_gpt(&mut img, plan.target_sector, g.lbas * lbs).unwrap().unwrap();
        assert_eq!(raw.header.backup_lba, g.lbas - 1);
        assert_eq!(raw.header.last_usable, g.lbas - 2 - g.array_sectors());
        assert_eq!(raw.header.disk_guid, plan.disk_guid);
        assert_eq!(raw.last_used_lba(), plan.parts.iter().map(|t| t.end() / lbs - 1).max().unwrap());
    }

    /// A sparse in-memory disk: what was written, zeros elsewhere.
    #[derive(Default)]
    struct Sparse {
        pos: u64,
        chunks: Vec<(u64, Vec<u8>)>,
    }

    impl std::io::Write for Sparse {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.chunks.push((self.pos, b.to_vec()));
            self.pos += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl std::io::Read for Sparse {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            buf.fill(0);
            let (lo, hi) = (self.pos, self.pos + buf.len() as u64);
            for (at, data) in &self.chunks {
                let (s, e) = ((*at).max(lo), (at + data.len() as u64).min(hi));
                if s < e {
                    buf[(s - lo) as usize..(e - lo) as usize].copy_from_slice(&data[(s - at) as usize..(e - at) as usize]);
                }
            }
            self.pos = hi;
            Ok(buf.len())
        }
    }

    impl Seek for Sparse {
        fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
            match to {
                SeekFrom::Start(p) => self.pos = p,
                _ => unimplemented!(),
            }
            Ok(self.pos)
        }
    }

    #[test]
    fn keep_on_same_size() {
        let src = linux();
        let plan = plan_migration(&src, &req(Policy::Keep, 64 * GIB, 512)).unwrap();
        let want: Vec<_> = src.parts.iter().map(|p| (p.number, p.number, p.start, p.size, FsAction::None)).collect();
        assert_eq!(layout(&plan), want);
        assert_eq!(plan.disk_guid, src.disk_guid);
        assert!(plan.parts.iter().zip(&src.parts).all(|(t, p)| t.part_guid == p.part_guid));
        assert!(plan.left_out.is_empty());
        assert_eq!(plan.min_target_size, 513 * MIB + 62 * GIB + 16384 + 512);
        check_invariants(&src, &plan, true);
    }

    #[test]
    fn keep_on_larger_extends_usable_range() {
        let src = linux();
        let plan = plan_migration(&src, &req(Policy::Keep, 128 * GIB, 512)).unwrap();
        let same = plan_migration(&src, &req(Policy::Keep, 64 * GIB, 512)).unwrap();
        assert_eq!(layout(&plan), layout(&same));
        let gpt = plan.gpt_bytes().unwrap();
        let h = crate::gpt_raw::parse_header(&gpt.primary[..512]).unwrap();
        let lbas = 128 * GIB / 512;
        assert_eq!((h.first_usable, h.last_usable, h.backup_lba), (34, lbas - 34, lbas - 1));
        assert_eq!(gpt.backup_entries_lba, lbas - 33);
        check_invariants(&src, &plan, true);
    }

    #[test]
    fn keep_on_smaller_fits_or_refuses() {
        let src = linux();
        let end = 513 * MIB + 62 * GIB;
        let min = end + 16384 + 512;
        // Just enough: the last partition touches the last usable LBA.
        let plan = plan_migration(&src, &req(Policy::Keep, min, 512)).unwrap();
        check_invariants(&src, &plan, true);
        let r = refusal(plan_migration(&src, &req(Policy::Keep, min - 512, 512)));
        assert_eq!(r.min_target_size, Some(min));
        assert!(r.reason.contains("swap") && r.reason.contains("proportional"), "{r}");
    }

    #[test]
    fn grow_gives_new_space_to_the_last_data_partition() {
        let src = linux();
        let plan = plan_migration(&src, &req(Policy::Grow { part: None }, 128 * GIB, 512)).unwrap();
        // Not the swap partition: root grows, swap moves right and ends at the last full MiB.
        let root = 128 * GIB - MIB - 513 * MIB - 8 * GIB;
        assert_eq!(
            layout(&plan),
            vec![(1, 1, MIB, 512 * MIB, FsAction::None), (2, 2, 513 * MIB, root, FsAction::Grow), (3, 3, 513 * MIB + root, 8 * GIB, FsAction::None)]
        );
        assert_eq!(plan.parts[2].end(), 128 * GIB - MIB);
        assert!(plan.actions.iter().any(|a| a.contains("grow ext4 from 54 GiB to")), "{:?}", plan.actions);
        check_invariants(&src, &plan, true);
    }

    #[test]
    fn grow_named_partition() {
        let src = linux();
        let plan = plan_migration(&src, &req(Policy::Grow { part: Some(3) }, 128 * GIB, 512)).unwrap();
        assert_eq!(plan.parts[1].size, 54 * GIB);
        assert_eq!(plan.parts[2].start, 513 * MIB + 54 * GIB);
        assert_eq!(plan.parts[2].end(), 128 * GIB - MIB);
        assert_eq!(plan.parts[2].action, FsAction::Grow);
        assert!(plan.actions.iter().any(|a| a.starts_with("recreate swap")), "{:?}", plan.actions);
        check_invariants(&src, &plan, true);
        // A partition copied whole cannot be grown; an unknown number is an error.
        let mut odd = linux();
        odd.parts[2].fs = None;
        let r = refusal(plan_migration(&odd, &req(Policy::Grow { part: Some(3) }, 128 * GIB, 512)));
        assert!(r.reason.contains("copied whole"), "{r}");
        assert!(plan_migration(&src, &req(Policy::Grow { part: Some(9) }, 128 * GIB, 512)).is_err());
    }

    #[test]
    fn grow_shrinks_ext4_root_to_fit_a_smaller_disk() {
        let src = linux();
        let plan = plan_migration(&src, &req(Policy::Grow { part: None }, 32 * GIB, 512)).unwrap();
        let root = 32 * GIB - MIB - 513 * MIB - 8 * GIB;
        assert_eq!(plan.parts[1].size, root);
        assert_eq!(plan.parts[1].action, FsAction::Shrink);
        assert_eq!(plan.parts[2].start, 513 * MIB + root);
        assert!(plan.actions.iter().any(|a| a.starts_with("shrink ext4")), "{:?}", plan.actions);
        check_invariants(&src, &plan, true);
    }

    #[test]
    fn too_small_refusal_states_the_minimum() {
        let src = linux();
        // root's floor: used data ends at 12 GiB (above the 11 GiB minimum) + min(10 % of
        // 10 GiB, 64 MiB) = 12 GiB + 64 MiB; plus ESP, swap, the first MiB and the backup GPT.
        let min = MIB + 512 * MIB + (12 * GIB + 64 * MIB) + 8 * GIB + 16384 + 512;
        let r = refusal(plan_migration(&src, &req(Policy::Grow { part: None }, 20 * GIB, 512)));
        assert_eq!(r.min_target_size, Some(min), "{r}");
        assert!(r.to_string().contains(&format!("minimum target size: {} ({min} bytes)", human(min))), "{r}");
        assert!(r.reason.contains("used data ends at 12 GiB"), "{r}");
        // The minimum itself works, one sector less does not.
        let plan = plan_migration(&src, &req(Policy::Grow { part: None }, min, 512)).unwrap();
        assert_eq!(plan.parts[1].size, 12 * GIB + 64 * MIB);
        assert_eq!(plan.min_target_size, min);
        check_invariants(&src, &plan, true);
        assert!(plan_migration(&src, &req(Policy::Grow { part: None }, min - 512, 512)).is_err());
        // Unknown usage: no shrinking at all.
        let mut blind = linux();
        blind.parts[1].used_end = None;
        let r = refusal(plan_migration(&blind, &req(Policy::Grow { part: None }, 32 * GIB, 512)));
        assert!(r.reason.contains("unknown"), "{r}");
        assert_eq!(r.min_target_size, Some(513 * MIB + 62 * GIB + 16384 + 512));
    }

    #[test]
    fn xfs_shrink_is_refused_with_the_reason() {
        let mut src = linux();
        src.parts[1].fs = Some("xfs".into());
        let r = refusal(plan_migration(&src, &req(Policy::Grow { part: None }, 32 * GIB, 512)));
        assert!(r.reason.contains("XFS cannot be shrunk"), "{r}");
        assert_eq!(r.min_target_size, Some(513 * MIB + 62 * GIB + 16384 + 512));
        // Growing XFS is fine.
        let plan = plan_migration(&src, &req(Policy::Grow { part: None }, 128 * GIB, 512)).unwrap();
        assert_eq!(plan.parts[1].action, FsAction::Grow);
        // Explicitly smaller: refused too.
        let r = refusal(plan_migration(&src, &req(Policy::Explicit(vec![(2, 40 * GIB)]), 64 * GIB, 512)));
        assert!(r.reason.contains("XFS"), "{r}");
    }

    #[test]
    fn fat_is_never_shrunk() {
        let src = linux();
        let r = refusal(plan_migration(&src, &req(Policy::Explicit(vec![(1, 256 * MIB)]), 64 * GIB, 512)));
        assert!(r.reason.contains("FAT"), "{r}");
        let r = refusal(plan_migration(&src, &req(Policy::Grow { part: Some(1) }, 32 * GIB, 512)));
        assert!(r.reason.contains("FAT"), "{r}");
    }

    #[test]
    fn proportional_scales_resizable_partitions() {
        let src = linux();
        let plan = plan_migration(&src, &req(Policy::Proportional, 128 * GIB, 512)).unwrap();
        assert_eq!(
            layout(&plan),
            vec![(1, 1, MIB, 512 * MIB, FsAction::None), (2, 2, 513 * MIB, 108 * GIB, FsAction::Grow), (3, 3, 513 * MIB + 108 * GIB, 16 * GIB, FsAction::Grow)]
        );
        check_invariants(&src, &plan, true);
        let plan = plan_migration(&src, &req(Policy::Proportional, 32 * GIB, 512)).unwrap();
        assert_eq!(
            layout(&plan),
            vec![(1, 1, MIB, 512 * MIB, FsAction::None), (2, 2, 513 * MIB, 27 * GIB, FsAction::Shrink), (3, 3, 513 * MIB + 27 * GIB, 4 * GIB, FsAction::Shrink)]
        );
        check_invariants(&src, &plan, true);
        // On a tight target the overflow comes off the last partitions, down to their floors.
        let min = MIB + 512 * MIB + (12 * GIB + 64 * MIB) + MIB + 16384 + 512;
        let plan = plan_migration(&src, &req(Policy::Proportional, min, 512)).unwrap();
        assert_eq!(plan.min_target_size, min);
        assert_eq!((plan.parts[1].size, plan.parts[2].size), (12 * GIB + 64 * MIB, MIB));
        check_invariants(&src, &plan, true);
        let r = refusal(plan_migration(&src, &req(Policy::Proportional, min - 512, 512)));
        assert_eq!(r.min_target_size, Some(min));
        assert!(r.reason.contains("partition 1 \"EFI\" (vfat): at least 512 MiB (536870912) (FAT is grown but never shrunk)"), "{r}");
    }

    #[test]
    fn explicit_sizes() {
        let src = linux();
        let plan = plan_migration(&src, &req(Policy::Explicit(vec![(2, 20 * GIB), (3, 4 * GIB + 123)]), 32 * GIB, 512)).unwrap();
        assert_eq!(
            layout(&plan),
            vec![(1, 1, MIB, 512 * MIB, FsAction::None), (2, 2, 513 * MIB, 20 * GIB, FsAction::Shrink), (3, 3, 513 * MIB + 20 * GIB, 4 * GIB, FsAction::Shrink)]
        );
        assert_eq!(plan.min_target_size, 513 * MIB + 24 * GIB + 16384 + 512);
        check_invariants(&src, &plan, true);
        // Below the floor, unknown, left out, twice, or too big for the target.
        let r = refusal(plan_migration(&src, &req(Policy::Explicit(vec![(2, 12 * GIB)]), 32 * GIB, 512)));
        assert!(r.reason.contains(&format!("{} bytes", 12 * GIB + 64 * MIB)), "{r}");
        assert!(plan_migration(&src, &req(Policy::Explicit(vec![(7, GIB)]), 32 * GIB, 512)).is_err());
        assert!(plan_migration(&src, &req(Policy::Explicit(vec![(2, 20 * GIB), (2, 21 * GIB)]), 32 * GIB, 512)).is_err());
        let mut sub = req(Policy::Explicit(vec![(3, GIB)]), 32 * GIB, 512);
        sub.include = Some(vec![1, 2]);
        assert!(plan_migration(&src, &sub).is_err());
        let r = refusal(plan_migration(&src, &req(Policy::Explicit(vec![(2, 30 * GIB)]), 32 * GIB, 512)));
        assert_eq!(r.min_target_size, Some(513 * MIB + 38 * GIB + 16384 + 512));
        // Unknown contents: may get bigger (copied whole), never smaller.
        let mut odd = linux();
        odd.parts[2].fs = Some("crypto_LUKS".into());
        let plan = plan_migration(&odd, &req(Policy::Explicit(vec![(3, 10 * GIB)]), 128 * GIB, 512)).unwrap();
        assert_eq!((plan.parts[2].size, plan.parts[2].action), (10 * GIB, FsAction::CopyWhole));
        assert!(plan.actions.iter().any(|a| a.contains("stay unused")), "{:?}", plan.actions);
        let r = refusal(plan_migration(&odd, &req(Policy::Explicit(vec![(3, 4 * GIB)]), 64 * GIB, 512)));
        assert!(r.reason.contains("crypto_LUKS is copied whole"), "{r}");
    }

    #[test]
    fn subset_leaves_partitions_out_and_renumbers() {
        let src = linux();
        let mut r = req(Policy::Grow { part: None }, 32 * GIB, 512);
        r.include = Some(vec![1, 2]);
        let plan = plan_migration(&src, &r).unwrap();
        assert_eq!(plan.left_out, vec![3]);
        assert_eq!(plan.parts.len(), 2);
        // The swap's space goes to root, which fills the disk up to the last full MiB.
        assert_eq!(plan.parts[1].end(), 32 * GIB - MIB);
        assert!(plan.actions.iter().any(|a| a.starts_with("leave out partition 3 \"swap\"") && a.ends_with("that name it are commented out")), "{:?}", plan.actions);
        check_invariants(&src, &plan, true);
        // Leaving out the middle partition: entry numbers stay compact.
        r.include = Some(vec![1, 3]);
        r.policy = Policy::Keep;
        r.target_size = 64 * GIB;
        let plan = plan_migration(&src, &r).unwrap();
        assert_eq!(layout(&plan), vec![(1, 1, MIB, 512 * MIB, FsAction::None), (2, 3, 513 * MIB + 54 * GIB, 8 * GIB, FsAction::None)]);
        check_invariants(&src, &plan, true);
        // Only the ESP and swap: swap takes the space.
        r.policy = Policy::Grow { part: None };
        let plan = plan_migration(&src, &r).unwrap();
        assert_eq!((plan.parts[1].action, plan.parts[1].end()), (FsAction::Grow, 64 * GIB - MIB));
        // Only the ESP: nothing may take the space.
        r.include = Some(vec![1]);
        let e = refusal(plan_migration(&src, &r));
        assert!(e.reason.contains("name one"), "{e}");
        r.include = Some(vec![]);
        assert!(plan_migration(&src, &r).is_err());
        r.include = Some(vec![4]);
        assert!(plan_migration(&src, &r).is_err());
    }

    #[test]
    fn numbering_follows_source_numbers_and_order_follows_disk() {
        // Entry 5 lies before entry 2 on the disk; entry numbers have a gap.
        let mut src = linux();
        src.parts[1].number = 5;
        src.parts[2].number = 2;
        src.parts[2].part_guid = guid(0x22);
        let plan = plan_migration(&src, &req(Policy::Grow { part: None }, 128 * GIB, 512)).unwrap();
        assert_eq!(plan.parts.iter().map(|t| (t.number, t.source_number)).collect::<Vec<_>>(), vec![(1, 1), (3, 5), (2, 2)]);
        assert_eq!(plan.parts[1].fs.as_deref(), Some("ext4"));
        check_invariants(&src, &plan, true);
    }

    #[test]
    fn sector_512_to_4096() {
        let src = linux();
        let plan = plan_migration(&src, &req(Policy::Keep, 64 * GIB, 4096)).unwrap();
        assert_eq!(layout(&plan), layout(&plan_migration(&src, &req(Policy::Keep, 64 * GIB, 512)).unwrap()));
        let gpt = plan.gpt_bytes().unwrap();
        assert_eq!(gpt.lba0.len(), 4096);
        assert_eq!(gpt.primary.len(), 4096 + 16384);
        let h = crate::gpt_raw::parse_header(&gpt.primary[..4096]).unwrap();
        let lbas = 64 * GIB / 4096;
        assert_eq!((h.first_usable, h.last_usable, h.backup_lba, h.entries_lba), (6, lbas - 6, lbas - 1, 2));
        let e = &gpt.primary[4096..];
        let lba = |i: usize, o: usize| u64::from_le_bytes(e[i * 128 + o..i * 128 + o + 8].try_into().unwrap());
        assert_eq!((lba(0, 32), lba(0, 40)), (256, 256 + 512 * 256 - 1));
        assert_eq!((lba(1, 32), lba(1, 40)), (513 * 256, 513 * 256 + 54 * 262144 - 1));
        assert_eq!(u32::from_le_bytes(gpt.lba0[446 + 12..446 + 16].try_into().unwrap()) as u64, lbas - 1);
        assert_eq!(&gpt.lba0[510..512], &[0x55, 0xAA]);
        assert_eq!(gpt.backup_entries_lba, lbas - 5);
        assert!(plan.actions.iter().any(|a| a.contains("would not mount")), "{:?}", plan.actions);
        check_invariants(&src, &plan, true);

        // A filesystem with blocks smaller than the target's sectors cannot go there.
        let mut small = linux();
        small.parts[1].fs_block = Some(1024);
        let r = refusal(plan_migration(&small, &req(Policy::Keep, 64 * GIB, 4096)));
        assert!(r.reason.contains("uses 1024-byte blocks; on a disk with 4096-byte sectors"), "{r}");
        assert!(plan_migration(&small, &req(Policy::Keep, 64 * GIB, 512)).is_ok());
        small.parts[1].fs_block = Some(4096);
        assert!(plan_migration(&small, &req(Policy::Keep, 64 * GIB, 4096)).is_ok());

        // A partition at LBA 34 is not on a 4096-byte boundary: keep refuses, grow re-aligns.
        let mut old = linux();
        old.parts[0].start = 34 * 512;
        let r = refusal(plan_migration(&old, &req(Policy::Keep, 64 * GIB, 4096)));
        assert!(r.reason.contains("4096-byte sectors"), "{r}");
        assert!(plan_migration(&old, &req(Policy::Keep, 64 * GIB, 512)).is_ok());
        let plan = plan_migration(&old, &req(Policy::Grow { part: None }, 64 * GIB, 4096)).unwrap();
        assert_eq!(plan.parts[0].start, MIB);
        check_invariants(&old, &plan, true);
        // An odd size is rounded up when kept, so no data is cut.
        let mut odd = linux();
        odd.parts[0].size = 512 * MIB - 512;
        odd.parts[0].fs = None;
        let plan = plan_migration(&odd, &req(Policy::Grow { part: None }, 64 * GIB, 4096)).unwrap();
        assert_eq!((plan.parts[0].size, plan.parts[0].action), (512 * MIB, FsAction::CopyWhole));
        check_invariants(&odd, &plan, true);
    }

    #[test]
    fn sector_4096_to_512() {
        let mut src = linux();
        src.logical_sector = 4096;
        let plan = plan_migration(&src, &req(Policy::Grow { part: None }, 96 * GIB, 512)).unwrap();
        let gpt = plan.gpt_bytes().unwrap();
        assert_eq!(gpt.lba0.len(), 512);
        let h = crate::gpt_raw::parse_header(&gpt.primary[..512]).unwrap();
        let lbas = 96 * GIB / 512;
        assert_eq!((h.first_usable, h.last_usable, h.backup_lba), (34, lbas - 34, lbas - 1));
        let e = &gpt.primary[512..];
        let lba = |i: usize, o: usize| u64::from_le_bytes(e[i * 128 + o..i * 128 + o + 8].try_into().unwrap());
        assert_eq!((lba(0, 32), lba(0, 40)), (2048, 2048 + 512 * 2048 - 1));
        assert_eq!(lba(1, 32), 513 * 2048);
        assert_eq!(lba(2, 40), 96 * GIB / 512 - 2048 - 1);
        assert!(!plan.actions.iter().any(|a| a.contains("would not mount")));
        check_invariants(&src, &plan, true);
    }

    #[test]
    fn new_identities() {
        let src = linux();
        let mut r = req(Policy::Keep, 64 * GIB, 512);
        r.identities = Identities::New { disk_guid: guid(0xa0), part_guids: vec![guid(0xa1), guid(0xa2), guid(0xa3)] };
        let plan = plan_migration(&src, &r).unwrap();
        assert_eq!(plan.disk_guid, guid(0xa0));
        assert_eq!(plan.parts.iter().map(|t| t.part_guid).collect::<Vec<_>>(), vec![guid(0xa1), guid(0xa2), guid(0xa3)]);
        assert!(plan.actions.iter().any(|a| a.contains("new disk GUID")));
        assert!(plan.show(&src).contains("(new)"));
        check_invariants(&src, &plan, true);
        // With a subset, the first GUIDs go to the target's partitions in entry order.
        r.include = Some(vec![2, 3]);
        let plan = plan_migration(&src, &r).unwrap();
        assert_eq!(plan.parts.iter().map(|t| (t.number, t.part_guid)).collect::<Vec<_>>(), vec![(1, guid(0xa1)), (2, guid(0xa2))]);
        // Too few, repeated or zero GUIDs are errors.
        r.include = None;
        r.identities = Identities::New { disk_guid: guid(0xa0), part_guids: vec![guid(0xa1)] };
        assert!(plan_migration(&src, &r).is_err());
        r.identities = Identities::New { disk_guid: guid(0xa0), part_guids: vec![guid(0xa1), guid(0xa1), guid(0xa3)] };
        assert!(plan_migration(&src, &r).is_err());
        r.identities = Identities::New { disk_guid: [0; 16], part_guids: vec![guid(0xa1), guid(0xa2), guid(0xa3)] };
        assert!(plan_migration(&src, &r).is_err());
    }

    #[test]
    fn windows_layout_grows_c_not_recovery_or_msr() {
        let mut esp = part(1, MIB, 100 * MIB, ESP, "EFI system partition", Some("vfat"));
        esp.attrs = 1 << 63;
        let msr = part(2, 101 * MIB, 16 * MIB, MSR, "Microsoft reserved partition", None);
        let mut c = part(3, 117 * MIB, 100 * GIB, BASIC, "Basic data partition", Some("ntfs"));
        c.used_bytes = Some(40 * GIB);
        c.used_end = Some(70 * GIB);
        let mut re = part(4, 117 * MIB + 100 * GIB, 600 * MIB, "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC", "", Some("ntfs"));
        re.attrs = 1 | 1 << 63;
        re.used_bytes = Some(500 * MIB);
        re.used_end = Some(590 * MIB);
        let src = SourceLayout { logical_sector: 512, size: 120 * GIB, disk_guid: guid(0xd1), parts: vec![esp, msr, c, re] };
        let plan = plan_migration(&src, &req(Policy::Grow { part: None }, 240 * GIB, 512)).unwrap();
        assert_eq!(plan.parts.iter().map(|t| t.action).collect::<Vec<_>>(), vec![FsAction::None, FsAction::CopyWhole, FsAction::Grow, FsAction::None]);
        assert_eq!(plan.parts[3].size, 600 * MIB);
        assert_eq!(plan.parts[3].end(), 240 * GIB - MIB);
        check_invariants(&src, &plan, true);
        // Proportional: ESP, MSR and recovery keep their size.
        let plan = plan_migration(&src, &req(Policy::Proportional, 240 * GIB, 512)).unwrap();
        assert_eq!(plan.parts.iter().map(|t| t.size).collect::<Vec<_>>(), vec![100 * MIB, 16 * MIB, 200 * GIB, 600 * MIB]);
        check_invariants(&src, &plan, true);
        // Shrinking C: to 80 GiB the used data (ending at 70 GiB + 64 MiB) still fits.
        let plan = plan_migration(&src, &req(Policy::Grow { part: None }, 80 * GIB, 512)).unwrap();
        assert_eq!(plan.parts[2].action, FsAction::Shrink);
        check_invariants(&src, &plan, true);
        let r = refusal(plan_migration(&src, &req(Policy::Grow { part: None }, 70 * GIB, 512)));
        assert_eq!(r.min_target_size, Some(MIB + 116 * MIB + 70 * GIB + 64 * MIB + 600 * MIB + 16384 + 512));
    }

    #[test]
    fn bios_boot_move_is_noted() {
        let mut src = linux();
        src.parts[0] = part(1, MIB, MIB, "21686148-6449-6E6F-744E-656564454649", "bios", None);
        let note = |plan: &MigratePlan| plan.actions.iter().any(|a| a.contains("GRUB's boot code"));
        assert!(!note(&plan_migration(&src, &req(Policy::Grow { part: None }, 128 * GIB, 512)).unwrap()));
        assert!(note(&plan_migration(&src, &req(Policy::Grow { part: None }, 128 * GIB, 4096)).unwrap()));
        src.parts[0].start = 34 * 512;
        let plan = plan_migration(&src, &req(Policy::Grow { part: None }, 128 * GIB, 512)).unwrap();
        assert!(note(&plan));
        assert_eq!((plan.parts[0].start, plan.parts[0].action), (MIB, FsAction::CopyWhole));
        check_invariants(&src, &plan, true);
    }

    #[test]
    fn show_lists_every_offset_and_size() {
        let src = linux();
        let mut r = req(Policy::Grow { part: None }, 128 * GIB, 4096);
        r.include = Some(vec![1, 2]);
        let plan = plan_migration(&src, &r).unwrap();
        let text = plan.show(&src);
        for t in &plan.parts {
            for v in [t.start, t.end(), t.size] {
                assert!(text.contains(&format!("({v})")), "{v} missing:\n{text}");
            }
        }
        for p in &src.parts {
            assert!(text.contains(&format!("({})", p.start)) && text.contains(&format!("({})", p.size)));
        }
        assert!(text.contains("left out"));
        assert!(text.contains("EFI System") && text.contains("Linux swap") && text.contains("grow +"));
        assert!(text.contains(&format!("{} ({} bytes)", human(plan.min_target_size), plan.min_target_size)));
        assert!(text.contains("4096-byte sectors"));
    }

    #[test]
    fn source_sanity() {
        let mut src = linux();
        src.parts[1].start = 100 * MIB; // overlaps the ESP
        assert!(plan_migration(&src, &req(Policy::Keep, 64 * GIB, 512)).is_err());
        let mut src = linux();
        src.parts[2].size = 10 * GIB; // past the end
        assert!(plan_migration(&src, &req(Policy::Keep, 64 * GIB, 512)).is_err());
        assert!(plan_migration(&linux(), &req(Policy::Keep, 64 * GIB, 2048)).is_err());
        let r = refusal(plan_migration(&linux(), &req(Policy::Grow { part: None }, 8192, 512)));
        assert!(r.min_target_size.is_some());
    }

    #[test]
    fn guid_text_round_trip() {
        let g = guid_from_str(ESP).unwrap();
        assert_eq!(&g[..4], &[0x28, 0x73, 0x2A, 0xC1]);
        assert_eq!(guid_to_string(&g), ESP);
        assert!(guid_from_str("not-a-guid").is_none());
        assert_eq!(name_from_utf16(&name_to_utf16("Basic data partition")), "Basic data partition");
        assert_eq!(type_name(&guid_from_str(SWAP).unwrap()), "Linux swap");
        assert_eq!((human(128 * GIB - MIB), human(128 * GIB), human(1536 * MIB), human(1000)), ("127.9 GiB".into(), "128 GiB".into(), "1.5 GiB".into(), "1000 B".into()));
    }
}
