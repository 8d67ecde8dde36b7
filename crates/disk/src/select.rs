//! Disk selectors: `serial=ABC`, `bus=nvme,min-size=100G`, `role=largest-other`, `/dev/vda`.

use std::fmt;
use std::path::Path;

use anyhow::{anyhow, bail, Result};

use crate::discover::{human_bytes, Disk};

/// One condition of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    Serial(String),
    Wwn(String),
    ById(String),
    ByPath(String),
    Model(String),
    Size(u64),
    MinSize(u64),
    Bus(String),
    Name(String),
    /// Partition-table identifier: GPT disk GUID or MBR signature.
    PtUuid(String),
    /// A partition's unique GUID (or MBR `SIG-NN`).
    PartUuid(String),
    /// A filesystem UUID on any partition.
    FsUuid(String),
    RoleSystem,
    RoleLargestOther,
}

/// A disk selector: every condition must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub text: String,
    pub conds: Vec<Cond>,
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parse `512`, `512M`, `2G`, `1TiB`, `1.5T` into bytes (binary units).
pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().map_err(|_| anyhow!("bad size {s:?}: expected e.g. 512M, 2G, 1TiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().trim_end_matches("ib").trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        u => bail!("bad size unit {u:?} in {s:?}"),
    };
    Ok((v * mult as f64).round() as u64)
}

impl Selector {
    /// Parse a selector. A plain `/dev/…` path selects that kernel disk.
    pub fn parse(text: &str) -> Result<Selector> {
        let text = text.trim();
        if text.is_empty() {
            bail!("empty disk selector");
        }
        if text.starts_with('/') {
            let name = std::fs::canonicalize(text)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .or_else(|| Path::new(text).file_name().map(|n| n.to_string_lossy().into_owned()))
                .ok_or_else(|| anyhow!("bad device path {text:?}"))?;
            return Ok(Selector { text: text.into(), conds: vec![Cond::Name(name)] });
        }
        let mut conds = Vec::new();
        for part in text.split(',') {
            let (k, v) = part.split_once('=').ok_or_else(|| anyhow!("bad selector term {part:?} in {text:?}: expected key=value (serial=, wwn=, by-id=, by-path=, model=, size=, min-size=, bus=, name=, ptuuid=, partuuid=, uuid=, role=)"))?;
            let v = v.trim().to_string();
            conds.push(match k.trim() {
                "serial" => Cond::Serial(v),
                "wwn" | "eui" => Cond::Wwn(v),
                "by-id" => Cond::ById(v.trim_start_matches("/dev/disk/by-id/").to_string()),
                "by-path" => Cond::ByPath(v.trim_start_matches("/dev/disk/by-path/").to_string()),
                "model" => Cond::Model(v),
                "size" => Cond::Size(parse_size(&v)?),
                "min-size" => Cond::MinSize(parse_size(&v)?),
                "bus" => Cond::Bus(v.to_ascii_lowercase()),
                "name" => Cond::Name(v.trim_start_matches("/dev/").to_string()),
                "ptuuid" => Cond::PtUuid(v.to_ascii_lowercase()),
                "partuuid" => Cond::PartUuid(v.to_ascii_lowercase()),
                "uuid" | "fs-uuid" => Cond::FsUuid(v.to_ascii_lowercase()),
                "role" if v == "system" => Cond::RoleSystem,
                "role" if v == "largest-other" => Cond::RoleLargestOther,
                "role" => bail!("unknown role {v:?} in {text:?}: use role=system or role=largest-other"),
                other => bail!("unknown selector key {other:?} in {text:?}"),
            });
        }
        Ok(Selector { text: text.into(), conds })
    }

