//! After a clone (or migration, or restore): UEFI boot entries for the target disk.
//!
//! [`entry_for_target`] saves the boot variables to the report, makes one entry on the target
//! for every entry that started something on the source disk (or one entry for the best
//! loader on the target's ESP), and applies the policy: target entries first in `BootOrder`,
//! only `BootNext`, only added, or nothing. With `first`, and wherever NVRAM cannot be
//! written, it makes sure the removable-media path `\EFI\BOOT\BOOTX64.EFI` on the target's
//! ESP starts the system's loader as well (never replacing a different file silently).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use sysclone_disk::{Disk, GuardContext};
use sysclone_efi::{
    boot_var_name, guid, hex, parse_boot_csv, path_to_string, put_first, DevicePathNode, EfiVars,
    HardDrive, HdSignature, LoadOption, SavedVar, VarSpace,
};
use sysclone_media::usbimage::{add_files_to_fat, read_esp_file, read_esp_files, EspFile};

use crate::console::say;
use crate::job::BootEntry;

/// The removable-media loader path on x86-64, as a FAT path.
pub const FALLBACK_LOADER: &str = "EFI/BOOT/BOOTX64.EFI";

/// Named loaders, most preferred first, when no source entry tells which one to start.
const PREFERRED: &[&str] = &["shimx64.efi", "grubx64.efi", "systemd-bootx64.efi", "bootmgfw.efi"];

/// EFI binaries that are never "the loader" of a system (MOK manager, shim's fallback).
const HELPERS: &[&str] = &["mmx64.efi", "fbx64.efi"];

/// Files copied next to shim when shim becomes the removable-media loader (it starts
/// `grubx64.efi` from its own directory; `fbx64.efi` recreates entries from the CSV).
const SHIM_SIBLINGS: &[&str] = &["grubx64.efi", "mmx64.efi", "fbx64.efi"];

/// FAT path (`/`, no leading separator) of a loader path in either notation.
fn fat_path(p: &str) -> String {
    p.replace('\\', "/").trim_start_matches('/').to_string()
}

/// Firmware notation (`\EFI\…`) of a FAT path.
fn efi_path(p: &str) -> String {
    format!("\\{}", fat_path(p).replace('/', "\\"))
}

fn file_name_lc(p: &str) -> String {
    fat_path(p).rsplit('/').next().unwrap_or_default().to_ascii_lowercase()
}

fn in_boot_dir(p: &str) -> bool {
    fat_path(p).to_ascii_lowercase().starts_with("efi/boot/")
}

/// The file of `files` (FAT paths) that is `path`, compared case-insensitively as FAT does.
fn find_file<'a>(files: &'a [String], path: &str) -> Option<&'a String> {
    let want = fat_path(path).to_ascii_lowercase();
    files.iter().find(|f| fat_path(f).to_ascii_lowercase() == want)
}

/// The loader an entry for this ESP should start when no source entry tells: shim, GRUB,
/// systemd-boot, Windows Boot Manager (outside `EFI/BOOT`), then any other `.efi` outside
/// `EFI/BOOT` (not the MOK manager or shim's fallback), then `EFI/BOOT/BOOTX64.EFI`.
pub fn choose_loader(files: &[String]) -> Option<String> {
    let efi: Vec<&String> = files
        .iter()
        .filter(|f| fat_path(f).to_ascii_lowercase().starts_with("efi/") && file_name_lc(f).ends_with(".efi"))
        .collect();
    for want in PREFERRED {
        if let Some(f) = efi.iter().find(|f| !in_boot_dir(f) && file_name_lc(f) == *want) {
            return Some((*f).clone());
        }
    }
    if let Some(f) = efi.iter().find(|f| !in_boot_dir(f) && !HELPERS.contains(&file_name_lc(f).as_str())) {
        return Some((*f).clone());
    }
    find_file(files, FALLBACK_LOADER).cloned()
}

/// A loader, label and arguments from a shim CSV (`EFI/<vendor>/BOOTX64.CSV` or `BOOT.CSV`) on
/// the ESP whose loader file exists: (loader FAT path, label, optional data, CSV path).
fn csv_choice(dev: &Path, start: u64, len: u64, files: &[String], notes: &mut Vec<String>) -> Option<(String, String, Vec<u8>, String)> {
    let mut csvs: Vec<&String> = files
        .iter()
        .filter(|f| {
            let p = fat_path(f).to_ascii_lowercase();
            let parts: Vec<&str> = p.split('/').collect();
            parts.len() == 3 && parts[0] == "efi" && parts[1] != "boot" && (parts[2] == "bootx64.csv" || parts[2] == "boot.csv")
        })
        .collect();
    csvs.sort();
    for csv in csvs {
        let entries = match read_esp_file(dev, start, len, csv).and_then(|b| parse_boot_csv(&b)) {
            Ok(e) => e,
            Err(e) => {
                notes.push(format!("{csv} is not a usable shim CSV ({e:#}); ignored"));
                continue;
            }
        };
        let dir = fat_path(csv).rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default();
        for e in entries {
            let want = format!("{dir}/{}", e.filename);
            match find_file(files, &want) {
                Some(f) => return Some((f.clone(), e.label.clone(), e.optional_data(), csv.clone())),
                None => notes.push(format!("{csv} names {}, which is not on the ESP; line ignored", e.filename)),
            }
        }
    }
    None
}

/// One partition of the target as it is now (after the copy).
#[derive(Debug, Clone)]
struct Part {
    number: u32,
    start: u64,
    size: u64,
    uuid: Option<String>,
    esp: bool,
}

/// The target's partitions, read again from the device: the `Disk` was discovered before the
/// copy, and a migration gives the target another layout.
fn target_partitions(tgt: &Disk, src: &Disk, notes: &mut Vec<String>) -> Vec<Part> {
    let from_disk = |d: &Disk| -> Vec<Part> {
        d.partitions
            .iter()
            .map(|p| Part { number: p.number, start: p.start_bytes, size: p.size_bytes, uuid: p.part_uuid.as_deref().map(str::to_ascii_lowercase), esp: p.type_name == "EFI System" })
            .collect()
    };
    let read = || -> Result<Vec<Part>> {
        let mut f = File::open(&tgt.path).with_context(|| format!("opening {}", tgt.path.display()))?;
        let t = sysclone_disk::table::read_table(&mut f, tgt.logical_sector, tgt.size_bytes)?;
        Ok(t.partitions
            .into_iter()
            .map(|p| Part { number: p.number, start: p.start_bytes, size: p.size_bytes, uuid: p.part_uuid.map(|u| u.to_ascii_lowercase()), esp: p.type_name == "EFI System" })
            .collect())
    };
    match read() {
        Ok(p) if !p.is_empty() => p,
        Ok(_) => {
            notes.push(format!("no partitions found on {} after the copy; assuming the source's layout", tgt.name));
            from_disk(src)
        }
        Err(e) => {
            notes.push(format!("could not read the partition table of {} after the copy ({e:#}); assuming the source's layout", tgt.name));
            from_disk(src)
        }
    }
}

/// Options of [`entry_for_target`].
#[derive(Debug, Clone, Copy)]
pub struct BootOptions<'a> {
    /// first | next | add | none.
    pub policy: BootEntry,
    /// The efivarfs directory.
    pub efivars: &'a Path,
    /// Delete entries whose GPT partition is on no attached disk.
    pub prune_stale: bool,
    /// Every attached disk (for `prune_stale`).
    pub disks: &'a [Disk],
    /// The job's write guard, for writing the fallback loader onto the target's ESP. Without
    /// it only regular files (images) are written.
    pub guard: Option<&'a GuardContext>,
}

