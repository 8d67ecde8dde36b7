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

/// Whether `name` is an NVMe namespace's node under a controller: `nvme0n1`, or with native
/// multipath the hidden path `nvme0c1n1`.
fn is_namespace(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("nvme") else { return false };
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let Some((head, ns)) = rest.rsplit_once('n') else { return false };
    digits(ns) && (digits(head) || head.split_once('c').is_some_and(|(a, b)| digits(a) && digits(b)))
}

/// NVMe controllers (under `class`, normally `/sys/class/nvme`) whose namespaces have not
/// shown yet: still starting (state not `live`), or — while `early` — live without any
/// namespace (the kernel scans them after the controller comes up; a slow controller takes
/// a while, and a controller may also really have none, hence only early on).
fn nvme_pending(class: &Path, early: bool) -> bool {
    let Ok(rd) = fs::read_dir(class) else { return false };
    rd.flatten().any(|c| {
        let state = fs::read_to_string(c.path().join("state")).unwrap_or_default();
        let starting = matches!(state.trim(), "new" | "connecting" | "resetting");
        let has_ns = fs::read_dir(c.path()).map(|r| r.flatten().any(|e| is_namespace(&e.file_name().to_string_lossy()))).unwrap_or(false);
        starting || (early && state.trim() == "live" && !has_ns)
    })
}

/// How long a live NVMe controller without namespaces is waited for.
const NVME_NAMESPACE_WAIT: Duration = Duration::from_secs(5);

/// Whether this process runs in the rescue system: PID 1 is this very binary (`/init`).
pub fn in_rescue() -> bool {
    match (fs::read_link("/proc/1/exe"), std::env::current_exe()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Look again for devices plugged in since boot (the menu's "list disks again", `sysclone
/// disks --rescan`): load the drivers their modaliases want and wait, bounded, for their
/// disks to settle. Only in the rescue system: an installed system has udev for that.
pub fn rescan() -> Result<()> {
    anyhow::ensure!(in_rescue(), "--rescan loads drivers the way the rescue system's init does; on an installed system udev does that");
    let mut loader = Loader::open(Path::new("/")).context("reading the module index")?;
    let before = block_devices();
    let (n, waited) = coldplug_and_settle(&mut loader, Duration::from_millis(1000), Duration::from_secs(20));
    let new: Vec<String> = block_devices().into_iter().filter(|d| !before.contains(d)).collect();
    say(&format!("rescan: {n} driver(s) loaded, {} new block device(s){}, settled after {waited:.1} s", new.len(), if new.is_empty() { String::new() } else { format!(" ({})", new.join(", ")) }));
    Ok(())
}

/// Coldplug until no pass loads anything new, the set of block devices has been stable for
/// `quiet`, no SCSI disk is still waiting for its block device and no NVMe controller for
/// its namespaces — or `limit` has passed. Returns (modules loaded, seconds waited).
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
        if last_change.elapsed() >= quiet && !scsi_disk_pending() && !nvme_pending(Path::new("/sys/class/nvme"), t0.elapsed() < NVME_NAMESPACE_WAIT) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names() {
        for n in ["nvme0n1", "nvme12n3", "nvme0c1n1"] {
            assert!(is_namespace(n), "{n}");
        }
        for n in ["nvme0", "nvme0n", "nvmen1", "nvme0c1", "nvme0n1p1", "ng0n1", "subsysnqn", "nvme0cn1"] {
            assert!(!is_namespace(n), "{n}");
        }
    }

    /// A controller still starting is waited for; a live one without namespaces only early on.
    #[test]
    fn pending_nvme_controllers() {
        let t = tempfile::tempdir().unwrap();
        let class = t.path();
        let ctrl = |name: &str, state: &str, ns: &[&str]| {
            let d = class.join(name);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("state"), format!("{state}\n")).unwrap();
            fs::write(d.join("subsysnqn"), "nqn\n").unwrap();
            for n in ns {
                fs::create_dir_all(d.join(n)).unwrap();
            }
        };
        assert!(!nvme_pending(&class.join("none"), true));
        ctrl("nvme0", "live", &["nvme0n1"]);
        assert!(!nvme_pending(class, true));
        ctrl("nvme1", "live", &[]);
        assert!(nvme_pending(class, true), "a live controller without namespaces, early");
        assert!(!nvme_pending(class, false), "… is not waited for later");
        fs::create_dir_all(class.join("nvme1/nvme0c1n1")).unwrap();
        assert!(!nvme_pending(class, true), "a multipath namespace counts");
        ctrl("nvme2", "connecting", &[]);
        assert!(nvme_pending(class, false), "a controller still connecting");
    }
}
