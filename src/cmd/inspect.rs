//! `plg inspect`: what a capture holds. A summary by default; `--connections` a table,
//! `--conn ID` one conversation, `--check` an integrity verdict; `--json` for each (the wire
//! format is `docs/JSON.md`).
//!
//! Glue and presentation only: every figure comes from [`crate::analysis`], in one streaming
//! pass, so inspecting a capture of any size takes constant memory.

use crate::analysis::{protocol_name, side, Analyzer, CaptureInfo, ConnStats, InOrder, Problem};
use crate::format::{
    CaptureReader, CloseKind, ConnId, ConnRef, Direction, ExitStatus, Mode, Outcome, Record,
};
use crate::ui::{count, human_bytes, human_duration, noun, offset, Style};
use serde_json::{json, Value};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Version of the `--json` output; see docs/JSON.md for what changes it.
pub const JSON_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Side {
    /// The bytes the client sent.
    Client,
    /// The bytes the server sent.
    Server,
}

#[derive(Debug, clap::Args)]
#[command(
    about = "Show what a capture holds",
    long_about = "Show what a capture holds: by default a summary (processes, connections, \
        bytes, packets, and whether the capture is complete); --connections lists every \
        connection; --conn shows one conversation as Follow TCP Stream does; --check verifies \
        the capture's integrity.",
    after_help = "Several sections (captures concatenated) are several sessions, each with its \
        own connection ids: the summary shows each; --connections lists every section's, ids \
        of the second on prefixed s2: (as export --streams prefixes their files s2-); \
        --conn s2:3 (or --section 2 --conn 3) is connection 3 of the second, --conn 3 of the \
        first.\n\n\
        On a terminal, long command lines and long runs of data are cut short with a line \
        saying how much is not shown: each turn of a conversation shows at most 8 KiB as text \
        or 1 KiB as a hex dump. --full shows everything; into a pipe or a file everything is \
        always shown.\n\n\
        Exit status: 0 fine, 1 --check found a problem or --conn names no \
        connection, 2 an error (unreadable or damaged capture, bad arguments)."
)]
pub struct Args {
    /// The capture to inspect.
    pub file: PathBuf,

    /// One line per connection: ends, start, duration, bytes each way, how it ended.
    #[arg(long, conflicts_with_all = ["conn", "check"])]
    pub connections: bool,

    /// Show the conversation of connection ID in time order, with direction markers; `sN:ID`
    /// is connection ID of section N (captures concatenated).
    #[arg(long, value_name = "ID", conflicts_with = "check", value_parser = super::parse_conn_ref)]
    pub conn: Option<ConnRef>,

    /// Only section N (1 is the first) of a file of several sections: its summary, its
    /// connections, or its connection --conn ID.
    #[arg(long, value_name = "N", conflicts_with = "check",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub section: Option<u32>,

    /// With --conn: show every chunk as a hex dump.
    #[arg(long, requires = "conn", conflicts_with = "text")]
    pub hex: bool,

    /// With --conn: show every chunk as text: UTF-8 characters as they are, control
    /// characters and bytes that are not UTF-8 as '.' (by default a chunk that is not UTF-8
    /// text is shown as a hex dump, whose right column shows bytes outside 0x20-0x7e as '.').
    #[arg(long, requires = "conn")]
    pub text: bool,

    /// Show long command lines and every byte of a conversation on a terminal too (by default
    /// they are cut short there, saying how much is left out).
    #[arg(long)]
    pub full: bool,

    /// With --conn: write the exact bytes one side sent to stdout (needs --direction).
    #[arg(
        long,
        requires_all = ["conn", "direction"],
        conflicts_with_all = ["json", "hex", "text"]
    )]
    pub raw: bool,

    /// With --raw: which side's bytes.
    #[arg(long, value_enum, requires = "raw")]
    pub direction: Option<Side>,

    /// Verify integrity and consistency: exit 0 when sound, 1 when not, saying what is wrong.
    #[arg(long)]
    pub check: bool,

    /// Machine-readable output (docs/JSON.md).
    #[arg(long)]
    pub json: bool,
}

/// A connection's id as the text views show it: `3` in the first section, `s2:3` in the
/// second (export --streams names its files `s2-...`).
fn conn_label(section: u32, id: ConnId) -> String {
    if section > 1 {
        format!("s{section}:{id}")
    } else {
        id.to_string()
    }
}

