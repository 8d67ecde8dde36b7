//! `sysclone migrate`: chosen partitions onto a smaller or larger disk, resized.
//!
//! discover → source layout (GPT entries, filesystems, used blocks, minimum sizes) → plan
//! (pure, `sysclone_layout::plan_migration`) → show / confirm → copy each partition's used
//! blocks to its new place → resize on the target (grow in place; shrink through the
//! copy-on-write overlay, so the source is never written) → new partition table, primary
//! last → boot entries.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use sysclone_copy::{CopyOptions, RescueMap};
use sysclone_disk::{human_bytes, open_source, open_target, Disk, Selector};
use sysclone_layout::migrate::{plan_migration, FsAction, Identities, MigratePlan, MigrateRequest, Policy, SourceLayout, SourcePart};

use crate::console::{progress_printer, say};
use crate::job::BootEntry;
use crate::run::{ask_serial, disks_now, Confirm};

/// Everything a migration needs to know.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    pub source: Selector,
    pub target: Selector,
    pub protect: Vec<Selector>,
    pub policy: Policy,
    /// Source partition numbers to take; `None` = all.
    pub include: Option<Vec<u32>>,
    /// Source partition numbers to leave out.
    pub exclude: Vec<u32>,
    /// New disk and partition GUIDs (both disks stay in one machine).
    pub new_identities: bool,
    pub boot_entry: BootEntry,
    pub efivars: PathBuf,
    pub boot_partuuid: Option<String>,
    pub dry_run: bool,
    pub confirm: Confirm,
    pub prune_stale: bool,
}

/// What one partition went through.
#[derive(Debug, Clone, Serialize)]
pub struct PartReport {
    pub number: u32,
    pub source_number: u32,
    pub fs: Option<String>,
    pub start: u64,
    pub size: u64,
    pub bytes_copied: u64,
    pub resize: Option<String>,
}

/// What a migration did.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    pub source: String,
    pub target: String,
    pub parts: Vec<PartReport>,
    /// New filesystem identifiers (identities = new).
    pub new_ids: Vec<sysclone_ident::fs_uuid::IdChange>,
    /// References rewritten in the clone's files (identities = new).
    pub references: Vec<sysclone_ident::apply::Change>,
    /// The offline bootability check of the target.
    pub bootability: Option<sysclone_ident::check::Report>,
    pub actions: Vec<String>,
    pub seconds: f64,
    pub boot: Option<crate::boot::BootReport>,
}

fn min_size_of(dev_file: &File, start: u64, size: u64, lbs: u32, fs: &str) -> Option<u64> {
    if !matches!(fs, "ext2" | "ext3" | "ext4" | "ntfs" | "btrfs") {
        return None;
    }
    // A read-only loop device over the source partition: the tools only read it.
    let n = sysclone_disk::sys::loop_attach(dev_file.as_fd(), start, size, lbs, sysclone_disk::sys::LO_FLAGS_READ_ONLY).ok()?;
    let r = sysclone_fs::min_size(Path::new(&format!("/dev/loop{n}")), fs);
    let _ = sysclone_disk::sys::loop_detach(n);
    r.ok().flatten()
}

