//! Replay: the same pipes and the same pump as recording (`pump`), with the *play* behaviour
//! per direction; this file decides what to play ([`PlayConn`] over the sans-IO `Player`),
//! matches live connections to recorded ones, opens played clients' connections and plays
//! non-TCP packets.
//!
//! A direction whose sender is live is read (and compared with the recording, never
//! forwarded); a direction whose receiver is live is written the recorded bytes, each chunk
//! once the other direction has carried as much as it had in the recording (`script`'s
//! causal rule). So one mechanism covers all three cases:
//! - live client, played server: only the client leg exists (accepted from the listener);
//! - played client, live server: only the upstream leg exists (plg connects as the client);
//! - both live: both legs exist and each is fed the other's recorded bytes.
//!
//! A step that waits longer than the step timeout is forced, reported, and the replay moves on.

use super::io::Net;
use super::player::{Chunk, Next, Player};
use super::pump::{self, Cue, Play};
use super::script::ConnScript;
use super::script::Script;
use super::{now_ns, Conn, Engine, State};
use crate::format::{CaptureReader, CloseKind, ConnId, ConnOpen, Outcome, ProcIndex, Record};
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufReader, Write};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// What replay needs besides the network.
pub struct ReplayConfig {
    pub script: Script,
    pub reader: CaptureReader<BufReader<File>>,
    /// Per recorded process: run live (true) or played from the recording.
    pub live: Vec<bool>,
    pub step_timeout: Duration,
    /// Honour recorded gaps, scaled by this speed factor (`--timing`, `--speed`).
    pub timing: Option<f64>,
    /// Relay live connections that have no recorded counterpart (`--unmatched pass`).
    pub unmatched_pass: bool,
}

/// How one recorded connection fared.
#[derive(Debug, Clone, Default)]
pub struct ConnReport {
    /// The connection id in the replay's own capture, once matched or opened.
    pub replay_id: Option<u32>,
    /// The live client's port, when a live client made it (it is rarely the recorded one).
    pub live_client_port: Option<u16>,
    /// First offset where the live side sent something else than recorded, per direction.
    pub diverged: [Option<u64>; 2],
    /// Bytes the live side sent, per direction.
    pub live_bytes: [u64; 2],
    /// The recorded outcome did not happen (e.g. refused now, accepted then).
    pub outcome_mismatch: Option<String>,
    /// A recorded close the live side did not do the same way.
    pub close_mismatch: Option<String>,
    pub step_timeouts: u32,
    /// Both ends were played: nothing to do.
    pub skipped: bool,
    /// Per direction: the live bytes differ from the recording only inside ranges the noise
    /// rules (`--ignore`, `--rules`) leave out. Set after the session by the verdict pass.
    pub noise_only: [bool; 2],
    /// Left out of the verdict by an `ignore-conn` or `ignore-port` rule.
    pub ignored_by: Option<String>,
    /// Where the divergence is in a place byte replay cannot reproduce by nature (a TLS or
    /// SSH handshake), said in words.
    pub cannot_replay: Option<String>,
}

impl ConnReport {
    /// The directions whose live sender diverged, noise rules applied.
    pub fn diverged_dirs(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        (0..2).filter_map(|d| match self.diverged[d] {
            Some(off) if !self.noise_only[d] => Some((d, off)),
            _ => None,
        })
    }

    /// Matched, and nothing about it differs from the recording (modulo rules).
    pub fn same(&self) -> bool {
        self.replay_id.is_some()
            && self.diverged_dirs().next().is_none()
            && self.outcome_mismatch.is_none()
            && self.close_mismatch.is_none()
            && self.step_timeouts == 0
    }

    /// The closed set of statuses of docs/JSON.md.
    pub fn status(&self) -> &'static str {
        if self.skipped {
            "skipped"
        } else if self.ignored_by.is_some() {
            "ignored"
        } else if self.replay_id.is_none() {
            "unused"
        } else if self.same() {
            "same"
        } else {
            "diverged"
        }
    }
}

/// A non-TCP flow whose live sender did not send what it sent in the recording.
#[derive(Debug, Clone)]
pub struct FlowIssue {
    /// `sender->receiver udp:53`.
    pub label: String,
    pub what: String,
}

/// The replay's verdict, returned when the engine stops.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    pub conns: Vec<ConnReport>,
    /// Live connections with no recorded counterpart: (client, server address).
    pub unmatched: Vec<(ProcIndex, std::net::SocketAddr)>,
    pub packets_played: u64,
    /// Played packets whose live receiver never took them (port unreachable until the step
    /// timeout).
    pub packets_lost: u64,
    /// Non-TCP flows whose live sender sent other packets than recorded (or none).
    pub flows: Vec<FlowIssue>,
    /// Live main processes that ended otherwise than recorded.
    pub exits: Vec<String>,
    /// What plg could not judge: never counted as behaving as recorded.
    pub unjudged: Vec<String>,
}

