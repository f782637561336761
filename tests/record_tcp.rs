//! TCP semantics through the relay, seen by real programs and in the capture: a refused port,
//! half-close, RST, 200 connections at once, and isolation from everything outside the session.
//! Needs root and /dev/net/tun.

mod common;

use common::{sh_quote, Capture, Event, Plg, TempDir, PY};
use plg::format::{CloseKind, Direction, Outcome};
use std::path::Path;

/// `python3 -c SCRIPT` as a shell command line.
fn py(script: &str) -> String {
    format!("{PY} -u -c {}", sh_quote(script))
}

#[test]
fn a_port_nobody_listens_on_is_refused_for_the_client_and_recorded_as_refused() {
    let dir = TempDir::new("refused");
    let cap = dir.join("refused.traffic");
    let client = r#"
import socket
try:
    socket.create_connection(("p0", 8001), timeout=10)
    print("connected")
except OSError as e:
    print(type(e).__name__)
"#;
    let run = Plg::record(&[
        "-f",
        &cap,
        "--ready",
        "p0:8000",
        &format!("{PY} -m http.server 8000 --directory {}", dir.join("")),
        &format!("{}; curl -sS http://p0:8001/; echo curl=$?", py(client)),
    ])
    .run();
    run.assert_code(0);
    let out = run.lines_of("p1");
    assert_eq!(
        out.first().map(String::as_str),
        Some("ConnectionRefusedError"),
        "{}",
        run.dump()
    );
    assert!(out.contains(&"curl=7".to_string()), "{}", run.dump());

    let c = Capture::read(Path::new(&cap));
    let s = c.summary();
    // Each client tries every address of p0 (IPv4, then IPv6), each refused at once.
    let tries = c.conns_to(0, 8001);
    assert_eq!(tries.len(), 4, "{tries:#?}");
    for t in &tries {
        assert_eq!(t.open.outcome, Outcome::Refused);
        assert!(t.c2s.is_empty() && t.s2c.is_empty());
    }
    assert_eq!(
        tries
            .iter()
            .filter(|t| t.open.server_addr.is_ipv6())
            .count(),
        2
    );
    assert_eq!(s.refused, 4);
    assert!(c.conns_to(0, 8000).is_empty(), "a probe reached the server");
}

#[test]
fn half_close_lets_the_server_read_eof_and_still_answer() {
    let dir = TempDir::new("halfclose");
    let cap = dir.join("half.traffic");
    let server = r#"
import socket
l = socket.create_server(("0.0.0.0", 9000))
c, a = l.accept()
data = b""
while True:
    b = c.recv(65536)
    if not b:
        break
    data += b
print("server got EOF after", len(data), "bytes from", a[0])
c.sendall(b"reply to " + data.upper())
c.close()
"#;
    let client = r#"
import socket
s = socket.create_connection(("p0", 9000), timeout=20)
s.sendall(b"hello half-closed world")
s.shutdown(socket.SHUT_WR)
reply = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    reply += b
print(reply.decode())
"#;
    let run = Plg::record(&[
        "-f",
        &cap,
        "--ready",
        "p0:9000",
        "--main",
        "p0",
        "--main",
        "p1",
        &py(server),
        &py(client),
    ])
    .run();
    run.assert_code(0);
    assert_eq!(
        run.lines_of("p0"),
        vec!["server got EOF after 23 bytes from 10.0.0.3"],
        "{}",
        run.dump()
    );
    assert_eq!(
        run.lines_of("p1"),
        vec!["reply to HELLO HALF-CLOSED WORLD"],
        "{}",
        run.dump()
    );

    let c = Capture::read(Path::new(&cap));
    c.summary();
    let conn = c.only_conn_to(0, 9000);
    assert_eq!(conn.c2s, b"hello half-closed world");
    assert_eq!(conn.s2c, b"reply to HELLO HALF-CLOSED WORLD");
    assert_eq!(conn.close(Direction::ClientToServer), Some(CloseKind::Fin));
    assert_eq!(conn.close(Direction::ServerToClient), Some(CloseKind::Fin));
    let fin = conn
        .position(|e| *e == Event::Close(Direction::ClientToServer, CloseKind::Fin))
        .unwrap();
    let reply = conn
        .position(|e| matches!(e, Event::Data(Direction::ServerToClient, _)))
        .unwrap();
    assert!(
        fin < reply,
        "the client's FIN is recorded after the reply: {:?}",
        conn.events
    );
}

