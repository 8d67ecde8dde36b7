//! Host programs for the rescue image: a program, its dynamic loader and every shared library
//! it needs (recursively), as initramfs entries.
//!
//! Each ELF object is parsed here (ELF64 little-endian only): `PT_INTERP` names the dynamic
//! loader; `PT_DYNAMIC` gives `DT_NEEDED`, `DT_RPATH`/`DT_RUNPATH` and `DT_SONAME` as offsets
//! into the string table at `DT_STRTAB`, a virtual address mapped to a file offset through the
//! `PT_LOAD` segments. Every offset read from a file is bounds-checked: a truncated or garbage
//! file is an error, never a panic.
//!
//! Sonames are searched like glibc's loader does without `/etc/ld.so.cache`: the object's
//! `DT_RPATH` (only when it has no `DT_RUNPATH`), its `DT_RUNPATH`, then [`LIBRARY_DIRS`].
//!
//! Layout in the image. Every file is stored once, at its canonical (symlink-free) host path;
//! every symlink met on the way from a requested path (the program as found, the loader's
//! `PT_INTERP` path, `<dir>/<soname>`) to the file is copied as it is on the host, so each of
//! those paths resolves in the image as it does on the host: on a merged-/usr host,
//! `lib64 -> usr/lib64`, `usr/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/…`,
//! `usr/lib/x86_64-linux-gnu/libc.so.6` (a file). [`build_initramfs`](crate::build_initramfs)
//! itself makes `lib` (for `lib/modules`) and `sbin` (for `sbin/modprobe -> /init`) real
//! directories; where the host has a symlink there (`/lib -> usr/lib`), the needed child gets
//! an absolute symlink instead (`lib/x86_64-linux-gnu -> /usr/lib/x86_64-linux-gnu`,
//! `sbin/e2fsck -> /usr/sbin/e2fsck`). The other merged-/usr links of the host (`bin`, `lib64`,
//! …) are added when their target directory is in the image. Directories are not emitted:
//! the initramfs builder creates parents (mode 0755) itself.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde::Serialize;

/// Where a program given by name is looked for, in this order.
pub const PROGRAM_DIRS: &[&str] = &["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// Where a soname is looked for after the object's own `DT_RPATH`/`DT_RUNPATH`, in this order
/// (Debian's multiarch directories first, as in glibc's built-in list).
pub const LIBRARY_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// The filesystem tools sysclone's migrations may call; in the image by default when the build
/// host has them.
pub const DEFAULT_TOOLS: &[&str] = &[
    "resize2fs",
    "e2fsck",
    "tune2fs",
    "ntfsresize",
    "ntfsfix",
    "mkswap",
];

/// Debian's `busybox-static` binary.
pub const DEFAULT_BUSYBOX: &str = "/bin/busybox";

/// Applets linked to busybox (besides `sh`), unless the name is taken (see
/// [`ToolSet::add_busybox`]).
pub const BUSYBOX_APPLETS: &[&str] = &[
    "ls",
    "cat",
    "mount",
    "umount",
    "dmesg",
    "vi",
    "grep",
    "sed",
    "awk",
    "find",
    "sync",
    "reboot",
    "poweroff",
    "lsmod",
    "hexdump",
    "sha256sum",
    "dd",
    "mkdir",
    "rm",
    "cp",
    "mv",
    "ln",
    "ps",
    "kill",
    "sleep",
    "echo",
    "test",
    "head",
    "tail",
    "wc",
    "sort",
    "uniq",
    "tr",
    "cut",
    "df",
    "du",
    "free",
    "stat",
    "chmod",
    "ip",
    "ping",
    "wget",
];

/// Top-level symlinks of a merged-/usr host that are copied when their target is in the image.
const MERGED_USR_LINKS: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Directories [`build_initramfs`](crate::build_initramfs) always creates (`lib` for
/// `lib/modules/<kver>`).
const IMAGE_DIRS: &[&str] = &[
    "dev",
    "proc",
    "sys",
    "run",
    "tmp",
    "mnt",
    "sbin",
    "lib",
    "lib/modules",
];

/// Files [`build_initramfs`](crate::build_initramfs) always creates.
const IMAGE_FILES: &[&str] = &["init", "sbin/modprobe", "dev/console", "dev/null"];

/// Program names that are sysclone itself in the image.
const RESERVED_NAMES: &[&str] = &["init", "modprobe"];

const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const MAX_SYMLINKS: u32 = 40;

// ---------------------------------------------------------------------------------------------
// ELF

/// What the dynamic linker needs from one ELF object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ElfDeps {
    /// `e_machine` (62 = x86-64).
    pub machine: u16,
    /// `e_type` (2 = executable, 3 = shared object / PIE).
    pub elf_type: u16,
    /// The dynamic loader (`PT_INTERP`); `None` for static programs and most libraries.
    pub interp: Option<String>,
    /// `DT_NEEDED` sonames in file order.
    pub needed: Vec<String>,
    /// `DT_SONAME`.
    pub soname: Option<String>,
    /// `DT_RPATH` entries.
    pub rpath: Vec<String>,
    /// `DT_RUNPATH` entries.
    pub runpath: Vec<String>,
    /// Whether there is a `PT_DYNAMIC` segment.
    pub dynamic: bool,
}

impl ElfDeps {
    /// Statically linked: no loader and no libraries.
    pub fn is_static(&self) -> bool {
        self.interp.is_none() && self.needed.is_empty()
    }
}

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: i64 = 0;
const DT_NEEDED: i64 = 1;
const DT_STRTAB: i64 = 5;
const DT_STRSZ: i64 = 10;
const DT_SONAME: i64 = 14;
const DT_RPATH: i64 = 15;
const DT_RUNPATH: i64 = 29;

/// `len` bytes at `off`, or an error naming `what`.
fn bytes_at<'a>(data: &'a [u8], off: u64, len: u64, what: &str) -> Result<&'a [u8]> {
    let end = off
        .checked_add(len)
        .ok_or_else(|| anyhow!("{what}: offset {off:#x} + {len:#x} overflows"))?;
    ensure!(
        end <= data.len() as u64,
        "{what}: bytes {off:#x}..{end:#x} are past the end of the file ({:#x} bytes)",
        data.len()
    );
    Ok(&data[off as usize..end as usize])
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// A NUL-terminated UTF-8 string at the start of `b`.
fn c_string(b: &[u8], what: &str) -> Result<String> {
    let n = b
        .iter()
        .position(|&c| c == 0)
        .ok_or_else(|| anyhow!("{what}: string is not NUL-terminated"))?;
    let s = std::str::from_utf8(&b[..n]).with_context(|| format!("{what}: not UTF-8"))?;
    Ok(s.to_string())
}

