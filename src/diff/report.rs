//! The result of comparing two captures, independent of how it is shown (human text, JSON,
//! JUnit XML: see `human.rs`, `json.rs`, `junit.rs`).

use super::index::{ConnKey, FlowKey};
use super::stream::StreamResult;
use crate::format::record::*;

/// What one capture is, as far as the comparison is concerned.
#[derive(Debug, Clone, Default)]
pub struct CaptureInfo {
    pub path: String,
    pub format_version: Option<u16>,
    pub mode: Option<Mode>,
    pub plg_version: Option<String>,
    /// Ends with its summary and was read to the end.
    pub complete: bool,
    /// Why reading stopped early, if it did (`<path>: at byte N: ...`).
    pub damage: Option<String>,
    /// The same as byte offset and message, for JSON (`{"offset", "message"}` as in inspect).
    pub damage_at: Option<(u64, String)>,
    pub processes: usize,
    pub connections: usize,
    pub packets: u64,
    pub data_bytes: u64,
    pub unknown_blocks: u64,
    pub anomalies: Vec<String>,
    pub anomaly_count: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Same,
    Different,
    /// In the first capture only.
    Missing,
    /// In the second capture only.
    Extra,
    /// Left out by a rule.
    Ignored,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Same => "same",
            Verdict::Different => "different",
            Verdict::Missing => "missing",
            Verdict::Extra => "extra",
            Verdict::Ignored => "ignored",
        }
    }

    pub fn is_difference(self) -> bool {
        matches!(self, Verdict::Different | Verdict::Missing | Verdict::Extra)
    }
}

#[derive(Debug, Clone)]
pub struct ProcVerdict {
    pub index: ProcIndex,
    pub a: Option<Process>,
    pub b: Option<Process>,
    pub exit_a: Option<ExitStatus>,
    pub exit_b: Option<ExitStatus>,
    pub verdict: Verdict,
    /// Differences (counted): exit status.
    pub problems: Vec<String>,
    /// Reported but not counted: another name or command line, a missing exit record.
    pub notes: Vec<String>,
}

/// Facts about one connection in one capture.
#[derive(Debug, Clone)]
pub struct ConnFacts {
    pub id: ConnId,
    pub client_addr: std::net::SocketAddr,
    pub server_addr: std::net::SocketAddr,
    pub outcome: Outcome,
    /// Indexed like `index::DIRS`.
    pub close: [Option<CloseKind>; 2],
    pub bytes: [u64; 2],
    pub duration_ns: Option<u64>,
    pub first_response_ns: Option<u64>,
}

/// A counted difference of a connection other than its bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    Outcome {
        a: Outcome,
        b: Outcome,
    },
    Close {
        dir: Direction,
        a: Option<CloseKind>,
        b: Option<CloseKind>,
    },
    Timing {
        what: &'static str,
        a_ns: u64,
        b_ns: u64,
        pct: f64,
    },
}

#[derive(Debug, Clone)]
pub struct DirVerdict {
    pub dir: Direction,
    pub bytes_a: u64,
    pub bytes_b: u64,
    /// false: equal hashes, the bytes were not re-read.
    pub compared: bool,
    pub result: StreamResult,
}

#[derive(Debug, Clone)]
pub struct ConnVerdict {
    /// `client->server:port #ordinal`, with the first capture's process names.
    pub label: String,
    pub key: ConnKey,
    pub verdict: Verdict,
    pub a: Option<ConnFacts>,
    pub b: Option<ConnFacts>,
    pub problems: Vec<Problem>,
    /// Both directions, for a connection present in both captures.
    pub dirs: Vec<DirVerdict>,
    /// The rule that left it out.
    pub ignored_by: Option<String>,
}

/// One packet that differs, by its position in its flow.
#[derive(Debug, Clone)]
pub struct PacketDiff {
    pub index: u64,
    /// Compared payloads (None: no such packet in that capture).
    pub a: Option<Vec<u8>>,
    pub b: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct FlowVerdict {
    /// `sender->receiver udp:53`.
    pub label: String,
    pub key: FlowKey,
    pub verdict: Verdict,
    pub packets_a: u64,
    pub packets_b: u64,
    pub diffs: Vec<PacketDiff>,
    pub more: bool,
    pub ignored_by: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub a: CaptureInfo,
    pub b: CaptureInfo,
    /// Both paths name the same file: nothing was compared.
    pub same_file: bool,
    /// Things worth saying that are not differences (format versions, ...).
    pub notes: Vec<String>,
    pub processes: Vec<ProcVerdict>,
    pub conns: Vec<ConnVerdict>,
    pub flows: Vec<FlowVerdict>,
    /// Ignore patterns in force.
    pub patterns: Vec<String>,
}

/// Counts for the closing line and the machine outputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub same: usize,
    pub different: usize,
    pub missing: usize,
    pub extra: usize,
    pub ignored: usize,
}

impl Counts {
    pub fn add(&mut self, v: Verdict) {
        match v {
            Verdict::Same => self.same += 1,
            Verdict::Different => self.different += 1,
            Verdict::Missing => self.missing += 1,
            Verdict::Extra => self.extra += 1,
            Verdict::Ignored => self.ignored += 1,
        }
    }

    pub fn differences(&self) -> usize {
        self.different + self.missing + self.extra
    }
}

impl Report {
    pub fn truncated(&self) -> bool {
        !self.a.complete || !self.b.complete
    }

    pub fn conn_counts(&self) -> Counts {
        let mut c = Counts::default();
        self.conns.iter().for_each(|v| c.add(v.verdict));
        c
    }

    pub fn flow_counts(&self) -> Counts {
        let mut c = Counts::default();
        self.flows.iter().for_each(|v| c.add(v.verdict));
        c
    }

    pub fn proc_counts(&self) -> Counts {
        let mut c = Counts::default();
        self.processes.iter().for_each(|v| c.add(v.verdict));
        c
    }

    /// Any counted difference, or a capture that is not complete (which never passes).
    pub fn differs(&self) -> bool {
        self.truncated()
            || self.conn_counts().differences() > 0
            || self.flow_counts().differences() > 0
            || self.proc_counts().differences() > 0
    }
}

pub fn dir_name(dir: Direction) -> &'static str {
    match dir {
        Direction::ClientToServer => "client->server",
        Direction::ServerToClient => "server->client",
    }
}

pub fn close_name(c: Option<CloseKind>) -> &'static str {
    match c {
        Some(CloseKind::Fin) => "FIN",
        Some(CloseKind::Rst) => "RST",
        None => "open",
    }
}

pub fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Established => "established",
        Outcome::Refused => "refused",
        Outcome::Unreachable => "unreachable",
    }
}

pub fn exit_name(e: Option<ExitStatus>) -> String {
    match e {
        Some(ExitStatus::Exited(c)) => format!("exit {c}"),
        Some(ExitStatus::Signaled(s)) => format!("signal {s}"),
        None => "no exit recorded".into(),
    }
}

pub fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        17 => "udp".into(),
        _ => format!("proto {p}"),
    }
}
