//! The fast path: a TCP segment of a relayed connection, rewritten by its NAT rule, goes on
//! without the loop. It is what most frames are (every data segment and ACK of every relayed
//! connection crosses two TUNs each way), so in a session it runs on a thread of its own
//! (`io::Kernel`), beside the loop's socket relay. The loop also calls it, frame by frame,
//! before its own routing, on the frames it reads; the simulations run it that way, and on
//! half their seeds also at its quickest: on each frame as a kernel sends it, before the loop
//! has had a chance to change any rule.
//!
//! Pure: it reads the shared rules (`nat::Rules`, written only by the loop) and a frame, and
//! says where the rewritten frame goes; the caller writes it. It never changes a connection's
//! state, so it carries only what the core (`core::route_tcp`) would forward without looking:
//! a rule's [`Fast`] class says what that is. Everything else (SYNs and RSTs on a client's own
//! rule, the segments of a connection still connecting, non-TCP, spoofed sources, frames it
//! cannot parse) is left untouched for the loop.

use super::nat::{Fast, Out, Rule, Rules};
use crate::wire::{self, tcp_flags, vnet, CsumMode};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// The fast path of one session.
#[derive(Clone)]
pub struct Forwarder {
    rules: Rules,
    /// Each process's own addresses (IPv6 only in sessions with IPv6): what it may send from.
    procs: Vec<(Ipv4Addr, Option<Ipv6Addr>)>,
    offload: bool,
}

impl Forwarder {
    pub fn new(rules: Rules, procs: Vec<(Ipv4Addr, Option<Ipv6Addr>)>, offload: bool) -> Self {
        Forwarder {
            rules,
            procs,
            offload,
        }
    }

    /// Rewrites `frame`, read on `from`, for the TUN returned; None leaves it, unchanged,
    /// to the loop.
    pub fn forward(&self, from: Out, frame: &mut [u8]) -> Option<Out> {
        let off = if self.offload { vnet::HDR_LEN } else { 0 };
        let pkt = frame.get(off..)?;
        let own = match from {
            Out::Proc(i) => Some(self.procs.get(i as usize)?),
            Out::Proxy => None,
        };
        let (src, dst, flags) = match pkt.first()? >> 4 {
            4 => {
                let s = wire::summarize(pkt)?;
                if own.is_some_and(|o| o.0 != s.src) {
                    return None;
                }
                (
                    SocketAddr::V4(SocketAddrV4::new(s.src, s.sport)),
                    SocketAddr::V4(SocketAddrV4::new(s.dst, s.dport)),
                    s.tcp?.flags,
                )
            }
            6 => {
                let s = wire::ipv6::summarize6(pkt)?;
                if own.is_some_and(|o| o.1 != Some(s.src)) {
                    return None;
                }
                (
                    SocketAddr::V6(SocketAddrV6::new(s.src, s.sport, 0, 0)),
                    SocketAddr::V6(SocketAddrV6::new(s.dst, s.dport, 0, 0)),
                    s.tcp?.flags,
                )
            }
            _ => return None,
        };
        let rule = self.rules.lookup(src, dst)?;
        let carried = match rule.fast {
            Fast::No => false,
            Fast::Plain => flags & (tcp_flags::SYN | tcp_flags::RST) == 0,
            Fast::Any => true,
        };
        (carried && rewrite(self.offload, frame, &rule)).then_some(rule.out)
    }
}