/// Read the source's layout: GPT entries as they are on disk, filesystems, used blocks.
pub fn source_layout(src: &Disk, f: &File) -> Result<SourceLayout> {
    let gpt = crate::run::read_source_gpt(src, f)?.ok_or_else(|| anyhow!("source {} has no GPT; migrate handles GPT disks (clone an MBR disk with `sysclone clone`)", src.describe()))?;
    let lbs = src.logical_sector as u64;
    let es = gpt.header.entry_size as usize;
    let mut parts = Vec::new();
    for (i, e) in gpt.entries.chunks(es).enumerate() {
        if e[0..16].iter().all(|&b| b == 0) {
            continue;
        }
        let first = u64::from_le_bytes(e[32..40].try_into().expect("8 bytes"));
        let last = u64::from_le_bytes(e[40..48].try_into().expect("8 bytes"));
        let (start, size) = (first * lbs, (last + 1 - first) * lbs);
        let map = sysclone_fs::used_map(f, start, size).ok();
        let fs = map.as_ref().map(|m| m.fs.clone()).filter(|k| k != "unknown");
        let used_end_map = map.as_ref().filter(|m| !m.whole).and_then(|m| m.extents.last().map(|x| x.start + x.len));
        let min_size = fs.as_deref().and_then(|k| min_size_of(f, start, size, src.logical_sector, k));
        parts.push(SourcePart {
            number: i as u32 + 1,
            start,
            size,
            type_guid: e[0..16].try_into().expect("16 bytes"),
            part_guid: e[16..32].try_into().expect("16 bytes"),
            name_utf16: e[56..128].try_into().expect("72 bytes"),
            attrs: u64::from_le_bytes(e[48..56].try_into().expect("8 bytes")),
            used_bytes: map.as_ref().filter(|m| !m.whole).map(|m| m.used_bytes),
            // With the overlay, a shrinkable filesystem may end where its tool says it can;
            // others must keep every used block where it is.
            used_end: min_size.or(used_end_map),
            min_size,
            fs_block: fs.as_deref().and_then(|k| {
                let mut head = vec![0u8; sysclone_fs::IO_UNIT_HEAD.min(size as usize)];
                f.read_exact_at(&mut head, start).ok()?;
                sysclone_fs::io_unit(k, &head)
            }),
            fs,
        });
    }
    Ok(SourceLayout { logical_sector: src.logical_sector, size: src.size_bytes, disk_guid: gpt.header.disk_guid, parts })
}

fn random_guid() -> [u8; 16] {
    *uuid::Uuid::new_v4().as_bytes()
}

/// Plan (and, unless a dry run, carry out) a migration.
pub fn run_migrate(opts: &MigrateOptions) -> Result<MigrateReport> {
    let t0 = std::time::Instant::now();
    let (src, tgt, ctx) = crate::run::choose_disks(&opts.source, &opts.target, &opts.protect, opts.boot_partuuid.as_deref())?;
    let sh = open_source(&src)?;
    let layout = source_layout(&src, &sh.file)?;
    let identities = if opts.new_identities { Identities::New { disk_guid: random_guid(), part_guids: layout.parts.iter().map(|_| random_guid()).collect() } } else { Identities::Keep };
    let all: Vec<u32> = layout.parts.iter().map(|p| p.number).collect();
    let include = match (&opts.include, opts.exclude.is_empty()) {
        (Some(i), _) => Some(i.iter().filter(|n| !opts.exclude.contains(n)).copied().collect()),
        (None, true) => None,
        (None, false) => Some(all.iter().filter(|n| !opts.exclude.contains(n)).copied().collect()),
    };
    let req = MigrateRequest { policy: opts.policy.clone(), include, target_size: tgt.size_bytes, target_logical_sector: tgt.logical_sector, identities };
    let plan = plan_migration(&layout, &req)?;
    say(&plan.show(&layout));
    if opts.dry_run {
        // The rules the write would meet, checked now (a plan staged for --offline too).
        sysclone_disk::check_target_now(&tgt, &ctx, plan.parts.iter().map(|p| p.end()).max().unwrap_or(0), None)?;
        say("dry run: nothing written");
        return Ok(MigrateReport { source: src.describe(), target: tgt.describe(), parts: Vec::new(), new_ids: Vec::new(), references: Vec::new(), bootability: None, actions: plan.actions.clone(), seconds: 0.0, boot: None });
    }
    if opts.confirm == Confirm::Ask {
        ask_serial(&tgt)?;
    }
    let th = open_target(&tgt, &ctx, plan.parts.iter().map(|p| p.end()).max().unwrap_or(0), None)?;
    let busy = crate::state::Busy::enter(format!("migrating {} to {}", src.name, tgt.name));
    let left_out = left_out_parts(&src, &plan);
    let (parts, new_ids, references) = execute_migration(&plan, &layout, &src, &sh.file, &th.file, opts.new_identities, &left_out.parts)?;
    if let Err(e) = sysclone_disk::sys::reread_partitions(th.file.as_fd()) {
        say(&format!("note: the kernel did not re-read {}'s partitions ({e:#})", tgt.name));
    }
    drop(th);
    drop(sh);
    drop(busy);
    let boot = match opts.boot_entry {
        BootEntry::None => None,
        policy => {
            let disks = disks_now(opts.boot_partuuid.as_deref())?;
            let bo = crate::boot::BootOptions { policy, efivars: &opts.efivars, prune_stale: opts.prune_stale, disks: &disks, guard: Some(&ctx) };
            Some(crate::boot::entry_for_target(&tgt, &src, &bo)?)
        }
    };
    let loaders: Vec<sysclone_ident::check::LoaderRef> = boot
        .iter()
        .flat_map(|b| b.created.iter())
        .filter_map(|c| c.loader.clone().map(|l| (c, l)))
        .map(|(c, path)| sysclone_ident::check::LoaderRef { part_uuid: hd_guid(&c.device_path), path })
        .collect();
    let mut others = if opts.new_identities { vec![sysclone_ident::check::OtherDisk::from_disk(format!("the source disk ({})", src.name), &src)] } else { Vec::new() };
    if !left_out.parts.is_empty() {
        others.push(left_out);
    }
    let th = open_target(&tgt, &ctx, 0, None)?;
    let check = bootability_check(&plan, &th.file, &others, &loaders)?;
    drop(th);
    for c in &check.checked {
        say(&format!("check: {c}"));
    }
    for w in &check.warnings {
        say(&format!("check warning: {w}"));
    }
    let report = MigrateReport { source: src.describe(), target: tgt.describe(), parts, new_ids, references, bootability: Some(check.clone()), actions: plan.actions.clone(), seconds: t0.elapsed().as_secs_f64(), boot };
    if !check.ok() {
        say(&format!("SYSCLONE-REPORT {}", serde_json::to_string(&report).unwrap_or_default()));
        bail!("the clone may not boot:\n  {}", check.errors.join("\n  "));
    }
    Ok(report)
}

