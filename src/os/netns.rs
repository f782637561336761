//! Network namespaces: create, hold, enter; and the per-namespace settings plg needs
//! (loopback up, IPv6 off, sysctls).
//!
//! How plg switches namespaces: never by moving a long-lived thread back and forth. A namespace
//! is created on a fresh thread that `unshare(CLONE_NEWNET)`s (this changes only that thread),
//! and work in an existing namespace runs on a fresh thread that `setns`es into it. The thread
//! then dies with its namespace membership, so a failed "switch back" (netavark's guard has to
//! handle that case) cannot leave a pooled thread in the wrong namespace. In rootless mode there
//! is no way back to the host namespace at all, which is another reason not to rely on one.
//!
//! A namespace lives as long as someone holds it: a process in it or an open ns fd. [`Netns`]
//! holds the fd of `/proc/thread-self/ns/net`, so it keeps the namespace alive after the thread
//! that created it is gone.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{anyhow, Context};
use nix::sched::CloneFlags;

/// A network namespace, kept alive by an open fd of its `ns/net` file.
#[derive(Debug)]
pub struct Netns {
    fd: OwnedFd,
}

impl Netns {
    /// Creates a fresh network namespace: a new thread `unshare(CLONE_NEWNET)`s, opens its ns fd,
    /// runs `f` inside (for example to create the TUN, which then belongs to this namespace) and
    /// returns both. The namespace starts with only a `lo` that is down.
    pub fn create_with<T: Send + 'static>(
        f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<(Netns, T)> {
        on_fresh_thread("netns-create", move || {
            // unshare(CLONE_NEWNET) from a thread moves only this thread (network namespaces
            // are per task, unlike CLONE_NEWUSER which needs a single-threaded process).
            nix::sched::unshare(CloneFlags::CLONE_NEWNET)
                .context("failed to create a network namespace (unshare CLONE_NEWNET)")?;
            let ns = Netns::current()?;
            let value = f()?;
            Ok((ns, value))
        })
    }

    /// Runs `f` on a fresh thread that has joined this namespace: sockets and TUNs created in
    /// `f` belong to it, ioctls in `f` act on it.
    pub fn run_in<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let ns = self.try_clone()?;
        on_fresh_thread("netns-run", move || {
            ns.enter_current_thread()?;
            drop(ns);
            f()
        })
    }

    /// Moves the calling thread into this namespace for good (the engine thread lives in the
    /// proxy namespace). Threads the caller spawns afterwards inherit it.
    pub fn enter_current_thread(&self) -> anyhow::Result<()> {
        nix::sched::setns(self.fd.as_fd(), CloneFlags::CLONE_NEWNET)
            .context("failed to enter the network namespace (setns)")
    }

    /// The network namespace of the calling thread.
    pub fn current() -> anyhow::Result<Netns> {
        // thread-self, not self: /proc/self/ns/net is the thread group leader's namespace,
        // which differs from ours on any thread that unshared or setns'd.
        let path = "/proc/thread-self/ns/net";
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .with_context(|| format!("failed to open {path}"))?;
        Ok(Netns { fd: file.into() })
    }

    /// The network namespace a socket belongs to (`SIOCGSKNS`; needs CAP_NET_ADMIN over it).
    /// Useful to check which namespace a socket was really created in.
    pub fn of_socket(sock: BorrowedFd<'_>) -> anyhow::Result<Netns> {
        // From <linux/sockios.h>; libc exports it for Android only.
        const SIOCGSKNS: libc::c_ulong = 0x894C;
        // SAFETY: SIOCGSKNS takes no argument and returns a new fd (or -1); `sock` is open.
        let fd = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCGSKNS as _) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error())
                .context("failed to get the namespace of a socket (SIOCGSKNS)");
        }
        // SAFETY: the kernel just returned this new fd (opened O_CLOEXEC), owned by nobody else.
        Ok(Netns {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The ns fd, for `setns` in a child's `pre_exec`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Another handle on the same namespace (a dup'd fd, `O_CLOEXEC`).
    pub fn try_clone(&self) -> anyhow::Result<Netns> {
        let fd = self
            .fd
            .try_clone()
            .context("failed to duplicate the namespace fd")?;
        Ok(Netns { fd })
    }

    /// The namespace's inode number: equal inodes (on nsfs) mean the same namespace. This is
    /// what `readlink /proc/<pid>/ns/net` shows as `net:[<inode>]`.
    pub fn inode(&self) -> anyhow::Result<u64> {
        let st = nix::sys::stat::fstat(&self.fd).context("failed to stat the namespace fd")?;
        Ok(st.st_ino)
    }
}

/// The namespace inode of process `pid` (`/proc/<pid>/ns/net`).
pub fn inode_of_pid(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/ns/net");
    let meta = std::fs::metadata(&path).with_context(|| format!("failed to stat {path}"))?;
    Ok(meta.ino())
}