impl ReplayReport {
    /// Nothing diverged, timed out, went unmatched, stayed unused, was lost, ended otherwise
    /// or went unjudged (connections left out by a rule aside).
    pub fn clean(&self) -> bool {
        self.unmatched.is_empty()
            && self.packets_lost == 0
            && self.flows.is_empty()
            && self.exits.is_empty()
            && self.unjudged.is_empty()
            && self
                .conns
                .iter()
                .all(|c| c.skipped || c.ignored_by.is_some() || c.same())
    }
}

/// Replay state shared by all connections.
pub(super) struct Replayer {
    cfg: ReplayConfig,
    /// Recorded connections with a live client, not yet matched, by (client, server, port).
    queues: HashMap<(ProcIndex, ProcIndex, u16), VecDeque<usize>>,
    /// Recorded connections with a played client and a live server, in recorded order.
    to_open: VecDeque<usize>,
    /// Bytes carried in the replay per recorded connection, each way (for `after`).
    progress: Vec<[u64; 2]>,
    /// Recorded connections whose replay is over.
    ended: Vec<bool>,
    /// The recorded chunks read last, by offset.
    cache: ChunkCache,
    /// Played packets recently sent (how an ICMP error quotes them, index), to resend one
    /// its receiver was not ready for (answered "port unreachable").
    sent: VecDeque<(Quoted, usize)>,
    /// Played packets a live receiver answered "port unreachable" (it had not bound yet), in
    /// recorded order: each is sent again until it draws no error (taken) or the step timeout
    /// passes (lost), so every entry ends within the step timeout.
    refused: Vec<Refused>,
    next_packet: usize,
    /// Recorded UDP requests from a live process to a played one, per (sender, receiver,
    /// port), in order: the nth live datagram there is answered as the nth recorded one was.
    /// Either IP family: as a TCP connection, a datagram is matched by the processes and
    /// the port, not by the address it went to.
    requests: HashMap<(ProcIndex, ProcIndex, u16), VecDeque<usize>>,
    /// The recorded answers to each such request (packet indexes), played on request.
    answers: HashMap<usize, Vec<usize>>,
    /// Connections between two played processes, still to be copied into the replay's
    /// capture as played (so `plg diff` of the recording and `-o` does not call them
    /// missing), and the one being copied.
    skipped: VecDeque<usize>,
    copying: Option<Copying>,
    started: Instant,
    waiting_since: Instant,
    pub report: ReplayReport,
}

/// A connection between played processes being copied into the replay's capture.
struct Copying {
    k: usize,
    id: ConnId,
    /// Next step of each direction.
    next: [usize; 2],
}

/// Recorded blocks copied per tick: a big played-to-played connection does not stall the
/// live ones.
const COPY_PER_TICK: usize = 64;

/// Per-connection replay state.
pub(super) struct ConnReplay {
    script: usize,
    pub(super) player: Player,
    /// When a step was last played or anything moved (ns on the replay's clock).
    last_progress: u64,
    /// The first bytes each live sender sent (up to `player::ECHO_WINDOW`), for echoes.
    live_head: [Vec<u8>; 2],
    /// Played client connection refused while the server was not up yet: retry until then.
    retry_until: Option<Instant>,
}

impl Replayer {
    /// Remembers that played packet `idx`, which an error would quote as `q`, was just sent
    /// (the last 64 are kept: an error comes back within a tick).
    fn sent_now(&mut self, q: Quoted, idx: usize) {
        self.sent.push_back((q, idx));
        if self.sent.len() > 64 {
            self.sent.pop_front();
        }
    }

