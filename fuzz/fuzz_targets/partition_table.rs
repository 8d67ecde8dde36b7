#![no_main]
//! The partition table reader `sysclone disks` and discovery use (GPT through the gpt crate,
//! MBR by hand): partitions it returns must lie within the disk.
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    // With its GPT CRCs made right, so that mutations get past them.
    let mut fixed = data.to_vec();
    sysclone_fuzz::fix_gpt_crcs(&mut fixed, 512);
    for lbs in [512u32, 4096] {
        let size = data.len() as u64;
        if let Ok(t) = sysclone_disk::table::parse_table(Cursor::new(fixed.clone()), lbs, size) {
            for p in &t.partitions {
                assert!(p.start_bytes.checked_add(p.size_bytes).is_some());
            }
        }
    }
});
