//! Pass 1: read a capture once, front to back, and keep what the comparison needs.
//!
//! Per connection: its key (client, server, server port, ordinal), outcome, how each direction
//! closed, byte counts, a hash of each direction's bytes and the file offsets of its Data
//! blocks (delta-encoded, about 2 bytes a block). Per non-TCP flow (sender, receiver, protocol,
//! port) the same over its packets' payloads. No stream bytes are kept: pass 2 re-reads only
//! the blocks of directions whose hashes differ, through a [`BlockSource`].
//!
//! Memory: about 300 bytes per connection or flow plus the offsets; a hash state (about 600
//! bytes) only while a direction is open.

use crate::format::reader::FormatError;
use crate::format::record::*;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use xxhash_rust::xxh3::Xxh3;

/// Records of a capture, in file order, each with its byte offset.
pub trait RecordSource {
    fn next_record(&mut self) -> Option<Result<(u64, Record), FormatError>>;
}

/// Re-reads one block by its offset (pass 2).
pub trait BlockSource {
    fn read_at(&mut self, offset: u64) -> Result<Record, FormatError>;
}

/// In-memory captures for tests: offset = position in the vector.
impl RecordSource for std::iter::Enumerate<std::vec::IntoIter<Record>> {
    fn next_record(&mut self) -> Option<Result<(u64, Record), FormatError>> {
        self.next().map(|(i, r)| Ok((i as u64, r)))
    }
}

impl BlockSource for Vec<Record> {
    fn read_at(&mut self, offset: u64) -> Result<Record, FormatError> {
        self.get(offset as usize).cloned().ok_or(FormatError {
            path: "memory".into(),
            offset,
            message: "no such block".into(),
        })
    }
}

/// Delta-encoded file offsets, LEB128.
#[derive(Debug, Clone, Default)]
pub struct Offsets {
    bytes: Vec<u8>,
    last: u64,
    count: u64,
}

impl Offsets {
    pub fn push(&mut self, offset: u64) {
        let mut d = offset.wrapping_sub(self.last);
        self.last = offset;
        self.count += 1;
        loop {
            let b = (d & 0x7f) as u8;
            d >>= 7;
            if d == 0 {
                self.bytes.push(b);
                break;
            }
            self.bytes.push(b | 0x80);
        }
    }

    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let mut i = 0;
        let mut last = 0u64;
        std::iter::from_fn(move || {
            if i >= self.bytes.len() {
                return None;
            }
            let mut d = 0u64;
            let mut shift = 0;
            loop {
                let b = self.bytes[i];
                i += 1;
                d |= ((b & 0x7f) as u64) << shift;
                shift += 7;
                if b & 0x80 == 0 {
                    break;
                }
            }
            last = last.wrapping_add(d);
            Some(last)
        })
    }

    fn shrink(&mut self) {
        self.bytes.shrink_to_fit();
    }
}

/// One direction of a connection, or one non-TCP flow.
#[derive(Default)]
pub struct Side {
    pub bytes: u64,
    pub blocks: Offsets,
    /// XXH3-128 of the bytes (of the length-prefixed payloads for a flow); 0 when empty.
    pub hash: u128,
    hasher: Option<Box<Xxh3>>,
    pub first_ns: Option<u64>,
    pub last_ns: Option<u64>,
    pub close: Option<(CloseKind, u64)>,
    /// Data arrived after this direction closed (a damaged or odd capture): always compare.
    pub late_data: bool,
}

impl std::fmt::Debug for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Side")
            .field("bytes", &self.bytes)
            .field("blocks", &self.blocks.len())
            .field("hash", &format_args!("{:032x}", self.hash))
            .field("close", &self.close)
            .finish_non_exhaustive()
    }
}

impl Side {
    fn add(&mut self, offset: u64, time_ns: u64, bytes: &[u8], framed: bool) {
        if self.hasher.is_none() && self.close.is_some() {
            self.late_data = true;
        }
        let h = self.hasher.get_or_insert_with(|| Box::new(Xxh3::new()));
        if framed {
            h.update(&(bytes.len() as u32).to_le_bytes());
        }
        h.update(bytes);
        self.bytes += bytes.len() as u64;
        self.blocks.push(offset);
        self.first_ns.get_or_insert(time_ns);
        self.last_ns = Some(time_ns);
    }

    fn seal(&mut self) {
        if let Some(h) = self.hasher.take() {
            // Fold in what was hashed before a late block, if any.
            self.hash ^= h.digest128();
        }
        self.blocks.shrink();
    }
}

/// How connections are matched across captures: the client port is left out on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnKey {
    pub client: ProcIndex,
    pub server: ProcIndex,
    pub port: u16,
    /// Order among the connections with the same client, server and port.
    pub ordinal: u32,
}

