//! The replay script: what a capture says each connection did, in an order the replay can
//! follow without timing guesswork. Built in one streaming pass; it holds positions and sizes,
//! never stream bytes (those are re-read from the capture by offset when they are played or
//! compared), so its size follows the number of reads recorded, not the bytes.
//!
//! The causal rule: a chunk of direction d was sent, in the recording, after the other
//! direction had carried `other_before` bytes. Replay writes it only once the live side has
//! sent at least that many, so request/response protocols stay in step.

use crate::format::{
    CaptureReader, CloseKind, ConnId, ConnOpen, Direction, FormatError, Process, Record, Session,
};
use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;

/// One recorded read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Offset of its Data block in the capture.
    pub offset: u64,
    pub len: u32,
    pub time_ns: u64,
    /// Bytes the other direction had carried when this chunk was read.
    pub other_before: u64,
    /// The other side had already closed (FIN or RST) when this chunk was read: replay holds
    /// it until the live other side has closed too, as the recorded peer saw it.
    pub after_close: bool,
}

/// One side's close (FIN or RST), at its place among the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    pub kind: CloseKind,
    pub time_ns: u64,
    pub other_before: u64,
    /// The other side had already closed when this one did.
    pub after_close: bool,
}

#[derive(Debug, Clone)]
pub struct ConnScript {
    pub open: ConnOpen,
    /// Per direction (index 0: client to server, 1: server to client).
    pub steps: [Vec<Step>; 2],
    pub close: [Option<Close>; 2],
    pub total: [u64; 2],
    /// What other connections of the same client process had done when this one opened:
    /// a played client opens it only after they have done as much in the replay.
    pub after: Vec<After>,
}

/// A connection's progress another one waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct After {
    /// Index into `Script::conns`.
    pub conn: usize,
    /// Bytes each way it had carried.
    pub bytes: [u64; 2],
    /// It had ended (both directions closed).
    pub ended: bool,
}

/// A non-TCP packet, to be re-sent from a played process.
#[derive(Debug, Clone, Copy)]
pub struct PacketStep {
    pub offset: u64,
    pub interface: u32,
    pub time_ns: u64,
    /// For a UDP datagram (IPv4 or IPv6, unfragmented): its source and destination.
    pub udp: Option<(SocketAddr, SocketAddr)>,
    /// For a UDP datagram sent back to where an earlier one came from (the reverse ports):
    /// that earlier one's index in `Script::packets`, and how many leading payload bytes this
    /// one echoed from it (`wire::udp::echo_len`). Replay plays such an answer when the live
    /// side sends the matching request, not by the clock.
    pub answers: Option<(usize, u8)>,
}

/// Distinct UDP source/destination pairs remembered to pair answers with requests; past this
/// many the memory is cleared (a flood of one-off datagrams has no answers to pair).
const MAX_UDP_PAIRS: usize = 65_536;

#[derive(Debug, Clone)]
pub struct Script {
    pub session: Session,
    pub processes: Vec<Process>,
    pub conns: Vec<ConnScript>,
    pub packets: Vec<PacketStep>,
    /// How each recorded process ended, by index (None: the capture does not say).
    pub exits: Vec<Option<crate::format::ExitStatus>>,
    /// The capture has no closing summary: it was cut short.
    pub truncated: bool,
    /// The capture stopped at a damaged block: what came before is kept.
    pub damaged: Option<FormatError>,
    pub unknown_blocks: u64,
}

