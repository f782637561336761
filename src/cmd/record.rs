//! `plg record`: run each command in its own network namespace, relay and record every TCP
//! connection between them. Validates everything before the first side effect, then hands
//! over to `engine::session`.

use crate::engine::plan::{self, Subnet, Subnet6};
use crate::engine::session::{self, Options, SessionError};
use crate::engine::sink::ThreadedFile;
use crate::error::UsageError;
use crate::format::{CaptureWriter, Mode, Process, Session, FORMAT_VERSION};
use anyhow::Context as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Run commands in private network namespaces and record every TCP conversation between them.
///
/// Each CMD is one shell command line (run with `sh -c`, which execs it when it is a single
/// simple command, so its exit status is the program's) in its own network namespace with one
/// TUN device. Process i gets address subnet+2+i (10.0.0.2 for p0 with the default subnet;
/// subnet+1 is the gateway) and, beside it, IPv6 address subnet6::2+i (fd00:706c:67::2 for p0;
/// ::1 is the IPv6 gateway) unless --no-ipv6, and the hostname pN (or its --names entry);
/// every process resolves every other by name, to both addresses, through /etc/hosts and over
/// DNS (plg answers at the gateway, and each process's /etc/resolv.conf points there; other
/// names get NXDOMAIN at once). The session ends when the last command (or those named with --main)
/// exits (after up to 0.3 s for the connections still open to close by themselves), or on
/// SIGINT, SIGTERM or SIGHUP: every process still running (daemons included) gets one
/// SIGTERM, then SIGKILL after --grace (at once on a second signal). plg exits with the main
/// command's status (128+N after signal N). Without --ready, each command but the last gets up
/// to one second to start listening before the next one starts.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!("Examples:\n  \
    plg record -f web.traffic --ready p0:8000 \\\n      \
    'python3 -m http.server 8000' 'curl -s http://p0:8000/'\n  \
    plg record -f kv.traffic --names db,app --ready db:6379 \\\n      \
    'redis-server --protected-mode no' 'redis-cli -h db ping'\n\n\
    Exit status: the main command's status (128+N when a signal N killed it; 128+N too when \
    plg itself was stopped by signal N, e.g. 130 for Ctrl-C); 2 when plg fails (bad arguments, \
    no permission for namespaces, a command that cannot start, the capture cannot be written).\n\n",
    super::common::isolation_help!()))]
pub struct Args {
    /// Capture file to write (pcapng): a new or regular file. An existing one is replaced once
    /// every process started, so a failed start leaves it as it was; a symlink is followed.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,

    /// Subnet of the processes (p0 gets its second address).
    #[arg(short = 's', long, value_name = "CIDR", default_value = "10.0.0.0/24")]
    pub subnet: String,

    /// IPv6 subnet of the processes (p0 gets its ::2 address, ::1 is the gateway).
    #[arg(long, value_name = "CIDR6", default_value = plan::DEFAULT_SUBNET6)]
    pub subnet6: String,

    /// IPv4 only: no IPv6 address, IPv6 off in every namespace (IPv6 packets are dropped).
    #[arg(long, conflicts_with = "subnet6")]
    pub no_ipv6: bool,

    /// Names of the processes, in order, comma separated (default: p0, p1, ...).
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    pub names: Vec<String>,

    #[command(flatten)]
    pub session: super::common::SessionArgs,

    /// Relay connections to the gateway address (subnet+1) to the host's loopback, recorded
    /// like any other. Without it, processes can reach only each other.
    #[arg(long)]
    pub allow_external: bool,

    /// Shell command lines, one per process.
    #[arg(value_name = "CMD", required = true)]
    pub commands: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let opts = options(&args)?;
    // Must come before any thread exists: a user namespace needs a single-threaded process,
    // and the signal mask is inherited by threads created later.
    crate::os::rootless::enter_user_namespace_if_needed()?;
    // Outlives plg however it dies, and then removes its temporary files.
    let reaper = crate::os::reaper::Reaper::start(vec![
        session::hosts_path(),
        session::resolv_path(),
        session::gai_path(),
    ])?;
    let signals = crate::os::signals::block_and_signalfd()?;