#[test]
fn an_abortive_close_reaches_the_server_as_a_reset_and_is_recorded_as_rst() {
    let dir = TempDir::new("rst");
    let cap = dir.join("rst.traffic");
    let server = r#"
import socket
l = socket.create_server(("0.0.0.0", 9000))
c, a = l.accept()
c.settimeout(20)
print("server got", c.recv(100).decode())
c.sendall(b"ack")
try:
    b = c.recv(100)
    print("server read", b)
except ConnectionResetError:
    print("server saw a reset")
except OSError as e:
    print("server error", type(e).__name__)
"#;
    let client = r#"
import socket, struct
s = socket.create_connection(("p0", 9000), timeout=20)
s.sendall(b"bye")
print("client got", s.recv(100).decode())
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
"#;
    let run = Plg::record(&[
        "-f",
        &cap,
        "--ready",
        "p0:9000",
        "--main",
        "p0",
        "--main",
        "p1",
        &py(server),
        &py(client),
    ])
    .run();
    run.assert_code(0);
    assert_eq!(run.lines_of("p1"), vec!["client got ack"], "{}", run.dump());
    assert_eq!(
        run.lines_of("p0"),
        vec!["server got bye", "server saw a reset"],
        "{}",
        run.dump()
    );

    let c = Capture::read(Path::new(&cap));
    let s = c.summary();
    let conn = c.only_conn_to(0, 9000);
    assert_eq!(conn.c2s, b"bye");
    assert_eq!(conn.s2c, b"ack");
    assert_eq!(conn.close(Direction::ClientToServer), Some(CloseKind::Rst));
    assert_ne!(conn.close(Direction::ServerToClient), Some(CloseKind::Fin));
    assert!(s.resets >= 1, "summary resets: {s:?}");
}

#[test]
fn two_hundred_concurrent_connections_all_complete_and_are_all_recorded() {
    const N: usize = 200;
    let dir = TempDir::new("many");
    let cap = dir.join("many.traffic");
    let server = r#"
import socketserver
class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)
class Server(socketserver.ThreadingTCPServer):
    request_queue_size = 1024
    allow_reuse_address = True
    daemon_threads = True
Server(("0.0.0.0", 7000), Echo).serve_forever()
"#;
    let client = format!(
        r#"
import socket, threading
N = {N}
barrier = threading.Barrier(N, timeout=60)
results = [None] * N
def one(i):
    try:
        s = socket.create_connection(("p0", 7000), timeout=60)
        barrier.wait()
        msg = ("connection %d says hello\n" % i).encode() * 50
        s.sendall(msg)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
        s.close()
        results[i] = got == msg
    except Exception as e:
        results[i] = repr(e)
threads = [threading.Thread(target=one, args=(i,)) for i in range(N)]
for t in threads: t.start()
for t in threads: t.join()
bad = [(i, r) for i, r in enumerate(results) if r is not True]
print("ok", N - len(bad), "bad", bad[:5])
"#
    );
    let run = Plg::record(&["-f", &cap, "--ready", "p0:7000", &py(server), &py(&client)])
        .timeout(120)
        .run();
    run.assert_code(0);
    assert_eq!(
        run.lines_of("p1"),
        vec![format!("ok {N} bad []")],
        "{}",
        run.dump()
    );

    let c = Capture::read(Path::new(&cap));
    let s = c.summary();
    let conns = c.conns_to(0, 7000);
    assert_eq!(conns.len(), N);
    assert_eq!(s.connections as usize, N);
    let mut seen = [false; N];
    for conn in conns {
        assert_eq!(conn.open.outcome, Outcome::Established);
        assert_eq!(
            conn.c2s, conn.s2c,
            "connection {} echo differs",
            conn.open.id
        );
        let text = String::from_utf8_lossy(&conn.c2s);
        let i: usize = text
            .strip_prefix("connection ")
            .and_then(|t| t.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected stream {text:?}"));
        assert_eq!(text, format!("connection {i} says hello\n").repeat(50));
        assert!(!seen[i], "connection {i} twice");
        seen[i] = true;
        assert_eq!(conn.close(Direction::ClientToServer), Some(CloseKind::Fin));
        assert_eq!(conn.close(Direction::ServerToClient), Some(CloseKind::Fin));
    }
}

