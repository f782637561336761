//! UDP header: field layout and a checked view. plg forwards UDP as-is (only rewritten); the
//! one datagram it builds is a replayed answer ([`answer_like`]).
//!
//! ```text
//! +-------------------------------+-------------------------------+
//! |          Source Port          |       Destination Port        |
//! +-------------------------------+-------------------------------+
//! |            Length             |           Checksum            |
//! +-------------------------------+-------------------------------+
//! ```
//! A checksum of 0 means "none" (RFC 768); a computed 0 is sent as 0xFFFF.

use super::checksum;
use super::ipv4::{self, Ipv4Packet};

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

/// Builds the answer to `live_request` (an IPv4 UDP datagram) from `recorded_answer` (one too):
/// the recorded answer's IP header fields and payload, addressed back to the live request's
/// sender (addresses and ports swapped from the request), its first `echo` payload bytes taken
/// from the live request's payload (what the recorded answer echoed from its own request,
/// such as a DNS id), and both checksums computed afresh. `None` unless both are complete IPv4
/// UDP datagrams with a plain 20..60-byte header and unfragmented. Never panics.
pub fn answer_like(recorded_answer: &[u8], live_request: &[u8], echo: usize) -> Option<Vec<u8>> {
    let req = Ipv4Packet::new_checked(live_request)?;
    let ans = Ipv4Packet::new_checked(recorded_answer)?;
    if req.protocol() != ipv4::proto::UDP
        || ans.protocol() != ipv4::proto::UDP
        || req.frag_offset() != 0
        || ans.frag_offset() != 0
        || req.more_frags()
        || ans.more_frags()
    {
        return None;
    }
    let req_udp = UdpPacket::new_checked(req.payload())?;
    let ans_udp = UdpPacket::new_checked(ans.payload())?;
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
    let echo = echo
        .min(MAX_ECHO)
        .min(req_udp.payload().len())
        .min(ans_udp.payload().len());
    let p = hl + HEADER_LEN;
    out[p..p + echo].copy_from_slice(&req_udp.payload()[..echo]);
    // IP header checksum over the header alone.
    out[10..12].copy_from_slice(&[0, 0]);
    let c = !checksum::data(&out[..hl]);
    out[10..12].copy_from_slice(&c.to_be_bytes());
    // UDP checksum over the pseudo-header and the datagram.
    let seg_len = u16::try_from(len - hl).ok()?;
    out[hl + 6..hl + 8].copy_from_slice(&[0, 0]);
    let ph = checksum::pseudo_header(req.dst_addr(), req.src_addr(), ipv4::proto::UDP, seg_len);
    let mut c = !checksum::add(ph, checksum::data(&out[hl..]));
    if c == 0 {
        c = 0xffff;
    }
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
