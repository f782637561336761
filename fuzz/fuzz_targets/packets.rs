//! Any bytes read from a TUN (what a process sends, with or without the virtio header) go
//! through the wire layer without a panic: summarize, rewrite in both checksum modes, the
//! RST and ICMP answers, and completing an offloaded checksum. A rewrite that succeeds keeps
//! the packet's length and leaves a packet that still summarizes to the new addresses.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "checks/packets.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::check(data));