/// The source's partitions the plan leaves out, as the bootability check names them.
fn left_out_parts(src: &Disk, plan: &MigratePlan) -> sysclone_ident::check::OtherDisk {
    let mut d = sysclone_ident::check::OtherDisk::from_disk(format!("a partition of the source left out of the clone ({})", src.name), src);
    d.parts.retain(|p| plan.left_out.contains(&p.number));
    d
}

/// The partition GUID inside an efibootmgr-style `HD(n,GPT,GUID,…)` path.
fn hd_guid(path: &str) -> Option<String> {
    let i = path.find("HD(")?;
    let fields: Vec<&str> = path[i + 3..].split([',', ')']).collect();
    (fields.get(1) == Some(&"GPT")).then(|| fields.get(2).map(|g| g.to_ascii_lowercase())).flatten()
}

/// Offline bootability check: every identifier the target's fstab, crypttab, loader entries
/// and grub.cfg name must be a partition of the target; every new entry's loader must exist.
fn bootability_check(plan: &MigratePlan, tgt: &File, others: &[sysclone_ident::check::OtherDisk], loaders: &[sysclone_ident::check::LoaderRef]) -> Result<sysclone_ident::check::Report> {
    use sysclone_disk::sys::{loop_attach, loop_detach, LO_FLAGS_READ_ONLY};
    use sysclone_layout::migrate::{guid_to_string, name_from_utf16};
    let mut loops: Vec<(u32, Option<PathBuf>)> = Vec::new();
    let result = (|| -> Result<_> {
        let mut parts = Vec::new();
        for tp in &plan.parts {
            let n = loop_attach(tgt.as_fd(), tp.start, tp.size, plan.target_sector, LO_FLAGS_READ_ONLY)?;
            loops.push((n, None));
            let dev = PathBuf::from(format!("/dev/loop{n}"));
            let info = sysclone_ident::fs_uuid::read_fs_id(&dev).ok().flatten();
            let fs = info.as_ref().map(|i| i.kind.clone());
            let mut mounted = None;
            if let Some(k) = fs.as_deref().filter(|k| k.starts_with("ext") || *k == "xfs" || *k == "btrfs") {
                let mnt = PathBuf::from(format!("/run/sysclone-check-{}", tp.number));
                std::fs::create_dir_all(&mnt)?;
                let flags = nix::mount::MsFlags::MS_RDONLY | nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV | nix::mount::MsFlags::MS_NOEXEC;
                let data = if k.starts_with("ext") { Some("noload") } else { None };
                if nix::mount::mount(Some(&dev), &mnt, Some(k), flags, data).is_ok() {
                    if let Some(l) = loops.last_mut() {
                        l.1 = Some(mnt.clone());
                    }
                    mounted = Some(mnt);
                }
            }
            parts.push(sysclone_ident::check::PartInfo {
                number: tp.number,
                part_uuid: Some(guid_to_string(&tp.part_guid).to_ascii_lowercase()),
                part_label: Some(name_from_utf16(&tp.name_utf16)).filter(|n| !n.is_empty()),
                fs,
                fs_uuid: info.as_ref().and_then(|i| i.uuid.clone()),
                label: info.as_ref().and_then(|i| i.label.clone()),
                dev_path: dev,
                mounted_root: mounted,
            });
        }
        Ok(sysclone_ident::check::check_bootable(&parts, others, loaders, &sysclone_ident::apply::HostFiles::new()))
    })();
    for (n, mnt) in loops {
        if let Some(m) = mnt {
            let _ = nix::mount::umount(&m);
        }
        let _ = loop_detach(n);
    }
    result
}

