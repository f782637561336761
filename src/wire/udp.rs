//! UDP header: field layout and a checked view, and a datagram's addresses over either IP
//! family ([`view`]). plg forwards UDP as-is (only rewritten); the one datagram it builds is
//! a replayed answer ([`answer_like`]), IPv4 or IPv6.
//!
//! ```text
//! +-------------------------------+-------------------------------+
//! |          Source Port          |       Destination Port        |
//! +-------------------------------+-------------------------------+
//! |            Length             |           Checksum            |
//! +-------------------------------+-------------------------------+
//! ```
//! A checksum of 0 means "none" (RFC 768); a computed 0 is sent as 0xFFFF.

use super::ipv4::{self, Ipv4Packet};
use super::{checksum, dns, ipv6};
use std::net::{IpAddr, SocketAddr};

pub(crate) mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

pub const HEADER_LEN: usize = 8;

/// A view over a UDP datagram (the IPv4 payload) at least 8 bytes long. The length field is
/// reported, not trusted: with GSO it may not match the buffer.
#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<'a> {
    buf: &'a [u8],
}

impl<'a> UdpPacket<'a> {
    pub fn new_checked(buf: &'a [u8]) -> Option<UdpPacket<'a>> {
        (buf.len() >= HEADER_LEN).then_some(UdpPacket { buf })
    }
    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        u16::from_be_bytes([self.buf[r.start], self.buf[r.start + 1]])
    }
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }
    pub fn len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }
    pub fn is_empty(&self) -> bool {
        self.len() as usize <= HEADER_LEN
    }
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[HEADER_LEN..]
    }
}

/// True if the UDP checksum of a checked IPv4 packet carrying UDP verifies (or is 0, "none").
pub fn verify_checksum(ip: &Ipv4Packet<'_>) -> bool {
    let seg = ip.payload();
    let Some(udp) = UdpPacket::new_checked(seg) else {
        return false;
    };
    if udp.checksum() == 0 {
        return true;
    }
    let Ok(len) = u16::try_from(seg.len()) else {
        return false;
    };
    let ph = checksum::pseudo_header(ip.src_addr(), ip.dst_addr(), ipv4::proto::UDP, len);
    checksum::add(ph, checksum::data(seg)) == 0xffff
}

/// The longest prefix of a recorded answer's payload that echoes its recorded request (a DNS
/// transaction id, a request number) is at most this long.
pub const MAX_ECHO: usize = 16;

/// How many leading payload bytes `answer` echoes from `request` (at most [`MAX_ECHO`]).
pub fn echo_len(request: &[u8], answer: &[u8]) -> usize {
    request
        .iter()
        .zip(answer)
        .take(MAX_ECHO)
        .take_while(|(a, b)| a == b)
        .count()
}

/// Source, destination and payload of a complete, unfragmented UDP datagram over IPv4 or
/// IPv6 (extension headers walked; the payload ends where the IP packet says). `None` for
/// anything else, a fragment included, and for source port 0 (nothing can answer it).
/// Never panics.
pub fn view(ip: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    let (src, dst, l4) = if ip.first().map(|b| b >> 4) == Some(6) {
        let s = ipv6::summarize6(ip)?;
        if s.proto != ipv6::next_header::UDP {
            return None;
        }
        let l4 = ip.get(s.l4_offset..s.total_len)?;
        (IpAddr::V6(s.src), IpAddr::V6(s.dst), l4)
    } else {
        let p = Ipv4Packet::new_checked(ip)?;
        if p.protocol() != ipv4::proto::UDP || p.frag_offset() != 0 || p.more_frags() {
            return None;
        }
        (
            IpAddr::V4(p.src_addr()),
            IpAddr::V4(p.dst_addr()),
            p.payload(),
        )
    };
    let u = UdpPacket::new_checked(l4)?;
    if u.src_port() == 0 {
        return None;
    }
    Some((
        SocketAddr::new(src, u.src_port()),
        SocketAddr::new(dst, u.dst_port()),
        u.payload(),
    ))
}

