//! Lowercase hex for variable dumps and optional data.

use anyhow::{bail, Result};

/// Lowercase hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes hex (either case, no separators; surrounding whitespace ignored).
pub fn decode(text: &str) -> Result<Vec<u8>> {
    let t = text.trim();
    if t.len() % 2 != 0 {
        bail!("hex text has an odd number of digits ({})", t.len());
    }
    let digits: Vec<u32> = t
        .chars()
        .map(|c| c.to_digit(16))
        .collect::<Option<_>>()
        .ok_or_else(|| anyhow::anyhow!("invalid hex digit in {t:?}"))?;
    Ok(digits
        .chunks_exact(2)
        .map(|p| (p[0] * 16 + p[1]) as u8)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(encode(&[0, 0xab, 0x7f]), "00ab7f");
        assert_eq!(decode("00AB7f").unwrap(), vec![0, 0xab, 0x7f]);
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
        assert!(decode("abc").is_err());
        assert!(decode("zz").is_err());
    }
}
