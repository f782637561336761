//! The `.traffic` capture format: pcapng with plg's custom blocks (see `docs/FORMAT.md`).
//!
//! Pure bytes and buffered streams only: no sockets, no namespaces, no terminal. The writer is
//! used by record and replay, the streaming reader by every tool that reads a capture.
//!
//! - [`record`]: the typed records, the contract with the rest of plg.
//! - [`block`]: where each byte of each block goes; pure functions over slices.
//! - [`writer`]: records to buffered whole blocks.
//! - [`reader`]: blocks to records, streaming, in bounded memory.
//!
//! Contract: reading never panics, whatever the bytes; every failure is a [`FormatError`]
//! naming the file and the byte offset of the block at fault.
//!
//! ```
//! use plg::format::*;
//! use std::net::Ipv4Addr;
//!
//! let session = Session {
//!     format_version: FORMAT_VERSION,
//!     mode: Mode::Record,
//!     subnet: Ipv4Addr::new(10, 0, 0, 0),
//!     prefix_len: 24,
//!     subnet6: Some(("fd00:706c:67::".parse().unwrap(), 64)),
//!     start_ns: now_ns(),
//!     plg_version: "0.1.0".into(),
//! };
//! let p0 = Process {
//!     index: 0,
//!     name: "p0".into(),
//!     command: "echo hi".into(),
//!     addr: Ipv4Addr::new(10, 0, 0, 1),
//!     addr6: Some("fd00:706c:67::2".parse().unwrap()),
//!     live: true,
//! };
//! let mut w = CaptureWriter::new(Vec::new(), &session, &[p0.clone()]).unwrap();
//! w.write_data(0, Direction::ClientToServer, session.start_ns + 1, b"hi").unwrap();
//! let file = w.finish(&Summary::default()).unwrap();
//!
//! let mut r = CaptureReader::new(&file[..], "example").unwrap();
//! assert_eq!(r.next().unwrap().unwrap(), Record::Session(session));
//! assert_eq!(r.next().unwrap().unwrap(), Record::Process(p0));
//! assert!(matches!(r.next().unwrap().unwrap(), Record::Data(d) if d.bytes == b"hi"));
//! assert_eq!(r.next().unwrap().unwrap(), Record::Summary(Summary::default()));
//! assert!(r.next().is_none() && r.complete());
//! ```

pub mod block;
pub mod reader;
pub mod record;
pub mod writer;

pub use reader::{CaptureReader, FormatError};
pub use record::*;
pub use writer::CaptureWriter;

/// Version of the capture format this plg writes (and the highest it reads). It is a major
/// version: it changes only when an older reader would misread a newer file. Additions that
/// older readers skip safely (new block kinds, fields appended to a body) keep it.
pub const FORMAT_VERSION: u16 = 2;

/// IANA Private Enterprise Number carried by every plg custom block: 32473 is the number IANA
/// reserves for documentation and examples (RFC 5612), used because plg has none of its own.
pub const PEN: u32 = 32473;

/// Wall-clock time in nanoseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos().min(u128::from(u64::MAX)) as u64)
        .unwrap_or(0)
}
