//! UEFI boot variable handling for sysclone: device paths, `EFI_LOAD_OPTION`s, efivarfs
//! access, boot-order policy, efibootmgr-like editing and listing, and shim's CSV files.
//!
//! Typical use: build an entry with [`LoadOption::disk_entry`] and install it with
//! [`create_entry_first`] on [`EfiVars::default`].

pub mod devpath;
pub mod edit;
pub mod guid;
pub mod hex;
pub mod list;
pub mod loadopt;
pub mod policy;
pub mod shimcsv;
mod sys;
pub mod vars;

pub use devpath::{
    decode_path, encode_path, path_to_string, DevicePathNode, HardDrive, HdSignature,
    PartitionFormat, PathDisplay,
};
pub use guid::{
    format_guid, guid_from_disk_bytes, guid_to_disk_bytes, normalize_guid, parse_guid,
    swap_mixed_endian,
};
pub use list::{format_json, format_list, BootEntryInfo, BootListing};
pub use loadopt::{
    attribute_names, optional_data_text, ucs2_args, LoadOption, LOAD_OPTION_ACTIVE,
    LOAD_OPTION_CATEGORY, LOAD_OPTION_CATEGORY_APP, LOAD_OPTION_CATEGORY_BOOT,
    LOAD_OPTION_FORCE_RECONNECT, LOAD_OPTION_HIDDEN,
};
pub use policy::{create_entry, create_entry_first, find_identical, insert_at, put_first};
pub use shimcsv::{parse_boot_csv, CsvEntry};
pub use vars::{
    boot_var_name, EfiVars, SavedVar, VarSpace, BOOT_VAR_ATTRS, DEFAULT_EFIVARS_DIR,
    EFIVARFS_MAGIC, EFI_GLOBAL_GUID, EFI_VARIABLE_BOOTSERVICE_ACCESS, EFI_VARIABLE_NON_VOLATILE,
    EFI_VARIABLE_RUNTIME_ACCESS, LOADER_GUID,
};