    pub(super) fn new(cfg: ReplayConfig) -> Replayer {
        let mut queues: HashMap<_, VecDeque<usize>> = HashMap::new();
        let mut to_open = VecDeque::new();
        let mut report = ReplayReport::default();
        let live = |p: ProcIndex| cfg.live.get(p as usize).copied().unwrap_or(false);
        for (i, c) in cfg.script.conns.iter().enumerate() {
            let o = &c.open;
            let mut r = ConnReport::default();
            if let Some(why) = super::dns::resolver_conn(o.server, o.server_addr.port()) {
                // plg's resolver answers live in replay (`engine::dns`): nothing to play.
                r.ignored_by = Some(why);
                report.conns.push(r);
                continue;
            }
            match (live(o.client), live(o.server)) {
                (true, _) => queues
                    .entry((o.client, o.server, o.server_addr.port()))
                    .or_default()
                    .push_back(i),
                (false, true) => to_open.push_back(i),
                (false, false) => r.skipped = true,
            }
            report.conns.push(r);
        }
        // UDP answers of played processes to live ones follow the live requests.
        let owner = |ip: IpAddr| {
            cfg.script
                .processes
                .iter()
                .find(|p| match ip {
                    IpAddr::V4(a) => p.addr == a,
                    IpAddr::V6(a) => p.addr6 == Some(a),
                })
                .map(|p| p.index)
        };
        let mut requests: HashMap<(ProcIndex, ProcIndex, u16), VecDeque<usize>> = HashMap::new();
        let mut answers: HashMap<usize, Vec<usize>> = HashMap::new();
        for (idx, p) in cfg.script.packets.iter().enumerate() {
            let Some((_, dst)) = p.udp else { continue };
            let sender = p.interface as ProcIndex;
            if let Some(r) = owner(dst.ip()).filter(|&r| live(sender) && !live(r)) {
                requests
                    .entry((sender, r, dst.port()))
                    .or_default()
                    .push_back(idx);
            }
            if let Some((q, _)) = p.answers {
                let req = &cfg.script.packets[q];
                let asked = req.udp.is_some_and(|(_, d)| owner(d.ip()) == Some(sender));
                if asked && live(req.interface as ProcIndex) && !live(sender) {
                    answers.entry(q).or_default().push(idx);
                }
            }
        }
        let n = cfg.script.conns.len();
        let skipped = (0..n).filter(|&k| report.conns[k].skipped).collect();
        Replayer {
            requests,
            answers,
            skipped,
            copying: None,
            cfg,
            queues,
            to_open,
            progress: vec![[0, 0]; n],
            ended: vec![false; n],
            cache: ChunkCache::default(),
            sent: VecDeque::new(),
            refused: Vec::new(),
            next_packet: 0,
            started: Instant::now(),
            waiting_since: Instant::now(),
            report,
        }
    }

    pub(super) fn is_live(&self, p: ProcIndex) -> bool {
        self.cfg.live.get(p as usize).copied().unwrap_or(false)
    }

    /// The replay's clock now.
    fn clock(&self) -> Clock {
        Clock {
            now_ns: self.started.elapsed().as_nanos() as u64,
            timing: self.cfg.timing,
            start_ns: self.cfg.script.session.start_ns,
            step_timeout_ns: self.cfg.step_timeout.as_nanos() as u64,
        }
    }

    fn due(&self, time_ns: u64) -> bool {
        self.clock().due(time_ns)
    }

    fn read_bytes(&mut self, offset: u64) -> Chunk {
        self.cache.get(&mut self.cfg.reader, offset)
    }
}

use pump::dir_of;

/// The replay's time, passed in (the player and `PlayConn` read no clock).
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    /// Nanoseconds since the replay started.
    pub now_ns: u64,
    /// `--timing` at this speed factor: recorded gaps are honoured.
    pub timing: Option<f64>,
    /// When the recording started.
    pub start_ns: u64,
    pub step_timeout_ns: u64,
}

impl Clock {
    /// Has the recorded time `time_ns` come (always, without `--timing`)?
    fn due(&self, time_ns: u64) -> bool {
        match self.timing {
            None => true,
            Some(speed) => {
                let rel = time_ns.saturating_sub(self.start_ns) as f64 / speed;
                self.now_ns as f64 >= rel
            }
        }
    }
}

/// One replayed connection as the pump sees it: its player, the recording it follows and what
/// the replay keeps about it. No I/O: recorded bytes come through `fetch`, time from `clock`.
pub(super) struct PlayConn<'a> {
    pub st: &'a mut ConnReplay,
    pub script: &'a ConnScript,
    pub fetch: &'a mut dyn FnMut(u64) -> Chunk,
    pub report: &'a mut ConnReport,
    /// Bytes carried each way (what played clients' `after` conditions wait for).
    pub progress: &'a mut [u64; 2],
    pub clock: Clock,
}

impl Play for PlayConn<'_> {
    fn reading(&self, d: usize) -> bool {
        self.st.player.reading(d)
    }

    fn sent(&mut self, d: usize, bytes: &[u8]) {
        let n = bytes.len();
        let head = &mut self.st.live_head[d];
        let room = super::player::ECHO_WINDOW.saturating_sub(head.len());
        head.extend_from_slice(&bytes[..room.min(n)]);
        self.st.player.sent(d, bytes, self.script, self.fetch);
        self.progress[d] += n as u64;
        self.report.live_bytes[d] += n as u64;
    }

    fn closed(&mut self, d: usize, kind: CloseKind) {
        if let Some(m) = self.st.player.closed(d, kind, self.script) {
            self.report.close_mismatch.get_or_insert(m);
        }
    }

    fn receiver_gone(&mut self) {
        self.st.player.receiver_gone();
    }

    fn next(&mut self, d: usize) -> Cue {
        // One step timeout forces one step: the clock restarts with each step played.
        let clock = self.clock;
        let forced = clock.now_ns.saturating_sub(self.st.last_progress) > clock.step_timeout_ns;
        let player = &mut self.st.player;
        let before = player.forced_steps;
        let next = player.next(d, self.script, &|t| clock.due(t), forced);
        self.report.step_timeouts += player.forced_steps - before;
        let record = !player.live_sender(d);
        match next {
            Next::Wait | Next::Done => Cue::Wait,
            Next::Close(kind) => Cue::Close { kind, record },
            Next::Write(step) => {
                let mut bytes = (self.fetch)(step.offset);
                let o = 1 - d;
                let first = self.script.steps[d].first().map(|f| f.offset) == Some(step.offset);
                if first && self.st.player.live_sender(o) {
                    if let Some(ask) = self.script.steps[o].first().map(|f| f.offset) {
                        let asked = (self.fetch)(ask);
                        let live = &self.st.live_head[o];
                        if let Some(b) = super::player::echo_first(&bytes, &asked, live) {
                            bytes = Chunk::new(b);
                        }
                    }
                }
                self.progress[d] += bytes.len() as u64;
                self.st.last_progress = clock.now_ns;
                Cue::Write { bytes, record }
            }
        }
    }

    fn progressed(&mut self) {
        self.st.last_progress = self.clock.now_ns;
    }

    fn done(&self) -> bool {
        self.st.player.done()
    }
}

