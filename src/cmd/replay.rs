//! `plg replay`: run some of the recorded processes again and play the others from the
//! capture; report where the live ones stopped behaving as recorded.

use crate::cli::UsageError;
use crate::engine::plan::Subnet;
use crate::engine::replay::{ReplayConfig, ReplayReport};
use crate::engine::script::Script;
use crate::engine::session;
use crate::engine::sink::ThreadedFile;
use crate::format::{CaptureReader, CaptureWriter, Mode, Process, Session, FORMAT_VERSION};
use anyhow::Context as _;
use std::fs::File;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Feed a recording back to live programs, and play the peers that are not there.
///
/// Positional commands stand for the recorded processes by index, with the recorded addresses
/// and names. `-` means "not run: play it from the recording"; processes beyond the commands
/// given are played too; with no command at all, every recorded command line runs again.
/// A live client's connection is matched to the next recorded connection from that process
/// to that server and port; a played client's connections are opened by plg, masqueraded as
/// the recorded client, in recorded order. Each recorded chunk is written once the live side
/// has sent as many bytes as it had before that chunk in the recording. Connections recorded
/// to the gateway (`plg record --allow-external`) are always played: the outside server is not
/// needed.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    # The client live, the server played from the capture\n  \
    plg replay -f run.traffic - 'redis-cli -h p0 ping'\n  \
    # The server live, the client played\n  \
    plg replay -f run.traffic 'redis-server --protected-mode no' -\n  \
    plg replay -f web.traffic -o again.traffic && \\\n      \
    plg diff web.traffic again.traffic\n\n\
    Exit status: the main command's; with --strict, 1 when anything diverged or stayed unused;\n\
    2 on errors.")]
pub struct Args {
    /// The capture to replay.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,

    /// Write a capture of the replay (what live processes sent, what plg played).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Seconds a step may wait for the live side before it is forced and reported.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub step_timeout: f64,

    /// Also honour the recorded gaps between events.
    #[arg(long)]
    pub timing: bool,

