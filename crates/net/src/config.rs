//! How the rescue system configures its network, from the kernel command line: the kernel's
//! own `ip=` syntax (`ip=dhcp`, `ip=off`, or
//! `ip=CLIENT:SERVER:GATEWAY:NETMASK:HOSTNAME:DEVICE:AUTOCONF:DNS0:DNS1`). Pure, for testing.

use std::net::Ipv4Addr;

use anyhow::{anyhow, bail, Context, Result};

/// One interface's wanted configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetConfig {
    /// No network.
    Off,
    /// DHCPv4 on `device`, or on every wired interface until one gets a lease.
    Dhcp { device: Option<String> },
    /// A fixed address.
    Static { device: Option<String>, addr: Ipv4Addr, prefix: u8, gateway: Option<Ipv4Addr>, dns: Vec<Ipv4Addr>, hostname: Option<String> },
}

fn prefix_of(mask: Ipv4Addr) -> Result<u8> {
    let m = u32::from(mask);
    if m.leading_ones() + m.trailing_zeros() != 32 {
        bail!("netmask {mask} is not contiguous");
    }
    Ok(m.leading_ones() as u8)
}

fn addr(field: &str, what: &str) -> Result<Option<Ipv4Addr>> {
    if field.is_empty() {
        return Ok(None);
    }
    field.parse().map(Some).map_err(|_| anyhow!("{what} {field:?} is not an IPv4 address"))
}

/// Parse the value of `ip=`.
pub fn parse_ip(value: &str) -> Result<NetConfig> {
    match value {
        "off" | "none" => return Ok(NetConfig::Off),
        "dhcp" | "on" | "any" | "both" => return Ok(NetConfig::Dhcp { device: None }),
        _ => {}
    }
    let f: Vec<&str> = value.split(':').collect();
    let get = |i: usize| f.get(i).copied().unwrap_or("");
    let device = Some(get(5).to_string()).filter(|d| !d.is_empty());
    let autoconf = get(6);
    let client = addr(get(0), "client address").context("ip=")?;
    match (client, autoconf) {
        (None, "" | "dhcp" | "on" | "any" | "both") => Ok(NetConfig::Dhcp { device }),
        (None, "off" | "none") => Ok(NetConfig::Off),
        (None, other) => bail!("ip=: autoconf {other:?} is not supported (dhcp, off)"),
        (Some(a), "" | "off" | "none") => {
            let mask = addr(get(3), "netmask").context("ip=")?;
            let prefix = match mask {
                Some(m) => prefix_of(m).context("ip=")?,
                None => 24,
            };
            let dns = [get(7), get(8)].iter().filter_map(|d| addr(d, "DNS server").transpose()).collect::<Result<Vec<_>>>().context("ip=")?;
            Ok(NetConfig::Static { device, addr: a, prefix, gateway: addr(get(2), "gateway").context("ip=")?, dns, hostname: Some(get(4).to_string()).filter(|h| !h.is_empty()) })
        }
        (Some(_), other) => bail!("ip=: a client address with autoconf {other:?}; use off for a fixed address"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_ip_syntax() {
        assert_eq!(parse_ip("dhcp").unwrap(), NetConfig::Dhcp { device: None });
        assert_eq!(parse_ip("off").unwrap(), NetConfig::Off);
        assert_eq!(parse_ip(":::::eth1:dhcp").unwrap(), NetConfig::Dhcp { device: Some("eth1".into()) });
        assert_eq!(
            parse_ip("192.168.1.50::192.168.1.1:255.255.255.0:lab07:eth0:off:192.168.1.2").unwrap(),
            NetConfig::Static {
                device: Some("eth0".into()),
                addr: [192, 168, 1, 50].into(),
                prefix: 24,
                gateway: Some([192, 168, 1, 1].into()),
                dns: vec![[192, 168, 1, 2].into()],
                hostname: Some("lab07".into())
            }
        );
        assert_eq!(parse_ip("10.0.0.9:::255.255.0.0").unwrap(), NetConfig::Static { device: None, addr: [10, 0, 0, 9].into(), prefix: 16, gateway: None, dns: vec![], hostname: None });
        for bad in ["300.1.1.1:::", "10.0.0.9:::255.0.255.0", "10.0.0.9::::::dhcp", ":::::eth0:rarp", "1.2.3.4::x"] {
            assert!(parse_ip(bad).is_err(), "{bad}");
        }
    }
}
