//! plg's Custom Blocks: every record that is not a packet (session, processes, connections,
//! stream data, summary).
//!
//! pcapng reserves block type 0x00000BAD for custom blocks that tools may copy when they
//! rewrite a file, tagged with an IANA Private Enterprise Number. plg uses PEN 32473, the
//! number IANA reserves for documentation and examples (RFC 5612): plg has no PEN of its own,
//! and 32473 can never belong to a vendor whose blocks we would misread. The rest is plg's:
//!
//! ```text
//! 0        4        8        12     14     16          20
//! +--------+--------+--------+------+------+-----------+--------+-----+--------+
//! |00000BAD| length |  PEN   | kind |flags | body len  |  body  | pad | length |
//! +--------+--------+--------+------+------+-----------+--------+-----+--------+
//! ```
//!
//! `kind` says which record the body holds, `flags` is reserved (written 0, ignored when
//! read), `body len` is the exact body length before padding. Integers use the section's byte
//! order; IPv4 addresses are 4 bytes in network order; strings are a u16 length then UTF-8.
//! Every event body starts with its u64 timestamp (ns since the Unix epoch).
//!
//! Forward compatibility: a reader ignores bytes after the fields it knows (a later plg may
//! append fields without a format version bump; except Data, whose tail is the payload), and
//! reports kinds it does not know as unknown instead of failing.

use super::*;
use crate::format::record::*;
use crate::format::{FORMAT_VERSION, PEN};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};

pub const KIND_SESSION: u16 = 1;
pub const KIND_PROCESS: u16 = 2;
pub const KIND_PROCESS_EXIT: u16 = 3;
pub const KIND_CONN_OPEN: u16 = 4;
pub const KIND_DATA: u16 = 5;
pub const KIND_CONN_CLOSE: u16 = 6;
pub const KIND_SUMMARY: u16 = 7;

/// Byte ranges inside a custom block, from its first byte.
mod field {
    use std::ops::Range;
    pub const PEN: Range<usize> = 8..12;
    pub const KIND: Range<usize> = 12..14;
    pub const FLAGS: Range<usize> = 14..16;
    pub const BODY_LEN: Range<usize> = 16..20;
    pub const BODY: usize = 20;
}

/// Everything before the body.
pub const HEADER_LEN: usize = field::BODY;
/// Fixed fields of a Data body, before the payload.
pub const DATA_FIXED_LEN: usize = 16;

/// Length of the block holding a body of `body_len` bytes.
pub const fn block_len(body_len: usize) -> usize {
    HEADER_LEN + padded(body_len) + TRAILER_LEN
}

/// Length of the Data block for a payload of `data_len` bytes.
pub const fn data_block_len(data_len: usize) -> usize {
    block_len(DATA_FIXED_LEN + data_len)
}

/// The largest custom block plg writes: 256 KiB in all, so that Wireshark's writer (editcap,
/// mergecap) can copy every one of them. Readers accept up to `MAX_BLOCK_LEN`.
pub const MAX_WRITTEN_LEN: usize = 256 << 10;

/// The largest Data payload plg writes in one block; a longer read is split over several
/// Data blocks with the same time.
pub const MAX_DATA_LEN: usize = MAX_WRITTEN_LEN - HEADER_LEN - DATA_FIXED_LEN - TRAILER_LEN;

/// What a custom block turned out to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Custom {
    Record(Record),
    /// Ours, but a kind this plg does not know (written by a later plg).
    UnknownKind(u16),
    /// Another organisation's custom block.
    ForeignPen(u32),
}

