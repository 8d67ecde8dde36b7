//! The GPT the migration planner builds, written into sparse image files and checked by
//! tools that share no code with it: `sgdisk -v` and the `gpt` crate. The 4096-byte case
//! attaches a loop device with 4096-byte sectors, so it needs root.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Read;
use std::path::{Path, PathBuf};

use sysclone_layout::migrate::{guid_from_str, name_from_utf16, name_to_utf16};
use sysclone_layout::{plan_migration, Identities, MigratePlan, MigrateRequest, Policy, SourceLayout, SourcePart};
use sysclone_testutil::{require_root, run, Loop};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn part(number: u32, start: u64, size: u64, ty: &str, name: &str, fs: Option<&str>, attrs: u64) -> SourcePart {
    SourcePart {
        number,
        start,
        size,
        type_guid: guid_from_str(ty).unwrap(),
        part_guid: guid_from_str(&format!("{number:08X}-1111-4222-8333-444455556666")).unwrap(),
        name_utf16: name_to_utf16(name),
        attrs,
        fs: fs.map(str::to_string),
        used_bytes: Some(size / 4),
        used_end: Some(size / 3),
        min_size: None,
        fs_block: None,
    }
}

/// A 1 GiB source with a gap in its numbering (1, 2, 4), a non-ASCII name and attribute bits.
fn source(lbs: u32) -> SourceLayout {
    SourceLayout {
        logical_sector: lbs,
        size: GIB,
        disk_guid: guid_from_str("0D15C000-AAAA-4BBB-8CCC-DDDDEEEEFFFF").unwrap(),
        parts: vec![
            part(1, MIB, 100 * MIB, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "EFI system", Some("vfat"), 1),
            part(2, 101 * MIB, 700 * MIB, "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "racine é", Some("ext4"), 1 << 59 | 1 << 63),
            part(4, 801 * MIB, 200 * MIB, "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "swap", Some("swap"), 0),
        ],
    }
}

fn write_image(dir: &Path, name: &str, plan: &MigratePlan) -> PathBuf {
    let path = dir.join(name);
    let mut f = OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).unwrap();
    f.set_len(plan.target_size).unwrap();
    plan.gpt_bytes().unwrap().write_to(&mut f).unwrap();
    f.sync_all().unwrap();
    path
}

/// Read the image with the `gpt` crate and compare every field with the plan.
fn check_with_gpt_crate(path: &Path, plan: &MigratePlan) {
    let lbs = plan.target_sector as u64;
    let lb = gpt::disk::LogicalBlockSize::try_from(lbs).unwrap();
    let disk = gpt::GptConfig::new().writable(false).only_valid_headers(true).logical_block_size(lb).open(path).unwrap();
    let lbas = plan.target_size / lbs;
    let (p, b) = (disk.primary_header().unwrap(), disk.backup_header().unwrap());
    assert_eq!((p.current_lba, p.backup_lba, b.current_lba, b.backup_lba), (1, lbas - 1, lbas - 1, 1));
    let array = 16384 / lbs;
    assert_eq!((p.first_usable, p.last_usable, p.part_start, b.part_start), (2 + array, lbas - 2 - array, 2, lbas - 1 - array));
    assert_eq!(disk.guid().to_bytes_le(), plan.disk_guid);
    let parts = disk.partitions();
    assert_eq!(parts.len(), plan.parts.len());
    for t in &plan.parts {
        let g = &parts[&t.number];
        assert_eq!((g.first_lba, g.last_lba), (t.start / lbs, t.end() / lbs - 1), "partition {}", t.number);
        assert_eq!(g.part_type_guid.guid.to_bytes_le(), t.type_guid);
        assert_eq!(g.part_guid.to_bytes_le(), t.part_guid);
        assert_eq!(g.name, name_from_utf16(&t.name_utf16));
        assert_eq!(g.flags, t.attrs);
    }
    // The protective MBR covers the disk.
    let mut lba0 = [0u8; 512];
    std::fs::File::open(path).unwrap().read_exact(&mut lba0).unwrap();
    assert_eq!((lba0[446 + 4], &lba0[510..512]), (0xEE, &[0x55u8, 0xAA][..]));
    assert_eq!(u32::from_le_bytes(lba0[446 + 12..446 + 16].try_into().unwrap()) as u64, (lbas - 1).min(0xFFFF_FFFF));
}

fn sgdisk_clean(dev: &str) {
    let out = run("sgdisk", &["-v", dev]);
    assert!(out.contains("No problems found"), "sgdisk -v {dev}:\n{out}");
}

#[test]
fn gpt_512_checked_by_sgdisk_and_gpt_crate() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(512);
    let cases = [
        ("grow", Policy::Grow { part: None }, 3 * GIB, Identities::Keep),
        // Smaller than the source but the partitions fit: the case the gpt crate gets wrong.
        ("keep-smaller", Policy::Keep, 1001 * MIB + 16384 + 512, Identities::Keep),
        ("proportional", Policy::Proportional, 600 * MIB, Identities::Keep),
        (
            "new-ids",
            Policy::Explicit(vec![(2, 300 * MIB), (4, 50 * MIB)]),
            GIB / 2,
            Identities::New {
                disk_guid: guid_from_str("99999999-0000-4000-8000-000000000001").unwrap(),
                part_guids: (1..=3).map(|i| guid_from_str(&format!("99999999-0000-4000-8000-00000000010{i}")).unwrap()).collect(),
            },
        ),
        // Beyond 2 TiB: the protective MBR saturates at 0xFFFFFFFF.
        ("huge", Policy::Grow { part: None }, 3 << 40, Identities::Keep),
    ];
    for (name, policy, size, identities) in cases {
        let req = MigrateRequest { policy, include: None, target_size: size, target_logical_sector: 512, identities };
        let plan = plan_migration(&src, &req).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(plan.parts.iter().map(|t| t.number).collect::<Vec<_>>(), vec![1, 2, 3]);
        let img = write_image(dir.path(), name, &plan);
        sgdisk_clean(img.to_str().unwrap());
        check_with_gpt_crate(&img, &plan);
    }
}

#[test]
fn gpt_4096_checked_by_gpt_crate_and_sgdisk_on_a_4k_loop_device() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    for (name, src, include) in [("from-512", source(512), None), ("from-4096-subset", source(4096), Some(vec![1, 4]))] {
        let req = MigrateRequest {
            policy: Policy::Grow { part: None },
            include,
            target_size: 2 * GIB,
            target_logical_sector: 4096,
            identities: Identities::Keep,
        };
        let plan = plan_migration(&src, &req).unwrap();
        let img = write_image(dir.path(), name, &plan);
        check_with_gpt_crate(&img, &plan);
        let lo = Loop::new(&img, 4096);
        sgdisk_clean(&lo.0);
        let listing = run("sgdisk", &["-p", &lo.0]);
        assert!(listing.contains("Sector size (logical/physical): 4096/4096 bytes"), "{listing}");
        lo.detach();
        // sgdisk sees the same partitions: `-i N` per entry.
        let by_number: BTreeMap<u32, _> = plan.parts.iter().map(|t| (t.number, t)).collect();
        let lo = Loop::new(&img, 4096);
        for (n, t) in by_number {
            let info = run("sgdisk", &["-i", &n.to_string(), &lo.0]);
            assert!(info.contains(&format!("First sector: {} ", t.start / 4096)), "{info}");
            assert!(info.contains(&format!("Last sector: {} ", t.end() / 4096 - 1)), "{info}");
        }
        lo.detach();
    }
}
