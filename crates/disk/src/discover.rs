//! Disk discovery from sysfs plus a look at each disk's partition table.
//!
//! Everything is read from a sysfs root (normally `/sys`) and a device directory (normally
//! `/dev`), so tests can point both at temporary trees.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::probe::{probe, FsInfo, PROBE_BYTES};
use crate::table::{read_table, PartitionTable};

/// The bus a disk hangs off, as a person would name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Bus {
    Nvme,
    Sata,
    Scsi,
    Usb,
    Virtio,
    Mmc,
    Loop,
    #[default]
    Other,
}

impl Bus {
    pub fn as_str(self) -> &'static str {
        match self {
            Bus::Nvme => "nvme",
            Bus::Sata => "sata",
            Bus::Scsi => "scsi",
            Bus::Usb => "usb",
            Bus::Virtio => "virtio",
            Bus::Mmc => "mmc",
            Bus::Loop => "loop",
            Bus::Other => "other",
        }
    }
}

/// One partition of a disk.
#[derive(Debug, Clone, Serialize)]
pub struct Partition {
    pub number: u32,
    /// Kernel name (`nvme0n1p1`), when the kernel has a node for it.
    pub name: Option<String>,
    pub start_bytes: u64,
    pub size_bytes: u64,
    /// GPT type GUID (lowercase) or MBR type as `0xNN`.
    pub type_id: String,
    /// Human name of the type, e.g. "EFI System".
    pub type_name: String,
    /// GPT partition name.
    pub label: Option<String>,
    /// GPT unique partition GUID (lowercase), or MBR `SIG-NN`.
    pub part_uuid: Option<String>,
    pub fs: Option<FsInfo>,
}

/// One whole disk. (`Default` is an empty description, for tests that build one.)
#[derive(Debug, Clone, Serialize, Default)]
pub struct Disk {
    /// Kernel name: `nvme0n1`, `sda`, `vda`, `loop3`.
    pub name: String,
    pub path: PathBuf,
    /// `major:minor`.
    pub devno: String,
    pub bus: Bus,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub wwn: Option<String>,
    pub size_bytes: u64,
    pub logical_sector: u32,
    pub physical_sector: u32,
    pub rotational: bool,
    pub removable: bool,
    pub read_only: bool,
    /// `gpt`, `mbr` or `none`.
    pub table: String,
    pub disk_guid: Option<String>,
    pub partitions: Vec<Partition>,
    /// Kernel names of whatever holds this disk or one of its partitions (dm, md, …).
    pub holders: Vec<String>,
    /// Mount points of this disk or its partitions.
    pub mounts: Vec<String>,
    /// Active swap on this disk or its partitions.
    pub swaps: Vec<String>,
    /// Role tags: `boot-medium`, `system`, `in-use`.
    pub roles: Vec<String>,
}

impl Disk {
    /// A one-line identity for messages: `nvme0n1 (nvme, QEMU NVMe Ctrl, serial SRC1, 256 MiB)`.
    pub fn describe(&self) -> String {
        format!(
            "{} ({}, {}, serial {}, {})",
            self.name,
            self.bus.as_str(),
            self.model.as_deref().unwrap_or("unknown model"),
            self.serial.as_deref().unwrap_or("none"),
            human_bytes(self.size_bytes)
        )
    }

    /// What stays the same about this disk across reboots and re-plugging (never the kernel
    /// name, which can change): bus, model, serial, WWN and size. Used to tie a rescue map
    /// to the disks it was made for.
    pub fn stable_identity(&self) -> String {
        format!(
            "{} model={} serial={} wwn={} bytes={}",
            self.bus.as_str(),
            self.model.as_deref().unwrap_or("-"),
            self.serial.as_deref().unwrap_or("-"),
            self.wwn.as_deref().unwrap_or("-"),
            self.size_bytes
        )
    }

    pub fn in_use(&self) -> bool {
        !self.mounts.is_empty() || !self.swaps.is_empty() || !self.holders.is_empty()
    }

    /// Whether the disk holds an EFI system partition next to another filesystem.
    fn looks_like_system(&self) -> bool {
        let esp = self.partitions.iter().any(|p| p.type_name == "EFI System");
        esp && self.partitions.len() > 1
    }
}

/// Where discovery looks.
#[derive(Debug, Clone)]
pub struct Roots {
    pub sys: PathBuf,
    pub dev: PathBuf,
    pub proc: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots { sys: "/sys".into(), dev: "/dev".into(), proc: "/proc".into() }
    }
}