/// Copy, resize and write the table. The target's old table is made invalid first and the
/// new primary GPT is written last.
#[allow(clippy::type_complexity)]
pub fn execute_migration(
    plan: &MigratePlan,
    layout: &SourceLayout,
    src_disk: &Disk,
    src: &File,
    tgt: &File,
    new_identities: bool,
    left_out: &[sysclone_ident::check::PartInfo],
) -> Result<(Vec<PartReport>, Vec<sysclone_ident::fs_uuid::IdChange>, Vec<sysclone_ident::apply::Change>)> {
    let tl = plan.target_sector as u64;
    let zero = vec![0u8; tl as usize];
    for off in [0, tl, plan.target_size - tl] {
        tgt.write_all_at(&zero, off).with_context(|| format!("clearing the target's old table at byte {off}"))?;
    }
    tgt.sync_all()?;
    let mut reports = Vec::new();
    for tp in &plan.parts {
        let sp = layout.parts.iter().find(|p| p.number == tp.source_number).ok_or_else(|| anyhow!("plan names source partition {} which does not exist", tp.source_number))?;
        let fs = tp.fs.clone().unwrap_or_else(|| "unknown".into());
        if fs == "vfat" && plan.target_sector != plan.source_sector {
            let n = rebuild_fat(&|| Ok(src.try_clone()?), sp, tgt, tp, plan.target_sector)?;
            say(&format!("partition {} → {}: vfat rebuilt for {}-byte sectors, {n} files copied", sp.number, tp.number, plan.target_sector));
            reports.push(PartReport { number: tp.number, source_number: sp.number, fs: tp.fs.clone(), start: tp.start, size: tp.size, bytes_copied: 0, resize: Some(format!("FAT rebuilt for {}-byte sectors", plan.target_sector)) });
            continue;
        }
        // What to copy (relative to the partition): used blocks, or everything.
        let map = sysclone_fs::used_map(src, sp.start, sp.size)?;
        let limit = tp.size.min(sp.size);
        let extents: Vec<(u64, u64)> = if map.whole || tp.action == FsAction::CopyWhole {
            vec![(0, limit)]
        } else {
            map.extents.iter().filter(|e| e.start < limit).map(|e| (e.start, (e.start + e.len).min(limit) - e.start)).collect()
        };
        let ranges: Vec<(u64, u64)> = extents.iter().map(|&(s, l)| (sp.start + s, l)).collect();
        let mut rmap = RescueMap::new(src_disk.size_bytes);
        let copy = CopyOptions { sector: src_disk.logical_sector.min(plan.target_sector), shift: tp.start as i64 - sp.start as i64, ..Default::default() };
        let mut progress = progress_printer("copy");
        let stats = sysclone_copy::pipeline::copy_ranges(src, tgt, &ranges, &mut rmap, &copy, &mut progress, &mut |_| Ok(()))
            .with_context(|| format!("copying partition {} ({fs})", sp.number))?;
        if !stats.bad.is_empty() {
            say(&format!("partition {}: {} unreadable range(s) written as zeros", sp.number, stats.bad.len()));
        }
        let resize = match tp.action {
            FsAction::Grow | FsAction::Shrink if tp.size != sp.size => Some(resize_on_target(tp.action, &fs, sp, tp, &|| Ok(Box::new(src.try_clone()?)), tgt, plan.target_sector)?),
            _ => None,
        };
        say(&format!(
            "partition {} → {}: {fs}, {} copied{}",
            sp.number,
            tp.number,
            human_bytes(stats.bytes_written),
            resize.as_deref().map(|r| format!(", {r}")).unwrap_or_default()
        ));
        reports.push(PartReport { number: tp.number, source_number: sp.number, fs: tp.fs.clone(), start: tp.start, size: tp.size, bytes_copied: stats.bytes_written, resize });
    }
    tgt.sync_all()?;
    let (ids, refs) = if new_identities || !left_out.is_empty() { references_on_target(plan, layout, tgt, new_identities, left_out)? } else { (Vec::new(), Vec::new()) };
    // The new table: backup, then primary, then sector 0, which keeps the source's boot code
    // (BIOS loaders put their first stage in sector 0's first 440 bytes).
    let mut gpt = plan.gpt_bytes()?;
    let mut code = [0u8; 440];
    src.read_exact_at(&mut code, 0).context("reading the source's boot code (sector 0)")?;
    if code.iter().any(|&b| b != 0) {
        say("sector 0: the source's boot code (440 bytes) is kept in the protective MBR");
    }
    gpt.lba0[..440].copy_from_slice(&code);
    let mut w = tgt.try_clone()?;
    gpt.write_to(&mut w).context("writing the target's partition table")?;
    tgt.sync_all()?;
    Ok((reports, ids, refs))
}

