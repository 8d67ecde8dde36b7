//! A copy-on-write block overlay, served as one regular file over FUSE.
//!
//! Shrinking a filesystem needs the whole filesystem on one device: its blocks beyond the new
//! end are moved into free space below it. The target partition is smaller than the source's,
//! and the source must never be written. The overlay joins them:
//!
//! ```text
//!   [0, head_len)      the target partition   (reads and writes)
//!   [head_len, size)   the source partition   (reads; writes go to memory)
//! ```
//!
//! After the used blocks below `head_len` were copied to the target, a resize tool run on a
//! loop device over this file moves what lies beyond `head_len` into the target and shrinks
//! the filesystem to fit. The source is only read; what the tool writes above `head_len`
//! (nothing that survives the shrink) stays in memory and is dropped.
//!
//! Only the FUSE requests a loop device needs are answered (INIT, GETATTR, OPEN, READ, WRITE,
//! FSYNC, FLUSH, RELEASE, STATFS); everything else gets ENOSYS.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{bail, Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

const PAGE: u64 = 4096;

/// The read-only lower layer: a source partition on a disk, or one inside a saved image
/// (decompressed on demand).
pub trait BaseRead: Send {
    /// Fill `buf` with the bytes at `off`.
    fn read_base(&mut self, buf: &mut [u8], off: u64) -> std::io::Result<()>;
}

impl BaseRead for File {
    fn read_base(&mut self, buf: &mut [u8], off: u64) -> std::io::Result<()> {
        self.read_exact_at(buf, off)
    }
}

/// Where each byte of the virtual file comes from.
pub struct Layers {
    /// The source, read-only: virtual offset `o` is `base_off + o` here.
    pub base: Box<dyn BaseRead>,
    pub base_off: u64,
    /// The target: virtual `[0, head_len)` is `head_off + o` here.
    pub head: File,
    pub head_off: u64,
    pub head_len: u64,
    /// Size of the virtual file.
    pub size: u64,
}

/// What the overlay saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub reads: u64,
    pub writes: u64,
    pub bytes_read_base: u64,
    pub bytes_written_head: u64,
    /// Bytes written above `head_len` (kept in memory, dropped at the end).
    pub bytes_in_memory: u64,
}

struct State {
    layers: Layers,
    mem: HashMap<u64, Vec<u8>>,
    stats: Stats,
}

impl State {
    fn read(&mut self, off: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let o = off + done as u64;
            let rest = &mut buf[done..];
            if o < self.layers.head_len {
                let n = rest.len().min((self.layers.head_len - o) as usize);
                self.layers.head.read_exact_at(&mut rest[..n], self.layers.head_off + o)?;
                done += n;
            } else {
                let page = o / PAGE;
                let in_page = (o % PAGE) as usize;
                let n = rest.len().min(PAGE as usize - in_page);
                match self.mem.get(&page) {
                    Some(p) => rest[..n].copy_from_slice(&p[in_page..in_page + n]),
                    None => {
                        self.layers.base.read_base(&mut rest[..n], self.layers.base_off + o)?;
                        self.stats.bytes_read_base += n as u64;
                    }
                }
                done += n;
            }
        }
        Ok(())
    }

    fn write(&mut self, off: u64, data: &[u8]) -> std::io::Result<()> {
        let mut done = 0usize;
        while done < data.len() {
            let o = off + done as u64;
            let rest = &data[done..];
            if o < self.layers.head_len {
                let n = rest.len().min((self.layers.head_len - o) as usize);
                self.layers.head.write_all_at(&rest[..n], self.layers.head_off + o)?;
                self.stats.bytes_written_head += n as u64;
                done += n;
            } else {
                let page = o / PAGE;
                let in_page = (o % PAGE) as usize;
                let n = rest.len().min(PAGE as usize - in_page);
                if !self.mem.contains_key(&page) {
                    let mut p = vec![0u8; PAGE as usize];
                    let start = page * PAGE;
                    let len = PAGE.min(self.layers.size - start) as usize;
                    self.layers.base.read_base(&mut p[..len], self.layers.base_off + start)?;
                    self.mem.insert(page, p);
                    self.stats.bytes_in_memory += PAGE;
                }
                let p = self.mem.get_mut(&page).expect("inserted above");
                p[in_page..in_page + n].copy_from_slice(&rest[..n]);
                done += n;
            }
        }
        Ok(())
    }
}

