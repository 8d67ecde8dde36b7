//! The only place with `unsafe`: block-device ioctls.
//!
//! Each wrapper takes a borrowed file descriptor and returns a checked value.

use std::os::fd::{AsRawFd, BorrowedFd};

use anyhow::{bail, Result};
use nix::libc;

mod ioctl {
    use nix::libc;
    nix::ioctl_read!(blkgetsize64, 0x12, 114, u64);
    nix::ioctl_read_bad!(blksszget, libc::BLKSSZGET, libc::c_int);
    nix::ioctl_read_bad!(blkpbszget, libc::BLKPBSZGET, libc::c_int);
    nix::ioctl_none!(blkrrpart, 0x12, 95);
    nix::ioctl_none!(blkflsbuf, 0x12, 97);
    nix::ioctl_write_ptr_bad!(blkroset, nix::request_code_none!(0x12, 93), libc::c_int);
    nix::ioctl_read_bad!(blkroget, nix::request_code_none!(0x12, 94), libc::c_int);
    nix::ioctl_write_ptr_bad!(blkdiscard, nix::request_code_none!(0x12, 119), [u64; 2]);
}

/// Size of a block device in bytes (BLKGETSIZE64).
pub fn device_size(fd: BorrowedFd<'_>) -> Result<u64> {
    let mut size: u64 = 0;
    // SAFETY: the fd is valid for the borrow and `size` is a valid u64 the kernel writes.
    unsafe { ioctl::blkgetsize64(fd.as_raw_fd(), &mut size) }?;
    if size == 0 {
        bail!("BLKGETSIZE64 returned 0");
    }
    Ok(size)
}

/// Logical sector size (BLKSSZGET).
pub fn logical_sector_size(fd: BorrowedFd<'_>) -> Result<u32> {
    let mut v: libc::c_int = 0;
    // SAFETY: valid fd; the kernel writes one int.
    unsafe { ioctl::blksszget(fd.as_raw_fd(), &mut v) }?;
    if v <= 0 {
        bail!("BLKSSZGET returned {v}");
    }
    Ok(v as u32)
}

/// Physical sector size (BLKPBSZGET).
pub fn physical_sector_size(fd: BorrowedFd<'_>) -> Result<u32> {
    let mut v: libc::c_int = 0;
    // SAFETY: valid fd; the kernel writes one unsigned int.
    unsafe { ioctl::blkpbszget(fd.as_raw_fd(), &mut v) }?;
    if v <= 0 {
        bail!("BLKPBSZGET returned {v}");
    }
    Ok(v as u32)
}

/// Ask the kernel to re-read the partition table (BLKRRPART).
pub fn reread_partitions(fd: BorrowedFd<'_>) -> Result<()> {
    // SAFETY: valid fd; no argument.
    unsafe { ioctl::blkrrpart(fd.as_raw_fd()) }?;
    Ok(())
}

/// Flush the buffer cache of a block device (BLKFLSBUF).
pub fn flush_buffers(fd: BorrowedFd<'_>) -> Result<()> {
    // SAFETY: valid fd; no argument.
    unsafe { ioctl::blkflsbuf(fd.as_raw_fd()) }?;
    Ok(())
}

/// Set or clear the kernel's read-only flag on a block device (BLKROSET).
pub fn set_read_only(fd: BorrowedFd<'_>, ro: bool) -> Result<()> {
    let v: libc::c_int = ro.into();
    // SAFETY: valid fd; the kernel reads one int from a valid pointer.
    unsafe { ioctl::blkroset(fd.as_raw_fd(), &v) }?;
    Ok(())
}

/// Read the kernel's read-only flag (BLKROGET).
pub fn is_read_only(fd: BorrowedFd<'_>) -> Result<bool> {
    let mut v: libc::c_int = 0;
    // SAFETY: valid fd; the kernel writes one int.
    unsafe { ioctl::blkroget(fd.as_raw_fd(), &mut v) }?;
    Ok(v != 0)
}

/// Discard (TRIM) a byte range of a block device (BLKDISCARD). Never relied on for zeroes.
pub fn discard(fd: BorrowedFd<'_>, start: u64, len: u64) -> Result<()> {
    let range = [start, len];
    // SAFETY: valid fd; the kernel reads two u64 from a valid pointer.
    unsafe { ioctl::blkdiscard(fd.as_raw_fd(), &range) }?;
    Ok(())
}
