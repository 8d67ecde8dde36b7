//! The rescue initramfs: a cpio "newc" archive (zstd- or gzip-compressed, or plain) holding
//! our binary as `/init`, `sbin/modprobe -> /init`, the needed kernel modules (uncompressed,
//! otherwise byte-identical, so signed modules keep their signature), their firmware, and
//! kmod-style text index files for them.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use cpio::newc::Builder;
use serde::Serialize;

use crate::firmware::FirmwareFile;
use crate::modindex::{ModuleIndex, Reason};

/// Output compression of the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Compression {
    /// gzip at the default level (6), deterministic header (mtime 0, no file name).
    Gzip,
    /// zstd at the given level (1–22), single-threaded, with a content checksum; the output
    /// depends only on the input and the level. Linux needs `CONFIG_RD_ZSTD` (Debian: yes).
    Zstd(i32),
    /// Plain cpio.
    None,
}

impl Compression {
    /// The default: zstd level 19 (small images; the kernel unpacks zstd faster than gzip).
    pub const DEFAULT: Compression = Compression::Zstd(19);

    /// Parses `zstd`, `zstd:LEVEL`, `gzip` or `none`.
    pub fn parse(s: &str) -> Result<Compression> {
        match s.trim() {
            "gzip" | "gz" => Ok(Compression::Gzip),
            "none" | "cpio" => Ok(Compression::None),
            "zstd" | "zst" => Ok(Compression::DEFAULT),
            other => match other.strip_prefix("zstd:") {
                Some(l) => {
                    let level: i32 = l.parse().with_context(|| format!("zstd level {l:?} is not a number"))?;
                    ensure!((1..=22).contains(&level), "zstd level {level} is outside 1..=22");
                    Ok(Compression::Zstd(level))
                }
                None => bail!("unknown compression {other:?}: use zstd, zstd:LEVEL, gzip or none"),
            },
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Compression::Gzip => write!(f, "gzip"),
            Compression::Zstd(l) => write!(f, "zstd:{l}"),
            Compression::None => write!(f, "none"),
        }
    }
}

/// What to put in the initramfs.
#[derive(Debug, Clone, Default)]
pub struct InitramfsSpec {
    /// The sysclone binary; becomes `/init` (mode 0755).
    pub init_binary: PathBuf,
    /// Kernel release (`uname -r`), e.g. `6.1.0-56-amd64`; modules go to
    /// `lib/modules/<kernel_version>/`.
    pub kernel_version: String,
    /// The `lib/modules/<kver>` directory of that kernel. If it instead contains a
    /// `<kernel_version>` subdirectory (i.e. it is `lib/modules`), that subdirectory is used.
    pub modules_dir: PathBuf,
    /// Module names, aliases, globs and `!` exclusions (see
    /// [`ModuleIndex::resolve_closure`]); the dependency closure is computed. Empty: no modules
    /// (the modules directory is then optional).
    pub modules: Vec<String>,
    /// Directories searched, in order, for the firmware the chosen modules name (see
    /// [`crate::firmware`]). Empty: no firmware.
    pub firmware_dirs: Vec<PathBuf>,
    /// Additional files: (path in archive, contents, mode). A mode without file-type bits is a
    /// regular file; `0o040000` bits make a directory (contents must be empty), `0o120000` a
    /// symlink (contents = target). Parent directories are created automatically.
    pub extra_files: Vec<(String, Vec<u8>, u32)>,
}

/// One module placed in the archive.
#[derive(Debug, Clone, Serialize)]
pub struct IncludedModule {
    /// Normalised module name.
    pub name: String,
    /// Path in the image, relative to `lib/modules/<kver>` (always `.ko`).
    pub relpath: String,
    /// Path of the module file in the kernel tree (may end in `.ko.xz`, `.ko.zst`, `.ko.gz`).
    pub source_relpath: String,
    /// Size in bytes in the kernel tree.
    pub size: u64,
    /// Why it is included.
    pub reason: Reason,
    /// For wanted modules: the profile entry that named it.
    pub wanted_by: Option<String>,
}

/// Summary of a built initramfs.
#[derive(Debug, Clone, Serialize)]
pub struct InitramfsReport {
    /// Modules in load order (dependencies first).
    pub modules: Vec<IncludedModule>,
    /// Firmware files put in the image (at `lib/firmware/NAME`).
    pub firmware: Vec<FirmwareFile>,
    /// Firmware named by included modules but found in no firmware directory: (name, modules).
    pub firmware_missing: Vec<(String, Vec<String>)>,
    /// Notes from the closure computation (unresolved softdeps, built-in names…).
    pub notes: Vec<String>,
    /// Number of archive entries (excluding the trailer).
    pub entries: usize,
    /// Total bytes of `.ko` files as stored in the image (uncompressed).
    pub module_bytes: u64,
    /// Total bytes of firmware as stored in the image.
    pub firmware_bytes: u64,
    /// Size of the cpio stream.
    pub uncompressed_size: u64,
    /// Size of the output file (equal to `uncompressed_size` without compression).
    pub compressed_size: u64,
    /// Compression used.
    pub compression: Compression,
}

const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

