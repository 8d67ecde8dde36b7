#![no_main]
//! Saved-image manifests (JSON): parse + check, then what readers compute from them.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = sysclone_imagefile::Manifest::parse(data) {
        let _ = (m.min_target_bytes(), m.stored_bytes(), m.compressed_bytes(), m.unreadable());
        let head = m.head().expect("a checked manifest has a valid head");
        assert!(head.len() as u64 <= m.source.size_bytes);
        for i in 0..m.chunks.len().min(4) {
            let _ = m.chunk_place(i);
        }
        let again = sysclone_imagefile::Manifest::parse(m.to_json().as_bytes()).expect("a written manifest parses");
        assert_eq!(again.chunks.len(), m.chunks.len());
    }
});
