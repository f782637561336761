//! The event loop that owns the TUN devices, the NAT table and the pipes that record and replay.
//!
//! One thread, living in the proxy namespace (so every socket it creates is there), polls the
//! listener that accepts the client legs, every relay socket, and the frames of every TUN that
//! the fast path (`forward`) leaves to it: the segments of established connections go from TUN
//! to TUN on a second thread (`io::Kernel`'s TUN thread), by the NAT rules this loop writes.
//! Flow of a new TCP connection (see `nat` for the four rewrite rules):
//! 1. a client's SYN arrives on its TUN: open a non-blocking upstream socket to the server and
//!    keep the SYN; the upstream leg's rules are installed at once (its SYN is about to leave
//!    the proxy TUN);
//! 2. the upstream connect succeeds: inject the kept SYN into the proxy TUN from a fake address
//!    F:fport, so the listener accepts it; or it is refused: answer the client with RST, so it
//!    sees ECONNREFUSED exactly as it would without plg;
//! 3. the listener accepts: `pump` moves bytes between the two sockets, recording every read
//!    (or plays the recording, in replay).
//!
//! Every state of a connection expires: Connecting after `CONNECT_TIMEOUT` (recorded
//! unreachable); Open-but-not-accepted after `ACCEPT_TIMEOUT`, or at once when the client
//! answers the listener's SYN-ACK with RST (recorded as a client reset, the server's side
//! reset); Done after `LINGER`. Pending connections (the first two) are bounded by
//! `MAX_PENDING`, live ones by a cap sized from the fd limit; refusals at the cap are recorded.
//!
//! IPv6 TCP takes the same path with IPv6 addresses (a second listener on the proxy's IPv6
//! address, fake clients from its IPv6 network). Non-TCP packets go as-is to the process owning
//! the destination and are recorded as packets (ICMP/ICMPv6 errors only between the ends of the
//! flow they quote); link-local IPv6 housekeeping (Neighbour Discovery, MLD, router
//! solicitations) is dropped unrecorded; IPv6 in a `--no-ipv6` session is dropped and counted.
//! Anything for an address no process owns is refused at once (RST, ICMP/ICMPv6 unreachable).
//! DNS to the gateway's port 53 is plg's own resolver (`dns`): answered here over UDP (both
//! families), relayed to its server over TCP (IPv4). Every capture write goes
//! through `recorder`, which says no before a byte the capture cannot hold is passed on.
//!
//! The engine reads as core (`core`: each connection's lifecycle and the admission bounds, pure),
//! fast path (`forward`: what of the TUN traffic needs no decision, pure), pump (`pump`: the
//! byte path of record and replay, over any socket), recorder (`recorder`: every capture write
//! and counter) and this loop, which does the I/O around them, all of it
//! through [`io::Net`]: the kernel's network ([`io::Kernel`]: TUN fds, listeners, upstream
//! sockets, a mio poll, the clock) in a session, an in-memory one in the seeded simulations
//! of `sim`, which run this whole loop without root. A TCP segment's fate is decided in the
//! core (`core::route_tcp`) and carried out here; the non-TCP decisions (`pass_other`) and the
//! NAT bookkeeping still share functions with the calls to `Net` that carry them out.

pub mod core;
pub mod dns;
pub mod forward;
pub mod io;
pub mod keylog;
pub mod nat;
pub mod plan;
pub mod player;
pub mod pump;
pub mod recorder;
pub mod replay;
pub mod script;
pub mod session;
#[cfg(test)]
mod sim;
pub mod sink;

use self::core::{Admission, Expiry, Known, Life, State, TcpRoute, Timeouts};
use crate::analysis;
use crate::format::{
    CaptureWriter, CloseKind, ConnId, ConnOpen, Direction, Outcome, ProcIndex, ProcessExit,
    Summary, EXTERNAL,
};
use crate::os::{HostSockets, Netns};
use crate::wire::{self, vnet};
use anyhow::Context as _;
use io::{Connect, Kernel, Net, Now, Ready};
use mio::Waker;
use nat::{Fast, Nat, Out, Rule};
use plan::{Plan, PROXY6_ADDR, PROXY_ADDR};
use pump::Pump;
use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The port the proxy listener binds on the proxy address.
const LISTEN_PORT: u16 = 1;
/// Relayed connections alive at once (not counting closed ones lingering in the NAT table).
/// Beyond it new connections are refused with RST, counted and recorded as refused; documented
/// in the README. Reaching it takes two fds per connection: the fd limit is raised at start,
/// and where it cannot be raised far enough the cap is lowered to what the fds allow.
pub const MAX_LIVE_CONNS: usize = 16384;
/// Fds kept free for everything else (TUNs, output pipes, the capture, a spare for `accept`).
const FD_RESERVE: usize = 128;
/// Connections not yet relaying (upstream connecting, or waiting for the client's leg to be
/// accepted) at once. A flood of SYNs that never complete fills this, not the whole table:
/// beyond it the oldest such connection is given up, as a kernel's SYN queue drops its oldest.
const MAX_PENDING: usize = 4096;
/// How long a finished connection's NAT rules stay, for the last ACKs and retransmitted FINs.
/// Packets are lost here only when a queue overflows, so this need not be TIME_WAIT's 60 s;
/// it bounds the table at (connection rate x LINGER) entries of about 300 bytes.
const LINGER: Duration = Duration::from_secs(15);
/// A connection whose upstream connect has not finished by then is reported unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// A connection whose client leg has not been accepted by then (the client gave up, or its
/// kernel answered the listener's SYN-ACK with RST) is reset on the server's side.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(20);
const TIMEOUTS: Timeouts = Timeouts {
    connect: CONNECT_TIMEOUT,
    accept: ACCEPT_TIMEOUT,
    linger: LINGER,
};
/// Memory the relay may hold in flight across all connections; one read is at most this
/// divided among the live connections, within [MIN_READ, MAX_READ].
const READ_BUDGET: usize = 64 << 20;
const MAX_READ: usize = 256 << 10;
const MIN_READ: usize = 16 << 10;
/// Packets read from one TUN per wake-up before the others get a turn.
const TUN_BATCH: usize = 128;
/// Room for a virtio header and the largest GSO packet.
const PKT_BUF: usize = 128 << 10;
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How often finished entries are retired and stuck ones given up.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How often replay looks at what is due.
const REPLAY_TICK: Duration = Duration::from_millis(10);
/// After a turn that did work, the loop keeps polling without sleeping for this long before it
/// blocks: the next packet of an exchange (the peer's answer, an ACK) often follows within
/// tens of microseconds, and waking a thread that went to sleep costs about as much again
/// (measured: 1-byte RTT through plg 102 -> 80 us median). Counted from the last work, so an
/// idle session does not spin.
const SPIN: Duration = Duration::from_micros(50);

