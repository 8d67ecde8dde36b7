//! Filesystem resize after the copy: grow (or shrink) the filesystem at offset 0 of a block
//! device to the size of its new partition.
//!
//! Only ever called on the TARGET's copy (a target partition or a copy-on-write overlay):
//! the caller guarantees that. This module adds its own refusals on top: the device must
//! hold the filesystem the caller names, must be at least `new_size` bytes, and must not be
//! mounted (or an active swap area).
//!
//! | fs | grow | shrink | how |
//! |---|---|---|---|
//! | ext2/3/4 | yes | yes | `e2fsck -f -y`, then `resize2fs DEV <N>K` |
//! | ntfs | yes | yes | `ntfsresize --no-action` check, then `ntfsresize --size`; backup boot sector written at the new end |
//! | btrfs (one device) | yes | yes | mounted on a private temporary directory, `BTRFS_IOC_RESIZE` |
//! | xfs | yes | refused | mounted likewise, `XFS_IOC_FSGROWFSDATA` |
//! | vfat | FAT32, as far as the FAT has entries | only an unused tail | native: BPB, backup boot sector, FSInfo |
//! | swap | yes | yes | native: the header page rewritten with the same UUID and label |
//!
//! External tools are looked up by absolute path in `/usr/sbin`, `/usr/bin`, `/sbin` and
//! `/bin` (the rescue image carries them at their host paths) and run with `LC_ALL=C`; their
//! output is returned in [`ResizeOutcome::log`]. Sizes in the outcome are read back from the
//! filesystem's own superblock (or boot sector, or swap header), not taken from the request:
//! every filesystem rounds down to its allocation unit.
//!
//! [`min_size`] never writes: `resize2fs -P` and `ntfsresize --info` only read, and btrfs is
//! mounted read-only without log replay.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use nix::libc;
use serde::Serialize;

mod mounted;
mod native;

/// What [`resize`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResizeOutcome {
    /// The filesystem found on the device (`ext4`, `ntfs`, `btrfs`, `xfs`, `vfat`, `swap`…).
    pub fs: String,
    /// Bytes the filesystem occupied before.
    pub old_size: u64,
    /// Bytes it occupies now, read back from the filesystem (the request rounded down to its
    /// allocation unit; for FAT, possibly less than asked, see the log).
    pub new_size: u64,
    /// `resize2fs`, `ntfsresize`, `btrfs ioctl`, `xfs ioctl`, `native FAT32`, `native swap
    /// header`, or `none` when the filesystem already had the requested size.
    pub method: String,
    /// The tools' commands and output, and notes.
    pub log: String,
}

/// Resize the filesystem `fs` (`ext2`/`ext3`/`ext4`/`ntfs`/`btrfs`/`xfs`/`vfat`/`swap`) at
/// offset 0 of `dev` to `new_size` bytes (the device is at least `new_size`). Grows or
/// shrinks as needed; see the module documentation for what each filesystem supports.
pub fn resize(dev: &Path, fs: &str, new_size: u64) -> Result<ResizeOutcome> {
    let kind = check_device(dev, fs)?;
    let len = device_len(dev)?;
    if new_size > len {
        bail!("{}: the device has {len} bytes, fewer than the requested filesystem size {new_size}", dev.display());
    }
    if let Some(at) = in_use(dev)? {
        bail!("{}: {at}; refusing to resize it", dev.display());
    }
    let mut log = String::new();
    let r = match kind.as_str() {
        "ext2" | "ext3" | "ext4" => ext_resize(dev, new_size, &mut log),
        "ntfs" => ntfs_resize(dev, new_size, &mut log),
        "btrfs" => mounted::btrfs_resize(dev, new_size, &mut log),
        "xfs" => mounted::xfs_resize(dev, new_size, &mut log),
        "vfat" => native::fat_resize(dev, new_size, &mut log),
        "swap" => native::swap_resize(dev, new_size, &mut log),
        other => bail!("resizing {other} is not supported"),
    };
    match r {
        Ok((old_size, new_size, method)) => Ok(ResizeOutcome { fs: kind, old_size, new_size, method: method.into(), log }),
        Err(e) if log.is_empty() => Err(e.context(format!("resizing {kind} on {} to {new_size} bytes", dev.display()))),
        // The tools' output after the reason, so that the first line says what went wrong.
        Err(e) => Err(anyhow::anyhow!("{e:#}\n{}", log.trim_end()).context(format!("resizing {kind} on {} to {new_size} bytes", dev.display()))),
    }
}

