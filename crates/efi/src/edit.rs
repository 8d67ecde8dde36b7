//! Editing boot variables the way `efibootmgr` does: create, delete, order, next, timeout,
//! active/inactive. Every operation writes only what changes ([`EfiVars::update`]); the
//! variables written are in [`EfiVars::changes`].

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;

use crate::loadopt::{LoadOption, LOAD_OPTION_ACTIVE};
use crate::policy::{find_identical, insert_at};
use crate::vars::{boot_var_name, EfiVars};

/// Parses a boot option number: `0003`, `3`, `Boot0003` (hex, like efibootmgr's `-b`).
pub fn parse_boot_number(text: &str) -> Result<u16> {
    let t = text.trim();
    let hex = t
        .strip_prefix("Boot")
        .or_else(|| t.strip_prefix("boot"))
        .unwrap_or(t);
    let hex = hex.strip_prefix("0x").unwrap_or(hex);
    ensure!(
        !hex.is_empty() && hex.len() <= 4 && hex.bytes().all(|c| c.is_ascii_hexdigit()),
        "invalid boot number {text:?}: expected up to 4 hex digits, e.g. 0003"
    );
    u16::from_str_radix(hex, 16).with_context(|| format!("invalid boot number {text:?}"))
}

/// Parses a boot order: numbers separated by commas and/or given as several arguments
/// (`0003,0001` or `3 1`).
pub fn parse_order<S: AsRef<str>>(parts: &[S]) -> Result<Vec<u16>> {
    let mut out = Vec::new();
    for p in parts {
        for n in p.as_ref().split(',').filter(|s| !s.trim().is_empty()) {
            out.push(parse_boot_number(n)?);
        }
    }
    Ok(out)
}

/// Where a new entry goes in `BootOrder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Index 0 (efibootmgr `-c`).
    First,
    /// After the existing entries.
    Last,
    /// At this index (efibootmgr `-I`).
    At(usize),
    /// Not in `BootOrder` (efibootmgr `-C`).
    Unlisted,
}

/// What [`create`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Created {
    /// The entry number.
    pub number: u16,
    /// `Boot####`.
    pub name: String,
    /// An identical entry existed and was reused.
    pub reused: bool,
    /// The `Boot####` variable was (re)written.
    pub written: bool,
}

/// Creates a boot entry, or reuses an identical one, and places it in `BootOrder`.
///
/// With `number`, that `Boot####` is written (replacing whatever was there); otherwise an
/// identical entry's number is reused, or the lowest free number taken.
pub fn create(
    vars: &EfiVars,
    opt: &LoadOption,
    number: Option<u16>,
    placement: Placement,
) -> Result<Created> {
    let (n, reused) = match number {
        Some(n) => {
            let same = vars
                .read_boot(n)
                .ok()
                .flatten()
                .is_some_and(|e| e.same_entry(opt));
            (n, same)
        }
        None => match find_identical(vars, opt)? {
            Some(n) => (n, true),
            None => (vars.free_boot_number()?, false),
        },
    };
    let written = vars.write_boot(n, opt)?;
    let order = vars.boot_order()?;
    let new_order = match placement {
        Placement::First => insert_at(&order, n, 0),
        Placement::Last if order.contains(&n) => order.clone(),
        Placement::Last => insert_at(&order, n, usize::MAX),
        Placement::At(i) => insert_at(&order, n, i),
        Placement::Unlisted => order.clone(),
    };
    vars.set_boot_order(&new_order)?;
    Ok(Created {
        number: n,
        name: boot_var_name(n),
        reused,
        written,
    })
}

/// Deletes `Boot####` `n` and removes it from `BootOrder` (and `BootNext` if it names it).
/// Fails if there is no such entry and it is in neither variable.
pub fn delete(vars: &EfiVars, n: u16) -> Result<()> {
    let existed = vars.delete_boot(n)?;
    let order = vars.boot_order()?;
    let in_order = order.contains(&n);
    if in_order {
        let rest: Vec<u16> = order.into_iter().filter(|&m| m != n).collect();
        vars.set_boot_order(&rest)?;
    }
    let in_next = vars.boot_next().ok().flatten() == Some(n);
    if in_next {
        vars.set_boot_next(None)?;
    }
    ensure!(
        existed || in_order || in_next,
        "{} does not exist",
        boot_var_name(n)
    );
    Ok(())
}

/// Numbers in `order` without a `Boot####` variable.
pub fn missing_entries(vars: &EfiVars, order: &[u16]) -> Result<Vec<u16>> {
    let have = vars.boot_numbers()?;
    Ok(order
        .iter()
        .copied()
        .filter(|n| !have.contains(n))
        .collect())
}

/// Sets `BootOrder`. Duplicates are refused; numbers without a `Boot####` are refused unless
/// `allow_missing`.
pub fn set_order(vars: &EfiVars, order: &[u16], allow_missing: bool) -> Result<bool> {
    for (i, n) in order.iter().enumerate() {
        ensure!(
            !order[..i].contains(n),
            "{} is listed twice",
            boot_var_name(*n)
        );
    }
    let missing = missing_entries(vars, order)?;
    if !allow_missing && !missing.is_empty() {
        let names: Vec<String> = missing.into_iter().map(boot_var_name).collect();
        bail!(
            "no such boot entries: {} (use --allow-missing to set the order anyway)",
            names.join(", ")
        );
    }
    vars.set_boot_order(order)
}

