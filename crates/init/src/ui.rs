//! The interactive console: numbered menus that work on a serial line and on an 80×24 text
//! console, keyboard only. Every choice ends in the same plan → show → typed confirmation →
//! execute path as jobs and the CLI.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sysclone_disk::{human_bytes, Disk, Selector};

use crate::console::say;
use crate::job::{After, BootEntry, Mode};
use crate::run::{disks_now, run_clone, CloneOptions, Confirm};

/// Print `prompt` (on every console), read one line from the console.
pub fn read_line(prompt: &str) -> Result<String> {
    crate::console::prompt(prompt);
    let mut l = String::new();
    if std::io::stdin().lock().read_line(&mut l)? == 0 {
        bail!("no console input");
    }
    Ok(l.trim().to_string())
}

fn disk_line(i: usize, d: &Disk) -> String {
    format!(
        "{:>2}) {:<9} {:<6} {:<20} serial={:<12} {:>9} {:<4}{}",
        i + 1,
        d.name,
        d.bus.as_str(),
        d.model.as_deref().unwrap_or("-").chars().take(20).collect::<String>(),
        d.serial.as_deref().unwrap_or("-"),
        human_bytes(d.size_bytes),
        d.table,
        if d.roles.is_empty() { String::new() } else { format!(" [{}]", d.roles.join(",")) }
    )
}

/// Ask for a disk by its number in the list; `None` when the answer is empty (back).
/// `not`: a disk already chosen, and what it is ("the source").
fn pick<'a>(disks: &'a [Disk], what: &str, not: Option<(&Disk, &str)>) -> Result<Option<&'a Disk>> {
    loop {
        let a = read_line(&format!("{what} disk number (Enter: back): "))?;
        if a.is_empty() {
            return Ok(None);
        }
        match a.parse::<usize>().ok().and_then(|n| n.checked_sub(1)).and_then(|i| disks.get(i)) {
            Some(d) if not.is_some_and(|n| n.0.name == d.name) => say(&format!("that is {}; choose another disk", not.map(|n| n.1).unwrap_or_default())),
            Some(d) => return Ok(Some(d)),
            None => say(&format!("no disk number {a:?}; type a number from the list")),
        }
    }
}

fn clone_flow(disks: &[Disk], boot_partuuid: Option<&str>, efivars: &Path) -> Result<Option<After>> {
    let Some(src) = pick(disks, "source", None)? else { return Ok(None) };
    let Some(tgt) = pick(disks, "target", Some((src, "the source")))? else { return Ok(None) };
    let mode = match read_line("copy: e) every byte (exact)  s) used blocks only (smart) [e]: ")?.as_str() {
        "s" | "S" => Mode::Smart,
        _ => Mode::Exact,
    };
    let opts = CloneOptions {
        source: Selector::parse(&format!("name={}", src.name))?,
        targets: vec![Selector::parse(&format!("name={}", tgt.name))?],
        protect: Vec::new(),
        boot_entry: BootEntry::First,
        prune_stale: false,
        efivars: efivars.to_path_buf(),
        boot_partuuid: boot_partuuid.map(str::to_string),
        dry_run: false,
        confirm: Confirm::Ask,
        mode,
        verify: true,
        map: None,
        discard_unused: false,
    };
    let outcome = run_clone(&opts)?;
    say("-- result ------------------------------------------------");
    if let Some(r) = &outcome.copy {
        say(&format!(
            "{} -> {}\n{} MiB copied in {:.0} s, {}, {} unreadable range(s)",
            src.name,
            tgt.name,
            r.bytes_written >> 20,
            r.seconds,
            if r.verified == Some(true) { "verified" } else { "NOT verified" },
            r.bad_ranges.len()
        ));
    }
    if let Some(b) = &outcome.boot {
        say(&format!("boot order: {:04X?} -> {:04X?}", b.old_order, b.new_order));
    }
    say("SYSCLONE-RESULT ok");
    after_result(true)
}

