//! `plg record` around real servers and clients from Debian: python's http.server with curl,
//! a socat echo, redis-server with redis-cli. Each test checks what the programs saw (their
//! prefixed output, files they wrote) and what the capture holds, byte for byte.
//! Needs root and /dev/net/tun.

mod common;

use common::{sh_quote, Capture, Plg, TempDir, PY};
use plg::format::{CloseKind, Direction, ExitStatus, Outcome};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;

const P0: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const P1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

#[test]
fn http_get_through_curl_is_recorded_and_server_sees_the_real_client_address() {
    let dir = TempDir::new("http");
    let body = "hello from the web root\n";
    std::fs::write(dir.path().join("hello.txt"), body).unwrap();
    let cap = dir.join("web.traffic");
    let run = Plg::record(&[
        "-f",
        &cap,
        "--ready",
        "p0:8000",
        &format!("{PY} -m http.server 8000 --directory {}", dir.join("")),
        "curl -sS http://p0:8000/hello.txt",
    ])
    .run();
    run.assert_code(0);
    assert_eq!(run.lines_of("p1"), vec![body.trim_end()], "{}", run.dump());
    let log = run.output_of("p0");
    assert!(
        log.lines().any(
            |l| l.starts_with("10.0.0.3 - - ") && l.contains("\"GET /hello.txt HTTP/1.1\" 200")
        ),
        "the server did not log the client's real address 10.0.0.3: {log}"
    );

    let c = Capture::read(Path::new(&cap));
    let s = c.summary();
    assert_eq!((s.connections, s.refused, s.resets), (1, 0, 0));
    let names: Vec<_> = c.procs.iter().map(|p| (p.name.as_str(), p.addr)).collect();
    assert_eq!(names, vec![("p0", P0), ("p1", P1)]);
    let conn = c.only_conn_to(0, 8000);
    assert_eq!(conn.open.outcome, Outcome::Established);
    assert_eq!(conn.open.client, 1);
    assert_eq!(conn.open.client_addr.ip(), std::net::IpAddr::V4(P1));
    assert_eq!(conn.open.server_addr, SocketAddrV4::new(P0, 8000).into());
    let req = String::from_utf8_lossy(&conn.c2s);
    assert!(
        req.starts_with("GET /hello.txt HTTP/1.1\r\nHost: p0:8000\r\n")
            && req.ends_with("\r\n\r\n"),
        "{req:?}"
    );
    let resp = String::from_utf8_lossy(&conn.s2c);
    assert!(resp.starts_with("HTTP/1.0 200 OK\r\n"), "{resp:?}");
    assert!(resp.ends_with(&format!("\r\n\r\n{body}")), "{resp:?}");
    assert_eq!(conn.close(Direction::ServerToClient), Some(CloseKind::Fin));
    assert_eq!(conn.close(Direction::ClientToServer), Some(CloseKind::Fin));
    assert_eq!(c.exit_of(1), Some(ExitStatus::Exited(0)));
}

#[test]
fn socat_echo_returns_a_megabyte_byte_exact_and_the_capture_holds_it_both_ways() {
    let dir = TempDir::new("echo");
    // Every byte value, in a pseudo-random order, 1 MiB.
    let mut x: u32 = 0x1234_5678;
    let data: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(dir.path().join("in"), &data).unwrap();
    let cap = dir.join("echo.traffic");
    let run = Plg::record(&[
        "-f",
        &cap,
        "--ready",
        "p0:7",
        "socat TCP-LISTEN:7,fork,reuseaddr EXEC:cat",
        &format!(
            "socat -t 30 STDIO TCP:p0:7 < {} > {}",
            sh_quote(&dir.join("in")),
            sh_quote(&dir.join("out"))
        ),
    ])
    .run();
    run.assert_code(0);
    let echoed = std::fs::read(dir.path().join("out")).unwrap();
    assert!(echoed == data, "echo differs: {} bytes back", echoed.len());

    let c = Capture::read(Path::new(&cap));
    c.summary();
    let conn = c.only_conn_to(0, 7);
    assert_eq!(conn.open.outcome, Outcome::Established);
    assert!(conn.c2s == data, "c2s in capture: {} bytes", conn.c2s.len());
    assert!(conn.s2c == data, "s2c in capture: {} bytes", conn.s2c.len());
    // The client shut down its side first (EOF on stdin), the server followed.
    assert_eq!(conn.close(Direction::ClientToServer), Some(CloseKind::Fin));
    assert_eq!(conn.close(Direction::ServerToClient), Some(CloseKind::Fin));
}

#[test]
fn redis_set_get_and_friends_over_one_connection() {
    let dir = TempDir::new("redis");
    let cap = dir.join("kv.traffic");
    let cmds = "SET greeting hello\nGET greeting\nINCR counter\nINCR counter\n\
                RPUSH list a b c\nLRANGE list 0 -1\nDEL greeting\nGET greeting\n";
    let run = Plg::record(&[
        "-f",
        &cap,
        "--names",
        "db,app",
        "--ready",
        "db:6379",
        "redis-server --port 6379 --protected-mode no --save '' --appendonly no",
        &format!("printf {} | redis-cli -h db", sh_quote(cmds)),
    ])
    .run();
    run.assert_code(0);
    assert_eq!(
        run.lines_of("app"),
        vec!["OK", "hello", "1", "2", "3", "a", "b", "c", "1", ""],
        "{}",
        run.dump()
    );

    let c = Capture::read(Path::new(&cap));
    c.summary();
    let conn = c.only_conn_to(0, 6379);
    assert_eq!(conn.open.client, 1);
    let req = String::from_utf8_lossy(&conn.c2s);
    for cmd in [
        "*3\r\n$3\r\nSET\r\n$8\r\ngreeting\r\n$5\r\nhello\r\n",
        "*2\r\n$3\r\nGET\r\n$8\r\ngreeting\r\n",
        "*2\r\n$4\r\nINCR\r\n$7\r\ncounter\r\n",
        "*5\r\n$5\r\nRPUSH\r\n$4\r\nlist\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
        "*2\r\n$3\r\nDEL\r\n$8\r\ngreeting\r\n",
    ] {
        assert!(req.contains(cmd), "{cmd:?} not in {req:?}");
    }
    let resp = String::from_utf8_lossy(&conn.s2c);
    let want = "+OK\r\n$5\r\nhello\r\n:1\r\n:2\r\n:3\r\n*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n\
                :1\r\n$-1\r\n";
    assert!(resp.ends_with(want), "server replies in capture: {resp:?}");
    assert_eq!(conn.close(Direction::ClientToServer), Some(CloseKind::Fin));
}