/// The clone's files: with `new_ids`, give every filesystem on the target a new UUID/serial
/// and rewrite the clone's references (fstab, crypttab, loader entries, grub.cfg …) to the
/// new filesystem and partition IDs; then comment out the fstab/crypttab/resume lines that
/// name a partition left out of the clone (`left_out`, the source's partitions).
fn references_on_target(
    plan: &MigratePlan,
    layout: &SourceLayout,
    tgt: &File,
    new_ids: bool,
    left_out: &[sysclone_ident::check::PartInfo],
) -> Result<(Vec<sysclone_ident::fs_uuid::IdChange>, Vec<sysclone_ident::apply::Change>)> {
    use std::collections::BTreeMap;
    use sysclone_disk::sys::{loop_attach, loop_detach};
    use sysclone_layout::migrate::{guid_to_string, name_from_utf16};
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for tp in &plan.parts {
        if let Some(sp) = layout.parts.iter().find(|p| p.number == tp.source_number) {
            if sp.part_guid != tp.part_guid {
                map.insert(guid_to_string(&sp.part_guid).to_ascii_lowercase(), guid_to_string(&tp.part_guid).to_ascii_lowercase());
            }
        }
    }
    let mut loops = Vec::new();
    let result = (|| -> Result<_> {
        let mut ids = Vec::new();
        let mut mounts = Vec::new();
        let mut target = Vec::new();
        for tp in &plan.parts {
            let part_uuid = Some(guid_to_string(&tp.part_guid).to_ascii_lowercase());
            let part_label = Some(name_from_utf16(&tp.name_utf16)).filter(|n| !n.is_empty());
            let Some(fs) = tp.fs.clone() else {
                target.push(sysclone_ident::check::PartInfo { number: tp.number, part_uuid, part_label, fs: None, fs_uuid: None, label: None, dev_path: PathBuf::new(), mounted_root: None });
                continue;
            };
            let n = loop_attach(tgt.as_fd(), tp.start, tp.size, plan.target_sector, 0)?;
            loops.push((n, None::<PathBuf>));
            let dev = PathBuf::from(format!("/dev/loop{n}"));
            if new_ids {
                match sysclone_ident::fs_uuid::renew_fs_id(&dev) {
                    Ok(c) => {
                        say(&format!("partition {}: {} {} → {}", tp.number, c.fs, c.old, c.new));
                        map.insert(c.old.to_ascii_lowercase(), c.new.to_ascii_lowercase());
                        ids.push(c);
                    }
                    Err(e) => say(&format!("partition {}: filesystem identity kept ({e:#})", tp.number)),
                }
            }
            let info = sysclone_ident::fs_uuid::read_fs_id(&dev).ok().flatten();
            target.push(sysclone_ident::check::PartInfo {
                number: tp.number,
                part_uuid,
                part_label,
                fs: Some(fs.clone()),
                fs_uuid: info.as_ref().and_then(|i| i.uuid.clone()),
                label: info.as_ref().and_then(|i| i.label.clone()),
                dev_path: dev.clone(),
                mounted_root: None,
            });
            if fs == "vfat" {
                mounts.push((dev, fs));
            } else if fs.starts_with("ext") || fs == "xfs" || fs == "btrfs" {
                let mnt = PathBuf::from(format!("/run/sysclone-mnt-{}", tp.number));
                std::fs::create_dir_all(&mnt)?;
                nix::mount::mount(Some(&dev), &mnt, Some(fs.as_str()), nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV | nix::mount::MsFlags::MS_NOEXEC, None::<&str>)
                    .with_context(|| format!("mounting partition {} of the target to update its files", tp.number))?;
                if let Some(l) = loops.last_mut() {
                    l.1 = Some(mnt.clone());
                }
                mounts.push((mnt, fs));
            }
        }
        let mut changes = sysclone_ident::apply::update_references(&mounts, &map)?;
        changes.extend(sysclone_ident::apply::comment_out_left_out(&mounts, left_out, &target)?);
        for c in &changes {
            say(&format!("{}: {} line {}: {} → {}", c.partition.display(), c.file, c.line, c.old, c.new));
        }
        Ok((ids, changes))
    })();
    for (n, mnt) in loops {
        if let Some(m) = mnt {
            let _ = nix::mount::umount(&m);
        }
        let _ = loop_detach(n);
    }
    result
}

