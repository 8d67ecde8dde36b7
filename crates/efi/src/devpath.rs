//! UEFI device paths (UEFI spec "Device Path Protocol"): binary encoding, decoding and
//! efibootmgr-style text.
//!
//! Every node is `type: u8, subtype: u8, length: u16 LE` (length includes the 4-byte header)
//! followed by its payload. Decoding is lossless: a node whose payload does not have the exact
//! layout of a known node is kept as [`DevicePathNode::Unknown`], so
//! `encode_path(&decode_path(b)?)? == b` for every `b` that decodes.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{bail, ensure, Context, Result};

use crate::guid::guid_from_disk_bytes;

const TYPE_HARDWARE: u8 = 0x01;
const TYPE_ACPI: u8 = 0x02;
const TYPE_MESSAGING: u8 = 0x03;
const TYPE_MEDIA: u8 = 0x04;
const TYPE_END: u8 = 0x7f;

const SUB_END_ENTIRE: u8 = 0xff;
const SUB_HW_PCI: u8 = 0x01;
const SUB_HW_VENDOR: u8 = 0x04;
const SUB_ACPI: u8 = 0x01;
const SUB_MSG_SCSI: u8 = 0x02;
const SUB_MSG_USB: u8 = 0x05;
const SUB_MSG_VENDOR: u8 = 0x0a;
const SUB_MSG_MAC: u8 = 0x0b;
const SUB_MSG_IPV4: u8 = 0x0c;
const SUB_MSG_IPV6: u8 = 0x0d;
const SUB_MSG_SATA: u8 = 0x12;
const SUB_MSG_NVME: u8 = 0x17;
const SUB_MSG_URI: u8 = 0x18;
const SUB_MEDIA_HD: u8 = 0x01;
const SUB_MEDIA_VENDOR: u8 = 0x03;
const SUB_MEDIA_FILE: u8 = 0x04;

/// Node header size (type, subtype, u16 length).
const HEADER_LEN: usize = 4;

/// Signature of a Hard Drive media node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HdSignature {
    /// No signature (signature type 0).
    None,
    /// MBR disk signature (signature type 1).
    Mbr(u32),
    /// GPT partition *unique* GUID in on-disk (mixed-endian) byte order (signature type 2).
    Gpt([u8; 16]),
}

/// Partition table format of a Hard Drive media node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartitionFormat {
    /// PC-AT MBR (1).
    Mbr,
    /// GUID Partition Table (2).
    Gpt,
    /// Any other value.
    Other(u8),
}

impl PartitionFormat {
    fn to_byte(self) -> u8 {
        match self {
            Self::Mbr => 1,
            Self::Gpt => 2,
            Self::Other(b) => b,
        }
    }

    fn from_byte(b: u8) -> Self {
        match b {
            1 => Self::Mbr,
            2 => Self::Gpt,
            b => Self::Other(b),
        }
    }
}

