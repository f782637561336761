//! A whole session: build the namespaces and TUNs, start the relay, run the processes in
//! order, pass their output through, and end it all cleanly (the last command exiting, Ctrl-C
//! or SIGTERM), leaving no process, namespace or interface behind.
//!
//! Everything kernel-side dies with plg: namespaces are held only by fds and by the children,
//! each command runs in a PID namespace of its own whose init has PDEATHSIG=SIGKILL (see
//! `os::process`), and the TUNs vanish with their namespaces.
//!
//! Ending: once the main commands have exited, the connections still open get up to
//! [`QUIESCE`] to close by themselves; then each command's processes get exactly one SIGTERM,
//! then SIGKILL after `--grace` (or at once on a second SIGINT/SIGTERM/SIGHUP). plg never
//! waits on anything unbounded after that: output pumps still blocked a second later (a full stdout, a pipe held open) are left
//! behind and die with the process.
//!
//! Nothing here writes for the user: what the session has to show (the live counters, a
//! warning, a child's output beside a status line) goes through a [`View`], and why it
//! failed is a [`SessionError`] value; their wording is the command line's (`cmd::session`).

use super::plan::{
    self, Plan, Subnet, Subnet6, PROXY6_ADDR, PROXY6_PREFIX, PROXY_ADDR, PROXY_PREFIX,
};
use super::{Config, Control, Handle, ProcTun};
use crate::format::{CaptureWriter, ExitStatus, ProcessExit, Summary};
use crate::os::process::{self, Exit, SpawnError, SpawnSpec, Spawned};
use crate::os::reaper::Reaper;
use crate::os::signals::SignalFd;
use crate::os::tun::{create_tun, TunConfig};
use crate::os::{disable_ipv6, ipv6_quiet, loopback_up, sysctl_set, HostSockets, Netns};
use anyhow::Context as _;
use nix::sys::signal::Signal;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When the main commands have ended, how long the session waits for the connections still
/// open to close before it ends the other processes (without it, a server's goodbye to a
/// client that had just left was recorded in some runs and killed by SIGTERM in others).
/// Bounded: connections between daemons that never close cost only this.
pub const QUIESCE: Duration = Duration::from_millis(300);
/// TUN queue length: the default (500) overflows under load; at 10,000 the proxy TUN still
/// dropped packets with 1,000 busy connections.
const TXQUEUELEN: u32 = 65_536;

/// One process of the session: its command, or None when it is not run (played by replay).
pub struct ProcSpec {
    pub name: String,
    pub command: Option<String>,
}

/// `--ready NAME[:PORT]`: hold back later commands until process `index` listens (on `port`,
/// or on any port).
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    pub index: usize,
    pub port: Option<u16>,
}

pub struct Options {
    pub subnet: Subnet,
    /// The processes' IPv6 subnet; None with `--no-ipv6` (IPv4 only, IPv6 off in every
    /// namespace).
    pub subnet6: Option<Subnet6>,
    pub procs: Vec<ProcSpec>,
    pub ready: Vec<Ready>,
    /// The session ends when all of these have exited (default: the last command). Empty in
    /// a replay whose last process is played: the session ends when the replay is complete.
    pub main: Vec<usize>,
    pub grace: Duration,
    pub ready_timeout: Duration,
    pub prefix_output: bool,
    pub quiet: bool,
    pub allow_external: bool,
    pub mtu: u32,
    pub offload: bool,
    /// Run each command in a user namespace of its own (uid 0 inside, `nobody` or the invoking
    /// user outside): the boundary of rootless mode and more (`--userns`).
    pub user_namespace: bool,
    /// Order names IPv6 first (`--prefer-ipv6`; see [`plan::gai_conf`]).
    pub prefer_ipv6: bool,
    /// Replay: once the main commands ended, wait up to this long for live processes still
    /// expected to send what they sent in the recording, before ending the others. A live
    /// client fed recorded answers can finish before its live server even answered; ending
    /// the server then would report a divergence that is only the session's haste.
    pub settle: Duration,
}

