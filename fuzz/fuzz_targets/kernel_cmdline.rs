#![no_main]
//! The kernel command line (sysclone.job=, sysclone.mode=, ...), and the size and selector
//! syntax values given there use.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let c = sysclone_init::cmdline::Cmdline::parse(&text);
    for (k, v) in &c.0 {
        assert!(!k.is_empty());
        assert_eq!(c.get(k), Some(v.as_str()));
        let _ = sysclone_disk::parse_size(v);
        let _ = sysclone_disk::Selector::parse(v);
    }
});
