//! Buffered capture writer: turns records into whole pcapng blocks and streams them out.
//!
//! Used by record and replay while traffic flows, so the Data path is one header encode and one
//! copy of the payload into a 1 MiB buffer; the buffer goes to the output when the next block
//! would not fit (or on [`CaptureWriter::flush`]). Blocks always reach the output whole and in
//! order, so a file cut at any moment between two flushes still ends on a block boundary up
//! to the last flush: a readable, merely truncated capture.
//!
//! The writer does not reorder or police events: the engine writes them in time order.

use super::block::{self, custom, epb, idb::IdbRepr, shb::ShbRepr, Endian};
use super::record::*;
use std::io::{self, Write};

/// How much the writer buffers before writing to its output.
pub const BUFFER_LEN: usize = 1 << 20;

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
            Record::Unknown(u) => Err(invalid(format!(
                "cannot write the unknown block read at byte {}",
                u.offset
            ))),
            _ => self.encode(|buf| {
                custom::emit(ENDIAN, record, buf);
            }),
        }
    }

    /// Records stream bytes as one relay `read()` returned them: a header encode and one copy.
    pub fn write_data(
        &mut self,
        id: ConnId,
        dir: Direction,
        time_ns: u64,
        bytes: &[u8],
    ) -> io::Result<()> {
        if bytes.len() > custom::MAX_DATA_LEN {
            return Err(invalid(format!(
                "data of {} bytes does not fit in one block (limit {})",
                bytes.len(),
                custom::MAX_DATA_LEN
            )));
        }
        let len = custom::data_block_len(bytes.len());
        self.reserve(len)?;
        custom::emit_data_header(ENDIAN, id, dir, time_ns, bytes.len(), &mut self.buf);
        self.payload(bytes)?;
        custom::emit_data_tail(ENDIAN, bytes.len(), &mut self.buf);
        self.written += len as u64;
        Ok(())
    }

    /// Records a packet passed as-is, on the interface of the process that sent it.
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
        self.payload(bytes)?;
        epb::emit_tail(ENDIAN, bytes.len(), &mut self.buf);
        self.written += len as u64;
        Ok(())
    }

    /// Pushes everything buffered to the output and flushes it.
    pub fn flush(&mut self) -> io::Result<()> {
        self.drain()?;
        self.output().flush()
    }

    /// Writes the Summary (which marks the capture complete), flushes, and returns the output.
    pub fn finish(mut self, summary: &Summary) -> io::Result<W> {
        self.write(&Record::Summary(*summary))?;
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

    /// Copies a payload after its header: into the buffer if the block fits, else straight to
    /// the output after the buffered header (a payload this big gains nothing from a copy).
    fn payload(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.buf.len() + bytes.len() + 8 <= BUFFER_LEN {
            self.buf.extend_from_slice(bytes);
            Ok(())
        } else {
            self.drain()?;
            let result = self.output().write_all(bytes);
            self.guard(result)
        }
    }

    fn drain(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let out = self.out.as_mut().expect("output present until finish");
        let result = out.write_all(&self.buf);
        self.buf.clear();
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
            live: true,
        }
    }

    #[test]
    fn test_bytes_written_matches_output() {
        let mut w = CaptureWriter::new(Vec::new(), &session(), &[process(0)]).unwrap();
        w.write_data(0, Direction::ClientToServer, 2, &[7; 1000])
            .unwrap();
        w.write_packet(0, 3, &[0x45; 28]).unwrap();
        // A payload bigger than the buffer takes the bypass.
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
