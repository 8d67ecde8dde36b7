//! Bootable USB image: protective MBR + GPT with an EFI System Partition formatted FAT32,
//! holding the removable-media loader (systemd-boot, or Debian's signed shim + GRUB for
//! Secure Boot), our kernel and initramfs and their configuration; optionally a BIOS boot
//! partition with GRUB's core image and GRUB's boot code in the MBR (see [`crate::grub`]).
//! Disk and partition GUIDs and the FAT serial come from [`UsbIds`] (derived from a seed for
//! reproducible builds) and FAT timestamps from a fixed time when one is given. Also generic
//! FAT helpers (format + populate a partition, list/read files on an ESP without mounting it).

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use fatfs::{FatType, FileSystem, FormatVolumeOptions, FsOptions};
use fscommon::{BufStream, StreamSlice};
use gpt::disk::LogicalBlockSize;
use gpt::mbr::ProtectiveMBR;
use gpt::partition_types;
use gpt::GptConfig;
use serde::Serialize;
use uuid::Uuid;

use crate::fnmatch::fnmatch;

const MIB: u64 = 1024 * 1024;
const SECTOR: u64 = 512;

/// Where the bytes of a file to put on a FAT volume come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    /// In-memory contents.
    Bytes(Vec<u8>),
    /// A file on the host, streamed when written.
    Path(PathBuf),
}

impl FileSource {
    /// Size in bytes (stats the file for [`FileSource::Path`]).
    pub fn len(&self) -> Result<u64> {
        match self {
            FileSource::Bytes(b) => Ok(b.len() as u64),
            FileSource::Path(p) => Ok(fs::metadata(p)
                .with_context(|| format!("stat {}", p.display()))?
                .len()),
        }
    }

    /// True for an empty in-memory source or an empty file.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// A file to write onto a FAT volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspFile {
    /// `/`-separated path on the volume, e.g. `EFI/BOOT/BOOTX64.EFI` (a leading `/` is ignored).
    pub path: String,
    /// Contents.
    pub source: FileSource,
}

impl EspFile {
    /// A file with in-memory contents.
    pub fn bytes(path: impl Into<String>, data: impl Into<Vec<u8>>) -> EspFile {
        EspFile {
            path: path.into(),
            source: FileSource::Bytes(data.into()),
        }
    }

    /// A file copied from `src` on the host.
    pub fn from_path(path: impl Into<String>, src: impl Into<PathBuf>) -> EspFile {
        EspFile {
            path: path.into(),
            source: FileSource::Path(src.into()),
        }
    }
}

/// Debian's signed boot chain for Secure Boot, used instead of systemd-boot.
#[derive(Debug, Clone, Default)]
pub struct SignedChain {
    /// `shimx64.efi.signed` (signed by Microsoft's UEFI CA), installed as
    /// `EFI/BOOT/BOOTX64.EFI`.
    pub shim: PathBuf,
    /// `grubx64.efi.signed` (signed by Debian), installed as `EFI/BOOT/grubx64.efi`, where
    /// shim looks for it; its configuration goes to `EFI/debian/grub.cfg`, where it looks.
    pub grub: PathBuf,
    /// `mmx64.efi.signed` (MokManager), installed as `EFI/BOOT/mmx64.efi` when given: shim
    /// starts it when a signature does not verify, to enroll a key.
    pub mok_manager: Option<PathBuf>,
}

/// BIOS boot with GRUB (see [`crate::grub`]).
#[derive(Debug, Clone, Default)]
pub struct BiosBoot {
    /// GRUB's `boot.img` (512 bytes).
    pub boot_img: Vec<u8>,
    /// `core.img` from `grub-mkimage -O i386-pc`, with the embedded configuration finding
    /// the ESP by [`UsbIds::fat_uuid`].
    pub core_img: Vec<u8>,
}

/// The identifiers of an image: GPT disk and partition GUIDs, the FAT serial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsbIds {
    pub disk_guid: Uuid,
    pub esp_guid: Uuid,
    pub bios_guid: Uuid,
    pub volume_id: u32,
}

impl UsbIds {
    /// Fresh random identifiers (two sticks made from two builds differ).
    pub fn random() -> UsbIds {
        Self::from_guids(Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4())
    }

    /// Identifiers derived from `seed` (e.g. `SOURCE_DATE_EPOCH` and digests of the inputs):
    /// the same seed gives the same image, byte for byte. The GUIDs are SHA-256 based,
    /// formatted as random (version 4) UUIDs.
    pub fn from_seed(seed: &[u8]) -> UsbIds {
        use sha2::{Digest, Sha256};
        let g = |what: &str| {
            let h = Sha256::new().chain_update(b"sysclone usb image ids\0").chain_update(seed).chain_update(what.as_bytes()).finalize();
            let mut b = [0u8; 16];
            b.copy_from_slice(&h[..16]);
            uuid::Builder::from_random_bytes(b).into_uuid()
        };
        Self::from_guids(g("disk"), g("esp"), g("bios"))
    }

    fn from_guids(disk_guid: Uuid, esp_guid: Uuid, bios_guid: Uuid) -> UsbIds {
        UsbIds { disk_guid, esp_guid, bios_guid, volume_id: volume_id_from_guid(&esp_guid) }
    }

    /// The FAT serial as Linux and GRUB show it: `XXXX-XXXX`.
    pub fn fat_uuid(&self) -> String {
        format!("{:04X}-{:04X}", self.volume_id >> 16, self.volume_id & 0xFFFF)
    }
}

/// What to put on the USB image.
#[derive(Debug, Clone, Default)]
pub struct UsbImageSpec {
    /// Kernel image (bzImage with EFI stub), copied to `EFI/sysclone/vmlinuz`.
    pub kernel: PathBuf,
    /// Initramfs, copied to `EFI/sysclone/initramfs.img`.
    pub initramfs: PathBuf,
    /// systemd-boot (`systemd-bootx64.efi`), copied to `EFI/BOOT/BOOTX64.EFI`; not used when
    /// [`UsbImageSpec::secure_boot`] is set.
    pub loader_efi: PathBuf,
    /// Kernel command line (`options` line of the loader entry; omitted if empty). GRUB's
    /// entries add `sysclone.boot-partuuid=<ESP GUID>`, since GRUB does not tell the kernel
    /// which partition it started from (systemd-boot does, in `LoaderDevicePartUUID`).
    pub cmdline: String,
    /// Menu title of the loader entry.
    pub title: String,
    /// Additional files on the ESP: (path, contents), e.g. `("sysclone/job.toml", …)`.
    pub extra_esp_files: Vec<(String, Vec<u8>)>,
    /// ESP size in bytes (rounded up to MiB). Default: contents + 32 MiB, at least 64 MiB.
    pub esp_size: Option<u64>,
    /// Boot through Debian's signed shim and GRUB instead of systemd-boot.
    pub secure_boot: Option<SignedChain>,
    /// Also boot on BIOS machines (GRUB in the MBR and a BIOS boot partition).
    pub bios: Option<BiosBoot>,
    /// GUIDs and FAT serial; random when `None`.
    pub ids: Option<UsbIds>,
    /// Timestamp of every FAT directory entry (seconds since 1970); the build time when `None`.
    pub timestamp: Option<u64>,
}