#[derive(Debug)]
pub struct Conn {
    pub open: ConnOpen,
    pub key: ConnKey,
    /// Indexed by [`dir_index`].
    pub dirs: [Side; 2],
}

impl Conn {
    /// From the SYN to the last close or data seen.
    pub fn duration_ns(&self) -> Option<u64> {
        let end = self
            .dirs
            .iter()
            .flat_map(|s| [s.close.map(|c| c.1), s.last_ns])
            .flatten()
            .max()?;
        Some(end.saturating_sub(self.open.time_ns))
    }

    /// From the client's first bytes (or the SYN) to the server's first bytes.
    pub fn first_response_ns(&self) -> Option<u64> {
        let resp = self.dirs[1].first_ns?;
        let req = self.dirs[0].first_ns.unwrap_or(self.open.time_ns);
        Some(resp.saturating_sub(req))
    }
}

pub fn dir_index(dir: Direction) -> usize {
    match dir {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

pub const DIRS: [Direction; 2] = [Direction::ClientToServer, Direction::ServerToClient];

/// The receiver of a non-TCP packet: a process of the session, or another address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    Proc(ProcIndex),
    Addr(IpAddr),
}

/// How non-TCP packets are grouped: compared in order within a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub sender: u32,
    pub receiver: Peer,
    /// IP protocol number (1 ICMP, 17 UDP, ...).
    pub proto: u8,
    /// UDP service port: the lower of source and destination, so that a reply to an
    /// ephemeral port is keyed like its request (0 for other protocols).
    pub port: u16,
}

#[derive(Debug)]
pub struct Flow {
    pub key: FlowKey,
    pub side: Side,
}

/// The gateway addresses of a session (its subnets + 1), where plg answers DNS.
fn gateway_of(s: &Session) -> (Ipv4Addr, Option<Ipv6Addr>) {
    (
        Ipv4Addr::from(u32::from(s.subnet).wrapping_add(1)),
        s.subnet6
            .map(|(n, _)| Ipv6Addr::from(u128::from(n).wrapping_add(1))),
    )
}

/// A query to plg's own resolver at the gateway, or its answer: not compared. plg answers
/// it itself, the same for every run, and a resolver picks a random id (and port) for every
/// query, so comparing would only ever report noise (README, "Names").
pub fn resolver_datagram(ip: &[u8], gateway: (Ipv4Addr, Option<Ipv6Addr>)) -> bool {
    if ip.first().map(|b| b >> 4) == Some(6) {
        let Some(s) = crate::wire::ipv6::summarize6(ip) else {
            return false;
        };
        return s.proto == 17
            && gateway
                .1
                .is_some_and(|g| (s.dst == g && s.dport == 53) || (s.src == g && s.sport == 53));
    }
    let gateway = gateway.0;
    if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 17 {
        return false;
    }
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    let Some(l4) = ip.get(ihl..ihl + 4) else {
        return false;
    };
    let addr = |o: usize| Ipv4Addr::new(ip[o], ip[o + 1], ip[o + 2], ip[o + 3]);
    let (sport, dport) = (
        u16::from_be_bytes([l4[0], l4[1]]),
        u16::from_be_bytes([l4[2], l4[3]]),
    );
    (addr(16) == gateway && dport == 53) || (addr(12) == gateway && sport == 53)
}

/// The parts of a non-TCP IPv4 or IPv6 packet that are compared: destination, protocol,
/// service port (UDP) and payload. Left out: addresses' and ports' ephemeral parts, checksums,
/// IP ids, TTLs and hop limits, ICMP/ICMPv6 echo identifiers and sequence numbers.
pub fn packet_view(ip: &[u8]) -> Option<(IpAddr, u8, u16, Vec<u8>)> {
    if ip.first().map(|b| b >> 4) == Some(6) {
        let s = crate::wire::ipv6::summarize6(ip)?;
        let dst = IpAddr::V6(s.dst);
        let l4 = ip.get(s.l4_offset..s.total_len)?;
        return Some(match s.proto {
            17 if l4.len() >= 8 => (dst, 17, s.sport.min(s.dport), l4[8..].to_vec()),
            58 if l4.len() >= 8 => {
                let mut v = vec![l4[0], l4[1]];
                v.extend_from_slice(&l4[8..]);
                (dst, 58, 0, v)
            }
            p => (dst, p, 0, l4.to_vec()),
        });
    }
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    if ihl < 20 || ip.len() < ihl {
        return None;
    }
    let proto = ip[9];
    let dst = IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]));
    let l4 = &ip[ihl..];
    Some(match proto {
        17 if l4.len() >= 8 => {
            // The service port: of the two, the lower (a reply goes to the ephemeral one).
            let sport = u16::from_be_bytes([l4[0], l4[1]]);
            let dport = u16::from_be_bytes([l4[2], l4[3]]);
            (dst, proto, sport.min(dport), l4[8..].to_vec())
        }
        1 if l4.len() >= 8 => {
            let mut v = vec![l4[0], l4[1]];
            v.extend_from_slice(&l4[8..]);
            (dst, proto, 0, v)
        }
        _ => (dst, proto, 0, l4.to_vec()),
    })
}

