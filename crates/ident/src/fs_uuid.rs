//! Changing a filesystem's UUID or volume serial on an unmounted partition (or an image file
//! whose filesystem starts at byte 0).
//!
//! | fs | how | identifier |
//! |---|---|---|
//! | ext2/3/4 | `e2fsck -f -p`, then `tune2fs -U` (with `metadata_csum` the UUID seeds every checksum unless `metadata_csum_seed` is set; tune2fs rewrites them) | UUID |
//! | vfat | native: the 32-bit serial of the extended BPB (offset 67 on FAT32, 39 on FAT12/16) and of the FAT32 backup boot sector | `XXXX-XXXX` |
//! | ntfs | native: the 64-bit serial at 0x48 of the boot sector and of its backup in the partition's last sector (the boot sector checksum at 0x50 is kept valid when one is set) | 16 hex digits |
//! | swap | native: the UUID at byte 1036 of a version-1 swap header | UUID |
//! | xfs | `xfs_admin -U` | UUID |
//! | btrfs | `btrfstune -f -U` (rewrites every metadata block: slow) | UUID |
//!
//! Anything else (LUKS, LVM, …) is refused. Before writing, the partition is probed: it must
//! hold the filesystem the caller named and must not be mounted or in use as swap; afterwards
//! it is probed again and must show the new identifier.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;
use sysclone_disk::probe::{probe, FsInfo, PROBE_BYTES};
use uuid::Uuid;

