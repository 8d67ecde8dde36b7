//! A QEMU machine for the tests: q35, OVMF, TCG (or KVM when SYSCLONE_QEMU_ACCEL=kvm),
//! serial console captured to a file, `-no-reboot` so a guest reboot ends the run.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// Secure Boot enforcing firmware (needs SMM) and a store with Microsoft's keys enrolled.
const OVMF_CODE_MS: &str = "/usr/share/OVMF/OVMF_CODE_4M.ms.fd";
const OVMF_VARS_MS: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";

/// The machine's firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// OVMF, no Secure Boot.
    Ovmf,
    /// OVMF with Secure Boot enforced (SMM, secure flash), Microsoft's keys.
    OvmfSecureBoot,
    /// SeaBIOS (legacy BIOS, QEMU's default without pflash).
    SeaBios,
}

/// A `run_session` step that types nothing: only wait for the text.
pub const WAIT: &str = "\u{0}";

pub struct Disk {
    args: Vec<String>,
}

impl Disk {
    fn drive(id: &str, file: &Path) -> String {
        format!("if=none,id={id},format=raw,file={}", file.display())
    }
    pub fn nvme(file: &Path, serial: &str) -> Disk {
        let id = format!("n{serial}");
        Disk { args: vec!["-drive".into(), Self::drive(&id, file), "-device".into(), format!("nvme,drive={id},serial={serial}")] }
    }
    pub fn virtio(file: &Path, serial: &str) -> Disk {
        let id = format!("v{serial}");
        Disk { args: vec!["-drive".into(), Self::drive(&id, file), "-device".into(), format!("virtio-blk-pci,drive={id},serial={serial}")] }
    }
}

impl Disk {
    /// Extra `-device` properties, e.g. `logical_block_size=4096`.
    fn with(mut self, props: &str) -> Disk {
        let last = self.args.last_mut().expect("a -device argument");
        last.push(',');
        last.push_str(props);
        self
    }
    pub fn nvme_4k(file: &Path, serial: &str) -> Disk {
        Self::nvme(file, serial).with("logical_block_size=4096,physical_block_size=4096")
    }
    pub fn virtio_4k(file: &Path, serial: &str) -> Disk {
        Self::virtio(file, serial).with("logical_block_size=4096,physical_block_size=4096")
    }
    /// A virtio disk every write to which fails with EIO (QEMU's blkdebug between the raw
    /// format and the file); reads work.
    pub fn virtio_write_fails(file: &Path, serial: &str) -> Disk {
        let id = format!("v{serial}");
        Disk {
            args: vec![
                "-blockdev".into(),
                format!(
                    "driver=raw,node-name={id},file.driver=blkdebug,file.inject-error.0.event=write_aio,file.inject-error.0.errno=5,file.image.driver=file,file.image.filename={}",
                    file.display()
                ),
                "-device".into(),
                format!("virtio-blk-pci,drive={id},serial={serial}"),
            ],
        }
    }
    pub fn virtio_ro(file: &Path, serial: &str) -> Disk {
        let mut d = Self::virtio(file, serial);
        d.args[1].push_str(",readonly=on");
        d
    }
    /// A SATA disk on an AHCI controller (one controller per machine, port `port`).
    pub fn sata(file: &Path, serial: &str, model: &str, port: u32) -> Disk {
        let id = format!("s{serial}");
        let mut args = Vec::new();
        if port == 0 {
            args.extend(["-device".to_string(), "ahci,id=ahci0".to_string()]);
        }
        args.extend(["-drive".into(), Self::drive(&id, file), "-device".into(), format!("ide-hd,drive={id},bus=ahci0.{port},serial={serial},model={model}")]);
        Disk { args }
    }
    /// A SCSI disk on a virtio-scsi controller (`first` adds the controller).
    pub fn scsi(file: &Path, serial: &str, product: &str, first: bool) -> Disk {
        let id = format!("c{serial}");
        let mut args = Vec::new();
        if first {
            args.extend(["-device".to_string(), "virtio-scsi-pci,id=scsi0".to_string()]);
        }
        args.extend(["-drive".into(), Self::drive(&id, file), "-device".into(), format!("scsi-hd,drive={id},bus=scsi0.0,serial={serial},vendor=SYSCLONE,product={product}")]);
        Disk { args }
    }
}

