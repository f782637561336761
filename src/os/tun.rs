//! TUN devices: create, configure and bring up, with ioctls only (no `ip` binary, no netlink).
//!
//! Everything here acts in the calling thread's network namespace: the TUN belongs to the
//! namespace in which `/dev/net/tun` is opened, and the `SIOCSIF*`/`SIOCADDRT` ioctls act in the
//! namespace of the socket that issues them, which is created on the same thread. Call
//! [`create_tun`] inside [`Netns::create_with`](super::Netns::create_with) or
//! [`Netns::run_in`](super::Netns::run_in).

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{bail, Context};

use super::{ifreq_ioctl, ifreq_name, ifreq_named, ioctl_socket};

/// Where the TUN clone device lives.
pub const TUN_DEVICE: &str = "/dev/net/tun";

/// The size of the virtio-net header that precedes every packet when `offload` is on.
pub const VNET_HDR_LEN: usize = 10;

/// How to set up one TUN device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunConfig {
    /// Interface name (at most 15 bytes). Empty lets the kernel pick `tunN`.
    pub name: String,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub mtu: u32,
    /// The TUN default (500) overflows under load and drops packets: raise it.
    pub txqueuelen: u32,
    /// `IFF_VNET_HDR` + `TUNSETVNETHDRSZ` 10 + `TUNSETOFFLOAD(TUN_F_CSUM|TUN_F_TSO4|TUN_F_TSO6)`:
    /// every read and write then carries a 10-byte virtio header and up to 64 KiB of packet.
    pub offload: bool,
    /// Extra routes via this device, e.g. `(0.0.0.0, 0)` for a default route. The connected
    /// route of `addr/prefix_len` is added by the kernel and need not be listed.
    pub routes: Vec<(Ipv4Addr, u8)>,
    /// An IPv6 address and prefix length (the connected route comes with it). The namespace
    /// must have IPv6 on, with DAD off (see `super::ipv6_quiet`), or the address is unusable
    /// for a second.
    pub addr6: Option<(Ipv6Addr, u8)>,
    /// Extra IPv6 routes via this device, e.g. `(::, 0)`.
    pub routes6: Vec<(Ipv6Addr, u8)>,
}

