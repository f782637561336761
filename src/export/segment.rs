//! IPv4 or IPv6 + TCP headers for synthesized segments, built beside (not around) their payload.
//!
//! Export writes millions of segments, so the header is built into a small fixed buffer and the
//! payload is never copied into it: the output writer sends header then payload. Pure bytes: no
//! I/O. The checksum is the real one (tshark verifies it with `tcp.check_checksum`).
//!
//! Why not [`crate::wire::TcpSegment::emit`]: it writes the payload into the same buffer as
//! the headers, one extra copy of every stream byte; here the tests check both agree.

use std::net::SocketAddr;

/// TCP flag bits (byte 13 of the header).
pub use crate::wire::tcp_flags as flags;

/// Largest header we build: 40 bytes of IPv6 and 20 of TCP plus 8 of options.
pub const MAX_HEADER: usize = 68;

/// The options a SYN or SYN-ACK carries: MSS 1460, NOP, window scale 7.
const SYN_OPTIONS: [u8; 8] = [2, 4, 0x05, 0xb4, 1, 3, 3, 7];

/// One TCP segment to synthesize (the payload travels separately).
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    /// Both of one family: the packet is IPv4 or IPv6 accordingly.
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub ip_id: u16,
}

impl Segment {
    /// Writes the IPv4 and TCP headers for this segment carrying `payload` into `buf` and
    /// returns their length. SYN segments carry the MSS and window-scale options.
    ///
    /// Panics if `payload` is longer than an IPv4 packet can carry (callers cut at the MSS).
    pub fn emit_header(&self, payload: &[u8], buf: &mut [u8; MAX_HEADER]) -> usize {
        let opts: &[u8] = if self.flags & flags::SYN != 0 {
            &SYN_OPTIONS
        } else {
            &[]
        };
        let tcp_len = 20 + opts.len();
        // Addresses as bytes without allocating (this runs once per exported segment).
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        let alen = match (self.src, self.dst) {
            (SocketAddr::V4(s), SocketAddr::V4(d)) => {
                a[..4].copy_from_slice(&s.ip().octets());
                b[..4].copy_from_slice(&d.ip().octets());
                4
            }
            (s, d) => {
                a.copy_from_slice(&ip6(s).octets());
                b.copy_from_slice(&ip6(d).octets());
                16
            }
        };
        let (src_ip, dst_ip) = (&a[..alen], &b[..alen]);
        let v6 = alen == 16;
        let ip_len = if v6 { 40 } else { 20 };
        let hdr_len = ip_len + tcp_len;
        let (ip, tcp) = buf.split_at_mut(ip_len);
        if v6 {
            let plen =
                u16::try_from(tcp_len + payload.len()).expect("segment larger than IPv6 payload");
            ip[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
            ip[4..6].copy_from_slice(&plen.to_be_bytes());
            ip[6] = 6;
            ip[7] = 64;
            ip[8..24].copy_from_slice(src_ip);
            ip[24..40].copy_from_slice(dst_ip);
        } else {
            let total = u16::try_from(hdr_len + payload.len()).expect("segment larger than IPv4");
            ip[0] = 0x45;
            ip[1] = 0;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            ip[4..6].copy_from_slice(&self.ip_id.to_be_bytes());
            ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
            ip[8] = 64;
            ip[9] = 6;
            ip[10..12].fill(0);
            ip[12..16].copy_from_slice(src_ip);
            ip[16..20].copy_from_slice(dst_ip);
            let ip_sum = finish(sum(ip, 0));
            ip[10..12].copy_from_slice(&ip_sum.to_be_bytes());
        }

        let tcp = &mut tcp[..tcp_len];
        tcp[0..2].copy_from_slice(&self.src.port().to_be_bytes());
        tcp[2..4].copy_from_slice(&self.dst.port().to_be_bytes());
        tcp[4..8].copy_from_slice(&self.seq.to_be_bytes());
        let ack = if self.flags & flags::ACK != 0 {
            self.ack
        } else {
            0
        };
        tcp[8..12].copy_from_slice(&ack.to_be_bytes());
        tcp[12] = ((tcp_len / 4) as u8) << 4;
        tcp[13] = self.flags;
        tcp[14..16].copy_from_slice(&self.window.to_be_bytes());
        tcp[16..20].fill(0); // checksum, urgent pointer
        tcp[20..].copy_from_slice(opts);

        // Pseudo-header: addresses, protocol, TCP length (the same sum for IPv4 and IPv6).
        let mut acc = sum(src_ip, 0);
        acc = sum(dst_ip, acc);
        acc += 6 + (tcp_len + payload.len()) as u64;
        acc = sum(tcp, acc);
        acc = sum(payload, acc);
        tcp[16..18].copy_from_slice(&finish(acc).to_be_bytes());
        hdr_len
    }
}

/// An address as IPv6 (an IPv4 one mapped, for a pair that mixes families, which plg never
/// records).
fn ip6(a: SocketAddr) -> std::net::Ipv6Addr {
    match a {
        SocketAddr::V4(a) => a.ip().to_ipv6_mapped(),
        SocketAddr::V6(a) => *a.ip(),
    }
}

/// Adds `data` as big-endian 16-bit words to the running one's-complement sum `acc` (odd
/// trailing byte padded with zero). Only the last chunk of a packet may have odd length.
pub fn sum(data: &[u8], mut acc: u64) -> u64 {
    // Summing 32-bit words into a 64-bit accumulator cannot overflow for any IPv4 packet and
    // is congruent to the 16-bit sum modulo 0xffff; it is also what the compiler vectorizes.
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc + u64::from(u32::from_be_bytes(tail))
}

/// Folds a running sum into the final 16-bit checksum (one's complement).
pub fn finish(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn v4(a: SocketAddr) -> std::net::SocketAddrV4 {
        match a {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => panic!("not IPv4"),
        }
    }

    #[test]
    fn ipv6_segments_verify_with_etherparse() {
        let seg = Segment {
            src: addr("[fd00:706c:67::2]:45678"),
            dst: addr("[fd00:706c:67::3]:80"),
            seq: 5,
            ack: 7,
            flags: flags::ACK | flags::PSH,
            window: 512,
            ip_id: 9,
        };
        for payload in [&b""[..], b"abc", &[0xffu8; 1460][..]] {
            let mut buf = [0u8; MAX_HEADER];
            let n = seg.emit_header(payload, &mut buf);
            assert_eq!(n, 60);
            let mut pkt = buf[..n].to_vec();
            pkt.extend_from_slice(payload);
            assert!(crate::wire::ipv6::verify_l4_checksum(&pkt));
            let (ip, rest) = etherparse::Ipv6Header::from_slice(&pkt).unwrap();
            let (tcp, body) = etherparse::TcpHeader::from_slice(rest).unwrap();
            assert_eq!(tcp.checksum, tcp.calc_checksum_ipv6(&ip, body).unwrap());
            assert_eq!(body, payload);
        }
    }

    #[test]
    fn checksums_verify_with_etherparse() {
        let seg = Segment {
            src: addr("10.0.0.2:45678"),
            dst: addr("10.0.0.1:8000"),
            seq: 0xfffffff0,
            ack: 7,
            flags: flags::ACK | flags::PSH,
            window: 512,
            ip_id: 9,
        };
        for payload in [
            &b""[..],
            b"a",
            b"GET / HTTP/1.1\r\n\r\n",
            &[0xffu8; 1460][..],
        ] {
            let mut buf = [0u8; MAX_HEADER];
            let n = seg.emit_header(payload, &mut buf);
            let mut pkt = buf[..n].to_vec();
            pkt.extend_from_slice(payload);
            let ip = etherparse::Ipv4HeaderSlice::from_slice(&pkt).unwrap();
            assert_eq!(ip.header_checksum(), ip.to_header().calc_header_checksum());
            let tcp = etherparse::TcpHeaderSlice::from_slice(&pkt[20..]).unwrap();
            let want = tcp
                .to_header()
                .calc_checksum_ipv4(&ip.to_header(), payload)
                .unwrap();
            assert_eq!(tcp.checksum(), want, "payload of {}", payload.len());
            assert_eq!(tcp.sequence_number(), 0xfffffff0);
            assert_eq!(tcp.acknowledgment_number(), 7);
            // The same segment built by the wire layer is the same bytes.
            let wire = crate::wire::TcpSegment {
                src: v4(seg.src),
                dst: v4(seg.dst),
                seq: seg.seq,
                ack: seg.ack,
                flags: seg.flags,
                window: seg.window,
                options: &[],
                payload,
                ip_id: seg.ip_id,
            };
            assert_eq!(wire.to_vec(), pkt);
        }
    }

    #[test]
    fn syn_carries_options_and_no_ack() {
        let seg = Segment {
            src: addr("10.0.0.2:1"),
            dst: addr("10.0.0.1:2"),
            seq: 1,
            ack: 99,
            flags: flags::SYN,
            window: 65535,
            ip_id: 0,
        };
        let mut buf = [0u8; MAX_HEADER];
        let n = seg.emit_header(&[], &mut buf);
        assert_eq!(n, 48);
        let tcp = etherparse::TcpHeaderSlice::from_slice(&buf[20..n]).unwrap();
        assert_eq!(tcp.acknowledgment_number(), 0);
        assert!(tcp.syn() && !tcp.ack());
        assert_eq!(tcp.options(), &SYN_OPTIONS);
    }
}