/// Parses a checked block of type [`CUSTOM_TYPE`] or [`CUSTOM_NOCOPY_TYPE`].
pub fn parse(block: &Block) -> Result<Custom> {
    let e = block.endian();
    let whole = block.body();
    // Offsets in `field` count from the block start; the body starts 8 bytes in.
    let at = |r: std::ops::Range<usize>| whole.get(r.start - 8..r.end - 8);
    let Some(pen) = at(field::PEN) else {
        return Err(Malformed::new("custom block is too short to hold a PEN"));
    };
    let pen = e.u32(pen.try_into().unwrap());
    if pen != PEN {
        return Ok(Custom::ForeignPen(pen));
    }
    let (Some(kind), Some(_flags), Some(body_len)) =
        (at(field::KIND), at(field::FLAGS), at(field::BODY_LEN))
    else {
        return Err(Malformed::new(
            "plg custom block is shorter than its header",
        ));
    };
    let kind = e.u16(kind.try_into().unwrap());
    let body_len = e.u32(body_len.try_into().unwrap()) as usize;
    let room = whole.len() - (field::BODY - 8);
    if body_len > room {
        return Err(Malformed::new(format!(
            "plg custom block: body length {body_len} overruns the block ({room} bytes of room)"
        )));
    }
    let body = &whole[field::BODY - 8..field::BODY - 8 + body_len];
    let record = match kind {
        KIND_SESSION => Record::Session(parse_session(e, body)?),
        KIND_PROCESS => Record::Process(parse_process(e, body)?),
        KIND_PROCESS_EXIT => Record::ProcessExit(parse_process_exit(e, body)?),
        KIND_CONN_OPEN => Record::ConnOpen(parse_conn_open(e, body)?),
        KIND_DATA => Record::Data(parse_data(e, body)?),
        KIND_CONN_CLOSE => Record::ConnClose(parse_conn_close(e, body)?),
        KIND_SUMMARY => Record::Summary(parse_summary(e, body)?),
        other => return Ok(Custom::UnknownKind(other)),
    };
    Ok(Custom::Record(record))
}

fn bad(what: &str, field: &str, value: u8) -> Malformed {
    Malformed::new(format!("{what}: unknown {field} value {value}"))
}

fn parse_session(e: Endian, body: &[u8]) -> Result<Session> {
    const WHAT: &str = "session block";
    let mut f = Fields::new(e, body, WHAT);
    // The version comes first so that it can be checked before anything else is trusted.
    let format_version = f.u16()?;
    if format_version == 0 {
        return Err(Malformed::new("invalid capture format version 0"));
    }
    if format_version > FORMAT_VERSION {
        return Err(Malformed::new(format!(
            "capture format version {format_version} is newer than this plg reads \
             (up to {FORMAT_VERSION}): upgrade plg to read this file"
        )));
    }
    let mode = match f.u8()? {
        0 => Mode::Record,
        1 => Mode::Replay,
        v => return Err(bad(WHAT, "mode", v)),
    };
    let prefix_len = f.u8()?;
    if prefix_len > 32 {
        return Err(Malformed::new(format!(
            "{WHAT}: prefix length {prefix_len} is over 32"
        )));
    }
    let subnet = f.ipv4()?;
    let start_ns = f.u64()?;
    let plg_version = f.str16("plg version")?;
    // Format 2 appends the IPv6 subnet (prefix length 0: none).
    let mut subnet6 = None;
    if format_version >= 2 && !f.rest().is_empty() {
        let len6 = f.u8()?;
        let _reserved = f.bytes(3)?;
        let net6 = f.ipv6()?;
        if len6 > 128 {
            return Err(Malformed::new(format!(
                "{WHAT}: IPv6 prefix length {len6} is over 128"
            )));
        }
        if len6 > 0 {
            subnet6 = Some((net6, len6));
        }
    }
    Ok(Session {
        format_version,
        mode,
        prefix_len,
        subnet,
        subnet6,
        start_ns,
        plg_version,
    })
}

fn parse_bool(what: &str, field: &str, v: u8) -> Result<bool> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(bad(what, field, v)),
    }
}

fn parse_process(e: Endian, body: &[u8]) -> Result<Process> {
    const WHAT: &str = "process block";
    let mut f = Fields::new(e, body, WHAT);
    let index = f.u16()?;
    let live = parse_bool(WHAT, "live", f.u8()?)?;
    let _reserved = f.u8()?;
    let addr = f.ipv4()?;
    let name = f.str16("name")?;
    let mut command = f.str16("command")?;
    // A command longer than a str16 continues in counted chunks (absent otherwise).
    if !f.rest().is_empty() {
        for _ in 0..f.u16()? {
            command.push_str(&f.str16("command continuation")?);
        }
    }
    // Format 2 appends the IPv6 address (all zero: none).
    let mut addr6 = None;
    if !f.rest().is_empty() {
        let a = f.ipv6()?;
        if !a.is_unspecified() {
            addr6 = Some(a);
        }
    }
    Ok(Process {
        index,
        live,
        addr,
        addr6,
        name,
        command,
    })
}

