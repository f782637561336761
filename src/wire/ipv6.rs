//! IPv6: the fixed header, the walk over extension headers to the transport header, the
//! one-pass summary the engine routes on, masquerading in place, and the answers plg makes
//! itself (TCP RST, ICMPv6 destination unreachable).
//!
//! ```text
//!  0      4      12     16            24            32 bits
//! +------+------+-------------------------------------+
//! | ver  |class |             flow label              |   0
//! +------+------+------+------------+-----------------+
//! |    payload length   | next header |   hop limit    |   4
//! +---------------------+-------------+----------------+
//! |                source address (16 bytes)           |   8
//! |             destination address (16 bytes)         |  24
//! +----------------------------------------------------+  40
//! ```
//!
//! Extension headers skipped on the way to TCP/UDP/ICMPv6: hop-by-hop options (0), routing
//! (43), destination options (60), at most [`MAX_EXT`] of them. A fragment header (44) stops
//! the walk: the packet is summarized with `proto` 44 and no ports, and the engine refuses it
//! (plg never reassembles). Same contract as the rest of `wire`: nothing panics on any bytes.

use std::net::{Ipv6Addr, SocketAddrV6};
use std::ops::Range;

use super::checksum;
use super::summary::TcpInfo;
use super::tcp::{self, TcpPacket};
use super::udp::UdpPacket;
use super::CsumMode;

pub mod field {
    use std::ops::Range;
    pub const VER_TC_FL: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

pub const HEADER_LEN: usize = 40;
/// Extension headers walked before giving up on finding the transport header.
pub const MAX_EXT: usize = 8;
/// The minimum IPv6 MTU: an ICMPv6 error never exceeds it (RFC 4443 2.4(c)).
pub const MIN_MTU: usize = 1280;

pub mod next_header {
    pub const HOP_BY_HOP: u8 = 0;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ICMPV6: u8 = 58;
    pub const NO_NEXT: u8 = 59;
    pub const DEST_OPTS: u8 = 60;
}

/// ICMPv6 types and destination-unreachable codes plg uses (RFC 4443, RFC 4861).
pub mod icmp6 {
    pub const DEST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAMETER_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    /// MLD queries/reports and Neighbour Discovery: link-local housekeeping, never relayed.
    pub const MLD_QUERY: u8 = 130;
    pub const ND_REDIRECT: u8 = 137;
    pub const MLDV2_REPORT: u8 = 143;
    pub const ADMIN_PROHIBITED: u8 = 1;
    pub const PORT_UNREACHABLE: u8 = 4;
}

/// A checked view of a complete IPv6 packet: version 6, the whole header, and the payload
/// length within the buffer.
#[derive(Clone, Copy, Debug)]
pub struct Ipv6Packet<'a> {
    buf: &'a [u8],
}

impl<'a> Ipv6Packet<'a> {
    pub fn new_checked(buf: &'a [u8]) -> Option<Ipv6Packet<'a>> {
        if buf.len() < HEADER_LEN || buf[0] >> 4 != 6 {
            return None;
        }
        let plen = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
        if HEADER_LEN + plen > buf.len() {
            return None;
        }
        Some(Ipv6Packet {
            buf: &buf[..HEADER_LEN + plen],
        })
    }
    pub fn next_header(&self) -> u8 {
        self.buf[field::NEXT_HEADER]
    }
    pub fn hop_limit(&self) -> u8 {
        self.buf[field::HOP_LIMIT]
    }
    pub fn src_addr(&self) -> Ipv6Addr {
        addr_at(self.buf, field::SRC)
    }
    pub fn dst_addr(&self) -> Ipv6Addr {
        addr_at(self.buf, field::DST)
    }
    /// Header plus payload: the packet without any bytes past its payload length.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }
    /// The upper-layer protocol and the offset of its header, past the extension headers
    /// (see the module header). `None` if an extension header is cut short or there are too
    /// many.
    pub fn upper_layer(&self) -> Option<(u8, usize)> {
        let mut nh = self.next_header();
        let mut off = HEADER_LEN;
        for _ in 0..=MAX_EXT {
            match nh {
                next_header::HOP_BY_HOP | next_header::ROUTING | next_header::DEST_OPTS => {
                    let h = self.buf.get(off..off + 2)?;
                    nh = h[0];
                    off = off.checked_add((usize::from(h[1]) + 1) * 8)?;
                    if off > self.buf.len() {
                        return None;
                    }
                }
                _ => return Some((nh, off)),
            }
        }
        None
    }
}

fn addr_at(b: &[u8], r: Range<usize>) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[r]);
    Ipv6Addr::from(o)
}