/// Smallest size the filesystem `fs` on `dev` can be shrunk to, when the filesystem can
/// tell: `resize2fs -P` (ext2/3/4), `ntfsresize --info` (NTFS), `btrfs inspect-internal
/// min-dev-size` or else the used bytes plus 256 MiB (btrfs, never below the kernel's
/// 256 MiB), ten pages (swap). `None` for XFS and FAT, which this module does not shrink.
/// Never writes to the device.
pub fn min_size(dev: &Path, fs: &str) -> Result<Option<u64>> {
    let kind = check_device(dev, fs)?;
    let r = match kind.as_str() {
        "ext2" | "ext3" | "ext4" => ext_min(dev).map(Some),
        "ntfs" => ntfs_min(dev).map(Some),
        "btrfs" => mounted::btrfs_min(dev).map(Some),
        "swap" => native::swap_min(dev).map(Some),
        "xfs" | "vfat" => Ok(None),
        other => bail!("{other}: no minimum size known (resizing it is not supported)"),
    };
    r.with_context(|| format!("minimum size of {kind} on {}", dev.display()))
}

// ---------------------------------------------------------------------------------------
// Common helpers

/// Bytes at the start of the device read for identification and superblocks: the btrfs
/// superblock ends at 68 KiB, a 64 KiB swap page at 64 KiB.
const HEAD: usize = 72 * 1024;

/// What the device holds must be what the caller says (any ext for ext2/3/4). Returns the
/// name found.
fn check_device(dev: &Path, fs: &str) -> Result<String> {
    let head = read_head(dev, HEAD)?;
    let found = crate::ident::identify(&head);
    let ext = |s: &str| matches!(s, "ext2" | "ext3" | "ext4");
    if found != fs && !(ext(found) && ext(fs)) {
        bail!("{}: expected {fs}, but the device holds {found}", dev.display());
    }
    Ok(found.to_string())
}

/// Size of a device or image file.
fn device_len(dev: &Path) -> Result<u64> {
    let mut f = File::open(dev).with_context(|| format!("opening {}", dev.display()))?;
    f.seek(SeekFrom::End(0)).with_context(|| format!("size of {}", dev.display()))
}

/// The first `len` bytes of `dev` (fewer if the device is shorter), read with O_DIRECT when
/// the device allows it, so that what a filesystem driver wrote around the page cache is
/// seen.
fn read_head(dev: &Path, len: usize) -> Result<Vec<u8>> {
    const ALIGN: usize = 4096;
    let want = len.div_ceil(ALIGN) * ALIGN;
    if let Ok(f) = OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(dev) {
        let mut raw = vec![0u8; want + ALIGN];
        let skip = (ALIGN - raw.as_ptr() as usize % ALIGN) % ALIGN;
        let buf = &mut raw[skip..skip + want];
        if let Ok(n) = read_full(&f, buf) {
            let mut v = buf[..n].to_vec();
            v.truncate(len);
            return Ok(v);
        }
    }
    let f = File::open(dev).with_context(|| format!("opening {}", dev.display()))?;
    let mut v = vec![0u8; len];
    let n = read_full(&f, &mut v).with_context(|| format!("reading {}", dev.display()))?;
    v.truncate(n);
    Ok(v)
}

