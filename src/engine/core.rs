//! The pure core of the relay's connection table: each connection's lifecycle as an explicit
//! state machine in which every pending state times out, and the admission rules that bound
//! the table (the live cap, the pending bound). No syscalls and no clock: whatever depends on
//! time takes `now` from the caller, so all of it is tested without root, by seeded
//! simulation (bottom of this file).
//!
//! ```text
//!   new ──► Connecting ──connected──► Open(awaiting client) ──accepted──► Open(relaying)
//!               │ failed/timeout           │ client RST / timeout              │ closed/reset
//!               ▼                          ▼                                   ▼
//!              Done ◄──────────────────────┴───────────────────────────────────┘
//!               │ linger
//!               ▼
//!            retired (rules and entry removed)
//! ```
//!
//! Relaying itself has no timeout here: an idle TCP connection is legitimately idle forever,
//! and a peer that vanishes ends the kernel socket (retransmission timeout), which ends it.
//!
//! Also here: what to do with a TCP segment a process sends ([`route_tcp`]), from its flags and
//! what the table knows of its flow; the loop does the rewriting and the I/O it names.

use crate::format::ConnId;
use crate::wire::tcp_flags;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Upstream connect in progress; the client's SYN is kept.
    Connecting,
    /// Connected upstream (the client leg may not be accepted yet: see `Life::pending`).
    Open,
    /// Over; the entry lingers for the last packets, then is retired.
    Done,
}

/// How long each state may last.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Connecting: then the attempt is recorded unreachable.
    pub connect: Duration,
    /// Open but the client's leg not accepted: then it is recorded as reset by the client.
    pub accept: Duration,
    /// Done: then the entry and its rules go.
    pub linger: Duration,
}

/// What a timeout calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Give up a connect that never finished.
    Connect,
    /// Give up waiting for the client's leg.
    Accept,
    /// Remove the finished entry.
    Retire,
}

/// One connection's place in its lifecycle.
#[derive(Debug, Clone, Copy)]
pub struct Life {
    state: State,
    /// When the current state (or, for Open, the wait for the client) began.
    since: Instant,
    /// Open, with a client leg expected and not accepted yet.
    awaiting_client: bool,
}