/// Builds the answer to `live_request` from `recorded_answer`, both UDP datagrams over IPv4
/// or IPv6 ([`view`]): the recorded answer's payload, addressed back to the live request's
/// sender (addresses and ports swapped from the request), its first `echo` payload bytes
/// taken from the live request's payload (what the recorded answer echoed from its own
/// request, such as a DNS id), checksums computed afresh. The answer is of the live request's
/// family. When both are IPv4 it keeps the recorded IP header's fields (TTL, id, flags,
/// options); when both are IPv6 its traffic class, flow label and hop limit (extension
/// headers are not carried over); across families it is a plain datagram. `None` unless both
/// are complete unfragmented UDP datagrams (an IPv4 header of 20..60 bytes). Never panics.
pub fn answer_like(recorded_answer: &[u8], live_request: &[u8], echo: usize) -> Option<Vec<u8>> {
    let (req_src, req_dst, req_payload) = view(live_request)?;
    let (ans_src, _, ans_payload) = view(recorded_answer)?;
    let echo = echo
        .min(MAX_ECHO)
        .min(req_payload.len())
        .min(ans_payload.len());
    if let (SocketAddr::V4(_), SocketAddr::V4(_)) = (req_src, ans_src) {
        return answer_like4(recorded_answer, live_request, echo);
    }
    let mut payload = ans_payload.to_vec();
    payload[..echo].copy_from_slice(&req_payload[..echo]);
    match (req_dst, req_src) {
        (SocketAddr::V6(from), SocketAddr::V6(to)) => {
            let mut out = dns::datagram6(*from.ip(), from.port(), *to.ip(), to.port(), &payload)?;
            if ans_src.is_ipv6() {
                // Neither is covered by the checksum.
                out[ipv6::field::VER_TC_FL].copy_from_slice(&recorded_answer[..4]);
                out[ipv6::field::HOP_LIMIT] = recorded_answer[ipv6::field::HOP_LIMIT];
            }
            Some(out)
        }
        (SocketAddr::V4(from), SocketAddr::V4(to)) => {
            dns::datagram(*from.ip(), from.port(), *to.ip(), to.port(), &payload, 0)
        }
        _ => None,
    }
}