    /// With --timing: play this many times faster than recorded.
    #[arg(
        long,
        value_name = "FACTOR",
        default_value_t = 1.0,
        requires = "timing"
    )]
    pub speed: f64,

    /// What to do with a live connection that has no recorded counterpart.
    #[arg(long, value_enum, default_value_t = Unmatched::Refuse)]
    pub unmatched: Unmatched,

    /// Exit 1 when a live process diverged from the recording or a recorded connection
    /// stayed unused.
    #[arg(long)]
    pub strict: bool,

    /// Also write the replay's verdict as JSON to FILE (format in docs/JSON.md), for CI.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    #[command(flatten)]
    pub session: super::common::SessionArgs,

    /// Command lines by recorded index; `-` plays that process from the recording.
    #[arg(value_name = "CMD|-")]
    pub commands: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Unmatched {
    /// Refuse it (RST) and report it.
    Refuse,
    /// Let it through to a live destination, relayed as in recording.
    Pass,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let usage = |m: String| anyhow::Error::new(UsageError(m));
    if !(args.step_timeout.is_finite() && args.step_timeout > 0.0) {
        return Err(usage(format!(
            "--step-timeout {}: expected seconds",
            args.step_timeout
        )));
    }
    if !(args.speed.is_finite() && args.speed > 0.0) {
        return Err(usage(format!(
            "--speed {}: expected a positive factor",
            args.speed
        )));
    }
    let mut reader = CaptureReader::open(&args.file)?;
    let script = Script::build(&mut reader).map_err(|mut e| {
        if e.path.is_empty() {
            e.path = args.file.display().to_string();
        }
        e
    })?;
    let n = script.processes.len();
    if script.session.mode == Mode::Replay && n == 0 {
        return Err(usage(format!(
            "{}: the capture holds no process",
            args.file.display()
        )));
    }
    if args.commands.len() > n {
        return Err(usage(format!(
            "{} commands given but {} recorded {} process{}",
            args.commands.len(),
            args.file.display(),
            n,
            if n == 1 { "" } else { "es" }
        )));
    }
    let subnet = Subnet::parse(&format!(
        "{}/{}",
        script.session.subnet, script.session.prefix_len
    ))
    .map_err(|e| usage(format!("{}: recorded subnet: {e}", args.file.display())))?;
    let names: Vec<String> = script.processes.iter().map(|p| p.name.clone()).collect();
    let commands: Vec<Option<String>> = (0..n)
        .map(|i| {
            if args.commands.is_empty() {
                Some(script.processes[i].command.clone())
            } else {
                match args.commands.get(i).map(String::as_str) {
                    None | Some("-") => None,
                    Some(c) => Some(c.to_string()),
                }
            }
        })
        .collect();
    if !args.quiet() {
        if let Some(e) = &script.damaged {
            eprintln!("plg: warning: {e}; replaying what comes before");
        } else if script.truncated {
            eprintln!(
                "plg: warning: {} is truncated (no closing summary); replaying what it holds",
                args.file.display()
            );
        }
    }
    let opts = args
        .session
        .options(subnet, names, commands.clone(), false)?;

    crate::os::rootless::enter_user_namespace_if_needed()?;
    // Outlives plg however it dies, and then kills whatever is left in its namespaces.
    let reaper = crate::os::reaper::Reaper::start(vec![session::hosts_path()])?;
    let signals = crate::os::signals::block_and_signalfd()?;

    let procs: Vec<Process> = script
        .processes
        .iter()
        .zip(&commands)
        .map(|(p, c)| Process {
            index: p.index,
            name: p.name.clone(),
            command: c.clone().unwrap_or_else(|| p.command.clone()),
            addr: p.addr,
            live: c.is_some(),
        })
        .collect();
    let mut guard = None;
    let writer = match &args.output {
        None => None,
        Some(out) => {
            let file = File::create(out)
                .with_context(|| format!("cannot write the capture {}", out.display()))?;
            guard = Some(super::record::RemoveOnError::new(out.clone()));
            let session = Session {
                format_version: FORMAT_VERSION,
                mode: Mode::Replay,
                subnet: subnet.network,
                prefix_len: subnet.prefix_len,
                start_ns: crate::engine::now_ns(),
                plg_version: env!("CARGO_PKG_VERSION").to_string(),
            };
            Some(
                CaptureWriter::new(ThreadedFile::new(file)?, &session, &procs)
                    .and_then(|mut w| w.flush().map(|()| w))
                    .with_context(|| format!("cannot write the capture {}", out.display()))?,
            )
        }
    };
    let live = commands.iter().map(|c| c.is_some()).collect();
    let replay = ReplayConfig {
        script: script.clone(),
        reader,
        live,
        step_timeout: Duration::from_secs_f64(args.step_timeout),
        timing: args.timing.then_some(args.speed),
        unmatched_pass: args.unmatched == Unmatched::Pass,
    };
    let net = session::build_network(&opts, &reaper)?;
    let (engine, proc_ns) = session::start_engine(&opts, net, writer, Some(replay))?;
    let status = crate::ui::status_line(opts.quiet);
    let outcome = session::run(&opts, &signals, engine, proc_ns, &status);
    let start_failed =
        matches!(&outcome, Err(e) if e.downcast_ref::<session::StartFailed>().is_some());
    if let (Some(g), false) = (guard, start_failed) {
        g.disarm();
    }
    let outcome = outcome?;
    let report = outcome.replay.clone().unwrap_or_default();
    if !opts.quiet {
        eprint!("{}", describe(&script, &procs, &report));
        for (p, e) in procs.iter().zip(&outcome.exits) {
            if p.live {
                eprintln!(
                    "plg: {} ({}) {}.",
                    p.name,
                    p.command,
                    super::record::describe_exit(*e)
                );
            }
        }
    }
    let mut code = outcome.exit_code;
    if args.strict && code == 0 && !report.clean() {
        code = 1;
    }
    if let Some(path) = &args.report {
        let doc = report_json(&args, &script, &procs, &report, &outcome.exits, code);
        let text = serde_json::to_string_pretty(&doc).expect("a JSON value serializes") + "\n";
        std::fs::write(path, text)
            .with_context(|| format!("failed to write the report {}", path.display()))?;
    }
    Ok(ExitCode::from(code))
}

impl Args {
    fn quiet(&self) -> bool {
        self.session.quiet
    }
}

fn endpoint(procs: &[Process], p: u16, addr: std::net::SocketAddrV4) -> String {
    match procs.get(p as usize) {
        Some(pr) => format!("{}:{}", pr.name, addr.port()),
        None => addr.to_string(),
    }
}

