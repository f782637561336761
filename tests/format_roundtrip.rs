//! Round-trip properties of the capture format: random sessions written then read back equal,
//! in either byte order; files cut at block boundaries stay readable; files cut inside a
//! block fail at that block's offset; `read_at` re-reads what iteration returned.
//!
//! Randomness comes from a small seeded PRNG, so a failure names a seed that reproduces it.

use plg::format::*;
use std::io::Cursor;
use std::net::{Ipv4Addr, SocketAddrV4};

/// xorshift64*: enough randomness for test inputs, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, max: u64) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn string(&mut self, max: u64) -> String {
        const CHARS: [&str; 8] = ["a", "Z", " ", "-", "é", "→", "'", "9"];
        (0..self.below(max + 1))
            .map(|_| CHARS[self.below(8) as usize])
            .collect()
    }
    fn addr(&mut self) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(self.next() as u32), self.next() as u16)
    }
}

struct Capture {
    session: Session,
    processes: Vec<Process>,
    events: Vec<Record>,
    summary: Summary,
}

impl Capture {
    /// Every record the reader should return, in order.
    fn records(&self) -> Vec<Record> {
        let mut all = vec![Record::Session(self.session.clone())];
        all.extend(self.processes.iter().cloned().map(Record::Process));
        all.extend(self.events.iter().cloned());
        all.push(Record::Summary(self.summary));
        all
    }
}

fn random_capture(seed: u64) -> Capture {
    let mut rng = Rng::new(seed);
    let session = Session {
        format_version: FORMAT_VERSION,
        mode: if rng.below(2) == 0 {
            Mode::Record
        } else {
            Mode::Replay
        },
        subnet: Ipv4Addr::from(rng.next() as u32),
        prefix_len: rng.below(33) as u8,
        subnet6: None,
        start_ns: rng.next(),
        plg_version: rng.string(12),
    };
    let n = 1 + rng.below(5) as u16;
    let processes: Vec<Process> = (0..n)
        .map(|index| Process {
            index,
            name: rng.string(10),
            command: rng.string(60),
            addr: Ipv4Addr::from(rng.next() as u32),
            addr6: None,
            live: rng.below(2) == 0,
        })
        .collect();
    let mut time = session.start_ns;
    let mut events = vec![];
    for _ in 0..rng.below(60) {
        time = time.wrapping_add(rng.below(1_000_000));
        let proc_index = |rng: &mut Rng| {
            if rng.below(8) == 0 {
                EXTERNAL
            } else {
                rng.below(n as u64) as u16
            }
        };
        let dir = |rng: &mut Rng| {
            if rng.below(2) == 0 {
                Direction::ClientToServer
            } else {
                Direction::ServerToClient
            }
        };
        let event = match rng.below(6) {
            0 => Record::ProcessExit(ProcessExit {
                index: rng.below(n as u64) as u16,
                time_ns: time,
                status: if rng.below(2) == 0 {
                    ExitStatus::Exited(rng.next() as i32)
                } else {
                    ExitStatus::Signaled(rng.below(65) as i32)
                },
            }),
            1 => Record::ConnOpen(ConnOpen {
                id: rng.next() as u32,
                time_ns: time,
                client: proc_index(&mut rng),
                client_addr: rng.addr().into(),
                server: proc_index(&mut rng),
                server_addr: rng.addr().into(),
                outcome: [Outcome::Established, Outcome::Refused, Outcome::Unreachable]
                    [rng.below(3) as usize],
            }),
            2 | 3 => Record::Data(Data {
                bytes: {
                    let max = if rng.below(10) == 0 { 70_000 } else { 40 };
                    rng.bytes(max)
                },
                id: rng.next() as u32,
                dir: dir(&mut rng),
                time_ns: time,
            }),
            4 => Record::ConnClose(ConnClose {
                id: rng.next() as u32,
                dir: dir(&mut rng),
                kind: if rng.below(2) == 0 {
                    CloseKind::Fin
                } else {
                    CloseKind::Rst
                },
                time_ns: time,
            }),
            _ => {
                let bytes = rng.bytes(100);
                Record::Packet(Packet {
                    interface: rng.below(n as u64) as u32,
                    time_ns: time,
                    orig_len: bytes.len() as u32,
                    bytes,
                })
            }
        };
        events.push(event);
    }
    let summary = Summary {
        end_ns: time,
        processes: n as u32,
        connections: rng.next() as u32,
        refused: rng.next() as u32,
        resets: rng.next() as u32,
        data_blocks: rng.next(),
        bytes_c2s: rng.next(),
        bytes_s2c: rng.next(),
        packets: rng.next(),
        ipv6_dropped: rng.next(),
    };
    Capture {
        session,
        processes,
        events,
        summary,
    }
}