/// On a terminal (unless --full), at most this many bytes of one turn (a run of chunks in
/// one direction) shown as text ...
const TURN_TEXT: u64 = 8 << 10;
/// ... or as a hex dump.
const TURN_HEX: u64 = 1 << 10;
/// On a terminal (unless --full), command lines are cut after this many characters.
const COMMAND_CHARS: usize = 200;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let (Some(c), Some(n)) = (args.conn.and_then(|c| c.section), args.section) {
        if c != n {
            return Err(crate::error::UsageError(format!(
                "--conn s{c}:{} and --section {n} name different sections",
                args.conn.map_or(0, |c| c.id)
            ))
            .into());
        }
    }
    let reader = CaptureReader::open(&args.file)?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let style = if args.json || args.raw {
        Style::plain()
    } else {
        Style::for_stream(crate::ui::Stream::Stdout)
    };
    // Standard input is named as the reader's errors name it.
    let file = if args.file.as_os_str() == "-" {
        "stdin".to_string()
    } else {
        args.file.display().to_string()
    };
    let code = if let Some(c) = args.conn {
        let section = c.section.or(args.section).unwrap_or(1);
        conversation(reader, &args, section, c.id, &file, style, &mut out)?
    } else if args.connections {
        connections(reader, &args, &file, style, &mut out)?
    } else if args.check {
        check(reader, &args, &file, style, &mut out)?
    } else {
        summary(reader, &args, &file, style, &mut out)?
    };
    out.flush()?;
    Ok(code)
}

/// Reads the whole capture, one analysis per section: several sections (captures concatenated)
/// are several sessions (docs/FORMAT.md), each with its own processes and connection ids. Each
/// comes with the byte offset where it starts; a read error ends the last one.
fn analyze_sections(
    mut reader: CaptureReader<io::BufReader<std::fs::File>>,
) -> Vec<(u64, CaptureInfo)> {
    let mut done = Vec::new();
    let mut a = Analyzer::new();
    let mut start = 0;
    while let Some(rec) = reader.next() {
        match rec {
            Ok(rec) => {
                if matches!(rec, Record::Session(_)) && a.info().session.is_some() {
                    let next = reader.position();
                    done.push((start, std::mem::take(&mut a).finish().0));
                    // Shown at its Session block (its SHB comes just before).
                    start = next;
                }
                a.record(&rec, reader.position());
            }
            Err(e) => {
                a.read_error(&e);
                break;
            }
        }
    }
    done.push((start, a.finish().0));
    done
}

/// The error that stopped reading, as `main` prints it.
fn read_failure(file: &str, p: &Problem) -> anyhow::Error {
    anyhow::anyhow!("{file}: at byte {}: {}", p.offset, p.message)
}

// ---- summary -------------------------------------------------------------------------------

