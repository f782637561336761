//! IPv4 header: field layout, a checked read view, and the header writer the builders share.
//!
//! Owns the IPv4 header bytes only; the payload belongs to `tcp`, `udp` and `icmp`.
//!
//! ```text
//!  0               1               2               3
//! +-------+-------+---------------+-------------------------------+
//! |Version|  IHL  |      TOS      |          Total Length         |
//! +-------+-------+---------------+-----+-------------------------+
//! |        Identification         |Flags|     Fragment Offset     |
//! +---------------+---------------+-----+-------------------------+
//! |      TTL      |   Protocol    |        Header Checksum        |
//! +---------------+---------------+-------------------------------+
//! |                        Source Address                         |
//! +---------------------------------------------------------------+
//! |                     Destination Address                       |
//! +---------------------------------------------------------------+
//! |                    Options (IHL > 5)                          |
//! ```

use std::net::Ipv4Addr;

use super::checksum;

pub(crate) mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

/// IP protocol numbers plg cares about.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
}

const DONT_FRAG: u16 = 0x4000;
const MORE_FRAGS: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A read view over an IPv4 packet whose header has been checked: version 4, IHL >= 5, the
/// header fits in the total length and the total length fits in the buffer. Bytes past the
/// total length (padding) are ignored. Every getter is therefore panic-free.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<'a> {
    buf: &'a [u8],
}

impl<'a> Ipv4Packet<'a> {
    /// Checks the header; `None` for anything that is not a complete IPv4 packet.
    pub fn new_checked(buf: &'a [u8]) -> Option<Ipv4Packet<'a>> {
        let first = *buf.first()?;
        if first >> 4 != 4 {
            return None;
        }
        let header_len = usize::from(first & 0x0f) * 4;
        if header_len < HEADER_LEN || buf.len() < header_len {
            return None;
        }
        let total = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        if total < header_len || buf.len() < total {
            return None;
        }
        Some(Ipv4Packet { buf: &buf[..total] })
    }

    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        u16::from_be_bytes([self.buf[r.start], self.buf[r.start + 1]])
    }

    pub fn header_len(&self) -> usize {
        usize::from(self.buf[field::VER_IHL] & 0x0f) * 4
    }
    pub fn total_len(&self) -> usize {
        self.buf.len()
    }
    pub fn tos(&self) -> u8 {
        self.buf[field::TOS]
    }
    pub fn ident(&self) -> u16 {
        self.u16_at(field::IDENT)
    }
    pub fn dont_frag(&self) -> bool {
        self.u16_at(field::FLG_OFF) & DONT_FRAG != 0
    }
    pub fn more_frags(&self) -> bool {
        self.u16_at(field::FLG_OFF) & MORE_FRAGS != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> usize {
        usize::from(self.u16_at(field::FLG_OFF) & OFFSET_MASK) * 8
    }
    pub fn ttl(&self) -> u8 {
        self.buf[field::TTL]
    }
    pub fn protocol(&self) -> u8 {
        self.buf[field::PROTOCOL]
    }
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }
    pub fn src_addr(&self) -> Ipv4Addr {
        addr_at(self.buf, field::SRC.start)
    }
    pub fn dst_addr(&self) -> Ipv4Addr {
        addr_at(self.buf, field::DST.start)
    }
    /// True if the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.header()) == 0xffff
    }
    /// The header, options included.
    pub fn header(&self) -> &'a [u8] {
        &self.buf[..self.header_len()]
    }
    /// The payload, up to the total length.
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.header_len()..]
    }
    /// The packet, up to the total length.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }
}

pub(crate) fn addr_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// The fields of an option-less header the builders write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub payload_len: usize,
    pub ident: u16,
    pub ttl: u8,
}

impl Ipv4Repr {
    /// Parses the header of a checked packet (options are skipped, not kept).
    pub fn parse(p: &Ipv4Packet<'_>) -> Ipv4Repr {
        Ipv4Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.payload().len(),
            ident: p.ident(),
            ttl: p.ttl(),
        }
    }

    /// Writes a 20-byte header with DF set and a correct checksum into `b[..20]`.
    /// The caller guarantees `b.len() >= HEADER_LEN` and `HEADER_LEN + payload_len <= 65535`.
    pub(crate) fn emit(&self, b: &mut [u8]) {
        let total = (HEADER_LEN + self.payload_len) as u16;
        let b = &mut b[..HEADER_LEN];
        b[field::VER_IHL] = 0x45;
        b[field::TOS] = 0;
        b[field::LENGTH].copy_from_slice(&total.to_be_bytes());
        b[field::IDENT].copy_from_slice(&self.ident.to_be_bytes());
        b[field::FLG_OFF].copy_from_slice(&DONT_FRAG.to_be_bytes());
        b[field::TTL] = self.ttl;
        b[field::PROTOCOL] = self.protocol;
        b[field::CHECKSUM].copy_from_slice(&[0, 0]);
        b[field::SRC].copy_from_slice(&self.src.octets());
        b[field::DST].copy_from_slice(&self.dst.octets());
        let c = !checksum::data(b);
        b[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 10.0.0.1 -> 10.0.0.2, UDP, 4 payload bytes, ident 0x1234, DF, TTL 64.
    static PACKET: [u8; 24] = [
        0x45, 0x00, 0x00, 0x18, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x14, 0x9f, 0x0a, 0x00, 0x00,
        0x01, 0x0a, 0x00, 0x00, 0x02, 0xaa, 0xbb, 0xcc, 0xdd,
    ];

    fn repr() -> Ipv4Repr {
        Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol: proto::UDP,
            payload_len: 4,
            ident: 0x1234,
            ttl: 64,
        }
    }

    #[test]
    fn deconstruct() {
        let p = Ipv4Packet::new_checked(&PACKET).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 24);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(Ipv4Repr::parse(&p), repr());
        let e = etherparse::Ipv4HeaderSlice::from_slice(&PACKET).unwrap();
        assert_eq!(e.header_checksum(), e.to_header().calc_header_checksum());
    }

    #[test]
    fn construct() {
        let mut b = [0u8; 24];
        repr().emit(&mut b);
        b[20..].copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(b, PACKET);
    }

    #[test]
    fn truncated() {
        for n in 0..PACKET.len() {
            assert!(
                Ipv4Packet::new_checked(&PACKET[..n]).is_none(),
                "prefix {n}"
            );
        }
    }

    #[test]
    fn padding_ignored() {
        let mut b = PACKET.to_vec();
        b.extend_from_slice(&[0; 6]);
        let p = Ipv4Packet::new_checked(&b).unwrap();
        assert_eq!(p.payload().len(), 4);
    }

    #[test]
    fn malformed() {
        let mut b = PACKET;
        b[0] = 0x65; // version 6
        assert!(Ipv4Packet::new_checked(&b).is_none());
        b[0] = 0x44; // IHL 4
        assert!(Ipv4Packet::new_checked(&b).is_none());
        b[0] = 0x47; // IHL 7 > total length 24? no: 28 > 24
        assert!(Ipv4Packet::new_checked(&b).is_none());
        let mut b = PACKET;
        b[3] = 19; // total length below the header
        assert!(Ipv4Packet::new_checked(&b).is_none());
    }
}