/// One process's end of the network: its TUN fd (the device lives in its namespace).
pub struct ProcTun {
    pub fd: OwnedFd,
    pub addr: Ipv4Addr,
    /// Its IPv6 address, when the session has IPv6.
    pub addr6: Option<Ipv6Addr>,
}

/// Everything the engine needs, prepared by the caller (namespaces and TUNs already exist).
pub struct Config {
    pub plan: Plan,
    pub procs: Vec<ProcTun>,
    pub proxy_ns: Netns,
    pub proxy_tun: OwnedFd,
    /// TUNs were opened with IFF_VNET_HDR (every read and write starts with a virtio header).
    pub offload: bool,
    /// Relay connections to the gateway to the host's loopback (`--allow-external`).
    pub external: Option<HostSockets>,
    /// Replay instead of relaying (`plg replay`).
    pub replay: Option<replay::ReplayConfig>,
    /// The names the resolver at the gateway answers (`plan::dns_zone`).
    pub dns: wire::dns::Zone,
    /// With `--allow-external`: host sockets for the DNS-over-TCP server, which forwards
    /// outside names from its own threads (so it has a socket maker of its own).
    pub dns_host: Option<HostSockets>,
}

/// What the engine returns when it stops.
pub struct Finished {
    pub summary: Summary,
    pub replay: Option<replay::ReplayReport>,
}

/// Live counters, read by the status line while the engine runs.
#[derive(Default, Debug)]
pub struct Stats {
    pub open: AtomicU64,
    pub total: AtomicU64,
    pub bytes_c2s: AtomicU64,
    pub bytes_s2c: AtomicU64,
    pub packets: AtomicU64,
    pub capture_bytes: AtomicU64,
    /// Replay: every recorded connection of a played process has been played out.
    pub replay_done: std::sync::atomic::AtomicBool,
    /// Replay: no live process is still expected to send what it sent in the recording (or
    /// to close as it did). Until then the session may wait for it after the main command
    /// ended (`session::Options::settle`).
    pub replay_settled: std::sync::atomic::AtomicBool,
    /// Every process of the session has been started (and `--ready` met): played processes
    /// may begin, as the commands after the live ones would.
    pub all_started: std::sync::atomic::AtomicBool,
    /// How many connections the relay may hold at once: [`MAX_LIVE_CONNS`], or fewer when the
    /// open-file limit (two fds a connection) could not be raised that far. Set before
    /// [`start`] returns.
    pub conn_cap: AtomicU64,
    /// Connections refused because `conn_cap` were already open.
    pub cap_refused: AtomicU64,
}

/// Messages from the controlling thread.
pub enum Control {
    /// Record that a process ended.
    Exit(ProcessExit),
    /// Record TLS key log lines (a Decryption Secrets Block).
    TlsKeys(Vec<u8>),
    /// Finish: write the summary and return.
    Stop,
}

/// The running engine, seen from the thread that started it.
pub struct Handle {
    tx: mpsc::Sender<Control>,
    waker: Arc<Waker>,
    pub stats: Arc<Stats>,
    join: std::thread::JoinHandle<anyhow::Result<Finished>>,
}

impl Handle {
    pub fn send(&self, c: Control) {
        let _ = self.tx.send(c);
        let _ = self.waker.wake();
    }

    /// Stops the engine and waits for the capture to be finished.
    pub fn stop(self) -> anyhow::Result<Finished> {
        self.send(Control::Stop);
        self.join
            .join()
            .map_err(|_| anyhow::anyhow!("the relay thread panicked"))?
    }

    /// True once the engine thread has ended on its own (an error such as a full disk).
    pub fn finished(&self) -> bool {
        self.join.is_finished()
    }
}

/// Starts the engine on its own thread. Setup errors (entering the proxy namespace, the
/// listener) are returned here, before any process runs.
pub fn start<W: Write + sink::Close + Send + 'static>(
    config: Config,
    capture: Option<CaptureWriter<W>>,
) -> anyhow::Result<Handle> {
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let stats = Arc::new(Stats::default());
    let stats2 = stats.clone();
    let join = std::thread::Builder::new()
        .name("plg-relay".into())
        .spawn(move || -> anyhow::Result<Finished> {
            let setup = Engine::new(config, capture, stats2, rx);
            let mut engine = match setup {
                Ok((engine, waker)) => {
                    let _ = ready_tx.send(Ok(waker));
                    engine
                }
                Err(e) => {
                    let msg = format!("{e:#}");
                    let _ = ready_tx.send(Err(e));
                    anyhow::bail!(msg);
                }
            };
            engine.run()
        })
        .context("failed to start the relay thread")?;
    let waker = ready_rx
        .recv()
        .context("the relay thread ended during setup")??;
    Ok(Handle {
        tx,
        waker,
        stats,
        join,
    })
}

struct Conn<S> {
    id: ConnId,
    /// Where it is in its lifecycle (`core`): every pending state times out.
    life: Life,
    client: ProcIndex,
    client_addr: SocketAddr,
    server: ProcIndex,
    server_addr: SocketAddr,
    syn_time: u64,
    /// The client's latest SYN (virtio header included when offloading), while connecting.
    syn: Vec<u8>,
    fake: Option<SocketAddr>,
    /// Replay behaviour; None relays (and records) as in `plg record`.
    replay: Option<Box<replay::ConnReplay>>,
    keys: Vec<nat::Key>,
    up: Option<S>,
    down: Option<S>,
    /// The bytes in flight both ways (`pump`).
    pump: Pump,
}

impl<S> Conn<S> {
    /// Relaying has not begun: the upstream connect is in progress, or the client's leg has
    /// not been accepted yet.
    fn pending(&self) -> bool {
        self.life.pending()
    }

    fn new(
        now: Now,
        id: ConnId,
        client: ProcIndex,
        client_addr: SocketAddr,
        server: ProcIndex,
        server_addr: SocketAddr,
        syn: &[u8],
    ) -> Conn<S> {
        Conn {
            id,
            life: Life::new(now.mono),
            client,
            client_addr,
            server,
            server_addr,
            syn_time: now.wall_ns,
            syn: syn.to_vec(),
            fake: None,
            replay: None,
            keys: Vec::with_capacity(4),
            up: None,
            down: None,
            pump: Pump::default(),
        }
    }
}

