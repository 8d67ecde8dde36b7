//! The network ioctls (IPv4): interface up, address and netmask, default route. The only
//! `unsafe` of this crate.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{bail, Result};
use nix::libc;
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

fn control_socket() -> Result<OwnedFd> {
    Ok(socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?)
}

fn ifreq(name: &str) -> Result<libc::ifreq> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        bail!("interface name {name:?} is not valid");
    }
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in r.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(r)
}

fn sockaddr(a: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in { sin_family: libc::AF_INET as libc::sa_family_t, sin_port: 0, sin_addr: libc::in_addr { s_addr: u32::from(a).to_be() }, sin_zero: [0; 8] };
    // SAFETY: sockaddr_in and sockaddr have the same size; this is how the ioctls take it.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn ioctl(fd: &OwnedFd, req: u64, arg: *mut libc::c_void, what: &str) -> Result<()> {
    // SAFETY: `arg` points to a live struct of the type `req` expects.
    // The request's C type differs between libcs (int in musl, unsigned long in glibc).
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, arg) };
    if r < 0 {
        bail!("{what}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Bring `name` up (IFF_UP).
pub fn set_up(name: &str) -> Result<()> {
    let fd = control_socket()?;
    let mut r = ifreq(name)?;
    ioctl(&fd, libc::SIOCGIFFLAGS as u64, &mut r as *mut _ as *mut _, &format!("reading the flags of {name}"))?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { r.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    ioctl(&fd, libc::SIOCSIFFLAGS as u64, &mut r as *mut _ as *mut _, &format!("bringing {name} up"))
}

/// Give `name` the address `addr`/`prefix`.
pub fn set_address(name: &str, addr: Ipv4Addr, prefix: u8) -> Result<()> {
    let fd = control_socket()?;
    let mut r = ifreq(name)?;
    r.ifr_ifru.ifru_addr = sockaddr(addr);
    ioctl(&fd, libc::SIOCSIFADDR as u64, &mut r as *mut _ as *mut _, &format!("setting address {addr} on {name}"))?;
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix.min(32) as u32) };
    r.ifr_ifru.ifru_netmask = sockaddr(Ipv4Addr::from(mask));
    ioctl(&fd, libc::SIOCSIFNETMASK as u64, &mut r as *mut _ as *mut _, &format!("setting netmask /{prefix} on {name}"))
}

/// Add the default route through `gateway` on `name`.
pub fn add_default_route(name: &str, gateway: Ipv4Addr) -> Result<()> {
    let fd = control_socket()?;
    let dev = std::ffi::CString::new(name)?;
    // SAFETY: rtentry is plain old data; all zeroes is a valid value.
    let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
    rt.rt_dst = sockaddr(Ipv4Addr::UNSPECIFIED);
    rt.rt_genmask = sockaddr(Ipv4Addr::UNSPECIFIED);
    rt.rt_gateway = sockaddr(gateway);
    rt.rt_flags = (libc::RTF_UP | libc::RTF_GATEWAY) as libc::c_ushort;
    rt.rt_dev = dev.as_ptr() as *mut libc::c_char;
    match ioctl(&fd, libc::SIOCADDRT as u64, &mut rt as *mut _ as *mut _, &format!("adding the default route via {gateway} on {name}")) {
        Err(e) if e.to_string().contains("File exists") => Ok(()),
        r => r,
    }
}
