//! The NAT table: for every packet the engine reads (from a process's TUN or the proxy's), the
//! rewrite that sends it on. No I/O; the event loop asks and applies.
//!
//! One relayed connection, client A (Ai:pa) to server B (Bj:pb), has two legs through the proxy
//! namespace (L = the proxy address): the client talks to a listener at L:lport believing it
//! is Bj:pb, from a fake address F:fport; the server is talked to by an upstream socket at
//! L:gport believing it is Ai:pa. Four rules carry it, keyed by (source, destination) as read:
//!
//! ```text
//!   read on        key               rewritten to        written to
//!   Ai's TUN   Ai:pa   -> Bj:pb     F:fport -> L:lport    proxy TUN   (client -> listener)
//!   proxy TUN  L:lport -> F:fport   Bj:pb   -> Ai:pa      Ai's TUN    (listener -> client)
//!   proxy TUN  L:gport -> Bj:pb     Ai:pa   -> Bj:pb      Bj's TUN    (upstream -> server)
//!   Bj's TUN   Bj:pb   -> Ai:pa     Bj:pb   -> L:gport    proxy TUN   (server -> upstream)
//! ```
//!
//! IPv6 connections take the same four rules with IPv6 addresses (L and F in the proxy's
//! IPv6 network); a rule never mixes families.
//!
//! Rules outlive the sockets: the last ACKs and FINs of a closed connection still need them,
//! so the loop retires a connection's rules a while after it ended (or at once when its client
//! 4-tuple is reused by a fresh SYN).
//!
//! The table is shared ([`Rules`]) with the fast path (`forward`), which may run on a thread
//! of its own: the loop is its only writer, and each rule says how much of its traffic the
//! fast path may carry without the loop ([`Fast`]).

use crate::format::ConnId;
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::plan::{PROXY6_ADDR, PROXY6_NET, PROXY_ADDR, PROXY_NET};

/// Where a rewritten packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Out {
    Proc(u16),
    Proxy,
}

/// Packets matching a rule are rewritten to `src -> dst` and written to `out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub out: Out,
    pub conn: ConnId,
    pub fast: Fast,
}

/// What of a rule's traffic the fast path carries on its own; the rest goes to the loop,
/// whose core (`core::route_tcp`) decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fast {
    /// Nothing: the client's 4-tuple while its upstream connects (its SYNs are kept, the rest
    /// held).
    No,
    /// Segments without SYN or RST: the client's own rule once its connection is open (a SYN
    /// may reuse the 4-tuple, an RST may end a connection not yet accepted); the upstream
    /// socket's rule (its SYN leaves before the loop has installed the rule, and a local port
    /// may be reused while an earlier connection's rule for it lingers: that SYN must meet
    /// the new rule, so the loop routes it).
    Plain,
    /// Every TCP segment: the rules of the listener's and the server's packets, which the
    /// core always forwards.
    Any,
}

pub type Key = (SocketAddr, SocketAddr);

/// The rules, shared between the loop (the only writer) and the fast path.
#[derive(Clone, Default)]
pub struct Rules(Arc<RwLock<HashMap<Key, Rule>>>);

impl Rules {
    pub fn lookup(&self, src: SocketAddr, dst: SocketAddr) -> Option<Rule> {
        self.read().get(&(src, dst)).copied()
    }

    // A panic while holding the lock cannot leave a rule half-written (inserts and removes
    // are single map operations), so a poisoned lock is used as it is.
    fn read(&self) -> RwLockReadGuard<'_, HashMap<Key, Rule>> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<Key, Rule>> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Default)]
pub struct Nat {
    rules: Rules,
    next_fake: u64,
    next_fake6: u64,
}

/// Fake client ports are spread over ports 1024..=65535 of 254*254 addresses: about 4e9 pairs
/// handed out round-robin, so a pair is reused only long after its TIME_WAIT has expired.
const FAKE_PORTS: u64 = 65536 - 1024;
const FAKE_HOSTS: u64 = 254 * 254;

impl Nat {
    pub fn lookup(&self, src: SocketAddr, dst: SocketAddr) -> Option<Rule> {
        self.rules.lookup(src, dst)
    }

    /// The table, for the fast path.
    pub fn shared(&self) -> Rules {
        self.rules.clone()
    }

    pub fn insert(&mut self, key: Key, rule: Rule) {
        self.rules.write().insert(key, rule);
    }

    /// Removes `key` if it still belongs to `conn` (it may have been taken over by a newer one).
    pub fn remove(&mut self, key: &Key, conn: ConnId) {
        let mut rules = self.rules.write();
        if rules.get(key).is_some_and(|r| r.conn == conn) {
            rules.remove(key);
        }
    }

