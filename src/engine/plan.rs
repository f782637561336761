//! The address plan of a session: which address each process gets, the gateway, the proxy
//! namespace's private network, and the hosts file every process sees. Pure values, no I/O.
//!
//! Layout of a subnet N/len (default 10.0.0.0/24):
//! - N+1 is the gateway: plg's DNS resolver (port 53, UDP and TCP: [`dns_zone`]), and the door
//!   to the host's loopback with `--allow-external`, else refused;
//! - N+2+i is process i (`p0` is 10.0.0.2, `p1` is 10.0.0.3, ...);
//! - the broadcast address is never handed out.
//!
//! The proxy namespace uses 172.31.0.0/16 (RELAY-NOTES: not 127/8, F must not be local), so a
//! user subnet may not overlap it.
//!
//! IPv6 (on unless `--no-ipv6`) mirrors it in a /64 (default `fd00:706c:67::/64`, a ULA;
//! 70 6c 67 is "plg"): `::1` is the gateway, `::2+i` is process i. The proxy namespace's v6
//! network is `fd00:706c:67:ffff::/64` (its address `::1`, the fake clients the rest), so a
//! user /64 may not be that one.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The proxy namespace's own network: its TUN holds `PROXY_ADDR/16`; the fake client addresses
/// (F) are drawn from the rest of it.
pub const PROXY_NET: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 0);
pub const PROXY_PREFIX: u8 = 16;
pub const PROXY_ADDR: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 1);

/// The proxy namespace's IPv6 network (a /64): its TUN holds `PROXY6_ADDR/64`, the fake
/// client addresses are drawn from the rest.
pub const PROXY6_NET: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x706c, 0x67, 0xffff, 0, 0, 0, 0);
pub const PROXY6_PREFIX: u8 = 64;
pub const PROXY6_ADDR: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x706c, 0x67, 0xffff, 0, 0, 0, 1);
/// The default IPv6 subnet of the processes (`--subnet6`).
pub const DEFAULT_SUBNET6: &str = "fd00:706c:67::/64";

/// A validated IPv6 subnet of the processes: a /64 (the only length SLAAC-minded programs
/// and the kernel treat as an ordinary on-link prefix) whose host part is free for
/// `::1` (gateway) and `::2+i` (process i).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet6 {
    pub network: Ipv6Addr,
    pub prefix_len: u8,
}

impl Subnet6 {
    /// Parses `x:y::/len`, len 48..=120. Host bits must be zero; the subnet must not be plg's
    /// own proxy network, loopback, multicast or link-local.
    pub fn parse(s: &str) -> Result<Subnet6, String> {
        let (addr, len) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid IPv6 subnet '{s}': expected x:y::/len"))?;
        let network: Ipv6Addr = addr
            .parse()
            .map_err(|_| format!("invalid IPv6 subnet '{s}': '{addr}' is not an IPv6 address"))?;
        let prefix_len: u8 =
            len.parse().ok().filter(|l| *l <= 128).ok_or_else(|| {
                format!("invalid IPv6 subnet '{s}': prefix length must be 0..=128")
            })?;
        let net = Subnet6 {
            network,
            prefix_len,
        };
        if u128::from(network) & !net.mask() != 0 {
            return Err(format!(
                "invalid IPv6 subnet '{s}': host bits are set (did you mean {}/{prefix_len}?)",
                Ipv6Addr::from(u128::from(network) & net.mask())
            ));
        }
        if !(48..=120).contains(&prefix_len) {
            return Err(format!(
                "IPv6 subnet '{s}': use a prefix length from /48 to /120 (/64 is usual)"
            ));
        }
        let m = net.mask() & u128::MAX << 64;
        if u128::from(network) & m == u128::from(PROXY6_NET) & m {
            return Err(format!(
                "IPv6 subnet '{s}' overlaps plg's internal network {PROXY6_NET}/{PROXY6_PREFIX}: pick another"
            ));
        }
        let first = network.segments()[0];
        if network.is_loopback()
            || network.is_unspecified()
            || first & 0xff00 == 0xff00
            || first & 0xffc0 == 0xfe80
        {
            return Err(format!("IPv6 subnet '{s}' is not usable for processes"));
        }
        Ok(net)
    }

    pub fn mask(&self) -> u128 {
        if self.prefix_len == 0 {
            0
        } else {
            u128::MAX << (128 - self.prefix_len)
        }
    }

    pub fn contains(&self, a: Ipv6Addr) -> bool {
        u128::from(a) & self.mask() == u128::from(self.network)
    }