impl Options {
    /// The session's addresses.
    pub fn plan(&self) -> Plan {
        Plan {
            v4: self.subnet,
            v6: self.subnet6,
        }
    }
}

/// How the session ended.
pub struct Outcome {
    pub summary: Summary,
    pub replay: Option<super::replay::ReplayReport>,
    pub exits: Vec<Option<ExitStatus>>,
    /// plg was told to stop (SIGINT/SIGTERM/SIGHUP) before the main commands ended.
    pub interrupted: Option<Signal>,
    /// The exit code plg should return: the main command's status.
    pub exit_code: u8,
    pub elapsed: Duration,
}

/// The namespaces and TUNs of a session, ready for the engine and the processes.
pub struct Network {
    pub proxy_ns: Netns,
    pub proxy_tun: std::os::fd::OwnedFd,
    pub proc_ns: Vec<Netns>,
    pub proc_tuns: Vec<ProcTun>,
}

/// Creates the proxy namespace and one namespace+TUN per process (in parallel threads: each
/// thread unshares its own namespace).
pub fn build_network(opts: &Options) -> anyhow::Result<Network> {
    let (mtu, offload, subnet, subnet6) = (opts.mtu, opts.offload, opts.subnet, opts.subnet6);
    let userns = opts.user_namespace;
    let (proxy_ns, proxy_tun) = Netns::create_with(move || {
        match subnet6 {
            Some(_) => ipv6_quiet()?,
            None => disable_ipv6()?,
        }
        loopback_up()?;
        // Many short connections pass through here: room for ephemeral ports, reuse of
        // TIME_WAIT ports for the upstream sockets, and a deep accept queue.
        sysctl_set("net/ipv4/ip_local_port_range", "1024 65535")?;
        sysctl_set("net/ipv4/tcp_tw_reuse", "1")?;
        // Timestamps without a random offset per connection: a server sees every connection
        // come from an upstream socket here, and when a client reuses its port while the
        // server still holds the old one in TIME_WAIT, the server accepts the new SYN only if
        // its timestamp is newer (PAWS). With random offsets, 1 in 20 fresh connections
        // stalled 10 ms on that.
        let _ = sysctl_set("net/ipv4/tcp_timestamps", "2");
        let _ = sysctl_set("net/core/somaxconn", "65535");
        let _ = sysctl_set("net/ipv4/tcp_max_syn_backlog", "65535");
        create_tun(&TunConfig {
            name: "plgproxy".into(),
            addr: PROXY_ADDR,
            prefix_len: PROXY_PREFIX,
            mtu,
            txqueuelen: TXQUEUELEN,
            offload,
            routes: vec![(subnet.network, subnet.prefix_len)],
            addr6: subnet6.map(|_| (PROXY6_ADDR, PROXY6_PREFIX)),
            routes6: subnet6
                .map(|s| vec![(s.network, s.prefix_len)])
                .unwrap_or_default(),
        })
    })
    .context("failed to create the proxy namespace")?;
    let mut proc_ns = Vec::new();
    let mut proc_tuns = Vec::new();
    for (i, p) in opts.procs.iter().enumerate() {
        let addr = subnet.process_addr(i);
        let addr6 = subnet6.map(|s| s.process_addr(i));
        let (ns, fd) = Netns::create_with(move || {
            match subnet6 {
                Some(_) => ipv6_quiet()?,
                None => disable_ipv6()?,
            }
            loopback_up()?;
            // Every "port unreachable" is sent, none held back by the per-peer rate limit: in
            // replay, plg learns from them whether a played datagram reached a socket (and sends
            // it again until one is bound); a suppressed one would read as delivered.
            let _ = sysctl_set("net/ipv4/icmp_ratelimit", "0");
            let _ = sysctl_set("net/ipv6/icmp/ratelimit", "0");
            if userns {
                // A command in its own user namespace has no privilege over this network
                // namespace: let it bind low ports and open ping sockets all the same.
                sysctl_set("net/ipv4/ip_unprivileged_port_start", "0")?;
                let _ = sysctl_set("net/ipv4/ping_group_range", "0 2147483647");
            }
            create_tun(&TunConfig {
                name: "plg0".into(),
                addr,
                prefix_len: subnet.prefix_len,
                mtu,
                txqueuelen: TXQUEUELEN,
                offload,
                // Everything off-subnet comes to plg too, to be refused at once.
                routes: vec![(Ipv4Addr::UNSPECIFIED, 0)],
                addr6: subnet6.map(|s| (s.process_addr(i), s.prefix_len)),
                routes6: subnet6
                    .map(|_| vec![(Ipv6Addr::UNSPECIFIED, 0)])
                    .unwrap_or_default(),
            })
        })
        .with_context(|| format!("failed to create the namespace of {}", p.name))?;
        proc_ns.push(ns);
        proc_tuns.push(ProcTun { fd, addr, addr6 });
    }
    Ok(Network {
        proxy_ns,
        proxy_tun,
        proc_ns,
        proc_tuns,
    })
}

