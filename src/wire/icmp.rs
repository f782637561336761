//! ICMPv4: the error kinds plg must recognise and the destination-unreachable it sends.
//! Echo and everything else is passed through untouched (only addresses are rewritten).
//!
//! ```text
//! +---------------+---------------+-------------------------------+
//! |     Type      |     Code      |           Checksum            |
//! +---------------+---------------+-------------------------------+
//! |            unused (next-hop MTU for code 4)                   |
//! +---------------------------------------------------------------+
//! |      original IP header + first 8 bytes of its payload        |
//! ```

use std::net::Ipv4Addr;

use super::checksum;
use super::ipv4::{self, Ipv4Packet, Ipv4Repr};

pub(crate) mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const REST: Range<usize> = 4..8;
}

pub const HEADER_LEN: usize = 8;

/// ICMP message types.
pub mod kind {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const SOURCE_QUENCH: u8 = 4;
    pub const REDIRECT: u8 = 5;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;
}

/// Destination-unreachable codes (RFC 792, RFC 1812).
pub mod unreachable {
    pub const NET: u8 = 0;
    pub const HOST: u8 = 1;
    pub const PROTOCOL: u8 = 2;
    pub const PORT: u8 = 3;
    pub const FRAG_NEEDED: u8 = 4;
    pub const NET_PROHIBITED: u8 = 9;
    pub const HOST_PROHIBITED: u8 = 10;
    pub const ADMIN_PROHIBITED: u8 = 13;
}

/// True for the ICMP types that report an error about another packet.
pub fn is_error(kind: u8) -> bool {
    matches!(
        kind,
        kind::DEST_UNREACHABLE
            | kind::SOURCE_QUENCH
            | kind::REDIRECT
            | kind::TIME_EXCEEDED
            | kind::PARAMETER_PROBLEM
    )
}

/// Bytes of the original datagram quoted past its IP header.
const QUOTE_PAYLOAD: usize = 8;

/// ICMP destination unreachable (type 3, `code`) from `from` to the packet's sender, quoting
/// the original IP header (options included) and up to 8 bytes of its payload. TTL 64, DF,
/// valid checksums.
///
/// `None` if `pkt` is not a complete IPv4 packet, is an ICMP error or an ICMP packet too short
/// to tell (never answer an error with an error), or per RFC 1122 3.2.2 is a non-first
/// fragment or comes from an address that cannot be answered (0.0.0.0, broadcast, multicast).
pub fn icmp_unreachable(pkt: &[u8], from: Ipv4Addr, code: u8) -> Option<Vec<u8>> {
    let ip = Ipv4Packet::new_checked(pkt)?;
    if ip.protocol() == ipv4::proto::ICMP {
        let t = *ip.payload().get(field::TYPE)?;
        if is_error(t) {
            return None;
        }
    }
    let src = ip.src_addr();
    if ip.frag_offset() != 0 || src.is_unspecified() || src.is_broadcast() || src.is_multicast() {
        return None;
    }
    let quote_len = ip.header_len() + ip.payload().len().min(QUOTE_PAYLOAD);
    let icmp_len = HEADER_LEN + quote_len;
    let mut out = vec![0u8; ipv4::HEADER_LEN + icmp_len];
    Ipv4Repr {
        src: from,
        dst: src,
        protocol: ipv4::proto::ICMP,
        payload_len: icmp_len,
        ident: 0,
        ttl: super::tcp::TTL,
    }
    .emit(&mut out);
    let m = &mut out[ipv4::HEADER_LEN..];
    m[field::TYPE] = kind::DEST_UNREACHABLE;
    m[field::CODE] = code;
    m[field::REST].fill(0);
    m[HEADER_LEN..].copy_from_slice(&ip.as_bytes()[..quote_len]);
    let c = !checksum::data(m);
    m[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    Some(out)
}

/// The packet an ICMP error quotes: its (source, destination, protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
}