/// What the loop knows of a process besides its TUN: its addresses.
#[derive(Debug, Clone, Copy)]
struct ProcAddr {
    addr: Ipv4Addr,
    addr6: Option<Ipv6Addr>,
}

/// The loop, over a network `N` (the kernel's, or a simulated one in tests).
struct Engine<W: Write + sink::Close, N: Net> {
    net: N,
    plan: Plan,
    procs: Vec<ProcAddr>,
    offload: bool,
    /// Connections to the gateway go to the host (`--allow-external`).
    external: bool,
    nat: Nat,
    /// The fast path over `nat`'s rules: run by the `Net` as frames come (`start_fast_path`:
    /// the TUN thread in a session), and by the loop itself, before its own routing, for
    /// every frame it reads (the rules may have changed since).
    fwd: forward::Forwarder,
    conns: HashMap<ConnId, Conn<N::Stream>>,
    by_fake: HashMap<SocketAddr, ConnId>,
    /// The live cap (`MAX_LIVE_CONNS`, or less if fds are short) and the pending bound.
    adm: Admission,
    next_id: ConnId,
    /// Every capture write and counter.
    rec: recorder::Recorder<W>,
    stats: Arc<Stats>,
    rx: mpsc::Receiver<Control>,
    pkt: Vec<u8>,
    scratch: Vec<u8>,
    /// TUNs that hit the batch limit and still have packets (edge-triggered: no new event).
    busy: Vec<bool>,
    proxy_busy: bool,
    replay: Option<replay::Replayer>,
    dns: dns::Dns,
    ready: Vec<Ready>,
    last_flush: Instant,
    last_sweep: Instant,
    last_tick: Instant,
    /// Until when the loop polls without sleeping ([`SPIN`] after the last turn with work).
    spin_until: Instant,
}

/// Wall-clock time, nanoseconds since the Unix epoch (capture timestamps).
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// What a loop needs besides its network, whatever that is.
struct Setup<W: Write + sink::Close> {
    plan: Plan,
    procs: Vec<ProcAddr>,
    offload: bool,
    external: bool,
    max_conns: usize,
    max_pending: usize,
    capture: Option<CaptureWriter<W>>,
    stats: Arc<Stats>,
    rx: mpsc::Receiver<Control>,
    replay: Option<replay::ReplayConfig>,
    dns: dns::Dns,
}

impl<W: Write + sink::Close> Engine<W, Kernel> {
    /// The real loop: enters the proxy namespace, raises the fd limit, binds the listeners.
    fn new(
        config: Config,
        capture: Option<CaptureWriter<W>>,
        stats: Arc<Stats>,
        rx: mpsc::Receiver<Control>,
    ) -> anyhow::Result<(Self, Arc<Waker>)> {
        config.proxy_ns.enter_current_thread()?;
        let max_conns = conn_cap();
        stats.conn_cap.store(max_conns as u64, Relaxed);
        let procs: Vec<ProcAddr> = config
            .procs
            .iter()
            .map(|p| ProcAddr {
                addr: p.addr,
                addr6: p.addr6,
            })
            .collect();
        let external = config.external.is_some();
        let (net, waker) = Kernel::new(
            SocketAddr::V4(SocketAddrV4::new(PROXY_ADDR, LISTEN_PORT)),
            config
                .plan
                .v6
                .map(|_| SocketAddr::V6(SocketAddrV6::new(PROXY6_ADDR, LISTEN_PORT, 0, 0))),
            config.procs.into_iter().map(|p| p.fd).collect(),
            config.proxy_tun,
            config.external,
        )?;
        // In the proxy namespace already: the DNS server listens on the proxy address.
        let dns = dns::Dns::start(
            config.dns,
            net.external(),
            config.dns_host,
            net.registry(),
            io::DNS_UP,
        )?;
        let setup = Setup {
            plan: config.plan,
            procs,
            offload: config.offload,
            external,
            max_conns,
            max_pending: MAX_PENDING,
            capture,
            stats,
            rx,
            replay: config.replay,
            dns,
        };
        let engine = Engine::with_net(net, setup)?;
        Ok((engine, waker))
    }
}

impl<W: Write + sink::Close, N: Net> Engine<W, N> {
    /// The loop over `net`, whose fast path (`Net::start_fast_path`) runs from now on.
    fn with_net(mut net: N, s: Setup<W>) -> anyhow::Result<Self> {
        let n = s.procs.len();
        let now = net.now().mono;
        let nat = Nat::default();
        let own = s.procs.iter().map(|p| (p.addr, p.addr6)).collect();
        let fwd = forward::Forwarder::new(nat.shared(), own, s.offload);
        net.start_fast_path(fwd.clone())?;
        Ok(Engine {
            net,
            plan: s.plan,
            procs: s.procs,
            offload: s.offload,
            external: s.external,
            nat,
            fwd,
            conns: HashMap::new(),
            by_fake: HashMap::new(),
            adm: Admission::new(s.max_conns, s.max_pending),
            next_id: 0,
            rec: recorder::Recorder::new(s.capture, n as u32, s.stats.clone()),
            stats: s.stats,
            rx: s.rx,
            pkt: vec![0; PKT_BUF],
            scratch: vec![0; MAX_READ],
            busy: vec![false; n],
            proxy_busy: false,
            replay: s.replay.map(replay::Replayer::new),
            dns: s.dns,
            ready: Vec::with_capacity(1024),
            last_flush: now,
            last_sweep: now,
            last_tick: now,
            spin_until: now,
        })
    }

    fn run(&mut self) -> anyhow::Result<Finished> {
        loop {
            if let Some(finished) = self.turn()? {
                return Ok(finished);
            }
        }
    }

