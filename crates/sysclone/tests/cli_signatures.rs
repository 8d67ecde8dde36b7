//! Signatures, with keys and signatures made by the real `minisign` tool (Debian's package):
//! a job or an image manifest signed by a trusted key is used; a signature by another key, a
//! job or manifest changed after signing, or a missing signature is refused before anything
//! is written; an image pinned by the job's `image.sha256` needs no signature, a wrong pin is
//! refused. Images over HTTP come from nginx on loopback.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sysclone_testutil::{make_gpt_disk, require_root, run, sha256, Loop, Nginx};

const BIN: &str = env!("CARGO_BIN_EXE_sysclone");

fn minisign(args: &[&str]) {
    let out = Command::new("minisign").args(args).output().expect("minisign (apt-get install minisign)");
    assert!(out.status.success(), "minisign {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// Two key pairs without passwords: (public, secret, key ID as minisign prints it).
fn keys(dir: &Path) -> [(PathBuf, PathBuf, String); 2] {
    ["a", "b"].map(|n| {
        let (p, s) = (dir.join(format!("{n}.pub")), dir.join(format!("{n}.key")));
        minisign(&["-G", "-W", "-p", p.to_str().unwrap(), "-s", s.to_str().unwrap()]);
        let id = fs::read_to_string(&p).unwrap().lines().next().unwrap().rsplit(' ').next().unwrap().to_string();
        (p, s, id)
    })
}

/// `minisign -Sm FILE`: FILE.minisig.
fn sign(key: &Path, file: &Path) {
    minisign(&["-S", "-s", key.to_str().unwrap(), "-m", file.to_str().unwrap()]);
}

fn sysclone(args: &[&str]) -> (Output, String) {
    let out = Command::new(BIN).arg("--progress").arg("none").args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out, text)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn job_check_reports_and_enforces_signatures() {
    let t = tempfile::tempdir().unwrap();
    let [(a_pub, a_key, a_id), (b_pub, _, _)] = keys(t.path());
    let job = t.path().join("job.toml");
    fs::write(&job, "operation = \"clone\"\nsource = \"serial=A\"\ntarget = \"serial=B\"\n").unwrap();

    let (out, text) = sysclone(&["job", "check", s(&job)]);
    assert!(out.status.success() && !text.contains("signature"), "without --trust nothing is checked: {text}");
    let (out, text) = sysclone(&["job", "check", s(&job), "--trust", s(&a_pub)]);
    assert!(!out.status.success() && text.contains("refused: it has no signature"), "{text}");

    sign(&a_key, &job);
    let (out, text) = sysclone(&["job", "check", s(&job), "--trust", s(&a_pub)]);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("signature: signature good, by trusted key {a_id}")), "{text}");
    // Any of several trusted keys will do.
    let (out, _) = sysclone(&["job", "check", s(&job), "--trust", s(&b_pub), "--trust", s(&a_pub)]);
    assert!(out.status.success());
    let (out, text) = sysclone(&["job", "check", s(&job), "--trust", s(&a_pub), "--json"]);
    assert!(out.status.success(), "{text}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["signature"]["key_id"], a_id.as_str(), "{doc}");
    // The signature somewhere else.
    let elsewhere = t.path().join("sig");
    fs::rename(job.with_extension("toml.minisig"), &elsewhere).unwrap();
    let (out, text) = sysclone(&["job", "check", s(&job), "--trust", s(&a_pub), "--sig", s(&elsewhere)]);
    assert!(out.status.success(), "{text}");
    fs::rename(&elsewhere, job.with_extension("toml.minisig")).unwrap();

    let (out, text) = sysclone(&["job", "check", s(&job), "--trust", s(&b_pub)]);
    assert!(!out.status.success() && text.contains(&format!("signed by key {a_id}, which is not trusted")), "{text}");
    // One changed byte (serial=B becomes serial=C: another disk overwritten).
    fs::write(&job, "operation = \"clone\"\nsource = \"serial=A\"\ntarget = \"serial=C\"\n").unwrap();
    let (out, text) = sysclone(&["job", "check", s(&job), "--trust", s(&a_pub)]);
    assert!(!out.status.success() && text.contains("changed after signing"), "{text}");
    let (out, text) = sysclone(&["job", "check", s(&job), "--trust", s(&job)]);
    assert!(!out.status.success() && text.contains("is not a minisign public key"), "{text}");
}

/// The manifest's JSON changed (a field a person would not notice) and its checksum file
/// made to agree, so only the signature can tell.
fn tamper_manifest(img: &Path) {
    let m = img.join("manifest.json");
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&m).unwrap()).unwrap();
    v["created_utc"] = "2001-01-01T00:00:00Z".into();
    fs::write(&m, serde_json::to_vec(&v).unwrap()).unwrap();
    fs::write(img.join("manifest.json.sha256"), format!("{}  manifest.json\n", sha256(&m))).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn signed_images_restore_and_others_are_refused_before_writing() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let [(a_pub, a_key, a_id), (b_pub, b_key, _)] = keys(d);
    let n = Nginx::start();
    let www = n.www();
    let src_img = make_gpt_disk(d, "src.img", "96M", 512);
    let src = Loop::with_args(&src_img, &["--read-only"]);
    let img = www.join("golden");
    let (out, text) = sysclone(&["save", "--source", &src.0, "--to", s(&img), "--sign", s(&a_key)]);
    assert!(out.status.success(), "{text}");
    drop(src);
    // The real tool agrees with what save --sign wrote.
    minisign(&["-V", "-p", s(&a_pub), "-m", s(&img.join("manifest.json"))]);
    let (out, text) = sysclone(&["image", "info", s(&img)]);
    assert!(out.status.success() && text.contains("signed:  yes"), "{text}");
    let (out, text) = sysclone(&["image", "verify", s(&img), "--trust", s(&a_pub)]);
    assert!(out.status.success() && text.contains(&format!("by trusted key {a_id}")), "{text}");
    let (out, text) = sysclone(&["image", "verify", s(&img), "--trust", s(&b_pub), "--json"]);
    assert!(!out.status.success() && text.contains("which is not trusted"), "{text}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((r["ok"].as_bool(), r["chunks"] == r["chunks_ok"]), (Some(false), true), "every chunk is good, the manifest is not trusted: {r}");

    let tgt_img = d.join("tgt.img");
    run("truncate", &["-s", "128M", s(&tgt_img)]);
    let tgt = Loop::new(&tgt_img, 512);
    let blank = sha256(&tgt_img);
    let refused = |from: &str, key: &Path, why: &str| {
        let (out, text) = sysclone(&["restore", "--from", from, "--target", &tgt.0, "--trust", s(key), "--yes"]);
        assert!(!out.status.success() && text.contains(why), "restore from {from} must be refused ({why}): {text}");
        assert_eq!(sha256(&tgt_img), blank, "a refused restore from {from} wrote the target");
    };
    let url = |name: &str| format!("http://127.0.0.1:{}/{name}/", n.http);
    refused(s(&img), &b_pub, "which is not trusted");
    refused(&url("golden"), &b_pub, "which is not trusted");
    // Changed after signing.
    copy_dir(&img, &www.join("changed"));
    tamper_manifest(&www.join("changed"));
    refused(&url("changed"), &a_pub, "changed after signing");
    // Re-signed by an untrusted key.
    sign(&b_key, &www.join("changed/manifest.json"));
    refused(&url("changed"), &a_pub, "which is not trusted");
    // No signature.
    copy_dir(&img, &www.join("unsigned"));
    fs::remove_file(www.join("unsigned/manifest.json.minisig")).unwrap();
    refused(&url("unsigned"), &a_pub, "it has no signature");
    // Without --trust, the unsigned image is restored as before (and so is the changed one,
    // whose checksum file agrees: the signature is what protects it).
    let (out, text) = sysclone(&["restore", "--from", &url("unsigned"), "--target", &tgt.0, "--yes", "--dry-run"]);
    assert!(out.status.success(), "{text}");

    // The signed image over HTTP, trusted: restored, checked.
    let (out, text) = sysclone(&["restore", "--from", &url("golden"), "--target", &tgt.0, "--trust", s(&a_pub), "--yes", "--json"]);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("manifest signature good, by trusted key {a_id}")), "{text}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["trust"].as_str().unwrap().contains(&a_id), "{r}");
    let v = run("sgdisk", &["-v", &tgt.0]);
    assert!(v.contains("No problems found"), "{v}");
    run("partx", &["-u", &tgt.0]);
    run("e2fsck", &["-fn", &tgt.part(2)]);

    // A signed job pins the unsigned image by its manifest's SHA-256 (image.sha256): a wrong
    // pin is refused before anything is written, the right one restores.
    run("wipefs", &["-a", "-q", &tgt.0]);
    run("dd", &["if=/dev/zero", &format!("of={}", tgt.0), "bs=1M", "count=128", "status=none"]);
    let blank = sha256(&tgt_img);
    let job = d.join("job.toml");
    let job_for = |pin: &str| {
        fs::write(&job, format!("operation = \"restore\"\ntarget = \"name={}\"\nimage = {{ url = \"{}\", sha256 = \"{pin}\" }}\nboot_entry = \"none\"\n", tgt.name(), url("unsigned"))).unwrap();
        sign(&a_key, &job);
    };
    job_for(&"0".repeat(64));
    let (out, text) = sysclone(&["job", "run", s(&job), "--trust", s(&a_pub), "--yes"]);
    assert!(!out.status.success() && text.contains("the job's image.sha256 pins 000"), "{text}");
    assert_eq!(sha256(&tgt_img), blank, "a refused job wrote the target");
    job_for(&sha256(&www.join("unsigned/manifest.json")));
    let (out, text) = sysclone(&["job", "run", s(&job), "--trust", s(&a_pub), "--yes"]);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("matches the job's image.sha256"), "{text}");
    assert_ne!(sha256(&tgt_img), blank);
    let v = run("sgdisk", &["-v", &tgt.0]);
    assert!(v.contains("No problems found"), "{v}");
}