/// `s` cut at char boundaries into pieces of at most 65535 bytes (one, possibly empty, at
/// least).
fn str16_chunks(s: &str) -> Vec<&str> {
    let mut chunks = Vec::new();
    let mut rest = s;
    loop {
        let chunk = clip(rest, u16::MAX as usize);
        chunks.push(chunk);
        rest = &rest[chunk.len()..];
        if rest.is_empty() {
            return chunks;
        }
    }
}

fn parse_process_exit(e: Endian, body: &[u8]) -> Result<ProcessExit> {
    const WHAT: &str = "process exit block";
    let mut f = Fields::new(e, body, WHAT);
    let time_ns = f.u64()?;
    let index = f.u16()?;
    let how = f.u8()?;
    let _reserved = f.u8()?;
    let value = f.i32()?;
    let status = match how {
        0 => ExitStatus::Exited(value),
        1 => ExitStatus::Signaled(value),
        v => return Err(bad(WHAT, "exit kind", v)),
    };
    Ok(ProcessExit {
        index,
        time_ns,
        status,
    })
}

fn parse_direction(what: &str, v: u8) -> Result<Direction> {
    match v {
        0 => Ok(Direction::ClientToServer),
        1 => Ok(Direction::ServerToClient),
        v => Err(bad(what, "direction", v)),
    }
}

fn parse_conn_open(e: Endian, body: &[u8]) -> Result<ConnOpen> {
    const WHAT: &str = "connection open block";
    let mut f = Fields::new(e, body, WHAT);
    let time_ns = f.u64()?;
    let id = f.u32()?;
    let client = f.u16()?;
    let server = f.u16()?;
    let client_ip = f.ipv4()?;
    let server_ip = f.ipv4()?;
    let client_port = f.u16()?;
    let server_port = f.u16()?;
    let outcome = match f.u8()? {
        0 => Outcome::Established,
        1 => Outcome::Refused,
        2 => Outcome::Unreachable,
        v => return Err(bad(WHAT, "outcome", v)),
    };
    let mut client_addr = SocketAddr::V4(SocketAddrV4::new(client_ip, client_port));
    let mut server_addr = SocketAddr::V4(SocketAddrV4::new(server_ip, server_port));
    // Format 2: an IPv6 connection appends its family and addresses after the reserved bytes.
    if f.rest().len() > 3 {
        let _reserved = f.bytes(3)?;
        match f.u8()? {
            4 => {}
            6 => {
                let _reserved = f.bytes(3)?;
                let c = f.ipv6()?;
                let s = f.ipv6()?;
                client_addr = SocketAddr::V6(SocketAddrV6::new(c, client_port, 0, 0));
                server_addr = SocketAddr::V6(SocketAddrV6::new(s, server_port, 0, 0));
            }
            v => return Err(bad(WHAT, "address family", v)),
        }
    }
    Ok(ConnOpen {
        id,
        time_ns,
        client,
        client_addr,
        server,
        server_addr,
        outcome,
    })
}

fn parse_data(e: Endian, body: &[u8]) -> Result<Data> {
    const WHAT: &str = "data block";
    let mut f = Fields::new(e, body, WHAT);
    let time_ns = f.u64()?;
    let id = f.u32()?;
    let dir = parse_direction(WHAT, f.u8()?)?;
    f.bytes(3)?;
    Ok(Data {
        id,
        dir,
        time_ns,
        bytes: f.rest().to_vec(),
    })
}

fn parse_conn_close(e: Endian, body: &[u8]) -> Result<ConnClose> {
    const WHAT: &str = "connection close block";
    let mut f = Fields::new(e, body, WHAT);
    let time_ns = f.u64()?;
    let id = f.u32()?;
    let dir = parse_direction(WHAT, f.u8()?)?;
    let kind = match f.u8()? {
        0 => CloseKind::Fin,
        1 => CloseKind::Rst,
        v => return Err(bad(WHAT, "close kind", v)),
    };
    Ok(ConnClose {
        id,
        dir,
        kind,
        time_ns,
    })
}

fn parse_summary(e: Endian, body: &[u8]) -> Result<Summary> {
    let mut f = Fields::new(e, body, "summary block");
    Ok(Summary {
        end_ns: f.u64()?,
        processes: f.u32()?,
        connections: f.u32()?,
        refused: f.u32()?,
        resets: f.u32()?,
        data_blocks: f.u64()?,
        bytes_c2s: f.u64()?,
        bytes_s2c: f.u64()?,
        packets: f.u64()?,
        ipv6_dropped: f.u64()?,
    })
}

