//! New identities for a clone and the offline bootability check.
//!
//! - [`fs_uuid`]: give a filesystem on an unmounted partition a new UUID or volume serial
//!   (natively for vfat, NTFS and swap; through `tune2fs`, `xfs_admin`, `btrfstune`).
//! - [`refs`]: find and rewrite identifier references in fstab, crypttab, systemd-boot
//!   entries, grub.cfg, grubenv, `/etc/default/grub`, `/etc/kernel/cmdline` (pure text).
//! - [`apply`]: walk those files on the target's partitions (mounted directories, or FAT
//!   ESPs read and written through `fatfs` without mounting) and rewrite them.
//! - [`check`]: before a clone is reported as a success, resolve every UUID/PARTUUID/LABEL
//!   those files name against the target's own partitions, and check the loaders of the new
//!   EFI boot entries exist on its ESP.
//!
//! The disk GUID and the partition GUIDs are written by the GPT builder
//! (`sysclone_layout::migrate`); the map given to [`apply::update_references`] holds them
//! together with the filesystem identifiers.

pub mod apply;
pub mod check;
pub mod fs_uuid;
pub mod refs;
mod sys;

pub use apply::{
    comment_out_left_out, known_files, update_references, Change, HostFiles, TargetFiles,
};
pub use check::{check_bootable, LoaderRef, OtherDisk, PartInfo, Report};
pub use fs_uuid::{random_fs_id, read_fs_id, renew_fs_id, set_fs_uuid, IdChange};
pub use refs::{comment_out, find_refs, rewrite, FileKind, IdMap, LineChange, Ref, RefKind};
