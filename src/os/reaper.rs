//! Making sure nothing a session started outlives it.
//!
//! Killing each child's process group is not enough: a command's program may be a grandchild
//! that survives `kill -9` of plg (PDEATHSIG covers direct children only), and a daemon that
//! calls `setsid` leaves its group. What every such process still has is the network namespace
//! plg made for it. So the rule is: when a session ends, every process in one of its
//! namespaces dies.
//!
//! - [`kill_members`] does that sweep while plg is alive (normal end, Ctrl-C).
//! - [`Reaper`] is a small process forked at start that outlives plg: plg tells it each
//!   namespace it makes through a pipe; when the pipe reaches EOF (plg exited, however it
//!   died) it sweeps those namespaces with SIGKILL and removes plg's temporary files.

use std::collections::HashSet;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::Signal;

/// Every process (other than the caller) whose network namespace is one of `inodes`.
pub fn members(inodes: &HashSet<u64>) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| inodes.contains(&m.ino()))
        })
        .collect()
}

/// Sends `sig` to every process in the namespaces `inodes`; returns how many were found.
pub fn kill_members(inodes: &HashSet<u64>, sig: Signal) -> usize {
    let pids = members(inodes);
    for &pid in &pids {
        // ESRCH: it ended meanwhile.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
    pids.len()
}

/// The write end of the pipe to the reaper process. Dropping it (or plg dying) starts the
/// reaper's sweep.
pub struct Reaper {
    tx: OwnedFd,
}

impl Reaper {
    /// Forks the reaper. Must run while the process is single-threaded (a fork of a threaded
    /// process may inherit locks held by other threads); `cleanup` files are removed by the
    /// reaper after its sweep.
    pub fn start(cleanup: Vec<PathBuf>) -> anyhow::Result<Reaper> {
        let threads = super::rootless::thread_count()?;
        if threads != 1 {
            anyhow::bail!("the reaper must be started before any thread ({threads} threads)");
        }
        let (rx, tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .context("failed to create the reaper's pipe")?;
        // SAFETY: the process is single-threaded (checked above), so the child owns a
        // consistent copy of the whole address space, allocator included.
        match unsafe { nix::unistd::fork() }.context("failed to fork the reaper")? {
            nix::unistd::ForkResult::Parent { .. } => {
                drop(rx);
                Ok(Reaper { tx })
            }
            nix::unistd::ForkResult::Child => {
                drop(tx);
                reaper_main(rx, cleanup)
            }
        }
    }

    /// Adds a namespace to sweep when plg is gone.
    pub fn watch(&self, netns_inode: u64) -> anyhow::Result<()> {
        nix::unistd::write(&self.tx, &netns_inode.to_ne_bytes())
            .context("failed to tell the reaper about a namespace")?;
        Ok(())
    }
}

fn reaper_main(rx: OwnedFd, cleanup: Vec<PathBuf>) -> ! {
    // Out of the terminal's process group (its Ctrl-C is for plg), and deaf to the signals
    // plg's process group may get: this process must run until plg is gone.
    let _ = nix::unistd::setsid();
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGPIPE,
    ] {
        // SAFETY: SIG_IGN installs no handler code; this process is single-threaded.
        let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigIgn) };
    }
    // Only the pipe is needed: close everything else the fork inherited (stdio included, so
    // a reader of plg's output sees EOF when plg exits, not when the reaper does).
    let keep = rx.as_raw_fd();
    for fd in 0..1024 {
        if fd != keep {
            // SAFETY: closing fds this process does not use; nothing else refers to them
            // (the process is single-threaded and about to run only this function).
            unsafe { libc::close(fd) };
        }
    }
    // SAFETY: `keep` is the pipe's read end, owned by `rx`; ownership moves into the File.
    let mut pipe = unsafe { std::fs::File::from_raw_fd(keep) };
    std::mem::forget(rx);
    let mut inodes = HashSet::new();
    let mut buf = [0u8; 8];
    // Reads until EOF: every write end is closed only when plg has exited.
    while pipe.read_exact(&mut buf).is_ok() {
        inodes.insert(u64::from_ne_bytes(buf));
    }
    for _ in 0..100 {
        if kill_members(&inodes, Signal::SIGKILL) == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in cleanup {
        let _ = std::fs::remove_file(p);
    }
    // SAFETY: _exit ends the process without running the parent's atexit handlers or
    // flushing stdio buffers that were copied at fork.
    unsafe { libc::_exit(0) }
}