    pub fn len(&self) -> usize {
        self.rules.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.read().is_empty()
    }

    /// The next fake client address F:fport (never the proxy's own address).
    pub fn next_fake(&mut self) -> SocketAddrV4 {
        let n = self.next_fake;
        self.next_fake = self.next_fake.wrapping_add(1);
        let host = n % FAKE_HOSTS;
        let port = 1024 + (n / FAKE_HOSTS) % FAKE_PORTS;
        let net = u32::from(PROXY_NET);
        let addr = Ipv4Addr::from(net + (((1 + host / 254) as u32) << 8) + 1 + (host % 254) as u32);
        debug_assert_ne!(addr, PROXY_ADDR);
        SocketAddrV4::new(addr, port as u16)
    }

    /// The next fake IPv6 client address: one of 2^32 hosts of the proxy's /64 (never its
    /// own `::1`), each over the ports 1024..=65535, round-robin.
    pub fn next_fake6(&mut self) -> SocketAddrV6 {
        let n = self.next_fake6;
        self.next_fake6 = self.next_fake6.wrapping_add(1);
        let host = n % (1 << 32);
        let port = 1024 + (n >> 32) % FAKE_PORTS;
        let addr = Ipv6Addr::from(u128::from(PROXY6_NET) + 2 + u128::from(host));
        debug_assert_ne!(addr, PROXY6_ADDR);
        SocketAddrV6::new(addr, port as u16, 0, 0)
    }

    /// The next fake client address of the family of `like`.
    pub fn next_fake_like(&mut self, like: SocketAddr) -> SocketAddr {
        match like {
            SocketAddr::V4(_) => SocketAddr::V4(self.next_fake()),
            SocketAddr::V6(_) => SocketAddr::V6(self.next_fake6()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_addresses_stay_in_proxy_net_and_avoid_l() {
        let mut nat = Nat::default();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100_000 {
            let f = nat.next_fake();
            assert_ne!(*f.ip(), PROXY_ADDR);
            assert_eq!(f.ip().octets()[..2], [172, 31]);
            assert!(
                f.ip().octets()[2] >= 1 && f.ip().octets()[3] >= 1 && f.ip().octets()[3] <= 254
            );
            assert!(f.port() >= 1024);
            assert!(seen.insert(f));
        }
    }

    #[test]
    fn fake6_addresses_stay_in_proxy_net_and_avoid_l() {
        let mut nat = Nat::default();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let f = nat.next_fake6();
            assert_ne!(*f.ip(), PROXY6_ADDR);
            assert_eq!(u128::from(*f.ip()) >> 64, u128::from(PROXY6_NET) >> 64);
            assert!(f.port() >= 1024);
            assert!(seen.insert(f));
        }
        let like6: SocketAddr = "[fd00::1]:1".parse().unwrap();
        assert!(nat.next_fake_like(like6).is_ipv6());
        let like4: SocketAddr = "10.0.0.1:1".parse().unwrap();
        assert!(nat.next_fake_like(like4).is_ipv4());
    }

    #[test]
    fn v4_and_v6_keys_do_not_collide() {
        let mut nat = Nat::default();
        let a4: SocketAddr = "10.0.0.2:1000".parse().unwrap();
        let b4: SocketAddr = "10.0.0.3:80".parse().unwrap();
        let a6: SocketAddr = "[fd00:706c:67::2]:1000".parse().unwrap();
        let b6: SocketAddr = "[fd00:706c:67::3]:80".parse().unwrap();
        let rule = |src, dst, conn| Rule {
            src,
            dst,
            out: Out::Proc(1),
            conn,
            fast: Fast::Any,
        };
        nat.insert((a4, b4), rule(a4, b4, 1));
        nat.insert((a6, b6), rule(a6, b6, 2));
        assert_eq!(nat.lookup(a4, b4).unwrap().conn, 1);
        assert_eq!(nat.lookup(a6, b6).unwrap().conn, 2);
        assert!(nat.lookup(a6, b4).is_none());
    }

    #[test]
    fn remove_respects_owner() {
        let mut nat = Nat::default();
        let a = SocketAddr::from(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 1000));
        let b = SocketAddr::from(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 3), 80));
        let rule = |conn| Rule {
            src: a,
            dst: b,
            out: Out::Proxy,
            conn,
            fast: Fast::Any,
        };
        nat.insert((a, b), rule(1));
        nat.insert((a, b), rule(2)); // a reused 4-tuple takes the key over
        nat.remove(&(a, b), 1);
        assert_eq!(nat.lookup(a, b).unwrap().conn, 2);
        nat.remove(&(a, b), 2);
        assert!(nat.is_empty());
    }
}
