//! A small harness for the `plg diff` tests: write captures with the format writer (a scenario
//! as a list of calls), run the real binary, read its outputs.
#![allow(dead_code)]

use plg::format::record::*;
use plg::format::CaptureWriter;
use std::fs::File;
use std::io::BufWriter;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("plg-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn addr(i: u16) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 1 + i as u8)
}

/// Writes one capture, call by call.
pub struct Cap {
    w: CaptureWriter<BufWriter<File>>,
    pub t: u64,
    next_id: ConnId,
    summary: Summary,
}

impl Cap {
    pub fn new(path: &Path, names: &[&str]) -> Cap {
        Cap::with_mode(path, names, Mode::Record)
    }

    pub fn with_mode(path: &Path, names: &[&str], mode: Mode) -> Cap {
        let session = Session {
            format_version: plg::format::FORMAT_VERSION,
            mode,
            subnet: Ipv4Addr::new(10, 0, 0, 0),
            prefix_len: 24,
            subnet6: None,
            start_ns: 1_700_000_000_000_000_000,
            plg_version: "test".into(),
        };
        let procs: Vec<Process> = names
            .iter()
            .enumerate()
            .map(|(i, n)| Process {
                index: i as u16,
                name: n.to_string(),
                command: format!("run {n}"),
                addr: addr(i as u16),
                addr6: None,
                live: true,
            })
            .collect();
        let w = CaptureWriter::new(
            BufWriter::new(File::create(path).unwrap()),
            &session,
            &procs,
        )
        .unwrap();
        Cap {
            w,
            t: session.start_ns,
            next_id: 0,
            summary: Summary {
                processes: names.len() as u32,
                ..Default::default()
            },
        }
    }

    fn tick(&mut self) -> u64 {
        self.t += 1_000;
        self.t
    }

    /// Opens a connection from `client` (with this ephemeral port) to `server:port`.
    pub fn open(&mut self, client: u16, server: u16, port: u16, client_port: u16) -> ConnId {
        self.open_with(client, server, port, client_port, Outcome::Established)
    }

    pub fn open_with(
        &mut self,
        client: u16,
        server: u16,
        port: u16,
        client_port: u16,
        outcome: Outcome,
    ) -> ConnId {
        let id = self.next_id;
        self.next_id += 1;
        self.summary.connections += 1;
        if outcome == Outcome::Refused {
            self.summary.refused += 1;
        }
        let t = self.tick();
        self.w
            .write(&Record::ConnOpen(ConnOpen {
                id,
                time_ns: t,
                client,
                client_addr: SocketAddrV4::new(addr(client), client_port).into(),
                server,
                server_addr: SocketAddrV4::new(addr(server), port).into(),
                outcome,
            }))
            .unwrap();
        id
    }

    /// Sends bytes, one data block per `chunk` bytes.
    pub fn send(&mut self, id: ConnId, dir: Direction, bytes: &[u8], chunk: usize) {
        for c in bytes.chunks(chunk.max(1)) {
            let t = self.tick();
            self.w.write_data(id, dir, t, c).unwrap();
            self.summary.data_blocks += 1;
            match dir {
                Direction::ClientToServer => self.summary.bytes_c2s += c.len() as u64,
                Direction::ServerToClient => self.summary.bytes_s2c += c.len() as u64,
            }
        }
    }

    pub fn c2s(&mut self, id: ConnId, bytes: &[u8]) {
        self.send(id, Direction::ClientToServer, bytes, 1 << 16);
    }

    pub fn s2c(&mut self, id: ConnId, bytes: &[u8]) {
        self.send(id, Direction::ServerToClient, bytes, 1 << 16);
    }

    pub fn close(&mut self, id: ConnId, dir: Direction, kind: CloseKind) {
        if kind == CloseKind::Rst {
            self.summary.resets += 1;
        }
        let t = self.tick();
        self.w
            .write(&Record::ConnClose(ConnClose {
                id,
                dir,
                kind,
                time_ns: t,
            }))
            .unwrap();
    }

    /// Both sides close with FIN.
    pub fn fin(&mut self, id: ConnId) {
        self.close(id, Direction::ClientToServer, CloseKind::Fin);
        self.close(id, Direction::ServerToClient, CloseKind::Fin);
    }

    /// Lets simulated time pass.
    pub fn wait(&mut self, ns: u64) {
        self.t += ns;
    }