/// What the engine needs to route one IPv6 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// The upper-layer protocol (after extension headers); 44 for a fragment.
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub tcp: Option<TcpInfo>,
    /// Offset of the upper-layer header.
    pub l4_offset: usize,
    /// Header + payload length; the buffer may be longer, never shorter.
    pub total_len: usize,
    /// ICMPv6 type (0 unless ICMPv6).
    pub icmp_type: u8,
}

/// Summarizes an IPv6 packet; `None` when it is not a complete one, or its TCP/UDP header is
/// cut short.
pub fn summarize6(pkt: &[u8]) -> Option<Summary6> {
    let ip = Ipv6Packet::new_checked(pkt)?;
    let (proto, off) = ip.upper_layer()?;
    let l4 = &ip.as_bytes()[off..];
    let mut s = Summary6 {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        proto,
        sport: 0,
        dport: 0,
        tcp: None,
        l4_offset: off,
        total_len: ip.as_bytes().len(),
        icmp_type: 0,
    };
    match proto {
        next_header::TCP => {
            let t = TcpPacket::new_checked(l4)?;
            s.sport = t.src_port();
            s.dport = t.dst_port();
            s.tcp = Some(TcpInfo {
                flags: t.flags(),
                seq: t.seq(),
                ack: t.ack(),
                payload_len: t.payload().len(),
            });
        }
        next_header::UDP => {
            let u = UdpPacket::new_checked(l4)?;
            s.sport = u.src_port();
            s.dport = u.dst_port();
        }
        next_header::ICMPV6 => s.icmp_type = *l4.first()?,
        _ => {}
    }
    Some(s)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 8.1): addresses, upper-layer length, next header.
pub fn pseudo_header(src: Ipv6Addr, dst: Ipv6Addr, next: u8, l4_len: u32) -> u16 {
    let mut acc: u32 = 0;
    for w in src.segments().iter().chain(dst.segments().iter()) {
        acc += u32::from(*w);
    }
    acc += l4_len >> 16;
    acc += l4_len & 0xffff;
    acc += u32::from(next);
    checksum::fold(acc)
}

/// Rewrites the addresses and ports of an IPv6 TCP or UDP packet in place, updating the L4
/// checksum incrementally (IPv6 has no header checksum); the same [`CsumMode`] rules as the
/// IPv4 `rewrite`. ICMPv6 gets its addresses and checksum updated (its checksum covers the
/// pseudo-header); other protocols addresses only. False, untouched, unless `pkt` is a
/// complete IPv6 packet with a complete TCP/UDP header when it carries one.
pub fn rewrite6(pkt: &mut [u8], mode: CsumMode, src: SocketAddrV6, dst: SocketAddrV6) -> bool {
    let Some(s) = summarize6(pkt) else {
        return false;
    };
    let (old_src, old_dst) = (s.src.segments(), s.dst.segments());
    let (new_src, new_dst) = (src.ip().segments(), dst.ip().segments());
    pkt[field::SRC].copy_from_slice(&src.ip().octets());
    pkt[field::DST].copy_from_slice(&dst.ip().octets());
    let hl = s.l4_offset;
    let (at, ports, udp) = match s.proto {
        next_header::TCP => (hl + tcp::field::CHECKSUM.start, true, false),
        next_header::UDP => (hl + super::udp::field::CHECKSUM.start, true, true),
        next_header::ICMPV6 if pkt.len() >= hl + 4 => (hl + 2, false, false),
        _ => return true,
    };
    let mut c = u16::from_be_bytes([pkt[at], pkt[at + 1]]);
    let words = old_src
        .iter()
        .zip(new_src.iter())
        .chain(old_dst.iter().zip(new_dst.iter()));
    match mode {
        CsumMode::Full => {
            for (o, n) in words {
                c = checksum::update(c, *o, *n);
            }
            if ports {
                c = checksum::update(c, s.sport, src.port());
                c = checksum::update(c, s.dport, dst.port());
            }
            // UDP over IPv6 must carry a checksum, and never 0 (RFC 8200 8.1).
            if c == 0 && udp {
                c = 0xffff;
            }
        }
        CsumMode::Partial => {
            for (o, n) in words {
                c = checksum::update_sum(c, *o, *n);
            }
        }
    }
    pkt[at..at + 2].copy_from_slice(&c.to_be_bytes());
    if ports {
        pkt[hl..hl + 2].copy_from_slice(&src.port().to_be_bytes());
        pkt[hl + 2..hl + 4].copy_from_slice(&dst.port().to_be_bytes());
    }
    true
}

