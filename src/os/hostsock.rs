//! A thread that makes TCP sockets in the namespace it was started in.
//!
//! In rootless mode the engine thread, once it has entered the proxy namespace, can never
//! `setns` back to the host namespace (the host namespace is owned by the initial user
//! namespace, where we have no capability). But a socket belongs to the namespace of the thread
//! that *creates* it, and stays usable from anywhere. So a thread started before the engine
//! leaves keeps the host namespace and creates sockets there on request (`--allow-external`
//! connects to the host's 127.0.0.1, and the DNS forwarder sends to the host's resolver).
//! Creating a socket is the only thing it does: connecting, reading and writing happen on the
//! engine thread.

use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::{anyhow, Context};
use socket2::{Domain, Protocol, Socket, Type};

type Reply = mpsc::SyncSender<std::io::Result<Socket>>;
/// What to make: (domain, type, protocol), and where to send it.
type Request = (Domain, Type, Protocol, Reply);

/// The socket-making thread. Dropping it stops the thread.
#[derive(Debug)]
pub struct HostSockets {
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl HostSockets {
    /// Starts the thread. It inherits the network namespace of the *calling thread* (a new
    /// thread copies its creator's namespaces), so call this before the caller moves elsewhere.
    pub fn start() -> anyhow::Result<HostSockets> {
        let (tx, rx) = mpsc::channel::<Request>();
        let thread = std::thread::Builder::new()
            .name("plg-hostsock".into())
            .spawn(move || {
                for (domain, ty, proto, reply) in rx {
                    let sock = Socket::new(domain, ty.nonblocking().cloexec(), Some(proto));
                    // The requester may have given up; nothing to do then.
                    let _ = reply.send(sock);
                }
            })
            .context("failed to spawn the host socket thread")?;
        Ok(HostSockets {
            requests: Some(tx),
            thread: Some(thread),
        })
    }

    /// A new non-blocking, close-on-exec IPv4 TCP socket in the namespace of [`start`]'s caller.
    ///
    /// [`start`]: HostSockets::start
    pub fn tcp_socket(&self) -> anyhow::Result<Socket> {
        self.tcp_socket_for(false)
    }

    /// A new non-blocking, close-on-exec TCP socket (IPv4 or IPv6) in that namespace.
    pub fn tcp_socket_for(&self, v6: bool) -> anyhow::Result<Socket> {
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        self.make(domain, Type::STREAM, Protocol::TCP)
            .context("failed to create a TCP socket in the host namespace")
    }

    /// A new non-blocking, close-on-exec UDP socket (IPv4 or IPv6) in that namespace.
    pub fn udp_socket(&self, v6: bool) -> anyhow::Result<Socket> {
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        self.make(domain, Type::DGRAM, Protocol::UDP)
            .context("failed to create a UDP socket in the host namespace")
    }

    fn make(&self, domain: Domain, ty: Type, proto: Protocol) -> anyhow::Result<Socket> {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        self.requests
            .as_ref()
            .and_then(|r| r.send((domain, ty, proto, reply_tx)).ok())
            .ok_or_else(|| anyhow!("the host socket thread has stopped"))?;
        Ok(reply_rx
            .recv()
            .map_err(|_| anyhow!("the host socket thread has stopped"))??)
    }
}

impl Drop for HostSockets {
    fn drop(&mut self) {
        // Closing the request channel ends the thread's loop.
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
