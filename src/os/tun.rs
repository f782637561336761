//! TUN devices: create, configure and bring up, with ioctls only (no `ip` binary, no netlink).
//!
//! Everything here acts in the calling thread's network namespace: the TUN belongs to the
//! namespace in which `/dev/net/tun` is opened, and the `SIOCSIF*`/`SIOCADDRT` ioctls act in the
//! namespace of the socket that issues them, which is created on the same thread. Call
//! [`create_tun`] inside [`Netns::create_with`](super::Netns::create_with) or
//! [`Netns::run_in`](super::Netns::run_in).

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
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
    ifreq_ioctl(&sock, libc::SIOCSIFTXQLEN, &mut ifr)
        .with_context(|| format!("failed to set txqueuelen {} on {name}", cfg.txqueuelen))?;

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
    Ok(tun)
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
