//! efibootmgr-like listing of the boot variables, as text or JSON.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::devpath::path_to_string;
use crate::loadopt::{optional_data_text, LOAD_OPTION_ACTIVE};
use crate::vars::{boot_var_name, EfiVars};

/// One `Boot####` entry in a [`BootListing`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootEntryInfo {
    /// Entry number.
    pub number: u16,
    /// Variable name, e.g. `Boot0001`.
    pub name: String,
    /// `LOAD_OPTION_ACTIVE` is set (false for malformed entries).
    pub active: bool,
    /// Load option attributes; `None` for malformed entries.
    pub attributes: Option<u32>,
    /// Description; `None` for malformed entries.
    pub description: Option<String>,
    /// Device path in efibootmgr notation; `None` for malformed entries.
    pub path: Option<String>,
    /// Attribute names (`active`, `hidden`, `force-reconnect`, category `boot`/`app`);
    /// empty for malformed entries.
    pub flags: Vec<String>,
    /// The loader (first File Path node), if any.
    pub loader: Option<String>,
    /// Optional data as lowercase hex; `None` for malformed entries.
    pub optional_data: Option<String>,
    /// Optional data in readable form (text, `{guid}` or hex, see
    /// [`crate::loadopt::optional_data_text`]); `None` if empty or malformed.
    pub optional_data_text: Option<String>,
    /// Why the entry could not be read or decoded.
    pub error: Option<String>,
}

/// Snapshot of the boot variables (the `--json` listing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootListing {
    /// `BootCurrent`.
    pub boot_current: Option<u16>,
    /// `BootNext`.
    pub boot_next: Option<u16>,
    /// `Timeout` in seconds.
    pub timeout: Option<u16>,
    /// `BootOrder` (empty if unset).
    pub boot_order: Vec<u16>,
    /// All `Boot####` entries, sorted by number.
    pub entries: Vec<BootEntryInfo>,
}

impl BootListing {
    /// Reads the boot variables from `vars`. Malformed `Boot####` entries are reported in
    /// their [`BootEntryInfo::error`]; other read errors fail.
    pub fn read(vars: &EfiVars) -> Result<Self> {
        let entries = vars
            .boot_entries()?
            .into_iter()
            .map(|(number, opt)| {
                let name = boot_var_name(number);
                match opt {
                    Ok(o) => BootEntryInfo {
                        number,
                        name,
                        active: o.is_active(),
                        attributes: Some(o.attributes),
                        description: Some(o.description.clone()),
                        path: Some(path_to_string(&o.path)),
                        flags: o.flag_names(),
                        loader: o.file_path(),
                        optional_data: Some(crate::hex::encode(&o.optional_data)),
                        optional_data_text: Some(optional_data_text(&o.optional_data))
                            .filter(|t| !t.is_empty()),
                        error: None,
                    },
                    Err(e) => BootEntryInfo {
                        number,
                        name,
                        active: false,
                        attributes: None,
                        description: None,
                        path: None,
                        flags: Vec::new(),
                        loader: None,
                        optional_data: None,
                        optional_data_text: None,
                        error: Some(format!("{e:#}")),
                    },
                }
            })
            .collect();
        Ok(Self {
            boot_current: vars.boot_current()?,
            boot_next: vars.boot_next()?,
            timeout: vars.timeout()?,
            boot_order: vars.boot_order()?,
            entries,
        })
    }

    /// efibootmgr-style text; `verbose` appends each entry's device path after a tab, its
    /// optional data right after the path (as efibootmgr does), and unusual attributes.
    pub fn to_text(&self, verbose: bool) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        if let Some(n) = self.boot_next {
            let _ = writeln!(s, "BootNext: {n:04X}");
        }
        if let Some(n) = self.boot_current {
            let _ = writeln!(s, "BootCurrent: {n:04X}");
        }
        if let Some(t) = self.timeout {
            let _ = writeln!(s, "Timeout: {t} seconds");
        }
        let order: Vec<String> = self.boot_order.iter().map(|n| format!("{n:04X}")).collect();
        let _ = writeln!(s, "BootOrder: {}", order.join(","));
        for e in &self.entries {
            match (&e.description, &e.error) {
                (Some(desc), None) => {
                    let mark = if e.active { '*' } else { ' ' };
                    let _ = write!(s, "{}{mark} {desc}", e.name);
                    if let (true, Some(path)) = (verbose, &e.path) {
                        let _ = write!(s, "\t{path}");
                        if let Some(data) = &e.optional_data_text {
                            let _ = write!(s, "{data}");
                        }
                        match e.attributes {
                            Some(0 | LOAD_OPTION_ACTIVE) | None => {}
                            Some(a) => {
                                let _ =
                                    write!(s, "\t[attributes {a:#010x}: {}]", e.flags.join(", "));
                            }
                        }
                    }
                }
                (_, err) => {
                    let err = err.as_deref().unwrap_or("unreadable");
                    let _ = write!(s, "{}! <invalid: {err}>", e.name);
                }
            }
            s.push('\n');
        }
        s
    }
}

