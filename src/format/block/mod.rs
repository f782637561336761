//! pcapng block framing and the byte layout of every block plg writes.
//!
//! Pure functions over byte slices: no files, no streams. The reader and writer own the I/O;
//! this room owns where each byte goes. Layouts are documented byte by byte in
//! `docs/FORMAT.md`; keep the two in step.
//!
//! Contract: parsing never panics, whatever the input; a malformed block is a [`Malformed`]
//! naming what is wrong. Emitting appends to a `Vec<u8>` and never fails; inputs that cannot be
//! represented (a string over 65535 bytes) are clipped, documented at each emitter.
//!
//! Every block is framed the same way (all integers in the section's byte order):
//!
//! ```text
//! 0        4        8                  8+n      12+n
//! +--------+--------+------------------+--------+
//! |  type  | length |  body (n bytes)  | length |   length = 12 + n, n a multiple of 4
//! +--------+--------+------------------+--------+
//! ```

pub mod custom;
pub mod dsb;
pub mod epb;
pub mod idb;
pub mod shb;

use std::fmt;

/// Section Header Block type; the same bytes in either byte order.
pub const SHB_TYPE: u32 = 0x0A0D_0D0A;
/// Interface Description Block type.
pub const IDB_TYPE: u32 = 0x0000_0001;
/// Enhanced Packet Block type.
pub const EPB_TYPE: u32 = 0x0000_0006;
/// Decryption Secrets Block (TLS keys).
pub const DSB_TYPE: u32 = 0x0000_000A;
/// Custom Block that tools may copy when rewriting a file: the type plg writes.
pub const CUSTOM_TYPE: u32 = 0x0000_0BAD;
/// Custom Block that tools must not copy; plg reads it like [`CUSTOM_TYPE`] but never writes it.
pub const CUSTOM_NOCOPY_TYPE: u32 = 0x4000_0BAD;

/// plg Filler block: a block of the pcapng local-use range (high bit set) that carries
/// nothing. The capture writer ends every page-aligned direct write with one, so that a file
/// cut at any page boundary still ends on a block boundary. Readers skip it (plg, tshark and
/// capinfos all do, without listing it); see docs/FORMAT.md.
pub const FILLER_TYPE: u32 = 0x8000_0F11;

/// Length of the Filler block that brings `offset` to the next multiple of `align` (a power
/// of two, at least 16): 0 if it is there already. Both `offset` and the result are multiples
/// of 4; a gap under [`MIN_BLOCK_LEN`] is widened by `align`.
pub fn filler_len(offset: u64, align: usize) -> usize {
    debug_assert!(align.is_power_of_two() && align >= 16 && offset.is_multiple_of(4));
    let gap = (align - (offset % align as u64) as usize) % align;
    if gap != 0 && gap < MIN_BLOCK_LEN {
        gap + align
    } else {
        gap
    }
}

/// Appends a Filler block of `len` bytes (0, or a multiple of 4 of at least [`MIN_BLOCK_LEN`]).
pub fn emit_filler(endian: Endian, len: usize, out: &mut Vec<u8>) {
    if len == 0 {
        return;
    }
    assert!(
        len >= MIN_BLOCK_LEN && len.is_multiple_of(4),
        "filler of {len} bytes"
    );
    out.extend_from_slice(&endian.u32_bytes(FILLER_TYPE));
    out.extend_from_slice(&endian.u32_bytes(len as u32));
    out.resize(out.len() + len - MIN_BLOCK_LEN, 0);
    out.extend_from_slice(&endian.u32_bytes(len as u32));
}

/// Type, leading length.
pub const HEADER_LEN: usize = 8;
/// Trailing length.
pub const TRAILER_LEN: usize = 4;
/// The smallest possible block: header and trailer around an empty body.
pub const MIN_BLOCK_LEN: usize = HEADER_LEN + TRAILER_LEN;
/// The largest block plg reads or writes (64 MiB). A length field is never trusted beyond it,
/// so a corrupt or hostile length cannot make the reader allocate more than this.
pub const MAX_BLOCK_LEN: usize = 64 << 20;

/// Byte ranges of the framing fields.
pub mod field {
    use std::ops::Range;
    pub const TYPE: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..8;
    pub const BODY: usize = 8;
}

