//! The rescue system on the network: DHCP, a job fetched over HTTP and pinned by SHA-256,
//! the report POSTed to nginx's receiver (docs/network.md) — and a job whose pin does not
//! match is refused before anything is written.

use std::fs;

use sysclone_testutil::Nginx;

use crate::qemu::{Disk, Machine};
use crate::{line_with, loader_entry, put_on_stick, run, Scene};

#[test]
fn job_over_http_clones_and_posts_its_report() {
    let Scene { work, src, tgt, stick, .. } = Scene::new("rescue-ui", "200M");
    let w = work.path();
    let n = Nginx::start();
    let job = format!(
        "operation = \"clone\"\nmode = \"smart\"\nverify = true\nsource = \"serial=SRC1\"\ntarget = \"serial=TGT1\"\nboot_entry = \"none\"\nreport_url = \"http://10.0.2.2:{}/report\"\non_success = \"poweroff\"\non_failure = \"poweroff\"\n",
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
    assert!(err.contains("refusing to run it") && err.contains(&sha), "{err}");
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
    assert!(log.contains("sha256 matches the pinned"), "{log}");
    assert!(log.contains("SYSCLONE-RESULT ok") && log.contains("report posted to"), "{log}");
    let reports = n.reports();
    assert!(reports.contains("result") && reports.contains("ok") && reports.contains("SRC1") && reports.contains("verified"), "the receiver got: {reports}");
    let v = run("sgdisk", &["-v", tgt.to_str().unwrap()]);
    assert!(v.contains("No problems found"), "{v}");
}