impl<W: Write + super::sink::Close, N: Net> Engine<W, N> {
    /// A live client's SYN in replay: match it to the next recorded connection with the same
    /// client, server and port. Returns false when it should be handled as in recording.
    pub(super) fn replay_syn(
        &mut self,
        i: usize,
        src: std::net::SocketAddr,
        dst: std::net::SocketAddr,
        frame: &[u8],
    ) -> bool {
        let Some(rp) = self.replay.as_mut() else {
            return false;
        };
        let n = rp.cfg.live.len();
        // The gateway stands for the host recorded through --allow-external: in replay it is
        // always played, so a client can be tested without its outside dependency.
        let server = match self.plan.process_index(dst.ip(), n) {
            Some(j) => j as ProcIndex,
            None if self.plan.is_gateway(dst.ip()) => crate::format::EXTERNAL,
            None => return false,
        };
        let key = (i as ProcIndex, server, dst.port());
        let matched = rp.queues.get_mut(&key).and_then(|q| q.pop_front());
        let Some(k) = matched else {
            rp.report.unmatched.push((i as ProcIndex, dst));
            if rp.cfg.unmatched_pass && rp.is_live(server) {
                return false;
            }
            self.refuse(i, frame);
            return true;
        };
        // Not settled until a tick has looked at this connection: a main command that ends
        // right after it must not end the session before the live side had its say.
        self.stats
            .replay_settled
            .store(false, std::sync::atomic::Ordering::Relaxed);
        rp.report.conns[k].live_client_port = Some(src.port());
        let recorded = rp.cfg.script.conns[k].open.outcome;
        let server_live = rp.is_live(server);
        if recorded != Outcome::Established {
            let id = self.next_id;
            self.next_id += 1;
            rp.report.conns[k].replay_id = Some(id);
            self.refuse(i, frame);
            self.rec.conn_open(ConnOpen {
                id,
                time_ns: now_ns(),
                client: i as ProcIndex,
                client_addr: src,
                server,
                server_addr: dst,
                outcome: recorded,
            });
            return true;
        }
        let state = ConnReplay::new(k, true, server_live, rp.clock().now_ns);
        if server_live {
            // Both live: the pipe is built as in recording; the behaviour differs.
            // Refused at the cap: nothing to attach the replay state to.
            let Some(id) = self.new_connection(i, src, dst, frame) else {
                return true;
            };
            if let Some(c) = self.conns.get_mut(&id) {
                c.replay = Some(Box::new(state));
                if let Some(rp) = self.replay.as_mut() {
                    rp.report.conns[k].replay_id = Some(id);
                }
            }
            return true;
        }
        // Played server: accept at once, no upstream.
        let id = self.next_id;
        self.next_id += 1;
        let mut conn = Conn::new(self.net.now(), id, i as ProcIndex, src, server, dst, frame);
        conn.replay = Some(Box::new(state));
        if let Some(rp) = self.replay.as_mut() {
            rp.report.conns[k].replay_id = Some(id);
        }
        self.add_live(conn);
        self.rec.conn_open(ConnOpen {
            id,
            time_ns: now_ns(),
            client: i as ProcIndex,
            client_addr: src,
            server,
            server_addr: dst,
            outcome: Outcome::Established,
        });
        self.connect_client_leg(id);
        true
    }

