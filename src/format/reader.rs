//! Streaming capture reader: one block at a time, in constant memory, whatever the file size.
//!
//! Every failure is a [`FormatError`] naming the file and the byte offset of the block at
//! fault; nothing here panics on bad input (the fuzz target in `fuzz/` holds it to that). A
//! length read from the file is checked against [`block::MAX_BLOCK_LEN`] (64 MiB) before
//! anything is allocated for it, and the one block buffer is reused.
//!
//! What makes a file a plg capture: it is pcapng, and each section's Section Header Block is
//! followed at once by a plg Session block. Anything else (a classic pcap, a pcapng written
//! by tcpdump) is refused when the reader is created, with a message saying so.
//!
//! A file that ends on a block boundary simply ends: whether it is complete is whether a
//! Summary was read ([`CaptureReader::complete`]). A file that ends inside a block is an
//! error saying the capture is truncated, at the offset of that block.

use super::block::{self, custom, epb::EpbRepr, idb, shb, Block, Endian, Malformed};
use super::record::*;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// A capture could not be read: names the file and the byte offset at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    pub path: String,
    /// [`FormatError::NOT_OPENED`] when the file could not be opened at all.
    pub offset: u64,
    pub message: String,
}

impl FormatError {
    /// The offset of an error about the file itself (it cannot be opened), not its content:
    /// shown as `FILE: No such file or directory`, with no byte offset.
    pub const NOT_OPENED: u64 = u64::MAX;
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.offset == Self::NOT_OPENED {
            return write!(f, "{}: {}", self.path, self.message);
        }
        write!(
            f,
            "{}: at byte {}: {}",
            self.path, self.offset, self.message
        )
    }
}

impl std::error::Error for FormatError {}

/// An I/O error as a user reads it: "No such file or directory", without Rust's
/// " (os error 2)".
pub fn io_message(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s,
    }
}

/// Interfaces the reader remembers across all sections. ProcIndex is a u16, so a plg capture
/// never needs more; the cap keeps a hostile file from growing memory with IDBs.
const MAX_INTERFACES: usize = 1 << 16;
/// Sections the reader remembers (for `read_at`), for the same reason.
const MAX_SECTIONS: usize = 1 << 12;

/// What the reader must remember of a section to decode its blocks.
#[derive(Debug, Clone)]
struct Section {
    start: u64,
    endian: Endian,
    /// `if_tsresol` and `if_tsoffset` of each interface, by index.
    tsresol: Vec<(u8, i64)>,
}

/// Moves a seekable input from one offset to another (`from` is None when unknown). Set by
/// `read_at`, where `R: Seek` is known, so that iteration (which needs only `Read`) can come
/// back after a `read_at` without seeking there and back on every call.
type Reseek<R> = fn(&mut R, Option<u64>, u64) -> io::Result<()>;

pub struct CaptureReader<R: Read> {
    inner: R,
    name: String,
    /// Offset of the next block to read.
    offset: u64,
    /// Where `inner` is (None after a failed read, when it cannot be known).
    stream_pos: Option<u64>,
    reseek: Option<Reseek<R>>,
    /// Offset of the record last returned.
    last: u64,
    /// Reused for every block; never grows past MAX_BLOCK_LEN.
    buf: Vec<u8>,
    sections: Vec<Section>,
    interfaces: usize,
    session: Option<Session>,
    /// The Session read by `new`, returned by the first `next`.
    pending: Option<(u64, Record)>,
    complete: bool,
    done: bool,
}

impl CaptureReader<BufReader<File>> {
    /// Opens a capture and checks at once that it is one (see the module header). `-` is
    /// standard input (read once, front to back: no `read_at`).
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        let stdin = path == Path::new("-");
        let name = if stdin {
            "stdin".to_string()
        } else {
            path.display().to_string()
        };
        let opened = if stdin {
            File::open("/dev/stdin")
        } else {
            File::open(path)
        };
        let file = opened.map_err(|e| FormatError {
            path: name.clone(),
            offset: FormatError::NOT_OPENED,
            message: io_message(&e),
        })?;
        CaptureReader::new(BufReader::with_capacity(1 << 20, file), &name)
    }
}

