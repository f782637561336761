//! Writes a large, realistic capture for the inspect/export benchmark:
//! `plg-bench-export OUT.traffic STREAM_BYTES`.
//!
//! Traffic shape: three processes; web-like connections, each a few small requests answered by
//! responses of 16 KiB to 2 MiB delivered in reads of up to 64 KiB (what a relay's `read()`
//! returns under load), plus a UDP datagram now and then. Deterministic (fixed seed).

use plg::format::*;
use std::io::BufWriter;
use std::net::{Ipv4Addr, SocketAddrV4};

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

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: plg-bench-export OUT.traffic STREAM_BYTES");
        std::process::exit(2);
    }
    let target: u64 = args[2].parse().expect("STREAM_BYTES is a number");
    let start = 1_700_000_000_000_000_000u64;
    let session = Session {
        format_version: FORMAT_VERSION,
        mode: Mode::Record,
        subnet: Ipv4Addr::new(10, 0, 0, 0),
        prefix_len: 24,
        start_ns: start,
        plg_version: env!("CARGO_PKG_VERSION").into(),
    };
    let processes: Vec<Process> = ["web", "client", "cache"]
        .iter()
        .enumerate()
        .map(|(i, n)| Process {
            index: i as u16,
            name: n.to_string(),
            command: format!("{n} --bench"),
            addr: Ipv4Addr::new(10, 0, 0, i as u8 + 1),
            live: true,
        })
        .collect();
    let out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&args[1])?);
    let mut w = CaptureWriter::new(out, &session, &processes)?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let body: Vec<u8> = (0..65536u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut sum = Summary {
        processes: 3,
        ..Default::default()
    };
    let mut t = start;
    let mut id: ConnId = 0;
    let mut written = 0u64;
    while written < target {
        t += 50_000;
        let port = 40_000 + (id % 20_000) as u16;
        w.write(&Record::ConnOpen(ConnOpen {
            id,
            time_ns: t,
            client: 1,
            client_addr: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), port),
            server: 0,
            server_addr: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 8080),
            outcome: Outcome::Established,
        }))?;
        sum.connections += 1;
        for _ in 0..1 + rng.below(4) {
            let req = format!("GET /file/{} HTTP/1.1\r\nHost: web\r\n\r\n", rng.next());
            t += 20_000;
            w.write_data(id, Direction::ClientToServer, t, req.as_bytes())?;
            sum.data_blocks += 1;
            sum.bytes_c2s += req.len() as u64;
            written += req.len() as u64;
            let mut left = 16_384 + rng.below(2 << 20);
            while left > 0 {
                let n = left.min(1 + rng.below(65536)).min(65536) as usize;
                t += 5_000;
                w.write_data(id, Direction::ServerToClient, t, &body[..n])?;
                sum.data_blocks += 1;
                sum.bytes_s2c += n as u64;
                written += n as u64;
                left -= n as u64;
            }
        }
        if id % 16 == 0 {
            let pkt = udp_packet();
            w.write_packet(1, t, &pkt)?;
            sum.packets += 1;
        }
        for dir in [Direction::ClientToServer, Direction::ServerToClient] {
            t += 10_000;
            w.write(&Record::ConnClose(ConnClose {
                id,
                dir,
                kind: CloseKind::Fin,
                time_ns: t,
            }))?;
        }
        id += 1;
    }
    sum.end_ns = t + 1;
    w.finish(&sum)?;
    eprintln!("{}: {} connections, {written} stream bytes", args[1], id);
    Ok(())
}

/// A small UDP datagram from 10.0.0.2:5000 to 10.0.0.3:5000 (checksum 0: none).
fn udp_packet() -> Vec<u8> {
    let payload = b"heartbeat";
    let total = 20 + 8 + payload.len();
    let mut p = vec![
        0x45,
        0,
        0,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        17,
        0,
        0,
        10,
        0,
        0,
        2,
        10,
        0,
        0,
        3,
    ];
    let mut s: u32 = p
        .chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(c[1]))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    let sum = !(s as u16);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(&[0x13, 0x88, 0x13, 0x88, 0, (8 + payload.len()) as u8, 0, 0]);
    p.extend_from_slice(payload);
    p
}