fn read_attr(p: &Path) -> Option<String> {
    let s = fs::read(p).ok()?;
    let s = String::from_utf8_lossy(&s).trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// A 512-byte-unit sysfs `size` attribute in bytes (always 512-byte units, even on 4Kn disks).
fn sysfs_size(p: &Path) -> u64 {
    read_attr(p).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0) * 512
}

fn bus_of(name: &str, device_link: &str) -> Bus {
    if name.starts_with("loop") {
        Bus::Loop
    } else if name.starts_with("nvme") {
        Bus::Nvme
    } else if name.starts_with("mmcblk") {
        Bus::Mmc
    } else if name.starts_with("vd") {
        Bus::Virtio
    } else if device_link.contains("/usb") {
        Bus::Usb
    } else if device_link.contains("/ata") {
        Bus::Sata
    } else if name.starts_with("sd") || name.starts_with("sr") {
        Bus::Scsi
    } else {
        Bus::Other
    }
}

/// The serial number, from wherever this bus keeps it.
fn serial_of(block: &Path, bus: Bus) -> Option<String> {
    let dev = block.join("device");
    match bus {
        Bus::Virtio => read_attr(&block.join("serial")),
        Bus::Nvme | Bus::Mmc => read_attr(&dev.join("serial")),
        Bus::Sata | Bus::Scsi | Bus::Usb => {
            // SCSI VPD page 0x80: 4-byte header, then the ASCII serial.
            if let Ok(v) = fs::read(dev.join("vpd_pg80")) {
                if v.len() > 4 {
                    let s = String::from_utf8_lossy(&v[4..]).trim().trim_matches('\0').to_string();
                    if !s.is_empty() {
                        return Some(s);
                    }
                }
            }
            // USB mass storage: the USB device's own serial, some levels up.
            let mut p = fs::canonicalize(&dev).ok()?;
            while p.pop() {
                if let Some(s) = read_attr(&p.join("serial")) {
                    if p.join("idVendor").exists() {
                        return Some(s);
                    }
                }
                if p.as_os_str().len() <= 5 {
                    break;
                }
            }
            None
        }
        _ => None,
    }
}

fn model_of(block: &Path) -> Option<String> {
    let dev = block.join("device");
    let model = read_attr(&dev.join("model"));
    match read_attr(&dev.join("vendor")) {
        Some(v) if !v.starts_with("0x") && v != "ATA" => Some(format!("{v} {}", model.unwrap_or_default()).trim().to_string()),
        _ => model,
    }
}

fn list_dir(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Mounted filesystems as (major:minor, mount point), from mountinfo.
fn mounts(proc: &Path) -> Vec<(String, String)> {
    let s = fs::read_to_string(proc.join("self/mountinfo")).unwrap_or_default();
    s.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((f.get(2)?.to_string(), f.get(4)?.to_string()))
        })
        .collect()
}

fn swaps(proc: &Path) -> Vec<String> {
    let s = fs::read_to_string(proc.join("swaps")).unwrap_or_default();
    s.lines().skip(1).filter_map(|l| l.split_whitespace().next().map(str::to_string)).collect()
}

/// Read the partition table and probe each partition's filesystem.
fn inspect(path: &Path, logical: u32, size: u64) -> Result<(PartitionTable, Vec<Option<FsInfo>>)> {
    let mut f = File::open(path).with_context(|| format!("opening {} to read its partition table", path.display()))?;
    let table = read_table(&mut f, logical, size)?;
    let mut fss = Vec::new();
    for p in &table.partitions {
        let mut buf = vec![0u8; PROBE_BYTES.min(p.size_bytes as usize)];
        let ok = f.seek(SeekFrom::Start(p.start_bytes)).is_ok() && f.read_exact(&mut buf).is_ok();
        fss.push(if ok { probe(&buf) } else { None });
    }
    Ok((table, fss))
}

