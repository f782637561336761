//! The one-pass look at an IPv4 packet the engine routes on: addresses, protocol, ports and
//! the TCP fields the NAT table tracks. Reads only; see `rewrite` for changing a packet.

use std::net::Ipv4Addr;

use super::ipv4::{proto, Ipv4Packet};
use super::tcp::TcpPacket;
use super::udp::UdpPacket;

/// What the engine needs to route one IPv4 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    /// 0 unless TCP or UDP (and not a non-first fragment).
    pub sport: u16,
    /// 0 unless TCP or UDP (and not a non-first fragment).
    pub dport: u16,
    /// `Some` for TCP (first fragments and unfragmented packets).
    pub tcp: Option<TcpInfo>,
    pub ip_header_len: usize,
    /// The IPv4 total length; the buffer may be longer (padding), never shorter.
    pub total_len: usize,
}

/// The TCP fields of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpInfo {
    /// FIN=1 SYN=2 RST=4 PSH=8 ACK=16, see [`super::tcp_flags`].
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    /// Bytes after the TCP header, up to the IPv4 total length.
    pub payload_len: usize,
}

/// Summarizes an IPv4 packet. `None` for non-IPv4, a bad version or IHL, a total length below
/// the header or beyond the buffer, or a TCP/UDP header that is cut short. A non-first
/// fragment has no L4 header: it is summarized with ports 0 and `tcp: None`.
pub fn summarize(pkt: &[u8]) -> Option<Summary> {
    let ip = Ipv4Packet::new_checked(pkt)?;
    let mut s = Summary {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        proto: ip.protocol(),
        sport: 0,
        dport: 0,
        tcp: None,
        ip_header_len: ip.header_len(),
        total_len: ip.total_len(),
    };
    if ip.frag_offset() != 0 {
        return Some(s);
    }
    match ip.protocol() {
        proto::TCP => {
            let t = TcpPacket::new_checked(ip.payload())?;
            s.sport = t.src_port();
            s.dport = t.dst_port();
            s.tcp = Some(TcpInfo {
                flags: t.flags(),
                seq: t.seq(),
                ack: t.ack(),
                payload_len: t.payload().len(),
            });
        }
        proto::UDP => {
            let u = UdpPacket::new_checked(ip.payload())?;
            s.sport = u.src_port();
            s.dport = u.dst_port();
        }
        _ => {}
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tcp::{tcp_flags, TcpSegment};
    use std::net::SocketAddrV4;

    fn tcp_pkt() -> Vec<u8> {
        TcpSegment {
            src: SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 2), 40000),
            dst: SocketAddrV4::new(Ipv4Addr::new(10, 2, 0, 2), 443),
            seq: 100,
            ack: 200,
            flags: tcp_flags::ACK | tcp_flags::PSH,
            window: 500,
            options: &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
            payload: b"hello",
            ip_id: 9,
        }
        .to_vec()
    }

    #[test]
    fn deconstruct_tcp() {
        let mut p = tcp_pkt();
        p.extend_from_slice(&[0, 0, 0]); // trailing padding is not payload
        let s = summarize(&p).unwrap();
        assert_eq!(
            s,
            Summary {
                src: Ipv4Addr::new(10, 1, 0, 2),
                dst: Ipv4Addr::new(10, 2, 0, 2),
                proto: 6,
                sport: 40000,
                dport: 443,
                tcp: Some(TcpInfo {
                    flags: 24,
                    seq: 100,
                    ack: 200,
                    payload_len: 5
                }),
                ip_header_len: 20,
                total_len: 57,
            }
        );
    }

    #[test]
    fn deconstruct_udp_and_icmp() {
        let mut udp = Vec::new();
        etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(5353, 53)
            .write(&mut udp, b"q")
            .unwrap();
        let s = summarize(&udp).unwrap();
        assert_eq!((s.proto, s.sport, s.dport, s.tcp), (17, 5353, 53, None));
        assert_eq!((s.ip_header_len, s.total_len), (20, 29));

        let mut icmp = Vec::new();
        etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .icmpv4_echo_request(1, 2)
            .write(&mut icmp, b"ping")
            .unwrap();
        let s = summarize(&icmp).unwrap();
        assert_eq!((s.proto, s.sport, s.dport, s.tcp), (1, 0, 0, None));
    }

    #[test]
    fn non_first_fragment_has_no_ports() {
        let mut p = tcp_pkt();
        p[6] = 0x20; // MF
        p[7] = 0x02; // offset 16 bytes
        let s = summarize(&p).unwrap();
        assert_eq!((s.proto, s.sport, s.dport, s.tcp), (6, 0, 0, None));
    }

    #[test]
    fn not_ipv4() {
        let mut p = tcp_pkt();
        p[0] = 0x60;
        assert!(summarize(&p).is_none());
        assert!(summarize(&[]).is_none());
    }

    #[test]
    fn truncated() {
        let p = tcp_pkt();
        for n in 0..p.len() {
            assert!(summarize(&p[..n]).is_none(), "prefix {n}");
        }
        // A TCP header cut short inside the total length is refused as well.
        let mut p = tcp_pkt();
        p[2..4].copy_from_slice(&30u16.to_be_bytes());
        assert!(summarize(&p[..30]).is_none());
    }
}
