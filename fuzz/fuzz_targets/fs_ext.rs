#![no_main]
//! ext2/3/4 superblock, group descriptors and block bitmaps (used-block map), on a sparse image
//! (see `sysclone_fuzz::sparse_image`).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sysclone_fuzz::map_and_check(data);
});