pub fn dir_index(d: Direction) -> usize {
    match d {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

impl Script {
    /// Reads the whole capture once. A damaged tail is kept as `damaged` (replay what is
    /// complete); an error before the session and process records is returned.
    pub fn build<R: Read>(reader: &mut CaptureReader<R>) -> Result<Script, FormatError> {
        let mut session = None;
        let mut processes = Vec::new();
        let mut conns: Vec<ConnScript> = Vec::new();
        let mut by_id: HashMap<ConnId, usize> = HashMap::new();
        let mut open_by_client: HashMap<u16, Vec<usize>> = HashMap::new();
        let mut packets = Vec::new();
        let mut summary = false;
        let mut damaged = None;
        let mut unknown_blocks = 0;
        let mut exits = Vec::new();
        // The last UDP datagram seen per (source, destination), with its first payload bytes.
        let mut last_udp: HashMap<(SocketAddr, SocketAddr), (usize, Vec<u8>)> = HashMap::new();
        while let Some(rec) = reader.next() {
            let rec = match rec {
                Ok(r) => r,
                Err(e) if session.is_some() => {
                    damaged = Some(e);
                    break;
                }
                Err(e) => return Err(e),
            };
            let offset = CaptureReader::position(reader);
            match rec {
                Record::Session(s) => session = Some(s),
                Record::Process(p) => processes.push(p),
                Record::ConnOpen(open) => {
                    let idx = conns.len();
                    // Every connection of this client open since its previous one opened,
                    // including those that ended meanwhile: `curl a && curl b` must not
                    // start b before a is over. Ended ones are dropped after this snapshot,
                    // so the list stays as long as the client's concurrency.
                    let open_list = open_by_client.entry(open.client).or_default();
                    let after = open_list
                        .iter()
                        .map(|&c| After {
                            conn: c,
                            bytes: conns[c].total,
                            ended: conns[c].close.iter().all(|c| c.is_some()),
                        })
                        .collect();
                    open_list.retain(|&c| conns[c].close.iter().any(|c| c.is_none()));
                    open_list.push(idx);
                    by_id.insert(open.id, idx);
                    conns.push(ConnScript {
                        open,
                        steps: [Vec::new(), Vec::new()],
                        close: [None, None],
                        total: [0, 0],
                        after,
                    });
                }
                Record::Data(d) => {
                    if let Some(&i) = by_id.get(&d.id) {
                        let c = &mut conns[i];
                        let di = dir_index(d.dir);
                        c.steps[di].push(Step {
                            offset,
                            len: d.bytes.len() as u32,
                            time_ns: d.time_ns,
                            other_before: c.total[1 - di],
                            after_close: c.close[1 - di].is_some(),
                        });
                        c.total[di] += d.bytes.len() as u64;
                    }
                }
                Record::ConnClose(cl) => {
                    if let Some(&i) = by_id.get(&cl.id) {
                        let c = &mut conns[i];
                        let di = dir_index(cl.dir);
                        let after_close = c.close[1 - di].is_some();
                        c.close[di].get_or_insert(Close {
                            kind: cl.kind,
                            time_ns: cl.time_ns,
                            other_before: c.total[1 - di],
                            after_close,
                        });
                        if cl.kind == CloseKind::Rst {
                            // A reset ends both directions at once.
                            c.close[1 - di].get_or_insert(Close {
                                kind: CloseKind::Rst,
                                time_ns: cl.time_ns,
                                other_before: c.total[di],
                                after_close: false,
                            });
                        }
                    }
                }
                Record::Packet(p) => {
                    let idx = packets.len();
                    let udp = crate::wire::udp::view(&p.bytes);
                    let mut answers = None;
                    if let Some((src, dst, payload)) = udp {
                        if let Some((q, head)) = last_udp.get(&(dst, src)) {
                            let echo = crate::wire::udp::echo_len(head, payload);
                            answers = Some((*q, echo as u8));
                        }
                        if last_udp.len() >= MAX_UDP_PAIRS {
                            last_udp.clear();
                        }
                        let head =
                            payload[..payload.len().min(crate::wire::udp::MAX_ECHO)].to_vec();
                        last_udp.insert((src, dst), (idx, head));
                    }
                    packets.push(PacketStep {
                        offset,
                        interface: p.interface,
                        time_ns: p.time_ns,
                        udp: udp.map(|(s, d, _)| (s, d)),
                        answers,
                    });
                }
                Record::Summary(_) => summary = true,
                Record::Unknown(_) => unknown_blocks += 1,
                Record::Secrets(_) => {}
                Record::ProcessExit(e) => {
                    let i = e.index as usize;
                    if exits.len() <= i {
                        exits.resize(i + 1, None);
                    }
                    exits[i] = Some(e.status);
                }
            }
        }
        if !summary {
            // A capture cut short: what it holds of each connection is all there is to play,
            // so a played side closes after its last recorded byte instead of leaving the
            // live peer waiting for the rest.
            for c in &mut conns {
                for d in 0..2 {
                    if c.close[d].is_none() {
                        let last = c.steps[d].last().map_or(c.open.time_ns, |s| s.time_ns);
                        c.close[d] = Some(Close {
                            kind: CloseKind::Fin,
                            time_ns: last,
                            other_before: c.total[1 - d],
                            after_close: false,
                        });
                    }
                }
            }
        }
        let session = session.ok_or_else(|| FormatError {
            path: String::new(),
            offset: 0,
            message: "no session record: not a plg capture".into(),
        })?;
        Ok(Script {
            session,
            processes,
            conns,
            packets,
            exits,
            truncated: !summary,
            damaged,
            unknown_blocks,
        })
    }
}
