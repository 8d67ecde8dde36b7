//! Random access to the disk an image holds, for tools that need to read anywhere (a
//! filesystem's shrink moves blocks from beyond the new end; its minimum size is computed
//! from its metadata). Bytes are found through the chunk index (chunks are sorted), each
//! chunk is read, decompressed and hash-checked when first touched, and the last few
//! decompressed chunks are kept. Bytes no chunk holds were unused on the source: zeros.

use std::collections::VecDeque;
use std::sync::Arc;

use anyhow::Result;

use crate::read::Image;

/// Chunks kept decompressed (4 MiB each by default: 32 MiB of memory).
pub const CACHE_CHUNKS: usize = 8;

/// The image's disk, readable at any offset.
pub struct DiskReader {
    img: Image,
    cache: VecDeque<(usize, Arc<Vec<u8>>)>,
    /// Chunks decompressed so far (a chunk evicted and needed again counts twice).
    pub chunks_decoded: u64,
}

impl DiskReader {
    pub fn new(img: Image) -> DiskReader {
        DiskReader { img, cache: VecDeque::new(), chunks_decoded: 0 }
    }

    fn chunk(&mut self, i: usize) -> Result<Arc<Vec<u8>>> {
        if let Some(pos) = self.cache.iter().position(|(k, _)| *k == i) {
            let hit = self.cache.remove(pos).expect("position is valid");
            self.cache.push_back(hit.clone());
            return Ok(hit.1);
        }
        let data = Arc::new(self.img.read_chunk(i)?);
        self.chunks_decoded += 1;
        if self.cache.len() >= CACHE_CHUNKS {
            self.cache.pop_front();
        }
        self.cache.push_back((i, Arc::clone(&data)));
        Ok(data)
    }

    /// Fill `buf` with the disk's bytes at `off` (zeros where the image holds nothing).
    pub fn read_at(&mut self, buf: &mut [u8], off: u64) -> Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let pos = off + done as u64;
            let chunks = &self.img.manifest.chunks;
            let i = chunks.partition_point(|c| c.offset + c.len <= pos);
            let rest = buf.len() - done;
            match chunks.get(i) {
                Some(c) if c.offset <= pos => {
                    let (c_off, c_len) = (c.offset, c.len);
                    let data = self.chunk(i)?;
                    let at = (pos - c_off) as usize;
                    let n = rest.min((c_len as usize) - at);
                    buf[done..done + n].copy_from_slice(&data[at..at + n]);
                    done += n;
                }
                next => {
                    let gap = next.map(|c| c.offset - pos).unwrap_or(u64::MAX);
                    let n = rest.min(gap.min(usize::MAX as u64) as usize);
                    buf[done..done + n].fill(0);
                    done += n;
                }
            }
        }
        Ok(())
    }
}

/// The image's disk as a read-only stream (`Read + Seek`; writes fail), for readers that
/// want one, such as a FAT library listing and reading files.
pub struct DiskCursor {
    reader: DiskReader,
    pos: u64,
    size: u64,
}

impl DiskCursor {
    pub fn new(img: Image) -> DiskCursor {
        let size = img.manifest.source.size_bytes;
        DiskCursor { reader: DiskReader::new(img), pos: 0, size }
    }
}

impl std::io::Read for DiskCursor {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.size.saturating_sub(self.pos)) as usize;
        self.reader.read_at(&mut buf[..n], self.pos).map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl std::io::Write for DiskCursor {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, "a saved image is read-only"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl std::io::Seek for DiskCursor {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let new = match to {
            std::io::SeekFrom::Start(n) => Some(n),
            std::io::SeekFrom::End(d) => self.size.checked_add_signed(d),
            std::io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = new.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start of the image's disk"))?;
        Ok(self.pos)
    }
}
