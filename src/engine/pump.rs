//! The pump: moves a connection's bytes, both directions, between its two kernel sockets, for
//! record and replay alike. It owns what waits to be written, the EAGAIN/EINTR/close/reset
//! handling and what goes to the recorder; it owns no socket, no clock and no poll: the loop
//! hands it the legs (anything that implements [`Socket`]: kernel sockets in the engine,
//! in-memory ones in the simulations below) and closes the legs the returned [`Outcome`] says.
//!
//! Sides: 0 is the client leg (the accepted socket), 1 the server leg (the upstream socket).
//! Direction d (0: client to server) is read from side d and written to side 1 - d.
//!
//! Each direction behaves one of two ways:
//! - *forward* (`plg record`): read a chunk, record it, write it on. Bounded: at most one read's
//!   worth waits when the reader is slower, and nothing more is read until it has gone, so a
//!   slow reader slows the sender (backpressure). A FIN is recorded and passed on
//!   (`shutdown(SHUT_WR)`) once the backlog is written; a read or write error is a reset.
//! - *play* (`plg replay`, driven by the sans-IO [`Player`](super::player::Player) through
//!   [`Play`]): what the live sender of d sends is read, recorded and given to the player, never
//!   forwarded; the live receiver of d is written the recorded chunks the player releases, and
//!   the recorded close at its place. Bytes plg plays for a played sender are recorded before
//!   they go.
//!
//! Every chunk is recorded before it is written on; when the recorder says no (the capture
//! cannot be written), the chunk is not passed on and the pump stops. TCP urgent data
//! (`MSG_OOB`) is read inline (the sockets have SO_OOBINLINE) and, when the source is at the
//! urgent mark, the urgent byte is sent on as urgent data again.
//!
//! No per-byte work and one copy at most: a chunk is read into the caller's scratch buffer,
//! recorded from there and written from there; only what the destination does not take at
//! once is copied into the direction's backlog.

use super::player::Chunk;
use super::recorder::Recorder;
use super::sink::Close;
use crate::format::{CloseKind, ConnId, Direction};
use std::io::{self, Read, Write};
use std::net::Shutdown;

/// What the pump needs of a socket besides reading and writing: `shutdown(SHUT_WR)` and TCP
/// urgent data.
pub trait Socket: Read + Write {
    fn shutdown_write(&mut self) -> io::Result<()>;
    /// The next byte to read is the urgent byte.
    fn at_urgent_mark(&self) -> bool {
        false
    }
    /// Sends one byte as urgent data; Ok(false) if it would block.
    fn send_urgent(&mut self, _byte: u8) -> io::Result<bool> {
        Ok(false)
    }
}

impl Socket for mio::net::TcpStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
    fn at_urgent_mark(&self) -> bool {
        crate::os::sockets::at_urgent_mark(self)
    }
    fn send_urgent(&mut self, byte: u8) -> io::Result<bool> {
        crate::os::sockets::send_urgent(self, byte)
    }
}

pub fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

pub fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

/// What the replay tells the pump to do for the live receiver of a direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cue {
    /// Write these recorded bytes; `record`: plg plays the sender, so they are recorded first.
    Write { bytes: Chunk, record: bool },
    /// Close as recorded (FIN: shutdown of writing; RST: an abortive close of the leg).
    Close { kind: CloseKind, record: bool },
    /// Nothing to play now (or any more).
    Wait,
}

/// A connection's replay behaviour, as the pump sees it (implemented over the sans-IO
/// `Player` by `replay::PlayConn`). Directions are 0 (client to server) and 1.
pub trait Play {
    /// Still expecting bytes or a close from the live sender of d.
    fn reading(&self, d: usize) -> bool;
    /// The live sender of d sent these bytes (already recorded).
    fn sent(&mut self, d: usize, bytes: &[u8]);
    /// The live sender of d closed (already recorded).
    fn closed(&mut self, d: usize, kind: CloseKind);
    /// Writing to a live receiver failed: it is gone.
    fn receiver_gone(&mut self);
    /// What to play next to the live receiver of d; a returned Write or Close is taken as done.
    fn next(&mut self, d: usize) -> Cue;
    /// Something moved in this pump (a read, a write, a close).
    fn progressed(&mut self);
    /// Everything is read and played.
    fn done(&self) -> bool;
}

/// What a pump left to the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing more can move now.
    Idle,
    /// Both ways are over (every FIN passed on): close both legs.
    Finished,
    /// A side reset the connection (recorded): close both legs with RST.
    Reset,
    /// The recorder refused a chunk (capture write error): nothing more moves.
    Stopped,
}

/// How one direction's turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    Idle,
    SourceReset,
    DestReset,
    Stopped,
}

/// State of one direction (client to server, or server to client).
#[derive(Debug, Default)]
struct Half {
    /// Forward: bytes read but not yet written to the destination, from `pos`.
    backlog: Vec<u8>,
    /// Play: the recorded chunk being written, from `pos`.
    played: Option<Chunk>,
    pos: usize,
    /// Forward: the source sent FIN.
    eof: bool,
    /// Forward: the FIN was passed on (`shutdown(SHUT_WR)` on the destination).
    shut: bool,
}

