//! Seeded simulations of the pump, without root: in-memory socket pairs whose reads and writes
//! are short, interrupted or would block at random, applications on both ends that write,
//! read slowly, half-close in either order, reset (also after a FIN) and fill the pipes, and a
//! seeded clock for replay's turns. Everything goes through the real [`Recorder`] into a
//! [`CaptureWriter`] over memory, and each capture is put through the analysis behind
//! `plg inspect --check`.
//!
//! Invariants checked on every seed:
//! - every byte relayed is recorded exactly once and in order: what a direction recorded is a
//!   prefix of what its sender sent, and what its receiver got is a prefix of what was
//!   recorded (nothing is passed on unrecorded, also when the disk is full);
//! - without a reset, everything sent is recorded and received, and both FINs are recorded;
//! - a backlog never holds more than one read; after the pump is over nothing is held;
//! - replay: live receivers get exactly the recorded bytes, each turn only after the live
//!   peer took its turn, with no divergence and no forced step;
//! - every finished capture passes the checks of `plg inspect --check`.

use super::*;
use crate::analysis;
use crate::analysis::Analyzer;
use crate::engine::replay::{Clock, ConnReplay, ConnReport, PlayConn};
use crate::engine::script::{Close as RecordedClose, ConnScript, Step};
use crate::engine::Stats;
use crate::format::{
    CaptureReader, CaptureWriter, ConnOpen, Mode, Outcome as ConnOutcome, Process, Record, Session,
    Summary,
};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::sync::Arc;

/// xorshift64*: a seeded, dependency-free generator (also the loop's simulations').
pub(in crate::engine) struct Rng(u64);
impl Rng {
    pub(in crate::engine) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub(in crate::engine) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(in crate::engine) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// 1 ..= n
    pub(in crate::engine) fn upto(&mut self, n: usize) -> usize {
        1 + self.below(n as u64) as usize
    }
    pub(in crate::engine) fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
    pub(in crate::engine) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// One way of an in-memory TCP connection.
#[derive(Default)]
struct Pipe {
    buf: VecDeque<u8>,
    cap: usize,
    /// The writer shut down writing (FIN), read after `buf`.
    fin: bool,
    /// The writer aborted (RST): the reader's next read fails, buffered bytes are lost.
    rst: bool,
    /// The reader is gone: writes fail.
    reader_gone: bool,
}

struct Net {
    pipes: Vec<Pipe>,
    rng: Rng,
    /// Chaos on the pump's ends: EINTR, short reads and writes, in percent.
    chaos: u64,
}

type Shared = Rc<RefCell<Net>>;

/// One end of a connection: reads pipe `rx`, writes pipe `tx`.
struct End {
    net: Shared,
    rx: usize,
    tx: usize,
}

fn err(kind: io::ErrorKind) -> io::Error {
    io::Error::from(kind)
}

impl Read for End {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut net = self.net.borrow_mut();
        let chaos = net.chaos;
        if net.rng.percent(chaos / 4) {
            return Err(err(io::ErrorKind::Interrupted));
        }
        let short = net.rng.percent(chaos);
        let limit = net.rng.upto(out.len().max(1));
        let p = &mut net.pipes[self.rx];
        if p.rst {
            return Err(err(io::ErrorKind::ConnectionReset));
        }
        if p.buf.is_empty() {
            return if p.fin {
                Ok(0)
            } else {
                Err(err(io::ErrorKind::WouldBlock))
            };
        }
        let mut n = out.len().min(p.buf.len());
        if short {
            n = n.min(limit);
        }
        for (o, b) in out.iter_mut().zip(p.buf.drain(..n)) {
            *o = b;
        }
        Ok(n)
    }
}