/// Read until `buf` is full or end of file; the count read.
fn read_full(f: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Open for writing, exclusively: a block device that is mounted, an active swap area or
/// held by another exclusive opener is refused by the kernel (EBUSY).
fn open_exclusive(dev: &Path) -> Result<File> {
    OpenOptions::new().read(true).write(true).custom_flags(libc::O_EXCL).open(dev).with_context(|| format!("opening {} exclusively (is it in use?)", dev.display()))
}

/// Little-endian unsigned field of `n` (at most 8) bytes at `o`.
fn le(b: &[u8], o: usize, n: usize) -> Result<u64> {
    match o.checked_add(n).and_then(|e| b.get(o..e)) {
        Some(s) => Ok(s.iter().rev().fold(0u64, |a, &x| a << 8 | x as u64)),
        None => bail!("field at byte {o} is beyond the {} bytes read", b.len()),
    }
}

/// Big-endian unsigned field of `n` (at most 8) bytes at `o`.
fn be(b: &[u8], o: usize, n: usize) -> Result<u64> {
    match o.checked_add(n).and_then(|e| b.get(o..e)) {
        Some(s) => Ok(s.iter().fold(0u64, |a, &x| a << 8 | x as u64)),
        None => bail!("field at byte {o} is beyond the {} bytes read", b.len()),
    }
}

/// `(major, minor)` of a block device, `None` for anything else.
fn block_dev_number(dev: &Path) -> Option<(u64, u64)> {
    let m = std::fs::metadata(dev).ok()?;
    m.file_type().is_block_device().then(|| (libc::major(m.rdev()) as u64, libc::minor(m.rdev()) as u64))
}

/// Undo mountinfo's octal escapes (`\040` for a space…).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1..i + 4).is_some_and(|d| d.iter().all(|c| (b'0'..=b'7').contains(c))) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of `/proc/self/mountinfo`: (major:minor, mount point, source).
fn mountinfo() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some((f.get(2)?.to_string(), unescape(f.get(4)?), unescape(f.get(sep + 2)?)))
        })
        .collect()
}

/// Whether `source` (as mountinfo shows it) names `dev`.
fn same_device(source: &str, dev: &Path, canon: &Path) -> bool {
    Path::new(source) == dev || std::fs::canonicalize(source).is_ok_and(|c| c == canon)
}

/// Why `dev` cannot be resized now: mounted somewhere, or an active swap area.
fn in_use(dev: &Path) -> Result<Option<String>> {
    let canon = std::fs::canonicalize(dev).with_context(|| format!("resolving {}", dev.display()))?;
    let num = block_dev_number(dev).map(|(a, b)| format!("{a}:{b}"));
    for (mm, at, source) in mountinfo() {
        if Some(&mm) == num.as_ref() || same_device(&source, dev, &canon) {
            return Ok(Some(format!("mounted at {at}")));
        }
    }
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    for l in swaps.lines().skip(1) {
        if let Some(name) = l.split_whitespace().next() {
            if same_device(&unescape(name), dev, &canon) {
                return Ok(Some("an active swap area".into()));
            }
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------
// External tools

const TOOL_DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// An executable `name` in the tool directories.
fn find_tool(name: &str) -> Option<PathBuf> {
    TOOL_DIRS.iter().map(|d| Path::new(d).join(name)).find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0))
}

/// Like [`find_tool`], with an error naming the package that provides it.
fn tool(name: &str, package: &str) -> Result<PathBuf> {
    find_tool(name).with_context(|| format!("`{name}` was not found in {}: it comes with the {package} package", TOOL_DIRS.join(", ")))
}

/// Most output kept in the log per command (a repairing fsck can be very talkative).
const LOG_PER_COMMAND: usize = 64 * 1024;

/// A finished command: exit code (`None` when killed by a signal) and combined output.
struct Ran {
    code: Option<i32>,
    text: String,
}

impl Ran {
    fn status(&self) -> String {
        self.code.map(|c| format!("exit status {c}")).unwrap_or_else(|| "killed by a signal".into())
    }
}

/// Run `prog args`, feeding `input` on stdin (else /dev/null), appending the command line
/// and its output to `log`.
fn run(log: &mut String, prog: &Path, args: &[&str], input: Option<&[u8]>) -> Result<Ran> {
    let line = format!("$ {} {}", prog.display(), args.join(" "));
    let mut child = Command::new(prog)
        .args(args)
        .env("LC_ALL", "C")
        .env("LANG", "C")
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", prog.display()))?;
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        // A tool that does not ask exits without reading: a broken pipe is not an error.
        let _ = stdin.write_all(data);
    }
    let out = child.wait_with_output().with_context(|| format!("waiting for {}", prog.display()))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let ran = Ran { code: out.status.code(), text };
    let mut shown = ran.text.trim_end().to_string();
    if shown.len() > LOG_PER_COMMAND {
        let mut cut = shown.len() - LOG_PER_COMMAND;
        while !shown.is_char_boundary(cut) {
            cut += 1;
        }
        shown = format!("[… {cut} bytes of output left out …]\n{}", &shown[cut..]);
    }
    log.push_str(&format!("{line}\n{shown}\n[{}]\n", ran.status()));
    Ok(ran)
}

