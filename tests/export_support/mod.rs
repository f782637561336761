//! Synthetic but realistic captures for the inspect and export tests, written with the real
//! capture writer: an HTTP exchange, a Redis session, a refused port, a large binary transfer
//! ended by RST, a half-close, an unfinished connection, UDP and ICMP packets.

#![allow(dead_code)]

use plg::format::*;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const START: u64 = 1_700_000_000_000_000_000;

/// What a fixture holds, to compare exports against.
pub struct Conn {
    pub id: ConnId,
    pub port: u16,
    pub c2s: Vec<u8>,
    pub s2c: Vec<u8>,
}

pub struct Fixture {
    pub path: PathBuf,
    pub conns: Vec<Conn>,
    pub packets: u64,
}

fn addr(i: u8, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, i), port)
}

/// A scratch directory unique to one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("plg-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn plg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plg"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run plg")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

struct Builder {
    w: CaptureWriter<std::io::BufWriter<std::fs::File>>,
    t: u64,
    sum: Summary,
    conns: Vec<Conn>,
}

impl Builder {
    fn tick(&mut self) -> u64 {
        self.t += 137_000;
        self.t
    }

    fn open(
        &mut self,
        id: ConnId,
        client: u16,
        cport: u16,
        server: u16,
        port: u16,
        outcome: Outcome,
    ) {
        let t = self.tick();
        self.w
            .write(&Record::ConnOpen(ConnOpen {
                id,
                time_ns: t,
                client,
                client_addr: addr(client as u8 + 1, cport).into(),
                server,
                server_addr: addr(server as u8 + 1, port).into(),
                outcome,
            }))
            .unwrap();
        self.sum.connections += 1;
        if outcome == Outcome::Refused {
            self.sum.refused += 1;
        }
        if outcome == Outcome::Established {
            self.conns.push(Conn {
                id,
                port,
                c2s: Vec::new(),
                s2c: Vec::new(),
            });
        }
    }

    fn data(&mut self, id: ConnId, dir: Direction, bytes: &[u8]) {
        let t = self.tick();
        self.w.write_data(id, dir, t, bytes).unwrap();
        self.sum.data_blocks += 1;
        let c = self.conns.iter_mut().find(|c| c.id == id).unwrap();
        match dir {
            Direction::ClientToServer => {
                self.sum.bytes_c2s += bytes.len() as u64;
                c.c2s.extend_from_slice(bytes)
            }
            Direction::ServerToClient => {
                self.sum.bytes_s2c += bytes.len() as u64;
                c.s2c.extend_from_slice(bytes)
            }
        }
    }

    fn close(&mut self, id: ConnId, dir: Direction, kind: CloseKind) {
        let t = self.tick();
        if kind == CloseKind::Rst {
            self.sum.resets += 1;
        }
        self.w
            .write(&Record::ConnClose(ConnClose {
                id,
                dir,
                kind,
                time_ns: t,
            }))
            .unwrap();
    }

    fn packet(&mut self, iface: u32, bytes: &[u8]) {
        let t = self.tick();
        self.w.write_packet(iface, t, bytes).unwrap();
        self.sum.packets += 1;
    }
}

