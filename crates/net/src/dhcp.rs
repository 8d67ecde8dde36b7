//! A small DHCPv4 client (RFC 2131): DISCOVER → OFFER → REQUEST → ACK over a UDP socket
//! bound to the interface, with the broadcast flag set so servers answer by broadcast to a
//! client that has no address yet. Messages are built and read with `dhcproto`; the pure
//! steps (building, reading a lease) are separate from the socket for testing.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

/// What the server gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub server: Ipv4Addr,
    pub lease_secs: u32,
    pub domain: Option<String>,
}

fn base(xid: u32, mac: &[u8; 6], kind: MessageType) -> Message {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(xid, z, z, z, z, mac);
    m.set_flags(Flags::default().set_broadcast());
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    m.opts_mut().insert(DhcpOption::ParameterRequestList(vec![OptionCode::SubnetMask, OptionCode::Router, OptionCode::DomainNameServer, OptionCode::DomainName, OptionCode::AddressLeaseTime]));
    m
}

/// DHCPDISCOVER.
pub fn discover(xid: u32, mac: &[u8; 6]) -> Message {
    base(xid, mac, MessageType::Discover)
}

/// DHCPREQUEST for what `offer` offered.
pub fn request(xid: u32, mac: &[u8; 6], offer: &Message) -> Result<Message> {
    let server = match offer.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(s)) => *s,
        _ => bail!("the offer names no server"),
    };
    let mut m = base(xid, mac, MessageType::Request);
    m.opts_mut().insert(DhcpOption::RequestedIpAddress(offer.yiaddr()));
    m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
    Ok(m)
}

/// The lease an ACK grants.
pub fn lease_from(ack: &Message) -> Result<Lease> {
    let o = ack.opts();
    let prefix = match o.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(m)) => u32::from(*m).leading_ones() as u8,
        _ => 24,
    };
    Ok(Lease {
        addr: ack.yiaddr(),
        prefix,
        router: match o.get(OptionCode::Router) {
            Some(DhcpOption::Router(r)) => r.first().copied(),
            _ => None,
        },
        dns: match o.get(OptionCode::DomainNameServer) {
            Some(DhcpOption::DomainNameServer(d)) => d.clone(),
            _ => Vec::new(),
        },
        server: match o.get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(s)) => *s,
            _ => ack.siaddr(),
        },
        lease_secs: match o.get(OptionCode::AddressLeaseTime) {
            Some(DhcpOption::AddressLeaseTime(t)) => *t,
            _ => 0,
        },
        domain: match o.get(OptionCode::DomainName) {
            Some(DhcpOption::DomainName(d)) => Some(d.clone()),
            _ => None,
        },
    })
}

fn encode(m: &Message) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    m.encode(&mut Encoder::new(&mut buf)).map_err(|e| anyhow!("encoding a DHCP message: {e}"))?;
    Ok(buf)
}

/// Whether `m` answers our `xid` with `kind`.
fn answers(m: &Message, xid: u32, mac: &[u8; 6], kind: MessageType) -> bool {
    m.opcode() == Opcode::BootReply && m.xid() == xid && m.chaddr().get(..6) == Some(&mac[..]) && m.opts().msg_type() == Some(kind)
}