impl Disk {
    /// A SCSI disk on its own controller of QEMU type `hba` (`lsi53c895a`, `megasas`, …).
    pub fn scsi_on(hba: &str, file: &Path, serial: &str) -> Disk {
        let id = format!("h{serial}");
        Disk {
            args: vec![
                "-device".into(),
                format!("{hba},id={id}c"),
                "-drive".into(),
                Self::drive(&id, file),
                "-device".into(),
                format!("scsi-hd,drive={id},bus={id}c.0,serial={serial}"),
            ],
        }
    }
    /// A USB mass-storage (bulk-only) disk on the machine's xHCI (see [`Machine::usb_boot`]).
    pub fn usb(file: &Path, serial: &str) -> Disk {
        let id = format!("u{serial}");
        Disk { args: vec!["-drive".into(), Self::drive(&id, file), "-device".into(), format!("usb-storage,bus=xhci.0,drive={id},serial={serial}")] }
    }
    /// A USB Attached SCSI disk on the machine's xHCI.
    pub fn uas(file: &Path, serial: &str) -> Disk {
        let id = format!("a{serial}");
        Disk {
            args: vec![
                "-device".into(),
                format!("usb-uas,id={id}c,bus=xhci.0"),
                "-drive".into(),
                Self::drive(&id, file),
                "-device".into(),
                format!("scsi-hd,drive={id},bus={id}c.0,scsi-id=0,lun=0,serial={serial}"),
            ],
        }
    }
    /// An SD card in an SDHCI controller on PCI (QEMU wants a power-of-two size).
    pub fn sd(file: &Path) -> Disk {
        Disk { args: vec!["-device".into(), "sdhci-pci".into(), "-drive".into(), Self::drive("sd0", file), "-device".into(), "sd-card,drive=sd0".into()] }
    }
}

impl Disk {
    /// More `-device` properties for the disk, e.g. `wwn=0x5000c50000000001`.
    pub fn and(self, props: &str) -> Disk {
        self.with(props)
    }
    /// An empty PCIe root port `id` to hot-plug a device into later (monitor `device_add`).
    pub fn pcie_root_port(id: &str, chassis: u32) -> Disk {
        Disk { args: vec!["-device".into(), format!("pcie-root-port,id={id},bus=pcie.0,chassis={chassis}")] }
    }
}

pub struct Machine {
    name: String,
    dir: PathBuf,
    pub vars: PathBuf,
    args: Vec<String>,
    firmware: Firmware,
    /// Guest RAM in MiB (`-m`), 1024 unless [`Machine::memory`] says otherwise.
    memory_mib: u32,
    /// Extra console devices (see [`Machine::virtconsole`]).
    consoles: Vec<String>,
}

impl Machine {
    /// A machine with a fresh copy of OVMF's empty variable store.
    pub fn new(dir: &Path, name: &str) -> Machine {
        Self::with_vars(dir, name, Path::new(OVMF_VARS))
    }

    /// A machine whose variable store starts as a copy of `vars`.
    pub fn with_vars(dir: &Path, name: &str, vars: &Path) -> Machine {
        let own = dir.join(format!("{name}.vars.fd"));
        fs::copy(vars, &own).expect("copying the OVMF variable store");
        Machine { name: name.into(), dir: dir.into(), vars: own, args: Vec::new(), firmware: Firmware::Ovmf, memory_mib: 1024, consoles: Vec::new() }
    }

    /// OVMF enforcing Secure Boot, with Debian's and Microsoft's keys enrolled.
    pub fn secure_boot(dir: &Path, name: &str) -> Machine {
        let mut m = Self::with_vars(dir, name, Path::new(OVMF_VARS_MS));
        m.firmware = Firmware::OvmfSecureBoot;
        m
    }

    /// A legacy BIOS machine (SeaBIOS); it has no variable store.
    pub fn seabios(dir: &Path, name: &str) -> Machine {
        Machine { name: name.into(), dir: dir.into(), vars: dir.join(format!("{name}.no-vars")), args: Vec::new(), firmware: Firmware::SeaBios, memory_mib: 1024, consoles: Vec::new() }
    }

    /// A virtio NIC on QEMU's user network, first to boot: the firmware's network boot (iPXE
    /// under OVMF) gets `bootfile` from `tftp_dir` over TFTP.
    pub fn net_boot(&mut self, tftp_dir: &Path, bootfile: &str) {
        self.args.extend([
            "-netdev".into(),
            format!("user,id=n0,tftp={},bootfile={bootfile}", tftp_dir.display()),
            "-device".into(),
            "virtio-net-pci,netdev=n0,bootindex=0".into(),
        ]);
    }