/// The replay summary: one line for the totals, one per connection that needs attention.
fn describe(script: &Script, procs: &[Process], r: &ReplayReport) -> String {
    let mut matched = 0;
    let mut unused = 0;
    let mut diverged = 0;
    let mut lines = String::new();
    for (k, (c, rep)) in script.conns.iter().zip(&r.conns).enumerate() {
        if rep.skipped {
            continue;
        }
        let name = format!(
            "connection {k} ({} -> {})",
            endpoint(procs, c.open.client, c.open.client_addr),
            endpoint(procs, c.open.server, c.open.server_addr)
        );
        if rep.replay_id.is_none() {
            unused += 1;
            lines.push_str(&format!(
                "plg:   {name}: unused (the live client never made it)\n"
            ));
            continue;
        }
        matched += 1;
        let mut issues = Vec::new();
        for (d, who) in [(0, "client"), (1, "server")] {
            if let Some(off) = rep.diverged[d] {
                issues.push(format!(
                    "the {who} sent other bytes than recorded from offset {off} ({} sent, {} recorded)",
                    rep.live_bytes[d], c.total[d]
                ));
            }
        }
        if let Some(m) = &rep.outcome_mismatch {
            issues.push(m.clone());
        }
        if let Some(m) = &rep.close_mismatch {
            issues.push(m.clone());
        }
        if rep.step_timeouts > 0 {
            issues.push(format!(
                "{} step(s) timed out waiting for the live side",
                rep.step_timeouts
            ));
        }
        if !issues.is_empty() {
            diverged += 1;
            lines.push_str(&format!("plg:   {name}: {}\n", issues.join("; ")));
        }
    }
    let mut out = format!(
        "plg: replay: {matched} connection{} matched, {diverged} diverged, {} unmatched, {unused} unused",
        if matched == 1 { "" } else { "s" },
        r.unmatched.len()
    );
    if r.packets_played > 0 {
        out.push_str(&format!(", {} packets played", r.packets_played));
    }
    if r.packets_lost > 0 {
        out.push_str(&format!(
            ", {} played packets never taken by their live receiver",
            r.packets_lost
        ));
    }
    out.push_str(
        if diverged == 0 && unused == 0 && r.unmatched.is_empty() && r.packets_lost == 0 {
            ": the live processes behaved as recorded.\n"
        } else {
            ".\n"
        },
    );
    out.push_str(&lines);
    for (client, addr) in &r.unmatched {
        out.push_str(&format!(
            "plg:   unmatched: {} connected to {addr}, which the recording does not have\n",
            procs.get(*client as usize).map_or("?", |p| p.name.as_str())
        ));
    }
    out
}

/// The replay's verdict as a JSON document (`view: "replay"`, docs/JSON.md).
fn report_json(
    args: &Args,
    script: &Script,
    procs: &[Process],
    r: &ReplayReport,
    exits: &[Option<crate::format::ExitStatus>],
    exit_code: u8,
) -> serde_json::Value {
    use crate::format::ExitStatus;
    use serde_json::{json, Value};
    let name = |p: u16| procs.get(p as usize).map(|p| p.name.clone());
    let live = |p: u16| procs.get(p as usize).is_some_and(|p| p.live);
    let both = |v: [Option<u64>; 2]| json!({"client_to_server": v[0], "server_to_client": v[1]});
    let connections: Vec<Value> = script
        .conns
        .iter()
        .zip(&r.conns)
        .enumerate()
        .map(|(k, (c, rep))| {
            let status = if rep.skipped {
                "skipped"
            } else if rep.replay_id.is_none() {
                "unused"
            } else if rep.diverged.iter().any(|d| d.is_some())
                || rep.outcome_mismatch.is_some()
                || rep.close_mismatch.is_some()
                || rep.step_timeouts > 0
            {
                "diverged"
            } else {
                "same"
            };
            json!({
                "index": k,
                "recorded_id": c.open.id,
                "replay_id": rep.replay_id,
                "status": status,
                "client": name(c.open.client),
                "client_addr": c.open.client_addr.ip().to_string(),
                "client_port": c.open.client_addr.port(),
                "server": name(c.open.server),
                "server_addr": c.open.server_addr.ip().to_string(),
                "server_port": c.open.server_addr.port(),
                "diverged_at": both(rep.diverged),
                "live_bytes": both([
                    live(c.open.client).then_some(rep.live_bytes[0]),
                    live(c.open.server).then_some(rep.live_bytes[1]),
                ]),
                "recorded_bytes": both([Some(c.total[0]), Some(c.total[1])]),
                "outcome_mismatch": rep.outcome_mismatch,
                "close_mismatch": rep.close_mismatch,
                "step_timeouts": rep.step_timeouts,
            })
        })
        .collect();
    let unmatched: Vec<Value> = r
        .unmatched
        .iter()
        .map(|(c, addr)| {
            json!({
                "client": name(*c),
                "server_addr": addr.ip().to_string(),
                "server_port": addr.port(),
            })
        })
        .collect();
    let processes: Vec<Value> = procs
        .iter()
        .zip(exits)
        .map(|(p, e)| {
            let exit = match e {
                Some(ExitStatus::Exited(c)) => json!({"code": c, "signal": null}),
                Some(ExitStatus::Signaled(s)) => json!({"code": null, "signal": s}),
                None => Value::Null,
            };
            json!({"index": p.index, "name": p.name, "command": p.command, "live": p.live, "exit": exit})
        })
        .collect();
    json!({
        "version": 1,
        "view": "replay",
        "capture": args.file.display().to_string(),
        "capture_truncated": script.truncated,
        "clean": r.clean(),
        "exit_code": exit_code,
        "processes": processes,
        "connections": connections,
        "unmatched": unmatched,
        "packets_played": r.packets_played,
        "packets_lost": r.packets_lost,
    })
}
