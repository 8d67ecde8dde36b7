#![no_main]
//! EFI_LOAD_OPTION (Boot#### variables): decode, show, and re-encode what decoded.
use libfuzzer_sys::fuzz_target;
use sysclone_efi::loadopt::LoadOption;

fuzz_target!(|data: &[u8]| {
    if let Ok(o) = LoadOption::decode(data) {
        let _ = (o.file_path(), o.hard_drive(), o.flag_names(), o.is_active());
        let _ = sysclone_efi::loadopt::optional_data_text(&o.optional_data);
        let _ = sysclone_efi::devpath::path_to_string(&o.path);
        if let Ok(bytes) = o.encode() {
            let again = LoadOption::decode(&bytes).expect("an encoded load option decodes");
            assert_eq!(again, o, "decode(encode(o)) != o");
        }
    }
});
