//! Kernel module loading from the index the image builder wrote, and coldplug by modalias.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::kmod::{finit_module, ModuleInitFlags};
use sysclone_media::modindex::{load_order, lookup_alias, parse_modules_alias, parse_modules_dep, parse_softdep, AliasEntry, DepMap};
use sysclone_media::modinfo::{normalize_module_name, SoftDep};

use crate::console::say;

/// The modules shipped in the image and what has been loaded.
pub struct Loader {
    base: PathBuf,
    dep: DepMap,
    aliases: Vec<AliasEntry>,
    softdeps: BTreeMap<String, SoftDep>,
    loaded: BTreeSet<String>,
    failed: BTreeSet<String>,
}

impl Loader {
    /// Read `modules.dep`, `modules.alias` and `modules.softdep` under `/lib/modules/<release>`.
    pub fn open(root: &Path) -> Result<Loader> {
        let release = nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
        let base = root.join("lib/modules").join(&release);
        let read = |f: &str| fs::read_to_string(base.join(f)).unwrap_or_default();
        let dep = parse_modules_dep(&read("modules.dep")).with_context(|| format!("reading {}/modules.dep", base.display()))?;
        Ok(Loader { aliases: parse_modules_alias(&read("modules.alias")), softdeps: parse_softdep(&read("modules.softdep")), dep, base, loaded: BTreeSet::new(), failed: BTreeSet::new() })
    }

    pub fn count(&self) -> usize {
        self.dep.len()
    }

    /// Names of modules loaded by this loader.
    pub fn loaded(&self) -> &BTreeSet<String> {
        &self.loaded
    }

    fn is_live(name: &str) -> bool {
        Path::new("/sys/module").join(name).join("initstate").exists()
    }

    /// Load a module by name or alias, with its dependencies and soft dependencies.
    /// Returns how many modules were newly loaded.
    pub fn load(&mut self, name_or_alias: &str) -> usize {
        let name = normalize_module_name(name_or_alias);
        if self.dep.contains_key(&name) {
            return self.load_module(&name, 0);
        }
        let mods = lookup_alias(&self.aliases, name_or_alias);
        mods.iter().map(|m| self.load_module(m, 0)).sum()
    }

    fn load_module(&mut self, name: &str, depth: u32) -> usize {
        if depth > 8 || self.loaded.contains(name) || self.failed.contains(name) {
            return 0;
        }
        let Some(order) = load_order(&self.dep, name) else { return 0 };
        let soft = self.softdeps.get(name).cloned().unwrap_or_default();
        let mut n = 0;
        for pre in &soft.pre {
            n += self.load_alias_or_name(pre, depth + 1);
        }
        for path in order {
            let m = sysclone_media::modinfo::module_name_from_path(&path);
            if self.loaded.contains(&m) || self.failed.contains(&m) {
                continue;
            }
            if Self::is_live(&m) {
                self.loaded.insert(m);
                continue;
            }
            match self.insert(&path) {
                Ok(()) => {
                    self.loaded.insert(m);
                    n += 1;
                }
                Err(e) => {
                    say(&format!("module {m}: {e:#}"));
                    self.failed.insert(m);
                }
            }
        }
        for post in &soft.post {
            n += self.load_alias_or_name(post, depth + 1);
        }
        n
    }

    fn load_alias_or_name(&mut self, s: &str, depth: u32) -> usize {
        let name = normalize_module_name(s);
        if self.dep.contains_key(&name) {
            return self.load_module(&name, depth);
        }
        let mods = lookup_alias(&self.aliases, s);
        mods.iter().map(|m| self.load_module(m, depth)).sum()
    }

    fn insert(&self, rel: &str) -> Result<()> {
        let path = self.base.join(rel);
        let f = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        match finit_module(&f, c"", ModuleInitFlags::empty()) {
            Ok(()) | Err(Errno::EEXIST) => Ok(()),
            Err(e) => Err(anyhow::anyhow!("finit_module {}: {e}", path.display())),
        }
    }

    /// One coldplug pass: load the modules matching every device's modalias.
    pub fn coldplug_pass(&mut self) -> usize {
        let mut aliases = BTreeSet::new();
        collect_modaliases(Path::new("/sys/devices"), &mut aliases, 0);
        let mut n = 0;
        for a in aliases {
            for m in lookup_alias(&self.aliases, &a) {
                n += self.load_module(&m, 0);
            }
        }
        n
    }
}

fn collect_modaliases(dir: &Path, out: &mut BTreeSet<String>, depth: u32) {
    if depth > 24 {
        return;
    }
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            collect_modaliases(&e.path(), out, depth + 1);
        } else if ft.is_file() && e.file_name() == "modalias" {
            if let Ok(s) = fs::read_to_string(e.path()) {
                let s = s.trim();
                if !s.is_empty() {
                    out.insert(s.to_string());
                }
            }
        } else if ft.is_file() && e.file_name() == "uevent" {
            // Some buses (MMC/SD cards: `mmc:block`) have no modalias file, only MODALIAS= here.
            if let Ok(s) = fs::read_to_string(e.path()) {
                out.extend(s.lines().filter_map(|l| l.strip_prefix("MODALIAS=")).map(|m| m.trim().to_string()).filter(|m| !m.is_empty()));
            }
        }
    }
}

fn block_devices() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir("/sys/block").map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
    v.sort();
    v
}

/// SCSI disks (and USB sticks, which are SCSI disks too) whose block device the kernel has
/// not made yet: `sd` probes them in the background (under emulation this takes a while).
fn scsi_disk_pending() -> bool {
    let Ok(rd) = fs::read_dir("/sys/bus/scsi/devices") else { return false };
    rd.flatten()
        .filter(|e| e.file_name().to_string_lossy().chars().next().is_some_and(|c| c.is_ascii_digit()))
        // SCSI peripheral types: 0 disk, 7 optical memory, 14 simplified direct access.
        .filter(|e| fs::read_to_string(e.path().join("type")).is_ok_and(|t| matches!(t.trim(), "0" | "7" | "14")))
        .any(|e| !e.path().join("block").exists())
}

/// Coldplug until no pass loads anything new, the set of block devices has been stable for
/// `quiet` and no SCSI disk is still waiting for its block device — or `limit` has passed.
/// Returns (modules loaded, seconds waited).
pub fn coldplug_and_settle(loader: &mut Loader, quiet: Duration, limit: Duration) -> (usize, f64) {
    let t0 = Instant::now();
    let mut total = 0;
    let mut last_change = Instant::now();
    let mut seen = block_devices();
    loop {
        let n = loader.coldplug_pass();
        total += n;
        let now = block_devices();
        if n > 0 || now != seen {
            last_change = Instant::now();
            seen = now;
        }
        if last_change.elapsed() >= quiet && !scsi_disk_pending() {
            break;
        }
        if t0.elapsed() >= limit {
            say(&format!("disks still changing after {} s; going on with what is there", limit.as_secs()));
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (total, t0.elapsed().as_secs_f64())
}