#[derive(Clone, Copy)]
struct Phdr {
    p_type: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

/// Parses the program headers and dynamic section of an ELF64 little-endian executable or
/// shared object held in memory.
pub fn parse_elf(data: &[u8]) -> Result<ElfDeps> {
    ensure!(
        data.len() >= 4 && data[..4] == *b"\x7fELF",
        "not an ELF file (no \\x7fELF magic)"
    );
    ensure!(
        data.len() >= 64,
        "truncated ELF header ({} bytes)",
        data.len()
    );
    ensure!(data[4] == 2, "not a 64-bit ELF file (class {})", data[4]);
    ensure!(
        data[5] == 1,
        "not a little-endian ELF file (data {})",
        data[5]
    );
    let elf_type = le_u16(data, 16);
    ensure!(
        elf_type == 2 || elf_type == 3,
        "not an executable or shared object (e_type {elf_type})"
    );
    let machine = le_u16(data, 18);
    let phoff = le_u64(data, 32);
    let shoff = le_u64(data, 40);
    let phentsize = le_u16(data, 54) as u64;
    let mut phnum = le_u16(data, 56) as u64;
    if phnum == 0xffff {
        // PN_XNUM: the real count is in section header 0's sh_info.
        ensure!(
            shoff != 0,
            "PN_XNUM program header count without section headers"
        );
        let sh0 = bytes_at(data, shoff, 64, "section header 0 (PN_XNUM)")?;
        phnum = le_u32(sh0, 44) as u64;
    }
    let mut phdrs = Vec::new();
    if phnum > 0 {
        ensure!(
            phentsize >= 56,
            "program header entries of {phentsize} bytes (need 56)"
        );
        let total = phnum
            .checked_mul(phentsize)
            .ok_or_else(|| anyhow!("program header table size overflows"))?;
        let table = bytes_at(data, phoff, total, "program header table")?;
        for i in 0..phnum as usize {
            let h = &table[i * phentsize as usize..][..56];
            phdrs.push(Phdr {
                p_type: le_u32(h, 0),
                offset: le_u64(h, 8),
                vaddr: le_u64(h, 16),
                filesz: le_u64(h, 32),
            });
        }
    }

    let mut out = ElfDeps {
        machine,
        elf_type,
        ..Default::default()
    };
    if let Some(h) = phdrs.iter().find(|h| h.p_type == PT_INTERP) {
        let b = bytes_at(data, h.offset, h.filesz, "PT_INTERP")?;
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        let s = std::str::from_utf8(&b[..end]).context("PT_INTERP: not UTF-8")?;
        ensure!(!s.is_empty(), "PT_INTERP is empty");
        out.interp = Some(s.to_string());
    }
    let Some(dynh) = phdrs.iter().find(|h| h.p_type == PT_DYNAMIC) else {
        return Ok(out);
    };
    out.dynamic = true;
    let dynamic = bytes_at(data, dynh.offset, dynh.filesz, "PT_DYNAMIC")?;
    let (mut strtab, mut strsz) = (None, None);
    let (mut needed, mut soname, mut rpath, mut runpath) = (Vec::new(), None, None, None);
    let mut terminated = false;
    for e in dynamic.chunks_exact(16) {
        let tag = le_u64(e, 0) as i64;
        let val = le_u64(e, 8);
        match tag {
            DT_NULL => {
                terminated = true;
                break;
            }
            DT_NEEDED => needed.push(val),
            DT_STRTAB => strtab = Some(val),
            DT_STRSZ => strsz = Some(val),
            DT_SONAME => soname = Some(val),
            DT_RPATH => rpath = Some(val),
            DT_RUNPATH => runpath = Some(val),
            _ => {}
        }
    }
    ensure!(terminated, "PT_DYNAMIC has no DT_NULL terminator");
    if needed.is_empty() && soname.is_none() && rpath.is_none() && runpath.is_none() {
        return Ok(out);
    }
    let vaddr = strtab.ok_or_else(|| anyhow!("PT_DYNAMIC has strings but no DT_STRTAB"))?;
    let load = phdrs
        .iter()
        .find(|h| h.p_type == PT_LOAD && vaddr >= h.vaddr && vaddr - h.vaddr < h.filesz)
        .ok_or_else(|| anyhow!("DT_STRTAB {vaddr:#x} is in no PT_LOAD segment's file bytes"))?;
    let off = load
        .offset
        .checked_add(vaddr - load.vaddr)
        .ok_or_else(|| anyhow!("DT_STRTAB offset overflows"))?;
    // The table ends at DT_STRSZ, and at the end of its segment's file bytes.
    let seg_left = load.filesz - (vaddr - load.vaddr);
    let len = strsz.map_or(seg_left, |s| s.min(seg_left));
    let table = bytes_at(data, off, len, "DT_STRTAB")?;
    let string = |i: u64, what: &str| -> Result<String> {
        let b = table
            .get(i as usize..)
            .filter(|_| i <= table.len() as u64)
            .ok_or_else(|| anyhow!("{what}: string offset {i:#x} past the string table"))?;
        c_string(b, what)
    };
    for i in needed {
        let s = string(i, "DT_NEEDED")?;
        ensure!(!s.is_empty(), "DT_NEEDED is empty");
        out.needed.push(s);
    }
    out.soname = soname.map(|i| string(i, "DT_SONAME")).transpose()?;
    let split = |s: String| -> Vec<String> {
        s.split(':')
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    };
    out.rpath = rpath
        .map(|i| string(i, "DT_RPATH"))
        .transpose()?
        .map(split)
        .unwrap_or_default();
    out.runpath = runpath
        .map(|i| string(i, "DT_RUNPATH"))
        .transpose()?
        .map(split)
        .unwrap_or_default();
    Ok(out)
}

/// The first 64 bytes say ELF64 little-endian for `machine`.
fn header_matches(path: &Path, machine: u16) -> bool {
    let mut h = [0u8; 64];
    let ok = fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut h))
        .is_ok();
    ok && h[..4] == *b"\x7fELF" && h[4] == 2 && h[5] == 1 && le_u16(&h, 18) == machine
}

// ---------------------------------------------------------------------------------------------
// Paths

/// Path components, without empty ones and `.`; `..` is kept.
fn comps(p: &str) -> Vec<String> {
    p.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
        .collect()
}

fn join(cur: &[String], c: &str) -> String {
    if cur.is_empty() {
        c.to_string()
    } else {
        format!("{}/{c}", cur.join("/"))
    }
}

fn read_link_str(root: &Path, rel: &str) -> Result<String> {
    let t = fs::read_link(root.join(rel)).with_context(|| format!("reading symlink /{rel}"))?;
    t.to_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("symlink /{rel} has a non-UTF-8 target"))
}

/// The canonical path (no leading `/`, no symlinks) of `path` inside `root`; absolute symlink
/// targets are taken inside `root`. `""` is the root itself.
pub fn host_realpath(root: &Path, path: &str) -> Result<String> {
    let mut queue: VecDeque<String> = comps(path).into();
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = queue.pop_front() {
        if c == ".." {
            cur.pop();
            continue;
        }
        let q = join(&cur, &c);
        let md = fs::symlink_metadata(root.join(&q)).with_context(|| format!("/{q}"))?;
        if md.file_type().is_symlink() {
            hops += 1;
            ensure!(
                hops <= MAX_SYMLINKS,
                "too many levels of symbolic links in {path}"
            );
            let t = read_link_str(root, &q)?;
            if t.starts_with('/') {
                cur.clear();
            }
            for x in comps(&t).into_iter().rev() {
                queue.push_front(x);
            }
        } else {
            ensure!(queue.is_empty() || md.is_dir(), "/{q} is not a directory");
            cur.push(c);
        }
    }
    Ok(cur.join("/"))
}

