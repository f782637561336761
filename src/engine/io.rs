//! The loop's boundary with the network: everything the engine asks of the kernel, behind
//! [`Net`]. The loop (`engine`) decides; a `Net` reads and writes TUN frames, accepts client
//! legs from the proxy listeners, opens upstream connects and reports their progress, closes
//! relay sockets (abortively or not), says which of them are ready, and tells the time.
//!
//! [`Kernel`] is the real one: the TUN fds, the listeners and a mio poll in the proxy
//! namespace, with the syscalls themselves in `os::sockets`. Its TUNs are read by a thread of
//! their own (`plg-tun`), which carries the fast path (`forward`) itself and hands the loop
//! only the frames the fast path leaves, through a queue bounded in bytes: so the relaying of
//! established connections' segments between TUNs runs beside the loop's socket relay, on the
//! other core. The seeded simulations (`engine::sim`, tests only) implement `Net` in memory,
//! so the whole loop runs without root. The engine is generic over it (one packet at a time
//! is the hot path: no dynamic dispatch).

use super::forward::Forwarder;
use super::nat::Out;
use super::pump::Socket;
use crate::format::ConnId;
use crate::os::{sockets, HostSockets};
use anyhow::Context as _;
use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Something the loop has to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// The controlling thread has a message.
    Wake,
    /// A TUN has frames to read (edge: read until it would block).
    Tun(Out),
    /// A listener has connections to accept (edge: accept until it would block).
    Listener { v6: bool },
    /// The DNS forwarder's socket (`--allow-external`).
    DnsUp,
    /// A relay socket of connection `id` can move bytes; `writable`: it can be written (for an
    /// upstream socket still connecting: its connect finished one way or the other).
    Sock {
        id: ConnId,
        upstream: bool,
        writable: bool,
    },
}

/// How an upstream connect is doing.
#[derive(Debug)]
pub enum Connect {
    Pending,
    Done,
    Failed(io::Error),
}

/// The time, both ways the engine needs it.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// For timeouts.
    pub mono: Instant,
    /// Wall clock, nanoseconds since the Unix epoch (capture timestamps).
    pub wall_ns: u64,
}

/// The network as the loop sees it. TUN I/O and accept report "nothing more" as
/// `WouldBlock`, as the kernel does.
pub trait Net {
    /// A relay socket: an accepted client leg or an upstream socket.
    type Stream: Socket;
    /// What is ready, waiting up to `timeout` for something to be.
    fn poll(&mut self, ready: &mut Vec<Ready>, timeout: Duration) -> io::Result<()>;
    /// One frame from a TUN (with its virtio header when offloading).
    fn tun_read(&mut self, tun: Out, buf: &mut [u8]) -> io::Result<usize>;
    /// One frame into a TUN.
    fn tun_write(&mut self, tun: Out, frame: &[u8]) -> io::Result<usize>;
    /// The next connection a proxy listener accepted (no Nagle, urgent data in line), and
    /// where it came from; not watched yet.
    fn accept(&mut self, v6: bool) -> io::Result<(Self::Stream, SocketAddr)>;
    /// Out of fds in `accept`: takes the next queued connection anyway (with a spare fd) and
    /// resets it. Its peer, or None when even that failed.
    fn reset_queued(&mut self, v6: bool) -> Option<SocketAddr>;
    /// Starts a non-blocking connect to `to`: from the host's namespace when `host`
    /// (`--allow-external`), else from the proxy's. The stream and its local port.
    fn connect(&mut self, host: bool, to: SocketAddr) -> io::Result<(Self::Stream, u16)>;
    /// Reports the stream's readiness as `Ready::Sock { id, upstream, .. }` from now on.
    fn watch(&mut self, s: &mut Self::Stream, id: ConnId, upstream: bool) -> io::Result<()>;
    /// Where an upstream connect stands.
    fn progress(&mut self, s: &Self::Stream) -> Connect;
    /// Starts the fast path: from now on `fwd` may carry a frame as soon as a TUN has it,
    /// before the loop has read anything or changed a rule since (in a session, on the TUN
    /// thread); what it leaves comes to the loop (`poll`, `tun_read`).
    fn start_fast_path(&mut self, fwd: Forwarder) -> anyhow::Result<()>;
    /// Stops watching the stream and closes it; `abort`: with RST (SO_LINGER 0), not FIN.
    fn close(&mut self, s: Self::Stream, abort: bool);
    fn now(&self) -> Now;
}

