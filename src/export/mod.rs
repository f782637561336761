//! Export: turns a capture into files other tools read, as a stream of records in and bytes
//! out, in constant memory whatever the capture's size.
//!
//! - [`synth`]: each recorded TCP connection as a real-looking TCP conversation (sans-IO).
//! - [`pcap`], [`pcapng`]: the two packet file formats; [`streams`]: one file per direction.
//! - [`Selector`]: the `--conn` / `--process` / `--port` filters.
//!
//! No terminal and no capture reading here: `cmd::export` reads the capture, shows progress
//! and feeds [`Exporter::record`].

pub mod pcap;
pub mod pcapng;
pub mod segment;
pub mod streams;
pub mod synth;

use crate::format::{ConnId, ConnOpen, ConnRef, Direction, Outcome, ProcIndex, Record};
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};
use synth::{Frame, Sink, Synthesizer};

/// Which connections and packets to export. Empty lists select everything; within a list any
/// value matches, and the lists combine with "and".
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Connections by id; a bare id names the first section's (as `inspect --conn` does).
    pub conns: Vec<ConnRef>,
    pub processes: Vec<String>,
    pub ports: Vec<u16>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty() && self.processes.is_empty() && self.ports.is_empty()
    }
}

/// Applies a [`Filter`] to a stream of records. Remembers only the processes and the
/// selected connections that are still open.
#[derive(Debug, Default)]
pub struct Selector {
    filter: Filter,
    /// Index and addresses of the processes named in `--process`, once announced.
    procs: Vec<(ProcIndex, IpAddr, Option<IpAddr>)>,
    /// Selected open connections, with which directions have closed.
    open: HashMap<ConnId, [bool; 2]>,
    /// The section being read (1 is the first; 0 before its Session record).
    section: u32,
    pub connections: u64,
    pub packets: u64,
}

fn side(dir: Direction) -> usize {
    match dir {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

impl Selector {
    pub fn new(filter: Filter) -> Self {
        Selector {
            filter,
            ..Default::default()
        }
    }

    fn conn_matches(&self, o: &ConnOpen) -> bool {
        let f = &self.filter;
        (f.conns.is_empty() || f.conns.iter().any(|c| c.is(self.section.max(1), o.id)))
            && (f.processes.is_empty()
                || self
                    .procs
                    .iter()
                    .any(|&(i, _, _)| i == o.client || i == o.server))
            && (f.ports.is_empty()
                || f.ports.contains(&o.client_addr.port())
                || f.ports.contains(&o.server_addr.port()))
    }

    fn packet_matches(&self, interface: u32, ip: &[u8]) -> bool {
        let f = &self.filter;
        if !f.conns.is_empty() {
            return false;
        }
        // Destination, and the ports of TCP/UDP (None for other protocols or a later fragment).
        let (dst, ports): (IpAddr, Option<(u16, u16)>) = if ip.first().map(|b| b >> 4) == Some(6) {
            let Some(s) = crate::wire::ipv6::summarize6(ip) else {
                return f.processes.is_empty() && f.ports.is_empty();
            };
            let tcp_udp = s.proto == 6 || s.proto == 17;
            (IpAddr::V6(s.dst), tcp_udp.then_some((s.sport, s.dport)))
        } else {
            if ip.len() < 20 || ip[0] >> 4 != 4 {
                return f.processes.is_empty() && f.ports.is_empty();
            }
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let first_fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff == 0;
            let l4 = ip.get(ihl..ihl + 4).filter(|_| first_fragment);
            let ports = match (ip[9], l4) {
                (6 | 17, Some(p)) => Some((
                    u16::from_be_bytes([p[0], p[1]]),
                    u16::from_be_bytes([p[2], p[3]]),
                )),
                _ => None,
            };
            (
                IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19])),
                ports,
            )
        };
        let by_process = f.processes.is_empty()
            || self
                .procs
                .iter()
                .any(|&(i, a4, a6)| u32::from(i) == interface || a4 == dst || a6 == Some(dst));
        let by_port = f.ports.is_empty()
            || ports.is_some_and(|(s, d)| f.ports.contains(&s) || f.ports.contains(&d));
        by_process && by_port
    }

    /// Whether `rec` goes to the output. Process and session records always do (they carry
    /// names the outputs use).
    pub fn admit(&mut self, rec: &Record) -> bool {
        match rec {
            Record::Process(p) => {
                if self.filter.processes.contains(&p.name) {
                    self.procs
                        .push((p.index, IpAddr::V4(p.addr), p.addr6.map(IpAddr::V6)));
                }
                true
            }
            Record::ConnOpen(o) => {
                let yes = self.conn_matches(o);
                if yes {
                    self.connections += 1;
                    if o.outcome == Outcome::Established {
                        self.open.insert(o.id, [false; 2]);
                    }
                }
                yes
            }
            Record::Data(d) => self.open.contains_key(&d.id),
            Record::ConnClose(c) => match self.open.get_mut(&c.id) {
                Some(closed) => {
                    closed[side(c.dir)] = true;
                    if c.kind == crate::format::CloseKind::Rst || closed[0] && closed[1] {
                        self.open.remove(&c.id);
                    }
                    true
                }
                None => false,
            },
            Record::Packet(p) => {
                let yes = self.packet_matches(p.interface, &p.bytes);
                if yes {
                    self.packets += 1;
                }
                yes
            }
            Record::Session(_) => {
                // A new section: its ids and process indexes are its own.
                self.section += 1;
                self.open.clear();
                self.procs.clear();
                true
            }
            Record::ProcessExit(_) | Record::Summary(_) => true,
            // Written once, before every packet, by the pcapng output (see `cmd/export`).
            Record::Secrets(_) | Record::Unknown(_) => false,
        }
    }
}

