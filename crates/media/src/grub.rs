//! GRUB on the USB image: the configuration file Debian's signed GRUB (Secure Boot) and the
//! BIOS GRUB read, and the BIOS boot path itself.
//!
//! BIOS boot (legacy PCs, SeaBIOS): GRUB's `boot.img` in the protective MBR's 440 code bytes
//! loads GRUB's `core.img` from a 1 MiB "BIOS boot" GPT partition; `core.img` carries the
//! drivers for BIOS disks, GPT and FAT, a two-line embedded configuration that finds the ESP by
//! its FAT serial and sets `prefix=($root)/boot/grub`, and GRUB's `normal` mode, which then
//! reads `/boot/grub/grub.cfg` from the ESP and boots the same kernel and initramfs as the UEFI
//! paths. `core.img` is made at build time by `grub-mkimage` from Debian's `grub-pc-bin`
//! (nothing of GRUB is kept in sysclone's sources); what `grub-install`/`grub-setup` would do
//! afterwards — point `boot.img` at `core.img` and `core.img`'s first sector at the rest of it —
//! is done here on the image, by the documented layout of those two files.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

/// GRUB modules built into `core.img` for BIOS boot.
pub const BIOS_CORE_MODULES: &[&str] = &[
    "biosdisk", "part_gpt", "part_msdos", "fat", "search", "search_fs_uuid", "normal", "linux", "echo", "test", "serial", "terminal",
];

/// Debian's `grub-pc-bin` directory.
pub const DEFAULT_GRUB_PC_DIR: &str = "/usr/lib/grub/i386-pc";

// Offsets in GRUB's i386-pc boot.img (include/grub/i386/pc/boot.h).
const BOOT_KERNEL_SECTOR: usize = 0x5c;
const BOOT_DRIVE_CHECK: usize = 0x66;
// The first block list entry at the end of core.img's first sector (diskboot.img):
// u64 start LBA, u16 sector count, u16 load segment.
const DISKBOOT_LIST: usize = 0x200 - 12;

/// The `grub.cfg` for `title` booting `/EFI/sysclone/vmlinuz` with `cmdline` and
/// `/EFI/sysclone/initramfs.img`, for both GRUBs (`grub_platform` `efi` or `pc`): no menu, the
/// serial port as a second console on BIOS machines.
pub fn grub_cfg(title: &str, cmdline: &str) -> String {
    let title = title.replace(['"', '\\', '$'], "");
    format!(
        "# sysclone: read by Debian's signed GRUB (Secure Boot, \\EFI\\debian\\grub.cfg) and by the\n\
         # BIOS GRUB (/boot/grub/grub.cfg). Edit the kernel command line here.\n\
         set default=0\n\
         set timeout=0\n\
         if [ \"$grub_platform\" = \"pc\" ]; then\n\
         \tserial --unit=0 --speed=115200\n\
         \tterminal_input console serial\n\
         \tterminal_output console serial\n\
         fi\n\
         menuentry \"{title}\" {{\n\
         \techo \"sysclone: loading the kernel and initramfs ($grub_platform)\"\n\
         \tlinux /EFI/sysclone/vmlinuz {cmdline}\n\
         \tinitrd /EFI/sysclone/initramfs.img\n\
         }}\n",
        cmdline = cmdline.trim()
    )
}

/// The configuration embedded in `core.img`: find the ESP by its FAT serial (`XXXX-XXXX`).
pub fn bios_early_config(fat_uuid: &str) -> String {
    format!("search --no-floppy --fs-uuid --set=root {fat_uuid}\nset prefix=($root)/boot/grub\n")
}