impl Half {
    fn pending(&self) -> &[u8] {
        match &self.played {
            Some(c) => &c[self.pos..],
            None => &self.backlog[self.pos..],
        }
    }

    fn clear(&mut self) {
        self.backlog.clear();
        self.played = None;
        self.pos = 0;
    }

    /// FIN seen, passed on, nothing waiting.
    fn done(&self) -> bool {
        self.eof && self.shut && self.pending().is_empty()
    }
}

/// Both directions of one connection.
#[derive(Debug, Default)]
pub struct Pump {
    half: [Half; 2],
    /// Legs a played RST closes: the loop closes them abortively after the pump.
    abort: [bool; 2],
    moved: bool,
}

/// Direction d as the format names it.
pub fn dir_of(d: usize) -> Direction {
    if d == 0 {
        Direction::ClientToServer
    } else {
        Direction::ServerToClient
    }
}

/// Records a close; a reset is counted (once per connection: after it nothing is pumped).
pub fn record_close<W: Write + Close>(
    rec: &mut Recorder<W>,
    id: ConnId,
    d: usize,
    kind: CloseKind,
) {
    if kind == CloseKind::Rst {
        rec.count_reset();
    }
    rec.conn_close(id, dir_of(d), kind);
}

/// One read, EINTR retried: Ok(n) (0 is FIN), None when it would block, Err on a reset.
fn read_some<S: Socket>(src: &mut S, buf: &mut [u8]) -> Result<Option<usize>, ()> {
    loop {
        match src.read(buf) {
            Ok(n) => return Ok(Some(n)),
            Err(e) if interrupted(&e) => {}
            Err(e) if would_block(&e) => return Ok(None),
            Err(_) => return Err(()),
        }
    }
}

/// Writes as much of `buf` as the destination takes: Ok(written), Err on a reset.
fn write_some<S: Socket>(dst: &mut S, buf: &[u8]) -> Result<usize, ()> {
    let mut written = 0;
    while written < buf.len() {
        match dst.write(&buf[written..]) {
            Ok(n) => written += n,
            Err(e) if interrupted(&e) => {}
            Err(e) if would_block(&e) => break,
            Err(_) => return Err(()),
        }
    }
    Ok(written)
}

impl Pump {
    /// Frees the buffers (the connection is over).
    pub fn release(&mut self) {
        self.half = Default::default();
    }

    /// Bytes waiting to be written in direction d.
    pub fn backlog_len(&self, d: usize) -> usize {
        self.half[d].pending().len()
    }

    /// A played RST asked for leg `side` to be closed abortively (asked once).
    pub fn take_abort(&mut self, side: usize) -> bool {
        std::mem::take(&mut self.abort[side])
    }

    fn leg<S>(&self, legs: &[Option<S>; 2], side: usize) -> bool {
        legs[side].is_some() && !self.abort[side]
    }

    /// Record: moves bytes both ways until nothing more can move, recording every chunk before
    /// it is written on. `scratch` bounds a single read.
    pub fn forward<S: Socket, W: Write + Close>(
        &mut self,
        legs: &mut [Option<S>; 2],
        rec: &mut Recorder<W>,
        id: ConnId,
        scratch: &mut [u8],
    ) -> Outcome {
        for d in 0..2 {
            match self.turn(d, legs, None, rec, id, scratch) {
                Turn::Idle => {}
                Turn::Stopped => return Outcome::Stopped,
                Turn::SourceReset => {
                    record_close(rec, id, d, CloseKind::Rst);
                    return Outcome::Reset;
                }
                // The destination reset: as if its own side had sent the RST.
                Turn::DestReset => {
                    record_close(rec, id, 1 - d, CloseKind::Rst);
                    return Outcome::Reset;
                }
            }
        }
        if self.half[0].done() && self.half[1].done() {
            Outcome::Finished
        } else {
            Outcome::Idle
        }
    }

