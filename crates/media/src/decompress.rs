//! Compressed kernel modules and firmware files (`.ko.xz`, `.ko.zst`, `.ko.gz`, `*.xz`,
//! `*.zst`): recognised by magic bytes and unpacked at build time, in pure Rust (`lzma-rs`,
//! `ruzstd`, `flate2`). The image always holds them uncompressed: init loads modules with
//! `finit_module` without `MODULE_INIT_COMPRESSED_FILE`, and a signed module's appended
//! signature is part of the uncompressed `.ko`, so it still loads under lockdown.

use std::io::{BufReader, Read};

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// A compression format found on modules or firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Packed {
    Xz,
    Zstd,
    Gzip,
}

impl Packed {
    /// The format whose magic bytes start `data`, if any.
    pub fn detect(data: &[u8]) -> Option<Packed> {
        if data.starts_with(&[0xFD, b'7', b'z', b'X', b'Z', 0x00]) {
            Some(Packed::Xz)
        } else if data.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
            Some(Packed::Zstd)
        } else if data.starts_with(&[0x1F, 0x8B]) {
            Some(Packed::Gzip)
        } else {
            None
        }
    }

    /// The format a file name's suffix names (`.xz`, `.zst`, `.gz`), if any.
    pub fn from_name(name: &str) -> Option<Packed> {
        if name.ends_with(".xz") {
            Some(Packed::Xz)
        } else if name.ends_with(".zst") {
            Some(Packed::Zstd)
        } else if name.ends_with(".gz") {
            Some(Packed::Gzip)
        } else {
            None
        }
    }

    /// The file name suffix, with its dot.
    pub fn suffix(self) -> &'static str {
        match self {
            Packed::Xz => ".xz",
            Packed::Zstd => ".zst",
            Packed::Gzip => ".gz",
        }
    }
}

/// Upper bound for one unpacked file: no module or firmware blob comes near it, and a
/// hostile archive cannot make the builder allocate without limit.
pub const MAX_UNPACKED: u64 = 1 << 30;

fn read_capped<R: Read>(r: R, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(MAX_UNPACKED + 1).read_to_end(&mut out).with_context(|| format!("unpacking {what}"))?;
    if out.len() as u64 > MAX_UNPACKED {
        bail!("unpacking {what}: more than {MAX_UNPACKED} bytes");
    }
    Ok(out)
}

/// A `Vec` that refuses to grow past [`MAX_UNPACKED`].
struct CappedWriter(Vec<u8>);

impl std::io::Write for CappedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if (self.0.len() + buf.len()) as u64 > MAX_UNPACKED {
            return Err(std::io::Error::other(format!("more than {MAX_UNPACKED} bytes")));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Unpacks `data` if it starts with xz, zstd or gzip magic; otherwise returns it unchanged.
/// `what` names the file in errors. Concatenated zstd frames and xz streams are all read.
pub fn unpack(data: Vec<u8>, what: &str) -> Result<Vec<u8>> {
    match Packed::detect(&data) {
        None => Ok(data),
        Some(Packed::Gzip) => read_capped(flate2::read::MultiGzDecoder::new(&data[..]), what),
        Some(Packed::Zstd) => {
            let mut out = Vec::new();
            let mut rest: &[u8] = &data;
            while !rest.is_empty() {
                let mut dec = ruzstd::StreamingDecoder::new(&mut rest)
                    .map_err(|e| anyhow::anyhow!("unpacking {what}: bad zstd frame: {e}"))?;
                let frame = read_capped(&mut dec, what)?;
                out.extend_from_slice(&frame);
                if out.len() as u64 > MAX_UNPACKED {
                    bail!("unpacking {what}: more than {MAX_UNPACKED} bytes");
                }
            }
            Ok(out)
        }
        Some(Packed::Xz) => {
            // Capped while it is written (an xz bomb would otherwise be unpacked whole before
            // any check), and a panic of the decoder on hostile input (lzma-rs 0.3 overflows
            // on a footer's backward size of 2^32-1 in builds with overflow checks: found by
            // fuzzing) is bad data, not a crash of the builder.
            let mut out = CappedWriter(Vec::new());
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lzma_rs::xz_decompress(&mut BufReader::new(&data[..]), &mut out)));
            match r {
                Ok(Ok(())) => Ok(out.0),
                Ok(Err(_)) if out.0.len() as u64 >= MAX_UNPACKED => bail!("unpacking {what}: more than {MAX_UNPACKED} bytes"),
                Ok(Err(e)) => bail!("unpacking {what}: bad xz data: {e:?}"),
                Err(_) => bail!("unpacking {what}: bad xz data (the decoder gave up)"),
            }
        }
    }
}