/// Starts the engine over a built network.
pub fn start_engine<W: Write + super::sink::Close + Send + 'static>(
    opts: &Options,
    net: Network,
    capture: Option<CaptureWriter<W>>,
    replay: Option<super::replay::ReplayConfig>,
) -> anyhow::Result<(Handle, Vec<Netns>)> {
    let (external, dns_host) = if opts.allow_external {
        (Some(HostSockets::start()?), Some(HostSockets::start()?))
    } else {
        (None, None)
    };
    let handle = super::start(
        Config {
            plan: opts.plan(),
            procs: net.proc_tuns,
            proxy_ns: net.proxy_ns,
            proxy_tun: net.proxy_tun,
            offload: opts.offload,
            external,
            replay,
            dns: super::plan::dns_zone(
                &opts.plan(),
                &opts
                    .procs
                    .iter()
                    .map(|p| p.name.clone())
                    .collect::<Vec<_>>(),
                opts.procs.len(),
            ),
            dns_host,
        },
        capture,
    )?;
    Ok((handle, net.proc_ns))
}

/// What the session shows while it runs, implemented by the command line: the engine knows no
/// terminal, no progress bar and no flag names.
pub trait View: Send + Sync {
    /// Whether live counters are shown at all (read once: no [`View::status`] calls if not).
    fn shows_status(&self) -> bool;
    /// The live counters, a few times a second.
    fn status(&self, stats: &super::Stats);
    /// Something the user should know that does not stop the session.
    fn warn(&self, warning: Warning);
    /// Runs `write`, which writes a child's output to plg's stdout (`stderr` false) or
    /// stderr, so that it does not mix with what the view draws. It must not hold a lock
    /// `write` could block under longer than it has to: a full stdout stalls `write`.
    fn around_output(&self, stderr: bool, write: &mut dyn FnMut());
    /// The session is over: take down what was drawn.
    fn done(&self);
}

/// A condition worth telling the user that does not stop the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warning {
    /// The reaper process died: the session goes on (its processes still end with plg), only
    /// the temporary files of a plg killed with -9 would stay.
    ReaperDied,
    /// A connection was refused because `cap` were open, the most the relay may hold at once
    /// ([`super::MAX_LIVE_CONNS`], or fewer when the open-file limit allows fewer). Said once.
    AtCapacity { cap: u64 },
}

/// Why a `--ready` condition was not met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// The process is not run (it is played).
    NotRun,
    /// It exited before listening.
    Exited(Exit),
    /// It did not listen within the `--ready-timeout`.
    TimedOut(Duration),
}