/// Discover every disk the kernel shows under `roots.sys/block`.
///
/// RAM disks, zram, empty loop devices and optical drives are left out.
pub fn discover(roots: &Roots) -> Result<Vec<Disk>> {
    let block_dir = roots.sys.join("block");
    let mounts = mounts(&roots.proc);
    let swaps = swaps(&roots.proc);
    let mut disks = Vec::new();
    for name in list_dir(&block_dir) {
        if name.starts_with("ram") || name.starts_with("zram") || name.starts_with("sr") || name.starts_with("dm-") || name.starts_with("md") {
            continue;
        }
        let block = block_dir.join(&name);
        let size_bytes = sysfs_size(&block.join("size"));
        if size_bytes == 0 {
            continue;
        }
        let link = fs::read_link(block.join("device")).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        let real = fs::canonicalize(&block).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        let bus = bus_of(&name, &format!("{link} {real}"));
        let num = |a: &str, d: u32| read_attr(&block.join(a)).and_then(|s| s.parse::<u32>().ok()).unwrap_or(d);
        let logical_sector = num("queue/logical_block_size", 512);
        let physical_sector = num("queue/physical_block_size", logical_sector);
        let devno = read_attr(&block.join("dev")).unwrap_or_default();
        let path = roots.dev.join(&name);

        // Kernel partitions: names, dev numbers, holders, mounts.
        let kparts: Vec<String> = list_dir(&block).into_iter().filter(|n| n.starts_with(&name) && block.join(n).join("partition").exists()).collect();
        let mut holders = list_dir(&block.join("holders"));
        let mut devnos = vec![devno.clone()];
        let mut dev_paths = vec![path.to_string_lossy().into_owned()];
        for kp in &kparts {
            holders.extend(list_dir(&block.join(kp).join("holders")));
            devnos.extend(read_attr(&block.join(kp).join("dev")));
            dev_paths.push(roots.dev.join(kp).to_string_lossy().into_owned());
        }
        let disk_mounts: Vec<String> = mounts.iter().filter(|(d, _)| devnos.contains(d)).map(|(_, m)| m.clone()).collect();
        let disk_swaps: Vec<String> = swaps.iter().filter(|s| dev_paths.contains(s)).cloned().collect();

        let (table, partitions, disk_guid) = match inspect(&path, logical_sector, size_bytes) {
            Ok((t, fss)) => {
                let parts = t
                    .partitions
                    .iter()
                    .zip(fss)
                    .map(|(p, fs)| Partition {
                        number: p.number,
                        name: kparts.iter().find(|k| read_attr(&block.join(k).join("partition")) == Some(p.number.to_string())).cloned(),
                        start_bytes: p.start_bytes,
                        size_bytes: p.size_bytes,
                        type_id: p.type_id.clone(),
                        type_name: p.type_name.clone(),
                        label: p.label.clone(),
                        part_uuid: p.part_uuid.clone(),
                        fs,
                    })
                    .collect();
                (t.kind.to_string(), parts, t.disk_guid)
            }
            Err(_) => ("unreadable".to_string(), Vec::new(), None),
        };

        let mut disk = Disk {
            name: name.clone(),
            path,
            devno,
            bus,
            model: model_of(&block),
            serial: serial_of(&block, bus),
            wwn: read_attr(&block.join("wwid")).or_else(|| read_attr(&block.join("device/wwid"))),
            size_bytes,
            logical_sector,
            physical_sector,
            rotational: num("queue/rotational", 0) == 1,
            removable: num("removable", 0) == 1,
            read_only: num("ro", 0) == 1,
            table,
            disk_guid,
            partitions,
            holders,
            mounts: disk_mounts,
            swaps: disk_swaps,
            roles: Vec::new(),
        };
        if disk.in_use() {
            disk.roles.push("in-use".into());
        }
        if disk.looks_like_system() {
            disk.roles.push("system".into());
        }
        disks.push(disk);
    }
    Ok(disks)
}

/// Tag the disk holding the partition with this PARTUUID as the `system` disk (the firmware's
/// BootCurrent entry points at it).
pub fn mark_system(disks: &mut [Disk], part_uuid: &str) {
    for d in disks.iter_mut() {
        let hit = d.partitions.iter().any(|p| p.part_uuid.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(part_uuid)));
        if hit && !d.roles.iter().any(|r| r == "system" || r == "boot-medium") {
            d.roles.push("system".into());
        }
    }
}

/// Tag the disk holding the partition with this PARTUUID as the boot medium.
pub fn mark_boot_medium(disks: &mut [Disk], part_uuid: &str) {
    for d in disks.iter_mut() {
        if d.partitions.iter().any(|p| p.part_uuid.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(part_uuid))) {
            d.roles.retain(|r| r != "system");
            d.roles.insert(0, "boot-medium".into());
        }
    }
}

/// `1.5 GiB`-style sizes.
pub fn human_bytes(b: u64) -> String {
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
        format!("{v:.1} {}", UNITS[i])
    }
}

/// Version of the `sysclone disks --json` document (docs/disks-json.md).
pub const JSON_VERSION: u32 = 1;

