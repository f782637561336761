//! `plg replay` on TCP and UDP behaviours, with small python programs (and redis-cli, socat)
//! recorded first by `plg record`: a client that sends other bytes than recorded, a refused
//! connection, resets from either side, a half-close, UDP from a played process, `--timing`,
//! and a live client that sends nothing (`--step-timeout`). Each test checks what the live
//! program saw and what plg reported. Needs root and /dev/net/tun.

mod common;
#[path = "common/replay.rs"]
mod replay;

use common::{sh_quote, Capture, TempDir, PY};
use plg::format::{CloseKind, Direction, Outcome};
use replay::{plg_line, record_ok, replay};
use std::path::Path;

/// Writes a python program into the test's dir; returns the command line running it.
fn python(dir: &TempDir, name: &str, source: &str) -> String {
    std::fs::write(dir.path().join(name), source).unwrap();
    format!("{PY} {}", sh_quote(&dir.join(name)))
}

const REDIS: &str = "redis-server --port 6379 --protected-mode no --save '' --appendonly no";

fn redis_client(cmds: &str) -> String {
    format!("printf {} | redis-cli -h p0", sh_quote(cmds))
}

#[test]
fn a_client_that_sends_other_bytes_is_reported_at_the_offset_and_strict_exits_1() {
    let dir = TempDir::new("rp-diverge");
    let cap = dir.join("kv.traffic");
    let cmds = "SET k v\nINCR counter\nINCR counter\nGET k\n";
    record_ok(&["-f", &cap, "--ready", "p0:6379", REDIS, &redis_client(cmds)]);
    // Where the second INCR's key starts differing once its last letter is upper case.
    let c = Capture::read(Path::new(&cap));
    let req = &c.only_conn_to(0, 6379).c2s;
    let incr = b"INCR\r\n$7\r\ncounter\r\n";
    let at: Vec<usize> = req
        .windows(incr.len())
        .enumerate()
        .filter(|(_, w)| w == incr)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 2, "{:?}", String::from_utf8_lossy(req));
    let offset = at[1] + b"INCR\r\n$7\r\ncounte".len();
    let other = redis_client("SET k v\nINCR counter\nINCR counteR\nGET k\n");

    // Without --strict: reported, and the exit status is the client's own.
    let run = replay(&["-f", &cap, "-", &format!("{other}; exit 3")]).run();
    run.assert_code(3);
    let line = plg_line(&run, "connection 0 ");
    assert!(
        line.contains(&format!(
            "the client sent other bytes than recorded from offset {offset} "
        )),
        "want offset {offset}: {line}"
    );
    assert!(
        plg_line(&run, "replay:").contains("1 diverged"),
        "{}",
        run.dump()
    );
    // The played server still answered as recorded, the key it was sent notwithstanding.
    assert_eq!(
        run.lines_of("p1"),
        vec!["OK", "1", "2", "v"],
        "{}",
        run.dump()
    );

    let run = replay(&["--strict", "-f", &cap, "-", &other]).run();
    run.assert_code(1);
    assert!(run.stderr.contains(&format!("from offset {offset} ")));

    // The recorded client, --strict: nothing to report, exit 0.
    let run = replay(&["--strict", "-f", &cap, "-", &redis_client(cmds)]).run();
    run.assert_code(0);
    assert!(
        plg_line(&run, "replay:").contains("0 diverged"),
        "{}",
        run.dump()
    );
}

const CONNECT_CLOSED_PORT: &str = r#"
import socket
try:
    socket.create_connection(("p0", 9), timeout=20)
    print("connected")
except ConnectionRefusedError:
    print("refused")
"#;