#[test]
fn nothing_outside_the_session_is_reachable_and_attempts_fail_at_once() {
    let dir = TempDir::new("isolation");
    let cap = dir.join("iso.traffic");
    // curl's exit 7 is "could not connect" (refused or unreachable); 28 would be a timeout.
    let script =
        "for u in http://192.0.2.1/ http://8.8.8.8:53/ http://10.0.0.1/ http://10.0.0.9/; do \
                  curl -sS --max-time 3 -o /dev/null $u 2>/dev/null; echo \"$u curl=$?\"; done; \
                  ping -c 1 -W 3 192.0.2.1 >/dev/null 2>&1; echo ping=$?";
    let run = Plg::record(&["-f", &cap, script]).run();
    run.assert_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        vec![
            "http://192.0.2.1/ curl=7",
            "http://8.8.8.8:53/ curl=7",
            "http://10.0.0.1/ curl=7",
            "http://10.0.0.9/ curl=7",
            "ping=1",
        ],
        "{}",
        run.dump()
    );
    let c = Capture::read(Path::new(&cap));
    c.summary();
    for conn in c.conns.values() {
        assert_ne!(conn.open.outcome, Outcome::Established, "{conn:#?}");
        assert!(conn.c2s.is_empty() && conn.s2c.is_empty());
    }
}

#[test]
fn allow_external_relays_the_gateway_to_the_hosts_loopback_and_records_it() {
    use std::io::{Read, Write};
    // A one-shot HTTP server on the host's loopback: the only door out, and it stays on this
    // machine.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        while !req.ends_with(b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "request cut short: {req:?}");
            req.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhost!\n")
            .unwrap();
        (peer, req)
    });
    let dir = TempDir::new("external");
    let cap = dir.join("ext.traffic");
    let run = Plg::record(&[
        "-f",
        &cap,
        "--allow-external",
        &format!("curl -sS http://gateway:{port}/from-inside"),
    ])
    .run();
    run.assert_code(0);
    assert_eq!(run.stdout, "host!\n", "{}", run.dump());
    let (peer, req) = server.join().unwrap();
    assert!(peer.ip().is_loopback(), "{peer}");
    assert!(req.starts_with(b"GET /from-inside HTTP/1.1\r\n"));

    let c = Capture::read(Path::new(&cap));
    c.summary();
    assert_eq!(c.conns.len(), 1);
    let conn = c.conns.values().next().unwrap();
    assert_eq!(conn.open.server, plg::format::EXTERNAL);
    assert_eq!(conn.open.client, 0);
    assert_eq!(
        conn.open.server_addr.to_string(),
        format!("10.0.0.1:{port}")
    );
    assert_eq!(conn.open.outcome, Outcome::Established);
    assert_eq!(conn.c2s, req);
    assert_eq!(
        conn.s2c,
        b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhost!\n"
    );
}

#[test]
fn a_server_closing_with_unread_data_resets_the_client_and_is_recorded_as_rst() {
    let dir = TempDir::new("srvrst");
    let cap = dir.join("srvrst.traffic");
    // Closing a socket with unread bytes makes the kernel send RST instead of FIN.
    let server = r#"
import socket
l = socket.create_server(("0.0.0.0", 9000))
c, a = l.accept()
c.sendall(b"go")
while len(c.recv(1, socket.MSG_PEEK)) == 0:
    pass
c.close()
print("closed with unread data")
"#;
    let client = r#"
import socket, time
s = socket.create_connection(("p0", 9000), timeout=20)
assert s.recv(2) == b"go"
s.sendall(b"unread bytes")
try:
    while True:
        b = s.recv(100)
        if not b:
            print("client saw EOF")
            break
except ConnectionResetError:
    print("client saw a reset")
"#;
    let run = Plg::record(&[
        "-f",
        &cap,
        "--ready",
        "p0:9000",
        "--main",
        "p0",
        "--main",
        "p1",
        &py(server),
        &py(client),
    ])
    .run();
    run.assert_code(0);
    assert_eq!(
        run.lines_of("p1"),
        vec!["client saw a reset"],
        "{}",
        run.dump()
    );
    let c = Capture::read(Path::new(&cap));
    let s = c.summary();
    let conn = c.only_conn_to(0, 9000);
    assert_eq!(conn.s2c, b"go");
    assert_eq!(conn.c2s, b"unread bytes");
    assert_eq!(conn.close(Direction::ServerToClient), Some(CloseKind::Rst));
    assert!(s.resets >= 1);
}

