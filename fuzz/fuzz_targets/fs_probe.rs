#![no_main]
//! Filesystem identification from a partition's first bytes (label, UUID, kind).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sysclone_disk::probe::probe(data);
});