/// Format a FAT of the type its size calls for (with 4096-byte sectors, FAT32 needs at least
/// 256 MiB; a smaller ESP becomes FAT16, which UEFI reads as well).
fn format_fat(dev: &mut File, start: u64, len: u64, label: &str, serial: u32, bytes_per_sector: u16) -> Result<()> {
    use std::io::Write;
    let mut name = [b' '; 11];
    for (d, c) in name.iter_mut().zip(label.bytes().filter(|c| c.is_ascii_graphic() || *c == b' ').take(11)) {
        *d = c.to_ascii_uppercase();
    }
    let slice = fscommon::StreamSlice::new(&mut *dev, start, start + len)?;
    let mut buf = fscommon::BufStream::new(slice);
    fatfs::format_volume(&mut buf, fatfs::FormatVolumeOptions::new().bytes_per_sector(bytes_per_sector).volume_id(serial).volume_label(name))?;
    buf.flush()?;
    Ok(())
}

/// A FAT cannot change its sector size in place: make a new FAT32 with the target's sector
/// size (same label and serial) and copy every file into it.
/// `src` opens the source disk (or a saved image's disk) as a stream at disk offsets.
pub(crate) fn rebuild_fat<D: std::io::Read + std::io::Write + std::io::Seek>(src: &dyn Fn() -> Result<D>, sp: &SourcePart, tgt: &File, tp: &sysclone_layout::migrate::TargetPart, sector: u32) -> Result<usize> {
    use std::io::SeekFrom;
    use sysclone_media::usbimage::{add_files_to_fat, list_fat_files, read_fat_file, EspFile};
    let mut head = vec![0u8; 512];
    let mut r = src()?;
    r.seek(SeekFrom::Start(sp.start))?;
    r.read_exact(&mut head).with_context(|| format!("reading the FAT boot sector of source partition {}", sp.number))?;
    let info = sysclone_disk::probe::probe(&head);
    let label = info.as_ref().and_then(|i| i.label.clone()).unwrap_or_else(|| "NO NAME".into());
    let serial = info.as_ref().and_then(|i| i.uuid.as_ref()).and_then(|u| u32::from_str_radix(&u.replace('-', ""), 16).ok()).unwrap_or(0x5C10_0E00);
    let files = list_fat_files(src()?, sp.start, sp.size).with_context(|| format!("listing the FAT on source partition {}", sp.number))?;
    let mut w = tgt.try_clone()?;
    format_fat(&mut w, tp.start, tp.size, &label, serial, sector as u16).with_context(|| format!("formatting partition {} as FAT with {sector}-byte sectors", tp.number))?;
    let mut n = 0;
    for f in files.iter().filter(|f| !f.is_dir) {
        let data = read_fat_file(src()?, sp.start, sp.size, &f.path)?;
        add_files_to_fat(&mut w, tp.start, tp.size, &[EspFile::bytes(f.path.clone(), data)]).with_context(|| format!("copying {} to the new FAT", f.path))?;
        n += 1;
    }
    Ok(n)
}

