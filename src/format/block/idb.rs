//! Interface Description Block: one per plg process, so that pcapng tools show each process
//! as an interface and attribute its packets to it.
//!
//! ```text
//! 0        4        8       10       12       16
//! +--------+--------+-------+--------+--------+---------+--------+
//! |00000001| length | link  |reserved| snaplen| options | length |
//! +--------+--------+-------+--------+--------+---------+--------+
//! ```
//!
//! plg writes link type 101 (LINKTYPE_RAW: raw IPv4), snaplen 0 (no limit) and the options
//! `if_name` (process name), `if_description` (its command line), `if_tsresol` = 9 (ns).
//! The process details that matter to plg live in its Process custom block; this block is for
//! other tools, and the reader keeps only `if_tsresol` from it (to read packet timestamps).

use super::*;

/// LINKTYPE_RAW: each packet is a bare IPv4 or IPv6 header and payload.
pub const LINKTYPE_RAW: u16 = 101;

pub const OPT_NAME: u16 = 2;
pub const OPT_DESCRIPTION: u16 = 3;
pub const OPT_TSRESOL: u16 = 9;
/// `if_tsoffset`: seconds (signed 64-bit) to add to every timestamp of the interface.
pub const OPT_TSOFFSET: u16 = 14;

/// Timestamp resolution when `if_tsresol` is absent: microseconds (pcapng default).
pub const DEFAULT_TSRESOL: u8 = 6;
/// What plg writes: nanoseconds.
pub const NS_TSRESOL: u8 = 9;

mod field {
    use std::ops::Range;
    pub const LINK_TYPE: Range<usize> = 0..2;
    pub const SNAPLEN: Range<usize> = 4..8;
    pub const OPTIONS: usize = 8;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdbRepr {
    pub link_type: u16,
    pub snaplen: u32,
    pub name: Option<String>,
    pub description: Option<String>,
    pub tsresol: u8,
    /// `if_tsoffset` in seconds (0 when absent; plg writes none).
    pub tsoffset: i64,
}

impl IdbRepr {
    /// The interface plg declares for one process.
    pub fn for_process(name: &str, command: &str) -> IdbRepr {
        IdbRepr {
            link_type: LINKTYPE_RAW,
            snaplen: 0,
            name: Some(name.to_string()),
            description: Some(command.to_string()),
            tsresol: NS_TSRESOL,
            tsoffset: 0,
        }
    }

    pub fn parse(block: &Block) -> Result<IdbRepr> {
        let body = block.body();
        if body.len() < field::OPTIONS {
            return Err(Malformed::new(
                "interface description block is shorter than its fixed fields",
            ));
        }
        let e = block.endian();
        let mut repr = IdbRepr {
            link_type: e.u16(body[field::LINK_TYPE].try_into().unwrap()),
            snaplen: e.u32(body[field::SNAPLEN].try_into().unwrap()),
            name: None,
            description: None,
            tsresol: DEFAULT_TSRESOL,
            tsoffset: 0,
        };
        for option in Options::new(e, &body[field::OPTIONS..]) {
            let (code, value) = option?;
            let text = || Some(String::from_utf8_lossy(value).into_owned());
            match code {
                OPT_NAME => repr.name = text(),
                OPT_DESCRIPTION => repr.description = text(),
                OPT_TSRESOL => match value {
                    [r] => repr.tsresol = *r,
                    _ => return Err(Malformed::new("if_tsresol option is not 1 byte long")),
                },
                OPT_TSOFFSET => match <[u8; 8]>::try_from(value) {
                    Ok(b) => repr.tsoffset = e.u64(b) as i64,
                    Err(_) => return Err(Malformed::new("if_tsoffset option is not 8 bytes long")),
                },
                _ => {}
            }
        }
        Ok(repr)
    }

