//! Capture analysis: what a capture holds and whether it holds together, computed in one
//! streaming pass over its records. Used by `plg inspect`; reusable by any tool that wants
//! per-connection figures (diff, tests).
//!
//! Memory follows the number of processes and of connections open at once, never the size of
//! the capture: a finished connection's [`ConnStats`] is handed back to the caller by
//! [`Analyzer::record`] and forgotten. No I/O here.

use crate::format::{
    CloseKind, ConnId, ConnOpen, Direction, FormatError, Outcome, Process, ProcessExit, Record,
    Session, Summary, EXTERNAL,
};
use std::collections::{BTreeMap, HashMap};

/// At most this many problems are kept with their text; the rest are only counted.
pub const MAX_PROBLEMS: usize = 100;

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both sides closed with FIN.
    Fin,
    /// One side reset it.
    Rst,
    /// Nobody listened: the server's kernel answered RST to the SYN.
    Refused,
    /// The SYN got no answer.
    Unreachable,
    /// Still open (at least one direction) when the capture ends.
    Unfinished,
}

impl End {
    pub fn as_str(self) -> &'static str {
        match self {
            End::Fin => "fin",
            End::Rst => "rst",
            End::Refused => "refused",
            End::Unreachable => "unreachable",
            End::Unfinished => "unfinished",
        }
    }
}

/// Side index: 0 the client (sender of the SYN), 1 the server.
pub fn side(dir: Direction) -> usize {
    match dir {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

/// Figures of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnStats {
    pub open: ConnOpen,
    /// Stream bytes sent by the client ([0]) and by the server ([1]).
    pub bytes: [u64; 2],
    pub data_blocks: [u64; 2],
    /// How and when each side stopped sending.
    pub closes: [Option<(CloseKind, u64)>; 2],
    /// Time of the connection's last record.
    pub last_ns: u64,
    /// The client opened with a TLS ClientHello: its client random.
    pub tls: Option<crate::wire::tls::ClientRandom>,
}

impl ConnStats {
    fn new(open: ConnOpen) -> Self {
        ConnStats {
            open,
            bytes: [0; 2],
            data_blocks: [0; 2],
            closes: [None; 2],
            last_ns: open.time_ns,
            tls: None,
        }
    }

    pub fn end(&self) -> End {
        match self.open.outcome {
            Outcome::Refused => End::Refused,
            Outcome::Unreachable => End::Unreachable,
            Outcome::Established => {
                let rst = self
                    .closes
                    .iter()
                    .any(|c| matches!(c, Some((CloseKind::Rst, _))));
                if rst {
                    End::Rst
                } else if self.closes.iter().all(Option::is_some) {
                    End::Fin
                } else {
                    End::Unfinished
                }
            }
        }
    }

    /// Whether nothing more can happen on this connection.
    pub fn is_finished(&self) -> bool {
        self.end() != End::Unfinished
    }

    pub fn duration_ns(&self) -> u64 {
        self.last_ns.saturating_sub(self.open.time_ns)
    }
}

/// A process with how it ended, if the capture says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub process: Process,
    pub exit: Option<ProcessExit>,
}

/// Something inconsistent in a capture, at the byte offset of the record at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub offset: u64,
    pub message: String,
}

/// What a capture holds: the summary `plg inspect` shows.
#[derive(Debug, Clone, Default)]
pub struct CaptureInfo {
    pub session: Option<Session>,
    pub processes: Vec<ProcessInfo>,
    pub records: u64,
    pub connections: u64,
    pub refused: u64,
    pub unreachable: u64,
    /// Connections that ended with an RST.
    pub reset: u64,
    /// Connections still open when the capture ends.
    pub unfinished: u64,
    pub data_blocks: u64,
    /// Stream bytes client to server ([0]) and server to client ([1]).
    pub bytes: [u64; 2],
    pub packets: u64,
    pub packet_bytes: u64,
    /// Non-TCP packets by IP protocol number (255 here also stands for "not IPv4").
    pub protocols: BTreeMap<u8, u64>,
    /// Latest timestamp of any record.
    pub last_ns: u64,
    /// The closing summary, when the capture has one.
    pub summary: Option<Summary>,
    /// Blocks the reader did not know, by (block type, custom kind).
    pub unknown: BTreeMap<(u32, Option<u16>), u64>,
    /// The error that stopped reading, if any (a truncated or damaged file).
    pub read_error: Option<Problem>,
    pub problems: Vec<Problem>,
    /// All problems found, including those beyond [`MAX_PROBLEMS`].
    pub problem_count: u64,
    pub tls: TlsInfo,
}

