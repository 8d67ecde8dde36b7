//! Boot-media building for sysclone: kernel module metadata and dependency closure, the rescue
//! initramfs (cpio newc), and the GPT + FAT32 USB image with systemd-boot. The module-index
//! readers (`parse_modules_dep`, `parse_modules_alias`, `parse_softdep`, [`fnmatch()`],
//! [`load_order`]) are also used at run time by init.

mod fatfix;
pub mod decompress;
pub mod firmware;
pub mod grub;
pub mod profile;
pub mod pxe;
pub mod fnmatch;
pub mod initramfs;
pub mod modindex;
pub mod modinfo;
pub mod tools;
pub mod usbimage;

#[cfg(test)]
pub(crate) mod testkernel;

pub use fnmatch::fnmatch;
pub use initramfs::{
    build_initramfs, read_initramfs, Compression, IncludedModule, InitramfsEntry, InitramfsReport,
    InitramfsSpec,
};
pub use modindex::{
    load_order, lookup_alias, parse_modules_alias, parse_modules_dep, parse_softdep, AliasEntry,
    Closure, DepEntry, DepMap, ModuleEntry, ModuleIndex, Reason, Resolution,
};
pub use modinfo::{
    find_elf_section, modinfo_from_bytes, module_name_from_path, normalize_alias,
    normalize_module_name, parse_builtin_modinfo, parse_modules_builtin, read_elf_section,
    read_modinfo, ModInfo, SoftDep,
};
pub use tools::{
    find_program, host_realpath, parse_elf, tool_closure, BusyboxReport, ElfDeps, ProgramReport,
    ToolBundle, ToolFile, ToolSet, BUSYBOX_APPLETS, DEFAULT_BUSYBOX, DEFAULT_TOOLS, LIBRARY_DIRS,
    PROGRAM_DIRS,
};
pub use usbimage::{
    add_files_to_fat, build_usb_image, default_esp_size, esp_path_matches, fat_label, find_files,
    format_fat32, format_fat32_with, list_fat_files, loader_entry, read_esp_file, read_esp_files, read_fat_file,
    volume_id_from_guid, write_fat_partition, EspEntry, EspFile, FileSource, UsbImageReport,
    UsbImageSpec, LOADER_CONF,
};
