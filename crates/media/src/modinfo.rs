//! Kernel module metadata: the `.modinfo` section of a `.ko` file, `modules.builtin` and
//! `modules.builtin.modinfo`.
//!
//! The ELF parser is deliberately minimal: it understands ELF64 little-endian relocatable
//! objects (what x86-64 and arm64 kernels build), walks the section header table and returns the
//! bytes of the `.modinfo` section. Every offset read from the file is bounds-checked, so a
//! truncated or garbage file yields an error, never a panic.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// Soft dependencies of a module (`softdep=pre: a b post: c`).
///
/// Names are kept as written: they may be module names or aliases (e.g. `crypto-crc32c`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SoftDep {
    /// Modules (or aliases) to load before the module.
    pub pre: Vec<String>,
    /// Modules (or aliases) to load after the module.
    pub post: Vec<String>,
}

impl SoftDep {
    /// Parses the value of a `softdep=` field or the tail of a `modules.softdep` line:
    /// `pre: a b post: c`. Tokens before any `pre:`/`post:` marker are ignored (kmod does the
    /// same). Repeated markers accumulate.
    pub fn parse(value: &str) -> SoftDep {
        let mut sd = SoftDep::default();
        #[derive(Clone, Copy)]
        enum Mode {
            None,
            Pre,
            Post,
        }
        let mut mode = Mode::None;
        for tok in value.split_whitespace() {
            match tok {
                "pre:" => mode = Mode::Pre,
                "post:" => mode = Mode::Post,
                _ => match mode {
                    Mode::Pre => sd.pre.push(tok.to_string()),
                    Mode::Post => sd.post.push(tok.to_string()),
                    Mode::None => {}
                },
            }
        }
        sd
    }

    /// Appends another soft-dependency set, skipping duplicates.
    pub fn merge(&mut self, other: &SoftDep) {
        for p in &other.pre {
            if !self.pre.contains(p) {
                self.pre.push(p.clone());
            }
        }
        for p in &other.post {
            if !self.post.contains(p) {
                self.post.push(p.clone());
            }
        }
    }

    /// True when there is neither a pre nor a post soft dependency.
    pub fn is_empty(&self) -> bool {
        self.pre.is_empty() && self.post.is_empty()
    }

    /// Formats as `pre: a b post: c` (omitting an empty half), the format used in
    /// `modules.softdep`.
    pub fn to_line(&self) -> String {
        let mut s = String::new();
        if !self.pre.is_empty() {
            s.push_str("pre:");
            for p in &self.pre {
                s.push(' ');
                s.push_str(p);
            }
        }
        if !self.post.is_empty() {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str("post:");
            for p in &self.post {
                s.push(' ');
                s.push_str(p);
            }
        }
        s
    }
}

/// Parsed contents of a module's `.modinfo` section (or of one module's entries in
/// `modules.builtin.modinfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ModInfo {
    /// `name=` as recorded by modpost (absent in very old kernels and for built-in modules).
    pub name: Option<String>,
    /// `alias=` patterns (fnmatch syntax), in file order.
    pub aliases: Vec<String>,
    /// `depends=` module names (hard dependencies), in file order.
    pub depends: Vec<String>,
    /// Merged `softdep=` entries.
    pub softdep: SoftDep,
    /// `firmware=` file names, relative to the firmware search path.
    pub firmware: Vec<String>,
    /// `vermagic=` string, if any.
    pub vermagic: Option<String>,
    /// `license=`, if any.
    pub license: Option<String>,
    /// Every `key=value` pair in file order, including the ones above.
    pub fields: Vec<(String, String)>,
}

impl ModInfo {
    /// Parses a NUL-separated list of `key=value` strings (the raw `.modinfo` section). Empty
    /// strings (alignment padding) and strings without `=` are skipped; bytes that are not valid
    /// UTF-8 are replaced.
    pub fn parse(section: &[u8]) -> ModInfo {
        let mut mi = ModInfo::default();
        for raw in section.split(|&b| b == 0) {
            if raw.is_empty() {
                continue;
            }
            let s = String::from_utf8_lossy(raw);
            if let Some((k, v)) = s.split_once('=') {
                mi.add_field(k, v);
            }
        }
        mi
    }