    /// A UDP datagram from `from` (source port `sport`) to `to:dport`.
    pub fn udp(&mut self, from: u16, to: u16, sport: u16, dport: u16, payload: &[u8]) {
        let len = 28 + payload.len();
        let mut p = vec![
            0x45,
            0,
            (len >> 8) as u8,
            len as u8,
            0,
            0,
            0,
            0,
            64,
            17,
            0,
            0,
        ];
        p.extend_from_slice(&addr(from).octets());
        p.extend_from_slice(&addr(to).octets());
        let ul = 8 + payload.len();
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[(ul >> 8) as u8, ul as u8, 0, 0]);
        p.extend_from_slice(payload);
        let t = self.tick();
        self.w.write_packet(from as u32, t, &p).unwrap();
        self.summary.packets += 1;
    }

    pub fn exit(&mut self, index: u16, code: i32) {
        let t = self.tick();
        self.w
            .write(&Record::ProcessExit(ProcessExit {
                index,
                time_ns: t,
                status: ExitStatus::Exited(code),
            }))
            .unwrap();
    }

    /// Ends the capture with its summary.
    pub fn finish(mut self) {
        self.summary.end_ns = self.tick();
        self.w.finish(&self.summary).unwrap();
    }

    /// Ends the capture without a summary, as if plg had been killed.
    pub fn abandon(mut self) {
        self.w.flush().unwrap();
    }
}

/// Runs `plg` with these arguments.
pub fn plg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plg"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run plg")
}

pub fn diff(args: &[&str]) -> Output {
    let mut v = vec!["diff"];
    v.extend_from_slice(args);
    plg(&v)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// An HTTP/1.1 exchange; the server's answer carries `date` and a session id.
pub fn http_response(date: &str, session: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nServer: demo/1.0\r\nDate: {date}\r\nContent-Type: text/plain\r\n\
         Set-Cookie: sid={session}; Path=/\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub const REQUEST: &[u8] =
    b"GET /status HTTP/1.1\r\nHost: web:8080\r\nUser-Agent: demo-client/2.3\r\nAccept: */*\r\n\r\n";

/// The HTTP scenario: a client fetches /status three times from `web`, and asks `db` once
/// (a small binary protocol). `date` and `sid` vary between runs; `port_base` and `chunk`
/// change only the ephemeral ports and how reads were split.
pub fn http_scenario(path: &Path, dates: [&str; 3], sid: &str, port_base: u16, chunk: usize) {
    let mut c = Cap::new(path, &["client", "web", "db"]);
    for (i, date) in dates.iter().enumerate() {
        let id = c.open(0, 1, 8080, port_base + i as u16);
        c.send(id, Direction::ClientToServer, REQUEST, chunk);
        let body = format!("ok {i}\n");
        c.send(
            id,
            Direction::ServerToClient,
            &http_response(date, sid, &body),
            chunk,
        );
        c.fin(id);
    }
    let id = c.open(1, 2, 5432, port_base + 100);
    c.send(id, Direction::ClientToServer, &binary_query(7), chunk);
    c.send(id, Direction::ServerToClient, &binary_answer(7, 0), chunk);
    c.fin(id);
    c.exit(1, 0);
    c.exit(2, 0);
    c.exit(0, 0);
    c.finish();
}

pub fn binary_query(n: u8) -> Vec<u8> {
    let mut v = vec![0x51, 0, 0, 0, 12, n];
    v.extend((0..200u8).map(|i| i.wrapping_mul(37)));
    v
}

pub fn binary_answer(n: u8, flip: usize) -> Vec<u8> {
    let mut v = vec![0x52, 0, 0, 1, 0, n];
    v.extend((0..300u32).map(|i| (i * 13 % 256) as u8));
    if flip > 0 {
        v[flip] ^= 0x40;
    }
    v
}

pub const D1: [&str; 3] = [
    "Tue, 25 Nov 2026 08:54:01 GMT",
    "Tue, 25 Nov 2026 08:54:01 GMT",
    "Tue, 25 Nov 2026 08:54:02 GMT",
];
pub const D2: [&str; 3] = [
    "Tue, 25 Nov 2026 09:12:47 GMT",
    "Tue, 25 Nov 2026 09:12:48 GMT",
    "Tue, 25 Nov 2026 09:12:48 GMT",
];
pub const D3: [&str; 3] = [
    "Wed, 26 Nov 2026 10:00:59 GMT",
    "Wed, 26 Nov 2026 10:01:00 GMT",
    "Wed, 26 Nov 2026 10:01:00 GMT",
];