/// [`answer_like`] between two IPv4 datagrams: the recorded answer rewritten in place.
fn answer_like4(recorded_answer: &[u8], live_request: &[u8], echo: usize) -> Option<Vec<u8>> {
    let req = Ipv4Packet::new_checked(live_request)?;
    let ans = Ipv4Packet::new_checked(recorded_answer)?;
    let req_udp = UdpPacket::new_checked(req.payload())?;
    let hl = ans.header_len();
    let mut out = ans.as_bytes().get(..ans.total_len())?.to_vec();
    let len = out.len();
    if len < hl + HEADER_LEN {
        return None;
    }
    // Addresses and ports: back to whoever asked, from whom it asked.
    out[12..16].copy_from_slice(&req.dst_addr().octets());
    out[16..20].copy_from_slice(&req.src_addr().octets());
    out[hl..hl + 2].copy_from_slice(&req_udp.dst_port().to_be_bytes());
    out[hl + 2..hl + 4].copy_from_slice(&req_udp.src_port().to_be_bytes());
    let p = hl + HEADER_LEN;
    out.get_mut(p..p + echo)?
        .copy_from_slice(req_udp.payload().get(..echo)?);
    // IP header checksum over the header alone.
    out[10..12].copy_from_slice(&[0, 0]);
    let c = !checksum::data(&out[..hl]);
    out[10..12].copy_from_slice(&c.to_be_bytes());
    // UDP checksum over the pseudo-header and the datagram.
    let seg_len = u16::try_from(len - hl).ok()?;
    out[hl + 6..hl + 8].copy_from_slice(&[0, 0]);
    let ph = checksum::pseudo_header(req.dst_addr(), req.src_addr(), ipv4::proto::UDP, seg_len);
    let c = checksum::finish_udp(checksum::add(ph, checksum::data(&out[hl..])));
    out[hl + 6..hl + 8].copy_from_slice(&c.to_be_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 UDP datagram from `src:sport` to `dst:dport` with `payload` and valid checksums.
    fn dgram(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
        let total = 20 + 8 + payload.len();
        let mut p = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0];
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        let c = !checksum::data(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let ph = checksum::pseudo_header(src.into(), dst.into(), 17, (8 + payload.len()) as u16);
        let c = !checksum::add(ph, checksum::data(&p[20..]));
        p[26..28].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn a_recorded_dns_answer_is_readdressed_and_takes_the_live_id() {
        let client = [10, 0, 0, 3];
        let server = [10, 0, 0, 2];
        // Recorded: id 0xabcd from port 40000; answer echoes the id, flags differ.
        let rec_req = dgram(client, 40000, server, 53, b"\xab\xcd\x01\x00\x00\x01q");
        let rec_ans = dgram(server, 53, client, 40000, b"\xab\xcd\x81\x80\x00\x01a");
        let echo = echo_len(&rec_req[28..], &rec_ans[28..]);
        assert_eq!(echo, 2);
        // Live: id 0x1234 from port 51000.
        let live = dgram(client, 51000, server, 53, b"\x12\x34\x01\x00\x00\x01q");
        let out = answer_like(&rec_ans, &live, echo).unwrap();
        assert_eq!(
            out,
            dgram(server, 53, client, 51000, b"\x12\x34\x81\x80\x00\x01a")
        );
        let ip = Ipv4Packet::new_checked(&out).unwrap();
        assert!(ip.verify_checksum() && verify_checksum(&ip));
    }

    #[test]
    fn answer_like_refuses_what_is_not_udp() {
        let a = dgram([10, 0, 0, 2], 53, [10, 0, 0, 3], 1, b"x");
        let mut tcp = a.clone();
        tcp[9] = 6;
        assert!(answer_like(&a, &tcp, 0).is_none());
        assert!(answer_like(&tcp, &a, 0).is_none());
        for n in 0..a.len() {
            // Cut anywhere: refused or built, never a panic.
            let _ = answer_like(&a[..n], &a, 4);
            let _ = answer_like(&a, &a[..n], 4);
        }
    }

    /// An IPv6 UDP datagram with a valid checksum (built by etherparse, not by this crate).
    fn dgram6(src: &str, sport: u16, dst: &str, dport: u16, payload: &[u8]) -> Vec<u8> {
        let a = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap().octets();
        let mut p = Vec::new();
        etherparse::PacketBuilder::ipv6(a(src), a(dst), 61)
            .udp(sport, dport)
            .write(&mut p, payload)
            .unwrap();
        p
    }

    const C6: &str = "fd00:706c:67::3";
    const S6: &str = "fd00:706c:67::2";

    #[test]
    fn a_recorded_v6_answer_is_readdressed_with_a_valid_checksum() {
        let rec_req = dgram6(C6, 40000, S6, 53, b"\xab\xcd\x01\x00\x00\x01q");
        let mut rec_ans = dgram6(S6, 53, C6, 40000, b"\xab\xcd\x81\x80\x00\x01a");
        rec_ans[1] = 0x0a; // a flow label, kept
        let echo = echo_len(&rec_req[48..], &rec_ans[48..]);
        assert_eq!(echo, 2);
        let live = dgram6(C6, 51000, S6, 53, b"\x12\x34\x01\x00\x00\x01q");
        let out = answer_like(&rec_ans, &live, echo).unwrap();
        let mut want = dgram6(S6, 53, C6, 51000, b"\x12\x34\x81\x80\x00\x01a");
        want[1] = 0x0a;
        assert_eq!(out, want);
        assert!(ipv6::verify_l4_checksum(&out));
        let (ip, rest) = etherparse::Ipv6Header::from_slice(&out).unwrap();
        let (udp, payload) = etherparse::UdpHeader::from_slice(rest).unwrap();
        assert_eq!(udp.checksum, udp.calc_checksum_ipv6(&ip, payload).unwrap());
    }

    #[test]
    fn an_answer_recorded_over_one_family_is_played_over_the_other() {
        // Recorded over IPv4, asked over IPv6 now: a plain IPv6 datagram with the payload.
        let rec_ans = dgram([10, 0, 0, 2], 7, [10, 0, 0, 3], 40000, b"pong 1");
        let live = dgram6(C6, 51000, S6, 7, b"ping 2");
        let out = answer_like(&rec_ans, &live, 5).unwrap();
        let mut want = dgram6(S6, 7, C6, 51000, b"ping 1");
        want[7] = 64; // a fresh datagram's hop limit
        assert_eq!(out, want);
        assert!(ipv6::verify_l4_checksum(&out));
        // And the other way round.
        let rec_ans = dgram6(S6, 7, C6, 40000, b"pong");
        let live = dgram([10, 0, 0, 3], 51000, [10, 0, 0, 2], 7, b"ping");
        let out = answer_like(&rec_ans, &live, 0).unwrap();
        let (src, dst, payload) = view(&out).unwrap();
        assert_eq!(src, "10.0.0.2:7".parse().unwrap());
        assert_eq!(dst, "10.0.0.3:51000".parse().unwrap());
        assert_eq!(payload, b"pong");
        let ip = Ipv4Packet::new_checked(&out).unwrap();
        assert!(ip.verify_checksum() && verify_checksum(&ip));
    }

    #[test]
    fn view_reads_both_families_and_refuses_fragments() {
        let v4 = dgram([10, 0, 0, 3], 5000, [10, 0, 0, 2], 53, b"abc");
        let (src, dst, payload) = view(&v4).unwrap();
        assert_eq!((src.port(), dst.port(), payload), (5000, 53, &b"abc"[..]));
        let v6 = dgram6(C6, 5000, S6, 53, b"abc");
        let (src, dst, payload) = view(&v6).unwrap();
        assert_eq!(src, format!("[{C6}]:5000").parse().unwrap());
        assert_eq!((dst.port(), payload), (53, &b"abc"[..]));
        let mut frag = v4.clone();
        frag[6] = 0x20; // more fragments
        assert!(view(&frag).is_none());
        let mut frag6 = v6.clone();
        frag6[6] = 44; // a fragment header follows
        assert!(view(&frag6).is_none());
        let zero = dgram6(C6, 0, S6, 53, b"abc");
        assert!(view(&zero).is_none());
    }

    #[test]
    fn answer_like_never_panics_on_cut_or_mutated_v6() {
        let a = dgram6(S6, 53, C6, 1, b"answer");
        let q = dgram6(C6, 1, S6, 53, b"q");
        for n in 0..a.len() {
            let _ = answer_like(&a[..n], &q, 4);
            let _ = answer_like(&a, &q[..n.min(q.len())], 4);
        }
        for i in 0..a.len() {
            for v in [0u8, 0x44, 0xff] {
                let mut m = a.clone();
                m[i] = v;
                let _ = answer_like(&m, &q, 16);
                let _ = answer_like(&q, &m, 16);
            }
        }
    }

    static DGRAM: [u8; 12] = [0x13, 0x88, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, 1, 2, 3, 4];

    #[test]
    fn deconstruct() {
        let u = UdpPacket::new_checked(&DGRAM).unwrap();
        assert_eq!(u.src_port(), 5000);
        assert_eq!(u.dst_port(), 53);
        assert_eq!(u.len(), 12);
        assert!(!u.is_empty());
        assert_eq!(u.checksum(), 0);
        assert_eq!(u.payload(), &[1, 2, 3, 4]);
    }

    #[test]
    fn truncated() {
        for n in 0..HEADER_LEN {
            assert!(UdpPacket::new_checked(&DGRAM[..n]).is_none());
        }
    }
}
