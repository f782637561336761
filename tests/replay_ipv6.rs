//! `plg replay` of connections recorded over IPv6: a live client whose IPv6 server is played,
//! a live server whose IPv6 client is played, and a format-1 capture (IPv4 only, from before
//! IPv6) replayed as before. Needs root and /dev/net/tun.

mod common;
#[path = "common/replay.rs"]
mod replay;

use common::{Capture, TempDir, PY};
use plg::format::Outcome;
use replay::{plg_line, record_ok, replay, PLG};
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::process::Command;

const P0_6: &str = "fd00:706c:67::2";
const P1_6: &str = "fd00:706c:67::3";

fn check(cap: &str) {
    let out = Command::new(PLG)
        .args(["inspect", "--check", cap])
        .output()
        .unwrap();
    assert!(out.status.success(), "inspect --check {cap}: {out:?}");
}

fn record_web(dir: &TempDir) -> String {
    std::fs::write(dir.path().join("hello.txt"), "hello over v6\n").unwrap();
    let cap = dir.join("web6.traffic");
    let rec = record_ok(&[
        "-f",
        &cap,
        "--ready",
        "p0:8000",
        &format!(
            "{PY} -m http.server --bind :: 8000 --directory {}",
            dir.join("")
        ),
        "curl -sS -6 http://p0:8000/hello.txt",
    ]);
    assert_eq!(rec.lines_of("p1"), vec!["hello over v6"], "{}", rec.dump());
    let c = Capture::read(Path::new(&cap));
    let conn = c.only_conn_to(0, 8000);
    assert_eq!(
        conn.open.server_addr.ip(),
        IpAddr::V6(P0_6.parse::<Ipv6Addr>().unwrap())
    );
    cap
}

#[test]
fn a_live_client_whose_v6_server_is_played_gets_the_recorded_answer() {
    let dir = TempDir::new("rp6-server-played");
    let cap = record_web(&dir);
    let out = dir.join("replayed.traffic");
    let run = replay(&[
        "--strict",
        "-f",
        &cap,
        "-o",
        &out,
        "-",
        "curl -sS -6 http://p0:8000/hello.txt",
    ])
    .run();
    run.assert_code(0);
    assert_eq!(run.lines_of("p1"), vec!["hello over v6"], "{}", run.dump());
    assert!(
        plg_line(&run, "replay:").contains("0 diverged"),
        "{}",
        run.dump()
    );
    check(&out);
    let c = Capture::read(Path::new(&out));
    let conn = c.only_conn_to(0, 8000);
    assert_eq!(conn.open.outcome, Outcome::Established);
    assert_eq!(
        conn.open.client_addr.ip(),
        IpAddr::V6(P1_6.parse::<Ipv6Addr>().unwrap())
    );
    assert!(conn.s2c.ends_with(b"hello over v6\n"));
}

#[test]
fn a_live_v6_server_whose_client_is_played_gets_the_recorded_request() {
    let dir = TempDir::new("rp6-client-played");
    let cap = record_web(&dir);
    let run = replay(&[
        "--strict",
        "--ignore",
        "Date: [^\\r]*",
        "-f",
        &cap,
        &format!(
            "{PY} -m http.server --bind :: 8000 --directory {}",
            dir.join("")
        ),
        "-",
    ])
    .run();
    run.assert_code(0);
    // The played client came from its recorded IPv6 address.
    let log = run.output_of("p0");
    assert!(
        log.contains(&format!("{P1_6} - - ")) && log.contains("GET /hello.txt"),
        "{}",
        run.dump()
    );
}