fn udp(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ipv4(src.ip().octets(), dst.ip().octets(), 64)
        .udp(src.port(), dst.port());
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn ping(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let b =
        etherparse::PacketBuilder::ipv4(src.octets(), dst.octets(), 64).icmpv4_echo_request(7, 1);
    let mut v = Vec::new();
    b.write(&mut v, b"abcdefgh").unwrap();
    v
}

use Direction::{ClientToServer as C2S, ServerToClient as S2C};

/// The standard fixture; `complete: false` leaves the closing summary out (a truncated file).
pub fn write_fixture(dir: &Path, complete: bool) -> Fixture {
    let path = dir.join(if complete {
        "web.traffic"
    } else {
        "cut.traffic"
    });
    let session = Session {
        format_version: FORMAT_VERSION,
        mode: Mode::Record,
        subnet: Ipv4Addr::new(10, 0, 0, 0),
        prefix_len: 24,
        subnet6: None,
        start_ns: START,
        plg_version: "0.1.0".into(),
    };
    let procs = [
        ("web", "python3 -m http.server 8080"),
        (
            "client",
            "curl -s http://web:8080/ && redis-cli -h cache ping",
        ),
        ("cache", "redis-server --port 6379"),
    ];
    let processes: Vec<Process> = procs
        .iter()
        .enumerate()
        .map(|(i, (name, cmd))| Process {
            index: i as u16,
            name: name.to_string(),
            command: cmd.to_string(),
            addr: Ipv4Addr::new(10, 0, 0, i as u8 + 1),
            addr6: None,
            live: true,
        })
        .collect();
    let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let w = CaptureWriter::new(file, &session, &processes).unwrap();
    let mut b = Builder {
        w,
        t: START,
        sum: Summary {
            processes: 3,
            ..Default::default()
        },
        conns: Vec::new(),
    };

    // 0: HTTP GET with a 5000-byte response in three reads, then FIN both ways.
    b.open(0, 1, 40000, 0, 8080, Outcome::Established);
    b.data(0, C2S, b"GET /index.html HTTP/1.1\r\nHost: web:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n");
    let body: Vec<u8> = (0..5000).map(|i| b"<p>hello world</p>\n"[i % 19]).collect();
    let mut resp = format!(
        "HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6 Python/3.12\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend_from_slice(&body);
    let (a, rest) = resp.split_at(100);
    let (m, z) = rest.split_at(3000);
    b.data(0, S2C, a);
    b.data(0, S2C, m);
    b.data(0, S2C, z);
    b.close(0, S2C, CloseKind::Fin);
    b.close(0, C2S, CloseKind::Fin);

    // 1: Redis PING, SET, GET.
    b.open(1, 1, 40001, 2, 6379, Outcome::Established);
    for (q, r) in [
        (&b"*1\r\n$4\r\nPING\r\n"[..], &b"+PONG\r\n"[..]),
        (
            b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n",
            b"+OK\r\n",
        ),
        (b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n", b"$5\r\nvalue\r\n"),
    ] {
        b.data(1, C2S, q);
        b.data(1, S2C, r);
    }
    b.close(1, C2S, CloseKind::Fin);
    b.close(1, S2C, CloseKind::Fin);

    // 2: refused.
    b.open(2, 1, 40002, 0, 9999, Outcome::Refused);

    // 3: a 300,000-byte binary upload in 64 KiB reads, answered then reset by the server.
    b.open(3, 1, 40003, 0, 45000, Outcome::Established);
    let blob: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for chunk in blob.chunks(65536) {
        b.data(3, C2S, chunk);
    }
    b.data(3, S2C, b"\x00\x01\x02got it\xff");
    b.close(3, S2C, CloseKind::Rst);

    // Packets: UDP from client to cache, ICMP echo from web to client.
    b.packet(1, &udp(addr(2, 40100), addr(3, 40200), b"datagram"));
    b.packet(
        0,
        &ping(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)),
    );

    // 4: half-close: the client finishes sending, the server answers afterwards.
    b.open(4, 1, 40004, 2, 6380, Outcome::Established);
    b.data(4, C2S, b"all of it\n");
    b.close(4, C2S, CloseKind::Fin);
    b.data(4, S2C, b"answer after half-close\n");
    b.close(4, S2C, CloseKind::Fin);

    // 5: unfinished: open, some data, never closed.
    b.open(5, 1, 40005, 0, 8080, Outcome::Established);
    b.data(5, C2S, b"GET /slow HTTP/1.1\r\nHost: web\r\n\r\n");

    let sum = Summary {
        end_ns: b.tick(),
        ..b.sum
    };
    let conns = std::mem::take(&mut b.conns);
    let packets = sum.packets;
    if complete {
        b.w.finish(&sum).unwrap();
    } else {
        b.w.flush().unwrap();
    }
    Fixture {
        path,
        conns,
        packets,
    }
}