/// A block is not what its framing or type promises. The reader adds the file and offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl Malformed {
    pub fn new(message: impl Into<String>) -> Malformed {
        Malformed(message.into())
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub type Result<T> = std::result::Result<T, Malformed>;

/// Byte order of a section, fixed by its Section Header Block's byte-order magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    Little,
    Big,
}

impl Endian {
    pub fn u16_bytes(self, v: u16) -> [u8; 2] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }
    pub fn u32_bytes(self, v: u32) -> [u8; 4] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }
    pub fn u64_bytes(self, v: u64) -> [u8; 8] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }
    pub fn u16(self, b: [u8; 2]) -> u16 {
        match self {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        }
    }
    pub fn u32(self, b: [u8; 4]) -> u32 {
        match self {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        }
    }
    pub fn u64(self, b: [u8; 8]) -> u64 {
        match self {
            Endian::Little => u64::from_le_bytes(b),
            Endian::Big => u64::from_be_bytes(b),
        }
    }
}

/// Bytes of zero padding that bring `len` to a multiple of 4.
pub const fn pad_len(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// `len` rounded up to a multiple of 4.
pub const fn padded(len: usize) -> usize {
    len + pad_len(len)
}

/// A checked view of one whole block (header, body and trailer, nothing more).
#[derive(Debug, Clone, Copy)]
pub struct Block<'a> {
    endian: Endian,
    buffer: &'a [u8],
}

impl<'a> Block<'a> {
    /// Checks the framing: the leading length equals the buffer length, is at least 12, a
    /// multiple of 4, at most [`MAX_BLOCK_LEN`], and the trailing length repeats it.
    pub fn new_checked(endian: Endian, buffer: &'a [u8]) -> Result<Block<'a>> {
        if buffer.len() < MIN_BLOCK_LEN {
            return Err(Malformed::new(format!(
                "block of {} bytes is shorter than the 12-byte minimum",
                buffer.len()
            )));
        }
        let block = Block { endian, buffer };
        let len = block.total_len() as usize;
        check_total_len(len)?;
        if len != buffer.len() {
            return Err(Malformed::new(format!(
                "block length {len} does not match the {} bytes given",
                buffer.len()
            )));
        }
        let trailer = endian.u32(buffer[len - 4..].try_into().unwrap());
        if trailer as usize != len {
            return Err(Malformed::new(format!(
                "corrupted block: trailing length {trailer} does not match leading length {len}"
            )));
        }
        Ok(block)
    }

    pub fn block_type(&self) -> u32 {
        self.endian
            .u32(self.buffer[field::TYPE].try_into().unwrap())
    }

    pub fn total_len(&self) -> u32 {
        self.endian
            .u32(self.buffer[field::LENGTH].try_into().unwrap())
    }

    /// Everything between the leading length and the trailing length.
    pub fn body(&self) -> &'a [u8] {
        &self.buffer[field::BODY..self.buffer.len() - TRAILER_LEN]
    }

    pub fn endian(&self) -> Endian {
        self.endian
    }
}

/// Checks a block length read from a header before anything is allocated or sliced for it.
pub fn check_total_len(len: usize) -> Result<()> {
    if len < MIN_BLOCK_LEN {
        return Err(Malformed::new(format!(
            "block length {len} is shorter than the 12-byte minimum"
        )));
    }
    if !len.is_multiple_of(4) {
        return Err(Malformed::new(format!(
            "block length {len} is not a multiple of 4"
        )));
    }
    if len > MAX_BLOCK_LEN {
        return Err(Malformed::new(format!(
            "block length {len} exceeds the {} MiB limit",
            MAX_BLOCK_LEN >> 20
        )));
    }
    Ok(())
}

/// Starts a block: pushes its type and a placeholder length, returns where the block starts
/// (to hand to [`end_block`]).
pub fn begin_block(out: &mut Vec<u8>, endian: Endian, block_type: u32) -> usize {
    let start = out.len();
    out.extend_from_slice(&endian.u32_bytes(block_type));
    out.extend_from_slice(&[0; 4]);
    start
}

/// Ends a block begun at `start`: pads the body to 4 bytes, fills in the leading length and
/// pushes the trailing one.
pub fn end_block(out: &mut Vec<u8>, endian: Endian, start: usize) {
    out.resize(out.len() + pad_len(out.len() - start), 0);
    let len = (out.len() - start + TRAILER_LEN) as u32;
    out[start + 4..start + 8].copy_from_slice(&endian.u32_bytes(len));
    out.extend_from_slice(&endian.u32_bytes(len));
}