    pub fn gateway(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.network) + 1)
    }

    pub fn process_addr(&self, index: usize) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.network) + 2 + index as u128)
    }

    /// The process owning `a`, if any (of `count` processes).
    pub fn process_index(&self, a: Ipv6Addr, count: usize) -> Option<usize> {
        let off = u128::from(a).wrapping_sub(u128::from(self.network));
        if self.contains(a) && off >= 2 && off - 2 < count as u128 {
            Some((off - 2) as usize)
        } else {
            None
        }
    }
}

impl std::fmt::Display for Subnet6 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// The addresses of a session: the IPv4 subnet and, unless `--no-ipv6`, the IPv6 one. The
/// one place that says which address a process or the gateway has (the DNS answers read it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub v4: Subnet,
    pub v6: Option<Subnet6>,
}

impl Plan {
    /// Process i's addresses: IPv4, and IPv6 when the session has it.
    pub fn addrs(&self, index: usize) -> (Ipv4Addr, Option<Ipv6Addr>) {
        (
            self.v4.process_addr(index),
            self.v6.map(|s| s.process_addr(index)),
        )
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.v4.gateway()
    }

    pub fn gateway6(&self) -> Option<Ipv6Addr> {
        self.v6.map(|s| s.gateway())
    }

    /// The process owning `a` (either family), if any (of `count` processes).
    pub fn process_index(&self, a: IpAddr, count: usize) -> Option<usize> {
        match a {
            IpAddr::V4(a) => self.v4.process_index(a, count),
            IpAddr::V6(a) => self.v6.and_then(|s| s.process_index(a, count)),
        }
    }

    /// `a` is a gateway address (v4 or v6).
    pub fn is_gateway(&self, a: IpAddr) -> bool {
        match a {
            IpAddr::V4(a) => a == self.v4.gateway(),
            IpAddr::V6(a) => self.gateway6() == Some(a),
        }
    }
}

/// A validated IPv4 subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub prefix_len: u8,
}

impl Subnet {
    /// Parses `a.b.c.d/len`. Host bits must be zero, and the subnet must leave room for the
    /// gateway and at least one process.
    pub fn parse(s: &str) -> Result<Subnet, String> {
        let (addr, len) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid subnet '{s}': expected a.b.c.d/len"))?;
        let network: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("invalid subnet '{s}': '{addr}' is not an IPv4 address"))?;
        let prefix_len: u8 = len
            .parse()
            .ok()
            .filter(|l| *l <= 32)
            .ok_or_else(|| format!("invalid subnet '{s}': prefix length must be 0..=32"))?;
        let net = Subnet {
            network,
            prefix_len,
        };
        if u32::from(network) & !net.mask() != 0 {
            return Err(format!(
                "invalid subnet '{s}': host bits are set (did you mean {}/{prefix_len}?)",
                Ipv4Addr::from(u32::from(network) & net.mask())
            ));
        }
        if prefix_len > 29 {
            return Err(format!(
                "subnet '{s}' is too small: use a prefix of /29 or shorter"
            ));
        }
        if net.overlaps(Subnet {
            network: PROXY_NET,
            prefix_len: PROXY_PREFIX,
        }) {
            return Err(format!(
                "subnet '{s}' overlaps plg's internal network {PROXY_NET}/{PROXY_PREFIX}: pick another"
            ));
        }
        if network.is_loopback() || network.is_multicast() || u32::from(network) == 0 {
            return Err(format!("subnet '{s}' is not usable for processes"));
        }
        Ok(net)
    }

    pub fn mask(&self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix_len)
        }
    }

    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask() == u32::from(self.network)
    }

    fn overlaps(&self, other: Subnet) -> bool {
        let m = self.mask() & other.mask();
        u32::from(self.network) & m == u32::from(other.network) & m
    }

    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// How many processes fit: every host address but the gateway.
    pub fn capacity(&self) -> usize {
        let hosts = (1u64 << (32 - self.prefix_len)) - 2;
        (hosts - 1).min(u16::MAX as u64 - 1) as usize
    }

    pub fn process_addr(&self, index: usize) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 2 + index as u32)
    }

    /// The process owning `a`, if any (of `count` processes).
    pub fn process_index(&self, a: Ipv4Addr, count: usize) -> Option<usize> {
        let off = u32::from(a).wrapping_sub(u32::from(self.network));
        if self.contains(a) && off >= 2 && ((off - 2) as usize) < count {
            Some((off - 2) as usize)
        } else {
            None
        }
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// Checks process names given with `--names`: valid hostnames, no duplicates, not clashing
/// with another process's default `pN` name.
/// Names /etc/hosts gives a meaning of its own (see [`hosts_file`]), and the usual loopback
/// aliases of a host's /etc/hosts.
pub const RESERVED_NAMES: [&str; 5] = [
    "localhost",
    "gateway",
    "ip6-localhost",
    "ip6-loopback",
    "broadcasthost",
];

pub fn validate_names(names: &[String], count: usize) -> Result<(), String> {
    if names.len() > count {
        return Err(format!(
            "--names gives {} names for {count} {}",
            names.len(),
            if count == 1 { "command" } else { "commands" }
        ));
    }
    for (i, n) in names.iter().enumerate() {
        let ok = !n.is_empty()
            && n.len() <= 63
            && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !n.starts_with('-');
        if !ok {
            return Err(format!("invalid name '{n}': use letters, digits and '-'"));
        }
        // Names every process's /etc/hosts already gives a meaning (the first match wins,
        // so the process would be unreachable by it), and names a resolver reads as an IPv4
        // address (inet_aton takes "123" as 0.0.0.123 and "0x7f" as 0.0.0.127).
        if RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(n)) {
            return Err(format!(
                "name '{n}' is reserved: every process resolves it already"
            ));
        }
        let hex = n
            .strip_prefix("0x")
            .or_else(|| n.strip_prefix("0X"))
            .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
        if n.bytes().all(|b| b.is_ascii_digit()) || hex {
            return Err(format!("name '{n}' reads as an IP address: use a letter"));
        }
        if names[..i].contains(n) {
            return Err(format!("name '{n}' is given twice"));
        }
        if let Some(j) = n.strip_prefix('p').and_then(|d| d.parse::<usize>().ok()) {
            if j != i && j < count {
                return Err(format!("name '{n}' would hide process {j}'s own name"));
            }
        }
    }
    Ok(())
}

