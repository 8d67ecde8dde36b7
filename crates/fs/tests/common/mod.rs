//! Helpers for the real-filesystem tests: images made by each filesystem's own mkfs, filled
//! through its own driver or tools, smart-copied by the map onto garbage, checked by its own
//! fsck and compared file by file. Tests that need root or a tool fail with a message; they
//! never skip.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sysclone_fs::{used_map, UsedMap};

/// Panic unless `cmd` is installed.
pub fn need_tool(cmd: &str, pkg: &str) {
    let found =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).chain(["/sbin".into(), "/usr/sbin".into()]).any(|d| d.join(cmd).is_file())).unwrap_or(false);
    assert!(found, "this test needs `{cmd}`: install the Debian package {pkg} (apt-get install -y {pkg})");
}

/// Panic unless running as root.
pub fn need_root(why: &str) {
    let root = fs::read_to_string("/proc/self/status").unwrap_or_default().lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    assert!(root, "this test needs root ({why}); run it as root");
}

/// Run a command, panic with its output if it fails; returns stdout.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    let (so, se) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd} {args:?} failed ({}):\n{so}{se}", out.status);
    so.into_owned()
}

/// Run a command; (success, stdout + stderr).
pub fn run_status(cmd: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(cmd).args(args).stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

pub fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// xorshift64*: deterministic, incompressible enough for test data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// The expected tree: relative path -> contents (directories implied, `None` = directory).
pub type Tree = BTreeMap<String, Option<Vec<u8>>>;

/// Initial content: a big incompressible file, medium files, many small files in
/// subdirectories, an empty file, an empty directory.
pub fn initial_tree(rng: &mut Rng, big: usize) -> Tree {
    let mut t = Tree::new();
    t.insert("big.bin".into(), Some(rng.bytes(big)));
    for i in 0..5 {
        let n = 30_000 + rng.below(200_000) as usize;
        t.insert(format!("medium/m{i}.bin"), Some(rng.bytes(n)));
    }
    for d in 0..8 {
        for f in 0..25 {
            let n = rng.below(5000) as usize;
            let mut v = format!("small file {d}/{f}\n").into_bytes();
            v.extend(rng.bytes(n));
            t.insert(format!("small/d{d}/f{f}.txt"), Some(v));
        }
    }
    t.insert("empty.txt".into(), Some(Vec::new()));
    t.insert("emptydir".into(), None);
    t
}

/// Write `t` under `root` (a mount point or a staging directory).
pub fn write_tree(root: &Path, t: &Tree) {
    for (rel, v) in t {
        let path = root.join(rel);
        match v {
            None => fs::create_dir_all(&path).unwrap(),
            Some(data) => {
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(&path, data).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            }
        }
    }
}

/// Changes made after the initial fill, through the filesystem's driver: new files, then
/// deletions (their blocks keep stale data but become free), and a rewritten file.
/// Applied to the mounted fs at `root` and to `t`.
pub fn churn(root: &Path, t: &mut Tree, rng: &mut Rng) {
    let mut late = Tree::new();
    for i in 0..8 {
        let n = 10_000 + rng.below(600_000) as usize;
        late.insert(format!("late/l{i}.bin"), Some(rng.bytes(n)));
    }
    // Written then deleted: free blocks full of data.
    for i in 0..4 {
        late.insert(format!("doomed/x{i}.bin"), Some(rng.bytes(300_000)));
    }
    write_tree(root, &late);
    t.extend(late);
    sync_dir(root);
    let doomed: Vec<String> =
        t.keys().filter(|k| k.starts_with("doomed/x") || (k.starts_with("small/") && k.ends_with("3.txt")) || k.as_str() == "medium/m1.bin").cloned().collect();
    for k in doomed {
        fs::remove_file(root.join(&k)).unwrap();
        t.remove(&k);
    }
    fs::remove_dir(root.join("doomed")).unwrap();
    let v = rng.bytes(77_777);
    fs::write(root.join("medium/m2.bin"), &v).unwrap();
    t.insert("medium/m2.bin".into(), Some(v));
}

fn sync_dir(root: &Path) {
    let _ = Command::new("sync").arg("-f").arg(root).status();
}

/// Read the tree under `root`, skipping names in `ignore` at the top level.
pub fn read_tree(root: &Path, ignore: &[&str]) -> Tree {
    let mut t = Tree::new();
    fn walk(base: &Path, dir: &Path, ignore: &[&str], top: bool, t: &mut Tree) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())).map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            if top && ignore.contains(&name.as_str()) {
                continue;
            }
            let path = e.path();
            let rel = path.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                let before = t.len();
                walk(base, &path, ignore, false, t);
                if t.len() == before {
                    t.insert(rel, None);
                }
            } else {
                t.insert(rel, Some(fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))));
            }
        }
    }
    walk(root, root, ignore, true, &mut t);
    t
}

