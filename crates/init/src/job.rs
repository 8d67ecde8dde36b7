//! Job files: what an unattended run does (TOML, see docs/jobs.md).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sysclone_disk::Selector;

/// What to do after the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum After {
    /// Restart the machine (into the new disk, when a boot entry was made).
    Reboot,
    Poweroff,
    Halt,
    /// Stay at the console and offer the menu.
    Menu,
}

/// Which boot entry to make for the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootEntry {
    /// Create (or reuse) an entry for the target's loader and put it first in BootOrder.
    First,
    /// Create it and set BootNext to it: the clone is tried once, BootOrder stays.
    Next,
    /// Create it, leave BootOrder alone.
    Add,
    /// Touch no EFI variable.
    None,
}

pub use sysclone_copy::Mode;

/// How a job's writes are confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobConfirm {
    /// The job file stands for the typed confirmation: the target disk(s) its selectors
    /// choose are written without asking (unattended runs need this).
    Serial,
    /// Show each target and ask for the last characters of its serial on the console
    /// (what a job without `confirm` does).
    Ask,
}

/// The operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// The whole disk, offsets kept (`mode` exact or smart).
    Clone,
    /// Chosen partitions onto a smaller or larger disk, resized (`policy`).
    Migrate,
    /// The source disk's used blocks into an image directory (`image`).
    Save,
    /// An image directory (`image`) onto the target, as saved or resized (`policy`).
    Restore,
}

/// Where an image lives: a directory on a partition of a disk chosen by selector (mounted
/// read-write for `save`, read-only for `restore`), or — restore only — an `http(s)://` URL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImageLocation {
    /// Restore: the image on a web server (instead of disk, partition and path).
    pub url: Option<String>,
    /// Selector of the disk holding the images.
    #[serde(default)]
    pub disk: String,
    /// Partition number on it.
    #[serde(default)]
    pub partition: u32,
    /// The image directory, relative to the partition's root.
    #[serde(default)]
    pub path: String,
    /// Save: an earlier image on the same partition to save against (incremental).
    pub base: Option<String>,
    /// Restore: the SHA-256 of the image's `manifest.json` (its identity, as `sha256sum`
    /// prints it); any other manifest is refused before it is used.
    pub sha256: Option<String>,
}

impl ImageLocation {
    fn check(&self) -> Result<()> {
        if let Some(h) = &self.sha256 {
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("image.sha256 {h:?} is not a SHA-256 (64 hex digits)");
            }
        }
        if let Some(u) = &self.url {
            if !sysclone_net::is_url(u) {
                bail!("image.url {u:?} is not an http:// or https:// URL");
            }
            if !self.disk.is_empty() || self.partition != 0 || !self.path.is_empty() || self.base.is_some() {
                bail!("image: give url, or disk + partition + path, not both");
            }
            return Ok(());
        }
        if self.disk.is_empty() || self.partition == 0 || self.path.is_empty() {
            bail!("image needs disk, partition and path (or url for a restore)");
        }
        Selector::parse(&self.disk).context("image.disk selector")?;
        if self.disk.starts_with('/') {
            bail!("image.disk: job files name disks by stable selectors, not device paths");
        }
        for (k, v) in [("image.path", Some(&self.path)), ("image.base", self.base.as_ref())] {
            if let Some(v) = v {
                sysclone_imagefile::source::check_relative(v).with_context(|| format!("{k} is relative to the partition's root"))?;
                if v.split('/').any(|c| c == "..") {
                    bail!("{k} {v:?} must stay inside the partition (no ..)");
                }
            }
        }
        Ok(())
    }
}

/// How a migration sizes partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    Keep,
    Grow,
    Proportional,
    Explicit,
}

/// Disk, partition and filesystem identifiers of a migrated disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityKind {
    /// The clone replaces the source: same GUIDs.
    Keep,
    /// Both disks stay in one machine: new GUIDs.
    New,
}

