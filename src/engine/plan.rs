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

use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// The proxy namespace's own network: its TUN holds `PROXY_ADDR/16`; the fake client addresses
/// (F) are drawn from the rest of it.
pub const PROXY_NET: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 0);
pub const PROXY_PREFIX: u8 = 16;
pub const PROXY_ADDR: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 1);

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
            "--names gives {} names for {count} commands",
            names.len()
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

/// The /etc/hosts every process sees: loopback, its own names, and every peer's `pN` and name.
pub fn hosts_file(subnet: &Subnet, names: &[String], count: usize) -> String {
    let mut s = String::from("# generated by plg: this session's processes\n");
    s.push_str("127.0.0.1\tlocalhost\n");
    let _ = writeln!(s, "{}\tgateway", subnet.gateway());
    for i in 0..count {
        let _ = write!(s, "{}\tp{i}", subnet.process_addr(i));
        if let Some(n) = names.get(i) {
            if *n != format!("p{i}") {
                let _ = write!(s, " {n}");
            }
        }
        s.push('\n');
    }
    s
}

/// The names plg's resolver at the gateway answers: the same as [`hosts_file`] (`localhost`,
/// `gateway`, every process's `pN` and name), so DNS and /etc/hosts never disagree.
/// Hook for IPv6: each host's `v6` is `None` until processes get v6 addresses.
pub fn dns_zone(subnet: &Subnet, names: &[String], count: usize) -> crate::wire::dns::Zone {
    let mut z = crate::wire::dns::Zone::new();
    // As in the hosts file: 127.0.0.1 only. An AAAA here that the hosts file lacks would
    // change what `getent hosts localhost` answers (it asks for IPv6 first, and falls
    // through the hosts file to DNS): add ::1 in both at once.
    z.add(&["localhost"], Some(Ipv4Addr::LOCALHOST), None);
    z.add(&["gateway"], Some(subnet.gateway()), None);
    for i in 0..count {
        let pn = format!("p{i}");
        let mut n: Vec<&str> = vec![&pn];
        if let Some(name) = names.get(i).filter(|name| **name != pn) {
            n.push(name);
        }
        z.add(&n, Some(subnet.process_addr(i)), None);
    }
    z
}

/// The /etc/resolv.conf every process sees: plg's resolver at the gateway, and nothing of the
/// host's (its search domains would send `p0` out as `p0.example.com` first). The answers are
/// definite and immediate, so the timeout only matters for a lost datagram.
/// Hook for IPv6: add `nameserver <v6 gateway>` here once the gateway has one.
pub fn resolv_conf(subnet: &Subnet) -> String {
    format!(
        "# generated by plg: the session's names are answered at the gateway\n\
         nameserver {}\n\
         options timeout:1 attempts:2\n",
        subnet.gateway()
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
        let h = hosts_file(&Subnet::parse("10.0.0.0/24").unwrap(), &n(&["web"]), 2);
        assert!(h.contains("10.0.0.2\tp0 web\n"));
        assert!(h.contains("10.0.0.3\tp1\n"));
    }

    #[test]
    fn dns_zone_matches_the_hosts_file() {
        use crate::wire::dns::Zone;
        let n = vec!["web".to_string()];
        let s = Subnet::parse("10.0.0.0/24").unwrap();
        let z: Zone = dns_zone(&s, &n, 2);
        assert_eq!(z.lookup("web").unwrap().v4, Some(s.process_addr(0)));
        assert_eq!(z.lookup("P0.").unwrap().v4, Some(s.process_addr(0)));
        assert_eq!(z.lookup("p1").unwrap().v4, Some(s.process_addr(1)));
        assert_eq!(z.lookup("gateway").unwrap().v4, Some(s.gateway()));
        assert!(z.lookup("p2").is_none());
        // Nothing the hosts file does not say (regression: `getent hosts localhost` asks
        // for IPv6 first and answered ::1 from DNS).
        assert_eq!(z.lookup("localhost").unwrap().v6, None);
        let r = resolv_conf(&s);
        assert!(r.contains("nameserver 10.0.0.1\n"), "{r}");
        assert!(!r.contains("search"));
    }
}
