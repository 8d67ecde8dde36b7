//! A bounded reader → writer pipeline over large buffers.
//!
//! One thread reads and hashes, the calling thread writes; at most `depth` buffers exist at
//! once, so memory stays at `depth × chunk` whatever the disk size.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread;

use anyhow::{anyhow, Context, Result};
use sha2::{Digest, Sha256};

/// Size of one copy buffer.
pub const CHUNK: usize = 4 << 20;
/// Buffers in flight.
pub const DEPTH: usize = 4;

/// Progress callback: (bytes done, bytes total).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Copy `len` bytes at offset `start` of `src` to the same offset of `dst`.
/// Returns the SHA-256 of the bytes read.
pub fn copy_range(src: &File, dst: &File, start: u64, len: u64, progress: Progress<'_>) -> Result<[u8; 32]> {
    let (full_tx, full_rx): (SyncSender<Result<(u64, Vec<u8>)>>, Receiver<_>) = sync_channel(DEPTH);
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(DEPTH);
    for _ in 0..DEPTH {
        empty_tx.send(vec![0u8; CHUNK]).expect("fresh channel");
    }
    let src = src.try_clone().context("duplicating the source handle")?;
    let reader = thread::spawn(move || -> [u8; 32] {
        let mut hash = Sha256::new();
        let mut off = start;
        let end = start + len;
        while off < end {
            let Ok(mut buf) = empty_rx.recv() else { break };
            let n = ((end - off) as usize).min(CHUNK);
            buf.resize(n, 0);
            match src.read_exact_at(&mut buf, off).with_context(|| format!("reading the source at byte {off} ({n} bytes)")) {
                Ok(()) => {
                    hash.update(&buf);
                    if full_tx.send(Ok((off, buf))).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = full_tx.send(Err(e));
                    break;
                }
            }
            off += n as u64;
        }
        hash.finalize().into()
    });
    let mut done = 0u64;
    let mut result = Ok(());
    for item in full_rx.iter() {
        match item {
            Ok((off, buf)) => {
                if let Err(e) = dst.write_all_at(&buf, off) {
                    result = Err(anyhow!(e).context(format!("writing the target at byte {off} ({} bytes)", buf.len())));
                    break;
                }
                done += buf.len() as u64;
                progress(done, len);
                if empty_tx.send(buf).is_err() {
                    break;
                }
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    drop(empty_tx);
    drop(full_rx);
    let digest = reader.join().map_err(|_| anyhow!("the reader thread panicked"))?;
    result?;
    if done != len {
        return Err(anyhow!("copied {done} of {len} bytes"));
    }
    Ok(digest)
}

/// SHA-256 of `len` bytes at `start` of `f`, read in large chunks.
pub fn hash_range(f: &File, start: u64, len: u64, progress: Progress<'_>) -> Result<[u8; 32]> {
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut off = start;
    while off < start + len {
        let n = ((start + len - off) as usize).min(CHUNK);
        f.read_exact_at(&mut buf[..n], off).with_context(|| format!("reading back at byte {off}"))?;
        hash.update(&buf[..n]);
        off += n as u64;
        progress(off - start, len);
    }
    Ok(hash.finalize().into())
}
