//! Writes two captures of "the same run" for the plg diff benchmark: the same stream bytes per
//! connection, but other ephemeral ports, other read sizes and another interleaving of the
//! connections in the file, so that a lockstep comparison would fail and diff must match.
//!
//!   plg-bench-diff A B STREAM_BYTES [CHANGES]
//!
//! CHANGES connections of B get one byte flipped (default 0: the captures are the same).

use plg::format::record::*;
use plg::format::CaptureWriter;
use std::io::BufWriter;
use std::net::{Ipv4Addr, SocketAddrV4};

const CONNS: u32 = 256;
/// Connections open at once.
const GROUP: u32 = 16;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill(&mut self, b: &mut [u8]) {
        for c in b.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

fn write(path: &str, per_conn: usize, read: usize, reverse: bool, port0: u16, changes: u32) {
    let session = Session {
        format_version: plg::format::FORMAT_VERSION,
        mode: Mode::Record,
        subnet: Ipv4Addr::new(10, 0, 0, 0),
        prefix_len: 24,
        start_ns: 1_700_000_000_000_000_000,
        plg_version: "bench".into(),
    };
    let procs: Vec<Process> = ["client", "server"]
        .iter()
        .enumerate()
        .map(|(i, n)| Process {
            index: i as u16,
            name: n.to_string(),
            command: n.to_string(),
            addr: Ipv4Addr::new(10, 0, 0, 1 + i as u8),
            live: true,
        })
        .collect();
    let file = std::fs::File::create(path).expect("create");
    let mut w = CaptureWriter::new(BufWriter::with_capacity(1 << 20, file), &session, &procs)
        .expect("writer");
    let mut t = session.start_ns;
    let mut sum = Summary {
        processes: 2,
        ..Default::default()
    };
    let mut buf = vec![0u8; read];
    for g in 0..CONNS / GROUP {
        let ids: Vec<u32> = (g * GROUP..(g + 1) * GROUP).collect();
        // Open in id order (the key ordinal follows it), interleave data differently.
        for &id in &ids {
            t += 1000;
            w.write(&Record::ConnOpen(ConnOpen {
                id,
                time_ns: t,
                client: 0,
                client_addr: SocketAddrV4::new(procs[0].addr, port0 + id as u16),
                server: 1,
                server_addr: SocketAddrV4::new(procs[1].addr, 9000),
                outcome: Outcome::Established,
            }))
            .unwrap();
        }
        let mut order = ids.clone();
        if reverse {
            order.reverse();
        }
        // Each connection's bytes come from its own generator: identical in A and B.
        let mut rngs: Vec<Rng> = ids.iter().map(|&i| Rng(0x9e37_79b9 + i as u64)).collect();
        let mut sent = vec![0usize; ids.len()];
        loop {
            let mut any = false;
            for &id in &order {
                let k = (id - g * GROUP) as usize;
                if sent[k] >= per_conn {
                    continue;
                }
                any = true;
                // A 4 KiB request first, then the answer in reads of `read` bytes.
                let first = sent[k] == 0;
                let n = if first { 4096 } else { read }.min(per_conn - sent[k]);
                rngs[k].fill(&mut buf[..n]);
                let flip_at = per_conn / 2;
                if id < changes && (sent[k]..sent[k] + n).contains(&flip_at) {
                    buf[flip_at - sent[k]] ^= 1;
                }
                sent[k] += n;
                let dir = if first {
                    Direction::ClientToServer
                } else {
                    Direction::ServerToClient
                };
                t += 1000;
                w.write_data(id, dir, t, &buf[..n]).unwrap();
                sum.data_blocks += 1;
                match dir {
                    Direction::ClientToServer => sum.bytes_c2s += n as u64,
                    Direction::ServerToClient => sum.bytes_s2c += n as u64,
                }
            }
            if !any {
                break;
            }
        }
        for &id in &ids {
            for dir in [Direction::ClientToServer, Direction::ServerToClient] {
                t += 1000;
                w.write(&Record::ConnClose(ConnClose {
                    id,
                    dir,
                    kind: CloseKind::Fin,
                    time_ns: t,
                }))
                .unwrap();
            }
        }
        sum.connections += GROUP;
    }
    sum.end_ns = t + 1000;
    w.finish(&sum).unwrap();
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 4 {
        eprintln!("usage: plg-bench-diff A B STREAM_BYTES [CHANGES]");
        std::process::exit(2);
    }
    let bytes: usize = a[3].parse().expect("STREAM_BYTES");
    let changes: u32 = a.get(4).map_or(0, |c| c.parse().expect("CHANGES"));
    let per_conn = bytes / CONNS as usize;
    write(&a[1], per_conn, 16 << 10, false, 40000, 0);
    write(&a[2], per_conn, 24 << 10, true, 50000, changes);
}
