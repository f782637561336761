//! plg's resolver at the gateway addresses: the session's names over DNS, UDP and TCP.
//!
//! - UDP to gateway:53 (IPv4 or IPv6) is answered in the engine loop
//!   ([`Engine::dns_datagram`], [`Engine::dns_datagram6`]): the query and the answer
//!   (`wire::dns`) are recorded as packets on the asking process's interface, like any other
//!   datagram, and the answer is written to its TUN. In replay it is answered the same way,
//!   live: a client whose server is played still resolves names.
//! - TCP to gateway:53 (either gateway) is relayed and recorded like any connection; its
//!   upstream leg goes to a small DNS-over-TCP server ([`TcpServer`]) on the IPv4 proxy
//!   address, one thread, length-prefixed messages (RFC 7766), idle connections closed after
//!   [`TCP_IDLE`], at most [`TCP_MAX_CONNS`] at once.
//! - With `--allow-external`, a UDP query for a name outside the session (at either gateway)
//!   is forwarded to the host's resolver (the first `nameserver` of the host's
//!   /etc/resolv.conf, from a socket in the host's namespace) under a fresh id, and its answer
//!   sent back from the gateway it was asked at (both recorded). At most [`MAX_FORWARDS`] wait
//!   at once, each for [`FORWARD_TIMEOUT`]; a query beyond that, or one that cannot be sent,
//!   gets the definite local answer (NXDOMAIN) instead. Over TCP the server forwards the same
//!   way, one query at a time per connection, over TCP.

use super::io::Net;
use super::nat::Out;
use super::plan::{Plan, PROXY_ADDR};
use super::{sink, Engine};
use crate::os::{sockets, HostSockets};
use crate::wire::{self, dns, vnet};
use anyhow::Context as _;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A DNS-over-TCP connection idle this long is closed (RFC 7766 6.2.3 suggests seconds).
pub const TCP_IDLE: Duration = Duration::from_secs(10);
/// DNS-over-TCP connections served at once; beyond it a new one is closed at once.
pub const TCP_MAX_CONNS: usize = 64;
/// Forwarded queries waiting for the host's resolver at once.
pub const MAX_FORWARDS: usize = 1024;
/// How long a forwarded query waits for its answer before it is forgotten.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// The environment variable naming the file read instead of the host's /etc/resolv.conf to
/// find the resolver `--allow-external` forwards to (tests point it at a local resolver).
pub const HOST_RESOLV_ENV: &str = "PLG_HOST_RESOLV_CONF";

/// The resolver's state in the engine.
pub struct Dns {
    pub zone: dns::Zone,
    tcp: Option<TcpServer>,
    forward: Option<Forwarder>,
}

impl Dns {
    /// Starts the TCP server on the proxy address (call in the proxy namespace) and, with
    /// `external`, the forwarder's socket in the host namespace. The forwarder is best effort:
    /// without a usable host resolver, outside names get NXDOMAIN as without the option.
    pub fn start(
        zone: dns::Zone,
        external: Option<&HostSockets>,
        tcp_host: Option<HostSockets>,
        registry: &mio::Registry,
        token: mio::Token,
    ) -> anyhow::Result<Dns> {
        let tcp_forward = tcp_host
            .zip(host_resolver())
            .map(|(h, up)| Arc::new((h, up)));
        let tcp = TcpServer::start(zone.clone(), tcp_forward)?;
        let forward = match external {
            Some(h) => Forwarder::start(h, registry, token),
            None => None,
        };
        Ok(Dns {
            zone,
            tcp: Some(tcp),
            forward,
        })
    }

    /// A resolver that only answers UDP in the loop: no TCP server, no forwarder (for the
    /// loop's simulations, which have no proxy namespace to listen in).
    #[cfg(test)]
    pub fn in_loop_only(zone: dns::Zone) -> Dns {
        Dns {
            zone,
            tcp: None,
            forward: None,
        }
    }

    /// Where the upstream leg of a TCP connection to `dst` goes instead: the DNS server, when
    /// `dst` is port 53 of a gateway, IPv4 or IPv6 (the server listens on the IPv4 proxy
    /// address only: the leg to it is plg's own, whatever the client's family).
    pub fn tcp_target(&self, plan: &Plan, dst: SocketAddr) -> Option<SocketAddr> {
        if !plan.is_gateway(dst.ip()) || dst.port() != dns::PORT {
            return None;
        }
        self.tcp.as_ref().map(|t| SocketAddr::V4(t.addr))
    }

    pub fn sweep(&mut self) {
        if let Some(f) = self.forward.as_mut() {
            let now = Instant::now();
            f.pending.retain(|_, p| p.deadline > now);
        }
    }
}