/// Why a session failed.
#[derive(Debug)]
pub enum SessionError {
    /// Process `name` did not start listening (on `port`, or on any port) as `--ready` asked:
    /// the session stopped before the later commands ran.
    Ready {
        name: String,
        port: Option<u16>,
        /// The session has IPv6: a listener in either family counts.
        ipv6: bool,
        why: NotReady,
    },
    /// Something else stopped the session before all its processes ran (a command that could
    /// not start, the caller's `on_started`): the capture holds nothing worth keeping.
    Start(anyhow::Error),
    /// The session could not be set up, or failed while it ran or ended.
    Run(anyhow::Error),
}

impl SessionError {
    /// The session stopped before all its processes ran.
    pub fn before_start(&self) -> bool {
        !matches!(self, SessionError::Run(_))
    }
}

impl std::error::Error for SessionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SessionError::Ready { .. } => None,
            SessionError::Start(e) => Some(e.as_ref()),
            // Transparent: the error's own message is the first of the chain.
            SessionError::Run(e) => e.source(),
        }
    }
}

/// Where this plg writes the hosts file its processes see.
pub fn hosts_path() -> PathBuf {
    std::env::temp_dir().join(format!("plg-hosts-{}", std::process::id()))
}

/// Where this plg writes the resolv.conf its processes see.
pub fn resolv_path() -> PathBuf {
    std::env::temp_dir().join(format!("plg-resolv-{}", std::process::id()))
}

/// Where this plg writes the gai.conf its processes see (IPv6 sessions).
pub fn gai_path() -> PathBuf {
    std::env::temp_dir().join(format!("plg-gai-{}", std::process::id()))
}

/// A temporary hosts (resolv.conf, gai.conf) file, removed on drop (the bind mounts keep their
/// inode alive).
struct HostsFile(PathBuf);
impl Drop for HostsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

struct Running {
    child: Spawned,
    exit: Option<ExitStatus>,
}