/// Finds a program by name in [`PROGRAM_DIRS`] under `root`: the first `<dir>/<name>` that
/// resolves to an executable regular file, as an absolute path (e.g. `/usr/sbin/resize2fs`).
pub fn find_program(root: &Path, name: &str) -> Option<String> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    PROGRAM_DIRS.iter().find_map(|d| {
        let cand = format!("{d}/{name}");
        let real = host_realpath(root, &cand).ok()?;
        let md = fs::metadata(root.join(&real)).ok()?;
        (md.is_file() && md.permissions().mode() & 0o111 != 0).then_some(cand)
    })
}

// ---------------------------------------------------------------------------------------------
// The set

/// One initramfs entry: `(path, contents, mode)` as [`InitramfsSpec::extra_files`]
/// (crate::InitramfsSpec) takes it. `path` has no leading `/`; `mode` has the file-type bits
/// (`0o100000` regular file, `0o120000` symlink whose target is `data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolFile {
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

impl ToolFile {
    /// Whether this is a symlink (its `data` is the target).
    pub fn is_symlink(&self) -> bool {
        self.mode & 0o170000 == S_IFLNK
    }
    /// The tuple for `InitramfsSpec::extra_files`.
    pub fn into_extra(self) -> (String, Vec<u8>, u32) {
        (self.path, self.data, self.mode)
    }
}

/// One program added to a [`ToolSet`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgramReport {
    /// As requested (name or path).
    pub request: String,
    /// Where it is found in the image (absolute), e.g. `/usr/sbin/resize2fs`.
    pub path: String,
    /// Canonical path of the binary in the image (absolute).
    pub binary: String,
    /// Canonical paths (absolute) of the loader and every library of its closure, sorted.
    pub libraries: Vec<String>,
    /// Bytes of the binary and its closure (shared libraries counted for each program).
    pub bytes: u64,
    /// Statically linked.
    pub is_static: bool,
}

/// What [`ToolSet::add_busybox`] linked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BusyboxReport {
    /// Canonical path of busybox in the image (absolute).
    pub binary: String,
    /// Applet links made (absolute paths), `sh` included.
    pub links: Vec<String>,
    /// Applets not linked, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// The result of [`ToolSet::finish`].
#[derive(Debug, Clone)]
pub struct ToolBundle {
    /// Files and symlinks, sorted by path.
    pub files: Vec<ToolFile>,
    /// Programs in the order added (busybox included when requested).
    pub programs: Vec<ProgramReport>,
    /// Applet links, when busybox was requested.
    pub busybox: Option<BusyboxReport>,
    /// Bytes of regular files in `files`.
    pub total_bytes: u64,
}

impl ToolBundle {
    /// The entries for `InitramfsSpec::extra_files`.
    pub fn extra_files(&self) -> Vec<(String, Vec<u8>, u32)> {
        self.files
            .iter()
            .cloned()
            .map(ToolFile::into_extra)
            .collect()
    }

    /// The entries for `InitramfsSpec::extra_files`, without copying.
    pub fn into_extra_files(self) -> Vec<(String, Vec<u8>, u32)> {
        self.files.into_iter().map(ToolFile::into_extra).collect()
    }
}

#[derive(Debug, Clone)]
enum Node {
    /// A directory made by the initramfs builder.
    ImageDir,
    /// A file made by the initramfs builder.
    ImageFile,
    /// A directory holding our files (created by the builder as a parent).
    Dir,
    File {
        data: Arc<Vec<u8>>,
        perm: u32,
    },
    Symlink(String),
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Node::ImageDir => "a directory of sysclone's image",
            Node::ImageFile => "a file of sysclone's image",
            Node::Dir => "a directory",
            Node::File { .. } => "a file",
            Node::Symlink(_) => "a symlink",
        })
    }
}

/// Programs with their shared-library closure, collected from a host tree (`/` normally) into
/// a virtual tree that becomes initramfs entries.
#[derive(Debug, Clone)]
pub struct ToolSet {
    root: std::path::PathBuf,
    nodes: BTreeMap<String, Node>,
    programs: Vec<ProgramReport>,
    busybox: Option<(String, Vec<String>)>,
}

impl ToolSet {
    /// An empty set reading from `root`.
    pub fn new(root: &Path) -> ToolSet {
        let mut nodes = BTreeMap::new();
        for d in IMAGE_DIRS {
            nodes.insert(d.to_string(), Node::ImageDir);
        }
        for f in IMAGE_FILES {
            nodes.insert(f.to_string(), Node::ImageFile);
        }
        ToolSet {
            root: root.to_path_buf(),
            nodes,
            programs: Vec::new(),
            busybox: None,
        }
    }

    /// Programs added so far.
    pub fn programs(&self) -> &[ProgramReport] {
        &self.programs
    }

    /// Adds a program (a name looked up in [`PROGRAM_DIRS`], or a path) with its loader and
    /// libraries. On error nothing is added.
    pub fn add_program(&mut self, program: impl AsRef<Path>) -> Result<ProgramReport> {
        let request = program
            .as_ref()
            .to_str()
            .ok_or_else(|| anyhow!("program {:?}: not UTF-8", program.as_ref()))?
            .to_string();
        let path = if !request.contains('/') {
            find_program(&self.root, &request).ok_or_else(|| {
                anyhow!(
                    "program {request} not found in {} (under {})",
                    PROGRAM_DIRS.join(":"),
                    self.root.display()
                )
            })?
        } else if request.starts_with('/') {
            request.clone()
        } else {
            ensure!(
                self.root == Path::new("/"),
                "program {request}: a relative path needs the host root /"
            );
            let cwd = std::env::current_dir().context("current directory")?;
            let abs = cwd.join(&request);
            abs.to_str()
                .ok_or_else(|| anyhow!("program {request}: not UTF-8"))?
                .to_string()
        };
        let name = comps(&path).pop().unwrap_or_default();
        ensure!(
            !RESERVED_NAMES.contains(&name.as_str()),
            "program {request}: {name} is sysclone itself in the image"
        );
        let snapshot = self.nodes.clone();
        match self.add_closure(&request, &path) {
            Ok(r) => {
                self.programs.push(r.clone());
                Ok(r)
            }
            Err(e) => {
                self.nodes = snapshot;
                Err(e.context(format!("adding program {request}")))
            }
        }
    }

    /// Adds busybox (normally [`DEFAULT_BUSYBOX`]) with links `sh` and `applets` next to it,
    /// made by [`finish`](Self::finish). An applet is not linked when its name is that of a
    /// program added with [`add_program`](Self::add_program) (before or after), `init` or
    /// `modprobe`, or when a file of that name is already next to busybox. `/bin/sh` and
    /// `/bin/busybox` resolve in the image.
    pub fn add_busybox(
        &mut self,
        busybox: impl AsRef<Path>,
        applets: &[&str],
    ) -> Result<ProgramReport> {
        ensure!(self.busybox.is_none(), "busybox added twice");
        let r = self.add_program(busybox)?;
        let mut names: Vec<String> = vec!["sh".to_string()];
        for a in applets {
            ensure!(
                !a.is_empty() && !a.contains('/') && *a != "." && *a != "..",
                "bad applet name {a:?}"
            );
            if !names.iter().any(|n| n == a) {
                names.push(a.to_string());
            }
        }
        self.busybox = Some((r.binary.clone(), names));
        Ok(r)
    }

