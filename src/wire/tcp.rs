//! TCP header: field layout, a checked view, the segment builder and the RST a host would send.
//!
//! Owns TCP header bytes and the TCP checksum; knows IPv4 only through [`super::ipv4`].
//!
//! ```text
//!  0               1               2               3
//! +-------------------------------+-------------------------------+
//! |          Source Port          |       Destination Port        |
//! +-------------------------------+-------------------------------+
//! |                        Sequence Number                        |
//! +---------------------------------------------------------------+
//! |                    Acknowledgment Number                      |
//! +-------+-------+---------------+-------------------------------+
//! |  Data |       |C|E|U|A|P|R|S|F|                               |
//! | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//! +-------+-------+---------------+-------------------------------+
//! |           Checksum            |         Urgent Pointer        |
//! +-------------------------------+-------------------------------+
//! |                    Options (Data Offset > 5)                  |
//! ```

use std::net::SocketAddrV4;

use super::checksum;
use super::ipv4::{self, Ipv4Packet, Ipv4Repr};

pub(crate) mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Longest options field (data offset 15).
pub const MAX_OPTIONS_LEN: usize = 40;

/// The flag bits of byte 13.
pub mod tcp_flags {
    pub const FIN: u8 = 1;
    pub const SYN: u8 = 2;
    pub const RST: u8 = 4;
    pub const PSH: u8 = 8;
    pub const ACK: u8 = 16;
    pub const URG: u8 = 32;
    pub const ECE: u8 = 64;
    pub const CWR: u8 = 128;
}

/// A view over a TCP segment (the IPv4 payload) whose header has been checked: at least 20
/// bytes, data offset >= 5 and the whole header present. Getters never panic.
#[derive(Debug, Clone, Copy)]
pub struct TcpPacket<'a> {
    buf: &'a [u8],
}

impl<'a> TcpPacket<'a> {
    pub fn new_checked(buf: &'a [u8]) -> Option<TcpPacket<'a>> {
        let off = usize::from(*buf.get(field::DATA_OFF)? >> 4) * 4;
        if buf.len() < HEADER_LEN || off < HEADER_LEN || buf.len() < off {
            return None;
        }
        Some(TcpPacket { buf })
    }
    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        u16::from_be_bytes([self.buf[r.start], self.buf[r.start + 1]])
    }
    fn u32_at(&self, r: core::ops::Range<usize>) -> u32 {
        let b = &self.buf[r];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }
    pub fn seq(&self) -> u32 {
        self.u32_at(field::SEQ)
    }
    pub fn ack(&self) -> u32 {
        self.u32_at(field::ACK)
    }
    pub fn header_len(&self) -> usize {
        usize::from(self.buf[field::DATA_OFF] >> 4) * 4
    }
    pub fn flags(&self) -> u8 {
        self.buf[field::FLAGS]
    }
    pub fn window(&self) -> u16 {
        self.u16_at(field::WINDOW)
    }
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }
    pub fn urgent(&self) -> u16 {
        self.u16_at(field::URGENT)
    }
    pub fn options(&self) -> &'a [u8] {
        &self.buf[HEADER_LEN..self.header_len()]
    }
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.header_len()..]
    }
}

/// True if the TCP checksum of a checked IPv4 packet carrying TCP verifies.
pub fn verify_checksum(ip: &Ipv4Packet<'_>) -> bool {
    let seg = ip.payload();
    let Ok(len) = u16::try_from(seg.len()) else {
        return false;
    };
    let ph = checksum::pseudo_header(ip.src_addr(), ip.dst_addr(), ipv4::proto::TCP, len);
    checksum::add(ph, checksum::data(seg)) == 0xffff
}

/// One complete IPv4+TCP packet to build (or parsed back, see [`TcpSegment::parse`]).
///
/// `options` is padded with zeros (end of option list) to a multiple of 4 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub options: &'a [u8],
    pub payload: &'a [u8],
    pub ip_id: u16,
}

