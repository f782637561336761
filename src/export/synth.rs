//! TCP conversation synthesis: turns the connection records of a capture (open, data, close)
//! into the packets a sniffer between the two processes would have seen.
//!
//! Sans-IO: records go in, frames come out through a [`Sink`]; no files here. Per-connection
//! state exists only while a connection is open, so memory follows the number of connections
//! open at once, never the size of the capture.
//!
//! What a conversation looks like:
//! - established: SYN, SYN-ACK, ACK (MSS 1460, window scale 7), all at the ConnOpen time;
//! - each Data record: segments of at most [`MSS`] bytes (PSH on the last), then a pure ACK
//!   from the receiver (and one every [`ACK_EVERY`] bytes within a large record, so the bytes
//!   in flight never approach the advertised window);
//! - FIN: FIN-ACK from the closing side, ACKed by the other; RST: RST-ACK, and the connection
//!   is over (records about it after that are ignored);
//! - refused: SYN answered by RST-ACK; unreachable: a lone SYN.
//!
//! Every segment of a record carries that record's timestamp, so the output stays in capture
//! order. Initial sequence numbers derive from the connection id: the same capture always
//! exports to the same bytes.

use super::segment::{flags, Segment, MAX_HEADER};
use crate::format::{CloseKind, ConnId, ConnOpen, Direction, Outcome, ProcIndex, Record};
use std::collections::HashMap;
use std::io;

/// Largest payload of a synthesized segment (Ethernet MTU less IPv4 and TCP headers).
pub const MSS: usize = 1460;

/// A receiver acknowledges at least this often within one large Data record.
pub const ACK_EVERY: u32 = 64 * 1024;

/// Window field after the handshake; with scale 7 that advertises 4 MiB.
const WINDOW: u16 = 32768;
/// Window field of SYN and SYN-ACK (never scaled).
const SYN_WINDOW: u16 = 65535;

/// One packet for the output: `head` then `payload` are its bytes (an IPv4 packet).
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub time_ns: u64,
    /// The process that sent it ([`crate::format::EXTERNAL`] for the far end of an external
    /// connection).
    pub sender: ProcIndex,
    pub head: &'a [u8],
    pub payload: &'a [u8],
    /// Length on the wire; more than `head.len() + payload.len()` only for a packet the
    /// capture itself truncated.
    pub orig_len: u32,
}