struct CountingWriter<W: Write> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Emits newc entries with unique inode numbers, mtime 0, uid/gid 0, checking that every
/// parent directory was emitted first and that no path repeats.
struct ArchiveWriter<W: Write> {
    w: Option<CountingWriter<W>>,
    next_ino: u32,
    paths: BTreeSet<String>,
    entries: usize,
}

impl<W: Write> ArchiveWriter<W> {
    fn new(w: W) -> Self {
        ArchiveWriter {
            w: Some(CountingWriter { inner: w, count: 0 }),
            next_ino: 1,
            paths: BTreeSet::new(),
            entries: 0,
        }
    }

    fn entry(&mut self, path: &str, mode: u32, data: &[u8], rdev: (u32, u32)) -> Result<()> {
        check_archive_path(path)?;
        if let Some((parent, _)) = path.rsplit_once('/') {
            ensure!(
                self.paths.contains(parent),
                "cpio entry {path}: parent directory {parent} not emitted before it"
            );
        }
        ensure!(
            self.paths.insert(path.to_string()),
            "duplicate archive path {path}"
        );
        let size = u32::try_from(data.len())
            .with_context(|| format!("cpio entry {path}: {} bytes exceeds 4 GiB", data.len()))?;
        let nlink = if mode & S_IFMT == S_IFDIR { 2 } else { 1 };
        let b = Builder::new(path)
            .ino(self.next_ino)
            .mode(mode)
            .uid(0)
            .gid(0)
            .nlink(nlink)
            .mtime(0)
            .rdev_major(rdev.0)
            .rdev_minor(rdev.1);
        self.next_ino += 1;
        let w = self.w.take().context("archive writer already finished")?;
        let mut ew = b.write(w, size);
        // Write exactly `size` bytes: cpio's finish() silently accepts short writes.
        ew.write_all(data)
            .with_context(|| format!("writing cpio entry {path}"))?;
        let w = ew
            .finish()
            .with_context(|| format!("finishing cpio entry {path}"))?;
        self.w = Some(w);
        self.entries += 1;
        Ok(())
    }

    fn dir(&mut self, path: &str, perm: u32) -> Result<()> {
        self.entry(path, S_IFDIR | (perm & 0o7777), &[], (0, 0))
    }

    fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> Result<()> {
        self.entry(path, S_IFREG | (perm & 0o7777), data, (0, 0))
    }

    fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        self.entry(path, S_IFLNK | 0o777, target.as_bytes(), (0, 0))
    }

    fn chardev(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> Result<()> {
        let mode = (perm & 0o7777) | 0o020000; // S_IFCHR
        self.entry(path, mode, &[], (major, minor))
    }

    fn finish(mut self) -> Result<(W, u64, usize)> {
        let w = self.w.take().context("archive writer already finished")?;
        let w = cpio::newc::trailer(w).context("writing cpio trailer")?;
        Ok((w.inner, w.count, self.entries))
    }
}

fn check_archive_path(path: &str) -> Result<()> {
    ensure!(!path.is_empty(), "empty archive path");
    ensure!(
        !path.starts_with('/'),
        "archive path {path} must be relative"
    );
    for c in path.split('/') {
        ensure!(
            !c.is_empty() && c != "." && c != "..",
            "archive path {path} has an empty, '.' or '..' component"
        );
    }
    Ok(())
}

fn normalize_extra_path(p: &str) -> Result<String> {
    let t = p.trim_start_matches('/').trim_end_matches('/');
    check_archive_path(t).with_context(|| format!("extra file {p:?}"))?;
    Ok(t.to_string())
}

fn add_parents(path: &str, dirs: &mut BTreeSet<String>) {
    let mut acc = String::new();
    let comps: Vec<&str> = path.split('/').collect();
    for c in &comps[..comps.len().saturating_sub(1)] {
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(c);
        dirs.insert(acc.clone());
    }
}

/// Resolves the directory holding `modules.builtin` and `kernel/` for `spec`.
fn effective_modules_dir(spec: &InitramfsSpec) -> PathBuf {
    let sub = spec.modules_dir.join(&spec.kernel_version);
    if !spec.modules_dir.join("kernel").is_dir() && sub.is_dir() {
        sub
    } else {
        spec.modules_dir.clone()
    }
}

/// A small uncompressed newc archive of `files` (path, contents, mode as in
/// [`InitramfsSpec::extra_files`]), parents created as needed, mtime 0: e.g. a job file as a
/// second initrd for network boot (the kernel unpacks every archive it is given, in order).
pub fn build_cpio(files: &[(String, Vec<u8>, u32)]) -> Result<Vec<u8>> {
    let mut dirs = BTreeSet::new();
    let mut norm = Vec::new();
    for (p, data, mode) in files {
        let p = normalize_extra_path(p)?;
        add_parents(&p, &mut dirs);
        norm.push((p, data, if mode & S_IFMT == 0 { mode | S_IFREG } else { *mode }));
    }
    let mut a = ArchiveWriter::new(Vec::new());
    for d in &dirs {
        a.dir(d, 0o755)?;
    }
    for (p, data, mode) in norm {
        a.entry(&p, mode, data, (0, 0))?;
    }
    Ok(a.finish()?.0)
}