    /// Like [`Machine::net_boot`] without QEMU's iPXE option ROM: the firmware's own PXE
    /// client (OVMF's network stack) fetches `bootfile`.
    pub fn net_boot_firmware_pxe(&mut self, tftp_dir: &Path, bootfile: &str) {
        self.net_boot(tftp_dir, bootfile);
        self.args.last_mut().expect("the NIC").push_str(",romfile=");
    }

    /// A virtio NIC on QEMU's user network (DHCP from 10.0.2.2; the host's loopback is
    /// 10.0.2.2 to the guest), not for booting.
    pub fn nic(&mut self) {
        self.args.extend(["-netdev".into(), "user,id=n1".into(), "-device".into(), "virtio-net-pci,netdev=n1,romfile=".into()]);
    }

    /// Guest RAM in MiB.
    pub fn memory(&mut self, mib: u32) {
        self.memory_mib = mib;
    }

    /// A virtio console (the guest's hvc0) whose output goes to `file`. (A second serial
    /// port cannot be a second kernel console: Linux's 8250 driver is one console.)
    pub fn virtconsole(&mut self, file: &Path) {
        let id = format!("hvc{}", self.consoles.len());
        if self.consoles.is_empty() {
            self.consoles.extend(["-device".into(), "virtio-serial-pci,id=vser0".into()]);
        }
        self.consoles.extend(["-chardev".into(), format!("file,id={id},path={}", file.display()), "-device".into(), format!("virtconsole,chardev={id},bus=vser0.0")]);
    }

    /// `-m` and the extra consoles.
    fn common_args(&self) -> Vec<String> {
        let mut a = vec!["-m".to_string(), self.memory_mib.to_string()];
        a.extend(self.consoles.iter().cloned());
        a
    }

    pub fn disk(&mut self, d: Disk) {
        self.args.extend(d.args);
    }

    /// The rescue stick on USB, first to boot (writable, as a real stick is).
    pub fn usb_boot(&mut self, img: &Path) {
        self.args.extend([
            "-device".into(),
            "qemu-xhci,id=xhci".into(),
            "-drive".into(),
            format!("if=none,id=usb0,format=raw,file={}", img.display()),
            "-device".into(),
            "usb-storage,bus=xhci.0,drive=usb0,serial=STICK1,removable=on,bootindex=0".into(),
        ]);
    }

    /// Boot, wait for QEMU to exit (guest power-off or reboot), return the serial console.
    pub fn run(&self, timeout_s: u64) -> String {
        self.run_until(timeout_s, None)
    }