/// One device path node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DevicePathNode {
    /// Media / Hard Drive (0x04/0x01): a partition.
    HardDrive {
        /// 1-based partition number (the GPT entry index for GPT disks).
        partition_number: u32,
        /// First LBA of the partition, in logical blocks of the disk.
        start_lba: u64,
        /// Size of the partition in logical blocks.
        size_lba: u64,
        /// Partition signature.
        signature: HdSignature,
        /// Partition table format.
        format: PartitionFormat,
    },
    /// Media / File Path (0x04/0x04): a path with `\` separators, stored as UCS-2.
    FilePath(String),
    /// End of entire device path (0x7F/0xFF).
    End,
    /// Hardware / PCI (0x01/0x01).
    Pci {
        /// PCI function number.
        function: u8,
        /// PCI device number.
        device: u8,
    },
    /// ACPI / ACPI device path (0x02/0x01).
    Acpi {
        /// Compressed EISA-style `_HID`.
        hid: u32,
        /// `_UID`.
        uid: u32,
    },
    /// Messaging / NVMe namespace (0x03/0x17).
    Nvme {
        /// Namespace identifier.
        nsid: u32,
        /// IEEE extended unique identifier, as stored.
        eui64: [u8; 8],
    },
    /// Messaging / SATA (0x03/0x12).
    Sata {
        /// HBA port number.
        hba_port: u16,
        /// Port multiplier port (0xFFFF = directly attached).
        pm_port: u16,
        /// Logical unit number.
        lun: u16,
    },
    /// Messaging / SCSI (0x03/0x02).
    Scsi {
        /// Target ID.
        target: u16,
        /// Logical unit number.
        lun: u16,
    },
    /// Messaging / USB (0x03/0x05).
    Usb {
        /// Port number on the parent hub.
        parent_port: u8,
        /// Interface number.
        interface: u8,
    },
    /// Messaging / MAC address (0x03/0x0B).
    MacAddr {
        /// MAC address, padded with zeros to 32 bytes.
        mac: [u8; 32],
        /// Network interface type (RFC 3232; 1 = Ethernet).
        if_type: u8,
    },
    /// Messaging / IPv4 (0x03/0x0C), raw payload.
    Ipv4(Vec<u8>),
    /// Messaging / IPv6 (0x03/0x0D), raw payload.
    Ipv6(Vec<u8>),
    /// Messaging / URI (0x03/0x18).
    Uri(String),
    /// Vendor-defined node. `typ` is the device path type: 1 (hardware, subtype 4),
    /// 3 (messaging, subtype 10) or 4 (media, subtype 3); other types are encoded with
    /// subtype 4.
    Vendor {
        /// Device path type.
        typ: u8,
        /// Vendor GUID in on-disk (mixed-endian) byte order.
        guid: [u8; 16],
        /// Vendor-defined data.
        data: Vec<u8>,
    },
    /// Any node not decoded above, kept verbatim.
    Unknown {
        /// Device path type.
        typ: u8,
        /// Device path subtype.
        sub: u8,
        /// Payload after the 4-byte header.
        data: Vec<u8>,
    },
}

/// Parameters of a Hard Drive media node, for building load options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HardDrive {
    /// 1-based partition number (the GPT entry index for GPT disks).
    pub partition_number: u32,
    /// First LBA of the partition.
    pub start_lba: u64,
    /// Size in logical blocks.
    pub size_lba: u64,
    /// Partition signature.
    pub signature: HdSignature,
    /// Partition table format.
    pub format: PartitionFormat,
}

impl HardDrive {
    /// A GPT partition; `unique_guid` is the partition's unique GUID in on-disk byte order
    /// (see [`crate::guid::guid_to_disk_bytes`]).
    pub fn gpt(
        partition_number: u32,
        start_lba: u64,
        size_lba: u64,
        unique_guid: [u8; 16],
    ) -> Self {
        Self {
            partition_number,
            start_lba,
            size_lba,
            signature: HdSignature::Gpt(unique_guid),
            format: PartitionFormat::Gpt,
        }
    }
}

impl From<HardDrive> for DevicePathNode {
    fn from(hd: HardDrive) -> Self {
        DevicePathNode::HardDrive {
            partition_number: hd.partition_number,
            start_lba: hd.start_lba,
            size_lba: hd.size_lba,
            signature: hd.signature,
            format: hd.format,
        }
    }
}

/// `N` bytes at `off`, or `None` if out of range (never panics).
fn array<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    b.get(off..off.checked_add(N)?)?.try_into().ok()
}

/// Little-endian readers that return `None` instead of panicking on short input.
pub(crate) fn le_u16(b: &[u8], off: usize) -> Option<u16> {
    array(b, off).map(u16::from_le_bytes)
}

pub(crate) fn le_u32(b: &[u8], off: usize) -> Option<u32> {
    array(b, off).map(u32::from_le_bytes)
}

fn le_u64(b: &[u8], off: usize) -> Option<u64> {
    array(b, off).map(u64::from_le_bytes)
}

/// Encodes `s` as UCS-2 LE followed by a NUL character. Errors on embedded NULs.
pub(crate) fn ucs2_nul(s: &str, what: &str) -> Result<Vec<u8>> {
    ensure!(!s.contains('\0'), "{what} contains a NUL character");
    Ok(s.encode_utf16()
        .chain(std::iter::once(0))
        .flat_map(u16::to_le_bytes)
        .collect())
}

