//! Buffered capture writer: turns records into whole pcapng blocks and streams them out.
//!
//! Used by record and replay while traffic flows, so the Data path is one header encode and one
//! copy of the payload into a 1 MiB buffer. The buffer goes to the output when the next block
//! would not fit, when the oldest block in it is [`DRAIN_AFTER_NS`] older than the newest
//! (so what a `kill -9` can lose here is milliseconds of traffic, not a megabyte), or on
//! [`CaptureWriter::flush`]. Every `write` to the output holds whole blocks, in order: the
//! output may rely on it (the capture sink ends its direct writes on such a boundary).
//!
//! Limits that keep every block copyable by other tools: a Data block is at most
//! [`custom::MAX_WRITTEN_LEN`] (256 KiB); a longer read is split over several Data blocks.
//!
//! The writer does not reorder or police events: the engine writes them in time order.

use super::block::{self, custom, epb, idb::IdbRepr, shb::ShbRepr, Endian};
use super::record::*;
use std::io::{self, Write};

/// How much the writer buffers before writing to its output.
pub const BUFFER_LEN: usize = 1 << 20;

/// The buffer goes out once it spans this much event time (10 ms), even when not full.
pub const DRAIN_AFTER_NS: u64 = 10_000_000;

/// plg always writes little-endian (the reader reads both).
const ENDIAN: Endian = Endian::Little;

pub struct CaptureWriter<W: Write> {
    /// None only once `finish` has taken it back.
    out: Option<W>,
    buf: Vec<u8>,
    /// Bytes of whole blocks encoded so far, buffered or not.
    written: u64,
    /// Interfaces declared (one per process); packets must name one of them.
    interfaces: u32,
    /// Set after an output error: the output may hold part of a block, so dropping the writer
    /// must not append more after it.
    failed: bool,
    /// Event time of the oldest block in the buffer, if any has one.
    oldest_ns: Option<u64>,
    /// Data blocks added by splitting long reads: the caller counts one per `write_data`, and
    /// the Summary must count blocks.
    split_extra: u64,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

impl<W: Write> CaptureWriter<W> {
    /// Writes the Section Header Block, the Session block, one Interface Description Block per
    /// process, then one Process block per process (buffered: call `flush` to push them out).
    pub fn new(out: W, session: &Session, processes: &[Process]) -> io::Result<Self> {
        let mut w = CaptureWriter {
            out: Some(out),
            buf: Vec::with_capacity(BUFFER_LEN),
            written: 0,
            interfaces: 0,
            failed: false,
            oldest_ns: None,
            split_extra: 0,
        };
        let shb = ShbRepr {
            hardware: Some(std::env::consts::ARCH.to_string()),
            os: Some(os_name()),
            userappl: Some(format!("plg {}", session.plg_version)),
        };
        w.encode(|buf| shb.emit(ENDIAN, buf))?;
        w.encode(|buf| {
            custom::emit(ENDIAN, &Record::Session(session.clone()), buf);
        })?;
        for (i, p) in processes.iter().enumerate() {
            if usize::from(p.index) != i {
                return Err(invalid(format!(
                    "process {} has index {}: processes must be given in index order",
                    p.name, p.index
                )));
            }
            w.encode(|buf| IdbRepr::for_process(&p.name, &p.command).emit(ENDIAN, buf))?;
        }
        w.interfaces = processes.len() as u32;
        for p in processes {
            w.write(&Record::Process(p.clone()))?;
        }
        Ok(w)
    }