    /// Opens the played clients' connections whose turn has come; plays non-TCP packets.
    pub(super) fn replay_tick(&mut self) {
        if !self
            .stats
            .all_started
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        self.copy_played();
        let Some(rp) = self.replay.as_mut() else {
            return;
        };
        // Played clients, in recorded order, each after the progress it followed.
        // One per tick: a connection opened now changes what the next one waits for.
        if let Some(&k) = rp.to_open.front() {
            let c = &rp.cfg.script.conns[k];
            let ready = c.after.iter().all(|a| {
                let got = rp.progress[a.conn];
                got[0] >= a.bytes[0] && got[1] >= a.bytes[1] && (!a.ended || rp.ended[a.conn])
            });
            let timed_out = rp.waiting_since.elapsed() > rp.cfg.step_timeout;
            if (ready || timed_out) && rp.due(c.open.time_ns) {
                if timed_out && !ready {
                    rp.report.conns[k].step_timeouts += 1;
                }
                rp.to_open.pop_front();
                rp.waiting_since = Instant::now();
                let open = c.open;
                self.open_played_client(k, open);
            }
        }
        // Non-TCP packets from played processes to live ones, at their recorded time; one the
        // receiver was not ready for goes again a little later, until the step timeout.
        self.resend_refused();
        loop {
            let Some(rp) = self.replay.as_mut() else {
                return;
            };
            let Some(p) = rp.cfg.script.packets.get(rp.next_packet).copied() else {
                break;
            };
            let on_request = p.answers.is_some_and(|(q, _)| rp.answers.contains_key(&q));
            if rp.is_live(p.interface as ProcIndex) || on_request {
                rp.next_packet += 1;
                continue;
            }
            if !rp.due(p.time_ns) {
                break;
            }
            let idx = rp.next_packet;
            rp.next_packet += 1;
            let bytes = rp.read_bytes(p.offset);
            let Some(dst) = ip_dst(&bytes) else {
                continue;
            };
            if let Some(q) = Quoted::of(&bytes) {
                rp.sent_now(q, idx);
            }
            let n = rp.cfg.live.len();
            if let Some(j) = self.plan.process_index(dst, n) {
                if rp.is_live(j as ProcIndex) {
                    rp.report.packets_played += 1;
                    if self.rec.packet(p.interface, &bytes) {
                        self.inject(super::nat::Out::Proc(j as u16), &bytes);
                    }
                }
            }
        }
        // Connections waiting on the clock, a retry, or a step that timed out.
        let ids: Vec<u32> = self
            .conns
            .iter()
            .filter(|(_, c)| c.replay.is_some() && !c.life.is(State::Done))
            .map(|(id, _)| *id)
            .collect();
        let done = ids.is_empty()
            && self.replay.as_ref().is_some_and(|rp| {
                rp.to_open.is_empty()
                    && rp.next_packet >= rp.cfg.script.packets.len()
                    && rp.skipped.is_empty()
                    && rp.copying.is_none()
            });
        for id in &ids {
            self.retry_played_client(*id);
            self.pump(*id);
        }
        let settled = ids.iter().all(|id| {
            self.conns.get(id).is_none_or(|c| {
                c.life.is(State::Done)
                    || c.replay.as_ref().is_none_or(|st| {
                        let script = self
                            .replay
                            .as_ref()
                            .map(|rp| &rp.cfg.script.conns[st.script]);
                        script.is_none_or(|s| !st.player.awaiting_live(s))
                    })
            })
        });
        self.stats
            .replay_settled
            .store(settled, std::sync::atomic::Ordering::Relaxed);
        self.stats
            .replay_done
            .store(done, std::sync::atomic::Ordering::Relaxed);
    }

    /// Copies connections between two played processes into the replay's capture, as they
    /// were recorded (new ids, the time of the copy), a bounded number of blocks per tick.
    /// Both their processes are marked not live in the capture: they read as played.
    fn copy_played(&mut self) {
        if !self.rec.capturing() {
            if let Some(rp) = self.replay.as_mut() {
                rp.skipped.clear();
            }
            return;
        }
        for _ in 0..COPY_PER_TICK {
            let Some(rp) = self.replay.as_mut() else {
                return;
            };
            let Some(cp) = rp.copying.as_mut() else {
                let Some(k) = rp.skipped.pop_front() else {
                    return;
                };
                let open = rp.cfg.script.conns[k].open;
                let id = self.next_id;
                self.next_id += 1;
                self.rec.conn_open(ConnOpen {
                    id,
                    time_ns: now_ns(),
                    ..open
                });
                if let Some(rp) = self.replay.as_mut() {
                    rp.report.conns[k].replay_id = Some(id);
                    if open.outcome == Outcome::Established {
                        rp.copying = Some(Copying {
                            k,
                            id,
                            next: [0, 0],
                        });
                    }
                }
                continue;
            };
            let c = &rp.cfg.script.conns[cp.k];
            let pick = (0..2)
                .filter_map(|d| c.steps[d].get(cp.next[d]).map(|st| (st.offset, d)))
                .min();
            let id = cp.id;
            match pick {
                Some((offset, d)) => {
                    cp.next[d] += 1;
                    let bytes = rp.read_bytes(offset);
                    if !self.rec.data(id, dir_of(d), &bytes) {
                        return;
                    }
                }
                None => {
                    let closes = c.close;
                    rp.copying = None;
                    let mut order: Vec<(u64, usize, CloseKind)> = (0..2)
                        .filter_map(|d| closes[d].map(|cl| (cl.time_ns, d, cl.kind)))
                        .collect();
                    order.sort_by_key(|o| (o.0, o.1));
                    if order.len() == 2 && order.iter().all(|o| o.2 == CloseKind::Rst) {
                        // One reset ends both directions: one record, as recorded.
                        order.truncate(1);
                    }
                    for (_, d, kind) in order {
                        self.rec.conn_close(id, dir_of(d), kind);
                    }
                }
            }
        }
    }

