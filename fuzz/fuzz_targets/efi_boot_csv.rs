#![no_main]
//! shim's BOOT.CSV / BOOTX64.CSV (UCS-2 text on an ESP).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sysclone_efi::parse_boot_csv(data);
});
