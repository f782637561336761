//! plg (Net Playground): run programs each in its own network namespace, relay and record every
//! TCP conversation between them into a pcapng capture, and replay, inspect, export and diff
//! such captures.
//!
//! Layers, bottom up (each module's header says what it owns):
//! - [`format`]: the capture format, bytes and streams only.
//! - [`wire`]: IPv4/TCP/UDP packet views and rewriting, pure functions over byte slices.
//! - [`os`]: namespaces, TUN devices, processes; the only place with `unsafe`.
//! - [`engine`]: core (each connection's lifecycle, pure), pump (the byte path of record and
//!   replay), recorder (every capture write), the NAT table and the event loop around them.
//!   It words nothing for the user: it reports through values (`engine::session::View`,
//!   `SessionError`).
//! - [`analysis`], [`export`], [`diff`]: streaming readers of captures for inspect, export and
//!   diff (summaries and per-connection stats; pcap synthesis; comparison and rules).
//! - [`cmd`]: one file per subcommand, glue only (`cmd::session` words what record and replay
//!   show); [`cli`] ties them to the command line; [`ui`] holds the terminal conventions
//!   (colour, progress, sizes); [`error`] the usage error, a leaf, so `cmd` never needs `cli`.

#![deny(unsafe_code)]

pub mod analysis;
pub mod cli;
pub mod cmd;
pub mod diff;
pub mod engine;
pub mod error;
pub mod export;
pub mod format;
pub mod os;
pub mod ui;
pub mod wire;
