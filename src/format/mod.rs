//! The `.traffic` capture format: pcapng with plg's custom blocks (see `docs/FORMAT.md`).
//!
//! Pure bytes and buffered streams only: no sockets, no namespaces, no terminal. The writer is
//! used by record and replay, the streaming reader by every tool that reads a capture.

pub mod reader;
pub mod record;
pub mod writer;

pub use reader::{CaptureReader, FormatError};
pub use record::*;
pub use writer::CaptureWriter;

/// Version of the capture format this plg writes (and the highest it reads).
pub const FORMAT_VERSION: u16 = 1;

/// IANA Private Enterprise Number carried by every plg custom block.
pub const PEN: u32 = 32473;
