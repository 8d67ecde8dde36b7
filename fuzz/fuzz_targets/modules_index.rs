#![no_main]
//! modules.dep / modules.alias / modules.softdep text, alias glob matching, dependency order.
use libfuzzer_sys::fuzz_target;
use sysclone_media::modindex::{load_order, lookup_alias, parse_modules_alias, parse_modules_dep, parse_softdep};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The first line is a name to look up; the rest is the index text.
    let (name, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let aliases = parse_modules_alias(rest);
    let _ = lookup_alias(&aliases, name);
    let _ = parse_softdep(rest);
    let _ = sysclone_media::modinfo::SoftDep::parse(rest);
    if let Ok(deps) = parse_modules_dep(rest) {
        let _ = load_order(&deps, name);
    }
});
