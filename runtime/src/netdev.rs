//! linux.netDevices (runtime-spec 1.3): host network interfaces moved into the
//! container's new network namespace, as runc 1.3+ does it:
//!
//! 1. before the clone, [`validate`]: a new network namespace is required (not one joined
//!    by path, not the runtime's), names must be interface names, unique in the container
//!    and not `lo`, and each device must exist in the runtime's namespace;
//! 2. after the clone, before the init goes on ([`move_into`], from the runtime): the
//!    device's permanent, global-scope addresses are read (before the link goes down: an
//!    IPv6 address may not survive that), the link is set down, then moved and renamed in
//!    one RTM_NEWLINK (IFLA_NET_NS_FD + IFLA_IFNAME, so the new name never meets the
//!    host's names), the addresses are added again in the container's namespace (the
//!    kernel drops them on a move) and the link is set up there (the spec and runc set it
//!    up whatever its state on the host). MTU and hardware address travel with the device.
//!
//! On delete strata does nothing: when the container's network namespace goes (its last
//! process gone), the kernel moves physical devices back to the *initial* network
//! namespace and destroys virtual ones (a veth dies with its peer), exactly as with runc.
//! A create that fails after a move kills the init, with the same effect.
//!
//! The rtnetlink client is hand-written (a few message types over one NETLINK_ROUTE
//! socket): the crates that do this (rtnetlink, netlink-packet-route) pull in an async
//! runtime or some ten crates for four requests, against the project's lean-binary aim.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// The configured devices, host name -> name in the container, in a stable order.
fn devices(spec: &Spec) -> BTreeMap<String, String> {
    let map = spec.linux().as_ref().and_then(|l| l.net_devices().as_ref());
    map.into_iter()
        .flatten()
        .map(|(host, d)| (host.clone(), d.name().clone().filter(|n| !n.is_empty()).unwrap_or_else(|| host.clone())))
        .collect()
}

fn field(host: &str) -> String {
    format!("linux.netDevices.{host}")
}

/// A name the kernel accepts for an interface (dev_valid_name).
fn valid_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() < 16
        && n != "."
        && n != ".."
        && !n.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
}

/// Checks linux.netDevices before anything is created.
pub fn validate(spec: &Spec) -> Result<()> {
    let devs = devices(spec);
    if devs.is_empty() {
        return Ok(());
    }
    let namespaces = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()).map(Vec::as_slice).unwrap_or(&[]);
    match namespaces.iter().find(|n| n.typ() == LinuxNamespaceType::Network) {
        Some(n) if n.path().is_none() => {}
        Some(_) => {
            return Err(Error::field(
                "linux.netDevices",
                "devices move into a new network namespace, not one joined by path",
            ))
        }
        None => {
            return Err(Error::field(
                "linux.netDevices",
                "devices move into a new network namespace: linux.namespaces has none",
            ))
        }
    }
    let mut targets = HashSet::new();
    for (host, name) in &devs {
        if !valid_ifname(host) {
            return Err(Error::field(field(host), "is not a network interface name"));
        }
        if !valid_ifname(name) {
            return Err(Error::field(
                format!("{}.name", field(host)),
                format!("{name:?} is not a network interface name"),
            ));
        }
        if name == "lo" {
            return Err(Error::field(
                format!("{}.name", field(host)),
                "\"lo\" already exists in every network namespace",
            ));
        }
        if !targets.insert(name.as_str()) {
            return Err(Error::field(format!("{}.name", field(host)), format!("{name:?} is given to two devices")));
        }
    }
    for host in devs.keys() {
        if index_of(host).is_none() {
            return Err(Error::field(field(host), "no such network device in the runtime's network namespace"));
        }
    }
    Ok(())
}