/// Where the external tools are looked for (then `$PATH`).
pub const TOOL_DIRS: &[&str] = &["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// The first directory of [`TOOL_DIRS`] (then `$PATH`) holding an executable `name`.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    TOOL_DIRS
        .iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(&path))
        .map(|d| d.join(name))
        .find(|p| {
            fs::metadata(p)
                .map(|m| m.is_file() && m.mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// The identifier kind a filesystem uses.
fn family(fs: &str) -> &'static str {
    match fs {
        "ext2" | "ext3" | "ext4" => "ext",
        "vfat" => "vfat",
        "ntfs" => "ntfs",
        "swap" => "swap",
        "xfs" => "xfs",
        "btrfs" => "btrfs",
        _ => "other",
    }
}

/// A new random identifier in `fs`'s format: a UUID for ext2/3/4, XFS, btrfs, swap (and
/// anything else), `XXXX-XXXX` (upper-case hex) for vfat, 16 upper-case hex digits for NTFS —
/// the forms `blkid` prints and `/dev/disk/by-uuid` uses.
pub fn random_fs_id(fs: &str) -> String {
    let u = Uuid::new_v4();
    let b = u.as_bytes();
    match family(fs) {
        "vfat" => {
            let mut v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            if v == 0 {
                v = 1;
            }
            format!("{:04X}-{:04X}", v >> 16, v & 0xffff)
        }
        "ntfs" => b[..8].iter().map(|x| format!("{x:02X}")).collect(),
        _ => u.hyphenated().to_string(),
    }
}

/// The filesystem on `dev` as [`sysclone_disk::probe`] sees it (None: not recognised).
pub fn read_fs_id(dev: &Path) -> Result<Option<FsInfo>> {
    let f = File::open(dev).with_context(|| format!("opening {}", dev.display()))?;
    let mut buf = vec![0u8; PROBE_BYTES];
    let n = read_up_to(&f, &mut buf, 0).with_context(|| format!("reading {}", dev.display()))?;
    buf.truncate(n);
    Ok(probe(&buf))
}

fn read_up_to(f: &File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], off + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// One filesystem identity replaced by [`renew_fs_id`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdChange {
    /// The partition or image.
    pub dev: PathBuf,
    /// Filesystem (`ext4`, `vfat`, …).
    pub fs: String,
    /// The identifier before (as `blkid` prints it).
    pub old: String,
    /// The identifier after.
    pub new: String,
}

/// Probes `dev`, gives its filesystem a new random identifier ([`random_fs_id`],
/// [`set_fs_uuid`]) and returns old and new (for the reference map of
/// [`crate::apply::update_references`]).
pub fn renew_fs_id(dev: &Path) -> Result<IdChange> {
    let info =
        read_fs_id(dev)?.with_context(|| format!("{}: no filesystem recognised", dev.display()))?;
    let old = info.uuid.clone().with_context(|| {
        format!(
            "{}: the {} filesystem has no UUID or serial",
            dev.display(),
            info.kind
        )
    })?;
    let new = random_fs_id(&info.kind);
    set_fs_uuid(dev, &info.kind, &new)?;
    Ok(IdChange {
        dev: dev.to_path_buf(),
        fs: info.kind,
        old,
        new,
    })
}

/// Sets the UUID (or volume serial) of the `fs` filesystem on `dev` to `new` (in the format of
/// [`random_fs_id`]; UUIDs in any case). `dev` must not be mounted and must hold `fs`
/// (ext2/ext3/ext4 are interchangeable). See the module documentation for the method per
/// filesystem; after the change the identifier is read back.
pub fn set_fs_uuid(dev: &Path, fs: &str, new: &str) -> Result<()> {
    let fam = family(fs);
    if fam == "other" {
        bail!(
            "changing the identifier of a {fs} filesystem is not supported (ext2/3/4, vfat, ntfs, swap, xfs, btrfs are){}",
            if fs == "crypto_LUKS" { "; a LUKS header keeps its UUID because initramfs images hold copies of crypttab" } else { "" }
        );
    }
    let info = read_fs_id(dev)?.with_context(|| {
        format!(
            "{}: no filesystem recognised (expected {fs})",
            dev.display()
        )
    })?;
    ensure!(
        family(&info.kind) == fam,
        "{} holds {}, not {fs}: identifier not changed",
        dev.display(),
        info.kind
    );
    ensure_unused(dev)?;
    let want = match fam {
        "vfat" => {
            let v = parse_vfat_serial(new)?;
            set_vfat_serial(dev, v)?;
            format!("{:04X}-{:04X}", v >> 16, v & 0xffff)
        }
        "ntfs" => {
            let v = parse_ntfs_serial(new)?;
            set_ntfs_serial(dev, v)?;
            format!("{v:016X}")
        }
        _ => {
            let u = parse_uuid(new)?;
            let text = u.hyphenated().to_string();
            match fam {
                "swap" => set_swap_uuid(dev, &u)?,
                "ext" => {
                    let e2fsck = need_tool("e2fsck", "e2fsprogs", fs)?;
                    let tune2fs = need_tool("tune2fs", "e2fsprogs", fs)?;
                    // tune2fs -U wants a freshly checked filesystem (it may have to rewrite
                    // every metadata checksum). -p repairs only what is safe to repair.
                    let (code, out) = run_tool(&e2fsck, &["-f", "-p", &path_str(dev)?])?;
                    ensure!(
                        code < 4,
                        "{}: e2fsck -f -p found problems it could not repair safely (exit {code}); UUID not changed:\n{out}",
                        dev.display()
                    );
                    let (code, out) = run_tool(&tune2fs, &["-U", &text, &path_str(dev)?])?;
                    ensure!(
                        code == 0,
                        "{}: tune2fs -U {text} failed (exit {code}):\n{out}",
                        dev.display()
                    );
                }
                "xfs" => {
                    let xfs_admin = need_tool("xfs_admin", "xfsprogs", fs)?;
                    let (code, out) = run_tool(&xfs_admin, &["-U", &text, &path_str(dev)?])?;
                    ensure!(
                        code == 0,
                        "{}: xfs_admin -U {text} failed (exit {code}):\n{out}",
                        dev.display()
                    );
                }
                "btrfs" => {
                    let btrfstune = need_tool("btrfstune", "btrfs-progs", fs)?;
                    let (code, out) = run_tool(&btrfstune, &["-f", "-U", &text, &path_str(dev)?])?;
                    ensure!(
                        code == 0,
                        "{}: btrfstune -U {text} failed (exit {code}):\n{out}",
                        dev.display()
                    );
                }
                _ => unreachable!("family {fam}"),
            }
            text
        }
    };
    let got = read_fs_id(dev)?.and_then(|i| i.uuid).unwrap_or_default();
    ensure!(
        got.eq_ignore_ascii_case(&want),
        "{}: after the change the {fs} identifier reads {got:?}, expected {want}",
        dev.display()
    );
    Ok(())
}

fn path_str(p: &Path) -> Result<String> {
    p.to_str()
        .map(str::to_string)
        .with_context(|| format!("{} is not valid UTF-8", p.display()))
}

fn need_tool(name: &str, pkg: &str, fs: &str) -> Result<PathBuf> {
    find_tool(name).with_context(|| {
        format!(
            "changing the UUID of {fs} needs `{name}` ({pkg}), not found in {} or $PATH: unsupported here",
            TOOL_DIRS.join(":")
        )
    })
}

/// Runs a tool with stdin closed and `LC_ALL=C`; (exit code, stdout + stderr).
fn run_tool(tool: &Path, args: &[&str]) -> Result<(i32, String)> {
    let out = Command::new(tool)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", tool.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code().unwrap_or(-1), text))
}

/// Refuses a device that is mounted (by path or device number) or an active swap area.
fn ensure_unused(dev: &Path) -> Result<()> {
    let canon = fs::canonicalize(dev).with_context(|| format!("resolving {}", dev.display()))?;
    let rdev = fs::metadata(&canon)
        .ok()
        .filter(|m| m.file_type().is_block_device())
        .map(|m| m.rdev());
    let same = |src: &str| -> bool {
        if !src.starts_with('/') {
            return false;
        }
        let src = unescape_mounts(src);
        match fs::canonicalize(&src) {
            Ok(c) if c == canon => true,
            Ok(c) => {
                rdev.is_some()
                    && fs::metadata(&c)
                        .map(|m| m.file_type().is_block_device() && Some(m.rdev()) == rdev)
                        .unwrap_or(false)
            }
            Err(_) => false,
        }
    };
    if let Ok(mounts) = fs::read_to_string("/proc/self/mounts") {
        for l in mounts.lines() {
            let mut w = l.split_whitespace();
            if let (Some(src), Some(dir)) = (w.next(), w.next()) {
                ensure!(
                    !same(src),
                    "{} is mounted on {}: unmount it first",
                    dev.display(),
                    unescape_mounts(dir)
                );
            }
        }
    }
    if let Ok(swaps) = fs::read_to_string("/proc/swaps") {
        for l in swaps.lines().skip(1) {
            if let Some(src) = l.split_whitespace().next() {
                ensure!(
                    !same(src),
                    "{} is an active swap area: swapoff it first",
                    dev.display()
                );
            }
        }
    }
    Ok(())
}

/// `/proc/self/mounts` escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mounts(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_uuid(s: &str) -> Result<Uuid> {
    let u = Uuid::parse_str(s.trim()).with_context(|| format!("{s:?} is not a UUID"))?;
    ensure!(!u.is_nil(), "the nil UUID is not a valid filesystem UUID");
    Ok(u)
}

