//! Packet views and rewriting: parses and builds IPv4, TCP, UDP and ICMP bytes, never does I/O.
//!
//! Rooms: [`checksum`] (RFC 1071 sums, RFC 1624 updates), [`vnet`] (the TUN's virtio header),
//! [`ipv4`], [`tcp`], [`udp`], [`icmp`] (layouts, checked views, builders), `summary` (what the
//! engine routes on) and `rewrite` (masquerading in place, completing offloaded checksums).
//! Everything here is a pure function over byte slices: no sockets, files, clocks or globals.
//! No IPv6: the engine drops it before it gets here.
//!
//! # Contract
//! - **Nothing panics on any input bytes.** Every parser, [`summarize`], [`rewrite`],
//!   [`complete_checksum`], [`tcp_rst_for`] and [`icmp_unreachable`] take arbitrary (truncated,
//!   malformed, hostile) bytes and answer `None`/`false`; `false` means the buffer is untouched.
//!   Views are built only through `new_checked`, so their getters cannot index out of bounds.
//! - The only panics are caller bugs in a builder, documented on it: [`TcpSegment::emit`] into
//!   a buffer shorter than [`TcpSegment::buffer_len`], options over 40 bytes, or a packet over
//!   65535 bytes.
//! - The hot path ([`summarize`], [`rewrite`], [`complete_checksum`], [`vnet`]) never allocates;
//!   the answer builders (RST, ICMP, [`TcpSegment::to_vec`]) return a fresh `Vec`.
//! - A packet is "complete" when its IPv4 total length fits in the buffer; bytes past the total
//!   length are ignored, except by [`complete_checksum`], which sums to the end of the slice.
//! - Checksums written here are the bytes a full recomputation gives (Linux, etherparse): UDP
//!   never 0 (0xFFFF instead) except a "no checksum" 0 that [`rewrite`] keeps; TCP may be 0.
//!
//! # Example
//! ```
//! use plg::wire::{rewrite, summarize, tcp_flags, CsumMode, TcpSegment};
//! use std::net::SocketAddrV4;
//!
//! let a: SocketAddrV4 = "10.1.0.2:40000".parse().unwrap();
//! let b: SocketAddrV4 = "10.2.0.2:80".parse().unwrap();
//! let seg = TcpSegment { src: a, dst: b, seq: 1, ack: 0, flags: tcp_flags::SYN, window: 65535,
//!                        options: &[2, 4, 5, 180], payload: &[], ip_id: 0 };
//! let mut pkt = seg.to_vec();
//! assert_eq!(TcpSegment::parse(&pkt), Some(seg));
//!
//! // Masquerade: the proxy's G:gport now talks to b.
//! let g: SocketAddrV4 = "172.31.0.1:51000".parse().unwrap();
//! assert!(rewrite(&mut pkt, CsumMode::Full, g, b));
//! let s = summarize(&pkt).unwrap();
//! assert_eq!((s.src, s.sport, s.tcp.unwrap().flags), (*g.ip(), 51000, tcp_flags::SYN));
//! assert_eq!(plg::wire::checksum::data(&pkt[..20]), 0xffff); // IP header still verifies
//! ```

pub mod checksum;
pub mod icmp;
pub mod ipv4;
mod rewrite;
mod summary;
pub mod tcp;
pub mod udp;
pub mod vnet;

pub use self::icmp::icmp_unreachable;
pub use self::rewrite::{complete_checksum, rewrite, CsumMode};
pub use self::summary::{summarize, Summary, TcpInfo};
pub use self::tcp::{tcp_flags, tcp_rst_for, TcpSegment};
