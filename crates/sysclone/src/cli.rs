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
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// List disks, their partitions and roles
    Disks(DisksConfig),
    /// Clone one disk onto another (every byte)
    Clone(CloneConfig),
    /// UEFI boot entries
    #[command(subcommand)]
    Boot(BootCmd),
    /// Build boot media
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
    Exact,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BootEntryArg {
    First,
    Add,
    None,
}

#[derive(Args, Debug)]
pub struct CloneConfig {
    /// Source disk: selector (serial=…, model=…, bus=…) or device path
    #[arg(long)]
    pub source: String,
    /// Target disk: selector or device path; everything on it is overwritten
    #[arg(long)]
    pub target: String,
    /// Copy mode
    #[arg(long, value_enum, default_value = "exact")]
    pub mode: ModeArg,
    /// Disks never to write (selector; repeatable)
    #[arg(long)]
    pub protect: Vec<String>,
    /// Boot entry for the target: first in BootOrder, added, or none
    #[arg(long, value_enum, default_value = "none")]
    pub boot_entry: BootEntryArg,
    /// efivarfs directory
    #[arg(long, default_value = "/sys/firmware/efi/efivars")]
    pub efivars: PathBuf,
    /// Show the plan, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for the typed confirmation (the write guard still applies)
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Subcommand, Debug)]
pub enum BootCmd {
    /// List boot entries like efibootmgr
    List(BootListConfig),
}

#[derive(Args, Debug)]
pub struct BootListConfig {
    /// Show device paths
    #[arg(short, long)]
    pub verbose: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
    /// efivarfs directory
    #[arg(long, default_value = "/sys/firmware/efi/efivars")]
    pub efivars: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum ImageCmd {
    /// Build the initramfs and the dd-able UEFI USB image
    Build(crate::image::BuildConfig),
}

#[derive(Subcommand, Debug)]
pub enum JobCmd {
    /// Check a job file and print what it will do
    Check {
        /// The job file (TOML)
        file: PathBuf,
    },
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Disks(c) => disks(c),
        Cmd::Clone(c) => clone(c),
        Cmd::Boot(BootCmd::List(c)) => boot_list(c),
        Cmd::Image(ImageCmd::Build(c)) => crate::image::build(c),
        Cmd::Job(JobCmd::Check { file }) => job_check(file),
    }
}

fn disks(c: DisksConfig) -> Result<()> {
    let disks = disks_now(None)?;
    if c.json {
        println!("{}", sysclone_disk::discover::to_json(&disks, true));
    } else {
        print!("{}", sysclone_disk::discover::format_table(&disks));
    }
    Ok(())
}

fn clone(c: CloneConfig) -> Result<()> {
    let ModeArg::Exact = c.mode;
    let opts = CloneOptions {
        source: Selector::parse(&c.source)?,
        target: Selector::parse(&c.target)?,
        protect: c.protect.iter().map(|p| Selector::parse(p)).collect::<Result<_>>()?,
        boot_entry: match c.boot_entry {
            BootEntryArg::First => BootEntry::First,
            BootEntryArg::Add => BootEntry::Add,
            BootEntryArg::None => BootEntry::None,
        },
        efivars: c.efivars,
        boot_partuuid: None,
        dry_run: c.dry_run,
        confirm: if c.yes { Confirm::Yes } else { Confirm::Ask },
    };
    let outcome = run_clone(&opts)?;
    if let Some(r) = &outcome.copy {
        println!("cloned {} -> {}: {} bytes, verified, {:.1} MiB/s", r.source, r.target, r.bytes_copied, r.mib_per_second);
    }
    Ok(())
}

fn boot_list(c: BootListConfig) -> Result<()> {
    let vars = sysclone_efi::EfiVars::new(&c.efivars);
    if c.json {
        println!("{}", sysclone_efi::format_json(&vars)?);
    } else {
        print!("{}", sysclone_efi::format_list(&vars, c.verbose)?);
    }
    Ok(())
}

fn job_check(file: PathBuf) -> Result<()> {
    let job = Job::load(&file)?;
    println!("{file:?}: ok");
    println!("  operation: {:?} ({:?})", job.operation, job.mode);
    println!("  source:    {}", job.source);
    println!("  target:    {}", job.target);
    for p in &job.protect {
        println!("  protect:   {p}");
    }
    println!("  boot entry: {:?}; on success: {:?}; on failure: {:?}", job.boot_entry, job.on_success, job.on_failure);
    Ok(())
}