fn hex_value(s: &str, digits: usize) -> Option<u64> {
    (s.len() == digits && s.bytes().all(|c| c.is_ascii_hexdigit()))
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
}

/// `XXXX-XXXX` or `XXXXXXXX` (hex, any case) → the 32-bit serial (high half first, as printed).
pub fn parse_vfat_serial(s: &str) -> Result<u32> {
    let t = s.trim();
    let joined = match t.split_once('-') {
        Some((a, b)) if a.len() == 4 && b.len() == 4 => format!("{a}{b}"),
        Some(_) => String::new(),
        None => t.to_string(),
    };
    hex_value(&joined, 8)
        .map(|v| v as u32)
        .with_context(|| format!("{s:?} is not a FAT volume serial (XXXX-XXXX, hex)"))
}

/// 16 hex digits (any case) → the 64-bit NTFS serial.
pub fn parse_ntfs_serial(s: &str) -> Result<u64> {
    hex_value(s.trim(), 16)
        .with_context(|| format!("{s:?} is not an NTFS volume serial (16 hex digits)"))
}

fn open_rw(dev: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev)
        .with_context(|| format!("opening {} for writing", dev.display()))
}

fn read_exact_at(f: &File, len: usize, off: u64, what: &str) -> Result<Vec<u8>> {
    let mut v = vec![0u8; len];
    f.read_exact_at(&mut v, off)
        .with_context(|| format!("reading {what} ({len} bytes at byte {off})"))?;
    Ok(v)
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

/// The byte offset of the volume serial in a FAT boot sector, from its layout: FAT32's BPB
/// has a 16-bit FAT size of 0. The extended boot signature (0x29, or 0x28 without label)
/// must be present, or the sector has no serial.
fn vfat_serial_offset(bs: &[u8]) -> Result<(usize, bool)> {
    ensure!(
        bs.len() >= 512 && bs[510] == 0x55 && bs[511] == 0xAA,
        "no FAT boot sector signature"
    );
    let bps = u16_at(bs, 11);
    ensure!(
        matches!(bps, 512 | 1024 | 2048 | 4096),
        "FAT boot sector: {bps} bytes per sector"
    );
    let fat32 = u16_at(bs, 22) == 0;
    let (sig, serial) = if fat32 { (66, 67) } else { (38, 39) };
    ensure!(
        matches!(bs[sig], 0x28 | 0x29),
        "FAT boot sector has no extended BPB (signature {:#04x} at byte {sig}): no volume serial to change",
        bs[sig]
    );
    Ok((serial, fat32))
}

fn set_vfat_serial(dev: &Path, serial: u32) -> Result<()> {
    let f = open_rw(dev)?;
    let mut bs = read_exact_at(&f, 512, 0, "FAT boot sector")?;
    let (off, fat32) = vfat_serial_offset(&bs).with_context(|| dev.display().to_string())?;
    bs[off..off + 4].copy_from_slice(&serial.to_le_bytes());
    // FAT32 keeps a copy of the boot sector (normally at sector 6) that fsck.fat compares.
    let mut backup = None;
    if fat32 {
        let bps = u64::from(u16_at(&bs, 11));
        let reserved = u16_at(&bs, 14);
        let bk = u16_at(&bs, 50);
        if bk != 0 && bk != 0xFFFF && bk < reserved {
            let at = u64::from(bk) * bps;
            let mut b2 = read_exact_at(&f, 512, at, "FAT32 backup boot sector")?;
            if vfat_serial_offset(&b2).ok().map(|(o, _)| o) == Some(off) {
                b2[off..off + 4].copy_from_slice(&serial.to_le_bytes());
                backup = Some((at, b2));
            }
        }
    }
    if let Some((at, b2)) = backup {
        f.write_all_at(&b2, at)
            .context("writing the FAT32 backup boot sector")?;
    }
    f.write_all_at(&bs, 0)
        .context("writing the FAT boot sector")?;
    f.sync_all().context("syncing the FAT boot sector")?;
    Ok(())
}

/// ntfs-3g's boot sector checksum: the sum of the little-endian 32-bit words before it.
fn ntfs_checksum(bs: &[u8]) -> u32 {
    bs[..0x50].chunks_exact(4).fold(0u32, |a, w| {
        a.wrapping_add(u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
    })
}

fn is_ntfs_boot(bs: &[u8]) -> bool {
    bs.len() >= 512 && &bs[3..11] == b"NTFS    " && bs[510] == 0x55 && bs[511] == 0xAA
}

fn patch_ntfs(bs: &mut [u8], serial: u64) {
    let stored = u32::from_le_bytes([bs[0x50], bs[0x51], bs[0x52], bs[0x53]]);
    let keep_sum = stored != 0 && stored == ntfs_checksum(bs);
    bs[0x48..0x50].copy_from_slice(&serial.to_le_bytes());
    if keep_sum {
        let s = ntfs_checksum(bs);
        bs[0x50..0x54].copy_from_slice(&s.to_le_bytes());
    }
}

fn set_ntfs_serial(dev: &Path, serial: u64) -> Result<()> {
    let f = open_rw(dev)?;
    let mut bs = read_exact_at(&f, 512, 0, "NTFS boot sector")?;
    ensure!(is_ntfs_boot(&bs), "{}: no NTFS boot sector", dev.display());
    let bps = u64::from(u16_at(&bs, 11));
    ensure!(
        matches!(bps, 256 | 512 | 1024 | 2048 | 4096),
        "NTFS boot sector: {bps} bytes per sector"
    );
    let size =
        sysclone_disk::file_size(&f).with_context(|| format!("size of {}", dev.display()))?;
    // The backup boot sector is the partition's last sector; the volume's sector count (0x28)
    // normally points there too (it excludes that sector).
    let total = u64::from_le_bytes(bs[0x28..0x30].try_into().expect("8 bytes"));
    let mut spots: Vec<u64> = Vec::new();
    for s in [(size / bps).checked_sub(1), Some(total)]
        .into_iter()
        .flatten()
    {
        let at = s.saturating_mul(bps);
        if at > 0 && at + 512 <= size && !spots.contains(&at) {
            spots.push(at);
        }
    }
    let mut backups = Vec::new();
    for at in spots {
        let mut b2 = read_exact_at(&f, 512, at, "NTFS backup boot sector")?;
        if is_ntfs_boot(&b2) {
            patch_ntfs(&mut b2, serial);
            backups.push((at, b2));
        }
    }
    patch_ntfs(&mut bs, serial);
    for (at, b2) in &backups {
        f.write_all_at(b2, *at)
            .context("writing the NTFS backup boot sector")?;
    }
    f.write_all_at(&bs, 0)
        .context("writing the NTFS boot sector")?;
    f.sync_all().context("syncing the NTFS boot sectors")?;
    Ok(())
}

/// Offset of the swap header's UUID (after bootbits[1024], version, last_page, nr_badpages).
const SWAP_UUID: usize = 1024 + 12;

fn set_swap_uuid(dev: &Path, u: &Uuid) -> Result<()> {
    let f = open_rw(dev)?;
    let mut head = vec![0u8; 65536];
    let n = read_up_to(&f, &mut head, 0).with_context(|| format!("reading {}", dev.display()))?;
    head.truncate(n);
    let page = [4096usize, 8192, 16384, 65536]
        .into_iter()
        .find(|p| {
            head.get(p - 10..*p)
                .is_some_and(|m| m == b"SWAPSPACE2" || m == b"SWAP-SPACE")
        })
        .with_context(|| format!("{}: no swap signature", dev.display()))?;
    ensure!(
        &head[page - 10..page] == b"SWAPSPACE2",
        "{}: version-0 swap area (no UUID): run mkswap",
        dev.display()
    );
    let v = [head[1024], head[1025], head[1026], head[1027]];
    ensure!(
        u32::from_le_bytes(v) == 1 || u32::from_be_bytes(v) == 1,
        "{}: swap header version {} is not 1",
        dev.display(),
        u32::from_le_bytes(v)
    );
    f.write_all_at(u.as_bytes(), SWAP_UUID as u64)
        .context("writing the swap UUID")?;
    f.sync_all().context("syncing the swap header")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_have_each_fs_format() {
        for fs in ["ext2", "ext3", "ext4", "xfs", "btrfs", "swap"] {
            let s = random_fs_id(fs);
            assert!(
                Uuid::parse_str(&s).is_ok() && s.len() == 36 && s == s.to_lowercase(),
                "{fs}: {s}"
            );
        }
        let v = random_fs_id("vfat");
        assert_eq!(v.len(), 9, "{v}");
        assert_eq!(&v[4..5], "-");
        assert!(v
            .bytes()
            .filter(|&c| c != b'-')
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
        assert!(parse_vfat_serial(&v).is_ok());
        let n = random_fs_id("ntfs");
        assert_eq!(n.len(), 16);
        assert!(n
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
        assert_ne!(random_fs_id("ntfs"), random_fs_id("ntfs"));
    }

    #[test]
    fn serial_parsing() {
        assert_eq!(parse_vfat_serial("ABCD-12ef").unwrap(), 0xABCD12EF);
        assert_eq!(parse_vfat_serial("abcd12ef").unwrap(), 0xABCD12EF);
        for bad in ["ABCD-12E", "ABCDE-123", "GHIJ-1234", "", "ABCD-1234-5678"] {
            assert!(parse_vfat_serial(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_ntfs_serial("0123456789abcdef").unwrap(),
            0x0123_4567_89AB_CDEF
        );
        assert!(parse_ntfs_serial("0123456789abcde").is_err());
        assert!(parse_uuid("00000000-0000-0000-0000-000000000000").is_err());
        assert!(parse_uuid("not-a-uuid").is_err());
    }

    fn fat_boot(fat32: bool) -> Vec<u8> {
        let mut b = vec![0u8; 512];
        b[11..13].copy_from_slice(&512u16.to_le_bytes());
        b[510] = 0x55;
        b[511] = 0xAA;
        if fat32 {
            b[66] = 0x29;
        } else {
            b[22] = 9; // 16-bit FAT size
            b[38] = 0x29;
        }
        b
    }

    #[test]
    fn vfat_serial_offsets() {
        assert_eq!(vfat_serial_offset(&fat_boot(true)).unwrap(), (67, true));
        assert_eq!(vfat_serial_offset(&fat_boot(false)).unwrap(), (39, false));
        let mut old = fat_boot(false);
        old[38] = 0;
        assert!(vfat_serial_offset(&old)
            .unwrap_err()
            .to_string()
            .contains("no extended BPB"));
        let mut nosig = fat_boot(true);
        nosig[510] = 0;
        assert!(vfat_serial_offset(&nosig).is_err());
    }

    #[test]
    fn ntfs_checksum_is_kept_valid_only_when_set() {
        let mut b = vec![0u8; 512];
        b[3..11].copy_from_slice(b"NTFS    ");
        b[510] = 0x55;
        b[511] = 0xAA;
        patch_ntfs(&mut b, 0x1122_3344_5566_7788);
        assert_eq!(&b[0x48..0x50], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(
            &b[0x50..0x54],
            &[0, 0, 0, 0],
            "an unset checksum stays unset"
        );
        let s = ntfs_checksum(&b);
        b[0x50..0x54].copy_from_slice(&s.to_le_bytes());
        patch_ntfs(&mut b, 42);
        assert_eq!(
            u32::from_le_bytes(b[0x50..0x54].try_into().unwrap()),
            ntfs_checksum(&b)
        );
    }

    #[test]
    fn mounts_escapes() {
        assert_eq!(unescape_mounts("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape_mounts("/dev/sda1"), "/dev/sda1");
        assert_eq!(unescape_mounts("x\\04"), "x\\04");
    }

    #[test]
    fn unsupported_fs_is_refused_before_touching_anything() {
        let e = set_fs_uuid(Path::new("/nonexistent"), "crypto_LUKS", "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not supported") && e.contains("LUKS"), "{e}");
        let e = set_fs_uuid(Path::new("/nonexistent"), "zfs", "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not supported"), "{e}");
    }

    #[test]
    fn wrong_filesystem_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let img = t.path().join("swap.img");
        let mut b = vec![0u8; 8192];
        b[4096 - 10..4096].copy_from_slice(b"SWAPSPACE2");
        b[1024] = 1;
        fs::write(&img, &b).unwrap();
        let e = set_fs_uuid(&img, "ext4", &random_fs_id("ext4"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds swap, not ext4"), "{e}");
        let u = random_fs_id("swap");
        set_fs_uuid(&img, "swap", &u.to_uppercase()).unwrap();
        assert_eq!(read_fs_id(&img).unwrap().unwrap().uuid.unwrap(), u);
        let after = fs::read(&img).unwrap();
        assert_eq!(&after[..SWAP_UUID], &b[..SWAP_UUID]);
        assert_eq!(&after[SWAP_UUID + 16..], &b[SWAP_UUID + 16..]);
    }
}