/// TLS connections and the keys for them (from Decryption Secrets Blocks).
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// Connections whose client opened with a TLS ClientHello.
    pub connections: u64,
    /// Of those, the ones the capture holds keys for.
    pub with_keys: u64,
    /// The others (ids in order; at most [`MAX_PROBLEMS`] listed).
    pub without_keys: Vec<ConnId>,
    /// Key log lines in the capture's secrets blocks.
    pub key_lines: u64,
}

impl CaptureInfo {
    /// A complete capture: read to its end without error, and closed by its summary.
    pub fn is_complete(&self) -> bool {
        self.summary.is_some() && self.read_error.is_none()
    }

    /// Whether `--check` passes.
    pub fn is_sound(&self) -> bool {
        self.is_complete() && self.problem_count == 0
    }

    pub fn start_ns(&self) -> Option<u64> {
        self.session.as_ref().map(|s| s.start_ns)
    }

    /// From the session start to the summary's end (or the last record of a truncated one).
    pub fn duration_ns(&self) -> u64 {
        let end = self
            .summary
            .map_or(self.last_ns, |s| s.end_ns.max(self.last_ns));
        end.saturating_sub(self.start_ns().unwrap_or(end))
    }

    pub fn process_name(&self, index: u16) -> String {
        if index == EXTERNAL {
            return "external".into();
        }
        self.processes
            .iter()
            .find(|p| p.process.index == index)
            .map_or_else(|| format!("p{index}"), |p| p.process.name.clone())
    }
}

/// Name of an IP protocol number as the summary shows it.
pub fn protocol_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        2 => "igmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        255 => "other".into(),
        n => format!("ip-proto-{n}"),
    }
}

/// Which connection ids were seen, one bit each (ids are dense from 0).
#[derive(Debug, Default)]
struct IdSet(Vec<u64>);

impl IdSet {
    /// Inserts `id`; false if it was there already. Ids past 2^28 are not tracked (32 MiB).
    fn insert(&mut self, id: ConnId) -> bool {
        let (w, b) = ((id / 64) as usize, id % 64);
        if id >= 1 << 28 {
            return true;
        }
        if self.0.len() <= w {
            self.0.resize(w + 1, 0);
        }
        let fresh = self.0[w] & (1 << b) == 0;
        self.0[w] |= 1 << b;
        fresh
    }

    fn contains(&self, id: ConnId) -> bool {
        self.0
            .get((id / 64) as usize)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }
}

/// The streaming pass: feed records in file order, then [`Analyzer::finish`].
#[derive(Debug, Default)]
pub struct Analyzer {
    info: CaptureInfo,
    open: BTreeMap<ConnId, ConnStats>,
    seen: IdSet,
    /// Records about each connection after it finished (reported once per connection).
    late: HashMap<ConnId, ()>,
    resets_closes: u64,
    /// Client randoms the key log names, and TLS connections not yet matched with one: keys
    /// may come before or after their connection. Bounded by the capture's own key log and
    /// TLS connections (32 bytes each).
    tls_keys: std::collections::HashSet<crate::wire::tls::ClientRandom>,
    tls_waiting: BTreeMap<ConnId, crate::wire::tls::ClientRandom>,
}

impl Analyzer {
    pub fn new() -> Self {
        Self::default()
    }

    fn problem(&mut self, offset: u64, message: String) {
        self.info.problem_count += 1;
        if self.info.problems.len() < MAX_PROBLEMS {
            self.info.problems.push(Problem { offset, message });
        }
    }

    /// The smallest id of a connection still open (for printing finished ones in id order).
    pub fn min_open_id(&self) -> Option<ConnId> {
        self.open.keys().next().copied()
    }

    /// The summary so far.
    pub fn info(&self) -> &CaptureInfo {
        &self.info
    }

