//! Signals as events: SIGINT, SIGTERM, SIGHUP and SIGCHLD are blocked and read from a signalfd that the
//! engine polls with everything else, instead of being handled asynchronously.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use anyhow::Context;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SfdFlags;

/// The signals plg handles through its signalfd.
/// SIGHUP (terminal closed, SSH dropped) is one: by default it would kill plg on the spot,
/// like `kill -9`, leaving the capture unfinished.
pub const HANDLED: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGCHLD,
];

/// A non-blocking, close-on-exec signalfd for [`HANDLED`]. Register [`SignalFd::fd`] (or the raw
/// fd, for mio's `SourceFd`) for readability, then call [`SignalFd::read_signals`].
#[derive(Debug)]
pub struct SignalFd {
    inner: nix::sys::signalfd::SignalFd,
}

/// Blocks SIGINT, SIGTERM, SIGHUP and SIGCHLD in the calling thread and returns a signalfd for them.
///
/// Call it first thing in `main`, before any thread exists: the mask is per thread and
/// inherited by threads created afterwards. A process-directed signal is delivered to any
/// thread that does not block it, so a single thread created earlier would take SIGTERM with
/// the default action (death) and the signalfd would never see it.
///
/// Children inherit the mask across `exec`; [`spawn`](super::process::spawn) clears it.
pub fn block_and_signalfd() -> anyhow::Result<SignalFd> {
    let mut mask = SigSet::empty();
    for sig in HANDLED {
        mask.add(sig);
    }
    mask.thread_block()
        .context("failed to block SIGINT/SIGTERM/SIGHUP/SIGCHLD")?;
    let inner = nix::sys::signalfd::SignalFd::with_flags(
        &mask,
        SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
    )
    .context("failed to create the signalfd")?;
    Ok(SignalFd { inner })
}

impl SignalFd {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }

    /// Every signal pending now, in arrival order; empty when none is (the fd never blocks).
    ///
    /// Standard signals do not queue: several children exiting between two reads give a
    /// single SIGCHLD, so on SIGCHLD reap every child (`try_wait` each), not just one.
    pub fn read_signals(&self) -> anyhow::Result<Vec<Signal>> {
        let mut out = Vec::new();
        loop {
            match self.inner.read_signal() {
                Ok(Some(info)) => {
                    // Unknown numbers cannot occur: the mask holds only HANDLED.
                    if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                        out.push(sig);
                    }
                }
                Ok(None) => return Ok(out),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).context("failed to read the signalfd"),
            }
        }
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for SignalFd {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}