/// Creates, configures and brings up a TUN (`IFF_TUN|IFF_NO_PI`) in the calling thread's netns.
/// The returned fd is `O_NONBLOCK|O_CLOEXEC`. Order: open, `TUNSETIFF`, offload ioctls, address,
/// netmask (adds the connected route), MTU, txqueuelen, up, then the extra routes (a route via a
/// device that is down is refused).
pub fn create_tun(cfg: &TunConfig) -> anyhow::Result<OwnedFd> {
    if cfg.prefix_len > 32 {
        bail!("invalid prefix length /{} for {}", cfg.prefix_len, cfg.addr);
    }
    let tun = open_tun_device()?;

    let mut ifr = ifreq_named(&cfg.name)?;
    let mut flags = libc::IFF_TUN | libc::IFF_NO_PI;
    if cfg.offload {
        flags |= libc::IFF_VNET_HDR;
    }
    ifr.ifr_ifru.ifru_flags = flags as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes back one `struct ifreq`; `ifr` is valid and exclusive.
    let rc = unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF as _, &mut ifr) };
    if rc < 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EPERM) {
            return Err(err).context(format!(
                "failed to create TUN device {:?}: permission denied (needs CAP_NET_ADMIN in the \
                 user namespace that owns this network namespace)",
                cfg.name
            ));
        }
        return Err(err).context(format!("failed to create TUN device {:?}", cfg.name));
    }
    // The kernel may have chosen the name (empty or a `%d` pattern).
    let name = ifreq_name(&ifr);

    if cfg.offload {
        let hdr_len: libc::c_int = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one `int` through the pointer; `hdr_len` lives on the
        // stack for the duration of the call.
        let rc = unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETVNETHDRSZ as _, &hdr_len) };
        if rc < 0 {
            return Err(std::io::Error::last_os_error())
                .context(format!("failed to set the vnet header size of {name}"));
        }
        let offload = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
        // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned long), no pointer.
        let rc = unsafe {
            libc::ioctl(
                tun.as_raw_fd(),
                libc::TUNSETOFFLOAD as _,
                offload as libc::c_ulong,
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error()).context(format!(
                "failed to enable offloads (TUNSETOFFLOAD) on {name}"
            ));
        }
    }

    // The ioctl socket is created here, on the calling thread: it is what decides which
    // namespace's interface `name` refers to.
    let sock = ioctl_socket()?;

    let mut ifr = ifreq_named(&name)?;
    ifr.ifr_ifru.ifru_addr = sockaddr_in(cfg.addr);
    ifreq_ioctl(&sock, libc::SIOCSIFADDR, &mut ifr)
        .with_context(|| format!("failed to set address {} on {name}", cfg.addr))?;

    let mut ifr = ifreq_named(&name)?;
    ifr.ifr_ifru.ifru_netmask = sockaddr_in(prefix_to_mask(cfg.prefix_len));
    ifreq_ioctl(&sock, libc::SIOCSIFNETMASK, &mut ifr)
        .with_context(|| format!("failed to set netmask /{} on {name}", cfg.prefix_len))?;

    let mut ifr = ifreq_named(&name)?;
    ifr.ifr_ifru.ifru_mtu = libc::c_int::try_from(cfg.mtu).context("MTU out of range")?;
    ifreq_ioctl(&sock, libc::SIOCSIFMTU, &mut ifr)
        .with_context(|| format!("failed to set MTU {} on {name}", cfg.mtu))?;

    let mut ifr = ifreq_named(&name)?;
    // `ifr_qlen` is `ifru_ivalue`, which shares its offset with `ifru_metric`.
    ifr.ifr_ifru.ifru_metric =
        libc::c_int::try_from(cfg.txqueuelen).context("txqueuelen out of range")?;
    match ifreq_ioctl(&sock, libc::SIOCSIFTXQLEN, &mut ifr) {
        Ok(()) => {}
        // Rootless trap: the kernel checks SIOCSIFTXQLEN with capable(CAP_NET_ADMIN), i.e. in
        // the *initial* user namespace, while the other SIOCSIF* ioctls use ns_capable. So
        // inside a user namespace it fails with EPERM; netlink (what `ip link set txqueuelen`
        // uses) checks the namespace's own capability and works.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            set_txqueuelen_netlink(&sock, &name, cfg.txqueuelen)
                .with_context(|| format!("failed to set txqueuelen {} on {name}", cfg.txqueuelen))?
        }
        Err(e) => {
            return Err(e)
                .with_context(|| format!("failed to set txqueuelen {} on {name}", cfg.txqueuelen))
        }
    }

    let mut ifr = ifreq_named(&name)?;
    ifreq_ioctl(&sock, libc::SIOCGIFFLAGS, &mut ifr)
        .with_context(|| format!("failed to read the flags of {name}"))?;
    // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member of the union.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    ifr.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    ifreq_ioctl(&sock, libc::SIOCSIFFLAGS, &mut ifr)
        .with_context(|| format!("failed to bring {name} up"))?;

    for &(dst, prefix) in &cfg.routes {
        add_route(&sock, &name, dst, prefix)?;
    }
    if cfg.addr6.is_some() || !cfg.routes6.is_empty() {
        let mut ifr = ifreq_named(&name)?;
        ifreq_ioctl(&sock, libc::SIOCGIFINDEX, &mut ifr)
            .with_context(|| format!("failed to find the index of {name}"))?;
        // SAFETY: SIOCGIFINDEX filled `ifru_ifindex`.
        let index = unsafe { ifr.ifr_ifru.ifru_ifindex };
        let sock6 = ioctl_socket6()?;
        if let Some((addr, prefix)) = cfg.addr6 {
            add_addr6(&sock6, index, addr, prefix)
                .with_context(|| format!("failed to set address {addr}/{prefix} on {name}"))?;
            wait_not_tentative(addr)?;
        }
        for &(dst, prefix) in &cfg.routes6 {
            add_route6(&sock6, index, dst, prefix)
                .with_context(|| format!("failed to add route {dst}/{prefix} via {name}"))?;
        }
    }
    Ok(tun)
}