/// For an ICMP error message (a whole IPv4 packet), the header of the packet it quotes.
/// `None` for anything else (not ICMP, not an error type, a quote cut short, a fragment).
pub fn error_quote(pkt: &[u8]) -> Option<Quoted> {
    let ip = Ipv4Packet::new_checked(pkt)?;
    if ip.protocol() != ipv4::proto::ICMP || ip.frag_offset() != 0 {
        return None;
    }
    let icmp = ip.payload();
    if !is_error(*icmp.get(field::TYPE)?) {
        return None;
    }
    let inner = icmp.get(HEADER_LEN..)?;
    // The quote holds at least the whole inner IPv4 header (RFC 792); its total length may
    // exceed what was quoted, so read the header fields directly.
    if inner.len() < ipv4::HEADER_LEN || inner[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(inner[0] & 0x0f) * 4;
    if ihl < ipv4::HEADER_LEN || inner.len() < ihl {
        return None;
    }
    let addr = |o: usize| Ipv4Addr::new(inner[o], inner[o + 1], inner[o + 2], inner[o + 3]);
    Some(Quoted {
        src: addr(12),
        dst: addr(16),
        protocol: inner[9],
    })
}

/// For an ICMP port unreachable (type 3, code 3; a whole IPv4 packet), what it quotes of the
/// packet it is about (the IP header and at least 8 bytes past it, RFC 792). `None` for
/// anything else.
pub fn port_unreachable_quote(pkt: &[u8]) -> Option<&[u8]> {
    let ip = Ipv4Packet::new_checked(pkt)?;
    if ip.protocol() != ipv4::proto::ICMP || ip.frag_offset() != 0 {
        return None;
    }
    let icmp = ip.payload();
    let head = icmp.get(..HEADER_LEN)?;
    if (head[field::TYPE], head[field::CODE]) != (kind::DEST_UNREACHABLE, unreachable::PORT) {
        return None;
    }
    Some(&icmp[HEADER_LEN..])
}

/// RFC 1122 3.2.2: no ICMP error is sent about a datagram for a broadcast or multicast
/// destination (the subnet's own broadcast address is for the caller to check).
pub fn may_answer_with_error(dst: Ipv4Addr) -> bool {
    !(dst.is_broadcast() || dst.is_multicast() || dst.is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tcp::{tcp_flags, TcpSegment};
    use std::net::SocketAddrV4;

    fn syn(payload: &[u8]) -> Vec<u8> {
        TcpSegment {
            src: SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 2), 40000),
            dst: SocketAddrV4::new(Ipv4Addr::new(10, 9, 0, 9), 80),
            seq: 1,
            ack: 0,
            flags: tcp_flags::SYN,
            window: 1000,
            options: &[],
            payload,
            ip_id: 3,
        }
        .to_vec()
    }

    #[test]
    fn construct_and_verify() {
        let orig = syn(b"0123456789");
        let from = Ipv4Addr::new(10, 9, 0, 1);
        let r = icmp_unreachable(&orig, from, unreachable::HOST).unwrap();
        assert_eq!(r.len(), 20 + 8 + 20 + 8);
        let e = etherparse::SlicedPacket::from_ip(&r).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = &e.net else {
            panic!("not ipv4")
        };
        let h = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert_eq!(h.source, from.octets());
        assert_eq!(h.destination, [10, 1, 0, 2]);
        assert_eq!(h.time_to_live, 64);
        let Some(etherparse::TransportSlice::Icmpv4(icmp)) = &e.transport else {
            panic!("not icmp")
        };
        assert_eq!(icmp.type_u8(), 3);
        assert_eq!(icmp.code_u8(), 1);
        assert_eq!(
            icmp.checksum(),
            icmp.icmp_type().calc_checksum(icmp.payload())
        );
        assert_eq!(icmp.payload(), &orig[..28]);
        assert!(Ipv4Packet::new_checked(&r).unwrap().verify_checksum());
        assert_eq!(checksum::data(&r[20..]), 0xffff);
    }

    #[test]
    fn short_payload_quoted_whole() {
        let orig = syn(&[]);
        let r = icmp_unreachable(&orig, Ipv4Addr::new(1, 2, 3, 4), unreachable::PORT).unwrap();
        assert_eq!(r.len(), 20 + 8 + 20 + 8); // only the first 8 of the 20 TCP header bytes
        let mut udp = orig[..20].to_vec();
        udp[9] = ipv4::proto::UDP;
        udp.extend_from_slice(&[0, 1, 0, 2, 0, 4]); // 6 bytes
        udp[3] = 26;
        let r = icmp_unreachable(&udp, Ipv4Addr::new(1, 2, 3, 4), unreachable::PORT).unwrap();
        assert_eq!(&r[28..], &udp[..]);
        assert_eq!(checksum::data(&r[20..]), 0xffff);
    }

    #[test]
    fn never_answer_an_error() {
        let orig = syn(b"x");
        let from = Ipv4Addr::new(10, 9, 0, 1);
        let err = icmp_unreachable(&orig, from, 1).unwrap();
        assert!(icmp_unreachable(&err, from, 1).is_none());
        // An echo request is answered.
        let mut echo = err.clone();
        echo[20] = kind::ECHO_REQUEST;
        assert!(icmp_unreachable(&echo, from, 1).is_some());
    }

    #[test]
    fn unanswerable_sources() {
        let mut orig = syn(b"x");
        orig[12..16].copy_from_slice(&[255, 255, 255, 255]);
        assert!(icmp_unreachable(&orig, Ipv4Addr::LOCALHOST, 1).is_none());
        let mut orig = syn(b"x");
        orig[6] = 0x00;
        orig[7] = 0x01; // fragment offset 8
        assert!(icmp_unreachable(&orig, Ipv4Addr::LOCALHOST, 1).is_none());
    }

    #[test]
    fn truncated() {
        let orig = syn(b"0123456789");
        for n in 0..orig.len() {
            assert!(icmp_unreachable(&orig[..n], Ipv4Addr::LOCALHOST, 1).is_none());
        }
        let err = icmp_unreachable(&orig, Ipv4Addr::LOCALHOST, 1).unwrap();
        for n in 0..err.len() {
            assert!(icmp_unreachable(&err[..n], Ipv4Addr::LOCALHOST, 1).is_none());
        }
    }

    #[test]
    fn quote_names_the_quoted_flow() {
        let orig = syn(b"0123456789");
        let r = icmp_unreachable(&orig, Ipv4Addr::new(10, 9, 0, 9), unreachable::PORT).unwrap();
        let q = error_quote(&r).unwrap();
        assert_eq!(q.src, Ipv4Addr::new(10, 1, 0, 2));
        assert_eq!(q.dst, Ipv4Addr::new(10, 9, 0, 9));
        assert_eq!(q.protocol, ipv4::proto::TCP);
        // Not an error: no quote. Cut short: no quote, no panic.
        assert_eq!(error_quote(&orig), None);
        for n in 0..r.len() {
            let _ = error_quote(&r[..n]);
        }
        assert_eq!(error_quote(&r[..20 + 8 + 19]), None);
    }

    #[test]
    fn a_port_unreachable_gives_its_quote() {
        let udp = {
            let mut p = Vec::new();
            etherparse::PacketBuilder::ipv4([10, 0, 0, 3], [10, 0, 0, 2], 64)
                .udp(5000, 53)
                .write(&mut p, b"query")
                .unwrap();
            p
        };
        let e = icmp_unreachable(&udp, Ipv4Addr::new(10, 0, 0, 2), unreachable::PORT).unwrap();
        // The IP header and the UDP header.
        assert_eq!(port_unreachable_quote(&e), Some(&udp[..28]));
        let other = icmp_unreachable(&udp, Ipv4Addr::new(10, 0, 0, 2), unreachable::HOST).unwrap();
        assert_eq!(port_unreachable_quote(&other), None);
        assert_eq!(port_unreachable_quote(&udp), None);
        for n in 0..e.len() {
            assert_eq!(port_unreachable_quote(&e[..n]), None);
        }
    }

    #[test]
    fn no_errors_about_broadcast_or_multicast() {
        assert!(!may_answer_with_error(Ipv4Addr::BROADCAST));
        assert!(!may_answer_with_error(Ipv4Addr::new(224, 0, 0, 251)));
        assert!(may_answer_with_error(Ipv4Addr::new(8, 8, 8, 8)));
    }
}
