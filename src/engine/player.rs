//! The replay of one connection as a state machine with no I/O: told what the live side sent
//! and how it closed, it says what to play next and whether the live side still matches the
//! recording. The pump (`pump.rs`, through `replay::PlayConn`) does the reading and writing
//! around it.
//!
//! Per direction d (0: client to server, 1: server to client):
//! - if d's sender is live, what it sends is compared with the recorded bytes of d;
//! - if d's receiver is live, it is given the recorded chunks of d in order, each once the
//!   other side has taken its turn (below), then the recorded close at its place.
//!
//! Turns, so that a live side whose messages differ in length from the recording stays in
//! step: a chunk of d recorded after the other side o had sent B bytes is released when
//! - o is played or closed; or
//! - o sent, since the previous chunk of d was released, as many bytes as it had between
//!   the two in the recording (exact lengths, pipelined requests: the recorded count is
//!   consumed, extra bytes count for the next turn); or
//! - o had a turn there in the recording, o has sent something since, and has been quiet for
//!   the quiet period: it finished a shorter (or longer) turn and now waits for the answer.
//!   Its whole turn is then consumed.
//!
//! Otherwise the step waits, and the caller forces it after the step timeout. Time is an
//! input ([`Player::tick`]); the player reads no clock.
//!
//! Recorded bytes are fetched on demand by Data-block offset (`fetch`), so the player holds at
//! most one recorded chunk per direction.

use super::script::{ConnScript, Step};
use crate::format::CloseKind;
use std::rc::Rc;

/// A recorded chunk, shared between the comparison of a live sender and the playing of the
/// same bytes (both happen when both sides are live).
pub type Chunk = Rc<Vec<u8>>;

/// What to do next for the live receiver of a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Write this recorded chunk (fetch its bytes by `step.offset`).
    Write(Step),
    /// Close as recorded: FIN (shutdown of writing) or RST.
    Close(CloseKind),
    /// Not yet: the live side has not caught up (or the clock, with `--timing`).
    Wait,
    /// Nothing more to play this way.
    Done,
}

/// Compares a live stream with its recording, chunk by chunk.
#[derive(Debug, Default)]
struct Matcher {
    /// Next recorded step to fetch for comparison.
    step: usize,
    chunk: Chunk,
    pos: usize,
}

#[derive(Debug)]
pub struct Player {
    live_sender: [bool; 2],
    live_receiver: [bool; 2],
    next: [usize; 2],
    /// Bytes each live sender has sent.
    sent: [u64; 2],
    /// The live sender closed (FIN, or RST: then both directions are over).
    eof: [bool; 2],
    close_played: [bool; 2],
    matcher: [Matcher; 2],
    /// First offset where a live sender sent something else than recorded.
    pub diverged: [Option<u64>; 2],
    /// Steps played without their condition met, because the live side took too long.
    pub forced_steps: u32,
    /// Per direction d: the live bytes of the other side, and its recorded count
    /// (`other_before`), when the previous chunk of d was released.
    base_live: [u64; 2],
    base_rec: [u64; 2],
    /// The clock (ns, any origin) as last given by `tick`, and when each live sender last sent.
    now: u64,
    last_sent: [u64; 2],
    quiet_ns: u64,
}

/// How long a live side that sent part of a turn must be quiet before it is taken as done.
pub const DEFAULT_QUIET_NS: u64 = 50_000_000;

impl Player {
    pub fn new(client_live: bool, server_live: bool) -> Player {
        Player {
            live_sender: [client_live, server_live],
            live_receiver: [server_live, client_live],
            next: [0, 0],
            sent: [0, 0],
            eof: [false, false],
            close_played: [false, false],
            matcher: [Matcher::default(), Matcher::default()],
            diverged: [None, None],
            forced_steps: 0,
            base_live: [0, 0],
            base_rec: [0, 0],
            now: 0,
            last_sent: [0, 0],
            quiet_ns: DEFAULT_QUIET_NS,
        }
    }

    /// The quiet period after which a live side that sent part of its turn is taken as done.
    pub fn with_quiet(mut self, quiet_ns: u64) -> Player {
        self.quiet_ns = quiet_ns;
        self
    }

