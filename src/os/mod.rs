//! The operating system: network namespaces, TUN devices, processes. The only unsafe code.
//!
//! What this layer owns: every syscall plg makes about namespaces, devices, signals and child
//! processes. It knows nothing about packets, captures or the NAT table.
//!
//! Rules kept throughout:
//! - Every fd is an [`OwnedFd`](std::os::fd::OwnedFd) (or a type wrapping one) from the moment
//!   the kernel returns it, opened with `O_CLOEXEC`, so an error path or a concurrent `fork`
//!   never leaks it into a child.
//! - Every `unsafe` block has a `SAFETY:` note.
//! - "Which namespace" is decided by *which thread* issues the syscall: a TUN belongs to the
//!   network namespace of the thread that opened `/dev/net/tun`, a socket to the one of the
//!   thread that created it, and `SIOCSIF*` ioctls act in the namespace of the socket issuing
//!   them. So every function here that says "in the calling thread's netns" does all of its work
//!   (including the helper ioctl socket) on the calling thread.
//! - `/proc/net/...` (a symlink to `/proc/self/net`) shows the namespace of the *thread group
//!   leader*, not of the calling thread; code that runs on a helper thread must read
//!   `/proc/thread-self/net/...` instead. Likewise `/sys/class/net` shows the namespace that
//!   mounted sysfs, never the caller's: use ioctls to inspect an interface.

#![allow(unsafe_code)]

pub mod file;
pub mod hostsock;
pub mod limits;
pub mod netns;
pub mod output;
pub mod process;
pub mod reaper;
pub mod rootless;
pub mod signals;
pub mod sockets;
pub mod tun;

pub use hostsock::HostSockets;
pub use netns::{disable_ipv6, ipv6_quiet, loopback_up, sysctl_set, Netns};
pub use process::{listening_ports, signal_group, spawn, Exit, SpawnSpec, Spawned};
pub use rootless::enter_user_namespace_if_needed;
pub use signals::{block_and_signalfd, SignalFd};
pub use tun::{create_tun, TunConfig};

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context};

/// A datagram socket used only to issue interface ioctls, created in the calling thread's netns.
pub(crate) fn ioctl_socket() -> anyhow::Result<OwnedFd> {
    // SAFETY: socket(2) has no memory preconditions; the returned fd is checked and owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .context("failed to create a socket for interface ioctls");
    }
    // SAFETY: `fd` was just returned by socket(2), is valid and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An `ifreq` with its name set; the union is zeroed.
pub(crate) fn ifreq_named(name: &str) -> anyhow::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        bail!(
            "invalid interface name {name:?}: at most {} bytes, no NUL",
            libc::IFNAMSIZ - 1
        );
    }
    // SAFETY: ifreq is plain old data (arrays, integers, a union of those and a raw pointer);
    // all-zero is a valid value for each of them.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Ok(ifr)
}

/// The name the kernel wrote back into an `ifreq`.
pub(crate) fn ifreq_name(ifr: &libc::ifreq) -> String {
    let bytes: Vec<u8> = ifr
        .ifr_name
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Issues an interface ioctl (`SIOC[GS]IF*`) on `sock`.
pub(crate) fn ifreq_ioctl(
    sock: &OwnedFd,
    request: libc::c_ulong,
    ifr: &mut libc::ifreq,
) -> std::io::Result<()> {
    // SAFETY: every request passed here (SIOC[GS]IF{ADDR,NETMASK,MTU,TXQLEN,FLAGS}) reads or
    // writes exactly one `struct ifreq`, and `ifr` is a valid, exclusively borrowed one.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), request as _, ifr as *mut libc::ifreq) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether the process is root in its (possibly user) namespace. Tests use it to decide whether
/// the root-only tests can run.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
