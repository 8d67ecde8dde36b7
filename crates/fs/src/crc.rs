//! The two checksums ext4 group descriptors carry: CRC-16 (poly 0x8005, reflected, as
//! GDT_CSUM uses) and CRC-32C (Castagnoli, reflected, without final inversion, as
//! METADATA_CSUM uses).

const fn table(poly: u32) -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ poly } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC32C: [u32; 256] = table(0x82F6_3B78);
static CRC16: [u32; 256] = table(0xA001);

/// Continue a raw CRC-32C (no pre/post inversion here: callers seed with `!0` when needed).
pub(crate) fn crc32c(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = CRC32C[((crc ^ b as u32) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

/// Continue a CRC-16 (poly 0x8005 reflected).
pub(crate) fn crc16(crc: u16, data: &[u8]) -> u16 {
    let mut c = crc as u32;
    for &b in data {
        c = CRC16[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    c as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_values() {
        // Standard check values over "123456789".
        assert_eq!(!crc32c(!0, b"123456789"), 0xE306_9283);
        assert_eq!(crc16(0, b"123456789"), 0xBB3D); // CRC-16/ARC
    }
}
