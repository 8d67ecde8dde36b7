//! The rescue system on the network: DHCP, a job fetched over HTTP and pinned by SHA-256,
//! the report POSTed to nginx's receiver (docs/network.md) — and a job whose pin does not
//! match is refused before anything is written.

use std::fs;
use std::path::Path;

use sysclone_testutil::Nginx;

use crate::qemu::{Disk, Machine};
use crate::{line_with, loader_entry, put_on_stick, run, save_on_host, Scene};

#[test]
fn job_over_http_clones_and_posts_its_report() {
    let Scene { work, src, tgt, stick, .. } = Scene::new("rescue-ui", "200M");
    let w = work.path();
    let n = Nginx::start();
    let job = format!(
        "operation = \"clone\"\nmode = \"smart\"\nverify = true\nsource = \"serial=SRC1\"\ntarget = \"serial=TGT1\"\nconfirm = \"serial\"\nboot_entry = \"none\"\nreport_url = \"http://10.0.2.2:{}/report\"\non_success = \"poweroff\"\non_failure = \"poweroff\"\n",
        n.http
    );
    let job_file = n.www().join("lab.toml");
    fs::write(&job_file, &job).unwrap();
    let sha = run("sha256sum", &[job_file.to_str().unwrap()]).split_whitespace().next().unwrap().to_string();
    let url = format!("http://10.0.2.2:{}/lab.toml", n.http);

    // 1. A wrong pin: refused, nothing written.
    put_on_stick(&stick, "loader/entries/sysclone.conf", &loader_entry(&format!("sysclone.job={url} sysclone.job.sha256={}", "0".repeat(64))));
    let blank = run("sha256sum", &[tgt.to_str().unwrap()]);
    let mut m = Machine::new(w, "netpin");
    m.usb_boot(&stick);
    m.disk(Disk::nvme(&src, "SRC1"));
    m.disk(Disk::virtio(&tgt, "TGT1"));
    m.nic();
    let log = m.run_until(300, Some("[r] retry"));
    let err = line_with(&log, "ERROR:");
    assert!(err.contains("refused") && err.contains("nothing was written") && err.contains(&sha), "{err}");
    assert_eq!(run("sha256sum", &[tgt.to_str().unwrap()]), blank, "a refused job wrote the target");

    // 2. The right pin: DHCP, the job, a verified smart clone, the report posted.
    put_on_stick(&stick, "loader/entries/sysclone.conf", &loader_entry(&format!("sysclone.job={url} sysclone.job.sha256={sha}")));
    let mut m = Machine::new(w, "net");
    m.usb_boot(&stick);
    m.disk(Disk::nvme(&src, "SRC1"));
    m.disk(Disk::virtio(&tgt, "TGT1"));
    m.nic();
    let log = m.run(400);
    let net = line_with(&log, "(dhcp, ");
    assert!(net.contains("10.0.2.15/24") && net.contains("via 10.0.2.2") && net.contains("dhcp"), "{net}");
    assert!(log.contains(&format!("sha256 {} matches sysclone.job.sha256=", &sha[..16])), "{log}");
    assert!(log.contains("SYSCLONE-RESULT ok") && log.contains("report posted to"), "{log}");
    let reports = n.reports();
    assert!(reports.contains("result") && reports.contains("ok") && reports.contains("SRC1") && reports.contains("verified"), "the receiver got: {reports}");
    let v = run("sgdisk", &["-v", tgt.to_str().unwrap()]);
    assert!(v.contains("No problems found"), "{v}");
}

/// A lab machine as the PXE path meets it: iPXE (QEMU's NIC ROM) gets `boot.ipxe` over HTTP
/// from nginx, which loads the kernel and initramfs over HTTP; the rescue system gets an
/// address by DHCP, fetches its job, restores an image served by the same nginx (manifest
/// and chunks by HTTP range requests), posts its report and reboots into the restored disk,
/// which boots.
#[test]
fn pxe_lab_machine_restores_over_http_and_boots_the_restore() {
    let Scene { a, work, src, tgt, .. } = Scene::new("rescue-ui", "200M");
    let w = work.path();
    let expect_root = fs::read_to_string(a.join("fixture/root-sha256")).unwrap().trim().to_string();
    let n = Nginx::start();
    let www = n.www();
    let base = lab_base(&n);
    pxe_lab_server(&a, &n, &src, "target = \"serial=TGT1\"\nconfirm = \"serial\"\nverify = true\nboot_entry = \"first\"\non_success = \"reboot\"\non_failure = \"poweroff\"\n");
    // Run 1: network boot, restore, report, reboot.
    let mut m = Machine::new(w, "lab1");
    m.net_boot(&www, &format!("{base}/boot.ipxe"));
    m.disk(Disk::virtio(&tgt, "TGT1"));
    let log = m.run_until(900, Some("ERROR:"));
    assert!(log.contains("(dhcp, ") && log.contains("SYSCLONE-RESULT ok"), "the restore over the network did not succeed:\n{log}");
    assert!(log.contains("report posted") && log.contains("rebooting"), "{log}");
    let reports = n.reports();
    assert!(reports.contains("golden") && reports.contains("TGT1"), "the receiver got: {reports}");
    let v = run("sgdisk", &["-v", tgt.to_str().unwrap()]);
    assert!(v.contains("No problems found"), "{v}");
    // Run 2: the reboot, from the restored disk alone.
    let mut m2 = Machine::with_vars(w, "lab2", &m.vars);
    m2.disk(Disk::virtio(&tgt, "TGT1"));
    let log2 = m2.run(600);
    let check = line_with(&log2, "SYSCLONE-BOOTCHECK");
    assert_eq!(crate::field(check, "serial"), "TGT1", "{check}");
    assert_eq!(crate::field(check, "root-sha256"), expect_root, "root content of the restored disk:\n{check}");
}