/// A boot entry made (or reused) for the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatedEntry {
    /// Entry number; `None` when NVRAM could not be written.
    pub number: Option<u16>,
    /// `Boot####`, or empty when not written.
    pub name: String,
    pub description: String,
    /// The loader, firmware notation (`\EFI\…`).
    pub loader: Option<String>,
    /// Device path, efibootmgr notation.
    pub device_path: String,
    /// Optional data, hex.
    pub optional_data: String,
    /// What it was made from: `Boot0001` (a source entry), a shim CSV, or `loader search`.
    pub from: String,
    /// An identical entry existed and was used.
    pub reused: bool,
    /// The `Boot####` variable was written.
    pub written: bool,
}

/// What happened to `\EFI\BOOT\BOOTX64.EFI` (with policy `first`, or when NVRAM could not
/// be written).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FallbackCopy {
    /// The loader meant to start (FAT path).
    pub loader: String,
    /// `copied`, `present` (already that loader), `kept-different` (another file is there
    /// and was not overwritten), or `none` (no loader to copy).
    pub action: String,
    /// Files written to the ESP.
    pub files: Vec<String>,
}

/// The report of the post-clone boot policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BootReport {
    /// first | next | add | none.
    pub policy: String,
    /// `uefi`, or `bios` for MBR/BIOS systems.
    pub firmware: String,
    /// `written`, `unchanged`, `unavailable` (no efivarfs), `failed`, or `not-touched`.
    pub nvram: String,
    /// Every Boot####, BootOrder, BootNext, BootCurrent and Timeout before any change.
    pub saved: Vec<SavedVar>,
    pub old_order: Vec<u16>,
    pub new_order: Vec<u16>,
    pub old_next: Option<u16>,
    pub new_next: Option<u16>,
    /// Entries for the target, the preferred one first.
    pub created: Vec<CreatedEntry>,
    /// Entries removed by `--prune-stale`.
    pub pruned: Vec<String>,
    /// Variables written or deleted, in order.
    pub written: Vec<String>,
    /// NVRAM space before the changes, where the kernel reports it.
    pub space: Option<VarSpace>,
    /// The removable-media fallback: with policy `first`, or when NVRAM was not written.
    pub fallback: Option<FallbackCopy>,
    pub notes: Vec<String>,
}

impl BootReport {
    /// The preferred entry made for the target.
    pub fn first_entry(&self) -> Option<&CreatedEntry> {
        self.created.first()
    }
}

fn policy_name(p: BootEntry) -> &'static str {
    match p {
        BootEntry::First => "first",
        BootEntry::Next => "next",
        BootEntry::Add => "add",
        BootEntry::None => "none",
    }
}

fn order_text(order: &[u16]) -> String {
    if order.is_empty() {
        "(empty)".into()
    } else {
        order.iter().map(|n| format!("{n:04X}")).collect::<Vec<_>>().join(",")
    }
}

fn opt_text(n: Option<u16>) -> String {
    n.map(|n| format!("{n:04X}")).unwrap_or_else(|| "-".into())
}

/// `label` without a " (clone on …)" suffix an earlier run added.
fn base_label(label: &str) -> &str {
    match label.rfind(" (clone on ") {
        Some(i) if label.ends_with(')') => &label[..i],
        _ => label,
    }
}

/// The label of the target's copy of a source entry labelled `label`.
fn clone_label(label: &str, who: &str) -> String {
    if label.starts_with("sysclone clone on ") {
        format!("sysclone clone on {who}")
    } else {
        format!("{} (clone on {who})", base_label(label))
    }
}

/// An entry to make.
struct Wanted {
    opt: LoadOption,
    from: String,
    /// The loader as a FAT path, when it is on the target's ESP.
    esp_loader: Option<String>,
}

/// NVRAM bytes that writing Boot#### variables of these encoded sizes (and BootOrder or
/// BootNext) takes in the firmware's store: each variable's data plus about 128 bytes of
/// name and header, and 256 bytes for the order variables.
pub fn nvram_needed(entry_sizes: &[usize]) -> u64 {
    entry_sizes.iter().map(|&n| n as u64 + 128).sum::<u64>() + 256
}

/// Why the entries cannot be written: `Some(reason)` when the free space the firmware
/// reports (`space`) is below [`nvram_needed`] for the entries that are new (`entry_sizes`;
/// an identical entry that already exists is reused and costs nothing).
pub fn space_shortfall(space: &VarSpace, entry_sizes: &[usize]) -> Option<String> {
    let need = nvram_needed(entry_sizes);
    (space.free_bytes < need).then(|| format!("only {} bytes of NVRAM free, about {need} needed", space.free_bytes))
}

/// Makes the boot entries for `tgt`, a copy of `src`, following `opts.policy`, and reports
/// what it found and did. The variables are saved (hex) in the report before anything is
/// written; only variables whose bytes change are written. With `first`, and whenever NVRAM
/// cannot be written, the removable-media path `\EFI\BOOT\BOOTX64.EFI` on the target's ESP
/// is made to start the chosen loader too (for firmware that ignores or loses its NVRAM);
/// a different file already there is kept and the report says so.
pub fn entry_for_target(tgt: &Disk, src: &Disk, opts: &BootOptions) -> Result<BootReport> {
    let space = EfiVars::new(opts.efivars).space();
    entry_with_space(tgt, src, opts, space)
}