/// Summary of a built USB image.
#[derive(Debug, Clone, Serialize)]
pub struct UsbImageReport {
    /// Total image size in bytes.
    pub image_size: u64,
    /// ESP start offset in bytes (always 1 MiB).
    pub esp_start_byte: u64,
    /// ESP length in bytes.
    pub esp_len: u64,
    /// GPT disk GUID.
    pub disk_guid: String,
    /// ESP partition GUID (`PARTUUID`).
    pub part_guid: String,
    /// FAT volume serial (the filesystem "UUID" `XXXX-XXXX`).
    pub volume_id: u32,
    /// Files written: (path, size).
    pub files: Vec<(String, u64)>,
    /// BIOS boot partition start offset in bytes, when there is one.
    pub bios_start_byte: Option<u64>,
}

/// Default ESP size for `content_bytes` of files: contents + 32 MiB slack, at least 64 MiB,
/// rounded up to a whole MiB.
pub fn default_esp_size(content_bytes: u64) -> u64 {
    round_up_mib((content_bytes + 32 * MIB).max(64 * MIB))
}

fn round_up_mib(n: u64) -> u64 {
    n.div_ceil(MIB) * MIB
}

/// Derives a FAT volume serial from a partition GUID: the XOR of its four 32-bit words (of the
/// GUID's big-endian byte form), so the same partition always gets the same serial.
pub fn volume_id_from_guid(guid: &Uuid) -> u32 {
    guid.as_bytes()
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .fold(0, |a, w| a ^ w)
}

/// Converts a volume label to the 11-byte, space-padded, upper-case form FAT stores. Allowed:
/// `A-Z a-z 0-9 space ! # $ % & ' ( ) - @ ^ _ ` { } ~`, at most 11 characters.
pub fn fat_label(label: &str) -> Result<[u8; 11]> {
    ensure!(
        label.len() <= 11,
        "FAT volume label {label:?} is longer than 11 characters"
    );
    let mut out = [b' '; 11];
    for (i, c) in label.bytes().enumerate() {
        let ok = c.is_ascii_alphanumeric() || b" !#$%&'()-@^_`{}~".contains(&c);
        ensure!(
            ok,
            "FAT volume label {label:?} contains invalid character {:?}",
            c as char
        );
        out[i] = c.to_ascii_uppercase();
    }
    Ok(out)
}

fn clean_fat_path(p: &str) -> Result<String> {
    let t = p.trim_matches('/');
    ensure!(!t.is_empty(), "empty path for FAT file");
    for c in t.split('/') {
        ensure!(
            !c.is_empty() && c != "." && c != "..",
            "FAT path {p:?} has an empty, '.' or '..' component"
        );
        ensure!(
            !c.contains(['\\', ':', '*', '?', '"', '<', '>', '|']) && !c.bytes().any(|b| b < 0x20),
            "FAT path {p:?} contains a character FAT does not allow"
        );
    }
    Ok(t.to_string())
}

type FatFs<D> = FileSystem<BufStream<StreamSlice<D>>>;

fn open_fat<D: Read + Write + Seek>(dev: D, start: u64, len: u64) -> Result<FatFs<D>> {
    open_fat_at(dev, start, len, None)
}

/// A clock for `fatfs` that always says the same time.
#[derive(Debug)]
struct FixedTime(fatfs::DateTime);

impl fatfs::TimeProvider for FixedTime {
    fn get_current_date(&self) -> fatfs::Date {
        self.0.date
    }
    fn get_current_date_time(&self) -> fatfs::DateTime {
        self.0
    }
}

/// The FAT date and time (UTC) of `epoch` seconds since 1970, clamped to FAT's 1980–2107.
pub fn fat_date_time(epoch: u64) -> fatfs::DateTime {
    let min = 315_532_800u64; // 1980-01-01
    let max = 4_354_819_199u64; // 2107-12-31 23:59:59
    let t = epoch.clamp(min, max);
    let (year, month, day, hour, min, sec) = sysclone_disk::utc_from_unix(t);
    fatfs::DateTime {
        date: fatfs::Date { year: year as u16, month: month as u16, day: day as u16 },
        time: fatfs::Time { hour: hour as u16, min: min as u16, sec: sec as u16, millis: 0 },
    }
}

fn open_fat_at<D: Read + Write + Seek>(dev: D, start: u64, len: u64, time: Option<u64>) -> Result<FatFs<D>> {
    let end = start
        .checked_add(len)
        .context("partition start + length overflows")?;
    let slice = StreamSlice::new(dev, start, end)
        .with_context(|| format!("seeking to partition at byte {start}"))?;
    let mut opts = FsOptions::new();
    if let Some(t) = time {
        // fatfs wants a 'static clock; one small allocation per image built.
        let clock: &'static FixedTime = Box::leak(Box::new(FixedTime(fat_date_time(t))));
        opts = opts.time_provider(clock);
    }
    FileSystem::new(BufStream::new(slice), opts)
        .with_context(|| format!("opening FAT filesystem at byte {start} (length {len})"))
}

/// Formats `len` bytes at `start_byte` of `dev` as FAT32 (512-byte sectors, 2 FATs) with the
/// given label and serial. Needs at least ~33 MiB (FAT32's minimum cluster count with
/// 512-byte clusters); 64 MiB or more is recommended.
pub fn format_fat32<D: Read + Write + Seek>(
    dev: D,
    start_byte: u64,
    len: u64,
    label: &str,
    volume_id: u32,
) -> Result<()> {
    format_fat32_with(dev, start_byte, len, label, volume_id, 512)
}

/// [`format_fat32`] with a chosen logical sector size (512 or 4096: a FAT for a 4Kn disk).
pub fn format_fat32_with<D: Read + Write + Seek>(
    mut dev: D,
    start_byte: u64,
    len: u64,
    label: &str,
    volume_id: u32,
    bytes_per_sector: u16,
) -> Result<()> {
    let label = fat_label(label)?;
    let end = start_byte
        .checked_add(len)
        .context("partition start + length overflows")?;
    let slice = StreamSlice::new(&mut dev, start_byte, end)
        .with_context(|| format!("seeking to partition at byte {start_byte}"))?;
    let mut buf = BufStream::new(slice);
    fatfs::format_volume(
        &mut buf,
        FormatVolumeOptions::new()
            .fat_type(FatType::Fat32)
            .bytes_per_sector(bytes_per_sector)
            .volume_id(volume_id)
            .volume_label(label),
    )
    .with_context(|| format!("formatting FAT32 at byte {start_byte} (length {len} bytes)"))?;
    buf.flush().context("flushing FAT32 format")?;
    drop(buf);
    // fatfs 0.3.6 silently falls back to FAT16/12 when the size does not suit FAT32.
    let fs = open_fat(&mut dev, start_byte, len)?;
    let ty = fs.fat_type();
    fs.unmount()
        .context("unmounting freshly formatted FAT volume")?;
    ensure!(
        ty == FatType::Fat32,
        "{len} bytes at byte {start_byte} formatted as {ty:?}, not FAT32 (too small: use at least 64 MiB)"
    );
    Ok(())
}

fn mkdir_p<T: fatfs::ReadWriteSeek>(root: &fatfs::Dir<'_, T>, dir: &str) -> Result<()> {
    let mut acc = String::new();
    for comp in dir.split('/') {
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(comp);
        match root.open_dir(&acc) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                root.create_dir(&acc)
                    .with_context(|| format!("creating directory {acc} on FAT volume"))?;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("opening directory {acc} on FAT volume"))
            }
        }
    }
    Ok(())
}