    /// The time now (ns, monotonic, any origin).
    pub fn tick(&mut self, now_ns: u64) {
        self.now = now_ns;
    }

    pub fn live_sender(&self, d: usize) -> bool {
        self.live_sender[d]
    }

    pub fn live_receiver(&self, d: usize) -> bool {
        self.live_receiver[d]
    }

    /// Still expecting bytes or a close from the live sender of d.
    pub fn reading(&self, d: usize) -> bool {
        self.live_sender[d] && !self.eof[d]
    }

    /// The live sender of d sent `bytes`: compares them with the recording.
    pub fn sent(
        &mut self,
        d: usize,
        bytes: &[u8],
        script: &ConnScript,
        fetch: &mut dyn FnMut(u64) -> Chunk,
    ) {
        let base = self.sent[d];
        self.sent[d] += bytes.len() as u64;
        if !bytes.is_empty() {
            self.last_sent[d] = self.now;
        }
        if self.diverged[d].is_some() {
            return;
        }
        let m = &mut self.matcher[d];
        let mut consumed = 0usize;
        while consumed < bytes.len() {
            if m.pos == m.chunk.len() {
                let Some(step) = script.steps[d].get(m.step) else {
                    // More than was recorded.
                    self.diverged[d] = Some(base + consumed as u64);
                    return;
                };
                m.step += 1;
                m.chunk = fetch(step.offset);
                m.pos = 0;
                continue;
            }
            let rest = &bytes[consumed..];
            let n = (m.chunk.len() - m.pos).min(rest.len());
            let want = &m.chunk[m.pos..m.pos + n];
            // Slices compare with memcmp; the byte-by-byte search runs only on a mismatch.
            if want != &rest[..n] {
                let off = want.iter().zip(rest).position(|(a, b)| a != b).unwrap_or(0);
                self.diverged[d] = Some(base + (consumed + off) as u64);
                return;
            }
            m.pos += n;
            consumed += n;
        }
    }

    /// The live sender of d closed. Returns a description when that is not what it did in
    /// the recording.
    pub fn closed(&mut self, d: usize, kind: CloseKind, script: &ConnScript) -> Option<String> {
        self.eof[d] = true;
        if kind == CloseKind::Rst {
            // A reset ends the connection both ways: nothing more can be read or played.
            self.eof = [true, true];
            self.close_played = [true, true];
        }
        if self.diverged[d].is_none() && self.sent[d] < script.total[d] {
            // It stopped short of what was recorded.
            self.diverged[d] = Some(self.sent[d]);
        }
        let recorded = script.close[d].map(|c| c.kind);
        (recorded != Some(kind)).then(|| {
            let who = if d == 0 { "client" } else { "server" };
            format!(
                "{who} closed with {kind:?}, recorded {}",
                recorded.map_or("no close".to_string(), |k| format!("{k:?}"))
            )
        })
    }

    /// Writing to the live receiver failed: it is gone, both ways.
    pub fn receiver_gone(&mut self) {
        self.eof = [true, true];
        self.close_played = [true, true];
    }

    /// What to play next to the live receiver of d. `due(time)` says whether a recorded time
    /// has come (always true without `--timing`); `forced` lets a waiting step go anyway.
    /// A returned `Write` or `Close` is taken as done.
    pub fn next(
        &mut self,
        d: usize,
        script: &ConnScript,
        due: &dyn Fn(u64) -> bool,
        forced: bool,
    ) -> Next {
        if !self.live_receiver[d] || self.close_played[d] {
            return Next::Done;
        }
        let o = 1 - d;
        let (time, before, after_close) = match script.steps[d].get(self.next[d]) {
            Some(step) => (step.time_ns, step.other_before, step.after_close),
            None => match script.close[d] {
                Some(close) => (close.time_ns, close.other_before, close.after_close),
                None => return Next::Done,
            },
        };
        if !due(time) {
            return Next::Wait;
        }
        // Recorded after the other side closed: not before the live one has closed too (a
        // peer that fully closed would answer early bytes with a reset it never sent).
        let close_pending = after_close && self.live_sender[o] && !self.eof[o];
        if close_pending && !forced {
            return Next::Wait;
        }
        // The turn rule (module header).
        let want = before.saturating_sub(self.base_rec[d]);
        let got = self.sent[o].saturating_sub(self.base_live[d]);
        let quiet = self.now.saturating_sub(self.last_sent[o]) >= self.quiet_ns;
        if close_pending {
            self.forced_steps += 1;
            self.base_live[d] = self.sent[o];
        } else if !self.live_sender[o] || self.eof[o] || got >= want {
            self.base_live[d] += want.min(got);
        } else if want > 0 && got > 0 && quiet {
            self.base_live[d] = self.sent[o];
        } else if forced {
            self.forced_steps += 1;
            self.base_live[d] = self.sent[o];
        } else {
            return Next::Wait;
        }
        self.base_rec[d] = before;
        match script.steps[d].get(self.next[d]) {
            Some(step) => {
                self.next[d] += 1;
                Next::Write(*step)
            }
            None => {
                let kind = script.close[d].expect("checked above").kind;
                self.close_played[d] = true;
                if kind == CloseKind::Rst {
                    self.close_played = [true, true];
                }
                Next::Close(kind)
            }
        }
    }

