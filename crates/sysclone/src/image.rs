//! `sysclone image build`: the initramfs and the dd-able UEFI USB image.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use sysclone_media::initramfs::{build_initramfs, Compression, InitramfsSpec};
use sysclone_media::tools::{find_program, host_realpath, ToolBundle, ToolSet, BUSYBOX_APPLETS, DEFAULT_BUSYBOX, DEFAULT_TOOLS};
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
    /// A host program to put in the image with its loader and shared libraries, at the same
    /// path as on the host: a name (looked up in /usr/sbin:/usr/bin:/sbin:/bin) or a path.
    /// Repeatable. A missing program is an error.
    #[arg(long = "tool", value_name = "NAME_OR_PATH")]
    pub tools: Vec<PathBuf>,
    /// Leave out the default tools (resize2fs, e2fsck, tune2fs, ntfsresize, ntfsfix, mkswap),
    /// which are otherwise added when the build host has them
    #[arg(long)]
    pub no_default_tools: bool,
    /// Add a shell: busybox (see --busybox) as /bin/sh, with links for common applets that do
    /// not clash with a --tool or with sysclone's modprobe
    #[arg(long)]
    pub shell: bool,
    /// The busybox binary for the shell (default /bin/busybox, from Debian's busybox-static);
    /// implies --shell
    #[arg(long, value_name = "PATH")]
    pub busybox: Option<PathBuf>,
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

/// The host programs for the image: `--tool`s (each must exist), the default tools the host
/// has (unless `--no-default-tools`) and busybox for `--shell`; prints what went in.
pub fn collect_tools(c: &BuildConfig, root: &Path) -> Result<ToolBundle> {
    let mut set = ToolSet::new(root);
    // Canonical paths of the programs asked for, so a default tool is not listed twice.
    let mut binaries: Vec<String> = Vec::new();
    for t in &c.tools {
        let r = set.add_program(t)?;
        binaries.push(r.binary.clone());
    }
    let mut missing = Vec::new();
    if !c.no_default_tools {
        for t in DEFAULT_TOOLS {
            let Some(found) = find_program(root, t) else {
                missing.push(*t);
                continue;
            };
            if host_realpath(root, &found).is_ok_and(|r| binaries.contains(&format!("/{r}"))) {
                continue;
            }
            if let Err(e) = set.add_program(t) {
                println!("  note: default tool {t} left out: {e:#}");
                missing.push(*t);
            }
        }
    }
    if c.shell || c.busybox.is_some() {
        let bb = c.busybox.as_deref().unwrap_or(Path::new(DEFAULT_BUSYBOX));
        set.add_busybox(bb, BUSYBOX_APPLETS).context("adding the shell (busybox)")?;
    }
    let b = set.finish()?;
    for p in &b.programs {
        let libs = if p.is_static { "static".to_string() } else { format!("{} libraries", p.libraries.len()) };
        println!("tool: {} -> {} ({libs}, {} bytes)", p.request, p.path, p.bytes);
    }
    if !missing.is_empty() {
        println!("  note: default tools not on this host, left out: {}", missing.join(", "));
    }
    if let Some(bb) = &b.busybox {
        println!("shell: {} as /bin/sh, {} links", bb.binary, bb.links.len());
        for (a, why) in &bb.skipped {
            println!("  note: applet {a} not linked: {why}");
        }
    }
    if !b.programs.is_empty() {
        println!("tools: {} programs, {} entries, {} bytes before compression", b.programs.len(), b.files.len(), b.total_bytes);
    }
    Ok(b)
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
    let init_binary = match &c.init_binary {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    if is_dynamic(&init_binary)? {
        bail!("{} is dynamically linked and cannot run as init; build with --target x86_64-unknown-linux-musl", init_binary.display());
    }
    let tools = collect_tools(&c, Path::new("/")).context("collecting host tools for the image")?;
    fs::create_dir_all(&c.out).with_context(|| format!("creating {}", c.out.display()))?;
    let initramfs = c.out.join("initramfs.img");
    let spec = InitramfsSpec {
        init_binary,
        kernel_version: kver.clone(),
        modules_dir: modules.clone(),
        modules: profile_modules(MINIMAL_PROFILE),
        extra_files: tools.into_extra_files(),
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

    fn config(args: &[&str]) -> BuildConfig {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            c: BuildConfig,
        }
        let mut v = vec!["t", "--out", "/nonexistent"];
        v.extend_from_slice(args);
        T::try_parse_from(v).unwrap().c
    }

    #[test]
    fn tool_flags() {
        let c = config(&[]);
        assert!(c.tools.is_empty() && !c.no_default_tools && !c.shell);
        assert_eq!(c.busybox, None);
        let c = config(&["--tool", "efibootmgr", "--tool", "/usr/sbin/sfdisk", "--shell", "--no-default-tools"]);
        assert_eq!(c.tools, [PathBuf::from("efibootmgr"), PathBuf::from("/usr/sbin/sfdisk")]);
        assert!(c.shell && c.no_default_tools);
    }

    #[test]
    fn tools_from_host() {
        // Nothing asked for: nothing in the image.
        let b = collect_tools(&config(&["--no-default-tools"]), Path::new("/")).unwrap();
        assert!(b.files.is_empty() && b.programs.is_empty());
        // A missing --tool is an error naming it.
        let e = collect_tools(&config(&["--tool", "no-such-program-xyz"]), Path::new("/")).unwrap_err();
        assert!(format!("{e:#}").contains("no-such-program-xyz"), "{e:#}");
        // The defaults the host has, once each even when also asked for.
        let b = collect_tools(&config(&["--tool", "resize2fs", "--tool", "/sbin/e2fsck", "--shell"]), Path::new("/")).unwrap();
        let names: Vec<&str> = b.programs.iter().map(|p| p.request.as_str()).collect();
        assert_eq!(names.iter().filter(|n| **n == "resize2fs").count(), 1, "{names:?}");
        assert!(!names.contains(&"e2fsck") && names.contains(&"/sbin/e2fsck"), "{names:?}");
        for t in DEFAULT_TOOLS.iter().filter(|t| **t != "e2fsck") {
            assert_eq!(names.contains(t), find_program(Path::new("/"), t).is_some(), "{t}");
        }
        assert!(b.busybox.is_some());
        assert!(b.files.iter().any(|f| f.path == "usr/sbin/resize2fs" || f.path == "sbin/resize2fs"));
    }
}