/// Everything that goes into the archive, in order.
struct Contents<'a> {
    dirs: BTreeSet<String>,
    extra_dir_modes: std::collections::BTreeMap<String, u32>,
    init: Vec<u8>,
    modroot: String,
    modules: &'a [IncludedModule],
    mdir: &'a Path,
    index_files: Vec<(&'static str, Vec<u8>)>,
    firmware: &'a [FirmwareFile],
    extras: Vec<(String, &'a [u8], u32)>,
}

/// Builds the initramfs described by `spec` into `out` (written to a temporary file next to it
/// and renamed into place on success).
///
/// Layout, in archive order: directories parent-first (`dev`, `lib/modules/<kver>/…`,
/// `lib/firmware/…`, `mnt`, `proc`, `run`, `sbin`, `sys`, `tmp`, and those needed by the
/// extra files); `dev/console` (c 5 1), `dev/null` (c 1 3); `init` (the binary, 0755);
/// `sbin/modprobe -> /init`; the `.ko` files in load order, unpacked if they were compressed;
/// `modules.dep`, `modules.alias`, `modules.softdep` for that set and `modules.builtin` /
/// `modules.builtin.modinfo` copied from the kernel; the firmware files, unpacked; then the
/// extra files. All entries have mtime 0 and uid/gid 0, and every compressor is run
/// deterministically, so the output depends only on the inputs.
pub fn build_initramfs(
    spec: &InitramfsSpec,
    out: &Path,
    compression: Compression,
) -> Result<InitramfsReport> {
    let kver = spec.kernel_version.as_str();
    ensure!(
        !kver.is_empty() && !kver.contains('/') && kver != "." && kver != "..",
        "invalid kernel version {kver:?}"
    );
    let init = fs::read(&spec.init_binary)
        .with_context(|| format!("reading init binary {}", spec.init_binary.display()))?;
    let mdir = effective_modules_dir(spec);

    // Module closure.
    let (index, closure) = if spec.modules.is_empty() {
        (ModuleIndex::default(), Default::default())
    } else {
        let index = ModuleIndex::scan(&mdir)?;
        let closure = index
            .resolve_closure(&spec.modules)
            .with_context(|| format!("computing module closure in {}", mdir.display()))?;
        (index, closure)
    };
    let closure: crate::modindex::Closure = closure;
    let modroot = format!("lib/modules/{kver}");

    let mut included = Vec::new();
    for name in &closure.modules {
        let e = index
            .get(name)
            .with_context(|| format!("module {name} missing from index"))?;
        included.push(IncludedModule {
            name: e.name.clone(),
            relpath: e.image_relpath(),
            source_relpath: e.relpath.clone(),
            size: e.size,
            reason: closure.reasons.get(name).cloned().unwrap_or(Reason::Wanted),
            wanted_by: closure.wanted_by.get(name).cloned(),
        });
    }

    // Firmware named by those modules.
    let fw = if spec.firmware_dirs.is_empty() {
        crate::firmware::FirmwareSet::default()
    } else {
        let mods: Vec<(&str, &[String])> = closure
            .modules
            .iter()
            .filter_map(|n| index.get(n).map(|e| (e.name.as_str(), e.info.firmware.as_slice())))
            .collect();
        crate::firmware::collect(mods, &spec.firmware_dirs)?
    };

    // Index files.
    let mut dep = Vec::new();
    index.write_modules_dep(&closure.modules, &mut dep)?;
    let mut alias = Vec::new();
    index.write_modules_alias(&closure.modules, &mut alias)?;
    let mut softdep = Vec::new();
    index.write_modules_softdep(&closure.modules, &mut softdep)?;
    let read_opt = |name: &str| -> Result<Vec<u8>> {
        let p = mdir.join(name);
        match fs::read(&p) {
            Ok(d) => Ok(d),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    };
    let index_files = vec![
        ("modules.dep", dep),
        ("modules.alias", alias),
        ("modules.softdep", softdep),
        ("modules.builtin", read_opt("modules.builtin")?),
        ("modules.builtin.modinfo", read_opt("modules.builtin.modinfo")?),
    ];

    // Extra files.
    let mut extras: Vec<(String, &[u8], u32)> = Vec::new();
    for (p, data, mode) in &spec.extra_files {
        let p = normalize_extra_path(p)?;
        let ty = mode & S_IFMT;
        let mode = if ty == 0 { mode | S_IFREG } else { *mode };
        match mode & S_IFMT {
            S_IFREG | S_IFLNK => {}
            S_IFDIR => ensure!(data.is_empty(), "extra directory {p} must have no contents"),
            other => bail!("extra file {p}: unsupported file type bits {other:#o}"),
        }
        extras.push((p, data, mode));
    }

    // Directory set (sorted order is parent-first).
    let mut dirs: BTreeSet<String> = ["dev", "proc", "sys", "run", "tmp", "mnt", "sbin"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    add_parents(&format!("{modroot}/modules.dep"), &mut dirs);
    for m in &included {
        add_parents(&format!("{modroot}/{}", m.relpath), &mut dirs);
    }
    for f in &fw.files {
        add_parents(&format!("lib/firmware/{}", f.name), &mut dirs);
    }
    let mut extra_dir_modes = std::collections::BTreeMap::new();
    for (p, _, mode) in &extras {
        add_parents(p, &mut dirs);
        if mode & S_IFMT == S_IFDIR {
            dirs.insert(p.clone());
            extra_dir_modes.insert(p.clone(), *mode);
        }
    }
    let contents = Contents {
        dirs,
        extra_dir_modes,
        init,
        modroot,
        modules: &included,
        mdir: &mdir,
        index_files,
        firmware: &fw.files,
        extras,
    };

    // Write to a temp file next to `out`.
    let tmp = tmp_path(out);
    let result = (|| -> Result<(u64, usize, Sizes)> {
        let f = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let buf = BufWriter::with_capacity(1 << 20, f);
        let (uncompressed, entries, sizes, file) = match compression {
            Compression::Gzip => {
                let gz = flate2::GzBuilder::new()
                    .mtime(0)
                    .write(buf, flate2::Compression::default());
                let (gz, n, e, sz) = write_archive(gz, &contents)?;
                let buf = gz.finish().context("finishing gzip stream")?;
                (n, e, sz, buf.into_inner().map_err(|e| e.into_error())?)
            }
            Compression::Zstd(level) => {
                let mut enc = zstd::stream::Encoder::new(buf, level).context("starting zstd")?;
                enc.include_checksum(true).context("zstd checksum flag")?;
                let (enc, n, e, sz) = write_archive(enc, &contents)?;
                let buf = enc.finish().context("finishing zstd stream")?;
                (n, e, sz, buf.into_inner().map_err(|e| e.into_error())?)
            }
            Compression::None => {
                let (buf, n, e, sz) = write_archive(buf, &contents)?;
                (n, e, sz, buf.into_inner().map_err(|e| e.into_error())?)
            }
        };
        file.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
        Ok((uncompressed, entries, sizes))
    })();
    let (uncompressed_size, entries, sizes) = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e.context(format!("building initramfs {}", out.display())));
        }
    };
    fs::rename(&tmp, out)
        .with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    let compressed_size = fs::metadata(out)
        .with_context(|| format!("stat {}", out.display()))?
        .len();
    Ok(InitramfsReport {
        module_bytes: sizes.modules,
        firmware_bytes: sizes.firmware,
        modules: included,
        firmware: fw.files,
        firmware_missing: fw.missing,
        notes: closure.notes,
        entries,
        uncompressed_size,
        compressed_size,
        compression,
    })
}