/// Drop directory entries that have files below them (so trees compare by leaves).
pub fn leaves(t: &Tree) -> Tree {
    t.iter().filter(|(k, v)| v.is_some() || !t.keys().any(|o| o.starts_with(&format!("{k}/")))).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Compare two trees; the first difference as an error.
pub fn diff_trees(want: &Tree, got: &Tree) -> Result<(), String> {
    let (want, got) = (leaves(want), leaves(got));
    for (k, v) in &want {
        match got.get(k) {
            None => return Err(format!("{k}: missing")),
            Some(g) if g != v => return Err(format!("{k}: contents differ ({:?} vs {:?} bytes)", v.as_ref().map(|x| x.len()), g.as_ref().map(|x| x.len()))),
            _ => {}
        }
    }
    if let Some(k) = got.keys().find(|k| !want.contains_key(*k)) {
        return Err(format!("{k}: unexpected"));
    }
    Ok(())
}

/// Take `[start, start + len)` out of a map (to show that the checks notice).
pub fn remove_range(m: &mut UsedMap, start: u64, len: u64) {
    let end = start + len;
    let mut out = Vec::new();
    for e in &m.extents {
        if e.end() <= start || e.start >= end {
            out.push(*e);
            continue;
        }
        assert!(e.start <= start && end <= e.end(), "range {start}+{len} is not inside one used extent");
        if e.start < start {
            out.push(sysclone_fs::Extent { start: e.start, len: start - e.start });
        }
        if end < e.end() {
            out.push(sysclone_fs::Extent { start: end, len: e.end() - end });
        }
    }
    m.used_bytes -= len;
    m.extents = out;
}

/// A sparse image of `len` bytes.
pub fn sparse_image(path: &Path, len: u64) {
    let f = File::create(path).unwrap();
    f.set_len(len).unwrap();
}

/// The map of a whole image file, with its invariants checked.
pub fn map_image(img: &Path) -> UsedMap {
    let f = File::open(img).unwrap();
    let len = f.metadata().unwrap().len();
    let m = used_map(&f, 0, len).unwrap();
    check_invariants(&m, len);
    // The same name as disk discovery's probe gives.
    let mut head = vec![0u8; (sysclone_disk::probe::PROBE_BYTES as u64).min(len) as usize];
    f.read_exact_at(&mut head, 0).unwrap();
    let probed = sysclone_disk::probe::probe(&head).map(|i| i.kind).unwrap_or_else(|| "unknown".into());
    assert_eq!(m.fs, probed, "sysclone-fs and sysclone_disk::probe name {} differently", img.display());
    m
}

/// Sorted, merged, non-empty, inside the partition, and summing to `used_bytes`.
pub fn check_invariants(m: &UsedMap, len: u64) {
    let mut sum = 0u64;
    for (i, e) in m.extents.iter().enumerate() {
        assert!(e.len > 0, "empty extent {e:?}");
        assert!(e.start.checked_add(e.len).is_some_and(|end| end <= len), "extent {e:?} outside the partition of {len}");
        if i > 0 {
            assert!(m.extents[i - 1].end() < e.start, "extents not sorted and merged: {:?} {e:?}", m.extents[i - 1]);
        }
        sum += e.len;
    }
    assert_eq!(sum, m.used_bytes, "used_bytes is not the sum of the extents");
    if m.whole {
        assert_eq!(m.used_bytes, len);
        assert!(m.note.is_some());
    }
}

/// Copy only the mapped extents of `src` into a new image `dst` of the same size that
/// is first filled with pseudo-random garbage, so anything not copied is garbage.
pub fn smart_copy(src: &Path, dst: &Path, m: &UsedMap, seed: u64) {
    let s = File::open(src).unwrap();
    let len = s.metadata().unwrap().len();
    let mut d = OpenOptions::new().create(true).write(true).truncate(true).open(dst).unwrap();
    let mut rng = Rng(seed | 1);
    let block = rng.bytes(1 << 20);
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(block.len() as u64) as usize;
        // Shift the pattern per MiB so no two blocks of garbage are alike.
        let k = (off >> 20) as usize % 4093;
        let mut chunk = block[k..].to_vec();
        chunk.extend_from_slice(&block[..k]);
        d.write_all(&chunk[..n]).unwrap();
        off += n as u64;
    }
    let mut buf = vec![0u8; 1 << 20];
    for e in &m.extents {
        let mut o = e.start;
        while o < e.end() {
            let n = (e.end() - o).min(buf.len() as u64) as usize;
            s.read_exact_at(&mut buf[..n], o).unwrap();
            d.write_all_at(&buf[..n], o).unwrap();
            o += n as u64;
        }
    }
    d.sync_all().unwrap();
}