    /// plg opens a recorded client's connection itself, masqueraded as that client.
    fn open_played_client(&mut self, k: usize, open: ConnOpen) {
        self.stats
            .replay_settled
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let id = self.next_id;
        self.next_id += 1;
        let mut conn = Conn::new(
            self.net.now(),
            id,
            open.client,
            open.client_addr,
            open.server,
            open.server_addr,
            &[],
        );
        let now = self.replay.as_ref().map_or(0, |r| r.clock().now_ns);
        let mut st = ConnReplay::new(k, false, true, now);
        if open.outcome == Outcome::Established {
            st.retry_until = Some(
                Instant::now()
                    + self
                        .replay
                        .as_ref()
                        .map_or(Duration::ZERO, |r| r.cfg.step_timeout),
            );
        }
        conn.replay = Some(Box::new(st));
        if let Some(rp) = self.replay.as_mut() {
            rp.report.conns[k].replay_id = Some(id);
        }
        self.add_live(conn);
        self.start_upstream(id);
    }

    /// A played client's connect was refused: the server may just not be listening yet.
    fn retry_played_client(&mut self, id: u32) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let Some(st) = conn.replay.as_mut() else {
            return;
        };
        if !conn.life.is(State::Connecting) || conn.up.is_some() || st.player.live_sender(0) {
            return;
        }
        let k = st.script;
        if st.retry_until.is_some_and(|t| Instant::now() < t) {
            self.start_upstream(id);
            return;
        }
        // The server never listened in time: the connection is refused for good.
        let mut conn = self.conns.remove(&id).expect("looked up above");
        if let Some(rp) = self.replay.as_mut() {
            rp.report.conns[k].outcome_mismatch = Some("recorded Established, now Refused".into());
        }
        self.open_failed(&mut conn, Outcome::Refused);
        self.end(&mut conn);
        self.conns.insert(id, conn);
    }

    /// The upstream connect of a replayed connection failed.
    pub(super) fn replay_connect_failed(&mut self, id: u32, outcome: Outcome) -> bool {
        let Some(conn) = self.conns.get_mut(&id) else {
            return false;
        };
        let Some(st) = conn.replay.as_ref() else {
            return false;
        };
        let played_client = !st.player.live_sender(0);
        let k = st.script;
        if played_client
            && outcome == Outcome::Refused
            && st.retry_until.is_some_and(|t| Instant::now() < t)
        {
            // Not listening yet: try again on a later tick.
            let up = conn.up.take();
            self.drop_socket(up, false);
            return true;
        }
        if let Some(rp) = self.replay.as_mut() {
            let recorded = rp.cfg.script.conns[k].open.outcome;
            if recorded != outcome {
                rp.report.conns[k].outcome_mismatch =
                    Some(format!("recorded {recorded:?}, now {outcome:?}"));
            }
        }
        false
    }

    /// A recorded connection that was refused and is refused again is as it should be; one
    /// that was refused but is accepted now is reported.
    pub(super) fn replay_connected(&mut self, id: u32) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let Some(st) = conn.replay.as_ref() else {
            return;
        };
        let k = st.script;
        if let Some(rp) = self.replay.as_mut() {
            let recorded = rp.cfg.script.conns[k].open.outcome;
            if recorded != Outcome::Established {
                rp.report.conns[k].outcome_mismatch =
                    Some(format!("recorded {recorded:?}, now accepted"));
            }
        }
    }

    /// Replay's turn of the pump: the connection's player says what to play; the pump reads
    /// the live senders and writes the live receivers.
    pub(super) fn replay_pump(
        &mut self,
        pump: &mut pump::Pump,
        legs: &mut [Option<N::Stream>; 2],
        id: ConnId,
        st: &mut ConnReplay,
    ) -> pump::Outcome {
        let Some(rp) = self.replay.as_mut() else {
            return pump::Outcome::Idle;
        };
        let k = st.script;
        let clock = rp.clock();
        let read_len = self.scratch.len().min(256 << 10);
        let Replayer {
            cfg,
            cache,
            progress,
            report,
            ended,
            ..
        } = rp;
        let (reader, script) = (&mut cfg.reader, &cfg.script.conns[k]);
        let mut fetch = |off| cache.get(reader, off);
        let mut conn = PlayConn {
            st,
            script,
            fetch: &mut fetch,
            report: &mut report.conns[k],
            progress: &mut progress[k],
            clock,
        };
        conn.st.player.tick(clock.now_ns);
        let out = pump.play(
            legs,
            &mut conn,
            &mut self.rec,
            id,
            &mut self.scratch[..read_len],
        );
        conn.report.diverged = conn.st.player.diverged;
        if conn.st.player.done() {
            ended[k] = true;
        }
        out
    }

    /// A live process `i` sent a datagram to a played one: it is recorded (as a live process's
    /// packet always is) and, when the recording has the matching request, answered as the
    /// played process answered it then: readdressed to the live sender's port, with what the
    /// recorded answer echoed from its request (a DNS id) taken from the live one.
    pub(super) fn replay_datagram(&mut self, i: usize, pkt: &[u8]) {
        if !self.rec.packet(i as u32, pkt) {
            return;
        }
        let Some((_, dst, _)) = crate::wire::udp::view(pkt) else {
            return;
        };
        let Some(rp) = self.replay.as_mut() else {
            return;
        };
        let Some(j) = self.plan.process_index(dst.ip(), rp.cfg.live.len()) else {
            return;
        };
        let key = (i as ProcIndex, j as ProcIndex, dst.port());
        let Some(q) = rp.requests.get_mut(&key).and_then(|q| q.pop_front()) else {
            return;
        };
        let list = rp.answers.get(&q).cloned().unwrap_or_default();
        let plays: Vec<(u32, Vec<u8>)> = list
            .iter()
            .filter_map(|&a| {
                let step = rp.cfg.script.packets[a];
                let echo = step.answers.map_or(0, |(_, e)| e as usize);
                let recorded = rp.read_bytes(step.offset);
                crate::wire::udp::answer_like(&recorded, pkt, echo).map(|b| (step.interface, b))
            })
            .collect();
        rp.report.packets_played += plays.len() as u64;
        for (from, bytes) in plays {
            // Recorded first, delivered only once it is (as every packet).
            if self.rec.packet(from, &bytes) {
                self.inject(super::nat::Out::Proc(i as u16), &bytes);
            }
        }
    }

    /// A live process answered a played packet with "port unreachable" (ICMP or ICMPv6): its
    /// socket was not bound yet. Schedules that packet (found by what the error quotes of it)
    /// to go again, and returns true: the error is then plg's doing (it delivered too early,
    /// as a played client's refused connect is retried), so it is neither recorded nor
    /// judged. A packet that never gets taken is counted lost instead.
    pub(super) fn replay_unreachable(&mut self, icmp: &[u8]) -> bool {
        let Some(rp) = self.replay.as_mut() else {
            return false;
        };
        let Some(quoted) = Quoted::port_unreachable(icmp) else {
            return false;
        };
        let Some(&(_, idx)) = rp.sent.iter().find(|(q, _)| *q == quoted) else {
            return false;
        };
        match rp.refused.iter_mut().find(|r| r.idx == idx) {
            Some(r) => r.again = true,
            None => {
                let now = Instant::now();
                let at = rp.refused.partition_point(|r| r.idx < idx);
                rp.refused.insert(
                    at,
                    Refused {
                        idx,
                        since: now,
                        last_sent: now,
                        again: true,
                        tries: 0,
                    },
                );
            }
        }
        true
    }

    /// Sends again the played packets their receiver refused, each once per round: one that
    /// drew no new error since it was last sent was taken (the receiver's kernel answers an
    /// unbound port at once, and plg turns off ICMP rate limiting in every process's
    /// namespace, so silence means delivery); one still refused after the step timeout is
    /// lost. The wait between tries doubles from [`RESEND_FIRST`] up to [`RESEND_MAX`], so a
    /// receiver that binds late gets each packet once, and a slow one a bounded number of
    /// times.
    fn resend_refused(&mut self) {
        let Some(rp) = self.replay.as_mut() else {
            return;
        };
        let mut due = Vec::new();
        let step_timeout = rp.cfg.step_timeout;
        let mut lost = 0;
        rp.refused.retain_mut(|r| {
            if !r.again {
                // Sent again and no error came back: taken.
                return r.last_sent.elapsed() < RESEND_SETTLE;
            }
            if r.since.elapsed() > step_timeout {
                lost += 1;
                return false;
            }
            let wait = RESEND_FIRST
                .saturating_mul(1 << r.tries.min(16))
                .min(RESEND_MAX);
            if r.last_sent.elapsed() >= wait {
                r.again = false;
                r.tries += 1;
                r.last_sent = Instant::now();
                due.push(r.idx);
            }
            true
        });
        rp.report.packets_lost += lost;
        for idx in due {
            let Some(rp) = self.replay.as_mut() else {
                return;
            };
            let Some(p) = rp.cfg.script.packets.get(idx).copied() else {
                continue;
            };
            let bytes = rp.read_bytes(p.offset);
            let (Some(dst), Some(q)) = (ip_dst(&bytes), Quoted::of(&bytes)) else {
                continue;
            };
            rp.sent_now(q, idx);
            let n = rp.cfg.live.len();
            if let Some(j) = self.plan.process_index(dst, n) {
                // Recorded once (the first send); a resend is plg's early delivery repeated.
                self.inject(super::nat::Out::Proc(j as u16), &bytes);
            }
        }
    }

    pub(super) fn take_replay_report(&mut self) -> Option<ReplayReport> {
        // Recorded connections nobody made keep `replay_id: None`: they are "unused".
        self.replay.take().map(|rp| rp.report)
    }
}

