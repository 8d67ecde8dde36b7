//! `sysclone.mode=bootcheck`: say which partition the firmware booted, which root filesystem
//! the kernel command line names (`root=UUID=`/`PARTUUID=`, as an installed system's loader
//! entry does) and what it holds, then power off. The test fixtures' system disks boot into this, so a test
//! can tell from the serial console which disk came up and whether its files are intact.

use std::fs;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use nix::mount::{mount, MsFlags};
use sha2::{Digest, Sha256};

use crate::console::say;
use crate::kmod::Loader;

/// SHA-256 over the lines `<sha256 of file>  ./<path>` of every regular file below `root`,
/// sorted bytewise by path: the same value as
/// `cd ROOT && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum`.
pub fn tree_digest(root: &Path) -> Result<String> {
    let mut files = Vec::new();
    walk(root, root, &mut files)?;
    files.sort();
    let mut all = Sha256::new();
    for rel in files {
        let data = fs::read(root.join(&rel[2..])).with_context(|| format!("reading {rel}"))?;
        let h = sysclone_net::http::sha256_hex(&data);
        all.update(format!("{h}  {rel}\n").as_bytes());
    }
    Ok(all.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for e in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e?;
        let ft = e.file_type()?;
        if ft.is_dir() {
            walk(root, &e.path(), out)?;
        } else if ft.is_file() {
            let rel = e.path().strip_prefix(root).map_err(|_| anyhow!("path outside root"))?.to_string_lossy().into_owned();
            out.push(format!("./{rel}"));
        }
    }
    Ok(())
}

/// Where the `UUID=`/`PARTUUID=` sources of an fstab live: `own` (all on `booted`), `none`
/// (no such reference), `missing:ID`, or `other:DISK` (the first that is elsewhere).
pub fn fstab_owner(fstab: &str, disks: &[sysclone_disk::Disk], booted: &str) -> String {
    let mut seen = false;
    for line in fstab.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        let Some(spec) = line.split_whitespace().next() else { continue };
        let (kind, id) = match spec.split_once('=') {
            Some((k @ ("UUID" | "PARTUUID"), v)) => (k, v.to_ascii_lowercase()),
            _ => continue,
        };
        seen = true;
        let holder = disks.iter().find(|d| {
            d.partitions.iter().any(|p| {
                let v = if kind == "UUID" { p.fs.as_ref().and_then(|f| f.uuid.clone()) } else { p.part_uuid.clone() };
                v.is_some_and(|v| v.eq_ignore_ascii_case(&id))
            })
        });
        match holder {
            None => return format!("missing:{id}"),
            Some(d) if d.name != booted => return format!("other:{}", d.name),
            Some(_) => {}
        }
    }
    if seen { "own".into() } else { "none".into() }
}

/// The filesystem a kernel command line's `root=` names: `("UUID", id)` or `("PARTUUID", id)`
/// (lowercase); `None` for any other form (`/dev/sda2`, `LABEL=`) or no `root=`.
pub fn cmdline_root(cmdline: &str) -> Option<(&'static str, String)> {
    let v = cmdline.split_whitespace().filter_map(|w| w.strip_prefix("root=")).next_back()?;
    match v.split_once('=') {
        Some(("UUID", id)) => Some(("UUID", id.to_ascii_lowercase())),
        Some(("PARTUUID", id)) => Some(("PARTUUID", id.to_ascii_lowercase())),
        _ => None,
    }
}

