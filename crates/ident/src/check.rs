//! The offline bootability check: run on the target after the copy and the identity change,
//! before the clone is reported as a success.
//!
//! 1. Every UUID / PARTUUID / LABEL / PARTLABEL that the target's fstab, crypttab,
//!    systemd-boot entries, grub.cfg (searches and kernel command lines), grubenv,
//!    `/etc/default/grub`, `/etc/kernel/cmdline` and initramfs-tools' `resume` name
//!    ([`crate::apply::known_files`], [`crate::refs::find_refs`]) must be a partition of the
//!    target itself. One that names a partition of another disk (e.g. the source) is an error
//!    that says so; one that names nothing is an error too — unless the target has a LUKS,
//!    LVM or RAID container it may live in, which this check cannot see into (a warning).
//! 2. The `linux`/`initrd`/`efi`/`devicetree` files of every systemd-boot entry exist on the
//!    entry's own partition.
//! 3. The loader of each new EFI boot entry exists on the target's ESP.

use std::path::PathBuf;

use serde::Serialize;

use crate::apply::{known_files, TargetFiles};
use crate::refs::{find_refs, loader_entry_files, FileKind, Ref, RefKind};

/// One partition of the target (or of another disk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartInfo {
    /// Partition number.
    pub number: u32,
    /// PARTUUID (GPT partition GUID or MBR `SSSSSSSS-NN`).
    pub part_uuid: Option<String>,
    /// GPT partition name (PARTLABEL).
    pub part_label: Option<String>,
    /// Filesystem as probed (`ext4`, `vfat`, `crypto_LUKS`, …).
    pub fs: Option<String>,
    /// Filesystem UUID / serial (for LUKS: the header's UUID).
    pub fs_uuid: Option<String>,
    /// Filesystem label.
    pub label: Option<String>,
    /// The partition's block device (or image).
    pub dev_path: PathBuf,
    /// Where it is mounted, if it is; FAT partitions are read from `dev_path` without it.
    pub mounted_root: Option<PathBuf>,
}

impl PartInfo {
    /// From a discovered partition, its device node and where it is mounted (if it is).
    pub fn from_partition(
        p: &sysclone_disk::Partition,
        dev_path: PathBuf,
        mounted_root: Option<PathBuf>,
    ) -> PartInfo {
        PartInfo {
            number: p.number,
            part_uuid: p.part_uuid.clone(),
            part_label: p.label.clone(),
            fs: p.fs.as_ref().map(|f| f.kind.clone()),
            fs_uuid: p.fs.as_ref().and_then(|f| f.uuid.clone()),
            label: p.fs.as_ref().and_then(|f| f.label.clone()),
            dev_path,
            mounted_root,
        }
    }

    fn describe(&self) -> String {
        match &self.fs {
            Some(fs) => format!("partition {} ({fs})", self.number),
            None => format!("partition {}", self.number),
        }
    }

    /// Whether reference `r` names this partition.
    pub(crate) fn matches(&self, r: &Ref) -> bool {
        let eq = |a: &Option<String>| {
            a.as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(&r.value))
        };
        match r.kind {
            RefKind::Uuid if r.dashless => self.fs_uuid.as_deref().is_some_and(|a| {
                a.replace('-', "")
                    .eq_ignore_ascii_case(&r.value.replace('-', ""))
            }),
            RefKind::Uuid => eq(&self.fs_uuid),
            RefKind::PartUuid => eq(&self.part_uuid),
            RefKind::Label => self.label.as_deref() == Some(r.value.as_str()),
            RefKind::PartLabel => self.part_label.as_deref() == Some(r.value.as_str()),
            RefKind::MenuId => false,
        }
    }

    fn is_container(&self) -> bool {
        matches!(
            self.fs.as_deref(),
            Some("crypto_LUKS" | "LVM2_member" | "linux_raid_member")
        )
    }
}

