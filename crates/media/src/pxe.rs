//! The network boot bundle: a directory to serve over TFTP or HTTP with the kernel, the
//! initramfs, an iPXE script, a GRUB network-boot configuration, a dnsmasq example and —
//! when Debian's signed boot files are at hand — shim and GRUB's network image for Secure
//! Boot. A job travels as a second, tiny initrd (`job.cpio`, holding
//! `/etc/sysclone/job.toml`): the kernel unpacks every initrd it is given into one root.
//! docs/pxe.md explains the pieces and the kernel command line.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};

/// Where the job is inside the network-booted system.
pub const PXE_JOB_PATH: &str = "/etc/sysclone/job.toml";

/// What goes into the bundle.
#[derive(Debug, Clone, Default)]
pub struct PxeSpec {
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    /// Kernel command line (without `initrd=` and the job; those are added).
    pub cmdline: String,
    pub title: String,
    /// A job file's text, put into `job.cpio` and named with `sysclone.job=`.
    pub job: Option<Vec<u8>>,
    /// Its minisign signature, beside it in `job.cpio` (`job.toml.minisig`).
    pub job_sig: Option<Vec<u8>>,
    /// Debian's `shimx64.efi.signed`, copied as `bootx64.efi` (the UEFI PXE boot file that
    /// works with and without Secure Boot).
    pub shim: Option<PathBuf>,
    /// Debian's `grubnetx64.efi.signed`, copied as `grubx64.efi` (shim loads it from the same
    /// TFTP directory; it reads `grub/grub.cfg`).
    pub grub_net: Option<PathBuf>,
}

/// What [`write_bundle`] wrote: (file name, size), and the kernel command line used.
#[derive(Debug, Clone)]
pub struct PxeReport {
    pub files: Vec<(String, u64)>,
    pub cmdline: String,
}

/// The iPXE script (`boot.ipxe`). URIs are relative to the script's own URI, so the bundle
/// can be served from any TFTP or HTTP directory. `initrd=NAME` on the kernel command line
/// lets the kernel's EFI stub find the initrds in older iPXE builds (Debian's is from 2019)
/// and is ignored elsewhere.
pub fn ipxe_script(title: &str, cmdline: &str, with_job: bool) -> String {
    let mut initrd_args = String::from("initrd=initramfs.img");
    let mut initrds = String::from("initrd initramfs.img\n");
    if with_job {
        initrd_args.push_str(" initrd=job.cpio");
        initrds.push_str("initrd job.cpio\n");
    }
    format!(
        "#!ipxe\n\
         # {title}: network boot with iPXE. Relative paths are fetched from where this script\n\
         # came from (TFTP or HTTP). See docs/pxe.md for the kernel command line.\n\
         echo sysclone: loading the kernel and initramfs\n\
         kernel vmlinuz {initrd_args} {cmdline}\n\
         {initrds}\
         boot\n",
        cmdline = cmdline.trim()
    )
}

/// GRUB's network configuration (`grub/grub.cfg`): Debian's signed `grubnetx64.efi` (started
/// by shim, or directly) reads `$prefix/grub.cfg` with `prefix=(tftp,SERVER)/grub`; paths are
/// from the TFTP root.
pub fn grub_net_cfg(title: &str, cmdline: &str, with_job: bool) -> String {
    let title = title.replace(['"', '\\', '$'], "");
    let job = if with_job { " /job.cpio" } else { "" };
    format!(
        "# {title}: network boot with Debian's signed GRUB (grubnetx64.efi, after shim).\n\
         # Paths are from the TFTP root; adjust them if the bundle lives in a subdirectory.\n\
         set default=0\n\
         set timeout=0\n\
         menuentry \"{title}\" {{\n\
         \techo \"sysclone: loading the kernel and initramfs over the network\"\n\
         \tlinux /vmlinuz {cmdline}\n\
         \tinitrd /initramfs.img{job}\n\
         }}\n",
        cmdline = cmdline.trim()
    )
}

/// An example dnsmasq configuration serving the bundle (DHCP + TFTP on one interface).
pub fn dnsmasq_example(dir: &Path) -> String {
    format!(
        r#"# dnsmasq example for sysclone network boot: DHCP and TFTP on one network interface.
# Copy to /etc/dnsmasq.d/sysclone.conf, adjust interface and addresses, restart dnsmasq.
# On a network that already has a DHCP server, replace the dhcp-range line with
#   dhcp-range=192.168.50.0,proxy
# and use the pxe-service lines at the end instead of the dhcp-boot lines.
port=0                              # no DNS service
interface=eth1
dhcp-range=192.168.50.100,192.168.50.200,255.255.255.0,1h
enable-tftp
tftp-root={dir}

# Client kinds: UEFI x86-64 (architecture 7 or 9), and iPXE (any firmware).
dhcp-match=set:efi64,option:client-arch,7
dhcp-match=set:efi64,option:client-arch,9
dhcp-userclass=set:ipxe,iPXE

# iPXE (built into many NICs, or chained below) runs the script.
dhcp-boot=tag:ipxe,boot.ipxe
# UEFI firmware: shim -> GRUB -> kernel, which boots with Secure Boot on or off.
dhcp-boot=tag:efi64,tag:!ipxe,bootx64.efi
# BIOS firmware: chain into iPXE (undionly.kpxe from Debian's ipxe package, copied here).
dhcp-boot=tag:!efi64,tag:!ipxe,undionly.kpxe

# proxyDHCP variant:
# pxe-service=tag:!ipxe,x86PC,"sysclone (BIOS)",undionly
# pxe-service=tag:!ipxe,X86-64_EFI,"sysclone (UEFI)",bootx64.efi
# pxe-service=tag:ipxe,x86PC,"sysclone",boot.ipxe
"#,
        dir = dir.display()
    )
}