/// TTL of every packet plg builds.
pub const TTL: u8 = 64;

impl<'a> TcpSegment<'a> {
    /// Parses a complete IPv4 packet carrying TCP (checksums are not checked; fragments and
    /// anything else are `None`). Round-trips with [`TcpSegment::emit`] for option-less IP headers
    /// with TTL 64 and DF.
    pub fn parse(pkt: &'a [u8]) -> Option<TcpSegment<'a>> {
        let ip = Ipv4Packet::new_checked(pkt)?;
        if ip.protocol() != ipv4::proto::TCP || ip.frag_offset() != 0 || ip.more_frags() {
            return None;
        }
        let tcp = TcpPacket::new_checked(ip.payload())?;
        Some(TcpSegment {
            src: SocketAddrV4::new(ip.src_addr(), tcp.src_port()),
            dst: SocketAddrV4::new(ip.dst_addr(), tcp.dst_port()),
            seq: tcp.seq(),
            ack: tcp.ack(),
            flags: tcp.flags(),
            window: tcp.window(),
            options: tcp.options(),
            payload: tcp.payload(),
            ip_id: ip.ident(),
        })
    }

    fn options_len(&self) -> usize {
        self.options.len().div_ceil(4) * 4
    }

    /// Bytes [`TcpSegment::emit`] writes: IPv4 header + TCP header + padded options + payload.
    pub fn buffer_len(&self) -> usize {
        ipv4::HEADER_LEN + HEADER_LEN + self.options_len() + self.payload.len()
    }

    /// Writes the packet into `out[..buffer_len()]`, with DF, TTL 64 and both checksums.
    ///
    /// # Panics
    /// Only on caller bugs, never on data: `out` shorter than [`TcpSegment::buffer_len`],
    /// `options` longer than [`MAX_OPTIONS_LEN`], or `buffer_len()` over 65535.
    pub fn emit(&self, out: &mut [u8]) {
        let len = self.buffer_len();
        assert!(
            self.options.len() <= MAX_OPTIONS_LEN,
            "TCP options over 40 bytes"
        );
        assert!(len <= 65535, "IPv4 packet over 65535 bytes");
        assert!(out.len() >= len, "buffer shorter than buffer_len()");
        let out = &mut out[..len];
        let seg_len = len - ipv4::HEADER_LEN;
        Ipv4Repr {
            src: *self.src.ip(),
            dst: *self.dst.ip(),
            protocol: ipv4::proto::TCP,
            payload_len: seg_len,
            ident: self.ip_id,
            ttl: TTL,
        }
        .emit(out);

        let hdr_len = HEADER_LEN + self.options_len();
        let t = &mut out[ipv4::HEADER_LEN..];
        t[field::SRC_PORT].copy_from_slice(&self.src.port().to_be_bytes());
        t[field::DST_PORT].copy_from_slice(&self.dst.port().to_be_bytes());
        t[field::SEQ].copy_from_slice(&self.seq.to_be_bytes());
        t[field::ACK].copy_from_slice(&self.ack.to_be_bytes());
        t[field::DATA_OFF] = ((hdr_len / 4) as u8) << 4;
        t[field::FLAGS] = self.flags;
        t[field::WINDOW].copy_from_slice(&self.window.to_be_bytes());
        t[field::CHECKSUM].copy_from_slice(&[0, 0]);
        t[field::URGENT].copy_from_slice(&[0, 0]);
        let opts = &mut t[HEADER_LEN..hdr_len];
        opts.fill(0);
        opts[..self.options.len()].copy_from_slice(self.options);
        t[hdr_len..].copy_from_slice(self.payload);

        let ph = checksum::pseudo_header(
            *self.src.ip(),
            *self.dst.ip(),
            ipv4::proto::TCP,
            seg_len as u16,
        );
        let c = checksum::finish(checksum::add(ph, checksum::data(t)));
        t[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }

    /// [`TcpSegment::emit`] into a new vector of exactly [`TcpSegment::buffer_len`] bytes.
    /// Panics on the same caller bugs as `emit`.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// The (seq, ack, flags) of the RST answering a segment with these fields (RFC 793, "Reset
/// Generation"), either IP family; `None` for a RST, which is never answered.
pub fn rst_answer(flags: u8, seq: u32, ack: u32, payload_len: usize) -> Option<(u32, u32, u8)> {
    if flags & tcp_flags::RST != 0 {
        return None;
    }
    if flags & tcp_flags::ACK != 0 {
        return Some((ack, 0, tcp_flags::RST));
    }
    let len = payload_len as u32
        + u32::from(flags & tcp_flags::SYN != 0)
        + u32::from(flags & tcp_flags::FIN != 0);
    Some((0, seq.wrapping_add(len), tcp_flags::RST | tcp_flags::ACK))
}

/// The RST a host would answer to this TCP segment (RFC 793, "Reset Generation"): if the
/// segment has ACK, a RST with seq = its ack; otherwise RST|ACK with seq 0 and
/// ack = seq + payload length + SYN + FIN. Addresses and ports swapped, TTL 64, ip id 0,
/// valid checksums. `None` if the segment is a RST itself or not a complete IPv4 TCP packet.
pub fn tcp_rst_for(pkt: &[u8]) -> Option<Vec<u8>> {
    let seg = TcpSegment::parse(pkt)?;
    let (seq, ack, flags) = rst_answer(seg.flags, seg.seq, seg.ack, seg.payload.len())?;
    Some(
        TcpSegment {
            src: seg.dst,
            dst: seg.src,
            seq,
            ack,
            flags,
            window: 0,
            options: &[],
            payload: &[],
            ip_id: 0,
        }
        .to_vec(),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// Checks both checksums with etherparse, independently of this crate.
    pub(crate) fn etherparse_verifies(pkt: &[u8]) -> bool {
        let (ip, rest) = etherparse::Ipv4Header::from_slice(pkt).unwrap();
        let (tcp, payload) = etherparse::TcpHeader::from_slice(rest).unwrap();
        let payload = &payload[..usize::from(ip.total_len) - ip.header_len() - tcp.header_len()];
        ip.header_checksum == ip.calc_header_checksum()
            && tcp.checksum == tcp.calc_checksum_ipv4(&ip, payload).unwrap()
    }

    fn a() -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 2), 40000)
    }
    fn b() -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 2, 0, 2), 80)
    }

    // MSS 1460, NOP, NOP, SACK permitted, and a 3-byte option-less tail to force padding.
    const OPTS: [u8; 9] = [2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1];

    fn seg<'a>(options: &'a [u8], payload: &'a [u8]) -> TcpSegment<'a> {
        TcpSegment {
            src: a(),
            dst: b(),
            seq: 0xdead_beef,
            ack: 0x0102_0304,
            flags: tcp_flags::PSH | tcp_flags::ACK,
            window: 64240,
            options,
            payload,
            ip_id: 7,
        }
    }

    #[test]
    fn construct_and_deconstruct() {
        for plen in [0usize, 1, 2, 3, 7, 8, 9, 1447, 1448] {
            for opts in [&OPTS[..0], &OPTS[..4], &OPTS[..]] {
                let payload: Vec<u8> = (0..plen).map(|i| (i * 31 + 7) as u8).collect();
                let s = seg(opts, &payload);
                let v = s.to_vec();
                assert_eq!(v.len(), s.buffer_len());
                assert!(etherparse_verifies(&v), "plen {plen} opts {}", opts.len());
                let ip = Ipv4Packet::new_checked(&v).unwrap();
                assert!(ip.verify_checksum());
                assert!(verify_checksum(&ip));
                let back = TcpSegment::parse(&v).unwrap();
                let padded_len = opts.len().div_ceil(4) * 4;
                assert_eq!(back.options.len(), padded_len);
                assert_eq!(&back.options[..opts.len()], opts);
                assert_eq!(
                    TcpSegment {
                        options: opts,
                        ..back
                    },
                    s
                );
                // And etherparse reads the same fields.
                let e = etherparse::SlicedPacket::from_ip(&v).unwrap();
                let Some(etherparse::TransportSlice::Tcp(t)) = e.transport else {
                    panic!("not tcp")
                };
                assert_eq!(t.sequence_number(), 0xdead_beef);
                assert_eq!(t.acknowledgment_number(), 0x0102_0304);
                assert_eq!(t.payload(), &payload[..]);
            }
        }
    }

    #[test]
    fn view_getters() {
        let v = seg(&OPTS[..4], b"hi").to_vec();
        let t = TcpPacket::new_checked(&v[20..]).unwrap();
        assert_eq!(t.src_port(), 40000);
        assert_eq!(t.dst_port(), 80);
        assert_eq!(t.header_len(), 24);
        assert_eq!(t.window(), 64240);
        assert_eq!(t.urgent(), 0);
        assert_eq!(t.options(), &OPTS[..4]);
        assert_eq!(t.payload(), b"hi");
    }

    #[test]
    fn truncated() {
        let v = seg(&OPTS, b"hello").to_vec();
        for n in 0..v.len() {
            assert!(TcpSegment::parse(&v[..n]).is_none(), "prefix {n}");
            assert!(tcp_rst_for(&v[..n]).is_none(), "prefix {n}");
        }
        for n in 0..32 {
            assert!(
                TcpPacket::new_checked(&v[20..20 + n]).is_none(),
                "prefix {n}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "buffer shorter")]
    fn emit_short_buffer_is_a_caller_bug() {
        let s = seg(&[], b"x");
        let mut out = vec![0u8; s.buffer_len() - 1];
        s.emit(&mut out);
    }

    #[test]
    fn rst_for_ack_segment() {
        let v = seg(&[], b"hello").to_vec();
        let r = tcp_rst_for(&v).unwrap();
        assert!(etherparse_verifies(&r));
        let s = TcpSegment::parse(&r).unwrap();
        assert_eq!((s.src, s.dst), (b(), a()));
        assert_eq!((s.seq, s.ack, s.flags), (0x0102_0304, 0, tcp_flags::RST));
        assert!(s.payload.is_empty());
        assert_eq!(Ipv4Packet::new_checked(&r).unwrap().ttl(), 64);
    }

    #[test]
    fn rst_for_syn() {
        let mut s = seg(&OPTS[..4], &[]);
        s.flags = tcp_flags::SYN;
        s.seq = u32::MAX; // ack wraps
        let r = tcp_rst_for(&s.to_vec()).unwrap();
        assert!(etherparse_verifies(&r));
        let p = TcpSegment::parse(&r).unwrap();
        assert_eq!(
            (p.seq, p.ack, p.flags),
            (0, 0, tcp_flags::RST | tcp_flags::ACK)
        );
        let mut s = seg(&[], b"abc");
        s.flags = tcp_flags::FIN | tcp_flags::PSH;
        let p = tcp_rst_for(&s.to_vec()).unwrap();
        let p = TcpSegment::parse(&p).unwrap();
        assert_eq!(p.ack, 0xdead_beef + 4);
    }

    #[test]
    fn no_rst_for_rst_or_other_protocols() {
        let mut s = seg(&[], &[]);
        s.flags = tcp_flags::RST | tcp_flags::ACK;
        assert!(tcp_rst_for(&s.to_vec()).is_none());
        let mut v = seg(&[], &[]).to_vec();
        v[9] = ipv4::proto::UDP;
        assert!(tcp_rst_for(&v).is_none());
    }
}