    fn add_closure(&mut self, request: &str, path: &str) -> Result<ProgramReport> {
        let binary = self.place(comps(path), 0)?;
        let mut seen = BTreeSet::from([binary.clone()]);
        let mut queue = VecDeque::from([binary.clone()]);
        let mut machine = None;
        let mut is_static = false;
        while let Some(obj) = queue.pop_front() {
            let data = self.file_data(&obj)?;
            let elf = parse_elf(&data).with_context(|| format!("parsing ELF /{obj}"))?;
            let machine = *machine.get_or_insert_with(|| {
                is_static = elf.is_static();
                elf.machine
            });
            let mut deps = Vec::new();
            if let Some(i) = &elf.interp {
                ensure!(i.starts_with('/'), "/{obj}: relative PT_INTERP {i}");
                let c = self
                    .place(comps(i), 0)
                    .with_context(|| format!("dynamic loader {i} of /{obj}"))?;
                deps.push(c);
            }
            for soname in &elf.needed {
                let p = self.find_library(soname, &obj, &elf, machine)?;
                let c = self
                    .place(comps(&p), 0)
                    .with_context(|| format!("library {p} (needed by /{obj})"))?;
                deps.push(c);
            }
            for d in deps {
                if seen.insert(d.clone()) {
                    queue.push_back(d);
                }
            }
        }
        let mut bytes = 0;
        for p in &seen {
            bytes += self.file_data(p)?.len() as u64;
        }
        seen.remove(&binary);
        Ok(ProgramReport {
            request: request.to_string(),
            path: format!("/{}", comps(path).join("/")),
            binary: format!("/{binary}"),
            libraries: seen.into_iter().map(|p| format!("/{p}")).collect(),
            bytes,
            is_static,
        })
    }

    fn file_data(&self, p: &str) -> Result<Arc<Vec<u8>>> {
        match self.nodes.get(p) {
            Some(Node::File { data, .. }) => Ok(data.clone()),
            _ => bail!("internal: /{p} is not a file of the set"),
        }
    }

    /// The path (in the host tree) of the library `soname` needed by the object at canonical
    /// path `obj`.
    fn find_library(&self, soname: &str, obj: &str, elf: &ElfDeps, machine: u16) -> Result<String> {
        if soname.contains('/') {
            ensure!(
                soname.starts_with('/'),
                "library {soname} (needed by /{obj}): relative paths are not supported"
            );
            return Ok(soname.to_string());
        }
        let origin = match obj.rsplit_once('/') {
            Some((d, _)) => format!("/{d}"),
            None => String::new(),
        };
        let mut dirs: Vec<String> = Vec::new();
        let own = if elf.runpath.is_empty() {
            &elf.rpath
        } else {
            &elf.runpath
        };
        for d in own {
            let d = d.replace("${ORIGIN}", &origin).replace("$ORIGIN", &origin);
            // $LIB, $PLATFORM and relative entries are not expanded.
            if d.starts_with('/') && !d.contains('$') {
                dirs.push(d);
            }
        }
        dirs.extend(LIBRARY_DIRS.iter().map(|d| d.to_string()));
        for d in &dirs {
            let cand = format!("{}/{soname}", d.trim_end_matches('/'));
            let Ok(real) = host_realpath(&self.root, &cand) else {
                continue;
            };
            let full = self.root.join(&real);
            if fs::metadata(&full).is_ok_and(|m| m.is_file()) && header_matches(&full, machine) {
                return Ok(cand);
            }
        }
        bail!(
            "library {soname} (needed by /{obj}) not found in {}",
            dirs.join(":")
        )
    }

    /// Makes the host path `parts` resolve in the image as on the host: copies the symlinks on
    /// the way and the file at the end. Returns the file's canonical path (no leading `/`).
    fn place(&mut self, parts: Vec<String>, depth: u32) -> Result<String> {
        let shown = format!("/{}", parts.join("/"));
        ensure!(
            depth <= MAX_SYMLINKS,
            "too many levels of symbolic links at {shown}"
        );
        let mut cur: Vec<String> = Vec::new();
        for (i, c) in parts.iter().enumerate() {
            if c == ".." {
                cur.pop();
                continue;
            }
            let last = i + 1 == parts.len();
            let rest = &parts[i + 1..];
            let q = join(&cur, c);
            let md = fs::symlink_metadata(self.root.join(&q))
                .with_context(|| format!("/{q} (resolving {shown})"))?;
            if md.file_type().is_symlink() {
                let target = read_link_str(&self.root, &q)?;
                match self.nodes.get(&q) {
                    None => {
                        self.nodes.insert(q.clone(), Node::Symlink(target.clone()));
                    }
                    Some(Node::Symlink(t)) if *t == target => {}
                    Some(Node::ImageDir) => {
                        // The image has a real directory where the host has a symlink: link
                        // the one child needed to its canonical place.
                        ensure!(!last, "/{q} is a directory of sysclone's image");
                        let next = &rest[0];
                        ensure!(next != "..", "{shown}: '..' after /{q} is not supported");
                        let real = host_realpath(&self.root, &q)?;
                        let child = format!("{q}/{next}");
                        let child_target = if real.is_empty() {
                            format!("/{next}")
                        } else {
                            format!("/{real}/{next}")
                        };
                        match self.nodes.get(&child) {
                            None => {
                                self.nodes
                                    .insert(child.clone(), Node::Symlink(child_target.clone()));
                            }
                            Some(Node::Symlink(t)) if *t == child_target => {}
                            Some(n) => bail!(
                                "/{child} is {n} in the image; cannot link it to {child_target}"
                            ),
                        }
                        let mut np = comps(&child_target);
                        np.extend(rest[1..].iter().cloned());
                        return self.place(np, depth + 1);
                    }
                    Some(n) => bail!("/{q} is a symlink on the host but {n} in the image"),
                }
                let mut np = if target.starts_with('/') {
                    Vec::new()
                } else {
                    cur.clone()
                };
                np.extend(comps(&target));
                np.extend(rest.iter().cloned());
                return self.place(np, depth + 1);
            } else if md.is_dir() {
                ensure!(!last, "{shown} is a directory, not a program or library");
                match self.nodes.get(&q) {
                    None => {
                        self.nodes.insert(q.clone(), Node::Dir);
                    }
                    Some(Node::Dir | Node::ImageDir) => {}
                    Some(n) => bail!("/{q} is a directory on the host but {n} in the image"),
                }
                cur.push(c.clone());
            } else if md.is_file() {
                ensure!(last, "/{q} is not a directory (resolving {shown})");
                match self.nodes.get(&q) {
                    Some(Node::File { .. }) => {}
                    None => {
                        let data = fs::read(self.root.join(&q))
                            .with_context(|| format!("reading /{q}"))?;
                        let perm = md.permissions().mode() & 0o777;
                        self.nodes.insert(
                            q.clone(),
                            Node::File {
                                data: Arc::new(data),
                                perm,
                            },
                        );
                    }
                    Some(n) => bail!("/{q} would overwrite {n}"),
                }
                return Ok(q);
            } else {
                bail!("/{q} is not a regular file");
            }
        }
        bail!("{shown} names a directory")
    }

    /// Resolves `path` in the image being built; the canonical path and its node (`None` for
    /// the root).
    fn resolve_in_image(&self, path: &str) -> Option<(String, Option<&Node>)> {
        let mut queue: VecDeque<String> = comps(path).into();
        let mut cur: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = queue.pop_front() {
            if c == ".." {
                cur.pop();
                continue;
            }
            let q = join(&cur, &c);
            match self.nodes.get(&q)? {
                Node::Symlink(t) => {
                    hops += 1;
                    if hops > MAX_SYMLINKS {
                        return None;
                    }
                    if t.starts_with('/') {
                        cur.clear();
                    }
                    for x in comps(t).into_iter().rev() {
                        queue.push_front(x);
                    }
                }
                Node::File { .. } | Node::ImageFile if !queue.is_empty() => return None,
                _ => cur.push(c),
            }
        }
        let p = cur.join("/");
        let n = self.nodes.get(&p);
        Some((p, n))
    }