    fn matches(&self, d: &Disk, dev_dir: &Path) -> bool {
        let link_is = |dir: &str, v: &str| {
            std::fs::canonicalize(dev_dir.join("disk").join(dir).join(v))
                .ok()
                .is_some_and(|p| p.file_name().is_some_and(|n| n.to_string_lossy() == d.name))
        };
        self.conds.iter().all(|c| match c {
            Cond::Serial(s) => d.serial.as_deref() == Some(s.as_str()),
            Cond::Wwn(s) => d.wwn.as_deref().is_some_and(|w| w.eq_ignore_ascii_case(s)),
            Cond::ById(s) => d.by_id.iter().any(|n| n == s) || link_is("by-id", s),
            Cond::ByPath(s) => d.by_path.iter().any(|n| n == s) || link_is("by-path", s),
            Cond::Model(s) => d.model.as_deref().is_some_and(|m| m.trim() == s.trim()),
            Cond::Size(n) => d.size_bytes == *n,
            Cond::MinSize(n) => d.size_bytes >= *n,
            Cond::Bus(b) => d.bus.as_str() == b,
            Cond::Name(n) => &d.name == n,
            Cond::PtUuid(u) => d.disk_guid.as_deref().is_some_and(|g| g.eq_ignore_ascii_case(u)),
            Cond::PartUuid(u) => d.partitions.iter().any(|p| p.part_uuid.as_deref().is_some_and(|g| g.eq_ignore_ascii_case(u))),
            Cond::FsUuid(u) => d.partitions.iter().any(|p| p.fs.as_ref().and_then(|f| f.uuid.as_deref()).is_some_and(|g| g.eq_ignore_ascii_case(u))),
            Cond::RoleSystem => d.roles.iter().any(|r| r == "system"),
            Cond::RoleLargestOther => true,
        })
    }

    /// Pick exactly one disk. `others` are disks already chosen in this job (e.g. the source);
    /// they and the boot medium are never picked by `role=largest-other`.
    pub fn select<'a>(&self, disks: &'a [Disk], others: &[&str], dev_dir: &Path) -> Result<&'a Disk> {
        let mut found: Vec<&Disk> = disks.iter().filter(|d| self.matches(d, dev_dir)).collect();
        if self.conds.contains(&Cond::RoleLargestOther) {
            found.retain(|d| !others.contains(&d.name.as_str()) && !d.roles.iter().any(|r| r == "boot-medium"));
            let max = found.iter().map(|d| d.size_bytes).max();
            found.retain(|d| Some(d.size_bytes) == max);
        }
        match found.as_slice() {
            [one] => Ok(one),
            [] => bail!("selector {:?} matches no disk; the disks are:\n{}", self.text, candidates(disks.iter())),
            many => bail!("selector {:?} matches {} disks; make it narrower (e.g. add serial=):\n{}", self.text, many.len(), candidates(many.iter().copied())),
        }
    }
}