/// Reads a file and unpacks it (see [`unpack`]).
pub fn read_unpacked(path: &std::path::Path) -> Result<Vec<u8>> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    unpack(data, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn pack_with(tool: &[&str], data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut c = Command::new(tool[0])
            .args(&tool[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{} is needed for this test: {e}", tool[0]));
        let mut stdin = c.stdin.take().unwrap();
        let d = data.to_vec();
        let t = std::thread::spawn(move || stdin.write_all(&d).unwrap());
        let out = c.wait_with_output().unwrap();
        t.join().unwrap();
        assert!(out.status.success());
        out.stdout
    }

    fn sample() -> Vec<u8> {
        let mut v = b"\x7fELF".to_vec();
        for i in 0..200_000u32 {
            v.extend_from_slice(&(i.wrapping_mul(2_654_435_761) >> (i % 7)).to_le_bytes()[..(i % 4) as usize + 1]);
        }
        v
    }

    /// Found by fuzzing (fuzz/fuzz_targets/modinfo.rs): an xz footer whose backward size is
    /// 2^32-1 made lzma-rs overflow (a panic with overflow checks). Bad data, an error.
    #[test]
    fn xz_with_hostile_footer_is_an_error_not_a_panic() {
        let mut packed = pack_with(&["xz", "--check=crc32", "-c"], &sample()[..4096]);
        let n = packed.len();
        packed[n - 8..n - 4].fill(0xFF);
        let e = unpack(packed, "m.ko.xz").unwrap_err();
        assert!(format!("{e:#}").contains("bad xz data"), "{e:#}");
    }

    #[test]
    fn unpacks_what_the_kernel_build_makes() {
        let data = sample();
        // The kernel's Makefile.modinst: xz --check=crc32 --lzma2=dict=1MiB, zstd -T0, gzip -n.
        for tool in [
            &["xz", "--check=crc32", "--lzma2=dict=1MiB", "-c"][..],
            &["xz", "-c"][..],
            &["zstd", "-q", "-c", "-19"][..],
            &["gzip", "-n", "-c"][..],
        ] {
            let packed = pack_with(tool, &data);
            assert!(Packed::detect(&packed).is_some(), "{tool:?}");
            assert_eq!(unpack(packed, "x").unwrap(), data, "{tool:?}");
        }
        // Two zstd frames in a row.
        let mut two = pack_with(&["zstd", "-q", "-c"], &data[..1000]);
        two.extend(pack_with(&["zstd", "-q", "-c"], &data[1000..]));
        assert_eq!(unpack(two, "x").unwrap(), data);
        // Plain data passes through.
        assert_eq!(unpack(data.clone(), "x").unwrap(), data);
    }

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let mut bad = pack_with(&["xz", "-c"], &sample());
        let n = bad.len();
        bad[n / 2] ^= 0xFF;
        let e = format!("{:#}", unpack(bad, "foo.ko.xz").unwrap_err());
        assert!(e.contains("foo.ko.xz"), "{e}");
        let e = format!("{:#}", unpack(vec![0x28, 0xB5, 0x2F, 0xFD, 1, 2, 3], "bar.ko.zst").unwrap_err());
        assert!(e.contains("bar.ko.zst"), "{e}");
        assert_eq!(Packed::from_name("a.ko.zst"), Some(Packed::Zstd));
        assert_eq!(Packed::from_name("a.ko"), None);
    }
}