impl Life {
    pub fn new(now: Instant) -> Life {
        Life {
            state: State::Connecting,
            since: now,
            awaiting_client: false,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn is(&self, s: State) -> bool {
        self.state == s
    }

    /// The upstream connect finished; `awaiting_client`: a client leg must still be accepted
    /// (false when plg itself plays the client).
    pub fn opened(&mut self, now: Instant, awaiting_client: bool) {
        if self.state == State::Connecting {
            self.state = State::Open;
            self.since = now;
            self.awaiting_client = awaiting_client;
        }
    }

    /// The client's leg is waited for from now (it was just sent to the listener).
    pub fn awaiting_client(&mut self, now: Instant) {
        if self.state == State::Open {
            self.awaiting_client = true;
            self.since = now;
        }
    }

    /// The listener accepted the client's leg: relaying.
    pub fn accepted(&mut self) {
        self.awaiting_client = false;
    }

    /// The connection is over. True if it was live until now (to count it out once).
    pub fn ended(&mut self, now: Instant) -> bool {
        let was_live = self.state != State::Done;
        if was_live {
            self.state = State::Done;
            self.since = now;
            self.awaiting_client = false;
        }
        was_live
    }

    /// Relaying has not begun (connecting, or waiting for the client's leg).
    pub fn pending(&self) -> bool {
        match self.state {
            State::Connecting => true,
            State::Open => self.awaiting_client,
            State::Done => false,
        }
    }

    /// When the current state times out (None: relaying, bounded by the kernel's sockets).
    pub fn deadline(&self, t: &Timeouts) -> Option<Instant> {
        match self.state {
            State::Connecting => Some(self.since + t.connect),
            State::Open if self.awaiting_client => Some(self.since + t.accept),
            State::Open => None,
            State::Done => Some(self.since + t.linger),
        }
    }

    /// What is due at `now`, if anything.
    pub fn expiry(&self, now: Instant, t: &Timeouts) -> Option<Expiry> {
        let due = self.deadline(t)?;
        if now < due {
            return None;
        }
        Some(match self.state {
            State::Connecting => Expiry::Connect,
            State::Open => Expiry::Accept,
            State::Done => Expiry::Retire,
        })
    }
}

/// The table's bounds: at most `cap` live connections, at most `max_pending` of them pending.
#[derive(Debug)]
pub struct Admission {
    cap: usize,
    max_pending: usize,
    live: usize,
    /// Connections in the order they were admitted, to find the oldest pending one. It holds
    /// every pending connection and some that no longer are; it is pruned (and then exact)
    /// when it reaches `max_pending`, so it never holds more than that.
    queue: VecDeque<ConnId>,
}

impl Admission {
    pub fn new(cap: usize, max_pending: usize) -> Admission {
        Admission {
            cap: cap.max(1),
            max_pending: max_pending.max(1),
            live: 0,
            queue: VecDeque::new(),
        }
    }

    pub fn live(&self) -> usize {
        self.live
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Before a new connection: the oldest pending connections to give up so that it fits
    /// under the pending bound (`is_pending` says which queued ones still are).
    pub fn make_room(&mut self, is_pending: impl Fn(ConnId) -> bool) -> Vec<ConnId> {
        if self.queue.len() < self.max_pending {
            return Vec::new();
        }
        self.queue.retain(|id| is_pending(*id));
        let mut out = Vec::new();
        while self.queue.len() >= self.max_pending {
            match self.queue.pop_front() {
                Some(id) => out.push(id),
                None => break,
            }
        }
        out
    }

    /// The live cap is reached: refuse new connections.
    pub fn full(&self) -> bool {
        self.live >= self.cap
    }

    /// Counts a new connection in (the caller checked `full`; replay's own connections are
    /// taken even then, as they are bounded by the recording).
    pub fn admit(&mut self, id: ConnId) {
        self.live += 1;
        self.queue.push_back(id);
    }

    /// A live connection ended (call once per connection: `Life::ended` says when).
    pub fn ended(&mut self) {
        self.live = self.live.saturating_sub(1);
    }
}

/// A segment that opens a connection: SYN without ACK, and without FIN or RST (a SYN+FIN or
/// SYN+RST is no handshake any host answers with SYN-ACK).
pub fn is_syn(flags: u8) -> bool {
    use tcp_flags::*;
    flags & (SYN | ACK | FIN | RST) == SYN
}

/// What the table knows of the connection a segment's NAT rule belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub state: State,
    /// The segment comes from the connection's client (not the server answering upstream).
    pub from_client: bool,
    /// Relaying has not begun (`Life::pending`).
    pub pending: bool,
}

/// What to do with a TCP segment from a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpRoute {
    /// Rewrite it with its flow's rule and deliver it.
    Forward,
    /// The client refused the listener's SYN-ACK (it gave up, or never had a socket: a bare
    /// SYN): deliver the RST and give the connection up now, nothing will be accepted.
    ForwardAndAbandon,
    /// A retransmitted SYN while the upstream connect is in progress: keep it (the newest is
    /// the one injected).
    KeepSyn,
    /// The client's packets wait for the upstream connect.
    Hold,
    /// A fresh SYN reusing the 4-tuple of a finished connection still lingering: retire the
    /// old entry (or the new connection would hang), then open.
    RetireAndOpen,
    /// A new connection (in replay, first matched against the recording).
    Open,
    /// No flow and no handshake: answer with RST, as a host would.
    Reset,
    /// A RST for no flow: nothing to answer.
    Drop,
}

/// The routing decision for a TCP segment with `flags` whose flow is `flow`: None when no NAT
/// rule matches it, Some(None) when a rule matches but its connection is gone.
pub fn route_tcp(flags: u8, flow: Option<Option<Known>>) -> TcpRoute {
    let syn = is_syn(flags);
    let rst = flags & tcp_flags::RST != 0;
    match flow {
        Some(Some(k)) if k.from_client => match k.state {
            State::Open if rst && k.pending => TcpRoute::ForwardAndAbandon,
            // Only the client's own packets wait for the upstream connect; the server's
            // replies to the upstream socket pass.
            State::Connecting if syn => TcpRoute::KeepSyn,
            State::Connecting => TcpRoute::Hold,
            State::Done if syn => TcpRoute::RetireAndOpen,
            _ => TcpRoute::Forward,
        },
        Some(_) => TcpRoute::Forward,
        None if syn => TcpRoute::Open,
        None if rst => TcpRoute::Drop,
        None => TcpRoute::Reset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const T: Timeouts = Timeouts {
        connect: Duration::from_secs(20),
        accept: Duration::from_secs(20),
        linger: Duration::from_secs(15),
    };

    /// xorshift64*: a seeded, dependency-free generator for the simulations.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn every_state_but_relaying_times_out() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut l = Life::new(t0);
        assert!(l.pending());
        assert_eq!(l.expiry(t0 + 19 * s, &T), None);
        assert_eq!(l.expiry(t0 + 20 * s, &T), Some(Expiry::Connect));
        l.opened(t0 + 5 * s, true);
        assert!(l.pending());
        assert_eq!(l.expiry(t0 + 24 * s, &T), None);
        assert_eq!(l.expiry(t0 + 25 * s, &T), Some(Expiry::Accept));
        l.accepted();
        assert!(!l.pending());
        assert_eq!(l.expiry(t0 + 1000 * s, &T), None);
        assert!(l.ended(t0 + 30 * s));
        assert!(!l.ended(t0 + 31 * s), "ended twice counts once");
        assert_eq!(l.expiry(t0 + 45 * s, &T), Some(Expiry::Retire));
    }

    #[test]
    fn admission_refuses_at_the_cap_and_gives_up_the_oldest_pending() {
        let mut a = Admission::new(3, 2);
        a.admit(1);
        a.admit(2);
        // Two pending: the next one first gives up the oldest.
        assert_eq!(a.make_room(|_| true), vec![1]);
        a.ended();
        a.admit(3);
        assert!(!a.full());
        a.admit(4);
        assert!(a.full(), "at the cap");
        // Nothing pending any more: nothing to give up.
        assert_eq!(a.make_room(|_| false), Vec::<ConnId>::new());
    }

    /// The connection table driven through random events under a seeded clock: connects that
    /// succeed, fail or hang, clients that come, reset or never come, floods, closes. Checks
    /// at every step that the bounds hold and the live count is exact, and at the end that
    /// once events stop and time passes, nothing is left.
    #[test]
    fn seeded_simulations_never_leak_and_stay_bounded() {
        for seed in 1..=200u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let cap = 1 + rng.below(64) as usize;
            let max_pending = 1 + rng.below(32) as usize;
            let mut adm = Admission::new(cap, max_pending);
            let mut table: HashMap<ConnId, Life> = HashMap::new();
            let mut now = Instant::now();
            let mut next_id: ConnId = 0;
            let (mut refused, mut given_up) = (0u64, 0u64);
            let steps = 500 + rng.below(2000);
            for step in 0..steps + 400 {
                let events = step < steps;
                now += Duration::from_millis(rng.below(if events { 500 } else { 5000 }));
                let ids: Vec<ConnId> = table.keys().copied().collect();
                let pick = |rng: &mut Rng| ids.get(rng.below(ids.len().max(1) as u64) as usize);
                match rng.below(8) {
                    // A SYN (a burst of them a flood).
                    0 | 1 if events => {
                        let burst = if rng.below(10) == 0 { 50 } else { 1 };
                        for _ in 0..1 + rng.below(burst) {
                            for id in adm.make_room(|id| table.get(&id).is_some_and(Life::pending))
                            {
                                let l = table.get_mut(&id).expect("queued ids are in the table");
                                assert!(l.pending());
                                if l.ended(now) {
                                    adm.ended();
                                }
                                given_up += 1;
                            }
                            let id = next_id;
                            next_id += 1;
                            if adm.full() {
                                refused += 1;
                            } else {
                                adm.admit(id);
                                table.insert(id, Life::new(now));
                            }
                        }
                    }
                    // The upstream connect finishes (or fails).
                    2 if events => {
                        if let Some(&id) = pick(&mut rng) {
                            let l = table.get_mut(&id).unwrap();
                            if l.is(State::Connecting) {
                                if rng.below(4) == 0 {
                                    if l.ended(now) {
                                        adm.ended();
                                    }
                                } else {
                                    l.opened(now, rng.below(5) != 0);
                                }
                            }
                        }
                    }
                    // The client's leg is accepted, or the client resets it.
                    3 if events => {
                        if let Some(&id) = pick(&mut rng) {
                            let l = table.get_mut(&id).unwrap();
                            if l.is(State::Open) && l.pending() {
                                if rng.below(3) == 0 {
                                    if l.ended(now) {
                                        adm.ended();
                                    }
                                } else {
                                    l.accepted();
                                }
                            }
                        }
                    }
                    // A relaying connection closes (both FINs, or a RST); after the events
                    // stop, every relaying connection's sockets end sooner or later.
                    4 | 5 => {
                        if let Some(&id) = pick(&mut rng) {
                            let l = table.get_mut(&id).unwrap();
                            if l.is(State::Open) && !l.pending() && l.ended(now) {
                                adm.ended();
                            }
                        }
                    }
                    _ => {}
                }
                // The periodic sweep.
                let mut retire = Vec::new();
                for (id, l) in table.iter_mut() {
                    match l.expiry(now, &T) {
                        Some(Expiry::Connect | Expiry::Accept) if l.ended(now) => adm.ended(),
                        Some(Expiry::Retire) => retire.push(*id),
                        _ => {}
                    }
                }
                for id in retire {
                    table.remove(&id);
                }
                let live = table.values().filter(|l| !l.is(State::Done)).count();
                let pending = table.values().filter(|l| l.pending()).count();
                assert_eq!(adm.live(), live, "seed {seed} step {step}: live count");
                assert!(
                    live <= cap,
                    "seed {seed} step {step}: {live} live over cap {cap}"
                );
                assert!(
                    pending <= max_pending,
                    "seed {seed} step {step}: {pending} pending over {max_pending}"
                );
            }
            // Events stopped long ago; relaying ones were closed: nothing is left.
            let left: Vec<_> = table
                .iter()
                .filter(|(_, l)| !l.is(State::Open) || l.pending())
                .collect();
            assert!(left.is_empty(), "seed {seed}: leaked {left:?}");
            assert!(next_id as u64 >= refused + given_up);
        }
    }