impl DevicePathNode {
    /// Whether this is the End-of-entire-path node.
    pub fn is_end(&self) -> bool {
        matches!(self, DevicePathNode::End)
    }

    /// Type, subtype and payload of this node.
    fn parts(&self) -> Result<(u8, u8, Vec<u8>)> {
        use DevicePathNode as N;
        Ok(match self {
            N::HardDrive {
                partition_number,
                start_lba,
                size_lba,
                signature,
                format,
            } => {
                let mut p = Vec::with_capacity(38);
                p.extend(partition_number.to_le_bytes());
                p.extend(start_lba.to_le_bytes());
                p.extend(size_lba.to_le_bytes());
                let (sig, sig_type) = match signature {
                    HdSignature::None => ([0u8; 16], 0u8),
                    HdSignature::Mbr(m) => {
                        let mut s = [0u8; 16];
                        s[..4].copy_from_slice(&m.to_le_bytes());
                        (s, 1)
                    }
                    HdSignature::Gpt(g) => (*g, 2),
                };
                p.extend(sig);
                p.push(format.to_byte());
                p.push(sig_type);
                (TYPE_MEDIA, SUB_MEDIA_HD, p)
            }
            N::FilePath(s) => (TYPE_MEDIA, SUB_MEDIA_FILE, ucs2_nul(s, "file path")?),
            N::End => (TYPE_END, SUB_END_ENTIRE, Vec::new()),
            N::Pci { function, device } => (TYPE_HARDWARE, SUB_HW_PCI, vec![*function, *device]),
            N::Acpi { hid, uid } => {
                let mut p = hid.to_le_bytes().to_vec();
                p.extend(uid.to_le_bytes());
                (TYPE_ACPI, SUB_ACPI, p)
            }
            N::Nvme { nsid, eui64 } => {
                let mut p = nsid.to_le_bytes().to_vec();
                p.extend(eui64);
                (TYPE_MESSAGING, SUB_MSG_NVME, p)
            }
            N::Sata {
                hba_port,
                pm_port,
                lun,
            } => {
                let p = [hba_port, pm_port, lun]
                    .into_iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect();
                (TYPE_MESSAGING, SUB_MSG_SATA, p)
            }
            N::Scsi { target, lun } => {
                let mut p = target.to_le_bytes().to_vec();
                p.extend(lun.to_le_bytes());
                (TYPE_MESSAGING, SUB_MSG_SCSI, p)
            }
            N::Usb {
                parent_port,
                interface,
            } => (TYPE_MESSAGING, SUB_MSG_USB, vec![*parent_port, *interface]),
            N::MacAddr { mac, if_type } => {
                let mut p = mac.to_vec();
                p.push(*if_type);
                (TYPE_MESSAGING, SUB_MSG_MAC, p)
            }
            N::Ipv4(raw) => (TYPE_MESSAGING, SUB_MSG_IPV4, raw.clone()),
            N::Ipv6(raw) => (TYPE_MESSAGING, SUB_MSG_IPV6, raw.clone()),
            N::Uri(s) => (TYPE_MESSAGING, SUB_MSG_URI, s.as_bytes().to_vec()),
            N::Vendor { typ, guid, data } => {
                let sub = match *typ {
                    TYPE_MESSAGING => SUB_MSG_VENDOR,
                    TYPE_MEDIA => SUB_MEDIA_VENDOR,
                    _ => SUB_HW_VENDOR,
                };
                let mut p = guid.to_vec();
                p.extend(data);
                (*typ, sub, p)
            }
            N::Unknown { typ, sub, data } => (*typ, *sub, data.clone()),
        })
    }

    /// Appends the binary encoding of this node to `out`.
    fn encode_into(&self, out: &mut Vec<u8>) -> Result<()> {
        let (typ, sub, payload) = self.parts()?;
        let len = u16::try_from(payload.len() + HEADER_LEN)
            .ok()
            .with_context(|| format!("device path node {typ:#04x}/{sub:#04x} is too long"))?;
        out.push(typ);
        out.push(sub);
        out.extend(len.to_le_bytes());
        out.extend(payload);
        Ok(())
    }