/// The name a process is known by: its `--names` entry, else `pN`.
pub fn process_name(names: &[String], index: usize) -> String {
    names
        .get(index)
        .cloned()
        .unwrap_or_else(|| format!("p{index}"))
}

/// The /etc/hosts every process sees: loopback, its own names, and every peer's `pN` and name,
/// once per address (IPv4 first, then IPv6: getaddrinfo gives both, A and AAAA).
pub fn hosts_file(plan: &Plan, names: &[String], count: usize) -> String {
    let mut s = String::from("# generated by plg: this session's processes\n");
    s.push_str("127.0.0.1\tlocalhost\n");
    if plan.v6.is_some() {
        s.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    }
    let _ = writeln!(s, "{}\tgateway", plan.gateway());
    if let Some(g) = plan.gateway6() {
        let _ = writeln!(s, "{g}\tgateway");
    }
    let line = |s: &mut String, addr: &dyn std::fmt::Display, i: usize| {
        let _ = write!(s, "{addr}\tp{i}");
        if let Some(n) = names.get(i) {
            if *n != format!("p{i}") {
                let _ = write!(s, " {n}");
            }
        }
        s.push('\n');
    };
    for i in 0..count {
        let (a4, a6) = plan.addrs(i);
        line(&mut s, &a4, i);
        if let Some(a6) = a6 {
            line(&mut s, &a6, i);
        }
    }
    s
}

/// The names plg's resolver at the gateway answers: the same as [`hosts_file`] (`localhost`,
/// `gateway`, every process's `pN` and name, with their IPv6 addresses when the session has
/// them), so DNS and /etc/hosts never disagree.
pub fn dns_zone(plan: &Plan, names: &[String], count: usize) -> crate::wire::dns::Zone {
    let mut z = crate::wire::dns::Zone::new();
    // As in the hosts file: ::1 only when the session has IPv6. An AAAA here that the hosts
    // file lacks would change what `getent hosts localhost` answers (it asks for IPv6 first,
    // and falls through the hosts file to DNS).
    z.add(
        &["localhost"],
        Some(Ipv4Addr::LOCALHOST),
        plan.v6.map(|_| std::net::Ipv6Addr::LOCALHOST),
    );
    z.add(&["gateway"], Some(plan.gateway()), plan.gateway6());
    for i in 0..count {
        let pn = format!("p{i}");
        let mut n: Vec<&str> = vec![&pn];
        if let Some(name) = names.get(i).filter(|name| **name != pn) {
            n.push(name);
        }
        let (a4, a6) = plan.addrs(i);
        z.add(&n, Some(a4), a6);
    }
    z
}

