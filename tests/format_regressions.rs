//! One test per bug found in the capture format layer (by tests, by fuzzing, by users), each
//! naming what it guards. Fixtures are inline bytes; crashes found by `fuzz/` go here too.

use plg::format::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Cursor;

/// Counts the bytes each thread allocates, so a test can bound what reading costs.
struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call unchanged to the system allocator; the only addition is a
// counter in a const-initialised thread local, which itself never allocates.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.with(|a| a.set(a.get() + layout.size()));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.with(|a| a.set(a.get() + new_size));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocated() -> usize {
    ALLOCATED.with(|a| a.get())
}

/// A little-endian plg capture: SHB, Session (format 1, record, 10.0.0.0/24, start 1, "0.1").
fn minimal() -> Vec<u8> {
    let mut f = vec![
        0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, // SHB
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0,
    ];
    f.extend_from_slice(&[
        0xad, 0x0b, 0, 0, 48, 0, 0, 0, 0xd9, 0x7e, 0, 0, 1, 0, 0, 0, 21, 0, 0, 0, // header
        1, 0, 0, 24, 10, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0, b'0', b'.', b'1', 0, 0,
        0, // body
        48, 0, 0, 0,
    ]);
    f
}

#[test]
fn minimal_fixture_reads() {
    let records: Vec<_> = CaptureReader::new(&minimal()[..], "min")
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        matches!(&records[..], [Record::Session(s)] if s.plg_version == "0.1" && s.prefix_len == 24)
    );
}

/// Found by fuzzing (libFuzzer rss): a block header promising 64 MiB in a file of a few dozen
/// bytes made the reader allocate the 64 MiB before finding the file too short.
#[test]
fn huge_length_in_tiny_file_does_not_allocate_it() {
    let mut file = minimal();
    let at = file.len() as u64;
    file.extend_from_slice(&[0xad, 0x0b, 0, 0]);
    file.extend_from_slice(&((64u32 << 20) - 4).to_le_bytes());
    file.extend_from_slice(&[0; 20]);
    let before = allocated();
    let results: Vec<_> = CaptureReader::new(&file[..], "tiny").unwrap().collect();
    let cost = allocated() - before;
    let err = results.last().unwrap().as_ref().unwrap_err();
    assert_eq!(err.offset, at);
    assert!(err.message.contains("truncated"), "{err}");
    assert!(
        cost < 1 << 20,
        "reading a {}-byte file allocated {cost} bytes",
        file.len()
    );
}

/// Found by `two_sections_in_either_order_read_in_sequence`: `read_at` decoded a block of the
/// first section with the byte order of the last section read.
#[test]
fn read_at_uses_the_byte_order_of_the_block_section() {
    let first = minimal();
    // The same capture, big-endian.
    let second: Vec<u8> = vec![
        0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 28, 0x1a, 0x2b, 0x3c, 0x4d, 0, 1, 0, 0, // SHB
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 28, // end SHB
        0, 0, 0x0b, 0xad, 0, 0, 0, 48, 0, 0, 0x7e, 0xd9, 0, 1, 0, 0, 0, 0, 0, 21, // header
        0, 1, 0, 24, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 3, b'0', b'.', b'1', 0, 0,
        0, // body
        0, 0, 0, 48,
    ];
    let mut file = first.clone();
    file.extend_from_slice(&second);
    let mut r = CaptureReader::new(Cursor::new(&file), "two").unwrap();
    let a = r.next().unwrap().unwrap();
    let b = r.next().unwrap().unwrap();
    assert_eq!(a, b);
    assert!(r.next().is_none());
    assert_eq!(r.read_at(28).unwrap(), a);
    assert_eq!(r.read_at(first.len() as u64 + 28).unwrap(), b);
}

/// The Session must be checked before anything else of the file is trusted: a newer version
/// whose body we cannot parse must say "newer", not "malformed".
#[test]
fn newer_version_with_unreadable_body_says_newer() {
    let mut file = minimal();
    file[48..50].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    file[50] = 0xee; // a mode this plg does not know
    let err = CaptureReader::new(&file[..], "new").err().unwrap();
    assert!(err.message.contains("newer than this plg"), "{err}");
    assert_eq!(err.offset, 28);
}

/// Counts the bytes pulled from the underlying file.
struct CountingFile {
    inner: Cursor<Vec<u8>>,
    read: u64,
}

impl std::io::Read for CountingFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl std::io::Seek for CountingFile {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// Found in review of replay's use of `read_at`: each call seeked the `BufReader` there and
/// back, and every seek drops its 1 MiB buffer, so re-reading N small blocks in file order
/// pulled N MiB from the file.
#[test]
fn read_at_in_file_order_reads_the_file_about_once() {
    use std::net::Ipv4Addr;
    let session = Session {
        format_version: FORMAT_VERSION,
        mode: Mode::Record,
        subnet: Ipv4Addr::new(10, 0, 0, 0),
        prefix_len: 24,
        subnet6: None,
        start_ns: 0,
        plg_version: "0.1.0".into(),
    };
    let p = Process {
        index: 0,
        name: "p0".into(),
        command: "true".into(),
        addr: Ipv4Addr::new(10, 0, 0, 1),
        addr6: None,
        live: true,
    };
    let mut w = CaptureWriter::new(Vec::new(), &session, &[p]).unwrap();
    for i in 0..20_000u32 {
        w.write_data(i % 7, Direction::ClientToServer, i as u64, &[i as u8; 200])
            .unwrap();
    }
    let file = w.finish(&Summary::default()).unwrap();
    let len = file.len() as u64;
    let counting = CountingFile {
        inner: Cursor::new(file),
        read: 0,
    };
    let mut r =
        CaptureReader::new(std::io::BufReader::with_capacity(1 << 20, counting), "big").unwrap();
    let mut offsets = vec![];
    while let Some(record) = r.next() {
        if let Record::Data(_) = record.unwrap() {
            offsets.push(r.position());
        }
    }
    for &at in &offsets {
        assert!(matches!(r.read_at(at).unwrap(), Record::Data(_)));
    }
    let read = r.get_ref().get_ref().read;
    assert!(read < 3 * len, "read {read} bytes for a file of {len}");
}