/// One block read from the stream, before decoding.
enum Raw {
    /// A Section Header Block (already parsed: it sets up a section).
    Section,
    Other(u32),
}

impl<R: Read> CaptureReader<R> {
    /// Reads the Section Header Block and the Session block that must follow it. `name`
    /// names the input in errors.
    pub fn new(inner: R, name: &str) -> Result<Self, FormatError> {
        let mut reader = CaptureReader {
            inner,
            name: name.to_string(),
            offset: 0,
            stream_pos: Some(0),
            reseek: None,
            last: 0,
            buf: Vec::new(),
            sections: Vec::new(),
            interfaces: 0,
            session: None,
            pending: None,
            complete: false,
            done: false,
        };
        match reader.read_block()? {
            Some(Raw::Section) => {}
            // read_block refuses a first block that is not a section header.
            _ => return Err(reader.error(0, "empty file, not a plg capture")),
        }
        let at = reader.offset;
        let record = reader.expect_session()?;
        if let Record::Session(s) = &record {
            reader.session = Some(s.clone());
        }
        reader.pending = Some((at, record));
        Ok(reader)
    }

    /// The session of the current section, once read (always, after `new` succeeded).
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// Byte offset of the record last returned by `next`.
    pub fn position(&self) -> u64 {
        self.last
    }

    /// The input, e.g. to ask a `BufReader` about its file.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Whether a Summary was read: a capture without one was cut short (plg was killed, or
    /// the file was truncated) or is still being written.
    pub fn complete(&self) -> bool {
        self.complete
    }

    fn error(&self, offset: u64, message: impl Into<String>) -> FormatError {
        FormatError {
            path: self.name.clone(),
            offset,
            message: message.into(),
        }
    }

    /// Reads the block after a Section Header Block, which must be a plg Session.
    fn expect_session(&mut self) -> Result<Record, FormatError> {
        let at = self.offset;
        let not_plg = |r: &Self| {
            r.error(
                at,
                "a pcapng file, but not a plg capture: no plg Session block after the section header",
            )
        };
        match self.read_block()? {
            Some(Raw::Other(t)) if t == block::CUSTOM_TYPE || t == block::CUSTOM_NOCOPY_TYPE => {
                match self.decode(at, t, true)? {
                    Some(record @ Record::Session(_)) => Ok(record),
                    _ => Err(not_plg(self)),
                }
            }
            None => Err(self.error(
                at,
                "not a plg capture: the file ends after the section header, before the plg Session block",
            )),
            _ => Err(not_plg(self)),
        }
    }

    /// Reads the next block into `buf` and checks its framing. `None` at a clean end of file.
    /// A Section Header Block is parsed here, since it decides how to read what follows.
    fn read_block(&mut self) -> Result<Option<Raw>, FormatError> {
        let at = self.offset;
        if self.stream_pos != Some(at) {
            // Only read_at moves the stream away, and it sets reseek first.
            let Some(reseek) = self.reseek else {
                return Err(self.error(at, "cannot seek back to this block"));
            };
            reseek(&mut self.inner, self.stream_pos, at).map_err(|e| self.io_error(at, e))?;
            self.stream_pos = Some(at);
        }
        let mut head = [0u8; 12];
        let got = self.read_head(at, &mut head[..8])?;
        if got == 0 {
            return Ok(None);
        }
        let first = self.sections.is_empty();
        if first {
            if let Some(message) = not_pcapng(&head[..got]) {
                return Err(self.error(at, message));
            }
        }
        if got < 8 {
            return Err(self.truncated(at, 8, got));
        }
        let is_shb = head[..4] == block::SHB_TYPE.to_le_bytes();
        let endian = if is_shb {
            let got = self.read_head(at, &mut head[8..12])?;
            if got < 4 {
                return Err(self.truncated(at, 12, 8 + got));
            }
            match shb::byte_order(head[8..12].try_into().unwrap()) {
                Some(e) => e,
                None => {
                    return Err(self.error(at, "section header block has a bad byte-order magic"))
                }
            }
        } else {
            // The first block was checked to be a section header, so there is a section.
            self.sections[self.section_of(at)].endian
        };
        let len = endian.u32(head[4..8].try_into().unwrap()) as usize;
        block::check_total_len(len).map_err(|m| self.malformed(at, m))?;
        let have = if is_shb { 12 } else { 8 };
        if len < have {
            return Err(self.error(
                at,
                format!("block length {len} is too short for a section header"),
            ));
        }
        self.buf.clear();
        self.buf.extend_from_slice(&head[..have]);
        // Grow the buffer only as bytes arrive: a length field promising 64 MiB in a file of
        // 100 bytes must not cost 64 MiB.
        let read = (&mut self.inner)
            .take((len - have) as u64)
            .read_to_end(&mut self.buf);
        self.advance(at, read)?;
        if self.buf.len() < len {
            return Err(self.truncated(at, len, self.buf.len()));
        }
        let block = Block::new_checked(endian, &self.buf).map_err(|m| self.malformed(at, m))?;
        self.offset += len as u64;
        if !is_shb {
            return Ok(Some(Raw::Other(block.block_type())));
        }
        shb::ShbRepr::parse(&block).map_err(|m| self.malformed(at, m))?;
        if self.sections.len() >= MAX_SECTIONS {
            return Err(self.error(at, format!("more than {MAX_SECTIONS} sections")));
        }
        self.sections.push(Section {
            start: at,
            endian,
            tsresol: Vec::new(),
        });
        Ok(Some(Raw::Section))
    }