    /// Replay: reads every live sender (recorded, given to `play`), then writes each live
    /// receiver what `play` releases. Legs may be missing (a played side has none).
    pub fn play<S: Socket, W: Write + Close>(
        &mut self,
        legs: &mut [Option<S>; 2],
        play: &mut dyn Play,
        rec: &mut Recorder<W>,
        id: ConnId,
        scratch: &mut [u8],
    ) -> Outcome {
        self.moved = false;
        let mut out = Outcome::Idle;
        'run: {
            for d in 0..2 {
                if self.read_live(d, legs, play, rec, id, scratch) == Turn::Stopped {
                    out = Outcome::Stopped;
                    break 'run;
                }
            }
            for d in 0..2 {
                match self.turn(d, legs, Some(&mut *play), rec, id, scratch) {
                    Turn::Stopped => {
                        out = Outcome::Stopped;
                        break 'run;
                    }
                    Turn::DestReset => play.receiver_gone(),
                    Turn::Idle | Turn::SourceReset => {}
                }
            }
            if play.done() {
                out = Outcome::Finished;
            }
        }
        if self.moved {
            play.progressed();
        }
        out
    }

    /// Play: what the live sender of d sends is read, recorded and compared; never forwarded.
    fn read_live<S: Socket, W: Write + Close>(
        &mut self,
        d: usize,
        legs: &mut [Option<S>; 2],
        play: &mut dyn Play,
        rec: &mut Recorder<W>,
        id: ConnId,
        scratch: &mut [u8],
    ) -> Turn {
        while play.reading(d) {
            if !self.leg(legs, d) {
                break;
            }
            let Some(src) = legs[d].as_mut() else { break };
            let kind = match read_some(src, scratch) {
                Ok(None) => break,
                Ok(Some(0)) => CloseKind::Fin,
                Ok(Some(n)) => {
                    self.moved = true;
                    if !rec.data(id, dir_of(d), &scratch[..n]) {
                        return Turn::Stopped;
                    }
                    play.sent(d, &scratch[..n]);
                    continue;
                }
                Err(()) => CloseKind::Rst,
            };
            self.moved = true;
            record_close(rec, id, d, kind);
            play.closed(d, kind);
        }
        Turn::Idle
    }

    /// Direction d's turn: write what waits, then refill (forward: read the source; play: ask
    /// the player) until something would block.
    fn turn<S: Socket, W: Write + Close>(
        &mut self,
        d: usize,
        legs: &mut [Option<S>; 2],
        mut play: Option<&mut dyn Play>,
        rec: &mut Recorder<W>,
        id: ConnId,
        scratch: &mut [u8],
    ) -> Turn {
        let forward = play.is_none();
        if !self.leg(legs, 1 - d) || (forward && !self.leg(legs, d)) {
            return Turn::Idle;
        }
        let [down, up] = legs;
        let (src, dst) = if d == 0 { (down, up) } else { (up, down) };
        let dst = dst.as_mut().expect("checked above");
        let half = &mut self.half[d];
        loop {
            // 1. What waits goes first.
            let pending = half.pending();
            if !pending.is_empty() {
                match write_some(dst, pending) {
                    Ok(n) => {
                        self.moved |= n > 0;
                        half.pos += n;
                        if !half.pending().is_empty() {
                            return Turn::Idle;
                        }
                    }
                    Err(()) => return Turn::DestReset,
                }
            }
            half.clear();
            // 2. Refill.
            let Some(play) = play.as_deref_mut() else {
                let src = src.as_mut().expect("checked above");
                if half.eof {
                    if !half.shut {
                        half.shut = true;
                        // ENOTCONN here means the destination is already gone; its own
                        // direction will report that.
                        let _ = dst.shutdown_write();
                    }
                    return Turn::Idle;
                }
                // At the urgent mark the next byte is the urgent one (the read before stopped
                // short of it): pass it on as urgent data, so the receiver sees SIGURG/MSG_OOB.
                let urgent = src.at_urgent_mark();
                let want = if urgent { 1 } else { scratch.len() };
                match read_some(src, &mut scratch[..want]) {
                    Ok(None) => return Turn::Idle,
                    Ok(Some(0)) => {
                        half.eof = true;
                        record_close(rec, id, d, CloseKind::Fin);
                        // Passed on at the top of the loop (nothing waits).
                    }
                    Ok(Some(n)) => {
                        if !rec.data(id, dir_of(d), &scratch[..n]) {
                            return Turn::Stopped;
                        }
                        if urgent && n == 1 {
                            match dst.send_urgent(scratch[0]) {
                                Ok(true) => {}
                                // Urgency cannot be kept now: the byte still goes, in order.
                                Ok(false) => half.backlog.push(scratch[0]),
                                Err(_) => return Turn::DestReset,
                            }
                            continue;
                        }
                        match write_some(dst, &scratch[..n]) {
                            Ok(w) if w == n => {}
                            Ok(w) => {
                                half.backlog.extend_from_slice(&scratch[w..n]);
                                return Turn::Idle;
                            }
                            Err(()) => return Turn::DestReset,
                        }
                    }
                    Err(()) => return Turn::SourceReset,
                }
                continue;
            };
            match play.next(d) {
                Cue::Wait => return Turn::Idle,
                Cue::Write { bytes, record } => {
                    self.moved = true;
                    if record && !rec.data(id, dir_of(d), &bytes) {
                        return Turn::Stopped;
                    }
                    half.played = Some(bytes);
                }
                Cue::Close { kind, record } => {
                    self.moved = true;
                    if record {
                        record_close(rec, id, d, kind);
                    }
                    if kind == CloseKind::Fin {
                        let _ = dst.shutdown_write();
                    } else {
                        self.abort[1 - d] = true;
                    }
                    return Turn::Idle;
                }
            }
        }
    }
}

#[cfg(test)]
pub(super) mod sim;