fn summary(
    reader: CaptureReader<io::BufReader<std::fs::File>>,
    args: &Args,
    file: &str,
    st: Style,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let mut sections = analyze_sections(reader);
    if let Some(k) = args.section {
        let n = sections.len();
        if k as usize > n {
            anyhow::bail!(
                "{file} holds {}: there is no section {k}",
                count(n, "section")
            );
        }
        sections = vec![sections.swap_remove(k as usize - 1)];
    }
    let n = sections.len();
    let cmd_limit = elide(args).then_some(COMMAND_CHARS);
    if args.json {
        let v = if n == 1 {
            summary_json(&sections[0].1, file)
        } else {
            json!({
                "version": JSON_VERSION,
                "view": "sections",
                "file": file,
                "sections": sections.iter().map(|(at, info)| {
                    let mut v = summary_json(info, file);
                    v["offset"] = json!(at);
                    v
                }).collect::<Vec<_>>(),
            })
        };
        serde_json::to_writer_pretty(&mut *out, &v)?;
        writeln!(out)?;
    } else {
        for (i, (at, info)) in sections.iter().enumerate() {
            if n > 1 {
                if i > 0 {
                    writeln!(out)?;
                }
                writeln!(
                    out,
                    "{}",
                    st.bold(format!(
                        "section {} of {n} (a session of its own), at byte {at}",
                        i + 1
                    ))
                )?;
            }
            print_summary(info, file, st, cmd_limit, out)?;
        }
    }
    let info = &sections[n - 1].1;
    match &info.read_error {
        Some(p) => {
            out.flush()?;
            Err(read_failure(file, p))
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

fn state_text(info: &CaptureInfo) -> &'static str {
    if info.read_error.is_some() {
        "damaged"
    } else if info.summary.is_some() {
        "complete"
    } else {
        "truncated (no closing summary)"
    }
}

fn exit_text(s: Option<ExitStatus>) -> String {
    match s {
        Some(ExitStatus::Exited(c)) => format!("exit {c}"),
        Some(ExitStatus::Signaled(n)) => format!("signal {n}"),
        None => "running".into(),
    }
}

/// Whether to cut long output short: on a terminal, unless --full (never for machine output).
fn elide(args: &Args) -> bool {
    !args.full && !args.json && !args.raw && crate::ui::Stream::Stdout.is_terminal()
}

/// A command line on one line: control characters escaped (`\n`), and with `limit`, cut after
/// that many characters saying how much is left out.
fn command_text(cmd: &str, limit: Option<usize>) -> String {
    let mut t = String::new();
    let mut chars = cmd.char_indices();
    for (shown, (at, c)) in chars.by_ref().enumerate() {
        if limit.is_some_and(|l| shown >= l) {
            return format!(
                "{t} ... [{} more, --full shows all]",
                human_bytes((cmd.len() - at) as u64)
            );
        }
        if c.is_control() {
            t.extend(c.escape_default());
        } else {
            t.push(c);
        }
    }
    t
}

fn print_summary(
    info: &CaptureInfo,
    file: &str,
    st: Style,
    cmd_limit: Option<usize>,
    out: &mut impl Write,
) -> io::Result<()> {
    let state = state_text(info);
    let state = if info.is_complete() {
        st.green(state)
    } else {
        st.red(state)
    };
    writeln!(out, "{} {file}: {state}", st.bold("capture"))?;
    if let Some(s) = &info.session {
        let mode = match s.mode {
            Mode::Record => "record",
            Mode::Replay => "replay",
        };
        writeln!(
            out,
            "written by plg {} (format {}), mode {mode}",
            s.plg_version, s.format_version
        )?;
        writeln!(
            out,
            "started     {}, lasted {}",
            utc(s.start_ns),
            human_duration(info.duration_ns())
        )?;
        writeln!(out, "subnet      {}/{}", s.subnet, s.prefix_len)?;
        if let Some((net6, len6)) = s.subnet6 {
            writeln!(out, "subnet6     {net6}/{len6}")?;
        }
    }
    writeln!(out, "{} {}", st.bold("processes"), info.processes.len())?;
    let width = info
        .processes
        .iter()
        .map(|p| p.process.name.len())
        .max()
        .unwrap_or(0);
    for p in &info.processes {
        let pr = &p.process;
        let live = if pr.live {
            ""
        } else {
            " (played from the recording)"
        };
        writeln!(
            out,
            "  {:<width$}  {:<15}  {:<9}  {}{live}",
            pr.name,
            match pr.addr6 {
                Some(a6) => format!("{} {a6}", pr.addr),
                None => pr.addr.to_string(),
            },
            exit_text(p.exit.map(|e| e.status)),
            command_text(&pr.command, cmd_limit)
        )?;
    }
    writeln!(
        out,
        "{} {} ({} refused, {} unreachable, {} reset, {} unfinished)",
        st.bold("connections"),
        info.connections,
        info.refused,
        info.unreachable,
        info.reset,
        info.unfinished
    )?;
    writeln!(
        out,
        "bytes       client to server {}, server to client {} ({})",
        human_bytes(info.bytes[0]),
        human_bytes(info.bytes[1]),
        count(info.data_blocks, "data block")
    )?;
    let by: Vec<String> = info
        .protocols
        .iter()
        .map(|(p, n)| format!("{} {n}", protocol_name(*p)))
        .collect();
    let by = if by.is_empty() {
        String::new()
    } else {
        format!(" ({})", by.join(", "))
    };
    writeln!(out, "packets     {} non-TCP{by}", info.packets)?;
    if let Some(s) = &info.summary {
        writeln!(
            out,
            "ipv6        {} dropped",
            count(s.ipv6_dropped, "packet")
        )?;
    }
    let tls = &info.tls;
    if tls.connections > 0 || tls.key_lines > 0 {
        let missing = tls.connections - tls.with_keys;
        let line = format!(
            "tls         {}, keys for {} ({} in the capture)",
            count(tls.connections, "connection"),
            tls.with_keys,
            count(tls.key_lines, "key log line")
        );
        if missing == 0 {
            writeln!(out, "{line}")?;
        } else {
            let ids: Vec<String> = tls.without_keys.iter().map(|i| i.to_string()).collect();
            let more = if (ids.len() as u64) < missing {
                ", ..."
            } else {
                ""
            };
            writeln!(
                out,
                "{}",
                st.yellow(format!(
                    "{line}; no keys for {} {}{more}",
                    noun(missing, "connection"),
                    ids.join(", ")
                ))
            )?;
        }
    }
    for ((block, kind), n) in &info.unknown {
        let what = match kind {
            Some(k) => format!("plg block kind {k}"),
            None => format!("block type 0x{block:08x}"),
        };
        writeln!(
            out,
            "{}",
            st.yellow(format!(
                "skipped     {} ({what})",
                count(*n, "unknown block")
            ))
        )?;
    }
    if info.problem_count > 0 {
        writeln!(
            out,
            "{}",
            st.red(format!(
                "problems    {} (see plg inspect --check)",
                info.problem_count
            ))
        )?;
    }
    Ok(())
}

fn summary_json(info: &CaptureInfo, file: &str) -> Value {
    let session = info.session.as_ref();
    let processes: Vec<Value> = info
        .processes
        .iter()
        .map(|p| {
            json!({
                "index": p.process.index,
                "name": p.process.name,
                "addr": p.process.addr.to_string(),
                "addr6": p.process.addr6.map(|a| a.to_string()),
                "command": p.process.command,
                "live": p.process.live,
                "exit": p.exit.map(|e| exit_json(e.status, e.time_ns)),
            })
        })
        .collect();
    let by_protocol: serde_json::Map<String, Value> = info
        .protocols
        .iter()
        .map(|(p, n)| (protocol_name(*p), json!(n)))
        .collect();
    let unknown: Vec<Value> = info
        .unknown
        .iter()
        .map(|((b, k), n)| json!({"block_type": b, "kind": k, "count": n}))
        .collect();
    json!({
        "version": JSON_VERSION,
        "view": "summary",
        "file": file,
        "complete": info.is_complete(),
        "plg_version": session.map(|s| s.plg_version.clone()),
        "format_version": session.map(|s| s.format_version),
        "mode": session.map(|s| match s.mode { Mode::Record => "record", Mode::Replay => "replay" }),
        "subnet": session.map(|s| format!("{}/{}", s.subnet, s.prefix_len)),
        "subnet6": session.and_then(|s| s.subnet6).map(|(n, l)| format!("{n}/{l}")),
        "start_ns": session.map(|s| s.start_ns),
        "duration_ns": info.duration_ns(),
        "processes": processes,
        "connections": {
            "total": info.connections,
            "refused": info.refused,
            "unreachable": info.unreachable,
            "reset": info.reset,
            "unfinished": info.unfinished,
        },
        "bytes": {"client_to_server": info.bytes[0], "server_to_client": info.bytes[1]},
        "data_blocks": info.data_blocks,
        "packets": {"total": info.packets, "bytes": info.packet_bytes, "by_protocol": by_protocol},
        "ipv6_dropped": info.summary.map(|s| s.ipv6_dropped),
        "tls": {
            "connections": info.tls.connections,
            "with_keys": info.tls.with_keys,
            "without_keys": info.tls.without_keys,
            "key_lines": info.tls.key_lines,
        },
        "unknown_blocks": unknown,
        // The count `--check` reports: a read error or a missing summary is one more.
        "problems": info.problem_count
            + u64::from(info.read_error.is_some() || info.summary.is_none()),
        "error": info.read_error.as_ref().map(problem_json),
    })
}

fn exit_json(s: ExitStatus, time_ns: u64) -> Value {
    match s {
        ExitStatus::Exited(c) => json!({"code": c, "signal": null, "time_ns": time_ns}),
        ExitStatus::Signaled(n) => json!({"code": null, "signal": n, "time_ns": time_ns}),
    }
}

fn problem_json(p: &Problem) -> Value {
    json!({"offset": p.offset, "message": p.message})
}

// ---- connections ---------------------------------------------------------------------------

fn close_text(c: Option<(CloseKind, u64)>) -> &'static str {
    match c {
        Some((CloseKind::Fin, _)) => "fin",
        Some((CloseKind::Rst, _)) => "rst",
        None => "open",
    }
}

fn conn_json(c: &ConnStats, info: &Names, start_ns: u64, section: u32) -> Value {
    let o = &c.open;
    let end = |s: usize| {
        c.closes[s].map(|(k, t)| json!({"kind": close_text(Some((k, t))), "time_ns": t}))
    };
    json!({
        "id": o.id,
        "section": section,
        "client": {"process": o.client, "name": info.name(o.client), "addr": o.client_addr.ip().to_string(), "port": o.client_addr.port()},
        "server": {"process": o.server, "name": info.name(o.server), "addr": o.server_addr.ip().to_string(), "port": o.server_addr.port()},
        "outcome": match o.outcome { Outcome::Established => "established", Outcome::Refused => "refused", Outcome::Unreachable => "unreachable" },
        "start_ns": o.time_ns,
        "offset_ns": o.time_ns.saturating_sub(start_ns),
        "duration_ns": c.duration_ns(),
        "bytes": {"client_to_server": c.bytes[0], "server_to_client": c.bytes[1]},
        "data_blocks": {"client_to_server": c.data_blocks[0], "server_to_client": c.data_blocks[1]},
        "client_close": end(0),
        "server_close": end(1),
        "end": c.end().as_str(),
        "tls": c.tls.is_some(),
    })
}

/// Process names as the records announce them (processes come first in a capture).
#[derive(Default)]
struct Names(Vec<(u16, String)>);

impl Names {
    fn name(&self, i: u16) -> String {
        if i == crate::format::EXTERNAL {
            return "external".into();
        }
        self.0
            .iter()
            .find(|(j, _)| *j == i)
            .map_or_else(|| format!("p{i}"), |(_, n)| n.clone())
    }
}

fn connections(
    mut reader: CaptureReader<io::BufReader<std::fs::File>>,
    args: &Args,
    file: &str,
    st: Style,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    if args.json {
        write!(
            out,
            "{{\"version\":{JSON_VERSION},\"view\":\"connections\",\"file\":{},\"connections\":[",
            Value::from(file)
        )?;
    } else {
        writeln!(
            out,
            "{}",
            st.bold(format!(
                "{:>7}  {:<28}  {:<28}  {:>12}  {:>10}  {:>10}  {:>10}  {}",
                "ID", "CLIENT", "SERVER", "START", "DURATION", "C>S", "S>C", "END"
            ))
        )?;
    }
    let mut first = true;
    let mut emit = |c: &ConnStats, sec: &Sec, out: &mut dyn Write| -> io::Result<()> {
        if args.section.is_some_and(|k| k != sec.number) {
            return Ok(());
        }
        if args.json {
            if !first {
                write!(out, ",")?;
            }
            first = false;
            serde_json::to_writer(
                &mut *out,
                &conn_json(c, &sec.names, sec.start_ns, sec.number),
            )?;
            Ok(())
        } else {
            print_conn_line(c, sec, st, out)
        }
    };
    // One section at a time: ids start again in each (docs/FORMAT.md).
    let mut sec = Sec::default();
    let mut error = None;
    while let Some(rec) = reader.next() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                error = Some(e);
                break;
            }
        };
        match &rec {
            Record::Session(s) => {
                if sec.number > 0 {
                    let (_, unfinished) = std::mem::take(&mut sec.analyzer).finish();
                    for c in sec.order.drain(unfinished) {
                        emit(&c, &sec, out)?;
                    }
                }
                sec = Sec {
                    number: sec.number + 1,
                    start_ns: s.start_ns,
                    ..Sec::default()
                };
                if args.section.is_some_and(|k| sec.number > k) {
                    break;
                }
            }
            Record::Process(p) => sec.names.0.push((p.index, p.name.clone())),
            _ => {}
        }
        if let Some(done) = sec.analyzer.record(&rec, reader.position()) {
            for c in sec.order.push(done, sec.analyzer.min_open_id()) {
                emit(&c, &sec, out)?;
            }
        }
    }
    if args.section.is_none_or(|k| sec.number <= k) {
        let (_, unfinished) = std::mem::take(&mut sec.analyzer).finish();
        for c in sec.order.drain(unfinished) {
            emit(&c, &sec, out)?;
        }
    }
    if args.json {
        writeln!(out, "]}}")?;
    }
    if let Some(e) = error {
        out.flush()?;
        return Err(e.into());
    }
    if let Some(k) = args.section.filter(|k| *k > sec.number) {
        out.flush()?;
        anyhow::bail!(
            "{file} holds {}: there is no section {k}",
            count(sec.number, "section")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One section being read: its number (1 is the first), start, process names, analysis.
#[derive(Default)]
struct Sec {
    number: u32,
    start_ns: u64,
    names: Names,
    analyzer: Analyzer,
    order: InOrder,
}

fn print_conn_line(c: &ConnStats, sec: &Sec, st: Style, out: &mut dyn Write) -> io::Result<()> {
    let o = &c.open;
    let names = &sec.names;
    let end = c.end().as_str();
    let end = match c.end() {
        crate::analysis::End::Fin => end.to_string(),
        crate::analysis::End::Unfinished => st.yellow(end),
        _ => st.red(end),
    };
    let tls = if c.tls.is_some() { "  tls" } else { "" };
    writeln!(
        out,
        "{:>7}  {:<28}  {:<28}  {:>12}  {:>10}  {:>10}  {:>10}  {end}{tls}",
        conn_label(sec.number, o.id),
        format!("{} {}", names.name(o.client), o.client_addr),
        format!("{} {}", names.name(o.server), o.server_addr),
        offset(o.time_ns.saturating_sub(sec.start_ns)),
        human_duration(c.duration_ns()),
        human_bytes(c.bytes[0]),
        human_bytes(c.bytes[1]),
    )
}

// ---- one conversation ----------------------------------------------------------------------

/// How chunks are shown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Show {
    Auto,
    Hex,
    Text,
}

/// Whether bytes read as text: UTF-8 (a character cut at the end is fine: reads split
/// anywhere) without control characters other than tab, CR, LF.
pub fn is_text(b: &[u8]) -> bool {
    let valid = match std::str::from_utf8(b) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    };
    valid
        && b.iter()
            .all(|&c| c >= 0x20 && c != 0x7f || c == b'\t' || c == b'\r' || c == b'\n')
}

