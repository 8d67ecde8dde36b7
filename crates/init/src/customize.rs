//! Per-machine customisation after a clone, migration or restore: a job's `machines` table
//! names each machine by a MAC address or its DMI serial, and gives it a hostname, written to
//! `/etc/hostname` (and the `127.0.1.1` line of `/etc/hosts`) of the Linux filesystems on the
//! target that have an `/etc`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sysclone_disk::Disk;

/// One row of a job's `machines` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MachineEntry {
    /// A MAC address of the machine (any of its wired NICs), `aa:bb:cc:dd:ee:ff`.
    pub mac: Option<String>,
    /// The machine's DMI serial (`/sys/class/dmi/id/product_serial`).
    pub serial: Option<String>,
    pub hostname: String,
}

impl MachineEntry {
    pub fn check(&self) -> Result<()> {
        if self.mac.is_none() && self.serial.is_none() {
            bail!("machines entry for {:?} names neither mac nor serial", self.hostname);
        }
        if let Some(m) = &self.mac {
            let ok = m.split(':').count() == 6 && m.split(':').all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok());
            if !ok {
                bail!("machines: mac {m:?} is not like aa:bb:cc:dd:ee:ff");
            }
        }
        let h = &self.hostname;
        let label_ok = |l: &str| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-') && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if h.len() > 253 || !h.split('.').all(label_ok) {
            bail!("machines: hostname {h:?} is not a valid host name (letters, digits, '-', dots)");
        }
        Ok(())
    }
}

/// The entry for the machine with these MACs and DMI serial (MAC matches first).
pub fn this_machine<'a>(entries: &'a [MachineEntry], macs: &[String], serial: Option<&str>) -> Option<&'a MachineEntry> {
    entries
        .iter()
        .find(|e| e.mac.as_ref().is_some_and(|m| macs.iter().any(|x| x.eq_ignore_ascii_case(m))))
        .or_else(|| entries.iter().find(|e| e.serial.is_some() && e.serial.as_deref() == serial.map(str::trim)))
}

/// This machine's MACs and DMI serial.
pub fn identity() -> (Vec<String>, Option<String>) {
    let macs = sysclone_net::wired_interfaces(Path::new("/sys/class/net")).iter().map(|i| i.mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")).collect();
    let serial = std::fs::read_to_string("/sys/class/dmi/id/product_serial").ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    (macs, serial)
}

/// `/etc/hosts` with the `127.0.1.1` line naming `hostname` (added when missing).
pub fn hosts_with(text: &str, hostname: &str) -> String {
    let short = hostname.split('.').next().unwrap_or(hostname);
    let line = if short == hostname { format!("127.0.1.1\t{hostname}") } else { format!("127.0.1.1\t{hostname}\t{short}") };
    let mut found = false;
    let mut out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.split_whitespace().next() == Some("127.0.1.1") {
                found = true;
                line.clone()
            } else {
                l.to_string()
            }
        })
        .collect();
    if !found {
        out.push(line);
    }
    out.join("\n") + "\n"
}