fn tmp_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "initramfs".into());
    out.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

#[derive(Default)]
struct Sizes {
    modules: u64,
    firmware: u64,
}

fn write_archive<W: Write>(w: W, c: &Contents<'_>) -> Result<(W, u64, usize, Sizes)> {
    let mut sizes = Sizes::default();
    let mut a = ArchiveWriter::new(w);
    for d in &c.dirs {
        let perm = match (c.extra_dir_modes.get(d), d.as_str()) {
            (Some(m), _) => m & 0o7777,
            (None, "tmp") => 0o1777,
            _ => 0o755,
        };
        a.dir(d, perm)?;
    }
    a.chardev("dev/console", 0o600, 5, 1)?;
    a.chardev("dev/null", 0o666, 1, 3)?;
    a.file("init", 0o755, &c.init)?;
    a.symlink("sbin/modprobe", "/init")?;
    for m in c.modules {
        let src = c.mdir.join(&m.source_relpath);
        let mut data = Vec::with_capacity(m.size as usize);
        fs::File::open(&src)
            .and_then(|mut f| f.read_to_end(&mut data))
            .with_context(|| format!("reading module {}", src.display()))?;
        let data = crate::decompress::unpack(data, &src.display().to_string())?;
        sizes.modules += data.len() as u64;
        a.file(&format!("{}/{}", c.modroot, m.relpath), 0o644, &data)?;
    }
    for (name, data) in &c.index_files {
        a.file(&format!("{}/{name}", c.modroot), 0o644, data)?;
    }
    for f in c.firmware {
        let data = crate::decompress::read_unpacked(&f.source)?;
        sizes.firmware += data.len() as u64;
        a.file(&format!("lib/firmware/{}", f.name), 0o644, &data)?;
    }
    for (p, data, mode) in &c.extras {
        if mode & S_IFMT == S_IFDIR {
            continue; // already emitted with the directories
        }
        a.entry(p, *mode, data, (0, 0))?;
    }
    let (w, n, e) = a.finish()?;
    Ok((w, n, e, sizes))
}

/// One entry of an initramfs read back by [`read_initramfs`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InitramfsEntry {
    /// Path as stored (no leading `/`).
    pub name: String,
    /// Full mode including file-type bits.
    pub mode: u32,
    /// Modification time.
    pub mtime: u32,
    /// Device numbers for device nodes.
    pub rdev: (u32, u32),
    /// Contents (file data or symlink target; empty otherwise).
    pub data: Vec<u8>,
}

