//! Networking for the rescue system: find wired interfaces, bring one up by DHCP or a fixed
//! `ip=` address, write `/etc/resolv.conf`; and HTTP(S) for jobs, images and reports.

pub mod config;
pub mod dhcp;
pub mod http;
pub mod sys;
pub mod trust;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

pub use config::{parse_ip, NetConfig};
pub use http::{is_url, Client};

/// A network interface as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub mac: [u8; 6],
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let v: Vec<u8> = s.trim().split(':').map(|p| u8::from_str_radix(p, 16).ok()).collect::<Option<_>>()?;
    v.try_into().ok()
}

/// Wired Ethernet interfaces under `sys_class_net` (normally `/sys/class/net`), by name:
/// type 1 (Ethernet), not wireless, not the loopback.
pub fn wired_interfaces(sys_class_net: &Path) -> Vec<Iface> {
    let Ok(rd) = std::fs::read_dir(sys_class_net) else { return Vec::new() };
    let mut v: Vec<Iface> = rd
        .flatten()
        .filter(|e| std::fs::read_to_string(e.path().join("type")).is_ok_and(|t| t.trim() == "1"))
        .filter(|e| !e.path().join("wireless").exists() && e.file_name() != "lo")
        .filter_map(|e| Some(Iface { name: e.file_name().to_string_lossy().into_owned(), mac: parse_mac(&std::fs::read_to_string(e.path().join("address")).ok()?)? }))
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// What came up.
#[derive(Debug, Clone)]
pub struct Up {
    pub iface: String,
    pub mac: [u8; 6],
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    /// `dhcp` or `static`.
    pub how: &'static str,
    pub seconds: f64,
}

impl std::fmt::Display for Up {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mac: Vec<String> = self.mac.iter().map(|b| format!("{b:02x}")).collect();
        write!(f, "{} ({}) {}/{}", self.iface, mac.join(":"), self.addr, self.prefix)?;
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        if !self.dns.is_empty() {
            write!(f, " dns {}", self.dns.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","))?;
        }
        write!(f, " ({}, {:.1} s)", self.how, self.seconds)
    }
}

/// Wait until `name` reports a carrier, up to `wait`.
fn wait_for_link(name: &str, wait: Duration) -> bool {
    let t0 = Instant::now();
    loop {
        if std::fs::read_to_string(format!("/sys/class/net/{name}/carrier")).is_ok_and(|c| c.trim() == "1") {
            return true;
        }
        if t0.elapsed() >= wait {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Bring the network up as `cfg` says: the named device, or each wired interface in turn
/// until one has a link and (for DHCP) a lease. Writes `/etc/resolv.conf`.
pub fn bring_up(cfg: &NetConfig, link_wait: Duration, dhcp_wait: Duration) -> Result<Up> {
    let t0 = Instant::now();
    let _ = sys::set_up("lo");
    let _ = sys::set_address("lo", Ipv4Addr::LOCALHOST, 8);
    let device = match cfg {
        NetConfig::Off => bail!("the network is off (ip=off)"),
        NetConfig::Dhcp { device } | NetConfig::Static { device, .. } => device.clone(),
    };
    let all = wired_interfaces(Path::new("/sys/class/net"));
    let candidates: Vec<Iface> = all.iter().filter(|i| device.as_ref().is_none_or(|d| &i.name == d)).cloned().collect();
    if candidates.is_empty() {
        bail!(
            "no wired network interface{} (found: {}); is the NIC's driver in the image (profile generic)?",
            device.map(|d| format!(" named {d}")).unwrap_or_default(),
            if all.is_empty() { "none".to_string() } else { all.iter().map(|i| i.name.clone()).collect::<Vec<_>>().join(", ") }
        );
    }
    for i in &candidates {
        sys::set_up(&i.name)?;
    }
    let mut why = Vec::new();
    for i in &candidates {
        if !wait_for_link(&i.name, link_wait) {
            why.push(format!("{}: no link after {} s", i.name, link_wait.as_secs()));
            continue;
        }
        let r = match cfg {
            NetConfig::Dhcp { .. } => dhcp::obtain(&i.name, &i.mac, dhcp_wait).map(|l| (l.addr, l.prefix, l.router, l.dns, "dhcp")),
            NetConfig::Static { addr, prefix, gateway, dns, .. } => Ok((*addr, *prefix, *gateway, dns.clone(), "static")),
            NetConfig::Off => unreachable!("handled above"),
        };
        match r {
            Ok((addr, prefix, gateway, dns, how)) => {
                sys::set_address(&i.name, addr, prefix)?;
                if let Some(g) = gateway {
                    sys::add_default_route(&i.name, g)?;
                }
                write_resolv_conf(&dns)?;
                return Ok(Up { iface: i.name.clone(), mac: i.mac, addr, prefix, gateway, dns, how, seconds: t0.elapsed().as_secs_f64() });
            }
            Err(e) => why.push(format!("{}: {e:#}", i.name)),
        }
    }
    Err(anyhow!("no network: {}", why.join("; ")))
}

fn write_resolv_conf(dns: &[Ipv4Addr]) -> Result<()> {
    let text: String = dns.iter().map(|d| format!("nameserver {d}\n")).collect();
    std::fs::create_dir_all("/etc").ok();
    std::fs::write("/etc/resolv.conf", text).context("writing /etc/resolv.conf")
}

#[cfg(test)]
mod tests {
    #[test]
    fn macs() {
        assert_eq!(super::parse_mac("52:54:00:12:34:56\n"), Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
        assert_eq!(super::parse_mac("52:54:00:12:34"), None);
        assert_eq!(super::parse_mac("zz:54:00:12:34:56"), None);
    }
}