/// Give the system on `target` the hostname of `entry`. The target is opened through the
/// write guard (`ctx`); each Linux filesystem is mounted from a loop device over its
/// partition (no partition device nodes needed). Returns what was changed.
pub fn apply(target: &Disk, entry: &MachineEntry, ctx: &sysclone_disk::GuardContext) -> Result<Vec<String>> {
    use std::os::fd::AsFd;
    let th = sysclone_disk::open_target(target, ctx, 0, None)?;
    let mut done = Vec::new();
    let base = Path::new(if Path::new("/run/sysclone").is_dir() { "/run/sysclone" } else { "/tmp" }).join(format!("customize-{}", std::process::id()));
    for p in &target.partitions {
        let Some(fs) = p.fs.as_ref().map(|f| f.kind.clone()) else { continue };
        if !matches!(fs.as_str(), "ext2" | "ext3" | "ext4" | "xfs" | "btrfs") {
            continue;
        }
        let n = sysclone_disk::sys::loop_attach(th.file.as_fd(), p.start_bytes, p.size_bytes, target.logical_sector, 0).with_context(|| format!("a loop device over partition {} of {}", p.number, target.name))?;
        let dev = format!("/dev/loop{n}");
        let mnt = base.join(format!("p{}", p.number));
        std::fs::create_dir_all(&mnt)?;
        let flags = nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV | nix::mount::MsFlags::MS_NOEXEC;
        nix::mount::mount(Some(dev.as_str()), &mnt, Some(fs.as_str()), flags, None::<&str>).with_context(|| format!("mounting {dev} ({fs}) to set the hostname"))?;
        let r = (|| -> Result<()> {
            let etc = mnt.join("etc");
            if !etc.is_dir() {
                return Ok(());
            }
            sysclone_ident::apply::write_atomic(&etc.join("hostname"), format!("{}\n", entry.hostname).as_bytes())?;
            done.push(format!("partition {}: /etc/hostname = {}", p.number, entry.hostname));
            if let Ok(h) = std::fs::read_to_string(etc.join("hosts")) {
                sysclone_ident::apply::write_atomic(&etc.join("hosts"), hosts_with(&h, &entry.hostname).as_bytes())?;
                done.push(format!("partition {}: /etc/hosts 127.0.1.1 = {}", p.number, entry.hostname));
            }
            Ok(())
        })();
        let u = nix::mount::umount(&mnt).with_context(|| format!("unmounting {dev}"));
        let _ = std::fs::remove_dir(&mnt);
        let _ = sysclone_disk::sys::loop_detach(n);
        r?;
        u?;
    }
    let _ = std::fs::remove_dir(&base);
    if done.is_empty() {
        bail!("no Linux filesystem with an /etc on {}: the hostname {} was not set", target.describe(), entry.hostname);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(mac: Option<&str>, serial: Option<&str>, h: &str) -> MachineEntry {
        MachineEntry { mac: mac.map(str::to_string), serial: serial.map(str::to_string), hostname: h.into() }
    }

    #[test]
    fn the_right_row_for_this_machine() {
        let t = vec![e(Some("52:54:00:00:00:01"), None, "lab01"), e(None, Some("SN7"), "lab07"), e(Some("52:54:00:00:00:09"), Some("SN9"), "lab09")];
        assert_eq!(this_machine(&t, &["52:54:00:00:00:01".into()], None).unwrap().hostname, "lab01");
        assert_eq!(this_machine(&t, &["52:54:00:00:00:01".to_uppercase()], None).unwrap().hostname, "lab01");
        assert_eq!(this_machine(&t, &["aa:aa:aa:aa:aa:aa".into()], Some("SN7 ")).unwrap().hostname, "lab07");
        assert_eq!(this_machine(&t, &["52:54:00:00:00:09".into()], Some("SN7")).unwrap().hostname, "lab09", "a MAC match comes first");
        assert!(this_machine(&t, &[], None).is_none());
    }

    #[test]
    fn entries_are_checked() {
        assert!(e(None, None, "x").check().is_err());
        assert!(e(Some("52:54:00:00:01"), None, "x").check().is_err());
        assert!(e(Some("52:54:00:00:00:01"), None, "bad_name").check().is_err());
        assert!(e(Some("52:54:00:00:00:01"), None, "-x").check().is_err());
        e(None, Some("SN"), "lab07.example.org").check().unwrap();
    }

    #[test]
    fn hosts_line() {
        assert_eq!(hosts_with("127.0.0.1\tlocalhost\n127.0.1.1\tgolden\n", "lab07"), "127.0.0.1\tlocalhost\n127.0.1.1\tlab07\n");
        assert_eq!(hosts_with("127.0.0.1 localhost\n", "lab07.example.org"), "127.0.0.1 localhost\n127.0.1.1\tlab07.example.org\tlab07\n");
    }
}
