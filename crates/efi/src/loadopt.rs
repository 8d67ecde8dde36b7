//! `EFI_LOAD_OPTION`, the contents of `Boot####` variables.
//!
//! Layout: `u32 Attributes`, `u16 FilePathListLength`, NUL-terminated UCS-2 `Description`,
//! `FilePathList` (FilePathListLength bytes), then `OptionalData` up to the end.

use anyhow::{Context, Result};

use crate::devpath::{
    decode_path, encode_path, le_u16, le_u32, ucs2_nul, DevicePathNode, HardDrive,
};

/// The option is active (boot manager will try it).
pub const LOAD_OPTION_ACTIVE: u32 = 0x0000_0001;
/// Force reconnection of all drivers after loading.
pub const LOAD_OPTION_FORCE_RECONNECT: u32 = 0x0000_0002;
/// The option is hidden from the boot manager menu.
pub const LOAD_OPTION_HIDDEN: u32 = 0x0000_0008;
/// Mask of the category bits.
pub const LOAD_OPTION_CATEGORY: u32 = 0x0000_1f00;
/// Category: boot option.
pub const LOAD_OPTION_CATEGORY_BOOT: u32 = 0x0000_0000;
/// Category: application (not booted automatically).
pub const LOAD_OPTION_CATEGORY_APP: u32 = 0x0000_0100;

/// A decoded `EFI_LOAD_OPTION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOption {
    /// `LOAD_OPTION_*` attribute bits.
    pub attributes: u32,
    /// Human-readable description shown by the boot manager.
    pub description: String,
    /// Device path list; decoded lists include their End node(s), and encoding appends an
    /// End node if missing.
    pub path: Vec<DevicePathNode>,
    /// Loader arguments or other opaque data.
    pub optional_data: Vec<u8>,
}

impl LoadOption {
    /// An active boot entry for `loader_path` on partition `hd`: `[HD, FilePath, End]`.
    /// `/` in `loader_path` is converted to `\`, and a leading `\` is added if missing.
    pub fn disk_entry(description: &str, hd: HardDrive, loader_path: &str) -> Self {
        let mut loader = loader_path.replace('/', "\\");
        if !loader.starts_with('\\') {
            loader.insert(0, '\\');
        }
        Self {
            attributes: LOAD_OPTION_ACTIVE,
            description: description.to_string(),
            path: vec![
                hd.into(),
                DevicePathNode::FilePath(loader),
                DevicePathNode::End,
            ],
            optional_data: Vec::new(),
        }
    }

    /// The first File Path node of the device path (the loader), if any.
    pub fn file_path(&self) -> Option<String> {
        self.path.iter().find_map(|n| match n {
            crate::devpath::DevicePathNode::FilePath(p) => Some(p.clone()),
            _ => None,
        })
    }

    /// Whether `LOAD_OPTION_ACTIVE` is set.
    pub fn is_active(&self) -> bool {
        self.attributes & LOAD_OPTION_ACTIVE != 0
    }