    /// A live sender has not yet sent as much as it did in the recording, or has not closed
    /// although it did in the recording: the replay is still waiting to judge it.
    pub fn awaiting_live(&self, script: &ConnScript) -> bool {
        (0..2).any(|d| {
            self.live_sender[d]
                && !self.eof[d]
                && self.diverged[d].is_none()
                && (self.sent[d] < script.total[d] || script.close[d].is_some())
        })
    }

    /// Every live sender closed and everything recorded was played.
    pub fn done(&self) -> bool {
        (0..2).all(|d| {
            (!self.live_sender[d] || self.eof[d])
                && (!self.live_receiver[d] || self.close_played[d])
        })
    }
}

/// How far into a connection's first chunks a recorded echo is looked for.
pub const ECHO_WINDOW: usize = 16;

/// The first recorded chunk of a direction, adjusted for the live peer: where the recording
/// shows it echoing its peer's first bytes (same offset, same byte, within the first
/// [`ECHO_WINDOW`] bytes: a DNS id over TCP, a request number), it echoes the live peer's
/// bytes instead. Binary answers only: in text, equal bytes at equal offsets are chance.
/// `None` when nothing changes.
pub fn echo_first(answer: &[u8], recorded_ask: &[u8], live_ask: &[u8]) -> Option<Vec<u8>> {
    let n = ECHO_WINDOW
        .min(answer.len())
        .min(recorded_ask.len())
        .min(live_ask.len());
    let binary = answer[..answer.len().min(64)]
        .iter()
        .any(|&b| b < 0x09 || (0x0e..0x20).contains(&b));
    if !binary {
        return None;
    }
    let mut out = None;
    for k in 0..n {
        if answer[k] == recorded_ask[k] && live_ask[k] != recorded_ask[k] {
            out.get_or_insert_with(|| answer.to_vec())[k] = live_ask[k];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::script::Close;
    use crate::format::{ConnOpen, Outcome};
    use std::collections::HashMap;
    use std::net::{Ipv4Addr, SocketAddrV4};

    /// A recorded request/response exchange: (direction, bytes) in recorded order, then FIN
    /// from the client, then from the server. Offsets are the chunk's index.
    fn script(chunks: &[(usize, &[u8])]) -> (ConnScript, HashMap<u64, Vec<u8>>) {
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
                outcome: Outcome::Established,
            },
            steps: [Vec::new(), Vec::new()],
            close: [None, None],
            total: [0, 0],
            after: Vec::new(),
        };
        let mut bytes = HashMap::new();
        for (i, (d, data)) in chunks.iter().enumerate() {
            c.steps[*d].push(Step {
                offset: i as u64,
                len: data.len() as u32,
                time_ns: i as u64,
                other_before: c.total[1 - d],
                after_close: false,
            });
            c.total[*d] += data.len() as u64;
            bytes.insert(i as u64, data.to_vec());
        }
        for d in 0..2 {
            c.close[d] = Some(Close {
                kind: CloseKind::Fin,
                time_ns: 99,
                other_before: c.total[1 - d],
                after_close: d == 1,
            });
        }
        (c, bytes)
    }

    const HTTP: &[(usize, &[u8])] = &[
        (0, b"GET /a HTTP/1.1\r\n\r\n"),
        (1, b"HTTP/1.1 200 OK\r\n"),
        (1, b"\r\nhello"),
        (0, b"GET /b HTTP/1.1\r\n\r\n"),
        (1, b"HTTP/1.1 404 Not Found\r\n\r\n"),
    ];

    /// Two cores against each other: a player for a played server and one for a played
    /// client, each side's output fed to the other as what its live peer sent. What each
    /// receives must be the recording, in order, with no divergence and no forced step.
    #[test]
    fn a_played_client_and_a_played_server_replay_the_recording_to_each_other() {
        let (s, bytes) = script(HTTP);
        let mut fetch = |off: u64| Rc::new(bytes[&off].clone());
        let always = |_: u64| true;
        // `server_side` plays the server to a live client; `client_side` plays the client to
        // a live server. Each one's writes are the other's live input.
        let mut server_side = Player::new(true, false);
        let mut client_side = Player::new(false, true);
        let mut got = [Vec::new(), Vec::new()];
        for _ in 0..20 {
            let mut moved = false;
            for (d, got) in got.iter_mut().enumerate() {
                // Direction 0 is played by client_side into server_side, 1 the other way.
                let (from, to) = if d == 0 {
                    (&mut client_side, &mut server_side)
                } else {
                    (&mut server_side, &mut client_side)
                };
                loop {
                    match from.next(d, &s, &always, false) {
                        Next::Write(step) => {
                            let b = fetch(step.offset);
                            to.sent(d, &b, &s, &mut fetch);
                            got.extend_from_slice(&b);
                        }
                        Next::Close(k) => assert!(to.closed(d, k, &s).is_none()),
                        Next::Wait | Next::Done => break,
                    }
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        let want = |d: usize| -> Vec<u8> {
            HTTP.iter()
                .filter(|(x, _)| *x == d)
                .flat_map(|(_, b)| b.to_vec())
                .collect()
        };
        assert_eq!(got[0], want(0));
        assert_eq!(got[1], want(1));
        assert!(server_side.done() && client_side.done());
        assert_eq!(server_side.diverged, [None, None]);
        assert_eq!(client_side.diverged, [None, None]);
        assert_eq!(server_side.forced_steps + client_side.forced_steps, 0);
    }

    #[test]
    fn a_response_waits_for_its_request() {
        let (s, bytes) = script(HTTP);
        let mut fetch = |off: u64| Rc::new(bytes[&off].clone());
        let always = |_: u64| true;
        let mut p = Player::new(true, false);
        assert_eq!(p.next(1, &s, &always, false), Next::Wait);
        // Half the request is not enough.
        p.sent(0, b"GET /a HTTP", &s, &mut fetch);
        assert_eq!(p.next(1, &s, &always, false), Next::Wait);
        p.sent(0, b"/1.1\r\n\r\n", &s, &mut fetch);
        assert!(matches!(p.next(1, &s, &always, false), Next::Write(st) if st.offset == 1));
        assert!(matches!(p.next(1, &s, &always, false), Next::Write(st) if st.offset == 2));
        assert_eq!(p.next(1, &s, &always, false), Next::Wait);
        // A step that waited too long is forced and counted.
        assert!(matches!(p.next(1, &s, &always, true), Next::Write(st) if st.offset == 4));
        assert_eq!(p.forced_steps, 1);
    }

    #[test]
    fn divergence_is_found_at_the_first_different_byte_across_chunks() {
        let (s, bytes) = script(HTTP);
        let mut fetch = |off: u64| Rc::new(bytes[&off].clone());
        let mut p = Player::new(true, false);
        p.sent(0, b"GET /a HTTP/1.1\r\n\r\nGET /", &s, &mut fetch);
        assert_eq!(p.diverged[0], None);
        p.sent(0, b"c", &s, &mut fetch);
        assert_eq!(p.diverged[0], Some(24));
        // More than recorded diverges where the recording ends.
        let mut p = Player::new(true, false);
        p.sent(
            0,
            b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n!",
            &s,
            &mut fetch,
        );
        assert_eq!(p.diverged[0], Some(38));
        // Less than recorded diverges where the live side stopped.
        let mut p = Player::new(true, false);
        p.sent(0, b"GET /a HTTP/1.1\r\n\r\n", &s, &mut fetch);
        assert!(p.closed(0, CloseKind::Fin, &s).is_none());
        assert_eq!(p.diverged[0], Some(19));
    }

    #[test]
    fn a_reset_ends_both_ways_and_is_reported_when_not_recorded() {
        let (s, bytes) = script(HTTP);
        let mut fetch = |off: u64| Rc::new(bytes[&off].clone());
        let mut p = Player::new(true, false);
        p.sent(0, b"GET /a HTTP/1.1\r\n\r\n", &s, &mut fetch);
        let m = p
            .closed(0, CloseKind::Rst, &s)
            .expect("recorded FIN, not RST");
        assert!(m.contains("Rst") && m.contains("Fin"), "{m}");
        assert!(p.done());
        assert_eq!(p.next(1, &s, &|_| true, false), Next::Done);
    }

    /// Plays a recorded server to a live client that sends `live` requests (one per turn,
    /// each followed by a quiet period), and returns the offsets played and forced steps.
    fn serve(chunks: &[(usize, &[u8])], live: &[&[u8]], pipelined: bool) -> (Vec<u64>, u32) {
        let (s, bytes) = script(chunks);
        let mut fetch = |off: u64| Rc::new(bytes[&off].clone());
        let always = |_: u64| true;
        let mut p = Player::new(true, false);
        let mut now = 0u64;
        let mut played = Vec::new();
        let drain = |p: &mut Player, now: u64, played: &mut Vec<u64>| {
            p.tick(now);
            while let Next::Write(st) = p.next(1, &s, &always, false) {
                played.push(st.offset);
            }
        };
        if pipelined {
            let all: Vec<u8> = live.iter().flat_map(|r| r.to_vec()).collect();
            p.tick(now);
            p.sent(0, &all, &s, &mut fetch);
            drain(&mut p, now, &mut played);
        } else {
            for req in live {
                p.tick(now);
                p.sent(0, req, &s, &mut fetch);
                drain(&mut p, now, &mut played);
                // The live client now waits for its answer: time passes, it stays quiet.
                now += DEFAULT_QUIET_NS / 2;
                drain(&mut p, now, &mut played);
                now += DEFAULT_QUIET_NS;
                drain(&mut p, now, &mut played);
            }
        }
        (played, p.forced_steps)
    }

    const MYSQLISH: &[(usize, &[u8])] = &[
        (1, b"greeting"),
        (0, b"login pid=12345"),
        (1, b"ok"),
        (0, b"query 1"),
        (1, b"rows 1"),
        (0, b"quit"),
    ];

    /// Regression: bytes a server sent after the client's FIN in the recording were played
    /// as soon as the client had sent its last byte, before it closed; a client that then
    /// closed fully answered them with a reset ("client closed with Rst, recorded Fin").
    #[test]
    fn bytes_recorded_after_the_peer_closed_wait_for_the_live_peer_to_close() {
        let (mut s, bytes) = script(&[(0, b"bye"), (1, b"late")]);
        s.steps[1][0].after_close = true;
        let mut fetch = |off: u64| Rc::new(bytes[&off].clone());
        let mut p = Player::new(true, false);
        p.sent(0, b"bye", &s, &mut fetch);
        assert_eq!(p.next(1, &s, &|_| true, false), Next::Wait);
        assert!(p.closed(0, CloseKind::Fin, &s).is_none());
        assert!(matches!(p.next(1, &s, &|_| true, false), Next::Write(st) if st.offset == 1));
    }

    #[test]
    fn identical_requests_are_answered_at_once_without_waiting_for_quiet() {
        let (s, bytes) = script(MYSQLISH);
        let mut fetch = |off: u64| Rc::new(bytes[&off].clone());
        let mut p = Player::new(true, false);
        p.tick(0);
        assert!(matches!(p.next(1, &s, &|_| true, false), Next::Write(st) if st.offset == 0));
        p.sent(0, b"login pid=12345", &s, &mut fetch);
        // No time has passed: the count alone releases the answer.
        assert!(matches!(p.next(1, &s, &|_| true, false), Next::Write(st) if st.offset == 2));
    }

    /// Regression: a request one byte shorter than recorded (a pid with fewer digits) held
    /// every later answer for the whole step timeout.
    #[test]
    fn a_shorter_turn_is_answered_after_the_quiet_period_and_later_turns_stay_in_step() {
        let (played, forced) = serve(MYSQLISH, &[b"login pid=999", b"query 1", b"quit"], false);
        assert_eq!(played, vec![0, 2, 4]);
        assert_eq!(forced, 0);
    }

    #[test]
    fn a_longer_turn_is_answered_and_later_turns_stay_in_step() {
        let (played, forced) = serve(
            MYSQLISH,
            &[b"login pid=1234567", b"query 1", b"quit"],
            false,
        );
        assert_eq!(played, vec![0, 2, 4]);
        assert_eq!(forced, 0);
    }

    #[test]
    fn a_request_split_in_two_writes_is_answered_once_whole() {
        let (s, bytes) = script(MYSQLISH);
        let mut fetch = |off: u64| Rc::new(bytes[&off].clone());
        let mut p = Player::new(true, false);
        p.tick(0);
        assert!(matches!(p.next(1, &s, &|_| true, false), Next::Write(_)));
        p.sent(0, b"login ", &s, &mut fetch);
        p.tick(1_000_000);
        p.sent(0, b"pid=12345", &s, &mut fetch);
        assert!(matches!(p.next(1, &s, &|_| true, false), Next::Write(st) if st.offset == 2));
    }

    #[test]
    fn pipelined_requests_get_every_answer_at_once() {
        let (played, forced) = serve(MYSQLISH, &[b"login pid=12345", b"query 1", b"quit"], true);
        assert_eq!(played, vec![0, 2, 4]);
        assert_eq!(forced, 0);
    }

    #[test]
    fn a_live_side_that_sends_nothing_in_its_turn_is_not_taken_as_done() {
        let (s, _) = script(MYSQLISH);
        let mut p = Player::new(true, false);
        p.tick(0);
        assert!(matches!(p.next(1, &s, &|_| true, false), Next::Write(_)));
        p.tick(10 * DEFAULT_QUIET_NS);
        assert_eq!(p.next(1, &s, &|_| true, false), Next::Wait);
        assert!(matches!(p.next(1, &s, &|_| true, true), Next::Write(_)));
        assert_eq!(p.forced_steps, 1);
    }

    #[test]
    fn a_dns_answer_over_tcp_echoes_the_live_id_and_text_never_changes() {
        // length, id, flags...
        let asked = b"\x00\x1a\xab\xcd\x01\x20\x00\x01";
        let answer = b"\x00\x38\xab\xcd\x81\x80\x00\x01\x00\x01";
        let live = b"\x00\x1a\x12\x34\x01\x20\x00\x01";
        let out = echo_first(answer, asked, live).unwrap();
        assert_eq!(&out[..], b"\x00\x38\x12\x34\x81\x80\x00\x01\x00\x01");
        // The same live bytes as recorded: nothing to change.
        assert_eq!(echo_first(answer, asked, asked), None);
        // Text: "T" at offset 2 of both is chance, not an echo.
        assert_eq!(
            echo_first(b"HTTP/1.0 200 OK\r\n", b"GET / HTTP/1.1", b"PUT / HTTP/1.1"),
            None
        );
        // Nothing live yet: nothing to echo.
        assert_eq!(echo_first(answer, asked, b""), None);
    }

    #[test]
    fn timing_holds_a_due_step() {
        let (s, _) = script(HTTP);
        let mut p = Player::new(false, true);
        // Its first step was recorded at 5000 ns: not due while the clock reads 1000 ns.
        let s = ConnScript {
            steps: [
                vec![Step {
                    time_ns: 5_000,
                    ..s.steps[0][0]
                }],
                vec![],
            ],
            ..s
        };
        assert_eq!(p.next(0, &s, &|t| t <= 1_000, false), Next::Wait);
        assert!(matches!(p.next(0, &s, &|_| true, false), Next::Write(_)));
    }
}