fn candidates<'a>(ds: impl Iterator<Item = &'a Disk>) -> String {
    ds.map(|d| format!("  {} bus={} model={} serial={} size={} ({} bytes)", d.name, d.bus.as_str(), d.model.as_deref().unwrap_or("-"), d.serial.as_deref().unwrap_or("-"), human_bytes(d.size_bytes), d.size_bytes))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::Bus;

    fn disk(name: &str, serial: &str, size: u64) -> Disk {
        Disk {
            name: name.into(),
            path: format!("/dev/{name}").into(),
            bus: Bus::Nvme,
            model: Some("Same Model".into()),
            serial: Some(serial.into()),
            size_bytes: size,
            logical_sector: 512,
            physical_sector: 512,
            table: "none".into(),
            ..Default::default()
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("1TiB").unwrap(), 1 << 40);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("G").is_err());
    }

    #[test]
    fn serial_tells_twins_apart_and_ambiguity_is_refused() {
        let ds = vec![disk("nvme0n1", "A1", 1 << 30), disk("nvme1n1", "B2", 1 << 30)];
        let dev = Path::new("/nonexistent");
        assert_eq!(Selector::parse("serial=B2").unwrap().select(&ds, &[], dev).unwrap().name, "nvme1n1");
        let e = Selector::parse("model=Same Model").unwrap().select(&ds, &[], dev).unwrap_err().to_string();
        assert!(e.contains("matches 2 disks") && e.contains("A1") && e.contains("B2"), "{e}");
        let e = Selector::parse("serial=ZZ").unwrap().select(&ds, &[], dev).unwrap_err().to_string();
        assert!(e.contains("matches no disk"), "{e}");
    }

    #[test]
    fn largest_other_skips_source_and_boot_medium() {
        let mut ds = vec![disk("a", "1", 10), disk("b", "2", 30), disk("c", "3", 20), disk("d", "4", 40)];
        ds[3].roles.push("boot-medium".into());
        let s = Selector::parse("role=largest-other").unwrap();
        assert_eq!(s.select(&ds, &["b"], Path::new("/x")).unwrap().name, "c");
    }

    #[test]
    fn protect_by_table_partition_and_filesystem_ids() {
        let mut ds = vec![disk("a", "1", 10), disk("b", "2", 10)];
        ds[1].disk_guid = Some("11111111-2222-3333-4444-555555555555".into());
        ds[1].partitions.push(crate::discover::Partition {
            number: 1,
            name: None,
            start_bytes: 0,
            size_bytes: 1,
            type_id: String::new(),
            type_name: String::new(),
            label: None,
            part_uuid: Some("aaaaaaaa-0000-0000-0000-000000000001".into()),
            fs: Some(crate::probe::FsInfo { kind: "ext4".into(), label: None, uuid: Some("bbbbbbbb-0000-0000-0000-000000000002".into()), used_bytes: None }),
        });
        let dev = Path::new("/x");
        for sel in ["ptuuid=11111111-2222-3333-4444-555555555555", "partuuid=AAAAAAAA-0000-0000-0000-000000000001", "uuid=bbbbbbbb-0000-0000-0000-000000000002"] {
            assert_eq!(Selector::parse(sel).unwrap().select(&ds, &[], dev).unwrap().name, "b", "{sel}");
        }
    }

    /// wwn=, size=, min-size=, bus=, model= and their combinations: every condition must hold.
    #[test]
    fn conditions_combine() {
        let mut ds = vec![disk("nvme0n1", "A1", 256 << 30), disk("sda", "S1", 256 << 30), disk("sdb", "S2", 1 << 40), disk("vda", "V1", 64 << 30)];
        ds[0].wwn = Some("eui.0025385b71b07e2f".into());
        ds[1].bus = Bus::Sata;
        ds[1].wwn = Some("naa.5000c500a1b2c3d4".into());
        ds[2].bus = Bus::Sata;
        ds[2].model = Some("Other Model".into());
        ds[3].bus = Bus::Virtio;
        let dev = Path::new("/x");
        let pick = |sel: &str| Selector::parse(sel).unwrap().select(&ds, &[], dev).map(|d| d.name.clone()).map_err(|e| e.to_string());
        assert_eq!(pick("wwn=NAA.5000C500A1B2C3D4").unwrap(), "sda");
        assert_eq!(pick("eui=eui.0025385b71b07e2f").unwrap(), "nvme0n1");
        assert_eq!(pick("size=64G").unwrap(), "vda");
        assert_eq!(pick("size=68719476736").unwrap(), "vda");
        assert_eq!(pick("min-size=1T").unwrap(), "sdb");
        assert_eq!(pick("bus=SATA,size=256G").unwrap(), "sda");
        assert_eq!(pick("bus=sata,min-size=300G").unwrap(), "sdb");
        assert_eq!(pick("bus=nvme,model=Same Model,min-size=100G").unwrap(), "nvme0n1");
        assert_eq!(pick("model=Same Model,size=256G,serial=S1").unwrap(), "sda");
        let e = pick("size=256G").unwrap_err();
        assert!(e.contains("matches 2 disks") && e.contains("nvme0n1") && e.contains("sda") && !e.contains("vda"), "{e}");
        let e = pick("bus=virtio,min-size=100G").unwrap_err();
        assert!(e.contains("matches no disk") && e.contains("V1") && e.contains("S2"), "every disk is a candidate: {e}");
        assert!(pick("size=63G").is_err() && pick("wwn=naa.0").is_err() && pick("bus=mmc").is_err());
        // role=largest-other with a condition: the largest of those that match.
        assert_eq!(pick("role=largest-other,bus=sata").unwrap(), "sdb");
        assert!(Selector::parse("role=largest-other,max=1").unwrap_err().to_string().contains("\"max\""));
    }

    #[test]
    fn bad_selectors() {
        assert!(Selector::parse("").is_err());
        assert!(Selector::parse("serial").is_err());
        assert!(Selector::parse("colour=red").is_err());
        assert!(Selector::parse("role=fastest").is_err());
    }
}
