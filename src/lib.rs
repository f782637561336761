//! plg (Net Playground): run programs each in its own network namespace, relay and record every
//! TCP conversation between them into a pcapng capture, and replay, inspect, export and diff
//! such captures.
//!
//! Layers, bottom up (each module's header says what it owns):
//! - [`format`]: the capture format, bytes and streams only.
//! - [`wire`]: IPv4/TCP/UDP packet views and rewriting, pure functions over byte slices.
//! - [`os`]: namespaces, TUN devices, processes; the only place with `unsafe`.
//! - [`engine`]: the event loop, NAT table and pipes that record and replay.
//! - [`analysis`], [`export`], [`diff`]: streaming readers of captures for inspect, export and
//!   diff (summaries and per-connection stats; pcap synthesis; comparison and rules).
//! - [`cmd`]: one file per subcommand, glue only; [`cli`] ties them to the command line;
//!   [`ui`] holds the terminal conventions (colour, progress, sizes).

#![deny(unsafe_code)]

pub mod analysis;
pub mod cli;
pub mod cmd;
pub mod diff;
pub mod engine;
pub mod export;
pub mod format;
pub mod os;
pub mod ui;
pub mod wire;