/// A running overlay, mounted on a file.
pub struct Overlay {
    mountpoint: PathBuf,
    state: Arc<Mutex<State>>,
    server: Option<JoinHandle<Result<()>>>,
}

// FUSE opcodes (linux/fuse.h).
const LOOKUP: u32 = 1;
const FORGET: u32 = 2;
const GETATTR: u32 = 3;
const SETATTR: u32 = 4;
const OPEN: u32 = 14;
const READ: u32 = 15;
const WRITE: u32 = 16;
const STATFS: u32 = 17;
const RELEASE: u32 = 18;
const FSYNC: u32 = 20;
const FLUSH: u32 = 25;
const INIT: u32 = 26;
const INTERRUPT: u32 = 36;
const DESTROY: u32 = 38;
const BATCH_FORGET: u32 = 42;

const MAX_WRITE: u32 = 1 << 20;
const IN_HEADER: usize = 40;

fn u32_at(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4).map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes"))).unwrap_or(0)
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    b.get(o..o + 8).map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes"))).unwrap_or(0)
}

fn attr(size: u64) -> Vec<u8> {
    // struct fuse_attr_out { u64 attr_valid; u32 attr_valid_nsec; u32 dummy; struct fuse_attr }
    let mut a = Vec::with_capacity(104);
    a.extend_from_slice(&1u64.to_le_bytes());
    a.extend_from_slice(&0u32.to_le_bytes());
    a.extend_from_slice(&0u32.to_le_bytes());
    a.extend_from_slice(&1u64.to_le_bytes()); // ino
    a.extend_from_slice(&size.to_le_bytes());
    a.extend_from_slice(&size.div_ceil(512).to_le_bytes()); // blocks
    a.extend_from_slice(&[0u8; 24]); // atime, mtime, ctime
    a.extend_from_slice(&[0u8; 12]); // nsecs
    a.extend_from_slice(&0o100600u32.to_le_bytes()); // mode
    a.extend_from_slice(&1u32.to_le_bytes()); // nlink
    a.extend_from_slice(&0u32.to_le_bytes()); // uid
    a.extend_from_slice(&0u32.to_le_bytes()); // gid
    a.extend_from_slice(&0u32.to_le_bytes()); // rdev
    a.extend_from_slice(&(PAGE as u32).to_le_bytes()); // blksize
    a.extend_from_slice(&0u32.to_le_bytes()); // flags
    a
}

fn reply(dev: &mut File, unique: u64, error: i32, payload: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(16 + payload.len());
    out.extend_from_slice(&((16 + payload.len()) as u32).to_le_bytes());
    out.extend_from_slice(&error.to_le_bytes());
    out.extend_from_slice(&unique.to_le_bytes());
    if error == 0 {
        out.extend_from_slice(payload);
    } else {
        out.truncate(16);
        out[0..4].copy_from_slice(&16u32.to_le_bytes());
    }
    dev.write_all(&out)
}