#[test]
fn a_32_mb_echo_flows_both_ways_at_once() {
    let dir = TempDir::new("bidir");
    let cap = dir.join("bidir.traffic");
    let src = dir.path().join("in");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&src).unwrap());
        let mut x: u32 = 7;
        for _ in 0..(32 << 20) / 4 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            f.write_all(&x.to_le_bytes()).unwrap();
        }
    }
    let want = common::sha256_file(&src);
    let run = Plg::record(&[
        "-q",
        "-f",
        &cap,
        "--ready",
        "p0:7",
        "socat TCP-LISTEN:7,reuseaddr EXEC:cat",
        &format!(
            "socat -t 30 STDIO TCP:p0:7 < {} | sha256sum",
            sh_quote(&dir.join("in"))
        ),
    ])
    .timeout(120)
    .run();
    run.assert_code(0);
    assert_eq!(
        run.lines_of("p1"),
        vec![format!("{want}  -")],
        "{}",
        run.dump()
    );
    let (streams, _) = common::stream_hashes(Path::new(&cap));
    assert_eq!(
        streams[&(0, Direction::ClientToServer)],
        (32 << 20, want.clone())
    );
    assert_eq!(streams[&(0, Direction::ServerToClient)], (32 << 20, want));
}

#[test]
fn a_proxy_in_the_middle_gives_two_recorded_connections_with_the_right_ends() {
    let dir = TempDir::new("chain");
    let cap = dir.join("chain.traffic");
    let run = Plg::record(&[
        "-f",
        &cap,
        "--names",
        "origin,proxy,client",
        "--ready",
        "origin:8000",
        "--ready",
        "proxy:8080",
        "socat TCP-LISTEN:8000,reuseaddr,fork SYSTEM:'read l; echo \"origin got $l from $SOCAT_PEERADDR\"'",
        "socat TCP-LISTEN:8080,reuseaddr,fork TCP:origin:8000",
        "echo hi | socat -t 10 - TCP:proxy:8080",
    ])
    .run();
    run.assert_code(0);
    assert_eq!(
        run.lines_of("client"),
        vec!["origin got hi from 10.0.0.3"],
        "{}",
        run.dump()
    );
    let c = Capture::read(Path::new(&cap));
    assert_eq!(c.summary().connections, 2);
    let front = c.only_conn_to(1, 8080);
    let back = c.only_conn_to(0, 8000);
    assert_eq!((front.open.client, back.open.client), (2, 1));
    assert_eq!(front.c2s, b"hi\n");
    assert_eq!(back.c2s, b"hi\n");
    assert_eq!(back.s2c, b"origin got hi from 10.0.0.3\n");
    assert_eq!(front.s2c, back.s2c);
}

#[test]
fn a_server_killed_mid_connection_closes_it_for_the_client() {
    let dir = TempDir::new("srvkill");
    let cap = dir.join("srvkill.traffic");
    let server = r#"
import os, signal, socket
l = socket.create_server(("0.0.0.0", 9000))
c, a = l.accept()
c.sendall(b"about to die\n")
c.recv(100)
os.kill(os.getpid(), signal.SIGKILL)
"#;
    let client = r#"
import socket
s = socket.create_connection(("p0", 9000), timeout=20)
f = s.makefile("rb")
print(f.readline().decode().strip())
s.sendall(b"die now\n")
try:
    print("then", f.read() or b"EOF")
except ConnectionResetError:
    print("then reset")
"#;
    // exec: the process plg watches is python itself, not a shell waiting for it.
    let server = format!("exec {}", py(server));
    let run = Plg::record(&["-f", &cap, "--ready", "p0:9000", &server, &py(client)]).run();
    run.assert_code(0);
    // The kernel closes a dead process's sockets with FIN (nothing unread here).
    assert_eq!(
        run.lines_of("p1"),
        vec!["about to die", "then b'EOF'"],
        "{}",
        run.dump()
    );
    let c = Capture::read(Path::new(&cap));
    c.summary();
    assert_eq!(c.exit_of(0), Some(plg::format::ExitStatus::Signaled(9)));
    let conn = c.only_conn_to(0, 9000);
    assert_eq!(conn.close(Direction::ServerToClient), Some(CloseKind::Fin));
}
