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

/// `struct loop_info64` (linux/loop.h).
#[repr(C)]
#[derive(Clone, Copy)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` (linux/loop.h, LOOP_CONFIGURE since Linux 5.8).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

mod loop_ioctl {
    nix::ioctl_none_bad!(loop_ctl_get_free, 0x4C82);
    nix::ioctl_write_ptr_bad!(loop_configure, 0x4C0A, super::LoopConfig);
    nix::ioctl_none_bad!(loop_clr_fd, 0x4C01);
}

/// Loop flag: detach automatically when the last user closes the device.
pub const LO_FLAGS_AUTOCLEAR: u32 = 4;
/// Loop flag: read-only.
pub const LO_FLAGS_READ_ONLY: u32 = 1;

/// Attach `backing` (a file or block device, `offset`..`offset+size`) to a free loop device.
/// Returns the device number N of `/dev/loopN`.
pub fn loop_attach(backing: BorrowedFd<'_>, offset: u64, size: u64, block_size: u32, flags: u32) -> Result<u32> {
    use std::os::fd::AsFd;
    let ctl = std::fs::OpenOptions::new().read(true).write(true).open("/dev/loop-control")?;
    // SAFETY: valid fd; LOOP_CTL_GET_FREE takes no argument and returns a number.
    let n = unsafe { loop_ioctl::loop_ctl_get_free(ctl.as_fd().as_raw_fd()) }?;
    if n < 0 {
        bail!("no free loop device");
    }
    let dev = std::fs::OpenOptions::new().read(true).write(flags & LO_FLAGS_READ_ONLY == 0).open(format!("/dev/loop{n}"))?;
    let cfg = LoopConfig {
        fd: backing.as_raw_fd() as u32,
        block_size,
        info: LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: offset,
            lo_sizelimit: size,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: flags,
            lo_file_name: [0; 64],
            lo_crypt_name: [0; 64],
            lo_encrypt_key: [0; 32],
            lo_init: [0; 2],
        },
        reserved: [0; 8],
    };
    // SAFETY: valid fd; the kernel reads one loop_config from a valid pointer.
    unsafe { loop_ioctl::loop_configure(dev.as_fd().as_raw_fd(), &cfg) }?;
    Ok(n as u32)
}

/// Detach `/dev/loopN`.
pub fn loop_detach(n: u32) -> Result<()> {
    use std::os::fd::AsFd;
    let dev = std::fs::File::open(format!("/dev/loop{n}"))?;
    // SAFETY: valid fd; LOOP_CLR_FD takes no argument.
    unsafe { loop_ioctl::loop_clr_fd(dev.as_fd().as_raw_fd()) }?;
    Ok(())
}