    /// Appends a whole Interface Description Block. Strings are clipped to 65535 bytes.
    pub fn emit(&self, endian: Endian, out: &mut Vec<u8>) {
        let start = begin_block(out, endian, IDB_TYPE);
        Emit { endian, out }
            .u16(self.link_type)
            .u16(0)
            .u32(self.snaplen);
        if let Some(name) = &self.name {
            emit_str_option(out, endian, OPT_NAME, name);
        }
        if let Some(description) = &self.description {
            emit_str_option(out, endian, OPT_DESCRIPTION, description);
        }
        if self.tsresol != DEFAULT_TSRESOL {
            emit_option(out, endian, OPT_TSRESOL, &[self.tsresol]);
        }
        if self.tsoffset != 0 {
            emit_option(
                out,
                endian,
                OPT_TSOFFSET,
                &endian.u64_bytes(self.tsoffset as u64),
            );
        }
        emit_end_of_options(out, endian);
        end_block(out, endian, start);
    }
}

/// Converts a timestamp in `tsresol` units to nanoseconds (saturating). Bit 7 of `tsresol`
/// clear: units of 10^-n s; set: units of 2^-n s.
pub fn to_ns(ts: u64, tsresol: u8) -> u64 {
    let n = u32::from(tsresol & 0x7f);
    let ns = if tsresol & 0x80 == 0 {
        if n <= 9 {
            u128::from(ts) * 10u128.pow(9 - n)
        } else {
            u128::from(ts) / 10u128.checked_pow(n - 9).unwrap_or(u128::MAX)
        }
    } else if n < 127 {
        (u128::from(ts) * 1_000_000_000) >> n
    } else {
        0
    };
    ns.min(u128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod test {
    use super::*;

    static BYTES_LE: [u8; 48] = [
        1, 0, 0, 0, 48, 0, 0, 0, // type, length
        101, 0, 0, 0, 0, 0, 0, 0, // link type, reserved, snaplen
        2, 0, 2, 0, b'p', b'0', 0, 0, // if_name
        3, 0, 2, 0, b's', b'h', 0, 0, // if_description
        9, 0, 1, 0, 9, 0, 0, 0, // if_tsresol
        0, 0, 0, 0, // opt_endofopt
        48, 0, 0, 0,
    ];

    #[test]
    fn test_deconstruct() {
        let block = Block::new_checked(Endian::Little, &BYTES_LE).unwrap();
        assert_eq!(block.block_type(), IDB_TYPE);
        assert_eq!(
            IdbRepr::parse(&block).unwrap(),
            IdbRepr::for_process("p0", "sh")
        );
    }

    /// `if_tsoffset` is read (tshark applies it; so does plg's reader) and written back.
    #[test]
    fn test_tsoffset_round_trips() {
        for e in [Endian::Little, Endian::Big] {
            let mut repr = IdbRepr::for_process("p0", "sh");
            repr.tsoffset = -3600;
            let mut out = vec![];
            repr.emit(e, &mut out);
            let block = Block::new_checked(e, &out).unwrap();
            assert_eq!(IdbRepr::parse(&block).unwrap(), repr);
        }
    }

    #[test]
    fn test_construct() {
        let mut out = vec![];
        IdbRepr::for_process("p0", "sh").emit(Endian::Little, &mut out);
        assert_eq!(out, BYTES_LE);
    }

    #[test]
    fn test_truncated() {
        let mut bytes = BYTES_LE.to_vec();
        // Make if_tsresol claim 200 bytes.
        bytes[34] = 200;
        let block = Block::new_checked(Endian::Little, &bytes).unwrap();
        assert!(IdbRepr::parse(&block).is_err());
    }

    #[test]
    fn test_to_ns() {
        assert_eq!(to_ns(5, 9), 5);
        assert_eq!(to_ns(5, 6), 5_000);
        assert_eq!(to_ns(5_000, 12), 5);
        assert_eq!(to_ns(1 << 30, 0x80 | 30), 1_000_000_000);
        assert_eq!(to_ns(u64::MAX, 0), u64::MAX);
        assert_eq!(to_ns(u64::MAX, 127), 0);
        assert_eq!(to_ns(7, 0xff), 0);
    }
}