/// [`entry_for_target`] with the NVRAM space the firmware reports (`None`: not reported).
fn entry_with_space(tgt: &Disk, src: &Disk, opts: &BootOptions, space: Option<VarSpace>) -> Result<BootReport> {
    let mut r = BootReport { policy: policy_name(opts.policy).into(), firmware: "uefi".into(), nvram: "not-touched".into(), ..Default::default() };
    let src_esp = src.partitions.iter().find(|p| p.type_name == "EFI System");
    if src.table == "mbr" || src_esp.is_none() {
        r.firmware = "bios".into();
        let note = if src.table == "mbr" {
            "MBR/BIOS system: boot code kept, no NVRAM to change".to_string()
        } else {
            format!("no EFI System partition on {} ({} table): BIOS system, boot code kept, no NVRAM to change", src.name, src.table)
        };
        say(&note);
        r.notes.push(note);
        return Ok(r);
    }
    let who = tgt.serial.clone().unwrap_or_else(|| tgt.name.clone());

    // The variables as they are, saved before anything changes.
    let vars = EfiVars::new(opts.efivars);
    let available = vars.is_available();
    let mut entries = Vec::new();
    let mut current = None;
    let mut failure: Option<String> = None;
    if available {
        match vars.snapshot() {
            Ok(saved) => r.saved = saved,
            Err(e) => failure = Some(format!("could not save the boot variables before changing them: {e:#}")),
        }
        r.old_order = vars.boot_order().unwrap_or_else(|e| {
            r.notes.push(format!("{e:#}; treated as empty"));
            Vec::new()
        });
        r.old_next = vars.boot_next().unwrap_or(None);
        current = vars.boot_current().unwrap_or(None);
        entries = vars.boot_entries().unwrap_or_else(|e| {
            failure.get_or_insert(format!("{e:#}"));
            Vec::new()
        });
        say(&format!(
            "EFI variables before: BootCurrent {}, BootNext {}, BootOrder {}; {} variables saved in the report",
            opt_text(current),
            opt_text(r.old_next),
            order_text(&r.old_order),
            r.saved.len()
        ));
        for (n, e) in &entries {
            match e {
                Ok(o) => say(&format!("  Boot{n:04X}{} {}\t{}", if o.is_active() { '*' } else { ' ' }, o.description, path_to_string(&o.path))),
                Err(err) => {
                    say(&format!("  Boot{n:04X}! malformed, saved as hex"));
                    r.notes.push(format!("Boot{n:04X} is malformed ({err:#}); left alone"));
                }
            }
        }
    } else {
        r.notes.push(format!("no EFI variables at {} (not booted through UEFI, or efivarfs not mounted)", opts.efivars.display()));
    }
    r.new_order = r.old_order.clone();
    r.new_next = r.old_next;
    if opts.policy == BootEntry::None {
        r.notes.push("boot policy none: no EFI variable changed".into());
        return Ok(r);
    }

    // The target as it is now, and the files on its ESP.
    let parts = target_partitions(tgt, src, &mut r.notes);
    let src_esp_uuid = src_esp.and_then(|p| p.part_uuid.as_deref()).map(str::to_ascii_lowercase);
    let esp = parts
        .iter()
        .find(|p| p.esp && p.uuid.is_some() && p.uuid == src_esp_uuid)
        .or_else(|| parts.iter().find(|p| p.esp && Some(p.number) == src_esp.map(|e| e.number)))
        .or_else(|| parts.iter().find(|p| p.esp))
        .cloned()
        .ok_or_else(|| anyhow!("{} has no EFI System partition after the copy; no boot entry made", tgt.describe()))?;
    let files: Vec<String> = read_esp_files(&tgt.path, esp.start, esp.size)
        .with_context(|| format!("listing the files on the ESP of {}", tgt.describe()))?
        .into_iter()
        .filter(|e| !e.is_dir)
        .map(|e| e.path)
        .collect();
    let lbs = u64::from(tgt.logical_sector.max(1));
    let hd_for = |p: &Part| -> Result<HardDrive> {
        let uuid = p.uuid.as_deref().ok_or_else(|| anyhow!("partition {} of {} has no GUID", p.number, tgt.name))?;
        let sig = guid::guid_to_disk_bytes(uuid).with_context(|| format!("partition {} of {}", p.number, tgt.name))?;
        Ok(HardDrive::gpt(p.number, p.start / lbs, p.size / lbs, sig))
    };

    // One target entry per source entry: BootCurrent first, then BootOrder, then the rest.
    let old_order = r.old_order.clone();
    let rank = |n: u16| -> (usize, u16) {
        if Some(n) == current {
            (0, n)
        } else {
            (old_order.iter().position(|&m| m == n).map_or(usize::MAX, |i| i + 1), n)
        }
    };
    let mut sources: Vec<(u16, &LoadOption)> = entries.iter().filter_map(|(n, e)| e.as_ref().ok().map(|o| (*n, o))).collect();
    sources.sort_by_key(|(n, _)| rank(*n));
    let mut wanted: Vec<Wanted> = Vec::new();
    for (n, e) in sources {
        let Some(hd_pos) = e.path.iter().position(|x| matches!(x, DevicePathNode::HardDrive { .. })) else { continue };
        let Some(HardDrive { signature: HdSignature::Gpt(sig), .. }) = e.hard_drive() else { continue };
        let g = guid::guid_from_disk_bytes(&sig);
        let Some(sp) = src.partitions.iter().find(|p| p.part_uuid.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(&g))) else { continue };
        // An exact clone keeps the GUID; a migration may give the partition a new one.
        let Some(tp) = parts.iter().find(|p| p.uuid.as_deref() == Some(g.as_str())).or_else(|| parts.iter().find(|p| p.number == sp.number)) else {
            r.notes.push(format!("Boot{n:04X} \"{}\" starts partition {} of the source, which the target does not have; skipped", e.description, sp.number));
            continue;
        };
        let loader = e.file_path();
        let on_esp = tp.number == esp.number && tp.start == esp.start;
        let mut esp_loader = None;
        if let (Some(l), true) = (&loader, on_esp) {
            match find_file(&files, l) {
                Some(f) => esp_loader = Some(f.clone()),
                None => {
                    r.notes.push(format!("Boot{n:04X} \"{}\" starts {l}, which is not on the target's ESP; skipped", e.description));
                    continue;
                }
            }
        }
        let mut path = vec![DevicePathNode::from(hd_for(tp)?)];
        path.extend(e.path[hd_pos + 1..].iter().cloned());
        let opt = LoadOption { attributes: e.attributes, description: clone_label(&e.description, &who), path, optional_data: e.optional_data.clone() };
        if !wanted.iter().any(|w| w.opt.same_entry(&opt)) {
            wanted.push(Wanted { opt, from: boot_var_name(n), esp_loader });
        }
    }
    if wanted.is_empty() {
        let csv = csv_choice(&tgt.path, esp.start, esp.size, &files, &mut r.notes);
        let chosen = match csv {
            Some((loader, label, data, csv)) => Some((loader, format!("{label} (clone on {who})"), data, csv)),
            None => choose_loader(&files).map(|l| (l, format!("sysclone clone on {who}"), Vec::new(), "loader search".to_string())),
        };
        match chosen {
            Some((loader, description, data, from)) => {
                let mut opt = LoadOption::disk_entry(&description, hd_for(&esp)?, &efi_path(&loader));
                opt.optional_data = data;
                wanted.push(Wanted { opt, from, esp_loader: Some(loader) });
            }
            None => r.notes.push(format!("no EFI loader found on the ESP of {}; no boot entry made", tgt.describe())),
        }
    }

    // NVRAM: space, then the entries, pruning and the order.
    if !available {
        failure = Some(format!("no EFI variables at {}", opts.efivars.display()));
    } else if failure.is_none() {
        match space {
            Some(space) => {
                r.space = Some(space);
                let mut sizes = Vec::new();
                for w in &wanted {
                    if sysclone_efi::find_identical(&vars, &w.opt)?.is_none() {
                        sizes.push(w.opt.encode().map_or(0, |b| b.len()));
                    }
                }
                failure = space_shortfall(&space, &sizes);
            }
            None => r.notes.push("free NVRAM space not reported by the kernel (efivarfs statfs); not checked".into()),
        }
    }
    if failure.is_none() {
        if let Err(e) = apply(&vars, &wanted, opts, &parts, current, &mut r) {
            failure = Some(format!("{e:#}"));
        }
    }
    if available {
        r.new_order = vars.boot_order().unwrap_or_default();
        r.new_next = vars.boot_next().unwrap_or(None);
    }
    r.written = vars.changes();
    if r.created.is_empty() {
        for w in &wanted {
            r.created.push(CreatedEntry {
                number: None,
                name: String::new(),
                description: w.opt.description.clone(),
                loader: w.opt.file_path(),
                device_path: path_to_string(&w.opt.path),
                optional_data: hex::encode(&w.opt.optional_data),
                from: w.from.clone(),
                reused: false,
                written: false,
            });
        }
    }

    match failure {
        None => {
            r.nvram = if r.written.is_empty() { "unchanged" } else { "written" }.into();
            for c in &r.created {
                let place = match (opts.policy, c.number) {
                    (BootEntry::First, Some(n)) if r.new_order.first() == Some(&n) => ", first in BootOrder",
                    (BootEntry::Next, Some(n)) if r.new_next == Some(n) => ", BootNext (tried once)",
                    _ => "",
                };
                let how = if c.reused { " (existing entry reused)" } else { "" };
                say(&format!("boot entry {} \"{}\" -> {}{place}{how}", c.name, c.description, c.loader.as_deref().unwrap_or("-")));
            }
            // Some firmware ignores or loses its NVRAM and starts only the removable-media
            // path: with `first` the clone is meant to be the machine's system, so make sure
            // that path starts it too.
            if opts.policy == BootEntry::First && !wanted.is_empty() {
                let loader = wanted.iter().find_map(|w| w.esp_loader.clone()).or_else(|| choose_loader(&files));
                r.fallback = Some(ensure_fallback(tgt, esp.start, esp.size, &files, loader, opts.guard, &mut r.notes)?);
            }
        }
        Some(err) => {
            r.nvram = if available { "failed" } else { "unavailable" }.into();
            r.notes.push(format!("NVRAM not written: {err}"));
            say(&format!("EFI boot variables not written: {err}"));
            let loader = wanted.iter().find_map(|w| w.esp_loader.clone()).or_else(|| choose_loader(&files));
            r.fallback = Some(ensure_fallback(tgt, esp.start, esp.size, &files, loader, opts.guard, &mut r.notes)?);
        }
    }
    if let (BootEntry::First, Some(n)) = (opts.policy, r.new_next) {
        if !r.created.iter().any(|c| c.number == Some(n)) {
            r.notes.push(format!("BootNext is {n:04X}: the firmware starts that entry once before following BootOrder"));
        }
    }
    if r.new_order != r.old_order {
        say(&format!("BootOrder: {} -> {}", order_text(&r.old_order), order_text(&r.new_order)));
    }
    if r.new_next != r.old_next {
        say(&format!("BootNext: {} -> {}", opt_text(r.old_next), opt_text(r.new_next)));
    }
    for n in &r.notes {
        say(&format!("note: {n}"));
    }
    Ok(r)
}

