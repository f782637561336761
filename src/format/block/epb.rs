//! Enhanced Packet Block: a non-TCP IPv4 packet plg passed through as-is.
//!
//! ```text
//! 0        4        8         12        16        20        24        28
//! +--------+--------+---------+---------+---------+---------+---------+------+-----+--------+
//! |00000006| length |interface| ts high | ts low  |captured |original | data | pad | length |
//! +--------+--------+---------+---------+---------+---------+---------+------+-----+--------+
//! ```
//!
//! The timestamp is a 64-bit count of the interface's `if_tsresol` units (plg: nanoseconds),
//! split high word first. plg writes no options; the reader ignores any it finds.

use super::*;

mod field {
    use std::ops::Range;
    pub const INTERFACE: Range<usize> = 0..4;
    pub const TS_HIGH: Range<usize> = 4..8;
    pub const TS_LOW: Range<usize> = 8..12;
    pub const CAPTURED: Range<usize> = 12..16;
    pub const ORIGINAL: Range<usize> = 16..20;
    pub const DATA: usize = 20;
}

/// Header and fixed fields, up to the packet data.
pub const HEADER_LEN: usize = super::HEADER_LEN + field::DATA;

/// Length of the block plg writes for a packet of `data_len` bytes.
pub const fn block_len(data_len: usize) -> usize {
    HEADER_LEN + padded(data_len) + TRAILER_LEN
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpbRepr<'a> {
    pub interface: u32,
    /// In the interface's `if_tsresol` units.
    pub timestamp: u64,
    pub orig_len: u32,
    pub data: &'a [u8],
}

impl<'a> EpbRepr<'a> {
    pub fn parse(block: &Block<'a>) -> Result<EpbRepr<'a>> {
        let body = block.body();
        if body.len() < field::DATA {
            return Err(Malformed::new(
                "enhanced packet block is shorter than its fixed fields",
            ));
        }
        let e = block.endian();
        let u32_at = |r: std::ops::Range<usize>| e.u32(body[r].try_into().unwrap());
        let captured = u32_at(field::CAPTURED) as usize;
        if captured > body.len() - field::DATA {
            return Err(Malformed::new(format!(
                "enhanced packet block: captured length {captured} overruns the block"
            )));
        }
        Ok(EpbRepr {
            interface: u32_at(field::INTERFACE),
            timestamp: (u64::from(u32_at(field::TS_HIGH)) << 32) | u64::from(u32_at(field::TS_LOW)),
            orig_len: u32_at(field::ORIGINAL),
            data: &body[field::DATA..field::DATA + captured],
        })
    }

    /// Appends a whole Enhanced Packet Block (no options).
    pub fn emit(&self, endian: Endian, out: &mut Vec<u8>) {
        emit_header(
            endian,
            self.interface,
            self.timestamp,
            self.data.len(),
            self.orig_len,
            out,
        );
        out.extend_from_slice(self.data);
        emit_tail(endian, self.data.len(), out);
    }
}

/// Hot path, first half: pushes everything before the packet data of a block whose data is
/// `data_len` bytes long. The caller copies the data, then calls [`emit_tail`].
/// `data_len` must be at most [`MAX_BLOCK_LEN`] - 32 (the writer checks).
pub fn emit_header(
    endian: Endian,
    interface: u32,
    timestamp: u64,
    data_len: usize,
    orig_len: u32,
    out: &mut Vec<u8>,
) {
    let len = block_len(data_len) as u32;
    Emit { endian, out }
        .u32(EPB_TYPE)
        .u32(len)
        .u32(interface)
        .u32((timestamp >> 32) as u32)
        .u32(timestamp as u32)
        .u32(data_len as u32)
        .u32(orig_len);
}

/// Hot path, second half: padding and trailing length after `data_len` bytes of data.
pub fn emit_tail(endian: Endian, data_len: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0; 3][..pad_len(data_len)]);
    out.extend_from_slice(&endian.u32_bytes(block_len(data_len) as u32));
}

#[cfg(test)]
mod test {
    use super::*;

    static BYTES_BE: [u8; 40] = [
        0, 0, 0, 6, 0, 0, 0, 40, // type, length
        0, 0, 0, 2, // interface
        0, 0, 0, 1, 0, 0, 0, 7, // timestamp
        0, 0, 0, 5, 0, 0, 0, 9, // captured, original
        0x45, 1, 2, 3, 4, 0, 0, 0, // data, padding
        0, 0, 0, 40,
    ];

    fn repr() -> EpbRepr<'static> {
        EpbRepr {
            interface: 2,
            timestamp: (1 << 32) | 7,
            orig_len: 9,
            data: &[0x45, 1, 2, 3, 4],
        }
    }

    #[test]
    fn test_deconstruct() {
        let block = Block::new_checked(Endian::Big, &BYTES_BE).unwrap();
        assert_eq!(block.block_type(), EPB_TYPE);
        assert_eq!(EpbRepr::parse(&block).unwrap(), repr());
    }

    #[test]
    fn test_construct() {
        let mut out = vec![];
        repr().emit(Endian::Big, &mut out);
        assert_eq!(out, BYTES_BE);
        assert_eq!(block_len(5), 40);
    }

    #[test]
    fn test_truncated() {
        let mut bytes = BYTES_BE;
        bytes[23] = 9; // captured length beyond the block
        let block = Block::new_checked(Endian::Big, &bytes).unwrap();
        assert!(EpbRepr::parse(&block).is_err());
        let short = [0, 0, 0, 6, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 16];
        let block = Block::new_checked(Endian::Big, &short).unwrap();
        assert!(EpbRepr::parse(&block).is_err());
    }
}
