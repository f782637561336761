//! Classic pcap output (nanosecond variant, link type RAW: each frame is an IPv4 packet).
//!
//! Any tool that reads pcap reads this: tcpdump, Wireshark, editcap, scapy. Bytes only; the
//! caller hands in a buffered writer.

use super::synth::{Frame, Sink};
use std::io::{self, Write};

/// Magic of a pcap file with nanosecond timestamps, in the writer's byte order.
pub const MAGIC_NS: u32 = 0xa1b2_3c4d;
/// LINKTYPE_RAW: the packet begins with its IP header.
pub const LINKTYPE_RAW: u32 = 101;
/// Snapshot length announced in the header: large enough for any IPv4 packet.
pub const SNAPLEN: u32 = 262_144;

/// Writes a classic pcap stream.
pub struct PcapWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&MAGIC_NS.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone, sigfigs: 0
        h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_RAW.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out })
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> Sink for PcapWriter<W> {
    fn frame(&mut self, f: &Frame<'_>) -> io::Result<()> {
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((f.time_ns / 1_000_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((f.time_ns % 1_000_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(f.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&f.orig_len.to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(f.head)?;
        self.out.write_all(f.payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_record_layout() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.frame(&Frame {
            time_ns: 3_000_000_007,
            sender: 0,
            head: &[0x45, 0],
            payload: &[1, 2, 3],
            orig_len: 5,
        })
        .unwrap();
        let b = w.into_inner();
        assert_eq!(&b[0..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(b.len(), 24 + 16 + 5);
        assert_eq!(&b[24..28], &3u32.to_le_bytes());
        assert_eq!(&b[28..32], &7u32.to_le_bytes());
        assert_eq!(&b[40..], &[0x45, 0, 1, 2, 3]);
    }
}