/// What pass 1 learned about one capture.
#[derive(Debug, Default)]
pub struct Index {
    pub path: String,
    pub session: Option<Session>,
    pub processes: Vec<Process>,
    pub exits: Vec<ProcessExit>,
    /// In the order they were opened.
    pub conns: Vec<Conn>,
    pub flows: Vec<Flow>,
    pub summary: Option<Summary>,
    /// Reading stopped at this error (a truncated or damaged capture).
    pub damage: Option<FormatError>,
    pub unknown_blocks: u64,
    /// Odd but readable things (data for an unknown connection, ...): the first few.
    pub anomalies: Vec<String>,
    pub anomaly_count: u64,
    pub data_bytes: u64,
    pub packets: u64,
    /// Offset of the last record read: how far the capture was read.
    pub end_offset: u64,
}

impl Index {
    /// Reads every record of `src`. Only an unreadable start (no session) is an error; a
    /// failure later is kept in `damage` and what was read before it is indexed.
    pub fn build(path: &str, src: &mut dyn RecordSource) -> Result<Index, FormatError> {
        let mut ix = Index {
            path: path.to_string(),
            ..Default::default()
        };
        let mut by_id: HashMap<ConnId, usize> = HashMap::new();
        let mut ordinals: HashMap<(ProcIndex, ProcIndex, u16), u32> = HashMap::new();
        let mut flows: HashMap<FlowKey, usize> = HashMap::new();
        let mut addrs: HashMap<IpAddr, ProcIndex> = HashMap::new();
        while let Some(next) = src.next_record() {
            let (offset, rec) = match next {
                Ok(r) => r,
                Err(e) if ix.session.is_none() => return Err(e),
                Err(e) => {
                    ix.damage = Some(e);
                    break;
                }
            };
            ix.end_offset = offset;
            match rec {
                Record::Session(_) if ix.session.is_some() => {
                    // Several sections are several sessions (docs/FORMAT.md): their ids and
                    // processes are their own, and merging them would compare nonsense.
                    return Err(FormatError {
                        path: path.to_string(),
                        offset,
                        message: "a second section (another session, e.g. two captures \
                                  concatenated) starts here: plg diff compares one session \
                                  per file"
                            .into(),
                    });
                }
                Record::Session(s) => ix.session = Some(s),
                Record::Process(p) => {
                    addrs.insert(IpAddr::V4(p.addr), p.index);
                    if let Some(a6) = p.addr6 {
                        addrs.insert(IpAddr::V6(a6), p.index);
                    }
                    ix.processes.push(p);
                }
                Record::ProcessExit(e) => ix.exits.push(e),
                Record::ConnOpen(o) => {
                    let port = o.server_addr.port();
                    let ord = ordinals.entry((o.client, o.server, port)).or_insert(0);
                    let key = ConnKey {
                        client: o.client,
                        server: o.server,
                        port,
                        ordinal: *ord,
                    };
                    *ord += 1;
                    if by_id.insert(o.id, ix.conns.len()).is_some() {
                        ix.anomaly(format!("connection id {} opened twice", o.id));
                    }
                    ix.conns.push(Conn {
                        open: o,
                        key,
                        dirs: Default::default(),
                    });
                }
                Record::Data(d) => {
                    ix.data_bytes += d.bytes.len() as u64;
                    match by_id.get(&d.id) {
                        Some(&c) => ix.conns[c].dirs[dir_index(d.dir)]
                            .add(offset, d.time_ns, &d.bytes, false),
                        None => ix.anomaly(format!(
                            "data for connection {} that was never opened (byte {offset})",
                            d.id
                        )),
                    }
                }
                Record::ConnClose(c) => match by_id.get(&c.id) {
                    Some(&i) => {
                        let side = &mut ix.conns[i].dirs[dir_index(c.dir)];
                        side.close.get_or_insert((c.kind, c.time_ns));
                        side.seal();
                    }
                    None => ix.anomaly(format!(
                        "close of connection {} that was never opened (byte {offset})",
                        c.id
                    )),
                },
                Record::Packet(p) => {
                    ix.packets += 1;
                    let Some((dst, proto, port, payload)) = packet_view(&p.bytes) else {
                        ix.anomaly(format!("unreadable IP packet at byte {offset}"));
                        continue;
                    };
                    if let Some(s) = &ix.session {
                        if resolver_datagram(&p.bytes, gateway_of(s)) {
                            continue;
                        }
                    }
                    let receiver = addrs.get(&dst).map_or(Peer::Addr(dst), |&i| Peer::Proc(i));
                    let key = FlowKey {
                        sender: p.interface,
                        receiver,
                        proto,
                        port,
                    };
                    let n = ix.flows.len();
                    let f = *flows.entry(key).or_insert(n);
                    if f == n {
                        ix.flows.push(Flow {
                            key,
                            side: Side::default(),
                        });
                    }
                    ix.flows[f].side.add(offset, p.time_ns, &payload, true);
                }
                Record::Summary(s) => ix.summary = Some(s),
                Record::Unknown(_) => ix.unknown_blocks += 1,
                Record::Secrets(_) => {}
            }
        }
        if ix.session.is_none() && ix.damage.is_none() {
            return Err(FormatError {
                path: path.to_string(),
                offset: 0,
                message: "not a plg capture: no session block".into(),
            });
        }
        for c in &mut ix.conns {
            for s in &mut c.dirs {
                s.seal();
            }
        }
        for f in &mut ix.flows {
            f.side.seal();
        }
        Ok(ix)
    }