impl Write for End {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut net = self.net.borrow_mut();
        let chaos = net.chaos;
        if net.rng.percent(chaos / 4) {
            return Err(err(io::ErrorKind::Interrupted));
        }
        let short = net.rng.percent(chaos);
        let limit = net.rng.upto(data.len().max(1));
        let rx_rst = net.pipes[self.rx].rst;
        let p = &mut net.pipes[self.tx];
        if p.reader_gone || rx_rst {
            return Err(err(io::ErrorKind::ConnectionReset));
        }
        assert!(!p.fin, "written after shutdown(SHUT_WR)");
        let room = p.cap - p.buf.len();
        if room == 0 {
            return Err(err(io::ErrorKind::WouldBlock));
        }
        let mut n = room.min(data.len());
        if short {
            n = n.min(limit);
        }
        p.buf.extend(&data[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Socket for End {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.net.borrow_mut().pipes[self.tx].fin = true;
        Ok(())
    }
}

impl End {
    /// close(): FIN if not sent yet, and the peer's writes fail from now on.
    fn close(&self, abort: bool) {
        let mut net = self.net.borrow_mut();
        if abort {
            net.pipes[self.tx].rst = true;
        } else {
            net.pipes[self.tx].fin = true;
        }
        net.pipes[self.rx].reader_gone = true;
    }
}

/// An application on one end: sends its stream, reads what comes.
struct App {
    end: End,
    stream: Vec<u8>,
    sent: usize,
    got: Vec<u8>,
    got_eof: bool,
    got_rst: bool,
    shut: bool,
    closed: bool,
}

impl App {
    fn new(end: End, stream: Vec<u8>) -> App {
        App {
            end,
            stream,
            sent: 0,
            got: Vec::new(),
            got_eof: false,
            got_rst: false,
            shut: false,
            closed: false,
        }
    }

    /// Sends up to `n` more bytes of its stream (the app side has no chaos).
    fn send(&mut self, n: usize) {
        if self.closed || self.shut {
            return;
        }
        let mut net = self.end.net.borrow_mut();
        let p = &mut net.pipes[self.end.tx];
        if p.reader_gone {
            return;
        }
        let n = n
            .min(p.cap - p.buf.len())
            .min(self.stream.len() - self.sent);
        p.buf.extend(&self.stream[self.sent..self.sent + n]);
        self.sent += n;
    }

    fn recv(&mut self, n: usize) {
        if self.closed {
            return;
        }
        let mut net = self.end.net.borrow_mut();
        let p = &mut net.pipes[self.end.rx];
        if p.rst {
            self.got_rst = true;
            return;
        }
        let n = n.min(p.buf.len());
        self.got.extend(p.buf.drain(..n));
        if p.buf.is_empty() && p.fin {
            self.got_eof = true;
        }
    }

    fn shutdown(&mut self) {
        if !self.closed && !self.shut {
            self.shut = true;
            self.end.net.borrow_mut().pipes[self.end.tx].fin = true;
        }
    }

    fn abort(&mut self) {
        if !self.closed {
            self.closed = true;
            self.end.close(true);
        }
    }

    fn all_sent(&self) -> bool {
        self.sent == self.stream.len()
    }
}

/// The capture's output: memory shared with the test, with disk space up to `limit`.
#[derive(Clone)]
pub(in crate::engine) struct Disk {
    pub(in crate::engine) bytes: Rc<RefCell<Vec<u8>>>,
    pub(in crate::engine) limit: u64,
}

impl Write for Disk {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.bytes.borrow_mut().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Close for Disk {
    fn close(self) -> io::Result<()> {
        Ok(())
    }
    fn reserve(&self, len: u64) -> io::Result<bool> {
        if len > self.limit {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(true)
    }
}

const ID: ConnId = 0;

fn recorder(disk: &Disk) -> Recorder<Disk> {
    let session = Session {
        format_version: crate::format::FORMAT_VERSION,
        mode: Mode::Record,
        subnet: Ipv4Addr::new(10, 0, 0, 0),
        prefix_len: 24,
        start_ns: 1,
        plg_version: "sim".into(),
        subnet6: None,
    };
    let procs: Vec<Process> = (0..2)
        .map(|i| Process {
            index: i,
            name: format!("p{i}"),
            command: "sim".into(),
            addr: Ipv4Addr::new(10, 0, 0, 2 + i as u8),
            addr6: None,
            live: true,
        })
        .collect();
    let w = CaptureWriter::new(disk.clone(), &session, &procs).expect("capture header");
    let mut rec = Recorder::new(Some(w), 2, Arc::new(Stats::default()));
    rec.conn_open(ConnOpen {
        id: ID,
        time_ns: 2,
        client: 1,
        client_addr: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 3), 40000).into(),
        server: 0,
        server_addr: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80).into(),
        outcome: ConnOutcome::Established,
    });
    rec
}

/// What a capture holds: the stream bytes and closes per direction, and whether it passes
/// `plg inspect --check`.
struct Read_ {
    data: [Vec<u8>; 2],
    closes: [Vec<CloseKind>; 2],
    sound: bool,
    problems: Vec<String>,
    summary: Option<Summary>,
}

fn read_capture(bytes: &[u8]) -> Read_ {
    let mut r = CaptureReader::new(bytes, "sim").expect("capture header");
    let mut a = Analyzer::new();
    let mut out = Read_ {
        data: [Vec::new(), Vec::new()],
        closes: [Vec::new(), Vec::new()],
        sound: false,
        problems: Vec::new(),
        summary: None,
    };
    loop {
        let offset = r.position();
        let Some(rec) = r.next() else { break };
        let rec = match rec {
            Ok(rec) => rec,
            Err(e) => {
                a.read_error(&e);
                break;
            }
        };
        a.record(&rec, offset);
        match &rec {
            Record::Data(d) => out.data[analysis::side(d.dir)].extend_from_slice(&d.bytes),
            Record::ConnClose(c) => out.closes[analysis::side(c.dir)].push(c.kind),
            Record::Summary(s) => out.summary = Some(*s),
            _ => {}
        }
    }
    let (info, _) = a.finish();
    out.sound = info.is_sound();
    out.problems = info.problems.iter().map(|p| p.message.clone()).collect();
    out
}

fn net(rng: &mut Rng, chaos: u64) -> Shared {
    let pipes = (0..4)
        .map(|_| Pipe {
            cap: rng.upto(4096),
            ..Pipe::default()
        })
        .collect();
    Rc::new(RefCell::new(Net {
        pipes,
        rng: Rng::new(rng.next()),
        chaos,
    }))
}

// Pipes: 0 client app -> pump (down leg), 1 pump -> client app, 2 pump -> server app (up
// leg), 3 server app -> pump.
fn ends(net: &Shared) -> (App, App, [Option<End>; 2]) {
    let end = |rx, tx| End {
        net: net.clone(),
        rx,
        tx,
    };
    let client = App::new(end(1, 0), Vec::new());
    let server = App::new(end(2, 3), Vec::new());
    (client, server, [Some(end(0, 1)), Some(end(3, 2))])
}

/// How a forward scenario ends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Plan {
    /// Both sides send everything and shut down, in either order.
    Clean,
    /// One side resets in the middle.
    Reset,
    /// One side shuts down, then resets (close() with unread data).
    FinThenRst,
    /// The disk fills up part-way.
    DiskFull,
}