    /// Decodes one node from its type, subtype and payload. Never fails: payloads that do not
    /// have the exact layout of a known node become [`DevicePathNode::Unknown`].
    fn from_parts(typ: u8, sub: u8, p: &[u8]) -> Self {
        Self::decode_known(typ, sub, p).unwrap_or_else(|| DevicePathNode::Unknown {
            typ,
            sub,
            data: p.to_vec(),
        })
    }

    fn decode_known(typ: u8, sub: u8, p: &[u8]) -> Option<Self> {
        use DevicePathNode as N;
        let exact = |n: usize| (p.len() == n).then_some(());
        Some(match (typ, sub) {
            (TYPE_END, SUB_END_ENTIRE) => {
                exact(0)?;
                N::End
            }
            (TYPE_MEDIA, SUB_MEDIA_HD) => {
                exact(38)?;
                let sig: [u8; 16] = array(p, 20)?;
                let signature = match p.get(37)? {
                    0 if sig == [0; 16] => HdSignature::None,
                    1 if sig[4..] == [0; 12] => HdSignature::Mbr(le_u32(&sig, 0)?),
                    2 => HdSignature::Gpt(sig),
                    _ => return None,
                };
                N::HardDrive {
                    partition_number: le_u32(p, 0)?,
                    start_lba: le_u64(p, 4)?,
                    size_lba: le_u64(p, 12)?,
                    signature,
                    format: PartitionFormat::from_byte(*p.get(36)?),
                }
            }
            (TYPE_MEDIA, SUB_MEDIA_FILE) => {
                // Exactly one NUL, at the end; valid UTF-16.
                let units: Vec<u16> = p.chunks(2).filter_map(|c| le_u16(c, 0)).collect();
                if p.len() % 2 != 0 || units.last() != Some(&0) {
                    return None;
                }
                let text = units.get(..units.len() - 1)?;
                if text.contains(&0) {
                    return None;
                }
                N::FilePath(String::from_utf16(text).ok()?)
            }
            (TYPE_HARDWARE, SUB_HW_PCI) => {
                exact(2)?;
                N::Pci {
                    function: *p.first()?,
                    device: *p.get(1)?,
                }
            }
            (TYPE_ACPI, SUB_ACPI) => {
                exact(8)?;
                N::Acpi {
                    hid: le_u32(p, 0)?,
                    uid: le_u32(p, 4)?,
                }
            }
            (TYPE_MESSAGING, SUB_MSG_NVME) => {
                exact(12)?;
                N::Nvme {
                    nsid: le_u32(p, 0)?,
                    eui64: array(p, 4)?,
                }
            }
            (TYPE_MESSAGING, SUB_MSG_SATA) => {
                exact(6)?;
                N::Sata {
                    hba_port: le_u16(p, 0)?,
                    pm_port: le_u16(p, 2)?,
                    lun: le_u16(p, 4)?,
                }
            }
            (TYPE_MESSAGING, SUB_MSG_SCSI) => {
                exact(4)?;
                N::Scsi {
                    target: le_u16(p, 0)?,
                    lun: le_u16(p, 2)?,
                }
            }
            (TYPE_MESSAGING, SUB_MSG_USB) => {
                exact(2)?;
                N::Usb {
                    parent_port: *p.first()?,
                    interface: *p.get(1)?,
                }
            }
            (TYPE_MESSAGING, SUB_MSG_MAC) => {
                exact(33)?;
                N::MacAddr {
                    mac: array(p, 0)?,
                    if_type: *p.get(32)?,
                }
            }
            (TYPE_MESSAGING, SUB_MSG_IPV4) => N::Ipv4(p.to_vec()),
            (TYPE_MESSAGING, SUB_MSG_IPV6) => N::Ipv6(p.to_vec()),
            (TYPE_MESSAGING, SUB_MSG_URI) => N::Uri(String::from_utf8(p.to_vec()).ok()?),
            (TYPE_HARDWARE, SUB_HW_VENDOR)
            | (TYPE_MESSAGING, SUB_MSG_VENDOR)
            | (TYPE_MEDIA, SUB_MEDIA_VENDOR) => N::Vendor {
                typ,
                guid: array(p, 0)?,
                data: p.get(16..)?.to_vec(),
            },
            _ => return None,
        })
    }
}

