//! Offline jobs: a clone, migration or save planned on the running system, staged on its ESP
//! as a rescue kernel + initramfs + job file under `\EFI\sysclone\`, started once through
//! `BootNext`, and cleaned up by the rescue image before it touches any disk.
//!
//! Both sides live here: the CLI stages, cancels and reports (`sysclone clone --offline`,
//! `sysclone offline --cancel`, `sysclone status`); PID 1 unstages and saves the log.
//! See docs/offline.md.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use sysclone_disk::{Disk, Partition};
use sysclone_efi::{DevicePathNode, EfiVars, HdSignature};
use sysclone_media::usbimage::{self, EspFile};

/// The directory on the ESP that holds a staged job (FAT paths use `/` here). Its own
/// directory below `EFI/sysclone`, which a sysclone USB stick uses for its kernel: cancelling
/// never touches a stick.
pub const STAGE_DIR: &str = "EFI/sysclone/offline";
/// Its parent, removed with it when nothing else is in it.
pub const STAGE_PARENT: &str = "EFI/sysclone";
pub const KERNEL: &str = "EFI/sysclone/offline/vmlinuz.efi";
pub const INITRD: &str = "EFI/sysclone/offline/initrd.img";
pub const JOB: &str = "EFI/sysclone/offline/job.toml";
pub const STATE: &str = "EFI/sysclone/offline/staged.json";
/// Where the rescue image keeps its logs and reports on that ESP.
pub const LOG_DIR: &str = "sysclone/logs";
/// The description of the one-shot boot entry.
pub const ENTRY_LABEL: &str = "sysclone offline job";
/// The GPT type of an EFI System Partition.
pub const ESP_TYPE: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
/// The `SecureBoot` EFI global variable.
pub const SECURE_BOOT_VAR: &str = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// What was staged, kept beside the job as `staged.json` (read by `status` and `--cancel`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Staged {
    /// Seconds since 1970 when it was staged.
    pub created: u64,
    /// `clone serial=A -> serial=B` and the like.
    pub summary: String,
    /// PARTUUID of the ESP holding it.
    pub esp_partuuid: String,
    /// The one-shot entry (`Boot####`).
    pub boot_entry: String,
    /// The rescue kernel and where it came from.
    pub kernel: String,
    pub initramfs: String,
    /// The kernel command line of the entry.
    pub cmdline: String,
    /// (path on the ESP, bytes) of every staged file.
    pub files: Vec<(String, u64)>,
}

/// An EFI System Partition on a disk, and where it is mounted, if it is.
#[derive(Debug, Clone)]
pub struct Esp {
    pub disk: Disk,
    pub part: Partition,
    pub mountpoint: Option<PathBuf>,
}

/// Every ESP on these disks (GPT type, or MBR type 0xef), with its mount point.
pub fn esps(disks: &[Disk]) -> Vec<Esp> {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v = Vec::new();
    for d in disks {
        for p in &d.partitions {
            if p.type_id.eq_ignore_ascii_case(ESP_TYPE) || p.type_id == "0xef" {
                let mountpoint = p.name.as_deref().and_then(|n| mountpoint_of(n, &mounts));
                v.push(Esp { disk: d.clone(), part: p.clone(), mountpoint });
            }
        }
    }
    v
}