    /// Decodes the block in `buf` (read at `at`) into a record. `None` for blocks that are
    /// not records (Interface Description Blocks). With `learn`, an IDB is added to the
    /// current section (false when re-reading a block with `read_at`).
    fn decode(
        &mut self,
        at: u64,
        block_type: u32,
        learn: bool,
    ) -> Result<Option<Record>, FormatError> {
        let section = self.section_of(at);
        let endian = self.sections[section].endian;
        let block = Block::new_checked(endian, &self.buf).map_err(|m| self.malformed(at, m))?;
        let unknown = |kind| {
            Ok(Some(Record::Unknown(Unknown {
                offset: at,
                block_type,
                kind,
            })))
        };
        match block_type {
            block::CUSTOM_TYPE | block::CUSTOM_NOCOPY_TYPE => {
                match custom::parse(&block).map_err(|m| self.malformed(at, m))? {
                    custom::Custom::Record(record) => Ok(Some(record)),
                    custom::Custom::UnknownKind(kind) => unknown(Some(kind)),
                    custom::Custom::ForeignPen(_) => unknown(None),
                }
            }
            block::DSB_TYPE => {
                let dsb = block::dsb::DsbRepr::parse(&block).map_err(|m| self.malformed(at, m))?;
                Ok(Some(Record::Secrets(Secrets {
                    secrets_type: dsb.secrets_type,
                    data: dsb.data.to_vec(),
                })))
            }
            block::EPB_TYPE => {
                let epb = EpbRepr::parse(&block).map_err(|m| self.malformed(at, m))?;
                let tsresol = &self.sections[section].tsresol;
                let Some(&(resol, offset)) = tsresol.get(epb.interface as usize) else {
                    return Err(self.error(
                        at,
                        format!(
                            "packet on interface {}, but only {} interfaces are declared",
                            epb.interface,
                            tsresol.len()
                        ),
                    ));
                };
                Ok(Some(Record::Packet(Packet {
                    interface: epb.interface,
                    time_ns: idb::to_ns(epb.timestamp, resol)
                        .saturating_add_signed(offset.saturating_mul(1_000_000_000)),
                    orig_len: epb.orig_len,
                    bytes: epb.data.to_vec(),
                })))
            }
            // Written to align the file for direct I/O; carries nothing.
            block::FILLER_TYPE => Ok(None),
            block::IDB_TYPE if learn => {
                let repr = idb::IdbRepr::parse(&block).map_err(|m| self.malformed(at, m))?;
                if self.interfaces >= MAX_INTERFACES {
                    return Err(self.error(at, format!("more than {MAX_INTERFACES} interfaces")));
                }
                self.interfaces += 1;
                self.sections[section]
                    .tsresol
                    .push((repr.tsresol, repr.tsoffset));
                Ok(None)
            }
            _ => unknown(None),
        }
    }