    /// Records one `key=value` pair, updating the typed fields.
    pub fn add_field(&mut self, key: &str, value: &str) {
        match key {
            "name" => self.name = Some(value.to_string()),
            "alias" => self.aliases.push(value.to_string()),
            "depends" => {
                for d in value.split(',') {
                    let d = d.trim();
                    if !d.is_empty() {
                        let d = normalize_module_name(d);
                        if !self.depends.contains(&d) {
                            self.depends.push(d);
                        }
                    }
                }
            }
            "softdep" => {
                let sd = SoftDep::parse(value);
                self.softdep.merge(&sd);
            }
            "firmware" => self.firmware.push(value.to_string()),
            "vermagic" => self.vermagic = Some(value.to_string()),
            "license" => self.license = Some(value.to_string()),
            _ => {}
        }
        self.fields.push((key.to_string(), value.to_string()));
    }

    /// All values recorded for `key`, in file order.
    pub fn values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Normalises a module name the way kmod does: `-` becomes `_`.
pub fn normalize_module_name(name: &str) -> String {
    name.replace('-', "_")
}

/// Normalises an alias the way kmod does (`alias_normalize`): `-` becomes `_` except inside
/// `[...]` bracket expressions, which are copied verbatim.
pub fn normalize_alias(alias: &str) -> String {
    let mut out = String::with_capacity(alias.len());
    let mut chars = alias.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '[' => {
                out.push('[');
                // Copy up to and including the closing bracket. A `]` directly after `[`
                // (or after `[!`/`[^`) is a literal member.
                let mut first = true;
                for d in chars.by_ref() {
                    out.push(d);
                    if d == ']' && !first {
                        break;
                    }
                    if !(first && (d == '!' || d == '^')) {
                        first = false;
                    }
                }
            }
            '-' => out.push('_'),
            c => out.push(c),
        }
    }
    out
}

/// Returns the normalised module name for a module file path: basename, minus `.ko` and any
/// compression suffix (`.ko.xz`, `.ko.zst`, `.ko.gz`), `-` replaced by `_`.
pub fn module_name_from_path(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = [".ko.xz", ".ko.zst", ".ko.gz", ".ko"]
        .iter()
        .find_map(|suf| base.strip_suffix(suf))
        .unwrap_or(base);
    normalize_module_name(stem)
}

/// Compression detected from a module file's magic bytes.
fn compression_of(data: &[u8]) -> Option<&'static str> {
    crate::decompress::Packed::detect(data).map(|p| match p {
        crate::decompress::Packed::Xz => "xz",
        crate::decompress::Packed::Zstd => "zstd",
        crate::decompress::Packed::Gzip => "gzip",
    })
}