/// Resize one partition's filesystem on the target: grow in place on a loop device over the
/// target partition; shrink on a loop device over the overlay (target below the new end,
/// source above it, read-only). `base` opens the source for reading at source-disk offsets
/// (the source disk, or a saved image decompressed on demand).
pub(crate) fn resize_on_target(
    action: FsAction,
    fs: &str,
    sp: &SourcePart,
    tp: &sysclone_layout::migrate::TargetPart,
    base: &dyn Fn() -> Result<Box<dyn sysclone_overlay::BaseRead>>,
    tgt: &File,
    sector: u32,
) -> Result<String> {
    use sysclone_disk::sys::{loop_attach, loop_detach};
    if action == FsAction::Shrink && tp.size < sp.size && fs != "swap" {
        let mnt = PathBuf::from(format!("/run/sysclone-overlay-{}", tp.number));
        let ov = sysclone_overlay::Overlay::mount(
            sysclone_overlay::Layers { base: base()?, base_off: sp.start, head: tgt.try_clone()?, head_off: tp.start, head_len: tp.size, size: sp.size },
            &mnt,
        )?;
        let file = File::options().read(true).write(true).open(ov.file())?;
        let n = loop_attach(file.as_fd(), 0, 0, sector, 0)?;
        drop(file);
        let r = sysclone_fs::resize(Path::new(&format!("/dev/loop{n}")), fs, tp.size);
        let _ = loop_detach(n);
        let stats = ov.finish()?;
        let out = r.with_context(|| format!("shrinking {fs} of partition {} to {} bytes", sp.number, tp.size))?;
        let _ = std::fs::remove_file(&mnt);
        return Ok(format!("{} shrunk {} → {} ({}; {} read from the source above the new end)", fs, human_bytes(out.old_size), human_bytes(out.new_size), out.method, human_bytes(stats.bytes_read_base)));
    }
    let n = loop_attach(tgt.as_fd(), tp.start, tp.size, sector, 0)?;
    let r = sysclone_fs::resize(Path::new(&format!("/dev/loop{n}")), fs, tp.size);
    let _ = loop_detach(n);
    let out = r.with_context(|| format!("resizing {fs} of partition {} to {} bytes", tp.number, tp.size))?;
    // FAT grows only as far as its FAT allows; the others must fill the partition.
    if out.new_size < tp.size.saturating_sub(16 << 20) && action == FsAction::Grow && fs != "vfat" {
        bail!("{fs} of partition {} grew only to {} of {} bytes", tp.number, out.new_size, tp.size);
    }
    Ok(format!("{fs} resized {} → {} ({})", human_bytes(out.old_size), human_bytes(out.new_size), out.method))
}