/// Runs the processes until the session ends, then stops the engine. `on_started` is called
/// once every process started (after the point where a [`SessionError::Start`] can happen):
/// `record` puts its capture in place there, so a failed start never replaces the user's old
/// capture.
pub fn run(
    opts: &Options,
    signals: &SignalFd,
    engine: Handle,
    proc_ns: Vec<Netns>,
    view: Arc<dyn View>,
    reaper: &Reaper,
    on_started: &mut dyn FnMut() -> anyhow::Result<()>,
) -> Result<Outcome, SessionError> {
    let started = Instant::now();
    let shows_status = view.shows_status();
    let names: Vec<String> = opts.procs.iter().map(|p| p.name.clone()).collect();
    let hosts_path = hosts_path();
    std::fs::write(
        &hosts_path,
        plan::hosts_file(&opts.plan(), &names, names.len()),
    )
    .with_context(|| format!("failed to write {}", hosts_path.display()))
    .map_err(SessionError::Run)?;
    let hosts = HostsFile(hosts_path.clone());
    let resolv_path = resolv_path();
    std::fs::write(&resolv_path, plan::resolv_conf(&opts.plan()))
        .with_context(|| format!("failed to write {}", resolv_path.display()))
        .map_err(SessionError::Run)?;
    let resolv = HostsFile(resolv_path.clone());
    // Nothing to mount over when the host has none (or a dangling symlink): see SpawnSpec.
    let resolv_file = std::fs::metadata("/etc/resolv.conf")
        .is_ok()
        .then(|| resolv_path.clone());
    let gai = match opts.subnet6 {
        Some(_) => {
            let path = gai_path();
            std::fs::write(&path, plan::gai_conf(opts.prefer_ipv6))
                .with_context(|| format!("failed to write {}", path.display()))
                .map_err(SessionError::Run)?;
            Some(HostsFile(path))
        }
        None => None,
    };
    let mut env_peers: Vec<(String, String)> = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let var = format!("PLG_ADDR_{}", n.to_uppercase().replace('-', "_"));
        env_peers.push((var.clone(), opts.subnet.process_addr(i).to_string()));
        if let Some(s6) = opts.subnet6 {
            env_peers.push((format!("{var}6"), s6.process_addr(i).to_string()));
        }
        if *n != format!("p{i}") {
            env_peers.push((
                format!("PLG_ADDR_P{i}"),
                opts.subnet.process_addr(i).to_string(),
            ));
            if let Some(s6) = opts.subnet6 {
                env_peers.push((format!("PLG_ADDR_P{i}6"), s6.process_addr(i).to_string()));
            }
        }
    }

    let mut keylogs = super::keylog::KeyLogs::new()
        .with_context(|| {
            format!(
                "failed to create a directory for TLS key logs in {}",
                std::env::temp_dir().display()
            )
        })
        .map_err(SessionError::Run)?;
    // The commands' stdout and stderr lines are written under one lock when plg's stdout and
    // stderr are the same file, so lines do not interleave mid-line. Otherwise each has its
    // own: holding one lock while blocked on a full stdout (a pipe nobody reads) would keep
    // every command's stderr from showing.
    let out_lock = Arc::new(Mutex::new(()));
    let err_lock = if crate::os::output::stdout_is_stderr() {
        out_lock.clone()
    } else {
        Arc::new(Mutex::new(()))
    };
    let mut running: Vec<Option<Running>> = Vec::new();
    let mut interrupted = None;
    let mut pumps = Vec::new();
    let result = (|| -> Result<(), SessionError> {
        for (i, (p, ns)) in opts.procs.iter().zip(proc_ns).enumerate() {
            let Some(cmd) = &p.command else {
                running.push(None);
                continue;
            };
            let mut env = vec![
                ("PLG_INDEX".to_string(), i.to_string()),
                ("PLG_NAME".to_string(), p.name.clone()),
                (
                    "PLG_ADDR".to_string(),
                    opts.subnet.process_addr(i).to_string(),
                ),
                ("PLG_SUBNET".to_string(), opts.subnet.to_string()),
            ];
            if let Some(s6) = opts.subnet6 {
                env.push(("PLG_ADDR6".to_string(), s6.process_addr(i).to_string()));
                env.push(("PLG_SUBNET6".to_string(), s6.to_string()));
            }
            env.extend(env_peers.iter().cloned());
            env.push((
                super::keylog::ENV.to_string(),
                keylogs.add(i).display().to_string(),
            ));
            let spawned = process::spawn_watching(
                &SpawnSpec {
                    command: cmd.clone(),
                    netns: ns,
                    hosts_file: hosts_path.clone(),
                    resolv_file: resolv_file.clone(),
                    gai_conf: gai.as_ref().map(|g| g.0.clone()),
                    hostname: p.name.clone(),
                    env,
                    cwd: None,
                    user_namespace: opts.user_namespace,
                },
                Some(signals),
            );
            let mut child = match spawned {
                Ok(child) => child,
                // Told to stop while it started: end as for the signal (the command is gone).
                Err(SpawnError::Interrupted(sig)) => {
                    interrupted = Some(sig);
                    return Ok(());
                }
                Err(SpawnError::Failed(e)) => {
                    return Err(SessionError::Start(
                        e.context(format!("failed to start {} ({cmd})", p.name)),
                    ))
                }
            };
            let prefix = if opts.prefix_output && opts.procs.len() > 1 {
                Some(format!("{}| ", p.name))
            } else {
                None
            };
            if let Some(o) = child.stdout.take() {
                pumps.push(pass_output(
                    o,
                    false,
                    prefix.clone(),
                    out_lock.clone(),
                    view.clone(),
                ));
            }
            if let Some(e) = child.stderr.take() {
                pumps.push(pass_output(e, true, prefix, err_lock.clone(), view.clone()));
            }
            running.push(Some(Running { child, exit: None }));
            let waits: Vec<Ready> = if opts.ready.is_empty() {
                // No --ready: give each command but the last a moment to start listening, so
                // the common "server then client" line works without sleeps.
                if i + 1 < opts.procs.len() {
                    vec![Ready {
                        index: i,
                        port: None,
                    }]
                } else {
                    vec![]
                }
            } else {
                opts.ready
                    .iter()
                    .copied()
                    .filter(|r| r.index == i)
                    .collect()
            };
            for r in waits {
                let explicit = !opts.ready.is_empty();
                let timeout = if explicit {
                    opts.ready_timeout
                } else {
                    Duration::from_secs(1)
                };
                wait_ready(
                    &mut running,
                    r,
                    &opts.plan(),
                    timeout,
                    explicit,
                    &names,
                    signals,
                    &mut interrupted,
                )?;
                if interrupted.is_some() {
                    return Ok(());
                }
            }
        }
        Ok(())
    })();
    // Every process has it bind-mounted by now (the mount keeps the inode alive).
    drop(hosts);
    drop(resolv);
    drop(gai);
    engine.stats.all_started.store(true, Relaxed);
    if let Err(e) = result.and_then(|()| on_started().map_err(SessionError::Start)) {
        terminate(&mut running, opts.grace, signals);
        let _ = engine.stop();
        return Err(e);
    }

    // Supervise: wait for the main commands, Ctrl-C/SIGTERM, or an engine failure.
    let mut last_status = Instant::now();
    let mut reaper_warned = false;
    let mut cap_warned = false;
    while interrupted.is_none() {
        if !cap_warned && engine.stats.cap_refused.load(Relaxed) > 0 {
            cap_warned = true;
            view.warn(Warning::AtCapacity {
                cap: engine.stats.conn_cap.load(Relaxed),
            });
        }
        if !reaper_warned && !reaper.alive() {
            // Containment does not depend on it (each command's PID namespace dies with
            // plg); only the temporary files of a plg killed with -9 would stay.
            reaper_warned = true;
            view.warn(Warning::ReaperDied);
        }
        reap(&mut running, &engine);
        let mains_done = opts.main.iter().all(|&m| {
            running
                .get(m)
                .and_then(|r| r.as_ref())
                .is_none_or(|r| r.exit.is_some())
        });
        if mains_done && !opts.main.is_empty() {
            break;
        }
        if opts.main.is_empty() && engine.stats.replay_done.load(Relaxed) {
            break;
        }
        if engine.finished() {
            break;
        }
        if let Some(sig) = wait_signal(signals, Duration::from_millis(100)) {
            interrupted = Some(sig);
        }
        send_keys(&mut keylogs, &engine);
        if shows_status && last_status.elapsed() >= Duration::from_millis(200) {
            last_status = Instant::now();
            view.status(&engine.stats);
        }
    }
    // The main commands are done: let the connections still open close by themselves (the
    // peer's FIN, a server's goodbye to a client that left) for a moment before the others are
    // ended, so how a capture ends does not depend on who wins a race with SIGTERM.
    if interrupted.is_none() && !engine.finished() {
        let until = Instant::now() + QUIESCE;
        while interrupted.is_none()
            && Instant::now() < until
            && engine.stats.open.load(Relaxed) > 0
            && !engine.finished()
        {
            reap(&mut running, &engine);
            if let Some(sig) = wait_signal(signals, Duration::from_millis(5)) {
                interrupted = Some(sig);
            }
        }
    }
    if !opts.settle.is_zero() && interrupted.is_none() && !engine.finished() {
        let until = Instant::now() + opts.settle;
        while interrupted.is_none()
            && Instant::now() < until
            && !engine.stats.replay_settled.load(Relaxed)
            && !engine.finished()
        {
            reap(&mut running, &engine);
            if let Some(sig) = wait_signal(signals, Duration::from_millis(20)) {
                interrupted = Some(sig);
            }
        }
    }
    terminate(&mut running, opts.grace, signals);
    reap(&mut running, &engine);
    // Every process of the session is gone, so the pipes are at EOF, unless a process passed
    // its end elsewhere or our own stdout is full: such a pump is not waited for.
    let deadline = Instant::now() + Duration::from_secs(1);
    while pumps.iter().any(|p| !p.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    for p in pumps.into_iter().filter(|p| p.is_finished()) {
        let _ = p.join();
    }
    send_keys(&mut keylogs, &engine);
    let finished = engine.stop().map_err(SessionError::Run)?;
    view.done();

    let exits: Vec<Option<ExitStatus>> = running
        .iter()
        .map(|r| r.as_ref().and_then(|r| r.exit))
        .collect();
    let main_status = opts
        .main
        .iter()
        .filter_map(|&m| exits.get(m).copied().flatten())
        .find(|s| *s != ExitStatus::Exited(0))
        .or_else(|| {
            opts.main
                .iter()
                .find_map(|&m| exits.get(m).copied().flatten())
        });
    let exit_code = match (interrupted, main_status) {
        (Some(sig), _) => 128 + sig as i32,
        (None, Some(ExitStatus::Exited(c))) => c,
        (None, Some(ExitStatus::Signaled(s))) => 128 + s,
        (None, None) => 0,
    };
    Ok(Outcome {
        summary: finished.summary,
        replay: finished.replay,
        exits,
        interrupted,
        exit_code: exit_code.clamp(0, 255) as u8,
        elapsed: started.elapsed(),
    })
}