/// Longest prefix of `s` that fits in `max` bytes without splitting a character. Strings in
/// options and custom bodies carry a u16 length, so longer ones are clipped, never refused:
/// a long command line must not cost the user a recording.
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Option code that ends an option list.
pub const OPT_ENDOFOPT: u16 = 0;

/// Pushes one option (code, length, value, padding to 4). `value` must be at most 65535
/// bytes: callers clip strings first.
pub fn emit_option(out: &mut Vec<u8>, endian: Endian, code: u16, value: &[u8]) {
    debug_assert!(value.len() <= u16::MAX as usize);
    out.extend_from_slice(&endian.u16_bytes(code));
    out.extend_from_slice(&endian.u16_bytes(value.len() as u16));
    out.extend_from_slice(value);
    out.resize(out.len() + pad_len(value.len()), 0);
}

/// Pushes a UTF-8 option, clipped to 65535 bytes.
pub fn emit_str_option(out: &mut Vec<u8>, endian: Endian, code: u16, value: &str) {
    emit_option(out, endian, code, clip(value, u16::MAX as usize).as_bytes());
}

/// Pushes `opt_endofopt`.
pub fn emit_end_of_options(out: &mut Vec<u8>, endian: Endian) {
    emit_option(out, endian, OPT_ENDOFOPT, &[]);
}

/// Iterates the options of a block: `(code, value)` pairs until `opt_endofopt` or the end of
/// the slice. An option overrunning the slice is an error, and ends the iteration.
pub struct Options<'a> {
    endian: Endian,
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    pub fn new(endian: Endian, options: &'a [u8]) -> Options<'a> {
        Options {
            endian,
            rest: options,
        }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<(u16, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < 4 {
            // A list may end without opt_endofopt; stray bytes under 4 are padding.
            return None;
        }
        let code = self.endian.u16([self.rest[0], self.rest[1]]);
        let len = self.endian.u16([self.rest[2], self.rest[3]]) as usize;
        if code == OPT_ENDOFOPT {
            self.rest = &[];
            return None;
        }
        let end = 4 + padded(len);
        if end > self.rest.len() {
            self.rest = &[];
            return Some(Err(Malformed::new(format!(
                "option {code} of {len} bytes overruns its block"
            ))));
        }
        let value = &self.rest[4..4 + len];
        self.rest = &self.rest[end..];
        Some(Ok((code, value)))
    }
}

/// Reads fixed fields in order from a body, each read checked against the end.
pub struct Fields<'a> {
    endian: Endian,
    buf: &'a [u8],
    pos: usize,
    /// Names the block in error messages ("process block").
    what: &'static str,
}

impl<'a> Fields<'a> {
    pub fn new(endian: Endian, buf: &'a [u8], what: &'static str) -> Fields<'a> {
        Fields {
            endian,
            buf,
            pos: 0,
            what,
        }
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let b = &self.buf[self.pos..end];
                self.pos = end;
                Ok(b)
            }
            None => Err(Malformed::new(format!(
                "{} is truncated: needs {} bytes at body offset {}, has {}",
                self.what,
                n,
                self.pos,
                self.buf.len().saturating_sub(self.pos)
            ))),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.bytes(N)?.try_into().unwrap())
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    pub fn u16(&mut self) -> Result<u16> {
        let b = self.array()?;
        Ok(self.endian.u16(b))
    }
    pub fn u32(&mut self) -> Result<u32> {
        let b = self.array()?;
        Ok(self.endian.u32(b))
    }
    pub fn u64(&mut self) -> Result<u64> {
        let b = self.array()?;
        Ok(self.endian.u64(b))
    }
    pub fn i32(&mut self) -> Result<i32> {
        Ok(self.u32()? as i32)
    }
    /// An IPv4 address: 4 bytes in network order whatever the section's byte order.
    pub fn ipv4(&mut self) -> Result<std::net::Ipv4Addr> {
        Ok(std::net::Ipv4Addr::from(self.array::<4>()?))
    }
    /// An IPv6 address: 16 bytes in network order.
    pub fn ipv6(&mut self) -> Result<std::net::Ipv6Addr> {
        Ok(std::net::Ipv6Addr::from(self.array::<16>()?))
    }
    /// A string: u16 length, then that many bytes of UTF-8, no padding.
    pub fn str16(&mut self, name: &str) -> Result<String> {
        let len = self.u16()? as usize;
        let b = self.bytes(len)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| Malformed::new(format!("{}: {name} is not valid UTF-8", self.what)))
    }
    /// What is left after the fields read so far.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
}