/// Where the block device `name` (a partition's kernel name) is mounted, from the text of
/// /proc/self/mountinfo (field 3 is major:minor, field 5 the mount point).
fn mountpoint_of(name: &str, mountinfo: &str) -> Option<PathBuf> {
    let devno = fs::read_to_string(format!("/sys/class/block/{name}/dev")).ok()?;
    mountinfo
        .lines()
        .find(|l| l.split(' ').nth(2) == Some(devno.trim()))
        .and_then(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
}

impl Esp {
    pub fn partuuid(&self) -> Result<String> {
        self.part.part_uuid.clone().ok_or_else(|| anyhow!("partition {} of {} has no partition GUID", self.part.number, self.disk.describe()))
    }

    /// `partition 1 of nvme0n1 (…), PARTUUID …, mounted at /boot/efi`.
    pub fn describe(&self) -> String {
        format!(
            "partition {} of {}, PARTUUID {}{}",
            self.part.number,
            self.disk.describe(),
            self.part.part_uuid.as_deref().unwrap_or("none"),
            self.mountpoint.as_ref().map(|m| format!(", mounted at {}", m.display())).unwrap_or_default()
        )
    }

    /// The partition's own device node, else the whole disk (with the partition's offset).
    fn device(&self) -> (PathBuf, u64) {
        match &self.part.name {
            Some(n) if Path::new("/dev").join(n).exists() => (Path::new("/dev").join(n), 0),
            _ => (self.disk.path.clone(), self.part.start_bytes),
        }
    }

    /// Open the unmounted FAT for writing: exclusively, so that the kernel refuses when
    /// anything has mounted or opened it meanwhile (a FAT is never written behind a mounted
    /// filesystem's back).
    fn open_rw(&self) -> Result<(fs::File, u64)> {
        let (dev, off) = self.device();
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_EXCL)
            .open(&dev)
            .with_context(|| format!("opening the ESP {} for writing ({})", dev.display(), self.describe()))?;
        Ok((f, off))
    }

    /// Read a file; `None` when it is not there.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        if let Some(m) = &self.mountpoint {
            return match fs::read(m.join(path)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e).with_context(|| format!("reading {path} on {}", self.describe())),
            };
        }
        let (dev, off) = self.device();
        let files = usbimage::read_esp_files(&dev, off, self.part.size_bytes).with_context(|| format!("reading the ESP {}", self.describe()))?;
        if !files.iter().any(|e| !e.is_dir && e.path.eq_ignore_ascii_case(path)) {
            return Ok(None);
        }
        Ok(Some(usbimage::read_esp_file(&dev, off, self.part.size_bytes, path)?))
    }

    /// Files below `dir` (paths from the volume root): (path, bytes).
    pub fn list(&self, dir: &str) -> Result<Vec<(String, u64)>> {
        if let Some(m) = &self.mountpoint {
            let mut v = Vec::new();
            let mut stack = vec![dir.to_string()];
            while let Some(d) = stack.pop() {
                let Ok(rd) = fs::read_dir(m.join(&d)) else { continue };
                for e in rd.flatten() {
                    let p = format!("{d}/{}", e.file_name().to_string_lossy());
                    let md = e.metadata()?;
                    if md.is_dir() {
                        stack.push(p);
                    } else {
                        v.push((p, md.len()));
                    }
                }
            }
            return Ok(v);
        }
        let (dev, off) = self.device();
        let prefix = format!("{}/", dir.to_ascii_lowercase());
        Ok(usbimage::read_esp_files(&dev, off, self.part.size_bytes)
            .with_context(|| format!("reading the ESP {}", self.describe()))?
            .into_iter()
            .filter(|e| !e.is_dir && e.path.to_ascii_lowercase().starts_with(&prefix))
            .map(|e| (e.path, e.size))
            .collect())
    }

    /// Free bytes and the cluster size.
    pub fn free_space(&self) -> Result<(u64, u64)> {
        if let Some(m) = &self.mountpoint {
            let st = nix::sys::statvfs::statvfs(m).with_context(|| format!("statvfs {}", m.display()))?;
            let frag = st.fragment_size() as u64;
            return Ok((st.blocks_available() as u64 * frag, st.block_size().max(st.fragment_size()) as u64));
        }
        let (dev, off) = self.device();
        let f = fs::File::open(&dev).with_context(|| format!("opening {}", dev.display()))?;
        usbimage::fat_free_space(f, off, self.part.size_bytes).with_context(|| format!("reading the free space of the ESP {}", self.describe()))
    }

    /// Write files (replacing any of the same name), and flush them to the disk.
    pub fn write(&self, files: &[EspFile]) -> Result<()> {
        if let Some(m) = &self.mountpoint {
            for f in files {
                let p = m.join(&f.path);
                if let Some(parent) = p.parent() {
                    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
                }
                let mut out = fs::File::create(&p).with_context(|| format!("creating {}", p.display()))?;
                match &f.source {
                    usbimage::FileSource::Bytes(b) => out.write_all(b),
                    usbimage::FileSource::Path(src) => fs::File::open(src).and_then(|mut i| std::io::copy(&mut i, &mut out).map(|_| ())),
                }
                .with_context(|| format!("writing {}", p.display()))?;
                out.sync_all().with_context(|| format!("flushing {}", p.display()))?;
            }
            nix::unistd::sync();
            return Ok(());
        }
        let (dev, off) = self.open_rw()?;
        usbimage::add_files_to_fat(&dev, off, self.part.size_bytes, files).with_context(|| format!("writing to the ESP {}", self.describe()))?;
        dev.sync_all()?;
        Ok(())
    }

    /// Remove the staged job's directory, and its parent when that is left empty.
    pub fn remove_staged(&self) -> Result<Vec<String>> {
        let mut removed = self.remove_dir(STAGE_DIR)?;
        if removed.is_empty() || !self.is_empty_dir(STAGE_PARENT)? {
            return Ok(removed);
        }
        removed.extend(self.remove_dir(STAGE_PARENT)?);
        Ok(removed)
    }

    /// Whether `dir` exists and holds nothing (no file, no directory).
    fn is_empty_dir(&self, dir: &str) -> Result<bool> {
        if let Some(m) = &self.mountpoint {
            return Ok(fs::read_dir(m.join(dir)).map(|mut r| r.next().is_none()).unwrap_or(false));
        }
        let (dev, off) = self.device();
        let all = usbimage::read_esp_files(&dev, off, self.part.size_bytes)?;
        let prefix = format!("{}/", dir.to_ascii_lowercase());
        Ok(all.iter().any(|e| e.is_dir && e.path.eq_ignore_ascii_case(dir)) && !all.iter().any(|e| e.path.to_ascii_lowercase().starts_with(&prefix)))
    }

    /// Remove `dir` and everything below it; returns the files and directories removed.
    pub fn remove_dir(&self, dir: &str) -> Result<Vec<String>> {
        if let Some(m) = &self.mountpoint {
            let files = self.list(dir)?;
            let p = m.join(dir);
            if !p.exists() {
                return Ok(Vec::new());
            }
            fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
            nix::unistd::sync();
            return Ok(files.into_iter().map(|(p, _)| p).chain(std::iter::once(dir.to_string())).collect());
        }
        let (dev, off) = self.open_rw()?;
        let removed = usbimage::remove_dir_from_fat(&dev, off, self.part.size_bytes, dir).with_context(|| format!("removing {dir} from the ESP {}", self.describe()))?;
        dev.sync_all()?;
        Ok(removed)
    }
}