/// The controlling thread has a message, or the TUN thread handed frames over (one waker:
/// mio allows one per poll).
pub const WAKER: Token = Token(0);
const LISTENER: Token = Token(2);
const LISTENER6: Token = Token(3);
/// The DNS forwarder's socket (`--allow-external`).
pub const DNS_UP: Token = Token(4);
const SOCK_BASE: usize = 1 << 20;

/// The TUN thread's own poll: process TUN i is token i, the proxy TUN `PROXY`, and `STOP`
/// ends the thread.
const STOP: Token = Token(usize::MAX);
const PROXY: Token = Token(usize::MAX - 1);

/// What frames waiting for the loop may hold: the TUN thread waits for room beyond it (and
/// the kernel's TUN queues fill behind it, as they would behind a busy loop).
const HANDOFF_BYTES: usize = 4 << 20;

fn sock_token(id: ConnId, upstream: bool) -> Token {
    Token(SOCK_BASE + ((id as usize) << 1) + upstream as usize)
}

/// The TUN fds, shared by the loop (which writes the frames it makes or decides) and the TUN
/// thread (which reads them all and writes what the fast path carries).
struct Tuns {
    procs: Vec<OwnedFd>,
    proxy: OwnedFd,
}

impl Tuns {
    fn get(&self, tun: Out) -> Option<&OwnedFd> {
        match tun {
            Out::Proc(i) => self.procs.get(i as usize),
            Out::Proxy => Some(&self.proxy),
        }
    }
}

/// Frames the fast path left to the loop, oldest first, and what they weigh.
#[derive(Default)]
struct Queue {
    frames: VecDeque<(Out, Vec<u8>)>,
    bytes: usize,
}

/// Between the TUN thread and the loop.
#[derive(Default)]
struct Handoff {
    queue: Mutex<Queue>,
    /// Signalled when the loop takes frames from a queue the TUN thread found full.
    room: Condvar,
    stop: AtomicBool,
}

impl Handoff {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue is whole after any panic (single pushes and removes).
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a frame for the loop, waiting while the queue is full; true when it was empty
    /// (the loop must be woken).
    fn push(&self, tun: Out, frame: &[u8], loop_waker: &Waker) -> bool {
        let mut q = self.lock();
        while q.bytes + frame.len() > HANDOFF_BYTES
            && !q.frames.is_empty()
            && !self.stop.load(Ordering::Relaxed)
        {
            let _ = loop_waker.wake();
            q = match self.room.wait_timeout(q, Duration::from_millis(100)) {
                Ok((q, _)) => q,
                Err(e) => e.into_inner().0,
            };
        }
        let was_empty = q.frames.is_empty();
        q.bytes += frame.len();
        q.frames.push_back((tun, frame.to_vec()));
        was_empty
    }
}

/// The TUN thread, stopped and joined on drop.
struct TunThread {
    stop: Waker,
    join: Option<JoinHandle<()>>,
}

/// The kernel's network, from the proxy namespace: the TUN fds, the listeners, and a poll.
pub struct Kernel {
    poll: Poll,
    events: Events,
    tuns: Arc<Tuns>,
    handoff: Arc<Handoff>,
    loop_waker: Arc<Waker>,
    tun_thread: Option<TunThread>,
    listener: TcpListener,
    /// The IPv6 listener, when the session has IPv6.
    listener6: Option<TcpListener>,
    /// Relay connections to the gateway to the host's loopback (`--allow-external`).
    external: Option<HostSockets>,
    /// Kept for `accept` when out of fds (`reset_queued`).
    spare: crate::os::limits::SpareFd,
}

impl Kernel {
    /// Call in the proxy namespace: the listeners bind the proxy's addresses there.
    pub fn new(
        listen: SocketAddr,
        listen6: Option<SocketAddr>,
        procs: Vec<OwnedFd>,
        proxy_tun: OwnedFd,
        external: Option<HostSockets>,
    ) -> anyhow::Result<(Kernel, Arc<Waker>)> {
        let poll = Poll::new().context("failed to create the relay's poll")?;
        let waker =
            Arc::new(Waker::new(poll.registry(), WAKER).context("failed to create a waker")?);
        let mut listener = TcpListener::from_std(sockets::listen(listen, 4096)?);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .context("failed to watch the proxy listener")?;
        let listener6 = match listen6 {
            Some(addr) => {
                let mut l = TcpListener::from_std(sockets::listen(addr, 4096)?);
                poll.registry()
                    .register(&mut l, LISTENER6, Interest::READABLE)
                    .context("failed to watch the proxy's IPv6 listener")?;
                Some(l)
            }
            None => None,
        };
        let loop_waker = waker.clone();
        let kernel = Kernel {
            poll,
            events: Events::with_capacity(1024),
            tuns: Arc::new(Tuns {
                procs,
                proxy: proxy_tun,
            }),
            handoff: Arc::default(),
            loop_waker,
            tun_thread: None,
            listener,
            listener6,
            external,
            spare: crate::os::limits::SpareFd::new(),
        };
        Ok((kernel, waker))
    }