    fn known_process(&self, index: u16) -> bool {
        index == EXTERNAL || self.info.processes.iter().any(|p| p.process.index == index)
    }

    /// Takes in one record read at byte `offset`; returns the connection it finished, if any.
    pub fn record(&mut self, rec: &Record, offset: u64) -> Option<ConnStats> {
        self.info.records += 1;
        if self.info.summary.is_some() && !matches!(rec, Record::Unknown(_)) {
            self.problem(offset, "record after the closing summary".into());
        }
        match rec {
            Record::Session(s) => {
                if self.info.session.is_some() {
                    self.problem(offset, "a second session record".into());
                } else if self.info.records > 1 {
                    self.problem(offset, "the session record is not the first".into());
                }
                self.info.session.get_or_insert_with(|| s.clone());
            }
            Record::Process(p) => {
                if self.known_process(p.index) {
                    self.problem(offset, format!("process {} declared twice", p.index));
                } else {
                    self.info.processes.push(ProcessInfo {
                        process: p.clone(),
                        exit: None,
                    });
                }
            }
            Record::ProcessExit(e) => {
                self.info.last_ns = self.info.last_ns.max(e.time_ns);
                match self
                    .info
                    .processes
                    .iter_mut()
                    .find(|p| p.process.index == e.index)
                {
                    Some(p) if p.exit.is_none() => p.exit = Some(*e),
                    Some(_) => self.problem(offset, format!("process {} exits twice", e.index)),
                    None => self.problem(offset, format!("exit of unknown process {}", e.index)),
                }
            }
            Record::ConnOpen(o) => {
                self.info.last_ns = self.info.last_ns.max(o.time_ns);
                if !self.seen.insert(o.id) {
                    self.problem(offset, format!("connection {} opened twice", o.id));
                    return None;
                }
                for p in [o.client, o.server] {
                    if !self.known_process(p) {
                        self.problem(
                            offset,
                            format!("connection {} names unknown process {p}", o.id),
                        );
                    }
                }
                self.info.connections += 1;
                let stats = ConnStats::new(*o);
                match o.outcome {
                    Outcome::Established => {
                        self.open.insert(o.id, stats);
                    }
                    Outcome::Refused => {
                        self.info.refused += 1;
                        return Some(stats);
                    }
                    Outcome::Unreachable => {
                        self.info.unreachable += 1;
                        return Some(stats);
                    }
                }
            }
            Record::Data(d) => {
                self.info.last_ns = self.info.last_ns.max(d.time_ns);
                self.info.data_blocks += 1;
                let s = side(d.dir);
                self.info.bytes[s] += d.bytes.len() as u64;
                match self.open.get_mut(&d.id) {
                    Some(c) => {
                        if s == 0 && c.data_blocks[0] == 0 {
                            c.tls = crate::wire::tls::client_random(&d.bytes);
                            if let Some(random) = c.tls {
                                self.info.tls.connections += 1;
                                if self.tls_keys.contains(&random) {
                                    self.info.tls.with_keys += 1;
                                } else {
                                    self.tls_waiting.insert(d.id, random);
                                }
                            }
                        }
                        c.bytes[s] += d.bytes.len() as u64;
                        c.data_blocks[s] += 1;
                        c.last_ns = c.last_ns.max(d.time_ns);
                        if c.closes[s].is_some() {
                            self.problem(
                                offset,
                                format!("connection {}: data after its sender closed", d.id),
                            );
                        }
                    }
                    None => self.orphan(offset, d.id, "data"),
                }
            }
            Record::ConnClose(cl) => {
                self.info.last_ns = self.info.last_ns.max(cl.time_ns);
                if cl.kind == CloseKind::Rst {
                    self.resets_closes += 1;
                }
                let s = side(cl.dir);
                let Some(c) = self.open.get_mut(&cl.id) else {
                    self.orphan(offset, cl.id, "close");
                    return None;
                };
                match c.closes[s] {
                    // A side that sent its FIN may still be reset (docs/FORMAT.md): the
                    // connection ended with a reset.
                    Some((CloseKind::Fin, _)) if cl.kind == CloseKind::Rst => {}
                    Some(_) => {
                        let msg = format!("connection {}: the same side closed twice", cl.id);
                        self.problem(offset, msg);
                        return None;
                    }
                    None => {}
                }
                c.closes[s] = Some((cl.kind, cl.time_ns));
                c.last_ns = c.last_ns.max(cl.time_ns);
                if c.is_finished() {
                    let c = self.open.remove(&cl.id).expect("present");
                    if c.end() == End::Rst {
                        self.info.reset += 1;
                    }
                    return Some(c);
                }
            }
            Record::Packet(p) => {
                self.info.last_ns = self.info.last_ns.max(p.time_ns);
                self.info.packets += 1;
                self.info.packet_bytes += p.bytes.len() as u64;
                let proto = match p.bytes.first() {
                    Some(b) if b >> 4 == 4 && p.bytes.len() >= 20 => p.bytes[9],
                    // IPv6: the upper layer, past any extension headers.
                    Some(b) if b >> 4 == 6 => crate::wire::ipv6::Ipv6Packet::new_checked(&p.bytes)
                        .and_then(|ip| ip.upper_layer())
                        .map_or(255, |(proto, _)| proto),
                    _ => 255,
                };
                *self.info.protocols.entry(proto).or_default() += 1;
                let known = u16::try_from(p.interface).is_ok_and(|i| self.known_process(i));
                if !known {
                    let msg = format!("packet on unknown interface {}", p.interface);
                    self.problem(offset, msg);
                }
            }
            Record::Summary(s) => {
                if self.info.summary.is_some() {
                    self.problem(offset, "a second closing summary".into());
                }
                self.info.summary = Some(*s);
                self.check_summary(offset, s);
            }
            Record::Unknown(u) => {
                *self.info.unknown.entry((u.block_type, u.kind)).or_default() += 1;
            }
            Record::Secrets(sec) => {
                if sec.secrets_type == crate::format::block::dsb::SECRETS_TLS {
                    for random in crate::wire::tls::keylog_randoms(&sec.data) {
                        self.info.tls.key_lines += 1;
                        self.tls_keys.insert(random);
                    }
                    let keys = &self.tls_keys;
                    let before = self.tls_waiting.len();
                    self.tls_waiting.retain(|_, r| !keys.contains(r));
                    self.info.tls.with_keys += (before - self.tls_waiting.len()) as u64;
                } else {
                    *self
                        .info
                        .unknown
                        .entry((crate::format::block::DSB_TYPE, None))
                        .or_default() += 1;
                }
            }
        }
        None
    }

