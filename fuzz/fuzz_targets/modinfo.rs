#![no_main]
//! Kernel modules: ELF section table and `.modinfo` (possibly xz/zstd/gzip packed), and
//! `modules.builtin.modinfo`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mi) = sysclone_media::modinfo::modinfo_from_bytes(data) {
        let _ = mi.values("alias").count();
    }
    let _ = sysclone_media::modinfo::ModInfo::parse(data);
    let _ = sysclone_media::modinfo::parse_builtin_modinfo(data);
});