/// Writes the wanted entries (reusing identical ones), prunes stale entries if asked, and
/// applies the order policy. Fills `r.created` and `r.pruned`.
fn apply(vars: &EfiVars, wanted: &[Wanted], opts: &BootOptions, parts: &[Part], current: Option<u16>, r: &mut BootReport) -> Result<()> {
    let mut numbers: Vec<u16> = Vec::new();
    for w in wanted {
        let (n, reused) = match sysclone_efi::find_identical(vars, &w.opt)? {
            Some(n) => (n, true),
            None => (vars.free_boot_number()?, false),
        };
        let written = vars.write_boot(n, &w.opt)?;
        if !numbers.contains(&n) {
            numbers.push(n);
        }
        r.created.push(CreatedEntry {
            number: Some(n),
            name: boot_var_name(n),
            description: w.opt.description.clone(),
            loader: w.opt.file_path(),
            device_path: path_to_string(&w.opt.path),
            optional_data: hex::encode(&w.opt.optional_data),
            from: w.from.clone(),
            reused,
            written,
        });
    }

    let mut pruned: Vec<u16> = Vec::new();
    if opts.prune_stale {
        if opts.disks.is_empty() {
            r.notes.push("--prune-stale: no list of attached disks; nothing pruned".into());
        } else {
            let mut known: Vec<String> = opts.disks.iter().flat_map(|d| d.partitions.iter().filter_map(|p| p.part_uuid.as_deref().map(str::to_ascii_lowercase))).collect();
            known.extend(parts.iter().filter_map(|p| p.uuid.clone()));
            for (n, e) in vars.boot_entries()? {
                let Ok(e) = e else { continue };
                if numbers.contains(&n) || Some(n) == current {
                    continue;
                }
                let Some(HardDrive { signature: HdSignature::Gpt(sig), .. }) = e.hard_drive() else { continue };
                if !known.contains(&guid::guid_from_disk_bytes(&sig)) {
                    vars.delete_boot(n)?;
                    pruned.push(n);
                    r.pruned.push(format!("Boot{n:04X} \"{}\" ({})", e.description, path_to_string(&e.path)));
                }
            }
        }
    }

    let base: Vec<u16> = r.old_order.iter().copied().filter(|n| !pruned.contains(n)).collect();
    let order = match (opts.policy, numbers.first()) {
        (BootEntry::First, Some(_)) => numbers.iter().rev().fold(base, |o, &n| put_first(&o, n)),
        _ => base,
    };
    if order != r.old_order {
        vars.set_boot_order(&order)?;
    }
    match (opts.policy, numbers.first()) {
        (BootEntry::Next, Some(&n)) => {
            vars.set_boot_next(Some(n))?;
        }
        _ => {
            if r.old_next.is_some_and(|n| pruned.contains(&n)) {
                vars.set_boot_next(None)?;
            }
        }
    }
    Ok(())
}

/// Opens the target for writing its ESP: through the write guard when there is one, else
/// only if it is a regular file (an image).
fn open_target_rw(tgt: &Disk, guard: Option<&GuardContext>) -> Result<File> {
    if let Some(ctx) = guard {
        return Ok(sysclone_disk::open_target(tgt, ctx, 0, None)?.file);
    }
    let meta = std::fs::metadata(&tgt.path).with_context(|| format!("stat {}", tgt.path.display()))?;
    if meta.file_type().is_block_device() {
        bail!("refusing to write {} without the write guard", tgt.describe());
    }
    OpenOptions::new().read(true).write(true).open(&tgt.path).with_context(|| format!("opening {} for writing", tgt.path.display()))
}