/// A rescue image that trusts a lab key (`image build --trust`, key pair made by minisign):
/// a signed job changed after signing is refused before anything is written; the signed
/// job runs and restores an image whose manifest is signed (`save --sign`) and pinned on the
/// command line (`sysclone.image.sha256=`), both checked before a chunk is fetched.
#[test]
fn signed_jobs_and_images_over_http() {
    let Scene { a, work, src, tgt, stick } = Scene::new("rescue-signed", "200M");
    let w = work.path();
    let (key, key_pub) = (a.join("trust/lab.key"), a.join("trust/lab.pub"));
    let key_id = fs::read_to_string(&key_pub).unwrap().lines().next().unwrap().rsplit(' ').next().unwrap().to_string();
    let n = Nginx::start();
    let www = n.www();
    let base = format!("http://10.0.2.2:{}", n.http);
    save_on_host(&src, &www.join("images/golden"), &["--sign", key.to_str().unwrap()]);
    let manifest_sha = run("sha256sum", &[www.join("images/golden/manifest.json").to_str().unwrap()]).split_whitespace().next().unwrap().to_string();
    let job = www.join("lab.toml");
    let job_text = format!("operation = \"restore\"\ntarget = \"serial=TGT1\"\nconfirm = \"serial\"\nimage = {{ url = \"{base}/images/golden/\" }}\nboot_entry = \"none\"\non_success = \"poweroff\"\non_failure = \"poweroff\"\n");
    fs::write(&job, &job_text).unwrap();
    run("minisign", &["-S", "-s", key.to_str().unwrap(), "-m", job.to_str().unwrap()]);
    let cmdline = format!("sysclone.job={base}/lab.toml sysclone.image.sha256={manifest_sha}");
    put_on_stick(&stick, "loader/entries/sysclone.conf", &loader_entry(&cmdline));
    let blank = run("sha256sum", &[tgt.to_str().unwrap()]);
    let boot = |name: &str, timeout: u64, stop: &str| {
        let mut m = Machine::new(w, name);
        m.usb_boot(&stick);
        m.disk(Disk::nvme(&src, "SRC1"));
        m.disk(Disk::virtio(&tgt, "TGT1"));
        m.nic();
        m.run_until(timeout, Some(stop))
    };

    // 1. The job changed after signing (another target): refused, nothing written.
    fs::write(&job, job_text.replace("serial=TGT1", "serial=SRC1")).unwrap();
    let log = boot("signed-tampered", 300, "[r] retry");
    assert!(log.contains(&format!("trust: 1 signing key(s) ({key_id})")), "{log}");
    let err = line_with(&log, "ERROR:");
    assert!(err.contains("refused") && err.contains("changed after signing") && err.contains("nothing was written"), "{err}");
    assert_eq!(run("sha256sum", &[tgt.to_str().unwrap()]), blank, "a refused job wrote the target");

    // 2. The signed job: the signed and pinned image is restored.
    fs::write(&job, &job_text).unwrap();
    let log = boot("signed", 600, "ERROR:");
    assert!(log.contains(&format!("lab.toml: signature good, by trusted key {key_id}")), "{log}");
    let img = line_with(&log, "manifest signature good");
    assert!(img.contains(&key_id) && img.contains(&format!("{} matches sysclone.image.sha256=", &manifest_sha[..16])), "{img}");
    assert!(log.contains("SYSCLONE-RESULT ok"), "{log}");
    let v = run("sgdisk", &["-v", tgt.to_str().unwrap()]);
    assert!(v.contains("No problems found"), "{v}");
}

/// The lab server's address as a guest on QEMU's user network sees it.
pub(crate) fn lab_base(n: &Nginx) -> String {
    format!("http://10.0.2.2:{}", n.http)
}

/// A PXE lab in nginx's tree: `disk` saved on the host as `images/golden` (the save's JSON
/// report is returned), the rescue-ui image's kernel and initramfs under `pxe/`, `boot.ipxe`
/// naming the job `lab.toml`, and the job: a restore of the golden image with `keys` (the
/// target, confirm, boot entry, on_success, …) and the report posted back to nginx.
pub(crate) fn pxe_lab_server(a: &Path, n: &Nginx, disk: &Path, keys: &str) -> serde_json::Value {
    let www = n.www();
    let base = lab_base(n);
    let saved = save_on_host(disk, &www.join("images/golden"), &[]);
    fs::create_dir_all(www.join("pxe")).unwrap();
    for f in ["vmlinuz", "initramfs.img"] {
        fs::copy(a.join("rescue-ui/pxe").join(f), www.join("pxe").join(f)).unwrap();
    }
    fs::write(
        www.join("boot.ipxe"),
        format!("#!ipxe\nkernel {base}/pxe/vmlinuz initrd=initramfs.img console=ttyS0,115200 panic=10 sysclone.job={base}/lab.toml\ninitrd {base}/pxe/initramfs.img\nboot\n"),
    )
    .unwrap();
    fs::write(www.join("lab.toml"), format!("operation = \"restore\"\nimage = {{ url = \"{base}/images/golden/\" }}\nreport_url = \"{base}/report\"\n{keys}")).unwrap();
    saved
}