#[test]
fn a_connection_refused_in_the_recording_is_refused_again_with_the_server_played() {
    let dir = TempDir::new("rp-refused");
    let cap = dir.join("refused.traffic");
    let client = python(&dir, "client.py", CONNECT_CLOSED_PORT);
    let rec = record_ok(&["-f", &cap, "sleep 60", &client]);
    assert_eq!(rec.lines_of("p1"), vec!["refused"], "{}", rec.dump());
    // The client tried both addresses of p0 (IPv4, then IPv6): both refused.
    let c = Capture::read(Path::new(&cap));
    let tries = c.conns_to(0, 9);
    assert_eq!(tries.len(), 2, "{tries:#?}");
    assert!(tries.iter().all(|t| t.open.outcome == Outcome::Refused));

    let run = replay(&["--strict", "-f", &cap, "-", &client]).run();
    run.assert_code(0);
    assert_eq!(run.lines_of("p1"), vec!["refused"], "{}", run.dump());
    assert!(
        plg_line(&run, "replay:").contains("2 connections matched, 0 diverged"),
        "{}",
        run.dump()
    );
}

const RESETTING_SERVER: &str = r#"
import socket, struct
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("", 7000))
l.listen()
s, _ = l.accept()
print("server got", s.recv(100).decode(), flush=True)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
"#;

const CLIENT_OF_RESETTING_SERVER: &str = r#"
import socket
s = socket.create_connection(("p0", 7000))
s.settimeout(20)
s.sendall(b"hello")
try:
    print("eof" if s.recv(100) == b"" else "data")
except ConnectionResetError:
    print("reset by peer")
"#;

#[test]
fn a_reset_from_the_played_server_resets_the_live_client() {
    let dir = TempDir::new("rp-rst-server");
    let cap = dir.join("rst.traffic");
    let server = python(&dir, "server.py", RESETTING_SERVER);
    let client = python(&dir, "client.py", CLIENT_OF_RESETTING_SERVER);
    let rec = record_ok(&["-f", &cap, "--ready", "p0:7000", &server, &client]);
    assert_eq!(rec.lines_of("p1"), vec!["reset by peer"], "{}", rec.dump());
    let c = Capture::read(Path::new(&cap));
    let conn = c.only_conn_to(0, 7000);
    assert_eq!(conn.close(Direction::ServerToClient), Some(CloseKind::Rst));

    let run = replay(&["--strict", "-f", &cap, "-", &client]).run();
    run.assert_code(0);
    assert_eq!(run.lines_of("p1"), vec!["reset by peer"], "{}", run.dump());
}

const SERVER_OF_RESETTING_CLIENT: &str = r#"
import socket
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("", 7000))
l.listen()
s, _ = l.accept()
s.settimeout(20)
print("server got", s.recv(100).decode(), flush=True)
s.sendall(b"ok")
try:
    print("eof" if s.recv(100) == b"" else "data", flush=True)
except ConnectionResetError:
    print("reset by peer", flush=True)
"#;

const RESETTING_CLIENT: &str = r#"
import socket, struct
s = socket.create_connection(("p0", 7000))
s.settimeout(20)
s.sendall(b"hello")
print("client got", s.recv(100).decode(), flush=True)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
"#;

#[test]
fn a_reset_from_the_played_client_resets_the_live_server() {
    let dir = TempDir::new("rp-rst-client");
    let cap = dir.join("rst.traffic");
    let server = python(&dir, "server.py", SERVER_OF_RESETTING_CLIENT);
    let client = python(&dir, "client.py", RESETTING_CLIENT);
    let rec = record_ok(&[
        "-f", &cap, "--ready", "p0:7000", "--main", "p0", &server, &client,
    ]);
    assert_eq!(
        rec.lines_of("p0"),
        vec!["server got hello", "reset by peer"],
        "{}",
        rec.dump()
    );
    let c = Capture::read(Path::new(&cap));
    let conn = c.only_conn_to(0, 7000);
    assert_eq!(conn.close(Direction::ClientToServer), Some(CloseKind::Rst));

    let run = replay(&["--strict", "-f", &cap, "--main", "p0", &server, "-"]).run();
    run.assert_code(0);
    assert_eq!(
        run.lines_of("p0"),
        vec!["server got hello", "reset by peer"],
        "{}",
        run.dump()
    );
}

