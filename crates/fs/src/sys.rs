//! The only `unsafe` in this crate: the btrfs and XFS ioctls that resize a mounted
//! filesystem (numbers and structures from the kernel's uapi headers `linux/btrfs.h` and
//! `xfs_fs.h`). Each wrapper takes a borrowed descriptor and owns its argument structure,
//! so no pointer outlives the call.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use anyhow::{bail, Context, Result};

/// `BTRFS_PATH_NAME_MAX + 1`.
const BTRFS_NAME_LEN: usize = 4088;

/// `struct btrfs_ioctl_vol_args { __s64 fd; char name[BTRFS_PATH_NAME_MAX + 1]; }` (4096 bytes).
#[repr(C)]
pub(crate) struct BtrfsVolArgs {
    fd: i64,
    name: [u8; BTRFS_NAME_LEN],
}

impl BtrfsVolArgs {
    /// Arguments carrying `name` (NUL-terminated; refused when too long or holding a NUL).
    fn new(name: &str) -> Result<Box<BtrfsVolArgs>> {
        let b = name.as_bytes();
        if b.len() >= BTRFS_NAME_LEN || b.contains(&0) {
            bail!("btrfs ioctl argument {name:?} is too long or holds a NUL byte");
        }
        let mut a = Box::new(BtrfsVolArgs { fd: 0, name: [0; BTRFS_NAME_LEN] });
        a.name[..b.len()].copy_from_slice(b);
        Ok(a)
    }
}

/// `struct xfs_fsop_geom_v1`: the version-1 geometry, which every kernel still answers.
#[repr(C)]
#[derive(Default, Debug, Clone, Copy)]
pub(crate) struct XfsGeomV1 {
    pub blocksize: u32,
    pub rtextsize: u32,
    pub agblocks: u32,
    pub agcount: u32,
    pub logblocks: u32,
    pub sectsize: u32,
    pub inodesize: u32,
    pub imaxpct: u32,
    pub datablocks: u64,
    pub rtblocks: u64,
    pub rtextents: u64,
    pub logstart: u64,
    pub uuid: [u8; 16],
    pub sunit: u32,
    pub swidth: u32,
    pub version: i32,
    pub flags: u32,
    pub logsectsize: u32,
    pub rtsectsize: u32,
    pub dirblocksize: u32,
}

/// `struct xfs_growfs_data { __u64 newblocks; __u32 imaxpct; }`.
#[repr(C)]
struct XfsGrowfsData {
    newblocks: u64,
    imaxpct: u32,
}

mod ioctl {
    use super::{BtrfsVolArgs, XfsGeomV1, XfsGrowfsData};
    // BTRFS_IOC_RESIZE = _IOW(BTRFS_IOCTL_MAGIC (0x94), 3, struct btrfs_ioctl_vol_args)
    nix::ioctl_write_ptr!(btrfs_resize, 0x94, 3, BtrfsVolArgs);
    // BTRFS_IOC_FORGET_DEV = _IOW(BTRFS_IOCTL_MAGIC, 5, struct btrfs_ioctl_vol_args)
    nix::ioctl_write_ptr!(btrfs_forget_dev, 0x94, 5, BtrfsVolArgs);
    // XFS_IOC_FSGEOMETRY_V1 = _IOR('X', 100, struct xfs_fsop_geom_v1)
    nix::ioctl_read!(xfs_geometry_v1, b'X', 100, XfsGeomV1);
    // XFS_IOC_FSGROWFSDATA = _IOW('X', 110, struct xfs_growfs_data)
    nix::ioctl_write_ptr!(xfs_growfs_data, b'X', 110, XfsGrowfsData);
}

/// `BTRFS_IOC_RESIZE` on a file or directory of the mounted filesystem; `spec` is
/// `"<devid>:<bytes>"`.
pub(crate) fn btrfs_resize(fd: BorrowedFd<'_>, spec: &str) -> Result<()> {
    let args = BtrfsVolArgs::new(spec)?;
    // SAFETY: the fd is valid for the borrow; `args` is a live, fully initialised
    // 4096-byte btrfs_ioctl_vol_args that the kernel only reads.
    unsafe { ioctl::btrfs_resize(fd.as_raw_fd(), &*args) }.with_context(|| format!("BTRFS_IOC_RESIZE {spec:?}"))?;
    Ok(())
}

/// `BTRFS_IOC_FORGET_DEV` on `/dev/btrfs-control`: drop the kernel's record of an unmounted
/// device, so a device with the same filesystem UUID (the clone's source) is found afresh.
pub(crate) fn btrfs_forget_dev(control: &std::fs::File, dev_path: &str) -> Result<()> {
    let args = BtrfsVolArgs::new(dev_path)?;
    // SAFETY: `control` is an open file for the call; `args` is a live, initialised
    // btrfs_ioctl_vol_args that the kernel only reads.
    unsafe { ioctl::btrfs_forget_dev(control.as_fd().as_raw_fd(), &*args) }.context("BTRFS_IOC_FORGET_DEV")?;
    Ok(())
}

/// `XFS_IOC_FSGEOMETRY_V1` on a file or directory of the mounted filesystem.
pub(crate) fn xfs_geometry(fd: BorrowedFd<'_>) -> Result<XfsGeomV1> {
    let mut g = XfsGeomV1::default();
    // SAFETY: valid fd; `g` is a writable xfs_fsop_geom_v1 of exactly the size encoded in
    // the request number, which the kernel fills.
    unsafe { ioctl::xfs_geometry_v1(fd.as_raw_fd(), &mut g) }.context("XFS_IOC_FSGEOMETRY_V1")?;
    Ok(g)
}

/// `XFS_IOC_FSGROWFSDATA`: grow the data section to `newblocks` filesystem blocks.
pub(crate) fn xfs_grow_data(fd: BorrowedFd<'_>, newblocks: u64, imaxpct: u32) -> Result<()> {
    let arg = XfsGrowfsData { newblocks, imaxpct };
    // SAFETY: valid fd; `arg` is an initialised xfs_growfs_data the kernel only reads.
    unsafe { ioctl::xfs_growfs_data(fd.as_raw_fd(), &arg) }.with_context(|| format!("XFS_IOC_FSGROWFSDATA to {newblocks} blocks"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structure_sizes_match_the_uapi() {
        assert_eq!(std::mem::size_of::<BtrfsVolArgs>(), 4096);
        assert_eq!(std::mem::size_of::<XfsGrowfsData>(), 16);
        assert_eq!(std::mem::size_of::<XfsGeomV1>(), 112);
        // _IOW(0x94, 3, 4096 bytes) as the kernel header computes it.
        assert_eq!(nix::request_code_write!(0x94, 3, 4096), 0x5000_9403);
        assert_eq!(nix::request_code_write!(b'X', 110, 16), 0x4010_586e);
        assert_eq!(nix::request_code_read!(b'X', 100, 112), 0x8070_5864);
        assert!(BtrfsVolArgs::new(&"x".repeat(4088)).is_err());
        assert!(BtrfsVolArgs::new("a\0b").is_err());
        assert_eq!(&BtrfsVolArgs::new("1:4096").unwrap().name[..7], b"1:4096\0");
    }
}
