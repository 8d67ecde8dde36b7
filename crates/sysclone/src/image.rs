//! `sysclone image build`: the initramfs and the dd-able UEFI USB image.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use sysclone_media::initramfs::{build_initramfs, Compression, InitramfsSpec};
use sysclone_media::usbimage::{build_usb_image, UsbImageSpec};

/// The `minimal` profile: which modules go into the image.
const MINIMAL_PROFILE: &str = include_str!("../../../image/profiles/minimal.conf");

/// Where the job file goes on the USB stick's ESP.
pub const JOB_PATH_ON_ESP: &str = "sysclone/job.toml";

#[derive(Args, Debug)]
pub struct BuildConfig {
    /// Output directory (initramfs.img, sysclone-usb.img)
    #[arg(long)]
    pub out: PathBuf,
    /// Unpacked Debian kernel package (has boot/vmlinuz-* and lib/modules/*), as made by
    /// scripts/fetch-kernel
    #[arg(long, conflicts_with_all = ["kernel", "modules"])]
    pub kernel_dir: Option<PathBuf>,
    /// Kernel image (default: the running kernel's /boot/vmlinuz-RELEASE)
    #[arg(long, requires = "modules")]
    pub kernel: Option<PathBuf>,
    /// Module directory lib/modules/RELEASE of that kernel
    #[arg(long, requires = "kernel")]
    pub modules: Option<PathBuf>,
    /// Job file to put on the medium and name on the kernel command line
    #[arg(long)]
    pub job: Option<PathBuf>,
    /// Extra kernel command line words
    #[arg(long, default_value = "")]
    pub cmdline: String,
    /// The init binary (default: this executable; must be statically linked)
    #[arg(long)]
    pub init_binary: Option<PathBuf>,
    /// UEFI boot loader to install as \EFI\BOOT\BOOTX64.EFI
    #[arg(long, default_value = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi")]
    pub loader: PathBuf,
    /// Build only the initramfs
    #[arg(long)]
    pub initramfs_only: bool,
}

/// Module names of a profile file: one a line, `#` comments.
pub fn profile_modules(text: &str) -> Vec<String> {
    text.lines().map(|l| l.split('#').next().unwrap_or("").trim()).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

fn kernel_from_dir(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let find = |sub: &str, prefix: &str| -> Result<PathBuf> {
        let d = dir.join(sub);
        let mut v: Vec<PathBuf> = fs::read_dir(&d)
            .with_context(|| format!("listing {}", d.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)))
            .collect();
        v.sort();
        v.pop().ok_or_else(|| anyhow!("no {prefix}* in {}", d.display()))
    };
    Ok((find("boot", "vmlinuz-")?, find("lib/modules", "")?))
}

/// Whether an ELF file asks for a dynamic loader (PT_INTERP), i.e. is not static.
fn is_dynamic(path: &Path) -> Result<bool> {
    let b = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if b.len() < 64 || &b[0..4] != b"\x7fELF" || b[4] != 2 {
        bail!("{} is not a 64-bit ELF executable", path.display());
    }
    let u = |o: usize, n: usize| -> u64 { b.get(o..o + n).map(|s| s.iter().rev().fold(0u64, |a, &x| (a << 8) | x as u64)).unwrap_or(0) };
    let (phoff, phentsize, phnum) = (u(32, 8) as usize, u(54, 2) as usize, u(56, 2) as usize);
    Ok((0..phnum).any(|i| u(phoff + i * phentsize, 4) == 3))
}

pub fn build(c: BuildConfig) -> Result<()> {
    let (kernel, modules) = match (&c.kernel_dir, &c.kernel, &c.modules) {
        (Some(d), _, _) => kernel_from_dir(d)?,
        (None, Some(k), Some(m)) => (k.clone(), m.clone()),
        _ => {
            let rel = nix::sys::utsname::uname()?.release().to_string_lossy().into_owned();
            (PathBuf::from(format!("/boot/vmlinuz-{rel}")), PathBuf::from(format!("/lib/modules/{rel}")))
        }
    };
    let kver = modules.file_name().map(|n| n.to_string_lossy().into_owned()).ok_or_else(|| anyhow!("bad modules directory {}", modules.display()))?;
    let init_binary = match c.init_binary {
        Some(p) => p,
        None => std::env::current_exe()?,
    };
    if is_dynamic(&init_binary)? {
        bail!("{} is dynamically linked and cannot run as init; build with --target x86_64-unknown-linux-musl", init_binary.display());
    }
    fs::create_dir_all(&c.out).with_context(|| format!("creating {}", c.out.display()))?;
    let initramfs = c.out.join("initramfs.img");
    let spec = InitramfsSpec {
        init_binary,
        kernel_version: kver.clone(),
        modules_dir: modules.clone(),
        modules: profile_modules(MINIMAL_PROFILE),
        extra_files: Vec::new(),
    };
    let r = build_initramfs(&spec, &initramfs, Compression::Gzip).context("building the initramfs")?;
    println!("initramfs: {} ({} bytes, {} modules, {} bytes of modules, kernel {kver})", initramfs.display(), r.compressed_size, r.modules.len(), r.module_bytes);
    for n in &r.notes {
        println!("  note: {n}");
    }
    if c.initramfs_only {
        return Ok(());
    }
    let mut cmdline = String::from("console=tty0 console=ttyS0,115200 panic=10");
    let mut extra = Vec::new();
    if let Some(job) = &c.job {
        let text = fs::read(job).with_context(|| format!("reading job file {}", job.display()))?;
        sysclone_init::job::Job::parse(std::str::from_utf8(&text)?).with_context(|| format!("checking job file {}", job.display()))?;
        cmdline.push_str(&format!(" sysclone.job={JOB_PATH_ON_ESP}"));
        extra.push((JOB_PATH_ON_ESP.to_string(), text));
    }
    if !c.cmdline.is_empty() {
        cmdline.push(' ');
        cmdline.push_str(&c.cmdline);
    }
    let usb = c.out.join("sysclone-usb.img");
    let spec = UsbImageSpec {
        kernel,
        initramfs,
        loader_efi: c.loader,
        cmdline: cmdline.clone(),
        title: format!("sysclone {}", env!("CARGO_PKG_VERSION")),
        extra_esp_files: extra,
        esp_size: None,
    };
    let u = build_usb_image(&spec, &usb).context("building the USB image")?;
    println!("usb image: {} ({} bytes)", usb.display(), fs::metadata(&usb)?.len());
    println!("  command line: {cmdline}");
    let _ = u;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_parsing() {
        assert_eq!(profile_modules("# c\nnvme\n\n ahci # sata\n"), vec!["nvme", "ahci"]);
        assert!(profile_modules(MINIMAL_PROFILE).contains(&"efivarfs".to_string()));
    }
}
