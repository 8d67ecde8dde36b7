//! Print the used-block map of an image file or device as JSON:
//! `cargo run -p sysclone-fs --example usedmap -- PATH [START [LEN]]`.

use std::fs::File;
use std::io::{Seek, SeekFrom};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else { anyhow::bail!("usage: usedmap PATH [START [LEN]]") };
    let mut f = File::open(path)?;
    let size = f.seek(SeekFrom::End(0))?;
    let start: u64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let len: u64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(size.saturating_sub(start));
    let t = std::time::Instant::now();
    let m = sysclone_fs::used_map(&f, start, len)?;
    eprintln!("{}: {} extents, {} of {len} bytes used, {:?}", m.fs, m.extents.len(), m.used_bytes, t.elapsed());
    println!("{}", serde_json::to_string(&m)?);
    Ok(())
}
