//! UEFI variables through efivarfs (or any directory laid out the same way).
//!
//! A variable is the file `<Name>-<guid>`; its contents are the 4-byte little-endian
//! attributes followed by the data.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, ensure, Context, Result};
use nix::errno::Errno;
use nix::libc::c_long;
use serde::{Deserialize, Serialize};

use crate::guid::{format_guid, normalize_guid, parse_guid};
use crate::loadopt::LoadOption;
use crate::sys;

/// Default efivarfs mount point.
pub const DEFAULT_EFIVARS_DIR: &str = "/sys/firmware/efi/efivars";
/// `EFI_GLOBAL_VARIABLE` vendor GUID (BootOrder, Boot####, …).
pub const EFI_GLOBAL_GUID: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
/// systemd-boot's loader interface vendor GUID.
pub const LOADER_GUID: &str = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";

/// `EFI_VARIABLE_NON_VOLATILE`.
pub const EFI_VARIABLE_NON_VOLATILE: u32 = 0x1;
/// `EFI_VARIABLE_BOOTSERVICE_ACCESS`.
pub const EFI_VARIABLE_BOOTSERVICE_ACCESS: u32 = 0x2;
/// `EFI_VARIABLE_RUNTIME_ACCESS`.
pub const EFI_VARIABLE_RUNTIME_ACCESS: u32 = 0x4;
/// Attributes used for boot variables: NV | BS | RT.
pub const BOOT_VAR_ATTRS: u32 =
    EFI_VARIABLE_NON_VOLATILE | EFI_VARIABLE_BOOTSERVICE_ACCESS | EFI_VARIABLE_RUNTIME_ACCESS;

/// Name of boot option variable `n`: `Boot%04X`.
pub fn boot_var_name(n: u16) -> String {
    format!("Boot{n:04X}")
}

/// Parses `Boot####-<global guid>` (exactly four uppercase hex digits) into its number.
fn parse_boot_file_name(file_name: &str) -> Option<u16> {
    let hex = file_name
        .strip_suffix(EFI_GLOBAL_GUID)?
        .strip_suffix('-')?
        .strip_prefix("Boot")?;
    let ok = hex.len() == 4 && hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F'));
    ok.then(|| u16::from_str_radix(hex, 16).ok()).flatten()
}

/// Errnos meaning "this filesystem has no inode flags" (plain directories in tests, tmpfs).
fn flags_unsupported(e: Errno) -> bool {
    matches!(
        e,
        Errno::ENOTTY | Errno::EINVAL | Errno::EOPNOTSUPP | Errno::ENOSYS
    )
}

/// The filesystem magic of a `statfs` result.
#[allow(clippy::unnecessary_cast)]
fn fs_magic(st: &nix::sys::statfs::Statfs) -> u64 {
    st.filesystem_type().0 as u64
}

/// Clears `FS_IMMUTABLE_FL` on `file`. Returns the original flags if they were changed.
fn clear_immutable(file: &File) -> Result<Option<c_long>> {
    let flags = match sys::get_flags(file) {
        Ok(flags) => flags,
        Err(e) if flags_unsupported(e) => return Ok(None),
        Err(e) => return Err(e).context("FS_IOC_GETFLAGS"),
    };
    if flags & sys::FS_IMMUTABLE_FL == 0 {
        return Ok(None);
    }
    sys::set_flags(file, flags & !sys::FS_IMMUTABLE_FL)
        .context("clearing the immutable flag (FS_IOC_SETFLAGS)")?;
    Ok(Some(flags))
}

/// Restores flags saved by [`clear_immutable`].
fn restore_flags(file: &File, saved: Option<c_long>) -> Result<()> {
    match saved {
        Some(flags) => {
            sys::set_flags(file, flags).context("restoring inode flags (FS_IOC_SETFLAGS)")
        }
        None => Ok(()),
    }
}

