//! Boot entry policy: where new entries go in `BootOrder`, and reuse of identical entries.

use anyhow::Result;

use crate::loadopt::LoadOption;
use crate::vars::EfiVars;

/// `order` with `n` moved (or inserted) to the front; the other numbers keep their relative
/// order and duplicates are dropped.
pub fn put_first(order: &[u16], n: u16) -> Vec<u16> {
    let mut out = Vec::with_capacity(order.len() + 1);
    out.push(n);
    for &m in order {
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

/// `order` with `n` at index `at` (clamped to the end); an existing occurrence of `n` is
/// moved, duplicates dropped.
pub fn insert_at(order: &[u16], n: u16, at: usize) -> Vec<u16> {
    let mut out: Vec<u16> = Vec::with_capacity(order.len() + 1);
    for &m in order {
        if m != n && !out.contains(&m) {
            out.push(m);
        }
    }
    out.insert(at.min(out.len()), n);
    out
}

/// The number of an existing `Boot####` that is the same entry as `opt` (description, device
/// path and optional data; see [`LoadOption::same_entry`]). Malformed entries are ignored.
pub fn find_identical(vars: &EfiVars, opt: &LoadOption) -> Result<Option<u16>> {
    Ok(vars
        .boot_entries()?
        .into_iter()
        .find_map(|(n, e)| e.ok().filter(|e| e.same_entry(opt)).map(|_| n)))
}

/// Writes `opt` as a boot entry and puts it first in `BootOrder`, like `efibootmgr -c`.
///
/// If an existing `Boot####` is the same entry (description, device path and optional data),
/// that number is reused (and rewritten only if its attributes differ) instead of creating a
/// duplicate; otherwise the lowest free number is used. Malformed existing entries are
/// ignored. `BootOrder` is written only if it changes. Returns the entry number.
pub fn create_entry_first(vars: &EfiVars, opt: &LoadOption) -> Result<u16> {
    let n = create_entry(vars, opt)?;
    let order = vars.boot_order()?;
    vars.set_boot_order(&put_first(&order, n))?;
    Ok(n)
}

/// Writes `opt` as a boot entry without touching `BootOrder` (like `efibootmgr -C`), reusing
/// an identical existing entry's number (written only if its bytes differ). Returns the entry
/// number.
pub fn create_entry(vars: &EfiVars, opt: &LoadOption) -> Result<u16> {
    let n = match find_identical(vars, opt)? {
        Some(n) => n,
        None => vars.free_boot_number()?,
    };
    vars.write_boot(n, opt)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devpath::tests::sample_path;
    use crate::devpath::DevicePathNode;
    use crate::loadopt::LOAD_OPTION_ACTIVE;
    use crate::vars::EFI_GLOBAL_GUID;

    #[test]
    fn insert_at_cases() {
        assert_eq!(insert_at(&[], 3, 5), vec![3]);
        assert_eq!(insert_at(&[1, 2], 3, 1), vec![1, 3, 2]);
        assert_eq!(insert_at(&[1, 2], 3, 9), vec![1, 2, 3]);
        assert_eq!(insert_at(&[3, 1, 2], 3, 2), vec![1, 2, 3]);
        assert_eq!(insert_at(&[1, 1, 2], 3, 0), vec![3, 1, 2]);
    }

    #[test]
    fn put_first_cases() {
        assert_eq!(put_first(&[], 3), vec![3]);
        assert_eq!(put_first(&[1, 2], 3), vec![3, 1, 2]);
        assert_eq!(put_first(&[1, 3, 2], 3), vec![3, 1, 2]);
        assert_eq!(put_first(&[3, 1], 3), vec![3, 1]);
        assert_eq!(put_first(&[1, 3, 1, 2, 3, 2], 3), vec![3, 1, 2]);
    }

    fn option(desc: &str, file: &str) -> LoadOption {
        let mut path = sample_path();
        path[1] = DevicePathNode::FilePath(file.into());
        LoadOption {
            attributes: LOAD_OPTION_ACTIVE,
            description: desc.into(),
            path,
            optional_data: vec![],
        }
    }

    #[test]
    fn creates_and_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let vars = EfiVars::new(dir.path());
        vars.write_boot(0, &option("UiApp", r"\a")).unwrap();
        vars.write("Boot0001", EFI_GLOBAL_GUID, 7, b"broken")
            .unwrap();
        vars.set_boot_order(&[0, 1]).unwrap();

        let rescue = option("Rescue", r"\EFI\BOOT\BOOTX64.EFI");
        assert_eq!(create_entry_first(&vars, &rescue).unwrap(), 2);
        assert_eq!(vars.boot_order().unwrap(), vec![2, 0, 1]);

        // Same description and path (End omitted: still byte-identical once encoded):
        // reuse 2 and rewrite it with the new attributes.
        let mut again = rescue.clone();
        again.path.pop();
        again.attributes |= crate::loadopt::LOAD_OPTION_HIDDEN;
        vars.set_boot_order(&[0, 2, 1]).unwrap();
        assert_eq!(create_entry_first(&vars, &again).unwrap(), 2);
        assert_eq!(vars.boot_order().unwrap(), vec![2, 0, 1]);
        assert_eq!(vars.read_boot(2).unwrap().unwrap().attributes, 9);

        // Different description or path: new number.
        assert_eq!(
            create_entry_first(&vars, &option("Other", r"\EFI\BOOT\BOOTX64.EFI")).unwrap(),
            3
        );
        assert_eq!(
            create_entry_first(&vars, &option("Rescue", r"\x.efi")).unwrap(),
            4
        );
        assert_eq!(vars.boot_order().unwrap(), vec![4, 3, 2, 0, 1]);

        // Same description and path but other optional data: a different entry.
        let mut args = rescue.clone();
        args.optional_data = b"quiet".to_vec();
        assert_eq!(create_entry(&vars, &args).unwrap(), 5);

        // Repeating a creation writes nothing at all.
        let before = vars.changes().len();
        assert_eq!(create_entry_first(&vars, &args).unwrap(), 5);
        let after = vars.changes();
        assert_eq!(after[before..], ["wrote BootOrder".to_string()]);
        assert_eq!(create_entry_first(&vars, &args).unwrap(), 5);
        assert_eq!(vars.changes().len(), after.len(), "nothing rewritten");
    }
}