/// After a clone, migration or restore: reboot into it, power off, or back to the menu;
/// after a save (`into` false) there is nothing new to boot.
fn after_result(into: bool) -> Result<Option<After>> {
    loop {
        match read_line(if into { "r) reboot into it  p) power off  m) menu: " } else { "r) reboot  p) power off  m) menu: " })?.as_str() {
            "r" => return Ok(Some(After::Reboot)),
            "p" => return Ok(Some(After::Poweroff)),
            "m" | "" => return Ok(None),
            _ => {}
        }
    }
}

/// Move a system onto a smaller or larger disk: source, target, sizing policy; the plan's
/// before/after table is shown before the typed confirmation.
fn migrate_flow(disks: &[Disk], boot_partuuid: Option<&str>, efivars: &Path) -> Result<Option<After>> {
    use sysclone_layout::migrate::Policy;
    let Some(src) = pick(disks, "source", None)? else { return Ok(None) };
    let Some(tgt) = pick(disks, "target", Some((src, "the source")))? else { return Ok(None) };
    let policy = match read_line("sizes: g) the last data partition takes the difference  k) keep sizes  p) proportional [g]: ")?.as_str() {
        "k" | "K" => Policy::Keep,
        "p" | "P" => Policy::Proportional,
        _ => Policy::Grow { part: None },
    };
    let opts = crate::migrate::MigrateOptions {
        source: Selector::parse(&format!("name={}", src.name))?,
        target: Selector::parse(&format!("name={}", tgt.name))?,
        protect: Vec::new(),
        policy,
        include: None,
        exclude: Vec::new(),
        new_identities: false,
        boot_entry: BootEntry::First,
        efivars: efivars.to_path_buf(),
        boot_partuuid: boot_partuuid.map(str::to_string),
        dry_run: false,
        confirm: Confirm::Ask,
        prune_stale: false,
    };
    let r = crate::migrate::run_migrate(&opts)?;
    say("-- result ------------------------------------------------");
    say(&format!("{} -> {}, {:.0} s", src.name, tgt.name, r.seconds));
    for p in &r.parts {
        say(&format!(
            "  partition {} -> {}: {} at {}, {} copied{}",
            p.source_number,
            p.number,
            human_bytes(p.size),
            p.start,
            human_bytes(p.bytes_copied),
            p.resize.as_ref().map(|x| format!(", {x}")).unwrap_or_default()
        ));
    }
    if let Some(c) = &r.bootability {
        say(&format!("bootability check: {} passed, {} warning(s), {} error(s)", c.checked.len(), c.warnings.len(), c.errors.len()));
    }
    if let Some(b) = &r.boot {
        say(&format!("boot order: {:04X?} -> {:04X?}", b.old_order, b.new_order));
    }
    say("SYSCLONE-RESULT ok");
    after_result(true)
}

/// Ask for a partition of `disk` that holds a filesystem images can live on; `None`: back.
fn pick_partition(disk: &Disk) -> Result<Option<u32>> {
    let usable: Vec<&sysclone_disk::Partition> = disk.partitions.iter().filter(|p| p.fs.as_ref().is_some_and(|f| IMAGE_FS.contains(&f.kind.as_str()))).collect();
    if usable.is_empty() {
        bail!("{} has no partition with a filesystem for images ({})", disk.describe(), IMAGE_FS.join(", "));
    }
    for p in &usable {
        let f = p.fs.as_ref().expect("filtered above");
        say(&format!("  {:>2}) {:<12} {:<6} {:>9}  label={}", p.number, p.name.as_deref().unwrap_or("-"), f.kind, human_bytes(p.size_bytes), f.label.as_deref().or(p.label.as_deref()).unwrap_or("-")));
    }
    loop {
        let a = read_line("partition number (Enter: back): ")?;
        if a.is_empty() {
            return Ok(None);
        }
        match a.parse::<u32>() {
            Ok(n) if usable.iter().any(|p| p.number == n) => return Ok(Some(n)),
            _ => say(&format!("no partition {a:?} for images; type a number from the list")),
        }
    }
}

