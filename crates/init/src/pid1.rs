//! sysclone as PID 1 of the rescue image: mount, load drivers, find disks, run the job,
//! and never die — every failure ends at a console menu (or the job's `on_failure`).

use std::io::BufRead;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use nix::mount::{mount, MsFlags};
use nix::sys::reboot::{reboot, RebootMode};

use crate::cmdline::Cmdline;
use crate::console::{detail, log_text, say, uptime};
use crate::job::{After, Job};
use crate::kmod::{coldplug_and_settle, Loader};
use crate::run::{disks_now, read_from_fat};
use sysclone_net::trust::{Policy as TrustPolicy, MAX_SIG_BYTES, SIG_SUFFIX};

const EFIVARS: &str = "/sys/firmware/efi/efivars";

/// Mount `fstype` on `target` unless `mounted` (the text of /proc/self/mounts) lists it: a
/// restarted worker finds them mounted, and a second tmpfs on /run would hide the log.
fn mount_one(src: &str, target: &str, fstype: &str, flags: MsFlags, mounted: &str) {
    if mounted.lines().any(|l| l.split_whitespace().nth(1) == Some(target)) {
        return;
    }
    let _ = std::fs::create_dir_all(target);
    if let Err(e) = mount(Some(src), target, Some(fstype), flags, None::<&str>) {
        if e != nix::errno::Errno::EBUSY {
            say(&format!("mount {fstype} on {target}: {e}"));
        }
    }
}

fn mounted_now() -> String {
    std::fs::read_to_string("/proc/self/mounts").unwrap_or_default()
}

fn mount_kernel_filesystems() {
    // Read once: at first boot there is no /proc yet (nothing is mounted); after a worker
    // restart all of them are listed.
    let m = mounted_now();
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    mount_one("proc", "/proc", "proc", nosuid, &m);
    mount_one("sysfs", "/sys", "sysfs", nosuid, &m);
    mount_one("devtmpfs", "/dev", "devtmpfs", MsFlags::MS_NOSUID, &m);
    mount_one("tmpfs", "/run", "tmpfs", MsFlags::MS_NOSUID | MsFlags::MS_NODEV, &m);
    mount_one("tmpfs", "/tmp", "tmpfs", MsFlags::MS_NOSUID | MsFlags::MS_NODEV, &m);
}