/// Rewrites a frame (virtio header first when offloading) to the rule's addresses, keeping its
/// checksum mode; false (and the frame unchanged) when it is not a packet the rule can carry.
pub fn rewrite(offload: bool, frame: &mut [u8], rule: &Rule) -> bool {
    let (hdr, pkt) = if offload {
        let Some(hdr) = vnet::VnetHdr::parse(frame) else {
            return false;
        };
        (hdr, &mut frame[vnet::HDR_LEN..])
    } else {
        (vnet::VnetHdr::default(), frame)
    };
    let mode = if hdr.flags & vnet::NEEDS_CSUM != 0 {
        CsumMode::Partial
    } else {
        CsumMode::Full
    };
    match (rule.src, rule.dst) {
        (SocketAddr::V4(src), SocketAddr::V4(dst)) => wire::rewrite(pkt, mode, src, dst),
        (SocketAddr::V6(src), SocketAddr::V6(dst)) => wire::ipv6::rewrite6(pkt, mode, src, dst),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::nat::Nat;
    use crate::wire::ipv6::Tcp6Segment;
    use crate::wire::TcpSegment;
    use std::net::SocketAddrV6;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
    const A6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
    const B6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3);
    const ACK: u8 = tcp_flags::ACK;

    fn seg(src: SocketAddrV4, dst: SocketAddrV4, flags: u8) -> Vec<u8> {
        TcpSegment {
            src,
            dst,
            seq: 1,
            ack: 1,
            flags,
            window: 1000,
            options: &[],
            payload: b"data",
            ip_id: 0,
        }
        .to_vec()
    }

    fn seg6(src: SocketAddrV6, dst: SocketAddrV6, flags: u8) -> Vec<u8> {
        Tcp6Segment {
            src,
            dst,
            seq: 1,
            ack: 1,
            flags,
            window: 1000,
            options: &[],
            payload: b"data",
        }
        .to_vec()
    }

    fn with_vnet(pkt: Vec<u8>) -> Vec<u8> {
        let mut f = vec![0; vnet::HDR_LEN];
        f.extend_from_slice(&pkt);
        f
    }

    /// The connection A:1000 -> B:80 with its client's rule of class `client` and the server's
    /// rule (B:80 -> A:1000, read on B's TUN) of class Any.
    fn table(client: Fast) -> (Nat, SocketAddrV4, SocketAddrV4) {
        let (a, b) = (SocketAddrV4::new(A, 1000), SocketAddrV4::new(B, 80));
        let to = SocketAddrV4::new(Ipv4Addr::new(172, 31, 1, 1), 2000);
        let mut nat = Nat::default();
        let rule = |src, dst, out, fast| Rule {
            src: SocketAddr::V4(src),
            dst: SocketAddr::V4(dst),
            out,
            conn: 7,
            fast,
        };
        nat.insert((a.into(), b.into()), rule(to, b, Out::Proxy, client));
        nat.insert((b.into(), a.into()), rule(b, to, Out::Proxy, Fast::Any));
        (nat, a, b)
    }

    #[test]
    fn carries_only_what_the_core_would_forward_unseen() {
        for offload in [false, true] {
            let frame = |p: Vec<u8>| if offload { with_vnet(p) } else { p };
            for (class, flags, carried) in [
                (Fast::Plain, ACK, true),
                (Fast::Plain, ACK | tcp_flags::FIN, true),
                (Fast::Plain, tcp_flags::SYN, false),
                (Fast::Plain, tcp_flags::RST, false),
                (Fast::Plain, ACK | tcp_flags::RST, false),
                (Fast::No, ACK, false),
                (Fast::Any, tcp_flags::SYN, true),
                (Fast::Any, tcp_flags::RST, true),
            ] {
                let (nat, a, b) = table(class);
                let fwd = Forwarder::new(nat.shared(), vec![(A, None), (B, None)], offload);
                let mut f = frame(seg(a, b, flags));
                let before = f.clone();
                let got = fwd.forward(Out::Proc(0), &mut f);
                assert_eq!(got.is_some(), carried, "{class:?} flags {flags:#x}");
                if carried {
                    let off = if offload { vnet::HDR_LEN } else { 0 };
                    let s = wire::summarize(&f[off..]).unwrap();
                    assert_eq!((s.src, s.sport), (Ipv4Addr::new(172, 31, 1, 1), 2000));
                } else {
                    assert_eq!(f, before, "a frame left to the loop is unchanged");
                }
            }
        }
    }

    #[test]
    fn leaves_spoofed_unknown_and_non_tcp_frames_to_the_loop() {
        let (nat, a, b) = table(Fast::Plain);
        let fwd = Forwarder::new(nat.shared(), vec![(A, None), (B, None)], false);
        // A's segment read on B's TUN: not B's to send.
        assert_eq!(fwd.forward(Out::Proc(1), &mut seg(a, b, ACK)), None);
        // No rule.
        let other = SocketAddrV4::new(B, 81);
        assert_eq!(fwd.forward(Out::Proc(0), &mut seg(a, other, ACK)), None);
        // A TUN the forwarder does not know.
        assert_eq!(fwd.forward(Out::Proc(9), &mut seg(a, b, ACK)), None);
        // UDP, garbage, nothing.
        let mut udp = seg(a, b, ACK);
        udp[9] = 17;
        assert_eq!(fwd.forward(Out::Proc(0), &mut udp), None);
        assert_eq!(fwd.forward(Out::Proc(0), &mut [0x45, 0, 0]), None);
        assert_eq!(fwd.forward(Out::Proc(0), &mut []), None);
        // The server's segments go whatever their flags.
        assert_eq!(
            fwd.forward(Out::Proc(1), &mut seg(b, a, tcp_flags::RST)),
            Some(Out::Proxy)
        );
    }

    #[test]
    fn ipv6_needs_the_process_s_own_ipv6_address() {
        let (a, b) = (
            SocketAddrV6::new(A6, 1000, 0, 0),
            SocketAddrV6::new(B6, 80, 0, 0),
        );
        let mut nat = Nat::default();
        nat.insert(
            (a.into(), b.into()),
            Rule {
                src: SocketAddr::V6(a),
                dst: SocketAddr::V6(b),
                out: Out::Proc(1),
                conn: 1,
                fast: Fast::Plain,
            },
        );
        let with = Forwarder::new(nat.shared(), vec![(A, Some(A6)), (B, Some(B6))], false);
        assert_eq!(
            with.forward(Out::Proc(0), &mut seg6(a, b, ACK)),
            Some(Out::Proc(1))
        );
        // A session without IPv6: the loop counts and drops it.
        let without = Forwarder::new(nat.shared(), vec![(A, None), (B, None)], false);
        assert_eq!(without.forward(Out::Proc(0), &mut seg6(a, b, ACK)), None);
        // Rules change under the forwarder: it reads them as they are now.
        nat.remove(&(a.into(), b.into()), 1);
        assert_eq!(with.forward(Out::Proc(0), &mut seg6(a, b, ACK)), None);
    }
}