/// Whether the firmware enforces Secure Boot (`SecureBoot` = 1); `None` when not said.
pub fn secure_boot(efivars: &Path) -> Option<bool> {
    let v = fs::read(efivars.join(SECURE_BOOT_VAR)).ok()?;
    v.get(4).map(|b| *b == 1)
}

/// A selector that finds exactly `disk` again after a reboot, where kernel names may change:
/// its serial (or WWN, or partition-table GUID) and its size.
pub fn stable_selector(disk: &Disk, disks: &[Disk]) -> Result<String> {
    let size = format!("size={}", disk.size_bytes);
    let unique = |sel: &str| -> bool {
        sysclone_disk::Selector::parse(sel).ok().and_then(|s| s.select(disks, &[], Path::new("/dev")).ok().map(|d| d.name == disk.name)).unwrap_or(false)
    };
    let ok_value = |v: &str| !v.is_empty() && !v.contains([',', '"', '\\']) && v.trim() == v;
    let candidates = [
        disk.serial.as_deref().filter(|s| ok_value(s)).map(|s| format!("serial={s},{size}")),
        disk.wwn.as_deref().filter(|s| ok_value(s)).map(|s| format!("wwn={s},{size}")),
        disk.disk_guid.as_deref().filter(|s| ok_value(s)).map(|s| format!("ptuuid={s},{size}")),
    ];
    for c in candidates.into_iter().flatten() {
        if unique(&c) {
            return Ok(c);
        }
    }
    bail!(
        "{} has no serial, WWN or partition-table GUID that names it alone, so the job could not find it again after the reboot; give it a partition table, or use a rescue stick (sysclone image build)",
        disk.describe()
    )
}

/// Whether a boot entry is one of ours: `\EFI\sysclone\…` on the partition `esp_partuuid`.
fn is_staged_entry(opt: &sysclone_efi::LoadOption, esp_partuuid: &str) -> bool {
    let on_esp = opt.path.iter().any(|n| match n {
        DevicePathNode::HardDrive { signature: HdSignature::Gpt(g), .. } => sysclone_efi::guid_from_disk_bytes(g).eq_ignore_ascii_case(esp_partuuid),
        _ => false,
    });
    let ours = opt.file_path().is_some_and(|f| f.to_ascii_lowercase().replace('/', "\\").starts_with("\\efi\\sysclone\\offline\\"));
    on_esp && ours
}

