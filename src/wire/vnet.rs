//! The `virtio_net_hdr` that precedes every packet on a TUN opened with `IFF_VNET_HDR`.
//!
//! Owns the 10-byte layout only; what the offload flags mean for checksums lives in
//! [`super::rewrite`] and [`super::complete_checksum`].
//!
//! ```text
//!  0        1          2          4          6            8             10
//! +--------+----------+----------+----------+------------+-------------+
//! | flags  | gso_type | hdr_len  | gso_size | csum_start | csum_offset |
//! +--------+----------+----------+----------+------------+-------------+
//! ```
//! The 16-bit fields are in native byte order (a TUN without `TUNSETVNETBE` on a little-endian
//! host, which is every host plg runs on). `csum_start` counts from the start of the IP packet.

/// Length of the header.
pub const HDR_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the L4 checksum field holds the pseudo-header sum only;
/// the sum over `csum_start..` must still be computed and stored at `csum_start + csum_offset`.
pub const NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was already verified.
pub const DATA_VALID: u8 = 2;

/// Not a GSO packet.
pub const GSO_NONE: u8 = 0;
/// TCP over IPv4, to be cut into `gso_size` segments.
pub const GSO_TCPV4: u8 = 1;
/// UDP fragmentation offload (legacy UFO).
pub const GSO_UDP: u8 = 3;
/// TCP over IPv6.
pub const GSO_TCPV6: u8 = 4;
/// UDP segmentation offload (USO).
pub const GSO_UDP_L4: u8 = 5;
/// Flag bit on `gso_type`: the TCP segments carry ECN CWR.
pub const GSO_ECN: u8 = 0x80;

mod field {
    use core::ops::Range;
    pub const FLAGS: usize = 0;
    pub const GSO_TYPE: usize = 1;
    pub const HDR_LEN: Range<usize> = 2..4;
    pub const GSO_SIZE: Range<usize> = 4..6;
    pub const CSUM_START: Range<usize> = 6..8;
    pub const CSUM_OFFSET: Range<usize> = 8..10;
}

/// One parsed `virtio_net_hdr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

fn ne16(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    u16::from_ne_bytes([b[r.start], b[r.start + 1]])
}

impl VnetHdr {
    /// Reads the header from the first [`HDR_LEN`] bytes; `None` if `b` is shorter.
    pub fn parse(b: &[u8]) -> Option<VnetHdr> {
        let b = b.get(..HDR_LEN)?;
        Some(VnetHdr {
            flags: b[field::FLAGS],
            gso_type: b[field::GSO_TYPE],
            hdr_len: ne16(b, field::HDR_LEN),
            gso_size: ne16(b, field::GSO_SIZE),
            csum_start: ne16(b, field::CSUM_START),
            csum_offset: ne16(b, field::CSUM_OFFSET),
        })
    }

    /// Writes the header into the first [`HDR_LEN`] bytes of `b`. Writes nothing if `b` is
    /// shorter (callers always pass a buffer they sized with `HDR_LEN`).
    pub fn emit(&self, b: &mut [u8]) {
        let Some(b) = b.get_mut(..HDR_LEN) else {
            return;
        };
        b[field::FLAGS] = self.flags;
        b[field::GSO_TYPE] = self.gso_type;
        b[field::HDR_LEN].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[field::GSO_SIZE].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[field::CSUM_START].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[field::CSUM_OFFSET].copy_from_slice(&self.csum_offset.to_ne_bytes());
    }

    /// True if the L4 checksum still has to be completed (see [`NEEDS_CSUM`]).
    pub fn needs_csum(&self) -> bool {
        self.flags & NEEDS_CSUM != 0
    }

    /// The GSO type without the ECN bit.
    pub fn gso_kind(&self) -> u8 {
        self.gso_type & !GSO_ECN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A TSO packet as Linux hands it over on x86-64: NEEDS_CSUM, TCPV4, hdr_len 66,
    // gso_size 1448, csum_start 20, csum_offset 16.
    fn bytes() -> [u8; HDR_LEN] {
        let mut b = [0u8; HDR_LEN];
        b[0] = NEEDS_CSUM;
        b[1] = GSO_TCPV4 | GSO_ECN;
        b[2..4].copy_from_slice(&66u16.to_ne_bytes());
        b[4..6].copy_from_slice(&1448u16.to_ne_bytes());
        b[6..8].copy_from_slice(&20u16.to_ne_bytes());
        b[8..10].copy_from_slice(&16u16.to_ne_bytes());
        b
    }

    fn repr() -> VnetHdr {
        VnetHdr {
            flags: NEEDS_CSUM,
            gso_type: GSO_TCPV4 | GSO_ECN,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 20,
            csum_offset: 16,
        }
    }

    #[test]
    fn deconstruct() {
        let h = VnetHdr::parse(&bytes()).unwrap();
        assert_eq!(h, repr());
        assert!(h.needs_csum());
        assert_eq!(h.gso_kind(), GSO_TCPV4);
    }

    #[test]
    fn construct() {
        let mut b = [0xaau8; HDR_LEN + 2];
        repr().emit(&mut b);
        assert_eq!(b[..HDR_LEN], bytes());
        assert_eq!(b[HDR_LEN..], [0xaa, 0xaa]);
    }

    #[test]
    fn truncated() {
        let b = bytes();
        for n in 0..HDR_LEN {
            assert_eq!(VnetHdr::parse(&b[..n]), None);
            let mut out = [0u8; HDR_LEN];
            repr().emit(&mut out[..n]);
            assert!(out.iter().all(|&x| x == 0));
        }
    }
}