/// Makes sure `\EFI\BOOT\BOOTX64.EFI` on the target's ESP starts `loader`: copies it there
/// (with shim's companions) when the path is free; never replaces a different file.
fn ensure_fallback(tgt: &Disk, start: u64, len: u64, files: &[String], loader: Option<String>, guard: Option<&GuardContext>, notes: &mut Vec<String>) -> Result<FallbackCopy> {
    let Some(loader) = loader else {
        notes.push("no loader on the target's ESP to put at \\EFI\\BOOT\\BOOTX64.EFI".into());
        return Ok(FallbackCopy { loader: String::new(), action: "none".into(), files: Vec::new() });
    };
    let mut report = FallbackCopy { loader: loader.clone(), action: "present".into(), files: Vec::new() };
    let existing = find_file(files, FALLBACK_LOADER);
    if let Some(existing) = existing {
        if fat_path(&loader).eq_ignore_ascii_case(FALLBACK_LOADER) {
            notes.push("the firmware finds the loader at the removable-media path \\EFI\\BOOT\\BOOTX64.EFI".into());
            return Ok(report);
        }
        let have = read_esp_file(&tgt.path, start, len, existing)?;
        let want = read_esp_file(&tgt.path, start, len, &loader)?;
        if have == want {
            notes.push(format!("\\EFI\\BOOT\\BOOTX64.EFI on the target is already {}", efi_path(&loader)));
        } else {
            report.action = "kept-different".into();
            notes.push(format!(
                "\\EFI\\BOOT\\BOOTX64.EFI on the target ({} bytes) is not {} ({} bytes) and was not overwritten; without a boot entry the firmware starts that file",
                have.len(),
                efi_path(&loader),
                want.len()
            ));
        }
        return Ok(report);
    }
    let mut copies = vec![EspFile::bytes(FALLBACK_LOADER, read_esp_file(&tgt.path, start, len, &loader)?)];
    if file_name_lc(&loader) == "shimx64.efi" {
        let dir = fat_path(&loader).rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default();
        for sib in SHIM_SIBLINGS {
            let (from, to) = (format!("{dir}/{sib}"), format!("EFI/BOOT/{sib}"));
            if let (Some(f), None) = (find_file(files, &from), find_file(files, &to)) {
                copies.push(EspFile::bytes(to, read_esp_file(&tgt.path, start, len, f)?));
            }
        }
    }
    let dev = open_target_rw(tgt, guard)?;
    let written = add_files_to_fat(&dev, start, len, &copies).with_context(|| format!("writing the removable-media loader onto the ESP of {}", tgt.describe()))?;
    dev.sync_all().ok();
    report.action = "copied".into();
    report.files = written.into_iter().map(|(p, _)| p).collect();
    notes.push(format!("copied {} to \\EFI\\BOOT\\BOOTX64.EFI on the target's ESP ({})", efi_path(&loader), report.files.join(", ")));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::{Seek, SeekFrom, Write};
    use std::path::PathBuf;

    use sysclone_disk::{discover, Roots};
    use sysclone_efi::{guid_to_disk_bytes, shimcsv, ucs2_args, EFI_GLOBAL_GUID};
    use sysclone_media::usbimage::write_fat_partition;

    const ESP_TYPE: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
    const LINUX_TYPE: &str = "0fc63daf-8483-4772-8e79-3d69d8477de4";
    const SRC_ESP: &str = "11111111-2222-4333-8444-555555555501";
    const SRC_ROOT: &str = "11111111-2222-4333-8444-555555555502";
    const NEW_ESP: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeee01";
    const NEW_ROOT: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeee02";
    const STICK: &str = "99999999-9999-4999-8999-999999999999";
    const GONE: &str = "deaddead-dead-4dea-8dea-deaddeaddead";
    const ESP_SECTORS: u64 = 80 * 2048; // 40 MiB
    const SHIM: &[u8] = b"MZ shim";
    const GRUB: &[u8] = b"MZ grub";
    const SDBOOT: &[u8] = b"MZ systemd-boot";

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    /// (number, first LBA, sectors, type GUID, unique GUID)
    type PartSpec = (u32, u64, u64, &'static str, &'static str);

    /// Writes a GPT disk image (512-byte sectors) of `sectors` with `parts`.
    fn write_gpt(path: &Path, sectors: u64, parts: &[PartSpec]) {
        let f = File::create(path).unwrap();
        f.set_len(sectors * 512).unwrap();
        let mut entries = vec![0u8; 128 * 128];
        for &(n, first, len, ty, id) in parts {
            let e = &mut entries[(n as usize - 1) * 128..n as usize * 128];
            e[0..16].copy_from_slice(&guid_to_disk_bytes(ty).unwrap());
            e[16..32].copy_from_slice(&guid_to_disk_bytes(id).unwrap());
            e[32..40].copy_from_slice(&first.to_le_bytes());
            e[40..48].copy_from_slice(&(first + len - 1).to_le_bytes());
            for (i, u) in "part".encode_utf16().enumerate() {
                e[56 + 2 * i..58 + 2 * i].copy_from_slice(&u.to_le_bytes());
            }
        }
        let header = |my: u64, alt: u64, entries_lba: u64| {
            let mut h = vec![0u8; 512];
            h[0..8].copy_from_slice(b"EFI PART");
            h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
            h[12..16].copy_from_slice(&92u32.to_le_bytes());
            h[24..32].copy_from_slice(&my.to_le_bytes());
            h[32..40].copy_from_slice(&alt.to_le_bytes());
            h[40..48].copy_from_slice(&34u64.to_le_bytes());
            h[48..56].copy_from_slice(&(sectors - 34).to_le_bytes());
            h[56..72].copy_from_slice(&[0x42; 16]);
            h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
            h[80..84].copy_from_slice(&128u32.to_le_bytes());
            h[84..88].copy_from_slice(&128u32.to_le_bytes());
            h[88..92].copy_from_slice(&crc32(&entries).to_le_bytes());
            let c = crc32(&h[..92]);
            h[16..20].copy_from_slice(&c.to_le_bytes());
            h
        };
        let mut mbr = vec![0u8; 512];
        mbr[446 + 4] = 0xee;
        mbr[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
        mbr[446 + 12..446 + 16].copy_from_slice(&((sectors - 1).min(u32::MAX as u64) as u32).to_le_bytes());
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        let last = sectors - 1;
        let w = |lba: u64, b: &[u8]| {
            let mut f = &f;
            f.seek(SeekFrom::Start(lba * 512)).unwrap();
            f.write_all(b).unwrap();
        };
        w(0, &mbr);
        w(1, &header(1, last, 2));
        w(2, &entries);
        w(last - 32, &entries);
        w(last, &header(last, 1, last - 32));
    }

    /// A fake machine: sysfs, /dev and /proc in a temp dir, disks as image files, and an
    /// EFI variable directory.
    struct Machine {
        dir: tempfile::TempDir,
    }

    impl Machine {
        fn new() -> Self {
            let m = Machine { dir: tempfile::tempdir().unwrap() };
            for d in ["sys/block", "dev", "proc", "efivars"] {
                fs::create_dir_all(m.dir.path().join(d)).unwrap();
            }
            m
        }
        fn vars_dir(&self) -> PathBuf {
            self.dir.path().join("efivars")
        }
        fn vars(&self) -> EfiVars {
            EfiVars::new(self.vars_dir())
        }
        fn image(&self, name: &str) -> PathBuf {
            self.dir.path().join("dev").join(name)
        }
        /// Registers `name` (an image already in dev/) as a virtio disk with `serial`.
        fn register(&self, name: &str, serial: &str) {
            let block = self.dir.path().join("sys/block").join(name);
            fs::create_dir_all(block.join("queue")).unwrap();
            let size = fs::metadata(self.image(name)).unwrap().len();
            fs::write(block.join("size"), format!("{}\n", size / 512)).unwrap();
            fs::write(block.join("serial"), format!("{serial}\n")).unwrap();
            fs::write(block.join("queue/logical_block_size"), "512\n").unwrap();
        }
        /// A GPT disk: ESP at `esp_start` with `files`, a Linux partition after it.
        fn gpt_disk(&self, name: &str, serial: &str, esp_start: u64, esp_id: &'static str, root_id: &'static str, files: &[(&str, &[u8])]) {
            let path = self.image(name);
            let root_start = esp_start + ESP_SECTORS;
            write_gpt(&path, root_start + 2048 + 2048, &[(1, esp_start, ESP_SECTORS, ESP_TYPE, esp_id), (2, root_start, 2048, LINUX_TYPE, root_id)]);
            let esp: Vec<EspFile> = files.iter().map(|(p, b)| EspFile::bytes(*p, b.to_vec())).collect();
            let f = OpenOptions::new().read(true).write(true).open(&path).unwrap();
            write_fat_partition(&f, esp_start * 512, ESP_SECTORS * 512, &esp, "ESP", 0x1234_5678).unwrap();
            self.register(name, serial);
        }
        fn copy_disk(&self, from: &str, to: &str, serial: &str) {
            fs::copy(self.image(from), self.image(to)).unwrap();
            self.register(to, serial);
        }
        fn disks(&self) -> Vec<Disk> {
            let p = self.dir.path();
            discover(&Roots { sys: p.join("sys"), dev: p.join("dev"), proc: p.join("proc") }).unwrap()
        }
        fn disk(&self, name: &str) -> Disk {
            self.disks().into_iter().find(|d| d.name == name).unwrap()
        }
        fn run(&self, policy: BootEntry, prune: bool) -> BootReport {
            self.run_with(policy, prune, &self.vars_dir())
        }
        fn run_with(&self, policy: BootEntry, prune_stale: bool, efivars: &Path) -> BootReport {
            let disks = self.disks();
            let src = disks.iter().find(|d| d.name == "vda").unwrap();
            let tgt = disks.iter().find(|d| d.name == "vdb").unwrap();
            entry_for_target(tgt, src, &BootOptions { policy, efivars, prune_stale, disks: &disks, guard: None }).unwrap()
        }
        /// A run on firmware that reports `free` bytes of NVRAM free.
        fn run_with_space(&self, policy: BootEntry, free: u64) -> BootReport {
            let disks = self.disks();
            let src = disks.iter().find(|d| d.name == "vda").unwrap();
            let tgt = disks.iter().find(|d| d.name == "vdb").unwrap();
            let opts = BootOptions { policy, efivars: &self.vars_dir(), prune_stale: false, disks: &disks, guard: None };
            entry_with_space(tgt, src, &opts, Some(VarSpace { total_bytes: 64 << 10, free_bytes: free })).unwrap()
        }
        fn esp_file(&self, name: &str, esp_start: u64, path: &str) -> Result<Vec<u8>> {
            read_esp_file(&self.image(name), esp_start * 512, ESP_SECTORS * 512, path)
        }
    }

    fn hd(id: &str, start: u64) -> HardDrive {
        HardDrive::gpt(1, start, ESP_SECTORS, guid_to_disk_bytes(id).unwrap())
    }

    fn debian_files() -> Vec<(&'static str, &'static [u8])> {
        vec![("EFI/debian/shimx64.efi", SHIM), ("EFI/debian/grubx64.efi", GRUB), ("EFI/debian/mmx64.efi", b"MZ mok"), ("EFI/BOOT/BOOTX64.EFI", SHIM)]
    }

    /// Firmware-like variables: UiApp, the source's "debian" entry with arguments, the rescue
    /// stick's entry; BootOrder debian, UiApp, stick.
    fn firmware_vars(vars: &EfiVars) {
        let ui = LoadOption {
            attributes: 0x109,
            description: "UiApp".into(),
            path: vec![DevicePathNode::Vendor { typ: 4, guid: [7; 16], data: vec![] }, DevicePathNode::End],
            optional_data: vec![],
        };
        vars.write_boot(0, &ui).unwrap();
        let mut deb = LoadOption::disk_entry("debian", hd(SRC_ESP, 2048), r"\EFI\debian\shimx64.efi");
        deb.optional_data = ucs2_args("quiet");
        deb.path.insert(0, DevicePathNode::Pci { function: 0, device: 4 });
        vars.write_boot(1, &deb).unwrap();
        vars.write_boot(2, &LoadOption::disk_entry("rescue stick", hd(STICK, 2048), r"\EFI\BOOT\BOOTX64.EFI")).unwrap();
        vars.set_boot_order(&[1, 0, 2]).unwrap();
        vars.write("BootCurrent", EFI_GLOBAL_GUID, 6, &2u16.to_le_bytes()).unwrap();
    }

    #[test]
    fn job_key_boot_entry_takes_every_policy() {
        for (text, want) in [("first", BootEntry::First), ("next", BootEntry::Next), ("add", BootEntry::Add), ("none", BootEntry::None)] {
            let job = crate::job::Job::parse(&format!("operation = \"clone\"\nsource = \"serial=A\"\ntarget = \"serial=B\"\nboot_entry = \"{text}\"\n")).unwrap();
            assert_eq!(job.boot_entry(), want);
            assert_eq!(policy_name(want), text);
        }
    }

    #[test]
    fn loader_preference() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let files = f(&["EFI/BOOT/BOOTX64.EFI", "EFI/systemd/systemd-bootx64.efi"]);
        assert_eq!(choose_loader(&files).unwrap(), "EFI/systemd/systemd-bootx64.efi");
        let files = f(&["EFI/BOOT/BOOTX64.EFI", "EFI/debian/grubx64.efi", "EFI/debian/shimx64.efi", "EFI/debian/mmx64.efi"]);
        assert_eq!(choose_loader(&files).unwrap(), "EFI/debian/shimx64.efi");
        let files = f(&["EFI/BOOT/BOOTX64.EFI", "EFI/Microsoft/Boot/bootmgfw.efi", "EFI/Microsoft/Boot/memtest.efi"]);
        assert_eq!(choose_loader(&files).unwrap(), "EFI/Microsoft/Boot/bootmgfw.efi");
        let files = f(&["EFI/BOOT/BOOTX64.EFI", "EFI/BOOT/grubx64.efi", "EFI/debian/mmx64.efi", "EFI/refind/refind_x64.efi"]);
        assert_eq!(choose_loader(&files).unwrap(), "EFI/refind/refind_x64.efi", "others before the fallback path");
        assert_eq!(choose_loader(&f(&["efi/boot/bootx64.efi", "EFI/debian/mmx64.efi"])).unwrap(), "efi/boot/bootx64.efi");
        assert_eq!(choose_loader(&f(&["vmlinuz.efi"])), None);
        assert_eq!(choose_loader(&[]), None);
        assert_eq!(clone_label("debian", "T2"), "debian (clone on T2)");
        assert_eq!(clone_label("debian (clone on T1)", "T2"), "debian (clone on T2)");
        assert_eq!(clone_label("sysclone clone on T1", "T2"), "sysclone clone on T2");
    }

    #[test]
    fn migration_gets_an_entry_per_source_entry_first_in_order() {
        let m = Machine::new();
        m.gpt_disk("vda", "SRC1", 2048, SRC_ESP, SRC_ROOT, &debian_files());
        m.gpt_disk("vdb", "TGT1", 4096, NEW_ESP, NEW_ROOT, &debian_files());
        let vars = m.vars();
        firmware_vars(&vars);
        vars.write("Boot0007", EFI_GLOBAL_GUID, 7, b"garbage").unwrap();
        let saved_before = vars.snapshot().unwrap();

        let r = m.run(BootEntry::First, false);
        assert_eq!(r.saved, saved_before, "variables saved before the change");
        assert!(r.saved.iter().any(|v| v.name == "Boot0007" && v.data == "67617262616765"));
        assert_eq!(r.old_order, [1, 0, 2]);
        assert_eq!(r.new_order, [3, 1, 0, 2]);
        assert_eq!(r.nvram, "written");
        assert_eq!(r.created.len(), 1);
        let c = &r.created[0];
        assert_eq!((c.number, c.from.as_str(), c.reused, c.written), (Some(3), "Boot0001", false, true));
        assert_eq!(c.description, "debian (clone on TGT1)");
        let e = vars.read_boot(3).unwrap().unwrap();
        assert_eq!(e.description, "debian (clone on TGT1)");
        assert_eq!(e.optional_data, ucs2_args("quiet"), "optional data kept");
        assert_eq!(e.hard_drive(), Some(hd(NEW_ESP, 4096)), "the target's GUID, start and size; no PCI prefix");
        assert!(matches!(&e.path[..], [DevicePathNode::HardDrive { .. }, DevicePathNode::FilePath(f), DevicePathNode::End] if f == r"\EFI\debian\shimx64.efi"));
        assert_eq!(r.written, ["wrote Boot0003", "wrote BootOrder"]);
        assert!(r.notes.iter().any(|n| n.contains("Boot0007 is malformed")), "{:?}", r.notes);
        assert!(vars.read("Boot0007", EFI_GLOBAL_GUID).unwrap().is_some(), "malformed entry left alone");
        assert_eq!(vars.read_boot(1).unwrap().unwrap().description, "debian", "source entry untouched");

        // Again: the identical entry is reused and nothing is written.
        let again = m.run(BootEntry::First, false);
        assert_eq!(again.created[0].number, Some(3));
        assert!(again.created[0].reused && !again.created[0].written);
        assert!(again.written.is_empty(), "{:?}", again.written);
        assert_eq!(again.nvram, "unchanged");
        assert_eq!(vars.boot_numbers().unwrap(), [0, 1, 2, 3, 7]);
        let json = serde_json::to_value(&again).unwrap();
        assert_eq!(json["old_order"], serde_json::json!([3, 1, 0, 2]));
        assert_eq!(json["created"][0]["name"], "Boot0003");
    }

    #[test]
    fn exact_clone_keeps_guids() {
        let m = Machine::new();
        m.gpt_disk("vda", "SRC1", 2048, SRC_ESP, SRC_ROOT, &debian_files());
        m.copy_disk("vda", "vdb", "TGT1");
        let vars = m.vars();
        firmware_vars(&vars);
        let r = m.run(BootEntry::First, false);
        let e = vars.read_boot(3).unwrap().unwrap();
        assert_eq!(e.hard_drive(), Some(hd(SRC_ESP, 2048)));
        assert_eq!(e.description, "debian (clone on TGT1)");
        assert_eq!(r.new_order, [3, 1, 0, 2]);
        // The entry made for the clone points at the same GUID: not taken for a source entry
        // of its own on the next run.
        let again = m.run(BootEntry::First, false);
        assert_eq!(again.created.len(), 1);
        assert!(again.written.is_empty(), "{:?}", again.written);
    }

    #[test]
    fn policies_next_add_none() {
        let m = Machine::new();
        m.gpt_disk("vda", "SRC1", 2048, SRC_ESP, SRC_ROOT, &debian_files());
        m.gpt_disk("vdb", "TGT1", 2048, NEW_ESP, NEW_ROOT, &debian_files());
        let vars = m.vars();
        firmware_vars(&vars);

        let none = m.run(BootEntry::None, false);
        assert!(none.written.is_empty() && none.created.is_empty());
        assert_eq!(none.nvram, "not-touched");
        assert_eq!(none.saved.len(), 5);

        let add = m.run(BootEntry::Add, false);
        assert_eq!(add.created[0].number, Some(3));
        assert_eq!(add.new_order, [1, 0, 2]);
        assert_eq!(add.new_next, None);
        assert_eq!(add.written, ["wrote Boot0003"]);

        let next = m.run(BootEntry::Next, false);
        assert_eq!(next.new_order, [1, 0, 2], "old order stays");
        assert_eq!((next.old_next, next.new_next), (None, Some(3)));
        assert_eq!(next.written, ["wrote BootNext"]);
        assert_eq!(vars.boot_next().unwrap(), Some(3));
    }

    #[test]
    fn no_source_entry_uses_shim_csv_then_loader_search() {
        let m = Machine::new();
        let csv = shimcsv::encode_boot_csv(&[shimcsv::CsvEntry { filename: "shimx64.efi".into(), label: "debian".into(), options: "".into(), description: "d".into() }]);
        let mut files = debian_files();
        files.push(("EFI/debian/BOOTX64.CSV", &csv));
        m.gpt_disk("vda", "SRC1", 2048, SRC_ESP, SRC_ROOT, &files);
        m.copy_disk("vda", "vdb", "TGT1");
        let vars = m.vars();
        vars.set_boot_order(&[]).unwrap();
        let r = m.run(BootEntry::First, false);
        assert_eq!(r.created[0].description, "debian (clone on TGT1)");
        assert_eq!(r.created[0].from, "EFI/debian/BOOTX64.CSV");
        assert_eq!(r.created[0].loader.as_deref(), Some(r"\EFI\debian\shimx64.efi"));
        assert_eq!(r.new_order, [0]);

        let m = Machine::new();
        m.gpt_disk("vda", "SRC1", 2048, SRC_ESP, SRC_ROOT, &[("EFI/BOOT/BOOTX64.EFI", SDBOOT), ("EFI/systemd/systemd-bootx64.efi", SDBOOT)]);
        m.copy_disk("vda", "vdb", "TGT1");
        let r = m.run(BootEntry::First, false);
        assert_eq!(r.created[0].description, "sysclone clone on TGT1");
        assert_eq!(r.created[0].loader.as_deref(), Some(r"\EFI\systemd\systemd-bootx64.efi"));
        assert_eq!(r.created[0].from, "loader search");
    }

    #[test]
    fn fallback_copy_when_nvram_is_not_writable() {
        let m = Machine::new();
        let files: Vec<(&str, &[u8])> = vec![("EFI/debian/shimx64.efi", SHIM), ("EFI/debian/grubx64.efi", GRUB)];
        m.gpt_disk("vda", "SRC1", 2048, SRC_ESP, SRC_ROOT, &files);
        m.copy_disk("vda", "vdb", "TGT1");
        let src_before = fs::read(m.image("vda")).unwrap();
        let r = m.run_with(BootEntry::First, false, &m.dir.path().join("no-efivars"));
        assert_eq!(r.nvram, "unavailable");
        let fb = r.fallback.as_ref().unwrap();
        assert_eq!((fb.loader.as_str(), fb.action.as_str()), ("EFI/debian/shimx64.efi", "copied"));
        assert_eq!(fb.files, ["EFI/BOOT/BOOTX64.EFI", "EFI/BOOT/grubx64.efi"]);
        assert_eq!(m.esp_file("vdb", 2048, "EFI/BOOT/BOOTX64.EFI").unwrap(), SHIM);
        assert_eq!(m.esp_file("vdb", 2048, "EFI/BOOT/grubx64.efi").unwrap(), GRUB);
        assert_eq!(fs::read(m.image("vda")).unwrap(), src_before, "source untouched");
        assert_eq!(r.created[0].number, None);
        // Run again: the file is there and is the loader.
        let again = m.run_with(BootEntry::First, false, &m.dir.path().join("no-efivars"));
        assert_eq!(again.fallback.unwrap().action, "present");

        // Variables that cannot be saved (BootOrder is unreadable): nothing written to NVRAM,
        // and a different BOOTX64.EFI already on the ESP is kept.
        let m = Machine::new();
        let files: Vec<(&str, &[u8])> = vec![("EFI/debian/shimx64.efi", SHIM), ("EFI/BOOT/BOOTX64.EFI", SDBOOT)];
        m.gpt_disk("vda", "SRC1", 2048, SRC_ESP, SRC_ROOT, &files);
        m.copy_disk("vda", "vdb", "TGT1");
        fs::create_dir(m.vars_dir().join(format!("BootOrder-{EFI_GLOBAL_GUID}"))).unwrap();
        let tgt_before = fs::read(m.image("vdb")).unwrap();
        let r = m.run(BootEntry::First, false);
        assert_eq!(r.nvram, "failed");
        assert!(r.written.is_empty(), "{:?}", r.written);
        assert_eq!(r.fallback.as_ref().unwrap().action, "kept-different");
        assert!(r.notes.iter().any(|n| n.contains("was not overwritten")), "{:?}", r.notes);
        assert_eq!(fs::read(m.image("vdb")).unwrap(), tgt_before, "nothing written to the target");
    }

    #[test]
    fn prune_stale_entries() {
        let m = Machine::new();
        m.gpt_disk("vda", "SRC1", 2048, SRC_ESP, SRC_ROOT, &debian_files());
        m.copy_disk("vda", "vdb", "TGT1");
        let vars = m.vars();
        firmware_vars(&vars);
        vars.write_boot(5, &LoadOption::disk_entry("old disk", hd(GONE, 2048), r"\EFI\x.efi")).unwrap();
        vars.set_boot_order(&[1, 5, 0, 2]).unwrap();
        let r = m.run(BootEntry::First, false);
        assert!(r.pruned.is_empty());
        assert!(vars.read_boot(5).unwrap().is_some());
        let r = m.run(BootEntry::First, true);
        assert_eq!(r.pruned.len(), 1, "{:?}", r.pruned);
        // The stale disk's entry goes; the rescue stick's (not attached here either) is
        // BootCurrent and stays.
        assert!(vars.read_boot(5).unwrap().is_none());
        assert!(vars.read_boot(2).unwrap().is_some(), "BootCurrent is never pruned");
        assert_eq!(r.new_order, [3, 1, 0, 2]);
    }

    #[test]
    fn mbr_source_is_a_bios_system() {
        let m = Machine::new();
        let path = m.image("vda");
        let f = File::create(&path).unwrap();
        f.set_len(4 << 20).unwrap();
        let mut mbr = vec![0u8; 512];
        mbr[440..444].copy_from_slice(&0x1234_5678u32.to_le_bytes());
        mbr[446] = 0x80;
        mbr[446 + 4] = 0x83;
        mbr[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
        mbr[446 + 12..446 + 16].copy_from_slice(&2048u32.to_le_bytes());
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        (&f).write_all(&mbr).unwrap();
        m.register("vda", "SRC1");
        m.copy_disk("vda", "vdb", "TGT1");
        assert_eq!(m.disk("vda").table, "mbr");
        let vars = m.vars();
        firmware_vars(&vars);
        let r = m.run(BootEntry::First, false);
        assert_eq!(r.firmware, "bios");
        assert_eq!(r.notes, ["MBR/BIOS system: boot code kept, no NVRAM to change"]);
        assert!(r.written.is_empty() && r.created.is_empty());
        assert_eq!(vars.boot_order().unwrap(), [1, 0, 2]);
    }

    #[test]
    fn nvram_space_needed_for_new_entries() {
        assert_eq!(nvram_needed(&[]), 256);
        assert_eq!(nvram_needed(&[100, 50]), 100 + 128 + 50 + 128 + 256);
        let space = VarSpace { total_bytes: 64 << 10, free_bytes: 484 };
        assert_eq!(space_shortfall(&space, &[100]), None, "exactly enough");
        let space = VarSpace { total_bytes: 64 << 10, free_bytes: 483 };
        assert_eq!(space_shortfall(&space, &[100]).as_deref(), Some("only 483 bytes of NVRAM free, about 484 needed"));
        assert_eq!(space_shortfall(&space, &[]), None, "nothing new to store");
    }

    #[test]
    fn too_little_nvram_space_writes_nothing_and_makes_the_fallback_loader() {
        let m = Machine::new();
        let files: Vec<(&str, &[u8])> = vec![("EFI/debian/shimx64.efi", SHIM), ("EFI/debian/grubx64.efi", GRUB)];
        m.gpt_disk("vda", "SRC1", 2048, SRC_ESP, SRC_ROOT, &files);
        m.gpt_disk("vdb", "TGT1", 4096, NEW_ESP, NEW_ROOT, &files);
        let vars = m.vars();
        firmware_vars(&vars);
        let before = vars.snapshot().unwrap();
        let r = m.run_with_space(BootEntry::First, 300);
        assert_eq!(r.space, Some(VarSpace { total_bytes: 64 << 10, free_bytes: 300 }));
        assert_eq!(r.nvram, "failed");
        assert!(r.notes.iter().any(|n| n.starts_with("NVRAM not written: only 300 bytes of NVRAM free, about ")), "{:?}", r.notes);
        assert!(r.written.is_empty(), "{:?}", r.written);
        assert_eq!(vars.snapshot().unwrap(), before, "no variable changed");
        let fb = r.fallback.as_ref().expect("the fallback loader instead");
        assert_eq!((fb.loader.as_str(), fb.action.as_str()), ("EFI/debian/shimx64.efi", "copied"));
        assert_eq!(m.esp_file("vdb", 4096, "EFI/BOOT/BOOTX64.EFI").unwrap(), SHIM);
        assert_eq!(r.created[0].number, None);

        // With room, the entry is written; run again on a full store: the identical entry is
        // reused, needs no space, and nothing fails.
        let ok = m.run_with_space(BootEntry::First, 4096);
        assert_eq!((ok.nvram.as_str(), ok.created[0].number), ("written", Some(3)));
        let full = m.run_with_space(BootEntry::First, 300);
        assert_eq!(full.nvram, "unchanged", "{:?}", full.notes);
        assert!(full.created[0].reused);
    }

    #[test]
    fn policy_first_also_makes_the_removable_media_path_start_the_clone() {
        // The ESP has no \EFI\BOOT\BOOTX64.EFI: NVRAM is written and the fallback copied.
        let m = Machine::new();
        let files: Vec<(&str, &[u8])> = vec![("EFI/debian/shimx64.efi", SHIM), ("EFI/debian/grubx64.efi", GRUB), ("EFI/debian/mmx64.efi", b"MZ mok")];
        m.gpt_disk("vda", "SRC1", 2048, SRC_ESP, SRC_ROOT, &files);
        m.copy_disk("vda", "vdb", "TGT1");
        let vars = m.vars();
        firmware_vars(&vars);
        let src_before = fs::read(m.image("vda")).unwrap();
        let r = m.run(BootEntry::First, false);
        assert_eq!(r.nvram, "written");
        assert_eq!(r.new_order, [3, 1, 0, 2]);
        let fb = r.fallback.as_ref().expect("fallback ensured with policy first");
        assert_eq!(fb.action, "copied");
        assert_eq!(fb.files, ["EFI/BOOT/BOOTX64.EFI", "EFI/BOOT/grubx64.efi", "EFI/BOOT/mmx64.efi"]);
        assert_eq!(m.esp_file("vdb", 2048, "EFI/BOOT/BOOTX64.EFI").unwrap(), SHIM);
        assert_eq!(fs::read(m.image("vda")).unwrap(), src_before, "source untouched");
        assert_eq!(m.run(BootEntry::First, false).fallback.unwrap().action, "present");

        // A different file at the fallback path is kept, and the report says so.
        let m = Machine::new();
        let files: Vec<(&str, &[u8])> = vec![("EFI/debian/shimx64.efi", SHIM), ("EFI/BOOT/BOOTX64.EFI", SDBOOT)];
        m.gpt_disk("vda", "SRC1", 2048, SRC_ESP, SRC_ROOT, &files);
        m.copy_disk("vda", "vdb", "TGT1");
        firmware_vars(&m.vars());
        let r = m.run(BootEntry::First, false);
        assert_eq!(r.nvram, "written");
        assert_eq!(r.fallback.as_ref().unwrap().action, "kept-different");
        assert!(r.notes.iter().any(|n| n.contains("was not overwritten")), "{:?}", r.notes);
        assert_eq!(m.esp_file("vdb", 2048, "EFI/BOOT/BOOTX64.EFI").unwrap(), SDBOOT);

        // `add` and `next` leave the ESP alone.
        let m = Machine::new();
        let files: Vec<(&str, &[u8])> = vec![("EFI/debian/shimx64.efi", SHIM)];
        m.gpt_disk("vda", "SRC1", 2048, SRC_ESP, SRC_ROOT, &files);
        m.copy_disk("vda", "vdb", "TGT1");
        firmware_vars(&m.vars());
        let tgt_before = fs::read(m.image("vdb")).unwrap();
        for policy in [BootEntry::Add, BootEntry::Next] {
            let r = m.run(policy, false);
            assert_eq!((r.nvram.as_str(), r.fallback.is_none()), ("written", true), "{policy:?}");
        }
        assert_eq!(fs::read(m.image("vdb")).unwrap(), tgt_before);
    }
}