    /// One turn of the loop: wait for something to do (not at all while a TUN still has
    /// frames), do it, then the periodic work. Some(..) once told to stop.
    fn turn(&mut self) -> anyhow::Result<Option<Finished>> {
        let busy = self.proxy_busy || self.busy.iter().any(|b| *b);
        let idle = if self.replay.is_some() { 10 } else { 250 };
        let timeout = if busy || self.net.now().mono < self.spin_until {
            Duration::ZERO
        } else {
            Duration::from_millis(idle)
        };
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        if let Err(e) = self.net.poll(&mut ready, timeout) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e).context("failed to poll");
            }
        }
        for r in &ready {
            match *r {
                Ready::Wake => {}
                Ready::Tun(Out::Proxy) => self.proxy_busy = true,
                Ready::Tun(Out::Proc(i)) => self.busy[i as usize] = true,
                Ready::Listener { v6 } => self.accept_all(v6),
                Ready::DnsUp => self.dns_forward_readable(),
                Ready::Sock {
                    id,
                    upstream,
                    writable,
                } => {
                    if upstream && writable {
                        self.upstream_progress(id);
                    }
                    self.pump(id);
                }
            }
        }
        let worked = busy || ready.iter().any(|r| !matches!(r, Ready::Wake));
        self.ready = ready;
        self.drain_tuns();
        let now = self.net.now().mono;
        if worked {
            self.spin_until = now + SPIN;
        }
        if self.replay.is_some() && now.duration_since(self.last_tick) >= REPLAY_TICK {
            self.last_tick = now;
            self.replay_tick();
        }
        while let Ok(c) = self.rx.try_recv() {
            match c {
                Control::Exit(e) => self.rec.process_exit(e),
                Control::TlsKeys(data) => self.rec.secrets(data),
                Control::Stop => return self.finish().map(Some),
            }
        }
        if let Some(e) = self.rec.take_error() {
            return Err(e).context("failed to write the capture");
        }
        if now.duration_since(self.last_flush) >= FLUSH_EVERY {
            self.last_flush = now;
            self.rec.flush().context("failed to write the capture")?;
        }
        if now.duration_since(self.last_sweep) >= SWEEP_EVERY {
            self.last_sweep = now;
            self.sweep();
            self.dns.sweep();
        }
        Ok(None)
    }
    fn finish(&mut self) -> anyhow::Result<Finished> {
        // Attempts still connecting (a server whose accept queue is full drops SYNs) are on
        // the record too: they never got through.
        let mut connecting: Vec<ConnId> = self
            .conns
            .values()
            .filter(|c| c.life.is(State::Connecting) && c.replay.is_none())
            .map(|c| c.id)
            .collect();
        connecting.sort_unstable();
        for id in connecting {
            self.give_up(id);
        }
        let summary = self.rec.finish().context("failed to write the capture")?;
        Ok(Finished {
            summary,
            replay: self.take_replay_report(),
        })
    }

    // ---- packets -------------------------------------------------------------------------

    fn drain_tuns(&mut self) {
        if self.proxy_busy {
            self.proxy_busy = self.drain_one(None);
        }
        for i in 0..self.procs.len() {
            if self.busy[i] {
                self.busy[i] = self.drain_one(Some(i));
            }
        }
    }

    /// Reads up to a batch of packets from one TUN; true if it may have more.
    fn drain_one(&mut self, from: Option<usize>) -> bool {
        let tun = match from {
            Some(i) => Out::Proc(i as u16),
            None => Out::Proxy,
        };
        for _ in 0..TUN_BATCH {
            let n = match self.net.tun_read(tun, &mut self.pkt) {
                Ok(n) => n,
                Err(e) if pump::interrupted(&e) => continue,
                Err(_) => return false,
            };
            let mut buf = std::mem::take(&mut self.pkt);
            if debug() {
                let off = if self.offload { vnet::HDR_LEN } else { 0 };
                eprintln!(
                    "plg-debug: read {:?} {} bytes: {:?} {:?}",
                    from,
                    n,
                    vnet::VnetHdr::parse(&buf[..n]),
                    wire::summarize(&buf[off..n])
                );
            }
            if let Some(to) = self.fwd.forward(tun, &mut buf[..n]) {
                self.write_tun(to, &buf[..n]);
            } else {
                match from {
                    Some(i) => self.on_process_packet(i, &mut buf[..n]),
                    None => self.on_proxy_packet(&mut buf[..n]),
                }
            }
            self.pkt = buf;
        }
        true
    }

    fn split<'a>(&self, frame: &'a mut [u8]) -> Option<(vnet::VnetHdr, &'a mut [u8])> {
        if self.offload {
            let hdr = vnet::VnetHdr::parse(frame)?;
            Some((hdr, &mut frame[vnet::HDR_LEN..]))
        } else {
            Some((vnet::VnetHdr::default(), frame))
        }
    }

    fn write_tun(&mut self, out: Out, frame: &[u8]) {
        // A TUN write fails only when the device is gone or the packet is malformed; the
        // sender's TCP retransmits, as it would after any lost packet.
        let r = self.net.tun_write(out, frame);
        if debug() {
            eprintln!("plg-debug: write {:?} {} -> {:?}", out, frame.len(), r);
        }
    }

    /// Writes a packet plg made itself (RST, ICMP error), with an empty virtio header.
    fn inject(&mut self, out: Out, pkt: &[u8]) {
        if self.offload {
            let mut frame = vec![0u8; vnet::HDR_LEN + pkt.len()];
            frame[vnet::HDR_LEN..].copy_from_slice(pkt);
            self.write_tun(out, &frame);
        } else {
            self.write_tun(out, pkt);
        }
    }

    fn apply(&mut self, frame: &mut [u8], rule: &Rule) {
        let ok = forward::rewrite(self.offload, frame, rule);
        if debug() {
            eprintln!("plg-debug: rewrite {ok} -> {:?}", rule);
        }
        if ok {
            self.write_tun(rule.out, frame);
        }
    }

    fn on_process_packet(&mut self, i: usize, frame: &mut [u8]) {
        let Some((hdr, pkt)) = self.split(frame) else {
            return;
        };
        let (src, dst, tcp) = if pkt.first().map(|b| b >> 4) == Some(6) {
            let Some(own6) = self.procs[i].addr6 else {
                self.rec.ipv6_dropped();
                return;
            };
            let Some(s) = wire::ipv6::summarize6(pkt) else {
                return;
            };
            if wire::ipv6::is_link_housekeeping(&s) {
                return; // ND, MLD, solicitations: link-local, for nobody
            }
            if s.src != own6 {
                return; // spoofed or stray source
            }
            let Some(tcp) = s.tcp else {
                return self.pass_other6(i, hdr, frame, &s);
            };
            (
                SocketAddr::V6(SocketAddrV6::new(s.src, s.sport, 0, 0)),
                SocketAddr::V6(SocketAddrV6::new(s.dst, s.dport, 0, 0)),
                tcp,
            )
        } else {
            let Some(s) = wire::summarize(pkt) else {
                return;
            };
            if s.src != self.procs[i].addr {
                return; // spoofed or stray source: not this process's to send
            }
            let Some(tcp) = s.tcp else {
                return self.pass_other(i, hdr, frame, &s);
            };
            (
                SocketAddr::V4(SocketAddrV4::new(s.src, s.sport)),
                SocketAddr::V4(SocketAddrV4::new(s.dst, s.dport)),
                tcp,
            )
        };
        // What to do is decided by the core (`core::route_tcp`); here it is done.
        let rule = self.nat.lookup(src, dst);
        if let Some(r) = rule.filter(|_| self::core::is_syn(tcp.flags)) {
            // A SYN reusing the 4-tuple of a connection still open here: its client's side may
            // have ended in segments the fast path already carried (its FIN, its last ACK),
            // while the socket events that say so wait for this turn's poll. Catch up on them
            // first, so the SYN meets the connection as it is (ended: a new one opens), not
            // as the loop last saw it (open: the SYN would go to the old leg).
            if (self.conns.get(&r.conn))
                .is_some_and(|c| c.life.is(State::Open) && c.client_addr == src)
            {
                self.pump(r.conn);
            }
        }
        let flow = rule.map(|r| {
            self.conns.get(&r.conn).map(|c| Known {
                state: c.life.state(),
                from_client: c.client_addr == src,
                pending: c.pending(),
            })
        });
        match (self::core::route_tcp(tcp.flags, flow), rule) {
            (TcpRoute::Forward, Some(rule)) => self.apply(frame, &rule),
            (TcpRoute::ForwardAndAbandon, Some(rule)) => {
                self.apply(frame, &rule);
                self.abandon(rule.conn);
            }
            (TcpRoute::KeepSyn, Some(rule)) => {
                if let Some(c) = self.conns.get_mut(&rule.conn) {
                    c.syn.clear();
                    c.syn.extend_from_slice(frame);
                }
            }
            (TcpRoute::RetireAndOpen | TcpRoute::Open, rule) => {
                if let Some(rule) = rule {
                    self.retire(rule.conn);
                }
                // plg's resolver answers live in replay too, never from the recording.
                let resolver = self.dns.tcp_target(&self.plan, dst).is_some();
                if self.replay.is_some() && !resolver && self.replay_syn(i, src, dst, frame) {
                    return;
                }
                self.new_connection(i, src, dst, frame);
            }
            (TcpRoute::Reset, _) => self.refuse(i, frame),
            (TcpRoute::Hold | TcpRoute::Drop, _) | (_, None) => {}
        }
    }

    fn on_proxy_packet(&mut self, frame: &mut [u8]) {
        let Some((_, pkt)) = self.split(frame) else {
            return;
        };
        let (src, dst) = if pkt.first().map(|b| b >> 4) == Some(6) {
            let Some(s) = wire::ipv6::summarize6(pkt) else {
                return;
            };
            if s.tcp.is_none() {
                return;
            }
            (
                SocketAddr::V6(SocketAddrV6::new(s.src, s.sport, 0, 0)),
                SocketAddr::V6(SocketAddrV6::new(s.dst, s.dport, 0, 0)),
            )
        } else {
            let Some(s) = wire::summarize(pkt) else {
                return;
            };
            if s.tcp.is_none() {
                return;
            }
            (
                SocketAddr::V4(SocketAddrV4::new(s.src, s.sport)),
                SocketAddr::V4(SocketAddrV4::new(s.dst, s.dport)),
            )
        };
        if let Some(rule) = self.nat.lookup(src, dst) {
            self.apply(frame, &rule);
        }
    }

    /// UDP, ICMP and the rest: to the process owning the destination, as-is, and recorded.
    ///
    /// An ICMP error passes only when the packet it quotes went from its receiver to its
    /// sender (so one process cannot make another's socket to a third fail), and never about
    /// TCP (TCP is relayed: the quoted ports are the relay's legs, not the receiver's).
    fn pass_other(&mut self, i: usize, hdr: vnet::VnetHdr, frame: &mut [u8], s: &wire::Summary) {
        if self.dns_datagram(i, hdr, frame, s) {
            return;
        }
        let off = if self.offload { vnet::HDR_LEN } else { 0 };
        if s.proto == wire::ipv4::proto::ICMP {
            if let Some(q) = wire::icmp::error_quote(&frame[off..]) {
                if q.src != s.dst || q.dst != s.src || q.protocol == wire::ipv4::proto::TCP {
                    return;
                }
            }
        }
        match self.plan.v4.process_index(s.dst, self.procs.len()) {
            // In replay a played process has no program behind its address: what is sent to
            // it goes nowhere (its own kernel would answer "port unreachable" otherwise).
            Some(j)
                if self
                    .replay
                    .as_ref()
                    .is_some_and(|r| !r.is_live(j as ProcIndex)) =>
            {
                if s.proto == 1 && self.replay_unreachable(&frame[off..]) {
                    return;
                }
                let pkt = &mut frame[off..];
                let len = s.total_len.min(pkt.len());
                if hdr.flags & vnet::NEEDS_CSUM != 0 {
                    wire::complete_checksum(
                        &mut pkt[..len],
                        hdr.csum_start as usize,
                        hdr.csum_offset as usize,
                    );
                }
                self.replay_datagram(i, &pkt[..len]);
            }
            Some(j) => self.record_and_pass(i, j, hdr, frame, s.total_len),
            // Nobody owns it (outside the subnet without --allow-external, or the subnet's
            // broadcast): refused with "administratively prohibited", a hard error that makes
            // a connected UDP socket fail at once (Linux ignores "host unreachable" there, and
            // a `dig` to an outside resolver would wait out its timeout). Never an error about
            // a broadcast or multicast destination (RFC 1122 3.2.2).
            None => {
                let v4 = &self.plan.v4;
                let bcast = Ipv4Addr::from(u32::from(v4.network) | !v4.mask());
                if s.dst == bcast || !wire::icmp::may_answer_with_error(s.dst) {
                    return;
                }
                let code = wire::icmp::unreachable::ADMIN_PROHIBITED;
                if let Some(icmp) = wire::icmp_unreachable(&frame[off..], s.dst, code) {
                    self.inject(Out::Proc(i as u16), &icmp);
                }
            }
        }
    }

    /// A packet from process `i` to process `j`, either family: recorded first, passed on
    /// only once it is (a packet the capture cannot hold is not delivered either). The
    /// capture gets the real checksum where the device was left to complete it.
    fn record_and_pass(
        &mut self,
        i: usize,
        j: usize,
        hdr: vnet::VnetHdr,
        frame: &[u8],
        total_len: usize,
    ) {
        let off = if self.offload { vnet::HDR_LEN } else { 0 };
        let pkt = &frame[off..];
        let len = total_len.min(pkt.len());
        let copy = &mut self.scratch[..len];
        copy.copy_from_slice(&pkt[..len]);
        if hdr.flags & vnet::NEEDS_CSUM != 0 {
            wire::complete_checksum(copy, hdr.csum_start as usize, hdr.csum_offset as usize);
        }
        if self.rec.packet(i as u32, &self.scratch[..len]) {
            self.write_tun(Out::Proc(j as u16), frame);
        }
    }

    /// IPv6 UDP, ICMPv6 and the rest: as [`Self::pass_other`] does for IPv4. Link-local
    /// housekeeping never gets here (dropped by the caller); a fragment is refused (plg does
    /// not reassemble, and its first part's ports would be all it could route on).
    fn pass_other6(
        &mut self,
        i: usize,
        hdr: vnet::VnetHdr,
        frame: &mut [u8],
        s: &wire::ipv6::Summary6,
    ) {
        use wire::ipv6::{icmp6, next_header};
        if self.dns_datagram6(i, hdr, frame, s) {
            return;
        }
        let off = if self.offload { vnet::HDR_LEN } else { 0 };
        if s.proto == next_header::ICMPV6 {
            if let Some(q) = wire::ipv6::error_quote6(&frame[off..]) {
                if q.src != s.dst || q.dst != s.src || q.next_header == next_header::TCP {
                    return;
                }
            }
        }
        let owner = self
            .plan
            .v6
            .and_then(|v6| v6.process_index(s.dst, self.procs.len()));
        let played = |j: usize| {
            self.replay
                .as_ref()
                .is_some_and(|r| !r.is_live(j as ProcIndex))
        };
        match owner {
            Some(j) if s.proto != next_header::FRAGMENT && !played(j) => {
                self.record_and_pass(i, j, hdr, frame, s.total_len)
            }
            // A played process (replay): as over IPv4, answered from the recording or not
            // at all (`replay_datagram`).
            Some(_) if s.proto != next_header::FRAGMENT => {
                if s.proto == next_header::ICMPV6 && self.replay_unreachable(&frame[off..]) {
                    return;
                }
                let pkt = &mut frame[off..];
                let len = s.total_len.min(pkt.len());
                if hdr.flags & vnet::NEEDS_CSUM != 0 {
                    wire::complete_checksum(
                        &mut pkt[..len],
                        hdr.csum_start as usize,
                        hdr.csum_offset as usize,
                    );
                }
                self.replay_datagram(i, &pkt[..len]);
            }
            // Nobody owns it (or a fragment): "administratively prohibited", from the
            // destination, at once (a connected UDP socket fails with ECONNREFUSED).
            _ => {
                if let Some(e) =
                    wire::ipv6::icmp6_unreachable(&frame[off..], s.dst, icmp6::ADMIN_PROHIBITED)
                {
                    self.inject(Out::Proc(i as u16), &e);
                }
            }
        }
    }

    // ---- connections ---------------------------------------------------------------------

    /// Answers a TCP segment (a SYN, or a stray one) with the RST its destination's host
    /// would send.
    fn refuse(&mut self, i: usize, syn_frame: &[u8]) {
        let off = if self.offload { vnet::HDR_LEN } else { 0 };
        let Some(pkt) = syn_frame.get(off..) else {
            return;
        };
        let rst = if pkt.first().map(|b| b >> 4) == Some(6) {
            wire::ipv6::tcp6_rst_for(pkt)
        } else {
            wire::tcp_rst_for(pkt)
        };
        if let Some(rst) = rst {
            self.inject(Out::Proc(i as u16), &rst);
        }
    }

    /// A client's SYN for a new connection: returns its id, unless it was refused at once
    /// (no such server; or the cap, which is recorded as a refused connection).
    fn new_connection(
        &mut self,
        i: usize,
        src: SocketAddr,
        dst: SocketAddr,
        frame: &[u8],
    ) -> Option<ConnId> {
        let n = self.procs.len();
        let server = match self.plan.process_index(dst.ip(), n) {
            Some(j) if j != i => j as ProcIndex,
            _ if self.plan.is_gateway(dst.ip())
                && (self.external || self.dns.tcp_target(&self.plan, dst).is_some()) =>
            {
                EXTERNAL
            }
            _ => {
                self.refuse(i, frame);
                return None;
            }
        };
        self.bound_pending();
        if self.adm.full() {
            // Over the cap: refused as a host out of resources would, and on the record.
            self.refuse(i, frame);
            self.stats.cap_refused.fetch_add(1, Relaxed);
            let id = self.next_id;
            self.next_id += 1;
            let mut conn = Conn::new(self.net.now(), id, i as ProcIndex, src, server, dst, &[]);
            self.open_failed(&mut conn, Outcome::Refused);
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut conn = Conn::new(self.net.now(), id, i as ProcIndex, src, server, dst, frame);
        // Marks the client's 4-tuple as pending, so its retransmitted SYNs are kept, not relayed.
        self.nat.insert(
            (src, dst),
            Rule {
                src,
                dst,
                out: Out::Proxy,
                conn: id,
                fast: Fast::No,
            },
        );
        conn.keys.push((src, dst));
        self.add_live(conn);
        self.start_upstream(id);
        Some(id)
    }

    /// Keeps the pending connections under `MAX_PENDING` by giving up the oldest.
    fn bound_pending(&mut self) {
        let conns = &self.conns;
        let oldest = self
            .adm
            .make_room(|id| conns.get(&id).is_some_and(Conn::pending));
        for id in oldest {
            self.give_up(id);
        }
    }

    /// A pending connection that will not complete (timed out, or evicted by newer ones):
    /// refused towards the client if it was still connecting, reset on the server's side if
    /// its client never came.
    fn give_up(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        match conn.life.state() {
            State::Connecting => {
                let mut conn = self.conns.remove(&id).expect("looked up above");
                if !conn.syn.is_empty() {
                    self.refuse(conn.client as usize, &conn.syn);
                }
                self.drop_socket(conn.up.take(), true);
                self.open_failed(&mut conn, Outcome::Unreachable);
                self.end(&mut conn);
                self.conns.insert(id, conn);
            }
            State::Open => self.abandon(id),
            State::Done => {}
        }
    }

    /// The client's leg of an established connection will never be accepted: record that
    /// the client reset it, and reset the server's side.
    fn abandon(&mut self, id: ConnId) {
        let Some(mut conn) = self.conns.remove(&id) else {
            return;
        };
        if conn.life.is(State::Open) {
            self.reset(&mut conn, Direction::ClientToServer);
        }
        self.conns.insert(id, conn);
    }

    /// Takes a new connection into the table, counted as live until `end`.
    fn add_live(&mut self, conn: Conn<N::Stream>) {
        self.adm.admit(conn.id);
        self.stats.open.fetch_add(1, Relaxed);
        self.stats.total.fetch_add(1, Relaxed);
        self.conns.insert(conn.id, conn);
    }

    /// Opens the upstream socket of connection `id` towards its server, masqueraded as its
    /// client: the rules for its leg are installed before its SYN can leave the proxy TUN.
    fn start_upstream(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let (server, src, dst) = (conn.server, conn.client_addr, conn.server_addr);
        // The gateway's port 53 is plg's DNS server, in the proxy namespace; otherwise the
        // gateway stands for the host's loopback: 127.0.0.1, or ::1 for the IPv6 one.
        let resolver = self.dns.tcp_target(&self.plan, dst);
        let target = match (resolver, dst) {
            (Some(t), _) => t,
            (None, SocketAddr::V4(_)) if server == EXTERNAL => {
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), dst.port())
            }
            (None, SocketAddr::V6(_)) if server == EXTERNAL => {
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), dst.port())
            }
            (None, _) => dst,
        };
        let host = server == EXTERNAL && resolver.is_none();
        let up = self.net.connect(host, target).and_then(|(mut up, gport)| {
            match self.net.watch(&mut up, id, true) {
                Ok(()) => Ok((up, gport)),
                Err(e) => {
                    self.net.close(up, false);
                    Err(e)
                }
            }
        });
        let (up, gport) = match up {
            Ok(x) => x,
            Err(e) => {
                let mut conn = self.conns.remove(&id).expect("looked up above");
                if !conn.syn.is_empty() {
                    self.refuse(conn.client as usize, &conn.syn);
                }
                // Out of fds: the client is refused (RST), as a host out of resources does.
                let outcome = if crate::os::limits::is_out_of_fds(&e)
                    || e.raw_os_error() == Some(libc::ECONNREFUSED)
                {
                    Outcome::Refused
                } else {
                    Outcome::Unreachable
                };
                self.open_failed(&mut conn, outcome);
                self.end(&mut conn);
                self.conns.insert(id, conn);
                return;
            }
        };
        let conn = self.conns.get_mut(&id).expect("looked up above");
        if server != EXTERNAL {
            let g = match dst {
                SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(PROXY_ADDR), gport),
                SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(PROXY6_ADDR), gport),
            };
            // Its SYN has left already: it reaches the TUN thread before this rule exists, and
            // may meet a rule left by an earlier connection from the same local port (to an
            // earlier client). SYNs on it are routed here, after this rule is in.
            let to_server = Rule {
                src,
                dst,
                out: Out::Proc(server),
                conn: id,
                fast: Fast::Plain,
            };
            let to_upstream = Rule {
                src: dst,
                dst: g,
                out: Out::Proxy,
                conn: id,
                fast: Fast::Any,
            };
            self.nat.insert((g, dst), to_server);
            self.nat.insert((dst, src), to_upstream);
            conn.keys.push((g, dst));
            conn.keys.push((dst, src));
        }
        conn.up = Some(up);
    }

    /// The upstream socket became writable: the connect finished one way or the other.
    fn upstream_progress(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if !conn.life.is(State::Connecting) {
            return;
        }
        let Some(up) = conn.up.as_ref() else { return };
        let err = match self.net.progress(up) {
            Connect::Pending => return, // spurious wake-up: still connecting
            Connect::Done => None,
            Connect::Failed(e) => Some(e),
        };
        if let Some(e) = err {
            let outcome = if e.raw_os_error() == Some(libc::ECONNREFUSED) {
                Outcome::Refused
            } else {
                Outcome::Unreachable
            };
            if self.replay_connect_failed(id, outcome) {
                return;
            }
            let mut conn = self.conns.remove(&id).expect("looked up above");
            if !conn.syn.is_empty() {
                self.refuse(conn.client as usize, &conn.syn);
            }
            self.drop_socket(conn.up.take(), false);
            self.open_failed(&mut conn, outcome);
            self.end(&mut conn);
            self.conns.insert(id, conn);
            return;
        }
        self.replay_connected(id);
        let conn = self.conns.get_mut(&id).expect("looked up above");
        let has_client_leg = !conn.syn.is_empty();
        conn.life.opened(self.net.now().mono, has_client_leg);
        let open = ConnOpen {
            id,
            time_ns: conn.syn_time,
            client: conn.client,
            client_addr: conn.client_addr,
            server: conn.server,
            server_addr: conn.server_addr,
            outcome: Outcome::Established,
        };
        self.rec.conn_open(open);
        if has_client_leg {
            self.connect_client_leg(id);
        } else {
            self.pump(id);
        }
    }

    /// Client leg: the kept SYN goes to the listener from a fresh fake address, and the
    /// listener's answers go back to the client as if from the server.
    fn connect_client_leg(&mut self, id: ConnId) {
        let Some(like) = self.conns.get(&id).map(|c| c.client_addr) else {
            return;
        };
        let fake = self.nat.next_fake_like(like);
        let now = self.net.now().mono;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let l = match fake {
            SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(PROXY_ADDR), LISTEN_PORT),
            SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(PROXY6_ADDR), LISTEN_PORT),
        };
        let (src, dst) = (conn.client_addr, conn.server_addr);
        // The client's own rule: from now on its plain segments need no decision.
        let to_listener = Rule {
            src: fake,
            dst: l,
            out: Out::Proxy,
            conn: id,
            fast: Fast::Plain,
        };
        let to_client = Rule {
            src: dst,
            dst: src,
            out: Out::Proc(conn.client),
            conn: id,
            fast: Fast::Any,
        };
        self.nat.insert((src, dst), to_listener);
        self.nat.insert((l, fake), to_client);
        if !conn.keys.contains(&(src, dst)) {
            conn.keys.push((src, dst));
        }
        conn.keys.push((l, fake));
        conn.fake = Some(fake);
        // Waiting for the listener to accept the client's leg starts now.
        conn.life.opened(now, true);
        conn.life.awaiting_client(now);
        self.by_fake.insert(fake, id);
        let mut syn = std::mem::take(&mut conn.syn);
        self.apply(&mut syn, &to_listener);
    }

    fn open_failed(&mut self, conn: &mut Conn<N::Stream>, outcome: Outcome) {
        self.rec.conn_open(ConnOpen {
            id: conn.id,
            time_ns: conn.syn_time,
            client: conn.client,
            client_addr: conn.client_addr,
            server: conn.server,
            server_addr: conn.server_addr,
            outcome,
        });
    }

    fn accept_all(&mut self, v6: bool) {
        loop {
            let (mut stream, peer) = match self.net.accept(v6) {
                Ok(x) => x,
                Err(e) if pump::would_block(&e) => return,
                Err(e) if pump::interrupted(&e) => continue,
                Err(e) if crate::os::limits::is_out_of_fds(&e) => {
                    // The listener is edge-triggered: a connection left in its queue now
                    // would wait forever. Take it with the spare fd and reset it.
                    if !self.refuse_queued(v6) {
                        return;
                    }
                    continue;
                }
                Err(_) => return,
            };
            let wanted = self.by_fake.get(&peer).copied().filter(|id| {
                self.conns
                    .get(id)
                    .is_some_and(|c| c.down.is_none() && c.life.is(State::Open))
            });
            let Some(id) = wanted else {
                self.net.close(stream, false);
                continue;
            };
            if self.net.watch(&mut stream, id, false).is_err() {
                self.net.close(stream, false);
                continue;
            }
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            conn.down = Some(stream);
            conn.life.accepted();
            self.pump(id);
        }
    }

    /// Out of fds in `accept`: takes the first queued connection with the spare fd and
    /// resets it (the client sees ECONNRESET, never a hang). False if even that failed.
    fn refuse_queued(&mut self, v6: bool) -> bool {
        let Some(peer) = self.net.reset_queued(v6) else {
            return false;
        };
        if let Some(&id) = self.by_fake.get(&peer) {
            self.abandon(id);
        }
        true
    }

    /// Moves whatever can move on connection `id`, both ways, recording as it goes (forward,
    /// or play in replay: `pump`), and closes the legs the pump says.
    fn pump(&mut self, id: ConnId) {
        if self.rec.failed() {
            // The capture cannot be written: nothing more is relayed (the loop ends the
            // session at its next turn).
            return;
        }
        let Some(mut conn) = self.conns.remove(&id) else {
            return;
        };
        if conn.life.is(State::Open) && (conn.replay.is_some() || conn.down.is_some()) {
            let mut legs = [conn.down.take(), conn.up.take()];
            let outcome = match conn.replay.take() {
                None => {
                    let read =
                        (READ_BUDGET / (2 * self.adm.live().max(1))).clamp(MIN_READ, MAX_READ);
                    let scratch = &mut self.scratch[..read];
                    conn.pump.forward(&mut legs, &mut self.rec, id, scratch)
                }
                Some(mut st) => {
                    let out = self.replay_pump(&mut conn.pump, &mut legs, id, &mut st);
                    conn.replay = Some(st);
                    out
                }
            };
            for (side, leg) in legs.iter_mut().enumerate() {
                if conn.pump.take_abort(side) {
                    self.drop_socket(leg.take(), true);
                }
            }
            let [down, up] = legs;
            (conn.down, conn.up) = (down, up);
            match outcome {
                pump::Outcome::Idle | pump::Outcome::Stopped => {}
                pump::Outcome::Finished => self.close_legs(&mut conn, false),
                pump::Outcome::Reset => self.close_legs(&mut conn, true),
            }
        }
        self.conns.insert(id, conn);
    }

    /// The sender of `dir` reset the connection: record it and reset the other side too.
    fn reset(&mut self, conn: &mut Conn<N::Stream>, dir: Direction) {
        pump::record_close(&mut self.rec, conn.id, analysis::side(dir), CloseKind::Rst);
        self.close_legs(conn, true);
    }

    /// Closes both legs and ends the connection. After a reset (`abort`) the side that reset
    /// is gone already and the other must see a RST, not a FIN: an abortive close (SO_LINGER
    /// 0) sends it when the last reference goes.
    fn close_legs(&mut self, conn: &mut Conn<N::Stream>, abort: bool) {
        self.drop_socket(conn.down.take(), abort);
        self.drop_socket(conn.up.take(), abort);
        self.end(conn);
    }

    fn drop_socket(&mut self, s: Option<N::Stream>, abort: bool) {
        if let Some(s) = s {
            self.net.close(s, abort);
        }
    }

    /// The connection is over: keep its rules a while for the last packets.
    fn end(&mut self, conn: &mut Conn<N::Stream>) {
        if conn.life.ended(self.net.now().mono) {
            self.adm.ended();
            self.stats.open.fetch_sub(1, Relaxed);
        }
        // Only the rules linger: the buffers go now.
        conn.pump.release();
        conn.syn = Vec::new();
        conn.replay = None;
    }

    /// Removes a connection and its rules now.
    fn retire(&mut self, id: ConnId) {
        if let Some(mut conn) = self.conns.remove(&id) {
            if !conn.life.is(State::Done) {
                self.drop_socket(conn.down.take(), true);
                self.drop_socket(conn.up.take(), true);
                self.end(&mut conn);
            }
            self.unhook(&conn);
        }
    }

    fn unhook(&mut self, conn: &Conn<N::Stream>) {
        for k in &conn.keys {
            self.nat.remove(k, conn.id);
        }
        if let Some(f) = conn.fake {
            if self.by_fake.get(&f) == Some(&conn.id) {
                self.by_fake.remove(&f);
            }
        }
    }

    /// Periodic: retire lingering connections, give up on connects that never finish.
    fn sweep(&mut self) {
        let now = self.net.now().mono;
        let mut expired = Vec::new();
        let mut stuck = Vec::new();
        for (id, c) in &self.conns {
            match c.life.expiry(now, &TIMEOUTS) {
                Some(Expiry::Retire) => expired.push(*id),
                Some(Expiry::Connect | Expiry::Accept) => stuck.push(*id),
                None => {}
            }
        }
        for id in stuck {
            self.give_up(id);
        }
        for id in expired {
            self.retire(id);
        }
    }
}

/// Raises the fd limit for the relay and returns the connection cap it allows.
fn conn_cap() -> usize {
    let want = (2 * MAX_LIVE_CONNS + FD_RESERVE + crate::os::limits::open_fds()) as u64;
    let soft = crate::os::limits::raise_nofile(want).unwrap_or(1024) as usize;
    let room = soft.saturating_sub(crate::os::limits::open_fds() + FD_RESERVE) / 2;
    room.clamp(1, MAX_LIVE_CONNS)
}

fn debug() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("PLG_DEBUG").is_some())
}