/// A job file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub operation: Operation,
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// Source disk selector (stable: serial=, wwn=, by-id=, model=, role=system …); not
    /// for restore (the image is the source).
    #[serde(default)]
    pub source: String,
    /// Target disk selector.
    #[serde(default)]
    pub target: String,
    /// Several targets, written at once from one read of the source (a duplicator; clone
    /// only; instead of `target`).
    #[serde(default)]
    pub targets: Vec<String>,
    /// Disks that must never be written, whatever else matches.
    #[serde(default)]
    pub protect: Vec<String>,
    /// `"serial"`: write without asking (the job is the confirmation). Without it the
    /// console shows each target and asks for the last characters of its serial first.
    pub confirm: Option<JobConfirm>,
    /// Read the target back and compare after copying.
    #[serde(default)]
    pub verify: bool,
    /// Default `first` for one target; with several there is none (an entry names one disk).
    #[serde(rename = "boot_entry")]
    pub boot_entry_key: Option<BootEntry>,
    /// Migrate: how partitions are sized (default `grow`).
    pub policy: Option<PolicyKind>,
    /// Migrate, policy `grow`: the partition number that takes the difference.
    pub grow_partition: Option<u32>,
    /// Migrate, policy `explicit`: partition number → size (`"20G"`).
    #[serde(default)]
    pub sizes: std::collections::BTreeMap<String, String>,
    /// Migrate: only these partition numbers.
    pub include: Option<Vec<u32>>,
    /// Migrate: all but these partition numbers.
    #[serde(default)]
    pub exclude: Vec<u32>,
    /// Migrate: `keep` (default) or `new` disk and partition GUIDs.
    pub identities: Option<IdentityKind>,
    /// Per-machine customisation after a clone, migration or restore: rows of
    /// `{ mac = "…", serial = "…", hostname = "…" }`; this machine's row sets the hostname.
    #[serde(default)]
    pub machines: Vec<crate::customize::MachineEntry>,
    /// Restore: fetch and write only what the target does not already hold.
    #[serde(default)]
    pub delta: bool,
    /// POST the result (JSON: result, error, machine, report, log) here when the job ends.
    pub report_url: Option<String>,
    /// Save and restore: where the image directory is.
    pub image: Option<ImageLocation>,
    #[serde(default = "default_on_success")]
    pub on_success: After,
    #[serde(default = "default_on_failure")]
    pub on_failure: After,
}

fn default_mode() -> Mode {
    Mode::Exact
}
fn default_on_success() -> After {
    After::Reboot
}
fn default_on_failure() -> After {
    After::Menu
}

impl Job {
    /// Parse and check a job; errors carry the line and column.
    pub fn parse(text: &str) -> Result<Job> {
        let job: Job = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        job.check()?;
        Ok(job)
    }

