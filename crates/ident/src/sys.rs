//! Extended attributes, through libc (as re-exported by nix, which has no wrapper for them).
//! The crate's only `unsafe`: a rewritten `/etc/fstab` must keep its SELinux label
//! (`security.selinux`), POSIX ACLs and any other attribute, or a confined system may not be
//! allowed to read it at boot.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::libc;

fn unsupported(e: Errno) -> bool {
    matches!(e, Errno::ENOTSUP | Errno::ENOSYS)
}

/// Names of the extended attributes of `path` (not following a final symlink).
fn list(path: &CString) -> Result<Vec<CString>> {
    loop {
        // SAFETY: a NULL buffer of size 0 asks for the size only.
        let n = unsafe { libc::llistxattr(path.as_ptr(), std::ptr::null_mut(), 0) };
        if n < 0 {
            let e = Errno::last();
            if unsupported(e) {
                return Ok(Vec::new());
            }
            bail!("listing extended attributes: {e}");
        }
        let mut buf = vec![0u8; n as usize];
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        let m = unsafe { libc::llistxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if m < 0 {
            let e = Errno::last();
            if e == Errno::ERANGE {
                continue; // grew in between
            }
            bail!("listing extended attributes: {e}");
        }
        buf.truncate(m as usize);
        return Ok(buf
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| CString::new(s).expect("split at NUL"))
            .collect());
    }
}

fn get(path: &CString, name: &CString) -> Result<Option<Vec<u8>>> {
    loop {
        // SAFETY: a NULL buffer of size 0 asks for the size only.
        let n = unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
        if n < 0 {
            let e = Errno::last();
            if e == Errno::ENODATA {
                return Ok(None); // removed in between
            }
            bail!("reading extended attribute {}: {e}", name.to_string_lossy());
        }
        let mut buf = vec![0u8; n as usize];
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        let m = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if m < 0 {
            let e = Errno::last();
            if e == Errno::ERANGE {
                continue;
            }
            bail!("reading extended attribute {}: {e}", name.to_string_lossy());
        }
        buf.truncate(m as usize);
        return Ok(Some(buf));
    }
}

/// Copies every extended attribute of `from` onto the open file `to`. Returns their names.
pub fn copy_xattrs(from: &Path, to: BorrowedFd<'_>) -> Result<Vec<String>> {
    let path = CString::new(from.as_os_str().as_bytes()).context("path contains NUL")?;
    let mut names = Vec::new();
    for name in list(&path).with_context(|| from.display().to_string())? {
        let Some(value) = get(&path, &name).with_context(|| from.display().to_string())? else {
            continue;
        };
        // SAFETY: `name` is NUL-terminated, `value` is valid for reads of its length.
        let r = unsafe {
            libc::fsetxattr(
                to.as_raw_fd(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if r < 0 {
            bail!(
                "copying extended attribute {} of {}: {}",
                name.to_string_lossy(),
                from.display(),
                Errno::last()
            );
        }
        names.push(name.to_string_lossy().into_owned());
    }
    Ok(names)
}
