//! Plain pcapng output: one section, one interface per process (link type RAW, nanosecond
//! timestamps), Enhanced Packet Blocks, the capture's TLS keys as Decryption Secrets Blocks,
//! and none of plg's custom blocks.
//!
//! Interfaces are declared as processes are announced ([`PcapngWriter::process`]); a frame
//! from a sender never announced (the external side, a damaged capture) gets an interface of
//! its own on first use. Bytes only.

use super::synth::{Frame, Sink};
use crate::format::{ProcIndex, EXTERNAL};
use std::io::{self, Write};

const SHB: u32 = 0x0a0d_0d0a;
const IDB: u32 = 1;
const EPB: u32 = 6;
const DSB: u32 = 0x0000_000a;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
const LINKTYPE_RAW: u16 = 101;

const OPT_END: u16 = 0;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_DESCRIPTION: u16 = 3;
const IF_TSRESOL: u16 = 9;

/// Writes a plain pcapng stream.
pub struct PcapngWriter<W: Write> {
    out: W,
    /// Interface id of each process index (index into the vector), once declared.
    ifaces: Vec<Option<u32>>,
    external: Option<u32>,
    declared: u32,
    buf: Vec<u8>,
}

fn opt(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    buf.extend_from_slice(&code.to_le_bytes());
    buf.extend_from_slice(&(value.len() as u16).to_le_bytes());
    buf.extend_from_slice(value);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

/// Option values are at most 65535 bytes; longer strings (a huge command line) are cut.
fn cut(s: &str) -> &[u8] {
    let b = s.as_bytes();
    &b[..b.len().min(60_000)]
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the section header; `app` names the writer (`shb_userappl`).
    pub fn new(out: W, app: &str) -> io::Result<Self> {
        let mut w = PcapngWriter {
            out,
            ifaces: Vec::new(),
            external: None,
            declared: 0,
            buf: Vec::with_capacity(256),
        };
        let mut body = Vec::new();
        body.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&(-1i64).to_le_bytes());
        opt(&mut body, SHB_USERAPPL, cut(app));
        opt(&mut body, OPT_END, &[]);
        w.block(SHB, &body)?;
        Ok(w)
    }

    /// Writes a Decryption Secrets Block: Wireshark applies it to the packets after it, so it
    /// goes before them (`plg export` writes every secret of the capture right after the
    /// section header).
    pub fn secrets(&mut self, secrets_type: u32, data: &[u8]) -> io::Result<()> {
        let mut body = Vec::with_capacity(8 + data.len() + 3);
        body.extend_from_slice(&secrets_type.to_le_bytes());
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        body.resize(body.len().next_multiple_of(4), 0);
        self.block(DSB, &body)
    }

    fn block(&mut self, kind: u32, body: &[u8]) -> io::Result<()> {
        let len = (12 + body.len()) as u32;
        self.out.write_all(&kind.to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(body)?;
        self.out.write_all(&len.to_le_bytes())
    }

    fn declare(&mut self, name: &str, description: &str) -> io::Result<u32> {
        let mut body = Vec::new();
        body.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes()); // snaplen: unlimited
        opt(&mut body, IF_NAME, cut(name));
        if !description.is_empty() {
            opt(&mut body, IF_DESCRIPTION, cut(description));
        }
        opt(&mut body, IF_TSRESOL, &[9]);
        opt(&mut body, OPT_END, &[]);
        self.block(IDB, &body)?;
        self.declared += 1;
        Ok(self.declared - 1)
    }

    /// Declares the interface of process `index` (ignored if already declared).
    pub fn declare_process(
        &mut self,
        index: ProcIndex,
        name: &str,
        command: &str,
    ) -> io::Result<()> {
        if index == EXTERNAL {
            if self.external.is_none() {
                self.external = Some(self.declare(name, command)?);
            }
            return Ok(());
        }
        let i = usize::from(index);
        if self.ifaces.len() <= i {
            self.ifaces.resize(i + 1, None);
        }
        if self.ifaces[i].is_none() {
            self.ifaces[i] = Some(self.declare(name, command)?);
        }
        Ok(())
    }

    fn iface(&mut self, sender: ProcIndex) -> io::Result<u32> {
        let known = if sender == EXTERNAL {
            self.external
        } else {
            self.ifaces.get(usize::from(sender)).copied().flatten()
        };
        match known {
            Some(id) => Ok(id),
            None => {
                let name = if sender == EXTERNAL {
                    "external".to_string()
                } else {
                    format!("p{sender}")
                };
                self.declare_process(sender, &name, "")?;
                self.iface(sender)
            }
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> Sink for PcapngWriter<W> {
    fn process(&mut self, index: ProcIndex, name: &str, command: &str) -> io::Result<()> {
        self.declare_process(index, name, command)
    }

    fn frame(&mut self, f: &Frame<'_>) -> io::Result<()> {
        let iface = self.iface(f.sender)?;
        let cap = f.len();
        let pad = cap.next_multiple_of(4) - cap;
        let total = (32 + cap + pad) as u32;
        let b = &mut self.buf;
        b.clear();
        b.extend_from_slice(&EPB.to_le_bytes());
        b.extend_from_slice(&total.to_le_bytes());
        b.extend_from_slice(&iface.to_le_bytes());
        b.extend_from_slice(&((f.time_ns >> 32) as u32).to_le_bytes());
        b.extend_from_slice(&(f.time_ns as u32).to_le_bytes());
        b.extend_from_slice(&(cap as u32).to_le_bytes());
        b.extend_from_slice(&f.orig_len.to_le_bytes());
        b.extend_from_slice(f.head);
        self.out.write_all(b)?;
        self.out.write_all(f.payload)?;
        let mut tail = [0u8; 8];
        tail[pad..pad + 4].copy_from_slice(&total.to_le_bytes());
        self.out.write_all(&tail[..pad + 4])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_and_self_describing() {
        let mut w = PcapngWriter::new(Vec::new(), "plg test").unwrap();
        w.declare_process(0, "server", "python3 -m http.server")
            .unwrap();
        w.frame(&Frame {
            time_ns: 1,
            sender: 3,
            head: &[0x45],
            payload: &[1, 2],
            orig_len: 3,
        })
        .unwrap();
        let b = w.into_inner();
        // Walk the blocks: each total length is repeated at its end and a multiple of 4.
        let mut at = 0;
        let mut kinds = Vec::new();
        while at < b.len() {
            let kind = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
            let len = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0);
            assert_eq!(&b[at + len - 4..at + len], &(len as u32).to_le_bytes());
            kinds.push(kind);
            at += len;
        }
        assert_eq!(kinds, vec![SHB, IDB, IDB, EPB]);
    }
}