    /// Writes any record: Packet as an Enhanced Packet Block, the rest as plg custom blocks.
    /// Session (written by `new`) and Unknown (it carries no content) are refused.
    pub fn write(&mut self, record: &Record) -> io::Result<()> {
        match record {
            Record::Packet(p) => self.packet(p.interface, p.time_ns, p.orig_len, &p.bytes),
            Record::Data(d) => self.write_data(d.id, d.dir, d.time_ns, &d.bytes),
            Record::Session(_) => Err(invalid(
                "a Session record is written once, by CaptureWriter::new".into(),
            )),
            Record::Secrets(sec) => {
                if sec.data.len() > block::dsb::MAX_SECRETS_LEN {
                    return Err(invalid(format!(
                        "{} bytes of secrets do not fit in one block",
                        sec.data.len()
                    )));
                }
                self.encode(|buf| {
                    block::dsb::DsbRepr {
                        secrets_type: sec.secrets_type,
                        data: &sec.data,
                    }
                    .emit(ENDIAN, buf)
                })
            }
            Record::Unknown(u) => Err(invalid(format!(
                "cannot write the unknown block read at byte {}",
                u.offset
            ))),
            _ => {
                self.encode(|buf| {
                    custom::emit(ENDIAN, record, buf);
                })?;
                let time = match record {
                    Record::ProcessExit(e) => Some(e.time_ns),
                    Record::ConnOpen(o) => Some(o.time_ns),
                    Record::ConnClose(c) => Some(c.time_ns),
                    _ => None,
                };
                match time {
                    Some(t) => self.aged(t),
                    None => Ok(()),
                }
            }
        }
    }

    /// Drains the buffer once it spans [`DRAIN_AFTER_NS`] of event time.
    fn aged(&mut self, time_ns: u64) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let oldest = *self.oldest_ns.get_or_insert(time_ns);
        if time_ns.saturating_sub(oldest) >= DRAIN_AFTER_NS {
            self.drain()?;
        }
        Ok(())
    }

    /// Records stream bytes as one relay `read()` returned them: a header encode and one copy
    /// (several Data blocks with the same time when over [`custom::MAX_DATA_LEN`]).
    pub fn write_data(
        &mut self,
        id: ConnId,
        dir: Direction,
        time_ns: u64,
        bytes: &[u8],
    ) -> io::Result<()> {
        self.split_extra += bytes.len().div_ceil(custom::MAX_DATA_LEN).saturating_sub(1) as u64;
        for part in bytes.chunks(custom::MAX_DATA_LEN) {
            let len = custom::data_block_len(part.len());
            self.reserve(len)?;
            custom::emit_data_header(ENDIAN, id, dir, time_ns, part.len(), &mut self.buf);
            self.buf.extend_from_slice(part);
            custom::emit_data_tail(ENDIAN, part.len(), &mut self.buf);
            self.written += len as u64;
            self.aged(time_ns)?;
        }
        if bytes.is_empty() {
            let len = custom::data_block_len(0);
            self.reserve(len)?;
            custom::emit_data_header(ENDIAN, id, dir, time_ns, 0, &mut self.buf);
            custom::emit_data_tail(ENDIAN, 0, &mut self.buf);
            self.written += len as u64;
            self.aged(time_ns)?;
        }
        Ok(())
    }

    /// Records a packet passed as-is, on the interface of the process that sent it (for an
    /// answer of plg's resolver, of the process it went to: docs/FORMAT.md).
    pub fn write_packet(&mut self, interface: u32, time_ns: u64, bytes: &[u8]) -> io::Result<()> {
        self.packet(interface, time_ns, bytes.len() as u32, bytes)
    }

    fn packet(
        &mut self,
        interface: u32,
        time_ns: u64,
        orig_len: u32,
        bytes: &[u8],
    ) -> io::Result<()> {
        if interface >= self.interfaces {
            return Err(invalid(format!(
                "packet on interface {interface}, but the capture declares {}",
                self.interfaces
            )));
        }
        let len = epb::block_len(bytes.len());
        if len > block::MAX_BLOCK_LEN {
            return Err(invalid(format!(
                "packet of {} bytes does not fit in one block",
                bytes.len()
            )));
        }
        self.reserve(len)?;
        epb::emit_header(
            ENDIAN,
            interface,
            time_ns,
            bytes.len(),
            orig_len,
            &mut self.buf,
        );
        self.buf.extend_from_slice(bytes);
        epb::emit_tail(ENDIAN, bytes.len(), &mut self.buf);
        self.written += len as u64;
        self.aged(time_ns)
    }

    /// Pushes everything buffered to the output and flushes it.
    pub fn flush(&mut self) -> io::Result<()> {
        self.drain()?;
        self.output().flush()
    }

    /// Writes the Summary (which marks the capture complete), flushes, and returns the output.
    /// Its Data block count gains the blocks that splitting long reads added.
    pub fn finish(mut self, summary: &Summary) -> io::Result<W> {
        let summary = Summary {
            data_blocks: summary.data_blocks.wrapping_add(self.split_extra),
            ..*summary
        };
        self.write(&Record::Summary(summary))?;
        self.flush()?;
        Ok(self.out.take().expect("output present until finish"))
    }

