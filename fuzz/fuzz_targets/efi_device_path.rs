#![no_main]
//! UEFI device paths: decode, print like efibootmgr, and re-encode what decoded.
use libfuzzer_sys::fuzz_target;
use sysclone_efi::devpath::{decode_path, encode_path, path_to_string};

fuzz_target!(|data: &[u8]| {
    if let Ok(nodes) = decode_path(data) {
        let _ = path_to_string(&nodes);
        if let Ok(bytes) = encode_path(&nodes) {
            let again = decode_path(&bytes).expect("an encoded device path decodes");
            assert_eq!(again, nodes, "decode(encode(p)) != p");
        }
    }
});