/// Writes `b` as a hex dump, offsets continuing from `base`.
pub fn hex_dump(b: &[u8], base: u64, out: &mut dyn Write) -> io::Result<()> {
    for (i, line) in b.chunks(16).enumerate() {
        let mut hex = String::with_capacity(50);
        for (j, x) in line.iter().enumerate() {
            if j == 8 {
                hex.push(' ');
            }
            hex.push_str(&format!("{x:02x} "));
        }
        let ascii: String = line
            .iter()
            .map(|&c| {
                if (0x20..0x7f).contains(&c) {
                    c as char
                } else {
                    '.'
                }
            })
            .collect();
        writeln!(out, "{:08x}  {hex:<49} |{ascii}|", base + (i * 16) as u64)?;
    }
    Ok(())
}

/// Text as `--text` promises: UTF-8 characters as they are; control characters and each
/// byte that is not part of a UTF-8 character as '.'; CR dropped before LF.
fn printable(b: &[u8]) -> String {
    let mut t = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        let mut chars = chunk.valid().chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' if chars.peek() == Some(&'\n') => {}
                '\n' | '\t' => t.push(c),
                c if c.is_control() => t.push('.'),
                c => t.push(c),
            }
        }
        t.extend(std::iter::repeat_n('.', chunk.invalid().len()));
    }
    t
}