    // Written beside the file (unnamed where the filesystem allows), put in place once every
    // process started: a failed start leaves the old capture, or nothing, as it was.
    let (mut output, file) = super::session::capture_output(&args.file, &[])?;
    let net = session::build_network(&opts)?;
    let start_ns = crate::engine::now_ns();
    let session = Session {
        format_version: FORMAT_VERSION,
        mode: Mode::Record,
        subnet: opts.subnet.network,
        prefix_len: opts.subnet.prefix_len,
        subnet6: opts.subnet6.map(|s| (s.network, s.prefix_len)),
        start_ns,
        plg_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let procs: Vec<Process> = opts
        .procs
        .iter()
        .enumerate()
        .map(|(i, p)| Process {
            index: i as u16,
            name: p.name.clone(),
            command: p.command.clone().unwrap_or_default(),
            addr: opts.subnet.process_addr(i),
            addr6: opts.subnet6.map(|s| s.process_addr(i)),
            live: true,
        })
        .collect();
    // The header blocks go out at once: plg killed in its first second still leaves a
    // capture that says what it was (with no connection yet), not an empty file.
    let writer = CaptureWriter::new(ThreadedFile::new(file)?, &session, &procs)
        .and_then(|mut w| w.flush().map(|()| w))
        .with_context(|| format!("cannot write the capture {}", args.file.display()))?;
    let (engine, proc_ns) = session::start_engine(&opts, net, Some(writer), None)?;
    let outcome = session::run(
        &opts,
        &signals,
        engine,
        proc_ns,
        super::session::Terminal::new(opts.quiet),
        &reaper,
        &mut || {
            output
                .commit()
                .with_context(|| format!("cannot write the capture {}", args.file.display()))
        },
    )
    .map_err(|e| name_capture_error(e, &args.file))?;

    if !opts.quiet {
        eprintln!("{}", summary_paragraph(&args, &procs, &outcome, start_ns));
    }
    Ok(ExitCode::from(outcome.exit_code))
}

/// The engine's "failed to write the capture" (a full disk, an I/O error) as one line naming
/// the file, and saying what is left of it: the writer cut it back to its last whole block, so
/// it reads as truncated.
pub(crate) fn name_capture_error(e: SessionError, path: &std::path::Path) -> anyhow::Error {
    let e = match e {
        SessionError::Run(e) if e.to_string() == "failed to write the capture" => e,
        e => return anyhow::Error::new(e),
    };
    anyhow::anyhow!(
        "cannot write the capture {}: {} (what was written before reads as a truncated capture)",
        path.display(),
        e.root_cause()
    )
}
/// Turns the flags into a checked plan; every user mistake is found here, before any effect.
pub fn options(args: &Args) -> anyhow::Result<Options> {
    let usage = |m: String| anyhow::Error::new(UsageError(m));
    let subnet = Subnet::parse(&args.subnet).map_err(usage)?;
    let subnet6 = if args.no_ipv6 {
        None
    } else {
        Some(Subnet6::parse(&args.subnet6).map_err(usage)?)
    };
    let n = args.commands.len();
    if n > subnet.capacity() {
        return Err(usage(format!(
            "{} but subnet {subnet} has room for {}",
            crate::ui::count(n, "command"),
            crate::ui::count(subnet.capacity(), "process")
        )));
    }
    plan::validate_names(&args.names, n).map_err(usage)?;
    let names: Vec<String> = (0..n).map(|i| plan::process_name(&args.names, i)).collect();
    for c in &args.commands {
        if c.trim().is_empty() {
            return Err(usage("a command is empty".to_string()));
        }
    }
    let commands = args.commands.iter().cloned().map(Some).collect();
    args.session
        .options(subnet, subnet6, names, commands, args.allow_external)
}

/// The closing paragraph. The duration is the capture's own, as `plg inspect` shows it: from
/// the session start written in the capture to its closing summary.
fn summary_paragraph(
    args: &Args,
    procs: &[Process],
    o: &session::Outcome,
    start_ns: u64,
) -> String {
    use crate::ui::{count, human_bytes, human_duration};
    let s = &o.summary;
    let mut out = format!(
        "plg: recorded {} for {} into {}: {} ({} refused, {} reset), \
         {} client->server, {} server->client, {}",
        count(procs.len(), "process"),
        human_duration(s.end_ns.saturating_sub(start_ns)),
        args.file.display(),
        count(s.connections, "connection"),
        s.refused,
        s.resets,
        human_bytes(s.bytes_c2s),
        human_bytes(s.bytes_s2c),
        count(s.packets, "other packet"),
    );
    if s.ipv6_dropped > 0 {
        out.push_str(&format!(
            ", {} dropped",
            count(s.ipv6_dropped, "IPv6 packet")
        ));
    }
    out.push('.');
    if let Some(sig) = o.interrupted {
        out.push_str(&format!(" Stopped by {}.", sig.as_str()));
    }
    for (p, e) in procs.iter().zip(&o.exits) {
        out.push_str(&format!(
            " {} ({}) {}.",
            p.name,
            p.command,
            super::session::describe_exit(*e)
        ));
    }
    out
}
