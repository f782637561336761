//! One direction of a pipe: bytes read from one kernel socket, handed to the recorder, written
//! to the other socket. Bounded: at most one read's worth waits when the reader is slower, and
//! nothing more is read until it has gone, so a slow reader slows the sender (backpressure).
//!
//! Every chunk is recorded before it is written on; when the recorder says no (the capture
//! cannot be written), the chunk is not passed on and the direction stops. TCP urgent data
//! (`MSG_OOB`) is read inline (the sockets have SO_OOBINLINE) and, when the source is at the
//! urgent mark, the urgent byte is sent on as urgent data again.

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
    /// The recorder refused a chunk (capture write error): nothing more moves.
    Stopped,
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
    /// `record` returns false when the chunk could not be recorded: it is then not passed on.
    pub fn pump<S: Read + ShutdownWrite, D: Write + ShutdownWrite>(
        &mut self,
        src: &mut S,
        dst: &mut D,
        scratch: &mut [u8],
        record: &mut dyn FnMut(&[u8]) -> bool,
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
            // At the urgent mark the next byte is the urgent one (the read before stopped
            // short of it): pass it on as urgent data, so the receiver sees SIGURG/MSG_OOB too.
            let urgent = src.at_urgent_mark();
            let want = if urgent { 1 } else { scratch.len() };
            match src.read(&mut scratch[..want]) {
                Ok(0) => {
                    self.eof = true;
                    return Event::Fin;
                }
                Ok(1) if urgent => {
                    if !record(&scratch[..1]) {
                        return Event::Stopped;
                    }
                    match dst.send_urgent(scratch[0]) {
                        Ok(true) => {}
                        // Urgency cannot be kept now: the byte still goes, in order.
                        Ok(false) => {
                            self.backlog.push(scratch[0]);
                            continue;
                        }
                        Err(_) => return Event::DestReset,
                    }
                }
                Ok(n) => {
                    if !record(&scratch[..n]) {
                        return Event::Stopped;
                    }
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

/// What the relay needs of a socket besides reading and writing: `shutdown(SHUT_WR)` and
/// TCP urgent data.
pub trait ShutdownWrite {
    fn shutdown_write(&mut self) -> io::Result<()>;
    /// The next byte to read is the urgent byte.
    fn at_urgent_mark(&self) -> bool {
        false
    }
    /// Sends one byte as urgent data; Ok(false) if it would block.
    fn send_urgent(&mut self, _byte: u8) -> io::Result<bool> {
        Ok(false)
    }
}

impl ShutdownWrite for mio::net::TcpStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
    fn at_urgent_mark(&self) -> bool {
        crate::os::sockets::at_urgent_mark(self)
    }
    fn send_urgent(&mut self, byte: u8) -> io::Result<bool> {
        crate::os::sockets::send_urgent(self, byte)
    }
}

impl ShutdownWrite for io::Cursor<Vec<u8>> {
    fn shutdown_write(&mut self) -> io::Result<()> {
        Ok(())
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
                recorded.extend_from_slice(b);
                true
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

    #[test]
    fn a_chunk_the_recorder_refuses_is_not_passed_on() {
        let mut src = io::Cursor::new(vec![7u8; 5000]);
        let mut dst = Slow {
            got: vec![],
            cap: 1 << 20,
            block_next: false,
            shut: false,
        };
        let mut half = Half::default();
        let mut scratch = [0u8; 1000];
        let mut n = 0;
        let mut ev = Event::Idle;
        for _ in 0..10 {
            ev = half.pump(&mut src, &mut dst, &mut scratch, &mut |_| {
                n += 1;
                n < 3
            });
            if ev != Event::Idle {
                break;
            }
        }
        assert_eq!(ev, Event::Stopped);
        // Two chunks recorded and passed on; the third refused and kept back.
        assert_eq!(dst.got.len(), 2000);
    }
}