fn serve(mut dev: File, state: Arc<Mutex<State>>) -> Result<()> {
    let mut buf = vec![0u8; MAX_WRITE as usize + 4096];
    loop {
        let n = match dev.read(&mut buf) {
            Ok(n) => n,
            // Unmounted: the session is over.
            Err(e) if e.raw_os_error() == Some(nix::libc::ENODEV) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(nix::libc::EINTR) || e.raw_os_error() == Some(nix::libc::ENOENT) => continue,
            Err(e) => return Err(e).context("reading /dev/fuse"),
        };
        if n < IN_HEADER {
            bail!("short FUSE request ({n} bytes)");
        }
        let req = &buf[..n];
        let opcode = u32_at(req, 4);
        let unique = u64_at(req, 8);
        let body = &req[IN_HEADER..];
        let size = state.lock().map_err(|_| anyhow::anyhow!("overlay state poisoned"))?.layers.size;
        let r = match opcode {
            INIT => {
                let (major, minor, max_readahead) = (u32_at(body, 0), u32_at(body, 4), u32_at(body, 8));
                if major != 7 {
                    bail!("kernel FUSE protocol {major}.{minor} is not 7.x");
                }
                let mut o = Vec::with_capacity(64);
                o.extend_from_slice(&7u32.to_le_bytes());
                o.extend_from_slice(&minor.min(31).to_le_bytes());
                o.extend_from_slice(&max_readahead.to_le_bytes());
                o.extend_from_slice(&0u32.to_le_bytes()); // flags: none (write-through, no writeback cache)
                o.extend_from_slice(&16u16.to_le_bytes()); // max_background
                o.extend_from_slice(&12u16.to_le_bytes()); // congestion_threshold
                o.extend_from_slice(&MAX_WRITE.to_le_bytes());
                o.extend_from_slice(&1u32.to_le_bytes()); // time_gran
                o.extend_from_slice(&((MAX_WRITE / PAGE as u32) as u16).to_le_bytes()); // max_pages
                o.extend_from_slice(&0u16.to_le_bytes());
                o.extend_from_slice(&0u32.to_le_bytes()); // flags2
                o.extend_from_slice(&[0u8; 28]);
                let len = if minor < 23 { 24 } else { 64 };
                reply(&mut dev, unique, 0, &o[..len])
            }
            GETATTR | SETATTR => reply(&mut dev, unique, 0, &attr(size)),
            OPEN => {
                let mut o = Vec::with_capacity(16);
                o.extend_from_slice(&1u64.to_le_bytes()); // fh
                o.extend_from_slice(&0u32.to_le_bytes()); // open_flags
                o.extend_from_slice(&0u32.to_le_bytes());
                reply(&mut dev, unique, 0, &o)
            }
            READ => {
                let (off, len) = (u64_at(body, 8), u32_at(body, 16) as u64);
                let len = len.min(size.saturating_sub(off)) as usize;
                let mut data = vec![0u8; len];
                let res = state.lock().map_err(|_| anyhow::anyhow!("overlay state poisoned"))?.read(off, &mut data);
                match res {
                    Ok(()) => {
                        state.lock().map_err(|_| anyhow::anyhow!("overlay state poisoned"))?.stats.reads += 1;
                        reply(&mut dev, unique, 0, &data)
                    }
                    Err(e) => reply(&mut dev, unique, -e.raw_os_error().unwrap_or(nix::libc::EIO), &[]),
                }
            }
            WRITE => {
                let (off, len) = (u64_at(body, 8), u32_at(body, 16) as usize);
                let data = body.get(40..40 + len).unwrap_or(&[]);
                if off + data.len() as u64 > size {
                    reply(&mut dev, unique, -nix::libc::ENOSPC, &[])
                } else {
                    let mut st = state.lock().map_err(|_| anyhow::anyhow!("overlay state poisoned"))?;
                    match st.write(off, data) {
                        Ok(()) => {
                            st.stats.writes += 1;
                            drop(st);
                            let mut o = Vec::with_capacity(8);
                            o.extend_from_slice(&(data.len() as u32).to_le_bytes());
                            o.extend_from_slice(&0u32.to_le_bytes());
                            reply(&mut dev, unique, 0, &o)
                        }
                        Err(e) => reply(&mut dev, unique, -e.raw_os_error().unwrap_or(nix::libc::EIO), &[]),
                    }
                }
            }
            FSYNC | FLUSH => {
                let res = state.lock().map_err(|_| anyhow::anyhow!("overlay state poisoned"))?.layers.head.sync_data();
                reply(&mut dev, unique, if res.is_ok() { 0 } else { -nix::libc::EIO }, &[])
            }
            RELEASE => reply(&mut dev, unique, 0, &[]),
            STATFS => {
                let mut o = vec![0u8; 80];
                o[0..8].copy_from_slice(&size.div_ceil(PAGE).to_le_bytes());
                o[40..44].copy_from_slice(&(PAGE as u32).to_le_bytes());
                o[44..48].copy_from_slice(&255u32.to_le_bytes());
                o[48..52].copy_from_slice(&(PAGE as u32).to_le_bytes());
                reply(&mut dev, unique, 0, &o)
            }
            FORGET | BATCH_FORGET | INTERRUPT => Ok(()),
            DESTROY => {
                let _ = reply(&mut dev, unique, 0, &[]);
                return Ok(());
            }
            LOOKUP => reply(&mut dev, unique, -nix::libc::ENOENT, &[]),
            _ => reply(&mut dev, unique, -nix::libc::ENOSYS, &[]),
        };
        match r {
            Ok(()) => {}
            // The request was interrupted and is gone: not an error.
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOENT) => {}
            Err(e) => return Err(e).context("answering a FUSE request"),
        }
    }
}

