//! Save and restore jobs on the host, through the same `job::run` the rescue image's PID 1
//! calls: the images partition is found by selector and mounted (read-write for the save,
//! read-only for the restore), an incremental save against a base on it works, and the
//! restored disk checks clean with the source's files.

use std::fs;
use std::path::Path;

use sysclone_init::job::{self, Job};
use sysclone_testutil::{files_of, make_gpt_disk, require_root, run, tree_sha256, Loop};

fn run_job(text: &str) -> serde_json::Value {
    let j = Job::parse(text).unwrap_or_else(|e| panic!("{e:#}\n{text}"));
    let out = job::run(&j, Path::new("/nonexistent-efivars"), None, false, &Default::default()).unwrap_or_else(|e| panic!("job failed: {e:#}\n{text}"));
    serde_json::from_str(&out).unwrap()
}

#[test]
fn save_and_restore_jobs_mount_the_images_partition() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = Loop::new(&make_gpt_disk(dir, "src.img", "96M", 512), 512);
    let images_img = dir.join("images.img");
    run("truncate", &["-s", "128M", images_img.to_str().unwrap()]);
    let images = Loop::new(&images_img, 512);
    run("sgdisk", &["-n", "1:1M:0", &images.0]);
    run("mkfs.ext4", &["-q", "-F", &images.part(1)]);
    let tgt_img = dir.join("tgt.img");
    run("truncate", &["-s", "128M", tgt_img.to_str().unwrap()]);
    let tgt = Loop::new(&tgt_img, 512);

    let save = |path: &str, base: &str| format!("operation = \"save\"\nsource = \"name={}\"\nimage = {{ disk = \"name={}\", partition = 1, path = \"{path}\"{base} }}\n", src.name(), images.name());
    let r = run_job(&save("images/monday", ""));
    assert!(r["bytes_used"].as_u64().unwrap() > 3 << 20, "{r}");
    let r = run_job(&save("images/tuesday", ", base = \"images/monday\""));
    assert_eq!(r["bytes_shared"], r["bytes_used"], "nothing changed, everything is shared: {r}");

    let restore = format!(
        "operation = \"restore\"\ntarget = \"name={}\"\nimage = {{ disk = \"name={}\", partition = 1, path = \"images/tuesday\" }}\npolicy = \"grow\"\nboot_entry = \"none\"\nconfirm = \"serial\"\n",
        tgt.name(),
        images.name()
    );
    let r = run_job(&restore);
    assert_eq!(r["layout"], "grow", "{r}");
    assert!(r["parts"][1]["resize"].as_str().unwrap().contains("resized"), "{r}");
    // Nothing is left mounted.
    assert!(!fs::read_to_string("/proc/self/mounts").unwrap().contains(&images.part(1)));
    run("e2fsck", &["-fn", &tgt.part(2)]);
    run("fsck.fat", &["-n", &tgt.part(1)]);
    let sums = |dev: &str| {
        let d = files_of(dev, "ext4", &dir.join("m"));
        let s = tree_sha256(&d);
        run("umount", &[d.to_str().unwrap()]);
        s
    };
    assert_eq!(sums(&src.part(2)), sums(&tgt.part(2)));
}
