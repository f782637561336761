//! `plg replay`: run some of the recorded processes again and play the others from the
//! capture; report where the live ones stopped behaving as recorded.

use crate::engine::plan::{Subnet, Subnet6};
use crate::engine::replay::{ReplayConfig, ReplayReport};
use crate::engine::script::Script;
use crate::engine::session;
use crate::engine::sink::ThreadedFile;
use crate::error::UsageError;
use crate::format::{CaptureReader, CaptureWriter, Mode, Process, Session, FORMAT_VERSION};
use crate::os::output::{Output, Replace};
use anyhow::Context as _;
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
/// has taken its turn: sent as many bytes as it had before that chunk in the recording, or sent
/// part of a turn and then stayed quiet for 50 ms. A live datagram to a played process is
/// answered as the matching recorded one was. Connections recorded to the gateway
/// (`plg record --allow-external`) are always played: the outside server is not needed.
///
/// The verdict compares what live processes sent with the recording (TCP streams, datagrams,
/// how the main command ended), modulo --ignore and --rules.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!("Examples:\n  \
    # The client live, the server played from the capture\n  \
    plg replay -f run.traffic - 'redis-cli -h p0 ping'\n  \
    # The server live, the client played\n  \
    plg replay -f run.traffic 'redis-server --protected-mode no' -\n  \
    plg replay -f web.traffic -o again.traffic && \\\n      \
    plg diff web.traffic again.traffic\n  \
    # CI: both live, the verdict as the exit status, a Date header is noise\n  \
    plg replay -f web.traffic --strict --ignore 'Date: [^\\r]*'\n\n\
    Exit status: without --strict, the main command's (2 on plg errors). With --strict, plg's\n\
    verdict: 0 the live processes behaved as recorded (modulo --ignore/--rules), 1 anything\n\
    diverged, stayed unused, went unmatched or could not be judged, 2 a plg error.\n\n",
    super::common::isolation_help!()))]
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

    /// Exit with plg's verdict instead of the main command's status: 0 behaved as recorded
    /// (modulo --ignore/--rules), 1 diverged, unused, unmatched or not judged, 2 plg error.
    #[arg(long)]
    pub strict: bool,

    /// Bytes matching REGEX compare as equal in the verdict (repeatable; the syntax of
    /// `plg diff --ignore`). Matched on bytes: `.` and `[^\r]` match any byte.
    #[arg(long, value_name = "REGEX")]
    pub ignore: Vec<String>,

    /// Read noise rules from FILE (repeatable; the format of `plg diff --rules`, learned
    /// rules included: ignore, ignore-conn, ignore-port).
    #[arg(long, value_name = "FILE")]
    pub rules: Vec<PathBuf>,

    /// Also write the replay's verdict as JSON to FILE (format in docs/JSON.md), for CI; `-`
    /// is standard output. Replaces FILE if it is a regular file.
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
    let rules = super::common::load_rules(&args.rules, &args.ignore)?;
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
            "{} given but {} recorded {}",
            crate::ui::count(args.commands.len(), "command"),
            args.file.display(),
            crate::ui::count(n, "process")
        )));
    }
    let subnet = Subnet::parse(&format!(
        "{}/{}",
        script.session.subnet, script.session.prefix_len
    ))
    .map_err(|e| usage(format!("{}: recorded subnet: {e}", args.file.display())))?;
    // The recorded IPv6 subnet (none in a format-1 or --no-ipv6 capture: IPv4 only, as then).
    let subnet6 = match script.session.subnet6 {
        Some((net, len)) => Some(Subnet6::parse(&format!("{net}/{len}")).map_err(|e| {
            usage(format!(
                "{}: recorded IPv6 subnet: {e}",
                args.file.display()
            ))
        })?),
        None => None,
    };
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
    let mut opts = args
        .session
        .options(subnet, subnet6, names, commands.clone(), false)?;
    // What the session really has (none below an MTU of 1280).
    let subnet6 = opts.subnet6;
    opts.settle = Duration::from_secs_f64(args.step_timeout);

    // Checked before the session: a report that cannot be written is known at once.
    let report_out = match &args.report {
        Some(path) => {
            let mut inputs = vec![args.file.as_path()];
            inputs.extend(args.output.as_deref());
            Some(
                Output::open(path, Replace::Yes, &inputs, true)
                    .map_err(|e| anyhow::Error::new(UsageError(e.to_string())))?,
            )
        }
        None => None,
    };
    crate::os::rootless::enter_user_namespace_if_needed()?;
    // Outlives plg however it dies, and then kills whatever is left in its namespaces.
    let reaper = crate::os::reaper::Reaper::start(vec![
        session::hosts_path(),
        session::resolv_path(),
        session::gai_path(),
    ])?;
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
            addr6: subnet6.map(|s| s.process_addr(p.index as usize)),
            live: c.is_some(),
        })
        .collect();
    // The verdict pass compares the replay's own capture with the recording: with noise
    // rules, or when there are non-TCP packets to judge, a capture is written even without
    // -o (a private temporary file, removed at the end).
    let judge = !rules.is_empty() || !script.packets.is_empty();
    let mut temp = None;
    let out_path = match (&args.output, judge) {
        (Some(out), _) => Some(out.clone()),
        (None, true) => {
            let t = TempCapture::create()?;
            let p = t.path.clone();
            temp = Some(t);
            Some(p)
        }
        (None, false) => None,
    };
    let mut output = None;
    let writer = match &out_path {
        None => None,
        Some(out) => {
            let file = match &temp {
                Some(t) => t
                    .file
                    .try_clone()
                    .with_context(|| format!("cannot write the capture {}", out.display()))?,
                None => {
                    let (o, file) = super::session::capture_output(out, &[&args.file])?;
                    output = Some(o);
                    file
                }
            };
            let session = Session {
                format_version: FORMAT_VERSION,
                mode: Mode::Replay,
                subnet: subnet.network,
                prefix_len: subnet.prefix_len,
                subnet6: subnet6.map(|s| (s.network, s.prefix_len)),
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
    let net = session::build_network(&opts)?;
    let (engine, proc_ns) = session::start_engine(&opts, net, writer, Some(replay))?;
    let outcome = session::run(
        &opts,
        &signals,
        engine,
        proc_ns,
        super::session::Terminal::new(opts.quiet),
        &reaper,
        &mut || match (&mut output, &args.output) {
            (Some(o), Some(path)) => o
                .commit()
                .with_context(|| format!("cannot write the capture {}", path.display())),
            _ => Ok(()),
        },
    )
    .map_err(|e| match &args.output {
        Some(path) => super::record::name_capture_error(e, path),
        None => anyhow::Error::new(e),
    })?;
    let mut report = outcome.replay.clone().unwrap_or_default();
    let live: Vec<bool> = commands.iter().map(|c| c.is_some()).collect();
    if let Some(out) = out_path.as_ref().filter(|_| judge) {
        let opts = crate::diff::compare::Options {
            rules,
            ..Default::default()
        };
        match crate::diff::diff_files(&args.file, out, &opts) {
            Ok(diff) => crate::diff::replay::judge(&mut report, &script, &live, &diff),
            Err(e) => report
                .unjudged
                .push(format!("the replay's capture could not be compared: {e:#}")),
        }
    }
    drop(temp);
    name_what_cannot_replay(&args, &script, &mut report);
    for &m in &opts.main {
        let (Some(now), Some(then)) = (
            outcome.exits.get(m).copied().flatten(),
            script.exits.get(m).copied().flatten(),
        ) else {
            continue;
        };
        if now != then && live[m] {
            report.exits.push(format!(
                "{} {}, recorded {}",
                procs[m].name,
                super::session::describe_exit(Some(now)),
                super::session::describe_exit(Some(then))
            ));
        }
    }
    if !opts.quiet {
        eprint!("{}", describe(&script, &procs, &report));
        for (p, e) in procs.iter().zip(&outcome.exits) {
            if p.live {
                eprintln!(
                    "plg: {} ({}) {}.",
                    p.name,
                    p.command,
                    super::session::describe_exit(*e)
                );
            }
        }
    }
    let code = if args.strict {
        u8::from(!report.clean())
    } else {
        outcome.exit_code
    };
    if let (Some(path), Some((mut out, mut file))) = (&args.report, report_out) {
        let doc = report_json(
            &args,
            &script,
            &procs,
            &report,
            &outcome.exits,
            (code, outcome.exit_code),
        );
        let text = serde_json::to_string_pretty(&doc).expect("a JSON value serializes") + "\n";
        std::io::Write::write_all(&mut file, text.as_bytes())
            .and_then(|()| out.commit())
            .with_context(|| format!("failed to write the report {}", path.display()))?;
    }
    Ok(ExitCode::from(code))
}

impl Args {
    fn quiet(&self) -> bool {
        self.session.quiet
    }
}

/// The replay's capture when only the verdict needs it: created exclusively in the temporary
/// directory, removed when dropped.
struct TempCapture {
    path: PathBuf,
    file: std::fs::File,
}

impl TempCapture {
    fn create() -> anyhow::Result<TempCapture> {
        let dir = std::env::temp_dir();
        for n in 0..100u32 {
            let path = dir.join(format!("plg-replay-{}-{n}.traffic", std::process::id()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => return Ok(TempCapture { path, file }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("cannot create a temporary capture in {}", dir.display())
                    })
                }
            }
        }
        anyhow::bail!(
            "cannot create a temporary capture in {}: too many exist",
            dir.display()
        )
    }
}

impl Drop for TempCapture {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A connection that diverged in a TLS or SSH opening gets the reason in words.
fn name_what_cannot_replay(args: &Args, script: &Script, report: &mut ReplayReport) {
    let mut reader = None;
    for (c, rep) in script.conns.iter().zip(report.conns.iter_mut()) {
        if rep.diverged_dirs().next().is_none() {
            continue;
        }
        if reader.is_none() {
            reader = CaptureReader::open(&args.file).ok();
        }
        let Some(r) = reader.as_mut() else { return };
        let mut first = |d: usize| -> Vec<u8> {
            match c.steps[d].first().map(|s| r.read_at(s.offset)) {
                Some(Ok(crate::format::Record::Data(d))) => d.bytes,
                _ => Vec::new(),
            }
        };
        let (a, b) = (first(0), first(1));
        rep.cannot_replay = crate::diff::replay::cannot_replay(&a, &b).map(str::to_string);
    }
}

fn endpoint(procs: &[Process], p: u16, addr: std::net::SocketAddr) -> String {
    match procs.get(p as usize) {
        Some(pr) => format!("{}:{}", pr.name, addr.port()),
        None => addr.to_string(),
    }
}

/// The replay summary: one line for the totals and the verdict, one per connection, flow or
/// process that needs attention.
fn describe(script: &Script, procs: &[Process], r: &ReplayReport) -> String {
    let mut matched = 0;
    let mut unused = 0;
    let mut diverged = 0;
    let mut ignored = 0;
    let mut noise = 0;
    let mut lines = String::new();
    for (k, (c, rep)) in script.conns.iter().zip(&r.conns).enumerate() {
        if rep.skipped {
            continue;
        }
        let live_port = match rep.live_client_port {
            Some(p) if p != c.open.client_addr.port() => format!(", live port {p}"),
            _ => String::new(),
        };
        let name = format!(
            "connection {k} ({} -> {}{live_port})",
            endpoint(procs, c.open.client, c.open.client_addr),
            endpoint(procs, c.open.server, c.open.server_addr)
        );
        if let Some(rule) = &rep.ignored_by {
            ignored += 1;
            if rule.starts_with("ignore-") {
                lines.push_str(&format!("plg:   {name}: left out by the rule {rule}\n"));
            } else {
                lines.push_str(&format!("plg:   {name}: left out ({rule})\n"));
            }
            continue;
        }
        if rep.replay_id.is_none() {
            unused += 1;
            lines.push_str(&format!(
                "plg:   {name}: unused (the live client never made it)\n"
            ));
            continue;
        }
        matched += 1;
        if rep.noise_only.iter().any(|n| *n) {
            noise += 1;
        }
        let mut issues = Vec::new();
        for (d, off) in rep.diverged_dirs() {
            let who = if d == 0 { "client" } else { "server" };
            issues.push(format!(
                "the {who} sent other bytes than recorded from offset {off} ({} sent, {} recorded)",
                crate::ui::count(rep.live_bytes[d], "byte"),
                crate::ui::count(c.total[d], "byte")
            ));
        }
        if let Some(m) = &rep.outcome_mismatch {
            issues.push(m.clone());
        }
        if let Some(m) = &rep.close_mismatch {
            issues.push(m.clone());
        }
        if rep.step_timeouts > 0 {
            issues.push(format!(
                "{} timed out waiting for the live side",
                crate::ui::count(rep.step_timeouts, "step")
            ));
        }
        if !issues.is_empty() {
            diverged += 1;
            lines.push_str(&format!("plg:   {name}: {}\n", issues.join("; ")));
            if let Some(why) = &rep.cannot_replay {
                lines.push_str(&format!("plg:     {why}\n"));
            }
        }
    }
    let mut out = format!(
        "plg: replay: {} matched, {diverged} diverged, {} unmatched, {unused} unused",
        crate::ui::count(matched, "connection"),
        r.unmatched.len()
    );
    if ignored > 0 {
        out.push_str(&format!(", {ignored} left out by rules"));
    }
    if noise > 0 {
        out.push_str(&format!(", {noise} differing only in ignored bytes"));
    }
    if r.packets_played > 0 {
        out.push_str(&format!(
            ", {} played",
            crate::ui::count(r.packets_played, "packet")
        ));
    }
    if r.packets_lost > 0 {
        out.push_str(&format!(
            ", {} never taken by their live receiver",
            crate::ui::count(r.packets_lost, "played packet")
        ));
    }
    if !r.flows.is_empty() {
        out.push_str(&format!(
            ", {} diverged",
            crate::ui::count(r.flows.len(), "packet flow")
        ));
    }
    out.push_str(if r.clean() {
        ": the live processes behaved as recorded.\n"
    } else {
        ".\n"
    });
    out.push_str(&lines);
    for f in &r.flows {
        out.push_str(&format!("plg:   {}: {}\n", f.label, f.what));
    }
    for e in &r.exits {
        out.push_str(&format!("plg:   {e}\n"));
    }
    for (client, addr) in &r.unmatched {
        out.push_str(&format!(
            "plg:   unmatched: {} connected to {addr}, which the recording does not have\n",
            procs.get(*client as usize).map_or("?", |p| p.name.as_str())
        ));
    }
    for u in &r.unjudged {
        out.push_str(&format!("plg:   not judged: {u}\n"));
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
    (exit_code, main_exit_code): (u8, u8),
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
            let mut diverged = [None, None];
            for (d, off) in rep.diverged_dirs() {
                diverged[d] = Some(off);
            }
            json!({
                "index": k,
                "recorded_id": c.open.id,
                "replay_id": rep.replay_id,
                "status": rep.status(),
                "live_client_port": rep.live_client_port,
                "client": name(c.open.client),
                "client_addr": c.open.client_addr.ip().to_string(),
                "client_port": c.open.client_addr.port(),
                "server": name(c.open.server),
                "server_addr": c.open.server_addr.ip().to_string(),
                "server_port": c.open.server_addr.port(),
                "diverged_at": both(diverged),
                "noise_only": {"client_to_server": rep.noise_only[0], "server_to_client": rep.noise_only[1]},
                "ignored_by": rep.ignored_by,
                "cannot_replay": rep.cannot_replay,
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
        "strict": args.strict,
        "exit_code": exit_code,
        "main_exit_code": main_exit_code,
        "rules": args.ignore.iter().map(|p| json!({"ignore": p})).chain(
            args.rules.iter().map(|f| json!({"file": f.display().to_string()}))).collect::<Vec<_>>(),
        "flows": r.flows.iter().map(|f| json!({"flow": f.label, "what": f.what})).collect::<Vec<_>>(),
        "exit_mismatches": r.exits,
        "not_judged": r.unjudged,
        "processes": processes,
        "connections": connections,
        "unmatched": unmatched,
        "packets_played": r.packets_played,
        "packets_lost": r.packets_lost,
    })
}