/// Pushes the custom block header with a placeholder body length; returns the block start.
fn begin(endian: Endian, kind: u16, out: &mut Vec<u8>) -> usize {
    let start = begin_block(out, endian, CUSTOM_TYPE);
    Emit { endian, out }.u32(PEN).u16(kind).u16(0).u32(0);
    start
}

/// Fills in the body length, pads, and closes the block begun at `start`.
fn end(endian: Endian, start: usize, out: &mut Vec<u8>) {
    let body_len = (out.len() - start - HEADER_LEN) as u32;
    out[start + field::BODY_LEN.start..start + field::BODY_LEN.end]
        .copy_from_slice(&endian.u32_bytes(body_len));
    end_block(out, endian, start);
}

fn direction(dir: Direction) -> u8 {
    match dir {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

/// Appends the custom block for `record`. Returns false, appending nothing, for the records
/// that are not custom blocks (Packet, Unknown). Data payloads must be at most
/// [`MAX_DATA_LEN`] bytes (the writer checks).
pub fn emit(endian: Endian, record: &Record, out: &mut Vec<u8>) -> bool {
    let kind = match record {
        Record::Session(_) => KIND_SESSION,
        Record::Process(_) => KIND_PROCESS,
        Record::ProcessExit(_) => KIND_PROCESS_EXIT,
        Record::ConnOpen(_) => KIND_CONN_OPEN,
        Record::Data(d) => {
            emit_data_header(endian, d.id, d.dir, d.time_ns, d.bytes.len(), out);
            out.extend_from_slice(&d.bytes);
            emit_data_tail(endian, d.bytes.len(), out);
            return true;
        }
        Record::ConnClose(_) => KIND_CONN_CLOSE,
        Record::Summary(_) => KIND_SUMMARY,
        Record::Packet(_) | Record::Secrets(_) | Record::Unknown(_) => return false,
    };
    let start = begin(endian, kind, out);
    let mut w = Emit { endian, out };
    match record {
        Record::Session(s) => {
            w.u16(s.format_version)
                .u8(match s.mode {
                    Mode::Record => 0,
                    Mode::Replay => 1,
                })
                .u8(s.prefix_len)
                .ipv4(s.subnet)
                .u64(s.start_ns)
                .str16(&s.plg_version);
            if let Some((net6, len6)) = s.subnet6 {
                w.u8(len6).bytes(&[0; 3]).ipv6(net6);
            }
        }
        Record::Process(p) => {
            w.u16(p.index)
                .u8(p.live as u8)
                .u8(0)
                .ipv4(p.addr)
                .str16(&p.name);
            let chunks = str16_chunks(&p.command);
            w.str16(chunks[0]);
            if chunks.len() > 1 || p.addr6.is_some() {
                w.u16(u16::try_from(chunks.len() - 1).unwrap_or(u16::MAX));
                for c in &chunks[1..] {
                    w.str16(c);
                }
            }
            if let Some(a) = p.addr6 {
                w.ipv6(a);
            }
        }
        Record::ProcessExit(x) => {
            let (how, value) = match x.status {
                ExitStatus::Exited(c) => (0, c),
                ExitStatus::Signaled(s) => (1, s),
            };
            w.u64(x.time_ns).u16(x.index).u8(how).u8(0).i32(value);
        }
        Record::ConnOpen(c) => {
            let v4 = |a: &SocketAddr| match a.ip() {
                std::net::IpAddr::V4(ip) => ip,
                std::net::IpAddr::V6(_) => std::net::Ipv4Addr::UNSPECIFIED,
            };
            w.u64(c.time_ns)
                .u32(c.id)
                .u16(c.client)
                .u16(c.server)
                .ipv4(v4(&c.client_addr))
                .ipv4(v4(&c.server_addr))
                .u16(c.client_addr.port())
                .u16(c.server_addr.port())
                .u8(match c.outcome {
                    Outcome::Established => 0,
                    Outcome::Refused => 1,
                    Outcome::Unreachable => 2,
                })
                .bytes(&[0; 3]);
            if let (SocketAddr::V6(cl), SocketAddr::V6(sv)) = (c.client_addr, c.server_addr) {
                w.u8(6).bytes(&[0; 3]).ipv6(*cl.ip()).ipv6(*sv.ip());
            }
        }
        Record::ConnClose(c) => {
            w.u64(c.time_ns)
                .u32(c.id)
                .u8(direction(c.dir))
                .u8(match c.kind {
                    CloseKind::Fin => 0,
                    CloseKind::Rst => 1,
                })
                .u16(0);
        }
        Record::Summary(s) => {
            w.u64(s.end_ns)
                .u32(s.processes)
                .u32(s.connections)
                .u32(s.refused)
                .u32(s.resets)
                .u64(s.data_blocks)
                .u64(s.bytes_c2s)
                .u64(s.bytes_s2c)
                .u64(s.packets)
                .u64(s.ipv6_dropped);
        }
        Record::Data(_) | Record::Packet(_) | Record::Secrets(_) | Record::Unknown(_) => {
            unreachable!()
        }
    }
    end(endian, start, out);
    true
}

/// Hot path, first half: everything of a Data block before its payload (36 bytes). The caller
/// copies the payload, then calls [`emit_data_tail`].
pub fn emit_data_header(
    endian: Endian,
    id: ConnId,
    dir: Direction,
    time_ns: u64,
    data_len: usize,
    out: &mut Vec<u8>,
) {
    Emit { endian, out }
        .u32(CUSTOM_TYPE)
        .u32(data_block_len(data_len) as u32)
        .u32(PEN)
        .u16(KIND_DATA)
        .u16(0)
        .u32((DATA_FIXED_LEN + data_len) as u32)
        .u64(time_ns)
        .u32(id)
        .u8(direction(dir))
        .bytes(&[0; 3]);
}

/// Hot path, second half: padding and trailing length after a payload of `data_len` bytes.
pub fn emit_data_tail(endian: Endian, data_len: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0; 3][..pad_len(DATA_FIXED_LEN + data_len)]);
    out.extend_from_slice(&endian.u32_bytes(data_block_len(data_len) as u32));
}