    pub fn load(path: &Path) -> Result<Job> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading job file {}", path.display()))?;
        Job::parse(&text).with_context(|| format!("job file {}", path.display()))
    }

    /// Whether the job needs the network (an image URL, a report URL).
    pub fn needs_network(&self) -> bool {
        self.report_url.is_some() || self.image.as_ref().is_some_and(|i| i.url.is_some())
    }

    /// The boot entry policy: as written, else `first` for one target, `none` for several.
    pub fn boot_entry(&self) -> BootEntry {
        self.boot_entry_key.unwrap_or(if self.targets.is_empty() { BootEntry::First } else { BootEntry::None })
    }

    /// Whether writing needs a typed confirmation: only a job that says `confirm = "serial"`
    /// writes without one.
    pub fn confirmation(&self) -> crate::run::Confirm {
        match self.confirm {
            Some(JobConfirm::Serial) => crate::run::Confirm::Yes,
            _ => crate::run::Confirm::Ask,
        }
    }

    /// The target selectors: `target`, or each of `targets`.
    pub fn target_list(&self) -> Vec<String> {
        if self.targets.is_empty() {
            vec![self.target.clone()]
        } else {
            self.targets.clone()
        }
    }

    fn selectors(&self) -> Result<(Selector, Vec<Selector>)> {
        Ok((Selector::parse(&self.source)?, self.target_list().iter().map(|t| Selector::parse(t)).collect::<Result<_>>()?))
    }

    /// The migration policy this job asks for.
    pub fn migrate_policy(&self) -> Result<sysclone_layout::migrate::Policy> {
        use sysclone_layout::migrate::Policy;
        Ok(match self.policy.unwrap_or(PolicyKind::Grow) {
            PolicyKind::Keep => Policy::Keep,
            PolicyKind::Grow => Policy::Grow { part: self.grow_partition },
            PolicyKind::Proportional => Policy::Proportional,
            PolicyKind::Explicit => {
                let mut v = Vec::new();
                for (k, size) in &self.sizes {
                    let n: u32 = k.parse().map_err(|_| anyhow::anyhow!("sizes: {k:?} is not a partition number"))?;
                    v.push((n, sysclone_disk::parse_size(size).with_context(|| format!("sizes.{k}"))?));
                }
                Policy::Explicit(v)
            }
        })
    }

    fn check(&self) -> Result<()> {
        for m in &self.machines {
            m.check()?;
        }
        if !self.machines.is_empty() && (self.operation == Operation::Save || !self.targets.is_empty()) {
            bail!("machines (per-machine hostnames) apply to one target disk of a clone, migrate or restore");
        }
        if matches!(self.operation, Operation::Save | Operation::Restore) {
            return self.check_imaging();
        }
        if self.image.is_some() {
            bail!("image belongs to operation = \"save\" or \"restore\"");
        }
        let migrate_keys = self.policy.is_some() || self.grow_partition.is_some() || !self.sizes.is_empty() || self.include.is_some() || !self.exclude.is_empty() || self.identities.is_some();
        if self.operation == Operation::Clone && migrate_keys {
            bail!("policy, grow_partition, sizes, include, exclude and identities belong to operation = \"migrate\"");
        }
        if self.operation == Operation::Migrate {
            if self.mode != Mode::Exact {
                bail!("mode applies to clones; a migration always copies used blocks and resizes");
            }
            if !self.sizes.is_empty() && self.policy != Some(PolicyKind::Explicit) {
                bail!("sizes need policy = \"explicit\"");
            }
            if self.grow_partition.is_some() && self.policy.unwrap_or(PolicyKind::Grow) != PolicyKind::Grow {
                bail!("grow_partition needs policy = \"grow\"");
            }
            self.migrate_policy()?;
        }
        if let Some(u) = &self.report_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                bail!("report_url {u:?} is not an http:// or https:// URL");
            }
        }
        match (self.target.is_empty(), self.targets.is_empty()) {
            (true, true) => bail!("missing target (or targets = [...] for several)"),
            (false, false) => bail!("give target or targets, not both"),
            _ => {}
        }
        if !self.targets.is_empty() {
            if self.operation != Operation::Clone {
                bail!("several targets are for operation = \"clone\" (a duplicator); a migration has one target");
            }
            if self.boot_entry() != BootEntry::None {
                bail!("boot_entry makes an entry for one disk; with several targets leave it out or set boot_entry = \"none\"");
            }
        }
        let src = Selector::parse(&self.source).context("source selector")?;
        for p in &self.protect {
            Selector::parse(p).context("protect selector")?;
        }
        let mut seen: Vec<Selector> = Vec::new();
        for t in self.target_list() {
            let tgt = Selector::parse(&t).context("target selector")?;
            if src.text.starts_with('/') || tgt.text.starts_with('/') {
                bail!("job files name disks by stable selectors (serial=, wwn=, by-id=, model=, size=, role=), not device paths, which change between boots");
            }
            if src == tgt {
                bail!("source and target selectors are the same ({}); they must select different disks", self.source);
            }
            if seen.contains(&tgt) {
                bail!("target {t} is named twice");
            }
            seen.push(tgt);
        }
        Ok(())
    }

    /// Save and restore: an image location, the disk on one side only, sizing keys for
    /// restores only.
    fn check_imaging(&self) -> Result<()> {
        let Some(image) = &self.image else { bail!("operation = {:?} needs image = {{ disk = \"serial=…\", partition = N, path = \"images/…\" }}", self.operation) };
        image.check()?;
        if self.mode != Mode::Exact {
            bail!("mode applies to clones; save and restore always take used blocks");
        }
        if !self.targets.is_empty() || !self.exclude.is_empty() || self.identities.is_some() {
            bail!("targets, exclude and identities do not apply to save and restore");
        }
        let disk = match self.operation {
            Operation::Save => {
                if image.url.is_some() {
                    bail!("a save writes to a partition (image = {{ disk, partition, path }}); image.url is for restores");
                }
                if image.sha256.is_some() {
                    bail!("image.sha256 pins the image a restore reads; a save makes a new one");
                }
                let sizing = self.policy.is_some() || self.grow_partition.is_some() || !self.sizes.is_empty() || self.include.is_some() || self.verify;
                if !self.target.is_empty() || sizing || self.boot_entry_key.is_some() {
                    bail!("a save reads `source` into `image`; target, policy, grow_partition, sizes, include, verify and boot_entry belong to restore");
                }
                &self.source
            }
            _ => {
                if !self.source.is_empty() || image.base.is_some() {
                    bail!("a restore writes `image` onto `target`; source and image.base belong to save");
                }
                if self.policy.is_some() {
                    self.migrate_policy()?;
                }
                if !self.sizes.is_empty() && self.policy != Some(PolicyKind::Explicit) {
                    bail!("sizes need policy = \"explicit\"");
                }
                &self.target
            }
        };
        if disk.is_empty() {
            bail!("missing {}", if self.operation == Operation::Save { "source" } else { "target" });
        }
        let sel = Selector::parse(disk)?;
        if disk.starts_with('/') {
            bail!("job files name disks by stable selectors (serial=, wwn=, by-id=, model=, size=, role=), not device paths, which change between boots");
        }
        if image.url.is_none() && sel == Selector::parse(&image.disk)? {
            bail!("the image's disk and the {} are the same selector ({disk}); images live on another disk", if self.operation == Operation::Save { "source" } else { "target" });
        }
        for p in &self.protect {
            Selector::parse(p).context("protect selector")?;
        }
        Ok(())
    }

    pub fn protect_selectors(&self) -> Vec<Selector> {
        self.protect.iter().filter_map(|p| Selector::parse(p).ok()).collect()
    }
}

