//! The reaper: a small process forked at start that outlives plg and removes plg's temporary
//! files (the hosts file) however plg dies, `kill -9` included.
//!
//! It kills nothing. Ending a session's processes is not its job any more: each command runs
//! in a PID namespace of its own whose init dies with plg (see `os::process`), which the
//! kernel turns into SIGKILL for every process of it. An earlier reaper swept processes by
//! network-namespace inode number after plg died; the kernel reuses those numbers within
//! seconds, so a reaper running late (a loaded machine, a process stopped with SIGSTOP) killed
//! the processes of a session started after it. A reaper that only deletes files named after
//! plg's own pid cannot hurt anyone.
//!
//! plg watches it through a pidfd ([`Reaper::alive`]) and says so if it dies.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use anyhow::Context;
use nix::sys::signal::Signal;

/// The write end of the pipe to the reaper process. Dropping it (or plg dying) makes the
/// reaper clean up and exit.
pub struct Reaper {
    _tx: OwnedFd,
    pidfd: OwnedFd,
    pid: i32,
}

impl Reaper {
    /// Forks the reaper. Must run while the process is single-threaded (a fork of a threaded
    /// process may inherit locks held by other threads); `cleanup` files are removed by the
    /// reaper once plg is gone.
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
            nix::unistd::ForkResult::Parent { child } => {
                drop(rx);
                // The child is not reaped before this, so its pid cannot have been reused.
                let pidfd = super::process::pidfd_open(child.as_raw())
                    .context("failed to open the reaper's pidfd")?;
                Ok(Reaper {
                    _tx: tx,
                    pidfd,
                    pid: child.as_raw(),
                })
            }
            nix::unistd::ForkResult::Child => {
                drop(tx);
                reaper_main(rx, cleanup)
            }
        }
    }

    /// Whether the reaper still runs.
    pub fn alive(&self) -> bool {
        !super::process::pidfd_exited(&self.pidfd)
    }

    /// Its pid (for messages and tests).
    pub fn pid(&self) -> i32 {
        self.pid
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
    // Reads until EOF: the write end is closed only when plg has exited.
    let mut buf = [0u8; 64];
    while matches!(pipe.read(&mut buf), Ok(n) if n > 0) {}
    for p in cleanup {
        let _ = std::fs::remove_file(p);
    }
    // SAFETY: _exit ends the process without running the parent's atexit handlers or
    // flushing stdio buffers that were copied at fork.
    unsafe { libc::_exit(0) }
}