    /// Index of the section holding the block at `at`.
    fn section_of(&self, at: u64) -> usize {
        self.sections
            .iter()
            .rposition(|s| s.start <= at)
            .unwrap_or(0)
    }

    fn next_record(&mut self) -> Result<Option<Record>, FormatError> {
        if let Some((at, record)) = self.pending.take() {
            self.last = at;
            return Ok(Some(record));
        }
        loop {
            let at = self.offset;
            match self.read_block()? {
                None => return Ok(None),
                Some(Raw::Section) => {
                    let at = self.offset;
                    let record = self.expect_session()?;
                    self.last = at;
                    return Ok(Some(record));
                }
                Some(Raw::Other(block_type)) => {
                    if let Some(record) = self.decode(at, block_type, true)? {
                        match &record {
                            Record::Session(s) => self.session = Some(s.clone()),
                            Record::Summary(_) => self.complete = true,
                            _ => {}
                        }
                        self.last = at;
                        return Ok(Some(record));
                    }
                }
            }
        }
    }

    /// Fills `head` as far as the input allows; returns how many bytes it got.
    fn read_head(&mut self, at: u64, head: &mut [u8]) -> Result<usize, FormatError> {
        let read = read_full(&mut self.inner, head);
        self.advance(at, read)
    }

    /// Keeps `stream_pos` in step with a read of the input.
    fn advance(&mut self, at: u64, read: io::Result<usize>) -> Result<usize, FormatError> {
        match read {
            Ok(n) => {
                self.stream_pos = self.stream_pos.map(|p| p + n as u64);
                Ok(n)
            }
            Err(e) => {
                self.stream_pos = None;
                Err(self.io_error(at, e))
            }
        }
    }

    fn truncated(&self, at: u64, need: usize, got: usize) -> FormatError {
        self.error(
            at,
            format!(
                "the capture is truncated: the file ends {got} byte{} into a block of {need} bytes",
                if got == 1 { "" } else { "s" }
            ),
        )
    }

    fn malformed(&self, at: u64, m: Malformed) -> FormatError {
        self.error(at, m.0)
    }

    fn io_error(&self, at: u64, e: io::Error) -> FormatError {
        self.error(at, format!("read error: {e}"))
    }
}

impl<R: Read> Iterator for CaptureReader<R> {
    type Item = Result<Record, FormatError>;

    /// The next record in file order; `None` at the end of the file and after an error.
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let result = self.next_record();
        match &result {
            Ok(None) | Err(_) => self.done = true,
            Ok(Some(Record::Session(s))) => self.session = Some(s.clone()),
            Ok(Some(_)) => {}
        }
        result.transpose()
    }
}

impl<R: Read + Seek> CaptureReader<R> {
    /// Re-reads the record at `offset` (a value `position` returned); iteration then goes on
    /// where it left off. The block is decoded with what the reader knows of its section, so
    /// offsets must come from this reader (or one that read as far), and the input must have
    /// been at offset 0 when given to the reader.
    ///
    /// Cheap in file order: the stream moves with relative seeks, which a `BufReader` serves
    /// from its buffer when it can, and is moved back for iteration only when `next` is called.
    pub fn read_at(&mut self, offset: u64) -> Result<Record, FormatError> {
        self.reseek = Some(|inner, from, to| match from {
            Some(from) => inner.seek_relative(to.wrapping_sub(from) as i64),
            None => inner.seek(SeekFrom::Start(to)).map(drop),
        });
        let resume = self.offset;
        self.offset = offset;
        let result = self.read_block().and_then(|raw| match raw {
            None => Err(self.error(
                offset,
                "no block here: the offset is at or past the end of the file",
            )),
            Some(Raw::Section) => {
                // read_block pushed a section for it: forget that again.
                self.sections.pop();
                Ok(Record::Unknown(Unknown {
                    offset,
                    block_type: block::SHB_TYPE,
                    kind: None,
                }))
            }
            Some(Raw::Other(t)) => {
                Ok(self
                    .decode(offset, t, false)?
                    .unwrap_or(Record::Unknown(Unknown {
                        offset,
                        block_type: t,
                        kind: None,
                    })))
            }
        });
        self.offset = resume;
        result
    }
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Why the first bytes of a file are not a pcapng section header, or None if they may be.
fn not_pcapng(first: &[u8]) -> Option<&'static str> {
    const PCAP_MAGICS: [u32; 2] = [0xA1B2_C3D4, 0xA1B2_3C4D];
    if first.len() >= 4 {
        let m = [first[0], first[1], first[2], first[3]];
        if PCAP_MAGICS
            .iter()
            .any(|&p| u32::from_le_bytes(m) == p || u32::from_be_bytes(m) == p)
        {
            return Some("a classic pcap file, not a plg capture");
        }
    }
    let shb = block::SHB_TYPE.to_le_bytes();
    if first.len() < 4 && first == &shb[..first.len()] {
        return None; // Too short to tell: reported as truncated.
    }
    if first[..4.min(first.len())] != shb[..] {
        return Some("not a pcapng file (no section header block at the start), not a plg capture");
    }
    None
}