impl ConnReplay {
    pub(super) fn new(script: usize, client_live: bool, server_live: bool, now_ns: u64) -> Self {
        ConnReplay {
            script,
            player: Player::new(client_live, server_live),
            last_progress: now_ns,
            live_head: [Vec::new(), Vec::new()],
            retry_until: None,
        }
    }
}

/// A played packet its live receiver refused (see `Replayer::refused`).
#[derive(Debug)]
struct Refused {
    /// The packet's index in the script.
    idx: usize,
    /// When it was first refused (the step timeout counts from here).
    since: Instant,
    last_sent: Instant,
    /// Refused again since it was last sent.
    again: bool,
    tries: u32,
}

/// The first wait before a refused packet goes again; it doubles per try, up to
/// [`RESEND_MAX`].
const RESEND_FIRST: Duration = Duration::from_millis(20);
const RESEND_MAX: Duration = Duration::from_millis(500);
/// How long after a resend silence means the packet was taken (the error, when there is one,
/// comes back within the same tick: the receiver's kernel answers as the packet arrives).
const RESEND_SETTLE: Duration = Duration::from_millis(50);

/// How an ICMP "port unreachable" names the played packet it is about: by its IPv4 id, or
/// (IPv6 has no id) by its addresses and first 8 bytes past the IPv6 header (the UDP header
/// with its checksum, or an ICMPv6 header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoted {
    Id4(u16),
    Head6([u8; 40]),
}