/// Writes `files` into the existing FAT filesystem at `start_byte`..`start_byte + len` of
/// `dev`, creating parent directories level by level and replacing existing files (truncated
/// first). Returns (path, size) for each file written.
///
/// Afterwards every directory whose `.`/`..` entries `fatfs` 0.3.6 laid out wrongly (an LFN
/// entry in front of them) is rewritten so that `fsck.fat` finds them in slots 0 and 1.
pub fn add_files_to_fat<D: Read + Write + Seek>(
    dev: D,
    start_byte: u64,
    len: u64,
    files: &[EspFile],
) -> Result<Vec<(String, u64)>> {
    add_files_to_fat_at(dev, start_byte, len, files, None)
}

/// [`add_files_to_fat`] with every timestamp set to `time` (seconds since 1970, UTC) instead
/// of the current time, for reproducible images.
pub fn add_files_to_fat_at<D: Read + Write + Seek>(
    mut dev: D,
    start_byte: u64,
    len: u64,
    files: &[EspFile],
    time: Option<u64>,
) -> Result<Vec<(String, u64)>> {
    let mut seen = BTreeSet::new();
    let mut cleaned = Vec::with_capacity(files.len());
    for f in files {
        let p = clean_fat_path(&f.path)?;
        ensure!(
            seen.insert(p.to_ascii_lowercase()),
            "duplicate FAT path {p} (FAT names are case-insensitive)"
        );
        cleaned.push((p, &f.source));
    }
    let fs = open_fat_at(&mut dev, start_byte, len, time)?;
    let mut written = Vec::new();
    {
        let root = fs.root_dir();
        for (p, src) in &cleaned {
            if let Some((parent, _)) = p.rsplit_once('/') {
                mkdir_p(&root, parent)?;
            }
            let mut f = root
                .create_file(p)
                .with_context(|| format!("creating {p} on FAT volume"))?;
            f.truncate()
                .with_context(|| format!("truncating {p} on FAT volume"))?;
            let n = match src {
                FileSource::Bytes(b) => {
                    f.write_all(b).with_context(|| {
                        format!("writing {p} ({} bytes) to FAT volume", b.len())
                    })?;
                    b.len() as u64
                }
                FileSource::Path(host) => {
                    let mut h = File::open(host)
                        .with_context(|| format!("opening {} for {p}", host.display()))?;
                    let want = h
                        .metadata()
                        .with_context(|| format!("stat {}", host.display()))?
                        .len();
                    let n = io::copy(&mut h, &mut f).with_context(|| {
                        format!("copying {} to {p} on FAT volume", host.display())
                    })?;
                    ensure!(
                        n == want,
                        "copying {} to {p}: wrote {n} of {want} bytes",
                        host.display()
                    );
                    n
                }
            };
            f.flush()
                .with_context(|| format!("flushing {p} on FAT volume"))?;
            written.push((p.clone(), n));
        }
    }
    fs.unmount().context("unmounting FAT volume")?;
    // fatfs 0.3.6 puts LFN entries before "." and ".." of new directories; fsck.fat and
    // strict FAT drivers object. Rewrite those directories.
    crate::fatfix::fix_dot_entries(&mut dev, start_byte, len)
        .context("repairing '.'/'..' entries of new FAT directories")?;
    Ok(written)
}

/// Free space of the FAT filesystem at `start_byte` of `dev`: (free bytes, cluster bytes).
pub fn fat_free_space<D: Read + Write + Seek>(dev: D, start_byte: u64, len: u64) -> Result<(u64, u64)> {
    let fs = open_fat(dev, start_byte, len)?;
    let st = fs.stats().context("reading the FAT's free cluster count")?;
    let cluster = u64::from(st.cluster_size());
    Ok((u64::from(st.free_clusters()) * cluster, cluster))
}

/// Removes the directory `dir` (path case-insensitive) and everything below it from the FAT
/// filesystem at `start_byte` of `dev`. Returns the paths removed (files first, then the
/// directories, deepest first); an absent directory removes nothing.
pub fn remove_dir_from_fat<D: Read + Write + Seek>(dev: D, start_byte: u64, len: u64, dir: &str) -> Result<Vec<String>> {
    let d = clean_fat_path(dir)?;
    let fs = open_fat(dev, start_byte, len)?;
    let mut removed = Vec::new();
    {
        let root = fs.root_dir();
        let top = match root.open_dir(&d) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
            Err(e) => return Err(e).with_context(|| format!("opening directory {d} on FAT volume")),
        };
        let mut entries = Vec::new();
        walk_fat(&top, &d, 0, &mut entries)?;
        // Files first, then directories from the deepest.
        entries.sort_by_key(|e| (e.is_dir, std::cmp::Reverse(e.path.matches('/').count())));
        for e in entries.iter().map(|e| e.path.clone()).chain(std::iter::once(d.clone())) {
            root.remove(&e).with_context(|| format!("removing {e} from FAT volume"))?;
            removed.push(e);
        }
    }
    fs.unmount().context("unmounting FAT volume")?;
    Ok(removed)
}

/// Formats a FAT32 filesystem on `dev` at `start_byte` (length `len`) with `label` and
/// `volume_id`, then writes `files` into it (see [`add_files_to_fat`]). Returns (path, size)
/// for each file written.
pub fn write_fat_partition<D: Read + Write + Seek>(
    mut dev: D,
    start_byte: u64,
    len: u64,
    files: &[EspFile],
    label: &str,
    volume_id: u32,
) -> Result<Vec<(String, u64)>> {
    format_fat32(&mut dev, start_byte, len, label, volume_id)?;
    add_files_to_fat(&mut dev, start_byte, len, files)
}

/// One file or directory found on a FAT volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EspEntry {
    /// `/`-separated path from the volume root, with the long names as stored.
    pub path: String,
    /// True for directories.
    pub is_dir: bool,
    /// File size in bytes (0 for directories).
    pub size: u64,
}

fn walk_fat<T: fatfs::ReadWriteSeek>(
    dir: &fatfs::Dir<'_, T>,
    prefix: &str,
    depth: usize,
    out: &mut Vec<EspEntry>,
) -> Result<()> {
    ensure!(
        depth < 64,
        "FAT directory tree deeper than 64 levels at {prefix}"
    );
    for ent in dir.iter() {
        let ent = ent.with_context(|| format!("reading FAT directory /{prefix}"))?;
        let name = ent.file_name();
        if name == "." || name == ".." {
            continue;
        }
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if ent.is_dir() {
            out.push(EspEntry {
                path: path.clone(),
                is_dir: true,
                size: 0,
            });
            walk_fat(&ent.to_dir(), &path, depth + 1, out)?;
        } else if ent.is_file() {
            out.push(EspEntry {
                path,
                is_dir: false,
                size: ent.len(),
            });
        }
    }
    Ok(())
}

/// Lists every file and directory on the FAT filesystem at `start_byte`..`start_byte + len` of
/// `dev`, parents before children.
pub fn list_fat_files<D: Read + Write + Seek>(
    dev: D,
    start_byte: u64,
    len: u64,
) -> Result<Vec<EspEntry>> {
    let fs = open_fat(dev, start_byte, len)?;
    let mut out = Vec::new();
    walk_fat(&fs.root_dir(), "", 0, &mut out)?;
    Ok(out)
}

