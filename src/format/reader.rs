//! Streaming capture reader (placeholder until the format layer lands).
use super::record::Record;
use std::io::Read;

/// A capture could not be read: names the file and the byte offset at fault.
#[derive(Debug)]
pub struct FormatError {
    pub path: String,
    pub offset: u64,
    pub message: String,
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: at byte {}: {}",
            self.path, self.offset, self.message
        )
    }
}
impl std::error::Error for FormatError {}

pub struct CaptureReader<R: Read> {
    _inner: R,
}

impl CaptureReader<std::io::BufReader<std::fs::File>> {
    pub fn open(path: &std::path::Path) -> Result<Self, FormatError> {
        Err(FormatError {
            path: path.display().to_string(),
            offset: 0,
            message: "reader not implemented yet".into(),
        })
    }
}

impl<R: Read> Iterator for CaptureReader<R> {
    type Item = Result<Record, FormatError>;
    fn next(&mut self) -> Option<Self::Item> {
        None
    }
}
