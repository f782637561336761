//! The recorder: every capture write, the Summary counters and the live stats, in one place.
//! Record and replay both go through it, so a byte is counted exactly when it is recorded.
//!
//! Disk space is reserved ahead of what is written (`Close::reserve`, where the filesystem can
//! do it), so the recorder can say "no" *before* a chunk is passed on: when the disk is full,
//! the relay stops with every byte any process received already in the capture. After the
//! first error every call says no; the loop then ends the session with that error.

use super::sink::Close;
use super::Stats;
use crate::format::{
    CaptureWriter, CloseKind, ConnClose, ConnId, ConnOpen, Direction, Outcome, ProcessExit, Record,
    Summary,
};
use std::io::{self, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Disk space is reserved this far ahead of the bytes written.
const RESERVE_STEP: u64 = 32 << 20;
/// More than any block's framing around its payload.
const BLOCK_OVERHEAD: u64 = 256;

pub struct Recorder<W: Write + Close> {
    capture: Option<CaptureWriter<W>>,
    error: Option<io::Error>,
    summary: Summary,
    stats: Arc<Stats>,
    /// Bytes of the capture file with disk space allocated.
    reserved: u64,
    /// The output can reserve space (until it says it cannot).
    reserving: bool,
}

impl<W: Write + Close> Recorder<W> {
    pub fn new(capture: Option<CaptureWriter<W>>, processes: u32, stats: Arc<Stats>) -> Self {
        Recorder {
            capture,
            error: None,
            summary: Summary {
                processes,
                ..Summary::default()
            },
            stats,
            reserved: 0,
            reserving: true,
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// A write failed: nothing more may be relayed.
    /// A capture is being written.
    pub fn capturing(&self) -> bool {
        self.capture.is_some()
    }

    pub fn failed(&self) -> bool {
        self.error.is_some()
    }

    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    /// Room on disk for a block of `len` payload bytes; false (and the error kept) if not.
    fn room(&mut self, len: usize) -> bool {
        if self.error.is_some() {
            return false;
        }
        let Some(c) = self.capture.as_ref() else {
            return true;
        };
        if !self.reserving {
            return true;
        }
        let need = c.bytes_written() + len as u64 + BLOCK_OVERHEAD;
        if need <= self.reserved {
            return true;
        }
        let out = c.get_ref();
        match out.reserve(need + RESERVE_STEP) {
            Ok(true) => self.reserved = need + RESERVE_STEP,
            Ok(false) => self.reserving = false,
            // Not that much left: take exactly what this block needs, if it is there.
            Err(_) => match out.reserve(need) {
                Ok(true) => self.reserved = need,
                Ok(false) => self.reserving = false,
                Err(e) => {
                    self.error = Some(e);
                    return false;
                }
            },
        }
        true
    }

    fn write(
        &mut self,
        len: usize,
        f: impl FnOnce(&mut CaptureWriter<W>) -> io::Result<()>,
    ) -> bool {
        if !self.room(len) {
            return false;
        }
        if let Some(c) = self.capture.as_mut() {
            if let Err(e) = f(c) {
                self.error.get_or_insert(e);
                return false;
            }
        }
        true
    }

    /// A connection attempt and how it went (counted: connections, refused).
    pub fn conn_open(&mut self, open: ConnOpen) {
        self.summary.connections += 1;
        if open.outcome == Outcome::Refused {
            self.summary.refused += 1;
        }
        self.write(0, |c| c.write(&Record::ConnOpen(open)));
    }

    /// One side of a connection closed.
    pub fn conn_close(&mut self, id: ConnId, dir: Direction, kind: CloseKind) {
        let close = ConnClose {
            id,
            dir,
            kind,
            time_ns: super::now_ns(),
        };
        self.write(0, |c| c.write(&Record::ConnClose(close)));
    }

    /// A connection ended in a reset (counted once per connection).
    pub fn count_reset(&mut self) {
        self.summary.resets += 1;
    }

    /// Stream bytes as read (or played): recorded and counted. False: not recorded, so they
    /// must not be passed on.
    pub fn data(&mut self, id: ConnId, dir: Direction, bytes: &[u8]) -> bool {
        let ok = self.write(bytes.len(), |c| {
            c.write_data(id, dir, super::now_ns(), bytes)
        });
        if ok {
            let n = bytes.len() as u64;
            self.summary.data_blocks += 1;
            match dir {
                Direction::ClientToServer => {
                    self.summary.bytes_c2s += n;
                    self.stats.bytes_c2s.fetch_add(n, Relaxed);
                }
                Direction::ServerToClient => {
                    self.summary.bytes_s2c += n;
                    self.stats.bytes_s2c.fetch_add(n, Relaxed);
                }
            }
        }
        ok
    }

    /// A non-TCP packet seen on `interface` (a process index). False: not recorded.
    pub fn packet(&mut self, interface: u32, bytes: &[u8]) -> bool {
        let ok = self.write(bytes.len(), |c| {
            c.write_packet(interface, super::now_ns(), bytes)
        });
        if ok {
            self.summary.packets += 1;
            self.stats.packets.fetch_add(1, Relaxed);
        }
        ok
    }

    pub fn process_exit(&mut self, e: ProcessExit) {
        self.write(0, |c| c.write(&Record::ProcessExit(e)));
    }

    /// TLS secrets the processes logged, as one Decryption Secrets Block.
    pub fn secrets(&mut self, data: Vec<u8>) {
        let len = data.len();
        self.write(len, |c| {
            c.write(&Record::Secrets(crate::format::Secrets {
                secrets_type: crate::format::block::dsb::SECRETS_TLS,
                data,
            }))
        });
    }

    pub fn ipv6_dropped(&mut self) {
        self.summary.ipv6_dropped += 1;
    }

    /// Pushes buffered blocks towards the file and updates the live size.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(c) = self.capture.as_mut() {
            c.flush()?;
            self.stats.capture_bytes.store(c.bytes_written(), Relaxed);
        }
        Ok(())
    }

    /// Writes the Summary, closes the capture and returns the counters.
    pub fn finish(&mut self) -> io::Result<Summary> {
        self.summary.end_ns = super::now_ns();
        if !self.room(0) {
            return Err(self.error.take().expect("room said no"));
        }
        if let Some(capture) = self.capture.take() {
            capture.finish(&self.summary).and_then(Close::close)?;
        }
        Ok(self.summary)
    }
}