/// Opens an image or block device read-only (writes through it fail; none are made when only
/// reading a clean filesystem).
fn open_ro(p: &Path) -> Result<File> {
    File::open(p).with_context(|| format!("opening {} read-only", p.display()))
}

/// Lists every file and directory of the FAT filesystem (e.g. an ESP) at `part_start_byte`
/// (length `part_len`) inside the image file or block device `image_or_device`, without
/// mounting it. The device is opened read-only.
pub fn read_esp_files(
    image_or_device: &Path,
    part_start_byte: u64,
    part_len: u64,
) -> Result<Vec<EspEntry>> {
    list_fat_files(open_ro(image_or_device)?, part_start_byte, part_len)
        .with_context(|| format!("listing FAT filesystem in {}", image_or_device.display()))
}

fn expand_double_star(pattern: &str, out: &mut Vec<String>) {
    match pattern.find("**/") {
        None => out.push(pattern.to_string()),
        Some(i) => {
            // `**/` matches zero directories…
            expand_double_star(&format!("{}{}", &pattern[..i], &pattern[i + 3..]), out);
            // …or any number of them (`*` crosses `/`).
            expand_double_star(
                &format!("{}*\u{0}/{}", &pattern[..i], &pattern[i + 3..]),
                out,
            );
        }
    }
}

/// Matches a volume path against a glob, case-insensitively (FAT is): [`fnmatch`] semantics
/// (`*` crosses `/`), and `**/` additionally matches zero directories, so `EFI/**/*.efi`
/// matches both `EFI/BOOT/BOOTX64.EFI` and `EFI/x.efi`.
pub fn esp_path_matches(pattern: &str, path: &str) -> bool {
    let pat = pattern.trim_start_matches('/').to_ascii_lowercase();
    let path = path.to_ascii_lowercase();
    let mut variants = Vec::new();
    expand_double_star(&pat, &mut variants);
    variants
        .iter()
        .any(|v| fnmatch(&v.replace('\u{0}', ""), &path))
}

/// Files (not directories) on the FAT filesystem at `part_start_byte` of `image_or_device`
/// whose path matches `pattern` (see [`esp_path_matches`]), e.g. `EFI/**/*.efi` to find boot
/// loaders on a target ESP.
pub fn find_files(
    image_or_device: &Path,
    part_start_byte: u64,
    part_len: u64,
    pattern: &str,
) -> Result<Vec<EspEntry>> {
    Ok(read_esp_files(image_or_device, part_start_byte, part_len)?
        .into_iter()
        .filter(|e| !e.is_dir && esp_path_matches(pattern, &e.path))
        .collect())
}

/// Reads one file (path case-insensitive) from the FAT filesystem at `start_byte` of `dev`.
pub fn read_fat_file<D: Read + Write + Seek>(
    dev: D,
    start_byte: u64,
    len: u64,
    path: &str,
) -> Result<Vec<u8>> {
    let p = clean_fat_path(path)?;
    let fs = open_fat(dev, start_byte, len)?;
    let mut data = Vec::new();
    {
        let mut f = fs
            .root_dir()
            .open_file(&p)
            .with_context(|| format!("opening {p} on FAT volume"))?;
        f.read_to_end(&mut data)
            .with_context(|| format!("reading {p} on FAT volume"))?;
    }
    Ok(data)
}

/// Reads one file from the ESP at `part_start_byte` of `image_or_device` (opened read-only).
pub fn read_esp_file(
    image_or_device: &Path,
    part_start_byte: u64,
    part_len: u64,
    path: &str,
) -> Result<Vec<u8>> {
    read_fat_file(open_ro(image_or_device)?, part_start_byte, part_len, path)
        .with_context(|| format!("reading {path} from {}", image_or_device.display()))
}

fn check_line(what: &str, s: &str) -> Result<()> {
    ensure!(
        !s.contains(['\n', '\r']),
        "{what} must be a single line, got {s:?}"
    );
    Ok(())
}

/// The systemd-boot `loader/loader.conf` written on the image.
pub const LOADER_CONF: &str = "default sysclone.conf\ntimeout 0\neditor no\n";

/// The systemd-boot entry (`loader/entries/sysclone.conf`) for `title` and `cmdline`.
pub fn loader_entry(title: &str, cmdline: &str) -> String {
    let mut s =
        format!("title {title}\nlinux /EFI/sysclone/vmlinuz\ninitrd /EFI/sysclone/initramfs.img\n");
    if !cmdline.trim().is_empty() {
        s.push_str(&format!("options {}\n", cmdline.trim()));
    }
    s
}

