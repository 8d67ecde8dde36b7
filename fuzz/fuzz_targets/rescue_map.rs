#![no_main]
//! ddrescue-format rescue maps (`--map` files given to clone/resume).
use libfuzzer_sys::fuzz_target;
use sysclone_copy::{RescueMap, Status};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(m) = RescueMap::parse(text) {
        let size = m.size();
        let total: u64 = [Status::NonTried, Status::Finished, Status::Bad, Status::NonTrimmed, Status::NonScraped].iter().map(|&s| m.bytes_with(s)).sum();
        assert_eq!(total, size);
        let _ = m.unfinished_within(0, size);
        let back = RescueMap::parse(&m.to_text(0, 1)).expect("a written map parses");
        assert_eq!(back.size(), size);
    }
});
