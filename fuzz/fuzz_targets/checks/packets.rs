// Any bytes read from a TUN (what a process sends, with or without the virtio header) go
// through the wire layer without a panic: summarize, rewrite in both checksum modes, the
// RST and ICMP answers, the DNS answers (to the packet and to its bytes as a DNS message),
// and completing an offloaded checksum. A rewrite that succeeds keeps
// the packet's length and leaves a packet that still summarizes to the new addresses.
//
// Shared by the cargo-fuzz target (fuzz/fuzz_targets/packets.rs) and the stable run in
// tests/fuzz_smoke.rs, which `include!`s this file.

use plg::wire::{self, vnet, CsumMode};
use std::net::{Ipv4Addr, SocketAddrV4};

pub fn check(data: &[u8]) {
    let _ = vnet::VnetHdr::parse(data);
    let Some(&selector) = data.first() else { return };
    let pkt = &data[1..];
    let summary = wire::summarize(pkt);
    let _ = wire::tcp_rst_for(pkt);
    let _ = wire::icmp_unreachable(pkt, Ipv4Addr::new(10, 0, 0, 1), selector & 15);
    let src = SocketAddrV4::new(Ipv4Addr::new(172, 31, 1, 1), 1024 + u16::from(selector));
    let dst = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);
    for mode in [CsumMode::Full, CsumMode::Partial] {
        let mut copy = pkt.to_vec();
        if wire::rewrite(&mut copy, mode, src, dst) {
            assert_eq!(copy.len(), pkt.len());
            let s = wire::summarize(&copy).expect("a rewritten packet still parses");
            assert_eq!((s.src, s.dst), (*src.ip(), *dst.ip()));
            if (s.tcp.is_some() || s.proto == 17) && (s.dport != 0 || s.sport != 0) {
                assert_eq!((s.sport, s.dport), (src.port(), dst.port()));
            }
        }
        let _ = summary;
    }
    let mut zone = wire::dns::Zone::new();
    zone.add(&["p0"], Some(Ipv4Addr::new(10, 0, 0, 2)), None);
    let _ = wire::dns::answer_datagram(pkt, &zone);
    for t in [wire::dns::Transport::Udp, wire::dns::Transport::Tcp] {
        if let Some(r) = wire::dns::respond(pkt, &zone, t) {
            assert!(wire::dns::summarize(&r.bytes).is_some(), "an answer parses");
        }
    }
    let mut copy = pkt.to_vec();
    let start = usize::from(selector) % 64;
    let _ = wire::complete_checksum(&mut copy, start, 6 + usize::from(selector % 11));
}