/// True if the TCP/UDP/ICMPv6 checksum of a complete IPv6 packet verifies.
pub fn verify_l4_checksum(pkt: &[u8]) -> bool {
    let Some(s) = summarize6(pkt) else {
        return false;
    };
    let l4 = &pkt[s.l4_offset..s.total_len];
    let ph = pseudo_header(s.src, s.dst, s.proto, l4.len() as u32);
    checksum::add(ph, checksum::data(l4)) == 0xffff
}

/// One IPv6+TCP packet to build (no extension headers, hop limit 64, flow label 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tcp6Segment<'a> {
    pub src: SocketAddrV6,
    pub dst: SocketAddrV6,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub options: &'a [u8],
    pub payload: &'a [u8],
}

impl<'a> Tcp6Segment<'a> {
    /// Parses a complete IPv6 packet carrying TCP (extension headers skipped; checksums not
    /// checked).
    pub fn parse(pkt: &'a [u8]) -> Option<Tcp6Segment<'a>> {
        let ip = Ipv6Packet::new_checked(pkt)?;
        let (proto, off) = ip.upper_layer()?;
        if proto != next_header::TCP {
            return None;
        }
        let t = TcpPacket::new_checked(&ip.as_bytes()[off..])?;
        Some(Tcp6Segment {
            src: SocketAddrV6::new(ip.src_addr(), t.src_port(), 0, 0),
            dst: SocketAddrV6::new(ip.dst_addr(), t.dst_port(), 0, 0),
            seq: t.seq(),
            ack: t.ack(),
            flags: t.flags(),
            window: t.window(),
            options: t.options(),
            payload: t.payload(),
        })
    }

    fn options_len(&self) -> usize {
        self.options.len().div_ceil(4) * 4
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + tcp::HEADER_LEN + self.options_len() + self.payload.len()
    }

    /// Writes the packet into `out[..buffer_len()]` with a valid TCP checksum.
    ///
    /// # Panics
    /// Only on caller bugs: `out` too short, options over 40 bytes, a payload length over 65535.
    pub fn emit(&self, out: &mut [u8]) {
        let len = self.buffer_len();
        assert!(
            self.options.len() <= tcp::MAX_OPTIONS_LEN,
            "TCP options over 40 bytes"
        );
        assert!(len - HEADER_LEN <= 65535, "IPv6 payload over 65535 bytes");
        assert!(out.len() >= len, "buffer shorter than buffer_len()");
        let out = &mut out[..len];
        let seg_len = len - HEADER_LEN;
        out[field::VER_TC_FL].copy_from_slice(&[0x60, 0, 0, 0]);
        out[field::PAYLOAD_LEN].copy_from_slice(&(seg_len as u16).to_be_bytes());
        out[field::NEXT_HEADER] = next_header::TCP;
        out[field::HOP_LIMIT] = tcp::TTL;
        out[field::SRC].copy_from_slice(&self.src.ip().octets());
        out[field::DST].copy_from_slice(&self.dst.ip().octets());
        let hdr_len = tcp::HEADER_LEN + self.options_len();
        let t = &mut out[HEADER_LEN..];
        t[tcp::field::SRC_PORT].copy_from_slice(&self.src.port().to_be_bytes());
        t[tcp::field::DST_PORT].copy_from_slice(&self.dst.port().to_be_bytes());
        t[tcp::field::SEQ].copy_from_slice(&self.seq.to_be_bytes());
        t[tcp::field::ACK].copy_from_slice(&self.ack.to_be_bytes());
        t[tcp::field::DATA_OFF] = ((hdr_len / 4) as u8) << 4;
        t[tcp::field::FLAGS] = self.flags;
        t[tcp::field::WINDOW].copy_from_slice(&self.window.to_be_bytes());
        t[tcp::field::CHECKSUM].copy_from_slice(&[0, 0]);
        t[tcp::field::URGENT].copy_from_slice(&[0, 0]);
        let opts = &mut t[tcp::HEADER_LEN..hdr_len];
        opts.fill(0);
        opts[..self.options.len()].copy_from_slice(self.options);
        t[hdr_len..].copy_from_slice(self.payload);
        let ph = pseudo_header(
            *self.src.ip(),
            *self.dst.ip(),
            next_header::TCP,
            seg_len as u32,
        );
        let c = checksum::finish(checksum::add(ph, checksum::data(t)));
        t[tcp::field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// The RST a host would answer to this IPv6 TCP segment (same rules as `tcp_rst_for`).
/// `None` if it is a RST itself or not a complete IPv6 TCP packet.
pub fn tcp6_rst_for(pkt: &[u8]) -> Option<Vec<u8>> {
    let seg = Tcp6Segment::parse(pkt)?;
    let (seq, ack, flags) = tcp::rst_answer(seg.flags, seg.seq, seg.ack, seg.payload.len())?;
    Some(
        Tcp6Segment {
            src: seg.dst,
            dst: seg.src,
            seq,
            ack,
            flags,
            window: 0,
            options: &[],
            payload: &[],
        }
        .to_vec(),
    )
}

/// True for an address an ICMPv6 error may be sent about: not multicast, not unspecified
/// (RFC 4443 2.4(e)).
pub fn may_answer_with_error(dst: Ipv6Addr, src: Ipv6Addr) -> bool {
    !dst.is_multicast() && !src.is_unspecified() && !src.is_multicast()
}

/// An ICMPv6 destination unreachable (`code`) from `from` to the sender of `pkt`, quoting as
/// much of `pkt` as fits in [`MIN_MTU`]. `None` if `pkt` is not a complete IPv6 packet, is
/// itself an ICMPv6 error (RFC 4443 2.4(e)), or went to or came from multicast.
pub fn icmp6_unreachable(pkt: &[u8], from: Ipv6Addr, code: u8) -> Option<Vec<u8>> {
    let s = summarize6(pkt).or_else(|| {
        // A packet whose TCP/UDP header is cut short still gets its error.
        let ip = Ipv6Packet::new_checked(pkt)?;
        Some(Summary6 {
            src: ip.src_addr(),
            dst: ip.dst_addr(),
            proto: 255,
            sport: 0,
            dport: 0,
            tcp: None,
            l4_offset: HEADER_LEN,
            total_len: ip.as_bytes().len(),
            icmp_type: 0,
        })
    })?;
    if !may_answer_with_error(s.dst, s.src) {
        return None;
    }
    if s.proto == next_header::ICMPV6 && s.icmp_type < 128 {
        return None;
    }
    let quote = &pkt[..s.total_len.min(MIN_MTU - HEADER_LEN - 8)];
    let l4_len = 8 + quote.len();
    let mut out = vec![0u8; HEADER_LEN + l4_len];
    out[field::VER_TC_FL].copy_from_slice(&[0x60, 0, 0, 0]);
    out[field::PAYLOAD_LEN].copy_from_slice(&(l4_len as u16).to_be_bytes());
    out[field::NEXT_HEADER] = next_header::ICMPV6;
    out[field::HOP_LIMIT] = 64;
    out[field::SRC].copy_from_slice(&from.octets());
    out[field::DST].copy_from_slice(&s.src.octets());
    out[HEADER_LEN] = icmp6::DEST_UNREACHABLE;
    out[HEADER_LEN + 1] = code;
    out[HEADER_LEN + 8..].copy_from_slice(quote);
    let ph = pseudo_header(from, s.src, next_header::ICMPV6, l4_len as u32);
    let c = checksum::finish(checksum::add(ph, checksum::data(&out[HEADER_LEN..])));
    out[HEADER_LEN + 2..HEADER_LEN + 4].copy_from_slice(&c.to_be_bytes());
    Some(out)
}

/// What an ICMPv6 error quotes: the addresses of the packet it is about, its protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quoted6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next_header: u8,
}

/// For an ICMPv6 error (types 1-4), the header of the packet it quotes; `None` for anything
/// else (informational messages, a quote shorter than an IPv6 header).
pub fn error_quote6(pkt: &[u8]) -> Option<Quoted6> {
    let s = summarize6(pkt)?;
    if s.proto != next_header::ICMPV6 || !(1..=4).contains(&s.icmp_type) {
        return None;
    }
    let q = pkt.get(s.l4_offset + 8..s.total_len)?;
    if q.len() < HEADER_LEN || q[0] >> 4 != 6 {
        return None;
    }
    Some(Quoted6 {
        src: addr_at(q, field::SRC),
        dst: addr_at(q, field::DST),
        next_header: q[field::NEXT_HEADER],
    })
}

/// For an ICMPv6 port unreachable (type 1, code 4), what it quotes of the packet it is about
/// (as much as fitted in the minimum MTU). `None` for anything else.
pub fn port_unreachable_quote6(pkt: &[u8]) -> Option<&[u8]> {
    let s = summarize6(pkt)?;
    if s.proto != next_header::ICMPV6 {
        return None;
    }
    let icmp = &pkt[s.l4_offset..s.total_len];
    let head = icmp.get(..8)?;
    if (head[0], head[1]) != (icmp6::DEST_UNREACHABLE, icmp6::PORT_UNREACHABLE) {
        return None;
    }
    Some(&icmp[8..])
}

/// Link-local housekeeping that must never be relayed or recorded: anything to or from a
/// multicast or link-local address (MLD, Neighbour Discovery, router solicitations), and
/// ICMPv6 ND/MLD messages (types 130..=143) wherever they go.
pub fn is_link_housekeeping(s: &Summary6) -> bool {
    let link_local = |a: &Ipv6Addr| a.segments()[0] & 0xffc0 == 0xfe80;
    s.dst.is_multicast()
        || link_local(&s.dst)
        || link_local(&s.src)
        || s.src.is_unspecified()
        || (s.proto == next_header::ICMPV6
            && (icmp6::MLD_QUERY..=icmp6::MLDV2_REPORT).contains(&s.icmp_type))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tcp::tcp_flags;

    fn a(s: &str) -> SocketAddrV6 {
        s.parse().unwrap()
    }

    fn seg(payload: &[u8]) -> Vec<u8> {
        Tcp6Segment {
            src: a("[fd00:706c:67::2]:40000"),
            dst: a("[fd00:706c:67::3]:80"),
            seq: 1000,
            ack: 0,
            flags: tcp_flags::SYN,
            window: 65535,
            options: &[2, 4, 5, 160],
            payload,
        }
        .to_vec()
    }

    /// etherparse checks the TCP checksum independently of this crate.
    fn etherparse_ok(pkt: &[u8]) -> bool {
        let (ip, rest) = etherparse::Ipv6Header::from_slice(pkt).unwrap();
        let (tcp, payload) = etherparse::TcpHeader::from_slice(rest).unwrap();
        tcp.checksum == tcp.calc_checksum_ipv6(&ip, payload).unwrap()
    }

    #[test]
    fn build_parse_round_trip() {
        let p = seg(b"hello");
        assert!(etherparse_ok(&p));
        assert!(verify_l4_checksum(&p));
        let s = Tcp6Segment::parse(&p).unwrap();
        assert_eq!(s.payload, b"hello");
        assert_eq!(s.dst, a("[fd00:706c:67::3]:80"));
        let sum = summarize6(&p).unwrap();
        assert_eq!(
            (sum.proto, sum.sport, sum.dport, sum.l4_offset),
            (6, 40000, 80, 40)
        );
        assert_eq!(sum.tcp.unwrap().payload_len, 5);
    }

    #[test]
    fn rewrite_keeps_checksums_valid() {
        let mut p = seg(b"some payload");
        let f = a("[fd00:706c:67:ffff::1234]:5000");
        let l = a("[fd00:706c:67:ffff::1]:1");
        assert!(rewrite6(&mut p, CsumMode::Full, f, l));
        assert!(etherparse_ok(&p));
        let s = summarize6(&p).unwrap();
        assert_eq!(
            (s.src, s.sport, s.dst, s.dport),
            (*f.ip(), 5000, *l.ip(), 1)
        );
        // Partial: the field holds the pseudo-header sum, updated for the addresses only.
        let mut p = seg(b"x");
        let ph = pseudo_header(
            "fd00:706c:67::2".parse().unwrap(),
            "fd00:706c:67::3".parse().unwrap(),
            6,
            (p.len() - HEADER_LEN) as u32,
        );
        p[HEADER_LEN + 16..HEADER_LEN + 18].copy_from_slice(&ph.to_be_bytes());
        assert!(rewrite6(&mut p, CsumMode::Partial, f, l));
        let want = pseudo_header(*f.ip(), *l.ip(), 6, (p.len() - HEADER_LEN) as u32);
        assert_eq!(u16::from_be_bytes([p[56], p[57]]), want);
    }

    #[test]
    fn hop_by_hop_is_skipped() {
        let mut p = seg(b"abc");
        // Insert an 8-byte hop-by-hop header (PadN) before TCP.
        p.splice(HEADER_LEN..HEADER_LEN, [6, 0, 1, 4, 0, 0, 0, 0]);
        p[field::NEXT_HEADER] = 0;
        let plen = (p.len() - HEADER_LEN) as u16;
        p[4..6].copy_from_slice(&plen.to_be_bytes());
        let s = summarize6(&p).unwrap();
        assert_eq!((s.proto, s.l4_offset, s.dport), (6, 48, 80));
        assert!(verify_l4_checksum(&p));
        let rst = tcp6_rst_for(&p).unwrap();
        assert!(etherparse_ok(&rst));
        // A fragment header stops the walk: no ports, proto 44.
        p[HEADER_LEN] = 44;
        p[field::NEXT_HEADER] = 44;
        let s = summarize6(&p).unwrap();
        assert_eq!((s.proto, s.sport), (44, 0));
    }

    #[test]
    fn rst_answers_a_syn() {
        let rst = tcp6_rst_for(&seg(b"")).unwrap();
        let r = Tcp6Segment::parse(&rst).unwrap();
        assert_eq!(r.flags, tcp_flags::RST | tcp_flags::ACK);
        assert_eq!((r.seq, r.ack), (0, 1001));
        assert_eq!(r.src, a("[fd00:706c:67::3]:80"));
        assert!(etherparse_ok(&rst));
        assert!(tcp6_rst_for(&rst).is_none());
    }

    #[test]
    fn unreachable_quotes_and_verifies() {
        let mut udp = Vec::new();
        etherparse::PacketBuilder::ipv6(
            "fd00:706c:67::2".parse::<Ipv6Addr>().unwrap().octets(),
            "fd00:1::9".parse::<Ipv6Addr>().unwrap().octets(),
            64,
        )
        .udp(5000, 53)
        .write(&mut udp, &[7u8; 2000])
        .unwrap();
        let gw: Ipv6Addr = "fd00:706c:67::1".parse().unwrap();
        let e = icmp6_unreachable(&udp, gw, icmp6::ADMIN_PROHIBITED).unwrap();
        assert_eq!(e.len(), MIN_MTU);
        assert!(verify_l4_checksum(&e));
        let q = error_quote6(&e).unwrap();
        assert_eq!(q.next_header, 17);
        assert_eq!(q.dst, "fd00:1::9".parse::<Ipv6Addr>().unwrap());
        // Never an error about an error.
        assert!(icmp6_unreachable(&e, gw, 1).is_none());
    }

    #[test]
    fn a_port_unreachable_gives_its_quote() {
        let q = seg(b"x");
        let gw: Ipv6Addr = "fd00:706c:67::3".parse().unwrap();
        let e = icmp6_unreachable(&q, gw, icmp6::PORT_UNREACHABLE).unwrap();
        assert_eq!(port_unreachable_quote6(&e), Some(&q[..]));
        let other = icmp6_unreachable(&q, gw, icmp6::ADMIN_PROHIBITED).unwrap();
        assert_eq!(port_unreachable_quote6(&other), None);
        assert_eq!(port_unreachable_quote6(&q), None);
        for n in 0..e.len() {
            assert_eq!(port_unreachable_quote6(&e[..n]), None);
        }
    }

    #[test]
    fn no_panic_on_mutations() {
        let seeds = [seg(b"payload"), tcp6_rst_for(&seg(b"")).unwrap()];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut p = seeds[(next() % 2) as usize].clone();
            for _ in 0..next() % 4 {
                let i = (next() as usize) % p.len();
                p[i] = next() as u8;
            }
            if next() % 3 == 0 {
                let n = (next() as usize) % (p.len() + 1);
                p.truncate(n);
            }
            let s = summarize6(&p);
            let _ = tcp6_rst_for(&p);
            let _ = icmp6_unreachable(&p, Ipv6Addr::LOCALHOST, 1);
            let _ = error_quote6(&p);
            let _ = port_unreachable_quote6(&p);
            let mut q = p.clone();
            let ok = rewrite6(&mut q, CsumMode::Full, a("[::1]:1"), a("[::2]:2"));
            assert_eq!(ok, s.is_some());
            if !ok {
                assert_eq!(q, p);
            }
        }
    }
}