/// Pushes fixed fields in order: the writing side of [`Fields`].
pub struct Emit<'a> {
    pub endian: Endian,
    pub out: &'a mut Vec<u8>,
}

impl Emit<'_> {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.out.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.out.extend_from_slice(&self.endian.u16_bytes(v));
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.out.extend_from_slice(&self.endian.u32_bytes(v));
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.out.extend_from_slice(&self.endian.u64_bytes(v));
        self
    }
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.u32(v as u32)
    }
    pub fn ipv6(&mut self, v: std::net::Ipv6Addr) -> &mut Self {
        self.bytes(&v.octets())
    }
    pub fn ipv4(&mut self, v: std::net::Ipv4Addr) -> &mut Self {
        self.out.extend_from_slice(&v.octets());
        self
    }
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.out.extend_from_slice(v);
        self
    }
    /// u16 length and UTF-8 bytes, clipped to 65535 bytes at a character boundary.
    pub fn str16(&mut self, v: &str) -> &mut Self {
        let v = clip(v, u16::MAX as usize);
        self.u16(v.len() as u16).bytes(v.as_bytes())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn test_frame_construct_deconstruct() {
        for endian in [Endian::Little, Endian::Big] {
            let mut out = vec![];
            let start = begin_block(&mut out, endian, 0x1234);
            out.extend_from_slice(b"abcde");
            end_block(&mut out, endian, start);
            assert_eq!(out.len(), 20);
            let block = Block::new_checked(endian, &out).unwrap();
            assert_eq!(block.block_type(), 0x1234);
            assert_eq!(block.total_len(), 20);
            assert_eq!(block.body(), b"abcde\0\0\0");
        }
    }

    #[test]
    fn test_frame_truncated_and_corrupted() {
        let mut out = vec![];
        let start = begin_block(&mut out, Endian::Little, 1);
        out.extend_from_slice(&[1, 2, 3, 4]);
        end_block(&mut out, Endian::Little, start);
        assert!(Block::new_checked(Endian::Little, &out[..8]).is_err());
        assert!(Block::new_checked(Endian::Little, &out[..out.len() - 4]).is_err());
        let n = out.len();
        out[n - 1] = 9;
        let err = Block::new_checked(Endian::Little, &out).unwrap_err();
        assert!(err.0.contains("trailing length"), "{err}");
    }

    #[test]
    fn test_check_total_len() {
        assert!(check_total_len(12).is_ok());
        assert!(check_total_len(8).is_err());
        assert!(check_total_len(14).is_err());
        assert!(check_total_len(MAX_BLOCK_LEN + 4).is_err());
    }

    #[test]
    fn test_options() {
        let mut out = vec![];
        emit_str_option(&mut out, Endian::Big, 2, "eth0");
        emit_option(&mut out, Endian::Big, 9, &[9]);
        emit_end_of_options(&mut out, Endian::Big);
        let opts: Vec<_> = Options::new(Endian::Big, &out)
            .map(|o| o.unwrap())
            .collect();
        assert_eq!(opts, vec![(2, &b"eth0"[..]), (9, &[9u8][..])]);
        // An option claiming more bytes than there are.
        let bad = [2, 0, 200, 0, b'x', 0, 0, 0];
        let mut it = Options::new(Endian::Little, &bad);
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }

    #[test]
    fn test_clip() {
        assert_eq!(clip("héllo", 2), "h");
        assert_eq!(clip("héllo", 3), "hé");
        assert_eq!(clip("abc", 10), "abc");
    }

    #[test]
    fn test_fields_truncated() {
        let mut f = Fields::new(Endian::Little, &[1, 0, 5, 0, b'a'], "test block");
        assert_eq!(f.u16().unwrap(), 1);
        let err = f.str16("name").unwrap_err();
        assert!(err.0.contains("truncated"), "{err}");
        let mut f = Fields::new(Endian::Little, &[2, 0, 0xff, 0xfe], "test block");
        assert!(f.str16("name").unwrap_err().0.contains("UTF-8"));
    }
}