/// Encodes a device path (list), appending an [`DevicePathNode::End`] node if the last node
/// is not one. Fails only if a node is too long for its 16-bit length field or a file path
/// contains a NUL character.
pub fn encode_path(nodes: &[DevicePathNode]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for node in nodes {
        node.encode_into(&mut out)?;
    }
    if !nodes.last().is_some_and(DevicePathNode::is_end) {
        DevicePathNode::End.encode_into(&mut out)?;
    }
    Ok(out)
}

/// Decodes a device path list. The whole buffer must consist of well-formed nodes
/// (length >= 4 and within the buffer) and end with an End-of-entire-path node; several
/// End-terminated paths in a row (as allowed in a load option's FilePathList) are accepted.
/// The returned nodes include the End node(s).
pub fn decode_path(bytes: &[u8]) -> Result<Vec<DevicePathNode>> {
    ensure!(!bytes.is_empty(), "empty device path");
    let mut nodes = Vec::new();
    let mut off = 0usize;
    while off < bytes.len() {
        let (Some(&typ), Some(&sub), Some(len)) =
            (bytes.get(off), bytes.get(off + 1), le_u16(bytes, off + 2))
        else {
            bail!("truncated device path node header at offset {off}");
        };
        let len = usize::from(len);
        if len < HEADER_LEN {
            bail!("device path node at offset {off} has invalid length {len}");
        }
        let Some(payload) = bytes.get(off + HEADER_LEN..off + len) else {
            bail!(
                "device path node at offset {off} (length {len}) overruns the {}-byte buffer",
                bytes.len()
            );
        };
        nodes.push(DevicePathNode::from_parts(typ, sub, payload));
        off += len;
    }
    ensure!(
        nodes.last().is_some_and(DevicePathNode::is_end),
        "device path is not terminated by an End node"
    );
    Ok(nodes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Formats a GUID given in on-disk order, uppercase in the `{:#}` (firmware) style.
fn fmt_guid(f: &fmt::Formatter<'_>, disk: &[u8; 16]) -> String {
    let g = guid_from_disk_bytes(disk);
    if f.alternate() {
        g.to_uppercase()
    } else {
        g
    }
}

/// efibootmgr-style text, e.g. `HD(1,GPT,768a4bfb-e5f6-4905-8db3-9b62bf27444b,0x800,0x32000)`
/// or `File(\EFI\BOOT\BOOTX64.EFI)`. The alternate form (`{:#}`) follows the firmware
/// (edk2) style instead: uppercase GUIDs and bare file paths.
impl fmt::Display for DevicePathNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DevicePathNode as N;
        match self {
            N::HardDrive {
                partition_number,
                start_lba,
                size_lba,
                signature,
                format,
            } => {
                let fmt_name = match format {
                    PartitionFormat::Mbr => "MBR".to_string(),
                    PartitionFormat::Gpt => "GPT".to_string(),
                    PartitionFormat::Other(b) => format!("{b:#x}"),
                };
                let sig = match signature {
                    HdSignature::None => "0".to_string(),
                    HdSignature::Mbr(m) => format!("{m:#010x}"),
                    HdSignature::Gpt(g) => fmt_guid(f, g),
                };
                write!(
                    f,
                    "HD({partition_number},{fmt_name},{sig},{start_lba:#x},{size_lba:#x})"
                )
            }
            N::FilePath(p) if f.alternate() => f.write_str(p),
            N::FilePath(p) => write!(f, "File({p})"),
            N::End => Ok(()),
            N::Pci { function, device } => write!(f, "Pci({device:#x},{function:#x})"),
            N::Acpi { hid, uid } => match hid {
                0x0a03_41d0 | 0x0a08_41d0 => write!(f, "PciRoot({uid:#x})"),
                h if h & 0xffff == 0x41d0 => write!(f, "Acpi(PNP{:04X},{uid:#x})", h >> 16),
                h => write!(f, "Acpi({h:#x},{uid:#x})"),
            },
            N::Nvme { nsid, eui64 } => {
                let eui: Vec<String> = eui64.iter().map(|b| format!("{b:02X}")).collect();
                write!(f, "NVMe({nsid:#x},{})", eui.join("-"))
            }
            N::Sata {
                hba_port,
                pm_port,
                lun,
            } => write!(f, "Sata({hba_port},{pm_port},{lun})"),
            N::Scsi { target, lun } => write!(f, "Scsi({target},{lun})"),
            N::Usb {
                parent_port,
                interface,
            } => write!(f, "USB({parent_port},{interface})"),
            N::MacAddr { mac, if_type } => {
                let shown = if matches!(if_type, 0 | 1) {
                    &mac[..6]
                } else {
                    &mac[..]
                };
                write!(f, "MAC({},{if_type:#x})", hex(shown))
            }
            N::Ipv4(raw) => match (array::<4>(raw, 0), array::<4>(raw, 4)) {
                (Some(l), Some(r)) => {
                    write!(f, "IPv4({}<->{})", Ipv4Addr::from(l), Ipv4Addr::from(r))
                }
                _ => write!(f, "IPv4({})", hex(raw)),
            },
            N::Ipv6(raw) => match (array::<16>(raw, 0), array::<16>(raw, 16)) {
                (Some(l), Some(r)) => {
                    write!(f, "IPv6({}<->{})", Ipv6Addr::from(l), Ipv6Addr::from(r))
                }
                _ => write!(f, "IPv6({})", hex(raw)),
            },
            N::Uri(u) => write!(f, "Uri({u})"),
            N::Vendor { typ, guid, data } => {
                let kind = match *typ {
                    TYPE_HARDWARE => "VenHw",
                    TYPE_MESSAGING => "VenMsg",
                    TYPE_MEDIA => "VenMedia",
                    _ => "Ven",
                };
                write!(f, "{kind}({}", fmt_guid(f, guid))?;
                if !data.is_empty() {
                    write!(f, ",{}", hex(data))?;
                }
                f.write_str(")")
            }
            // PIWG firmware file / volume (media subtypes 6 and 7): a GUID, as efibootmgr names them.
            N::Unknown { typ: 4, sub: sub @ (6 | 7), data } if data.len() == 16 => {
                let g: [u8; 16] = data.as_slice().try_into().map_err(|_| std::fmt::Error)?;
                write!(f, "{}({})", if *sub == 6 { "FvFile" } else { "FvVol" }, crate::guid::guid_from_disk_bytes(&g))
            }
            N::Unknown { typ, sub, data } => write!(f, "Path({typ},{sub},{})", hex(data)),
        }
    }
}