/// Sets `BootNext` (the entry must exist) or deletes it with `None`.
pub fn set_next(vars: &EfiVars, n: Option<u16>) -> Result<bool> {
    if let Some(n) = n {
        ensure!(
            vars.read_boot(n)?.is_some(),
            "{} does not exist",
            boot_var_name(n)
        );
    }
    vars.set_boot_next(n)
}

/// Sets or clears `LOAD_OPTION_ACTIVE` on `Boot####` `n`. Returns whether it changed.
pub fn set_active(vars: &EfiVars, n: u16, active: bool) -> Result<bool> {
    let mut opt = vars
        .read_boot(n)?
        .with_context(|| format!("{} does not exist", boot_var_name(n)))?;
    if active {
        opt.attributes |= LOAD_OPTION_ACTIVE;
    } else {
        opt.attributes &= !LOAD_OPTION_ACTIVE;
    }
    vars.write_boot(n, &opt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devpath::tests::sample_path;

    fn opt(desc: &str) -> LoadOption {
        LoadOption {
            attributes: LOAD_OPTION_ACTIVE,
            description: desc.into(),
            path: sample_path(),
            optional_data: vec![],
        }
    }

    fn setup() -> (tempfile::TempDir, EfiVars) {
        let dir = tempfile::tempdir().unwrap();
        let vars = EfiVars::new(dir.path());
        (dir, vars)
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_boot_number("0003").unwrap(), 3);
        assert_eq!(parse_boot_number("Boot00aF").unwrap(), 0xaf);
        assert_eq!(parse_boot_number("ffff").unwrap(), 0xffff);
        assert_eq!(parse_boot_number("0x10").unwrap(), 0x10);
        for bad in ["", "10000", "xyz", "-1", "Boot"] {
            assert!(parse_boot_number(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_order(&["0003,0001", "2"]).unwrap(), vec![3, 1, 2]);
        assert_eq!(parse_order::<&str>(&[]).unwrap(), Vec::<u16>::new());
    }

    #[test]
    fn create_places_and_reuses() {
        let (_d, vars) = setup();
        let a = create(&vars, &opt("A"), None, Placement::First).unwrap();
        assert_eq!((a.number, a.reused, a.written), (0, false, true));
        let b = create(&vars, &opt("B"), None, Placement::Last).unwrap();
        assert_eq!(b.number, 1);
        let c = create(&vars, &opt("C"), Some(0x10), Placement::At(1)).unwrap();
        assert_eq!(c.name, "Boot0010");
        let d = create(&vars, &opt("D"), None, Placement::Unlisted).unwrap();
        assert_eq!(d.number, 2);
        assert_eq!(vars.boot_order().unwrap(), vec![0, 0x10, 1]);
        let again = create(&vars, &opt("B"), None, Placement::First).unwrap();
        assert_eq!(
            (again.number, again.reused, again.written),
            (1, true, false)
        );
        assert_eq!(vars.boot_order().unwrap(), vec![1, 0, 0x10]);
        let n = vars.changes().len();
        create(&vars, &opt("B"), None, Placement::First).unwrap();
        create(&vars, &opt("B"), None, Placement::Last).unwrap();
        assert_eq!(vars.changes().len(), n, "no write when nothing changes");
    }

    #[test]
    fn delete_next_order_active_timeout() {
        let (_d, vars) = setup();
        for d in ["A", "B", "C"] {
            create(&vars, &opt(d), None, Placement::Last).unwrap();
        }
        assert!(set_next(&vars, Some(1)).unwrap());
        assert!(set_next(&vars, Some(9)).is_err());
        delete(&vars, 1).unwrap();
        assert_eq!(vars.boot_order().unwrap(), vec![0, 2]);
        assert_eq!(vars.boot_next().unwrap(), None);
        assert!(delete(&vars, 1).is_err());
        // A dangling BootOrder number can be deleted from the order.
        vars.set_boot_order(&[0, 7, 2]).unwrap();
        delete(&vars, 7).unwrap();
        assert_eq!(vars.boot_order().unwrap(), vec![0, 2]);

        assert!(set_order(&vars, &[2, 0], false).unwrap());
        assert!(!set_order(&vars, &[2, 0], false).unwrap());
        assert!(set_order(&vars, &[2, 2], false).is_err());
        let err = set_order(&vars, &[2, 5], false).unwrap_err().to_string();
        assert!(err.contains("Boot0005"), "{err}");
        assert!(set_order(&vars, &[2, 5], true).unwrap());

        assert!(set_active(&vars, 2, false).unwrap());
        assert!(!vars.read_boot(2).unwrap().unwrap().is_active());
        assert!(!set_active(&vars, 2, false).unwrap());
        assert!(set_active(&vars, 2, true).unwrap());
        assert!(set_active(&vars, 9, true).is_err());

        assert!(vars.set_timeout(Some(5)).unwrap());
        assert_eq!(vars.timeout().unwrap(), Some(5));
        assert!(vars.set_timeout(None).unwrap());
        assert!(!vars.set_timeout(None).unwrap());
    }
}