/// Builds a bootable USB image at `out` (a sparse regular file, replaced if it exists): 1 MiB
/// gap, the ESP, then (with [`UsbImageSpec::bios`]) a 1 MiB BIOS boot partition, then 1 MiB
/// for the backup GPT. Protective MBR (with GRUB's boot code for BIOS boot); GPT with the
/// disk and partition GUIDs of [`UsbImageSpec::ids`], partition 1 "sysclone ESP" of type EFI
/// System at LBA 2048, partition 2 "BIOS boot"; FAT32 labelled `SYSCLONE`.
///
/// ESP contents: `EFI/sysclone/vmlinuz`, `EFI/sysclone/initramfs.img`, the extra files, and
/// * with systemd-boot: `EFI/BOOT/BOOTX64.EFI`, `loader/loader.conf` ([`LOADER_CONF`]),
///   `loader/entries/sysclone.conf` ([`loader_entry`]);
/// * with the signed chain: `EFI/BOOT/BOOTX64.EFI` (shim), `EFI/BOOT/grubx64.efi`,
///   optionally `EFI/BOOT/mmx64.efi`, and `EFI/debian/grub.cfg` ([`crate::grub::grub_cfg`]);
/// * with BIOS boot: `boot/grub/grub.cfg` (the same text).
pub fn build_usb_image(spec: &UsbImageSpec, out: &Path) -> Result<UsbImageReport> {
    check_line("title", &spec.title)?;
    check_line("cmdline", &spec.cmdline)?;
    let title = if spec.title.trim().is_empty() {
        "sysclone"
    } else {
        spec.title.trim()
    };
    let ids = spec.ids.unwrap_or_else(UsbIds::random);
    let grub_cmdline = format!("{} sysclone.boot-partuuid={}", spec.cmdline.trim(), ids.esp_guid.hyphenated()).trim().to_string();
    let grub_cfg = crate::grub::grub_cfg(title, &grub_cmdline);
    let mut files = Vec::new();
    match &spec.secure_boot {
        None => {
            files.push(EspFile::from_path("EFI/BOOT/BOOTX64.EFI", &spec.loader_efi));
        }
        Some(sc) => {
            files.push(EspFile::from_path("EFI/BOOT/BOOTX64.EFI", &sc.shim));
            files.push(EspFile::from_path("EFI/BOOT/grubx64.efi", &sc.grub));
            if let Some(mm) = &sc.mok_manager {
                files.push(EspFile::from_path("EFI/BOOT/mmx64.efi", mm));
            }
        }
    }
    files.push(EspFile::from_path("EFI/sysclone/vmlinuz", &spec.kernel));
    files.push(EspFile::from_path("EFI/sysclone/initramfs.img", &spec.initramfs));
    match &spec.secure_boot {
        None => {
            files.push(EspFile::bytes("loader/loader.conf", LOADER_CONF));
            files.push(EspFile::bytes("loader/entries/sysclone.conf", loader_entry(title, &spec.cmdline)));
        }
        Some(_) => files.push(EspFile::bytes("EFI/debian/grub.cfg", grub_cfg.clone())),
    }
    if spec.bios.is_some() {
        files.push(EspFile::bytes("boot/grub/grub.cfg", grub_cfg.clone()));
    }
    for (p, data) in &spec.extra_esp_files {
        files.push(EspFile::bytes(p.clone(), data.clone()));
    }
    let mut content = 0u64;
    for f in &files {
        content += f.source.len()?;
    }
    let esp_len = match spec.esp_size {
        Some(s) => {
            let s = round_up_mib(s);
            ensure!(
                s >= content + MIB,
                "ESP size {s} bytes is too small for {content} bytes of files"
            );
            s
        }
        None => default_esp_size(content),
    };
    let esp_start = MIB;
    let bios_start = esp_start + esp_len;
    let bios_len = if spec.bios.is_some() { MIB } else { 0 };
    if let Some(b) = &spec.bios {
        ensure!(b.core_img.len() as u64 <= bios_len, "GRUB core.img ({} bytes) does not fit the 1 MiB BIOS boot partition", b.core_img.len());
    }
    let image_size = bios_start + bios_len + MIB;
    let total_lbas = image_size / SECTOR;

    let tmp = out.with_file_name(format!(
        ".{}.tmp-{}",
        out.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "usb.img".into()),
        std::process::id()
    ));
    let result = (|| -> Result<UsbImageReport> {
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        file.set_len(image_size)
            .with_context(|| format!("sizing {} to {image_size} bytes", tmp.display()))?;

        let mbr_lbas = u32::try_from(total_lbas - 1).unwrap_or(u32::MAX);
        let mut mbr = ProtectiveMBR::with_lb_size(mbr_lbas);
        if let Some(b) = &spec.bios {
            mbr.set_bootcode(crate::grub::mbr_boot_code(&b.boot_img, bios_start / SECTOR)?);
        }
        mbr.overwrite_lba0(&mut file)
            .with_context(|| format!("writing protective MBR to {}", tmp.display()))?;

        let dev = file
            .try_clone()
            .with_context(|| format!("duplicating handle of {}", tmp.display()))?;
        let mut disk = GptConfig::new()
            .writable(true)
            .logical_block_size(LogicalBlockSize::Lb512)
            .create_from_device(dev, Some(ids.disk_guid))
            .with_context(|| format!("creating GPT on {}", tmp.display()))?;
        disk.add_partition_at(
            "sysclone ESP",
            1,
            esp_start / SECTOR,
            esp_len / SECTOR,
            partition_types::EFI,
            0,
        )
        .with_context(|| format!("adding ESP partition to GPT of {}", tmp.display()))?;
        if spec.bios.is_some() {
            disk.add_partition_at("BIOS boot", 2, bios_start / SECTOR, bios_len / SECTOR, partition_types::BIOS, 0)
                .with_context(|| format!("adding BIOS boot partition to GPT of {}", tmp.display()))?;
        }
        // The gpt crate gives new partitions random GUIDs: set ours.
        let mut parts = disk.partitions().clone();
        for (n, p) in parts.iter_mut() {
            p.part_guid = if *n == 1 { ids.esp_guid } else { ids.bios_guid };
        }
        disk.update_partitions(parts)
            .with_context(|| format!("setting partition GUIDs on {}", tmp.display()))?;
        let part = disk
            .partitions()
            .get(&1)
            .cloned()
            .context("ESP partition missing after add")?;
        ensure!(
            part.first_lba == esp_start / SECTOR
                && part.last_lba == (esp_start + esp_len) / SECTOR - 1,
            "ESP placed at LBA {}..={}, expected {}..={}",
            part.first_lba,
            part.last_lba,
            esp_start / SECTOR,
            (esp_start + esp_len) / SECTOR - 1
        );
        ensure!(
            disk.partitions().values().all(|p| p.last_lba <= disk.header().last_usable),
            "a partition ends past the last usable LBA"
        );
        let disk_guid = *disk.guid();
        ensure!(disk_guid == ids.disk_guid && part.part_guid == ids.esp_guid, "the GPT did not take the requested GUIDs");
        disk.write()
            .with_context(|| format!("writing GPT to {}", tmp.display()))?;

        if let Some(b) = &spec.bios {
            let mut core = b.core_img.clone();
            crate::grub::place_core_img(&mut core, bios_start / SECTOR)?;
            file.seek(io::SeekFrom::Start(bios_start))?;
            file.write_all(&core)
                .with_context(|| format!("writing GRUB core.img to {}", tmp.display()))?;
        }

        let volume_id = ids.volume_id;
        format_fat32(&mut file, esp_start, esp_len, "SYSCLONE", volume_id)
            .with_context(|| format!("formatting the ESP of {}", tmp.display()))?;
        let written = add_files_to_fat_at(&mut file, esp_start, esp_len, &files, Some(spec.timestamp.unwrap_or_else(now_epoch)))
            .with_context(|| format!("writing ESP of {}", tmp.display()))?;
        file.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
        Ok(UsbImageReport {
            image_size,
            esp_start_byte: esp_start,
            esp_len,
            disk_guid: disk_guid.hyphenated().to_string(),
            part_guid: part.part_guid.hyphenated().to_string(),
            volume_id,
            files: written,
            bios_start_byte: spec.bios.as_ref().map(|_| bios_start),
        })
    })();
    match result {
        Ok(r) => {
            fs::rename(&tmp, out)
                .with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
            Ok(r)
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e.context(format!("building USB image {}", out.display())))
        }
    }
}

