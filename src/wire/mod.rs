//! Packet views and rewriting: parses and builds IPv4, TCP, UDP and ICMP bytes, never does I/O.
//!
//! Rooms: [`checksum`] (RFC 1071 sums, RFC 1624 updates), [`vnet`] (the TUN's virtio header),
//! [`ipv4`], [`tcp`], [`udp`], [`icmp`] (layouts, checked views, builders), [`dns`] (the
//! answers plg gives at the gateway), `summary` (what the engine routes on) and `rewrite`
//! (masquerading in place, completing offloaded checksums); [`ipv6`] holds the same for IPv6
//! (view, extension-header walk, summary, rewrite, RST and ICMPv6 builders).
//! Everything here is a pure function over byte slices: no sockets, files, clocks or globals.
//!
//! # Contract
//! - **Nothing panics on any input bytes.** Every parser, [`summarize`], [`rewrite`],
//!   [`complete_checksum`], [`tcp_rst_for`], [`icmp_unreachable`] and [`dns::respond`] take
//!   arbitrary (truncated, malformed, hostile) bytes and answer `None`/`false`; `false` means
//!   the buffer is untouched.
//!   Views are built only through `new_checked`, so their getters cannot index out of bounds.
//! - The only panics are caller bugs in a builder, documented on it: [`TcpSegment::emit`] into
//!   a buffer shorter than [`TcpSegment::buffer_len`], options over 40 bytes, or a packet over
//!   65535 bytes.
//! - The hot path ([`summarize`], [`rewrite`], [`complete_checksum`], [`vnet`]) never allocates;
//!   the answer builders (RST, ICMP, [`TcpSegment::to_vec`]) return a fresh `Vec`.
//! - A packet is "complete" when its IPv4 total length fits in the buffer; bytes past the total
//!   length are ignored, except by [`complete_checksum`], which sums to the end of the slice.
//! - Checksums written here are the bytes a full recomputation gives (Linux, etherparse): UDP
//!   never 0 (0xFFFF instead) except a "no checksum" 0 that [`rewrite`] keeps; TCP may be 0.
//!
//! # Example
//! ```
//! use plg::wire::{rewrite, summarize, tcp_flags, CsumMode, TcpSegment};
//! use std::net::SocketAddrV4;
//!
//! let a: SocketAddrV4 = "10.1.0.2:40000".parse().unwrap();
//! let b: SocketAddrV4 = "10.2.0.2:80".parse().unwrap();
//! let seg = TcpSegment { src: a, dst: b, seq: 1, ack: 0, flags: tcp_flags::SYN, window: 65535,
//!                        options: &[2, 4, 5, 180], payload: &[], ip_id: 0 };
//! let mut pkt = seg.to_vec();
//! assert_eq!(TcpSegment::parse(&pkt), Some(seg));
//!
//! // Masquerade: the proxy's G:gport now talks to b.
//! let g: SocketAddrV4 = "172.31.0.1:51000".parse().unwrap();
//! assert!(rewrite(&mut pkt, CsumMode::Full, g, b));
//! let s = summarize(&pkt).unwrap();
//! assert_eq!((s.src, s.sport, s.tcp.unwrap().flags), (*g.ip(), 51000, tcp_flags::SYN));
//! assert_eq!(plg::wire::checksum::data(&pkt[..20]), 0xffff); // IP header still verifies
//! ```

pub mod checksum;
pub mod dns;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
mod rewrite;
mod summary;
pub mod tcp;
pub mod tls;
pub mod udp;
pub mod vnet;

pub use self::icmp::icmp_unreachable;
pub use self::rewrite::{complete_checksum, rewrite, CsumMode};
pub use self::summary::{summarize, Summary, TcpInfo};
pub use self::tcp::{tcp_flags, tcp_rst_for, TcpSegment};