#[cfg(test)]
mod test {
    use super::*;
    use std::net::Ipv4Addr;

    fn roundtrip(endian: Endian, record: &Record) -> Vec<u8> {
        let mut out = vec![];
        assert!(emit(endian, record, &mut out));
        let block = Block::new_checked(endian, &out).unwrap();
        assert_eq!(block.block_type(), CUSTOM_TYPE);
        assert_eq!(parse(&block).unwrap(), Custom::Record(record.clone()));
        out
    }

    fn session() -> Record {
        Record::Session(Session {
            format_version: FORMAT_VERSION,
            mode: Mode::Replay,
            subnet: Ipv4Addr::new(10, 0, 0, 0),
            prefix_len: 24,
            subnet6: Some(("fd00:706c:67::".parse().unwrap(), 64)),
            start_ns: 0x0102_0304_0506_0708,
            plg_version: "0.1.0".into(),
        })
    }

    /// A command longer than a str16 is stored whole, in chunks cut at char boundaries; a
    /// short one is byte-identical to the format before chunks existed (no count).
    #[test]
    fn test_long_command_roundtrips_whole() {
        let process = |command: String| {
            Record::Process(Process {
                index: 1,
                live: true,
                addr: Ipv4Addr::new(10, 0, 0, 3),
                addr6: None,
                name: "p1".into(),
                command,
            })
        };
        for len in [65_534, 65_535, 65_536, 200_000] {
            // 3-byte characters, so chunk ends fall inside one unless cut with care.
            let cmd: String = "é€x".chars().cycle().take(len).collect();
            for endian in [Endian::Little, Endian::Big] {
                roundtrip(endian, &process(cmd.clone()));
            }
        }
        let short = roundtrip(Endian::Little, &process("sleep 1".into()));
        // header 20 + index..addr 8 + name 2+2 + command 2+7 (+ padding 3) + trailer 4
        assert_eq!(short.len(), 48);
    }