fn now_epoch() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::process::Command;

    fn pseudo_random(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).max(1);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect()
    }

    fn tool(name: &str, pkg: &str) -> Command {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
            .unwrap_or(false)
            || Path::new("/usr/sbin").join(name).is_file()
            || Path::new("/sbin").join(name).is_file();
        assert!(
            found,
            "{name} is required for this test: apt-get install {pkg}"
        );
        let mut c = Command::new(name);
        c.env(
            "PATH",
            format!(
                "{}:/usr/sbin:/sbin",
                std::env::var("PATH").unwrap_or_default()
            ),
        );
        c.env("MTOOLS_SKIP_CHECK", "1");
        c
    }

    struct Built {
        dir: tempfile::TempDir,
        img: PathBuf,
        kernel: Vec<u8>,
        initrd: Vec<u8>,
        loader: Vec<u8>,
        report: UsbImageReport,
    }

    fn build() -> Built {
        let dir = tempfile::tempdir().unwrap();
        let kernel = pseudo_random(3 * 1024 * 1024 + 17, 1);
        let initrd = pseudo_random(5 * 1024 * 1024 + 3, 2);
        let mut loader = b"MZ fake systemd-boot ".to_vec();
        loader.extend(pseudo_random(140_000, 3));
        let (k, i, l) = (
            dir.path().join("vmlinuz"),
            dir.path().join("initrd.img"),
            dir.path().join("systemd-bootx64.efi"),
        );
        fs::write(&k, &kernel).unwrap();
        fs::write(&i, &initrd).unwrap();
        fs::write(&l, &loader).unwrap();
        let spec = UsbImageSpec {
            kernel: k,
            initramfs: i,
            loader_efi: l,
            cmdline: "console=ttyS0 sysclone.job=/sysclone/job.toml".into(),
            title: "sysclone rescue".into(),
            extra_esp_files: vec![
                (
                    "sysclone/job.toml".into(),
                    b"[job]\nmode = \"clone\"\n".to_vec(),
                ),
                ("/a/b/c/deep.txt".into(), b"deep".to_vec()),
            ],
            esp_size: None,
            ..Default::default()
        };
        let img = dir.path().join("usb.img");
        let report = build_usb_image(&spec, &img).unwrap();
        Built {
            dir,
            img,
            kernel,
            initrd,
            loader,
            report,
        }
    }

    #[test]
    fn builds_valid_image() {
        let b = build();
        let r = &b.report;
        assert_eq!(r.esp_start_byte, MIB);
        assert_eq!(r.esp_len, 64 * MIB);
        assert_eq!(r.image_size, 66 * MIB);
        assert_eq!(fs::metadata(&b.img).unwrap().len(), r.image_size);
        assert_eq!(r.files.len(), 7);

        // GPT read back with the gpt crate.
        let disk = GptConfig::new()
            .writable(false)
            .logical_block_size(LogicalBlockSize::Lb512)
            .open(&b.img)
            .unwrap();
        assert_eq!(disk.guid().hyphenated().to_string(), r.disk_guid);
        let parts = disk.partitions();
        assert_eq!(parts.len(), 1);
        let p = &parts[&1];
        assert_eq!(p.name, "sysclone ESP");
        assert_eq!(p.part_type_guid, partition_types::EFI);
        assert_eq!(p.first_lba, 2048);
        assert_eq!((p.last_lba + 1 - p.first_lba) * 512, r.esp_len);
        assert_eq!(p.part_guid.hyphenated().to_string(), r.part_guid);
        assert_eq!(r.volume_id, volume_id_from_guid(&p.part_guid));

        // Protective MBR.
        let raw = fs::read(&b.img).unwrap();
        assert_eq!(&raw[510..512], &[0x55, 0xAA]);
        assert_eq!(raw[446 + 4], 0xEE);

        // Boot sector: FAT32 serial and label.
        let bs = &raw[MIB as usize..MIB as usize + 512];
        assert_eq!(&bs[0x52..0x5A], b"FAT32   ");
        assert_eq!(
            u32::from_le_bytes(bs[0x43..0x47].try_into().unwrap()),
            r.volume_id
        );
        assert_eq!(&bs[0x47..0x52], b"SYSCLONE   ");

        // sgdisk -v
        let o = tool("sgdisk", "gdisk")
            .arg("-v")
            .arg(&b.img)
            .output()
            .unwrap();
        let so = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && so.contains("No problems found"),
            "sgdisk -v: {so}"
        );

        // fsck.fat -n on the extracted partition.
        let part = b.dir.path().join("esp.bin");
        fs::write(&part, &raw[MIB as usize..(MIB + r.esp_len) as usize]).unwrap();
        let o = tool("fsck.fat", "dosfstools")
            .args(["-n", "-v"])
            .arg(&part)
            .output()
            .unwrap();
        eprintln!("{}", String::from_utf8_lossy(&o.stdout));
        assert!(
            o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("Expected"),
            "fsck.fat -n: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );

        // mtools read-back.
        let at = format!("{}@@1M", b.img.display());
        let o = tool("mdir", "mtools")
            .args(["-i", &at, "-/", "::/"])
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        for name in [
            "BOOTX64.EFI",
            "vmlinuz",
            "initramfs.img",
            "loader.conf",
            "sysclone.conf",
            "job.toml",
            "deep.txt",
        ] {
            assert!(
                listing.contains(name),
                "{name} missing from mdir:\n{listing}"
            );
        }
        for (path, want) in [
            ("::/EFI/sysclone/vmlinuz", &b.kernel),
            ("::/EFI/sysclone/initramfs.img", &b.initrd),
            ("::/EFI/BOOT/BOOTX64.EFI", &b.loader),
        ] {
            let o = tool("mcopy", "mtools")
                .args(["-n", "-i", &at, path, "-"])
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert!(
                o.stdout == *want,
                "{path} differs ({} vs {} bytes)",
                o.stdout.len(),
                want.len()
            );
        }
        let o = tool("mtype", "mtools")
            .args(["-i", &at, "::/loader/entries/sysclone.conf"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "title sysclone rescue\nlinux /EFI/sysclone/vmlinuz\ninitrd /EFI/sysclone/initramfs.img\noptions console=ttyS0 sysclone.job=/sysclone/job.toml\n"
        );
        let o = tool("mtype", "mtools")
            .args(["-i", &at, "::/loader/loader.conf"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout), LOADER_CONF);
    }

    #[test]
    fn reader_helpers() {
        let b = build();
        let r = &b.report;
        let all = read_esp_files(&b.img, r.esp_start_byte, r.esp_len).unwrap();
        let paths: Vec<&str> = all.iter().map(|e| e.path.as_str()).collect();
        for p in [
            "EFI",
            "EFI/BOOT",
            "EFI/BOOT/BOOTX64.EFI",
            "loader/entries/sysclone.conf",
            "a/b/c/deep.txt",
        ] {
            assert!(paths.contains(&p), "{p} missing from {paths:?}");
        }
        let efi = find_files(&b.img, r.esp_start_byte, r.esp_len, "EFI/**/*.efi").unwrap();
        assert_eq!(efi.len(), 1, "{efi:?}");
        assert_eq!(efi[0].path, "EFI/BOOT/BOOTX64.EFI");
        assert_eq!(efi[0].size, b.loader.len() as u64);
        assert!(!efi[0].is_dir);
        let data =
            read_esp_file(&b.img, r.esp_start_byte, r.esp_len, "efi/boot/bootx64.efi").unwrap();
        assert_eq!(data, b.loader);
        // Reading did not modify the image (opened read-only anyway).
        let e = format!(
            "{:#}",
            read_esp_file(&b.img, r.esp_start_byte, r.esp_len, "nope.txt").unwrap_err()
        );
        assert!(e.contains("nope.txt"), "{e}");
        // Not a FAT filesystem at that offset.
        assert!(read_esp_files(&b.img, 0, r.esp_len).is_err());
    }

    #[test]
    fn removing_a_directory_gives_the_space_back() {
        let len = 40 * MIB;
        let mut dev = Cursor::new(vec![0u8; len as usize]);
        write_fat_partition(&mut dev, 0, len, &[EspFile::bytes("EFI/keep/a.efi", b"keep".to_vec())], "ESP", 1).unwrap();
        let (free0, cluster) = fat_free_space(&mut dev, 0, len).unwrap();
        assert!(cluster >= 512 && free0 > 30 * MIB, "{free0} {cluster}");
        let files = [EspFile::bytes("EFI/job/offline/big.img", vec![9u8; 3 * MIB as usize + 1]), EspFile::bytes("EFI/job/offline/j.toml", b"x".to_vec()), EspFile::bytes("EFI/job/top.txt", b"y".to_vec())];
        add_files_to_fat(&mut dev, 0, len, &files).unwrap();
        let (free1, _) = fat_free_space(&mut dev, 0, len).unwrap();
        assert!(free0 - free1 >= 3 * MIB + cluster, "{free0} {free1}");
        let removed = remove_dir_from_fat(&mut dev, 0, len, "efi/JOB").unwrap();
        assert_eq!(removed.len(), 5, "{removed:?}");
        assert_eq!(removed.last().unwrap(), "efi/JOB");
        assert!(removed.iter().position(|p| p.ends_with("offline")).unwrap() > removed.iter().position(|p| p.ends_with("big.img")).unwrap());
        assert_eq!(fat_free_space(&mut dev, 0, len).unwrap().0, free0, "space not given back");
        assert_eq!(read_fat_file(&mut dev, 0, len, "EFI/keep/a.efi").unwrap(), b"keep");
        assert!(list_fat_files(&mut dev, 0, len).unwrap().iter().all(|e| !e.path.to_ascii_lowercase().contains("job")));
        // Absent: nothing removed, no error.
        assert!(remove_dir_from_fat(&mut dev, 0, len, "EFI/nothing").unwrap().is_empty());
    }

    #[test]
    fn generic_fat_helpers_on_memory() {
        let len = 40 * MIB;
        let mut dev = Cursor::new(vec![0u8; (len + 2 * MIB) as usize]);
        let files = vec![
            EspFile::bytes("EFI/debian/grubx64.efi", b"grub".to_vec()),
            EspFile::bytes("EFI/debian/shimx64.efi", vec![7u8; 100_000]),
            EspFile::bytes("x.efi", b"top".to_vec()),
        ];
        let w = write_fat_partition(&mut dev, MIB, len, &files, "ESP", 0xDEADBEEF).unwrap();
        assert_eq!(w[1], ("EFI/debian/shimx64.efi".to_string(), 100_000));
        // Rewrite a file with shorter contents: must be truncated.
        add_files_to_fat(
            &mut dev,
            MIB,
            len,
            &[EspFile::bytes("efi/debian/SHIMX64.EFI", b"short".to_vec())],
        )
        .unwrap();
        assert_eq!(
            read_fat_file(&mut dev, MIB, len, "EFI/debian/shimx64.efi").unwrap(),
            b"short"
        );
        let l = list_fat_files(&mut dev, MIB, len).unwrap();
        let efis: Vec<_> = l
            .iter()
            .filter(|e| !e.is_dir && esp_path_matches("EFI/**/*.EFI", &e.path))
            .map(|e| e.path.clone())
            .collect();
        assert_eq!(
            efis,
            vec!["EFI/debian/grubx64.efi", "EFI/debian/shimx64.efi"]
        );
        assert!(l.iter().any(|e| e.path == "x.efi"));
        // Bytes outside the partition untouched.
        let v = dev.into_inner();
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("p.bin");
        fs::write(&part, &v[MIB as usize..(MIB + len) as usize]).unwrap();
        let o = tool("fsck.fat", "dosfstools")
            .args(["-n", "-v"])
            .arg(&part)
            .output()
            .unwrap();
        let so = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && !so.contains("Expected") && !so.contains("Start"),
            "fsck.fat: {so}"
        );
        assert!(v[..MIB as usize].iter().all(|&b| b == 0));
        assert!(v[(MIB + len) as usize..].iter().all(|&b| b == 0));
        assert_eq!(
            u32::from_le_bytes(
                v[MIB as usize + 0x43..MIB as usize + 0x47]
                    .try_into()
                    .unwrap()
            ),
            0xDEADBEEF
        );
        // Duplicates (case-insensitive) and bad paths are refused.
        let mut dev = Cursor::new(vec![0u8; len as usize]);
        format_fat32(&mut dev, 0, len, "X", 1).unwrap();
        assert!(add_files_to_fat(
            &mut dev,
            0,
            len,
            &[EspFile::bytes("a", vec![]), EspFile::bytes("A", vec![])]
        )
        .is_err());
        assert!(add_files_to_fat(&mut dev, 0, len, &[EspFile::bytes("../a", vec![])]).is_err());
        // Too small for FAT32.
        let mut small = Cursor::new(vec![0u8; 8 * MIB as usize]);
        assert!(format_fat32(&mut small, 0, 8 * MIB, "X", 1).is_err());
    }

    #[test]
    fn small_helpers() {
        assert_eq!(default_esp_size(0), 64 * MIB);
        assert_eq!(default_esp_size(40 * MIB), 72 * MIB);
        assert_eq!(default_esp_size(40 * MIB + 1), 73 * MIB);
        assert_eq!(&fat_label("sysclone").unwrap(), b"SYSCLONE   ");
        assert!(fat_label("waytoolonglabel").is_err());
        assert!(fat_label("a/b").is_err());
        assert!(esp_path_matches("EFI/**/*.efi", "EFI/BOOT/BOOTX64.EFI"));
        assert!(esp_path_matches("EFI/**/*.efi", "EFI/x.efi"));
        assert!(esp_path_matches("/efi/**/*.efi", "EFI/a/b/c.EFI"));
        assert!(esp_path_matches("***/x", "x"));
        assert!(!esp_path_matches("EFI/**/*.efi", "loader/x.efi"));
        assert!(!esp_path_matches("EFI/**/*.efi", "EFI/BOOT/grub.cfg"));
        let g = Uuid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
        assert_eq!(
            volume_id_from_guid(&g),
            0x01020304 ^ 0x05060708 ^ 0x090a0b0c ^ 0x0d0e0f10
        );
        assert_eq!(
            loader_entry("t", ""),
            "title t\nlinux /EFI/sysclone/vmlinuz\ninitrd /EFI/sysclone/initramfs.img\n"
        );
    }

    /// Same ids and timestamp: byte-identical images; the signed chain and BIOS boot put
    /// their files and sectors where the firmware and GRUB look.
    #[test]
    fn reproducible_signed_and_bios_layout() {
        let d = tempfile::tempdir().unwrap();
        let w = |n: &str, data: Vec<u8>| {
            let p = d.path().join(n);
            fs::write(&p, data).unwrap();
            p
        };
        let kernel = w("vmlinuz", pseudo_random(300_000, 4));
        let initrd = w("initrd", pseudo_random(200_000, 5));
        let shim = w("shim", b"MZ shim".to_vec());
        let grub = w("grub", b"MZ grub".to_vec());
        let mut boot_img = vec![0u8; 512];
        boot_img[0x66] = 0xEB;
        boot_img[510] = 0x55;
        boot_img[511] = 0xAA;
        let mut core_img = pseudo_random(512 * 40 + 100, 6);
        core_img[0x1f4..0x200].copy_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0, 40, 0, 0x20, 0x08]);
        let ids = UsbIds::from_seed(b"1700000000");
        assert_eq!(ids, UsbIds::from_seed(b"1700000000"));
        assert_ne!(ids, UsbIds::from_seed(b"1700000001"));
        assert_eq!(ids.esp_guid.get_version_num(), 4);
        let spec = UsbImageSpec {
            kernel,
            initramfs: initrd,
            cmdline: "console=ttyS0".into(),
            title: "sysclone".into(),
            secure_boot: Some(SignedChain { shim: shim.clone(), grub: grub.clone(), mok_manager: None }),
            bios: Some(BiosBoot { boot_img, core_img: core_img.clone() }),
            ids: Some(ids),
            timestamp: Some(1_700_000_000),
            ..Default::default()
        };
        let a = d.path().join("a.img");
        let b = d.path().join("b.img");
        let r = build_usb_image(&spec, &a).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        build_usb_image(&spec, &b).unwrap();
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap(), "same inputs, different images");
        assert_eq!(r.part_guid, ids.esp_guid.hyphenated().to_string());
        assert_eq!(r.disk_guid, ids.disk_guid.hyphenated().to_string());
        assert_eq!(r.image_size, 67 * MIB);
        let bios = r.bios_start_byte.unwrap();
        assert_eq!(bios, 65 * MIB);

        let raw = fs::read(&a).unwrap();
        // MBR: GRUB's code pointing at core.img, the protective partition entry intact.
        assert_eq!(&raw[0x5c..0x64], &(bios / 512).to_le_bytes());
        assert_eq!(&raw[0x66..0x68], &[0x90, 0x90]);
        assert_eq!(raw[446 + 4], 0xEE);
        // core.img in the BIOS boot partition, its block list pointing at its second sector.
        let core = &raw[bios as usize..bios as usize + core_img.len()];
        assert_eq!(&core[0x1f4..0x1fc], &(bios / 512 + 1).to_le_bytes());
        assert_eq!(core[0x200..], core_img[0x200..]);
        let disk = GptConfig::new().writable(false).logical_block_size(LogicalBlockSize::Lb512).open(&a).unwrap();
        assert_eq!(disk.partitions()[&2].part_type_guid, partition_types::BIOS);
        assert_eq!(disk.partitions()[&2].part_guid, ids.bios_guid);
        let o = tool("sgdisk", "gdisk").arg("-v").arg(&a).output().unwrap();
        assert!(String::from_utf8_lossy(&o.stdout).contains("No problems found"), "{}", String::from_utf8_lossy(&o.stdout));
        let esp_copy = d.path().join("esp.fat");
        fs::write(&esp_copy, &raw[r.esp_start_byte as usize..(r.esp_start_byte + r.esp_len) as usize]).unwrap();
        let o = tool("fsck.fat", "dosfstools").arg("-n").arg(&esp_copy).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));

        // ESP: shim as the removable-media loader, GRUB next to it, GRUB's configuration where
        // the signed GRUB and the BIOS GRUB read it, naming the ESP; no systemd-boot entries.
        let esp = |p: &str| read_esp_file(&a, r.esp_start_byte, r.esp_len, p);
        assert_eq!(esp("EFI/BOOT/BOOTX64.EFI").unwrap(), b"MZ shim");
        assert_eq!(esp("EFI/BOOT/grubx64.efi").unwrap(), b"MZ grub");
        let cfg = String::from_utf8(esp("EFI/debian/grub.cfg").unwrap()).unwrap();
        assert_eq!(esp("boot/grub/grub.cfg").unwrap(), cfg.as_bytes());
        assert!(cfg.contains(&format!("linux /EFI/sysclone/vmlinuz console=ttyS0 sysclone.boot-partuuid={}\n", r.part_guid)), "{cfg}");
        assert!(esp("loader/loader.conf").is_err());
        // Every timestamp is the one asked for (2023-11-14 22:13:20 UTC).
        let dt = fat_date_time(1_700_000_000);
        assert_eq!((dt.date.year, dt.date.month, dt.date.day, dt.time.hour, dt.time.min, dt.time.sec), (2023, 11, 14, 22, 13, 20));
        let mut fs2 = fs::OpenOptions::new().read(true).write(true).open(&b).unwrap();
        let fsys = open_fat(&mut fs2, r.esp_start_byte, r.esp_len).unwrap();
        for e in fsys.root_dir().open_dir("EFI/BOOT").unwrap().iter() {
            let e = e.unwrap();
            if e.file_name() != "." && e.file_name() != ".." {
                assert_eq!(e.modified(), dt, "{}", e.file_name());
            }
        }
        assert_eq!(fat_date_time(0).date.year, 1980);
    }

    #[test]
    fn build_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, b"x").unwrap();
        let mut spec = UsbImageSpec {
            kernel: dir.path().join("missing-vmlinuz"),
            initramfs: f.clone(),
            loader_efi: f.clone(),
            cmdline: String::new(),
            title: "t".into(),
            extra_esp_files: vec![],
            esp_size: None,
            ..Default::default()
        };
        let out = dir.path().join("o.img");
        let e = format!("{:#}", build_usb_image(&spec, &out).unwrap_err());
        assert!(e.contains("missing-vmlinuz"), "{e}");
        spec.kernel = f.clone();
        spec.cmdline = "a\nb".into();
        assert!(build_usb_image(&spec, &out).is_err());
        spec.cmdline = String::new();
        spec.extra_esp_files = vec![("efi/boot/bootx64.efi".into(), vec![])];
        let e = format!("{:#}", build_usb_image(&spec, &out).unwrap_err());
        assert!(e.contains("duplicate"), "{e}");
        spec.extra_esp_files.clear();
        spec.esp_size = Some(MIB);
        assert!(build_usb_image(&spec, &out).is_err());
        spec.esp_size = Some(20 * MIB); // big enough for the files, too small for FAT32
        assert!(build_usb_image(&spec, &out).is_err());
        assert!(!out.exists());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp files left behind"
        );
        spec.esp_size = Some(100 * MIB - 5);
        let r = build_usb_image(&spec, &out).unwrap();
        assert_eq!(r.esp_len, 100 * MIB);
    }

    /// Real Debian kernel + host systemd-boot; run with `--ignored`.
    #[test]
    #[ignore = "needs scripts/fetch-kernel"]
    fn real_kernel_usb_image() {
        let kt = crate::testkernel::kernel_tree();
        let kernel = kt.root.join(format!("boot/vmlinuz-{}", kt.kver));
        assert!(
            kernel.is_file(),
            "{} missing: run scripts/fetch-kernel",
            kernel.display()
        );
        let loader = PathBuf::from("/usr/lib/systemd/boot/efi/systemd-bootx64.efi");
        assert!(
            loader.is_file(),
            "{} missing: apt-get install systemd-boot-efi",
            loader.display()
        );
        let d = tempfile::tempdir().unwrap();
        let initrd = d.path().join("initrd");
        fs::write(&initrd, pseudo_random(20 << 20, 9)).unwrap();
        let spec = UsbImageSpec {
            kernel: kernel.clone(),
            initramfs: initrd,
            loader_efi: loader.clone(),
            cmdline: "console=ttyS0".into(),
            title: "sysclone".into(),
            extra_esp_files: vec![],
            esp_size: None,
            ..Default::default()
        };
        let img = d.path().join("usb.img");
        let r = build_usb_image(&spec, &img).unwrap();
        eprintln!("image {} bytes, ESP {} bytes", r.image_size, r.esp_len);
        let o = tool("sgdisk", "gdisk")
            .arg("-v")
            .arg(&img)
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&o.stdout).contains("No problems found"));
        assert_eq!(
            read_esp_file(&img, r.esp_start_byte, r.esp_len, "EFI/sysclone/vmlinuz").unwrap(),
            fs::read(&kernel).unwrap()
        );
        assert_eq!(
            read_esp_file(&img, r.esp_start_byte, r.esp_len, "EFI/BOOT/BOOTX64.EFI").unwrap(),
            fs::read(&loader).unwrap()
        );
        let o = tool("file", "file").arg(&img).output().unwrap();
        eprintln!("{}", String::from_utf8_lossy(&o.stdout));
    }
}
