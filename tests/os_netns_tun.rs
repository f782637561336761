//! Root-only: network namespaces, TUN devices and per-namespace settings, checked from inside
//! each namespace (ioctls and /proc/thread-self on a thread that joined it).
//!
//! Without root or /dev/net/tun these tests fail with a message saying so;
//! `PLG_SKIP_ROOT_TESTS=1` turns that into a loud skip.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use plg::os::tun::{interface_info, routes, Route, VNET_HDR_LEN};
use plg::os::{create_tun, disable_ipv6, loopback_up, sysctl_set, HostSockets, Netns, TunConfig};

/// Whether the root-only tests can run; panics (or skips loudly with PLG_SKIP_ROOT_TESTS=1)
/// when they cannot.
mod os_support;
use os_support::root_available;

fn cfg(i: u8, offload: bool) -> TunConfig {
    TunConfig {
        name: "plg0".into(),
        addr: Ipv4Addr::new(10, i, 0, 1),
        prefix_len: 16,
        mtu: 1400 + u32::from(i),
        txqueuelen: 2000 + u32::from(i),
        offload,
        routes: vec![
            (Ipv4Addr::UNSPECIFIED, 0),
            (Ipv4Addr::new(172, 31, 0, 0), 16),
        ],
        addr6: None,
        routes6: vec![],
    }
}

/// A namespace set up the way plg does it: IPv6 off before the TUN exists, lo up, the TUN.
fn make_ns(c: TunConfig) -> (Netns, OwnedFd) {
    Netns::create_with(move || {
        disable_ipv6()?;
        loopback_up()?;
        create_tun(&c)
    })
    .expect("create a namespace with a TUN")
}

#[test]
fn two_namespaces_each_with_a_configured_tun() {
    if !root_available("two_namespaces_each_with_a_configured_tun") {
        return;
    }
    let host = Netns::current().unwrap().inode().unwrap();
    let made: Vec<(Netns, OwnedFd, TunConfig)> = (1..=2u8)
        .map(|i| {
            let c = cfg(i, i == 2);
            let (ns, fd) = make_ns(c.clone());
            (ns, fd, c)
        })
        .collect();
    let inodes: Vec<u64> = made.iter().map(|(ns, _, _)| ns.inode().unwrap()).collect();
    assert_ne!(inodes[0], inodes[1], "each call makes a new namespace");
    assert!(!inodes.contains(&host), "the host namespace is untouched");

    for (ns, fd, c) in &made {
        // The fd flags plg relies on.
        let fl = nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_GETFL).unwrap();
        assert!(fl & libc::O_NONBLOCK != 0, "TUN fd is non-blocking");
        let fdfl = nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert!(fdfl & libc::FD_CLOEXEC != 0, "TUN fd is close-on-exec");

        let name = c.name.clone();
        let (info, lo, ipv6, rt) = ns
            .run_in(move || {
                let info = interface_info(&name)?;
                let lo = interface_info("lo")?;
                let ipv6 = (
                    plg::os::netns::sysctl_get("net/ipv6/conf/all/disable_ipv6")?,
                    plg::os::netns::sysctl_get("net/ipv6/conf/default/disable_ipv6")?,
                    plg::os::netns::sysctl_get(&format!("net/ipv6/conf/{name}/disable_ipv6"))?,
                );
                Ok((info, lo, ipv6, routes()?))
            })
            .unwrap();
        assert_eq!(info.addr, c.addr);
        assert_eq!(info.netmask, Ipv4Addr::new(255, 255, 0, 0));
        assert_eq!(info.mtu, c.mtu);
        assert_eq!(info.txqueuelen, c.txqueuelen);
        assert!(info.up, "TUN is up");
        assert!(lo.up && lo.addr == Ipv4Addr::LOCALHOST, "lo is up: {lo:?}");
        assert_eq!(ipv6, ("1".into(), "1".into(), "1".into()), "IPv6 disabled");
        let want = |dst: Ipv4Addr, prefix_len: u8| Route {
            dev: "plg0".into(),
            dst,
            prefix_len,
        };
        let net = Ipv4Addr::new(10, c.addr.octets()[1], 0, 0);
        for r in [
            want(Ipv4Addr::UNSPECIFIED, 0),
            want(Ipv4Addr::new(172, 31, 0, 0), 16),
            want(net, 16),
        ] {
            assert!(rt.contains(&r), "route {r:?} missing from {rt:?}");
        }
    }

    // The interface does not exist in the host namespace (ioctls on a host thread).
    assert!(interface_info("plg0").is_err() || host_has_plg0());

    // The TUN really belongs to its namespace: a datagram sent there comes out of its fd.
    for (ns, fd, c) in &made {
        let peer = Ipv4Addr::new(10, c.addr.octets()[1], 0, 2);
        ns.run_in(move || {
            let s = UdpSocket::bind("0.0.0.0:0")?;
            s.send_to(b"hello", (peer, 9))?;
            Ok(())
        })
        .unwrap();
        let pkt = read_packet(fd);
        let ip = if c.offload {
            &pkt[VNET_HDR_LEN..]
        } else {
            &pkt[..]
        };
        assert_eq!(ip[0] >> 4, 4, "an IPv4 packet (no IPv6 noise): {ip:02x?}");
        assert_eq!(&ip[16..20], &peer.octets(), "sent to the peer");
        assert_eq!(&ip[12..16], &c.addr.octets(), "from the TUN address");
    }
}

fn host_has_plg0() -> bool {
    std::path::Path::new("/sys/class/net/plg0").exists()
}