    /// A Data block, byte by byte.
    static DATA_LE: [u8; 44] = [
        0xad, 0x0b, 0, 0, 44, 0, 0, 0, // type, length
        0xd9, 0x7e, 0, 0, // PEN 32473
        5, 0, 0, 0, 19, 0, 0, 0, // kind, flags, body length
        8, 7, 6, 5, 4, 3, 2, 1, // time
        3, 0, 0, 0, 1, 0, 0, 0, // id, dir, reserved
        b'a', b'b', b'c', 0, // payload, padding
        44, 0, 0, 0,
    ];

    #[test]
    fn test_data_deconstruct() {
        let block = Block::new_checked(Endian::Little, &DATA_LE).unwrap();
        assert_eq!(
            parse(&block).unwrap(),
            Custom::Record(Record::Data(Data {
                id: 3,
                dir: Direction::ServerToClient,
                time_ns: 0x0102_0304_0506_0708,
                bytes: b"abc".to_vec(),
            }))
        );
    }

    #[test]
    fn test_data_construct() {
        let mut out = vec![];
        emit_data_header(
            Endian::Little,
            3,
            Direction::ServerToClient,
            0x0102_0304_0506_0708,
            3,
            &mut out,
        );
        assert_eq!(out.len(), HEADER_LEN + DATA_FIXED_LEN);
        out.extend_from_slice(b"abc");
        emit_data_tail(Endian::Little, 3, &mut out);
        assert_eq!(out, DATA_LE);
        assert_eq!(data_block_len(3), 44);
    }

