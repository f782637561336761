//! Section Header Block: opens every section and fixes its byte order.
//!
//! ```text
//! 0        4        8        12     14     16               24
//! +--------+--------+--------+------+------+----------------+---------+--------+
//! |0A0D0D0A| length |1A2B3C4D|major |minor | section length | options | length |
//! +--------+--------+--------+------+------+----------------+---------+--------+
//! ```
//!
//! The byte-order magic 0x1A2B3C4D, read in the writer's byte order, tells the reader which
//! order every integer of the section uses. plg writes major 1, minor 0, section length -1
//! (unknown: the writer streams) and the options `shb_hardware`, `shb_os`, `shb_userappl`.

use super::*;

/// Byte-order magic, as an integer in the section's byte order.
pub const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
pub const MAJOR: u16 = 1;
pub const MINOR: u16 = 0;

pub const OPT_HARDWARE: u16 = 2;
pub const OPT_OS: u16 = 3;
pub const OPT_USERAPPL: u16 = 4;

/// Byte ranges inside the SHB body (after type and length).
mod field {
    use std::ops::Range;
    pub const MAGIC: Range<usize> = 0..4;
    pub const MAJOR: Range<usize> = 4..6;
    pub const MINOR: Range<usize> = 6..8;
    pub const SECTION_LEN: Range<usize> = 8..16;
    pub const OPTIONS: usize = 16;
}

/// Body length without options.
pub const FIXED_BODY_LEN: usize = field::OPTIONS;

/// Which byte order the four magic bytes at offset 8 of a Section Header Block announce.
pub fn byte_order(magic: [u8; 4]) -> Option<Endian> {
    if u32::from_le_bytes(magic) == BYTE_ORDER_MAGIC {
        Some(Endian::Little)
    } else if u32::from_be_bytes(magic) == BYTE_ORDER_MAGIC {
        Some(Endian::Big)
    } else {
        None
    }
}

/// What plg reads from and writes into a Section Header Block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShbRepr {
    pub hardware: Option<String>,
    pub os: Option<String>,
    pub userappl: Option<String>,
}

impl ShbRepr {
    /// Parses the body of a checked block whose type is [`SHB_TYPE`].
    pub fn parse(block: &Block) -> Result<ShbRepr> {
        let body = block.body();
        if body.len() < FIXED_BODY_LEN {
            return Err(Malformed::new(
                "section header block is shorter than its fixed fields",
            ));
        }
        let e = block.endian();
        if e.u32(body[field::MAGIC].try_into().unwrap()) != BYTE_ORDER_MAGIC {
            return Err(Malformed::new(
                "section header block has a bad byte-order magic",
            ));
        }
        let major = e.u16(body[field::MAJOR].try_into().unwrap());
        let minor = e.u16(body[field::MINOR].try_into().unwrap());
        if major != MAJOR {
            return Err(Malformed::new(format!(
                "unsupported pcapng version {major}.{minor} (only 1.x is known)"
            )));
        }
        let _section_len = &body[field::SECTION_LEN];
        let mut repr = ShbRepr::default();
        for option in Options::new(e, &body[field::OPTIONS..]) {
            let (code, value) = option?;
            // Other tools write these too; a non-UTF-8 byte is theirs to answer for, not a
            // reason to refuse the file.
            let text = || Some(String::from_utf8_lossy(value).into_owned());
            match code {
                OPT_HARDWARE => repr.hardware = text(),
                OPT_OS => repr.os = text(),
                OPT_USERAPPL => repr.userappl = text(),
                _ => {}
            }
        }
        Ok(repr)
    }

    /// Appends a whole Section Header Block.
    pub fn emit(&self, endian: Endian, out: &mut Vec<u8>) {
        let start = begin_block(out, endian, SHB_TYPE);
        Emit { endian, out }
            .u32(BYTE_ORDER_MAGIC)
            .u16(MAJOR)
            .u16(MINOR)
            .u64(u64::MAX); // -1: section length not given
        for (code, value) in [
            (OPT_HARDWARE, &self.hardware),
            (OPT_OS, &self.os),
            (OPT_USERAPPL, &self.userappl),
        ] {
            if let Some(value) = value {
                emit_str_option(out, endian, code, value);
            }
        }
        emit_end_of_options(out, endian);
        end_block(out, endian, start);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    static BYTES_LE: [u8; 44] = [
        0x0a, 0x0d, 0x0d, 0x0a, 44, 0, 0, 0, // type, length
        0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, // magic, major, minor
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // section length
        4, 0, 5, 0, b'p', b'l', b'g', b' ', b'1', 0, 0, 0, // shb_userappl
        0, 0, 0, 0, // opt_endofopt
        44, 0, 0, 0,
    ];

    fn repr() -> ShbRepr {
        ShbRepr {
            userappl: Some("plg 1".into()),
            ..ShbRepr::default()
        }
    }

    #[test]
    fn test_deconstruct() {
        assert_eq!(byte_order([0x4d, 0x3c, 0x2b, 0x1a]), Some(Endian::Little));
        assert_eq!(byte_order([0x1a, 0x2b, 0x3c, 0x4d]), Some(Endian::Big));
        assert_eq!(byte_order([0xd4, 0xc3, 0xb2, 0xa1]), None);
        let block = Block::new_checked(Endian::Little, &BYTES_LE).unwrap();
        assert_eq!(block.block_type(), SHB_TYPE);
        assert_eq!(ShbRepr::parse(&block).unwrap(), repr());
    }

    #[test]
    fn test_construct() {
        let mut out = vec![];
        repr().emit(Endian::Little, &mut out);
        assert_eq!(out, BYTES_LE);
        let mut out = vec![];
        repr().emit(Endian::Big, &mut out);
        let block = Block::new_checked(Endian::Big, &out).unwrap();
        assert_eq!(ShbRepr::parse(&block).unwrap(), repr());
    }

    #[test]
    fn test_truncated() {
        let mut bytes = BYTES_LE[..24].to_vec();
        bytes[4] = 24;
        bytes[20..24].copy_from_slice(&24u32.to_le_bytes());
        let block = Block::new_checked(Endian::Little, &bytes).unwrap();
        assert!(ShbRepr::parse(&block).is_err());
    }

    #[test]
    fn test_wrong_version() {
        let mut bytes = BYTES_LE;
        bytes[12] = 2;
        let block = Block::new_checked(Endian::Little, &bytes).unwrap();
        let err = ShbRepr::parse(&block).unwrap_err();
        assert!(err.0.contains("pcapng version 2.0"), "{err}");
    }
}