/// Runs `f` on a new thread and waits for it. A panic in `f` becomes an error.
fn on_fresh_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let handle = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .with_context(|| format!("failed to spawn the {name} thread"))?;
    handle
        .join()
        .map_err(|_| anyhow!("the {name} thread panicked"))?
}

/// Brings `lo` up in the calling thread's netns (an ioctl, no `ip` binary). A fresh namespace
/// has `lo` down, so even 127.0.0.1 is unreachable until this runs.
pub fn loopback_up() -> anyhow::Result<()> {
    let sock = super::ioctl_socket()?;
    let mut ifr = super::ifreq_named("lo")?;
    super::ifreq_ioctl(&sock, libc::SIOCGIFFLAGS, &mut ifr)
        .context("failed to read the flags of lo")?;
    // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member of the union.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    ifr.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    super::ifreq_ioctl(&sock, libc::SIOCSIFFLAGS, &mut ifr).context("failed to bring lo up")
}

/// Turns IPv6 on in the calling thread's netns, quietly: no duplicate address detection (an
/// address is usable at once, nothing waits), no router solicitations, no router
/// advertisements accepted, no link-local address on new interfaces (nothing but the addresses
/// plg gives). Call before creating the TUN: new interfaces take the `default` values.
pub fn ipv6_quiet() -> anyhow::Result<()> {
    for conf in ["all", "default"] {
        sysctl_set(&format!("net/ipv6/conf/{conf}/disable_ipv6"), "0")?;
        sysctl_set(&format!("net/ipv6/conf/{conf}/accept_dad"), "0")?;
        sysctl_set(&format!("net/ipv6/conf/{conf}/dad_transmits"), "0")?;
        sysctl_set(&format!("net/ipv6/conf/{conf}/router_solicitations"), "0")?;
        sysctl_set(&format!("net/ipv6/conf/{conf}/accept_ra"), "0")?;
        // 1 = none: no link-local address (kernels before 4.11 lack it: not fatal).
        let _ = sysctl_set(&format!("net/ipv6/conf/{conf}/addr_gen_mode"), "1");
    }
    Ok(())
}

/// Disables IPv6 in the calling thread's netns (`conf/{all,default}/disable_ipv6 = 1`), so a
/// TUN created afterwards sends no router solicitations. Fine if the kernel has no IPv6.
pub fn disable_ipv6() -> anyhow::Result<()> {
    if !Path::new("/proc/sys/net/ipv6").exists() {
        return Ok(());
    }
    sysctl_set("net/ipv6/conf/all/disable_ipv6", "1")?;
    sysctl_set("net/ipv6/conf/default/disable_ipv6", "1")
}

/// Writes a sysctl in the calling thread's netns, `key` like `net/ipv4/tcp_tw_reuse` (dots are
/// accepted too). Files under `/proc/sys/net` resolve to the namespace of the thread that
/// opens them, so this must run on a thread inside the target namespace.
pub fn sysctl_set(key: &str, value: &str) -> anyhow::Result<()> {
    let path = sysctl_path(key)?;
    let mut file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .with_context(|| format!("failed to open sysctl {path}"))?;
    file.write_all(value.as_bytes())
        .with_context(|| format!("failed to write {value:?} to sysctl {path}"))
}

/// Reads a sysctl in the calling thread's netns (trimmed).
pub fn sysctl_get(key: &str) -> anyhow::Result<String> {
    let path = sysctl_path(key)?;
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("failed to read sysctl {path}"))?;
    Ok(text.trim().to_string())
}

fn sysctl_path(key: &str) -> anyhow::Result<String> {
    // Like sysctl(8): a key with a slash is a path (so `conf/tun.0/...` keeps its dot), a key
    // without one uses dots as separators.
    let rel = if key.contains('/') {
        key.trim_start_matches('/').to_string()
    } else {
        key.replace('.', "/")
    };
    if rel.is_empty() || rel.split('/').any(|part| part.is_empty() || part == "..") {
        anyhow::bail!("invalid sysctl key {key:?}");
    }
    Ok(format!("/proc/sys/{rel}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_keys() {
        assert_eq!(
            sysctl_path("net/ipv4/tcp_tw_reuse").unwrap(),
            "/proc/sys/net/ipv4/tcp_tw_reuse"
        );
        assert_eq!(
            sysctl_path("net.ipv4.ip_local_port_range").unwrap(),
            "/proc/sys/net/ipv4/ip_local_port_range"
        );
        assert_eq!(
            sysctl_path("net/ipv4/conf/tun.0/rp_filter").unwrap(),
            "/proc/sys/net/ipv4/conf/tun.0/rp_filter"
        );
        assert!(sysctl_path("net/../../etc").is_err());
        assert!(sysctl_path("").is_err());
    }

    #[test]
    fn current_namespace_is_stable() {
        let a = Netns::current().unwrap();
        let b = a.try_clone().unwrap();
        assert_eq!(a.inode().unwrap(), b.inode().unwrap());
        assert_eq!(
            a.inode().unwrap(),
            inode_of_pid(std::process::id()).unwrap()
        );
    }
}