/// Writes a capture, using the hot-path calls for some Data and Packet records.
fn write(c: &Capture, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed ^ 0xffff);
    let mut w = CaptureWriter::new(Vec::new(), &c.session, &c.processes).unwrap();
    for event in &c.events {
        match event {
            Record::Data(d) if rng.below(2) == 0 => {
                w.write_data(d.id, d.dir, d.time_ns, &d.bytes).unwrap()
            }
            Record::Packet(p) if rng.below(2) == 0 => {
                w.write_packet(p.interface, p.time_ns, &p.bytes).unwrap()
            }
            _ => w.write(event).unwrap(),
        }
        if rng.below(20) == 0 {
            w.flush().unwrap();
        }
    }
    let written = w.bytes_written();
    let file = w.finish(&c.summary).unwrap();
    assert!(written < file.len() as u64);
    file
}

fn read_all(file: &[u8]) -> Result<Vec<Record>, FormatError> {
    CaptureReader::new(file, "mem")?.collect()
}

/// Offsets of every block start, walking the framing of a little-endian file.
fn block_starts(file: &[u8]) -> Vec<usize> {
    let mut at = 0;
    let mut starts = vec![];
    while at < file.len() {
        starts.push(at);
        at += u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap()) as usize;
    }
    assert_eq!(at, file.len());
    starts
}

const SEEDS: u64 = 60;

#[test]
fn random_captures_read_back_equal() {
    for seed in 0..SEEDS {
        let c = random_capture(seed);
        let file = write(&c, seed);
        let records = read_all(&file).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(records, c.records(), "seed {seed}");
        let mut r = CaptureReader::new(&file[..], "mem").unwrap();
        assert_eq!(r.session(), Some(&c.session));
        r.by_ref().for_each(drop);
        assert!(r.complete(), "seed {seed}");
    }
}

#[test]
fn read_at_rereads_each_record() {
    for seed in 0..SEEDS / 4 {
        let c = random_capture(seed);
        let file = write(&c, seed);
        let mut r = CaptureReader::new(Cursor::new(&file), "mem").unwrap();
        let mut seen = vec![];
        while let Some(record) = r.next() {
            seen.push((r.position(), record.unwrap()));
        }
        for (at, record) in seen.iter().rev() {
            assert_eq!(&r.read_at(*at).unwrap(), record, "seed {seed} offset {at}");
        }
        // Re-reading in the middle of iteration does not disturb it.
        let mut r = CaptureReader::new(Cursor::new(&file), "mem").unwrap();
        r.next().unwrap().unwrap();
        r.read_at(seen.last().unwrap().0).unwrap();
        let rest: Vec<_> = r.map(Result::unwrap).collect();
        assert_eq!(rest.len(), seen.len() - 1);
        assert!(CaptureReader::new(Cursor::new(&file), "mem")
            .unwrap()
            .read_at(file.len() as u64)
            .is_err());
    }
}

#[test]
fn cut_at_every_block_boundary_still_reads() {
    for seed in 0..SEEDS / 4 {
        let c = random_capture(seed);
        let file = write(&c, seed);
        let expected = c.records();
        let starts = block_starts(&file);
        // starts[1] is the Session block: a file must hold it whole to be a plg capture.
        for &cut in starts.iter().skip(2).chain([file.len()].iter()) {
            let part = &file[..cut];
            let mut r = CaptureReader::new(part, "mem").unwrap();
            let records: Vec<_> = r.by_ref().map(|r| r.unwrap()).collect();
            assert_eq!(
                records[..],
                expected[..records.len()],
                "seed {seed} cut {cut}"
            );
            assert_eq!(r.complete(), cut == file.len(), "seed {seed} cut {cut}");
        }
        for &cut in &starts[..2] {
            let err = CaptureReader::new(&file[..cut], "mem").err().unwrap();
            assert!(err.message.contains("not a plg capture"), "{err}");
        }
    }
}

