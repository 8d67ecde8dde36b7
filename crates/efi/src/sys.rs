//! The only unsafe code of the crate: inode flag ioctls (`chattr`/`lsattr`).
//!
//! `FS_IOC_GETFLAGS`/`FS_IOC_SETFLAGS` are declared in `linux/fs.h` as `_IOR/_IOW('f', 1/2, long)`
//! but the kernel transfers an `unsigned int`. We pass a zero-initialised `c_long`, so on the
//! little-endian targets we build for the kernel reads/writes its low 32 bits and the rest
//! stays zero.

use std::fs::File;
use std::os::fd::AsRawFd;

use nix::libc::c_long;

/// `FS_IMMUTABLE_FL` from `linux/fs.h` (not in libc).
pub(crate) const FS_IMMUTABLE_FL: c_long = 0x10;

mod ioctls {
    use nix::libc::c_long;
    nix::ioctl_read!(fs_ioc_getflags, b'f', 1, c_long);
    nix::ioctl_write_ptr!(fs_ioc_setflags, b'f', 2, c_long);
}

/// Reads the inode flags of `file`.
pub(crate) fn get_flags(file: &File) -> nix::Result<c_long> {
    let mut flags: c_long = 0;
    // SAFETY: `file` is an open descriptor for the duration of the call, and `flags` is a valid,
    // zero-initialised `c_long` the kernel writes at most 4 bytes of.
    unsafe { ioctls::fs_ioc_getflags(file.as_raw_fd(), &mut flags) }?;
    Ok(flags)
}

/// Sets the inode flags of `file`.
pub(crate) fn set_flags(file: &File, flags: c_long) -> nix::Result<()> {
    // SAFETY: `file` is an open descriptor for the duration of the call, and `&flags` points to
    // a valid `c_long` the kernel only reads (4 bytes of).
    unsafe { ioctls::fs_ioc_setflags(file.as_raw_fd(), &flags) }?;
    Ok(())
}