/// Why a recorded connection is left out of replay and diff verdicts, if it is one to plg's
/// resolver (TCP to the gateway's port 53): it is answered live in every run, and each query
/// carries a random id, so comparing it would only report noise.
pub fn resolver_conn(server: crate::format::ProcIndex, port: u16) -> Option<String> {
    (server == crate::format::EXTERNAL && port == dns::PORT)
        .then(|| "plg's resolver: answered live, never compared".to_string())
}

/// The host's resolver: the first `nameserver` of its /etc/resolv.conf (or of the file named
/// by [`HOST_RESOLV_ENV`]).
fn host_resolver() -> Option<SocketAddr> {
    let path = std::env::var_os(HOST_RESOLV_ENV).unwrap_or_else(|| "/etc/resolv.conf".into());
    first_nameserver(&std::fs::read_to_string(path).ok()?)
}

/// The first `nameserver` of a resolv.conf, as a socket address on port 53.
pub fn first_nameserver(resolv_conf: &str) -> Option<SocketAddr> {
    resolv_conf.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        if w.next() != Some("nameserver") {
            return None;
        }
        // A v6 address may carry a zone ("fe80::1%eth0"): not reachable from here, skipped.
        let a: IpAddr = w.next()?.parse().ok()?;
        Some(SocketAddr::new(a, dns::PORT))
    })
}

struct Pending {
    client: usize,
    /// The asking socket; its family is the one the query came over (and the answer goes
    /// back over, from that family's gateway).
    client_addr: SocketAddr,
    id: u16,
    deadline: Instant,
}

struct Forwarder {
    sock: mio::net::UdpSocket,
    upstream: SocketAddr,
    pending: HashMap<u16, Pending>,
    next_id: u16,
}

impl Forwarder {
    fn start(h: &HostSockets, registry: &mio::Registry, token: mio::Token) -> Option<Forwarder> {
        let upstream = host_resolver()?;
        let sock = h.udp_socket(upstream.is_ipv6()).ok()?;
        sock.connect(&upstream.into()).ok()?;
        let mut sock = mio::net::UdpSocket::from_std(sock.into());
        registry
            .register(&mut sock, token, mio::Interest::READABLE)
            .ok()?;
        Some(Forwarder {
            sock,
            upstream,
            pending: HashMap::new(),
            // Not predictable from outside the process: the upstream sees only our ids.
            next_id: (super::now_ns() as u16) ^ (std::process::id() as u16),
        })
    }
}

impl<W: Write + sink::Close, N: Net> Engine<W, N> {
    /// UDP to the gateway's port 53: answered here (or forwarded), both ways recorded. True
    /// when the packet was the resolver's (handled, even if dropped).
    pub(super) fn dns_datagram(
        &mut self,
        i: usize,
        hdr: vnet::VnetHdr,
        frame: &[u8],
        s: &wire::Summary,
    ) -> bool {
        if s.proto != wire::ipv4::proto::UDP || s.dst != self.plan.gateway() || s.dport != dns::PORT
        {
            return false;
        }
        let Some(query) = self.dns_query(i, hdr, frame, s.total_len) else {
            return true;
        };
        let Some((answer, outside)) = dns::answer_datagram(&query, &self.dns.zone) else {
            return true; // not a query (or a bad checksum): a server would stay silent too
        };
        let client = SocketAddr::V4(SocketAddrV4::new(s.src, s.sport));
        if outside && self.dns_forward(i, &query, s.ip_header_len, client) {
            return true;
        }
        self.dns_deliver(i, &answer);
        true
    }

    /// UDP to the IPv6 gateway's port 53: answered here (or forwarded, as over IPv4), both
    /// ways recorded. True when the packet was the resolver's.
    pub(super) fn dns_datagram6(
        &mut self,
        i: usize,
        hdr: vnet::VnetHdr,
        frame: &[u8],
        s: &wire::ipv6::Summary6,
    ) -> bool {
        if s.proto != wire::ipv6::next_header::UDP
            || Some(s.dst) != self.plan.gateway6()
            || s.dport != dns::PORT
        {
            return false;
        }
        let Some(query) = self.dns_query(i, hdr, frame, s.total_len) else {
            return true;
        };
        let Some((answer, outside)) = dns::answer_datagram6(&query, &self.dns.zone) else {
            return true;
        };
        let client = SocketAddr::V6(SocketAddrV6::new(s.src, s.sport, 0, 0));
        if outside && self.dns_forward(i, &query, s.l4_offset, client) {
            return true;
        }
        self.dns_deliver(i, &answer);
        true
    }