impl Overlay {
    /// Mount the overlay on `mountpoint` (a regular file, created if missing).
    pub fn mount(layers: Layers, mountpoint: &Path) -> Result<Overlay> {
        if layers.head_len > layers.size {
            bail!("overlay head ({} bytes) is larger than the whole ({} bytes)", layers.head_len, layers.size);
        }
        if !mountpoint.exists() {
            File::create(mountpoint).with_context(|| format!("creating {}", mountpoint.display()))?;
        }
        let dev = OpenOptions::new().read(true).write(true).open("/dev/fuse").context("opening /dev/fuse (is the fuse module loaded?)")?;
        let opts = format!("fd={},rootmode=100000,user_id=0,group_id=0,allow_other", dev.as_raw_fd());
        mount(Some("sysclone-overlay"), mountpoint, Some("fuse"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some(opts.as_str()))
            .with_context(|| format!("mounting the overlay on {}", mountpoint.display()))?;
        let state = Arc::new(Mutex::new(State { layers, mem: HashMap::new(), stats: Stats::default() }));
        let st = state.clone();
        let server = std::thread::spawn(move || serve(dev, st));
        Ok(Overlay { mountpoint: mountpoint.to_path_buf(), state, server: Some(server) })
    }

    /// The file to attach a loop device to. Its size is confirmed first: the kernel creates
    /// a FUSE root with size 0 and learns the real size only from a GETATTR (a stat), and a
    /// loop device takes the size it sees when attached.
    pub fn file(&self) -> &Path {
        let want = self.state.lock().map(|s| s.layers.size).unwrap_or(0);
        for _ in 0..50 {
            if std::fs::metadata(&self.mountpoint).map(|m| m.len()).unwrap_or(0) == want {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        &self.mountpoint
    }

    /// Flush the target, unmount, stop the server, and return what happened.
    pub fn finish(mut self) -> Result<Stats> {
        self.unmount()?;
        let st = self.state.lock().map_err(|_| anyhow::anyhow!("overlay state poisoned"))?;
        st.layers.head.sync_all().context("flushing the target")?;
        Ok(st.stats.clone())
    }

    fn unmount(&mut self) -> Result<()> {
        if let Some(h) = self.server.take() {
            umount2(&self.mountpoint, MntFlags::empty()).or_else(|_| umount2(&self.mountpoint, MntFlags::MNT_DETACH)).with_context(|| format!("unmounting {}", self.mountpoint.display()))?;
            match h.join() {
                Ok(r) => r?,
                Err(_) => bail!("the overlay server panicked"),
            }
        }
        Ok(())
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = self.unmount();
    }
}
