//! GUID text <-> byte conversions.
//!
//! Two byte orders are in use:
//!
//! * **textual order**: the 16 bytes in the order the hex digits are written
//!   (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`), as returned by e.g. `uuid::Uuid::as_bytes`;
//! * **on-disk (mixed-endian) order**: the `EFI_GUID` layout used in GPT entries and device
//!   paths, where the first three fields (u32, u16, u16) are little-endian and the last
//!   eight bytes are kept as written.

use anyhow::{bail, Result};

/// Positions of the dashes in the 36-character textual form.
const DASHES: [usize; 4] = [8, 13, 18, 23];

/// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (either case, surrounding whitespace
/// ignored) into 16 bytes in textual order.
pub fn parse_guid(text: &str) -> Result<[u8; 16]> {
    let s = text.trim().as_bytes();
    if s.len() != 36 {
        bail!("invalid GUID {text:?}: expected 36 characters");
    }
    let mut out = [0u8; 16];
    let mut nibble = 0usize;
    for (i, &c) in s.iter().enumerate() {
        if DASHES.contains(&i) {
            if c != b'-' {
                bail!("invalid GUID {text:?}: expected '-' at position {i}");
            }
            continue;
        }
        let Some(v) = char::from(c).to_digit(16) else {
            bail!("invalid GUID {text:?}: bad hex digit at position {i}");
        };
        // 32 hex digits fill 16 bytes exactly; `nibble < 32` is guaranteed by the length check.
        if let Some(b) = out.get_mut(nibble / 2) {
            *b = (*b << 4) | v as u8;
        }
        nibble += 1;
    }
    Ok(out)
}

/// Formats 16 bytes in textual order as a lowercase GUID string.
pub fn format_guid(bytes: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Converts between textual and on-disk (mixed-endian) order. The conversion is its own
/// inverse: it byte-swaps the first three fields.
pub fn swap_mixed_endian(mut bytes: [u8; 16]) -> [u8; 16] {
    bytes[0..4].reverse();
    bytes[4..6].reverse();
    bytes[6..8].reverse();
    bytes
}

/// Parses a textual GUID into the on-disk (mixed-endian) bytes used by GPT and device paths.
pub fn guid_to_disk_bytes(text: &str) -> Result<[u8; 16]> {
    parse_guid(text).map(swap_mixed_endian)
}

/// Formats on-disk (mixed-endian) GUID bytes as a lowercase textual GUID.
pub fn guid_from_disk_bytes(bytes: &[u8; 16]) -> String {
    format_guid(&swap_mixed_endian(*bytes))
}

/// Normalises a textual GUID to lowercase canonical form, validating it.
pub fn normalize_guid(text: &str) -> Result<String> {
    parse_guid(text).map(|b| format_guid(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "768a4bfb-e5f6-4905-8db3-9b62bf27444b";
    const DISK: [u8; 16] = [
        0xfb, 0x4b, 0x8a, 0x76, 0xf6, 0xe5, 0x05, 0x49, 0x8d, 0xb3, 0x9b, 0x62, 0xbf, 0x27, 0x44,
        0x4b,
    ];

    #[test]
    fn known_vector() {
        assert_eq!(guid_to_disk_bytes(TEXT).unwrap(), DISK);
        assert_eq!(guid_from_disk_bytes(&DISK), TEXT);
        assert_eq!(
            guid_to_disk_bytes(&TEXT.to_uppercase()).unwrap(),
            DISK,
            "uppercase accepted"
        );
        assert_eq!(
            parse_guid(TEXT).unwrap(),
            [
                0x76, 0x8a, 0x4b, 0xfb, 0xe5, 0xf6, 0x49, 0x05, 0x8d, 0xb3, 0x9b, 0x62, 0xbf, 0x27,
                0x44, 0x4b
            ]
        );
    }

    #[test]
    fn round_trip() {
        let b = parse_guid(TEXT).unwrap();
        assert_eq!(format_guid(&b), TEXT);
        assert_eq!(swap_mixed_endian(swap_mixed_endian(b)), b);
        assert_eq!(
            normalize_guid(" 8BE4DF61-93CA-11D2-AA0D-00E098032B8C\n").unwrap(),
            "8be4df61-93ca-11d2-aa0d-00e098032b8c"
        );
    }

    #[test]
    fn malformed() {
        for bad in [
            "",
            "768a4bfb",
            "768a4bfb-e5f6-4905-8db3-9b62bf27444",
            "768a4bfb-e5f6-4905-8db3-9b62bf27444bb",
            "768a4bfbxe5f6-4905-8db3-9b62bf27444b",
            "768a4bfb-e5f6-4905-8db3-9b62bf27444g",
            "768a4bfb-e5f6-4905-8db3-9b62bf2744é",
            "{68a4bfb-e5f6-4905-8db3-9b62bf27444}",
            "+68a4bfb-e5f6-4905-8db3-9b62bf27444b",
        ] {
            assert!(parse_guid(bad).is_err(), "{bad:?}");
        }
    }
}
