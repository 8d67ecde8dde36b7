//! Helpers for host tests that use real loop devices and the filesystems' own tools.
//! Tests that need root fail with a message when run without it; they never skip.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Run a command; panic with its output if it fails. Returns stdout.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// SHA-256 of a file, via sha256sum.
pub fn sha256(path: &Path) -> String {
    run("sha256sum", &[path.to_str().expect("utf-8 path")]).split_whitespace().next().unwrap_or_default().to_string()
}

/// Panic unless running as root.
pub fn require_root() {
    let root = fs::read_to_string("/proc/self/status").unwrap_or_default().lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    assert!(root, "this test needs root for loop devices (run scripts/test as root)");
}

/// A loop device over an image file, detached on drop.
pub struct Loop(pub String);

impl Loop {
    pub fn new(img: &Path, sector: u32) -> Loop {
        Self::with_args(img, &["--sector-size", &sector.to_string()])
    }

    pub fn with_args(img: &Path, extra: &[&str]) -> Loop {
        let mut args = vec!["--find", "--show"];
        args.extend_from_slice(extra);
        let p = img.to_str().expect("utf-8 path");
        args.push(p);
        let dev = run("losetup", &args).trim().to_string();
        // A partition left behind by an earlier user of this loop number (still open when
        // that device was detached) would block the new table's partitions: drop them.
        let _ = Command::new("partx").args(["-d", &dev]).stderr(std::process::Stdio::null()).status();
        Loop(dev)
    }

    /// Detach now (the device number may be reused at once by someone else).
    pub fn detach(self) {
        run("losetup", &["-d", &self.0]);
        std::mem::forget(self);
    }

    /// Kernel name, e.g. `loop3`.
    pub fn name(&self) -> &str {
        self.0.trim_start_matches("/dev/")
    }