    /// Adds the merged-/usr links and busybox's applet links, checks that every symlink
    /// resolves, and returns the entries.
    pub fn finish(mut self) -> Result<ToolBundle> {
        for l in MERGED_USR_LINKS {
            if self.nodes.contains_key(*l) {
                continue;
            }
            let full = self.root.join(l);
            if !fs::symlink_metadata(&full).is_ok_and(|m| m.file_type().is_symlink()) {
                continue;
            }
            let Ok(real) = host_realpath(&self.root, l) else {
                continue;
            };
            if matches!(self.nodes.get(&real), Some(Node::Dir)) {
                let t = read_link_str(&self.root, l)?;
                self.nodes.insert(l.to_string(), Node::Symlink(t));
            }
        }

        // Where the image has a real directory for a host link (`sbin` -> `usr/sbin`), link the
        // programs found in the link's target directory, so `/sbin/e2fsck` works as on the host.
        for l in MERGED_USR_LINKS {
            if !matches!(self.nodes.get(*l), Some(Node::ImageDir)) {
                continue;
            }
            if !fs::symlink_metadata(self.root.join(l)).is_ok_and(|m| m.file_type().is_symlink()) {
                continue;
            }
            let Ok(real) = host_realpath(&self.root, l) else {
                continue;
            };
            for p in &self.programs {
                let rel = p.path.trim_start_matches('/');
                let Some((dir, name)) = rel.rsplit_once('/') else {
                    continue;
                };
                if host_realpath(&self.root, dir).ok().as_deref() != Some(real.as_str()) {
                    continue;
                }
                let at = format!("{l}/{name}");
                if !self.nodes.contains_key(&at) && !RESERVED_NAMES.contains(&name) {
                    self.nodes.insert(at, Node::Symlink(format!("/{rel}")));
                }
            }
        }

        let busybox = match self.busybox.take() {
            None => None,
            Some((binary, names)) => Some(self.link_applets(&binary, &names)?),
        };

        // Every symlink resolves; nothing sits under a symlink or a file.
        for (p, n) in &self.nodes {
            if let Node::Symlink(t) = n {
                ensure!(
                    self.resolve_in_image(p).is_some_and(|(_, n)| n.is_some()),
                    "internal: symlink /{p} -> {t} does not resolve in the image"
                );
            }
            if let Some((parent, _)) = p.rsplit_once('/') {
                ensure!(
                    matches!(self.nodes.get(parent), Some(Node::Dir | Node::ImageDir)),
                    "internal: parent of /{p} is not a directory of the set"
                );
            }
        }

        let mut files = Vec::new();
        let mut total_bytes = 0;
        for (p, n) in self.nodes {
            match n {
                Node::File { data, perm } => {
                    total_bytes += data.len() as u64;
                    let data = Arc::try_unwrap(data).unwrap_or_else(|a| (*a).clone());
                    files.push(ToolFile {
                        path: p,
                        data,
                        mode: S_IFREG | perm,
                    });
                }
                Node::Symlink(t) => files.push(ToolFile {
                    path: p,
                    data: t.into_bytes(),
                    mode: S_IFLNK | 0o777,
                }),
                _ => {}
            }
        }
        Ok(ToolBundle {
            files,
            programs: self.programs,
            busybox,
            total_bytes,
        })
    }

    fn link_applets(&mut self, binary: &str, names: &[String]) -> Result<BusyboxReport> {
        let canon = binary.trim_start_matches('/').to_string();
        let dir = canon
            .rsplit_once('/')
            .map(|(d, _)| d.to_string())
            .unwrap_or_default();
        let bb_name = canon.rsplit('/').next().unwrap_or("busybox").to_string();
        // Names of the other programs: as requested and as found.
        let mut taken = BTreeSet::new();
        for p in &self.programs {
            if p.binary == binary {
                continue;
            }
            for s in [&p.path, &p.binary] {
                if let Some(n) = s.rsplit('/').next() {
                    taken.insert(n.to_string());
                }
            }
        }
        let mut rep = BusyboxReport {
            binary: binary.to_string(),
            ..Default::default()
        };
        for a in names {
            let at = if dir.is_empty() {
                a.clone()
            } else {
                format!("{dir}/{a}")
            };
            let why = if RESERVED_NAMES.contains(&a.as_str()) {
                Some("is sysclone itself in the image".to_string())
            } else if taken.contains(a) {
                Some("is a program added as a tool".to_string())
            } else {
                self.nodes.get(&at).map(|n| format!("/{at} is already {n}"))
            };
            match why {
                Some(w) => rep.skipped.push((a.clone(), w)),
                None => {
                    self.nodes
                        .insert(at.clone(), Node::Symlink(bb_name.clone()));
                    rep.links.push(format!("/{at}"));
                }
            }
        }
        // /bin/sh and /bin/busybox for init's shell menu.
        for (name, target) in [("sh", "sh"), ("busybox", bb_name.as_str())] {
            if self
                .resolve_in_image(&format!("bin/{name}"))
                .is_some_and(|(_, n)| n.is_some())
            {
                continue;
            }
            if name == "sh" && rep.skipped.iter().any(|(a, _)| a == "sh") {
                continue; // another sh was asked for as a tool
            }
            let bindir = match self.resolve_in_image("bin") {
                Some((p, Some(Node::Dir | Node::ImageDir))) => p,
                Some((_, Some(_))) => bail!("/bin is not a directory in the image"),
                _ => {
                    self.nodes.insert("bin".into(), Node::Dir);
                    "bin".into()
                }
            };
            let at = format!("{bindir}/{name}");
            let t = if dir.is_empty() {
                format!("/{target}")
            } else {
                format!("/{dir}/{target}")
            };
            ensure!(
                !self.nodes.contains_key(&at),
                "/{at} is already in the image"
            );
            self.nodes.insert(at.clone(), Node::Symlink(t));
            rep.links.push(format!("/{at}"));
        }
        Ok(rep)
    }
}