impl Frame<'_> {
    pub fn len(&self) -> usize {
        self.head.len() + self.payload.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where frames go (a pcap or pcapng writer, a counter in tests).
pub trait Sink {
    fn frame(&mut self, frame: &Frame<'_>) -> io::Result<()>;

    /// A process of the session was announced (pcapng declares its interface).
    fn process(&mut self, _index: ProcIndex, _name: &str, _command: &str) -> io::Result<()> {
        Ok(())
    }
}

/// Side index: 0 the client, 1 the server.
fn side(dir: Direction) -> usize {
    match dir {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

/// The state of one open connection's synthetic conversation.
#[derive(Debug)]
struct Conversation {
    open: ConnOpen,
    /// Next sequence number of each side.
    next_seq: [u32; 2],
    /// Bytes each side sent that the other has not acknowledged yet.
    unacked: [u32; 2],
    ip_id: [u16; 2],
    fin: [bool; 2],
}

impl Conversation {
    fn addr(&self, s: usize) -> std::net::SocketAddr {
        if s == 0 {
            self.open.client_addr
        } else {
            self.open.server_addr
        }
    }

    fn proc(&self, s: usize) -> ProcIndex {
        if s == 0 {
            self.open.client
        } else {
            self.open.server
        }
    }

    /// Emits one segment from side `s` carrying `payload`.
    fn send(
        &mut self,
        sink: &mut dyn Sink,
        time_ns: u64,
        s: usize,
        (seg_flags, seq, ack): (u8, u32, u32),
        payload: &[u8],
    ) -> io::Result<()> {
        let seg = Segment {
            src: self.addr(s),
            dst: self.addr(1 - s),
            seq,
            ack,
            flags: seg_flags,
            window: if seg_flags & flags::SYN != 0 {
                SYN_WINDOW
            } else {
                WINDOW
            },
            ip_id: self.ip_id[s],
        };
        self.ip_id[s] = self.ip_id[s].wrapping_add(1);
        let mut head = [0u8; MAX_HEADER];
        let n = seg.emit_header(payload, &mut head);
        sink.frame(&Frame {
            time_ns,
            sender: self.proc(s),
            head: &head[..n],
            payload,
            orig_len: (n + payload.len()) as u32,
        })
    }

    /// Side `s` acknowledges everything the other side sent.
    fn ack(&mut self, sink: &mut dyn Sink, time_ns: u64, s: usize) -> io::Result<()> {
        self.unacked[1 - s] = 0;
        let (seq, ack) = (self.next_seq[s], self.next_seq[1 - s]);
        self.send(sink, time_ns, s, (flags::ACK, seq, ack), &[])
    }

    fn data(
        &mut self,
        sink: &mut dyn Sink,
        time_ns: u64,
        s: usize,
        bytes: &[u8],
    ) -> io::Result<()> {
        let count = bytes.len().div_ceil(MSS);
        for (i, chunk) in bytes.chunks(MSS).enumerate() {
            let f = if i + 1 == count {
                flags::ACK | flags::PSH
            } else {
                flags::ACK
            };
            let (seq, ack) = (self.next_seq[s], self.next_seq[1 - s]);
            self.send(sink, time_ns, s, (f, seq, ack), chunk)?;
            self.next_seq[s] = seq.wrapping_add(chunk.len() as u32);
            self.unacked[s] += chunk.len() as u32;
            if self.unacked[s] >= ACK_EVERY && i + 1 < count {
                self.ack(sink, time_ns, 1 - s)?;
            }
        }
        if self.unacked[s] > 0 {
            self.ack(sink, time_ns, 1 - s)?;
        }
        Ok(())
    }
}

/// Initial sequence numbers for a connection: spread out, deterministic.
fn isn(id: ConnId, s: usize) -> u32 {
    let x = (u64::from(id) << 1 | s as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 32) as u32
}

/// Synthesizes the conversations of every connection fed to it.
#[derive(Debug, Default)]
pub struct Synthesizer {
    open: HashMap<ConnId, Conversation>,
}

impl Synthesizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Connections whose conversation is still going on.
    pub fn open_connections(&self) -> usize {
        self.open.len()
    }

    /// Feeds one record; emits its packets into `sink`. Records that are not about TCP
    /// connections (packets, processes, ...) are ignored: the caller copies packets itself.
    pub fn record(&mut self, rec: &Record, sink: &mut dyn Sink) -> io::Result<()> {
        match rec {
            Record::ConnOpen(open) => self.conn_open(open, sink),
            Record::Data(d) => match self.open.get_mut(&d.id) {
                Some(c) if !c.fin[side(d.dir)] => c.data(sink, d.time_ns, side(d.dir), &d.bytes),
                _ => Ok(()),
            },
            Record::ConnClose(cl) => {
                let Some(c) = self.open.get_mut(&cl.id) else {
                    return Ok(());
                };
                let s = side(cl.dir);
                if c.fin[s] {
                    return Ok(());
                }
                let (seq, ack) = (c.next_seq[s], c.next_seq[1 - s]);
                match cl.kind {
                    CloseKind::Fin => {
                        c.send(
                            sink,
                            cl.time_ns,
                            s,
                            (flags::FIN | flags::ACK, seq, ack),
                            &[],
                        )?;
                        c.next_seq[s] = seq.wrapping_add(1);
                        c.fin[s] = true;
                        c.ack(sink, cl.time_ns, 1 - s)?;
                        if c.fin[1 - s] {
                            self.open.remove(&cl.id);
                        }
                    }
                    CloseKind::Rst => {
                        c.send(
                            sink,
                            cl.time_ns,
                            s,
                            (flags::RST | flags::ACK, seq, ack),
                            &[],
                        )?;
                        self.open.remove(&cl.id);
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn conn_open(&mut self, open: &ConnOpen, sink: &mut dyn Sink) -> io::Result<()> {
        let (ic, is) = (isn(open.id, 0), isn(open.id, 1));
        let mut c = Conversation {
            open: *open,
            next_seq: [ic, is],
            unacked: [0, 0],
            ip_id: [(ic >> 16) as u16, (is >> 16) as u16],
            fin: [false, false],
        };
        let t = open.time_ns;
        c.send(sink, t, 0, (flags::SYN, ic, 0), &[])?;
        match open.outcome {
            Outcome::Established => {
                c.send(
                    sink,
                    t,
                    1,
                    (flags::SYN | flags::ACK, is, ic.wrapping_add(1)),
                    &[],
                )?;
                c.next_seq = [ic.wrapping_add(1), is.wrapping_add(1)];
                c.ack(sink, t, 0)?;
                self.open.insert(open.id, c);
            }
            Outcome::Refused => {
                c.send(
                    sink,
                    t,
                    1,
                    (flags::RST | flags::ACK, 0, ic.wrapping_add(1)),
                    &[],
                )?;
            }
            Outcome::Unreachable => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{ConnClose, Data};

    /// Collects (sender, flags, seq, ack, payload length) of every frame.
    #[derive(Default)]
    struct Collect(Vec<(ProcIndex, u8, u32, u32, usize)>);

    impl Sink for Collect {
        fn frame(&mut self, f: &Frame<'_>) -> io::Result<()> {
            let h = f.head;
            let seq = u32::from_be_bytes(h[24..28].try_into().unwrap());
            let ack = u32::from_be_bytes(h[28..32].try_into().unwrap());
            self.0.push((f.sender, h[33], seq, ack, f.payload.len()));
            Ok(())
        }
    }

    fn open(outcome: Outcome) -> Record {
        Record::ConnOpen(ConnOpen {
            id: 5,
            time_ns: 1,
            client: 1,
            client_addr: "10.0.0.2:40000".parse().unwrap(),
            server: 0,
            server_addr: "10.0.0.1:80".parse().unwrap(),
            outcome,
        })
    }

    fn data(dir: Direction, n: usize) -> Record {
        Record::Data(Data {
            id: 5,
            dir,
            time_ns: 2,
            bytes: vec![b'x'; n],
        })
    }

    fn close(dir: Direction, kind: CloseKind) -> Record {
        Record::ConnClose(ConnClose {
            id: 5,
            dir,
            kind,
            time_ns: 3,
        })
    }

    #[test]
    fn handshake_data_and_fins_have_consistent_numbers() {
        let mut s = Synthesizer::new();
        let mut out = Collect::default();
        for r in [
            open(Outcome::Established),
            data(Direction::ClientToServer, 3000),
            data(Direction::ServerToClient, 10),
            close(Direction::ClientToServer, CloseKind::Fin),
            close(Direction::ServerToClient, CloseKind::Fin),
        ] {
            s.record(&r, &mut out).unwrap();
        }
        let (c, sv) = (isn(5, 0), isn(5, 1));
        use flags::*;
        let want = vec![
            (1, SYN, c, 0, 0),
            (0, SYN | ACK, sv, c + 1, 0),
            (1, ACK, c + 1, sv + 1, 0),
            (1, ACK, c + 1, sv + 1, 1460),
            (1, ACK, c + 1461, sv + 1, 1460),
            (1, ACK | PSH, c + 2921, sv + 1, 80),
            (0, ACK, sv + 1, c + 3001, 0),
            (0, ACK | PSH, sv + 1, c + 3001, 10),
            (1, ACK, c + 3001, sv + 11, 0),
            (1, FIN | ACK, c + 3001, sv + 11, 0),
            (0, ACK, sv + 11, c + 3002, 0),
            (0, FIN | ACK, sv + 11, c + 3002, 0),
            (1, ACK, c + 3002, sv + 12, 0),
        ];
        assert_eq!(out.0, want);
        assert_eq!(s.open_connections(), 0);
    }

    #[test]
    fn refused_is_syn_then_rst_ack() {
        let mut s = Synthesizer::new();
        let mut out = Collect::default();
        s.record(&open(Outcome::Refused), &mut out).unwrap();
        let c = isn(5, 0);
        assert_eq!(
            out.0,
            vec![
                (1, flags::SYN, c, 0, 0),
                (0, flags::RST | flags::ACK, 0, c + 1, 0)
            ]
        );
        assert_eq!(s.open_connections(), 0);
    }

    #[test]
    fn rst_ends_the_conversation() {
        let mut s = Synthesizer::new();
        let mut out = Collect::default();
        s.record(&open(Outcome::Established), &mut out).unwrap();
        s.record(&close(Direction::ServerToClient, CloseKind::Rst), &mut out)
            .unwrap();
        let n = out.0.len();
        s.record(&data(Direction::ClientToServer, 5), &mut out)
            .unwrap();
        assert_eq!(out.0.len(), n, "nothing after RST");
        assert_eq!(out.0[n - 1].1, flags::RST | flags::ACK);
    }

    #[test]
    fn large_record_is_acked_within_the_window() {
        let mut s = Synthesizer::new();
        let mut out = Collect::default();
        s.record(&open(Outcome::Established), &mut out).unwrap();
        s.record(&data(Direction::ClientToServer, 1 << 20), &mut out)
            .unwrap();
        let mut in_flight = 0usize;
        for &(sender, _, _, _, len) in &out.0[3..] {
            if sender == 1 {
                in_flight += len;
                assert!(in_flight < ACK_EVERY as usize + MSS);
            } else {
                in_flight = 0;
            }
        }
        assert_eq!(in_flight, 0);
    }
}
