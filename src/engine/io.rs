//! The loop's boundary with the network: everything the engine asks of the kernel, behind
//! [`Net`]. The loop (`engine`) decides; a `Net` reads and writes TUN frames, accepts client
//! legs from the proxy listeners, opens upstream connects and reports their progress, closes
//! relay sockets (abortively or not), says which of them are ready, and tells the time.
//!
//! [`Kernel`] is the real one: the TUN fds, the listeners and a mio poll in the proxy
//! namespace, with the syscalls themselves in `os::sockets`. The seeded simulations
//! (`engine::sim`, tests only) implement `Net` in memory, so the whole loop runs without root.
//! The engine is generic over it (one packet at a time is the hot path: no dynamic dispatch).

use super::nat::Out;
use super::pump::Socket;
use crate::format::ConnId;
use crate::os::{sockets, HostSockets};
use anyhow::Context as _;
use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
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
    /// Stops watching the stream and closes it; `abort`: with RST (SO_LINGER 0), not FIN.
    fn close(&mut self, s: Self::Stream, abort: bool);
    fn now(&self) -> Now;
}

pub const WAKER: Token = Token(0);
const PROXY_TUN: Token = Token(1);
const LISTENER: Token = Token(2);
const LISTENER6: Token = Token(3);
/// The DNS forwarder's socket (`--allow-external`).
pub const DNS_UP: Token = Token(4);
const TUN_BASE: usize = 16;
const SOCK_BASE: usize = 1 << 20;

fn sock_token(id: ConnId, upstream: bool) -> Token {
    Token(SOCK_BASE + ((id as usize) << 1) + upstream as usize)
}

/// The kernel's network, from the proxy namespace: the TUN fds, the listeners, and a poll.
pub struct Kernel {
    poll: Poll,
    events: Events,
    procs: Vec<OwnedFd>,
    proxy_tun: OwnedFd,
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
        poll.registry()
            .register(
                &mut SourceFd(&proxy_tun.as_raw_fd()),
                PROXY_TUN,
                Interest::READABLE,
            )
            .context("failed to watch the proxy TUN")?;
        for (i, fd) in procs.iter().enumerate() {
            poll.registry()
                .register(
                    &mut SourceFd(&fd.as_raw_fd()),
                    Token(TUN_BASE + i),
                    Interest::READABLE,
                )
                .context("failed to watch a process TUN")?;
        }
        let kernel = Kernel {
            poll,
            events: Events::with_capacity(1024),
            procs,
            proxy_tun,
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

    fn tun(&self, tun: Out) -> &OwnedFd {
        match tun {
            Out::Proc(i) => &self.procs[i as usize],
            Out::Proxy => &self.proxy_tun,
        }
    }

    fn listener(&self, v6: bool) -> Option<&TcpListener> {
        if v6 {
            self.listener6.as_ref()
        } else {
            Some(&self.listener)
        }
    }
}

impl Net for Kernel {
    type Stream = TcpStream;

    fn poll(&mut self, ready: &mut Vec<Ready>, timeout: Duration) -> io::Result<()> {
        self.poll.poll(&mut self.events, Some(timeout))?;
        for ev in self.events.iter() {
            ready.push(match ev.token() {
                WAKER => Ready::Wake,
                PROXY_TUN => Ready::Tun(Out::Proxy),
                LISTENER => Ready::Listener { v6: false },
                LISTENER6 => Ready::Listener { v6: true },
                DNS_UP => Ready::DnsUp,
                Token(t) if (TUN_BASE..SOCK_BASE).contains(&t) => {
                    Ready::Tun(Out::Proc((t - TUN_BASE) as u16))
                }
                Token(t) => Ready::Sock {
                    id: ((t - SOCK_BASE) >> 1) as ConnId,
                    upstream: (t - SOCK_BASE) & 1 == 1,
                    writable: ev.is_writable(),
                },
            });
        }
        Ok(())
    }

    fn tun_read(&mut self, tun: Out, buf: &mut [u8]) -> io::Result<usize> {
        Ok(sockets::tun_read(self.tun(tun), buf)?)
    }

    fn tun_write(&mut self, tun: Out, frame: &[u8]) -> io::Result<usize> {
        Ok(sockets::tun_write(self.tun(tun), frame)?)
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