/// The numbers of our entries for that ESP.
pub fn staged_entries(vars: &EfiVars, esp_partuuid: &str) -> Result<Vec<u16>> {
    Ok(vars.boot_entries()?.into_iter().filter_map(|(n, e)| e.ok().filter(|e| is_staged_entry(e, esp_partuuid)).map(|_| n)).collect())
}

/// What [`unstage`] removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Unstaged {
    pub files: Vec<String>,
    pub entries: Vec<String>,
    /// BootNext named one of them and was deleted.
    pub boot_next_cleared: bool,
}

impl Unstaged {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.entries.is_empty() && !self.boot_next_cleared
    }
}

/// Remove a staged job: the files under `\EFI\sysclone\`, our boot entries for that ESP and a
/// BootNext that names one of them. BootOrder is only rewritten if it (unexpectedly) lists
/// one. Each part is tried even when another fails; the first error is returned after.
pub fn unstage(esp: &Esp, vars: &EfiVars) -> Result<Unstaged> {
    let mut done = Unstaged::default();
    let mut first_err = None;
    match esp.remove_staged() {
        Ok(f) => done.files = f,
        Err(e) => first_err = Some(e),
    }
    if vars.is_available() {
        let r = (|| -> Result<()> {
            let uuid = esp.partuuid()?;
            let next = vars.boot_next().ok().flatten();
            for n in staged_entries(vars, &uuid)? {
                done.boot_next_cleared |= next == Some(n);
                sysclone_efi::edit::delete(vars, n).with_context(|| format!("deleting boot entry {}", sysclone_efi::boot_var_name(n)))?;
                done.entries.push(sysclone_efi::boot_var_name(n));
            }
            Ok(())
        })();
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

/// A staged job's record (when readable) and its files (path, bytes).
pub type StagedJob = (Option<Staged>, Vec<(String, u64)>);

/// The staged job on an ESP, if there is one: its record (when readable) and files.
pub fn staged_on(esp: &Esp) -> Result<Option<StagedJob>> {
    let files = esp.list(STAGE_DIR)?;
    if files.is_empty() {
        return Ok(None);
    }
    let state = esp.read(STATE)?.and_then(|b| serde_json::from_slice::<Staged>(&b).ok());
    Ok(Some((state, files)))
}

/// `YYYYMMDD-HHMMSS-offline-RESULT.log`-named logs of offline runs on an ESP, newest last.
pub fn offline_logs(esp: &Esp) -> Result<Vec<String>> {
    let mut v: Vec<String> = esp.list(LOG_DIR)?.into_iter().map(|(p, _)| p).filter(|p| p.contains("-offline-") && p.ends_with(".log")).collect();
    v.sort_by_key(|p| p.rsplit('/').next().unwrap_or(p).to_string());
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(name: &str, serial: Option<&str>, guid: Option<&str>, size: u64) -> Disk {
        Disk { name: name.into(), serial: serial.map(str::to_string), disk_guid: guid.map(str::to_string), size_bytes: size, table: "gpt".into(), ..Default::default() }
    }

    #[test]
    fn stable_selectors_name_one_disk() {
        let disks = vec![disk("vda", Some("A1"), Some("11111111-2222-3333-4444-555555555555"), 1 << 30), disk("vdb", Some("A1"), None, 1 << 30), disk("loop0", None, Some("aaaaaaaa-2222-3333-4444-555555555555"), 1 << 20), disk("loop1", None, None, 1 << 20)];
        // A serial shared by two disks of one size is no name: the table GUID is.
        assert_eq!(stable_selector(&disks[0], &disks).unwrap(), "ptuuid=11111111-2222-3333-4444-555555555555,size=1073741824");
        assert!(stable_selector(&disks[1], &disks).unwrap_err().to_string().contains("no serial, WWN or partition-table GUID"));
        assert_eq!(stable_selector(&disks[2], &disks).unwrap(), "ptuuid=aaaaaaaa-2222-3333-4444-555555555555,size=1048576");
        assert!(stable_selector(&disks[3], &disks).is_err());
        let alone = vec![disk("vda", Some("A1"), None, 1 << 30)];
        assert_eq!(stable_selector(&alone[0], &alone).unwrap(), "serial=A1,size=1073741824");
    }

    #[test]
    fn mountinfo_lookup_matches_device_numbers() {
        // No such block device: nothing is mounted.
        assert_eq!(mountpoint_of("no-such-dev", "22 1 259:1 / /boot/efi rw - vfat /dev/x rw"), None);
    }
}