    /// The output, e.g. to ask it about disk space.
    pub fn get_ref(&self) -> &W {
        self.out.as_ref().expect("output present until finish")
    }

    /// Bytes of the capture so far, including what is still buffered: the file size once
    /// flushed.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Encodes one whole block of small, known-bounded size into the buffer.
    fn encode(&mut self, emit: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        let before = self.buf.len();
        emit(&mut self.buf);
        self.written += (self.buf.len() - before) as u64;
        if self.buf.len() >= BUFFER_LEN {
            self.drain()?;
        }
        Ok(())
    }

    /// Makes room for a block of `len` bytes by draining the buffer if it would overflow.
    fn reserve(&mut self, len: usize) -> io::Result<()> {
        if self.buf.len() + len > BUFFER_LEN {
            self.drain()?;
        }
        Ok(())
    }

    fn drain(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let out = self.out.as_mut().expect("output present until finish");
        let result = out.write_all(&self.buf);
        self.buf.clear();
        self.oldest_ns = None;
        self.guard(result)
    }

    fn output(&mut self) -> &mut W {
        self.out.as_mut().expect("output present until finish")
    }

    fn guard(&mut self, result: io::Result<()>) -> io::Result<()> {
        if result.is_err() {
            self.failed = true;
        }
        result
    }
}

/// Pushes out what is buffered when the writer is dropped without `finish` (the engine failed,
/// or was interrupted): the capture then ends on a block boundary, readable but truncated.
impl<W: Write> Drop for CaptureWriter<W> {
    fn drop(&mut self) {
        if self.failed {
            return;
        }
        if let Some(out) = self.out.as_mut() {
            let _ = out.write_all(&self.buf);
            let _ = out.flush();
        }
    }
}

/// `shb_os`: the kernel name and release, e.g. "Linux 6.1.0".
fn os_name() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let release = release.trim();
    if release.is_empty() {
        "Linux".to_string()
    } else {
        format!("Linux {release}")
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::format::FORMAT_VERSION;
    use std::net::Ipv4Addr;

    fn session() -> Session {
        Session {
            format_version: FORMAT_VERSION,
            mode: Mode::Record,
            subnet: Ipv4Addr::new(10, 0, 0, 0),
            prefix_len: 24,
            subnet6: None,
            start_ns: 1,
            plg_version: "0.1.0".into(),
        }
    }

    fn process(index: u16) -> Process {
        Process {
            index,
            name: format!("p{index}"),
            command: "true".into(),
            addr: Ipv4Addr::new(10, 0, 0, 1 + index as u8),
            addr6: None,
            live: true,
        }
    }

    #[test]
    fn test_bytes_written_matches_output() {
        let mut w = CaptureWriter::new(Vec::new(), &session(), &[process(0)]).unwrap();
        w.write_data(0, Direction::ClientToServer, 2, &[7; 1000])
            .unwrap();
        w.write_packet(0, 3, &[0x45; 28]).unwrap();
        // A payload bigger than a block is split.
        w.write_data(0, Direction::ServerToClient, 4, &vec![1; BUFFER_LEN + 3])
            .unwrap();
        let n = w.bytes_written();
        let out = w.finish(&Summary::default()).unwrap();
        assert_eq!(out.len() as u64, n + custom::block_len(64) as u64);
        assert_eq!(out.len() % 4, 0);
    }

    #[test]
    fn test_refuses_bad_input() {
        let mut w = CaptureWriter::new(Vec::new(), &session(), &[process(0)]).unwrap();
        assert!(w.write_packet(1, 0, &[0x45]).is_err());
        assert!(w.write(&Record::Session(session())).is_err());
        assert!(CaptureWriter::new(Vec::new(), &session(), &[process(1)]).is_err());
    }

    #[test]
    fn test_drop_flushes() {
        let mut file = Vec::new();
        {
            let mut w = CaptureWriter::new(&mut file, &session(), &[process(0)]).unwrap();
            w.write_data(0, Direction::ClientToServer, 2, b"hi")
                .unwrap();
        }
        assert!(file.len() > 100);
    }
}