/// Hands the TLS keys the processes logged since the last call to the capture.
fn send_keys(keylogs: &mut super::keylog::KeyLogs, engine: &Handle) {
    let keys = keylogs.poll();
    if !keys.is_empty() {
        engine.send(super::Control::TlsKeys(keys));
    }
}

/// Waits up to `timeout` for a signal; returns the first one that asks plg to stop (SIGINT,
/// SIGTERM, SIGHUP: a closed terminal or dropped SSH ends the session like SIGTERM).
fn wait_signal(signals: &SignalFd, timeout: Duration) -> Option<Signal> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(signals.fd(), PollFlags::POLLIN)];
    let ms = PollTimeout::try_from(timeout.as_millis().min(i32::MAX as u128) as i32)
        .unwrap_or(PollTimeout::NONE);
    let _ = poll(&mut fds, ms);
    signals.read_signals().ok().and_then(|sigs| {
        sigs.into_iter()
            .find(|s| matches!(s, Signal::SIGINT | Signal::SIGTERM | Signal::SIGHUP))
    })
}

/// Collects exits that happened, and tells the engine so they are recorded.
fn reap(running: &mut [Option<Running>], engine: &Handle) {
    for (i, r) in running.iter_mut().enumerate() {
        let Some(r) = r else { continue };
        if r.exit.is_some() {
            continue;
        }
        if let Some(st) = r.child.try_wait() {
            let status = exit_status(st);
            r.exit = Some(status);
            engine.send(Control::Exit(ProcessExit {
                index: i as u16,
                time_ns: super::now_ns(),
                status,
            }));
        }
    }
}

