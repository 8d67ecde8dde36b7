//! Linux swap: only the header page (boot block, swap header, signature) matters; the
//! rest is scratch space the kernel rewrites. A partition holding a hibernation image has
//! another signature there, is not identified as swap, and is copied whole.

use crate::extents::ExtentSet;
use crate::{whole, Parsed, Source, R};

pub(crate) fn map(_src: &dyn Source, head: &[u8], set: &mut ExtentSet) -> R<Parsed> {
    for page in [4096u64, 8192, 16384, 65536] {
        let sig = head.get(page as usize - 10..page as usize);
        if sig == Some(b"SWAPSPACE2") || sig == Some(b"SWAP-SPACE") {
            set.add(0, page);
            return Ok(Parsed { block_size: page, note: Some("swap: header page only".into()) });
        }
    }
    whole!("no swap signature")
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_page_only() {
        let mut b = vec![0u8; 1 << 20];
        b[4086..4096].copy_from_slice(b"SWAPSPACE2");
        let m = crate::map_bytes(&b);
        assert_eq!((m.fs.as_str(), m.whole, m.used_bytes), ("swap", false, 4096));
        let mut b = vec![0u8; 1 << 20];
        b[65526..65536].copy_from_slice(b"SWAPSPACE2");
        let m = crate::map_bytes(&b);
        assert_eq!(m.extents, vec![crate::Extent { start: 0, len: 65536 }]);
        // A partition smaller than its page is clipped, never overrun.
        let m = crate::map_bytes(&b[..65536]);
        assert_eq!(m.used_bytes, 65536);
    }
}
