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
    /// udev-style `/dev/disk/by-id` names, built from sysfs (no udev needed).
    pub by_id: Vec<String>,
    /// udev-style `/dev/disk/by-path` names, built from sysfs.
    pub by_path: Vec<String>,
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
    /// What is wrong with the disk's partition table, in words (partitions beyond the disk
    /// or overlapping, a backup that is missing or differs); filled by whoever can check it
    /// (`sysclone_init::run::disks_now`, through `sysclone_layout::check_table`).
    pub warnings: Vec<String>,
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

/// A string as udev puts it in a link name: whitespace runs become one `_` (ends trimmed),
/// anything outside `0-9A-Za-z#+-.:=@_` becomes `_`.
fn id_text(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join("_")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "#+-.:=@_".contains(c) { c } else { '_' })
        .collect()
}

/// Model and serial from the ATA IDENTIFY data the kernel shows as SCSI VPD page 0x89
/// (the whole model: the SCSI model attribute is cut to 16 characters).
fn ata_identify(block: &Path) -> Option<(String, String)> {
    let v = fs::read(block.join("device/vpd_pg89")).ok()?;
    let id = v.get(60..60 + 512)?;
    // ATA strings: words of two bytes, each word's bytes swapped.
    let word_text = |from: usize, to: usize| -> String {
        let b: Vec<u8> = id[from * 2..to * 2].chunks(2).flat_map(|w| [w[1], w[0]]).collect();
        String::from_utf8_lossy(&b).trim().to_string()
    };
    let (serial, model) = (word_text(10, 20), word_text(27, 47));
    (!model.is_empty() && !serial.is_empty()).then_some((model, serial))
}

/// The LUN's identifier from SCSI VPD page 0x83 as udev's scsi_id names it: a type digit,
/// then NAA / EUI-64 in hex, a T10 vendor ID as text, or vendor + model + a vendor-specific
/// ID; `None` when the page has none of these.
fn scsi_page83_id(block: &Path, vendor: &str, model: &str) -> Option<String> {
    let v = fs::read(block.join("device/vpd_pg83")).ok()?;
    let mut ids: Vec<(u8, String)> = Vec::new();
    let mut o = 4;
    while o + 4 <= v.len() {
        let (code_set, assoc, kind, len) = (v[o] & 0x0f, (v[o + 1] >> 4) & 3, v[o + 1] & 0x0f, v[o + 3] as usize);
        let Some(d) = v.get(o + 4..o + 4 + len) else { break };
        o += 4 + len;
        if assoc != 0 || d.is_empty() {
            continue;
        }
        let text = if code_set == 2 || code_set == 3 { String::from_utf8_lossy(d).trim_end_matches('\0').to_string() } else { d.iter().map(|b| format!("{b:02x}")).collect() };
        match kind {
            3 => ids.push((0, format!("3{text}"))),
            2 => ids.push((1, format!("2{text}"))),
            1 => ids.push((2, format!("1{text}"))),
            0 => ids.push((3, format!("0{vendor:<8}{model:<16}{text}"))),
            _ => {}
        }
    }
    ids.into_iter().min_by_key(|(rank, _)| *rank).map(|(_, t)| t)
}