fn exit_status(e: Exit) -> ExitStatus {
    match e {
        Exit::Exited(c) => ExitStatus::Exited(c),
        Exit::Signaled(s) => ExitStatus::Signaled(s),
    }
}

/// Ends every command: exactly one SIGTERM to each of its processes, SIGKILL to what is left
/// after `grace` (or at once when plg is told to stop again meanwhile), then waits (at most a
/// second) for the kernel to finish them. Bounded: never hangs on a process stuck in the
/// kernel.
fn terminate(running: &mut [Option<Running>], grace: Duration, signals: &SignalFd) {
    for r in running.iter_mut().flatten() {
        r.child.terminate();
    }
    let deadline = Instant::now().checked_add(grace);
    while !running.iter_mut().flatten().all(|r| r.child.gone()) {
        let left = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(1),
        };
        if left.is_zero() {
            break;
        }
        if wait_signal(signals, left.min(Duration::from_millis(20))).is_some() {
            break;
        }
    }
    for r in running.iter_mut().flatten() {
        r.child.kill();
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    for r in running.iter_mut().flatten() {
        r.child
            .wait_gone(deadline.saturating_duration_since(Instant::now()));
    }
}

/// A listener bound to `ip` in process `index`'s namespace is reachable from the other
/// processes: bound to a wildcard address or to one of the process's own (not loopback).
fn reachable(plan: &Plan, index: usize, ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    let (own4, own6) = plan.addrs(index);
    match ip {
        IpAddr::V4(a) => a.is_unspecified() || a == own4,
        IpAddr::V6(a) => a.is_unspecified() || Some(a) == own6 || a.to_ipv4_mapped() == Some(own4),
    }
}

