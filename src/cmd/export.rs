//! `plg export`: a capture as a classic pcap, a plain pcapng, or one file per stream.
//!
//! Glue only: validate, open the capture, stage the output, feed every record to
//! [`crate::export::Exporter`], then move the output into place. The conversion itself (TCP
//! conversation synthesis, file formats, filters) lives in `src/export/`.

use crate::export::{
    pcap::PcapWriter, pcapng::PcapngWriter, streams::StreamsWriter, Exporter, Filter, Output,
    PacketExport,
};
use crate::format::{CaptureReader, ConnRef, Record, Secrets};
use crate::os::output::{self, OutputDir, Replace};
use anyhow::Context;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Output buffer: large writes keep export near the disk's speed.
const OUT_BUFFER: usize = 1 << 20;

#[derive(Debug, clap::Args)]
#[command(
    about = "Convert a capture to pcap, plain pcapng or stream files",
    long_about = "Convert a capture to pcap, plain pcapng or stream files.\n\n\
        Each recorded TCP connection becomes a real-looking TCP conversation (handshake, \
        segments of at most 1460 bytes with consistent sequence and acknowledgment numbers, \
        the teardown that happened) with the recorded timestamps and addresses, so Wireshark, \
        tshark and tcpdump follow its streams and decode its protocols. Non-TCP packets are \
        copied as recorded. A file output is written under no name (or a hidden temporary \
        one) and moved into place at the end: it appears whole or not at all. `-` is standard \
        output (for OUT) or standard input (for the capture); a device or FIFO is written \
        straight into; a symlink is followed; an existing regular file is replaced only with \
        --force; the streams directory must be new or empty; the output may not be the input. With --pcapng, the TLS keys the \
        recorded programs logged (see SSLKEYLOGFILE in plg-record(1)) go first, as Decryption \
        Secrets Blocks, so Wireshark decrypts those connections with no configuration.",
    after_help = "Exit status: 0 written, 1 the filters matched nothing (no output written), 2 an error."
)]
#[command(group = clap::ArgGroup::new("output").required(true).multiple(false))]
pub struct Args {
    /// The capture to convert.
    pub file: PathBuf,

    /// Write a classic pcap (nanosecond timestamps, raw IPv4 link type).
    #[arg(long, value_name = "OUT", group = "output")]
    pub pcap: Option<PathBuf>,

    /// Write a standard pcapng, one interface per process, without plg's custom blocks.
    #[arg(long, value_name = "OUT", group = "output")]
    pub pcapng: Option<PathBuf>,

    /// Write each connection's bytes into DIR (new or empty), one file per direction, named
    /// NNNN-SENDER_ADDR.PORT-to-RECEIVER_ADDR.PORT (NNNN: the connection id on four digits;
    /// SENDER and RECEIVER: process names), e.g. 0000-p1_10.0.0.3.40000-to-p0_10.0.0.2.80.
    /// An IPv6 ADDR is written with - for each colon (fd00-706c-67--2), so no name holds a
    /// colon. A capture of several sections (sessions) prefixes the files of section N>1 with
    /// sN-.
    #[arg(long, value_name = "DIR", group = "output")]
    pub streams: Option<PathBuf>,

    /// Only this connection (repeat or separate with commas for several); `sN:ID` is
    /// connection ID of section N (captures concatenated), a bare ID the first section's.
    #[arg(
        long = "conn",
        value_name = "ID",
        value_delimiter = ',',
        value_parser = super::parse_conn_ref
    )]
    pub conns: Vec<ConnRef>,

    /// Only connections and packets of this process, by name (repeatable).
    #[arg(long = "process", value_name = "NAME", value_delimiter = ',')]
    pub processes: Vec<String>,

    /// Only connections and UDP packets with this port at either end (repeatable).
    #[arg(long = "port", value_name = "N", value_delimiter = ',')]
    pub ports: Vec<u16>,

    /// Replace the output if it is an existing regular file (never a device, FIFO, symlink
    /// or directory: those are written into, followed, or refused).
    #[arg(long)]
    pub force: bool,

    /// No progress bar and no closing line.
    #[arg(short, long)]
    pub quiet: bool,
}

/// The output being written: put in place at the end, removed (if plg's own) on error.
enum Staged {
    File(output::Output),
    Dir(OutputDir),
}

/// The capture's Decryption Secrets Blocks (TLS keys), read ahead: the recorder writes keys
/// when the programs log them, after their handshakes, but Wireshark applies keys only to the
/// packets after them, so the export puts them all first. A read error ends the look-ahead
/// quietly: the main pass reports it.
fn secrets_of(file: &std::path::Path) -> Vec<Secrets> {
    let mut out = Vec::new();
    let Ok(mut reader) = CaptureReader::open(file) else {
        return out;
    };
    while let Some(Ok(rec)) = reader.next() {
        if let Record::Secrets(s) = rec {
            out.push(s);
        }
    }
    out
}

