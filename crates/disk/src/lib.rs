//! Disks as a person would choose them: discovery from sysfs, stable identity, selectors,
//! and the write guard through which every write-open passes.

pub mod discover;
pub mod guard;
pub mod probe;
pub mod select;
pub mod sys;
pub mod table;

pub use discover::{discover, human_bytes, mark_boot_medium, mark_system, Bus, Disk, Partition, Roots};
pub use guard::{check_target, open_source, open_target, GuardContext, Refusal, Rule, SourceHandle, TargetHandle};
pub use select::{parse_size, Selector};

/// Block-device size of an open file: BLKGETSIZE64 for devices, the length for image files.
pub fn file_size(f: &std::fs::File) -> anyhow::Result<u64> {
    use std::os::unix::fs::FileTypeExt;
    let m = f.metadata()?;
    if m.file_type().is_block_device() {
        sys::device_size(std::os::fd::AsFd::as_fd(f))
    } else {
        Ok(m.len())
    }
}