/// Filesystems an image partition may hold (what `imaging::mount_image_partition` mounts).
const IMAGE_FS: [&str; 7] = ["ext4", "ext3", "ext2", "vfat", "ntfs", "xfs", "btrfs"];

/// A name for a new image of `d`: `images/SERIAL` (or the kernel name), letters, digits,
/// `-`, `_` and `.` only.
fn default_image_path(d: &Disk) -> String {
    let id: String = d.serial.as_deref().unwrap_or(&d.name).chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    format!("images/{id}")
}

/// The image directories (holding a manifest) under `root`, at most three levels down,
/// relative to it, sorted.
fn find_images(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, depth: u32, out: &mut Vec<String>) {
        if dir.join(sysclone_imagefile::manifest::MANIFEST).is_file() {
            out.push(dir.strip_prefix(root).map(|p| p.display().to_string()).unwrap_or_default());
            return;
        }
        if depth == 0 {
            return;
        }
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), root, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, 3, &mut out);
    out.sort();
    out
}

/// Save a disk's used blocks as an image on a partition of another disk (the boot medium's
/// too): source, images disk, partition, directory; the plan, then the images disk's serial
/// typed, as for every write.
fn save_flow(disks: &[Disk], boot_partuuid: Option<&str>) -> Result<Option<After>> {
    let Some(src) = pick(disks, "source", None)? else { return Ok(None) };
    say("the image goes to a partition of another disk");
    let Some(holder) = pick(disks, "images", Some((src, "the source")))? else { return Ok(None) };
    let Some(part) = pick_partition(holder)? else { return Ok(None) };
    let default = default_image_path(src);
    let answer = read_line(&format!("image directory on that partition [{default}]: "))?;
    let path = if answer.is_empty() { default } else { answer };
    sysclone_imagefile::source::check_relative(&path).context("the image directory is relative to the partition's root")?;
    if path.split('/').any(|c| c == "..") {
        bail!("the image directory {path:?} must stay inside the partition (no ..)");
    }
    let mnt = crate::imaging::mount_image_partition(&Selector::parse(&format!("name={}", holder.name))?, part, true, boot_partuuid)?;
    let req = crate::imaging::SaveRequest {
        source: Selector::parse(&format!("name={}", src.name))?,
        to: mnt.dir.join(&path),
        partitions: None,
        options: Default::default(),
        dry_run: false,
        confirm_on: Some(holder.clone()),
    };
    let r = crate::imaging::run_save(&req)?;
    drop(mnt);
    say("-- result ------------------------------------------------");
    if let Some(r) = r {
        say(&format!(
            "{} -> {path} on partition {part} of {}\n{} of used blocks stored as {} in {} chunks, {:.0} s, {} unreadable range(s)",
            src.name,
            holder.name,
            human_bytes(r.bytes_used),
            human_bytes(r.bytes_stored),
            r.chunks,
            r.seconds,
            r.unreadable.len()
        ));
    }
    say("SYSCLONE-RESULT ok");
    after_result(false)
}