/// An AF_INET6 datagram socket: IPv6 address and route ioctls must be issued on one.
fn ioctl_socket6() -> anyhow::Result<OwnedFd> {
    // SAFETY: socket(2) has no memory preconditions; the returned fd is checked and owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .context("failed to create an IPv6 socket for interface ioctls (IPv6 disabled?)");
    }
    // SAFETY: `fd` was just returned by socket(2), is valid and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn in6_addr(a: Ipv6Addr) -> libc::in6_addr {
    libc::in6_addr {
        s6_addr: a.octets(),
    }
}

/// `SIOCSIFADDR` with a `struct in6_ifreq` (what `ip -6 addr add` does through netlink).
fn add_addr6(
    sock6: &OwnedFd,
    index: libc::c_int,
    addr: Ipv6Addr,
    prefix: u8,
) -> std::io::Result<()> {
    let req = libc::in6_ifreq {
        ifr6_addr: in6_addr(addr),
        ifr6_prefixlen: u32::from(prefix),
        ifr6_ifindex: index,
    };
    // SAFETY: on an AF_INET6 socket SIOCSIFADDR reads one `struct in6_ifreq`; `req` is valid
    // for the call.
    let rc = unsafe { libc::ioctl(sock6.as_raw_fd(), libc::SIOCSIFADDR as _, &req) };
    if rc < 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EEXIST) {
            return Ok(());
        }
        return Err(err);
    }
    Ok(())
}

/// Waits until `addr` is usable. An address added by ioctl starts tentative even with DAD off
/// (`accept_dad` 0): a kernel work item clears the flag a moment later, and until then
/// binding to it fails with EADDRNOTAVAIL (seen under load: the proxy listener's bind). Reads
/// `/proc/thread-self/net/if_inet6` (this thread's namespace), whose fifth column holds the
/// address flags (0x40 tentative, 0x08 DAD failed).
fn wait_not_tentative(addr: Ipv6Addr) -> anyhow::Result<()> {
    let want = addr
        .octets()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let table = std::fs::read_to_string("/proc/thread-self/net/if_inet6")
            .context("failed to read /proc/thread-self/net/if_inet6")?;
        let flags = table.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&want.as_str()))
                .then(|| f.get(4).and_then(|x| u32::from_str_radix(x, 16).ok()))
                .flatten()
        });
        match flags {
            Some(fl) if fl & 0x08 != 0 => {
                bail!("address {addr} failed duplicate address detection")
            }
            Some(fl) if fl & 0x40 == 0 => return Ok(()),
            _ if std::time::Instant::now() > deadline => {
                bail!("address {addr} is still not usable after 5 s (tentative)")
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(1)),
        }
    }
}

/// `struct in6_rtmsg` (linux/ipv6_route.h); libc declares it with private fields.
#[repr(C)]
struct In6Rtmsg {
    dst: libc::in6_addr,
    src: libc::in6_addr,
    gateway: libc::in6_addr,
    kind: u32,
    dst_len: u16,
    src_len: u16,
    metric: u32,
    info: libc::c_ulong,
    flags: u32,
    ifindex: libc::c_int,
}