/// Reads a (zstd- or gzip-compressed, or plain) single-segment newc archive, returning every entry with
/// its contents. Meant for inspection and tests; holds the whole archive in memory.
pub fn read_initramfs(path: &Path) -> Result<Vec<InitramfsEntry>> {
    let raw = fs::read(path).with_context(|| format!("reading initramfs {}", path.display()))?;
    let data = crate::decompress::unpack(raw, &path.display().to_string())?;
    let mut out = Vec::new();
    let mut rest: &[u8] = &data;
    loop {
        let mut r = cpio::NewcReader::new(rest).with_context(|| {
            format!(
                "parsing cpio header in {} after {} entries",
                path.display(),
                out.len()
            )
        })?;
        let e = r.entry();
        if e.is_trailer() {
            break;
        }
        let (name, mode, mtime, rdev, size) = (
            e.name().to_string(),
            e.mode(),
            e.mtime(),
            (e.rdev_major(), e.rdev_minor()),
            e.file_size(),
        );
        let mut body = Vec::with_capacity(size as usize);
        r.read_to_end(&mut body)
            .with_context(|| format!("reading cpio entry {name} in {}", path.display()))?;
        ensure!(
            body.len() == size as usize,
            "cpio entry {name} in {}: expected {size} bytes, got {}",
            path.display(),
            body.len()
        );
        rest = r
            .finish()
            .with_context(|| format!("skipping past cpio entry {name}"))?;
        out.push(InitramfsEntry {
            name,
            mode,
            mtime,
            rdev,
            data: body,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modindex::testutil::write_fake_tree;
    use std::collections::BTreeMap;
    use std::process::Command;

    fn setup() -> (tempfile::TempDir, InitramfsSpec) {
        let d = tempfile::tempdir().unwrap();
        let mdir = d.path().join("lib/modules/9.9.9-test");
        fs::create_dir_all(&mdir).unwrap();
        write_fake_tree(&mdir);
        let init = d.path().join("sysclone");
        fs::write(&init, b"\x7fELF fake init binary\n").unwrap();
        let spec = InitramfsSpec {
            init_binary: init,
            kernel_version: "9.9.9-test".into(),
            modules_dir: mdir,
            modules: vec!["ahci".into(), "vfat".into(), "efivarfs".into()],
            firmware_dirs: vec![],
            extra_files: vec![
                ("etc/sysclone/job.toml".into(), b"x = 1\n".to_vec(), 0o644),
                ("/bin/sh".into(), b"/init".to_vec(), 0o120777),
                ("var/empty".into(), Vec::new(), 0o040700),
            ],
        };
        (d, spec)
    }

    #[test]
    fn builds_and_reads_back() {
        let (d, spec) = setup();
        let out = d.path().join("initramfs.img");
        let rep = build_initramfs(&spec, &out, Compression::Gzip).unwrap();
        let names: Vec<&str> = rep.modules.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "scsi_common",
                "scsi_mod",
                "libata",
                "libahci",
                "ahci",
                "fat",
                "vfat",
                "nls_ascii"
            ]
        );
        assert_eq!(rep.modules[4].reason, Reason::Wanted);
        assert_eq!(rep.modules[0].reason, Reason::Dependency("scsi_mod".into()));
        assert_eq!(rep.modules[7].reason, Reason::SoftdepPost("vfat".into()));
        assert!(rep.notes.iter().any(|n| n.contains("nls-missing")));
        assert!(rep.compressed_size < rep.uncompressed_size);
        assert_eq!(rep.compressed_size, fs::metadata(&out).unwrap().len());

        let entries = read_initramfs(&out).unwrap();
        assert_eq!(entries.len(), rep.entries);
        let by: BTreeMap<&str, &InitramfsEntry> =
            entries.iter().map(|e| (e.name.as_str(), e)).collect();
        // Parent-first order.
        let mut seen = BTreeSet::new();
        for e in &entries {
            if let Some((p, _)) = e.name.rsplit_once('/') {
                assert!(seen.contains(p), "{} before its parent", e.name);
            }
            seen.insert(e.name.as_str());
            assert_eq!(e.mtime, 0);
        }
        for d in [
            "dev",
            "proc",
            "sys",
            "run",
            "tmp",
            "mnt",
            "sbin",
            "lib/modules/9.9.9-test",
        ] {
            assert_eq!(by[d].mode & S_IFMT, S_IFDIR, "{d}");
        }
        assert_eq!(by["tmp"].mode, 0o041777);
        assert_eq!(by["var/empty"].mode, 0o040700);
        assert_eq!(by["dev/console"].mode, 0o020600);
        assert_eq!(by["dev/console"].rdev, (5, 1));
        assert_eq!(by["dev/null"].rdev, (1, 3));
        assert_eq!(by["init"].mode, 0o100755);
        assert_eq!(by["init"].data, fs::read(&spec.init_binary).unwrap());
        assert_eq!(by["sbin/modprobe"].mode, 0o120777);
        assert_eq!(by["sbin/modprobe"].data, b"/init");
        assert_eq!(by["bin/sh"].mode, 0o120777);
        assert_eq!(by["etc/sysclone/job.toml"].data, b"x = 1\n");
        assert_eq!(by["etc/sysclone/job.toml"].mode, 0o100644);
        let ko = "lib/modules/9.9.9-test/kernel/drivers/ata/ahci.ko";
        assert_eq!(
            by[ko].data,
            fs::read(spec.modules_dir.join("kernel/drivers/ata/ahci.ko")).unwrap()
        );
        assert!(!by.contains_key("lib/modules/9.9.9-test/kernel/fs/ext4/ext4.ko"));
        let dep = String::from_utf8(by["lib/modules/9.9.9-test/modules.dep"].data.clone()).unwrap();
        let map = crate::parse_modules_dep(&dep).unwrap();
        assert_eq!(map.len(), 8);
        for e in map.values() {
            for p in e.deps.iter().chain([&e.path]) {
                assert!(
                    by.contains_key(format!("lib/modules/9.9.9-test/{p}").as_str()),
                    "{p}"
                );
            }
        }
        let alias =
            String::from_utf8(by["lib/modules/9.9.9-test/modules.alias"].data.clone()).unwrap();
        assert!(alias.contains("alias fs-vfat vfat"));
        assert!(!alias.contains("ext4"));
        assert!(
            String::from_utf8_lossy(&by["lib/modules/9.9.9-test/modules.softdep"].data)
                .contains("softdep vfat")
        );
        assert!(
            String::from_utf8_lossy(&by["lib/modules/9.9.9-test/modules.builtin"].data)
                .contains("efivarfs.ko")
        );
        assert!(!by["lib/modules/9.9.9-test/modules.builtin.modinfo"]
            .data
            .is_empty());

        // GNU cpio agrees.
        let plain = d.path().join("plain.cpio");
        let rep2 = build_initramfs(&spec, &plain, Compression::None).unwrap();
        assert_eq!(rep2.uncompressed_size, rep.uncompressed_size);
        assert_eq!(rep2.compressed_size, rep2.uncompressed_size);
        let o = Command::new("cpio")
            .args(["-t", "-v", "--quiet", "-F"])
            .arg(&plain)
            .output()
            .expect("cpio(1) must be installed for this test");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let listing = String::from_utf8_lossy(&o.stdout);
        assert!(listing.contains("sbin/modprobe -> /init"), "{listing}");
        assert!(listing
            .lines()
            .any(|l| l.starts_with("crw-------") && l.contains("dev/console")));
        assert_eq!(listing.lines().count(), rep.entries);

        // Reproducible.
        let out2 = d.path().join("again.img");
        build_initramfs(&spec, &out2, Compression::Gzip).unwrap();
        assert_eq!(fs::read(&out).unwrap(), fs::read(&out2).unwrap());
        // No temp files left behind.
        let leftovers: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }

    /// A kernel tree with xz- and zstd-compressed modules, one naming firmware: the image holds
    /// them as plain `.ko` (byte-identical to the unpacked file), `modules.dep` names the
    /// `.ko` paths, the firmware is there unpacked, and zstd output is reproducible.
    #[test]
    fn compressed_modules_firmware_and_zstd() {
        use crate::modinfo::testutil::fake_ko;
        let d = tempfile::tempdir().unwrap();
        let mdir = d.path().join("lib/modules/9.9.9-z");
        let pack = |args: &[&str], data: &[u8]| -> Vec<u8> {
            let mut c = Command::new(args[0])
                .args(&args[1..])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            c.stdin.take().unwrap().write_all(data).unwrap();
            c.wait_with_output().unwrap().stdout
        };
        let libata = fake_ko(&["name=libata", "depends="]);
        let mut ahci = fake_ko(&["name=ahci", "depends=libata", "firmware=vendor/ahci.fw", "firmware=vendor/absent.fw"]);
        ahci.extend_from_slice(b"~Module signature appended~\n");
        fs::create_dir_all(mdir.join("kernel/drivers/ata")).unwrap();
        fs::write(mdir.join("kernel/drivers/ata/libata.ko.zst"), pack(&["zstd", "-q", "-c"], &libata)).unwrap();
        fs::write(mdir.join("kernel/drivers/ata/ahci.ko.xz"), pack(&["xz", "--check=crc32", "--lzma2=dict=1MiB", "-c"], &ahci)).unwrap();
        let fwdir = d.path().join("firmware");
        fs::create_dir_all(fwdir.join("vendor")).unwrap();
        fs::write(fwdir.join("vendor/ahci.fw.xz"), pack(&["xz", "-c"], b"FIRMWARE BLOB")).unwrap();
        let init = d.path().join("init");
        fs::write(&init, b"init").unwrap();
        let spec = InitramfsSpec {
            init_binary: init,
            kernel_version: "9.9.9-z".into(),
            modules_dir: mdir,
            modules: vec!["kernel/drivers/ata/*".into()],
            firmware_dirs: vec![fwdir],
            extra_files: vec![],
        };
        let out = d.path().join("z.img");
        let rep = build_initramfs(&spec, &out, Compression::Zstd(3)).unwrap();
        assert_eq!(&fs::read(&out).unwrap()[..4], &[0x28, 0xB5, 0x2F, 0xFD]);
        let rels: Vec<(&str, &str)> = rep.modules.iter().map(|m| (m.relpath.as_str(), m.source_relpath.as_str())).collect();
        assert_eq!(rels, [("kernel/drivers/ata/libata.ko", "kernel/drivers/ata/libata.ko.zst"), ("kernel/drivers/ata/ahci.ko", "kernel/drivers/ata/ahci.ko.xz")]);
        assert_eq!(rep.modules[1].wanted_by.as_deref(), Some("kernel/drivers/ata/*"));
        assert_eq!(rep.module_bytes, (libata.len() + ahci.len()) as u64);
        assert_eq!(rep.firmware.len(), 1);
        assert_eq!(rep.firmware_missing, vec![("vendor/absent.fw".to_string(), vec!["ahci".to_string()])]);
        let entries = read_initramfs(&out).unwrap();
        let by: BTreeMap<&str, &InitramfsEntry> = entries.iter().map(|e| (e.name.as_str(), e)).collect();
        assert_eq!(by["lib/modules/9.9.9-z/kernel/drivers/ata/ahci.ko"].data, ahci);
        assert_eq!(by["lib/modules/9.9.9-z/kernel/drivers/ata/libata.ko"].data, libata);
        assert_eq!(by["lib/firmware/vendor/ahci.fw"].data, b"FIRMWARE BLOB");
        let dep = String::from_utf8(by["lib/modules/9.9.9-z/modules.dep"].data.clone()).unwrap();
        assert!(dep.contains("kernel/drivers/ata/ahci.ko: kernel/drivers/ata/libata.ko\n"), "{dep}");
        // zstd(1) agrees, and the output is reproducible.
        let o = Command::new("zstd").args(["-t", "-q"]).arg(&out).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let again = d.path().join("z2.img");
        build_initramfs(&spec, &again, Compression::Zstd(3)).unwrap();
        assert_eq!(fs::read(&out).unwrap(), fs::read(&again).unwrap());
        // A small job archive for network boot.
        let job = build_cpio(&[("etc/sysclone/job.toml".into(), b"x".to_vec(), 0o644)]).unwrap();
        let p = d.path().join("job.cpio");
        fs::write(&p, &job).unwrap();
        let e = read_initramfs(&p).unwrap();
        assert_eq!(e.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["etc", "etc/sysclone", "etc/sysclone/job.toml"]);
    }

    #[test]
    fn compression_names() {
        assert_eq!(Compression::parse("zstd").unwrap(), Compression::DEFAULT);
        assert_eq!(Compression::parse("zstd:3").unwrap(), Compression::Zstd(3));
        assert_eq!(Compression::parse("gzip").unwrap(), Compression::Gzip);
        assert_eq!(Compression::parse("none").unwrap(), Compression::None);
        assert!(Compression::parse("zstd:99").is_err());
        assert!(Compression::parse("lz4").is_err());
        assert_eq!(Compression::Zstd(19).to_string(), "zstd:19");
    }

    #[test]
    fn modules_dir_may_be_lib_modules() {
        let (d, mut spec) = setup();
        spec.modules_dir = d.path().join("lib/modules");
        let rep = build_initramfs(&spec, &d.path().join("x.img"), Compression::None).unwrap();
        assert_eq!(rep.modules.len(), 8);
    }

    #[test]
    fn no_modules_needs_no_tree() {
        let (d, mut spec) = setup();
        spec.modules.clear();
        spec.modules_dir = d.path().join("nonexistent");
        spec.extra_files.clear();
        let out = d.path().join("min.img");
        let rep = build_initramfs(&spec, &out, Compression::Gzip).unwrap();
        assert!(rep.modules.is_empty());
        let names: Vec<String> = read_initramfs(&out)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert!(names.contains(&"init".to_string()));
        assert!(names.contains(&"lib/modules/9.9.9-test/modules.dep".to_string()));
    }

    #[test]
    fn errors_are_descriptive() {
        let (d, mut spec) = setup();
        let out = d.path().join("e.img");
        spec.modules.push("nosuchmod".into());
        let e = format!(
            "{:#}",
            build_initramfs(&spec, &out, Compression::None).unwrap_err()
        );
        assert!(e.contains("nosuchmod"), "{e}");
        spec.modules.pop();
        spec.extra_files.push(("init".into(), vec![], 0o644));
        let e = format!(
            "{:#}",
            build_initramfs(&spec, &out, Compression::None).unwrap_err()
        );
        assert!(e.contains("duplicate archive path init"), "{e}");
        spec.extra_files.pop();
        spec.extra_files.push(("../etc/x".into(), vec![], 0o644));
        assert!(build_initramfs(&spec, &out, Compression::None).is_err());
        spec.extra_files.pop();
        spec.init_binary = d.path().join("missing-init");
        let e = format!(
            "{:#}",
            build_initramfs(&spec, &out, Compression::None).unwrap_err()
        );
        assert!(e.contains("missing-init"), "{e}");
        assert!(!out.exists());
    }

    #[test]
    fn short_write_guard() {
        // The archive writer refuses paths whose parent was not emitted.
        let mut a = ArchiveWriter::new(Vec::new());
        assert!(a.file("a/b", 0o644, b"x").is_err());
        a.dir("a", 0o755).unwrap();
        a.file("a/b", 0o644, b"xyz").unwrap();
        let (buf, n, entries) = a.finish().unwrap();
        assert_eq!(buf.len() as u64, n);
        assert_eq!(entries, 2);
        assert_eq!(buf.len() % 4, 0);
    }

    /// Debian's signed modules of the rescue set, compressed as other distributions ship them
    /// (xz with CRC32 as the kernel's build does, and zstd): the image holds each one
    /// byte-identical to Debian's `.ko`, appended signature included. Run with `--ignored`.
    #[test]
    #[ignore = "needs scripts/fetch-kernel"]
    fn real_kernel_compressed_modules() {
        let kt = crate::testkernel::kernel_tree();
        let index = ModuleIndex::scan(&kt.modules_dir).unwrap();
        let wanted: Vec<String> = crate::modindex::tests::RESCUE_SET.iter().map(|s| s.to_string()).collect();
        let closure = index.resolve_closure(&wanted).unwrap();
        let d = tempfile::tempdir().unwrap();
        let mdir = d.path().join("lib/modules").join(&kt.kver);
        for (i, name) in closure.modules.iter().enumerate() {
            let e = index.get(name).unwrap();
            let plain = fs::read(kt.modules_dir.join(&e.relpath)).unwrap();
            assert!(plain.ends_with(b"~Module signature appended~\n"), "{} is not signed", e.relpath);
            let (suffix, args): (&str, &[&str]) = if i % 2 == 0 { (".xz", &["xz", "--check=crc32", "--lzma2=dict=1MiB", "-c"]) } else { (".zst", &["zstd", "-q", "-c"]) };
            let mut c = Command::new(args[0]).args(&args[1..]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
            let mut stdin = c.stdin.take().unwrap();
            let t = std::thread::spawn(move || stdin.write_all(&plain).unwrap());
            let packed = c.wait_with_output().unwrap().stdout;
            t.join().unwrap();
            let dst = mdir.join(format!("{}{suffix}", e.relpath));
            fs::create_dir_all(dst.parent().unwrap()).unwrap();
            fs::write(dst, packed).unwrap();
        }
        for f in ["modules.builtin", "modules.builtin.modinfo"] {
            fs::copy(kt.modules_dir.join(f), mdir.join(f)).unwrap();
        }
        let init = d.path().join("init");
        fs::write(&init, b"init").unwrap();
        let spec = InitramfsSpec { init_binary: init, kernel_version: kt.kver.clone(), modules_dir: mdir, modules: wanted, ..Default::default() };
        let out = d.path().join("i.img");
        let rep = build_initramfs(&spec, &out, Compression::Zstd(3)).unwrap();
        assert_eq!(rep.modules.len(), closure.modules.len());
        let entries = read_initramfs(&out).unwrap();
        let by: BTreeMap<&str, &InitramfsEntry> = entries.iter().map(|e| (e.name.as_str(), e)).collect();
        for m in &rep.modules {
            assert!(m.source_relpath.ends_with(".ko.xz") || m.source_relpath.ends_with(".ko.zst"));
            let got = &by[format!("lib/modules/{}/{}", kt.kver, m.relpath).as_str()].data;
            assert_eq!(got, &fs::read(kt.modules_dir.join(&m.relpath)).unwrap(), "{}", m.relpath);
        }
    }

    /// Builds the rescue initramfs from the real Debian kernel tree; run with `--ignored`.
    #[test]
    #[ignore = "needs scripts/fetch-kernel"]
    fn real_kernel_initramfs() {
        let kt = crate::testkernel::kernel_tree();
        let d = tempfile::tempdir().unwrap();
        let init = d.path().join("init");
        fs::write(&init, b"fake init").unwrap();
        let spec = InitramfsSpec {
            init_binary: init,
            kernel_version: kt.kver.clone(),
            modules_dir: kt.modules_dir.clone(),
            modules: crate::modindex::tests::RESCUE_SET
                .iter()
                .map(|s| s.to_string())
                .collect(),
            firmware_dirs: vec![],
            extra_files: vec![],
        };
        let out = d.path().join("initramfs.img");
        let t0 = std::time::Instant::now();
        let rep = build_initramfs(&spec, &out, Compression::Gzip).unwrap();
        eprintln!(
            "{} modules, {} module bytes, cpio {} bytes, gzip {} bytes, {:?}",
            rep.modules.len(),
            rep.module_bytes,
            rep.uncompressed_size,
            rep.compressed_size,
            t0.elapsed()
        );
        let names: Vec<&str> = rep.modules.iter().map(|m| m.name.as_str()).collect();
        for m in [
            "libahci",
            "libata",
            "scsi_mod",
            "jbd2",
            "mbcache",
            "fat",
            "efivarfs",
            "nls_cp437",
        ] {
            assert!(names.contains(&m), "{m} missing");
        }
        let entries = read_initramfs(&out).unwrap();
        let by: BTreeMap<&str, &InitramfsEntry> =
            entries.iter().map(|e| (e.name.as_str(), e)).collect();
        for m in &rep.modules {
            let p = format!("lib/modules/{}/{}", kt.kver, m.relpath);
            assert_eq!(
                by[p.as_str()].data,
                fs::read(kt.modules_dir.join(&m.relpath)).unwrap(),
                "{p}"
            );
        }
        let dep = String::from_utf8(
            by[format!("lib/modules/{}/modules.dep", kt.kver).as_str()]
                .data
                .clone(),
        )
        .unwrap();
        let map = crate::parse_modules_dep(&dep).unwrap();
        let order = crate::load_order(&map, "ahci").unwrap();
        let pos = |n: &str| order.iter().position(|p| p.ends_with(n)).unwrap();
        assert!(pos("/libata.ko") < pos("/libahci.ko") && pos("/libahci.ko") < pos("/ahci.ko"));
        // zcat | cpio -t agrees on the entry count.
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "zcat '{}' | cpio -t --quiet | wc -l",
                out.display()
            ))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            rep.entries.to_string()
        );
    }
}
