//! Decryption Secrets Block: TLS (or other) session keys, so Wireshark decrypts with no
//! configuration.
//!
//! ```text
//! 0        4        8            12            16
//! +--------+--------+------------+-------------+---------+-----+---------+--------+
//! |0000000A| length |secrets type|secrets length| secrets | pad | options | length |
//! +--------+--------+------------+-------------+---------+-----+---------+--------+
//! ```
//!
//! plg writes secrets type [`SECRETS_TLS`] ("TLSK"): the bytes are NSS key log lines
//! (`CLIENT_RANDOM <hex> <hex>`, `CLIENT_HANDSHAKE_TRAFFIC_SECRET ...`, one per line, each
//! ending in `\n`), exactly what `SSLKEYLOGFILE` makes TLS libraries write. A reader applies a
//! block's secrets to the packets after it; plg writes no options and ignores any.

use super::*;

/// Secrets type of an NSS key log ("TLSK").
pub const SECRETS_TLS: u32 = 0x544c_534b;

mod field {
    use std::ops::Range;
    pub const TYPE: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..8;
    pub const DATA: usize = 8;
}

/// The longest secrets a block holds.
pub const MAX_SECRETS_LEN: usize = MAX_BLOCK_LEN - HEADER_LEN - field::DATA - TRAILER_LEN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DsbRepr<'a> {
    pub secrets_type: u32,
    pub data: &'a [u8],
}

impl<'a> DsbRepr<'a> {
    pub fn parse(block: &Block<'a>) -> Result<DsbRepr<'a>> {
        let body = block.body();
        if body.len() < field::DATA {
            return Err(Malformed::new(
                "decryption secrets block is shorter than its fixed fields",
            ));
        }
        let e = block.endian();
        let u32_at = |r: std::ops::Range<usize>| e.u32(body[r].try_into().unwrap());
        let len = u32_at(field::LENGTH) as usize;
        if len > body.len() - field::DATA {
            return Err(Malformed::new(format!(
                "decryption secrets block: secrets length {len} overruns the block"
            )));
        }
        Ok(DsbRepr {
            secrets_type: u32_at(field::TYPE),
            data: &body[field::DATA..field::DATA + len],
        })
    }

    /// Appends a whole block (no options). `data` must be at most [`MAX_SECRETS_LEN`] bytes.
    pub fn emit(&self, endian: Endian, out: &mut Vec<u8>) {
        debug_assert!(self.data.len() <= MAX_SECRETS_LEN);
        let start = begin_block(out, endian, DSB_TYPE);
        Emit { endian, out }
            .u32(self.secrets_type)
            .u32(self.data.len() as u32)
            .bytes(self.data);
        end_block(out, endian, start);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn construct_and_deconstruct() {
        let lines = b"CLIENT_RANDOM 00 11\n";
        let mut out = Vec::new();
        DsbRepr {
            secrets_type: SECRETS_TLS,
            data: lines,
        }
        .emit(Endian::Little, &mut out);
        assert_eq!(out.len(), 8 + 8 + 20 + 4);
        assert_eq!(&out[..4], &[0x0a, 0, 0, 0]);
        assert_eq!(&out[8..12], b"KSLT");
        let block = Block::new_checked(Endian::Little, &out).unwrap();
        let dsb = DsbRepr::parse(&block).unwrap();
        assert_eq!(dsb.secrets_type, SECRETS_TLS);
        assert_eq!(dsb.data, lines);
    }

    #[test]
    fn overrunning_length_is_malformed() {
        let mut out = Vec::new();
        DsbRepr {
            secrets_type: SECRETS_TLS,
            data: b"abcd",
        }
        .emit(Endian::Big, &mut out);
        out[12..16].copy_from_slice(&100u32.to_be_bytes());
        let block = Block::new_checked(Endian::Big, &out).unwrap();
        assert!(DsbRepr::parse(&block).is_err());
    }
}
