//! File-descriptor limits: how many sockets the relay may hold, and a spare fd for refusing a
//! connection when there are none left.
//!
//! Each relayed connection costs two fds (its upstream socket and the accepted client leg). The
//! usual soft limit of 1,024 would cap plg at a few hundred connections, and running out inside
//! `accept()` leaves the client hanging in the listener's queue: so the limit is raised at start
//! and the relay sizes its connection cap from what it got.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// The limits plg was started with, saved before the first raise (for the children).
static SAVED: AtomicBool = AtomicBool::new(false);
static SAVED_SOFT: AtomicU64 = AtomicU64::new(0);
static SAVED_HARD: AtomicU64 = AtomicU64::new(0);

/// Raises the soft RLIMIT_NOFILE towards `want`: to the hard limit, and past it when allowed
/// (root with CAP_SYS_RESOURCE may raise the hard limit up to `fs.nr_open`). Returns the soft
/// limit in force afterwards. Never lowers anything.
pub fn raise_nofile(want: u64) -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur >= want {
        return Ok(lim.rlim_cur);
    }
    if !SAVED.load(Relaxed) {
        SAVED_SOFT.store(lim.rlim_cur, Relaxed);
        SAVED_HARD.store(lim.rlim_max, Relaxed);
        SAVED.store(true, Relaxed);
    }
    if lim.rlim_max < want {
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: want,
        };
        // SAFETY: setrlimit reads one rlimit we own; failure (EPERM without CAP_SYS_RESOURCE,
        // or above fs.nr_open) leaves the limits as they were.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(want);
        }
    }
    let soft = libc::rlimit {
        rlim_cur: lim.rlim_max.min(want),
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above; the soft limit may always be raised up to the hard one.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(soft.rlim_cur)
}

/// In a forked child before exec: puts back the fd limits plg was started with, so programs
/// run under plg see the limits they would see without it (many assume a soft limit of 1,024,
/// e.g. for select()). Only a syscall on saved numbers: async-signal-safe.
pub fn restore_in_child() {
    if !SAVED.load(Relaxed) {
        return;
    }
    let lim = libc::rlimit {
        rlim_cur: SAVED_SOFT.load(Relaxed),
        rlim_max: SAVED_HARD.load(Relaxed),
    };
    // SAFETY: setrlimit reads one rlimit we own. Lowering needs no privilege; a failure
    // leaves the raised limits, which is harmless.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
}

/// How many fds this process has open now (entries of /proc/self/fd).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A spare fd (on /dev/null), given up for a moment when `accept()` fails with EMFILE so the
/// waiting connection can be taken off the queue and refused instead of hanging there.
pub struct SpareFd(Option<OwnedFd>);

impl SpareFd {
    pub fn new() -> SpareFd {
        SpareFd(Self::open())
    }

    fn open() -> Option<OwnedFd> {
        std::fs::File::open("/dev/null").ok().map(OwnedFd::from)
    }

    /// Runs `f` with the spare fd released, then takes it back.
    pub fn without<T>(&mut self, f: impl FnOnce() -> T) -> T {
        self.0 = None;
        let r = f();
        self.0 = Self::open();
        r
    }

    pub fn is_held(&self) -> bool {
        self.0.as_ref().is_some_and(|f| f.as_raw_fd() >= 0)
    }
}

impl Default for SpareFd {
    fn default() -> Self {
        Self::new()
    }
}

/// True for the errors that mean "no fd or kernel memory left" rather than a bad connection.
pub fn is_out_of_fds(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_never_lowers() {
        let before = raise_nofile(0).unwrap();
        assert!(before > 0);
        assert!(raise_nofile(16).unwrap() >= before.min(16));
    }

    #[test]
    fn urgent_byte_is_marked_and_read_inline() {
        use crate::os::sockets::{at_urgent_mark, send_urgent};
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut b, _) = l.accept().unwrap();
        socket2::SockRef::from(&b)
            .set_out_of_band_inline(true)
            .unwrap();
        a.write_all(b"ab").unwrap();
        assert!(send_urgent(&a, b'!').unwrap());
        a.write_all(b"cd").unwrap();
        drop(a);
        let mut got = Vec::new();
        let mut marked = None;
        let mut buf = [0u8; 16];
        loop {
            if at_urgent_mark(&b) {
                marked = Some(got.len());
            }
            let n = b.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"ab!cd");
        assert_eq!(marked, Some(2));
    }
}