#[allow(clippy::too_many_arguments)]
fn wait_ready(
    running: &mut [Option<Running>],
    r: Ready,
    plan: &Plan,
    timeout: Duration,
    explicit: bool,
    names: &[String],
    signals: &SignalFd,
    interrupted: &mut Option<Signal>,
) -> Result<(), SessionError> {
    // A --ready-timeout beyond what an Instant can hold means "no limit".
    let deadline = Instant::now().checked_add(timeout);
    // Only a listener the others can reach counts (not one on 127.0.0.1 or ::1), in either
    // family the session has.
    let not_ready = |why| SessionError::Ready {
        name: names[r.index].clone(),
        port: r.port,
        ipv6: plan.v6.is_some(),
        why,
    };
    loop {
        let Some(Some(p)) = running.get_mut(r.index) else {
            return Err(not_ready(NotReady::NotRun));
        };
        if let Some(st) = p.child.try_wait() {
            if explicit {
                return Err(not_ready(NotReady::Exited(st)));
            }
            return Ok(()); // its exit is reaped and recorded by the supervisor
        }
        if let Ok(socks) = process::listening_sockets(p.child.id()) {
            let ok = socks.iter().any(|&(ip, port)| {
                r.port.is_none_or(|want| want == port) && reachable(plan, r.index, ip)
            });
            if ok {
                return Ok(());
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            if explicit {
                return Err(not_ready(NotReady::TimedOut(timeout)));
            }
            return Ok(());
        }
        if let Some(sig) = wait_signal(signals, Duration::from_millis(5)) {
            *interrupted = Some(sig);
            return Ok(());
        }
    }
}

/// Copies a child's stdout or stderr to ours, each line prefixed with its name when asked,
/// each write wrapped by the view (which clears a status line around it where needed).
fn pass_output(
    src: impl Read + Send + 'static,
    stderr: bool,
    prefix: Option<String>,
    lock: Arc<Mutex<()>>,
    view: Arc<dyn View>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::with_capacity(64 << 10, src);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = match &prefix {
                Some(_) => r.read_until(b'\n', &mut line),
                None => r.fill_buf().map(|b| {
                    line.extend_from_slice(b);
                    b.len()
                }),
            };
            match n {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if prefix.is_none() {
                        r.consume(n);
                    }
                }
            }
            let _g = lock.lock();
            let mut write = || {
                let res = if stderr {
                    write_prefixed(&mut std::io::stderr().lock(), prefix.as_deref(), &line)
                } else {
                    write_prefixed(&mut std::io::stdout().lock(), prefix.as_deref(), &line)
                };
                // A closed stdout (plg | head) must not stall the child: keep draining.
                let _ = res;
            };
            view.around_output(stderr, &mut write);
        }
    })
}

fn write_prefixed(w: &mut dyn Write, prefix: Option<&str>, line: &[u8]) -> std::io::Result<()> {
    if let Some(p) = prefix {
        w.write_all(p.as_bytes())?;
        w.write_all(line)?;
        if !line.ends_with(b"\n") {
            w.write_all(b"\n")?;
        }
    } else {
        w.write_all(line)?;
    }
    w.flush()
}