/// Decodes a 2-byte little-endian u16 variable.
fn u16_value(data: &[u8]) -> Result<u16> {
    let bytes: [u8; 2] = data
        .try_into()
        .ok()
        .with_context(|| format!("expected 2 bytes, found {}", data.len()))?;
    Ok(u16::from_le_bytes(bytes))
}

/// `statfs` magic of efivarfs (`EFIVARFS_MAGIC` in `linux/magic.h`).
pub const EFIVARFS_MAGIC: u64 = 0xde5e_81e4;

/// NVRAM space as the firmware reports it (`QueryVariableInfo`), through efivarfs' `statfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VarSpace {
    /// Total storage for non-volatile variables, in bytes.
    pub total_bytes: u64,
    /// Bytes still available to new variables.
    pub free_bytes: u64,
}

/// One variable as saved before changes: name, attributes and data in lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedVar {
    /// Variable name (without the vendor GUID), e.g. `Boot0001`.
    pub name: String,
    /// Vendor GUID, lowercase.
    pub guid: String,
    /// EFI variable attributes.
    pub attributes: u32,
    /// Data (after the attributes) as lowercase hex.
    pub data: String,
}

impl SavedVar {
    /// The data bytes (decoded from hex).
    pub fn bytes(&self) -> Result<Vec<u8>> {
        crate::hex::decode(&self.data).with_context(|| format!("saved variable {}", self.name))
    }
}

/// Access to UEFI variables stored as files in `dir` (an efivarfs mount).
///
/// Every successful write and delete is recorded in a journal shared by clones of the value
/// ([`EfiVars::changes`]), so callers can report exactly what was changed.
#[derive(Debug, Clone)]
pub struct EfiVars {
    dir: PathBuf,
    journal: Arc<Mutex<Vec<String>>>,
}

impl PartialEq for EfiVars {
    fn eq(&self, other: &Self) -> bool {
        self.dir == other.dir
    }
}

impl Eq for EfiVars {}

impl Default for EfiVars {
    /// Variables at [`DEFAULT_EFIVARS_DIR`].
    fn default() -> Self {
        Self::new(DEFAULT_EFIVARS_DIR)
    }
}