/// Another disk that stays attached: references resolving to it are named in errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OtherDisk {
    /// How to name it in messages, e.g. "the source disk (/dev/sda)".
    pub name: String,
    pub parts: Vec<PartInfo>,
}

impl OtherDisk {
    /// From a discovered disk (partition nodes under `/dev`).
    pub fn from_disk(name: impl Into<String>, d: &sysclone_disk::Disk) -> OtherDisk {
        let parts = d
            .partitions
            .iter()
            .map(|p| {
                let dev = p
                    .name
                    .as_ref()
                    .map(|n| PathBuf::from("/dev").join(n))
                    .unwrap_or_default();
                PartInfo::from_partition(p, dev, None)
            })
            .collect();
        OtherDisk {
            name: name.into(),
            parts,
        }
    }
}

/// The loader of a new EFI boot entry: the partition its `HD()` node names and the file path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoaderRef {
    /// PARTUUID of the ESP the entry points at; None: any FAT partition of the target.
    pub part_uuid: Option<String>,
    /// Loader path, `\EFI\debian\shimx64.efi` or `/EFI/debian/shimx64.efi`.
    pub path: String,
}

/// What the check found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Problems that can keep the clone from booting or mounting its filesystems.
    pub errors: Vec<String>,
    /// Things that could not be checked, or ambiguities.
    pub warnings: Vec<String>,
    /// Everything that was verified.
    pub checked: Vec<String>,
}

impl Report {
    /// No errors.
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

fn kind_word(k: RefKind) -> &'static str {
    match k {
        RefKind::Uuid => "filesystem UUID",
        RefKind::PartUuid => "PARTUUID",
        RefKind::Label => "filesystem label",
        RefKind::PartLabel => "partition label",
        RefKind::MenuId => "menu id",
    }
}

fn norm_loader(p: &str) -> String {
    p.replace('\\', "/").trim_start_matches('/').to_string()
}

fn check_ref(r: &Ref, at: &str, target: &[PartInfo], others: &[OtherDisk], rep: &mut Report) {
    let shown = r.display();
    let here: Vec<&PartInfo> = target.iter().filter(|p| p.matches(r)).collect();
    let elsewhere: Vec<(&OtherDisk, &PartInfo)> = others
        .iter()
        .flat_map(|d| d.parts.iter().filter(|p| p.matches(r)).map(move |p| (d, p)))
        .collect();
    if let Some(p) = here.first() {
        rep.checked
            .push(format!("{at}: {shown} → {}", p.describe()));
        if here.len() > 1 {
            let all: Vec<String> = here.iter().map(|p| p.number.to_string()).collect();
            rep.warnings.push(format!(
                "{at}: {shown} matches several partitions of the target ({}): ambiguous",
                all.join(", ")
            ));
        }
        if let Some((d, q)) = elsewhere.first() {
            rep.warnings.push(format!(
                "{at}: {shown} matches {} of the target and also partition {} of {}: ambiguous while both disks are attached",
                p.describe(),
                q.number,
                d.name
            ));
        }
        return;
    }
    if let Some((d, q)) = elsewhere.first() {
        rep.errors.push(format!(
            "{at}: {shown} refers to {} (partition {}), not to the target",
            d.name, q.number
        ));
        return;
    }
    let containers: Vec<&PartInfo> = target.iter().filter(|p| p.is_container()).collect();
    if matches!(r.kind, RefKind::Uuid | RefKind::Label) && !containers.is_empty() {
        let c: Vec<String> = containers.iter().map(|p| p.describe()).collect();
        rep.warnings.push(format!(
            "{at}: {shown} is not a partition of the target; it may be a filesystem inside {} (not checked)",
            c.join(", ")
        ));
        return;
    }
    rep.errors.push(format!(
        "{at}: {shown} does not match the {} of any partition of the target",
        kind_word(r.kind)
    ));
}