/// The /etc/resolv.conf every process sees: plg's resolver at the gateway (IPv4, then IPv6
/// when the session has it; either answers A and AAAA), and nothing of the host's (its search
/// domains would send `p0` out as `p0.example.com` first). The answers are definite and
/// immediate, so the timeout only matters for a lost datagram.
pub fn resolv_conf(plan: &Plan) -> String {
    let mut s = format!(
        "# generated by plg: the session's names are answered at the gateway\n\
         nameserver {}\n",
        plan.gateway()
    );
    if let Some(g) = plan.gateway6() {
        let _ = writeln!(s, "nameserver {g}");
    }
    s.push_str("options timeout:1 attempts:2\n");
    s
}

/// The `/etc/gai.conf` every process sees when the session has IPv6: the RFC 6724 default
/// policy table. glibc's built-in table is RFC 3484's, which ranks a ULA (fc00::/7, plg's
/// default IPv6 subnet) above IPv4, so a client of an IPv4-only server would first try IPv6,
/// be refused, and fall back: a refused connection on the record before every real one.
/// RFC 6724 ranks ULAs below IPv4: a name resolves IPv4 first, a program that asks for IPv6
/// (`curl -6`, an IPv6 literal, an IPv6-only socket) gets it, and a global `--subnet6` is
/// preferred over IPv4 as on any dual-stack host. With `prefer_ipv6` (`--prefer-ipv6`) the
/// same table ranks ULAs with the other IPv6 addresses, above IPv4, as glibc's own does: names
/// resolve AAAA first.
pub fn gai_conf(prefer_ipv6: bool) -> String {
    let (what, ula) = if prefer_ipv6 {
        ("IPv6 before IPv4 (--prefer-ipv6)", 40)
    } else {
        ("IPv4 before ULA", 3)
    };
    format!(
        "# generated by plg: the RFC 6724 default policy table, {what}\n\
     precedence ::1/128       50\n\
     precedence ::/0          40\n\
     precedence ::ffff:0:0/96 35\n\
     precedence 2002::/16     30\n\
     precedence 2001::/32      5\n\
     precedence fc00::/7      {ula:2}\n\
     precedence ::/96          1\n\
     precedence fec0::/10      1\n\
     precedence 3ffe::/16      1\n\
     label ::1/128        0\n\
     label ::/0           1\n\
     label ::ffff:0:0/96  4\n\
     label 2002::/16      2\n\
     label 2001::/32      5\n\
     label fc00::/7      13\n\
     label ::/96          3\n\
     label fec0::/10     11\n\
     label 3ffe::/16     12\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_subnet_layout() {
        let s = Subnet::parse("10.0.0.0/24").unwrap();
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(s.process_addr(0), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(s.capacity(), 253);
        assert_eq!(s.process_index(Ipv4Addr::new(10, 0, 0, 3), 2), Some(1));
        assert_eq!(s.process_index(Ipv4Addr::new(10, 0, 0, 4), 2), None);
        assert_eq!(s.process_index(Ipv4Addr::new(10, 0, 0, 1), 2), None);
        assert_eq!(s.process_index(Ipv4Addr::new(10, 0, 1, 2), 2), None);
    }

    #[test]
    fn bad_subnets_are_named() {
        for (input, want) in [
            ("10.0.0.0", "expected"),
            ("10.0.0/24", "not an IPv4"),
            ("10.0.0.0/33", "prefix length"),
            ("10.0.0.1/24", "host bits"),
            ("10.0.0.0/30", "too small"),
            ("172.31.5.0/24", "overlaps"),
            ("127.0.0.0/8", "not usable"),
        ] {
            let e = Subnet::parse(input).unwrap_err();
            assert!(e.contains(want), "{input}: {e}");
        }
        assert_eq!(Subnet::parse("192.168.7.0/29").unwrap().capacity(), 5);
    }

    #[test]
    fn ipv6_layout() {
        let s = Subnet6::parse(DEFAULT_SUBNET6).unwrap();
        assert_eq!(s.gateway(), "fd00:706c:67::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            s.process_addr(0),
            "fd00:706c:67::2".parse::<Ipv6Addr>().unwrap()
        );
        let p1: Ipv6Addr = "fd00:706c:67::3".parse().unwrap();
        assert_eq!(s.process_index(p1, 2), Some(1));
        assert_eq!(s.process_index(p1, 1), None);
        assert_eq!(s.process_index(s.gateway(), 2), None);
        assert_eq!(s.process_index(PROXY6_ADDR, 2), None);
        let plan = Plan {
            v4: Subnet::parse("10.0.0.0/24").unwrap(),
            v6: Some(s),
        };
        assert_eq!(plan.addrs(1), (Ipv4Addr::new(10, 0, 0, 3), Some(p1)));
        assert_eq!(plan.process_index(IpAddr::V6(p1), 2), Some(1));
        assert!(plan.is_gateway(IpAddr::V6(s.gateway())));
        for (input, want) in [
            ("fd00::", "expected"),
            ("10.0.0.0/64", "not an IPv6"),
            ("fd00::/129", "prefix length"),
            ("fd00::1/64", "host bits"),
            ("fd00::/124", "/48 to /120"),
            ("fd00:706c:67:ffff::/64", "overlaps"),
            ("fe80::/64", "not usable"),
            ("ff02::/64", "not usable"),
        ] {
            let e = Subnet6::parse(input).unwrap_err();
            assert!(e.contains(want), "{input}: {e}");
        }
    }

    #[test]
    fn names() {
        let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(validate_names(&n(&["server", "client"]), 2).is_ok());
        assert!(validate_names(&n(&["a", "a"]), 2)
            .unwrap_err()
            .contains("twice"));
        assert!(validate_names(&n(&["a b"]), 2)
            .unwrap_err()
            .contains("invalid"));
        assert!(validate_names(&n(&["p1", "x"]), 2)
            .unwrap_err()
            .contains("hide"));
        assert!(validate_names(&n(&["a", "b", "c"]), 2).is_err());
        for bad in ["localhost", "Gateway", "123", "0x7f", "0Xff"] {
            assert!(validate_names(&n(&[bad]), 2).is_err(), "{bad}");
        }
        assert!(validate_names(&n(&["1a", "0xyz"]), 2).is_ok());
        let v4 = Subnet::parse("10.0.0.0/24").unwrap();
        let h = hosts_file(&Plan { v4, v6: None }, &n(&["web"]), 2);
        assert!(h.contains("10.0.0.2\tp0 web\n"));
        assert!(h.contains("10.0.0.3\tp1\n"));
        assert!(!h.contains("::"));
        let v6 = Some(Subnet6::parse(DEFAULT_SUBNET6).unwrap());
        let h = hosts_file(&Plan { v4, v6 }, &n(&["web"]), 2);
        assert!(
            h.contains("10.0.0.2\tp0 web\nfd00:706c:67::2\tp0 web\n"),
            "{h}"
        );
        assert!(h.contains("fd00:706c:67::3\tp1\n"));
        assert!(h.contains("fd00:706c:67::1\tgateway\n"));
    }

    #[test]
    fn dns_zone_matches_the_hosts_file() {
        use crate::wire::dns::Zone;
        let n = vec!["web".to_string()];
        let s = Subnet::parse("10.0.0.0/24").unwrap();
        let z: Zone = dns_zone(&Plan { v4: s, v6: None }, &n, 2);
        assert_eq!(z.lookup("web").unwrap().v4, Some(s.process_addr(0)));
        assert_eq!(z.lookup("P0.").unwrap().v4, Some(s.process_addr(0)));
        assert_eq!(z.lookup("p1").unwrap().v4, Some(s.process_addr(1)));
        assert_eq!(z.lookup("p1").unwrap().v6, None);
        assert_eq!(z.lookup("gateway").unwrap().v4, Some(s.gateway()));
        assert!(z.lookup("p2").is_none());
        // Nothing the hosts file does not say (regression: `getent hosts localhost` asks
        // for IPv6 first and answered ::1 from DNS).
        assert_eq!(z.lookup("localhost").unwrap().v6, None);
        let r = resolv_conf(&Plan { v4: s, v6: None });
        assert!(r.contains("nameserver 10.0.0.1\n"), "{r}");
        assert!(!r.contains("search"));

        let v6 = Subnet6::parse(DEFAULT_SUBNET6).unwrap();
        let plan = Plan {
            v4: s,
            v6: Some(v6),
        };
        let z: Zone = dns_zone(&plan, &n, 2);
        assert_eq!(z.lookup("web").unwrap().v6, Some(v6.process_addr(0)));
        assert_eq!(z.lookup("p1").unwrap().v6, Some(v6.process_addr(1)));
        assert_eq!(z.lookup("gateway").unwrap().v6, Some(v6.gateway()));
        assert_eq!(z.lookup("localhost").unwrap().v6, Some(Ipv6Addr::LOCALHOST));
        let r = resolv_conf(&plan);
        assert!(
            r.contains("nameserver 10.0.0.1\nnameserver fd00:706c:67::1\n"),
            "{r}"
        );
    }
}