    /// Partition `n`'s device node, after asking the kernel to scan and waiting for it.
    pub fn part(&self, n: u32) -> String {
        let p = format!("{}p{n}", self.0);
        let _ = Command::new("partx").args(["-u", &self.0]).status();
        for _ in 0..100 {
            if Path::new(&p).exists() {
                return p;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{p} did not appear");
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

/// A GPT disk image of `size` (e.g. "96M") with an ESP (FAT32, 40 MiB) and an ext4 root
/// filling the rest, holding a few known files. Returns the image path.
pub fn make_gpt_disk(dir: &Path, name: &str, size: &str, sector: u32) -> PathBuf {
    let img = dir.join(name);
    run("truncate", &["-s", size, img.to_str().expect("utf-8 path")]);
    let l = Loop::new(&img, sector);
    run("sgdisk", &["-n", "1:1M:+40M", "-t", "1:ef00", "-c", "1:ESP", "-n", "2:0:0", "-t", "2:8300", "-c", "2:root", &l.0]);
    let p1 = l.part(1);
    let p2 = l.part(2);
    let content = dir.join(format!("{name}.content"));
    fs::create_dir_all(content.join("etc")).expect("content dir");
    fs::write(content.join("etc/hostname"), "fixture\n").expect("file");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    fs::write(content.join("big.bin"), big).expect("file");
    run("mkfs.fat", &["-F", "32", "-S", &sector.to_string(), "-n", "ESP", &p1]);
    run("mkfs.ext4", &["-q", "-F", "-b", "4096", "-d", content.to_str().expect("utf-8"), "-L", "root", &p2]);
    img
}

/// A disk image served through qemu-storage-daemon with blkdebug rules, exported as a file
/// over FUSE and attached as a loop device: a real block device whose chosen sectors fail
/// to read with EIO. Stopped and detached on drop.
pub struct FaultyDisk {
    dev: Option<Loop>,
    daemon: std::process::Child,
    mountpoint: PathBuf,
}

impl FaultyDisk {
    /// `bad` are 512-byte sector numbers whose reads fail (every read overlapping them).
    pub fn new(img: &Path, bad: &[u64]) -> FaultyDisk {
        Self::with_limit(img, bad, None)
    }

    /// Like [`FaultyDisk::new`], reading at most `read_bps` bytes per second when given.
    pub fn with_limit(img: &Path, bad: &[u64], read_bps: Option<u64>) -> FaultyDisk {
        let dir = img.parent().expect("image in a directory");
        let stem = img.file_name().expect("file name").to_string_lossy();
        let rules = dir.join(format!("{stem}.blkdebug.conf"));
        let mut text = String::new();
        for s in bad {
            text.push_str(&format!("[inject-error]\nevent = \"read_aio\"\nerrno = \"5\"\nsector = \"{s}\"\n\n"));
        }
        fs::write(&rules, text).expect("writing blkdebug rules");
        let mountpoint = dir.join(format!("{stem}.fuse"));
        fs::write(&mountpoint, b"").expect("creating the FUSE mount point");
        let mut args: Vec<String> = vec![
            "--blockdev".into(),
            format!("driver=file,node-name=file0,filename={}", img.display()),
            "--blockdev".into(),
            format!("driver=blkdebug,node-name=dbg0,config={},image=file0", rules.display()),
            "--blockdev".into(),
            "driver=raw,node-name=raw0,file=dbg0".into(),
        ];
        let mut top = "raw0";
        if let Some(bps) = read_bps {
            args.extend(["--object".into(), format!("throttle-group,id=tg0,x-bps-read={bps}")]);
            args.extend(["--blockdev".into(), "driver=throttle,node-name=thr0,throttle-group=tg0,file=raw0".into()]);
            top = "thr0";
        }
        args.extend(["--export".into(), format!("type=fuse,id=exp0,node-name={top},mountpoint={},writable=off", mountpoint.display())]);
        let daemon = Command::new("qemu-storage-daemon")
            .args(&args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("starting qemu-storage-daemon (package qemu-system-common / qemu-utils)");
        let want = fs::metadata(img).expect("image").len();
        for _ in 0..100 {
            if fs::metadata(&mountpoint).map(|m| m.len()).unwrap_or(0) == want {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(fs::metadata(&mountpoint).map(|m| m.len()).unwrap_or(0), want, "the FUSE export did not appear");
        let dev = Loop::with_args(&mountpoint, &["--read-only"]);
        FaultyDisk { dev: Some(dev), daemon, mountpoint }
    }

    /// The loop device, e.g. `/dev/loop4`.
    pub fn dev(&self) -> &str {
        &self.dev.as_ref().expect("attached").0
    }
}

impl Drop for FaultyDisk {
    fn drop(&mut self) {
        drop(self.dev.take());
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // The loop device lets go of the export a moment after it is detached: retry, and
        // detach lazily as the last resort so no stale FUSE mount outlives the test.
        for _ in 0..20 {
            let quiet = Command::new("umount").arg(&self.mountpoint).stderr(std::process::Stdio::null()).status();
            if quiet.map(|s| s.success()).unwrap_or(false) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = Command::new("umount").arg("-l").arg(&self.mountpoint).status();
    }
}

/// `n` pseudo-random (incompressible) bytes; `seed` varies them.
pub fn noise(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Fill `dir` with a mix of files: incompressible ones of `big` bytes, many small ones, and
/// some that are written and deleted again (so freed blocks hold stale data). `seed` varies
/// the content.
pub fn fill_tree(dir: &Path, big: usize, seed: u32) {
    let data = noise;
    fs::create_dir_all(dir.join("small/deeper")).expect("dirs");
    for i in 0..3u32 {
        fs::write(dir.join(format!("big{i}.bin")), data(big, seed + i)).expect("file");
    }
    for i in 0..200u32 {
        fs::write(dir.join(format!("small/deeper/f{i}.txt")), format!("file {i} seed {seed}\n").repeat(i as usize % 7 + 1)).expect("file");
    }
    fs::write(dir.join("deleted.bin"), data(big, seed + 99)).expect("file");
    let _ = Command::new("sync").status();
    fs::remove_file(dir.join("deleted.bin")).expect("remove");
}

/// A 256 MiB GPT disk with an ESP (FAT32), an ext4 root, an NTFS data partition and swap,
/// each filled by its own tools. Returns the image path.
pub fn make_multi_fs_disk(dir: &Path) -> PathBuf {
    let img = dir.join("multi.img");
    run("truncate", &["-s", "256M", img.to_str().expect("utf-8")]);
    let l = Loop::new(&img, 512);
    run("sgdisk", &["-n", "1:1M:+40M", "-t", "1:ef00", "-c", "1:ESP", "-n", "2:0:+100M", "-t", "2:8304", "-c", "2:root", "-n", "3:0:+80M", "-t", "3:0700", "-c", "3:data", "-n", "4:0:0", "-t", "4:8200", "-c", "4:swap", &l.0]);
    let (p1, p2, p3, p4) = (l.part(1), l.part(2), l.part(3), l.part(4));
    // ESP: FAT32, files copied in with mtools.
    run("mkfs.fat", &["-F", "32", "-n", "ESP", &p1]);
    let esp_src = dir.join("esp-content");
    fill_tree(&esp_src, 2 << 20, 1);
    let esp_img = p1.clone();
    for e in fs::read_dir(&esp_src).expect("dir").flatten() {
        run("mcopy", &["-s", "-i", &esp_img, e.path().to_str().expect("utf-8"), "::/"]);
    }
    // ext4, filled through a real mount.
    run("mkfs.ext4", &["-q", "-F", "-L", "root", &p2]);
    let mnt = dir.join("mnt");
    fs::create_dir_all(&mnt).expect("mnt");
    run("mount", &[&p2, mnt.to_str().expect("utf-8")]);
    fill_tree(&mnt, 6 << 20, 2);
    run("umount", &[mnt.to_str().expect("utf-8")]);
    // NTFS, filled through ntfs-3g (FUSE).
    run("mkntfs", &["-Q", "-F", "-L", "data", &p3]);
    run("ntfs-3g", &[&p3, mnt.to_str().expect("utf-8")]);
    fill_tree(&mnt, 4 << 20, 3);
    run("umount", &[mnt.to_str().expect("utf-8")]);
    run("mkswap", &["-L", "swap", &p4]);
    img
}

/// Mount `dev` read-only with `how` ("ext4" through the kernel, "ntfs" through ntfs-3g),
/// or copy a FAT volume out with mtools ("fat"); return the directory holding the files.
pub fn files_of(dev: &str, how: &str, dir: &Path) -> PathBuf {
    let d = dir.join(dev.trim_start_matches("/dev/"));
    fs::create_dir_all(&d).expect("mount point");
    match how {
        "ext4" => run("mount", &["-o", "ro", dev, d.to_str().expect("utf-8")]),
        "ntfs" => run("ntfs-3g", &["-o", "ro", dev, d.to_str().expect("utf-8")]),
        _ => run("mcopy", &["-s", "-n", "-i", dev, "::/", d.to_str().expect("utf-8")]),
    };
    d
}

/// Every regular file below `dir` with its SHA-256, sorted by path (`sha256sum` lines).
pub fn tree_sha256(dir: &Path) -> String {
    let script = "cd \"$1\" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum";
    run("sh", &["-c", script, "sh", dir.to_str().expect("utf-8")])
}

/// Compare the files of the filesystems on partitions `a` and `b` (read as `how`, see
/// [`files_of`]) by hashing every file; unmounts afterwards. Panics naming the difference.
pub fn assert_same_files(a: &str, b: &str, how: &str, dir: &Path) {
    let (da, db) = (files_of(a, how, dir), files_of(b, how, dir));
    let (ha, hb) = (tree_sha256(&da), tree_sha256(&db));
    if how != "fat" {
        let _ = Command::new("umount").arg(&da).status();
        let _ = Command::new("umount").arg(&db).status();
    }
    assert!(ha.lines().count() > 3, "{a} ({how}) holds almost no files:\n{ha}");
    if ha != hb {
        let only_a: Vec<&str> = ha.lines().filter(|l| !hb.contains(l)).take(10).collect();
        let only_b: Vec<&str> = hb.lines().filter(|l| !ha.contains(l)).take(10).collect();
        panic!("files of {a} and {b} ({how}) differ:\nonly in {a}: {only_a:#?}\nonly in {b}: {only_b:#?}");
    }
}

/// A copy of [`make_multi_fs_disk`]'s disk (`src`) on `tgt` is sound: `sgdisk -v` clean,
/// `fsck.fat -n`, `e2fsck -fn` and `ntfsfix -n` pass, swap is there, and every file of the
/// three filesystems hashes the same as on the source (`dir` holds the mount points).
pub fn assert_multi_fs_copy(src: &Loop, tgt: &Loop, dir: &Path) {
    let v = run("sgdisk", &["-v", &tgt.0]);
    assert!(v.contains("No problems found"), "{v}");
    run("fsck.fat", &["-n", &tgt.part(1)]);
    run("e2fsck", &["-fn", &tgt.part(2)]);
    run("ntfsfix", &["-n", &tgt.part(3)]);
    assert!(run("file", &["-s", &tgt.part(4)]).contains("swap"), "swap signature missing");
    for (n, how) in [(1, "fat"), (2, "ext4"), (3, "ntfs")] {
        assert_same_files(&src.part(n), &tgt.part(n), how, dir);
    }
}

// ---- nginx for the network tests ----

/// nginx on loopback for tests: serves `www()` over HTTP (`http` port) and HTTPS (`https`
/// port, certificate for 127.0.0.1 signed by a lab CA at `dir/ca.pem`), and receives reports
/// as docs/network.md shows: POSTs to /report are logged with their body to `reports()`.
pub struct Nginx {
    child: Child,
    pub dir: tempfile::TempDir,
    pub http: u16,
    pub https: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers too (SIGKILL would orphan them).
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn sh(cmd: &str, args: &[&str], dir: &Path) {
    let out = Command::new(cmd).args(args).current_dir(dir).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A lab CA and a server certificate for 127.0.0.1 signed by it.
fn make_certs(dir: &Path) {
    sh("openssl", &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=sysclone test lab CA"], dir);
    sh("openssl", &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1"], dir);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    sh("openssl", &["x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf"], dir);
}

fn nginx() -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("www")).unwrap();
    std::fs::create_dir_all(d.join("logs")).unwrap();
    make_certs(d);
    let (http, https) = (free_port(), free_port());
    let conf = format!(
        "user root;\nerror_log {d}/logs/error.log;\npid {d}/nginx.pid;\nevents {{}}\nhttp {{\n  log_format sent '$status $body_bytes_sent $request_uri';\n  access_log {d}/logs/access.log sent;\n  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n  log_format report escape=json '$time_iso8601 $remote_addr $request_body';\n  client_body_buffer_size 4m; client_max_body_size 16m;\n  server {{\n    listen 127.0.0.1:{http};\n    listen 127.0.0.1:{https} ssl;\n    ssl_certificate {d}/srv.pem; ssl_certificate_key {d}/srv.key;\n    root {d}/www;\n    location = /report {{ access_log {d}/logs/reports.log report; proxy_pass http://127.0.0.1:{http}/received; }}\n    location = /received {{ return 204; }}\n  }}\n}}\n",
        d = d.display()
    );
    std::fs::write(d.join("nginx.conf"), conf).unwrap();
    let child = Command::new("nginx").args(["-c", &d.join("nginx.conf").display().to_string(), "-p", &d.display().to_string(), "-g", "daemon off;"]).spawn().expect("nginx (apt-get install nginx-light)");
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", https)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "nginx did not start: {}", std::fs::read_to_string(d.join("logs/error.log")).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(50));
    }
    Nginx { child, dir, http, https }
}

impl Nginx {
    pub fn start() -> Nginx {
        nginx()
    }
    /// The served directory.
    pub fn www(&self) -> PathBuf {
        self.dir.path().join("www")
    }
    /// Bytes of response bodies nginx sent so far (its access log).
    pub fn bytes_sent(&self) -> u64 {
        let log = std::fs::read_to_string(self.dir.path().join("logs/access.log")).unwrap_or_default();
        log.lines().filter_map(|l| l.split(' ').nth(1)?.parse::<u64>().ok()).sum()
    }
    /// What the report receiver logged.
    pub fn reports(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/reports.log")).unwrap_or_default()
    }
}



/// CRC-32 (IEEE), bitwise: the tests' own, independent of the code under test.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &x in data {
        c ^= x as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
        }
    }
    !c
}

/// Set GPT entry `idx`'s (0-based) first LBA (`field` 32) or last LBA (40) in the primary
/// and/or the backup table of a 512-byte-sector disk image, with every CRC made right
/// again: a table consistent in itself, but hostile.
pub fn patch_gpt_entry(b: &mut [u8], primary: bool, backup: bool, idx: usize, field: usize, val: u64) {
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes")) as usize;
    let len = b.len();
    for (ho, yes) in [(512, primary), (len - 512, backup)] {
        if !yes {
            continue;
        }
        let elba = u64::from_le_bytes(b[ho + 72..ho + 80].try_into().expect("8 bytes")) as usize;
        let (n, esz) = (u32_at(b, ho + 80), u32_at(b, ho + 84));
        let at = elba * 512 + idx * esz + field;
        b[at..at + 8].copy_from_slice(&val.to_le_bytes());
        let crc = crc32(&b[elba * 512..elba * 512 + n * esz]);
        b[ho + 88..ho + 92].copy_from_slice(&crc.to_le_bytes());
        b[ho + 16..ho + 20].fill(0);
        let hsz = u32_at(b, ho + 12);
        let crc = crc32(&b[ho..ho + hsz]);
        b[ho + 16..ho + 20].copy_from_slice(&crc.to_le_bytes());
    }
}