    /// A data or close record for a connection not open.
    fn orphan(&mut self, offset: u64, id: ConnId, what: &str) {
        if !self.seen.contains(id) {
            self.problem(offset, format!("{what} for connection {id}, never opened"));
        } else if self.late.insert(id, ()).is_none() {
            // Once per connection: a relay may legitimately see a close after an RST.
            if what == "data" {
                self.problem(
                    offset,
                    format!("data for connection {id} after it ended (or was refused)"),
                );
            } else {
                self.late.remove(&id);
            }
        }
    }

    /// Compares the closing summary with what the records said.
    fn check_summary(&mut self, offset: u64, s: &Summary) {
        let i = &self.info;
        let mut wrong = Vec::new();
        use crate::ui::count;
        // `noun` singular; `what` follows the count.
        let mut cmp = |noun: &str, what: &str, said: u64, counted: u64| {
            if said != counted {
                wrong.push(format!(
                    "summary says {}{what}, the capture holds {counted}",
                    count(said, noun)
                ));
            }
        };
        cmp("process", "", s.processes.into(), i.processes.len() as u64);
        cmp("connection", "", s.connections.into(), i.connections);
        // "Refused" in the Summary counts refused attempts only; plg 0.1 counted unreachable
        // ones too, and its captures stay valid (docs/FORMAT.md).
        let refused = u64::from(s.refused);
        let old_rule = i.unreachable > 0 && refused == i.refused + i.unreachable;
        cmp(
            "refused connection",
            "",
            refused,
            if old_rule { refused } else { i.refused },
        );
        cmp("data block", "", s.data_blocks, i.data_blocks);
        cmp("byte", " client to server", s.bytes_c2s, i.bytes[0]);
        cmp("byte", " server to client", s.bytes_s2c, i.bytes[1]);
        cmp("packet", "", s.packets, i.packets);
        // Resets: either connections reset or RST closes, depending on the writer's count.
        let resets_now =
            i.reset + self.open.values().filter(|c| c.end() == End::Rst).count() as u64;
        if u64::from(s.resets) != resets_now && u64::from(s.resets) != self.resets_closes {
            wrong.push(format!(
                "summary says {}, the capture holds {resets_now}",
                count(s.resets, "reset")
            ));
        }
        for w in wrong {
            self.problem(offset, w);
        }
    }

