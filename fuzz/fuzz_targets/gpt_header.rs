#![no_main]
//! GPT header and entry array (sysclone-layout's byte-level reader), then relocation of
//! whatever it accepted to a larger and a smaller disk.
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    if let Some(s) = data.get(512..1024) {
        let _ = sysclone_layout::gpt_raw::parse_header(s);
    }
    // As given, and with its CRCs made right (so mutations get past them).
    let mut fixed = data.to_vec();
    sysclone_fuzz::fix_gpt_crcs(&mut fixed, 512);
    check(data);
    check(&fixed);
});

fn check(data: &[u8]) {
    for lbs in [512u32, 4096] {
        let len = data.len() as u64;
        if let Ok(Some(g)) = sysclone_layout::read_gpt(&mut Cursor::new(data), lbs, len) {
            assert!(g.last_used_lba() <= g.header.last_usable);
            for target in [len * 2, len, len / 2] {
                if let Ok(r) = g.relocate(target) {
                    assert!(r.backup_header_lba < target / lbs as u64);
                    let mut head = data.to_vec();
                    if (r.primary_end_bytes() as usize) <= head.len() {
                        r.apply_to_head(&mut head, target);
                    }
                }
            }
        }
        let problems = sysclone_layout::check_table(&mut Cursor::new(data), lbs, data.len() as u64);
        assert!(problems.iter().all(|p| !p.is_empty()));
    }
}