/// Send `msg` and wait for a reply of `kind` (or NAK), resending with growing intervals
/// until `deadline`.
fn exchange(sock: &UdpSocket, msg: &Message, kind: MessageType, mac: &[u8; 6], deadline: Instant) -> Result<Message> {
    let bytes = encode(msg)?;
    let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
    let mut wait = Duration::from_secs(1);
    let mut buf = vec![0u8; 1500];
    loop {
        sock.send_to(&bytes, to).context("sending a DHCP message")?;
        let resend = Instant::now() + wait;
        loop {
            let now = Instant::now();
            if now >= deadline {
                bail!("no DHCP {kind:?} within the time allowed");
            }
            sock.set_read_timeout(Some(resend.min(deadline).saturating_duration_since(now).max(Duration::from_millis(10))))?;
            match sock.recv_from(&mut buf) {
                Ok((n, _)) => {
                    let Ok(m) = Message::decode(&mut Decoder::new(&buf[..n])) else { continue };
                    if answers(&m, msg.xid(), mac, MessageType::Nak) {
                        bail!("the DHCP server refused (NAK)");
                    }
                    if answers(&m, msg.xid(), mac, kind) {
                        return Ok(m);
                    }
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
                Err(e) => return Err(e).context("receiving DHCP replies"),
            }
            if Instant::now() >= resend {
                break;
            }
        }
        wait = (wait * 2).min(Duration::from_secs(8));
    }
}

/// Get a lease for interface `iface` (up, no address yet) with hardware address `mac`.
pub fn obtain(iface: &str, mac: &[u8; 6], timeout: Duration) -> Result<Lease> {
    let sock = UdpSocket::bind("0.0.0.0:68").with_context(|| format!("DHCP on {iface}: binding UDP port 68"))?;
    nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::BindToDevice, &std::ffi::OsString::from(iface)).with_context(|| format!("DHCP: binding to {iface}"))?;
    sock.set_broadcast(true)?;
    let deadline = Instant::now() + timeout;
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let xid = seed ^ u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]);
    let offer = exchange(&sock, &discover(xid, mac), MessageType::Offer, mac, deadline).with_context(|| format!("DHCP on {iface}"))?;
    let ack = exchange(&sock, &request(xid, mac, &offer)?, MessageType::Ack, mac, deadline).with_context(|| format!("DHCP on {iface}"))?;
    lease_from(&ack)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    fn reply(to: &Message, kind: MessageType) -> Message {
        let mut m = Message::new_with_id(to.xid(), Ipv4Addr::UNSPECIFIED, [10, 0, 2, 15].into(), [10, 0, 2, 2].into(), Ipv4Addr::UNSPECIFIED, &MAC);
        m.set_opcode(Opcode::BootReply);
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        m.opts_mut().insert(DhcpOption::ServerIdentifier([10, 0, 2, 2].into()));
        m.opts_mut().insert(DhcpOption::SubnetMask([255, 255, 255, 0].into()));
        m.opts_mut().insert(DhcpOption::Router(vec![[10, 0, 2, 2].into()]));
        m.opts_mut().insert(DhcpOption::DomainNameServer(vec![[10, 0, 2, 3].into()]));
        m.opts_mut().insert(DhcpOption::AddressLeaseTime(86400));
        m
    }

    #[test]
    fn a_full_exchange_on_paper() {
        let d = discover(7, &MAC);
        let wire = encode(&d).unwrap();
        let back = Message::decode(&mut Decoder::new(&wire)).unwrap();
        assert!(back.flags().broadcast() && back.xid() == 7 && back.opts().msg_type() == Some(MessageType::Discover));
        let offer = reply(&d, MessageType::Offer);
        assert!(answers(&offer, 7, &MAC, MessageType::Offer));
        assert!(!answers(&offer, 8, &MAC, MessageType::Offer), "another client's xid");
        let r = request(7, &MAC, &offer).unwrap();
        assert_eq!(r.opts().get(OptionCode::RequestedIpAddress), Some(&DhcpOption::RequestedIpAddress([10, 0, 2, 15].into())));
        let lease = lease_from(&reply(&r, MessageType::Ack)).unwrap();
        assert_eq!(lease, Lease { addr: [10, 0, 2, 15].into(), prefix: 24, router: Some([10, 0, 2, 2].into()), dns: vec![[10, 0, 2, 3].into()], server: [10, 0, 2, 2].into(), lease_secs: 86400, domain: None });
    }

    #[test]
    fn an_offer_without_a_server_is_refused() {
        let mut offer = reply(&discover(1, &MAC), MessageType::Offer);
        offer.opts_mut().remove(OptionCode::ServerIdentifier);
        assert!(request(1, &MAC, &offer).is_err());
    }
}