/// Where `grub-mkimage` is, if anywhere on this host.
pub fn find_grub_mkimage() -> Option<PathBuf> {
    for d in ["/usr/bin", "/usr/sbin", "/bin", "/sbin"] {
        let p = Path::new(d).join("grub-mkimage");
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

/// Why BIOS boot cannot be built from `grub_pc_dir` on this host, or `None` when it can.
pub fn bios_unavailable(grub_pc_dir: &Path) -> Option<String> {
    if find_grub_mkimage().is_none() {
        return Some("grub-mkimage not found (apt-get install grub-pc-bin)".into());
    }
    for f in ["boot.img", "diskboot.img", "kernel.img", "lzma_decompress.img", "normal.mod"] {
        if !grub_pc_dir.join(f).is_file() {
            return Some(format!("{} not found (apt-get install grub-pc-bin)", grub_pc_dir.join(f).display()));
        }
    }
    None
}

/// Runs `grub-mkimage -O i386-pc` over `grub_pc_dir` with [`BIOS_CORE_MODULES`] and the
/// embedded [`bios_early_config`]; returns `core.img`.
pub fn make_core_img(grub_pc_dir: &Path, fat_uuid: &str) -> Result<Vec<u8>> {
    let mk = find_grub_mkimage().context("grub-mkimage not found (apt-get install grub-pc-bin)")?;
    let work = tempfile_dir()?;
    let cfg = work.join("early.cfg");
    let out = work.join("core.img");
    std::fs::write(&cfg, bios_early_config(fat_uuid))?;
    let o = Command::new(&mk)
        .arg("-O")
        .arg("i386-pc")
        .arg("-d")
        .arg(grub_pc_dir)
        .arg("-o")
        .arg(&out)
        .arg("-c")
        .arg(&cfg)
        .arg("-p")
        .arg("/boot/grub")
        .args(BIOS_CORE_MODULES)
        .env("SOURCE_DATE_EPOCH", std::env::var("SOURCE_DATE_EPOCH").unwrap_or_else(|_| "0".into()))
        .output()
        .with_context(|| format!("running {}", mk.display()));
    let result = o.and_then(|o| {
        ensure!(o.status.success(), "grub-mkimage failed: {}", String::from_utf8_lossy(&o.stderr).trim());
        std::fs::read(&out).with_context(|| format!("reading {}", out.display()))
    });
    let _ = std::fs::remove_dir_all(&work);
    let core = result?;
    ensure!(core.len() >= 1024, "grub-mkimage made a core.img of only {} bytes", core.len());
    Ok(core)
}

fn tempfile_dir() -> Result<PathBuf> {
    let base = std::env::temp_dir();
    for i in 0..1000u32 {
        let d = base.join(format!("sysclone-grub-{}-{i}", std::process::id()));
        if std::fs::create_dir(&d).is_ok() {
            return Ok(d);
        }
    }
    bail!("cannot create a temporary directory in {}", base.display())
}

/// `boot.img`'s 440 code bytes for a hard disk whose `core.img` starts at `core_lba`: the
/// kernel sector set, and the floppy-drive check turned off (two NOPs over its jump), as
/// `grub-setup` does for disks.
pub fn mbr_boot_code(boot_img: &[u8], core_lba: u64) -> Result<[u8; 440]> {
    ensure!(boot_img.len() == 512 && boot_img[510..512] == [0x55, 0xAA], "boot.img is not a 512-byte boot sector");
    ensure!(boot_img[BOOT_DRIVE_CHECK] == 0xEB, "boot.img: no jump at the drive check offset {BOOT_DRIVE_CHECK:#x}; not GRUB 2's boot.img?");
    let mut code = [0u8; 440];
    code.copy_from_slice(&boot_img[..440]);
    code[BOOT_KERNEL_SECTOR..BOOT_KERNEL_SECTOR + 8].copy_from_slice(&core_lba.to_le_bytes());
    code[BOOT_DRIVE_CHECK] = 0x90;
    code[BOOT_DRIVE_CHECK + 1] = 0x90;
    Ok(code)
}

/// Points `core.img`'s first block list (in its first sector) at the rest of itself, stored
/// contiguously from `core_lba + 1`. `grub-mkimage` already filled in the sector count.
pub fn place_core_img(core: &mut [u8], core_lba: u64) -> Result<()> {
    ensure!(core.len() > 512, "core.img too short");
    let count = u16::from_le_bytes([core[DISKBOOT_LIST + 8], core[DISKBOOT_LIST + 9]]);
    let segment = u16::from_le_bytes([core[DISKBOOT_LIST + 10], core[DISKBOOT_LIST + 11]]);
    let need = core.len().div_ceil(512) - 1;
    ensure!(
        count as usize == need && segment == 0x820,
        "core.img's block list ({count} sectors at segment {segment:#x}) does not describe its {need} further sectors; not an i386-pc core.img?"
    );
    core[DISKBOOT_LIST..DISKBOOT_LIST + 8].copy_from_slice(&(core_lba + 1).to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_text() {
        let c = grub_cfg("sysclone \"0.1\"", " console=ttyS0 sysclone.mode=list ");
        assert!(c.contains("menuentry \"sysclone 0.1\" {"), "{c}");
        assert!(c.contains("\tlinux /EFI/sysclone/vmlinuz console=ttyS0 sysclone.mode=list\n"), "{c}");
        assert!(c.contains("initrd /EFI/sysclone/initramfs.img"));
        assert_eq!(bios_early_config("ABCD-1234"), "search --no-floppy --fs-uuid --set=root ABCD-1234\nset prefix=($root)/boot/grub\n");
    }

    #[test]
    fn patching() {
        let mut boot = vec![0u8; 512];
        boot[BOOT_KERNEL_SECTOR] = 1;
        boot[BOOT_DRIVE_CHECK] = 0xEB;
        boot[BOOT_DRIVE_CHECK + 1] = 0x05;
        boot[510] = 0x55;
        boot[511] = 0xAA;
        let code = mbr_boot_code(&boot, 0x1234_5678).unwrap();
        assert_eq!(&code[BOOT_KERNEL_SECTOR..BOOT_KERNEL_SECTOR + 8], &0x1234_5678u64.to_le_bytes());
        assert_eq!(&code[BOOT_DRIVE_CHECK..BOOT_DRIVE_CHECK + 2], &[0x90, 0x90]);
        assert!(mbr_boot_code(&boot[..500], 1).is_err());

        let mut core = vec![0u8; 512 * 3 + 7];
        core[DISKBOOT_LIST..DISKBOOT_LIST + 8].copy_from_slice(&2u64.to_le_bytes());
        core[DISKBOOT_LIST + 8] = 3;
        core[DISKBOOT_LIST + 10..DISKBOOT_LIST + 12].copy_from_slice(&0x820u16.to_le_bytes());
        place_core_img(&mut core, 1000).unwrap();
        assert_eq!(&core[DISKBOOT_LIST..DISKBOOT_LIST + 8], &1001u64.to_le_bytes());
        core[DISKBOOT_LIST + 8] = 9;
        assert!(place_core_img(&mut core, 1000).is_err());
    }

    /// With Debian's grub-pc-bin: the real boot.img and a real core.img patch cleanly, and
    /// grub-mkimage's output does not change from run to run.
    #[test]
    fn real_grub_pc() {
        let dir = Path::new(DEFAULT_GRUB_PC_DIR);
        if let Some(why) = bios_unavailable(dir) {
            panic!("this test needs GRUB for BIOS: {why}");
        }
        let boot = std::fs::read(dir.join("boot.img")).unwrap();
        mbr_boot_code(&boot, 4096).unwrap();
        let mut a = make_core_img(dir, "1234-ABCD").unwrap();
        let b = make_core_img(dir, "1234-ABCD").unwrap();
        assert_eq!(a, b, "grub-mkimage is not reproducible");
        assert!(a.len() < 1 << 20, "core.img of {} bytes does not fit the BIOS boot partition", a.len());
        place_core_img(&mut a, 4096).unwrap();
    }
}
