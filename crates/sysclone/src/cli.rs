//! Command-line interface: argument types and one small function per command.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};
use sysclone_disk::Selector;
use sysclone_init::job::{BootEntry, Job};
use sysclone_init::run::{disks_now, run_clone, CloneOptions, Confirm};

#[derive(Parser, Debug)]
#[command(name = "sysclone", version, about = "Clone, migrate and rescue whole computers", max_term_width = 80, after_long_help = crate::exit::TABLE)]
pub struct Cli {
    /// Quieter: no progress and no detail lines (messages, results and errors stay)
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub quiet: bool,
    /// More detail (boot list: device paths, like efibootmgr -v)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    pub verbose: u8,
    /// How to show progress: a live bar, plain lines, JSON events (on standard error), or none
    #[arg(long, global = true, value_enum, default_value = "auto", help_heading = "Global options")]
    pub progress: ProgressArg,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ProgressArg {
    /// A bar on a terminal, plain lines otherwise
    Auto,
    Bar,
    Plain,
    Json,
    None,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// List disks, their partitions and roles
    Disks(DisksConfig),
    /// Clone one disk onto another (every byte, or used blocks only)
    Clone(CloneConfig),
    /// Move chosen partitions onto a smaller or larger disk, resized
    Migrate(MigrateConfig),
    /// Save a disk's used blocks into an image directory (compressed, checksummed)
    Save(SaveConfig),
    /// Write an image directory back onto a disk of at least the saved disk's size
    Restore(RestoreConfig),
    /// UEFI boot entries (list, create, delete, order, next, timeout, active/inactive)
    #[command(subcommand)]
    Boot(crate::boot_cmd::BootCmd),
    /// Boot media (build, write) and saved disk images (verify, info, export)
    #[command(subcommand)]
    Image(ImageCmd),
    /// Job files
    #[command(subcommand)]
    Job(JobCmd),
    /// Offline jobs (staged with clone/migrate/save --offline): cancel one before it runs
    Offline(OfflineConfig),
    /// The offline job staged for the next boot, and the last offline run's report
    Status(StatusConfig),
    /// Write the man pages and shell completions (for packagers; see scripts/gen-docs)
    #[command(hide = true)]
    GenDocs {
        /// Directory for sysclone.1, sysclone-SUBCOMMAND.1, …
        #[arg(long, value_name = "DIR")]
        man: PathBuf,
        /// Directory for sysclone.bash, _sysclone (zsh) and sysclone.fish
        #[arg(long, value_name = "DIR")]
        completions: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct OfflineConfig {
    /// Remove the staged job (its files under \EFI\sysclone\offline\, its boot entry, BootNext)
    #[arg(long, required = true)]
    pub cancel: bool,
    /// efivarfs directory
    #[arg(long, default_value = "/sys/firmware/efi/efivars")]
    pub efivars: PathBuf,
}

#[derive(Args, Debug)]
pub struct StatusConfig {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// efivarfs directory
    #[arg(long, default_value = "/sys/firmware/efi/efivars")]
    pub efivars: PathBuf,
}

#[derive(Args, Debug)]
pub struct DisksConfig {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
    /// Rescue image: first load drivers for devices plugged in since boot and wait for
    /// their disks
    #[arg(long)]
    pub rescan: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModeArg {
    /// Every byte
    Exact,
    /// Partition table, boot areas, and only the blocks each filesystem uses
    Smart,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BootPolicyArg {
    /// Entries for the target, first in BootOrder
    First,
    /// Entries for the target, BootNext only: boot the clone once, BootOrder stays
    Next,
    /// Entries for the target, BootOrder unchanged
    Add,
    /// Change no EFI variable
    None,
}

#[derive(Args, Debug)]
pub struct CloneConfig {
    /// Source disk: selector (serial=…, model=…, bus=…) or device path
    #[arg(long)]
    pub source: String,
    /// Target disk: selector or device path; everything on it is overwritten. Repeat for a
    /// duplicator: every target written at once, the source read once
    #[arg(long, required = true)]
    pub target: Vec<String>,
    /// Copy mode
    #[arg(long, value_enum, default_value = "exact")]
    pub mode: ModeArg,
    /// Disks never to write (selector; repeatable)
    #[arg(long)]
    pub protect: Vec<String>,
    /// Boot entries for the target after the copy [default: first; none with several targets]
    #[arg(long, value_enum, alias = "boot-entry")]
    pub boot_policy: Option<BootPolicyArg>,
    /// Also delete boot entries whose partition is on no attached disk
    #[arg(long)]
    pub prune_stale: bool,
    /// efivarfs directory
    #[arg(long, default_value = "/sys/firmware/efi/efivars")]
    pub efivars: PathBuf,
    /// Read the target back and compare with what was written
    #[arg(long)]
    pub verify: bool,
    /// Keep a ddrescue-format map here; if it exists, resume the clone it describes
    #[arg(long)]
    pub map: Option<PathBuf>,
    /// After a smart clone, TRIM the target's space that was not written
    #[arg(long)]
    pub discard_unused: bool,
    #[command(flatten)]
    pub flags: WriteFlags,
    #[command(flatten)]
    pub offline: crate::offline::OfflineArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PolicyArg {
    /// Same offsets and sizes
    Keep,
    /// One partition (--grow-part, or the last data partition) takes the difference
    Grow,
    /// Every resizable partition scaled by target/source size
    Proportional,
    /// Sizes given with --size N=SIZE; others keep theirs
    Explicit,
}

#[derive(Args, Debug)]
pub struct MigrateConfig {
    /// Source disk: selector or device path
    #[arg(long)]
    pub source: String,
    /// Target disk: selector or device path; everything on it is overwritten
    #[arg(long)]
    pub target: String,
    /// How partitions are sized on the target
    #[arg(long, value_enum, default_value = "grow")]
    pub policy: PolicyArg,
    #[command(flatten)]
    pub sizing: SizingArgs,
    /// Leave out these source partitions (comma-separated numbers)
    #[arg(long, value_delimiter = ',')]
    pub exclude: Vec<u32>,
    /// New disk and partition GUIDs (both disks stay in one machine)
    #[arg(long)]
    pub new_identities: bool,
    /// Boot entries for the target
    #[arg(long, value_enum, default_value = "first")]
    pub boot_policy: BootPolicyArg,
    /// efivarfs directory
    #[arg(long, default_value = "/sys/firmware/efi/efivars")]
    pub efivars: PathBuf,
    #[command(flatten)]
    pub flags: WriteFlags,
    #[command(flatten)]
    pub offline: crate::offline::OfflineArgs,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once
pub enum ImageCmd {
    /// Build the initramfs, the dd-able USB images (UEFI, Secure Boot, BIOS) and the network
    /// boot bundle
    Build(crate::image::BuildConfig),
    /// Write a USB image onto a stick (through the write guard; read back afterwards)
    Write(crate::image::WriteConfig),
    /// Check a saved image: manifest, every chunk read, decompressed and hashed
    Verify {
        /// The image directory
        dir: PathBuf,
        /// Print the report as JSON on standard output
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Describe a saved image: source, partitions, filesystems, sizes, compression
    Info {
        /// The image directory
        dir: PathBuf,
        /// Print the manifest's description as JSON (without the chunk list)
        #[arg(long)]
        json: bool,
    },
    /// Write a saved image as a sparse raw disk file of the source's size
    Export {
        /// The image directory
        dir: PathBuf,
        /// The raw file to create (must not exist)
        #[arg(long)]
        raw: PathBuf,
        /// Print the report as JSON on standard output
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct SaveConfig {
    /// Disk to save: selector (serial=…, model=…) or device path; only read
    #[arg(long)]
    pub source: String,
    /// Image directory to create (must not hold an image yet)
    #[arg(long)]
    pub to: PathBuf,
    /// Only these partitions (comma-separated numbers); the table and boot area always
    #[arg(long, value_delimiter = ',')]
    pub partitions: Option<Vec<u32>>,
    /// zstd level (1-19)
    #[arg(long, default_value_t = 3)]
    pub level: i32,
    /// Largest data file (e.g. 700M); the default stays under FAT32's 4 GiB file limit
    #[arg(long, default_value = "4000000000")]
    pub split_size: String,
    /// An earlier image of this disk: chunks it holds are referenced, not stored again (it
    /// must stay where it is, relative to the new image, to restore the new one)
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// Largest chunk (4K to 64M; default 4M, or the base image's): chunks are cut on a fixed
    /// grid of this size, so smaller chunks make later incremental images smaller
    #[arg(long)]
    pub chunk_size: Option<String>,
    /// Sign the manifest with this minisign secret key afterwards (runs `minisign -S`, which
    /// asks for the key's password; writes manifest.json.minisig)
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
    /// Show the plan, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON on standard output
    #[arg(long)]
    pub json: bool,
    /// efivarfs directory (with --offline)
    #[arg(long, default_value = "/sys/firmware/efi/efivars")]
    pub efivars: PathBuf,
    #[command(flatten)]
    pub offline: crate::offline::OfflineArgs,
}

#[derive(Args, Debug)]
pub struct RestoreConfig {
    /// Image made by `sysclone save`: a directory or an http(s):// URL
    #[arg(long)]
    pub from: PathBuf,
    /// Target disk: selector or device path; everything on it is overwritten
    #[arg(long)]
    pub target: String,
    /// Disks never to write (selector; repeatable)
    #[arg(long)]
    pub protect: Vec<String>,
    /// Read the target back afterwards and compare with the image's hashes (through the
    /// planner: the partitions that were not resized)
    #[arg(long)]
    pub verify: bool,
    /// Fetch and write only what the target does not already hold (re-imaging a disk that
    /// drifted a little; exact restores)
    #[arg(long)]
    pub delta: bool,
    /// Go on past image chunks that are missing or damaged: their places on the target are
    /// zeroed and listed (exit status 5); without it the first one stops the restore
    #[arg(long)]
    pub rescue: bool,
    /// Layout on the target: exact (as saved), or through the migration planner like
    /// `migrate` (keep, grow, proportional, explicit). Default: exact when the target holds
    /// the image, else grow
    #[arg(long, value_enum)]
    pub policy: Option<RestorePolicyArg>,
    #[command(flatten)]
    pub sizing: SizingArgs,
    /// Boot entries for the target (EFI post-clone policy)
    #[arg(long, value_enum, default_value = "none")]
    pub boot_policy: BootPolicyArg,
    /// efivarfs directory
    #[arg(long, default_value = "/sys/firmware/efi/efivars")]
    pub efivars: PathBuf,
    #[command(flatten)]
    pub trust: TrustArgs,
    #[command(flatten)]
    pub flags: WriteFlags,
}

/// How the migration planner sizes partitions, beyond the policy's name.
#[derive(Args, Debug)]
pub struct SizingArgs {
    /// With --policy grow: the partition number that takes the difference
    #[arg(long)]
    pub grow_part: Option<u32>,
    /// With --policy explicit: partition size, e.g. 2=20G (repeatable)
    #[arg(long = "size", value_name = "N=SIZE")]
    pub sizes: Vec<String>,
    /// Only these partitions of the source (comma-separated numbers)
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<u32>>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RestorePolicyArg {
    /// Byte for byte as saved (the target must hold every partition)
    Exact,
    /// Same offsets and sizes, through the planner
    Keep,
    /// One partition (--grow-part, or the last data partition) takes the difference
    Grow,
    /// Every resizable partition scaled by target/image disk size
    Proportional,
    /// Sizes given with --size N=SIZE; others keep theirs
    Explicit,
}

/// Signature checking (minisign): whose signatures a command accepts.
#[derive(Args, Debug, Default)]
pub struct TrustArgs {
    /// A minisign public key to trust (repeatable). Then a job file must carry a good
    /// signature by one of them (FILE.minisig), and an image's manifest too
    /// (manifest.json.minisig) unless a job pins it (image.sha256)
    #[arg(long, value_name = "KEY.pub")]
    pub trust: Vec<PathBuf>,
}

impl TrustArgs {
    /// The policy: these keys; no key, no check.
    pub fn policy(&self) -> Result<sysclone_net::trust::Policy> {
        Ok(sysclone_net::trust::Policy { keys: sysclone_net::trust::TrustedKeys::from_files(&self.trust)?, ..Default::default() })
    }
}

/// What every writing command asks.
#[derive(Args, Debug)]
pub struct WriteFlags {
    /// Show the plan, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for the typed confirmation (the write guard still applies)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print the report as JSON on standard output
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum JobCmd {
    /// Check a job file and print what it will do
    Check {
        /// The job file (TOML)
        file: PathBuf,
        /// Also find its disks on this machine and print the plan it would carry out
        /// (nothing is written)
        #[arg(long)]
        plan: bool,
        /// Print the checked job as JSON on standard output (with defaults filled in)
        #[arg(long, conflicts_with = "plan")]
        json: bool,
        /// The job's signature [default: FILE.minisig]; checked with --trust
        #[arg(long, value_name = "SIG", requires = "trust")]
        sig: Option<PathBuf>,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Run a job file on this machine, as the rescue image would (writes disks)
    Run {
        /// The job file (TOML)
        file: PathBuf,
        /// Write the job's target disk(s) without asking for their serials (as the
        /// job's confirm = "serial" does)
        #[arg(long)]
        yes: bool,
        /// The job's signature [default: FILE.minisig]; checked with --trust
        #[arg(long, value_name = "SIG", requires = "trust")]
        sig: Option<PathBuf>,
        #[command(flatten)]
        trust: TrustArgs,
    },
}

pub fn run(cli: Cli) -> Result<()> {
    use sysclone_init::console::{set_progress_style, ProgressStyle};
    sysclone_init::console::set_quiet(cli.quiet);
    set_progress_style(match cli.progress {
        ProgressArg::Auto if cli.quiet => ProgressStyle::Quiet,
        ProgressArg::Auto if nix::unistd::isatty(std::io::stderr()).unwrap_or(false) => ProgressStyle::Bar,
        ProgressArg::Auto | ProgressArg::Plain => ProgressStyle::Plain,
        ProgressArg::Bar => ProgressStyle::Bar,
        ProgressArg::Json => ProgressStyle::Json,
        ProgressArg::None => ProgressStyle::Quiet,
    });
    match cli.cmd {
        Cmd::Disks(c) => disks(c),
        Cmd::Clone(c) => clone(c),
        Cmd::Migrate(c) => migrate(c),
        Cmd::Save(c) => save(c),
        Cmd::Restore(c) => restore(c),
        Cmd::Boot(c) => crate::boot_cmd::run(c, cli.verbose > 0),
        Cmd::Image(ImageCmd::Build(c)) => crate::image::build(c),
        Cmd::Image(ImageCmd::Write(c)) => crate::image::write(c),
        Cmd::Image(ImageCmd::Verify { dir, json, trust }) => crate::saved_image::verify(&dir, json, &trust.policy()?),
        Cmd::Image(ImageCmd::Info { dir, json }) => crate::saved_image::info(&dir, json),
        Cmd::Image(ImageCmd::Export { dir, raw, json }) => crate::saved_image::export(&dir, &raw, json),
        Cmd::Job(JobCmd::Check { file, plan, json, sig, trust }) => job_check(file, plan, json, sig, &trust.policy()?),
        Cmd::Job(JobCmd::Run { file, yes, sig, trust }) => job_run(file, yes, sig, &trust.policy()?),
        Cmd::Offline(c) => crate::offline::cancel(&c.efivars),
        Cmd::Status(c) => crate::offline::status(&c.efivars, c.json),
        Cmd::GenDocs { man, completions } => crate::gen_docs::generate(&man, &completions),
    }
}

fn disks(c: DisksConfig) -> Result<()> {
    if c.rescan {
        sysclone_init::kmod::rescan()?;
    }
    let disks = disks_now(None)?;
    if c.json {
        println!("{}", sysclone_disk::discover::to_json(&disks, true));
    } else {
        print!("{}", sysclone_disk::discover::format_table(&disks));
    }
    // What is wrong with a damaged or hostile table is in each disk's `warnings` (the JSON
    // and the table); with --json said on standard error too, for a person watching.
    for d in disks.iter().filter(|_| c.json) {
        for w in &d.warnings {
            eprintln!("warning: {}: {w}", d.name);
        }
    }
    Ok(())
}

fn clone(c: CloneConfig) -> Result<()> {
    if c.offline.offline {
        return clone_offline(c);
    }
    let c_json = c.flags.json;
    let opts = CloneOptions {
        source: Selector::parse(&c.source)?,
        targets: c.target.iter().map(|t| Selector::parse(t)).collect::<Result<_>>()?,
        protect: c.protect.iter().map(|p| Selector::parse(p)).collect::<Result<_>>()?,
        boot_entry: match c.boot_policy {
            Some(b) => b.into(),
            None if c.target.len() > 1 => BootEntry::None,
            None => BootEntry::First,
        },
        prune_stale: c.prune_stale,
        efivars: c.efivars,
        boot_partuuid: None,
        dry_run: c.flags.dry_run,
        confirm: if c.flags.yes { Confirm::Yes } else { Confirm::Ask },
        mode: match c.mode {
            ModeArg::Exact => sysclone_copy::Mode::Exact,
            ModeArg::Smart => sysclone_copy::Mode::Smart,
        },
        verify: c.verify,
        map: c.map,
        discard_unused: c.discard_unused,
    };
    let outcome = run_clone(&opts)?;
    if c_json {
        match &outcome.copy {
            Some(r) => println!("{}", crate::json::doc(r)?),
            None if !outcome.targets.is_empty() => println!("{}", serde_json::to_string(&outcome.targets)?),
            None => {}
        }
    }
    let bad: u64 = outcome.copy.iter().chain(outcome.targets.iter().filter_map(|t| t.report.as_ref())).flat_map(|r| &r.bad_ranges).map(|(_, len)| len).sum();
    bad_sectors(bad, "written")
}

impl From<BootPolicyArg> for BootEntry {
    fn from(b: BootPolicyArg) -> BootEntry {
        match b {
            BootPolicyArg::First => BootEntry::First,
            BootPolicyArg::Next => BootEntry::Next,
            BootPolicyArg::Add => BootEntry::Add,
            BootPolicyArg::None => BootEntry::None,
        }
    }
}

/// A planner policy from `--policy`, `--grow-part` and `--size`.
fn planner_policy(policy: PolicyArg, grow_part: Option<u32>, sizes: &[String]) -> Result<sysclone_layout::migrate::Policy> {
    use sysclone_layout::migrate::Policy;
    if !sizes.is_empty() && !matches!(policy, PolicyArg::Explicit) {
        anyhow::bail!("--size needs --policy explicit");
    }
    Ok(match policy {
        PolicyArg::Keep => Policy::Keep,
        PolicyArg::Grow => Policy::Grow { part: grow_part },
        PolicyArg::Proportional => Policy::Proportional,
        PolicyArg::Explicit => Policy::Explicit(
            sizes
                .iter()
                .map(|s| {
                    let (n, size) = s.split_once('=').ok_or_else(|| anyhow::anyhow!("--size {s:?}: expected N=SIZE, e.g. 2=20G"))?;
                    Ok((n.trim().parse::<u32>().map_err(|_| anyhow::anyhow!("--size {s:?}: {n:?} is not a partition number"))?, sysclone_disk::parse_size(size)?))
                })
                .collect::<Result<Vec<_>>>()?,
        ),
    })
}

fn migrate(c: MigrateConfig) -> Result<()> {
    if c.offline.offline {
        return migrate_offline(c);
    }
    let policy = planner_policy(c.policy, c.sizing.grow_part, &c.sizing.sizes)?;
    let opts = sysclone_init::migrate::MigrateOptions {
        source: Selector::parse(&c.source)?,
        target: Selector::parse(&c.target)?,
        protect: Vec::new(),
        policy,
        include: c.sizing.only,
        exclude: c.exclude,
        new_identities: c.new_identities,
        boot_entry: c.boot_policy.into(),
        efivars: c.efivars,
        boot_partuuid: None,
        dry_run: c.flags.dry_run,
        confirm: if c.flags.yes { Confirm::Yes } else { Confirm::Ask },
        prune_stale: false,
    };
    let report = sysclone_init::migrate::run_migrate(&opts)?;
    if c.flags.json {
        println!("{}", crate::json::doc(&report)?);
    }
    Ok(())
}

fn save(c: SaveConfig) -> Result<()> {
    if c.offline.offline {
        return save_offline(c);
    }
    // An incremental image must cut chunks on its base's grid, or nothing matches.
    let chunk_bytes = match (&c.chunk_size, &c.base) {
        (Some(s), _) => sysclone_disk::parse_size(s)?,
        (None, Some(b)) => sysclone_imagefile::Image::open(b)?.manifest.chunk_bytes,
        (None, None) => sysclone_imagefile::SaveOptions::default().chunk_bytes,
    };
    let req = sysclone_init::imaging::SaveRequest {
        source: Selector::parse(&c.source)?,
        to: c.to,
        partitions: c.partitions,
        options: sysclone_imagefile::SaveOptions { level: c.level, max_file_bytes: sysclone_disk::parse_size(&c.split_size)?, chunk_bytes, base: c.base, ..Default::default() },
        dry_run: c.dry_run,
        confirm_on: None,
    };
    let to = req.to.clone();
    let Some(r) = sysclone_init::imaging::run_save(&req)? else { return Ok(()) };
    if let Some(key) = &c.sign {
        crate::saved_image::sign(&to, key)?;
    }
    if c.json {
        println!("{}", crate::json::doc(&r)?);
    }
    bad_sectors(r.unreadable.iter().map(|(_, len)| len).sum(), "stored")
}

fn restore(c: RestoreConfig) -> Result<()> {
    use sysclone_init::imaging::RestorePolicy;
    let planned = |p| planner_policy(p, c.sizing.grow_part, &c.sizing.sizes).map(RestorePolicy::Plan);
    let policy = match c.policy {
        None | Some(RestorePolicyArg::Exact) if !c.sizing.sizes.is_empty() || c.sizing.grow_part.is_some() => anyhow::bail!("--size and --grow-part need --policy explicit or grow"),
        None => RestorePolicy::Auto,
        Some(RestorePolicyArg::Exact) => RestorePolicy::Exact,
        Some(RestorePolicyArg::Keep) => planned(PolicyArg::Keep)?,
        Some(RestorePolicyArg::Grow) => planned(PolicyArg::Grow)?,
        Some(RestorePolicyArg::Proportional) => planned(PolicyArg::Proportional)?,
        Some(RestorePolicyArg::Explicit) => planned(PolicyArg::Explicit)?,
    };
    let mut req = sysclone_init::imaging::RestoreRequest::new(c.from, Selector::parse(&c.target)?);
    req.protect = c.protect.iter().map(|p| Selector::parse(p)).collect::<Result<_>>()?;
    req.verify = c.verify;
    req.delta = c.delta;
    req.rescue = c.rescue;
    req.confirm = if c.flags.yes { Confirm::Yes } else { Confirm::Ask };
    req.dry_run = c.flags.dry_run;
    req.policy = policy;
    req.include = c.sizing.only;
    req.boot_entry = c.boot_policy.into();
    req.efivars = c.efivars;
    req.trust = c.trust.policy()?;
    let Some(r) = sysclone_init::imaging::run_restore(&req)? else { return Ok(()) };
    if c.flags.json {
        println!("{}", crate::json::doc(&r)?);
    }
    let lost = &r.restore.lost;
    if lost.is_empty() {
        return Ok(());
    }
    let bytes: u64 = lost.iter().map(|l| l.bytes).sum();
    let msg = format!("finished, but {} chunk(s) of the image could not be used ({bytes} bytes, written as zeros; places above)", lost.len());
    Err(sysclone_disk::BadSectors(msg).into())
}

fn policy_name(b: BootPolicyArg) -> &'static str {
    match b {
        BootPolicyArg::First => "first",
        BootPolicyArg::Next => "next",
        BootPolicyArg::Add => "add",
        BootPolicyArg::None => "none",
    }
}

/// The keys every offline job has: it reboots when done, and on failure (nobody is at its
/// console; the machine comes back to the untouched source).
fn offline_job(operation: &str) -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("operation".into(), operation.into());
    t.insert("on_success".into(), "reboot".into());
    t.insert("on_failure".into(), "reboot".into());
    // Confirmed when it was staged (typed, or --yes): the rescue image asks nobody.
    t.insert("confirm".into(), "serial".into());
    t
}

/// `clone --offline`: plan now on the live disks (a dry run through the same guard), confirm
/// now, stage the job for the next boot.
fn clone_offline(c: CloneConfig) -> Result<()> {
    crate::offline::refuse_options(&[("--map", c.map.is_some()), ("--discard-unused", c.discard_unused), ("--prune-stale", c.prune_stale), ("--json", c.flags.json)])?;
    let source = Selector::parse(&c.source)?;
    let targets: Vec<Selector> = c.target.iter().map(|t| Selector::parse(t)).collect::<Result<_>>()?;
    let boot = match c.boot_policy {
        Some(b) => b,
        None if c.target.len() > 1 => BootPolicyArg::None,
        None => BootPolicyArg::First,
    };
    let opts = CloneOptions {
        source: source.clone(),
        targets: targets.clone(),
        protect: c.protect.iter().map(|p| Selector::parse(p)).collect::<Result<_>>()?,
        boot_entry: boot.into(),
        prune_stale: false,
        efivars: c.efivars.clone(),
        boot_partuuid: None,
        dry_run: true,
        confirm: Confirm::Yes,
        mode: match c.mode {
            ModeArg::Exact => sysclone_copy::Mode::Exact,
            ModeArg::Smart => sysclone_copy::Mode::Smart,
        },
        verify: c.verify,
        map: None,
        discard_unused: false,
    };
    run_clone(&opts)?;
    let (src, src_sel) = crate::offline::stable(&source, &[])?;
    let mut job = offline_job("clone");
    job.insert("mode".into(), match c.mode { ModeArg::Exact => "exact", ModeArg::Smart => "smart" }.into());
    job.insert("source".into(), src_sel.clone().into());
    let mut writes = Vec::new();
    let mut sels = Vec::new();
    for t in &targets {
        let (d, s) = crate::offline::stable(t, &[&src.name])?;
        writes.push(d);
        sels.push(s);
    }
    if sels.len() == 1 {
        job.insert("target".into(), sels[0].clone().into());
    } else {
        job.insert("targets".into(), sels.iter().map(|s| toml::Value::from(s.as_str())).collect::<Vec<_>>().into());
    }
    job.insert("protect".into(), crate::offline::protect_list(&c.protect)?.into_iter().map(toml::Value::from).collect::<Vec<_>>().into());
    job.insert("verify".into(), c.verify.into());
    job.insert("boot_entry".into(), policy_name(boot).into());
    confirm_offline(&writes, c.flags.yes, c.flags.dry_run)?;
    let plan = crate::offline::StagePlan { summary: format!("clone {src_sel} -> {}", sels.join(", ")), job, source: src, writes };
    crate::offline::stage(&c.offline, &c.efivars, plan, c.flags.dry_run)
}

/// The typed confirmation is asked now: nobody is at the offline job's console.
fn confirm_offline(writes: &[sysclone_disk::Disk], yes: bool, dry_run: bool) -> Result<()> {
    if yes || dry_run {
        return Ok(());
    }
    for d in writes {
        sysclone_init::run::ask_serial(d)?;
    }
    Ok(())
}

/// `migrate --offline`: like [`clone_offline`].
fn migrate_offline(c: MigrateConfig) -> Result<()> {
    let policy = planner_policy(c.policy, c.sizing.grow_part, &c.sizing.sizes)?;
    let source = Selector::parse(&c.source)?;
    let target = Selector::parse(&c.target)?;
    let opts = sysclone_init::migrate::MigrateOptions {
        source: source.clone(),
        target: target.clone(),
        protect: Vec::new(),
        policy,
        include: c.sizing.only.clone(),
        exclude: c.exclude.clone(),
        new_identities: c.new_identities,
        boot_entry: c.boot_policy.into(),
        efivars: c.efivars.clone(),
        boot_partuuid: None,
        dry_run: true,
        confirm: Confirm::Yes,
        prune_stale: false,
    };
    sysclone_init::migrate::run_migrate(&opts)?;
    let (src, src_sel) = crate::offline::stable(&source, &[])?;
    let (tgt, tgt_sel) = crate::offline::stable(&target, &[&src.name])?;
    let mut job = offline_job("migrate");
    job.insert("source".into(), src_sel.clone().into());
    job.insert("target".into(), tgt_sel.clone().into());
    job.insert("policy".into(), match c.policy { PolicyArg::Keep => "keep", PolicyArg::Grow => "grow", PolicyArg::Proportional => "proportional", PolicyArg::Explicit => "explicit" }.into());
    if let Some(g) = c.sizing.grow_part {
        job.insert("grow_partition".into(), i64::from(g).into());
    }
    if !c.sizing.sizes.is_empty() {
        let mut t = toml::Table::new();
        for s in &c.sizing.sizes {
            let (n, size) = s.split_once('=').ok_or_else(|| anyhow::anyhow!("--size {s:?}: expected N=SIZE"))?;
            t.insert(n.trim().into(), size.trim().into());
        }
        job.insert("sizes".into(), t.into());
    }
    if let Some(o) = &c.sizing.only {
        job.insert("include".into(), o.iter().map(|n| toml::Value::from(i64::from(*n))).collect::<Vec<_>>().into());
    }
    if !c.exclude.is_empty() {
        job.insert("exclude".into(), c.exclude.iter().map(|n| toml::Value::from(i64::from(*n))).collect::<Vec<_>>().into());
    }
    job.insert("identities".into(), if c.new_identities { "new" } else { "keep" }.into());
    job.insert("boot_entry".into(), policy_name(c.boot_policy).into());
    confirm_offline(std::slice::from_ref(&tgt), c.flags.yes, c.flags.dry_run)?;
    let plan = crate::offline::StagePlan { summary: format!("migrate {src_sel} -> {tgt_sel}"), job, source: src, writes: vec![tgt] };
    crate::offline::stage(&c.offline, &c.efivars, plan, c.flags.dry_run)
}

/// `save --offline`: the image directory must be on a mounted partition of another disk; the
/// job names that disk, partition and path, and the rescue image mounts it.
fn save_offline(c: SaveConfig) -> Result<()> {
    let defaults = sysclone_imagefile::SaveOptions::default();
    crate::offline::refuse_options(&[
        ("--partitions", c.partitions.is_some()),
        ("--level", c.level != defaults.level),
        ("--split-size", sysclone_disk::parse_size(&c.split_size)? != defaults.max_file_bytes),
        ("--chunk-size", c.chunk_size.is_some()),
        ("--json", c.json),
    ])?;
    let source = Selector::parse(&c.source)?;
    let req = sysclone_init::imaging::SaveRequest { source: source.clone(), to: c.to.clone(), partitions: None, options: defaults, dry_run: true, confirm_on: None };
    sysclone_init::imaging::run_save(&req)?;
    let (src, src_sel) = crate::offline::stable(&source, &[])?;
    let (disk, part, rel) = sysclone_init::imaging::image_location(&c.to)?;
    if disk.name == src.name {
        anyhow::bail!("{} is on the disk being saved; save to another disk", c.to.display());
    }
    let disks = sysclone_init::run::disks_now(None)?;
    let disk_sel = sysclone_init::offline::stable_selector(&disk, &disks)?;
    let mut image = toml::Table::new();
    image.insert("disk".into(), disk_sel.clone().into());
    image.insert("partition".into(), i64::from(part).into());
    image.insert("path".into(), rel.clone().into());
    if let Some(b) = &c.base {
        let (bdisk, bpart, brel) = sysclone_init::imaging::image_location(b)?;
        if bdisk.name != disk.name || bpart != part {
            anyhow::bail!("--base {} must be on the same partition as --to with --offline", b.display());
        }
        image.insert("base".into(), brel.into());
    }
    let mut job = offline_job("save");
    job.insert("source".into(), src_sel.clone().into());
    job.insert("image".into(), image.into());
    let plan = crate::offline::StagePlan { summary: format!("save {src_sel} -> {disk_sel} partition {part}: {rel}"), job, source: src, writes: vec![disk] };
    crate::offline::stage(&c.offline, &c.efivars, plan, c.dry_run)
}

/// A job file, held to `policy` (its signature: `sig`, or FILE.minisig) before it is parsed.
/// Says how it passed when there was something to check.
fn load_job(file: &std::path::Path, sig: Option<PathBuf>, policy: &sysclone_net::trust::Policy) -> Result<(Job, Option<sysclone_net::trust::Checked>)> {
    use anyhow::Context;
    let bytes = std::fs::read(file).with_context(|| format!("reading job file {}", file.display()))?;
    let checked = if policy.wants_signature() {
        let sig = sig.unwrap_or_else(|| PathBuf::from(format!("{}{}", file.display(), sysclone_net::trust::SIG_SUFFIX)));
        let s = sysclone_net::trust::read_signature(&sig)?;
        Some(policy.check(&format!("job {}", file.display()), &bytes, s.as_deref())?)
    } else {
        None
    };
    let text = String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("job file {} is not UTF-8 text", file.display()))?;
    let job = Job::parse(&text).with_context(|| format!("job file {}", file.display()))?;
    Ok((job, checked))
}

fn job_run(file: PathBuf, yes: bool, sig: Option<PathBuf>, policy: &sysclone_net::trust::Policy) -> Result<()> {
    let (mut job, checked) = load_job(&file, sig, policy)?;
    if let Some(c) = checked {
        sysclone_init::console::say(&format!("job {}: {c}", file.display()));
    }
    // --yes stands for the typed confirmation, as the job's own `confirm = "serial"` does;
    // without either, each target is shown and its serial asked for on the terminal.
    if yes {
        job.confirm = Some(sysclone_init::job::JobConfirm::Serial);
    }
    let json = sysclone_init::job::run(&job, std::path::Path::new(sysclone_efi::vars::DEFAULT_EFIVARS_DIR), None, false, policy)?;
    println!("{json}");
    Ok(())
}

/// Exit status 5 after a copy that finished with unreadable source sectors (the report, with
/// their places, is already printed).
fn bad_sectors(bytes: u64, how: &str) -> Result<()> {
    if bytes == 0 {
        return Ok(());
    }
    let msg = format!("finished, but {} of the source could not be read ({bytes} bytes, {how} as zeros; places above)", sysclone_disk::human_bytes(bytes));
    Err(sysclone_disk::BadSectors(msg).into())
}

fn job_check(file: PathBuf, plan: bool, json: bool, sig: Option<PathBuf>, policy: &sysclone_net::trust::Policy) -> Result<()> {
    let (job, checked) = load_job(&file, sig, policy)?;
    if json {
        let signature = checked.as_ref().map(|c| serde_json::json!({ "key_id": c.signed.as_ref().map(|s| &s.key_id), "trusted_comment": c.signed.as_ref().map(|s| &s.trusted_comment), "sha256": c.sha256 }));
        let doc = serde_json::json!({ "file": file, "job": job, "targets": job.target_list(), "boot_entry": job.boot_entry(), "signature": signature });
        println!("{}", crate::json::doc(&doc)?);
        return Ok(());
    }
    println!("{}: ok", file.display());
    if let Some(c) = &checked {
        println!("  signature: {c}");
    }
    println!("  operation: {:?} ({:?})", job.operation, job.mode);
    if !job.source.is_empty() {
        println!("  source:    {}", job.source);
    }
    for t in job.target_list().iter().filter(|t| !t.is_empty()) {
        println!("  target:    {t}");
    }
    if let Some(i) = &job.image {
        match &i.url {
            Some(u) => println!("  image:     {u}{}", i.sha256.as_deref().map(|h| format!(" (manifest sha256 {h})")).unwrap_or_default()),
            None => println!("  image:     {} partition {}: {}{}", i.disk, i.partition, i.path, i.base.as_deref().map(|b| format!(" (base {b})")).unwrap_or_default()),
        }
    }
    for p in &job.protect {
        println!("  protect:   {p}");
    }
    println!("  boot entry: {:?}; on success: {:?}; on failure: {:?}", job.boot_entry(), job.on_success, job.on_failure);
    if plan {
        println!("on this machine (nothing is written):");
        sysclone_init::job::run(&job, std::path::Path::new(sysclone_efi::vars::DEFAULT_EFIVARS_DIR), None, true, policy)?;
    }
    Ok(())
}