const UPPERCASE_AFTER_EOF_SERVER: &str = r#"
import socket
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("", 7000))
l.listen()
s, _ = l.accept()
s.settimeout(20)
data = b""
while True:
    chunk = s.recv(100)
    if not chunk:
        break
    data += chunk
print("server got", data.decode(), "then eof", flush=True)
s.sendall(data.upper())
s.close()
"#;

const HALF_CLOSING_CLIENT: &str = r#"
import socket
s = socket.create_connection(("p0", 7000))
s.settimeout(20)
s.sendall(b"request body")
s.shutdown(socket.SHUT_WR)
data = b""
while True:
    chunk = s.recv(100)
    if not chunk:
        break
    data += chunk
print("client got", data.decode(), flush=True)
"#;

#[test]
fn a_half_close_is_played_at_its_place_both_ways() {
    let dir = TempDir::new("rp-halfclose");
    let cap = dir.join("half.traffic");
    let server = python(&dir, "server.py", UPPERCASE_AFTER_EOF_SERVER);
    let client = python(&dir, "client.py", HALF_CLOSING_CLIENT);
    let rec = record_ok(&[
        "-f", &cap, "--ready", "p0:7000", "--main", "p0", "--main", "p1", &server, &client,
    ]);
    assert_eq!(
        rec.lines_of("p1"),
        vec!["client got REQUEST BODY"],
        "{}",
        rec.dump()
    );

    // Live client, played server: the reply comes only after the client's FIN, as recorded.
    let run = replay(&["--strict", "-f", &cap, "-", &client]).run();
    run.assert_code(0);
    assert_eq!(
        run.lines_of("p1"),
        vec!["client got REQUEST BODY"],
        "{}",
        run.dump()
    );

    // Played client, live server: the server replies only once it saw the played FIN.
    let out = dir.join("again.traffic");
    let run = replay(&[
        "--strict", "-f", &cap, "-o", &out, "--main", "p0", &server, "-",
    ])
    .run();
    run.assert_code(0);
    assert_eq!(
        run.lines_of("p0"),
        vec!["server got request body then eof"],
        "{}",
        run.dump()
    );
    let again = Capture::read(Path::new(&out));
    let conn = again.only_conn_to(0, 7000);
    assert_eq!(conn.s2c, b"REQUEST BODY");
    let fin = conn
        .position(|e| *e == common::Event::Close(Direction::ClientToServer, CloseKind::Fin))
        .expect("the played client's FIN in the replay capture");
    let reply = conn
        .position(|e| matches!(e, common::Event::Data(Direction::ServerToClient, _)))
        .expect("the server's reply in the replay capture");
    assert!(fin < reply, "{:?}", conn.events);
}

const UDP_RECEIVER: &str = r#"
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("", 5000))
# A TCP listener, only so that --ready can tell when the UDP socket is bound.
t = socket.socket()
t.bind(("", 5001))
t.listen()
u.settimeout(20)
try:
    print("received", u.recv(100).decode().strip(), flush=True)
except socket.timeout:
    print("nothing received", flush=True)
"#;

#[test]
fn udp_from_a_played_sender_reaches_the_live_receiver() {
    let dir = TempDir::new("rp-udp");
    let cap = dir.join("udp.traffic");
    let receiver = python(&dir, "receiver.py", UDP_RECEIVER);
    let sender = "echo hello-udp | socat -u STDIN UDP-SENDTO:p0:5000";
    let rec = record_ok(&[
        "-f", &cap, "--ready", "p0:5001", "--main", "p0", &receiver, sender,
    ]);
    assert_eq!(
        rec.lines_of("p0"),
        vec!["received hello-udp"],
        "{}",
        rec.dump()
    );
    assert_eq!(Capture::read(Path::new(&cap)).packets.len(), 1);

    let run = replay(&[
        "-f", &cap, "--ready", "p0:5001", "--main", "p0", &receiver, "-",
    ])
    .run();
    run.assert_code(0);
    assert_eq!(
        run.lines_of("p0"),
        vec!["received hello-udp"],
        "{}",
        run.dump()
    );
    assert!(
        plg_line(&run, "replay:").contains("1 packet played"),
        "{}",
        run.dump()
    );
}