#[cfg(test)]
mod test {
    use super::*;

    fn read_err(bytes: &[u8]) -> FormatError {
        match CaptureReader::new(bytes, "t") {
            Ok(_) => panic!("read {bytes:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn test_not_a_capture() {
        assert!(read_err(b"").message.contains("empty file"));
        assert!(read_err(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0])
            .message
            .contains("classic pcap"));
        assert!(read_err(b"hello world, this is text")
            .message
            .contains("not a pcapng file"));
        assert!(read_err(&[0x0a, 0x0d]).message.contains("truncated"));
    }

    #[test]
    fn test_shb_only_is_not_plg() {
        let mut out = vec![];
        shb::ShbRepr::default().emit(Endian::Little, &mut out);
        let err = read_err(&out);
        assert!(err.message.contains("not a plg capture"), "{err}");
        assert_eq!(err.offset, out.len() as u64);
        idb::IdbRepr::for_process("eth0", "").emit(Endian::Little, &mut out);
        let err = read_err(&out);
        assert!(err.message.contains("not a plg capture"), "{err}");
    }

    /// `if_tsoffset` (seconds added to every timestamp of the interface) is applied, as
    /// tshark applies it (docs/FORMAT.md).
    #[test]
    fn test_tsoffset_is_applied() {
        let session = Session {
            format_version: crate::format::FORMAT_VERSION,
            mode: Mode::Record,
            subnet: std::net::Ipv4Addr::new(10, 0, 0, 0),
            prefix_len: 24,
            start_ns: 1_000,
            plg_version: "0.1.0".into(),
            subnet6: None,
        };
        let procs = [Process {
            index: 0,
            name: "p0".into(),
            command: "cmd".into(),
            addr: std::net::Ipv4Addr::new(10, 0, 0, 2),
            addr6: None,
            live: true,
        }];
        let mut w = super::super::CaptureWriter::new(Vec::new(), &session, &procs).unwrap();
        let mut pkt = vec![0x45u8, 0, 0, 28, 0, 0, 0, 0, 64, 17];
        pkt.resize(28, 0);
        w.write_packet(0, 7_000_000_123, &pkt).unwrap();
        let bytes = w.finish(&Summary::default()).unwrap();
        // The same file with the IDB saying tsoffset 5 s.
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
            if u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) == block::IDB_TYPE {
                let mut idb = idb::IdbRepr::for_process("p0", "cmd");
                idb.tsoffset = 5;
                idb.emit(Endian::Little, &mut out);
            } else {
                out.extend_from_slice(&bytes[at..at + len]);
            }
            at += len;
        }
        let times: Vec<u64> = CaptureReader::new(&out[..], "t")
            .unwrap()
            .filter_map(|r| match r.unwrap() {
                Record::Packet(p) => Some(p.time_ns),
                _ => None,
            })
            .collect();
        assert_eq!(times, [12_000_000_123]);
    }

    #[test]
    fn test_display() {
        let e = FormatError {
            path: "a.traffic".into(),
            offset: 28,
            message: "boom".into(),
        };
        assert_eq!(e.to_string(), "a.traffic: at byte 28: boom");
    }
}