/// Adds `dst/prefix` via interface `index` with `SIOCADDRT` on an AF_INET6 socket.
fn add_route6(
    sock6: &OwnedFd,
    index: libc::c_int,
    dst: Ipv6Addr,
    prefix: u8,
) -> std::io::Result<()> {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix.min(128)))
    };
    let rt = In6Rtmsg {
        dst: in6_addr(Ipv6Addr::from(u128::from(dst) & mask)),
        src: in6_addr(Ipv6Addr::UNSPECIFIED),
        gateway: in6_addr(Ipv6Addr::UNSPECIFIED),
        kind: 0,
        dst_len: u16::from(prefix),
        src_len: 0,
        metric: 1,
        info: 0,
        flags: libc::RTF_UP as u32,
        ifindex: index,
    };
    // SAFETY: on an AF_INET6 socket SIOCADDRT reads one `struct in6_rtmsg`, laid out as
    // `In6Rtmsg` (repr(C), same fields in the same order); `rt` is valid for the call.
    let rc = unsafe { libc::ioctl(sock6.as_raw_fd(), libc::SIOCADDRT as _, &rt) };
    if rc < 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EEXIST) {
            return Ok(());
        }
        return Err(err);
    }
    Ok(())
}

/// Sets the txqueuelen with one RTM_NEWLINK request (IFLA_TXQLEN) on a NETLINK_ROUTE socket
/// created on the calling thread (so, in its namespace), and waits for the kernel's ack.
fn set_txqueuelen_netlink(ioctl_sock: &OwnedFd, name: &str, qlen: u32) -> anyhow::Result<()> {
    let mut ifr = ifreq_named(name)?;
    ifreq_ioctl(ioctl_sock, libc::SIOCGIFINDEX, &mut ifr)
        .with_context(|| format!("failed to find the index of {name}"))?;
    // SAFETY: SIOCGIFINDEX filled `ifru_ifindex`.
    let index = unsafe { ifr.ifr_ifru.ifru_ifindex };

    // nlmsghdr (16) | ifinfomsg (16) | rtattr (4) + u32 (4), all native-endian.
    let mut msg = Vec::with_capacity(40);
    msg.extend_from_slice(&40u32.to_ne_bytes()); // nlmsg_len
    msg.extend_from_slice(&libc::RTM_NEWLINK.to_ne_bytes()); // nlmsg_type (u16)
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
    msg.extend_from_slice(&flags.to_ne_bytes()); // nlmsg_flags
    msg.extend_from_slice(&1u32.to_ne_bytes()); // nlmsg_seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel fills it in
    msg.push(libc::AF_UNSPEC as u8); // ifi_family
    msg.push(0); // padding
    msg.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    msg.extend_from_slice(&index.to_ne_bytes()); // ifi_index
    msg.extend_from_slice(&0u32.to_ne_bytes()); // ifi_flags
    msg.extend_from_slice(&0u32.to_ne_bytes()); // ifi_change
    msg.extend_from_slice(&8u16.to_ne_bytes()); // rta_len
    msg.extend_from_slice(&libc::IFLA_TXQLEN.to_ne_bytes()); // rta_type (u16)
    msg.extend_from_slice(&qlen.to_ne_bytes());
    debug_assert_eq!(msg.len(), 40);

    // SAFETY: socket(2) has no memory preconditions; the fd is checked and owned at once.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if raw < 0 {
        return Err(std::io::Error::last_os_error()).context("failed to open a netlink socket");
    }
    // SAFETY: `raw` was just returned by socket(2) and is owned by nobody else.
    let nl = unsafe { OwnedFd::from_raw_fd(raw) };
    // An unconnected netlink socket sends to the kernel (port 0).
    // SAFETY: `msg` is a live buffer of `msg.len()` bytes.
    let n = unsafe { libc::send(nl.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error()).context("failed to send a netlink request");
    }
    let mut buf = [0u8; 1024];
    // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes.
    let n = unsafe { libc::recv(nl.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error()).context("failed to read the netlink reply");
    }
    let reply = &buf[..n as usize];
    // The ack is an NLMSG_ERROR message whose first field (after the 16-byte header) is
    // 0 or a negative errno.
    let ty = reply.get(4..6).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    let code = reply
        .get(16..20)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    match (ty, code) {
        (Some(t), Some(0)) if t == libc::NLMSG_ERROR as u16 => Ok(()),
        (Some(t), Some(e)) if t == libc::NLMSG_ERROR as u16 => {
            Err(std::io::Error::from_raw_os_error(-e)).context("netlink RTM_NEWLINK refused")
        }
        _ => bail!("unexpected netlink reply ({} bytes)", reply.len()),
    }
}

