//! Boot entry policy: where new entries go in `BootOrder`, and reuse of identical entries.

use anyhow::Result;

use crate::devpath::encode_path;
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

/// Whether two options have the same description and byte-identical device paths.
fn same_entry(a: &LoadOption, b: &LoadOption) -> bool {
    a.description == b.description
        && matches!((encode_path(&a.path), encode_path(&b.path)), (Ok(x), Ok(y)) if x == y)
}

/// Writes `opt` as a boot entry and puts it first in `BootOrder`, like `efibootmgr -c`.
///
/// If an existing `Boot####` has the same description and a byte-identical device path, that
/// number is rewritten instead of creating a duplicate; otherwise the lowest free number is
/// used. Malformed existing entries are ignored. Returns the entry number.
pub fn create_entry_first(vars: &EfiVars, opt: &LoadOption) -> Result<u16> {
    let n = create_entry(vars, opt)?;
    let order = vars.boot_order()?;
    vars.set_boot_order(&put_first(&order, n))?;
    Ok(n)
}

/// Writes `opt` as a boot entry without touching `BootOrder` (like `efibootmgr -C`), reusing
/// an identical existing entry's number. Returns the entry number.
pub fn create_entry(vars: &EfiVars, opt: &LoadOption) -> Result<u16> {
    let existing = vars
        .boot_entries()?
        .into_iter()
        .find_map(|(n, e)| e.ok().filter(|e| same_entry(e, opt)).map(|_| n));
    let n = match existing {
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
    }
}