    /// For sources the engine's helpers watch themselves (the DNS forwarder).
    pub fn registry(&self) -> &mio::Registry {
        self.poll.registry()
    }

    pub fn external(&self) -> Option<&HostSockets> {
        self.external.as_ref()
    }

    /// Starts the TUN thread: from now on the TUNs are read there, what `fwd` carries goes on
    /// from there, and the rest comes to the loop (`poll`, `tun_read`).
    fn start_tun_thread(&mut self, fwd: Forwarder) -> anyhow::Result<()> {
        let poll = Poll::new().context("failed to create the TUN thread's poll")?;
        let stop = Waker::new(poll.registry(), STOP).context("failed to create a waker")?;
        let tuns = &self.tuns;
        let fds = tuns.procs.iter().enumerate().map(|(i, fd)| (Token(i), fd));
        for (token, fd) in fds.chain([(PROXY, &tuns.proxy)]) {
            poll.registry()
                .register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)
                .context("failed to watch a TUN")?;
        }
        let (tuns, handoff, waker) = (
            self.tuns.clone(),
            self.handoff.clone(),
            self.loop_waker.clone(),
        );
        let join = std::thread::Builder::new()
            .name("plg-tun".into())
            .spawn(move || tun_thread(poll, &tuns, &fwd, &handoff, &waker))
            .context("failed to start the TUN thread")?;
        self.tun_thread = Some(TunThread {
            stop,
            join: Some(join),
        });
        Ok(())
    }

    fn listener(&self, v6: bool) -> Option<&TcpListener> {
        if v6 {
            self.listener6.as_ref()
        } else {
            Some(&self.listener)
        }
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        if let Some(mut t) = self.tun_thread.take() {
            self.handoff.stop.store(true, Ordering::Relaxed);
            self.handoff.room.notify_all();
            let _ = t.stop.wake();
            if let Some(join) = t.join.take() {
                let _ = join.join();
            }
        }
    }
}

/// The TUN thread: reads every TUN, sends on what the fast path carries, queues the rest for
/// the loop. Polls without sleeping for `SPIN` after work, as the loop does.
fn tun_thread(mut poll: Poll, tuns: &Tuns, fwd: &Forwarder, handoff: &Handoff, waker: &Waker) {
    let n = tuns.procs.len();
    let out_of = |t: usize| {
        if t == n {
            Out::Proxy
        } else {
            Out::Proc(t as u16)
        }
    };
    let mut events = Events::with_capacity(256);
    // Index n is the proxy TUN. A TUN stays busy until a read would block (edge-triggered).
    let mut busy = vec![false; n + 1];
    let mut buf = vec![0u8; super::PKT_BUF];
    let mut spin_until = Instant::now();
    loop {
        let timeout = if busy.contains(&true) || Instant::now() < spin_until {
            Duration::ZERO
        } else {
            Duration::from_millis(250)
        };
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return;
            }
        }
        if handoff.stop.load(Ordering::Relaxed) {
            return;
        }
        for ev in events.iter() {
            match ev.token() {
                STOP => {}
                PROXY => busy[n] = true,
                Token(i) => busy[i] = true,
            }
        }
        let mut worked = false;
        let mut handed = false;
        for (t, busy) in busy.iter_mut().enumerate() {
            let from = out_of(t);
            let Some(fd) = tuns.get(from) else { continue };
            for _ in 0..super::TUN_BATCH {
                if !*busy {
                    break;
                }
                let len = match sockets::tun_read(fd, &mut buf) {
                    Ok(len) => len,
                    Err(nix::errno::Errno::EINTR) => continue,
                    // EAGAIN, or the device is gone (the session is ending).
                    Err(_) => {
                        *busy = false;
                        break;
                    }
                };
                worked = true;
                let frame = &mut buf[..len];
                match fwd.forward(from, frame) {
                    Some(to) => {
                        // As in the loop: a failed TUN write is a lost packet, which the
                        // sender's TCP retransmits.
                        let r = tuns.get(to).map(|fd| sockets::tun_write(fd, frame));
                        if super::debug() {
                            eprintln!("plg-debug: fast {from:?} {len} bytes -> {to:?} {r:?}");
                        }
                    }
                    None => handed |= handoff.push(from, frame, waker),
                }
            }
        }
        if handed {
            let _ = waker.wake();
        }
        if worked {
            spin_until = Instant::now() + super::SPIN;
        }
    }
}

