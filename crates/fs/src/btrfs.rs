//! btrfs: not mapped yet.
use crate::extents::ExtentSet;
use crate::{whole, Parsed, Source, R};

pub(crate) fn map(_src: &dyn Source, _set: &mut ExtentSet) -> R<Parsed> {
    whole!("used-block map not implemented")
}
