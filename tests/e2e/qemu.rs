//! A QEMU machine for the tests: q35, OVMF, TCG (or KVM when SYSCLONE_QEMU_ACCEL=kvm),
//! serial console captured to a file, `-no-reboot` so a guest reboot ends the run.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

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

pub struct Machine {
    name: String,
    dir: PathBuf,
    pub vars: PathBuf,
    args: Vec<String>,
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
        Machine { name: name.into(), dir: dir.into(), vars: own, args: Vec::new() }
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

    /// Like [`Machine::run`], but stop the machine as soon as a console line contains `stop`.
    pub fn run_until(&self, timeout_s: u64, stop: Option<&str>) -> String {
        let accel = std::env::var("SYSCLONE_QEMU_ACCEL").unwrap_or_else(|_| "tcg".into());
        let log = self.dir.join(format!("{}.console.log", self.name));
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-machine", &format!("q35,accel={accel}"), "-cpu", "max", "-m", "1024", "-smp", "2", "-nodefaults", "-no-reboot", "-display", "none"])
            .args(["-drive", &format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}")])
            .args(["-drive", &format!("if=pflash,format=raw,unit=1,file={}", self.vars.display())])
            .args(["-serial", "stdio", "-monitor", "none"])
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