/// Run `job` (or with `dry_run`, plan it and say what it would do): the same path for the
/// rescue image and `sysclone job check --plan`. Returns the JSON report.
///
/// `trust` is what an image a restore reads must satisfy (trusted keys, pins; the default
/// checks nothing).
pub fn run(job: &Job, efivars: &Path, boot_partuuid: Option<&str>, dry_run: bool, trust: &sysclone_net::trust::Policy) -> Result<String> {
    let json = run_operation(job, efivars, boot_partuuid, dry_run, trust)?;
    if job.machines.is_empty() {
        return Ok(json);
    }
    let (macs, serial) = crate::customize::identity();
    let Some(entry) = crate::customize::this_machine(&job.machines, &macs, serial.as_deref()) else {
        crate::console::say(&format!("warning: no machines entry matches this machine (MACs {}, serial {}); the hostname stays as it was", macs.join(" "), serial.as_deref().unwrap_or("none")));
        return Ok(json);
    };
    crate::console::say(&format!("this machine is {} in the job's machines table", entry.hostname));
    if dry_run {
        return Ok(json);
    }
    let disks = crate::run::disks_now(boot_partuuid)?;
    let target = Selector::parse(&job.target)?.select(&disks, &[], Path::new("/dev")).context("finding the target again to set its hostname")?.clone();
    let ctx = sysclone_disk::GuardContext {
        boot_medium: disks.iter().find(|d| d.roles.iter().any(|r| r == "boot-medium")).map(|d| d.name.clone()),
        source: None,
        protected: job.protect_selectors(),
        roots: sysclone_disk::Roots::default(),
    };
    let done = crate::customize::apply(&target, entry, &ctx)?;
    for d in &done {
        crate::console::say(&format!("customised: {d}"));
    }
    let mut v: serde_json::Value = serde_json::from_str(&json)?;
    if let Some(o) = v.as_object_mut() {
        o.insert("customised".into(), serde_json::json!(done));
    }
    Ok(v.to_string())
}

