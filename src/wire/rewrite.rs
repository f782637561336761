//! Masquerading in place: new addresses and ports with incrementally updated checksums, and
//! completing a checksum the kernel left to the device (`NEEDS_CSUM`). This is the hot path:
//! no allocation, no full recomputation, O(1) in the packet size (except `complete_checksum`).

use std::net::SocketAddrV4;

use super::checksum;
use super::ipv4::{self, field as ip_field, Ipv4Packet};
use super::tcp::{self, TcpPacket};
use super::udp;

/// What the L4 checksum field of a packet holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsumMode {
    /// A complete checksum (offload off, or `DATA_VALID`).
    Full,
    /// virtio `NEEDS_CSUM` (Linux `CHECKSUM_PARTIAL`): the uncomplemented, folded sum of the
    /// pseudo-header only. The device finishes it over `csum_start..`, which covers the ports.
    Partial,
}

#[derive(Clone, Copy)]
enum L4 {
    /// Checksum field at this offset from the packet start.
    Tcp(usize),
    Udp(usize),
    Other,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Rewrites source and destination address and port of an IPv4 TCP or UDP packet in place
/// (other protocols and non-first fragments: addresses only).
///
/// The IP header checksum gets an RFC 1624 incremental update. The L4 checksum:
/// - [`CsumMode::Full`]: incremental update for the addresses (pseudo-header) and the ports.
///   A UDP checksum of 0 ("none") stays 0; a UDP result of 0 is stored as 0xFFFF. The result
///   is the one a full recomputation gives.
/// - [`CsumMode::Partial`]: update of the sum for the address change only: no ports, no
///   complement.
///
/// Returns false, leaving the packet untouched, unless `pkt` is a complete IPv4 packet (see
/// [`super::summarize`]) whose TCP or UDP header, if any, is complete. Never panics, never
/// allocates.
pub fn rewrite(pkt: &mut [u8], mode: CsumMode, src: SocketAddrV4, dst: SocketAddrV4) -> bool {
    let (hl, l4) = {
        let Some(ip) = Ipv4Packet::new_checked(pkt) else {
            return false;
        };
        let hl = ip.header_len();
        let l4 = match ip.protocol() {
            _ if ip.frag_offset() != 0 => L4::Other,
            ipv4::proto::TCP => {
                if TcpPacket::new_checked(ip.payload()).is_none() {
                    return false;
                }
                L4::Tcp(hl + tcp::field::CHECKSUM.start)
            }
            ipv4::proto::UDP => {
                if udp::UdpPacket::new_checked(ip.payload()).is_none() {
                    return false;
                }
                L4::Udp(hl + udp::field::CHECKSUM.start)
            }
            _ => L4::Other,
        };
        (hl, l4)
    };

    let old_src = be32(pkt, ip_field::SRC.start);
    let old_dst = be32(pkt, ip_field::DST.start);
    let new_src = u32::from(*src.ip());
    let new_dst = u32::from(*dst.ip());

    let mut c = be16(pkt, ip_field::CHECKSUM.start);
    c = checksum::update32(c, old_src, new_src);
    c = checksum::update32(c, old_dst, new_dst);
    put16(pkt, ip_field::CHECKSUM.start, c);
    pkt[ip_field::SRC].copy_from_slice(&src.ip().octets());
    pkt[ip_field::DST].copy_from_slice(&dst.ip().octets());

    let at = match l4 {
        L4::Other => return true,
        L4::Tcp(at) | L4::Udp(at) => at,
    };
    // Both headers start with the two ports.
    let old_sport = be16(pkt, hl);
    let old_dport = be16(pkt, hl + 2);
    let mut c = be16(pkt, at);
    match mode {
        CsumMode::Full => {
            if !(matches!(l4, L4::Udp(_)) && c == 0) {
                c = checksum::update32(c, old_src, new_src);
                c = checksum::update32(c, old_dst, new_dst);
                c = checksum::update(c, old_sport, src.port());
                c = checksum::update(c, old_dport, dst.port());
                // RFC 1624 eqn. 3 lands in 0..=0xFFFE like a full computation, so TCP gets the
                // very bytes a recomputation would; UDP must not send 0.
                if c == 0 && matches!(l4, L4::Udp(_)) {
                    c = 0xffff;
                }
            }
        }
        CsumMode::Partial => {
            c = checksum::update_sum32(c, old_src, new_src);
            c = checksum::update_sum32(c, old_dst, new_dst);
        }
    }
    put16(pkt, at, c);
    put16(pkt, hl, src.port());
    put16(pkt, hl + 2, dst.port());
    true
}

/// For a packet read with `NEEDS_CSUM`: sums `pkt[csum_start..]` (the field holds the
/// pseudo-header sum) and stores the final checksum at `csum_start + csum_offset`, so the bytes
/// are a valid packet. A result of 0 is stored as 0xFFFF (as Linux's `skb_checksum_help`
/// does) unless `pkt` is TCP (IPv4, or IPv6 without extension headers), where 0 is kept as a full computation gives it. `pkt` must end where
/// the packet ends. `csum_start`/`csum_offset` come from the [`super::vnet::VnetHdr`] and are
/// counted from the packet start. False (untouched) if the field is not inside `pkt`.
pub fn complete_checksum(pkt: &mut [u8], csum_start: usize, csum_offset: usize) -> bool {
    let Some(at) = csum_start.checked_add(csum_offset) else {
        return false;
    };
    if at.checked_add(2).is_none_or(|end| end > pkt.len()) {
        return false;
    }
    let sum = checksum::data(&pkt[csum_start..]);
    let is_tcp = (pkt.len() >= ipv4::HEADER_LEN
        && pkt[ip_field::VER_IHL] >> 4 == 4
        && pkt[ip_field::PROTOCOL] == ipv4::proto::TCP)
        || (pkt.len() >= super::ipv6::HEADER_LEN
            && pkt[0] >> 4 == 6
            && pkt[super::ipv6::field::NEXT_HEADER] == ipv4::proto::TCP);
    let c = if is_tcp {
        checksum::finish(sum)
    } else {
        checksum::finish_udp(sum)
    };
    put16(pkt, at, c);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tcp::{tcp_flags, tests::etherparse_verifies, TcpSegment};
    use crate::wire::{summarize, vnet};
    use std::net::Ipv4Addr;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            // splitmix64
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn addr(&mut self) -> SocketAddrV4 {
            SocketAddrV4::new(Ipv4Addr::from(self.next() as u32), self.next() as u16)
        }
        fn bytes(&mut self, max: usize) -> Vec<u8> {
            let n = (self.next() as usize) % (max + 1);
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    fn random_tcp(r: &mut Rng, opts: &[u8], payload: &[u8]) -> Vec<u8> {
        TcpSegment {
            src: r.addr(),
            dst: r.addr(),
            seq: r.next() as u32,
            ack: r.next() as u32,
            flags: r.next() as u8,
            window: r.next() as u16,
            options: opts,
            payload,
            ip_id: r.next() as u16,
        }
        .to_vec()
    }

    /// A UDP packet built by etherparse, so the input is independent of this crate.
    fn random_udp(r: &mut Rng, payload: &[u8]) -> Vec<u8> {
        let (s, d) = (r.addr(), r.addr());
        let mut v = Vec::new();
        etherparse::PacketBuilder::ipv4(s.ip().octets(), d.ip().octets(), 64)
            .udp(s.port(), d.port())
            .write(&mut v, payload)
            .unwrap();
        v
    }

    fn udp_verifies(pkt: &[u8]) -> bool {
        let (ip, rest) = etherparse::Ipv4Header::from_slice(pkt).unwrap();
        let (u, payload) = etherparse::UdpHeader::from_slice(rest).unwrap();
        ip.header_checksum == ip.calc_header_checksum()
            && u.checksum == u.calc_checksum_ipv4(&ip, payload).unwrap()
    }

    fn check_rewritten(pkt: &[u8], s: SocketAddrV4, d: SocketAddrV4) {
        let sum = summarize(pkt).unwrap();
        assert_eq!((sum.src, sum.sport), (*s.ip(), s.port()));
        assert_eq!((sum.dst, sum.dport), (*d.ip(), d.port()));
    }

    #[test]
    fn full_tcp_random() {
        let mut r = Rng(1);
        for i in 0..3000 {
            let opts = r.bytes(40);
            let payload = r.bytes(if i % 100 == 0 { 9000 } else { 64 });
            let mut p = random_tcp(&mut r, &opts, &payload);
            let before = p.clone();
            let (s, d) = (r.addr(), r.addr());
            assert!(rewrite(&mut p, CsumMode::Full, s, d));
            assert!(etherparse_verifies(&p), "case {i}");
            check_rewritten(&p, s, d);
            // Only addresses, ports and the two checksums changed.
            for (j, (a, b)) in before.iter().zip(&p).enumerate() {
                if !matches!(j, 10..=11 | 12..=19 | 20..=23 | 36..=37) {
                    assert_eq!(a, b, "byte {j}");
                }
            }
        }
    }

    #[test]
    fn full_udp_random() {
        let mut r = Rng(2);
        for i in 0..3000 {
            let payload = r.bytes(if i % 100 == 0 { 9000 } else { 64 });
            let mut p = random_udp(&mut r, &payload);
            let (s, d) = (r.addr(), r.addr());
            assert!(rewrite(&mut p, CsumMode::Full, s, d));
            assert!(udp_verifies(&p), "case {i}");
            check_rewritten(&p, s, d);
        }
    }

    #[test]
    fn udp_zero_checksum_stays_zero() {
        let mut r = Rng(3);
        let mut p = random_udp(&mut r, b"abc");
        p[26..28].copy_from_slice(&[0, 0]);
        let (s, d) = (r.addr(), r.addr());
        assert!(rewrite(&mut p, CsumMode::Full, s, d));
        assert_eq!(&p[26..28], &[0, 0]);
        let (ip, _) = etherparse::Ipv4Header::from_slice(&p).unwrap();
        assert_eq!(ip.header_checksum, ip.calc_header_checksum());
    }

    #[test]
    fn full_rewrite_reaching_checksum_zero() {
        // Pick the new source port that makes the sum 0xFFFF (checksum 0): rewriting with
        // port 0 gives c0 = !rest, so port c0 makes rest + c0 = 0xFFFF. UDP then stores 0xFFFF,
        // TCP 0, exactly what etherparse computes from scratch.
        let mut r = Rng(4);
        for (p, at) in [
            (random_udp(&mut r, b"zero"), 26),
            (random_tcp(&mut r, &[], b"zero"), 36),
        ] {
            let (s, d) = (r.addr(), r.addr());
            let mut q = p.clone();
            assert!(rewrite(
                &mut q,
                CsumMode::Full,
                SocketAddrV4::new(*s.ip(), 0),
                d
            ));
            let c0 = be16(&q, at);
            let mut q = p.clone();
            assert!(rewrite(
                &mut q,
                CsumMode::Full,
                SocketAddrV4::new(*s.ip(), c0),
                d
            ));
            assert_eq!(be16(&q, at), if at == 26 { 0xffff } else { 0 });
            assert!(if at == 26 {
                udp_verifies(&q)
            } else {
                etherparse_verifies(&q)
            });
        }
    }

    /// Turns a valid packet into what Linux hands a device under CHECKSUM_PARTIAL: the L4 field
    /// holds `~csum_tcpudp_magic(saddr, daddr, len, proto, 0)`, the folded pseudo-header sum.
    fn make_partial(p: &mut [u8], field_at: usize) {
        let ip = Ipv4Packet::new_checked(p).unwrap();
        let ph = checksum::pseudo_header(
            ip.src_addr(),
            ip.dst_addr(),
            ip.protocol(),
            ip.payload().len() as u16,
        );
        put16(p, field_at, ph);
    }

    #[test]
    fn partial_tcp_then_complete() {
        let mut r = Rng(5);
        for i in 0..2000 {
            let opts = r.bytes(40);
            // Up to GSO size: one 64 KiB super-packet now and then.
            let payload = r.bytes(if i % 200 == 0 { 65000 } else { 1500 });
            let mut p = random_tcp(&mut r, &opts, &payload);
            make_partial(&mut p, 36);
            let (s, d) = (r.addr(), r.addr());
            assert!(rewrite(&mut p, CsumMode::Partial, s, d));
            let ip_ok = Ipv4Packet::new_checked(&p).unwrap().verify_checksum();
            assert!(ip_ok, "ip header, case {i}");
            let h = vnet::VnetHdr {
                flags: vnet::NEEDS_CSUM,
                csum_start: 20,
                csum_offset: 16,
                ..Default::default()
            };
            assert!(complete_checksum(
                &mut p,
                usize::from(h.csum_start),
                usize::from(h.csum_offset)
            ));
            assert!(etherparse_verifies(&p), "case {i}");
            check_rewritten(&p, s, d);
        }
    }

    #[test]
    fn partial_udp_then_complete() {
        let mut r = Rng(6);
        for i in 0..2000 {
            let payload = r.bytes(1500);
            let mut p = random_udp(&mut r, &payload);
            make_partial(&mut p, 26);
            let (s, d) = (r.addr(), r.addr());
            assert!(rewrite(&mut p, CsumMode::Partial, s, d));
            assert!(complete_checksum(&mut p, 20, 6));
            assert!(udp_verifies(&p), "case {i}");
        }
    }

    #[test]
    fn partial_is_not_full() {
        // Guards the RELAY-NOTES trap: updating ports in Partial mode would be wrong.
        let mut r = Rng(7);
        let mut p = random_tcp(&mut r, &[], b"data");
        make_partial(&mut p, 36);
        let mut q = p.clone();
        let (s, d) = (r.addr(), r.addr());
        rewrite(&mut p, CsumMode::Partial, s, d);
        rewrite(&mut q, CsumMode::Full, s, d);
        complete_checksum(&mut p, 20, 16);
        complete_checksum(&mut q, 20, 16);
        assert!(etherparse_verifies(&p));
        assert!(!etherparse_verifies(&q));
    }

    #[test]
    fn other_protocols_addresses_only() {
        let mut v = Vec::new();
        etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .icmpv4_echo_request(0x1234, 1)
            .write(&mut v, b"ping")
            .unwrap();
        let icmp_before = v[20..].to_vec();
        let s = SocketAddrV4::new(Ipv4Addr::new(172, 31, 0, 1), 999);
        let d = SocketAddrV4::new(Ipv4Addr::new(10, 9, 9, 9), 999);
        assert!(rewrite(&mut v, CsumMode::Full, s, d));
        assert_eq!(&v[20..], &icmp_before[..]);
        let ip = Ipv4Packet::new_checked(&v).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.src_addr(), ip.dst_addr()), (*s.ip(), *d.ip()));
    }

