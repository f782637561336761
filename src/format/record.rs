//! The typed records a capture holds, independent of how they are laid out in bytes.
//!
//! This is the contract between the capture writer (used by record and replay), the streaming
//! reader and every tool that reads a capture (replay, inspect, export, diff). It owns no I/O.
//! Byte layouts live in `format::block` and are documented in `docs/FORMAT.md`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// Identifies one relayed TCP connection inside a capture, unique per capture, starting at 0.
pub type ConnId = u32;

/// A connection of a capture of several sections (captures concatenated, each a session with
/// its own ids from 0): connection `id` of section `section` (1 is the first), or of the first
/// section when `section` is `None`. The text form is `ID` or `sN:ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnRef {
    pub section: Option<u32>,
    pub id: ConnId,
}

impl ConnRef {
    /// Whether this names connection `id` of section `section` (1-based).
    pub fn is(&self, section: u32, id: ConnId) -> bool {
        self.id == id && self.section.unwrap_or(1) == section
    }
}

/// Index of a process in the session (0-based, the order of the command line).
pub type ProcIndex = u16;

/// The process index used for the far end of a connection that is not a plg process:
/// the host loopback reached through `--allow-external`.
pub const EXTERNAL: ProcIndex = u16::MAX;

/// Whether the capture was made by `plg record` or by `plg replay -o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Record,
    Replay,
}

/// The first plg record of a capture: what produced it and with which network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Version of the capture format (`format::FORMAT_VERSION` when written by this plg).
    pub format_version: u16,
    pub mode: Mode,
    /// The processes' subnet, network address and prefix length (e.g. 10.0.0.0/24).
    pub subnet: Ipv4Addr,
    pub prefix_len: u8,
    /// The processes' IPv6 subnet and prefix length; None for an IPv4-only session
    /// (`--no-ipv6`, or a format-1 capture).
    pub subnet6: Option<(Ipv6Addr, u8)>,
    /// Wall-clock start of the session, nanoseconds since the Unix epoch.
    pub start_ns: u64,
    /// `CARGO_PKG_VERSION` of the plg that wrote the file.
    pub plg_version: String,
}

/// One process of the session. Its pcapng interface has the same index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub index: ProcIndex,
    /// Its hostname inside the session (`p0`, or the name given with `--names`).
    pub name: String,
    /// The shell command line it runs (for a process played from a recording in replay:
    /// the recorded command line).
    pub command: String,
    pub addr: Ipv4Addr,
    /// Its IPv6 address, when the session had IPv6.
    pub addr6: Option<Ipv6Addr>,
    /// false when replay played this process from the recording instead of running it.
    pub live: bool,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Normal exit with this code (127: command not found, as in a shell).
    Exited(i32),
    /// Killed by this signal number.
    Signaled(i32),
}

/// A process ended (written when plg saw it end; absent if plg itself was killed first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessExit {
    pub index: ProcIndex,
    pub time_ns: u64,
    pub status: ExitStatus,
}

/// What became of a connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server accepted it; data and close records follow.
    Established,
    /// The server's kernel answered RST (nobody listening).
    Refused,
    /// No answer or no such host (e.g. the upstream connect timed out or was unreachable).
    Unreachable,
}

/// A client opened (or tried to open) a TCP connection to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnOpen {
    pub id: ConnId,
    /// When the client's SYN was seen, ns since the epoch.
    pub time_ns: u64,
    pub client: ProcIndex,
    /// Both addresses are of one family (IPv4, or IPv6 from format version 2 on).
    pub client_addr: SocketAddr,
    pub server: ProcIndex,
    pub server_addr: SocketAddr,
    pub outcome: Outcome,
}

/// Which way bytes flowed, or which side closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Sent by the client (the side that sent the SYN).
    ClientToServer,
    /// Sent by the server.
    ServerToClient,
}

impl Direction {
    pub fn reverse(self) -> Direction {
        match self {
            Direction::ClientToServer => Direction::ServerToClient,
            Direction::ServerToClient => Direction::ClientToServer,
        }
    }
}

/// Stream bytes exactly as one `read()` from the relay socket returned them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    pub id: ConnId,
    pub dir: Direction,
    pub time_ns: u64,
    pub bytes: Vec<u8>,
}

/// How one direction of a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseKind {
    /// Orderly: the sender shut down its writing side (FIN).
    Fin,
    /// Abortive: the sender reset the connection (RST).
    Rst,
}

/// One side of a connection stopped sending. `dir` names the sender: `ClientToServer` means
/// the client closed (sent FIN or RST).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnClose {
    pub id: ConnId,
    pub dir: Direction,
    pub kind: CloseKind,
    pub time_ns: u64,
}

/// A packet plg passed as-is (non-TCP IPv4), stored as a pcapng Enhanced Packet Block on the
/// interface of the process that sent it. `bytes` is the raw IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Interface index = sender's process index.
    pub interface: u32,
    pub time_ns: u64,
    /// Original length on the wire (equals `bytes.len()` unless the capture truncated it).
    pub orig_len: u32,
    pub bytes: Vec<u8>,
}

/// The closing summary: present only in a complete capture, and consistent with what precedes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub end_ns: u64,
    pub processes: u32,
    pub connections: u32,
    pub refused: u32,
    pub resets: u32,
    pub data_blocks: u64,
    pub bytes_c2s: u64,
    pub bytes_s2c: u64,
    pub packets: u64,
    pub ipv6_dropped: u64,
}

/// Keys that decrypt traffic after them: a pcapng Decryption Secrets Block. plg writes TLS key
/// log lines (`secrets_type` [`crate::format::block::dsb::SECRETS_TLS`]) that the recorded
/// programs wrote to their `SSLKEYLOGFILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secrets {
    pub secrets_type: u32,
    pub data: Vec<u8>,
}

/// A block the reader skipped because it does not know it (a newer plg, another tool).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unknown {
    /// Byte offset of the block in the file.
    pub offset: u64,
    pub block_type: u32,
    /// For a plg custom block of an unknown kind: that kind.
    pub kind: Option<u16>,
}

/// Everything a capture holds, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Session(Session),
    Process(Process),
    ProcessExit(ProcessExit),
    ConnOpen(ConnOpen),
    Data(Data),
    ConnClose(ConnClose),
    Packet(Packet),
    Summary(Summary),
    Secrets(Secrets),
    Unknown(Unknown),
}