#[test]
fn forward_seeded_simulations_record_every_relayed_byte_once_in_order() {
    // How often each ending and a held-back backlog happened: the scenarios must reach them.
    let mut seen: HashMap<&str, u32> = HashMap::new();
    for seed in 1..=600u64 {
        let mut rng = Rng::new(seed);
        let plan = [Plan::Clean, Plan::Reset, Plan::FinThenRst, Plan::DiskFull][seed as usize % 4];
        let chaos = rng.below(60);
        let net = net(&mut rng, chaos);
        let (mut client, mut server, mut legs) = ends(&net);
        let n = rng.below(20_000) as usize;
        client.stream = rng.bytes(n);
        let n = rng.below(20_000) as usize;
        server.stream = rng.bytes(n);
        let disk = Disk {
            bytes: Rc::default(),
            limit: if plan == Plan::DiskFull {
                rng.below(40_000)
            } else {
                u64::MAX
            },
        };
        let mut rec = recorder(&disk);
        let mut scratch = vec![0u8; rng.upto(3000)];
        let mut pump = Pump::default();
        let villain = rng.below(2) as usize;
        let reset_step = rng.below(400);
        let mut outcome = Outcome::Idle;
        for step in 0..20_000u64 {
            // The applications: send, read (sometimes not at all: backpressure), close.
            for (i, app) in [&mut client, &mut server].into_iter().enumerate() {
                let n = rng.upto(3000);
                app.send(n);
                if rng.percent(70) {
                    let n = rng.upto(5000);
                    app.recv(n);
                }
                let bad = i == villain && step >= reset_step;
                match plan {
                    Plan::Reset if bad => app.abort(),
                    Plan::FinThenRst if bad => {
                        app.shutdown();
                        if step >= reset_step + 20 {
                            app.abort();
                        }
                    }
                    _ if app.all_sent() && rng.percent(10) => app.shutdown(),
                    _ => {}
                }
            }
            outcome = pump.forward(&mut legs, &mut rec, ID, &mut scratch);
            for d in 0..2 {
                assert!(pump.backlog_len(d) <= scratch.len(), "seed {seed}: backlog");
                if pump.backlog_len(d) > 0 {
                    *seen.entry("backlog").or_default() += 1;
                }
            }
            match outcome {
                Outcome::Idle => {}
                Outcome::Finished | Outcome::Reset => {
                    for leg in legs.iter_mut() {
                        if let Some(l) = leg.take() {
                            l.close(outcome == Outcome::Reset);
                        }
                    }
                    break;
                }
                Outcome::Stopped => break,
            }
        }
        let ending = match outcome {
            Outcome::Idle => "Idle",
            Outcome::Finished => "Finished",
            Outcome::Reset => "Reset",
            Outcome::Stopped => "Stopped",
        };
        *seen.entry(ending).or_default() += 1;
        // The applications take what is left for them.
        client.recv(usize::MAX);
        server.recv(usize::MAX);
        pump.release();
        assert_eq!(pump.backlog_len(0) + pump.backlog_len(1), 0);
        let finished = rec.finish();
        // A recorder that could not finish still holds buffered blocks: dropping it writes
        // them, as the engine's does when the session ends on the error.
        drop(rec);
        let cap = read_capture(&disk.bytes.borrow());
        let sent = [&client.stream[..client.sent], &server.stream[..server.sent]];
        let got = [&server.got, &client.got];
        for d in 0..2 {
            assert!(
                sent[d].starts_with(&cap.data[d]),
                "seed {seed} {plan:?}: recorded bytes of {d} are not what was sent, in order"
            );
            assert!(
                cap.data[d].starts_with(got[d]),
                "seed {seed} {plan:?}: direction {d} passed on bytes it did not record \
                 ({} received, {} recorded)",
                got[d].len(),
                cap.data[d].len()
            );
        }
        match plan {
            Plan::Clean => {
                assert_eq!(
                    outcome,
                    Outcome::Finished,
                    "seed {seed}: clean run unfinished"
                );
                for d in 0..2 {
                    assert_eq!(cap.data[d], sent[d], "seed {seed}: recorded {d}");
                    assert_eq!(got[d], sent[d], "seed {seed}: received {d}");
                    assert_eq!(cap.closes[d], [CloseKind::Fin], "seed {seed}: closes {d}");
                }
            }
            Plan::Reset | Plan::FinThenRst => {
                assert_ne!(outcome, Outcome::Idle, "seed {seed} {plan:?}: never ended");
                if outcome == Outcome::Reset {
                    assert_eq!(cap.summary.map(|s| s.resets), Some(1), "seed {seed}");
                    let rsts = cap.closes.iter().flatten();
                    assert_eq!(rsts.filter(|k| **k == CloseKind::Rst).count(), 1);
                }
            }
            Plan::DiskFull => {
                if finished.is_err() || outcome == Outcome::Stopped {
                    // Cut short: the file reads as truncated, and what it holds is whole.
                    assert!(cap.summary.is_none() || outcome != Outcome::Stopped);
                    continue;
                }
            }
        }
        assert!(
            finished.is_ok() && cap.sound,
            "seed {seed} {plan:?}: capture fails --check: {:?}",
            cap.problems
        );
    }
    for what in ["backlog", "Finished", "Reset", "Stopped"] {
        assert!(
            seen.get(what).copied().unwrap_or(0) >= 10,
            "{what}: {seen:?}"
        );
    }
}