    #[test]
    fn truncated_untouched() {
        let mut r = Rng(8);
        let tcp = random_tcp(&mut r, &[2, 4, 5, 0xb4], b"payload");
        let udp = random_udp(&mut r, b"payload");
        let (s, d) = (r.addr(), r.addr());
        for p in [tcp, udp] {
            for n in 0..p.len() {
                for mode in [CsumMode::Full, CsumMode::Partial] {
                    let mut q = p[..n].to_vec();
                    assert!(!rewrite(&mut q, mode, s, d), "prefix {n}");
                    assert_eq!(q, &p[..n]);
                }
            }
        }
    }

    #[test]
    fn complete_checksum_bounds() {
        let mut r = Rng(9);
        let p = random_tcp(&mut r, &[], b"x");
        for n in 0..38 {
            let mut q = p[..n].to_vec();
            assert!(!complete_checksum(&mut q, 20, 16));
            assert_eq!(q, &p[..n]);
        }
        let mut q = p.clone();
        assert!(!complete_checksum(&mut q, usize::MAX, 16));
        assert!(!complete_checksum(&mut q, 16, usize::MAX));
        make_partial(&mut q, 36);
        assert!(complete_checksum(&mut q, 20, 16));
        assert_eq!(q, p);
    }

    #[test]
    fn syn_rewrite_keeps_flags() {
        let mut r = Rng(10);
        let orig = random_tcp(&mut r, &[], &[]);
        let mut s = TcpSegment::parse(&orig).unwrap();
        s.flags = tcp_flags::SYN;
        let mut p = s.to_vec();
        let (a, b) = (r.addr(), r.addr());
        assert!(rewrite(&mut p, CsumMode::Full, a, b));
        assert_eq!(summarize(&p).unwrap().tcp.unwrap().flags, tcp_flags::SYN);
    }
}
