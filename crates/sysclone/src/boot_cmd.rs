//! `sysclone boot …`: UEFI boot entries through efivarfs, like efibootmgr. Works the same on a
//! host and in the rescue image. Every command takes `--json` and `--efivars DIR`; commands
//! that change something write only the variables whose bytes change and then print what they
//! wrote and the resulting listing.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, ensure, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use sysclone_disk::{Disk, Selector};
use sysclone_efi::edit::{self, Placement};
use sysclone_efi::{boot_var_name, hex, ucs2_args, BootListing, EfiVars, HardDrive, HdSignature, LoadOption, PartitionFormat, DEFAULT_EFIVARS_DIR, LOAD_OPTION_ACTIVE};

/// Options every `sysclone boot` command takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
    /// efivarfs directory
    #[arg(long, value_name = "DIR", default_value = DEFAULT_EFIVARS_DIR)]
    pub efivars: PathBuf,
}

/// Where `create` puts the new entry in BootOrder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Position {
    /// First (like efibootmgr -c)
    First,
    /// Last
    Last,
    /// Not in BootOrder (like efibootmgr -C)
    None,
}

#[derive(Subcommand, Debug)]
pub enum BootCmd {
    /// List BootCurrent, BootNext, Timeout, BootOrder and every Boot#### (like efibootmgr)
    ///
    /// With -v (global): device paths, optional data and unusual attributes (like
    /// efibootmgr -v)
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Create a boot entry HD(partition)/File(loader); an identical entry is reused
    #[command(override_usage = "sysclone boot create [OPTIONS] --disk <DISK> --part <PART>\n       \
                                --loader <LOADER> --label <LABEL>")]
    Create {
        /// Disk holding the loader: selector (serial=…, model=…) or device path
        #[arg(long)]
        disk: String,
        /// Partition number (the ESP)
        #[arg(long)]
        part: u32,
        /// Loader path on that partition, e.g. '\EFI\debian\shimx64.efi' (/ works too)
        #[arg(long)]
        loader: String,
        /// Description shown by the firmware's boot menu
        #[arg(long)]
        label: String,
        /// Arguments for the loader, stored as UCS-2 optional data (kernel command line, …)
        #[arg(long, conflicts_with = "data_hex")]
        args: Option<String>,
        /// Raw optional data, hex
        #[arg(long, value_name = "HEX")]
        data_hex: Option<String>,
        /// Use this Boot#### number (hex) instead of the first free one
        #[arg(long, value_name = "XXXX")]
        bootnum: Option<String>,
        /// Place in BootOrder
        #[arg(long, value_enum, default_value = "first")]
        position: Position,
        /// Index in BootOrder (overrides --position)
        #[arg(long)]
        index: Option<usize>,
        /// Create the entry inactive
        #[arg(long)]
        inactive: bool,
        /// Create it even if the loader is not found on the partition
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Delete a Boot#### entry (and remove it from BootOrder and BootNext)
    Delete {
        /// Entry number (hex), e.g. 0003
        bootnum: String,
        #[command(flatten)]
        common: Common,
    },
    /// Show or set BootOrder, e.g. `order 0003,0001,0000`
    Order {
        /// Entry numbers (hex), comma-separated or as several arguments; none: show the order
        bootnums: Vec<String>,
        /// Accept numbers without a Boot#### variable
        #[arg(long)]
        allow_missing: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Set BootNext (boot this entry once), or clear it
    Next {
        /// Entry number (hex)
        #[arg(required_unless_present = "clear")]
        bootnum: Option<String>,
        /// Delete BootNext
        #[arg(long, conflicts_with = "bootnum")]
        clear: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Set the firmware's boot menu Timeout in seconds, or clear it
    Timeout {
        /// Seconds (65535: wait for a key)
        #[arg(required_unless_present = "clear")]
        seconds: Option<u16>,
        /// Delete Timeout
        #[arg(long, conflicts_with = "seconds")]
        clear: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Mark an entry active (the firmware boots it)
    Active {
        /// Entry number (hex)
        bootnum: String,
        #[command(flatten)]
        common: Common,
    },
    /// Mark an entry inactive (kept, but skipped by the firmware)
    Inactive {
        /// Entry number (hex)
        bootnum: String,
        #[command(flatten)]
        common: Common,
    },
}

/// Run one `sysclone boot` command.
pub fn run(cmd: BootCmd, verbose: bool) -> Result<()> {
    match cmd {
        BootCmd::List { common } => {
            let vars = open(&common)?;
            let listing = BootListing::read(&vars)?;
            if common.json {
                out(&format!("{}\n", crate::json::doc_pretty(&listing)?));
            } else {
                out(&listing.to_text(verbose));
            }
            Ok(())
        }
        BootCmd::Create { disk, part, loader, label, args, data_hex, bootnum, position, index, inactive, force, common } => {
            let vars = open(&common)?;
            let disks = sysclone_init::run::disks_now(None)?;
            let d = Selector::parse(&disk)?.select(&disks, &[], Path::new("/dev")).context("choosing the disk")?;
            let hd = hard_drive_for(d, part)?;
            check_loader(d, part, &loader, force)?;
            let mut opt = LoadOption::disk_entry(&label, hd, &loader);
            if inactive {
                opt.attributes &= !LOAD_OPTION_ACTIVE;
            }
            opt.optional_data = match (args, data_hex) {
                (Some(a), _) => ucs2_args(&a),
                (None, Some(h)) => hex::decode(&h).context("--data-hex")?,
                (None, None) => Vec::new(),
            };
            let number = bootnum.as_deref().map(edit::parse_boot_number).transpose()?;
            let placement = match (index, position) {
                (Some(i), _) => Placement::At(i),
                (None, Position::First) => Placement::First,
                (None, Position::Last) => Placement::Last,
                (None, Position::None) => Placement::Unlisted,
            };
            let created = edit::create(&vars, &opt, number, placement)?;
            let what = if created.reused { "reused identical entry" } else { "created" };
            finish(&vars, &common, json!({ "created": created }), &format!("{what} {} \"{label}\"", created.name))
        }
        BootCmd::Delete { bootnum, common } => {
            let vars = open(&common)?;
            let n = edit::parse_boot_number(&bootnum)?;
            edit::delete(&vars, n)?;
            finish(&vars, &common, json!({ "deleted": boot_var_name(n) }), &format!("deleted {}", boot_var_name(n)))
        }
        BootCmd::Order { bootnums, allow_missing, common } => {
            let vars = open(&common)?;
            if bootnums.is_empty() {
                let order = vars.boot_order()?;
                let missing = edit::missing_entries(&vars, &order)?;
                if common.json {
                    out(&format!("{}\n", crate::json::doc_pretty(&json!({ "boot_order": order, "missing": missing }))?));
                } else {
                    let mut text = format!("BootOrder: {}\n", order_text(&order));
                    for n in missing {
                        text.push_str(&format!("warning: BootOrder names {}, which does not exist\n", boot_var_name(n)));
                    }
                    out(&text);
                }
                return Ok(());
            }
            let order = edit::parse_order(&bootnums)?;
            edit::set_order(&vars, &order, allow_missing)?;
            finish(&vars, &common, json!({ "boot_order": order }), &format!("BootOrder set to {}", order_text(&order)))
        }
        BootCmd::Next { bootnum, clear, common } => {
            let vars = open(&common)?;
            let n = if clear { None } else { bootnum.as_deref().map(edit::parse_boot_number).transpose()? };
            edit::set_next(&vars, n)?;
            let msg = n.map_or("BootNext cleared".to_string(), |n| format!("BootNext set to {n:04X}"));
            finish(&vars, &common, json!({ "boot_next": n }), &msg)
        }
        BootCmd::Timeout { seconds, clear, common } => {
            let vars = open(&common)?;
            let s = if clear { None } else { seconds };
            vars.set_timeout(s)?;
            let msg = s.map_or("Timeout cleared".to_string(), |s| format!("Timeout set to {s} seconds"));
            finish(&vars, &common, json!({ "timeout": s }), &msg)
        }
        BootCmd::Active { bootnum, common } => set_active(bootnum, common, true),
        BootCmd::Inactive { bootnum, common } => set_active(bootnum, common, false),
    }
}

fn set_active(bootnum: String, common: Common, active: bool) -> Result<()> {
    let vars = open(&common)?;
    let n = edit::parse_boot_number(&bootnum)?;
    edit::set_active(&vars, n, active)?;
    let state = if active { "active" } else { "inactive" };
    finish(&vars, &common, json!({ "entry": boot_var_name(n), "active": active }), &format!("{} is {state}", boot_var_name(n)))
}

fn order_text(order: &[u16]) -> String {
    order.iter().map(|n| format!("{n:04X}")).collect::<Vec<_>>().join(",")
}

/// The variable directory, refusing early (with a hint) when there is none.
fn open(common: &Common) -> Result<EfiVars> {
    let vars = EfiVars::new(&common.efivars);
    if !vars.is_available() {
        bail!(
            "no EFI variables at {}: this system was not booted through UEFI, or efivarfs is not mounted (mount -t efivarfs efivarfs {})",
            common.efivars.display(),
            common.efivars.display()
        );
    }
    Ok(vars)
}

/// Writes to standard output; a closed pipe (`| head`) ends the output quietly.
fn out(text: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes()).and_then(|_| o.flush());
}

/// Prints what changed and the listing afterwards (text), or one JSON object.
fn finish(vars: &EfiVars, common: &Common, result: serde_json::Value, summary: &str) -> Result<()> {
    let changes = vars.changes();
    let listing = BootListing::read(vars)?;
    if common.json {
        let doc = json!({ "result": result, "changes": changes, "listing": listing });
        out(&format!("{}\n", crate::json::doc_pretty(&doc)?));
        return Ok(());
    }
    let mut text = format!("{summary}\n");
    if changes.is_empty() {
        text.push_str("nothing to change: the variables already hold these values\n");
    }
    for c in &changes {
        text.push_str(&format!("  {c}\n"));
    }
    text.push_str(&listing.to_text(false));
    out(&text);
    Ok(())
}

/// The Hard Drive node for partition `part` of `disk`: GPT (partition GUID) or MBR (disk
/// signature), start and size in the disk's logical blocks.
pub fn hard_drive_for(disk: &Disk, part: u32) -> Result<HardDrive> {
    let p = disk.partitions.iter().find(|p| p.number == part).ok_or_else(|| {
        let have: Vec<String> = disk.partitions.iter().map(|p| format!("{} ({})", p.number, p.type_name)).collect();
        anyhow!("{} has no partition {part}; it has: {}", disk.describe(), if have.is_empty() { "none".into() } else { have.join(", ") })
    })?;
    let lbs = u64::from(disk.logical_sector.max(1));
    let (signature, format) = match disk.table.as_str() {
        "gpt" => {
            let uuid = p.part_uuid.as_deref().ok_or_else(|| anyhow!("partition {part} of {} has no GUID", disk.name))?;
            (HdSignature::Gpt(sysclone_efi::guid_to_disk_bytes(uuid)?), PartitionFormat::Gpt)
        }
        "mbr" => {
            let sig = disk.disk_guid.as_deref().and_then(|s| u32::from_str_radix(s, 16).ok()).ok_or_else(|| anyhow!("{} has no MBR disk signature", disk.name))?;
            (HdSignature::Mbr(sig), PartitionFormat::Mbr)
        }
        t => bail!("{} has no usable partition table ({t})", disk.describe()),
    };
    Ok(HardDrive { partition_number: part, start_lba: p.start_bytes / lbs, size_lba: p.size_bytes / lbs, signature, format })
}

/// Refuses (unless `force`) a loader that is not on the partition's FAT filesystem.
fn check_loader(disk: &Disk, part: u32, loader: &str, force: bool) -> Result<()> {
    let Some(p) = disk.partitions.iter().find(|p| p.number == part) else { return Ok(()) };
    let fat = loader.replace('\\', "/").trim_start_matches('/').to_string();
    ensure!(!fat.is_empty(), "--loader is empty");
    let found = sysclone_media::usbimage::find_files(&disk.path, p.start_bytes, p.size_bytes, &fat);
    match found {
        Ok(files) if !files.is_empty() => Ok(()),
        Ok(_) if force => {
            eprintln!("warning: {loader} is not on partition {part} of {}; creating the entry anyway (--force)", disk.name);
            Ok(())
        }
        Ok(_) => bail!("{loader} is not on partition {part} of {} (use --force to create the entry anyway)", disk.describe()),
        Err(e) if force => {
            eprintln!("warning: could not check for {loader} on partition {part} of {} ({e:#}); creating the entry anyway (--force)", disk.name);
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("checking for {loader} on partition {part} of {} (use --force to skip the check)", disk.describe())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct T {
        #[command(subcommand)]
        cmd: BootCmd,
    }

    fn parse(args: &[&str]) -> Result<BootCmd, clap::Error> {
        T::try_parse_from(std::iter::once("boot").chain(args.iter().copied())).map(|t| t.cmd)
    }

    #[test]
    fn command_line() {
        assert!(matches!(parse(&["list", "--json"]).unwrap(), BootCmd::List { common: Common { json: true, .. } }));
        let c = parse(&["create", "--disk", "serial=X", "--part", "1", "--loader", r"\EFI\debian\shimx64.efi", "--label", "debian", "--position", "last"]).unwrap();
        assert!(matches!(c, BootCmd::Create { part: 1, position: Position::Last, .. }));
        assert!(parse(&["create", "--disk", "x", "--part", "1", "--loader", "l", "--label", "d", "--args", "a", "--data-hex", "00"]).is_err());
        assert!(matches!(parse(&["order", "0003,0001", "2"]).unwrap(), BootCmd::Order { bootnums, .. } if bootnums.len() == 2));
        assert!(matches!(parse(&["next", "--clear"]).unwrap(), BootCmd::Next { clear: true, bootnum: None, .. }));
        assert!(parse(&["next"]).is_err());
        assert!(parse(&["next", "0001", "--clear"]).is_err());
        assert!(matches!(parse(&["timeout", "5", "--efivars", "/x"]).unwrap(), BootCmd::Timeout { seconds: Some(5), .. }));
        assert!(matches!(parse(&["inactive", "0004"]).unwrap(), BootCmd::Inactive { .. }));
        assert!(matches!(parse(&["delete", "Boot0004", "--json"]).unwrap(), BootCmd::Delete { .. }));
    }

    #[test]
    fn commands_on_a_variable_directory() {
        let dir = std::env::temp_dir().join(format!("sysclone-boot-cmd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.to_str().unwrap();
        let vars = EfiVars::new(&dir);
        let hd = HardDrive::gpt(1, 2048, 4096, [1; 16]);
        vars.write_boot(1, &LoadOption::disk_entry("one", hd, r"\a.efi")).unwrap();
        vars.write_boot(2, &LoadOption::disk_entry("two", hd, r"\b.efi")).unwrap();
        for args in [
            vec!["order", "0002,0001"],
            vec!["next", "1"],
            vec!["timeout", "3"],
            vec!["inactive", "0001"],
            vec!["list"], // run with verbose (-v is global)
            vec!["delete", "0002", "--json"],
            vec!["timeout", "--clear"],
        ] {
            let mut a = args.clone();
            a.extend(["--efivars", d]);
            run(parse(&a).unwrap(), a[0] == "list").unwrap_or_else(|e| panic!("{args:?}: {e:#}"));
        }
        assert_eq!(vars.boot_order().unwrap(), [1]);
        assert_eq!(vars.boot_next().unwrap(), Some(1));
        assert_eq!(vars.timeout().unwrap(), None);
        assert!(!vars.read_boot(1).unwrap().unwrap().is_active());
        assert!(run(parse(&["order", "0001,0009", "--efivars", d]).unwrap(), false).is_err());
        assert!(run(parse(&["list", "--efivars", "/nonexistent/efivars"]).unwrap(), false).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
