//! Property (issue 11): every capture plg can write passes `plg inspect --check`. Seeded random
//! sessions that use everything docs/FORMAT.md allows a writer (ConnOpen earlier than the block
//! before it, id gaps, FIN then RST on one side, refused and unreachable connections, reads long
//! enough to be split, packets, process exits), written by plg's own `CaptureWriter` with the
//! Summary counted as FORMAT.md defines it, must check clean; and every file they leave when
//! cut at a block boundary (or by the writer's Filler-aligned writes) reads as truncated only.

use plg::format::{
    CaptureWriter, CloseKind, ConnClose, ConnOpen, Direction, ExitStatus, Mode, Outcome, Process,
    ProcessExit, Record, Session, Summary, FORMAT_VERSION,
};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn session_bytes(seed: u64) -> Vec<u8> {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let n = 2 + r.below(3) as u16;
    let mut t = 1_700_000_000_000_000_000u64;
    let session = Session {
        format_version: FORMAT_VERSION,
        mode: Mode::Record,
        subnet: Ipv4Addr::new(10, 0, 0, 0),
        prefix_len: 24,
        subnet6: None,
        start_ns: t,
        plg_version: "0.1.0".into(),
    };
    let procs: Vec<Process> = (0..n)
        .map(|i| Process {
            index: i,
            name: format!("p{i}"),
            command: format!("cmd {i}"),
            addr: Ipv4Addr::new(10, 0, 0, 2 + i as u8),
            addr6: None,
            live: true,
        })
        .collect();
    let mut w = CaptureWriter::new(Vec::new(), &session, &procs).unwrap();
    let mut sum = Summary {
        processes: n.into(),
        ..Summary::default()
    };
    let mut next_id = 0u32;
    // Open connections: (id, closed FIN per side).
    let mut open: Vec<(u32, [bool; 2])> = Vec::new();
    let mut exited = vec![false; n as usize];
    for _ in 0..(50 + r.below(150)) {
        t += 1 + r.below(2_000_000);
        match r.below(10) {
            0..=2 => {
                // An id may be skipped: a SYN seen whose connection never got an outcome.
                next_id += 1 + u32::from(r.below(8) == 0);
                let id = next_id - 1;
                let outcome = match r.below(6) {
                    0 => Outcome::Refused,
                    1 => Outcome::Unreachable,
                    _ => Outcome::Established,
                };
                let (c, s) = (r.below(n.into()) as u16, r.below(n.into()) as u16);
                // Stamped with the SYN time, written once the outcome is known: earlier than
                // the block before it.
                let syn = t - r.below(1_000_000);
                w.write(&Record::ConnOpen(ConnOpen {
                    id,
                    time_ns: syn,
                    client: c,
                    client_addr: SocketAddrV4::new(procs[c as usize].addr, 40000).into(),
                    server: s,
                    server_addr: SocketAddrV4::new(procs[s as usize].addr, 80).into(),
                    outcome,
                }))
                .unwrap();
                sum.connections += 1;
                if outcome == Outcome::Established {
                    open.push((id, [false; 2]));
                } else {
                    sum.refused += 1;
                }
            }
            3..=6 if !open.is_empty() => {
                let k = r.below(open.len() as u64) as usize;
                let (id, closed) = open[k];
                let d = r.below(2) as usize;
                if closed[d] {
                    continue;
                }
                let len = if r.below(40) == 0 {
                    300_000 + r.below(300_000) as usize
                } else {
                    1 + r.below(3000) as usize
                };
                let dir = [Direction::ClientToServer, Direction::ServerToClient][d];
                w.write_data(id, dir, t, &vec![d as u8; len]).unwrap();
                sum.data_blocks += 1;
                if d == 0 {
                    sum.bytes_c2s += len as u64;
                } else {
                    sum.bytes_s2c += len as u64;
                }
            }
            7 | 8 if !open.is_empty() => {
                let k = r.below(open.len() as u64) as usize;
                let d = r.below(2) as usize;
                let dir = [Direction::ClientToServer, Direction::ServerToClient][d];
                let id = open[k].0;
                let close = |kind| {
                    Record::ConnClose(ConnClose {
                        id,
                        dir,
                        kind,
                        time_ns: t,
                    })
                };
                if r.below(4) == 0 {
                    // A reset (possibly after this side's FIN) ends the connection.
                    w.write(&close(CloseKind::Rst)).unwrap();
                    sum.resets += 1;
                    open.remove(k);
                } else if !open[k].1[d] {
                    w.write(&close(CloseKind::Fin)).unwrap();
                    open[k].1[d] = true;
                    if open[k].1 == [true; 2] {
                        open.remove(k);
                    }
                }
            }
            9 => {
                let i = r.below(n.into()) as usize;
                if r.below(3) == 0 && !exited[i] {
                    exited[i] = true;
                    w.write(&Record::ProcessExit(ProcessExit {
                        index: i as u16,
                        time_ns: t,
                        status: ExitStatus::Exited(r.below(3) as i32),
                    }))
                    .unwrap();
                } else {
                    let mut pkt = vec![0x45u8, 0, 0, 28, 0, 0, 0, 0, 64, 17];
                    pkt.resize(28, 0);
                    w.write_packet(i as u32, t, &pkt).unwrap();
                    sum.packets += 1;
                }
            }
            _ => {}
        }
    }
    sum.end_ns = t + 1;
    w.finish(&sum).unwrap()
}

fn check(path: &std::path::Path) -> (Option<i32>, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_plg"))
        .args(["inspect", "--check", path.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

#[test]
fn every_capture_plg_can_write_passes_check() {
    let dir = std::env::temp_dir().join(format!("plg-check-prop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for seed in 0..40 {
        let bytes = session_bytes(seed);
        let path = dir.join(format!("s{seed}.traffic"));
        std::fs::write(&path, &bytes).unwrap();
        let (code, text) = check(&path);
        assert_eq!(code, Some(0), "seed {seed}: {text}");
        // Every block at most 256 KiB, so Wireshark's writers (editcap, mergecap) copy them.
        let starts = block_starts(&bytes);
        for (i, at) in starts.iter().enumerate() {
            let end = starts.get(i + 1).copied().unwrap_or(bytes.len());
            assert!(
                end - at <= 256 << 10,
                "seed {seed}: a block of {} bytes",
                end - at
            );
        }
        // Cut short: truncated, and nothing else.
        let mut r = Rng(seed + 7);
        let starts = block_starts(&bytes);
        let cut = starts[2 + r.below(starts.len() as u64 - 3) as usize];
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let (code, text) = check(&path);
        assert_eq!(code, Some(1), "seed {seed} cut at {cut}: {text}");
        assert!(
            text.contains("truncated: the capture has no closing summary")
                && text.contains("(1 problem)"),
            "seed {seed} cut at {cut}: {text}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn block_starts(file: &[u8]) -> Vec<usize> {
    let mut at = 0;
    let mut v = Vec::new();
    while at < file.len() {
        v.push(at);
        at += u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap()) as usize;
    }
    v
}