enum Kind {
    Pcap,
    Pcapng,
    Streams,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (kind, dest) = match (&args.pcap, &args.pcapng, &args.streams) {
        (Some(p), _, _) => (Kind::Pcap, p.clone()),
        (_, Some(p), _) => (Kind::Pcapng, p.clone()),
        (_, _, Some(p)) => (Kind::Streams, p.clone()),
        _ => unreachable!("clap requires one output"),
    };
    let filter = Filter {
        conns: args.conns.clone(),
        processes: args.processes.clone(),
        ports: args.ports.clone(),
    };

    // Open the capture before creating anything: a bad input leaves no output behind.
    let mut reader = CaptureReader::open(&args.file)?;
    let size = reader.get_ref().get_ref().metadata().map_or(0, |m| m.len());
    let version = reader
        .session()
        .map_or_else(String::new, |s| s.plg_version.clone());
    let app = format!(
        "plg {} (export of a capture by plg {version})",
        env!("CARGO_PKG_VERSION")
    );

    let replace = if args.force {
        Replace::Yes
    } else {
        Replace::No
    };
    let (staged, output) = match kind {
        Kind::Streams => {
            let (staged, dir) = OutputDir::open(&dest)?;
            let output: Output<BufWriter<File>> = Output::Streams(StreamsWriter::new(&dir));
            (Staged::Dir(staged), output)
        }
        Kind::Pcap | Kind::Pcapng => {
            let (staged, file) = output::Output::open(&dest, replace, &[&args.file], true)?;
            let staged = Staged::File(staged);
            let out = BufWriter::with_capacity(OUT_BUFFER, file);
            let write_err = || format!("failed to write {}", dest.display());
            let output = match kind {
                Kind::Pcap => Output::Pcap(PacketExport::new(
                    PcapWriter::new(out).with_context(write_err)?,
                )),
                _ => {
                    let mut w = PcapngWriter::new(out, &app).with_context(write_err)?;
                    for s in secrets_of(&args.file) {
                        w.secrets(s.secrets_type, &s.data).with_context(write_err)?;
                    }
                    Output::Pcapng(PacketExport::new(w))
                }
            };
            (staged, output)
        }
    };

    let streams = matches!(kind, Kind::Streams);
    let mut sections = 0u32;
    let mut exporter = Exporter::new(filter.clone(), output);
    let bar = crate::ui::progress_bar(size, "export", args.quiet);
    let mut shown = 0u64;
    let mut n = 0u64;
    while let Some(rec) = reader.next() {
        let rec = rec?;
        n += 1;
        if matches!(rec, crate::format::Record::Session(_)) {
            sections += 1;
            if sections > 1 && !streams {
                // Another session: its connection ids and processes are its own, and one
                // packet file cannot tell them apart. Nothing is written (the output is
                // dropped uncommitted).
                anyhow::bail!(
                    "{}: at byte {}: a second section (another session, e.g. two captures \
                     concatenated) starts here; --pcap and --pcapng export one session: \
                     use --streams (which prefixes later sections' files sN-), or export each \
                     capture on its own",
                    args.file.display(),
                    reader.position()
                );
            }
        }
        exporter
            .record(&rec)
            .with_context(|| format!("failed to write {}", dest.display()))?;
        if n.is_multiple_of(1024) {
            let at = reader.position();
            bar.inc(at.saturating_sub(shown));
            shown = at;
        }
    }
    bar.finish_and_clear();

    if !filter.is_empty() && !exporter.matched_anything() {
        eprintln!(
            "plg: export: no connection or packet of {} matches the filter; nothing written",
            args.file.display()
        );
        return Ok(ExitCode::from(1));
    }
    let (connections, packets) = (exporter.selector.connections, exporter.selector.packets);
    if let Some(mut w) = exporter
        .output
        .finish()
        .with_context(|| format!("failed to write {}", dest.display()))?
    {
        w.flush()
            .with_context(|| format!("failed to write {}", dest.display()))?;
    }
    match staged {
        Staged::File(mut o) => o.commit(),
        Staged::Dir(o) => o.commit(),
    }
    .with_context(|| format!("failed to move the output into place at {}", dest.display()))?;
    if !args.quiet && crate::ui::Stream::Stderr.is_terminal() {
        eprintln!(
            "wrote {}: {}, {}{}",
            dest.display(),
            crate::ui::count(connections, "connection"),
            crate::ui::count(packets, "other packet"),
            if reader.complete() {
                ""
            } else {
                " (the capture is truncated: no closing summary)"
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