/// Writes the bundle into `dir` (created if needed; files replaced).
pub fn write_bundle(spec: &PxeSpec, dir: &Path) -> Result<PxeReport> {
    ensure!(!spec.cmdline.contains(['\n', '\r']), "kernel command line must be one line");
    fs::create_dir_all(dir.join("grub")).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmdline = spec.cmdline.trim().to_string();
    if spec.job.is_some() {
        cmdline.push_str(&format!(" sysclone.job={PXE_JOB_PATH}"));
    }
    let title = if spec.title.trim().is_empty() { "sysclone" } else { spec.title.trim() };
    let mut files = Vec::new();
    let mut copy = |from: &Path, name: &str| -> Result<()> {
        let n = fs::copy(from, dir.join(name)).with_context(|| format!("copying {} to {}", from.display(), dir.join(name).display()))?;
        files.push((name.to_string(), n));
        Ok(())
    };
    copy(&spec.kernel, "vmlinuz")?;
    copy(&spec.initramfs, "initramfs.img")?;
    if let Some(s) = &spec.shim {
        copy(s, "bootx64.efi")?;
    }
    if let Some(g) = &spec.grub_net {
        copy(g, "grubx64.efi")?;
    }
    let mut write = |name: &str, data: &[u8]| -> Result<()> {
        fs::write(dir.join(name), data).with_context(|| format!("writing {}", dir.join(name).display()))?;
        files.push((name.to_string(), data.len() as u64));
        Ok(())
    };
    let with_job = spec.job.is_some();
    if let Some(job) = &spec.job {
        let at = PXE_JOB_PATH.trim_start_matches('/');
        let mut files = vec![(at.to_string(), job.clone(), 0o644)];
        if let Some(sig) = &spec.job_sig {
            files.push((format!("{at}.minisig"), sig.clone(), 0o644));
        }
        let cpio = crate::initramfs::build_cpio(&files)?;
        write("job.cpio", &cpio)?;
    } else {
        let _ = fs::remove_file(dir.join("job.cpio"));
    }
    write("boot.ipxe", ipxe_script(title, &cmdline, with_job).as_bytes())?;
    write("grub/grub.cfg", grub_net_cfg(title, &cmdline, with_job).as_bytes())?;
    write("dnsmasq.conf.example", dnsmasq_example(dir).as_bytes())?;
    Ok(PxeReport { files, cmdline })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_files() {
        let d = tempfile::tempdir().unwrap();
        let k = d.path().join("k");
        let i = d.path().join("i");
        fs::write(&k, b"kernel").unwrap();
        fs::write(&i, b"initrd").unwrap();
        let out = d.path().join("pxe");
        let spec = PxeSpec { kernel: k, initramfs: i, cmdline: "console=ttyS0 sysclone.mode=list".into(), title: "sysclone 1".into(), ..Default::default() };
        let r = write_bundle(&spec, &out).unwrap();
        let ipxe = fs::read_to_string(out.join("boot.ipxe")).unwrap();
        assert!(ipxe.starts_with("#!ipxe\n"));
        assert!(ipxe.contains("kernel vmlinuz initrd=initramfs.img console=ttyS0 sysclone.mode=list\ninitrd initramfs.img\nboot\n"), "{ipxe}");
        let g = fs::read_to_string(out.join("grub/grub.cfg")).unwrap();
        assert!(g.contains("linux /vmlinuz console=ttyS0 sysclone.mode=list\n") && g.contains("initrd /initramfs.img\n"), "{g}");
        assert_eq!(fs::read(out.join("vmlinuz")).unwrap(), b"kernel");
        assert!(!out.join("job.cpio").exists() && !out.join("bootx64.efi").exists());
        assert!(fs::read_to_string(out.join("dnsmasq.conf.example")).unwrap().contains(&format!("tftp-root={}", out.display())));
        assert!(r.files.iter().any(|(n, _)| n == "grub/grub.cfg"));

        let spec = PxeSpec { job: Some(b"source = \"serial=A\"\n".to_vec()), shim: Some(spec.kernel.clone()), grub_net: Some(spec.initramfs.clone()), ..spec };
        let r = write_bundle(&spec, &out).unwrap();
        assert!(r.cmdline.ends_with(" sysclone.job=/etc/sysclone/job.toml"));
        let ipxe = fs::read_to_string(out.join("boot.ipxe")).unwrap();
        assert!(ipxe.contains("initrd=initramfs.img initrd=job.cpio ") && ipxe.contains("initrd job.cpio\n"), "{ipxe}");
        let g = fs::read_to_string(out.join("grub/grub.cfg")).unwrap();
        assert!(g.contains("initrd /initramfs.img /job.cpio\n"), "{g}");
        let e = crate::initramfs::read_initramfs(&out.join("job.cpio")).unwrap();
        assert_eq!(e.last().unwrap().name, "etc/sysclone/job.toml");
        assert_eq!(e.last().unwrap().data, b"source = \"serial=A\"\n");
        assert_eq!(fs::read(out.join("bootx64.efi")).unwrap(), b"kernel");
        assert_eq!(fs::read(out.join("grubx64.efi")).unwrap(), b"initrd");
    }
}
