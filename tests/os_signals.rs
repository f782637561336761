//! The signalfd: blocked signals arrive as readable events. Needs no root.
//!
//! Signals are sent to this test's own thread (tgkill): a process-directed signal could be
//! taken by another thread of the test harness, which does not block it. plg avoids that by
//! blocking first thing in `main`, before any thread exists.

use std::os::fd::AsFd;

use nix::sys::signal::Signal;
use plg::os::block_and_signalfd;

fn signal_this_thread(sig: Signal) {
    // SAFETY: tgkill with our own pid and tid has no memory preconditions.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            libc::gettid(),
            sig as libc::c_int,
        )
    };
    assert_eq!(rc, 0, "tgkill: {}", std::io::Error::last_os_error());
}

#[test]
fn blocked_signals_are_read_from_the_signalfd() {
    // Runs on its own test thread, which exits afterwards: the mask goes with it.
    let sfd = block_and_signalfd().unwrap();
    let fl = nix::fcntl::fcntl(sfd.fd(), nix::fcntl::FcntlArg::F_GETFL).unwrap();
    assert!(fl & libc::O_NONBLOCK != 0, "non-blocking");
    let fdfl = nix::fcntl::fcntl(sfd.as_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
    assert!(fdfl & libc::FD_CLOEXEC != 0, "close-on-exec");

    assert_eq!(sfd.read_signals().unwrap(), vec![], "nothing pending");
    signal_this_thread(Signal::SIGTERM);
    signal_this_thread(Signal::SIGCHLD);
    signal_this_thread(Signal::SIGCHLD); // standard signals coalesce
    signal_this_thread(Signal::SIGINT);
    // Still alive: the signals were blocked, not acted on. Lowest number first (2, 15, 17).
    assert_eq!(
        sfd.read_signals().unwrap(),
        vec![Signal::SIGINT, Signal::SIGTERM, Signal::SIGCHLD]
    );
    assert_eq!(sfd.read_signals().unwrap(), vec![]);
}
