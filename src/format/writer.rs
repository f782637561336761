//! Buffered capture writer (placeholder until the format layer lands).
use super::record::*;
use std::io::{self, Write};

pub struct CaptureWriter<W: Write> {
    out: W,
}

impl<W: Write> CaptureWriter<W> {
    pub fn new(out: W, _session: &Session, _processes: &[Process]) -> io::Result<Self> {
        Ok(CaptureWriter { out })
    }
    pub fn write(&mut self, _record: &Record) -> io::Result<()> {
        Ok(())
    }
    pub fn write_data(
        &mut self,
        _id: ConnId,
        _dir: Direction,
        _time_ns: u64,
        _bytes: &[u8],
    ) -> io::Result<()> {
        Ok(())
    }
    pub fn write_packet(
        &mut self,
        _interface: u32,
        _time_ns: u64,
        _bytes: &[u8],
    ) -> io::Result<()> {
        Ok(())
    }
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
    pub fn finish(mut self, _summary: &Summary) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}