fn path_str(dev: &Path) -> Result<&str> {
    dev.to_str().with_context(|| format!("{} is not valid UTF-8", dev.display()))
}

// ---------------------------------------------------------------------------------------
// ext2/3/4

/// Bytes the ext filesystem occupies: blocks count × block size, from the superblock.
fn ext_size(head: &[u8]) -> Result<u64> {
    const SB: usize = 1024;
    if le(head, SB + 56, 2)? != 0xEF53 {
        bail!("no ext2/3/4 superblock");
    }
    let log = le(head, SB + 24, 4)?;
    if log > 6 {
        bail!("block size 2^(10+{log}) is invalid");
    }
    let mut blocks = le(head, SB + 4, 4)?;
    if le(head, SB + 0x60, 4)? & 0x80 != 0 {
        blocks |= le(head, SB + 0x150, 4)? << 32;
    }
    Ok(blocks << (10 + log))
}

/// e2fsck's exit status: 1 (errors corrected) and 2 (reboot needed, meaning a mounted root)
/// are success here; 4 and above are failures.
fn e2fsck_ok(code: Option<i32>) -> bool {
    code.is_some_and(|c| (0..4).contains(&c))
}

fn ext_resize(dev: &Path, new_size: u64, log: &mut String) -> Result<(u64, u64, &'static str)> {
    let head = read_head(dev, 4096)?;
    let old = ext_size(&head)?;
    let bs = 1024u64 << le(&head, 1024 + 24, 4)?;
    if new_size / bs * bs == old {
        log.push_str(&format!("ext: already {old} bytes; nothing to do\n"));
        return Ok((old, old, "none"));
    }
    let e2fsck = tool("e2fsck", "e2fsprogs")?;
    let resize2fs = tool("resize2fs", "e2fsprogs")?;
    let d = path_str(dev)?;
    let r = run(log, &e2fsck, &["-f", "-y", d], None)?;
    if !e2fsck_ok(r.code) {
        bail!("e2fsck could not repair the filesystem ({}); not resizing", r.status());
    }
    let k = format!("{}K", new_size / 1024);
    let r = run(log, &resize2fs, &[d, &k], None)?;
    if r.code != Some(0) {
        bail!("resize2fs failed ({})", r.status());
    }
    let new = ext_size(&read_head(dev, 4096)?)?;
    Ok((old, new, "resize2fs"))
}

