//! The boot entry for a cloned disk.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use sysclone_disk::Disk;
use sysclone_efi::{create_entry_first, create_entry, guid, EfiVars, HardDrive, LoadOption};

use crate::console::say;

/// Loaders in the order sysclone prefers them when the source's own entry tells nothing.
const PREFERRED: &[&str] = &["shimx64.efi", "grubx64.efi", "systemd-bootx64.efi", "bootmgfw.efi", "BOOTX64.EFI"];

/// Pick the loader an entry for this ESP should start: the one the firmware booted last
/// (BootCurrent) when it is on this ESP, else the most specific known loader, else the
/// removable-media fallback.
pub fn choose_loader(files: &[String], current: Option<&str>) -> Option<String> {
    let norm = |s: &str| s.replace('/', "\\").trim_start_matches('\\').to_ascii_lowercase();
    if let Some(c) = current {
        if let Some(f) = files.iter().find(|f| norm(f) == norm(c)) {
            return Some(f.clone());
        }
    }
    for want in PREFERRED {
        if let Some(f) = files.iter().find(|f| norm(f).rsplit('\\').next() == Some(&want.to_ascii_lowercase()) && !norm(f).starts_with("efi\\boot\\") || (*want == "BOOTX64.EFI" && norm(f) == "efi\\boot\\bootx64.efi")) {
            return Some(f.clone());
        }
    }
    files.iter().find(|f| norm(f).ends_with(".efi")).cloned()
}

/// Make the boot entry for the target's ESP (first in BootOrder when `first`).
/// Returns the entry number and the loader path.
pub fn entry_for_target(tgt: &Disk, src: &Disk, efivars: &Path, first: bool) -> Result<(u16, String)> {
    let esp = src
        .partitions
        .iter()
        .find(|p| p.type_name == "EFI System")
        .ok_or_else(|| anyhow!("the clone of {} has no EFI System partition; no boot entry made", src.describe()))?;
    let files: Vec<String> = sysclone_media::usbimage::find_files(&tgt.path, esp.start_bytes, esp.size_bytes, "EFI/**/*.efi")
        .with_context(|| format!("listing loaders on the ESP of {}", tgt.describe()))?
        .into_iter()
        .map(|e| e.path)
        .collect();
    let vars = EfiVars::new(efivars);
    let current = vars
        .boot_current()
        .ok()
        .flatten()
        .and_then(|n| vars.read_boot(n).ok().flatten())
        .and_then(|o| o.file_path());
    let loader = choose_loader(&files, current.as_deref()).ok_or_else(|| anyhow!("no EFI loader found on the ESP of {}", tgt.describe()))?;
    let loader = format!("\\{}", loader.replace('/', "\\").trim_start_matches('\\'));
    let part_uuid = esp.part_uuid.as_deref().ok_or_else(|| anyhow!("the ESP has no partition GUID"))?;
    let sig = guid::guid_to_disk_bytes(part_uuid).context("the ESP's partition GUID")?;
    let lbs = tgt.logical_sector as u64;
    let hd = HardDrive::gpt(esp.number, esp.start_bytes / lbs, esp.size_bytes / lbs, sig);
    let desc = format!("sysclone clone on {}", tgt.serial.as_deref().unwrap_or(&tgt.name));
    let opt = LoadOption::disk_entry(&desc, hd, &loader);
    let n = if first { create_entry_first(&vars, &opt)? } else { create_entry(&vars, &opt)? };
    say(&format!("boot entry Boot{n:04X} \"{desc}\" -> {loader}{}", if first { ", first in BootOrder" } else { "" }));
    Ok((n, loader))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_preference() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let files = f(&["EFI/BOOT/BOOTX64.EFI", "EFI/systemd/systemd-bootx64.efi"]);
        assert_eq!(choose_loader(&files, None).unwrap(), "EFI/systemd/systemd-bootx64.efi");
        assert_eq!(choose_loader(&files, Some("\\EFI\\BOOT\\BOOTX64.EFI")).unwrap(), "EFI/BOOT/BOOTX64.EFI");
        let files = f(&["EFI/BOOT/BOOTX64.EFI", "EFI/debian/shimx64.efi", "EFI/debian/grubx64.efi"]);
        assert_eq!(choose_loader(&files, None).unwrap(), "EFI/debian/shimx64.efi");
        assert_eq!(choose_loader(&f(&["EFI/BOOT/BOOTX64.EFI"]), None).unwrap(), "EFI/BOOT/BOOTX64.EFI");
        assert_eq!(choose_loader(&[], None), None);
    }
}
