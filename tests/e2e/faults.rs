//! PID 1 never dies: a fault at every stage — an injected panic, an aborted worker, a write
//! error on the target, a job file that does not parse, a job naming a disk that is not
//! there — ends at the console menu with the reason, and Ctrl-Alt-Del still works.

use std::fs;

use crate::qemu::{Disk, Machine, WAIT};
use crate::{line_with, loader_entry, put_on_stick, run, Scene};

const JOB: &str = "operation = \"clone\"\nmode = \"exact\"\nsource = \"serial=SRC1\"\ntarget = \"serial=TGT1\"\nconfirm = \"serial\"\non_failure = \"menu\"\non_success = \"poweroff\"\n";

#[test]
fn faults_at_every_stage_end_at_the_menu() {
    let Scene { work, src, tgt, stick, .. } = Scene::new("rescue", "200M");
    let w = work.path();
    let src_sum = run("sha256sum", &[src.to_str().unwrap()]);

    // 1. A panic while listing disks, then an abort of the whole worker process as the job
    //    starts, then a target whose every write fails; finally Ctrl-Alt-Del at the menu.
    put_on_stick(&stick, "sysclone/job.toml", JOB);
    put_on_stick(&stick, "loader/entries/sysclone.conf", &loader_entry("sysclone.job=sysclone/job.toml sysclone.debug=panic@disks,abort@job"));
    let mut m = Machine::new(w, "faults");
    m.usb_boot(&stick);
    m.disk(Disk::nvme(&src, "SRC1"));
    m.disk(Disk::virtio_write_fails(&tgt, "TGT1"));
    let log = m.run_session(
        400,
        &[
            ("[r] retry", "r"),
            ("choose retry to run it", WAIT),
            ("[r] retry", "r"),
            ("ERROR: cloning", WAIT),
            ("[r] retry", "@sendkey ctrl-alt-delete"),
        ],
    );
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR:")).collect();
    assert_eq!(errors.len(), 3, "{log}");
    assert!(errors[0].contains("internal error (panic)") && errors[0].contains("panic@disks"), "{}", errors[0]);
    assert!(errors[1].contains("killed by SIGABRT"), "{log}");
    assert!(errors[2].contains("cloning") && errors[2].contains("vda"), "the write error must name the operation and disk: {}", errors[2]);
    assert!(log.contains("Ctrl-Alt-Del: rebooting"), "{log}");
    assert_eq!(run("sha256sum", &[src.to_str().unwrap()]), src_sum, "the source changed");
    let v = fs::read(&tgt).unwrap();
    assert_ne!(&v[512..520], b"EFI PART", "the failed target must not look complete");

    // 2. A job file that is not TOML: the error names the line and column.
    put_on_stick(&stick, "loader/entries/sysclone.conf", &loader_entry("sysclone.job=sysclone/job.toml"));
    put_on_stick(&stick, "sysclone/job.toml", "operation = \"clone\"\nsource = [\n");
    let mut m = Machine::new(w, "badjob");
    m.usb_boot(&stick);
    m.disk(Disk::nvme(&src, "SRC1"));
    let log = m.run_session(300, &[("[r] retry", "p")]);
    let err = line_with(&log, "ERROR:");
    assert!(err.contains("job file sysclone/job.toml") && err.contains("line"), "{err}");
    assert!(log.contains("powering off"), "{log}");

    // 3. A job naming a disk that is not there: nothing written, the menu waits.
    put_on_stick(&stick, "sysclone/job.toml", &JOB.replace("serial=TGT1", "serial=NOSUCHDISK"));
    let mut m = Machine::new(w, "nodisk");
    m.usb_boot(&stick);
    m.disk(Disk::nvme(&src, "SRC1"));
    let log = m.run_session(300, &[("[r] retry", "p")]);
    let err = line_with(&log, "ERROR:");
    assert!(err.contains("NOSUCHDISK"), "{err}");
    assert_eq!(run("sha256sum", &[src.to_str().unwrap()]), src_sum, "the source changed");
}