/// The files for `programs` (names looked up in [`PROGRAM_DIRS`], or paths) and their
/// loader and shared-library closure, read from `root` (normally `/`), as entries for
/// `InitramfsSpec::extra_files`.
pub fn tool_closure<P: AsRef<Path>>(programs: &[P], root: &Path) -> Result<Vec<ToolFile>> {
    let mut set = ToolSet::new(root);
    for p in programs {
        set.add_program(p)?;
    }
    Ok(set.finish()?.files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::process::Command;

    /// Reads a host file a test needs, or fails saying which Debian package provides it.
    fn need(path: &str, package: &str) -> Vec<u8> {
        fs::read(path).unwrap_or_else(|e| {
            panic!("{path}: {e}; this test needs Debian's {package} (apt-get install {package})")
        })
    }

    // --- A synthetic ELF64 writer for fake trees.

    /// An ELF64 LE x86-64 object with one PT_LOAD covering the file (vaddr = offset + 0x400000),
    /// optional PT_INTERP and a PT_DYNAMIC with the given entries.
    fn fake_elf(
        machine: u16,
        interp: Option<&str>,
        needed: &[&str],
        runpath: Option<&str>,
    ) -> Vec<u8> {
        let base = 0x400000u64;
        let mut strtab = vec![0u8];
        let mut add = |s: &str| {
            let o = strtab.len() as u64;
            strtab.extend_from_slice(s.as_bytes());
            strtab.push(0);
            o
        };
        let mut dyns: Vec<(i64, u64)> = needed.iter().map(|n| (DT_NEEDED, add(n))).collect();
        if let Some(r) = runpath {
            dyns.push((DT_RUNPATH, add(r)));
        }
        let nph = if interp.is_some() { 3 } else { 2 };
        let phoff = 64u64;
        let interp_off = phoff + 56 * nph;
        let interp_bytes: Vec<u8> = interp
            .map(|s| [s.as_bytes(), b"\0"].concat())
            .unwrap_or_default();
        let strtab_off = interp_off + interp_bytes.len() as u64;
        let dyn_off = (strtab_off + strtab.len() as u64 + 7) & !7;
        dyns.push((DT_STRTAB, base + strtab_off));
        dyns.push((DT_STRSZ, strtab.len() as u64));
        dyns.push((DT_NULL, 0));
        let total = dyn_off + 16 * dyns.len() as u64;

        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&3u16.to_le_bytes());
        f[18..20].copy_from_slice(&machine.to_le_bytes());
        f[32..40].copy_from_slice(&phoff.to_le_bytes());
        f[52..54].copy_from_slice(&64u16.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&(nph as u16).to_le_bytes());
        let ph = |t: u32, off: u64, len: u64| {
            let mut h = vec![0u8; 56];
            h[0..4].copy_from_slice(&t.to_le_bytes());
            h[8..16].copy_from_slice(&off.to_le_bytes());
            h[16..24].copy_from_slice(&(base + off).to_le_bytes());
            h[24..32].copy_from_slice(&(base + off).to_le_bytes());
            h[32..40].copy_from_slice(&len.to_le_bytes());
            h[40..48].copy_from_slice(&len.to_le_bytes());
            h
        };
        f.extend(ph(PT_LOAD, 0, total));
        if interp.is_some() {
            f.extend(ph(PT_INTERP, interp_off, interp_bytes.len() as u64));
        }
        f.extend(ph(PT_DYNAMIC, dyn_off, 16 * dyns.len() as u64));
        f.extend(&interp_bytes);
        f.extend(&strtab);
        f.resize(dyn_off as usize, 0);
        for (t, v) in dyns {
            f.extend(t.to_le_bytes());
            f.extend(v.to_le_bytes());
        }
        assert_eq!(f.len() as u64, total);
        f
    }

    #[test]
    fn fake_elf_parses() {
        let e = fake_elf(
            62,
            Some("/lib64/ld.so"),
            &["liba.so.1", "libb.so.2"],
            Some("$ORIGIN/../lib"),
        );
        let d = parse_elf(&e).unwrap();
        assert_eq!(d.machine, 62);
        assert_eq!(d.interp.as_deref(), Some("/lib64/ld.so"));
        assert_eq!(d.needed, ["liba.so.1", "libb.so.2"]);
        assert_eq!(d.runpath, ["$ORIGIN/../lib"]);
        assert!(!d.is_static());
        let s = parse_elf(&fake_elf(62, None, &[], None)).unwrap();
        assert!(s.is_static() && s.dynamic);
    }

    #[test]
    fn host_binaries() {
        let r = parse_elf(&need("/usr/sbin/resize2fs", "e2fsprogs")).unwrap();
        assert_eq!(r.machine, 62);
        assert_eq!(r.interp.as_deref(), Some("/lib64/ld-linux-x86-64.so.2"));
        for l in [
            "libext2fs.so.2",
            "libcom_err.so.2",
            "libe2p.so.2",
            "libc.so.6",
        ] {
            assert!(r.needed.iter().any(|n| n == l), "{l} in {:?}", r.needed);
        }
        let b = parse_elf(&need("/bin/busybox", "busybox-static")).unwrap();
        assert!(
            b.is_static(),
            "/bin/busybox should be Debian's busybox-static: {b:?}"
        );
        let ls = parse_elf(&need("/usr/bin/ls", "coreutils")).unwrap();
        assert!(ls.interp.is_some());
        assert!(
            ls.needed.iter().any(|n| n == "libc.so.6"),
            "{:?}",
            ls.needed
        );
        let libc = host_realpath(Path::new("/"), "/lib/x86_64-linux-gnu/libc.so.6").unwrap();
        let c = parse_elf(&fs::read(format!("/{libc}")).unwrap()).unwrap();
        assert_eq!(c.soname.as_deref(), Some("libc.so.6"));
    }

    #[test]
    fn truncated_and_garbage_input_is_an_error() {
        let full = need("/usr/sbin/resize2fs", "e2fsprogs");
        let good = parse_elf(&full).unwrap();
        // The file bytes the parser needs end with PT_DYNAMIC (after PT_INTERP and the
        // string table in this binary): every shorter cut is an error, every longer one parses
        // the same. Every length up to 8 KiB and around that end, coarse steps elsewhere.
        let (phoff, phnum) = (le_u64(&full, 32) as usize, le_u16(&full, 56) as usize);
        let dyn_end = (0..phnum)
            .map(|i| &full[phoff + i * 56..][..56])
            .find(|h| le_u32(h, 0) == PT_DYNAMIC)
            .map(|h| (le_u64(h, 8) + le_u64(h, 32)) as usize)
            .unwrap();
        let mut lens: Vec<usize> = (0..8192.min(full.len())).collect();
        lens.extend((8192..full.len()).step_by(509));
        lens.extend(dyn_end.saturating_sub(300)..(dyn_end + 300).min(full.len()));
        for n in lens {
            match parse_elf(&full[..n]) {
                Ok(d) => {
                    assert!(n >= dyn_end, "a cut to {n} bytes (< {dyn_end}) parsed");
                    assert_eq!(d, good, "a cut to {n} bytes parsed differently");
                }
                Err(e) => assert!(
                    n < dyn_end,
                    "a cut to {n} bytes (>= {dyn_end}) failed: {e:#}"
                ),
            }
        }
        for g in [
            &b""[..],
            b"\x7fEL",
            b"\x7fELF",
            b"#!/bin/sh\necho hi\n",
            &[0u8; 64],
        ] {
            assert!(parse_elf(g).is_err());
        }
        // 32-bit and big-endian headers are refused.
        let mut h = full[..64].to_vec();
        h[4] = 1;
        assert!(format!("{:#}", parse_elf(&h).unwrap_err()).contains("64-bit"));
        let mut h = full.clone();
        h[5] = 2;
        assert!(parse_elf(&h).is_err());
        // Huge or overflowing header fields.
        let fake = fake_elf(62, Some("/ld"), &["libx.so"], None);
        for (at, val) in [(32usize, u64::MAX), (32, 1 << 40), (56, 0xffff), (54, 8)] {
            let mut e = fake.clone();
            let w = if at >= 52 { 2 } else { 8 };
            e[at..at + w].copy_from_slice(&val.to_le_bytes()[..w]);
            assert!(parse_elf(&e).is_err(), "field at {at} = {val:#x}");
        }
        // Random corruption of the first 4 KiB of a real binary and of a fake one.
        let mut seed = 0x9E3779B97F4A7C15u64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for base in [&full[..full.len().min(65536)], &fake[..]] {
            for _ in 0..3000 {
                let mut e = base.to_vec();
                for _ in 0..(1 + rnd() % 4) {
                    let i = (rnd() as usize) % e.len().min(4096);
                    e[i] = rnd() as u8;
                }
                let _ = parse_elf(&e);
            }
        }
    }

    #[test]
    fn string_table_bounds() {
        let mut e = fake_elf(62, None, &["liba.so.1"], None);
        // DT_NEEDED offset past the table.
        let n = e.len();
        let dyn0 = n - 16 * 4; // NEEDED, STRTAB, STRSZ, NULL
        e[dyn0 + 8..dyn0 + 16].copy_from_slice(&1000u64.to_le_bytes());
        assert!(format!("{:#}", parse_elf(&e).unwrap_err()).contains("DT_NEEDED"));
        // DT_STRTAB outside any PT_LOAD.
        let mut e = fake_elf(62, None, &["liba.so.1"], None);
        e[dyn0 + 24..dyn0 + 32].copy_from_slice(&0x10u64.to_le_bytes());
        assert!(format!("{:#}", parse_elf(&e).unwrap_err()).contains("DT_STRTAB"));
        // Unterminated string: DT_STRSZ cuts the name.
        let mut e = fake_elf(62, None, &["liba.so.1"], None);
        e[dyn0 + 40..dyn0 + 48].copy_from_slice(&4u64.to_le_bytes());
        assert!(format!("{:#}", parse_elf(&e).unwrap_err()).contains("NUL"));
        // No DT_NULL.
        let mut e = fake_elf(62, None, &["liba.so.1"], None);
        e[n - 16..n - 8].copy_from_slice(&0x7000_0000u64.to_le_bytes());
        assert!(format!("{:#}", parse_elf(&e).unwrap_err()).contains("DT_NULL"));
    }

    // --- Fake host trees.

    fn write(root: &Path, rel: &str, data: &[u8], mode: u32) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn link(root: &Path, rel: &str, target: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, p).unwrap();
    }

    /// A merged-/usr tree like Debian bookworm's.
    fn fake_root() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for (l, t) in [
            ("bin", "usr/bin"),
            ("sbin", "usr/sbin"),
            ("lib", "usr/lib"),
            ("lib64", "usr/lib64"),
        ] {
            fs::create_dir_all(r.join(t)).unwrap();
            link(r, l, t);
        }
        let ml = "usr/lib/x86_64-linux-gnu";
        write(
            r,
            &format!("{ml}/ld-linux-x86-64.so.2"),
            &fake_elf(62, None, &[], None),
            0o755,
        );
        link(
            r,
            "usr/lib64/ld-linux-x86-64.so.2",
            "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        );
        let interp = Some("/lib64/ld-linux-x86-64.so.2");
        write(
            r,
            &format!("{ml}/libc.so.6"),
            &fake_elf(62, interp, &["ld-linux-x86-64.so.2"], None),
            0o644,
        );
        write(
            r,
            &format!("{ml}/libfoo.so.1.2.3"),
            &fake_elf(62, None, &["libbar.so.0", "libc.so.6"], None),
            0o644,
        );
        link(r, &format!("{ml}/libfoo.so.1"), "libfoo.so.1.2.3");
        // A wrong-architecture libbar comes first in the search order and is skipped.
        write(
            r,
            &format!("{ml}/libbar.so.0"),
            &fake_elf(183, None, &[], None),
            0o644,
        );
        write(
            r,
            "usr/lib/libbar.so.0",
            &fake_elf(62, None, &["libc.so.6"], None),
            0o644,
        );
        write(
            r,
            "usr/sbin/prog",
            &fake_elf(62, interp, &["libfoo.so.1", "libc.so.6"], None),
            0o755,
        );
        link(r, "usr/sbin/prog.alias", "prog");
        // $ORIGIN runpath.
        write(
            r,
            "opt/app/lib/libpriv.so",
            &fake_elf(62, None, &["libc.so.6"], None),
            0o644,
        );
        write(
            r,
            "opt/app/bin/app",
            &fake_elf(62, interp, &["libpriv.so"], Some("$ORIGIN/../lib")),
            0o755,
        );
        write(r, "usr/bin/static", &fake_elf(62, None, &[], None), 0o755);
        write(r, "usr/bin/busybox", &fake_elf(62, None, &[], None), 0o755);
        write(
            r,
            "usr/bin/broken",
            &fake_elf(62, interp, &["libmissing.so.9"], None),
            0o755,
        );
        write(r, "usr/bin/script", b"#!/bin/sh\n", 0o755);
        write(r, "usr/sbin/ls", &fake_elf(62, None, &[], None), 0o755);
        d
    }

    fn listing(files: &[ToolFile]) -> Vec<String> {
        files
            .iter()
            .map(|f| {
                if f.is_symlink() {
                    format!("{} -> {}", f.path, String::from_utf8_lossy(&f.data))
                } else {
                    format!("{} {:o}", f.path, f.mode)
                }
            })
            .collect()
    }

    #[test]
    fn closure_in_fake_tree() {
        let d = fake_root();
        let r = d.path();
        let files = tool_closure(&["prog"], r).unwrap();
        let ml = "usr/lib/x86_64-linux-gnu";
        assert_eq!(
            listing(&files),
            [
                // libbar was found as /lib/libbar.so.0 (after the wrong-architecture one).
                "lib/libbar.so.0 -> /usr/lib/libbar.so.0".to_string(),
                "lib/x86_64-linux-gnu -> /usr/lib/x86_64-linux-gnu".into(),
                "lib64 -> usr/lib64".into(),
                "sbin/prog -> /usr/sbin/prog".into(),
                "usr/lib/libbar.so.0 100644".into(),
                format!("{ml}/ld-linux-x86-64.so.2 100755"),
                format!("{ml}/libc.so.6 100644"),
                format!("{ml}/libfoo.so.1 -> libfoo.so.1.2.3"),
                format!("{ml}/libfoo.so.1.2.3 100644"),
                "usr/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
                    .into(),
                "usr/sbin/prog 100755".into(),
            ]
        );
        let by: BTreeMap<_, _> = files.iter().map(|f| (f.path.as_str(), f)).collect();
        assert_eq!(
            by["usr/sbin/prog"].data,
            fs::read(r.join("usr/sbin/prog")).unwrap()
        );

        // Through a symlink, and by path through /sbin (a real directory of the image).
        let mut set = ToolSet::new(r);
        let rep = set.add_program("/sbin/prog.alias").unwrap();
        assert_eq!(rep.path, "/sbin/prog.alias");
        assert_eq!(rep.binary, "/usr/sbin/prog");
        assert_eq!(rep.libraries.len(), 4, "{:?}", rep.libraries);
        assert!(!rep.is_static);
        let app = set.add_program("/opt/app/bin/app").unwrap();
        assert!(app
            .libraries
            .contains(&"/opt/app/lib/libpriv.so".to_string()));
        let st = set.add_program("static").unwrap();
        assert!(st.is_static && st.libraries.is_empty());
        let b = set.finish().unwrap();
        let l = listing(&b.files);
        for want in [
            "sbin/prog.alias -> /usr/sbin/prog.alias",
            "usr/sbin/prog.alias -> prog",
            "bin -> usr/bin",
            "usr/bin/static 100755",
            "opt/app/lib/libpriv.so 100644",
        ] {
            assert!(l.iter().any(|x| x == want), "{want} missing from {l:#?}");
        }
        let fsize = |p: &str| fs::metadata(r.join(p)).unwrap().len();
        assert_eq!(
            b.total_bytes,
            b.files
                .iter()
                .filter(|f| !f.is_symlink())
                .map(|f| f.data.len() as u64)
                .sum::<u64>()
        );
        assert_eq!(st.bytes, fsize("usr/bin/static"));
    }

    #[test]
    fn errors_name_the_culprit() {
        let d = fake_root();
        let r = d.path();
        let e = format!("{:#}", tool_closure(&["broken"], r).unwrap_err());
        assert!(e.contains("libmissing.so.9") && e.contains("broken"), "{e}");
        let e = format!("{:#}", tool_closure(&["nosuchprog"], r).unwrap_err());
        assert!(e.contains("nosuchprog") && e.contains("not found"), "{e}");
        let e = format!("{:#}", tool_closure(&["script"], r).unwrap_err());
        assert!(e.contains("script") && e.contains("not an ELF"), "{e}");
        let e = format!("{:#}", tool_closure(&["/usr/bin/nothere"], r).unwrap_err());
        assert!(e.contains("nothere"), "{e}");
        let e = format!("{:#}", tool_closure(&["modprobe"], r).unwrap_err());
        assert!(e.contains("modprobe"), "{e}");
        // A failed program leaves nothing behind.
        let mut set = ToolSet::new(r);
        assert!(set.add_program("broken").is_err());
        set.add_program("static").unwrap();
        let l = listing(&set.finish().unwrap().files);
        assert_eq!(l, ["bin -> usr/bin", "usr/bin/static 100755"]);
    }

    #[test]
    fn busybox_links_avoid_tools() {
        let d = fake_root();
        let r = d.path();
        let mut set = ToolSet::new(r);
        set.add_busybox("/bin/busybox", &["ls", "cat", "modprobe", "sh"])
            .unwrap();
        set.add_program("ls").unwrap(); // /usr/sbin/ls, after busybox
        let b = set.finish().unwrap();
        let bb = b.busybox.as_ref().unwrap();
        assert_eq!(bb.binary, "/usr/bin/busybox");
        assert_eq!(bb.links, ["/usr/bin/sh", "/usr/bin/cat"]);
        let skipped: Vec<&str> = bb.skipped.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(skipped, ["ls", "modprobe"]);
        let l = listing(&b.files);
        for want in [
            "bin -> usr/bin",
            "usr/bin/sh -> busybox",
            "usr/bin/cat -> busybox",
            "usr/sbin/ls 100755",
        ] {
            assert!(l.iter().any(|x| x == want), "{want} missing from {l:#?}");
        }
        assert!(!l.iter().any(|x| x.starts_with("usr/bin/ls")));
    }

    // --- The real thing: an initramfs with host tools, unpacked and run in a chroot.

    fn run_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
        let o = Command::new("chroot")
            .arg(dir)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .expect("chroot(8) (coreutils) must be installed");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    #[test]
    fn tools_run_in_unpacked_initramfs() {
        need("/usr/sbin/resize2fs", "e2fsprogs");
        need("/bin/busybox", "busybox-static");
        need("/usr/bin/ntfsfix", "ntfs-3g");
        assert!(
            euid_is_root(),
            "this test runs programs with chroot(8) and must run as root"
        );
        let d = tempfile::tempdir().unwrap();
        let mut set = ToolSet::new(Path::new("/"));
        for t in DEFAULT_TOOLS {
            set.add_program(t).unwrap_or_else(|e| panic!("{t}: {e:#}"));
        }
        set.add_busybox(DEFAULT_BUSYBOX, BUSYBOX_APPLETS).unwrap();
        let bundle = set.finish().unwrap();
        for p in &bundle.programs {
            eprintln!(
                "{} -> {} ({} libraries, {} bytes)",
                p.request,
                p.path,
                p.libraries.len(),
                p.bytes
            );
        }
        eprintln!(
            "{} entries, {} bytes",
            bundle.files.len(),
            bundle.total_bytes
        );

        let init = d.path().join("init-bin");
        fs::write(&init, b"fake init").unwrap();
        let spec = crate::InitramfsSpec {
            init_binary: init,
            kernel_version: "9.9.9-test".into(),
            modules_dir: d.path().join("none"),
            modules: vec![],
            extra_files: bundle.extra_files(),
            ..Default::default()
        };
        let img = d.path().join("initramfs.img");
        let rep = crate::build_initramfs(&spec, &img, crate::Compression::Gzip).unwrap();
        eprintln!(
            "initramfs {} bytes gzip, {} cpio",
            rep.compressed_size, rep.uncompressed_size
        );

        let root = d.path().join("root");
        fs::create_dir(&root).unwrap();
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!("gzip -dc '{}' | cpio -idm --quiet", img.display()))
            .current_dir(&root)
            .output()
            .expect("sh, gzip and cpio must be installed");
        assert!(
            o.status.success(),
            "cpio: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!root.join("etc/ld.so.cache").exists());

        // Each tool runs: the loader finds every library without ld.so.cache.
        let (_, _, err) = run_in(&root, &["/usr/sbin/resize2fs"]);
        assert!(err.contains("resize2fs") && err.contains("Usage"), "{err}");
        assert!(!err.contains("error while loading"), "{err}");
        for (cmd, want) in [
            (vec!["/sbin/e2fsck", "-V"], "e2fsck"),
            (vec!["tune2fs"], "tune2fs"),
            (vec!["ntfsresize", "--version"], "ntfsresize"),
            (vec!["ntfsfix", "--version"], "ntfsfix"),
            (vec!["mkswap", "--version"], "mkswap"),
        ] {
            let (_, out, err) = run_in(&root, &cmd);
            let all = format!("{out}{err}");
            assert!(
                all.contains(want) && !all.contains("error while loading"),
                "{cmd:?}: {all}"
            );
        }
        let (code, out, err) = run_in(&root, &["/bin/sh", "-c", "echo ok"]);
        assert_eq!((code, out.as_str()), (0, "ok\n"), "{err}");
        let (code, out, _) = run_in(&root, &["/bin/busybox", "--list"]);
        assert_eq!(code, 0);
        let list: BTreeSet<&str> = out.lines().collect();
        for a in BUSYBOX_APPLETS {
            assert!(list.contains(a), "busybox lacks applet {a}");
            let (code, _, err) = run_in(
                &root,
                &["/bin/sh", "-c", &format!("command -v {a} >/dev/null")],
            );
            assert_eq!(code, 0, "{a}: {err}");
        }
        let (code, out, err) = run_in(
            &root,
            &[
                "/bin/sh",
                "-c",
                "ls /usr/sbin | wc -l; cat /proc/version 2>/dev/null; echo done",
            ],
        );
        assert_eq!(code, 0, "{err}");
        assert!(out.ends_with("done\n"), "{out}");
        // modprobe is still sysclone.
        assert_eq!(
            fs::read_link(root.join("sbin/modprobe")).unwrap(),
            Path::new("/init")
        );
    }

    fn euid_is_root() -> bool {
        // /proc/self/status has "Uid: real effective saved fs".
        fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
            })
            .unwrap_or(false)
    }
}