/// The root partition: the one `root=` names (on the booted disk `booted` when several disks
/// hold it), else the first ext2/3/4 partition of the booted disk. Returns (disk, partition).
fn find_root<'a>(cmdline: &str, disks: &'a [sysclone_disk::Disk], booted: &'a sysclone_disk::Disk) -> Result<(&'a sysclone_disk::Disk, &'a sysclone_disk::Partition)> {
    if let Some((kind, id)) = cmdline_root(cmdline) {
        let holds = |p: &sysclone_disk::Partition| {
            let v = if kind == "UUID" { p.fs.as_ref().and_then(|f| f.uuid.clone()) } else { p.part_uuid.clone() };
            v.is_some_and(|v| v.eq_ignore_ascii_case(&id))
        };
        let found = std::iter::once(booted).chain(disks.iter()).find_map(|d| d.partitions.iter().find(|p| holds(p)).map(|p| (d, p)));
        return found.ok_or_else(|| anyhow!("root={kind}={id} from the kernel command line is on no disk"));
    }
    let p = booted
        .partitions
        .iter()
        .find(|p| p.fs.as_ref().is_some_and(|f| f.kind.starts_with("ext")))
        .ok_or_else(|| anyhow!("{} has no ext2/3/4 root partition", booted.describe()))?;
    Ok((booted, p))
}

/// Print the `SYSCLONE-BOOTCHECK` line.
pub fn run(loader: &mut Loader, efivars: &Path) -> Result<()> {
    loader.load("ext4");
    let vars = sysclone_efi::EfiVars::new(efivars);
    let partuuid = vars.loader_device_part_uuid()?.ok_or_else(|| anyhow!("the boot loader did not say which partition it started from (no LoaderDevicePartUUID)"))?;
    let current = vars.boot_current().ok().flatten().map(|n| format!("{n:04X}")).unwrap_or_else(|| "-".into());
    let disks = crate::run::disks_now(None)?;
    let disk = disks
        .iter()
        .find(|d| d.partitions.iter().any(|p| p.part_uuid.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(&partuuid))))
        .ok_or_else(|| anyhow!("no disk holds the boot partition {partuuid}"))?;
    let cmdline = fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let (root_disk, root) = find_root(&cmdline, &disks, disk)?;
    let name = root.name.as_ref().ok_or_else(|| anyhow!("the kernel has no node for the root partition of {}", root_disk.name))?;
    fs::create_dir_all("/mnt/root")?;
    let dev = format!("/dev/{name}");
    mount(Some(dev.as_str()), "/mnt/root", Some("ext4"), MsFlags::MS_RDONLY, None::<&str>).with_context(|| format!("mounting {dev} read-only"))?;
    let digest = tree_digest(Path::new("/mnt/root"))?;
    let fstab = fstab_owner(&std::fs::read_to_string("/mnt/root/etc/fstab").unwrap_or_default(), &disks, &disk.name);
    let _ = nix::mount::umount("/mnt/root");
    say(&format!(
        "SYSCLONE-BOOTCHECK partuuid={partuuid} bootcurrent={current} disk={} serial={} root-disk={} root-serial={} fstab={fstab} root-sha256={digest}",
        disk.name,
        disk.serial.as_deref().unwrap_or("-"),
        root_disk.name,
        root_disk.serial.as_deref().unwrap_or("-")
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn digest_matches_the_shell_pipeline() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("etc/a b")).unwrap();
        fs::write(t.path().join("etc/hostname"), "x\n").unwrap();
        fs::write(t.path().join("etc/a b/Z"), "zz").unwrap();
        fs::write(t.path().join("B"), "").unwrap();
        let shell = Command::new("sh")
            .arg("-c")
            .arg("find . -type f | LC_ALL=C sort | tr '\\n' '\\0' | xargs -0 sha256sum | sha256sum | cut -d' ' -f1")
            .current_dir(t.path())
            .output()
            .unwrap();
        assert_eq!(tree_digest(t.path()).unwrap(), String::from_utf8_lossy(&shell.stdout).trim());
    }

    #[test]
    fn root_from_the_kernel_command_line() {
        assert_eq!(cmdline_root("console=ttyS0 root=UUID=AbC-1 ro"), Some(("UUID", "abc-1".into())));
        assert_eq!(cmdline_root("root=/dev/sda2 root=PARTUUID=X-2"), Some(("PARTUUID", "x-2".into())), "the last root= wins");
        assert_eq!(cmdline_root("root=/dev/sda2"), None);
        assert_eq!(cmdline_root("root=LABEL=x quiet"), None);
        assert_eq!(cmdline_root("sysclone.mode=bootcheck"), None);
    }
}