fn index_of(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: a NUL-terminated name.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// Moves the devices into the network namespace of `pid` (the container's init, which
/// waits meanwhile). Every error names the device.
pub fn move_into(spec: &Spec, pid: i32) -> Result<()> {
    let devs = devices(spec);
    if devs.is_empty() {
        return Ok(());
    }
    let ns_path = format!("/proc/{pid}/ns/net");
    let ns = nix::fcntl::open(
        ns_path.as_str(),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::field("linux.netDevices", format!("open {ns_path}: {}", e.desc())))?;
    if same_ns(&ns_path, "/proc/self/ns/net") {
        return Err(Error::field("linux.netDevices", "the container has no network namespace of its own"));
    }
    let mut host = Rtnl::open().map_err(|e| Error::field("linux.netDevices", format!("netlink socket: {e}")))?;
    let mut inner = Rtnl::open_in(&ns)
        .map_err(|e| Error::field("linux.netDevices", format!("netlink socket in the container: {e}")))?;
    for (host_name, name) in &devs {
        move_one(&mut host, &mut inner, &ns, host_name, name).map_err(|e| Error::field(field(host_name), e))?;
    }
    Ok(())
}

fn same_ns(a: &str, b: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

fn move_one(
    host: &mut Rtnl,
    inner: &mut Rtnl,
    ns: &OwnedFd,
    host_name: &str,
    name: &str,
) -> std::result::Result<(), String> {
    let link = host.link(host_name).map_err(|e| match e.raw_os_error() {
        Some(libc::ENODEV) => "no such network device in the runtime's network namespace".to_string(),
        _ => format!("look up: {e}"),
    })?;
    let addrs: Vec<Addr> = host
        .addresses(link.index)
        .map_err(|e| format!("list addresses: {e}"))?
        .into_iter()
        .filter(|a| a.flags & IFA_F_PERMANENT != 0 && a.scope == RT_SCOPE_UNIVERSE)
        .collect();
    host.set_up(link.index, false).map_err(|e| format!("set down: {e}"))?;
    if let Err(e) = host.move_to(link.index, name, ns) {
        if link.flags & IFF_UP != 0 {
            let _ = host.set_up(link.index, true);
        }
        return Err(match e.raw_os_error() {
            Some(libc::EEXIST) => format!("{name:?} is already in use in the container's network namespace"),
            Some(libc::EBUSY) => format!("the device is in use and can't change namespace: {e}"),
            Some(libc::EINVAL) => format!("the kernel refuses to move this device to another namespace: {e}"),
            _ => format!("move into the container's network namespace as {name:?}: {e}"),
        });
    }
    let moved =
        inner.link(name).map_err(|e| format!("{name:?} not found in the container's network namespace: {e}"))?;
    for a in &addrs {
        inner.add_address(moved.index, a).map_err(|e| format!("add address {} in the container: {e}", a.render()))?;
    }
    inner.set_up(moved.index, true).map_err(|e| format!("set {name:?} up in the container: {e}"))
}

// <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h>, <linux/if_addr.h>
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_NET_NS_FD: u16 = 28;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;
const IFA_F_PERMANENT: u32 = 0x80;
/// Flags a user sets with the address (nodad, home, mngtmpaddr, noprefixroute): kept.
const IFA_F_USER: u32 = 0x02 | 0x10 | 0x100 | 0x200;
const RT_SCOPE_UNIVERSE: u8 = 0;
const IFF_UP: u32 = 0x1;
const HDR: usize = 16;

/// A link as RTM_GETLINK tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub index: i32,
    pub flags: u32,
    pub mtu: u32,
}

/// An address as RTM_GETADDR tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub family: u8,
    pub prefix_len: u8,
    pub flags: u32,
    pub scope: u8,
    pub local: Option<Vec<u8>>,
    pub address: Option<Vec<u8>>,
    pub broadcast: Option<Vec<u8>>,
}

impl Addr {
    fn render(&self) -> String {
        let ip = self.local.as_ref().or(self.address.as_ref()).cloned().unwrap_or_default();
        let text = match ip.len() {
            4 => std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string(),
            16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(ip.as_slice()).unwrap_or([0; 16])).to_string(),
            _ => format!("{ip:?}"),
        };
        format!("{text}/{}", self.prefix_len)
    }
}

/// One netlink request: header, fixed body, attributes.
struct Msg(Vec<u8>);

impl Msg {
    fn new(typ: u16, flags: u16, body: &[u8]) -> Msg {
        let mut v = vec![0u8; HDR];
        v[4..6].copy_from_slice(&typ.to_ne_bytes());
        v[6..8].copy_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(body);
        Msg(v)
    }

    fn attr(mut self, typ: u16, data: &[u8]) -> Msg {
        let len = 4 + data.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&typ.to_ne_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
        self
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[0..4].copy_from_slice(&len.to_ne_bytes());
        self.0[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.0
    }
}

fn ifinfomsg(index: i32, flags: u32, change: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b[8..12].copy_from_slice(&flags.to_ne_bytes());
    b[12..16].copy_from_slice(&change.to_ne_bytes());
    b
}

/// The attributes after a fixed header of `skip` bytes: (type, data).
fn attrs(payload: &[u8], skip: usize) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut p = skip.next_multiple_of(4);
    while p + 4 <= payload.len() {
        let len = u16::from_ne_bytes([payload[p], payload[p + 1]]) as usize;
        let typ = u16::from_ne_bytes([payload[p + 2], payload[p + 3]]) & 0x3fff;
        if len < 4 || p + len > payload.len() {
            break;
        }
        out.push((typ, &payload[p + 4..p + len]));
        p += len.next_multiple_of(4);
    }
    out
}