    /// Every flag combination against every flow the table can hold, many times over in a
    /// seeded order: the decisions a host would make, and nothing ever opened by a segment
    /// that is no handshake.
    #[test]
    fn seeded_routing_decisions_follow_the_rules_for_every_flag_combination() {
        use tcp_flags::*;
        let states = [State::Connecting, State::Open, State::Done];
        let mut rng = Rng(0x5eed_1234_5678_9abd);
        for _ in 0..20_000 {
            let flags = rng.next() as u8;
            let flow = match rng.below(3) {
                0 => None,
                1 => Some(None),
                _ => Some(Some(Known {
                    state: states[rng.below(3) as usize],
                    from_client: rng.below(2) == 0,
                    pending: rng.below(2) == 0,
                })),
            };
            let r = route_tcp(flags, flow);
            let syn = flags & (SYN | ACK | FIN | RST) == SYN;
            let rst = flags & RST != 0;
            // Only a real SYN opens anything or is kept for injection.
            if matches!(
                r,
                TcpRoute::Open | TcpRoute::RetireAndOpen | TcpRoute::KeepSyn
            ) {
                assert!(syn, "{flags:#04x} {flow:?} -> {r:?}");
            }
            // A RST is never answered; only a client's RST abandons a connection.
            if rst {
                assert_ne!(r, TcpRoute::Reset, "{flags:#04x} {flow:?}");
            }
            if r == TcpRoute::ForwardAndAbandon {
                let k = flow.flatten().expect("a known flow");
                assert!(rst && k.from_client && k.pending && k.state == State::Open);
            }
            match flow {
                None => assert_eq!(
                    r,
                    if syn {
                        TcpRoute::Open
                    } else if rst {
                        TcpRoute::Drop
                    } else {
                        TcpRoute::Reset
                    }
                ),
                // A rule whose connection is gone, or the server's side: always delivered.
                Some(None) => assert_eq!(r, TcpRoute::Forward),
                Some(Some(k)) if !k.from_client => assert_eq!(r, TcpRoute::Forward),
                Some(Some(k)) => match k.state {
                    State::Connecting => {
                        assert_eq!(
                            r,
                            if syn {
                                TcpRoute::KeepSyn
                            } else {
                                TcpRoute::Hold
                            }
                        )
                    }
                    State::Done if syn => assert_eq!(r, TcpRoute::RetireAndOpen),
                    State::Open if rst && k.pending => {
                        assert_eq!(r, TcpRoute::ForwardAndAbandon)
                    }
                    _ => assert_eq!(r, TcpRoute::Forward),
                },
            }
        }
        // SYN+FIN and SYN+RST are no SYNs.
        assert_eq!(route_tcp(SYN | FIN, None), TcpRoute::Reset);
        assert_eq!(route_tcp(SYN | RST, None), TcpRoute::Drop);
        assert_eq!(route_tcp(SYN, None), TcpRoute::Open);
    }
}