/// Packet outputs (pcap, pcapng): synthesized conversations plus the recorded packets.
pub struct PacketExport<S: Sink> {
    synth: Synthesizer,
    sink: S,
}

impl<S: Sink> PacketExport<S> {
    pub fn new(sink: S) -> Self {
        PacketExport {
            synth: Synthesizer::new(),
            sink,
        }
    }

    pub fn record(&mut self, rec: &Record) -> io::Result<()> {
        match rec {
            Record::Process(p) => self.sink.process(p.index, &p.name, &p.command),
            Record::Packet(p) => {
                let sender = ProcIndex::try_from(p.interface).unwrap_or(crate::format::EXTERNAL);
                self.sink.frame(&Frame {
                    time_ns: p.time_ns,
                    sender,
                    head: &[],
                    payload: &p.bytes,
                    orig_len: p.orig_len.max(p.bytes.len() as u32),
                })
            }
            _ => self.synth.record(rec, &mut self.sink),
        }
    }

    pub fn into_sink(self) -> S {
        self.sink
    }
}

/// The three kinds of output behind one interface.
pub enum Output<W: Write> {
    Pcap(PacketExport<pcap::PcapWriter<W>>),
    Pcapng(PacketExport<pcapng::PcapngWriter<W>>),
    Streams(streams::StreamsWriter),
}

impl<W: Write> Output<W> {
    pub fn record(&mut self, rec: &Record) -> io::Result<()> {
        match self {
            Output::Pcap(p) => p.record(rec),
            Output::Pcapng(p) => p.record(rec),
            Output::Streams(s) => s.record(rec),
        }
    }

    /// Flushes everything; for packet outputs returns the inner writer.
    pub fn finish(self) -> io::Result<Option<W>> {
        match self {
            Output::Pcap(p) => Ok(Some(p.into_sink().into_inner())),
            Output::Pcapng(p) => Ok(Some(p.into_sink().into_inner())),
            Output::Streams(mut s) => s.finish().map(|_| None),
        }
    }
}

/// Filter plus output: feed it every record of a capture in order.
pub struct Exporter<W: Write> {
    pub selector: Selector,
    pub output: Output<W>,
}

impl<W: Write> Exporter<W> {
    pub fn new(filter: Filter, output: Output<W>) -> Self {
        Exporter {
            selector: Selector::new(filter),
            output,
        }
    }

    pub fn record(&mut self, rec: &Record) -> io::Result<()> {
        if self.selector.admit(rec) {
            self.output.record(rec)?;
        }
        Ok(())
    }

    /// Whether anything (a connection or a packet) was selected so far.
    pub fn matched_anything(&self) -> bool {
        self.selector.connections + self.selector.packets > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Packet, Process};
    use std::net::Ipv6Addr;

    fn proc0() -> Record {
        Record::Process(Process {
            index: 0,
            name: "p0".into(),
            command: "server".into(),
            addr: Ipv4Addr::new(10, 0, 0, 2),
            addr6: Some("fd00:706c:67::2".parse().unwrap()),
            live: true,
        })
    }

    fn udp6(to: &str, dport: u16) -> Record {
        let me: Ipv6Addr = "fd00:706c:67::3".parse().unwrap();
        let bytes =
            crate::wire::dns::datagram6(me, 40000, to.parse().unwrap(), dport, b"x").unwrap();
        Record::Packet(Packet {
            interface: 1,
            time_ns: 1,
            orig_len: bytes.len() as u32,
            bytes,
        })
    }

    /// IPv6 packets are selected by port and by process as IPv4 ones are (they used to be
    /// dropped by any filter).
    #[test]
    fn ipv6_packets_pass_port_and_process_filters() {
        let mut by_port = Selector::new(Filter {
            ports: vec![5353],
            ..Default::default()
        });
        assert!(by_port.admit(&udp6("fd00:706c:67::2", 5353)));
        assert!(!by_port.admit(&udp6("fd00:706c:67::2", 53)));
        let mut by_proc = Selector::new(Filter {
            processes: vec!["p0".into()],
            ..Default::default()
        });
        assert!(by_proc.admit(&proc0()));
        assert!(by_proc.admit(&udp6("fd00:706c:67::2", 9)));
        assert!(!by_proc.admit(&udp6("fd00:706c:67::9", 9)));
    }
}