impl EfiVars {
    /// Variables stored in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            journal: Arc::default(),
        }
    }

    /// What this value (and its clones) changed so far, in order: `wrote Boot0003`,
    /// `deleted BootNext`, …
    pub fn changes(&self) -> Vec<String> {
        self.journal.lock().map(|j| j.clone()).unwrap_or_default()
    }

    fn record(&self, what: String) {
        if let Ok(mut j) = self.journal.lock() {
            j.push(what);
        }
    }

    /// Whether the variable directory exists and can be listed (efivarfs mounted, or a test
    /// directory).
    pub fn is_available(&self) -> bool {
        fs::read_dir(&self.dir).is_ok()
    }

    /// Whether the directory is an efivarfs mount (rather than e.g. a test directory).
    pub fn is_efivarfs(&self) -> bool {
        nix::sys::statfs::statfs(&self.dir)
            .map(|st| fs_magic(&st) == EFIVARFS_MAGIC)
            .unwrap_or(false)
    }

    /// NVRAM space, where the kernel exposes it: efivarfs reports the firmware's
    /// `QueryVariableInfo` through `statfs` since Linux 6.x. `None` when the directory is not
    /// efivarfs or the kernel/firmware report no sizes.
    pub fn space(&self) -> Option<VarSpace> {
        let st = nix::sys::statfs::statfs(&self.dir).ok()?;
        if fs_magic(&st) != EFIVARFS_MAGIC {
            return None;
        }
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
        let (bsize, blocks, avail) = (
            u64::try_from(st.block_size()).ok()?,
            u64::try_from(st.blocks()).ok()?,
            u64::try_from(st.blocks_available()).ok()?,
        );
        if blocks == 0 || bsize == 0 {
            return None;
        }
        Some(VarSpace {
            total_bytes: blocks.saturating_mul(bsize),
            free_bytes: avail.saturating_mul(bsize),
        })
    }

    /// The directory holding the variables.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of variable `name` with vendor `guid` (validated, lowercased).
    fn var_path(&self, name: &str, guid: &str) -> Result<PathBuf> {
        ensure!(
            !name.is_empty() && !name.contains(['/', '\0']),
            "invalid EFI variable name {name:?}"
        );
        Ok(self.dir.join(format!("{name}-{}", normalize_guid(guid)?)))
    }

    /// Error context: "`op` EFI variable `name` in `dir`" (GUID shown unless global).
    fn ctx(&self, op: &str, name: &str, guid: &str) -> String {
        format!(
            "{op} EFI variable {} in {}",
            self.shown(name, guid),
            self.dir.display()
        )
    }

    /// Reads a variable: `Some((attributes, data))`, or `None` if it does not exist.
    pub fn read(&self, name: &str, guid: &str) -> Result<Option<(u32, Vec<u8>)>> {
        let inner = || -> Result<Option<(u32, Vec<u8>)>> {
            let bytes = match fs::read(self.var_path(name, guid)?) {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let (attrs, data) = bytes.split_first_chunk::<4>().with_context(|| {
                format!("file is {} bytes, shorter than the attributes", bytes.len())
            })?;
            Ok(Some((u32::from_le_bytes(*attrs), data.to_vec())))
        };
        inner().with_context(|| self.ctx("reading", name, guid))
    }

    /// Creates or replaces a variable with a single `write()` of attributes + data, clearing
    /// the immutable flag of an existing file first and restoring it afterwards.
    pub fn write(&self, name: &str, guid: &str, attrs: u32, data: &[u8]) -> Result<()> {
        self.write_inner(name, guid, attrs, data)
            .with_context(|| self.ctx("writing", name, guid))?;
        self.record(format!("wrote {}", self.shown(name, guid)));
        Ok(())
    }

    /// Writes the variable only if it does not already hold exactly `attrs` and `data`.
    /// Returns whether it was written.
    pub fn update(&self, name: &str, guid: &str, attrs: u32, data: &[u8]) -> Result<bool> {
        if let Ok(Some((a, d))) = self.read(name, guid) {
            if a == attrs && d == data {
                return Ok(false);
            }
        }
        self.write(name, guid, attrs, data)?;
        Ok(true)
    }

    /// `name`, with `-guid` unless it is the global GUID.
    fn shown(&self, name: &str, guid: &str) -> String {
        if parse_guid(guid).ok() == parse_guid(EFI_GLOBAL_GUID).ok() {
            name.to_string()
        } else {
            format!("{name}-{guid}")
        }
    }

    fn write_inner(&self, name: &str, guid: &str, attrs: u32, data: &[u8]) -> Result<()> {
        let path = self.var_path(name, guid)?;
        let mut buf = Vec::with_capacity(4 + data.len());
        buf.extend(attrs.to_le_bytes());
        buf.extend(data);

        let existing = match File::open(&path) {
            Ok(f) => {
                let saved = clear_immutable(&f)?;
                Some((f, saved))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e).context("opening for reading"),
        };
        // efivarfs replaces the variable on write, so an existing file is opened without
        // O_TRUNC; a new one is created exclusively.
        let result = (|| -> Result<()> {
            let mut opts = OpenOptions::new();
            opts.write(true);
            if existing.is_none() {
                opts.create_new(true);
            }
            let mut file = opts.open(&path).context("opening for writing")?;
            let n = file.write(&buf).context("write")?;
            ensure!(n == buf.len(), "short write: {n} of {} bytes", buf.len());
            // On a plain filesystem (not efivarfs) overwriting leaves stale trailing bytes.
            let len = buf.len() as u64;
            if file.metadata()?.len() > len {
                file.set_len(len).context("truncating")?;
            }
            Ok(())
        })();
        match existing {
            Some((f, saved)) => result.and(restore_flags(&f, saved)),
            None => result,
        }
    }

    /// Deletes a variable. Returns `false` if it did not exist.
    pub fn delete(&self, name: &str, guid: &str) -> Result<bool> {
        let deleted = self.delete_inner(name, guid)?;
        if deleted {
            self.record(format!("deleted {}", self.shown(name, guid)));
        }
        Ok(deleted)
    }

    fn delete_inner(&self, name: &str, guid: &str) -> Result<bool> {
        let inner = || -> Result<bool> {
            let path = self.var_path(name, guid)?;
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e).context("opening"),
            };
            let saved = clear_immutable(&file)?;
            if let Err(e) = fs::remove_file(&path) {
                // Best effort: the variable is still there, put its flags back.
                let _ = restore_flags(&file, saved);
                return Err(e).context("unlink");
            }
            Ok(true)
        };
        inner().with_context(|| self.ctx("deleting", name, guid))
    }

    /// Reads a global u16 variable (BootCurrent, BootNext, Timeout).
    fn read_u16(&self, name: &str) -> Result<Option<u16>> {
        match self.read(name, EFI_GLOBAL_GUID)? {
            None => Ok(None),
            Some((_, data)) => u16_value(&data)
                .map(Some)
                .with_context(|| self.ctx("decoding", name, EFI_GLOBAL_GUID)),
        }
    }

    /// `BootOrder`; empty if the variable does not exist.
    pub fn boot_order(&self) -> Result<Vec<u16>> {
        let Some((_, data)) = self.read("BootOrder", EFI_GLOBAL_GUID)? else {
            return Ok(Vec::new());
        };
        if data.len() % 2 != 0 {
            bail!(
                "{}: odd length {}",
                self.ctx("decoding", "BootOrder", EFI_GLOBAL_GUID),
                data.len()
            );
        }
        Ok(data
            .chunks_exact(2)
            .filter_map(|c| c.try_into().ok().map(u16::from_le_bytes))
            .collect())
    }

    /// Writes `BootOrder` unless it already holds exactly this order; an empty order deletes
    /// the variable (zero-size data would delete it in firmware anyway). Returns whether the
    /// variable changed.
    pub fn set_boot_order(&self, order: &[u16]) -> Result<bool> {
        if order.is_empty() {
            return self.delete("BootOrder", EFI_GLOBAL_GUID);
        }
        let data: Vec<u8> = order.iter().flat_map(|n| n.to_le_bytes()).collect();
        self.update("BootOrder", EFI_GLOBAL_GUID, BOOT_VAR_ATTRS, &data)
    }

    /// `BootCurrent`, the option the firmware booted (absent e.g. with direct kernel boot).
    pub fn boot_current(&self) -> Result<Option<u16>> {
        self.read_u16("BootCurrent")
    }

    /// `BootNext`, the one-shot option for the next boot.
    pub fn boot_next(&self) -> Result<Option<u16>> {
        self.read_u16("BootNext")
    }

    /// Sets `BootNext`, or deletes it with `None`. Returns whether the variable changed.
    pub fn set_boot_next(&self, n: Option<u16>) -> Result<bool> {
        match n {
            Some(n) => self.update(
                "BootNext",
                EFI_GLOBAL_GUID,
                BOOT_VAR_ATTRS,
                &n.to_le_bytes(),
            ),
            None => self.delete("BootNext", EFI_GLOBAL_GUID),
        }
    }

    /// `Timeout` in seconds (0xFFFF = wait for the user).
    pub fn timeout(&self) -> Result<Option<u16>> {
        self.read_u16("Timeout")
    }

    /// Sets `Timeout` in seconds, or deletes it with `None`. Returns whether the variable
    /// changed.
    pub fn set_timeout(&self, seconds: Option<u16>) -> Result<bool> {
        match seconds {
            Some(s) => self.update("Timeout", EFI_GLOBAL_GUID, BOOT_VAR_ATTRS, &s.to_le_bytes()),
            None => self.delete("Timeout", EFI_GLOBAL_GUID),
        }
    }

    /// Numbers of all existing `Boot####` variables, sorted.
    pub fn boot_numbers(&self) -> Result<Vec<u16>> {
        let entries = fs::read_dir(&self.dir)
            .with_context(|| format!("listing EFI variables in {}", self.dir.display()))?;
        let mut numbers = Vec::new();
        for entry in entries {
            let entry = entry
                .with_context(|| format!("listing EFI variables in {}", self.dir.display()))?;
            if let Some(n) = entry.file_name().to_str().and_then(parse_boot_file_name) {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// All `Boot####` entries, sorted by number. An unreadable or malformed entry is reported
    /// as an `Err` in its slot rather than failing the listing.
    pub fn boot_entries(&self) -> Result<Vec<(u16, Result<LoadOption>)>> {
        Ok(self
            .boot_numbers()?
            .into_iter()
            .filter_map(|n| match self.read_boot(n) {
                Ok(Some(opt)) => Some((n, Ok(opt))),
                Ok(None) => None, // deleted meanwhile
                Err(e) => Some((n, Err(e))),
            })
            .collect())
    }

    /// Reads and decodes `Boot####` number `n`.
    pub fn read_boot(&self, n: u16) -> Result<Option<LoadOption>> {
        let name = boot_var_name(n);
        let Some((_, data)) = self.read(&name, EFI_GLOBAL_GUID)? else {
            return Ok(None);
        };
        LoadOption::decode(&data)
            .map(Some)
            .with_context(|| self.ctx("decoding", &name, EFI_GLOBAL_GUID))
    }

    /// Writes `Boot####` number `n` with attributes NV|BS|RT, unless it already holds exactly
    /// this option. Returns whether the variable changed.
    pub fn write_boot(&self, n: u16, opt: &LoadOption) -> Result<bool> {
        let name = boot_var_name(n);
        let data = opt
            .encode()
            .with_context(|| self.ctx("encoding", &name, EFI_GLOBAL_GUID))?;
        self.update(&name, EFI_GLOBAL_GUID, BOOT_VAR_ATTRS, &data)
    }

    /// Every `Boot####`, `BootOrder`, `BootNext`, `BootCurrent` and `Timeout` as stored (raw,
    /// malformed ones included), for the log before anything is changed.
    pub fn snapshot(&self) -> Result<Vec<SavedVar>> {
        let mut names: Vec<String> = ["BootCurrent", "BootNext", "BootOrder", "Timeout"]
            .into_iter()
            .map(String::from)
            .collect();
        names.extend(self.boot_numbers()?.into_iter().map(boot_var_name));
        let mut out = Vec::new();
        for name in names {
            if let Some((attributes, data)) = self.read(&name, EFI_GLOBAL_GUID)? {
                out.push(SavedVar {
                    name,
                    guid: EFI_GLOBAL_GUID.to_string(),
                    attributes,
                    data: crate::hex::encode(&data),
                });
            }
        }
        Ok(out)
    }

    /// Deletes `Boot####` number `n`. Returns `false` if it did not exist.
    pub fn delete_boot(&self, n: u16) -> Result<bool> {
        self.delete(&boot_var_name(n), EFI_GLOBAL_GUID)
    }

    /// The lowest number without a `Boot####` variable.
    pub fn free_boot_number(&self) -> Result<u16> {
        let used = self.boot_numbers()?;
        // `used` is sorted and deduplicated: the first gap is the answer.
        let mut candidate: u16 = 0;
        for n in used {
            if n != candidate {
                break;
            }
            candidate = match candidate.checked_add(1) {
                Some(c) => c,
                None => bail!(
                    "all 65536 Boot#### numbers are in use in {}",
                    self.dir.display()
                ),
            };
        }
        Ok(candidate)
    }

    /// systemd-boot's `LoaderDevicePartUUID`: the unique GUID of the partition the boot loader
    /// was started from, lowercase. `None` if the variable does not exist.
    pub fn loader_device_part_uuid(&self) -> Result<Option<String>> {
        const NAME: &str = "LoaderDevicePartUUID";
        let Some((_, data)) = self.read(NAME, LOADER_GUID)? else {
            return Ok(None);
        };
        let decode = || -> Result<String> {
            ensure!(data.len() % 2 == 0, "odd length {}", data.len());
            let units: Vec<u16> = data
                .chunks_exact(2)
                .filter_map(|c| c.try_into().ok().map(u16::from_le_bytes))
                .take_while(|&u| u != 0)
                .collect();
            let text = String::from_utf16(&units).context("invalid UTF-16")?;
            Ok(format_guid(&parse_guid(&text)?))
        };
        decode()
            .map(Some)
            .with_context(|| self.ctx("decoding", NAME, LOADER_GUID))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devpath::tests::sample_path;
    use crate::loadopt::LOAD_OPTION_ACTIVE;

    fn tmp() -> (tempfile::TempDir, EfiVars) {
        let dir = tempfile::tempdir().unwrap();
        let vars = EfiVars::new(dir.path());
        (dir, vars)
    }

    fn option(desc: &str) -> LoadOption {
        LoadOption {
            attributes: LOAD_OPTION_ACTIVE,
            description: desc.into(),
            path: sample_path(),
            optional_data: vec![],
        }
    }

    #[test]
    fn parse_names() {
        let g = EFI_GLOBAL_GUID;
        assert_eq!(parse_boot_file_name(&format!("Boot0001-{g}")), Some(1));
        assert_eq!(parse_boot_file_name(&format!("BootFFFF-{g}")), Some(0xffff));
        for bad in [
            "Bootffff",
            "Boot001",
            "Boot00001",
            "Boot+001",
            "BootOrder",
            "Boot00G1",
        ] {
            assert_eq!(parse_boot_file_name(&format!("{bad}-{g}")), None, "{bad}");
        }
        assert_eq!(
            parse_boot_file_name("Boot0001-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"),
            None
        );
        assert_eq!(parse_boot_file_name("Boot0001"), None);
        assert_eq!(boot_var_name(0xab), "Boot00AB");
    }

    #[test]
    fn read_write_delete() {
        let (dir, vars) = tmp();
        assert_eq!(vars.read("Foo", EFI_GLOBAL_GUID).unwrap(), None);
        vars.write("Foo", &EFI_GLOBAL_GUID.to_uppercase(), 7, b"hello world")
            .unwrap();
        let file = dir.path().join(format!("Foo-{EFI_GLOBAL_GUID}"));
        assert_eq!(fs::read(&file).unwrap(), b"\x07\0\0\0hello world");
        // Overwrite with shorter data: no stale bytes on a plain filesystem.
        vars.write("Foo", EFI_GLOBAL_GUID, 3, b"hi").unwrap();
        assert_eq!(
            vars.read("Foo", EFI_GLOBAL_GUID).unwrap(),
            Some((3, b"hi".to_vec()))
        );
        assert!(vars.delete("Foo", EFI_GLOBAL_GUID).unwrap());
        assert!(!vars.delete("Foo", EFI_GLOBAL_GUID).unwrap());
        assert!(!file.exists());
    }

    /// Exercises the immutable-flag handling where the filesystem and privileges allow
    /// `chattr +i` (e.g. root on ext4); silently passes elsewhere.
    #[test]
    fn immutable_flag_is_cleared_and_restored() {
        let (dir, vars) = tmp();
        vars.write("Locked", LOADER_GUID, 7, b"old").unwrap();
        let path = dir.path().join(format!("Locked-{LOADER_GUID}"));
        let file = File::open(&path).unwrap();
        let Ok(flags) = sys::get_flags(&file) else {
            return;
        };
        if sys::set_flags(&file, flags | sys::FS_IMMUTABLE_FL).is_err() {
            return;
        }
        assert!(
            fs::remove_file(&path).is_err(),
            "immutable file is protected"
        );

        vars.write("Locked", LOADER_GUID, 7, b"new").unwrap();
        assert_eq!(
            vars.read("Locked", LOADER_GUID).unwrap(),
            Some((7, b"new".to_vec()))
        );
        let after = sys::get_flags(&File::open(&path).unwrap()).unwrap();
        assert_ne!(after & sys::FS_IMMUTABLE_FL, 0, "flag restored after write");

        assert!(vars.delete("Locked", LOADER_GUID).unwrap());
        assert!(!path.exists());
    }

    #[test]
    fn errors_name_the_variable() {
        let (dir, vars) = tmp();
        fs::write(
            dir.path().join(format!("Short-{EFI_GLOBAL_GUID}")),
            b"\x07\0",
        )
        .unwrap();
        let err = format!("{:#}", vars.read("Short", EFI_GLOBAL_GUID).unwrap_err());
        assert!(err.contains("reading EFI variable Short in "), "{err}");
        let missing = EfiVars::new(dir.path().join("nope"));
        let err = format!("{:#}", missing.write_boot(3, &option("x")).unwrap_err());
        assert!(
            err.starts_with("writing EFI variable Boot0003 in "),
            "{err}"
        );
        assert!(vars.write("a/b", EFI_GLOBAL_GUID, 7, b"").is_err());
        assert!(vars.write("Foo", "not-a-guid", 7, b"").is_err());
        assert!(missing.boot_entries().is_err());
    }

    #[test]
    fn global_u16_vars() {
        let (_dir, vars) = tmp();
        assert_eq!(vars.boot_order().unwrap(), Vec::<u16>::new());
        assert_eq!(vars.boot_current().unwrap(), None);
        vars.set_boot_order(&[3, 1, 0x1000]).unwrap();
        assert_eq!(vars.boot_order().unwrap(), vec![3, 1, 0x1000]);
        assert_eq!(
            vars.read("BootOrder", EFI_GLOBAL_GUID).unwrap().unwrap(),
            (7, vec![3, 0, 1, 0, 0, 0x10])
        );
        vars.set_boot_order(&[]).unwrap();
        assert_eq!(vars.read("BootOrder", EFI_GLOBAL_GUID).unwrap(), None);
        vars.set_boot_next(Some(5)).unwrap();
        assert_eq!(vars.boot_next().unwrap(), Some(5));
        vars.set_boot_next(None).unwrap();
        assert_eq!(vars.boot_next().unwrap(), None);
        assert!(vars.set_timeout(Some(0)).unwrap());
        assert!(!vars.set_timeout(Some(0)).unwrap());
        assert_eq!(vars.timeout().unwrap(), Some(0));
        vars.write("BootCurrent", EFI_GLOBAL_GUID, 6, &[1, 0])
            .unwrap();
        assert_eq!(vars.boot_current().unwrap(), Some(1));
        vars.write("BootCurrent", EFI_GLOBAL_GUID, 6, &[1, 0, 0])
            .unwrap();
        assert!(vars.boot_current().is_err());
        vars.write("BootOrder", EFI_GLOBAL_GUID, 7, &[1, 0, 0])
            .unwrap();
        assert!(vars.boot_order().is_err());
    }

    #[test]
    fn boot_entries_and_free_number() {
        let (dir, vars) = tmp();
        assert_eq!(vars.free_boot_number().unwrap(), 0);
        vars.write_boot(0, &option("zero")).unwrap();
        vars.write_boot(2, &option("two")).unwrap();
        vars.write("Boot0001", EFI_GLOBAL_GUID, 7, b"garbage")
            .unwrap();
        // Not boot entries:
        vars.write("Bootabcd", EFI_GLOBAL_GUID, 7, b"x").unwrap();
        vars.write("Boot0003", LOADER_GUID, 7, b"x").unwrap();
        fs::write(dir.path().join("README"), b"x").unwrap();

        let entries = vars.boot_entries().unwrap();
        let numbers: Vec<u16> = entries.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, vec![0, 1, 2]);
        assert_eq!(entries[0].1.as_ref().unwrap(), &option("zero"));
        let err = format!("{:#}", entries[1].1.as_ref().unwrap_err());
        assert!(err.contains("Boot0001"), "{err}");
        assert_eq!(entries[2].1.as_ref().unwrap(), &option("two"));
        assert_eq!(vars.read_boot(2).unwrap(), Some(option("two")));
        assert_eq!(vars.read_boot(7).unwrap(), None);
        assert_eq!(vars.free_boot_number().unwrap(), 3);
        assert!(vars.delete_boot(1).unwrap());
        assert_eq!(vars.free_boot_number().unwrap(), 1);
    }

    #[test]
    fn update_journal_snapshot_space() {
        let (_dir, vars) = tmp();
        assert!(vars.is_available());
        assert!(!vars.is_efivarfs());
        assert_eq!(
            vars.space(),
            None,
            "a plain directory reports no NVRAM space"
        );
        assert!(!EfiVars::new("/nonexistent/efivars").is_available());

        assert!(vars.update("Foo", EFI_GLOBAL_GUID, 7, b"a").unwrap());
        assert!(!vars.update("Foo", EFI_GLOBAL_GUID, 7, b"a").unwrap());
        assert!(vars.update("Foo", EFI_GLOBAL_GUID, 6, b"a").unwrap());
        assert!(vars.write_boot(1, &option("one")).unwrap());
        assert!(!vars.write_boot(1, &option("one")).unwrap());
        vars.set_boot_order(&[1]).unwrap();
        vars.set_boot_next(Some(1)).unwrap();
        vars.write("Bar", LOADER_GUID, 6, b"x").unwrap();
        vars.set_boot_next(None).unwrap();
        // Clones share the journal.
        vars.clone().delete("Foo", EFI_GLOBAL_GUID).unwrap();
        assert_eq!(
            vars.changes(),
            [
                "wrote Foo",
                "wrote Foo",
                "wrote Boot0001",
                "wrote BootOrder",
                "wrote BootNext",
                &format!("wrote Bar-{LOADER_GUID}"),
                "deleted BootNext",
                "deleted Foo",
            ]
        );

        vars.write("Boot0002", EFI_GLOBAL_GUID, 7, b"junk").unwrap();
        vars.set_timeout(Some(3)).unwrap();
        let snap = vars.snapshot().unwrap();
        let names: Vec<&str> = snap.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["BootOrder", "Timeout", "Boot0001", "Boot0002"]);
        assert_eq!(snap[0].data, "0100");
        assert_eq!(snap[0].attributes, 7);
        assert_eq!(snap[3].bytes().unwrap(), b"junk");
        assert_eq!(
            LoadOption::decode(&snap[2].bytes().unwrap()).unwrap(),
            option("one")
        );
    }

    #[test]
    fn loader_device_part_uuid() {
        let (_dir, vars) = tmp();
        assert_eq!(vars.loader_device_part_uuid().unwrap(), None);
        let text = "768A4BFB-E5F6-4905-8DB3-9B62BF27444B";
        let data: Vec<u8> = text
            .encode_utf16()
            .chain([0])
            .flat_map(u16::to_le_bytes)
            .collect();
        vars.write("LoaderDevicePartUUID", LOADER_GUID, 6, &data)
            .unwrap();
        assert_eq!(
            vars.loader_device_part_uuid().unwrap().as_deref(),
            Some("768a4bfb-e5f6-4905-8db3-9b62bf27444b")
        );
        vars.write("LoaderDevicePartUUID", LOADER_GUID, 6, b"abc")
            .unwrap();
        let err = format!("{:#}", vars.loader_device_part_uuid().unwrap_err());
        assert!(err.contains("LoaderDevicePartUUID-4a67b082"), "{err}");
    }
}