fn read_packet(fd: &OwnedFd) -> Vec<u8> {
    let mut file = std::fs::File::from(fd.try_clone().unwrap());
    let mut buf = vec![0u8; 70000];
    for _ in 0..200 {
        match file.read(&mut buf) {
            Ok(n) => return buf[..n].to_vec(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => panic!("read from TUN: {e}"),
        }
    }
    panic!("no packet came out of the TUN within 2 s");
}

#[test]
fn sysctl_set_stays_in_its_namespace() {
    if !root_available("sysctl_set_stays_in_its_namespace") {
        return;
    }
    let key = "net/ipv4/ip_local_port_range";
    let host_before = plg::os::netns::sysctl_get(key).unwrap();
    let (ns, ()) = Netns::create_with(|| Ok(())).unwrap();
    let inside = ns
        .run_in(move || {
            sysctl_set(key, "20000 60999")?;
            sysctl_set("net.ipv4.tcp_tw_reuse", "1")?;
            Ok((
                plg::os::netns::sysctl_get(key)?,
                plg::os::netns::sysctl_get("net/ipv4/tcp_tw_reuse")?,
            ))
        })
        .unwrap();
    assert_eq!(
        inside.0.split_whitespace().collect::<Vec<_>>(),
        ["20000", "60999"]
    );
    assert_eq!(inside.1, "1");
    assert_eq!(plg::os::netns::sysctl_get(key).unwrap(), host_before);
}

#[test]
fn enter_current_thread_and_errors() {
    if !root_available("enter_current_thread_and_errors") {
        return;
    }
    let (ns, ()) = Netns::create_with(|| Ok(())).unwrap();
    let want = ns.inode().unwrap();
    let ns2 = ns.try_clone().unwrap();
    let got = std::thread::spawn(move || {
        ns2.enter_current_thread().unwrap();
        drop(ns2);
        // Still alive through `ns`; this thread now lives there.
        Netns::current().unwrap().inode().unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(got, want);
    assert_ne!(Netns::current().unwrap().inode().unwrap(), want);

    // An error inside `f` comes back as is; a panic becomes an error.
    let e = ns.run_in(|| -> anyhow::Result<()> { anyhow::bail!("boom") });
    assert_eq!(e.unwrap_err().to_string(), "boom");
    let e = ns.run_in(|| -> anyhow::Result<()> { panic!("kaboom") });
    assert!(e.unwrap_err().to_string().contains("panicked"));

    // A bad config names the piece that failed.
    let mut bad = cfg(3, false);
    bad.name = "a-name-far-too-long".into();
    let e = ns.run_in(move || create_tun(&bad)).unwrap_err();
    assert!(format!("{e:#}").contains("invalid interface name"), "{e:#}");
}

#[test]
fn host_sockets_stay_in_the_starting_namespace() {
    if !root_available("host_sockets_stay_in_the_starting_namespace") {
        return;
    }
    // A listener on the host's loopback, which the namespace cannot reach by itself.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let host = Netns::current().unwrap().inode().unwrap();
    let hs = HostSockets::start().unwrap();

    let (ns, ()) = Netns::create_with(loopback_up).unwrap();
    let ns_inode = ns.inode().unwrap();
    let hs = std::sync::Arc::new(hs);
    let hs2 = hs.clone();
    let (sock_ns, own_ns, connected) = ns
        .run_in(move || {
            // This thread is in `ns`; the socket must still be the host's.
            let s = hs2.tcp_socket(false)?;
            let sock_ns = Netns::of_socket(s.as_fd())?.inode()?;
            let own = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            s.set_nonblocking(false)?;
            let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
            let connected = s.connect(&addr.into()).is_ok();
            Ok((sock_ns, own, connected))
        })
        .unwrap();
    assert_eq!(sock_ns, host, "host socket in the host namespace");
    assert_ne!(sock_ns, ns_inode);
    assert!(!own_ns, "the namespace's own loopback has no such listener");
    assert!(connected, "the host socket reached the host's 127.0.0.1");

    let s = hs.tcp_socket(false).unwrap();
    assert!(s.nonblocking().unwrap());
    let fdfl = nix::fcntl::fcntl(s.as_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
    assert!(fdfl & libc::FD_CLOEXEC != 0);
    assert!(s.as_raw_fd() > 2);
    drop(s);
    drop(listener);
    // Dropping stops the thread (join returns).
    drop(std::sync::Arc::try_unwrap(hs).unwrap());
}

#[test]
fn proc_net_shows_the_leader_not_the_thread() {
    if !root_available("proc_net_shows_the_leader_not_the_thread") {
        return;
    }
    // The trap behind `routes()` reading /proc/thread-self/net/route and `interface_info`
    // using ioctls: on a thread that joined a namespace, /proc/net (= /proc/self/net) and
    // /sys/class/net still describe the main thread's namespace.
    let (ns, _tun) = make_ns(TunConfig {
        name: "plgtrap0".into(),
        ..cfg(7, false)
    });
    let (self_net, thread_net, sys) = ns
        .run_in(|| {
            Ok((
                std::fs::read_to_string("/proc/net/dev")?,
                std::fs::read_to_string("/proc/thread-self/net/dev")?,
                std::path::Path::new("/sys/class/net/plgtrap0").exists(),
            ))
        })
        .unwrap();
    assert!(thread_net.contains("plgtrap0"), "{thread_net}");
    assert!(!self_net.contains("plgtrap0"), "{self_net}");
    assert!(!sys, "sysfs shows the namespace that mounted it");
}
