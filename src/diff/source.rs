//! The one place where `plg diff` touches files: a capture opened once, read front to back for
//! the index (pass 1), then asked for single blocks by offset (pass 2) by the same reader, which
//! by then knows every section of the file.
//!
//! `BufReader` drops its buffer on every seek, which would make each re-read block cost a full
//! buffer refill; [`SeekBuf`] keeps its buffer when a seek lands inside it, so re-reading
//! blocks that lie close together (one connection's blocks usually do) costs no system call.

use super::index::{BlockSource, RecordSource};
use crate::format::reader::{CaptureReader, FormatError};
use crate::format::record::Record;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Refill size when reading straight on.
const SEQUENTIAL: usize = 1 << 20;
/// First refill size after a jump (doubling while reads go straight on).
const RANDOM: usize = 32 << 10;

/// A positioned, buffered file whose seeks are free when they land in the buffer.
pub struct SeekBuf {
    file: File,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    start: u64,
    pos: u64,
    /// Size of the next refill.
    refill: usize,
}

impl SeekBuf {
    pub fn new(file: File) -> SeekBuf {
        SeekBuf {
            file,
            buf: Vec::with_capacity(SEQUENTIAL),
            start: 0,
            pos: 0,
            refill: SEQUENTIAL,
        }
    }
}

impl Read for SeekBuf {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let end = self.start + self.buf.len() as u64;
        if self.pos < self.start || self.pos >= end {
            // Straight on: grow the refill up to SEQUENTIAL; after a jump, start small again
            // so that re-reading scattered blocks does not read much more than them.
            self.refill = if self.pos == end {
                (self.refill * 2).min(SEQUENTIAL)
            } else {
                RANDOM
            };
            let size = self.refill;
            if out.len() >= size {
                // A large read goes straight to the caller.
                let n = self.file.read_at(out, self.pos)?;
                self.pos += n as u64;
                return Ok(n);
            }
            self.buf.resize(size, 0);
            let n = loop {
                match self.file.read_at(&mut self.buf, self.pos) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r?,
                }
            };
            self.buf.truncate(n);
            self.start = self.pos;
            if n == 0 {
                return Ok(0);
            }
        }
        let at = (self.pos - self.start) as usize;
        let n = out.len().min(self.buf.len() - at);
        out[..n].copy_from_slice(&self.buf[at..at + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SeekBuf {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let base = match to {
            SeekFrom::Start(n) => {
                self.pos = n;
                return Ok(n);
            }
            SeekFrom::Current(d) => self.pos as i64 + d,
            SeekFrom::End(d) => self.file.metadata()?.len() as i64 + d,
        };
        if base < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            ));
        }
        self.pos = base as u64;
        Ok(self.pos)
    }
}

/// A capture file, for both passes.
pub struct FileSource {
    reader: CaptureReader<SeekBuf>,
}

impl FileSource {
    pub fn open(path: &Path) -> Result<FileSource, FormatError> {
        let name = if path == Path::new("-") {
            "stdin".to_string()
        } else {
            path.display().to_string()
        };
        let file = crate::os::output::open_seekable_input(path).map_err(|e| FormatError {
            path: name.clone(),
            offset: FormatError::NOT_OPENED,
            message: crate::format::reader::io_message(&e),
        })?;
        Ok(FileSource {
            reader: CaptureReader::new(SeekBuf::new(file), &name)?,
        })
    }
}

impl RecordSource for FileSource {
    fn next_record(&mut self) -> Option<Result<(u64, Record), FormatError>> {
        let r = self.reader.next()?;
        Some(r.map(|rec| (self.reader.position(), rec)))
    }
}

impl BlockSource for FileSource {
    fn read_at(&mut self, offset: u64) -> Result<Record, FormatError> {
        self.reader.read_at(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seekbuf_reads_like_a_file() {
        let dir = std::env::temp_dir().join(format!("plg-seekbuf-{}", std::process::id()));
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&dir, &data).unwrap();
        let mut s = SeekBuf::new(File::open(&dir).unwrap());
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        assert_eq!(all, data);
        for at in [5u64, 2_999_990, 1_048_575, 7] {
            s.seek(SeekFrom::Start(at)).unwrap();
            let mut b = [0u8; 8];
            let n = s.read(&mut b).unwrap();
            assert_eq!(&b[..n], &data[at as usize..at as usize + n]);
        }
        std::fs::remove_file(&dir).unwrap();
    }
}