fn rd_u16(d: &[u8], off: usize) -> Option<u16> {
    let b = d.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

fn rd_u32(d: &[u8], off: usize) -> Option<u32> {
    let b = d.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn rd_u64(d: &[u8], off: usize) -> Option<u64> {
    let b = d.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

/// One ELF64 section header, the fields this module needs.
#[derive(Debug, Clone, Copy)]
struct SectionHeader {
    name: u32,
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
}

const SHT_NOBITS: u32 = 8;
const SHN_XINDEX: u16 = 0xFFFF;

/// Reads `len` bytes at `off`, refusing ranges that do not lie within `file_len`.
fn read_range<R: Read + Seek>(r: &mut R, file_len: u64, off: u64, len: u64) -> Result<Vec<u8>> {
    let end = off.checked_add(len).context("range end overflows")?;
    if end > file_len {
        bail!("range {off}..{end} lies beyond end of file ({file_len} bytes)");
    }
    let len = usize::try_from(len).context("range too large")?;
    let mut buf = vec![0u8; len];
    r.seek(SeekFrom::Start(off))?;
    r.read_exact(&mut buf)?;
    Ok(buf)
}

fn parse_section_header(table: &[u8], shentsize: u16, idx: u64) -> Result<SectionHeader> {
    let off = idx
        .checked_mul(u64::from(shentsize))
        .and_then(|o| usize::try_from(o).ok())
        .context("section header offset overflows")?;
    let get = || -> Option<SectionHeader> {
        Some(SectionHeader {
            name: rd_u32(table, off)?,
            kind: rd_u32(table, off.checked_add(4)?)?,
            offset: rd_u64(table, off.checked_add(24)?)?,
            size: rd_u64(table, off.checked_add(32)?)?,
            link: rd_u32(table, off.checked_add(40)?)?,
        })
    };
    get().with_context(|| format!("section header {idx} lies outside the section header table"))
}

fn read_section<R: Read + Seek>(r: &mut R, file_len: u64, sh: &SectionHeader) -> Result<Vec<u8>> {
    if sh.kind == SHT_NOBITS {
        return Ok(Vec::new());
    }
    read_range(r, file_len, sh.offset, sh.size)
}

/// Reads the section called `name` from an ELF64 little-endian file, or `None` if there is no
/// such section. Only the ELF header, the section header table, the section name table and the
/// wanted section are read. Errors on anything that is not a well-formed ELF64 LE file (bad
/// magic, wrong class/endianness, truncated headers, out-of-range offsets) and on xz/zstd/gzip
/// compressed data (unpack it first: [`crate::decompress::unpack`]).
pub fn read_elf_section<R: Read + Seek>(r: &mut R, name: &str) -> Result<Option<Vec<u8>>> {
    let file_len = r.seek(SeekFrom::End(0))?;
    let head = read_range(r, file_len, 0, file_len.min(64))?;
    if let Some(c) = compression_of(&head) {
        bail!("{c}-compressed data: unpack it before reading ELF sections");
    }
    if head.len() < 64 || &head[0..4] != b"\x7fELF" {
        bail!("not an ELF file (bad magic or shorter than an ELF header)");
    }
    if head[4] != 2 {
        bail!("not an ELF64 file (EI_CLASS={})", head[4]);
    }
    if head[5] != 1 {
        bail!("not a little-endian ELF file (EI_DATA={})", head[5]);
    }
    let shoff = rd_u64(&head, 0x28).context("truncated ELF header")?;
    let shentsize = rd_u16(&head, 0x3A).context("truncated ELF header")?;
    let mut shnum = u64::from(rd_u16(&head, 0x3C).context("truncated ELF header")?);
    let shstrndx_raw = rd_u16(&head, 0x3E).context("truncated ELF header")?;
    if shoff == 0 {
        bail!("ELF file has no section header table");
    }
    if shentsize < 64 {
        bail!("ELF section header entry size {shentsize} is smaller than 64");
    }
    let sh0_raw = read_range(r, file_len, shoff, 64).context("section header 0")?;
    let sh0 = parse_section_header(&sh0_raw, 64, 0)?;
    if shnum == 0 {
        // Extended numbering: the real count is in section 0's sh_size.
        shnum = sh0.size;
    }
    let shstrndx = if shstrndx_raw == SHN_XINDEX {
        u64::from(sh0.link)
    } else {
        u64::from(shstrndx_raw)
    };
    let table_len = shnum
        .checked_mul(u64::from(shentsize))
        .context("section header table size overflows")?;
    let table = read_range(r, file_len, shoff, table_len)
        .with_context(|| format!("section header table ({shnum} entries at offset {shoff})"))?;
    if shstrndx >= shnum {
        bail!("section name string table index {shstrndx} out of range ({shnum} sections)");
    }
    let strtab_sh = parse_section_header(&table, shentsize, shstrndx)?;
    let strtab = read_section(r, file_len, &strtab_sh).context("section name string table")?;
    for i in 0..shnum {
        let sh = parse_section_header(&table, shentsize, i)?;
        let noff = sh.name as usize;
        let Some(rest) = strtab.get(noff..) else {
            bail!("section {i} name offset {noff} outside string table");
        };
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        if &rest[..end] == name.as_bytes() {
            return read_section(r, file_len, &sh)
                .with_context(|| format!("section {name}"))
                .map(Some);
        }
    }
    Ok(None)
}

/// In-memory variant of [`read_elf_section`].
pub fn find_elf_section(data: &[u8], name: &str) -> Result<Option<Vec<u8>>> {
    read_elf_section(&mut Cursor::new(data), name)
}

/// Extracts and parses the `.modinfo` section of an in-memory `.ko` image (xz, zstd or gzip
/// compressed images are unpacked first).
pub fn modinfo_from_bytes(data: &[u8]) -> Result<ModInfo> {
    if compression_of(data).is_some() {
        let plain = crate::decompress::unpack(data.to_vec(), "module")?;
        return modinfo_from_bytes(&plain);
    }
    let sec = find_elf_section(data, ".modinfo")?.context("ELF file has no .modinfo section")?;
    Ok(ModInfo::parse(&sec))
}

/// Reads a module file and parses its `.modinfo` section (reading only the parts of the file
/// that are needed).
///
/// `.ko.xz`, `.ko.zst` and `.ko.gz` files (recognised by magic) are unpacked in memory first.
pub fn read_modinfo(path: &Path) -> Result<ModInfo> {
    let mut f =
        fs::File::open(path).with_context(|| format!("opening module {}", path.display()))?;
    let mut magic = [0u8; 6];
    let n = f.read(&mut magic).with_context(|| format!("reading module {}", path.display()))?;
    if compression_of(&magic[..n]).is_some() {
        let plain = crate::decompress::read_unpacked(path)?;
        let sec = find_elf_section(&plain, ".modinfo")
            .with_context(|| format!("parsing ELF sections of module {} (unpacked)", path.display()))?
            .with_context(|| format!("module {} has no .modinfo section", path.display()))?;
        return Ok(ModInfo::parse(&sec));
    }
    let sec = read_elf_section(&mut f, ".modinfo")
        .with_context(|| format!("parsing ELF sections of module {}", path.display()))?
        .with_context(|| format!("module {} has no .modinfo section", path.display()))?;
    Ok(ModInfo::parse(&sec))
}

/// Parses `modules.builtin` (one `kernel/.../name.ko` path per line) into normalised module
/// names.
pub fn parse_modules_builtin(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(module_name_from_path)
        .collect()
}

/// Parses `modules.builtin.modinfo`: NUL-separated `module.key=value` strings. Returns one
/// [`ModInfo`] per built-in module, keyed by normalised module name.
pub fn parse_builtin_modinfo(data: &[u8]) -> BTreeMap<String, ModInfo> {
    let mut out: BTreeMap<String, ModInfo> = BTreeMap::new();
    for raw in data.split(|&b| b == 0) {
        if raw.is_empty() {
            continue;
        }
        let s = String::from_utf8_lossy(raw);
        let Some((lhs, value)) = s.split_once('=') else {
            continue;
        };
        let Some((module, key)) = lhs.split_once('.') else {
            continue;
        };
        if module.is_empty() || key.is_empty() {
            continue;
        }
        out.entry(normalize_module_name(module))
            .or_default()
            .add_field(key, value);
    }
    out
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Builds minimal ELF64 LE relocatable files with a `.modinfo` section, for tests.

    /// Returns a tiny ELF64 image whose `.modinfo` section holds `fields` NUL-separated.
    pub fn fake_ko(fields: &[&str]) -> Vec<u8> {
        let mut modinfo = Vec::new();
        for f in fields {
            modinfo.extend_from_slice(f.as_bytes());
            modinfo.push(0);
        }
        let shstrtab = b"\0.modinfo\0.shstrtab\0.text\0".to_vec();
        let text = b"\xC3\xC3\xC3\xC3".to_vec();
        let mut out = vec![0u8; 64];
        let text_off = out.len();
        out.extend_from_slice(&text);
        let modinfo_off = out.len();
        out.extend_from_slice(&modinfo);
        let shstr_off = out.len();
        out.extend_from_slice(&shstrtab);
        while out.len() % 8 != 0 {
            out.push(0);
        }
        let shoff = out.len();
        // Section headers: null, .text, .modinfo, .shstrtab
        let sh = |name: u32, kind: u32, off: usize, size: usize| -> Vec<u8> {
            let mut h = vec![0u8; 64];
            h[0..4].copy_from_slice(&name.to_le_bytes());
            h[4..8].copy_from_slice(&kind.to_le_bytes());
            h[24..32].copy_from_slice(&(off as u64).to_le_bytes());
            h[32..40].copy_from_slice(&(size as u64).to_le_bytes());
            h[48..56].copy_from_slice(&1u64.to_le_bytes());
            h
        };
        out.extend(sh(0, 0, 0, 0));
        out.extend(sh(20, 1, text_off, text.len()));
        out.extend(sh(1, 1, modinfo_off, modinfo.len()));
        out.extend(sh(10, 3, shstr_off, shstrtab.len()));
        // ELF header
        out[0..4].copy_from_slice(b"\x7fELF");
        out[4] = 2; // ELFCLASS64
        out[5] = 1; // little endian
        out[6] = 1; // EV_CURRENT
        out[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
        out[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        out[20..24].copy_from_slice(&1u32.to_le_bytes());
        out[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        out[0x34..0x36].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        out[0x3A..0x3C].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
        out[0x3C..0x3E].copy_from_slice(&4u16.to_le_bytes()); // e_shnum
        out[0x3E..0x40].copy_from_slice(&3u16.to_le_bytes()); // e_shstrndx
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::fake_ko;
    use super::*;

    #[test]
    fn parses_fake_module() {
        let ko = fake_ko(&[
            "alias=pci:v*d*sv*sd*bc01sc08i02*",
            "alias=nvme-x",
            "depends=nvme-core,t10_pi",
            "softdep=pre: crypto-crc32c post: foo",
            "softdep=pre: bar",
            "firmware=a/b.bin",
            "firmware=c.bin",
            "name=nvme",
            "vermagic=6.1.0 SMP mod_unload",
            "license=GPL",
            "novalue",
        ]);
        let mi = modinfo_from_bytes(&ko).unwrap();
        assert_eq!(mi.name.as_deref(), Some("nvme"));
        assert_eq!(mi.aliases, vec!["pci:v*d*sv*sd*bc01sc08i02*", "nvme-x"]);
        assert_eq!(mi.depends, vec!["nvme_core", "t10_pi"]);
        assert_eq!(mi.softdep.pre, vec!["crypto-crc32c", "bar"]);
        assert_eq!(mi.softdep.post, vec!["foo"]);
        assert_eq!(mi.firmware, vec!["a/b.bin", "c.bin"]);
        assert_eq!(mi.license.as_deref(), Some("GPL"));
        assert_eq!(mi.values("alias").count(), 2);
    }

    #[test]
    fn empty_depends() {
        let mi = modinfo_from_bytes(&fake_ko(&["depends=", "name=x"])).unwrap();
        assert!(mi.depends.is_empty());
    }

    #[test]
    fn softdep_parse_and_format() {
        let sd = SoftDep::parse("junk pre: a b post: c pre: d");
        assert_eq!(sd.pre, vec!["a", "b", "d"]);
        assert_eq!(sd.post, vec!["c"]);
        assert_eq!(sd.to_line(), "pre: a b d post: c");
        assert_eq!(SoftDep::parse("post: x").to_line(), "post: x");
        assert!(SoftDep::parse("").is_empty());
    }

    #[test]
    fn names() {
        assert_eq!(
            module_name_from_path("kernel/fs/nls/nls-cp437.ko"),
            "nls_cp437"
        );
        assert_eq!(module_name_from_path("a/b/x-y.ko.zst"), "x_y");
        assert_eq!(module_name_from_path("x.ko.xz"), "x");
        assert_eq!(normalize_alias("crypto-crc32c"), "crypto_crc32c");
        assert_eq!(normalize_alias("a-[x-z]-b"), "a_[x-z]_b");
        assert_eq!(normalize_alias("a[]-]-b"), "a[]-]_b");
        assert_eq!(normalize_alias("a[!]-]-b"), "a[!]-]_b");
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        let ko = fake_ko(&["name=x", "alias=y"]);
        // Every truncation must fail cleanly (never panic). The full file succeeds.
        for len in 0..ko.len() {
            assert!(modinfo_from_bytes(&ko[..len]).is_err(), "len {len}");
        }
        assert!(modinfo_from_bytes(&ko).is_ok());
        // Garbage.
        assert!(modinfo_from_bytes(b"hello world").is_err());
        let mut g = vec![0xAAu8; 4096];
        g[0..4].copy_from_slice(b"\x7fELF");
        g[4] = 2;
        g[5] = 1;
        assert!(modinfo_from_bytes(&g).is_err());
        // Corrupt the section-header offset / string index / section offsets one byte at a time.
        for pos in [0x28usize, 0x29, 0x2F, 0x3A, 0x3C, 0x3E] {
            let mut c = ko.clone();
            c[pos] = 0xFF;
            let _ = modinfo_from_bytes(&c); // must not panic
        }
        let shoff = u64::from_le_bytes(ko[0x28..0x30].try_into().unwrap()) as usize;
        for i in shoff..ko.len() {
            let mut c = ko.clone();
            c[i] ^= 0xFF;
            let _ = modinfo_from_bytes(&c); // must not panic
        }
        // ELF32 / big endian rejected.
        let mut c = ko.clone();
        c[4] = 1;
        assert!(format!("{:#}", modinfo_from_bytes(&c).unwrap_err()).contains("ELF64"));
        let mut c = ko.clone();
        c[5] = 2;
        assert!(modinfo_from_bytes(&c).is_err());
    }

    #[test]
    fn compressed_modules_are_read() {
        use std::io::Write;
        let ko = testutil::fake_ko(&["name=foo", "alias=fs-foo", "depends=bar"]);
        let dir = tempfile::tempdir().unwrap();
        for (suffix, args) in [(".ko.xz", &["xz", "--check=crc32", "-c"][..]), (".ko.zst", &["zstd", "-q", "-c"][..]), (".ko.gz", &["gzip", "-n", "-c"][..])] {
            let mut c = std::process::Command::new(args[0])
                .args(&args[1..])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            c.stdin.take().unwrap().write_all(&ko).unwrap();
            let packed = c.wait_with_output().unwrap().stdout;
            let p = dir.path().join(format!("foo{suffix}"));
            std::fs::write(&p, &packed).unwrap();
            let mi = read_modinfo(&p).unwrap();
            assert_eq!(mi.aliases, vec!["fs-foo"], "{suffix}");
            assert_eq!(mi.depends, vec!["bar"], "{suffix}");
            assert_eq!(modinfo_from_bytes(&packed).unwrap(), mi);
            // The section reader itself wants plain ELF.
            assert!(format!("{:#}", find_elf_section(&packed, ".modinfo").unwrap_err()).contains("unpack"));
        }
        // Garbage behind the magic: an error naming the file.
        let p = dir.path().join("bad.ko.xz");
        std::fs::write(&p, [0xFD, b'7', b'z', b'X', b'Z', 0, 1, 2, 3]).unwrap();
        let e = format!("{:#}", read_modinfo(&p).unwrap_err());
        assert!(e.contains("bad.ko.xz"), "{e}");
    }

    #[test]
    fn missing_file_error_names_path() {
        let e = format!(
            "{:#}",
            read_modinfo(Path::new("/nonexistent/zz.ko")).unwrap_err()
        );
        assert!(e.contains("/nonexistent/zz.ko"), "{e}");
    }

    #[test]
    fn builtin_files() {
        let b = parse_modules_builtin("kernel/fs/ext4/ext4.ko\n\nkernel/lib/crc-t10dif.ko\n");
        assert_eq!(b, vec!["ext4", "crc_t10dif"]);
        let m = parse_builtin_modinfo(
            b"debugfs.alias=fs-debugfs\0debugfs.license=GPL\0x-y.file=a/x-y\0bad\0.k=v\0",
        );
        assert_eq!(m["debugfs"].aliases, vec!["fs-debugfs"]);
        assert!(m.contains_key("x_y"));
        assert_eq!(m.len(), 2);
    }
}