/// Checks that the target can boot on its own (see the module documentation). `target`: the
/// target's partitions as they are now (after any identity change); `others`: disks that stay
/// attached (in `new` mode the source; in `keep` mode leave the source out, it has the same
/// identifiers); `esp_loaders`: the loaders of the EFI boot entries created for the target;
/// `files`: access to the partitions' files ([`crate::apply::HostFiles`]).
pub fn check_bootable(
    target: &[PartInfo],
    others: &[OtherDisk],
    esp_loaders: &[LoaderRef],
    files: &dyn TargetFiles,
) -> Report {
    let mut rep = Report::default();
    let mut readable = 0;
    for part in target {
        if !files.readable(part) {
            if part.fs.as_deref().is_some_and(|f| {
                !matches!(
                    f,
                    "swap" | "crypto_LUKS" | "LVM2_member" | "linux_raid_member"
                )
            }) {
                rep.warnings.push(format!(
                    "{}: not mounted or not readable: its files were not checked",
                    part.describe()
                ));
            }
            continue;
        }
        readable += 1;
        for (path, kind) in known_files(|d| files.list(part, d)) {
            let Some(text) = files.read(part, &path) else {
                continue;
            };
            let refs = find_refs(kind, &text);
            let n = refs.iter().filter(|r| r.kind != RefKind::MenuId).count();
            rep.checked
                .push(format!("/{path} on {}: {n} reference(s)", part.describe()));
            for r in refs.iter().filter(|r| r.kind != RefKind::MenuId) {
                let at = format!("/{path} line {} on {}", r.line, part.describe());
                check_ref(r, &at, target, others, &mut rep);
            }
            if kind == FileKind::LoaderEntry {
                // Entries on an ESP or XBOOTLDR name files of that partition; GRUB's BLS
                // entries below a root filesystem's /boot name them relative to /boot (or
                // to the root): try the entry's partition root, its /boot and its root.
                let boot = &path[..path.find("loader/entries/").unwrap_or(0)];
                let root = boot.strip_suffix("boot/").unwrap_or(boot);
                for (line, key, file) in loader_entry_files(&text) {
                    let rel = file.trim_start_matches('/');
                    let at = format!("/{path} line {line} on {}", part.describe());
                    let found = [String::new(), boot.to_string(), root.to_string()]
                        .iter()
                        .any(|pre| files.exists(part, &format!("{pre}{rel}")));
                    if found {
                        rep.checked.push(format!("{at}: {key} {file} exists"));
                    } else {
                        rep.errors.push(format!(
                            "{at}: {key} {file} does not exist on that partition"
                        ));
                    }
                }
            }
        }
    }
    if readable == 0 {
        rep.warnings.push(
            "no partition of the target could be read: no file references were checked".into(),
        );
    }
    for l in esp_loaders {
        let path = norm_loader(&l.path);
        let candidates: Vec<&PartInfo> = match &l.part_uuid {
            Some(u) => {
                let c: Vec<&PartInfo> = target
                    .iter()
                    .filter(|p| {
                        p.part_uuid
                            .as_deref()
                            .is_some_and(|x| x.eq_ignore_ascii_case(u))
                    })
                    .collect();
                if c.is_empty() {
                    let other = others.iter().find_map(|d| {
                        d.parts
                            .iter()
                            .find(|p| {
                                p.part_uuid
                                    .as_deref()
                                    .is_some_and(|x| x.eq_ignore_ascii_case(u))
                            })
                            .map(|p| (d, p))
                    });
                    match other {
                        Some((d, p)) => rep.errors.push(format!("EFI boot entry {}: its partition {u} is partition {} of {}, not of the target", l.path, p.number, d.name)),
                        None => rep.errors.push(format!("EFI boot entry {}: its partition {u} is not a partition of the target", l.path)),
                    }
                    continue;
                }
                c
            }
            None => target
                .iter()
                .filter(|p| p.fs.as_deref() == Some("vfat"))
                .collect(),
        };
        if candidates.is_empty() {
            rep.errors.push(format!(
                "EFI boot entry {}: the target has no FAT (ESP) partition",
                l.path
            ));
            continue;
        }
        match candidates.iter().find(|p| files.exists(p, &path)) {
            Some(p) => rep.checked.push(format!(
                "EFI boot entry {}: the loader exists on {}",
                l.path,
                p.describe()
            )),
            None => {
                let unreadable = candidates.iter().all(|p| !files.readable(p));
                let which: Vec<String> = candidates.iter().map(|p| p.describe()).collect();
                if unreadable {
                    rep.errors.push(format!(
                        "EFI boot entry {}: {} could not be read to check the loader",
                        l.path,
                        which.join(", ")
                    ));
                } else {
                    rep.errors.push(format!(
                        "EFI boot entry {}: the loader does not exist on the target's ESP ({})",
                        l.path,
                        which.join(", ")
                    ));
                }
            }
        }
    }
    rep
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Files in memory: (partition number, path) → text.
    struct Mem(BTreeMap<(u32, String), String>);

    impl TargetFiles for Mem {
        fn read(&self, part: &PartInfo, path: &str) -> Option<String> {
            self.0
                .iter()
                .find(|((n, p), _)| *n == part.number && p.eq_ignore_ascii_case(path))
                .map(|(_, v)| v.clone())
        }
        fn list(&self, part: &PartInfo, dir: &str) -> Vec<(String, bool)> {
            let prefix = if dir.is_empty() {
                String::new()
            } else {
                format!("{}/", dir.to_lowercase())
            };
            let mut out: Vec<(String, bool)> = Vec::new();
            for (n, p) in self.0.keys() {
                if *n != part.number || !p.to_lowercase().starts_with(&prefix) {
                    continue;
                }
                let rest = &p[prefix.len()..];
                let e = match rest.split_once('/') {
                    Some((d, _)) => (d.to_string(), true),
                    None => (rest.to_string(), false),
                };
                if !out.contains(&e) {
                    out.push(e);
                }
            }
            out
        }
        fn readable(&self, part: &PartInfo) -> bool {
            self.0.keys().any(|(n, _)| *n == part.number)
        }
    }

    const ESP_SERIAL: &str = "B00C-0FFE";
    const ESP_PART: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
    const ROOT_UUID: &str = "0a0b0c0d-1111-4222-8333-444455556666";
    const ROOT_PART: &str = "12345678-abcd-4ef0-9123-456789abcdef";
    const SWAP_UUID: &str = "77777777-8888-4999-aaaa-bbbbccccdddd";
    const SRC_ROOT: &str = "3f1c2a4e-9b7d-4c1e-8a2b-5d6e7f809102";

    fn part(n: u32, fs: &str, uuid: &str, pu: &str, label: Option<&str>) -> PartInfo {
        PartInfo {
            number: n,
            part_uuid: Some(pu.into()),
            part_label: Some(format!("p{n}")),
            fs: Some(fs.into()),
            fs_uuid: Some(uuid.into()),
            label: label.map(Into::into),
            dev_path: format!("/dev/loop9p{n}").into(),
            mounted_root: None,
        }
    }

    fn target() -> Vec<PartInfo> {
        vec![
            part(1, "vfat", ESP_SERIAL, ESP_PART, Some("ESP")),
            part(2, "ext4", ROOT_UUID, ROOT_PART, Some("root")),
            part(
                3,
                "swap",
                SWAP_UUID,
                "aaaaaaaa-0000-4000-8000-000000000003",
                None,
            ),
        ]
    }

    fn source() -> OtherDisk {
        OtherDisk {
            name: "the source disk (/dev/sda)".into(),
            parts: vec![
                part(
                    1,
                    "vfat",
                    "6A1F-22C3",
                    "bbbbbbbb-0000-4000-8000-000000000001",
                    Some("ESP"),
                ),
                part(
                    2,
                    "ext4",
                    SRC_ROOT,
                    "bbbbbbbb-0000-4000-8000-000000000002",
                    Some("root"),
                ),
            ],
        }
    }

    fn files(fstab: &str) -> Mem {
        let mut m = BTreeMap::new();
        m.insert((2, "etc/fstab".to_string()), fstab.to_string());
        m.insert(
            (2, "etc/hostname".to_string()),
            format!("UUID={SRC_ROOT}\n"),
        );
        m.insert(
            (1, "loader/entries/debian.conf".to_string()),
            format!("title Debian\nlinux /vmlinuz\ninitrd /initrd.img\noptions root=PARTUUID={} ro resume=UUID={SWAP_UUID}\n", ROOT_PART.to_uppercase()),
        );
        m.insert((1, "vmlinuz".to_string()), "MZ".to_string());
        m.insert((1, "initrd.img".to_string()), "070701".to_string());
        m.insert((1, "EFI/BOOT/BOOTX64.EFI".to_string()), "MZ".to_string());
        m.insert((1, "EFI/debian/grub.cfg".to_string()), format!("search.fs_uuid {ROOT_UUID} root hd0,gpt2\nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n"));
        m.insert((2, "boot/grub/grub.cfg".to_string()), format!("search --no-floppy --fs-uuid --set=root {ROOT_UUID}\nlinux /boot/vmlinuz root=UUID={ROOT_UUID} ro\n"));
        Mem(m)
    }

    const GOOD_FSTAB: &str = "# comment UUID=ffffffff-ffff-4fff-8fff-ffffffffffff\n\
        UUID=0a0b0c0d-1111-4222-8333-444455556666 / ext4 errors=remount-ro 0 1\n\
        UUID=b00c-0ffe /boot/efi vfat umask=0077 0 1\n\
        UUID=77777777-8888-4999-aaaa-bbbbccccdddd none swap sw 0 0\n\
        LABEL=root /mnt/again ext4 defaults 0 2\n\
        PARTLABEL=p2 /mnt/p ext4 defaults 0 2\n\
        tmpfs /tmp tmpfs defaults 0 0\n\
        /dev/sr0 /media/cdrom0 udf,iso9660 user,noauto 0 0\n";

    #[test]
    fn a_consistent_target_passes() {
        let loaders = [
            LoaderRef {
                part_uuid: Some(ESP_PART.to_uppercase()),
                path: "\\EFI\\BOOT\\BOOTX64.EFI".into(),
            },
            LoaderRef {
                part_uuid: None,
                path: "/efi/boot/bootx64.efi".into(),
            },
        ];
        let rep = check_bootable(&target(), &[], &loaders, &files(GOOD_FSTAB));
        assert!(rep.ok(), "{rep:#?}");
        assert!(rep.warnings.is_empty(), "{rep:#?}");
        let joined = rep.checked.join("\n");
        for want in [
            "/etc/fstab line 2 on partition 2 (ext4): UUID=0a0b0c0d-1111-4222-8333-444455556666 → partition 2 (ext4)",
            "/etc/fstab line 3 on partition 2 (ext4): UUID=b00c-0ffe → partition 1 (vfat)",
            "/etc/fstab line 5 on partition 2 (ext4): LABEL=root → partition 2 (ext4)",
            "/etc/fstab line 6 on partition 2 (ext4): PARTLABEL=p2 → partition 2 (ext4)",
            "/loader/entries/debian.conf line 4 on partition 1 (vfat): PARTUUID=12345678-ABCD-4EF0-9123-456789ABCDEF → partition 2 (ext4)",
            "/loader/entries/debian.conf line 2 on partition 1 (vfat): linux /vmlinuz exists",
            "/EFI/debian/grub.cfg line 1 on partition 1 (vfat): search.fs_uuid 0a0b0c0d-1111-4222-8333-444455556666 → partition 2 (ext4)",
            "/boot/grub/grub.cfg line 2 on partition 2 (ext4): UUID=0a0b0c0d-1111-4222-8333-444455556666 → partition 2 (ext4)",
            "EFI boot entry \\EFI\\BOOT\\BOOTX64.EFI: the loader exists on partition 1 (vfat)",
        ] {
            assert!(joined.contains(want), "missing {want:?} in\n{joined}");
        }
    }

    #[test]
    fn references_to_the_source_and_to_nothing_are_errors() {
        let fstab = format!("{GOOD_FSTAB}UUID={SRC_ROOT} /old ext4 defaults 0 2\nPARTUUID=deadbeef-0000-4000-8000-000000000000 /gone ext4 nofail 0 2\nLABEL=nosuch /x ext4 0 0\n");
        let mut f = files(&fstab);
        f.0.insert(
            (1, "loader/entries/old.conf".into()),
            format!(
                "title old\nlinux /vmlinuz-old\noptions root=UUID={}\n",
                SRC_ROOT.to_uppercase()
            ),
        );
        let rep = check_bootable(&target(), &[source()], &[], &f);
        assert_eq!(
            rep.errors,
            [
                format!("/loader/entries/old.conf line 3 on partition 1 (vfat): UUID={} refers to the source disk (/dev/sda) (partition 2), not to the target", SRC_ROOT.to_uppercase()),
                "/loader/entries/old.conf line 2 on partition 1 (vfat): linux /vmlinuz-old does not exist on that partition".to_string(),
                format!("/etc/fstab line 9 on partition 2 (ext4): UUID={SRC_ROOT} refers to the source disk (/dev/sda) (partition 2), not to the target"),
                "/etc/fstab line 10 on partition 2 (ext4): PARTUUID=deadbeef-0000-4000-8000-000000000000 does not match the PARTUUID of any partition of the target".to_string(),
                "/etc/fstab line 11 on partition 2 (ext4): LABEL=nosuch does not match the filesystem label of any partition of the target".to_string(),
            ]
        );
        // Labels shared with the source are ambiguous while both are attached.
        assert!(rep.warnings.iter().any(|w| w.contains("LABEL=root matches partition 2 (ext4) of the target and also partition 2 of the source disk")), "{:#?}", rep.warnings);
        // /etc/hostname is not a reference file: the UUID in it is not looked at.
        assert!(!rep.errors.iter().any(|e| e.contains("hostname")));
    }

    #[test]
    fn missing_loaders_and_foreign_esp() {
        let loaders = [
            LoaderRef {
                part_uuid: Some(ESP_PART.into()),
                path: "\\EFI\\debian\\shimx64.efi".into(),
            },
            LoaderRef {
                part_uuid: Some("bbbbbbbb-0000-4000-8000-000000000001".into()),
                path: "\\EFI\\BOOT\\BOOTX64.EFI".into(),
            },
            LoaderRef {
                part_uuid: Some("99999999-0000-4000-8000-000000000001".into()),
                path: "\\EFI\\BOOT\\BOOTX64.EFI".into(),
            },
        ];
        let rep = check_bootable(&target(), &[source()], &loaders, &files(GOOD_FSTAB));
        assert_eq!(
            rep.errors,
            [
                "EFI boot entry \\EFI\\debian\\shimx64.efi: the loader does not exist on the target's ESP (partition 1 (vfat))",
                "EFI boot entry \\EFI\\BOOT\\BOOTX64.EFI: its partition bbbbbbbb-0000-4000-8000-000000000001 is partition 1 of the source disk (/dev/sda), not of the target",
                "EFI boot entry \\EFI\\BOOT\\BOOTX64.EFI: its partition 99999999-0000-4000-8000-000000000001 is not a partition of the target",
            ]
        );
    }

    #[test]
    fn containers_turn_unresolved_uuids_into_warnings() {
        let mut t = target();
        t.push(part(
            4,
            "crypto_LUKS",
            "4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d",
            "aaaaaaaa-0000-4000-8000-000000000004",
            None,
        ));
        let crypttab = "cryptroot UUID=4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d none luks\n";
        let fstab = "UUID=11111111-2222-4333-8444-555555555555 / btrfs subvol=root 0 0\nPARTUUID=22222222-2222-4333-8444-555555555555 /x ext4 0 0\n";
        let mut f = files(fstab);
        f.0.insert((2, "etc/crypttab".into()), crypttab.into());
        let rep = check_bootable(&t, &[], &[], &f);
        assert_eq!(rep.errors.len(), 1, "{rep:#?}");
        assert!(
            rep.errors[0].contains("PARTUUID=22222222"),
            "a PARTUUID is never inside a container"
        );
        assert!(rep.warnings.iter().any(|w| w.contains("UUID=11111111-2222-4333-8444-555555555555 is not a partition of the target; it may be a filesystem inside partition 4 (crypto_LUKS)")), "{rep:#?}");
        assert!(rep.checked.iter().any(|c| c.contains("/etc/crypttab line 1 on partition 2 (ext4): UUID=4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d → partition 4 (crypto_LUKS)")));
    }

    #[test]
    fn bls_entries_below_a_root_subvolume() {
        let mut f = files(GOOD_FSTAB);
        f.0.retain(|(n, p), _| !(*n == 2 && p == "etc/fstab"));
        f.0.insert(
            (2, "@/etc/fstab".into()),
            format!("UUID={ROOT_UUID} / btrfs subvol=@ 0 0\n"),
        );
        f.0.insert(
            (2, "@/boot/loader/entries/fedora.conf".into()),
            format!("title F\nlinux /vmlinuz-6.5\ninitrd /boot/initramfs-6.5.img\noptions root=UUID={ROOT_UUID} rootflags=subvol=@\n"),
        );
        f.0.insert((2, "@/boot/vmlinuz-6.5".into()), "MZ".into());
        f.0.insert((2, "@/boot/initramfs-6.5.img".into()), "x".into());
        let rep = check_bootable(&target(), &[], &[], &f);
        assert!(rep.ok(), "{rep:#?}");
        let c = rep.checked.join("\n");
        assert!(
            c.contains("/@/etc/fstab line 1 on partition 2 (ext4): UUID="),
            "{c}"
        );
        assert!(c.contains("/@/boot/loader/entries/fedora.conf line 2 on partition 2 (ext4): linux /vmlinuz-6.5 exists"), "{c}");
        assert!(c.contains("initrd /boot/initramfs-6.5.img exists"), "{c}");
    }

    #[test]
    fn cryptomount_dashless_and_unreadable_target() {
        let mut t = target();
        t.push(part(
            4,
            "crypto_LUKS",
            "4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d",
            "aaaaaaaa-0000-4000-8000-000000000004",
            None,
        ));
        let mut f = files(GOOD_FSTAB);
        f.0.insert(
            (2, "boot/grub/grub.cfg".into()),
            "cryptomount -u 4A5B6C7D8E9F4A0B9C1D2E3F4A5B6C7D\n".into(),
        );
        let rep = check_bootable(&t, &[], &[], &f);
        assert!(rep.ok(), "{rep:#?}");
        assert!(rep
            .checked
            .iter()
            .any(|c| c.contains("cryptomount -u 4A5B6C7D8E9F4A0B9C1D2E3F4A5B6C7D → partition 4")));
        let rep = check_bootable(
            &t,
            &[],
            &[LoaderRef {
                part_uuid: None,
                path: "/EFI/BOOT/BOOTX64.EFI".into(),
            }],
            &Mem(BTreeMap::new()),
        );
        assert!(
            rep.warnings
                .iter()
                .any(|w| w.contains("no partition of the target could be read")),
            "{rep:#?}"
        );
        assert_eq!(rep.errors, ["EFI boot entry /EFI/BOOT/BOOTX64.EFI: partition 1 (vfat) could not be read to check the loader"]);
    }
}