impl Quoted {
    /// The key of a packet plg sends, or of the start of one an error quotes (raw offsets:
    /// a quote may end before the packet's own length says).
    fn of(ip: &[u8]) -> Option<Quoted> {
        match ip.first()? >> 4 {
            4 => ip
                .get(4..6)
                .map(|b| Quoted::Id4(u16::from_be_bytes([b[0], b[1]]))),
            6 => ip
                .get(8..48)
                .and_then(|b| b.try_into().ok())
                .map(Quoted::Head6),
            _ => None,
        }
    }

    /// The key of the packet an ICMP or ICMPv6 port unreachable quotes; `None` for any other
    /// packet.
    fn port_unreachable(icmp: &[u8]) -> Option<Quoted> {
        use crate::wire::{icmp::port_unreachable_quote, ipv6::port_unreachable_quote6};
        Quoted::of(port_unreachable_quote(icmp).or_else(|| port_unreachable_quote6(icmp))?)
    }
}

/// The destination of an IPv4 or IPv6 packet.
fn ip_dst(ip: &[u8]) -> Option<IpAddr> {
    match ip.first()? >> 4 {
        4 => crate::wire::summarize(ip).map(|s| IpAddr::V4(s.dst)),
        6 => crate::wire::ipv6::Ipv6Packet::new_checked(ip).map(|p| IpAddr::V6(p.dst_addr())),
        _ => None,
    }
}

/// The last few recorded chunks read, by offset: when both sides are live, the bytes a
/// direction is played with are the bytes its live sender is compared with, read once.
#[derive(Default)]
struct ChunkCache {
    entries: VecDeque<(u64, Chunk)>,
}

impl ChunkCache {
    const LEN: usize = 16;

    fn get(&mut self, reader: &mut CaptureReader<BufReader<File>>, offset: u64) -> Chunk {
        if let Some((_, c)) = self.entries.iter().find(|(o, _)| *o == offset) {
            return c.clone();
        }
        let c = Chunk::new(read_bytes(reader, offset));
        if self.entries.len() == Self::LEN {
            self.entries.pop_front();
        }
        self.entries.push_back((offset, c.clone()));
        c
    }
}

/// The bytes of the Data or Packet block at `offset` (read when the script was built, so a
/// failure here means the file changed underneath: nothing is played then).
fn read_bytes(reader: &mut CaptureReader<BufReader<File>>, offset: u64) -> Vec<u8> {
    match reader.read_at(offset) {
        Ok(Record::Data(d)) => d.bytes,
        Ok(Record::Packet(p)) => p.bytes,
        _ => Vec::new(),
    }
}