/// udev-style `/dev/disk/by-id` names of a disk, from what sysfs shows.
fn by_id_names(block: &Path, bus: Bus, model: Option<&str>, serial: Option<&str>, wwn: Option<&str>) -> Vec<String> {
    let dev = block.join("device");
    let mut v = Vec::new();
    match bus {
        Bus::Virtio => v.extend(serial.map(|s| format!("virtio-{}", id_text(s)))),
        Bus::Nvme => {
            if let (Some(m), Some(s)) = (model, serial) {
                v.push(format!("nvme-{}_{}", id_text(m), id_text(s)));
            }
            v.extend(wwn.map(|w| format!("nvme-{}", id_text(w))));
        }
        Bus::Sata => {
            let (m, s) = ata_identify(block).unwrap_or_else(|| (model.unwrap_or_default().to_string(), serial.unwrap_or_default().to_string()));
            if !m.is_empty() && !s.is_empty() {
                v.push(format!("ata-{}_{}", id_text(&m), id_text(&s)));
            }
        }
        Bus::Usb => {
            let vendor = read_attr(&dev.join("vendor")).unwrap_or_default();
            let product = read_attr(&dev.join("model")).unwrap_or_default();
            let lun = fs::canonicalize(&dev).ok().and_then(|p| p.file_name().and_then(|n| n.to_str()).and_then(|n| n.rsplit(':').next().map(str::to_string)));
            if let Some(s) = serial {
                v.push(format!("usb-{}_{}_{}-0:{}", id_text(&vendor), id_text(&product), id_text(s), lun.unwrap_or_else(|| "0".into())));
            }
        }
        Bus::Scsi => {
            let vendor = read_attr(&dev.join("vendor")).unwrap_or_default();
            let product = read_attr(&dev.join("model")).unwrap_or_default();
            match scsi_page83_id(block, &vendor, &product) {
                Some(id) => v.push(format!("scsi-{}", id_text(&id))),
                None => v.extend(serial.map(|s| format!("scsi-S{}_{}_{}", id_text(&vendor), id_text(&product), id_text(s)))),
            }
        }
        Bus::Mmc => {
            if let (Some(n), Some(s)) = (read_attr(&dev.join("name")), serial) {
                v.push(format!("mmc-{}_{}", id_text(&n), id_text(s)));
            }
        }
        Bus::Loop | Bus::Other => {}
    }
    // A SCSI/ATA world-wide name: `naa.5000c500a1b2c3d4` is `wwn-0x5000c500a1b2c3d4`.
    if let Some(naa) = wwn.and_then(|w| w.strip_prefix("naa.")) {
        v.push(format!("wwn-0x{}", naa.to_ascii_lowercase()));
    }
    v.dedup();
    v
}