fn open_tun_device() -> anyhow::Result<OwnedFd> {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(TUN_DEVICE)
    {
        Ok(file) => Ok(file.into()),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            Err(e).context(format!("{TUN_DEVICE} does not exist (load the tun module)"))
        }
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Err(e).context(format!(
            "{TUN_DEVICE}: permission denied (it is usually mode 0600 root:root; run as root or \
             make it accessible to this user)"
        )),
        Err(e) => Err(e).context(format!("failed to open {TUN_DEVICE}")),
    }
}

/// Adds `dst/prefix` via device `dev` (no gateway: a TUN is point-to-point) with `SIOCADDRT`.
fn add_route(sock: &OwnedFd, dev: &str, dst: Ipv4Addr, prefix: u8) -> anyhow::Result<()> {
    if prefix > 32 {
        bail!("invalid route {dst}/{prefix}");
    }
    let mask = prefix_to_mask(prefix);
    // The kernel rejects a destination with host bits set; store the network address.
    let net = Ipv4Addr::from(u32::from(dst) & u32::from(mask));
    let mut dev_c: Vec<libc::c_char> = dev.bytes().map(|b| b as libc::c_char).collect();
    dev_c.push(0);
    // SAFETY: rtentry is plain old data (integers, sockaddrs, raw pointers); all-zero is valid
    // (null `rt_dev` included, replaced below).
    let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
    rt.rt_dst = sockaddr_in(net);
    rt.rt_genmask = sockaddr_in(mask);
    rt.rt_flags = libc::RTF_UP;
    if prefix == 32 {
        rt.rt_flags |= libc::RTF_HOST;
    }
    rt.rt_dev = dev_c.as_mut_ptr();
    // SAFETY: SIOCADDRT reads one `struct rtentry`; `rt` is valid, and `rt_dev` points to the
    // NUL-terminated `dev_c`, which outlives the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCADDRT as _, &rt) };
    if rc < 0 {
        let err = std::io::Error::last_os_error();
        // The same route already there (e.g. a listed route equal to the connected one).
        if err.raw_os_error() == Some(libc::EEXIST) {
            return Ok(());
        }
        return Err(err).with_context(|| format!("failed to add route {net}/{prefix} via {dev}"));
    }
    Ok(())
}

/// The netmask of a prefix length, e.g. 24 -> 255.255.255.0.
pub fn prefix_to_mask(prefix: u8) -> Ipv4Addr {
    match prefix {
        0 => Ipv4Addr::UNSPECIFIED,
        p => Ipv4Addr::from(u32::MAX << (32 - u32::from(p.min(32)))),
    }
}

fn sockaddr_in(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr are both 16 bytes of plain old data; this is the cast
    // the C API expects.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn sockaddr_to_ipv4(sa: &libc::sockaddr) -> Ipv4Addr {
    // SAFETY: same size, plain old data; the caller asked for an AF_INET address.
    let sin: libc::sockaddr_in = unsafe { std::mem::transmute::<libc::sockaddr, _>(*sa) };
    Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))
}

/// What the kernel says about an interface, read with ioctls in the calling thread's netns
/// (`/sys/class/net` would show the namespace that mounted sysfs instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    pub addr: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub mtu: u32,
    pub txqueuelen: u32,
    pub up: bool,
}