impl Net for Kernel {
    type Stream = TcpStream;

    fn poll(&mut self, ready: &mut Vec<Ready>, timeout: Duration) -> io::Result<()> {
        // Without it no frame moves: the session must end, loudly, not hang.
        let t = self.tun_thread.as_ref();
        if t.is_some_and(|t| t.join.as_ref().is_none_or(JoinHandle::is_finished)) {
            return Err(io::Error::other("the TUN thread ended"));
        }
        let timeout = if self.handoff.lock().frames.is_empty() {
            timeout
        } else {
            Duration::ZERO
        };
        self.poll.poll(&mut self.events, Some(timeout))?;
        // Frames the TUN thread handed over: each TUN they came from is ready.
        let q = self.handoff.lock();
        let first = ready.len();
        for (tun, _) in &q.frames {
            if !ready[first..].contains(&Ready::Tun(*tun)) {
                ready.push(Ready::Tun(*tun));
            }
        }
        drop(q);
        for ev in self.events.iter() {
            ready.push(match ev.token() {
                WAKER => Ready::Wake,
                LISTENER => Ready::Listener { v6: false },
                LISTENER6 => Ready::Listener { v6: true },
                DNS_UP => Ready::DnsUp,
                Token(t) => Ready::Sock {
                    id: ((t - SOCK_BASE) >> 1) as ConnId,
                    upstream: (t - SOCK_BASE) & 1 == 1,
                    writable: ev.is_writable(),
                },
            });
        }
        Ok(())
    }

    /// The oldest frame the TUN thread handed over from `tun`.
    fn tun_read(&mut self, tun: Out, buf: &mut [u8]) -> io::Result<usize> {
        let mut q = self.handoff.lock();
        let Some(at) = q.frames.iter().position(|(t, _)| *t == tun) else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let (_, frame) = q.frames.remove(at).expect("found above");
        let was_full = q.bytes > HANDOFF_BYTES / 2;
        q.bytes -= frame.len();
        drop(q);
        if was_full {
            self.handoff.room.notify_one();
        }
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        Ok(n)
    }

    fn tun_write(&mut self, tun: Out, frame: &[u8]) -> io::Result<usize> {
        let fd = self.tuns.get(tun).ok_or(io::ErrorKind::NotFound)?;
        Ok(sockets::tun_write(fd, frame)?)
    }

    fn accept(&mut self, v6: bool) -> io::Result<(TcpStream, SocketAddr)> {
        let Some(l) = self.listener(v6) else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let (s, peer) = l.accept()?;
        sockets::accepted(&s);
        Ok((s, peer))
    }

    fn reset_queued(&mut self, v6: bool) -> Option<SocketAddr> {
        let Kernel {
            spare,
            listener,
            listener6,
            ..
        } = self;
        let l = if v6 { listener6.as_ref()? } else { &*listener };
        let (stream, peer) = spare.without(|| l.accept()).ok()?;
        sockets::abort_on_close(&stream);
        drop(stream);
        Some(peer)
    }

    fn connect(&mut self, host: bool, to: SocketAddr) -> io::Result<(TcpStream, u16)> {
        let sock = match (host, self.external.as_ref()) {
            (true, Some(s)) => s.tcp_socket(to.is_ipv6()).map_err(io::Error::other)?,
            _ => sockets::tcp_socket(to)?,
        };
        let (std, local) = sockets::connect(sock, to)?;
        Ok((TcpStream::from_std(std), local))
    }

    fn watch(&mut self, s: &mut TcpStream, id: ConnId, upstream: bool) -> io::Result<()> {
        self.poll.registry().register(
            s,
            sock_token(id, upstream),
            Interest::READABLE | Interest::WRITABLE,
        )
    }

    fn progress(&mut self, s: &TcpStream) -> Connect {
        match s.take_error() {
            Ok(Some(e)) | Err(e) => Connect::Failed(e),
            // No error and no peer yet: a spurious wake-up, still connecting.
            Ok(None) if s.peer_addr().is_err() => Connect::Pending,
            Ok(None) => Connect::Done,
        }
    }

    fn start_fast_path(&mut self, fwd: Forwarder) -> anyhow::Result<()> {
        self.start_tun_thread(fwd)
    }

    fn close(&mut self, mut s: TcpStream, abort: bool) {
        let _ = self.poll.registry().deregister(&mut s);
        if abort {
            sockets::abort_on_close(&s);
        }
    }

    fn now(&self) -> Now {
        Now {
            mono: Instant::now(),
            wall_ns: super::now_ns(),
        }
    }
}