    /// Encodes to `EFI_LOAD_OPTION` bytes. Fails if the description or a file path contains
    /// NUL, or the path list exceeds 65535 bytes.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let path = encode_path(&self.path)?;
        let path_len = u16::try_from(path.len())
            .ok()
            .context("load option device path list exceeds 65535 bytes")?;
        let desc = ucs2_nul(&self.description, "load option description")?;
        let mut out = Vec::with_capacity(6 + desc.len() + path.len() + self.optional_data.len());
        out.extend(self.attributes.to_le_bytes());
        out.extend(path_len.to_le_bytes());
        out.extend(desc);
        out.extend(path);
        out.extend(&self.optional_data);
        Ok(out)
    }

    /// Decodes `EFI_LOAD_OPTION` bytes. Invalid UTF-16 in the description is replaced with
    /// U+FFFD; structural errors (truncation, bad device path) are errors.
    pub fn decode(data: &[u8]) -> Result<Self> {
        let attributes = le_u32(data, 0).context("load option shorter than its header")?;
        let path_len = le_u16(data, 4).context("load option shorter than its header")?;
        let mut units = Vec::new();
        let mut off = 6usize;
        loop {
            let unit =
                le_u16(data, off).context("load option description is not NUL-terminated")?;
            off += 2;
            if unit == 0 {
                break;
            }
            units.push(unit);
        }
        let path_end = off + usize::from(path_len);
        let path_bytes = data.get(off..path_end).with_context(|| {
            format!(
                "load option device path list ({path_len} bytes at offset {off}) overruns the {}-byte option",
                data.len()
            )
        })?;
        let path = decode_path(path_bytes).context("invalid load option device path")?;
        Ok(Self {
            attributes,
            description: String::from_utf16_lossy(&units),
            path,
            optional_data: data.get(path_end..).unwrap_or_default().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devpath::tests::{sample_bytes, sample_path, Rng, GUID};
    use crate::guid::guid_to_disk_bytes;

    fn sample() -> LoadOption {
        LoadOption {
            attributes: LOAD_OPTION_ACTIVE,
            description: "Rescue".into(),
            path: sample_path(),
            optional_data: Vec::new(),
        }
    }

    /// The 114-byte option (118 with the efivarfs attribute header) from REFERENCE 6.2.
    fn sample_option_bytes() -> Vec<u8> {
        let mut b = vec![1, 0, 0, 0, 94, 0];
        for c in "Rescue".bytes() {
            b.extend([c, 0]);
        }
        b.extend([0, 0]);
        b.extend(sample_bytes());
        b
    }

    #[test]
    fn known_bytes() {
        let bytes = sample_option_bytes();
        assert_eq!(bytes.len(), 114);
        assert_eq!(sample().encode().unwrap(), bytes);
        assert_eq!(LoadOption::decode(&bytes).unwrap(), sample());
    }

    #[test]
    fn disk_entry_builds_sample() {
        let hd = HardDrive::gpt(1, 0x800, 0x32000, guid_to_disk_bytes(GUID).unwrap());
        let opt = LoadOption::disk_entry("Rescue", hd, "EFI/BOOT/BOOTX64.EFI");
        assert_eq!(opt, sample());
        assert!(opt.is_active());
        let opt2 = LoadOption::disk_entry("Rescue", hd, r"\EFI\BOOT\BOOTX64.EFI");
        assert_eq!(opt2, sample());
    }

    #[test]
    fn round_trip_with_optional_data() {
        let opt = LoadOption {
            attributes: LOAD_OPTION_ACTIVE | LOAD_OPTION_HIDDEN | LOAD_OPTION_CATEGORY_APP,
            description: "Ünïcode ☃".into(),
            path: sample_path(),
            optional_data: b"root=/dev/sda2 quiet\0".to_vec(),
        };
        let bytes = opt.encode().unwrap();
        assert_eq!(LoadOption::decode(&bytes).unwrap(), opt);
        // Path without End gets one appended; decoding then includes it.
        let mut no_end = opt.clone();
        no_end.path.pop();
        assert_eq!(no_end.encode().unwrap(), bytes);
    }

    #[test]
    fn malformed() {
        let good = sample_option_bytes();
        for n in 0..good.len() {
            assert!(LoadOption::decode(&good[..n]).is_err(), "prefix {n}");
        }
        let mut bad_len = good.clone();
        bad_len[4] = 95; // path list length one byte too long
        assert!(LoadOption::decode(&bad_len).is_err());
        let mut zero_len = good.clone();
        zero_len[4] = 0;
        assert!(LoadOption::decode(&zero_len).is_err());
        let mut desc = sample();
        desc.description = "a\0b".into();
        assert!(desc.encode().is_err());
    }

    #[test]
    fn random_inputs_never_panic() {
        let good = sample_option_bytes();
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let mut decoded = 0;
        for _ in 0..20_000 {
            let buf: Vec<u8> = if rng.below(2) == 0 {
                let mut b = good.clone();
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(b.len());
                    b[i] = rng.next() as u8;
                }
                if rng.below(2) == 0 {
                    b.truncate(rng.below(b.len() + 1));
                }
                b
            } else {
                (0..rng.below(128)).map(|_| rng.next() as u8).collect()
            };
            if let Ok(opt) = LoadOption::decode(&buf) {
                // Re-encoding succeeds, and is exact unless the description was lossy.
                let again = opt.encode().unwrap();
                if !opt.description.contains('\u{fffd}') {
                    assert_eq!(again, buf);
                }
                let _ = crate::devpath::path_to_string(&opt.path);
                decoded += 1;
            }
        }
        assert!(decoded > 1000, "only {decoded} inputs decoded");
    }
}
