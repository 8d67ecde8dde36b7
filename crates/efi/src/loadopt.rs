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

    /// The first Hard Drive node of the device path, if any.
    pub fn hard_drive(&self) -> Option<HardDrive> {
        self.path.iter().find_map(|n| match *n {
            DevicePathNode::HardDrive {
                partition_number,
                start_lba,
                size_lba,
                signature,
                format,
            } => Some(HardDrive {
                partition_number,
                start_lba,
                size_lba,
                signature,
                format,
            }),
            _ => None,
        })
    }

    /// Whether `other` is the same entry apart from its attributes: same description,
    /// byte-identical device path (an omitted End node does not count) and optional data.
    pub fn same_entry(&self, other: &LoadOption) -> bool {
        self.description == other.description
            && self.optional_data == other.optional_data
            && matches!(
                (encode_path(&self.path), encode_path(&other.path)),
                (Ok(a), Ok(b)) if a == b
            )
    }

    /// Names of the attribute bits: `active`, `force-reconnect`, `hidden`, and the category
    /// (`boot`, `app`, or `category 0x…`); unknown bits as `0x…`.
    pub fn flag_names(&self) -> Vec<String> {
        attribute_names(self.attributes)
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

/// Names of load option attribute bits (see [`LoadOption::flag_names`]).
pub fn attribute_names(attributes: u32) -> Vec<String> {
    let mut out = Vec::new();
    for (bit, name) in [
        (LOAD_OPTION_ACTIVE, "active"),
        (LOAD_OPTION_FORCE_RECONNECT, "force-reconnect"),
        (LOAD_OPTION_HIDDEN, "hidden"),
    ] {
        if attributes & bit != 0 {
            out.push(name.to_string());
        }
    }
    match attributes & LOAD_OPTION_CATEGORY {
        LOAD_OPTION_CATEGORY_BOOT => out.push("boot".into()),
        LOAD_OPTION_CATEGORY_APP => out.push("app".into()),
        c => out.push(format!("category {c:#x}")),
    }
    let known = LOAD_OPTION_ACTIVE
        | LOAD_OPTION_FORCE_RECONNECT
        | LOAD_OPTION_HIDDEN
        | LOAD_OPTION_CATEGORY;
    if attributes & !known != 0 {
        out.push(format!("{:#x}", attributes & !known));
    }
    out
}

/// edk2's marker in the optional data of boot options the firmware created by itself
/// (`mBmAutoCreateBootOptionGuid`), in on-disk byte order.
const AUTO_CREATED_GUID: [u8; 16] = [
    0x4e, 0xac, 0x08, 0x81, 0x11, 0x9f, 0x59, 0x4d, 0x85, 0x0e, 0xe2, 0x1a, 0x52, 0x2c, 0x59, 0xb2,
];

/// Printable text of UCS-2 LE bytes (an optional trailing NUL allowed), if that is what they
/// are.
fn ucs2_text(data: &[u8]) -> Option<String> {
    if data.len() < 2 || data.len() % 2 != 0 {
        return None;
    }
    let mut units: Vec<u16> = data
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    if units.last() == Some(&0) {
        units.pop();
    }
    let text = String::from_utf16(&units).ok()?;
    let readable = |c: char| c.is_ascii_graphic() || c == ' ' || c.is_alphanumeric();
    (!text.is_empty() && text.chars().all(readable)).then_some(text)
}

/// Readable form of a load option's optional data, efibootmgr-like: nothing when empty,
/// `{auto_created_boot_option}` for edk2's marker, `{guid}` for other 16-byte data that is not
/// text, the text itself when it is printable ASCII or UCS-2 (loader arguments), else hex.
pub fn optional_data_text(data: &[u8]) -> String {
    if data.is_empty() {
        return String::new();
    }
    if data == AUTO_CREATED_GUID {
        return "{auto_created_boot_option}".into();
    }
    if let Some(t) = ucs2_text(data) {
        return t;
    }
    if data.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        return String::from_utf8_lossy(data).into_owned();
    }
    if let Ok(g) = <[u8; 16]>::try_from(data) {
        return format!("{{{}}}", crate::guid::guid_from_disk_bytes(&g));
    }
    crate::hex::encode(data)
}