/// A recorded request/response exchange of `turns` turns, chunked at random, closed by the
/// client's FIN then the server's.
fn exchange(rng: &mut Rng, turns: usize) -> (ConnScript, HashMap<u64, Vec<u8>>, [Vec<usize>; 2]) {
    let a = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 3), 40000);
    let b = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);
    let mut c = ConnScript {
        open: ConnOpen {
            id: 0,
            time_ns: 0,
            client: 1,
            client_addr: a.into(),
            server: 0,
            server_addr: b.into(),
            outcome: ConnOutcome::Established,
        },
        steps: [Vec::new(), Vec::new()],
        close: [None, None],
        total: [0, 0],
        after: Vec::new(),
    };
    let mut bytes = HashMap::new();
    // Per direction, the stream length at the end of each turn.
    let mut ends = [Vec::new(), Vec::new()];
    let mut off = 0u64;
    for _ in 0..turns {
        for (d, end) in ends.iter_mut().enumerate() {
            for _ in 0..rng.upto(3) {
                let n = rng.upto(3000);
                let data = rng.bytes(n);
                c.steps[d].push(Step {
                    offset: off,
                    len: data.len() as u32,
                    time_ns: off,
                    other_before: c.total[1 - d],
                    after_close: false,
                });
                c.total[d] += data.len() as u64;
                bytes.insert(off, data);
                off += 1;
            }
            end.push(c.total[d] as usize);
        }
    }
    for d in 0..2 {
        c.close[d] = Some(RecordedClose {
            kind: CloseKind::Fin,
            time_ns: 1 << 40,
            other_before: c.total[1 - d],
            after_close: d == 1,
        });
    }
    (c, bytes, ends)
}