/// Power state changes: sync first, since reboot(2) does not.
pub fn power(after: After) -> ! {
    nix::unistd::sync();
    let mode = match after {
        After::Reboot => RebootMode::RB_AUTOBOOT,
        After::Poweroff => RebootMode::RB_POWER_OFF,
        After::Halt | After::Menu => RebootMode::RB_HALT_SYSTEM,
    };
    say(&format!("{}", match after {
        After::Reboot => "rebooting",
        After::Poweroff => "powering off",
        _ => "halting",
    }));
    let _ = reboot(mode);
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// What the rescue system was asked to do on the kernel command line.
struct Setup {
    cmdline: Cmdline,
    loader: Loader,
    boot_partuuid: Option<String>,
    net: Option<sysclone_net::Up>,
    /// The image's trusted signing keys and whether signatures are required.
    trust: TrustPolicy,
}

/// A yes on the command line: `key`, `key=1`, `key=yes`, `key=true`.
fn flag(c: &Cmdline, key: &str) -> bool {
    c.get(key).is_some_and(|v| matches!(v, "" | "1" | "yes" | "true" | "on"))
}

/// The HTTP(S) client, once the network is up; where the job wants its report posted.
static HTTP: std::sync::Mutex<Option<sysclone_net::Client>> = std::sync::Mutex::new(None);
static REPORT_TO: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Whether the command line asks for the network: `ip=` (not off), a job URL, `sysclone.net`.
fn wants_network(c: &Cmdline) -> bool {
    c.get("ip").is_some_and(|v| !matches!(v, "off" | "none")) || ["sysclone.job", "sysclone.job.sig"].iter().any(|k| c.get(k).is_some_and(sysclone_net::is_url)) || c.has("sysclone.net")
}

/// Bring the network up as `ip=` says (default DHCP on every wired NIC) and make the HTTP
/// client (`sysclone.ca=` adds a lab CA to the image's CA bundle).
fn network(c: &Cmdline) -> Result<sysclone_net::Up> {
    let cfg = sysclone_net::parse_ip(c.get("ip").unwrap_or("dhcp"))?;
    say("network: waiting for a link and an address");
    let up = sysclone_net::bring_up(&cfg, Duration::from_secs(10), Duration::from_secs(30))?;
    say(&format!("network: {up}"));
    // The one place the lab CA is named: this client and every image opened by URL read it.
    if let Some(p) = c.get("sysclone.ca") {
        std::env::set_var("SYSCLONE_CA", p);
    }
    let client = sysclone_net::Client::from_env().context("sysclone.ca=")?;
    if let Ok(mut h) = HTTP.lock() {
        *h = Some(client);
    }
    Ok(up)
}

fn http() -> Result<sysclone_net::Client> {
    HTTP.lock().ok().and_then(|h| h.clone()).ok_or_else(|| anyhow!("the network is not up"))
}

/// Post the outcome to the job's `report_url`: result, error, the machine, the report and the
/// whole log. A failure to post is said, never fatal.
fn upload_report(result: &str, error: Option<&str>) {
    let Some(url) = REPORT_TO.lock().ok().and_then(|r| r.clone()) else { return };
    let report = REPORT.lock().ok().and_then(|r| r.clone());
    let (macs, serial) = crate::customize::identity();
    let body = serde_json::json!({
        "result": result,
        "error": error,
        "machine_serial": serial.unwrap_or_default(),
        "macs": macs,
        "report": report.and_then(|r| serde_json::from_str::<serde_json::Value>(&r).ok()),
        "log": log_text(),
    });
    match http().and_then(|c| c.post_json(&url, &body.to_string())) {
        Ok(()) => say(&format!("report posted to {url}")),
        Err(e) => say(&format!("report not posted to {url}: {e:#}")),
    }
}

fn setup() -> Result<Setup> {
    let t0 = uptime();
    mount_kernel_filesystems();
    crate::console::keep_log_in_run();
    crate::console::mirror_to_all_consoles();
    let cmdline = Cmdline::read();
    crate::console::set_quiet(cmdline.has("quiet"));
    crate::console::set_progress_style(match cmdline.get("sysclone.ui") {
        Some("text") => crate::console::ProgressStyle::Bar,
        _ => crate::console::ProgressStyle::Plain,
    });
    crate::state::fault("setup");
    say(&format!("sysclone {} starting as init (kernel up {t0:.3} s)", env!("CARGO_PKG_VERSION")));
    let mut loader = Loader::open(Path::new("/")).context("reading the module index")?;
    // Filesystems and the EFI variable store are not found by modalias; load them now.
    for m in ["efivarfs", "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "loop", "fuse"] {
        loader.load(m);
    }
    if Path::new("/sys/firmware/efi").exists() {
        mount_one("efivarfs", EFIVARS, "efivarfs", MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV, &mounted_now());
        // SecureBoot (EFI global variable): 4 attribute bytes, then 1 = enforcing.
        let sb = std::fs::read(format!("{EFIVARS}/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c")).ok();
        detail(&format!("secure boot: {}", match sb.as_deref().and_then(|v| v.get(4)) { Some(1) => "enabled", Some(_) => "disabled", None => "unknown" }));
    }
    let (n, waited) = coldplug_and_settle(&mut loader, Duration::from_millis(1500), Duration::from_secs(30));
    // Consoles whose driver is a module (virtio's hvc0) exist now.
    crate::console::mirror_to_all_consoles();
    detail(&format!("drivers: {} of {} modules loaded, disks settled after {waited:.1} s", loader.loaded().len(), loader.count()));
    let _ = n;
    // systemd-boot names its partition in LoaderDevicePartUUID; GRUB (Secure Boot, BIOS) puts it on the command line.
    let boot_partuuid = sysclone_efi::EfiVars::new(EFIVARS).loader_device_part_uuid().ok().flatten().or_else(|| cmdline.get("sysclone.boot-partuuid").map(str::to_string));
    // Recorded for the commands run from the shell, which learn the boot medium from it.
    if let Some(u) = &boot_partuuid {
        let _ = std::fs::create_dir_all("/run/sysclone");
        if let Err(e) = std::fs::write(crate::run::BOOT_PARTUUID_FILE, format!("{u}\n")) {
            say(&format!("warning: could not record the boot partition in {}: {e}", crate::run::BOOT_PARTUUID_FILE));
        }
    }
    // A trust store that cannot be read stops here: never fall back to trusting anything.
    let trust = TrustPolicy::of_rescue_image(Path::new("/"), flag(&cmdline, "sysclone.require_signature"))?;
    if trust.wants_signature() {
        let ids: Vec<&str> = trust.keys.keys().iter().map(|k| k.id.as_str()).collect();
        say(&format!(
            "trust: {} signing key(s) ({}); jobs must be signed, images signed or pinned{}",
            ids.len(),
            if ids.is_empty() { "none".to_string() } else { ids.join(", ") },
            if trust.require_signature { "; signatures required (pins are not enough)" } else { "" }
        ));
    }
    if let Ok(mut c) = CMDLINE_BOOT_PART.lock() {
        *c = cmdline.get("sysclone.boot-partuuid").map(str::to_string);
    }
    OFFLINE.store(cmdline.has("sysclone.offline"), std::sync::atomic::Ordering::Relaxed);
    Ok(Setup { cmdline, loader, boot_partuuid, net: None, trust })
}

fn list_disks(boot_partuuid: Option<&str>) -> Result<()> {
    let disks = disks_now(boot_partuuid)?;
    say(&format!("disks listed ({} found):\n{}", disks.len(), sysclone_disk::discover::format_table(&disks)));
    Ok(())
}

/// Find, authenticate and parse the job named by `sysclone.job=`: a URL, a path inside the
/// initramfs, or on the boot medium's ESP. Its signature (`sysclone.job.sig=`, default the
/// job's name + `.minisig`) is fetched when the image trusts keys; `policy` decides (pins,
/// keys) before the job is even parsed.
fn load_job(path: &str, boot_partuuid: Option<&str>, policy: &TrustPolicy, sig_at: Option<&str>) -> Result<Job> {
    let bytes = job_bytes(path, boot_partuuid, 1 << 20)?.ok_or_else(|| anyhow!("job {path} not found"))?;
    let sig = if policy.wants_signature() {
        let at = sig_at.map(str::to_string).unwrap_or_else(|| format!("{path}{SIG_SUFFIX}"));
        job_bytes(&at, boot_partuuid, MAX_SIG_BYTES).with_context(|| format!("the job's signature {at}"))?
    } else {
        None
    };
    let checked = policy.check(&format!("job {path}"), &bytes, sig.as_deref()).map_err(|e| anyhow!("{e:#}; nothing was written"))?;
    if !checked.unchecked() {
        say(&format!("job {path}: {checked}"));
    }
    let text = String::from_utf8(bytes).map_err(|_| anyhow!("job {path} is not UTF-8 text"))?;
    Job::parse(&text).with_context(|| format!("job file {path}"))
}

/// The bytes of a job file or its signature (at most `limit`): by URL, inside the
/// initramfs, or on the boot medium's ESP; `None` when it does not exist there.
fn job_bytes(path: &str, boot_partuuid: Option<&str>, limit: u64) -> Result<Option<Vec<u8>>> {
    if sysclone_net::is_url(path) {
        return http()?.get_opt(path, limit).with_context(|| format!("fetching {path}"));
    }
    if Path::new(path).is_file() {
        return std::fs::read(path).map(Some).with_context(|| format!("reading {path}"));
    }
    let uuid = boot_partuuid.ok_or_else(|| anyhow!("{path}: not in the image, and the boot loader did not say which partition it started from"))?;
    let (disk, part) = boot_partition(uuid).with_context(|| path.to_string())?;
    let files = sysclone_media::usbimage::read_esp_files(&disk.path, part.start_bytes, part.size_bytes).with_context(|| format!("listing the boot medium {}", disk.describe()))?;
    let want = path.trim_matches('/');
    if !files.iter().any(|f| !f.is_dir && f.path.trim_matches('/').eq_ignore_ascii_case(want)) {
        return Ok(None);
    }
    let data = read_from_fat(&disk.path, part.start_bytes, part.size_bytes, path).with_context(|| format!("reading {path} from {}", disk.describe()))?;
    if data.len() as u64 > limit {
        bail!("{path} on {} is {} bytes, more than a job file or signature has", disk.describe(), data.len());
    }
    Ok(Some(data))
}

/// The disk and partition the boot loader started from. The firmware just read it, so it is
/// there: a slow bus (a USB stick under emulation) may only take a moment to show it.
fn boot_partition(uuid: &str) -> Result<(sysclone_disk::Disk, sysclone_disk::Partition)> {
    let t0 = std::time::Instant::now();
    let mut said = false;
    loop {
        let disks = disks_now(Some(uuid))?;
        let found = disks.iter().find_map(|d| d.partitions.iter().find(|p| p.part_uuid.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(uuid))).map(|p| (d.clone(), p.clone())));
        match found {
            Some(f) => return Ok(f),
            None if t0.elapsed() > Duration::from_secs(30) => bail!("the boot partition {uuid} is not among the disks (waited 30 s)"),
            None if !said => {
                say(&format!("waiting for the boot medium (partition {uuid}) to show"));
                said = true;
            }
            None => {}
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn run_job(job: &Job, setup: &Setup) -> Result<()> {
    crate::state::fault("job");
    if let Ok(mut r) = REPORT_TO.lock() {
        *r = job.report_url.clone();
    }
    let image_pin = setup.cmdline.get("sysclone.image.sha256");
    if image_pin.is_some() && job.operation != crate::job::Operation::Restore {
        say("warning: sysclone.image.sha256= is given, but the job restores no image");
    }
    let trust = setup.trust.pinned("sysclone.image.sha256=", image_pin);
    let json = crate::job::run(job, Path::new(EFIVARS), setup.boot_partuuid.as_deref(), false, &trust)?;
    say(&memory_line());
    report_json(json);
    say("SYSCLONE-RESULT ok");
    upload_report("ok", None);
    save_log("ok");
    Ok(())
}

fn interactive(setup: &Setup) -> Result<After> {
    crate::ui::main_menu(setup.boot_partuuid.as_deref(), Path::new(EFIVARS), &shell)
}

/// The machine's memory and what the worker used at most (its own VmHWM: tools it ran,
/// such as resize2fs, are not in it): `memory: worker peak 41 MiB; 78 of 479 MiB in use`.
fn memory_line() -> String {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = |key: &str| info.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()).unwrap_or(0);
    let (total, avail) = (kib("MemTotal:"), kib("MemAvailable:"));
    format!("memory: worker peak {} MiB; {} of {} MiB in use", sysclone_copy::peak_rss() >> 20, total.saturating_sub(avail) >> 10, total >> 10)
}

static REPORT: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Set when the kernel command line says `sysclone.offline`: this boot runs a job staged on
/// the running system's ESP (see [`crate::offline`]). Failures then reboot (back to the
/// source) instead of waiting at a menu, and logs are named `…-offline-RESULT`.
static OFFLINE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// The boot partition named on the command line (`sysclone.boot-partuuid=`), when the boot
/// loader did not set LoaderDevicePartUUID (GRUB, or the kernel started directly).
static CMDLINE_BOOT_PART: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// The start of this offline run, `YYYYMMDD-HHMMSS`.
static RUN_STAMP: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn offline() -> bool {
    OFFLINE.load(std::sync::atomic::Ordering::Relaxed)
}

/// An offline job's first step, before any disk is chosen: remove what was staged (the
/// files under \EFI\sysclone\ and the one-shot boot entry), so that neither survives into
/// a clone nor is started again, whatever happens next. A failure is said, not fatal: the
/// firmware has already consumed BootNext.
fn unstage_offline(boot_partuuid: Option<&str>) {
    let r = (|| -> Result<crate::offline::Unstaged> {
        let uuid = boot_partuuid.ok_or_else(|| anyhow!("no sysclone.boot-partuuid= on the command line"))?;
        let disks = disks_now(Some(uuid))?;
        let esp = crate::offline::esps(&disks)
            .into_iter()
            .find(|e| e.part.part_uuid.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(uuid)))
            .ok_or_else(|| anyhow!("the ESP {uuid} is not among the disks"))?;
        crate::offline::unstage(&esp, &sysclone_efi::EfiVars::new(EFIVARS))
    })();
    match r {
        Ok(u) => say(&format!(
            "offline job: staged files removed ({}), boot entries removed ({}){}",
            u.files.len(),
            if u.entries.is_empty() { "none".to_string() } else { u.entries.join(", ") },
            if u.boot_next_cleared { ", BootNext cleared" } else { "" }
        )),
        Err(e) => say(&format!("warning: offline job: could not remove the staged files or boot entry: {e:#}")),
    }
    // A run that never ends (power cut, reset) leaves this behind for `sysclone status`.
    save_log("running");
}

/// Show the job's machine-readable report on the console and keep it to save with the log.
fn report_json(json: String) {
    say(&format!("SYSCLONE-REPORT {json}"));
    if let Ok(mut r) = REPORT.lock() {
        *r = Some(json);
    }
}

/// `YYYYMMDD-HHMMSS` (UTC) for `secs` since 1970.
pub fn stamp(secs: u64) -> String {
    let (y, m, d, hh, mm, ss) = sysclone_disk::utc_from_unix(secs);
    format!("{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}")
}

/// Keep the console log on the boot medium's ESP, under `sysclone/logs/`, so the result can
/// be read on any machine afterwards. A failure to save is said, never fatal.
fn save_log(result: &str) {
    let from_cmdline = CMDLINE_BOOT_PART.lock().ok().and_then(|c| c.clone());
    let Some(uuid) = sysclone_efi::EfiVars::new(EFIVARS).loader_device_part_uuid().ok().flatten().or(from_cmdline) else {
        return;
    };
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let kind = if offline() { "-offline" } else { "" };
    // An offline run's logs share the stamp of its start: the `running` one written as it
    // starts is superseded by the result's (see `sysclone status`).
    let when = if offline() { RUN_STAMP.get_or_init(|| stamp(secs)).clone() } else { stamp(secs) };
    let name = format!("{}/{when}{kind}-{result}.log", crate::offline::LOG_DIR);
    let report = REPORT.lock().ok().and_then(|mut r| r.take());
    let r = (|| -> Result<()> {
        let (disk, part) = boot_partition(&uuid)?;
        let dev = std::fs::OpenOptions::new().read(true).write(true).open(&disk.path)?;
        let text = log_text() + "\n";
        let mut files = vec![sysclone_media::usbimage::EspFile::bytes(name.clone(), text.into_bytes())];
        if let Some(json) = &report {
            files.push(sysclone_media::usbimage::EspFile::bytes(name.replace(".log", ".json"), format!("{json}\n").into_bytes()));
        }
        sysclone_media::usbimage::add_files_to_fat(dev, part.start_bytes, part.size_bytes, &files)?;
        Ok(())
    })();
    match r {
        Ok(()) => say(&format!("log saved on the boot medium as {name}{}", if report.is_some() { " (report beside it, .json)" } else { "" })),
        Err(e) => say(&format!("log not saved on the boot medium: {e:#}")),
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_else(|| "unknown panic".into())
}

/// Show a failure and ask what to do. Returns when the user chose retry.
fn failure_menu(err: &str, on_failure: After) {
    say(&format!("SYSCLONE-RESULT failed\nERROR: {err}"));
    upload_report("failed", Some(err));
    // Nobody is at an offline job's console: the report says why, and the machine goes back
    // to the source (BootNext was one-shot; the staged entry is gone).
    let on_failure = if offline() && on_failure == After::Menu { After::Reboot } else { on_failure };
    if offline() {
        if let Ok(mut r) = REPORT.lock() {
            r.get_or_insert_with(|| serde_json::json!({ "result": "failed", "error": err }).to_string());
        }
    }
    save_log("failed");
    if on_failure != After::Menu {
        power(on_failure);
    }
    loop {
        reap();
        say("[r] retry   [l] show log   [s] shell   [b] reboot   [p] power off");
        let mut l = String::new();
        match std::io::stdin().lock().read_line(&mut l) {
            Ok(0) | Err(_) => {
                std::thread::sleep(Duration::from_secs(10));
                continue;
            }
            Ok(_) => {}
        }
        match l.trim() {
            "r" => return,
            "l" => println!("{}", log_text()),
            "s" => shell(),
            "b" => power(After::Reboot),
            "p" => power(After::Poweroff),
            _ => {}
        }
    }
}

fn shell() {
    for sh in ["/bin/sh", "/bin/busybox"] {
        if Path::new(sh).exists() {
            let mut c = std::process::Command::new(sh);
            if sh.ends_with("busybox") {
                c.arg("sh");
            }
            match c.status() {
                Ok(_) => return,
                Err(e) => say(&format!("{sh}: {e}")),
            }
        }
    }
    say("this image has no shell");
}

fn reap() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    while let Ok(s) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
}

/// The whole life of PID 1: a supervisor that reaps and restarts the worker below.
pub fn main() -> ! {
    crate::supervise::run(worker)
}

/// Ctrl-Alt-Del: reboot, unless a disk is being written — then only when pressed twice.
fn watch_ctrl_alt_del() {
    std::thread::spawn(|| {
        let mut previous = None;
        loop {
            std::thread::sleep(Duration::from_millis(200));
            if !crate::supervise::ctrl_alt_del_pressed() {
                continue;
            }
            let now = std::time::Instant::now();
            match crate::state::cad_action(crate::state::busy().as_deref(), previous, now) {
                crate::state::CadAction::Reboot => {
                    say("Ctrl-Alt-Del: rebooting");
                    save_log("ctrl-alt-del");
                    power(After::Reboot);
                }
                crate::state::CadAction::Warn(what) => {
                    say(&format!(
                        "Ctrl-Alt-Del: {what} is in progress; a reboot now leaves the target incomplete. Press Ctrl-Alt-Del again within {} s to reboot anyway.",
                        crate::state::CAD_GRACE.as_secs()
                    ));
                    previous = Some(now);
                }
                crate::state::CadAction::Force(what) => {
                    say(&format!("Ctrl-Alt-Del again: stopping {what} and rebooting; the target is incomplete"));
                    save_log("interrupted");
                    power(After::Reboot);
                }
            }
        }
    });
}

/// The rescue system's work, in a child of PID 1. `previous` says why the worker before
/// this one died: then the job is not run again; the failure menu shows why.
fn worker(previous: Option<String>) -> ! {
    // The kernel starts init with no PATH; bundled tools live where they did on the build host.
    std::env::set_var("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    watch_ctrl_alt_del();
    let mut setup_done: Option<Setup> = None;
    let mut pending = previous;
    loop {
        let mut on_failure = After::Menu;
        let result = catch_unwind(AssertUnwindSafe(|| -> Result<After> {
            if setup_done.is_none() {
                setup_done = Some(setup()?);
            }
            let setup = setup_done.as_mut().expect("set above");
            if setup.net.is_none() && wants_network(&setup.cmdline) {
                setup.net = Some(network(&setup.cmdline)?);
            }
            list_disks(setup.boot_partuuid.as_deref())?;
            detail(&format!("disks listed at {:.3} s after boot", uptime()));
            crate::state::fault("disks");
            let mode = setup.cmdline.get("sysclone.mode").unwrap_or("auto").to_string();
            if let Some(why) = pending.take() {
                bail!("{why} (the job is not started again by itself; choose retry to run it)");
            }
            if mode == "bootcheck" {
                on_failure = After::Poweroff;
                crate::bootcheck::run(&mut setup.loader, Path::new(EFIVARS))?;
                return Ok(After::Poweroff);
            }
            if mode == "list" {
                let disks = disks_now(setup.boot_partuuid.as_deref())?;
                let json = sysclone_disk::discover::to_json(&disks, false);
                say(&format!("SYSCLONE-DISKS-JSON {json}"));
                return Ok(After::Poweroff);
            }
            if mode == "shell" {
                shell();
                return Ok(After::Menu);
            }
            match setup.cmdline.get("sysclone.job").map(str::to_string) {
                Some(path) if mode != "interactive" => {
                    let policy = setup.trust.pinned("sysclone.job.sha256=", setup.cmdline.get("sysclone.job.sha256"));
                    let job = load_job(&path, setup.boot_partuuid.as_deref(), &policy, setup.cmdline.get("sysclone.job.sig"));
                    // A staged offline job leaves the ESP (files and boot entry) before any
                    // disk is touched, whatever comes of it: it never runs twice.
                    if offline() {
                        unstage_offline(setup.boot_partuuid.as_deref());
                    }
                    let job = job?;
                    on_failure = job.on_failure;
                    if job.needs_network() && setup.net.is_none() {
                        setup.net = Some(network(&setup.cmdline)?);
                    }
                    run_job(&job, setup)?;
                    Ok(job.on_success)
                }
                _ => interactive(setup),
            }
        }));
        match result {
            Ok(Ok(After::Menu)) => failure_menu("done; choose what to do next", After::Menu),
            Ok(Ok(after)) => power(after),
            Ok(Err(e)) => failure_menu(&format!("{e:#}"), on_failure),
            Err(p) => failure_menu(&format!("internal error (panic): {}", panic_text(p)), on_failure),
        }
    }
}

/// `modprobe` as the kernel's request_module helper runs it: `modprobe -q -- NAME`.
pub fn modprobe_main(args: &[String]) -> i32 {
    let Ok(mut loader) = Loader::open(Path::new("/")) else { return 1 };
    let names: Vec<&String> = args.iter().skip(1).filter(|a| !a.starts_with('-')).collect();
    let mut ok = true;
    for n in names {
        loader.load(n);
        ok &= !loader.loaded().is_empty();
    }
    if ok {
        0
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stamps() {
        assert_eq!(super::stamp(0), "19700101-000000");
        assert_eq!(super::stamp(951_782_400 + 3661), "20000229-010101");
        assert_eq!(super::stamp(1_795_521_600), "20261124-120000");
    }
}