/// Restore an image from a partition (of any disk, the boot medium's too) onto a disk: the
/// images found there are listed by number; the plan, then the target's serial typed.
fn restore_flow(disks: &[Disk], boot_partuuid: Option<&str>, efivars: &Path) -> Result<Option<After>> {
    let Some(holder) = pick(disks, "images", None)? else { return Ok(None) };
    let Some(part) = pick_partition(holder)? else { return Ok(None) };
    let holder_sel = Selector::parse(&format!("name={}", holder.name))?;
    let mnt = crate::imaging::mount_image_partition(&holder_sel, part, false, boot_partuuid)?;
    let images = find_images(&mnt.dir);
    if images.is_empty() {
        bail!("no image (a directory with {}) on partition {part} of {}", sysclone_imagefile::manifest::MANIFEST, holder.describe());
    }
    for (i, p) in images.iter().enumerate() {
        let about = sysclone_imagefile::Image::open(&mnt.dir.join(p)).map(|img| sysclone_imagefile::describe_source(&img)).unwrap_or_else(|e| format!("unreadable: {e:#}"));
        say(&format!("{:>2}) {p}  ({about})", i + 1));
    }
    let chosen = loop {
        let a = read_line("image number (Enter: back): ")?;
        if a.is_empty() {
            return Ok(None);
        }
        match a.parse::<usize>().ok().and_then(|n| n.checked_sub(1)).and_then(|i| images.get(i)) {
            Some(p) => break p.clone(),
            None => say(&format!("no image number {a:?}; type a number from the list")),
        }
    };
    let Some(tgt) = pick(disks, "target", Some((holder, "the disk holding the image")))? else { return Ok(None) };
    let mut req = crate::imaging::RestoreRequest::new(mnt.dir.join(&chosen), Selector::parse(&format!("name={}", tgt.name))?);
    req.protect = vec![holder_sel];
    req.verify = true;
    req.confirm = Confirm::Ask;
    req.boot_entry = BootEntry::First;
    req.efivars = efivars.to_path_buf();
    req.boot_partuuid = boot_partuuid.map(str::to_string);
    let r = crate::imaging::run_restore(&req);
    drop(mnt);
    say("-- result ------------------------------------------------");
    if let Some(o) = r? {
        let r = &o.restore;
        say(&format!(
            "{chosen} -> {} ({})\n{} written in {:.0} s, {}",
            tgt.name,
            o.layout,
            human_bytes(r.bytes_written),
            r.seconds,
            match r.verified {
                Some(true) => "verified",
                Some(false) => "VERIFY FAILED",
                None => "NOT verified",
            }
        ));
        if let Some(b) = &o.boot {
            say(&format!("boot order: {:04X?} -> {:04X?}", b.old_order, b.new_order));
        }
    }
    say("SYSCLONE-RESULT ok");
    after_result(true)
}

/// The main menu. Returns what to do with the machine.
pub fn main_menu(boot_partuuid: Option<&str>, efivars: &Path, shell: &dyn Fn()) -> Result<After> {
    loop {
        let disks = disks_now(boot_partuuid)?;
        say(&format!("-- sysclone {} - disks -----------------------------------", env!("CARGO_PKG_VERSION")));
        for (i, d) in disks.iter().enumerate() {
            say(&disk_line(i, d));
        }
        say("c) clone a disk   m) migrate to a smaller/larger disk   l) list disks again");
        say("v) save a disk to an image   t) restore an image to a disk");
        say("s) shell   r) reboot   p) power off");
        let choice = read_line("> ")?;
        let r = match choice.as_str() {
            "c" => clone_flow(&disks, boot_partuuid, efivars),
            "m" => migrate_flow(&disks, boot_partuuid, efivars),
            "v" => save_flow(&disks, boot_partuuid),
            "t" => restore_flow(&disks, boot_partuuid, efivars),
            "l" => crate::kmod::rescan().map(|()| None),
            "" => Ok(None),
            "s" => {
                shell();
                Ok(None)
            }
            "r" => Ok(Some(After::Reboot)),
            "p" => Ok(Some(After::Poweroff)),
            other => {
                say(&format!("unknown choice {other:?}"));
                Ok(None)
            }
        };
        match r {
            Ok(Some(after)) => return Ok(after),
            Ok(None) => {}
            Err(e) => {
                say(&format!("ERROR: {e:#}"));
                let _ = read_line("press Enter for the menu ")?;
            }
        }
    }
}

/// Where efivarfs is mounted in the rescue system.
pub fn efivars_dir() -> PathBuf {
    PathBuf::from(sysclone_efi::vars::DEFAULT_EFIVARS_DIR)
}