fn stream(c: &ConnScript, bytes: &HashMap<u64, Vec<u8>>, d: usize) -> Vec<u8> {
    c.steps[d]
        .iter()
        .flat_map(|s| bytes[&s.offset].clone())
        .collect()
}

#[test]
fn play_seeded_simulations_keep_turns_and_record_each_byte_once() {
    for seed in 1..=300u64 {
        let mut rng = Rng::new(seed);
        let turns = rng.upto(6);
        let (script, recorded, turn_ends) = exchange(&mut rng, turns);
        // 0: live client, played server; 1: played client, live server; 2: both live.
        let mode = seed % 3;
        let live = [mode != 1, mode != 0];
        let chaos = rng.below(60);
        let net = net(&mut rng, chaos);
        let (mut client, mut server, mut legs) = ends(&net);
        client.stream = stream(&script, &recorded, 0);
        server.stream = stream(&script, &recorded, 1);
        if !live[0] {
            legs[0] = None;
        }
        if !live[1] {
            legs[1] = None;
        }
        let disk = Disk {
            bytes: Rc::default(),
            limit: u64::MAX,
        };
        let mut rec = recorder(&disk);
        let mut scratch = vec![0u8; rng.upto(4000)];
        let mut pump = Pump::default();
        let mut st = ConnReplay::new(0, live[0], live[1], 0);
        let mut report = ConnReport::default();
        let mut progress = [0u64; 2];
        let mut now = 0u64;
        let mut outcome = Outcome::Idle;
        for _ in 0..50_000 {
            // Live apps: the client sends turn i once it has all of answer i-1; the server
            // answers turn i once it has all of request i. Each shuts down when done.
            let turn_of = |got: usize, ends: &[usize]| ends.iter().filter(|&&e| e <= got).count();
            if live[0] {
                let done = turn_of(client.got.len(), &turn_ends[1]);
                let allowed = turn_ends[0]
                    .get(done)
                    .copied()
                    .unwrap_or(client.stream.len());
                let n = rng.upto(3000).min(allowed.saturating_sub(client.sent));
                client.send(n);
                if client.all_sent() && client.got.len() == server.stream.len() {
                    client.shutdown();
                }
                let n = rng.upto(5000);
                client.recv(n);
                // A played server answers turn i only after request i, whole.
                let answered = turn_of(client.got.len(), &turn_ends[1]);
                let asked = turn_of(client.sent, &turn_ends[0]);
                let partial = client.got.len() > turn_ends[1][..answered].last().map_or(0, |e| *e);
                assert!(
                    answered + partial as usize <= asked,
                    "seed {seed} mode {mode}: answer before its request"
                );
            }
            if live[1] {
                let done = turn_of(server.got.len(), &turn_ends[0]);
                let allowed = if done == 0 { 0 } else { turn_ends[1][done - 1] };
                let n = rng.upto(3000).min(allowed.saturating_sub(server.sent));
                server.send(n);
                let n = rng.upto(5000);
                server.recv(n);
                if server.all_sent() && server.got_eof {
                    server.shutdown();
                }
            }
            now += rng.below(20_000_000);
            let clock = Clock {
                now_ns: now,
                timing: None,
                start_ns: 0,
                step_timeout_ns: 1 << 50,
            };
            let mut fetch = |off: u64| Chunk::new(recorded[&off].clone());
            let mut conn = PlayConn {
                st: &mut st,
                script: &script,
                fetch: &mut fetch,
                report: &mut report,
                progress: &mut progress,
                clock,
            };
            conn.st.player.tick(now);
            outcome = pump.play(&mut legs, &mut conn, &mut rec, ID, &mut scratch);
            for side in 0..2 {
                assert!(
                    !pump.take_abort(side),
                    "seed {seed}: nothing recorded a reset"
                );
            }
            if outcome != Outcome::Idle {
                break;
            }
        }
        assert_eq!(
            outcome,
            Outcome::Finished,
            "seed {seed} mode {mode}: unfinished"
        );
        for leg in legs.iter_mut() {
            if let Some(l) = leg.take() {
                l.close(false);
            }
        }
        client.recv(usize::MAX);
        server.recv(usize::MAX);
        assert_eq!(st.player.diverged, [None, None], "seed {seed} mode {mode}");
        assert_eq!(report.step_timeouts, 0, "seed {seed} mode {mode}: forced");
        assert!(report.close_mismatch.is_none(), "seed {seed}: {report:?}");
        if live[0] {
            assert_eq!(client.got, server.stream, "seed {seed}: the client got");
            assert!(client.got_eof, "seed {seed}: the client saw no FIN");
        }
        if live[1] {
            assert_eq!(server.got, client.stream, "seed {seed}: the server got");
            assert!(server.got_eof, "seed {seed}: the server saw no FIN");
        }
        rec.finish().expect("finish");
        let cap = read_capture(&disk.bytes.borrow());
        assert_eq!(
            cap.data[0], client.stream,
            "seed {seed} mode {mode}: recorded c2s"
        );
        assert_eq!(
            cap.data[1], server.stream,
            "seed {seed} mode {mode}: recorded s2c"
        );
        for d in 0..2 {
            assert_eq!(cap.closes[d], [CloseKind::Fin], "seed {seed}: closes {d}");
        }
        assert!(
            cap.sound,
            "seed {seed}: capture fails --check: {:?}",
            cap.problems
        );
    }
}