    fn anomaly(&mut self, what: String) {
        self.anomaly_count += 1;
        if self.anomalies.len() < 5 {
            self.anomalies.push(what);
        }
    }

    /// A capture without its closing summary, or one that could not be read to the end.
    pub fn truncated(&self) -> bool {
        self.summary.is_none() || self.damage.is_some()
    }

    /// The name of a process (or `external`, or `#N` for an index the session does not list).
    pub fn proc_name(&self, index: ProcIndex) -> String {
        if index == EXTERNAL {
            return "external".into();
        }
        self.processes
            .iter()
            .find(|p| p.index == index)
            .map_or_else(|| format!("#{index}"), |p| p.name.clone())
    }

    pub fn peer_name(&self, peer: Peer) -> String {
        match peer {
            Peer::Proc(i) => self.proc_name(i),
            Peer::Addr(a) => a.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip() {
        let mut o = Offsets::default();
        let v = [0u64, 5, 1_000_000, 1_000_001, u64::MAX / 2];
        for x in v {
            o.push(x);
        }
        assert_eq!(o.iter().collect::<Vec<_>>(), v);
        assert_eq!(o.len(), 5);
    }

    #[test]
    fn udp_view_ignores_source_port_and_checksum() {
        let mut p = vec![
            0x45, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p.extend_from_slice(&[0x9c, 0x40, 0, 53, 0, 12, 0xab, 0xcd, b'a', b'b', b'c', b'd']);
        let (dst, proto, port, payload) = packet_view(&p).unwrap();
        assert_eq!(
            (dst, proto, port),
            (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 17, 53)
        );
        assert_eq!(payload, b"abcd");
        assert!(packet_view(&p[..10]).is_none());
    }

    #[test]
    fn ipv6_udp_and_resolver_datagrams_are_seen_as_ipv4_ones_are() {
        let me: Ipv6Addr = "fd00:706c:67::3".parse().unwrap();
        let gw: Ipv6Addr = "fd00:706c:67::1".parse().unwrap();
        let p0: Ipv6Addr = "fd00:706c:67::2".parse().unwrap();
        let d = crate::wire::dns::datagram6(me, 40000, p0, 5353, b"abcd").unwrap();
        let (dst, proto, port, payload) = packet_view(&d).unwrap();
        assert_eq!((dst, proto, port), (IpAddr::V6(p0), 17, 5353));
        assert_eq!(payload, b"abcd");
        let gws = (Ipv4Addr::new(10, 0, 0, 1), Some(gw));
        assert!(!resolver_datagram(&d, gws));
        let q = crate::wire::dns::datagram6(me, 40000, gw, 53, b"abcd").unwrap();
        assert!(resolver_datagram(&q, gws));
        assert!(!resolver_datagram(&q, (gws.0, None)));
        let session = Session {
            format_version: crate::format::FORMAT_VERSION,
            mode: crate::format::Mode::Record,
            subnet: Ipv4Addr::new(10, 0, 0, 0),
            prefix_len: 24,
            subnet6: Some(("fd00:706c:67::".parse().unwrap(), 64)),
            start_ns: 0,
            plg_version: "test".into(),
        };
        assert_eq!(gateway_of(&session).1, Some(gw));
    }
}
