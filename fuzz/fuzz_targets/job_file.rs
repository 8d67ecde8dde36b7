#![no_main]
//! TOML job files (from the boot medium or HTTP): parse, then the values the runner derives.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(j) = sysclone_init::job::Job::parse(text) {
        let _ = j.boot_entry();
        let _ = j.migrate_policy();
        let _ = j.protect_selectors();
        for t in j.target_list() {
            let _ = sysclone_disk::Selector::parse(&t);
        }
        let _ = sysclone_disk::Selector::parse(&j.source);
    }
});