/// The `sysclone disks --json` document.
pub fn to_json(disks: &[Disk], pretty: bool) -> String {
    // `schema` is the name every sysclone JSON document uses (docs/json.md); `version` stays.
    let doc = serde_json::json!({ "schema": JSON_VERSION, "version": JSON_VERSION, "disks": disks });
    if pretty {
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    } else {
        doc.to_string()
    }
}

/// The table `sysclone disks` prints.
pub fn format_table(disks: &[Disk]) -> String {
    let mut s = String::new();
    for d in disks {
        s.push_str(&format!(
            "{:<9} {:<6} {:<24} serial={:<16} {:>10} ({} bytes) {}/{} {} {}{}{}{}\n",
            d.name,
            d.bus.as_str(),
            d.model.as_deref().unwrap_or("-"),
            d.serial.as_deref().unwrap_or("-"),
            human_bytes(d.size_bytes),
            d.size_bytes,
            d.logical_sector,
            d.physical_sector,
            d.table,
            if d.read_only { "ro " } else { "" },
            if d.removable { "removable " } else { "" },
            if d.rotational { "hdd " } else { "" },
            if d.roles.is_empty() { String::new() } else { format!("[{}]", d.roles.join(",")) }
        ));
        if let Some(w) = &d.wwn {
            s.push_str(&format!("          wwn={w}\n"));
        }
        for p in &d.partitions {
            let used = p.fs.as_ref().and_then(|f| f.used_bytes).map(|u| format!(" used={}", human_bytes(u))).unwrap_or_default();
            s.push_str(&format!(
                "  {:>2} {:<12} {:<24} {:<8} {:>10}{used} label={} partuuid={} uuid={}\n",
                p.number,
                p.name.as_deref().unwrap_or("-"),
                p.type_name,
                p.fs.as_ref().map(|f| f.kind.as_str()).unwrap_or("-"),
                human_bytes(p.size_bytes),
                p.label.as_deref().or(p.fs.as_ref().and_then(|f| f.label.as_deref())).unwrap_or("-"),
                p.part_uuid.as_deref().unwrap_or("-"),
                p.fs.as_ref().and_then(|f| f.uuid.as_deref()).unwrap_or("-"),
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_names() {
        assert_eq!(bus_of("nvme0n1", ""), Bus::Nvme);
        assert_eq!(bus_of("sda", "../../devices/pci0000:00/0000:00:1f.2/ata1/host0"), Bus::Sata);
        assert_eq!(bus_of("sdb", "../../devices/pci0000:00/0000:00:04.0/usb2/2-1"), Bus::Usb);
        assert_eq!(bus_of("sdc", "../../devices/pci0000:00/0000:00:05.0/virtio3/host2"), Bus::Scsi);
        assert_eq!(bus_of("vda", ""), Bus::Virtio);
    }

    #[test]
    fn human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(256 << 20), "256 MiB");
        assert_eq!(human_bytes(1536 << 20), "1.5 GiB");
    }

    #[test]
    fn discovers_a_fake_sysfs_tree() {
        let t = tempfile::tempdir().unwrap();
        let sys = t.path().join("sys");
        let dev = t.path().join("dev");
        let proc = t.path().join("proc");
        let vda = sys.join("block/vda");
        fs::create_dir_all(vda.join("queue")).unwrap();
        fs::create_dir_all(&dev).unwrap();
        fs::create_dir_all(proc.join("self")).unwrap();
        fs::write(vda.join("size"), "2048\n").unwrap();
        fs::write(vda.join("serial"), "VSER1\n").unwrap();
        fs::write(vda.join("dev"), "254:0\n").unwrap();
        fs::write(vda.join("queue/logical_block_size"), "512\n").unwrap();
        fs::write(dev.join("vda"), vec![0u8; 2048 * 512]).unwrap();
        fs::write(proc.join("self/mountinfo"), "22 1 254:0 / /mnt rw - ext4 /dev/vda rw\n").unwrap();
        let disks = discover(&Roots { sys, dev, proc }).unwrap();
        assert_eq!(disks.len(), 1);
        let d = &disks[0];
        assert_eq!((d.bus, d.serial.as_deref(), d.size_bytes, d.table.as_str()), (Bus::Virtio, Some("VSER1"), 1 << 20, "none"));
        assert_eq!(d.mounts, vec!["/mnt".to_string()]);
        assert_eq!(d.roles, vec!["in-use".to_string()]);
    }
}