    #[test]
    fn test_construct_deconstruct_every_kind() {
        let a = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40000);
        let b = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);
        let records = [
            session(),
            Record::Process(Process {
                index: 1,
                name: "web".into(),
                command: "python3 -m http.server 80 # é".into(),
                addr: Ipv4Addr::new(10, 0, 0, 2),
                addr6: None,
                live: true,
            }),
            Record::ProcessExit(ProcessExit {
                index: 1,
                time_ns: 5,
                status: ExitStatus::Signaled(9),
            }),
            Record::ProcessExit(ProcessExit {
                index: 0,
                time_ns: 6,
                status: ExitStatus::Exited(-1),
            }),
            Record::ConnOpen(ConnOpen {
                id: 7,
                time_ns: 8,
                client: 0,
                client_addr: a.into(),
                server: EXTERNAL,
                server_addr: b.into(),
                outcome: Outcome::Unreachable,
            }),
            Record::Data(Data {
                id: 7,
                dir: Direction::ClientToServer,
                time_ns: 9,
                bytes: vec![],
            }),
            Record::ConnClose(ConnClose {
                id: 7,
                dir: Direction::ServerToClient,
                kind: CloseKind::Rst,
                time_ns: 10,
            }),
            Record::Summary(Summary {
                end_ns: 11,
                processes: 2,
                connections: 3,
                refused: 4,
                resets: 5,
                data_blocks: 6,
                bytes_c2s: 7,
                bytes_s2c: 8,
                packets: 9,
                ipv6_dropped: 10,
            }),
        ];
        for endian in [Endian::Little, Endian::Big] {
            for record in &records {
                roundtrip(endian, record);
            }
        }
    }

    /// Format 2: an IPv6 connection, its process and session, byte by byte where it matters.
    #[test]
    fn test_ipv6_records() {
        let c: std::net::SocketAddr = "[fd00:706c:67::3]:40000".parse().unwrap();
        let s: std::net::SocketAddr = "[fd00:706c:67::2]:80".parse().unwrap();
        let open = Record::ConnOpen(ConnOpen {
            id: 7,
            time_ns: 8,
            client: 1,
            client_addr: c,
            server: 0,
            server_addr: s,
            outcome: Outcome::Established,
        });
        let proc6 = Record::Process(Process {
            index: 1,
            name: "p1".into(),
            command: "curl".into(),
            addr: Ipv4Addr::new(10, 0, 0, 3),
            addr6: Some("fd00:706c:67::3".parse().unwrap()),
            live: true,
        });
        for endian in [Endian::Little, Endian::Big] {
            roundtrip(endian, &open);
            roundtrip(endian, &proc6);
            roundtrip(endian, &session());
        }
        let out = roundtrip(Endian::Little, &open);
        let body = &out[HEADER_LEN..];
        // v1 fields: the IPv4 addresses are 0.0.0.0, the ports are the real ones.
        assert_eq!(&body[16..24], &[0; 8]);
        assert_eq!(&body[24..28], &[0x40, 0x9c, 80, 0]); // little-endian section
                                                         // Then family 6, 3 reserved, client address, server address.
        assert_eq!(&body[32..36], &[6, 0, 0, 0]);
        assert_eq!(
            &body[36..52],
            &"fd00:706c:67::3"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
        assert_eq!(
            &body[52..68],
            &"fd00:706c:67::2"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
        // An IPv4 connection is the format-1 body, not one byte more.
        let a = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40000);
        let v4 = Record::ConnOpen(ConnOpen {
            id: 7,
            time_ns: 8,
            client: 1,
            client_addr: a.into(),
            server: 0,
            server_addr: a.into(),
            outcome: Outcome::Established,
        });
        let out = roundtrip(Endian::Little, &v4);
        assert_eq!(u32::from_le_bytes(out[16..20].try_into().unwrap()), 32);
    }

    /// A format-1 Session (no IPv6 fields) reads as an IPv4-only session; a format-1 file's
    /// bytes after the known fields are never taken for IPv6 ones.
    #[test]
    fn test_format1_session_reads() {
        let mut v1 = match session() {
            Record::Session(s) => s,
            _ => unreachable!(),
        };
        v1.format_version = 1;
        v1.subnet6 = None;
        let out = roundtrip(Endian::Little, &Record::Session(v1.clone()));
        let len = u32::from_le_bytes(out[16..20].try_into().unwrap()) as usize;
        let mut grown = vec![];
        let start = begin(Endian::Little, KIND_SESSION, &mut grown);
        grown.extend_from_slice(&out[HEADER_LEN..HEADER_LEN + len]);
        grown.extend_from_slice(&[64, 0, 0, 0]);
        grown.extend_from_slice(&[0xfd; 16]);
        end(Endian::Little, start, &mut grown);
        let block = Block::new_checked(Endian::Little, &grown).unwrap();
        assert_eq!(parse(&block).unwrap(), Custom::Record(Record::Session(v1)));
    }

    #[test]
    fn test_truncated() {
        let out = roundtrip(Endian::Little, &session());
        // Shrink the body length, as if the writer had been cut short inside the body.
        for cut in 0..19 {
            let mut bytes = out.clone();
            bytes[16..20].copy_from_slice(&(cut as u32).to_le_bytes());
            let block = Block::new_checked(Endian::Little, &bytes).unwrap();
            assert!(parse(&block).is_err(), "body cut to {cut} bytes parsed");
        }
        // A body length beyond the block.
        let mut bytes = out.clone();
        bytes[16..20].copy_from_slice(&1000u32.to_le_bytes());
        let block = Block::new_checked(Endian::Little, &bytes).unwrap();
        assert!(parse(&block).unwrap_err().0.contains("overruns"));
    }

    #[test]
    fn test_newer_version_rejected() {
        let mut out = roundtrip(Endian::Little, &session());
        out[20..22].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        let block = Block::new_checked(Endian::Little, &out).unwrap();
        let err = parse(&block).unwrap_err();
        assert!(err.0.contains("newer than this plg"), "{err}");
    }

    #[test]
    fn test_unknown_kind_and_foreign_pen() {
        let mut out = roundtrip(Endian::Little, &session());
        out[12..14].copy_from_slice(&999u16.to_le_bytes());
        let block = Block::new_checked(Endian::Little, &out).unwrap();
        assert_eq!(parse(&block).unwrap(), Custom::UnknownKind(999));
        out[8..12].copy_from_slice(&1234u32.to_le_bytes());
        let block = Block::new_checked(Endian::Little, &out).unwrap();
        assert_eq!(parse(&block).unwrap(), Custom::ForeignPen(1234));
    }

    #[test]
    fn test_appended_fields_ignored() {
        let mut tmp = vec![];
        emit(Endian::Big, &session(), &mut tmp);
        let len = u32::from_be_bytes(tmp[16..20].try_into().unwrap()) as usize;
        let mut out = vec![];
        let start = begin(Endian::Big, KIND_SESSION, &mut out);
        let body = &tmp[HEADER_LEN..HEADER_LEN + len];
        out.extend_from_slice(body);
        out.extend_from_slice(b"a later field");
        end(Endian::Big, start, &mut out);
        let block = Block::new_checked(Endian::Big, &out).unwrap();
        assert_eq!(parse(&block).unwrap(), Custom::Record(session()));
    }
}
