//! Command-line interface: argument types and one small function per command.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};
use sysclone_disk::Selector;
use sysclone_init::job::{BootEntry, Job};
use sysclone_init::run::{disks_now, run_clone, CloneOptions, Confirm};

#[derive(Parser, Debug)]
#[command(name = "sysclone", version, about = "Clone, migrate and rescue whole computers")]
pub struct Cli {
    /// How to show progress: a live bar, plain lines, JSON events (on standard error), or none
    #[arg(long, global = true, value_enum, default_value = "auto")]
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
}

#[derive(Args, Debug)]
pub struct DisksConfig {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
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
    /// With --policy grow: the partition number that takes the difference
    #[arg(long)]
    pub grow_part: Option<u32>,
    /// With --policy explicit: partition size, e.g. 2=20G (repeatable)
    #[arg(long = "size", value_name = "N=SIZE")]
    pub sizes: Vec<String>,
    /// Only these source partitions (comma-separated numbers)
    #[arg(long, value_delimiter = ',')]
    pub only: Option<Vec<u32>>,
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
    /// Show the plan, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON on standard output
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RestoreConfig {
    /// Image directory made by `sysclone save`
    #[arg(long)]
    pub from: PathBuf,
    /// Target disk: selector or device path; everything on it is overwritten
    #[arg(long)]
    pub target: String,
    /// Disks never to write (selector; repeatable)
    #[arg(long)]
    pub protect: Vec<String>,
    /// Read the target back afterwards and compare with the image's hashes
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub flags: WriteFlags,
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
    },
}

pub fn run(cli: Cli) -> Result<()> {
    use sysclone_init::console::{set_progress_style, ProgressStyle};
    set_progress_style(match cli.progress {
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
        Cmd::Boot(c) => crate::boot_cmd::run(c),
        Cmd::Image(ImageCmd::Build(c)) => crate::image::build(c),
        Cmd::Image(ImageCmd::Write(c)) => crate::image::write(c),
        Cmd::Image(ImageCmd::Verify { dir, json }) => crate::saved_image::verify(&dir, json),
        Cmd::Image(ImageCmd::Info { dir, json }) => crate::saved_image::info(&dir, json),
        Cmd::Image(ImageCmd::Export { dir, raw }) => crate::saved_image::export(&dir, &raw),
        Cmd::Job(JobCmd::Check { file, plan }) => job_check(file, plan),
    }
}

fn disks(c: DisksConfig) -> Result<()> {
    let disks = disks_now(None)?;
    if c.json {
        println!("{}", sysclone_disk::discover::to_json(&disks, true));
    } else {
        print!("{}", sysclone_disk::discover::format_table(&disks));
    }
    // A damaged or hostile table is listed as the kernel and the gpt crate see it; say what
    // is wrong with it (on standard error, so the JSON stays as it is).
    for d in disks.iter().filter(|d| d.table == "gpt") {
        if let Ok(mut f) = std::fs::File::open(&d.path) {
            for p in sysclone_layout::check_table(&mut f, d.logical_sector, d.size_bytes) {
                eprintln!("warning: {}: {p}", d.name);
            }
        }
    }
    Ok(())
}

fn clone(c: CloneConfig) -> Result<()> {
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
            Some(r) => println!("{}", serde_json::to_string(r)?),
            None if !outcome.targets.is_empty() => println!("{}", serde_json::to_string(&outcome.targets)?),
            None => {}
        }
    }
    Ok(())
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

fn migrate(c: MigrateConfig) -> Result<()> {
    use sysclone_layout::migrate::Policy;
    let policy = match c.policy {
        PolicyArg::Keep => Policy::Keep,
        PolicyArg::Grow => Policy::Grow { part: c.grow_part },
        PolicyArg::Proportional => Policy::Proportional,
        PolicyArg::Explicit => Policy::Explicit(
            c.sizes
                .iter()
                .map(|s| {
                    let (n, size) = s.split_once('=').ok_or_else(|| anyhow::anyhow!("--size {s:?}: expected N=SIZE, e.g. 2=20G"))?;
                    Ok((n.trim().parse::<u32>().map_err(|_| anyhow::anyhow!("--size {s:?}: {n:?} is not a partition number"))?, sysclone_disk::parse_size(size)?))
                })
                .collect::<Result<Vec<_>>>()?,
        ),
    };
    if !c.sizes.is_empty() && !matches!(c.policy, PolicyArg::Explicit) {
        anyhow::bail!("--size needs --policy explicit");
    }
    let opts = sysclone_init::migrate::MigrateOptions {
        source: Selector::parse(&c.source)?,
        target: Selector::parse(&c.target)?,
        protect: Vec::new(),
        policy,
        include: c.only,
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
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}

fn save(c: SaveConfig) -> Result<()> {
    let req = sysclone_init::imaging::SaveRequest {
        source: Selector::parse(&c.source)?,
        to: c.to,
        partitions: c.partitions,
        options: sysclone_imagefile::SaveOptions { level: c.level, max_file_bytes: sysclone_disk::parse_size(&c.split_size)?, ..Default::default() },
        dry_run: c.dry_run,
    };
    if let (Some(r), true) = (sysclone_init::imaging::run_save(&req)?, c.json) {
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(())
}

fn restore(c: RestoreConfig) -> Result<()> {
    let req = sysclone_init::imaging::RestoreRequest {
        from: c.from,
        target: Selector::parse(&c.target)?,
        protect: c.protect.iter().map(|p| Selector::parse(p)).collect::<Result<_>>()?,
        threads: sysclone_imagefile::pool::default_threads(),
        verify: c.verify,
        confirm: if c.flags.yes { Confirm::Yes } else { Confirm::Ask },
        dry_run: c.flags.dry_run,
    };
    if let (Some(r), true) = (sysclone_init::imaging::run_restore(&req)?, c.flags.json) {
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(())
}

fn job_check(file: PathBuf, plan: bool) -> Result<()> {
    let job = Job::load(&file)?;
    println!("{}: ok", file.display());
    println!("  operation: {:?} ({:?})", job.operation, job.mode);
    println!("  source:    {}", job.source);
    for t in job.target_list() {
        println!("  target:    {t}");
    }
    for p in &job.protect {
        println!("  protect:   {p}");
    }
    println!("  boot entry: {:?}; on success: {:?}; on failure: {:?}", job.boot_entry(), job.on_success, job.on_failure);
    if plan {
        println!("on this machine (nothing is written):");
        sysclone_init::job::run(&job, std::path::Path::new(sysclone_efi::vars::DEFAULT_EFIVARS_DIR), None, true)?;
    }
    Ok(())
}