fn run_operation(job: &Job, efivars: &Path, boot_partuuid: Option<&str>, dry_run: bool, trust: &sysclone_net::trust::Policy) -> Result<String> {
    if matches!(job.operation, Operation::Save | Operation::Restore) {
        return crate::imaging::run_job(job, efivars, boot_partuuid, dry_run, trust);
    }
    let (source, targets) = job.selectors()?;
    let confirm = job.confirmation();
    if job.operation == Operation::Migrate {
        crate::console::say(&format!("job: migrate {} -> {}", job.source, job.target));
        let opts = crate::migrate::MigrateOptions {
            source,
            target: targets.into_iter().next().expect("check() wants a target"),
            protect: job.protect_selectors(),
            policy: job.migrate_policy()?,
            include: job.include.clone(),
            exclude: job.exclude.clone(),
            new_identities: job.identities == Some(IdentityKind::New),
            boot_entry: job.boot_entry(),
            efivars: efivars.to_path_buf(),
            boot_partuuid: boot_partuuid.map(str::to_string),
            dry_run,
            confirm,
            prune_stale: false,
        };
        return Ok(serde_json::to_string(&crate::migrate::run_migrate(&opts)?)?);
    }
    crate::console::say(&format!("job: clone {} -> {} ({:?})", job.source, job.target_list().join(", "), job.mode));
    let opts = crate::run::CloneOptions {
        source,
        targets,
        protect: job.protect_selectors(),
        boot_entry: job.boot_entry(),
        prune_stale: false,
        efivars: efivars.to_path_buf(),
        boot_partuuid: boot_partuuid.map(str::to_string),
        dry_run,
        confirm,
        mode: job.mode,
        verify: job.verify,
        map: None,
        discard_unused: false,
    };
    Ok(serde_json::to_string(&crate::run::run_clone(&opts)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_job_gets_defaults() {
        let j = Job::parse("operation = \"clone\"\nsource = \"serial=SRC1\"\ntarget = \"serial=TGT1\"\n").unwrap();
        assert_eq!((j.mode, j.boot_entry(), j.on_success, j.on_failure), (Mode::Exact, BootEntry::First, After::Reboot, After::Menu));
    }

    /// Only `confirm = "serial"` lets a job write without a typed confirmation.
    #[test]
    fn confirm_key() {
        use crate::run::Confirm;
        let base = "operation = \"clone\"\nsource = \"serial=A\"\ntarget = \"serial=B\"\n";
        assert_eq!(Job::parse(base).unwrap().confirmation(), Confirm::Ask);
        assert_eq!(Job::parse(&format!("{base}confirm = \"serial\"\n")).unwrap().confirmation(), Confirm::Yes);
        assert_eq!(Job::parse(&format!("{base}confirm = \"ask\"\n")).unwrap().confirmation(), Confirm::Ask);
        let e = Job::parse(&format!("{base}confirm = \"yes\"\n")).unwrap_err().to_string();
        assert!(e.contains("line 4") && e.contains("serial"), "{e}");
        for f in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../image/jobs")).unwrap() {
            let p = f.unwrap().path();
            let j = Job::load(&p).unwrap();
            assert_eq!(j.confirmation(), Confirm::Yes, "{}: the e2e jobs run unattended", p.display());
        }
    }

    #[test]
    fn restore_from_a_url() {
        let j = Job::parse("operation = \"restore\"\ntarget = \"serial=T\"\nimage = { url = \"http://srv/images/golden/\" }\n").unwrap();
        assert!(j.needs_network());
        let pin = "ab".repeat(32);
        let j = Job::parse(&format!("operation = \"restore\"\ntarget = \"serial=T\"\nimage = {{ url = \"http://srv/images/golden/\", sha256 = \"{pin}\" }}\n")).unwrap();
        assert_eq!(j.image.unwrap().sha256.as_deref(), Some(pin.as_str()));
        for (bad, why) in [
            ("operation = \"restore\"\ntarget = \"serial=T\"\nimage = { url = \"ftp://srv/x/\" }\n", "not an http"),
            ("operation = \"restore\"\ntarget = \"serial=T\"\nimage = { url = \"http://srv/x/\", disk = \"serial=I\" }\n", "not both"),
            ("operation = \"save\"\nsource = \"serial=S\"\nimage = { url = \"http://srv/x/\" }\n", ""),
            ("operation = \"restore\"\ntarget = \"serial=T\"\nimage = { url = \"http://srv/x/\", sha256 = \"abc\" }\n", "not a SHA-256"),
            ("operation = \"save\"\nsource = \"serial=S\"\nimage = { disk = \"serial=I\", partition = 1, path = \"x\", sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\" }\n", "a save makes a new one"),
        ] {
            let e = format!("{:#}", Job::parse(bad).unwrap_err());
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn duplicator_jobs() {
        let j = Job::parse("operation = \"clone\"\nsource = \"serial=A\"\ntargets = [\"serial=B\", \"serial=C\"]\n").unwrap();
        assert_eq!(j.target_list(), vec!["serial=B".to_string(), "serial=C".to_string()]);
        assert_eq!(j.boot_entry(), BootEntry::None);
        for (bad, why) in [
            ("operation = \"clone\"\nsource = \"serial=A\"\ntargets = [\"serial=B\", \"serial=C\"]\nboot_entry = \"first\"\n", "one disk"),
            ("operation = \"clone\"\nsource = \"serial=A\"\ntarget = \"serial=D\"\ntargets = [\"serial=B\"]\n", "not both"),
            ("operation = \"clone\"\nsource = \"serial=A\"\ntargets = [\"serial=B\", \"serial=B\"]\n", "named twice"),
            ("operation = \"clone\"\nsource = \"serial=A\"\ntargets = [\"serial=B\", \"serial=A\"]\n", "the same"),
            ("operation = \"migrate\"\nsource = \"serial=A\"\ntargets = [\"serial=B\", \"serial=C\"]\n", "one target"),
            ("operation = \"clone\"\nsource = \"serial=A\"\n", "missing target"),
        ] {
            let e = format!("{:#}", Job::parse(bad).unwrap_err());
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn migrate_jobs() {
        let j = Job::parse("operation = \"migrate\"\nsource = \"serial=A\"\ntarget = \"serial=B\"\npolicy = \"explicit\"\nsizes = { \"2\" = \"10G\" }\nexclude = [3]\nidentities = \"new\"\n").unwrap();
        assert_eq!(j.migrate_policy().unwrap(), sysclone_layout::migrate::Policy::Explicit(vec![(2, 10 << 30)]));
        let e = Job::parse("operation = \"clone\"\nsource = \"serial=A\"\ntarget = \"serial=B\"\npolicy = \"grow\"\n").unwrap_err().to_string();
        assert!(e.contains("belong to operation"), "{e}");
        let e = Job::parse("operation = \"migrate\"\nsource = \"serial=A\"\ntarget = \"serial=B\"\nsizes = { \"2\" = \"10G\" }\n").unwrap_err().to_string();
        assert!(e.contains("explicit"), "{e}");
    }

    #[test]
    fn save_and_restore_jobs() {
        let img = "image = { disk = \"serial=BACKUP\", partition = 1, path = \"images/monday\" }\n";
        let j = Job::parse(&format!("operation = \"restore\"\ntarget = \"serial=B\"\npolicy = \"grow\"\n{img}")).unwrap();
        assert_eq!(j.image.as_ref().unwrap().path, "images/monday");
        assert_eq!(j.boot_entry(), BootEntry::First);
        Job::parse(&format!("operation = \"save\"\nsource = \"serial=A\"\n{img}")).unwrap();
        for (bad, why) in [
            ("operation = \"save\"\nsource = \"serial=A\"\n".to_string(), "needs image"),
            (format!("operation = \"save\"\nsource = \"serial=A\"\ntarget = \"serial=B\"\n{img}"), "belong to restore"),
            (format!("operation = \"restore\"\nsource = \"serial=A\"\ntarget = \"serial=B\"\n{img}"), "belong to save"),
            (format!("operation = \"restore\"\ntarget = \"serial=BACKUP\"\n{img}"), "the same selector"),
            (format!("operation = \"restore\"\n{img}"), "missing target"),
            ("operation = \"restore\"\ntarget = \"serial=B\"\nimage = { disk = \"serial=C\", partition = 1, path = \"../x\" }\n".to_string(), "inside the partition"),
            ("operation = \"restore\"\ntarget = \"serial=B\"\nimage = { disk = \"serial=C\", partition = 1, path = \"/x\" }\n".to_string(), "relative"),
            (format!("operation = \"clone\"\nsource = \"serial=A\"\ntarget = \"serial=B\"\n{img}"), "belongs to operation"),
        ] {
            let e = format!("{:#}", Job::parse(&bad).unwrap_err());
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = Job::parse("operation = \"clone\"\nsource = \"serial=A\"\ntarget = \"serial=B\"\ncolour = \"red\"\n").unwrap_err().to_string();
        assert!(e.contains("line 4") && e.contains("colour"), "{e}");
        let e = Job::parse("operation = \"clone\"\nsource = \"serial=A\"\ntarget = \"serial=A\"\n").unwrap_err().to_string();
        assert!(e.contains("the same"), "{e}");
        let e = Job::parse("operation = \"clone\"\nsource = \"/dev/sda\"\ntarget = \"serial=A\"\n").unwrap_err().to_string();
        assert!(e.contains("stable selectors"), "{e}");
        let e = Job::parse("operation = \"clone\"\nmode = \"fast\"\nsource = \"serial=A\"\ntarget = \"serial=B\"\n").unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }
}