const SERVER_WITH_A_PAUSE: &str = r#"
import socket, time
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("", 7000))
l.listen()
s, _ = l.accept()
s.sendall(b"one\n")
time.sleep(0.5)
s.sendall(b"two\n")
s.close()
"#;

const LINE_CLIENT: &str = r#"
import socket
s = socket.create_connection(("p0", 7000))
s.settimeout(20)
for line in s.makefile():
    print(line.strip(), flush=True)
print("eof", flush=True)
"#;

#[test]
fn timing_replays_the_recorded_gaps_in_order_and_completes() {
    let dir = TempDir::new("rp-timing");
    let cap = dir.join("gap.traffic");
    let server = python(&dir, "server.py", SERVER_WITH_A_PAUSE);
    let client = python(&dir, "client.py", LINE_CLIENT);
    let rec = record_ok(&["-f", &cap, "--ready", "p0:7000", &server, &client]);
    assert_eq!(
        rec.lines_of("p1"),
        vec!["one", "two", "eof"],
        "{}",
        rec.dump()
    );

    for extra in [&["--timing"][..], &["--timing", "--speed", "4"][..]] {
        let mut args = vec!["--strict", "-f", &cap];
        args.extend_from_slice(extra);
        args.extend(["-", &client]);
        let run = replay(&args).run();
        run.assert_code(0);
        assert_eq!(
            run.lines_of("p1"),
            vec!["one", "two", "eof"],
            "{extra:?}: {}",
            run.dump()
        );
    }
}

const PING_SERVER: &str = r#"
import socket
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("", 7000))
l.listen()
s, _ = l.accept()
s.recv(100)
s.sendall(b"pong\n")
s.close()
"#;

const PING_CLIENT: &str = r#"
import socket
s = socket.create_connection(("p0", 7000))
s.settimeout(20)
s.sendall(b"ping\n")
print(s.recv(100).decode().strip(), flush=True)
"#;

const SILENT_CLIENT: &str = r#"
import socket
s = socket.create_connection(("p0", 7000))
s.settimeout(30)
try:
    print(s.recv(100).decode().strip() or "eof", flush=True)
except socket.timeout:
    print("no reply", flush=True)
"#;

#[test]
fn a_client_that_sends_nothing_times_out_one_step_and_the_replay_finishes() {
    let dir = TempDir::new("rp-steptimeout");
    let cap = dir.join("ping.traffic");
    let server = python(&dir, "server.py", PING_SERVER);
    let rec = record_ok(&[
        "-f",
        &cap,
        "--ready",
        "p0:7000",
        &server,
        &python(&dir, "client.py", PING_CLIENT),
    ]);
    assert_eq!(rec.lines_of("p1"), vec!["pong"], "{}", rec.dump());

    let silent = python(&dir, "silent.py", SILENT_CLIENT);
    // The client would wait 30 s for a reply; the harness fails the test past 60 s.
    let run = replay(&["--step-timeout", "1", "-f", &cap, "-", &silent]).run();
    run.assert_code(0);
    // The recorded reply was forced out once the step timed out.
    assert_eq!(run.lines_of("p1"), vec!["pong"], "{}", run.dump());
    let line = plg_line(&run, "connection 0 ");
    assert!(
        line.contains("1 step timed out waiting for the live side"),
        "{line}"
    );

    let run = replay(&["--strict", "--step-timeout", "1", "-f", &cap, "-", &silent]).run();
    run.assert_code(1);
}
