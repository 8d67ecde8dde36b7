//! shim's `BOOT<ARCH>.CSV` (e.g. `\EFI\debian\BOOTX64.CSV`): the boot entries shim's fallback
//! loader creates for a vendor directory when booted from the removable-media path.
//!
//! The file is UCS-2 little-endian (usually with a byte-order mark), one entry per line:
//! `filename,label,options,description`. `filename` is a file in the same directory as the CSV,
//! `options` become the entry's optional data (UCS-2, no terminating NUL).

use anyhow::{bail, ensure, Result};
use serde::Serialize;

use crate::loadopt::ucs2_args;

/// One line of a shim CSV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CsvEntry {
    /// The loader's file name, in the CSV's directory (e.g. `shimx64.efi`).
    pub filename: String,
    /// The boot entry's description.
    pub label: String,
    /// Loader arguments (may be empty).
    pub options: String,
    /// Free text (not used for the entry).
    pub description: String,
}

impl CsvEntry {
    /// The entry's optional data: the options as UCS-2 LE without NUL, or nothing.
    pub fn optional_data(&self) -> Vec<u8> {
        if self.options.is_empty() {
            Vec::new()
        } else {
            ucs2_args(&self.options)
        }
    }
}

/// Parses a shim CSV. Lines without a filename or label are errors, as are file names that
/// leave the CSV's directory (`/`, `\`, `..`), which shim would follow but sysclone refuses.
/// Empty lines are skipped; a file without entries is an error.
pub fn parse_boot_csv(bytes: &[u8]) -> Result<Vec<CsvEntry>> {
    ensure!(
        bytes.len() % 2 == 0,
        "not UCS-2: odd length {}",
        bytes.len()
    );
    let mut units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    if units.first() == Some(&0xfeff) {
        units.remove(0);
    }
    if let Some(nul) = units.iter().position(|&u| u == 0) {
        units.truncate(nul);
    }
    let text = match String::from_utf16(&units) {
        Ok(t) => t,
        Err(_) => bail!("not UCS-2: invalid UTF-16"),
    };
    let mut out = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.splitn(4, ',');
        let mut next = || fields.next().unwrap_or("").trim().to_string();
        let (filename, label, options, description) = (next(), next(), next(), next());
        let n = i + 1;
        ensure!(!filename.is_empty(), "line {n}: no file name");
        ensure!(!label.is_empty(), "line {n}: no label");
        ensure!(
            !filename.contains(['/', '\\']) && filename != "." && filename != "..",
            "line {n}: file name {filename:?} leaves the CSV's directory"
        );
        out.push(CsvEntry {
            filename,
            label,
            options,
            description,
        });
    }
    ensure!(!out.is_empty(), "no entries");
    Ok(out)
}

/// Encodes entries as shim writes its CSVs (BOM, UCS-2 LE, `\n` line ends); for tests and
/// image building.
pub fn encode_boot_csv(entries: &[CsvEntry]) -> Vec<u8> {
    let mut text = String::new();
    for e in entries {
        text.push_str(&format!(
            "{},{},{},{}\n",
            e.filename, e.label, e.options, e.description
        ));
    }
    std::iter::once(0xfeffu16)
        .chain(text.encode_utf16())
        .flat_map(u16::to_le_bytes)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ucs2(s: &str, bom: bool) -> Vec<u8> {
        let bom = bom.then_some(0xfeffu16);
        bom.into_iter()
            .chain(s.encode_utf16())
            .flat_map(u16::to_le_bytes)
            .collect()
    }

    #[test]
    fn debian_style() {
        let csv = ucs2(
            "shimx64.efi,debian,,This is the boot entry for debian\n",
            true,
        );
        let e = parse_boot_csv(&csv).unwrap();
        assert_eq!(
            e,
            [CsvEntry {
                filename: "shimx64.efi".into(),
                label: "debian".into(),
                options: String::new(),
                description: "This is the boot entry for debian".into(),
            }]
        );
        assert!(e[0].optional_data().is_empty());
        assert_eq!(encode_boot_csv(&e), csv);
    }

    #[test]
    fn options_crlf_no_bom_and_several_lines() {
        let csv = ucs2(
            "shimx64.efi,Fedora, \\EFI\\fedora\\grubx64.efi quiet ,desc, with comma\r\n\r\nmmx64.efi,MOK,,\r\n",
            false,
        );
        let e = parse_boot_csv(&csv).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].options, "\\EFI\\fedora\\grubx64.efi quiet");
        assert_eq!(e[0].description, "desc, with comma");
        assert_eq!(
            e[0].optional_data(),
            ucs2_args("\\EFI\\fedora\\grubx64.efi quiet")
        );
        assert_eq!(e[1].filename, "mmx64.efi");
        assert_eq!(e[1].label, "MOK");
        // Stops at a NUL.
        let mut nul = ucs2("a.efi,A,,\n", true);
        nul.extend(ucs2("\0garbage", false));
        assert_eq!(parse_boot_csv(&nul).unwrap().len(), 1);
    }

    #[test]
    fn malformed() {
        for (bytes, want) in [
            (vec![0x41], "odd length"),
            (ucs2("", true), "no entries"),
            (ucs2(",label,,\n", true), "no file name"),
            (ucs2("x.efi\n", true), "no label"),
            (ucs2("..\\boot\\grubx64.efi,Evil,,\n", true), "leaves"),
            (ucs2("a/b.efi,Evil,,\n", true), "leaves"),
            (vec![0x00, 0xd8, 0x41, 0x00], "invalid UTF-16"),
        ] {
            let err = format!("{:#}", parse_boot_csv(&bytes).unwrap_err());
            assert!(err.contains(want), "{err} (wanted {want})");
        }
        // ASCII (not UCS-2) text is not accepted as entries silently.
        assert!(parse_boot_csv(b"shimx64.efi,debian,,x\n").is_err());
    }
}
