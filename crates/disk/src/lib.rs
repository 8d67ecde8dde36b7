//! Disks as a person would choose them: discovery from sysfs, stable identity, selectors,
//! and the write guard through which every write-open passes.

pub mod discover;
pub mod guard;
pub mod outcome;
pub mod probe;
pub mod select;
pub mod sys;
pub mod table;

pub use discover::{discover, human_bytes, mark_boot_medium, mark_system, Bus, Disk, Partition, Roots};
pub use guard::{check_target, check_target_now, open_source, open_target, GuardContext, Refusal, Rule, SourceHandle, TargetHandle};
pub use outcome::{BadSectors, VerifyFailed};
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

/// UTC calendar date and time of `secs` since 1970: (year, month, day, hour, minute, second).
pub fn utc_from_unix(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = (secs % 86_400) as u32;
    // Civil date from days since 1970-01-01 (proleptic Gregorian, eras of 400 years).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, rem / 60 % 60, rem % 60)
}
