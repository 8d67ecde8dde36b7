//! `sysclone image build`: the initramfs, the dd-able USB images (UEFI with systemd-boot,
//! UEFI Secure Boot with Debian's signed shim + GRUB, both also booting on BIOS through GRUB)
//! and the network boot bundle; `sysclone image write`: a USB image onto a stick, through the
//! write guard.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use sha2::{Digest, Sha256};
use sysclone_media::grub::{bios_unavailable, make_core_img};
use sysclone_media::initramfs::{build_initramfs, Compression, InitramfsReport, InitramfsSpec};
use sysclone_media::pxe::{write_bundle, PxeSpec};
use sysclone_media::tools::{find_program, host_realpath, ToolBundle, ToolSet, BUSYBOX_APPLETS, DEFAULT_BUSYBOX, DEFAULT_TOOLS};
use sysclone_media::usbimage::{build_usb_image, BiosBoot, SignedChain, UsbIds, UsbImageSpec};

/// Where the job file goes on the USB stick's ESP.
pub const JOB_PATH_ON_ESP: &str = "sysclone/job.toml";

/// Debian's signed boot files and GRUB for BIOS, below `--boot-files DIR`.
pub const SHIM: &str = "usr/lib/shim/shimx64.efi.signed";
pub const MOK_MANAGER: &str = "usr/lib/shim/mmx64.efi.signed";
pub const GRUB_EFI: &str = "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed";
pub const GRUB_NET: &str = "usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed";
pub const GRUB_PC: &str = "usr/lib/grub/i386-pc";