#[cfg(test)]
mod tests {
    //! The contract: arbitrary bytes through every entry point, no panic, and `false` leaves
    //! the buffer untouched.
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn seeds() -> Vec<Vec<u8>> {
        let a = SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 2), 1234);
        let b = SocketAddrV4::new(Ipv4Addr::new(10, 2, 0, 2), 80);
        let tcp = TcpSegment {
            src: a,
            dst: b,
            seq: 5,
            ack: 6,
            flags: tcp_flags::SYN,
            window: 7,
            options: &[2, 4, 5, 180, 1, 3, 3, 7],
            payload: b"payload!!",
            ip_id: 8,
        }
        .to_vec();
        let mut udp = Vec::new();
        etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(53, 5353)
            .write(&mut udp, b"dns")
            .unwrap();
        let mut echo = Vec::new();
        etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .icmpv4_echo_request(1, 1)
            .write(&mut echo, b"ping")
            .unwrap();
        let err = icmp_unreachable(&tcp, Ipv4Addr::new(10, 2, 0, 1), 3).unwrap();
        vec![tcp, udp, echo, err]
    }

    #[test]
    fn no_panic_on_mutated_packets() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        let seeds = seeds();
        let s = SocketAddrV4::new(Ipv4Addr::new(172, 31, 0, 1), 4000);
        let d = SocketAddrV4::new(Ipv4Addr::new(10, 9, 0, 9), 4001);
        let mut parsed = 0;
        for _ in 0..20_000 {
            let mut p = seeds[r.below(seeds.len())].clone();
            for _ in 0..r.below(4) {
                let i = r.below(p.len());
                p[i] = r.next() as u8;
            }
            if r.below(4) == 0 {
                // Header fields that steer parsing: IHL, total length, data offset.
                let i = [0, 2, 3, 6, 9, 32][r.below(6)];
                if i < p.len() {
                    p[i] = r.next() as u8;
                }
            }
            if r.below(3) == 0 {
                p.truncate(r.below(p.len() + 1));
            }
            let sum = summarize(&p);
            parsed += usize::from(sum.is_some());
            let _ = TcpSegment::parse(&p);
            let _ = tcp_rst_for(&p);
            let _ = icmp_unreachable(&p, *s.ip(), 1);
            let _ = vnet::VnetHdr::parse(&p);
            let _ = dns::answer_datagram(&p, &dns::Zone::new());
            for mode in [CsumMode::Full, CsumMode::Partial] {
                let mut q = p.clone();
                let ok = rewrite(&mut q, mode, s, d);
                assert_eq!(ok, sum.is_some());
                if !ok {
                    assert_eq!(q, p);
                }
            }
            let mut q = p.clone();
            let (start, off) = (r.below(80), r.below(40));
            if !complete_checksum(&mut q, start, off) {
                assert_eq!(q, p);
            }
        }
        // Both outcomes were exercised.
        assert!((1000..19_000).contains(&parsed), "{parsed}");
    }

    #[test]
    fn ip_options_are_skipped() {
        // A TCP packet with a 4-byte IP option (NOP NOP NOP EOL), built by hand from a plain one.
        let mut p = seeds().remove(0);
        p.splice(20..20, [1, 1, 1, 0]);
        p[0] = 0x46;
        let total = p.len() as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[10..12].copy_from_slice(&[0, 0]);
        let c = !checksum::data(&p[..24]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let s = summarize(&p).unwrap();
        assert_eq!((s.ip_header_len, s.sport, s.dport), (24, 1234, 80));
        let g = SocketAddrV4::new(Ipv4Addr::new(172, 31, 0, 1), 4000);
        let b = SocketAddrV4::new(Ipv4Addr::new(10, 2, 0, 2), 80);
        assert!(rewrite(&mut p, CsumMode::Full, g, b));
        let ip = ipv4::Ipv4Packet::new_checked(&p).unwrap();
        assert!(ip.verify_checksum());
        assert!(tcp::verify_checksum(&ip));
        let rst = tcp_rst_for(&p).unwrap();
        let rst = TcpSegment::parse(&rst).unwrap();
        assert_eq!((rst.src, rst.dst), (b, g));
        assert_eq!(rst.ack, 5 + 9 + 1);
    }
}