    /// The query of a datagram to the resolver, its checksum completed (with offload the
    /// kernel leaves it partial), once it is recorded: `None` when the capture cannot hold it
    /// (a query not on the record is not answered).
    fn dns_query(
        &mut self,
        i: usize,
        hdr: vnet::VnetHdr,
        frame: &[u8],
        total_len: usize,
    ) -> Option<Vec<u8>> {
        let off = if self.offload { vnet::HDR_LEN } else { 0 };
        let pkt = &frame[off..];
        let mut query = pkt[..total_len.min(pkt.len())].to_vec();
        if hdr.flags & vnet::NEEDS_CSUM != 0 {
            wire::complete_checksum(
                &mut query,
                hdr.csum_start as usize,
                hdr.csum_offset as usize,
            );
        }
        self.rec.packet(i as u32, &query).then_some(query)
    }

    fn dns_deliver(&mut self, i: usize, answer: &[u8]) {
        if self.rec.packet(i as u32, answer) {
            self.inject(Out::Proc(i as u16), answer);
        }
    }

    /// Sends an outside name's query (an IP datagram whose UDP header is at `l4`, from
    /// `client`) to the host's resolver; false if it could not be.
    fn dns_forward(&mut self, i: usize, query: &[u8], l4: usize, client: SocketAddr) -> bool {
        let Some(f) = self.dns.forward.as_mut() else {
            return false;
        };
        let Some(payload) = query.get(l4 + wire::udp::HEADER_LEN..) else {
            return false;
        };
        if payload.len() < dns::HEADER_LEN || f.pending.len() >= MAX_FORWARDS {
            return false;
        }
        let now = Instant::now();
        let mut id = f.next_id;
        // A free id (the table holds at most MAX_FORWARDS of 65536).
        while f.pending.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        f.next_id = id.wrapping_add(7919);
        let mut out = payload.to_vec();
        out[..2].copy_from_slice(&id.to_be_bytes());
        if f.sock.send(&out).is_err() {
            return false;
        }
        f.pending.insert(
            id,
            Pending {
                client: i,
                client_addr: client,
                id: u16::from_be_bytes([payload[0], payload[1]]),
                deadline: now + FORWARD_TIMEOUT,
            },
        );
        true
    }