/// Displays a device path list: nodes joined with `/`, End nodes omitted, consecutive
/// End-terminated paths separated by `,`. Honours `{:#}` like [`DevicePathNode`]'s Display.
#[derive(Debug, Clone, Copy)]
pub struct PathDisplay<'a>(pub &'a [DevicePathNode]);

impl fmt::Display for PathDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        for node in self.0 {
            if node.is_end() {
                if !sep.is_empty() {
                    sep = ",";
                }
                continue;
            }
            f.write_str(sep)?;
            if f.alternate() {
                write!(f, "{node:#}")?;
            } else {
                write!(f, "{node}")?;
            }
            sep = "/";
        }
        Ok(())
    }
}

/// efibootmgr-style text of a device path list (see [`PathDisplay`]).
pub fn path_to_string(nodes: &[DevicePathNode]) -> String {
    PathDisplay(nodes).to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::guid::guid_to_disk_bytes;

    pub(crate) const GUID: &str = "768a4bfb-e5f6-4905-8db3-9b62bf27444b";

    pub(crate) fn sample_path() -> Vec<DevicePathNode> {
        vec![
            HardDrive::gpt(1, 0x800, 0x32000, guid_to_disk_bytes(GUID).unwrap()).into(),
            DevicePathNode::FilePath(r"\EFI\BOOT\BOOTX64.EFI".into()),
            DevicePathNode::End,
        ]
    }

    /// Hand-assembled bytes of `sample_path()`.
    pub(crate) fn sample_bytes() -> Vec<u8> {
        let mut b = vec![0x04, 0x01, 42, 0];
        b.extend([1, 0, 0, 0]);
        b.extend([0x00, 0x08, 0, 0, 0, 0, 0, 0]);
        b.extend([0x00, 0x20, 0x03, 0, 0, 0, 0, 0]);
        b.extend([
            0xfb, 0x4b, 0x8a, 0x76, 0xf6, 0xe5, 0x05, 0x49, 0x8d, 0xb3, 0x9b, 0x62, 0xbf, 0x27,
            0x44, 0x4b,
        ]);
        b.extend([2, 2]);
        b.extend([0x04, 0x04, 48, 0]);
        for c in r"\EFI\BOOT\BOOTX64.EFI".bytes() {
            b.extend([c, 0]);
        }
        b.extend([0, 0]);
        b.extend([0x7f, 0xff, 4, 0]);
        b
    }

    /// Small deterministic xorshift generator for fuzz-style tests.
    pub(crate) struct Rng(pub u64);
    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn known_bytes() {
        let bytes = sample_bytes();
        assert_eq!(bytes.len(), 94);
        assert_eq!(encode_path(&sample_path()).unwrap(), bytes);
        assert_eq!(decode_path(&bytes).unwrap(), sample_path());
    }

    #[test]
    fn end_is_appended() {
        let mut p = sample_path();
        p.pop();
        assert_eq!(encode_path(&p).unwrap(), sample_bytes());
        assert_eq!(encode_path(&[]).unwrap(), vec![0x7f, 0xff, 4, 0]);
    }

    #[test]
    fn display() {
        let p = sample_path();
        assert_eq!(
            path_to_string(&p),
            r"HD(1,GPT,768a4bfb-e5f6-4905-8db3-9b62bf27444b,0x800,0x32000)/File(\EFI\BOOT\BOOTX64.EFI)"
        );
        assert_eq!(
            format!("{:#}", PathDisplay(&p)),
            r"HD(1,GPT,768A4BFB-E5F6-4905-8DB3-9B62BF27444B,0x800,0x32000)/\EFI\BOOT\BOOTX64.EFI"
        );
        let others = [
            DevicePathNode::Acpi {
                hid: 0x0a0341d0,
                uid: 0,
            },
            DevicePathNode::Pci {
                function: 2,
                device: 0x1f,
            },
            DevicePathNode::Sata {
                hba_port: 0,
                pm_port: 0xffff,
                lun: 0,
            },
            DevicePathNode::End,
            DevicePathNode::Nvme {
                nsid: 1,
                eui64: [0, 1, 2, 3, 4, 5, 6, 0xab],
            },
        ];
        assert_eq!(
            path_to_string(&others),
            "PciRoot(0x0)/Pci(0x1f,0x2)/Sata(0,65535,0),NVMe(0x1,00-01-02-03-04-05-06-AB)"
        );
        let mbr = DevicePathNode::HardDrive {
            partition_number: 2,
            start_lba: 2048,
            size_lba: 4096,
            signature: HdSignature::Mbr(0x1234abcd),
            format: PartitionFormat::Mbr,
        };
        assert_eq!(mbr.to_string(), "HD(2,MBR,0x1234abcd,0x800,0x1000)");
    }

    fn all_kinds() -> Vec<DevicePathNode> {
        use DevicePathNode as N;
        let mut mac = [0u8; 32];
        mac[..6].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        vec![
            N::Acpi {
                hid: 0x0a0841d0,
                uid: 1,
            },
            N::Pci {
                function: 0,
                device: 3,
            },
            N::Usb {
                parent_port: 1,
                interface: 0,
            },
            N::Scsi { target: 0, lun: 1 },
            N::Sata {
                hba_port: 1,
                pm_port: 0xffff,
                lun: 0,
            },
            N::Nvme {
                nsid: 1,
                eui64: [9; 8],
            },
            N::MacAddr { mac, if_type: 1 },
            N::Ipv4(vec![
                10, 0, 0, 1, 10, 0, 0, 2, 0, 0, 0, 0, 6, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
            ]),
            N::Ipv6(vec![0; 56]),
            N::Uri("http://boot/x.efi".into()),
            N::Vendor {
                typ: 1,
                guid: [7; 16],
                data: vec![1, 2, 3],
            },
            N::Vendor {
                typ: 3,
                guid: [8; 16],
                data: vec![],
            },
            N::Vendor {
                typ: 4,
                guid: [9; 16],
                data: vec![0xff],
            },
            N::Unknown {
                typ: 4,
                sub: 6,
                data: vec![1; 16],
            },
            N::End,
            N::HardDrive {
                partition_number: 3,
                start_lba: u64::MAX,
                size_lba: 1,
                signature: HdSignature::None,
                format: PartitionFormat::Other(7),
            },
            N::FilePath("\\EFI\\düsseldorf\\\u{1F600}.efi".into()),
            N::End,
        ]
    }

    #[test]
    fn round_trip_all_kinds() {
        let nodes = all_kinds();
        let bytes = encode_path(&nodes).unwrap();
        assert_eq!(decode_path(&bytes).unwrap(), nodes);
        let text = path_to_string(&nodes);
        assert!(text.contains("MAC(525400123456,0x1)"), "{text}");
        assert!(text.contains("IPv4(10.0.0.1<->10.0.0.2)"), "{text}");
        assert!(
            text.contains("VenHw(07070707-0707-0707-0707-070707070707,010203)"),
            "{text}"
        );
        assert!(text.contains("FvFile(01010101-0101-0101-0101-010101010101)"), "{text}");
    }

    #[test]
    fn odd_payloads_become_unknown_and_round_trip() {
        // HD with wrong length, File without NUL, End with payload followed by a real End.
        let bytes = [
            0x04, 0x01, 6, 0, 1, 2, //
            0x04, 0x04, 8, 0, b'a', 0, b'b', 0, //
            0x7f, 0xff, 5, 0, 9, //
            0x7f, 0xff, 4, 0,
        ];
        let nodes = decode_path(&bytes).unwrap();
        assert!(matches!(
            nodes[0],
            DevicePathNode::Unknown { typ: 4, sub: 1, .. }
        ));
        assert!(matches!(
            nodes[1],
            DevicePathNode::Unknown { typ: 4, sub: 4, .. }
        ));
        assert!(matches!(
            nodes[2],
            DevicePathNode::Unknown { typ: 0x7f, .. }
        ));
        assert_eq!(encode_path(&nodes).unwrap(), bytes);
    }

    #[test]
    fn malformed() {
        for bad in [
            &[][..],
            &[0x7f],
            &[0x7f, 0xff, 4],
            &[0x7f, 0xff, 3, 0],
            &[0x7f, 0xff, 0, 0],
            &[0x7f, 0xff, 8, 0],
            &[0x04, 0x04, 4, 0],                   // no End
            &[0x7f, 0xff, 4, 0, 0x01],             // trailing byte
            &[0x7f, 0xff, 4, 0, 0x04, 0x04, 4, 0], // ends with non-End
        ] {
            assert!(decode_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn encode_errors() {
        assert!(encode_path(&[DevicePathNode::FilePath("a\0b".into())]).is_err());
        assert!(encode_path(&[DevicePathNode::Uri("x".repeat(70000))]).is_err());
        assert!(encode_path(&[DevicePathNode::Uri("x".repeat(65531))]).is_ok());
    }

    #[test]
    fn truncated_and_random_inputs() {
        let good = encode_path(&all_kinds()).unwrap();
        for n in 0..good.len() {
            // Must not panic; a prefix only decodes if it ends right after an End node.
            if let Ok(nodes) = decode_path(&good[..n]) {
                assert_eq!(encode_path(&nodes).unwrap(), &good[..n]);
            }
        }
        // Every prefix cut inside the first path (before its End node) is an error.
        let first_end = good
            .windows(4)
            .position(|w| w == [0x7f, 0xff, 4, 0])
            .unwrap();
        for n in 0..first_end + 4 {
            assert!(decode_path(&good[..n]).is_err(), "prefix {n}");
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut decoded = 0;
        for _ in 0..20_000 {
            // Mutate a few bytes of a valid path, or generate pure noise.
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
                (0..rng.below(64)).map(|_| rng.next() as u8).collect()
            };
            if let Ok(nodes) = decode_path(&buf) {
                // Lossless decoding: re-encoding reproduces the input exactly.
                assert_eq!(encode_path(&nodes).unwrap(), buf);
                let _ = path_to_string(&nodes);
                decoded += 1;
            }
        }
        assert!(decoded > 1000, "only {decoded} inputs decoded");
    }
}