fn parse_link(payload: &[u8]) -> Option<Link> {
    if payload.len() < 16 {
        return None;
    }
    let index = i32::from_ne_bytes(payload[4..8].try_into().ok()?);
    let flags = u32::from_ne_bytes(payload[8..12].try_into().ok()?);
    let mtu = attrs(payload, 16)
        .into_iter()
        .find(|(t, d)| *t == IFLA_MTU && d.len() >= 4)
        .map(|(_, d)| u32::from_ne_bytes([d[0], d[1], d[2], d[3]]))
        .unwrap_or(0);
    Some(Link { index, flags, mtu })
}

fn parse_addr(payload: &[u8]) -> Option<(u32, Addr)> {
    if payload.len() < 8 {
        return None;
    }
    let mut a = Addr {
        family: payload[0],
        prefix_len: payload[1],
        flags: payload[2] as u32,
        scope: payload[3],
        local: None,
        address: None,
        broadcast: None,
    };
    let index = u32::from_ne_bytes(payload[4..8].try_into().ok()?);
    for (t, d) in attrs(payload, 8) {
        match t {
            IFA_LOCAL => a.local = Some(d.to_vec()),
            IFA_ADDRESS => a.address = Some(d.to_vec()),
            IFA_BROADCAST => a.broadcast = Some(d.to_vec()),
            IFA_FLAGS if d.len() >= 4 => a.flags = u32::from_ne_bytes([d[0], d[1], d[2], d[3]]),
            _ => {}
        }
    }
    Some((index, a))
}

/// A NETLINK_ROUTE socket in the network namespace it was made in.
pub struct Rtnl {
    fd: OwnedFd,
    seq: u32,
}