#[test]
fn cut_inside_a_block_names_its_offset() {
    for seed in 0..SEEDS / 4 {
        let c = random_capture(seed);
        let file = write(&c, seed);
        let starts = block_starts(&file);
        let mut rng = Rng::new(seed);
        for (i, &start) in starts.iter().enumerate() {
            let end = starts.get(i + 1).copied().unwrap_or(file.len());
            for cut in [
                start + 1,
                start + 7,
                start + 8,
                end - 1,
                start + 1 + rng.below((end - start - 1) as u64) as usize,
            ] {
                let part = &file[..cut];
                let err = match CaptureReader::new(part, "cut.traffic") {
                    Err(e) => e,
                    Ok(r) => r
                        .filter_map(Result::err)
                        .next()
                        .unwrap_or_else(|| panic!("seed {seed}: cut at {cut} read without error")),
                };
                assert_eq!(err.offset, start as u64, "seed {seed} cut {cut}: {err}");
                assert!(err.message.contains("truncated"), "{err}");
                assert_eq!(err.path, "cut.traffic");
            }
        }
    }
}

/// Converts a little-endian plg capture to big-endian, field by field, from the layouts in
/// docs/FORMAT.md: an encoder independent of the writer's.
fn to_big_endian(file: &[u8]) -> Vec<u8> {
    let mut out = file.to_vec();
    for start in block_starts(file) {
        let b = &mut out[start..];
        let len = u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize;
        let block_type = u32::from_le_bytes(b[0..4].try_into().unwrap());
        swap(&mut b[..len], "II");
        swap(&mut b[len - 4..len], "I");
        let body = &mut b[8..len - 4];
        match block_type {
            0x0A0D0D0A => {
                swap(body, "IHHQ");
                swap_options(&mut body[16..]);
            }
            1 => {
                swap(body, "HHI");
                swap_options(&mut body[8..]);
            }
            6 => swap(body, "IIIII"),
            0xBAD => {
                let kind = u16::from_le_bytes(body[4..6].try_into().unwrap());
                swap(body, "IHHI");
                let layout = match kind {
                    1 => "HBB4QS",
                    2 => "HBB4SS",
                    3 => "QHBBI",
                    4 => "QIHH44HHB",
                    5 => "QIB",
                    6 => "QIBBH",
                    7 => "QIIIIQQQQQ",
                    _ => panic!("kind {kind}"),
                };
                swap(&mut body[12..], layout);
            }
            t => panic!("block type {t:#x}"),
        }
    }
    out
}

/// Reverses fields in place: Q u64, I u32, H u16, B u8, 4 four raw bytes, S u16-length string.
fn swap(buf: &mut [u8], layout: &str) {
    let mut at = 0;
    for c in layout.chars() {
        let n = match c {
            'Q' => 8,
            'I' => 4,
            'H' => 2,
            'B' | '4' | 'S' => 0,
            _ => unreachable!(),
        };
        buf[at..at + n].reverse();
        at += n;
        match c {
            'B' => at += 1,
            '4' => at += 4,
            'S' => {
                let len = u16::from_le_bytes([buf[at], buf[at + 1]]) as usize;
                buf[at..at + 2].reverse();
                at += 2 + len;
            }
            _ => {}
        }
    }
}

fn swap_options(mut buf: &mut [u8]) {
    while buf.len() >= 4 {
        let code = u16::from_le_bytes([buf[0], buf[1]]);
        let len = u16::from_le_bytes([buf[2], buf[3]]) as usize;
        swap(buf, "HH");
        if code == 0 {
            break;
        }
        buf = &mut buf[4 + len.div_ceil(4) * 4..];
    }
}

#[test]
fn big_endian_captures_read_equal() {
    for seed in 0..SEEDS / 2 {
        let c = random_capture(seed);
        let be = to_big_endian(&write(&c, seed));
        assert_eq!(&be[8..12], &[0x1a, 0x2b, 0x3c, 0x4d]);
        let records = read_all(&be).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(records, c.records(), "seed {seed}");
    }
}

#[test]
fn two_sections_in_either_order_read_in_sequence() {
    let (a, b) = (random_capture(1), random_capture(2));
    let mut file = write(&a, 1);
    let second_start = file.len() as u64;
    file.extend(to_big_endian(&write(&b, 2)));
    let mut r = CaptureReader::new(Cursor::new(&file), "mem").unwrap();
    let mut records = vec![];
    let mut positions = vec![];
    while let Some(record) = r.next() {
        records.push(record.unwrap());
        positions.push(r.position());
    }
    let mut expected = a.records();
    expected.extend(b.records());
    assert_eq!(records, expected);
    assert_eq!(r.session(), Some(&b.session));
    // read_at uses each block's own section's byte order.
    for (at, record) in positions.iter().zip(&records) {
        assert_eq!(&r.read_at(*at).unwrap(), record);
    }
    assert!(positions.iter().any(|&p| p > second_start));
}