/// efibootmgr-like listing (`BootCurrent`, `Timeout`, `BootOrder`, one line per entry);
/// `verbose` adds device paths.
pub fn format_list(vars: &EfiVars, verbose: bool) -> Result<String> {
    Ok(BootListing::read(vars)?.to_text(verbose))
}

/// The listing as pretty-printed JSON.
pub fn format_json(vars: &EfiVars) -> Result<String> {
    serde_json::to_string_pretty(&BootListing::read(vars)?).context("serialising boot listing")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devpath::tests::sample_path;
    use crate::loadopt::LoadOption;
    use crate::vars::EFI_GLOBAL_GUID;

    fn setup() -> (tempfile::TempDir, EfiVars) {
        let dir = tempfile::tempdir().unwrap();
        let vars = EfiVars::new(dir.path());
        let mut opt = LoadOption {
            attributes: 1,
            description: "Rescue".into(),
            path: sample_path(),
            optional_data: vec![],
        };
        vars.write_boot(3, &opt).unwrap();
        opt.attributes = 0;
        opt.description = "Off".into();
        opt.optional_data = vec![0xab];
        vars.write_boot(1, &opt).unwrap();
        vars.write("Boot0002", EFI_GLOBAL_GUID, 7, b"xx").unwrap();
        vars.set_boot_order(&[3, 1]).unwrap();
        vars.set_timeout(Some(0)).unwrap();
        vars.write("BootCurrent", EFI_GLOBAL_GUID, 6, &[1, 0])
            .unwrap();
        (dir, vars)
    }

    #[test]
    fn text() {
        let (_dir, vars) = setup();
        let short = format_list(&vars, false).unwrap();
        let lines: Vec<&str> = short.lines().collect();
        assert_eq!(
            &lines[..3],
            [
                "BootCurrent: 0001",
                "Timeout: 0 seconds",
                "BootOrder: 0003,0001"
            ]
        );
        assert_eq!(lines[3], "Boot0001  Off");
        assert!(
            lines[4].starts_with("Boot0002! <invalid: decoding EFI variable Boot0002"),
            "{}",
            lines[4]
        );
        assert_eq!(lines[5], "Boot0003* Rescue");
        assert_eq!(lines.len(), 6);
        let verbose = format_list(&vars, true).unwrap();
        assert!(verbose.contains(
            "Boot0003* Rescue\tHD(1,GPT,768a4bfb-e5f6-4905-8db3-9b62bf27444b,0x800,0x32000)/File(\\EFI\\BOOT\\BOOTX64.EFI)\n"
        ), "{verbose}");
    }

    #[test]
    fn verbose_shows_data_and_attributes() {
        let (_dir, vars) = setup();
        let opt = LoadOption {
            attributes: 0x109,
            description: "Shell".into(),
            path: sample_path(),
            optional_data: crate::loadopt::ucs2_args("quiet"),
        };
        vars.write_boot(4, &opt).unwrap();
        vars.set_boot_next(Some(4)).unwrap();
        let text = format_list(&vars, true).unwrap();
        assert!(text.starts_with("BootNext: 0004\n"), "{text}");
        assert!(
            text.contains("/File(\\EFI\\BOOT\\BOOTX64.EFI)quiet\t[attributes 0x00000109: active, hidden, app]\n"),
            "{text}"
        );
        assert!(text.contains("Boot0001  Off\tHD("), "{text}");
        assert!(
            text.contains(")ab\n"),
            "optional data of Boot0001 as hex: {text}"
        );
    }

    #[test]
    fn json() {
        let (_dir, vars) = setup();
        let v: serde_json::Value = serde_json::from_str(&format_json(&vars).unwrap()).unwrap();
        assert_eq!(v["boot_current"], 1);
        assert_eq!(v["boot_next"], serde_json::Value::Null);
        assert_eq!(v["boot_order"], serde_json::json!([3, 1]));
        assert_eq!(v["entries"][0]["name"], "Boot0001");
        assert_eq!(v["entries"][0]["optional_data"], "ab");
        assert_eq!(v["entries"][0]["optional_data_text"], "ab");
        assert_eq!(v["entries"][0]["flags"], serde_json::json!(["boot"]));
        assert_eq!(v["entries"][2]["loader"], "\\EFI\\BOOT\\BOOTX64.EFI");
        assert_eq!(v["entries"][0]["active"], false);
        assert!(v["entries"][1]["error"].is_string());
        assert_eq!(v["entries"][2]["description"], "Rescue");
    }
}