/// udev-style `/dev/disk/by-path` names, from where the disk sits under `/sys/devices`
/// (`real`, the block directory's canonical path).
fn by_path_names(real: &Path, name: &str, bus: Bus) -> Vec<String> {
    let comps: Vec<String> = real.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    let is_pci = |c: &str| {
        let b = c.as_bytes();
        b.len() == 12 && b[4] == b':' && b[7] == b':' && b[10] == b'.' && c.chars().filter(|ch| ch.is_ascii_hexdigit()).count() == 9
    };
    let Some(pi) = comps.iter().rposition(|c| is_pci(c)) else { return Vec::new() };
    let pci = format!("pci-{}", comps[pi]);
    let rest = &comps[pi + 1..];
    // SCSI address H:C:T:L with the host numbered from the first host on its controller.
    let scsi = || -> Option<String> {
        let hi = rest.iter().position(|c| c.starts_with("host") && c[4..].chars().all(|d| d.is_ascii_digit()))?;
        let host: u32 = rest[hi][4..].parse().ok()?;
        let parent: PathBuf = comps[..pi + 1 + hi].iter().collect();
        let base = list_dir(&parent).iter().filter_map(|n| n.strip_prefix("host").and_then(|h| h.parse::<u32>().ok())).min().unwrap_or(host);
        let hctl = rest.iter().rev().find(|c| c.split(':').count() == 4 && c.split(':').all(|p| !p.is_empty() && p.chars().all(|d| d.is_ascii_digit())))?;
        let f: Vec<&str> = hctl.split(':').collect();
        Some(format!("scsi-{}:{}:{}:{}", host - base, f[1], f[2], f[3]))
    };
    match bus {
        Bus::Nvme => {
            let nsid = fs::read_to_string(real.join("nsid")).ok().map(|s| s.trim().to_string()).or_else(|| name.rsplit('n').next().map(str::to_string)).unwrap_or_else(|| "1".into());
            vec![format!("{pci}-nvme-{nsid}")]
        }
        Bus::Sata => match rest.iter().find_map(|c| c.strip_prefix("ata").filter(|n| n.chars().all(|d| d.is_ascii_digit()))) {
            Some(port) => vec![format!("{pci}-ata-{port}"), format!("{pci}-ata-{port}.0")],
            None => vec![pci],
        },
        Bus::Usb => {
            // The USB interface: `2-1.3:1.0` is port path 1.3, configuration.interface 1.0.
            let usb = rest.iter().find_map(|c| {
                let (dev, cfg) = c.split_once(':')?;
                let (_, ports) = dev.split_once('-')?;
                Some(format!("usb-0:{ports}:{cfg}"))
            });
            match (usb, scsi()) {
                (Some(u), Some(s)) => vec![format!("{pci}-{u}-{s}")],
                (Some(u), None) => vec![format!("{pci}-{u}")],
                _ => vec![pci],
            }
        }
        Bus::Scsi => scsi().map(|s| vec![format!("{pci}-{s}")]).unwrap_or_else(|| vec![pci]),
        Bus::Virtio => vec![pci.clone(), format!("virtio-{pci}")],
        Bus::Mmc => vec![pci],
        Bus::Loop | Bus::Other => Vec::new(),
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

        // ATA disks: the whole model from IDENTIFY (SCSI's model attribute keeps 16 characters).
        let model = if bus == Bus::Sata { ata_identify(&block).map(|(m, _)| m).or_else(|| model_of(&block)) } else { model_of(&block) };
        let serial = serial_of(&block, bus);
        let wwn = read_attr(&block.join("wwid")).or_else(|| read_attr(&block.join("device/wwid")));
        let mut disk = Disk {
            name: name.clone(),
            path,
            devno,
            bus,
            by_id: by_id_names(&block, bus, model.as_deref(), serial.as_deref(), wwn.as_deref()),
            by_path: by_path_names(Path::new(&real), &name, bus),
            model,
            serial,
            wwn,
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
            warnings: Vec::new(),
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
        for w in &d.warnings {
            s.push_str(&format!("          warning: {w}\n"));
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

    /// A disk in a fake sysfs: the block directory at `devices/<block>`, `/sys/block/<name>`
    /// linking to it, `device` linking to `devices/<device>`, and `attrs` written relative
    /// to the block directory (through the `device` link where they say so).
    fn fake(sys: &Path, block: &str, device: &str, attrs: &[(&str, &[u8])]) {
        let name = block.rsplit('/').next().unwrap();
        let dir = sys.join("devices").join(block);
        fs::create_dir_all(dir.join("queue")).unwrap();
        fs::create_dir_all(sys.join("devices").join(device)).unwrap();
        fs::create_dir_all(sys.join("block")).unwrap();
        std::os::unix::fs::symlink(sys.join("devices").join(device), dir.join("device")).unwrap();
        std::os::unix::fs::symlink(&dir, sys.join("block").join(name)).unwrap();
        fs::write(dir.join("size"), "2048\n").unwrap();
        for (k, v) in attrs {
            if let Some(parent) = dir.join(k).parent() {
                fs::create_dir_all(parent).unwrap();
            }
            fs::write(dir.join(k), v).unwrap();
        }
    }

    /// ATA IDENTIFY data wrapped in VPD page 0x89: strings are words with their bytes swapped.
    fn page89(model: &str, serial: &str) -> Vec<u8> {
        let mut v = vec![0u8; 60 + 512];
        let mut put = |word: usize, text: &str, words: usize| {
            let mut b = format!("{text:<width$}", width = words * 2).into_bytes();
            for w in b.chunks_mut(2) {
                w.swap(0, 1);
            }
            v[60 + word * 2..60 + (word + words) * 2].copy_from_slice(&b);
        };
        put(10, serial, 10);
        put(27, model, 20);
        v
    }

    /// VPD page 0x83 with one designator: `kind` 3 (NAA, binary) or 0 (vendor specific, ASCII).
    fn page83(kind: u8, id: &[u8]) -> Vec<u8> {
        let code_set = if kind == 0 { 2 } else { 1 };
        let mut v = vec![0, 0x83, 0, (4 + id.len()) as u8, code_set, kind, 0, id.len() as u8];
        v.extend_from_slice(id);
        v
    }

    /// by-id and by-path names built from sysfs, as udev would link them, on every bus.
    #[test]
    fn stable_names_from_sysfs() {
        let t = tempfile::tempdir().unwrap();
        let sys = t.path().join("sys");
        let pci = "pci0000:00";
        fake(&sys, &format!("{pci}/0000:00:04.0/nvme/nvme0/nvme0n1"), &format!("{pci}/0000:00:04.0/nvme/nvme0"), &[
            ("device/model", b"QEMU NVMe Ctrl      \n"),
            ("device/serial", b"SRC1\n"),
            ("wwid", b"eui.0011223344556677\n"),
            ("nsid", b"1\n"),
        ]);
        let sata = format!("{pci}/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0");
        fake(&sys, &format!("{sata}/block/sda"), &sata, &[
            ("device/vendor", b"ATA     \n"),
            ("device/model", b"Long SATA Model \n"),
            ("device/vpd_pg80", b"\0\x80\0\x05SATA1"),
            ("device/vpd_pg89", &page89("Long SATA Model Name 2024", "SATA1")),
            ("device/wwid", b"naa.5000C500A1B2C3D4\n"),
        ]);
        let usb = format!("{pci}/0000:00:02.0/usb2/2-1/2-1:1.0/host5/target5:0:0/5:0:0:0");
        fake(&sys, &format!("{usb}/block/sdb"), &usb, &[("device/vendor", b"QEMU    \n"), ("device/model", b"QEMU HARDDISK   \n")]);
        fs::write(sys.join(format!("devices/{pci}/0000:00:02.0/usb2/2-1/serial")), "STICK1\n").unwrap();
        fs::write(sys.join(format!("devices/{pci}/0000:00:02.0/usb2/2-1/idVendor")), "46f4\n").unwrap();
        let scsi = format!("{pci}/0000:00:05.0/virtio3/host2/target2:0:1:0/2:0:1:0");
        fake(&sys, &format!("{scsi}/block/sdc"), &scsi, &[
            ("device/vendor", b"SYSCLONE\n"),
            ("device/model", b"TWIN            \n"),
            ("device/vpd_pg80", b"\0\x80\0\x05SCSI1"),
            ("device/vpd_pg83", &page83(0, b"SCSI1")),
        ]);
        let naa = format!("{pci}/0000:00:05.0/virtio3/host2/target2:0:2:0/2:0:2:0");
        fake(&sys, &format!("{naa}/block/sdd"), &naa, &[
            ("device/vendor", b"SYSCLONE\n"),
            ("device/model", b"TWIN\n"),
            ("device/vpd_pg80", b"\0\x80\0\x05SCSI2"),
            ("device/vpd_pg83", &page83(3, &[0x50, 0x00, 0xc5, 0x00, 0xa1, 0xb2, 0xc3, 0xd5])),
            ("device/wwid", b"naa.5000c500a1b2c3d5\n"),
        ]);
        fake(&sys, &format!("{pci}/0000:00:03.0/virtio1/block/vda"), &format!("{pci}/0000:00:03.0/virtio1"), &[("serial", b"VSER1\n")]);
        let roots = Roots { sys, dev: t.path().join("dev"), proc: t.path().join("proc") };
        let disks = discover(&roots).unwrap();
        let names = |n: &str| {
            let d = disks.iter().find(|d| d.name == n).unwrap_or_else(|| panic!("no {n}: {disks:#?}"));
            (d.by_id.clone(), d.by_path.clone(), d.bus)
        };
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(names("nvme0n1"), (v(&["nvme-QEMU_NVMe_Ctrl_SRC1", "nvme-eui.0011223344556677"]), v(&["pci-0000:00:04.0-nvme-1"]), Bus::Nvme));
        assert_eq!(
            names("sda"),
            (v(&["ata-Long_SATA_Model_Name_2024_SATA1", "wwn-0x5000c500a1b2c3d4"]), v(&["pci-0000:00:1f.2-ata-3", "pci-0000:00:1f.2-ata-3.0"]), Bus::Sata)
        );
        assert_eq!(names("sdb"), (v(&["usb-QEMU_QEMU_HARDDISK_STICK1-0:0"]), v(&["pci-0000:00:02.0-usb-0:1:1.0-scsi-0:0:0:0"]), Bus::Usb));
        assert_eq!(names("sdc"), (v(&["scsi-0SYSCLONETWIN_SCSI1"]), v(&["pci-0000:00:05.0-scsi-0:0:1:0"]), Bus::Scsi));
        assert_eq!(names("sdd"), (v(&["scsi-35000c500a1b2c3d5", "wwn-0x5000c500a1b2c3d5"]), v(&["pci-0000:00:05.0-scsi-0:0:2:0"]), Bus::Scsi));
        assert_eq!(names("vda"), (v(&["virtio-VSER1"]), v(&["pci-0000:00:03.0", "virtio-pci-0000:00:03.0"]), Bus::Virtio));
        // The whole ATA model from IDENTIFY, the serial from page 0x80.
        let sda = disks.iter().find(|d| d.name == "sda").unwrap();
        assert_eq!((sda.model.as_deref(), sda.serial.as_deref()), (Some("Long SATA Model Name 2024"), Some("SATA1")));
        // Selectors find disks by these names with no /dev/disk links at all.
        for (sel, want) in [
            ("by-id=ata-Long_SATA_Model_Name_2024_SATA1", "sda"),
            ("by-id=/dev/disk/by-id/wwn-0x5000c500a1b2c3d5", "sdd"),
            ("by-path=pci-0000:00:02.0-usb-0:1:1.0-scsi-0:0:0:0", "sdb"),
            ("by-path=virtio-pci-0000:00:03.0", "vda"),
            ("wwn=EUI.0011223344556677", "nvme0n1"),
        ] {
            assert_eq!(crate::Selector::parse(sel).unwrap().select(&disks, &[], &roots.dev).unwrap().name, want, "{sel}");
        }
        assert!(crate::Selector::parse("by-id=virtio-NOPE").unwrap().select(&disks, &[], &roots.dev).is_err());
    }

    fn part(n: u32, type_name: &str, uuid: &str) -> Partition {
        Partition { number: n, name: None, start_bytes: 0, size_bytes: 1, type_id: String::new(), type_name: type_name.into(), label: None, part_uuid: Some(uuid.into()), fs: None }
    }

    fn bare(name: &str, parts: Vec<Partition>) -> Disk {
        Disk {
            name: name.into(),
            path: format!("/dev/{name}").into(),
            bus: Bus::Nvme,
            size_bytes: 1 << 30,
            logical_sector: 512,
            physical_sector: 512,
            table: "gpt".into(),
            partitions: parts,
            ..Default::default()
        }
    }

    /// `system` needs an ESP and another partition; the boot medium is never `system`, and
    /// BootCurrent's disk is `system` even without a second partition.
    #[test]
    fn roles_and_their_precedence() {
        assert!(bare("a", vec![part(1, "EFI System", "e1"), part(2, "Linux root (x86-64)", "r1")]).looks_like_system());
        assert!(!bare("b", vec![part(1, "EFI System", "e2")]).looks_like_system());
        assert!(!bare("c", vec![part(1, "Linux filesystem", "x"), part(2, "Linux swap", "y")]).looks_like_system());

        let mut ds = vec![
            bare("stick", vec![part(1, "EFI System", "aaaa")]),
            bare("sys", vec![part(1, "EFI System", "bbbb"), part(2, "Linux root (x86-64)", "cccc")]),
            bare("lone", vec![part(1, "EFI System", "dddd")]),
        ];
        ds[1].roles.push("system".into());
        // BootCurrent names the stick (the firmware booted it): it stays the boot medium only,
        // whichever order the marks come in.
        mark_system(&mut ds, "AAAA");
        mark_boot_medium(&mut ds, "aaaa");
        mark_system(&mut ds, "aaaa");
        assert_eq!(ds[0].roles, vec!["boot-medium".to_string()]);
        // A disk with only an ESP that BootCurrent points at is a system; marking twice adds nothing.
        mark_system(&mut ds, "DDDD");
        mark_system(&mut ds, "dddd");
        assert_eq!(ds[2].roles, vec!["system".to_string()]);
        assert_eq!(ds[1].roles, vec!["system".to_string()]);
        // A PARTUUID on no disk marks nothing.
        mark_boot_medium(&mut ds, "ffff");
        assert!(ds.iter().filter(|d| d.roles.iter().any(|r| r == "boot-medium")).count() == 1);
        // role=system with two system disks is ambiguous; with the boot medium it is never picked.
        let e = crate::Selector::parse("role=system").unwrap().select(&ds, &[], Path::new("/x")).unwrap_err().to_string();
        assert!(e.contains("matches 2 disks") && e.contains("sys") && e.contains("lone"), "{e}");
        assert_eq!(crate::Selector::parse("role=system,name=sys").unwrap().select(&ds, &[], Path::new("/x")).unwrap().name, "sys");
        // A boot medium that held a system (ESP + root) loses the system role to boot-medium.
        mark_boot_medium(&mut ds, "cccc");
        assert_eq!(ds[1].roles, vec!["boot-medium".to_string()]);
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