    /// Drive the serial console like a person: for each `(expect, send)`, wait until the
    /// console shows `expect` (after what the previous step matched), then type `send`; a
    /// `send` starting with `@` is a QEMU monitor command instead (`@sendkey ctrl-alt-delete`).
    /// Returns the console once QEMU exits.
    pub fn run_session(&self, timeout_s: u64, steps: &[(&str, &str)]) -> String {
        use std::io::{Read, Write};
        use std::sync::{Arc, Mutex};
        let accel = std::env::var("SYSCLONE_QEMU_ACCEL").unwrap_or_else(|_| "tcg".into());
        let log = self.dir.join(format!("{}.console.log", self.name));
        let monitor = self.dir.join(format!("{}.monitor", self.name));
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-machine", &format!("q35,accel={accel}"), "-cpu", "max", "-smp", "2", "-nodefaults", "-no-reboot", "-display", "none"])
            .args(["-drive", &format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}")])
            .args(["-drive", &format!("if=pflash,format=raw,unit=1,file={}", self.vars.display())])
            .args(["-serial", "stdio", "-monitor", &format!("unix:{},server=on,wait=off", monitor.display())])
            .args(self.common_args())
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        eprintln!("[{}] {:?}", self.name, cmd);
        let mut child = cmd.spawn().expect("starting qemu-system-x86_64");
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let text = Arc::new(Mutex::new(String::new()));
        let t2 = text.clone();
        let show = std::env::var_os("SYSCLONE_E2E_SHOW_CONSOLE").is_some();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let s = String::from_utf8_lossy(&buf[..n]).replace('\r', "");
                if show {
                    print!("{s}");
                }
                t2.lock().unwrap().push_str(&s);
            }
        });
        let t0 = Instant::now();
        let mut from = 0;
        let dump = |text: &Arc<Mutex<String>>| text.lock().unwrap().clone();
        for (expect, send) in steps {
            loop {
                let now = dump(&text);
                if let Some(i) = now[from..].find(expect) {
                    from += i + expect.len();
                    break;
                }
                if t0.elapsed() > Duration::from_secs(timeout_s) || child.try_wait().ok().flatten().is_some() {
                    let _ = child.kill();
                    let _ = child.wait();
                    fs::write(&log, &now).unwrap();
                    panic!("[{}] console never showed {expect:?}:\n{now}", self.name);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if *send == WAIT {
                continue;
            }
            if let Some(command) = send.strip_prefix('@') {
                let mut m = std::os::unix::net::UnixStream::connect(&monitor).expect("connecting to the QEMU monitor");
                m.write_all(format!("{command}\n").as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            // Type it the way a serial line delivers it.
            stdin.write_all(send.as_bytes()).unwrap();
            stdin.write_all(b"\r").unwrap();
            stdin.flush().unwrap();
        }
        while child.try_wait().ok().flatten().is_none() {
            if t0.elapsed() > Duration::from_secs(timeout_s) {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = child.wait();
        let _ = reader.join();
        let out = dump(&text);
        fs::write(&log, &out).unwrap();
        out
    }

    /// Like [`Machine::run`], but stop the machine as soon as a console line contains `stop`.
    pub fn run_until(&self, timeout_s: u64, stop: Option<&str>) -> String {
        let accel = std::env::var("SYSCLONE_QEMU_ACCEL").unwrap_or_else(|_| "tcg".into());
        let log = self.dir.join(format!("{}.console.log", self.name));
        let mut cmd = Command::new("qemu-system-x86_64");
        let machine = match self.firmware {
            Firmware::OvmfSecureBoot => format!("q35,smm=on,accel={accel}"),
            _ => format!("q35,accel={accel}"),
        };
        cmd.args(["-machine", &machine, "-cpu", "max", "-smp", "2", "-nodefaults", "-no-reboot", "-display", "none"]);
        match self.firmware {
            Firmware::Ovmf | Firmware::OvmfSecureBoot => {
                let code = if self.firmware == Firmware::Ovmf { OVMF_CODE } else { OVMF_CODE_MS };
                if self.firmware == Firmware::OvmfSecureBoot {
                    cmd.args(["-global", "driver=cfi.pflash01,property=secure,value=on"]);
                }
                cmd.args(["-drive", &format!("if=pflash,format=raw,unit=0,readonly=on,file={code}")])
                    .args(["-drive", &format!("if=pflash,format=raw,unit=1,file={}", self.vars.display())]);
            }
            Firmware::SeaBios => {}
        }
        cmd.args(["-serial", "stdio", "-monitor", "none"])
            .args(self.common_args())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let show = std::env::var_os("SYSCLONE_E2E_SHOW_CONSOLE").is_some();
        eprintln!("[{}] {:?}", self.name, cmd);
        let mut child = cmd.spawn().expect("starting qemu-system-x86_64");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).split(b'\n') {
                let Ok(line) = line else { break };
                if tx.send(String::from_utf8_lossy(&line).replace('\r', "")).is_err() {
                    break;
                }
            }
        });
        let t0 = Instant::now();
        let mut text = String::new();
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(l) => {
                    if show {
                        println!("{} | {l}", self.name);
                    }
                    text.push_str(&l);
                    text.push('\n');
                    if stop.is_some_and(|p| l.contains(p)) {
                        let _ = child.kill();
                        let _ = child.wait();
                        fs::write(&log, &text).unwrap();
                        return text;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(_) => {}
            }
            if t0.elapsed() > Duration::from_secs(timeout_s) {
                let _ = child.kill();
                let _ = child.wait();
                fs::write(&log, &text).unwrap();
                panic!("[{}] QEMU did not finish within {timeout_s} s; console so far:\n{text}", self.name);
            }
        }
        let status = child.wait().expect("waiting for QEMU");
        fs::write(&log, &text).unwrap();
        eprintln!("[{}] QEMU exited ({status}) after {:.0} s", self.name, t0.elapsed().as_secs_f64());
        text
    }
}