#[derive(Args, Debug)]
pub struct BuildConfig {
    /// Output directory (initramfs.img, sysclone-usb.img, sysclone-usb-secureboot.img, pxe/,
    /// SHA256SUMS); optional with --list
    #[arg(long, required_unless_present = "list")]
    pub out: Option<PathBuf>,
    /// Unpacked Debian kernel package (has boot/vmlinuz-* and lib/modules/*), as made by
    /// scripts/fetch-kernel
    #[arg(long, conflicts_with_all = ["kernel", "modules"])]
    pub kernel_dir: Option<PathBuf>,
    /// Kernel image (default: the running kernel's /boot/vmlinuz-RELEASE)
    #[arg(long, requires = "modules")]
    pub kernel: Option<PathBuf>,
    /// Module directory lib/modules/RELEASE of that kernel (.ko, .ko.xz, .ko.zst, .ko.gz)
    #[arg(long, requires = "kernel")]
    pub modules: Option<PathBuf>,
    /// Which modules go in: a built-in profile (minimal, generic; see image/profiles/) or a
    /// profile file
    #[arg(long, default_value = "minimal", value_name = "NAME|FILE")]
    pub profile: String,
    /// Show every module (and why it is in), the firmware and the notes; without --out, build
    /// nothing else
    #[arg(long)]
    pub list: bool,
    /// With --list and no --out: print the listing as JSON (modules, firmware, notes, sizes)
    #[arg(long, requires = "list", conflicts_with = "out")]
    pub json: bool,
    /// Initramfs compression: zstd (level 19), zstd:LEVEL, gzip or none
    #[arg(long, default_value = "zstd")]
    pub compression: String,
    /// Directory with firmware files (e.g. an unpacked Debian firmware package's
    /// lib/firmware); repeatable, searched in order. Default: the kernel package's
    /// lib/firmware and /lib/firmware
    #[arg(long = "firmware-dir", value_name = "DIR")]
    pub firmware_dirs: Vec<PathBuf>,
    /// Put no firmware in the image
    #[arg(long)]
    pub no_firmware: bool,
    /// Job file to put on the medium and name on the kernel command line
    #[arg(long)]
    pub job: Option<PathBuf>,
    /// Extra kernel command line words
    #[arg(long, default_value = "")]
    pub cmdline: String,
    /// A lab CA (PEM) the rescue system trusts for HTTPS besides the usual roots; put in
    /// the initramfs as /etc/sysclone/ca.pem and named by sysclone.ca=
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// A minisign public key the rescue system trusts (repeatable): put in the initramfs
    /// under /etc/sysclone/trust/; then every job must be signed by one of them and every
    /// image signed or pinned (docs/network.md)
    #[arg(long, value_name = "KEY.pub")]
    pub trust: Vec<PathBuf>,
    /// Pins are not enough: jobs and images must carry a signature by a --trust key
    #[arg(long, requires = "trust")]
    pub require_signature: bool,
    /// The init binary (default: this executable; must be statically linked)
    #[arg(long)]
    pub init_binary: Option<PathBuf>,
    /// UEFI boot loader to install as \EFI\BOOT\BOOTX64.EFI
    #[arg(long, default_value = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi")]
    pub loader: PathBuf,
    /// Root below which Debian's boot files are found: shim-signed (usr/lib/shim/),
    /// grub-efi-amd64-signed (usr/lib/grub/x86_64-efi-signed/), shim-helpers-amd64-signed
    /// (mmx64) and grub-pc-bin (usr/lib/grub/i386-pc/, else the host's). `/` when the
    /// packages are installed; scripts/fetch-bootloaders unpacks them into a cache
    #[arg(long, default_value = "/", value_name = "DIR")]
    pub boot_files: PathBuf,
    /// Do not build the Secure Boot image (built when shim and signed GRUB are found)
    #[arg(long)]
    pub no_secure_boot: bool,
    /// No BIOS boot on the USB images (added when grub-mkimage and grub-pc-bin are found)
    #[arg(long)]
    pub no_bios: bool,
    /// Do not write the network boot bundle (pxe/)
    #[arg(long)]
    pub no_pxe: bool,
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

/// `sysclone image write`: a USB image onto a stick.
#[derive(Args, Debug)]
pub struct WriteConfig {
    /// The stick: selector (serial=…, by-id=…, model=…) or device path; everything on it is
    /// overwritten
    #[arg(long)]
    pub to: String,
    /// The image to write
    #[arg(default_value = "sysclone-usb.img")]
    pub image: PathBuf,
    /// Do not ask for the typed confirmation (the write guard still applies)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Do not read the stick back to compare
    #[arg(long)]
    pub no_verify: bool,
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
        eprintln!("tool: {} -> {} ({libs}, {} bytes)", p.request, p.path, p.bytes);
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
        eprintln!("tools: {} programs, {} entries, {} bytes before compression", b.programs.len(), b.files.len(), b.total_bytes);
    }
    Ok(b)
}

/// Whether a PE image carries an Authenticode signature (a certificate table).
fn pe_is_signed(data: &[u8]) -> bool {
    let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| data.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let Some(pe) = u32_at(0x3c).map(|v| v as usize) else { return false };
    if data.get(pe..pe + 4) != Some(b"PE\0\0") {
        return false;
    }
    let opt = pe + 24;
    let dirs = match u16_at(opt) {
        Some(0x20b) => opt + 112,
        Some(0x10b) => opt + 96,
        _ => return false,
    };
    u32_at(dirs + 4 * 8 + 4).is_some_and(|size| size > 0)
}

/// `SOURCE_DATE_EPOCH`, when set: build time of everything, and seed of the identifiers.
fn source_date_epoch() -> Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => Ok(Some(v.trim().parse().with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"))?)),
        _ => Ok(None),
    }
}