/// Reads address, netmask, MTU, txqueuelen and the up flag of `name` in the calling thread's
/// netns.
pub fn interface_info(name: &str) -> anyhow::Result<InterfaceInfo> {
    let sock = ioctl_socket()?;
    let mut ifr = ifreq_named(name)?;
    ifreq_ioctl(&sock, libc::SIOCGIFADDR, &mut ifr)
        .with_context(|| format!("failed to read the address of {name}"))?;
    // SAFETY: SIOCGIFADDR filled `ifru_addr`.
    let addr = sockaddr_to_ipv4(unsafe { &ifr.ifr_ifru.ifru_addr });

    let mut ifr = ifreq_named(name)?;
    ifreq_ioctl(&sock, libc::SIOCGIFNETMASK, &mut ifr)
        .with_context(|| format!("failed to read the netmask of {name}"))?;
    // SAFETY: SIOCGIFNETMASK filled `ifru_netmask`.
    let netmask = sockaddr_to_ipv4(unsafe { &ifr.ifr_ifru.ifru_netmask });

    let mut ifr = ifreq_named(name)?;
    ifreq_ioctl(&sock, libc::SIOCGIFMTU, &mut ifr)
        .with_context(|| format!("failed to read the MTU of {name}"))?;
    // SAFETY: SIOCGIFMTU filled `ifru_mtu`.
    let mtu = unsafe { ifr.ifr_ifru.ifru_mtu } as u32;

    let mut ifr = ifreq_named(name)?;
    ifreq_ioctl(&sock, libc::SIOCGIFTXQLEN, &mut ifr)
        .with_context(|| format!("failed to read the txqueuelen of {name}"))?;
    // SAFETY: SIOCGIFTXQLEN filled `ifr_qlen`, i.e. the int at the offset of `ifru_metric`.
    let txqueuelen = unsafe { ifr.ifr_ifru.ifru_metric } as u32;

    let mut ifr = ifreq_named(name)?;
    ifreq_ioctl(&sock, libc::SIOCGIFFLAGS, &mut ifr)
        .with_context(|| format!("failed to read the flags of {name}"))?;
    // SAFETY: SIOCGIFFLAGS filled `ifru_flags`.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    Ok(InterfaceInfo {
        addr,
        netmask,
        mtu,
        txqueuelen,
        up: flags & libc::IFF_UP as libc::c_short != 0,
    })
}

/// One IPv4 route: device, destination network and prefix length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dev: String,
    pub dst: Ipv4Addr,
    pub prefix_len: u8,
}

/// The IPv4 routing table of the calling thread's netns, from `/proc/thread-self/net/route`
/// (`/proc/net/route` would show the thread group leader's namespace).
pub fn routes() -> anyhow::Result<Vec<Route>> {
    let path = "/proc/thread-self/net/route";
    let text = std::fs::read_to_string(path).with_context(|| format!("failed to read {path}"))?;
    Ok(parse_proc_net_route(&text))
}

/// Parses `/proc/net/route`. The kernel prints each raw `__be32` as a native integer with
/// `%08X`, so the native bytes of the parsed number are the address in network order.
pub fn parse_proc_net_route(text: &str) -> Vec<Route> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let dst = u32::from_str_radix(f[1], 16).ok()?;
            let mask = u32::from_str_radix(f[7], 16).ok()?;
            Some(Route {
                dev: f[0].to_string(),
                dst: Ipv4Addr::from(dst.to_ne_bytes()),
                prefix_len: mask.count_ones() as u8,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(prefix_to_mask(0), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(prefix_to_mask(16), Ipv4Addr::new(255, 255, 0, 0));
        assert_eq!(prefix_to_mask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(prefix_to_mask(32), Ipv4Addr::new(255, 255, 255, 255));
    }

    #[test]
    fn proc_net_route() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                    plg0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n\
                    plg0\t0000000A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let r = parse_proc_net_route(text);
        assert_eq!(
            r,
            vec![
                Route {
                    dev: "plg0".into(),
                    dst: Ipv4Addr::UNSPECIFIED,
                    prefix_len: 0
                },
                Route {
                    dev: "plg0".into(),
                    dst: Ipv4Addr::new(10, 0, 0, 0),
                    prefix_len: 16
                },
            ]
        );
    }

    #[test]
    fn sockaddr_round_trip() {
        let a = Ipv4Addr::new(10, 1, 2, 3);
        assert_eq!(sockaddr_to_ipv4(&sockaddr_in(a)), a);
    }
}
