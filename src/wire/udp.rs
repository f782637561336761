//! UDP header: field layout and a checked view. plg forwards UDP as-is (only rewritten), so
//! there is no builder.
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

#[cfg(test)]
mod tests {
    use super::*;

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