#[test]
fn unknown_blocks_are_skipped_and_reported() {
    let c = random_capture(3);
    let file = write(&c, 3);
    let starts = block_starts(&file);
    let insert_at = starts[starts.len() - 1]; // before the Summary
    let custom = |pen: u32, kind: u16| {
        let mut b = vec![];
        for v in [0xBADu32, 24, pen] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&kind.to_le_bytes());
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&24u32.to_le_bytes());
        b
    };
    let mut extra = custom(PEN, 999);
    extra.extend(custom(4242, 1));
    // A Name Resolution Block with an empty record list.
    for v in [4u32, 16, 0, 16] {
        extra.extend_from_slice(&v.to_le_bytes());
    }
    let mut patched = file[..insert_at].to_vec();
    patched.extend(&extra);
    patched.extend(&file[insert_at..]);
    let records = read_all(&patched).unwrap();
    let unknown: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Unknown(u) => Some(*u),
            _ => None,
        })
        .collect();
    let at = insert_at as u64;
    assert_eq!(
        unknown,
        vec![
            Unknown {
                offset: at,
                block_type: 0xBAD,
                kind: Some(999)
            },
            Unknown {
                offset: at + 24,
                block_type: 0xBAD,
                kind: None
            },
            Unknown {
                offset: at + 48,
                block_type: 4,
                kind: None
            },
        ]
    );
    assert_eq!(records.len(), c.records().len() + 3);
    assert_eq!(records.last(), Some(&Record::Summary(c.summary)));
}

#[test]
fn newer_format_version_is_rejected_at_open() {
    let mut c = random_capture(4);
    c.session.format_version = FORMAT_VERSION + 1;
    let file = write(&c, 4);
    let err = CaptureReader::new(&file[..], "new.traffic").err().unwrap();
    assert!(err.message.contains("newer than this plg"), "{err}");
    assert_eq!(err.offset, block_starts(&file)[1] as u64);
}

#[test]
fn corrupted_trailer_is_an_error_at_its_block() {
    let c = random_capture(5);
    let mut file = write(&c, 5);
    let starts = block_starts(&file);
    let victim = starts[starts.len() / 2];
    let len = u32::from_le_bytes(file[victim + 4..victim + 8].try_into().unwrap()) as usize;
    file[victim + len - 4] ^= 0x40;
    let err = read_all(&file).unwrap_err();
    assert_eq!(err.offset, victim as u64);
    assert!(err.message.contains("trailing length"), "{err}");
    assert!(err
        .to_string()
        .starts_with(&format!("mem: at byte {victim}: ")));
}

#[test]
fn absurd_length_is_refused_before_allocating() {
    let c = random_capture(6);
    let mut file = write(&c, 6);
    let starts = block_starts(&file);
    let victim = starts[2];
    file[victim + 4..victim + 8].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let err = read_all(&file).unwrap_err();
    assert_eq!(err.offset, victim as u64);
    assert!(err.message.contains("64 MiB"), "{err}");
}

#[test]
fn reader_errors_once_then_stops() {
    let c = random_capture(7);
    let file = write(&c, 7);
    let mut r = CaptureReader::new(&file[..file.len() - 2], "mem").unwrap();
    let results: Vec<_> = r.by_ref().collect();
    assert!(results.last().unwrap().is_err());
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
    assert!(r.next().is_none());
}

#[test]
fn open_reports_file_errors() {
    let dir = std::env::temp_dir().join(format!("plg-format-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases: [(&str, &[u8], &str); 3] = [
        ("empty.traffic", b"", "empty file"),
        (
            "classic.pcap",
            &[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0],
            "a classic pcap file, not a plg capture",
        ),
        (
            "random.bin",
            &[0x13, 0x37, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8],
            "not a pcapng file",
        ),
    ];
    for (name, bytes, message) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = CaptureReader::open(&path).err().unwrap();
        assert!(err.message.contains(message), "{err}");
        assert_eq!(err.offset, 0);
        assert_eq!(err.path, path.display().to_string());
    }
    let err = CaptureReader::open(&dir.join("missing")).err().unwrap();
    assert!(
        err.to_string().ends_with(": No such file or directory"),
        "{err}"
    );
    assert!(!err.to_string().contains("at byte"), "{err}");
    let c = random_capture(8);
    let path = dir.join("good.traffic");
    std::fs::write(&path, write(&c, 8)).unwrap();
    let records: Vec<_> = CaptureReader::open(&path)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(records, c.records());
    std::fs::remove_dir_all(&dir).unwrap();
}
