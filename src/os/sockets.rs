//! The relay's sockets and TUN I/O: the listener that accepts client legs, upstream connects,
//! abortive closes, TCP urgent data, and reading and writing TUN frames. Everything the engine
//! does to the kernel besides polling goes through here.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use anyhow::Context as _;
use socket2::{Domain, SockRef, Socket, Type};

/// Binds a non-blocking listener with a deep backlog (every relayed connection passes
/// through it).
pub fn listen(addr: SocketAddr, backlog: i32) -> anyhow::Result<TcpListener> {
    let s = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        None,
    )
    .context("failed to create the proxy listener")?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())
        .with_context(|| format!("failed to bind the proxy listener to {addr}"))?;
    s.listen(backlog)
        .context("failed to listen on the proxy listener")?;
    Ok(s.into())
}

/// A fresh non-blocking TCP socket of `to`'s family in the calling thread's namespace.
pub fn tcp_socket(to: SocketAddr) -> io::Result<Socket> {
    Socket::new(
        Domain::for_address(to),
        Type::STREAM.nonblocking().cloexec(),
        None,
    )
}

/// Starts a non-blocking connect of `sock` to `to` (no Nagle, urgent data in line). Returns
/// the stream and its local port, known at once (before its SYN leaves).
pub fn connect(sock: Socket, to: SocketAddr) -> io::Result<(TcpStream, u16)> {
    sock.set_nonblocking(true)?;
    sock.set_tcp_nodelay(true)?;
    // Urgent data is read in line, so it is recorded and passed on (see `engine::relay`).
    sock.set_out_of_band_inline(true)?;
    match sock.connect(&to.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let port = sock
        .local_addr()?
        .as_socket()
        .map(|a| a.port())
        .unwrap_or(0);
    Ok((sock.into(), port))
}

/// Settings for an accepted client leg: no Nagle, urgent data in line.
pub fn accepted(s: &impl AsFd) {
    let s = SockRef::from(s);
    let _ = s.set_tcp_nodelay(true);
    let _ = s.set_out_of_band_inline(true);
}

/// Makes the last close of `s` send RST instead of FIN (SO_LINGER 0).
pub fn abort_on_close(s: &impl AsFd) {
    let _ = SockRef::from(s).set_linger(Some(Duration::ZERO));
}

/// Reads one frame from a TUN fd.
pub fn tun_read(fd: &impl AsFd, buf: &mut [u8]) -> nix::Result<usize> {
    nix::unistd::read(fd, buf)
}

/// Writes one frame to a TUN fd.
pub fn tun_write(fd: &impl AsFd, frame: &[u8]) -> nix::Result<usize> {
    nix::unistd::write(fd, frame)
}

/// `SIOCATMARK` on Linux (asm-generic/sockios.h; libc does not export it for Linux).
const SIOCATMARK: libc::c_ulong = 0x8905;

/// `sockatmark(3)`: the next byte to read from `fd` is the urgent (out-of-band) byte.
pub fn at_urgent_mark(fd: &impl AsRawFd) -> bool {
    let mut at: libc::c_int = 0;
    // SAFETY: SIOCATMARK writes one int into `at`, which we own, for an fd kept open for the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), SIOCATMARK as _, &mut at) };
    r == 0 && at == 1
}

/// Sends one byte as TCP urgent data (`send(MSG_OOB)`). Returns false if it would block.
pub fn send_urgent(fd: &impl AsRawFd, byte: u8) -> io::Result<bool> {
    let buf = [byte];
    loop {
        // SAFETY: send reads one byte from a buffer we own, on an fd kept open for the call.
        let n = unsafe {
            libc::send(
                fd.as_raw_fd(),
                buf.as_ptr().cast(),
                1,
                libc::MSG_OOB | libc::MSG_NOSIGNAL,
            )
        };
        if n == 1 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(false),
            _ => return Err(e),
        }
    }
}