fn sha256_file(p: &Path) -> Result<String> {
    let mut f = fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

/// The listing `--list` prints: each module with why it is there, the firmware, the notes.
fn print_listing(r: &InitramfsReport, profile: &sysclone_media::profile::Profile) {
    println!("profile {} (from {})", profile.name, profile.sources.join(", "));
    println!("{:<24} {:>9}  {:<56} why", "module", "bytes", "path");
    for m in &r.modules {
        let why = match (&m.reason, &m.wanted_by) {
            (sysclone_media::Reason::Wanted, Some(w)) if w.replace('-', "_") != m.name => format!("wanted ({w})"),
            (reason, _) => reason.to_string(),
        };
        let path = if m.relpath == m.source_relpath { m.relpath.clone() } else { format!("{} (from {})", m.relpath, m.source_relpath.rsplit('/').next().unwrap_or("")) };
        println!("{:<24} {:>9}  {:<56} {why}", m.name, m.size, path);
    }
    for f in &r.firmware {
        println!("firmware {:<54} {:>9}  for {} (from {})", f.name, f.source_size, f.wanted_by.join(", "), f.source.display());
    }
    if !r.firmware_missing.is_empty() {
        println!("firmware not found ({} files; drivers list every revision they can use, most are optional):", r.firmware_missing.len());
        for (n, mods) in &r.firmware_missing {
            println!("  {n} (for {})", mods.join(", "));
        }
    }
    for n in &r.notes {
        println!("note: {n}");
    }
}

/// HTTPS trust for the rescue system: the build host's CA bundle (used beside a lab CA) and
/// the lab CA itself.
fn network_files(c: &BuildConfig) -> Result<Vec<(String, Vec<u8>, u32)>> {
    let mut v = Vec::new();
    if let Ok(b) = fs::read(sysclone_net::http::CA_BUNDLE) {
        v.push((sysclone_net::http::CA_BUNDLE.trim_start_matches('/').to_string(), b, 0o644));
    }
    if let Some(ca) = &c.ca {
        let pem = fs::read(ca).with_context(|| format!("reading the lab CA {}", ca.display()))?;
        sysclone_net::Client::new(Some(&pem), None).with_context(|| format!("the lab CA {}", ca.display()))?;
        v.push(("etc/sysclone/ca.pem".into(), pem, 0o644));
    }
    let dir = sysclone_net::trust::TRUST_DIR.trim_start_matches('/');
    for k in sysclone_net::trust::TrustedKeys::from_files(&c.trust)?.keys() {
        v.push((format!("{dir}/{}.pub", k.id), k.file_text().into_bytes(), 0o644));
    }
    if c.require_signature {
        v.push((sysclone_net::trust::REQUIRE_SIGNATURE_FILE.trim_start_matches('/').to_string(), Vec::new(), 0o644));
    }
    Ok(v)
}

/// The job's signature (`JOB.minisig`), when there is one; with trusted keys it must be
/// there and good, or the rescue system would refuse the job.
fn job_signature(c: &BuildConfig, job: &Path, text: &[u8]) -> Result<Option<Vec<u8>>> {
    let at = PathBuf::from(format!("{}{}", job.display(), sysclone_net::trust::SIG_SUFFIX));
    let sig = sysclone_net::trust::read_signature(&at)?;
    if !c.trust.is_empty() {
        let policy = sysclone_net::trust::Policy { keys: sysclone_net::trust::TrustedKeys::from_files(&c.trust)?, pins: Vec::new(), require_signature: c.require_signature };
        let ok = policy.check(&format!("job {}", job.display()), text, sig.as_deref()).with_context(|| format!("the image trusts signing keys, so its job needs a good signature (minisign -Sm {})", job.display()))?;
        println!("job {}: {ok}", job.display());
    }
    Ok(sig)
}

pub fn build(c: BuildConfig) -> Result<()> {
    let t_start = Instant::now();
    let (kernel, modules) = match (&c.kernel_dir, &c.kernel, &c.modules) {
        (Some(d), _, _) => kernel_from_dir(d)?,
        (None, Some(k), Some(m)) => (k.clone(), m.clone()),
        _ => {
            let rel = nix::sys::utsname::uname()?.release().to_string_lossy().into_owned();
            (PathBuf::from(format!("/boot/vmlinuz-{rel}")), PathBuf::from(format!("/lib/modules/{rel}")))
        }
    };
    let kver = modules.file_name().map(|n| n.to_string_lossy().into_owned()).ok_or_else(|| anyhow!("bad modules directory {}", modules.display()))?;
    let profile = sysclone_media::profile::load(&c.profile)?;
    let compression = Compression::parse(&c.compression)?;
    let epoch = source_date_epoch()?;
    let init_binary = match &c.init_binary {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    if is_dynamic(&init_binary)? {
        bail!("{} is dynamically linked and cannot run as init; build with --target x86_64-unknown-linux-musl", init_binary.display());
    }
    let firmware_dirs = if c.no_firmware {
        Vec::new()
    } else if c.firmware_dirs.is_empty() {
        sysclone_media::firmware::default_dirs(c.kernel_dir.as_deref())
    } else {
        c.firmware_dirs.clone()
    };
    let tools = collect_tools(&c, Path::new("/")).context("collecting host tools for the image")?;
    let spec = InitramfsSpec {
        init_binary,
        kernel_version: kver.clone(),
        modules_dir: modules.clone(),
        modules: profile.entries.clone(),
        firmware_dirs,
        extra_files: network_files(&c)?.into_iter().chain(tools.into_extra_files()).collect(),
    };
    let Some(out) = c.out.clone() else {
        // --list alone: the closure and firmware, nothing kept.
        let tmp = std::env::temp_dir().join(format!("sysclone-list-{}.cpio", std::process::id()));
        let r = build_initramfs(&spec, &tmp, Compression::None);
        let _ = fs::remove_file(&tmp);
        let r = r.context("computing the image contents")?;
        if c.json {
            let doc = serde_json::json!({ "profile": profile.name, "profile_sources": profile.sources, "kernel": kver, "initramfs": r });
            println!("{}", crate::json::doc(&doc)?);
            return Ok(());
        }
        print_listing(&r, &profile);
        println!("{} modules ({} bytes), {} firmware files ({} bytes), {} bytes before compression", r.modules.len(), r.module_bytes, r.firmware.len(), r.firmware_bytes, r.uncompressed_size);
        return Ok(());
    };
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let initramfs = out.join("initramfs.img");
    let t0 = Instant::now();
    let r = build_initramfs(&spec, &initramfs, compression).context("building the initramfs")?;
    if c.list {
        print_listing(&r, &profile);
    }
    println!(
        "initramfs: {} ({} bytes {compression}, {} before; profile {}: {} modules, {} bytes; {} firmware files, {} bytes; kernel {kver}; {:.1} s)",
        initramfs.display(),
        r.compressed_size,
        r.uncompressed_size,
        profile.name,
        r.modules.len(),
        r.module_bytes,
        r.firmware.len(),
        r.firmware_bytes,
        t0.elapsed().as_secs_f64()
    );
    if !r.firmware_missing.is_empty() && !c.list {
        println!("  note: {} firmware files named by the modules were not found (--list shows them)", r.firmware_missing.len());
    }
    if !c.list {
        for n in &r.notes {
            println!("  note: {n}");
        }
    }
    let mut outputs = vec![initramfs.clone()];
    if c.initramfs_only {
        write_sums(&out, &outputs)?;
        return Ok(());
    }

    let mut cmdline = String::from("console=tty0 console=ttyS0,115200 panic=10");
    if c.ca.is_some() {
        cmdline.push_str(" sysclone.ca=/etc/sysclone/ca.pem");
    }
    let mut extra = Vec::new();
    let mut job_text = None;
    let mut job_sig = None;
    if let Some(job) = &c.job {
        let text = fs::read(job).with_context(|| format!("reading job file {}", job.display()))?;
        sysclone_init::job::Job::parse(std::str::from_utf8(&text)?).with_context(|| format!("checking job file {}", job.display()))?;
        extra.push((JOB_PATH_ON_ESP.to_string(), text.clone()));
        job_sig = job_signature(&c, job, &text)?;
        if let Some(sig) = &job_sig {
            extra.push((format!("{JOB_PATH_ON_ESP}{}", sysclone_net::trust::SIG_SUFFIX), sig.clone()));
        }
        job_text = Some(text);
    }
    if !c.cmdline.is_empty() {
        cmdline.push(' ');
        cmdline.push_str(&c.cmdline);
    }
    let usb_cmdline = match job_text {
        Some(_) => format!("{cmdline} sysclone.job={JOB_PATH_ON_ESP}"),
        None => cmdline.clone(),
    };
    let title = format!("sysclone {}", env!("CARGO_PKG_VERSION"));

    // Identifiers and time: from SOURCE_DATE_EPOCH and the inputs when it is set (the same
    // inputs then give the same bytes), random and now otherwise.
    let mut seed = Sha256::new();
    if let Some(e) = epoch {
        seed.update(e.to_string().as_bytes());
        seed.update(usb_cmdline.as_bytes());
        for p in [&kernel, &initramfs] {
            seed.update(sha256_file(p)?.as_bytes());
        }
        if let Some(j) = &c.job {
            seed.update(sha256_file(j)?.as_bytes());
        }
    }
    let seed = seed.finalize();
    let ids_for = |name: &str| -> UsbIds {
        match epoch {
            Some(_) => UsbIds::from_seed(&[&seed[..], name.as_bytes()].concat()),
            None => UsbIds::random(),
        }
    };

    // GRUB for BIOS: below --boot-files, else the host's grub-pc-bin (grub-mkimage runs here).
    let grub_pc = [c.boot_files.join(GRUB_PC), Path::new("/").join(GRUB_PC)].into_iter().find(|d| d.join("boot.img").is_file()).unwrap_or_else(|| c.boot_files.join(GRUB_PC));
    let bios_note = if c.no_bios { Some("--no-bios".to_string()) } else { bios_unavailable(&grub_pc) };
    let bios_for = |ids: &UsbIds| -> Result<Option<BiosBoot>> {
        if bios_note.is_some() {
            return Ok(None);
        }
        let boot_img = fs::read(grub_pc.join("boot.img"))?;
        let core_img = make_core_img(&grub_pc, &ids.fat_uuid()).context("making GRUB's core image for BIOS boot")?;
        Ok(Some(BiosBoot { boot_img, core_img }))
    };

    let t1 = Instant::now();
    let usb = out.join("sysclone-usb.img");
    let ids = ids_for("sysclone-usb.img");
    let uspec = UsbImageSpec {
        kernel: kernel.clone(),
        initramfs: initramfs.clone(),
        loader_efi: c.loader.clone(),
        cmdline: usb_cmdline.clone(),
        title: title.clone(),
        extra_esp_files: extra.clone(),
        esp_size: None,
        secure_boot: None,
        bios: bios_for(&ids)?,
        ids: Some(ids),
        timestamp: epoch,
    };
    let u = build_usb_image(&uspec, &usb).context("building the USB image")?;
    println!(
        "usb image: {} ({} bytes; UEFI systemd-boot{}; ESP PARTUUID {}; {:.1} s)",
        usb.display(),
        u.image_size,
        if u.bios_start_byte.is_some() { " + BIOS GRUB" } else { "" },
        u.part_guid,
        t1.elapsed().as_secs_f64()
    );
    println!("  command line: {usb_cmdline}");
    if let Some(n) = &bios_note {
        println!("  note: no BIOS boot: {n}");
    }
    outputs.push(usb);

    let shim = c.boot_files.join(SHIM);
    let grub = c.boot_files.join(GRUB_EFI);
    if c.no_secure_boot {
    } else if !shim.is_file() || !grub.is_file() {
        println!(
            "  note: no Secure Boot image: {} or {} missing (apt-get install shim-signed grub-efi-amd64-signed, or scripts/fetch-bootloaders and --boot-files)",
            shim.display(),
            grub.display()
        );
    } else {
        if !pe_is_signed(&fs::read(&kernel)?) {
            println!("  note: {} carries no signature: the Secure Boot image will only boot with Secure Boot off", kernel.display());
        }
        let t2 = Instant::now();
        let sb = out.join("sysclone-usb-secureboot.img");
        let ids = ids_for("sysclone-usb-secureboot.img");
        let mm = c.boot_files.join(MOK_MANAGER);
        let sspec = UsbImageSpec {
            secure_boot: Some(SignedChain { shim: shim.clone(), grub, mok_manager: mm.is_file().then_some(mm) }),
            bios: bios_for(&ids)?,
            ids: Some(ids),
            ..uspec.clone()
        };
        let s = build_usb_image(&sspec, &sb).context("building the Secure Boot USB image")?;
        println!(
            "secure boot usb image: {} ({} bytes; shim + GRUB signed by Debian{}; ESP PARTUUID {}; {:.1} s)",
            sb.display(),
            s.image_size,
            if s.bios_start_byte.is_some() { " + BIOS GRUB" } else { "" },
            s.part_guid,
            t2.elapsed().as_secs_f64()
        );
        outputs.push(sb);
    }

    if !c.no_pxe {
        let dir = out.join("pxe");
        let grub_net = c.boot_files.join(GRUB_NET);
        let pspec = PxeSpec {
            kernel: kernel.clone(),
            initramfs: initramfs.clone(),
            cmdline: cmdline.clone(),
            title: title.clone(),
            job: job_text,
            job_sig,
            shim: (shim.is_file() && grub_net.is_file()).then(|| shim.clone()),
            grub_net: (shim.is_file() && grub_net.is_file()).then_some(grub_net),
        };
        let p = write_bundle(&pspec, &dir).context("writing the network boot bundle")?;
        println!("pxe bundle: {} ({}; see docs/pxe.md)", dir.display(), p.files.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "));
        for (n, _) in &p.files {
            if !n.ends_with(".example") {
                outputs.push(dir.join(n));
            }
        }
    }
    write_sums(&out, &outputs)?;
    println!("built in {:.1} s{}", t_start.elapsed().as_secs_f64(), epoch.map(|e| format!(" (SOURCE_DATE_EPOCH={e}: reproducible)")).unwrap_or_default());
    Ok(())
}

/// `SHA256SUMS` in `out` for `files` (paths relative to `out`).
fn write_sums(out: &Path, files: &[PathBuf]) -> Result<()> {
    let mut text = String::new();
    for f in files {
        let rel = f.strip_prefix(out).unwrap_or(f);
        text.push_str(&format!("{}  {}\n", sha256_file(f)?, rel.display()));
    }
    fs::write(out.join("SHA256SUMS"), text).with_context(|| format!("writing {}/SHA256SUMS", out.display()))
}

/// `sysclone image write`: check the stick with the write guard, confirm, write, read back.
pub fn write(c: WriteConfig) -> Result<()> {
    use sysclone_disk::{check_target, open_target, GuardContext, Roots, Selector};
    let mut img = fs::File::open(&c.image).with_context(|| format!("opening {}", c.image.display()))?;
    let len = img.metadata()?.len();
    if len < 512 * 68 {
        bail!("{} ({len} bytes) is not a USB image", c.image.display());
    }
    let mut head = [0u8; 1024];
    img.read_exact(&mut head)?;
    if &head[512..520] != b"EFI PART" {
        bail!("{} has no GPT: not a sysclone USB image (build one with `sysclone image build`)", c.image.display());
    }
    let sel = Selector::parse(&c.to)?;
    let disks = sysclone_init::run::disks_now(None)?;
    let target = sel.select(&disks, &[], Path::new("/dev")).context("choosing the stick")?.clone();
    let who = target.describe();
    // A system disk is refused; discovery calls every disk with an ESP next to another
    // partition "system", so a stick made by sysclone before (ESP + BIOS boot) is let through.
    let sysclone_stick = target.partitions.iter().any(|p| p.label.as_deref() == Some("sysclone ESP"))
        && target.partitions.iter().all(|p| matches!(p.label.as_deref(), Some("sysclone ESP") | Some("BIOS boot")));
    if target.roles.iter().any(|r| r == "system") && !sysclone_stick {
        return Err(sysclone_disk::Refusal {
            rule: sysclone_disk::Rule::Protected,
            message: format!(
                "refusing to write {who}: it looks like a system disk (an EFI system partition next to other partitions, or the disk this computer booted from); if it really is the stick to overwrite, clear its partition table first (wipefs -a)"
            ),
        }
        .into());
    }
    let ctx = GuardContext {
        boot_medium: disks.iter().find(|d| d.roles.iter().any(|r| r == "boot-medium")).map(|d| d.name.clone()),
        source: None,
        protected: Vec::new(),
        roots: Roots::default(),
    };
    check_target(&target, &ctx)?;
    if !c.yes {
        sysclone_init::run::ask_serial(&target)?;
    }
    let th = open_target(&target, &ctx, len, None)?;
    let mut dev = th.file;
    println!("writing {} ({} MiB) to {who}", c.image.display(), len.div_ceil(1 << 20));
    let t0 = Instant::now();
    img.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; 4 << 20];
    let mut done = 0u64;
    while done < len {
        let n = img.read(&mut buf)?;
        if n == 0 {
            bail!("{} shrank while being written", c.image.display());
        }
        dev.write_all(&buf[..n]).with_context(|| format!("writing {who} at byte {done}"))?;
        done += n as u64;
    }
    dev.sync_all().with_context(|| format!("flushing {who}"))?;
    println!("wrote {len} bytes in {:.1} s", t0.elapsed().as_secs_f64());
    if !c.no_verify {
        let _ = sysclone_disk::sys::flush_buffers(std::os::fd::AsFd::as_fd(&dev));
        dev.seek(SeekFrom::Start(0))?;
        img.seek(SeekFrom::Start(0))?;
        let mut back = vec![0u8; buf.len()];
        let mut off = 0u64;
        while off < len {
            let n = img.read(&mut buf)?;
            dev.read_exact(&mut back[..n]).with_context(|| format!("reading {who} back at byte {off}"))?;
            if buf[..n] != back[..n] {
                bail!("{who} differs from {} near byte {off}: the stick may be failing", c.image.display());
            }
            off += n as u64;
        }
        println!("verified: {who} holds the image");
    }
    if let Err(e) = sysclone_disk::sys::reread_partitions(std::os::fd::AsFd::as_fd(&dev)) {
        println!("note: the kernel did not re-read the partition table ({e:#}); replug the stick to see it");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_flags() {
        let c = config(&[]);
        assert_eq!(c.profile, "minimal");
        assert_eq!(c.compression, "zstd");
        assert_eq!(c.boot_files, PathBuf::from("/"));
        let c = config(&["--profile", "generic", "--compression", "gzip", "--firmware-dir", "/a", "--firmware-dir", "/b", "--no-bios", "--no-secure-boot", "--no-pxe"]);
        assert_eq!(c.profile, "generic");
        assert_eq!(c.firmware_dirs, [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert!(c.no_bios && c.no_secure_boot && c.no_pxe);
    }

    #[test]
    fn signed_pe_detection() {
        assert!(!pe_is_signed(b"MZ"));
        let mut pe = vec![0u8; 0x400];
        pe[0] = b'M';
        pe[1] = b'Z';
        pe[0x3c] = 0x80;
        pe[0x80..0x84].copy_from_slice(b"PE\0\0");
        pe[0x98..0x9a].copy_from_slice(&0x20bu16.to_le_bytes());
        assert!(!pe_is_signed(&pe));
        let cert_size = 0x98 + 112 + 4 * 8 + 4;
        pe[cert_size..cert_size + 4].copy_from_slice(&100u32.to_le_bytes());
        assert!(pe_is_signed(&pe));
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