/// A temporary mount point, unmounted (if still mounted) on drop.
pub struct Mount {
    pub dir: PathBuf,
    child: Option<Child>,
}

impl Mount {
    /// `mount -o loop[,opts]` of an image (ext2/3/4).
    pub fn kernel(img: &Path, dir: &Path, opts: &str) -> Mount {
        need_root("loop mounts");
        fs::create_dir_all(dir).unwrap();
        let o = if opts.is_empty() { "loop".to_string() } else { format!("loop,{opts}") };
        run("mount", &["-o", &o, p(img), p(dir)]);
        Mount { dir: dir.into(), child: None }
    }

    /// ntfs-3g (FUSE) in the foreground, so unmounting waits for it to finish writing.
    pub fn ntfs3g(img: &Path, dir: &Path, ro: bool) -> Mount {
        need_root("FUSE mounts");
        need_tool("ntfs-3g", "ntfs-3g");
        fs::create_dir_all(dir).unwrap();
        let opts = if ro { "ro,no_detach" } else { "no_detach" };
        let child = Command::new("ntfs-3g").args(["-o", opts, p(img), p(dir)]).stdin(Stdio::null()).spawn().expect("spawning ntfs-3g");
        let mut m = Mount { dir: dir.into(), child: Some(child) };
        for _ in 0..200 {
            if is_mounted(dir) {
                return m;
            }
            if let Some(st) = m.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("ntfs-3g exited with {st} before mounting {}", img.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("ntfs-3g did not mount {}", img.display());
    }

    pub fn unmount(mut self) {
        self.do_unmount();
    }

    fn do_unmount(&mut self) {
        if is_mounted(&self.dir) {
            let (ok, out) = run_status("umount", &[p(&self.dir)]);
            assert!(ok || std::thread::panicking(), "umount {}: {out}", self.dir.display());
        }
        if let Some(mut c) = self.child.take() {
            let st = c.wait().unwrap();
            assert!(st.success() || std::thread::panicking(), "ntfs-3g exited with {st}");
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if is_mounted(&self.dir) || self.child.is_some() {
            self.do_unmount();
        }
    }
}

fn is_mounted(dir: &Path) -> bool {
    let canon = fs::canonicalize(dir).unwrap_or_else(|_| dir.into());
    fs::read_to_string("/proc/self/mountinfo").unwrap_or_default().lines().any(|l| l.split(' ').nth(4) == Some(p(&canon)))
}