/// A played RST closes the live receiver's leg abortively, recorded once.
#[test]
fn a_played_reset_aborts_the_live_leg_and_is_recorded_once() {
    let mut rng = Rng::new(7);
    let (mut script, recorded, _) = exchange(&mut rng, 1);
    script.close[1] = Some(RecordedClose {
        kind: CloseKind::Rst,
        time_ns: 1 << 40,
        other_before: script.total[0],
        after_close: false,
    });
    script.close[0] = None;
    let net = net(&mut rng, 0);
    let (mut client, _server, mut legs) = ends(&net);
    legs[1] = None;
    client.stream = stream(&script, &recorded, 0);
    let disk = Disk {
        bytes: Rc::default(),
        limit: u64::MAX,
    };
    let mut rec = recorder(&disk);
    let mut scratch = vec![0u8; 4096];
    let mut pump = Pump::default();
    let mut st = ConnReplay::new(0, true, false, 0);
    let mut report = ConnReport::default();
    let mut progress = [0; 2];
    let mut aborted = false;
    for i in 0..200 {
        client.send(4096);
        client.recv(usize::MAX);
        let mut fetch = |off: u64| Chunk::new(recorded[&off].clone());
        let mut conn = PlayConn {
            st: &mut st,
            script: &script,
            fetch: &mut fetch,
            report: &mut report,
            progress: &mut progress,
            clock: Clock {
                now_ns: i,
                timing: None,
                start_ns: 0,
                step_timeout_ns: 1 << 50,
            },
        };
        let out = pump.play(&mut legs, &mut conn, &mut rec, ID, &mut scratch);
        if pump.take_abort(0) {
            legs[0].take().expect("the client leg").close(true);
            aborted = true;
        }
        if out == Outcome::Finished || aborted {
            break;
        }
    }
    assert!(aborted, "the played RST did not abort the client's leg");
    client.recv(usize::MAX);
    assert!(client.got_rst);
    rec.finish().expect("finish");
    let cap = read_capture(&disk.bytes.borrow());
    assert_eq!(cap.closes[1], [CloseKind::Rst]);
    assert_eq!(cap.summary.map(|s| s.resets), Some(1));
}