/// Base64 (RFC 4648, padded) for `--json` data.
pub fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = u32::from(c[0]) << 16
            | u32::from(*c.get(1).unwrap_or(&0)) << 8
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn dir_text(d: Direction) -> &'static str {
    match d {
        Direction::ClientToServer => "client_to_server",
        Direction::ServerToClient => "server_to_client",
    }
}

fn conversation(
    mut reader: CaptureReader<io::BufReader<std::fs::File>>,
    args: &Args,
    section: u32,
    id: ConnId,
    file: &str,
    st: Style,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let show = if args.hex {
        Show::Hex
    } else if args.text {
        Show::Text
    } else {
        Show::Auto
    };
    let raw_side = args.direction.map(|d| match d {
        Side::Client => Direction::ClientToServer,
        Side::Server => Direction::ServerToClient,
    });
    let label = conn_label(section, id);
    let mut view = View {
        label: label.clone(),
        elide: elide(args),
        ..View::default()
    };
    let mut names = Names::default();
    let mut start_ns = 0;
    let mut a = Analyzer::new();
    let mut found: Option<ConnStats> = None;
    let mut finished = false;
    let mut offsets = [0u64; 2];
    let mut first_event = true;
    let mut error = None;
    // Sections seen so far: only the records of section `section` count.
    let mut at_section = 0;

    while let Some(rec) = reader.next() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                error = Some(e);
                break;
            }
        };
        if let Record::Session(s) = &rec {
            at_section += 1;
            if at_section > section {
                break;
            }
            start_ns = s.start_ns;
        }
        if at_section != section {
            continue;
        }
        let at = reader.position();
        match &rec {
            Record::Process(p) => names.0.push((p.index, p.name.clone())),
            Record::ConnOpen(o) if o.id == id && found.is_none() => {
                let c = ConnStats {
                    open: *o,
                    bytes: [0; 2],
                    data_blocks: [0; 2],
                    closes: [None; 2],
                    last_ns: o.time_ns,
                    tls: None,
                };
                if args.json {
                    // Streamed before its data is read: whether it is TLS is not known yet, so
                    // the key is left out rather than said false.
                    let mut conn = conn_json(&c, &names, start_ns, section);
                    if let Some(o) = conn.as_object_mut() {
                        o.remove("tls");
                    }
                    write!(
                        out,
                        "{{\"version\":{JSON_VERSION},\"view\":\"conversation\",\"file\":{},\"connection\":{},\"events\":[",
                        Value::from(file),
                        conn
                    )?;
                } else if !args.raw {
                    let outcome = match o.outcome {
                        Outcome::Established => st.green("established"),
                        Outcome::Refused => st.red("refused"),
                        Outcome::Unreachable => st.red("unreachable"),
                    };
                    writeln!(
                        out,
                        "{} {label}: {} {} -> {} {}, {outcome} at {}",
                        st.bold("connection"),
                        names.name(o.client),
                        o.client_addr,
                        names.name(o.server),
                        o.server_addr,
                        offset(o.time_ns.saturating_sub(start_ns))
                    )?;
                }
                found = Some(c);
            }
            Record::Data(d) if d.id == id && found.is_some() => {
                let s = side(d.dir);
                if args.raw {
                    if Some(d.dir) == raw_side {
                        out.write_all(&d.bytes)?;
                    }
                } else if args.json {
                    if !first_event {
                        write!(out, ",")?;
                    }
                    first_event = false;
                    serde_json::to_writer(
                        &mut *out,
                        &json!({"type": "data", "direction": dir_text(d.dir), "time_ns": d.time_ns,
                                "offset": offsets[s], "len": d.bytes.len(), "data": base64(&d.bytes)}),
                    )?;
                } else {
                    let c = found.as_ref().expect("found");
                    if view.dir != Some(d.dir) {
                        view.end_turn(st, out)?;
                        let (from, to) = match d.dir {
                            Direction::ClientToServer => (c.open.client, c.open.server),
                            Direction::ServerToClient => (c.open.server, c.open.client),
                        };
                        let head = format!(
                            "{} {} to {}, at {}",
                            if s == 0 { "==>" } else { "<==" },
                            names.name(from),
                            names.name(to),
                            offset(d.time_ns.saturating_sub(start_ns))
                        );
                        let head = if s == 0 {
                            st.cyan(head)
                        } else {
                            st.yellow(head)
                        };
                        writeln!(out, "{head}")?;
                        view.dir = Some(d.dir);
                    }
                    view.chunk(&d.bytes, offsets[s], show, out)?;
                }
                offsets[s] += d.bytes.len() as u64;
            }
            Record::ConnClose(cl) if cl.id == id && found.is_some() && !args.raw => {
                let c = found.as_ref().expect("found");
                let who = match cl.dir {
                    Direction::ClientToServer => c.open.client,
                    Direction::ServerToClient => c.open.server,
                };
                let kind = match cl.kind {
                    CloseKind::Fin => "fin",
                    CloseKind::Rst => "rst",
                };
                if args.json {
                    if !first_event {
                        write!(out, ",")?;
                    }
                    first_event = false;
                    serde_json::to_writer(
                        &mut *out,
                        &json!({"type": "close", "direction": dir_text(cl.dir), "time_ns": cl.time_ns, "kind": kind}),
                    )?;
                } else {
                    view.end_turn(st, out)?;
                    let line = format!(
                        "--- {} closed ({}) at {}",
                        names.name(who),
                        kind.to_uppercase(),
                        offset(cl.time_ns.saturating_sub(start_ns))
                    );
                    writeln!(out, "{}", st.dim(line))?;
                }
            }
            _ => {}
        }
        if found.is_some() {
            if let Some(done) = a.record(&rec, at) {
                if done.open.id == id {
                    found = Some(done);
                    finished = true;
                    break;
                }
            }
        } else {
            a.record(&rec, at);
        }
    }
    let Some(mut c) = found else {
        if let Some(e) = error {
            return Err(e.into());
        }
        let sections = if at_section < section {
            format!(" (it holds {})", count(at_section, "section"))
        } else {
            String::new()
        };
        eprintln!("plg: inspect: {file} holds no connection {label}{sections}");
        return Ok(ExitCode::from(1));
    };
    if !finished {
        let (_, open) = a.finish();
        if let Some(o) = open.into_iter().find(|o| o.open.id == id) {
            c = o;
        }
    }
    if args.json {
        writeln!(
            out,
            "],\"stats\":{}}}",
            conn_json(&c, &names, start_ns, section)
        )?;
    } else if !args.raw {
        view.end_turn(st, out)?;
        writeln!(
            out,
            "{}",
            st.dim(format!(
                "--- {}: {} client to server, {} server to client, lasted {}",
                c.end().as_str(),
                human_bytes(c.bytes[0]),
                human_bytes(c.bytes[1]),
                human_duration(c.duration_ns())
            ))
        )?;
    }
    match error {
        Some(e) => {
            out.flush()?;
            Err(e.into())
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

/// The text view of one conversation: the current turn (a run of chunks in one direction),
/// what of it is shown, and a UTF-8 character cut between two chunks, held for the next.
#[derive(Default)]
struct View {
    /// The connection as --conn names it, for the "not shown" line.
    label: String,
    /// Cut each turn short (on a terminal, without --full).
    elide: bool,
    dir: Option<Direction>,
    at_line_start: bool,
    /// Bytes of this turn shown, and left out.
    shown: u64,
    left_out: u64,
    /// The start of a UTF-8 character whose end is in the next chunk.
    pending: Vec<u8>,
}

impl View {
    fn chunk(
        &mut self,
        bytes: &[u8],
        base: u64,
        show: Show,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        if self.shown == 0 && self.left_out == 0 && self.pending.is_empty() {
            self.at_line_start = true;
        }
        let mut b = std::mem::take(&mut self.pending);
        let held = b.len() as u64;
        b.extend_from_slice(bytes);
        let as_text = match show {
            Show::Text => true,
            Show::Hex => false,
            Show::Auto => is_text(&b),
        };
        let limit = match (self.elide, as_text) {
            (false, _) => u64::MAX,
            (true, true) => TURN_TEXT,
            (true, false) => TURN_HEX,
        };
        let room = limit.saturating_sub(self.shown);
        if room == 0 {
            self.left_out += b.len() as u64;
            return Ok(());
        }
        let cut = (b.len() as u64).min(room) as usize;
        let whole = cut == b.len();
        self.left_out += (b.len() - cut) as u64;
        let b = &b[..cut];
        if as_text {
            // A character cut at the end of the chunk waits for its end in the next one.
            let keep = if whole { incomplete_tail(b) } else { 0 };
            let (now, later) = b.split_at(b.len() - keep);
            self.pending = later.to_vec();
            let t = printable(now);
            out.write_all(t.as_bytes())?;
            if !t.is_empty() {
                self.at_line_start = t.ends_with('\n');
            }
            self.shown += now.len() as u64;
        } else {
            if !self.at_line_start {
                writeln!(out)?;
            }
            hex_dump(b, base.saturating_sub(held), out)?;
            self.at_line_start = true;
            self.shown += b.len() as u64;
        }
        Ok(())
    }

    /// Ends the current turn: what is held back is shown as '.', and what was left out said.
    fn end_turn(&mut self, st: Style, out: &mut dyn Write) -> io::Result<()> {
        if !self.pending.is_empty() {
            let dots = ".".repeat(std::mem::take(&mut self.pending).len());
            out.write_all(dots.as_bytes())?;
            self.at_line_start = false;
        }
        if self.dir.is_some() && !self.at_line_start {
            writeln!(out)?;
        }
        if self.left_out > 0 {
            let who = match self.dir {
                Some(Direction::ServerToClient) => "server",
                _ => "client",
            };
            writeln!(
                out,
                "{}",
                st.dim(format!(
                    "[... {} more not shown: --full shows all, --conn {} --raw --direction {who} \
                     writes the bytes]",
                    human_bytes(self.left_out),
                    self.label
                ))
            )?;
        }
        self.dir = None;
        self.at_line_start = true;
        self.shown = 0;
        self.left_out = 0;
        Ok(())
    }
}

/// How many bytes at the end of `b` are the start of a UTF-8 character cut short (0 to 3).
fn incomplete_tail(b: &[u8]) -> usize {
    match std::str::from_utf8(b) {
        Err(e) if e.error_len().is_none() => b.len() - e.valid_up_to(),
        _ => 0,
    }
}

// ---- check ---------------------------------------------------------------------------------

fn check(
    reader: CaptureReader<io::BufReader<std::fs::File>>,
    args: &Args,
    file: &str,
    st: Style,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let sections = analyze_sections(reader);
    let n = sections.len();
    let mut problems: Vec<Problem> = Vec::new();
    let mut total = 0;
    for (i, (_, info)) in sections.iter().enumerate() {
        let before = problems.len();
        if let Some(p) = &info.read_error {
            problems.push(p.clone());
        } else if info.summary.is_none() {
            // A section followed by another ends where the next starts.
            let end = sections.get(i + 1).map_or_else(|| info_end(file), |s| s.0);
            let message = if i + 1 < n {
                format!("truncated: section {} has no closing summary", i + 1)
            } else {
                "truncated: the capture has no closing summary".into()
            };
            problems.push(Problem {
                offset: end,
                message,
            });
        }
        total += info.problem_count + (problems.len() - before) as u64;
        problems.extend(info.problems.iter().cloned());
    }
    let ok = problems.is_empty();
    if args.json {
        let v = json!({
            "version": JSON_VERSION,
            "view": "check",
            "file": file,
            "ok": ok,
            "complete": sections.iter().all(|(_, i)| i.is_complete()),
            "sections": n,
            "problem_count": total,
            "problems": problems.iter().map(problem_json).collect::<Vec<_>>(),
        });
        serde_json::to_writer_pretty(&mut *out, &v)?;
        writeln!(out)?;
    } else if ok {
        writeln!(
            out,
            "{file}: {} ({}, {}, complete{})",
            st.green("ok"),
            count(
                sections.iter().map(|(_, i)| i.records).sum::<u64>(),
                "record"
            ),
            count(
                sections.iter().map(|(_, i)| i.connections).sum::<u64>(),
                "connection"
            ),
            if n > 1 {
                format!("; {n} sections")
            } else {
                String::new()
            }
        )?;
    } else {
        for p in &problems {
            writeln!(out, "{file}: at byte {}: {}", p.offset, p.message)?;
        }
        if total > problems.len() as u64 {
            writeln!(out, "... and {} more", total - problems.len() as u64)?;
        }
        writeln!(
            out,
            "{file}: {} ({})",
            st.red("NOT OK"),
            count(total, "problem")
        )?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Where a truncated capture ends: its size.
fn info_end(file: &str) -> u64 {
    std::fs::metadata(file).map_or(0, |m| m.len())
}

/// A wall-clock time in ns since the epoch as `YYYY-MM-DD HH:MM:SS.mmm UTC`.
pub fn utc(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ns % 1_000_000_000 / 1_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(utc(951_782_400_123_000_000), "2000-02-29 00:00:00.123 UTC");
        assert_eq!(
            utc(1_700_000_000_000_000_000),
            "2023-11-14 22:13:20.000 UTC"
        );
    }

    #[test]
    fn text_detection() {
        assert!(is_text(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(is_text("caf\u{e9}".as_bytes()));
        assert!(is_text(&"caf\u{e9}".as_bytes()[..4]), "a cut character");
        assert!(!is_text(b"\x00\x01binary"));
        assert!(!is_text(b"*1\r\n\x1b[0m"));
    }

    #[test]
    fn hex_dump_layout() {
        let mut v = Vec::new();
        hex_dump(b"0123456789abcdefXY", 16, &mut v).unwrap();
        let s = String::from_utf8(v).unwrap();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("00000010  30 31 32 33 34 35 36 37  38 39"));
        assert!(lines[0].ends_with("|0123456789abcdef|"));
        assert!(lines[1].starts_with("00000020  58 59 "));
    }
}
