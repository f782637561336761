//! One direction of a pipe: bytes read from one kernel socket, handed to the recorder, written
//! to the other socket. Bounded: at most one read's worth waits when the reader is slower, and
//! nothing more is read until it has gone, so a slow reader slows the sender (backpressure).

use std::io::{self, Read, Write};
use std::net::Shutdown;

/// What happened on one pump of a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Nothing more can move now (both sides would block, or this direction is finished).
    Idle,
    /// The source sent FIN: record it (the shutdown is passed on once the backlog is written).
    Fin,
    /// The source reset the connection.
    SourceReset,
    /// Writing to the destination failed: it reset the connection.
    DestReset,
}

/// State of one direction (client to server, or server to client).
#[derive(Debug, Default)]
pub struct Half {
    /// Bytes read but not yet written to the destination, from `pos`.
    backlog: Vec<u8>,
    pos: usize,
    /// The source sent FIN.
    pub eof: bool,
    /// The FIN was passed on (`shutdown(SHUT_WR)` on the destination).
    pub shut: bool,
}

pub fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

pub fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

impl Half {
    /// Is this direction finished: FIN seen, passed on, nothing waiting?
    pub fn done(&self) -> bool {
        self.eof && self.shut && self.backlog.is_empty()
    }

    /// Frees the backlog's memory (the connection is over).
    pub fn release(&mut self) {
        self.backlog = Vec::new();
        self.pos = 0;
    }

    pub fn backlog_len(&self) -> usize {
        self.backlog.len() - self.pos
    }

    /// Moves bytes from `src` to `dst` until one would block. Each chunk read is given to
    /// `record` before it is written on. `scratch` bounds a single read.
    pub fn pump<S: Read, D: Write + ShutdownWrite>(
        &mut self,
        src: &mut S,
        dst: &mut D,
        scratch: &mut [u8],
        record: &mut dyn FnMut(&[u8]),
    ) -> Event {
        loop {
            while self.pos < self.backlog.len() {
                match dst.write(&self.backlog[self.pos..]) {
                    Ok(n) => self.pos += n,
                    Err(e) if would_block(&e) => return Event::Idle,
                    Err(e) if interrupted(&e) => {}
                    Err(_) => return Event::DestReset,
                }
            }
            self.backlog.clear();
            self.pos = 0;
            if self.eof {
                if !self.shut {
                    self.shut = true;
                    // ENOTCONN here means the destination is already gone; its own
                    // direction will report that.
                    let _ = dst.shutdown_write();
                }
                return Event::Idle;
            }
            match src.read(scratch) {
                Ok(0) => {
                    self.eof = true;
                    return Event::Fin;
                }
                Ok(n) => {
                    record(&scratch[..n]);
                    let mut written = 0;
                    while written < n {
                        match dst.write(&scratch[written..n]) {
                            Ok(w) => written += w,
                            Err(e) if interrupted(&e) => {}
                            Err(e) if would_block(&e) => break,
                            Err(_) => return Event::DestReset,
                        }
                    }
                    if written < n {
                        self.backlog.extend_from_slice(&scratch[written..n]);
                        return Event::Idle;
                    }
                }
                Err(e) if would_block(&e) => return Event::Idle,
                Err(e) if interrupted(&e) => {}
                Err(_) => return Event::SourceReset,
            }
        }
    }
}

/// `shutdown(SHUT_WR)`, for the socket types the relay writes to.
pub trait ShutdownWrite {
    fn shutdown_write(&mut self) -> io::Result<()>;
}

impl ShutdownWrite for mio::net::TcpStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A destination that accepts `cap` bytes per call and then would block once.
    struct Slow {
        got: Vec<u8>,
        cap: usize,
        block_next: bool,
        shut: bool,
    }
    impl Write for Slow {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.block_next {
                self.block_next = false;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.block_next = true;
            let n = b.len().min(self.cap);
            self.got.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl ShutdownWrite for Slow {
        fn shutdown_write(&mut self) -> io::Result<()> {
            self.shut = true;
            Ok(())
        }
    }

    #[test]
    fn backpressure_keeps_order_and_bounds_the_backlog() {
        let input: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut src = io::Cursor::new(input.clone());
        let mut dst = Slow {
            got: vec![],
            cap: 700,
            block_next: false,
            shut: false,
        };
        let mut half = Half::default();
        let mut scratch = [0u8; 1024];
        let mut recorded = Vec::new();
        let mut fin = false;
        for _ in 0..1000 {
            let ev = half.pump(&mut src, &mut dst, &mut scratch, &mut |b| {
                recorded.extend_from_slice(b)
            });
            assert!(half.backlog_len() <= scratch.len());
            if ev == Event::Fin {
                fin = true;
            }
            if half.done() {
                break;
            }
        }
        assert!(fin && half.done() && dst.shut);
        assert_eq!(dst.got, input);
        assert_eq!(recorded, input);
    }
}