impl Rtnl {
    /// A socket in the caller's network namespace.
    pub fn open() -> io::Result<Rtnl> {
        // SAFETY: plain socket(2).
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new fd nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: a zeroed sockaddr_nl is valid; the kernel assigns the port id.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: pointer and size of a live sockaddr_nl.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Rtnl { fd, seq: 1 })
    }

    /// A socket in the network namespace `ns`, made by a short-lived thread that enters
    /// it: the runtime's own thread never changes namespace, and a netlink socket stays
    /// bound to the namespace it was made in.
    pub fn open_in(ns: &OwnedFd) -> io::Result<Rtnl> {
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                Rtnl::open()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("netlink thread panicked")))
        })
    }

    /// Sends one request and collects the payloads of the replies until the kernel's
    /// acknowledgement (or, for a dump, its end). A kernel error comes back as io::Error.
    fn request(&mut self, msg: Msg) -> io::Result<Vec<Vec<u8>>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let dump = u16::from_ne_bytes([msg.0[6], msg.0[7]]) & NLM_F_DUMP == NLM_F_DUMP;
        let buf = msg.finish(seq);
        // SAFETY: pointer and length of a live buffer; the socket's default peer is the kernel.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut out = Vec::new();
        let mut rbuf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: receives into a live buffer of its length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), rbuf.as_mut_ptr().cast(), rbuf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let data = &rbuf[..n as usize];
            let mut p = 0;
            while p + HDR <= data.len() {
                let len = u32::from_ne_bytes(data[p..p + 4].try_into().unwrap()) as usize;
                let typ = u16::from_ne_bytes([data[p + 4], data[p + 5]]);
                let mseq = u32::from_ne_bytes(data[p + 8..p + 12].try_into().unwrap());
                if len < HDR || p + len > data.len() {
                    return Err(io::Error::other("truncated netlink message"));
                }
                let payload = &data[p + HDR..p + len];
                p += len.next_multiple_of(4);
                if mseq != seq {
                    continue;
                }
                match typ {
                    NLMSG_ERROR => {
                        let code = payload.get(0..4).map_or(0, |b| i32::from_ne_bytes(b.try_into().unwrap()));
                        return if code == 0 { Ok(out) } else { Err(io::Error::from_raw_os_error(-code)) };
                    }
                    NLMSG_DONE if dump => return Ok(out),
                    _ => out.push(payload.to_vec()),
                }
            }
        }
    }

    /// The link named `name` (ENODEV when there is none).
    pub fn link(&mut self, name: &str) -> io::Result<Link> {
        let mut z = name.as_bytes().to_vec();
        z.push(0);
        let msg = Msg::new(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK, &ifinfomsg(0, 0, 0)).attr(IFLA_IFNAME, &z);
        let replies = self.request(msg)?;
        replies.iter().find_map(|p| parse_link(p)).ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))
    }

    /// Every address of link `index`, all families.
    pub fn addresses(&mut self, index: i32) -> io::Result<Vec<Addr>> {
        let msg = Msg::new(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, &[0u8; 8]);
        let replies = self.request(msg)?;
        Ok(replies.iter().filter_map(|p| parse_addr(p)).filter(|(i, _)| *i as i32 == index).map(|(_, a)| a).collect())
    }

    pub fn set_up(&mut self, index: i32, up: bool) -> io::Result<()> {
        let msg =
            Msg::new(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, &ifinfomsg(index, if up { IFF_UP } else { 0 }, IFF_UP));
        self.request(msg).map(drop)
    }

    /// Moves link `index` into the network namespace `ns`, named `name` there.
    pub fn move_to(&mut self, index: i32, name: &str, ns: &OwnedFd) -> io::Result<()> {
        let mut z = name.as_bytes().to_vec();
        z.push(0);
        let fd = ns.as_raw_fd() as u32;
        let msg = Msg::new(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, &ifinfomsg(index, 0, 0))
            .attr(IFLA_IFNAME, &z)
            .attr(IFLA_NET_NS_FD, &fd.to_ne_bytes());
        self.request(msg).map(drop)
    }

    /// Adds `a` (its address, prefix, scope, broadcast and user-set flags) to link `index`.
    pub fn add_address(&mut self, index: i32, a: &Addr) -> io::Result<()> {
        let mut body = [0u8; 8];
        body[0] = a.family;
        body[1] = a.prefix_len;
        body[3] = a.scope;
        body[4..8].copy_from_slice(&(index as u32).to_ne_bytes());
        let local =
            a.local.as_ref().or(a.address.as_ref()).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        let peer = a.address.as_ref().unwrap_or(local);
        let mut msg = Msg::new(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &body)
            .attr(IFA_LOCAL, local)
            .attr(IFA_ADDRESS, peer);
        if let Some(b) = &a.broadcast {
            msg = msg.attr(IFA_BROADCAST, b);
        }
        if a.flags & IFA_F_USER != 0 {
            msg = msg.attr(IFA_FLAGS, &(a.flags & IFA_F_USER).to_ne_bytes());
        }
        self.request(msg).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(j: serde_json::Value) -> Spec {
        serde_json::from_value(j).unwrap()
    }

    #[test]
    fn messages_are_laid_out_as_the_kernel_reads_them() {
        let m = Msg::new(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, &ifinfomsg(7, 0, IFF_UP)).attr(IFLA_IFNAME, b"eth1\0");
        let b = m.finish(9);
        assert_eq!(b.len(), 16 + 16 + 12);
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), 44);
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 9);
        let a = attrs(&b[16..], 16);
        assert_eq!(a, vec![(IFLA_IFNAME, &b"eth1\0"[..])]);
        assert_eq!(parse_link(&b[16..]).unwrap(), Link { index: 7, flags: 0, mtu: 0 });
    }

    #[test]
    fn validation_names_the_device() {
        let base = |devs: serde_json::Value, ns: serde_json::Value| {
            spec(serde_json::json!({ "ociVersion": "1.3.0", "linux": { "netDevices": devs, "namespaces": ns } }))
        };
        let new_net = serde_json::json!([{ "type": "network" }]);
        let e = validate(&base(serde_json::json!({ "lo": {} }), serde_json::json!([]))).unwrap_err().to_string();
        assert!(e.contains("linux.netDevices") && e.contains("new network namespace"), "{e}");
        let e = validate(&base(
            serde_json::json!({ "lo": {} }),
            serde_json::json!([{ "type": "network", "path": "/proc/1/ns/net" }]),
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("joined by path"), "{e}");
        let e = validate(&base(serde_json::json!({ "nosuchdev0": {} }), new_net.clone())).unwrap_err().to_string();
        assert!(e.contains("linux.netDevices.nosuchdev0") && e.contains("no such network device"), "{e}");
        let e = validate(&base(serde_json::json!({ "a/b": {} }), new_net.clone())).unwrap_err().to_string();
        assert!(e.contains("linux.netDevices.a/b"), "{e}");
        let e = validate(&base(serde_json::json!({ "x": { "name": "lo" } }), new_net.clone())).unwrap_err().to_string();
        assert!(e.contains("linux.netDevices.x.name"), "{e}");
        let e = validate(&base(serde_json::json!({ "x": { "name": "eth0" }, "y": { "name": "eth0" } }), new_net))
            .unwrap_err()
            .to_string();
        assert!(e.contains("given to two devices"), "{e}");
    }

    #[test]
    fn loopback_is_readable_through_the_client() {
        let mut nl = Rtnl::open().unwrap();
        let lo = nl.link("lo").unwrap();
        assert!(lo.index > 0 && lo.mtu > 0);
        assert_eq!(nl.link("nosuchdev0").unwrap_err().raw_os_error(), Some(libc::ENODEV));
        let addrs = nl.addresses(lo.index).unwrap();
        assert!(addrs.iter().any(|a| a.render() == "127.0.0.1/8"), "{addrs:?}");
    }
}