fn ext_min(dev: &Path) -> Result<u64> {
    let head = read_head(dev, 4096)?;
    ext_size(&head)?;
    let bs = 1024u64 << le(&head, 1024 + 24, 4)?;
    let resize2fs = tool("resize2fs", "e2fsprogs")?;
    let mut log = String::new();
    let r = run(&mut log, &resize2fs, &["-P", path_str(dev)?], None)?;
    let blocks = r.text.lines().find_map(|l| l.split_once("Estimated minimum size of the filesystem:")).and_then(|(_, v)| v.trim().parse::<u64>().ok());
    match (r.code, blocks) {
        (Some(0), Some(b)) => Ok(b * bs),
        _ => bail!("resize2fs -P gave no estimate:\n{}", log.trim_end()),
    }
}

// ---------------------------------------------------------------------------------------
// NTFS

/// (bytes per sector, sectors in the volume) from the boot sector.
fn ntfs_geometry(head: &[u8]) -> Result<(u64, u64)> {
    if head.get(3..11) != Some(b"NTFS    ") {
        bail!("no NTFS boot sector");
    }
    let bps = le(head, 0x0B, 2)?;
    if !matches!(bps, 256 | 512 | 1024 | 2048 | 4096) {
        bail!("bytes per sector {bps} is invalid");
    }
    Ok((bps, le(head, 0x28, 8)?))
}

/// Bytes the NTFS volume needs: its sectors plus the backup boot sector after them (what
/// ntfsresize calls the volume size).
fn ntfs_size(head: &[u8]) -> Result<u64> {
    let (bps, sectors) = ntfs_geometry(head)?;
    Ok((sectors + 1) * bps)
}

fn ntfs_resize(dev: &Path, new_size: u64, log: &mut String) -> Result<(u64, u64, &'static str)> {
    let head = read_head(dev, 4096)?;
    let old = ntfs_size(&head)?;
    let (bps, _) = ntfs_geometry(&head)?;
    if new_size / bps * bps == old {
        log.push_str(&format!("ntfs: already {old} bytes; nothing to do\n"));
        return Ok((old, old, "none"));
    }
    let ntfsresize = tool("ntfsresize", "ntfs-3g")?;
    let d = path_str(dev)?;
    let size = new_size.to_string();
    // --force: proceed on a volume marked for chkdsk (ntfsresize marks every volume it
    // resizes); -P: no progress bar in the log.
    let r = run(log, &ntfsresize, &["-P", "--force", "--no-action", "--size", &size, d], None)?;
    if r.code != Some(0) {
        bail!("the ntfsresize test run (--no-action) failed ({})", r.status());
    }
    if r.text.contains("Nothing to do") {
        return Ok((old, old, "none"));
    }
    let r = run(log, &ntfsresize, &["-P", "--force", "--size", &size, d], Some(b"y\n"))?;
    if r.code != Some(0) {
        bail!("ntfsresize failed ({})", r.status());
    }
    // ntfsresize leaves the backup boot sector where it was (or nowhere, when growing); the
    // backup belongs in the last sector of the partition, which is the new end.
    let f = open_exclusive(dev)?;
    let mut boot = vec![0u8; bps as usize];
    f.read_exact_at(&mut boot, 0).context("reading the new boot sector")?;
    let (_, sectors) = ntfs_geometry(&boot)?;
    let last = new_size / bps - 1;
    if last < sectors {
        bail!("ntfsresize left {sectors} sectors, more than fit before sector {last}");
    }
    f.write_all_at(&boot, last * bps).context("writing the backup boot sector")?;
    f.sync_all().context("syncing the device")?;
    log.push_str(&format!("backup boot sector written to sector {last} (the last of the new size)\n"));
    log.push_str("note: ntfsresize marked the volume for a consistency check (chkdsk) at the next Windows boot; left so, Windows verifies the resized volume\n");
    let new = ntfs_size(&read_head(dev, 4096)?)?;
    Ok((old, new, "ntfsresize"))
}