    /// The host's resolver answered: back to whoever asked, under its own id.
    pub(super) fn dns_forward_readable(&mut self) {
        let mut buf = vec![0u8; 65535];
        loop {
            let Some(f) = self.dns.forward.as_mut() else {
                return;
            };
            let n = match f.sock.recv_from(&mut buf) {
                Ok((n, from)) if from == f.upstream => n,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            if n < dns::HEADER_LEN || buf[2] & 0x80 == 0 {
                continue;
            }
            let id = u16::from_be_bytes([buf[0], buf[1]]);
            let Some(p) = f.pending.remove(&id) else {
                continue;
            };
            buf[..2].copy_from_slice(&p.id.to_be_bytes());
            let answer = match p.client_addr {
                SocketAddr::V4(c) => {
                    let gw = self.plan.gateway();
                    dns::datagram(gw, dns::PORT, *c.ip(), c.port(), &buf[..n], 0)
                }
                SocketAddr::V6(c) => self
                    .plan
                    .gateway6()
                    .and_then(|gw| dns::datagram6(gw, dns::PORT, *c.ip(), c.port(), &buf[..n])),
            };
            let Some(answer) = answer else {
                continue;
            };
            self.dns_deliver(p.client, &answer);
        }
    }
}

/// The DNS-over-TCP server: a listener on the proxy address, polled by one thread that
/// hands each connection to a thread of its own, at most [`TCP_MAX_CONNS`] at once.
/// Dropping it stops the accepting thread (through a waker: by then the proxy TUN, and with
/// it the address, may be gone, so no wake-up connection could reach it).
struct TcpServer {
    addr: SocketAddrV4,
    waker: Arc<mio::Waker>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TcpServer {
    fn start(zone: dns::Zone, forward: Option<Arc<TcpForward>>) -> anyhow::Result<TcpServer> {
        const LISTEN: mio::Token = mio::Token(0);
        const WAKE: mio::Token = mio::Token(1);
        let addr = SocketAddrV4::new(PROXY_ADDR, dns::PORT);
        let mut listener =
            mio::net::TcpListener::from_std(sockets::listen(SocketAddr::V4(addr), 64)?);
        let mut poll = mio::Poll::new().context("failed to create the DNS server's poll")?;
        poll.registry()
            .register(&mut listener, LISTEN, mio::Interest::READABLE)
            .context("failed to watch the DNS listener")?;
        let waker =
            Arc::new(mio::Waker::new(poll.registry(), WAKE).context("failed to create a waker")?);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let zone = Arc::new(zone);
        let live = Arc::new(AtomicUsize::new(0));
        let thread = std::thread::Builder::new()
            .name("plg-dns-tcp".into())
            .spawn(move || {
                let mut events = mio::Events::with_capacity(8);
                while !stop2.load(Ordering::Relaxed) {
                    if let Err(e) = poll.poll(&mut events, None) {
                        if e.kind() == io::ErrorKind::Interrupted {
                            continue;
                        }
                        return;
                    }
                    // Edge-triggered: take every queued connection.
                    loop {
                        let conn = match listener.accept() {
                            Ok((c, _)) => c,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Err(_) => break,
                        };
                        if live.load(Ordering::Relaxed) >= TCP_MAX_CONNS {
                            continue; // dropped: closed at once
                        }
                        let conn = std::net::TcpStream::from(conn);
                        if conn.set_nonblocking(false).is_err() {
                            continue;
                        }
                        live.fetch_add(1, Ordering::Relaxed);
                        let (zone, live2) = (zone.clone(), live.clone());
                        let forward = forward.clone();
                        let spawned = std::thread::Builder::new()
                            .name("plg-dns-conn".into())
                            .spawn(move || {
                                let _ = serve_tcp(conn, &zone, forward.as_deref());
                                live2.fetch_sub(1, Ordering::Relaxed);
                            });
                        if spawned.is_err() {
                            // The connection went with the closure: closed.
                            live.fetch_sub(1, Ordering::Relaxed);
                        }
                    }
                }
            })
            .context("failed to start the DNS server thread")?;
        Ok(TcpServer {
            addr,
            waker,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where the TCP server forwards outside names: host sockets, and the host's resolver.
type TcpForward = (HostSockets, SocketAddr);

/// Asks the host's resolver `msg` over TCP; its answer.
fn forward_tcp(msg: &[u8], (host, upstream): &TcpForward) -> anyhow::Result<Vec<u8>> {
    let sock = host.tcp_socket(upstream.is_ipv6())?;
    sock.set_nonblocking(false)?;
    sock.connect_timeout(&(*upstream).into(), FORWARD_TIMEOUT)?;
    let mut s = std::net::TcpStream::from(sock);
    s.set_read_timeout(Some(FORWARD_TIMEOUT))?;
    s.set_write_timeout(Some(FORWARD_TIMEOUT))?;
    let mut out = Vec::with_capacity(2 + msg.len());
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
    s.write_all(&out)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut answer)?;
    Ok(answer)
}

/// Serves one DNS-over-TCP connection: two-byte length, message; answers in order until EOF,
/// an error, or [`TCP_IDLE`] without a complete message. An outside name goes to the host's
/// resolver when `forward` is given (its NXDOMAIN if that fails).
fn serve_tcp(
    mut conn: std::net::TcpStream,
    zone: &dns::Zone,
    forward: Option<&TcpForward>,
) -> io::Result<()> {
    conn.set_read_timeout(Some(TCP_IDLE))?;
    conn.set_write_timeout(Some(TCP_IDLE))?;
    let mut msg = vec![0u8; 65535];
    loop {
        let mut len = [0u8; 2];
        conn.read_exact(&mut len)?;
        let n = usize::from(u16::from_be_bytes(len));
        conn.read_exact(&mut msg[..n])?;
        // A message with no answer (a response, a runt) is skipped, as over UDP.
        if let Some(r) = dns::respond(&msg[..n], zone, dns::Transport::Tcp) {
            let bytes = match forward.filter(|_| r.outside) {
                Some(f) => forward_tcp(&msg[..n], f).unwrap_or(r.bytes),
                None => r.bytes,
            };
            let mut out = Vec::with_capacity(2 + bytes.len());
            out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            out.extend_from_slice(&bytes);
            conn.write_all(&out)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_of_a_resolv_conf() {
        let c = "# comment\nsearch example.com\nnameserver 127.0.0.53\nnameserver 1.1.1.1\n";
        assert_eq!(first_nameserver(c), Some("127.0.0.53:53".parse().unwrap()));
        assert_eq!(
            first_nameserver("nameserver fe80::1%eth0\nnameserver ::1\n"),
            Some("[::1]:53".parse().unwrap())
        );
        assert_eq!(first_nameserver("options ndots:2\n"), None);
    }

    #[test]
    fn tcp_server_answers_length_prefixed_queries() {
        // Needs no namespace: bind on loopback to exercise serve_tcp directly.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut z = dns::Zone::new();
        z.add(&["p0"], Some(std::net::Ipv4Addr::new(10, 0, 0, 2)), None);
        let t = std::thread::spawn(move || {
            let (c, _) = l.accept().unwrap();
            let _ = serve_tcp(c, &z, None);
        });
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        for id in [1u16, 2] {
            let q = dns::query(id, "p0", dns::rtype::A);
            c.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
            c.write_all(&q).unwrap();
            let mut len = [0u8; 2];
            c.read_exact(&mut len).unwrap();
            let mut a = vec![0u8; u16::from_be_bytes(len) as usize];
            c.read_exact(&mut a).unwrap();
            let s = dns::summarize(&a).unwrap();
            assert_eq!((s.id, s.answers.len()), (id, 1));
        }
        drop(c);
        t.join().unwrap();
    }
}