    /// A read error stopped the pass at `offset`.
    pub fn read_error(&mut self, e: &FormatError) {
        self.info.read_error = Some(Problem {
            offset: e.offset,
            message: e.message.clone(),
        });
    }

    /// Ends the pass: the summary, and the connections still open (in id order).
    pub fn finish(mut self) -> (CaptureInfo, Vec<ConnStats>) {
        let open: Vec<ConnStats> = std::mem::take(&mut self.open).into_values().collect();
        self.info.unfinished = open.len() as u64;
        self.info.tls.without_keys = self
            .tls_waiting
            .keys()
            .take(MAX_PROBLEMS)
            .copied()
            .collect();
        (self.info, open)
    }
}

/// Releases finished connections in id order as far as the open ones allow, so a table can
/// stream while listing connections in order.
#[derive(Debug, Default)]
pub struct InOrder {
    waiting: BTreeMap<ConnId, ConnStats>,
}

impl InOrder {
    /// Adds a finished connection; returns those now ready (ids below every open one).
    pub fn push(&mut self, c: ConnStats, min_open: Option<ConnId>) -> Vec<ConnStats> {
        self.waiting.insert(c.open.id, c);
        self.ready(min_open)
    }

    pub fn ready(&mut self, min_open: Option<ConnId>) -> Vec<ConnStats> {
        let keep = match min_open {
            Some(m) => self.waiting.split_off(&m),
            None => BTreeMap::new(),
        };
        std::mem::replace(&mut self.waiting, keep)
            .into_values()
            .collect()
    }

    /// Everything still waiting, merged with the unfinished ones, in id order.
    pub fn drain(&mut self, unfinished: Vec<ConnStats>) -> Vec<ConnStats> {
        for c in unfinished {
            self.waiting.insert(c.open.id, c);
        }
        std::mem::take(&mut self.waiting).into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{ConnClose, ConnOpen};
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn open(id: ConnId) -> Record {
        Record::ConnOpen(ConnOpen {
            id,
            time_ns: 1,
            client: EXTERNAL,
            client_addr: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 4000).into(),
            server: EXTERNAL,
            server_addr: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 3), 80).into(),
            outcome: Outcome::Established,
        })
    }

    fn close(id: ConnId, dir: Direction, kind: CloseKind) -> Record {
        Record::ConnClose(ConnClose {
            id,
            dir,
            kind,
            time_ns: 2,
        })
    }

    fn problems(recs: &[Record]) -> Vec<String> {
        let mut a = Analyzer::new();
        for (i, r) in recs.iter().enumerate() {
            a.record(r, i as u64);
        }
        a.info()
            .problems
            .iter()
            .map(|p| p.message.clone())
            .collect()
    }

    #[test]
    fn fin_then_rst_from_one_side_is_valid_and_ends_in_a_reset() {
        use CloseKind::*;
        use Direction::*;
        // shutdown(SHUT_WR), then close() with unread data: FIN, later RST.
        let recs = [
            open(0),
            close(0, ClientToServer, Fin),
            close(0, ClientToServer, Rst),
        ];
        assert_eq!(problems(&recs), Vec::<String>::new());
        let mut a = Analyzer::new();
        let mut ended = None;
        for (i, r) in recs.iter().enumerate() {
            ended = ended.or(a.record(r, i as u64));
        }
        assert_eq!(ended.map(|c| c.end()), Some(End::Rst));
        // Two FINs from one side are still wrong.
        let recs = [
            open(1),
            close(1, ServerToClient, Fin),
            close(1, ServerToClient, Fin),
        ];
        assert_eq!(problems(&recs).len(), 1);
    }
}