fn ntfs_min(dev: &Path) -> Result<u64> {
    ntfs_size(&read_head(dev, 4096)?)?;
    let ntfsresize = tool("ntfsresize", "ntfs-3g")?;
    let mut log = String::new();
    let r = run(&mut log, &ntfsresize, &["-P", "--info", "--force", path_str(dev)?], None)?;
    let bytes = r.text.lines().find_map(|l| l.split_once("You might resize at ")).and_then(|(_, v)| v.split_whitespace().next()?.parse::<u64>().ok());
    match (r.code, bytes) {
        (Some(0), Some(b)) => Ok(b),
        _ => bail!("ntfsresize --info gave no minimum:\n{}", log.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_escapes() {
        let b = [1u8, 2, 3, 4];
        assert_eq!(le(&b, 0, 4).unwrap(), 0x0403_0201);
        assert_eq!(be(&b, 0, 4).unwrap(), 0x0102_0304);
        assert!(le(&b, 2, 4).is_err());
        assert!(le(&b, usize::MAX - 1, 4).is_err());
        assert_eq!(unescape(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape(r"/x\\y\0"), r"/x\\y\0");
        assert!(e2fsck_ok(Some(0)) && e2fsck_ok(Some(1)) && e2fsck_ok(Some(2)));
        assert!(!e2fsck_ok(Some(4)) && !e2fsck_ok(Some(8)) && !e2fsck_ok(None));
    }

    #[test]
    fn ext_and_ntfs_sizes() {
        let mut h = vec![0u8; 4096];
        h[1024 + 56..1024 + 58].copy_from_slice(&0xEF53u16.to_le_bytes());
        h[1024 + 24] = 2; // 4 KiB blocks
        h[1024 + 4..1024 + 8].copy_from_slice(&1000u32.to_le_bytes());
        h[1024 + 0x150] = 1; // ignored without the 64bit feature
        assert_eq!(ext_size(&h).unwrap(), 1000 * 4096);
        h[1024 + 0x60] = 0x80;
        assert_eq!(ext_size(&h).unwrap(), ((1u64 << 32) + 1000) * 4096);
        h[1024 + 24] = 9;
        assert!(ext_size(&h).is_err());
        assert!(ext_size(&[0u8; 100]).is_err());

        let mut n = vec![0u8; 512];
        n[3..11].copy_from_slice(b"NTFS    ");
        n[0x0B..0x0D].copy_from_slice(&512u16.to_le_bytes());
        n[0x28..0x30].copy_from_slice(&195304u64.to_le_bytes());
        assert_eq!(ntfs_size(&n).unwrap(), 99_996_160);
        n[0x0B] = 0;
        n[0x0C] = 3;
        assert!(ntfs_size(&n).is_err());
    }

    #[test]
    fn wrong_filesystem_is_refused() {
        let dir = std::env::temp_dir().join(format!("sysclone-resize-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let img = dir.join("zero.img");
        std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
        let e = resize(&img, "ext4", 1 << 20).unwrap_err().to_string();
        assert!(e.contains("expected ext4, but the device holds unknown"), "{e}");
        let e = min_size(&img, "btrfs").unwrap_err().to_string();
        assert!(e.contains("expected btrfs"), "{e}");
        let mut b = vec![0u8; 1 << 20];
        b[4086..4096].copy_from_slice(b"SWAPSPACE2");
        std::fs::write(&img, &b).unwrap();
        let e = resize(&img, "swap", 2 << 20).unwrap_err().to_string();
        assert!(e.contains("fewer than the requested"), "{e}");
        let e = resize(&img, "xfs", 1 << 20).unwrap_err().to_string();
        assert!(e.contains("expected xfs, but the device holds swap"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_tool_names_its_package() {
        let e = tool("sysclone-no-such-tool", "some-package").unwrap_err().to_string();
        assert!(e.contains("some-package") && e.contains("/usr/sbin"), "{e}");
    }
}