/// Optional data for loader arguments the way shim's fallback and `efibootmgr -u` write
/// them: UCS-2 LE, no terminating NUL.
pub fn ucs2_args(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
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

    /// A random, well-formed option built from every kind of node.
    fn random_option(rng: &mut Rng) -> LoadOption {
        use crate::devpath::{DevicePathNode as N, HdSignature, PartitionFormat};
        let text = |rng: &mut Rng, max: usize| -> String {
            let pool = ['a', 'Z', '0', '\\', ' ', '.', 'é', '☃', '\u{1F600}', '-'];
            (0..rng.below(max))
                .map(|_| pool[rng.below(pool.len())])
                .collect()
        };
        let bytes = |rng: &mut Rng, max: usize| -> Vec<u8> {
            (0..rng.below(max)).map(|_| rng.next() as u8).collect()
        };
        let mut path = Vec::new();
        for _ in 0..1 + rng.below(6) {
            let mut g = [0u8; 16];
            g.iter_mut().for_each(|b| *b = rng.next() as u8);
            path.push(match rng.below(12) {
                0 => N::HardDrive {
                    partition_number: rng.next() as u32,
                    start_lba: rng.next(),
                    size_lba: rng.next(),
                    signature: match rng.below(3) {
                        0 => HdSignature::None,
                        1 => HdSignature::Mbr(rng.next() as u32),
                        _ => HdSignature::Gpt(g),
                    },
                    format: [
                        PartitionFormat::Mbr,
                        PartitionFormat::Gpt,
                        PartitionFormat::Other(9),
                    ][rng.below(3)],
                },
                1 => N::FilePath(text(rng, 40)),
                2 => N::Pci {
                    function: rng.next() as u8,
                    device: rng.next() as u8,
                },
                3 => N::Acpi {
                    hid: rng.next() as u32,
                    uid: rng.next() as u32,
                },
                4 => N::Nvme {
                    nsid: rng.next() as u32,
                    eui64: [rng.next() as u8; 8],
                },
                5 => N::Sata {
                    hba_port: rng.next() as u16,
                    pm_port: 0xffff,
                    lun: 0,
                },
                6 => N::Usb {
                    parent_port: 1,
                    interface: rng.next() as u8,
                },
                7 => N::Uri("http://x/".to_string() + &"y".repeat(rng.below(20))),
                8 => N::Vendor {
                    typ: [1, 3, 4][rng.below(3)],
                    guid: g,
                    data: bytes(rng, 20),
                },
                9 => N::Unknown {
                    typ: 5,
                    sub: rng.next() as u8,
                    data: bytes(rng, 20),
                },
                10 => N::Scsi {
                    target: rng.next() as u16,
                    lun: rng.next() as u16,
                },
                _ => N::End,
            });
        }
        path.push(N::End);
        LoadOption {
            attributes: rng.next() as u32,
            description: text(rng, 30),
            path,
            optional_data: bytes(rng, 40),
        }
    }

    #[test]
    fn random_options_round_trip() {
        let mut rng = Rng(0x5eed_cafe_f00d_0001);
        for _ in 0..5_000 {
            let opt = random_option(&mut rng);
            let bytes = opt.encode().unwrap();
            let back = LoadOption::decode(&bytes).unwrap();
            assert_eq!(back, opt);
            assert_eq!(back.encode().unwrap(), bytes);
            assert!(back.same_entry(&opt));
            let _ = crate::devpath::path_to_string(&back.path);
            let _ = optional_data_text(&back.optional_data);
        }
    }

    /// Random and mutated `Boot####` contents in a variable directory: the listing reports the
    /// bad ones and never fails or panics.
    #[test]
    fn random_variables_are_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let vars = crate::vars::EfiVars::new(dir.path());
        let mut rng = Rng(0x0bad_5eed_0000_0007);
        let mut bad = 0;
        for n in 0..300u16 {
            let mut data = random_option(&mut rng).encode().unwrap();
            if rng.below(2) == 0 {
                for _ in 0..1 + rng.below(3) {
                    let i = rng.below(data.len());
                    data[i] = rng.next() as u8;
                }
                data.truncate(rng.below(data.len() + 1));
            }
            let name = crate::vars::boot_var_name(n);
            vars.write(&name, crate::vars::EFI_GLOBAL_GUID, 7, &data)
                .unwrap();
            bad += usize::from(LoadOption::decode(&data).is_err());
        }
        let listing = crate::list::BootListing::read(&vars).unwrap();
        assert_eq!(listing.entries.len(), 300);
        assert_eq!(
            listing.entries.iter().filter(|e| e.error.is_some()).count(),
            bad
        );
        assert!(bad > 50, "only {bad} malformed");
        let text = listing.to_text(true);
        assert_eq!(
            text.lines().filter(|l| l.contains("! <invalid:")).count(),
            bad
        );
        assert!(vars.snapshot().unwrap().len() >= 300);
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

#[cfg(test)]
mod text_tests {
    use super::*;

    #[test]
    fn optional_data_rendering() {
        assert_eq!(optional_data_text(&[]), "");
        assert_eq!(
            optional_data_text(&AUTO_CREATED_GUID),
            "{auto_created_boot_option}"
        );
        assert_eq!(
            optional_data_text(&ucs2_args("quiet splash")),
            "quiet splash"
        );
        let mut nul = ucs2_args("x");
        nul.extend([0, 0]);
        assert_eq!(optional_data_text(&nul), "x");
        assert_eq!(optional_data_text(b"root=/dev/sda1"), "root=/dev/sda1");
        assert_eq!(optional_data_text(&[1, 2, 0xff]), "0102ff");
        assert_eq!(
            optional_data_text(&[0xff; 16]),
            "{ffffffff-ffff-ffff-ffff-ffffffffffff}"
        );
        assert_eq!(attribute_names(1), ["active", "boot"]);
        assert_eq!(attribute_names(0x109), ["active", "hidden", "app"]);
        assert_eq!(attribute_names(0x1_0200), ["category 0x200", "0x10000"]);
    }
}
