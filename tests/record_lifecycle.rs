//! How a recording session lives and ends, with real programs: Ctrl-C or SIGTERM in the middle,
//! exit statuses passed through (normal, command not found, killed by a signal), --main and
//! --grace, --ready, name resolution and the PLG_* environment. Needs root and /dev/net/tun.

mod common;

use common::{processes_with_marker, sh_quote, Capture, Plg, TempDir, PY};
use plg::format::{CaptureReader, Direction, ExitStatus, Outcome, Record};
use std::path::Path;
use std::time::{Duration, Instant};

fn py(script: &str) -> String {
    format!("{PY} -u -c {}", sh_quote(script))
}

const ECHO_SERVER: &str = r#"
import socketserver
class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)
class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
Server(("0.0.0.0", 7000), Echo).serve_forever()
"#;

/// A client that opens a connection, echoes one line, says so, and then holds on forever.
const HOLDING_CLIENT: &str = r#"
import socket, time
s = socket.create_connection(("p0", 7000), timeout=20)
s.sendall(b"hello before the signal\n")
print("echoed", s.makefile().readline().strip())
time.sleep(3600)
"#;

/// Stops plg with `sig` while a connection is open; returns the capture's records.
fn stop_midway(sig: &str, code: i32, dir: &TempDir) -> Vec<Record> {
    let cap = dir.join("stopped.traffic");
    let mut plg = Plg::record(&[
        "-f",
        &cap,
        "--ready",
        "p0:7000",
        &py(ECHO_SERVER),
        &py(HOLDING_CLIENT),
    ])
    .spawn();
    plg.wait_output("p1| echoed hello before the signal");
    // The harness finds the children by their marker: a check that the leftover test below
    // would see them.
    let live = processes_with_marker(&plg.marker);
    assert!(live.len() >= 3, "plg and its children: {live:?}");
    plg.signal(sig);
    let run = plg.wait();
    run.assert_code(code);
    run.assert_no_leftovers();
    let stopped_by = format!("Stopped by SIG{sig}.");
    assert!(run.stderr.contains(&stopped_by), "{}", run.dump());

    let reader = CaptureReader::open(Path::new(&cap)).expect("capture readable");
    let records: Vec<Record> = reader.map(|r| r.expect("capture record")).collect();
    let c = Capture::read(Path::new(&cap));
    let s = c.summary();
    assert_eq!(s.connections, 1);
    let conn = c.only_conn_to(0, 7000);
    assert_eq!(conn.c2s, b"hello before the signal\n");
    assert_eq!(conn.s2c, b"hello before the signal\n");
    records
}

#[test]
fn sigint_in_the_middle_finishes_the_capture_stops_the_children_and_exits_130() {
    let dir = TempDir::new("sigint");
    let records = stop_midway("INT", 130, &dir);
    assert!(matches!(records.last(), Some(Record::Summary(_))));
}

#[test]
fn sigterm_in_the_middle_does_the_same_and_exits_143() {
    let dir = TempDir::new("sigterm");
    stop_midway("TERM", 143, &dir);
}

/// Records of a capture being written or cut short, up to the first error (a block cut in the
/// middle by a kill is expected at the very end).
fn records_so_far(path: &Path) -> Vec<Record> {
    let Ok(reader) = CaptureReader::open(path) else {
        return Vec::new();
    };
    reader.map_while(Result::ok).collect()
}

/// Starts a session whose client holds a connection open, waits until the echo is in the
/// capture file (flushed at least once a second), then kills plg with SIGKILL.
fn kill_9_midway(cap: &str, server: &str, client: &str) -> common::Run {
    let mut plg = Plg::record(&["-f", cap, "--ready", "p0:7000", server, client]).spawn();
    plg.wait_output("p1| echoed hello before the signal");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !echoed(&records_so_far(Path::new(cap))) {
        assert!(
            Instant::now() < deadline,
            "the echo never reached the capture file"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    plg.signal("KILL");
    let run = plg.wait();
    assert_eq!(run.code, None, "plg was killed by SIGKILL");
    run
}

fn echoed(recs: &[Record]) -> bool {
    recs.iter().any(|r| {
        matches!(r, Record::Data(d) if d.dir == Direction::ServerToClient
            && d.bytes == b"hello before the signal\n")
    })
}

#[test]
fn kill_9_of_plg_leaves_a_readable_capture_and_its_children_die_with_it() {
    let dir = TempDir::new("kill9");
    let cap = dir.join("killed.traffic");
    let run = kill_9_midway(
        &cap,
        &format!("exec {}", py(ECHO_SERVER)),
        &format!("exec {}", py(HOLDING_CLIENT)),
    );
    run.assert_no_leftover_processes();
    // Nobody is left to remove the hosts file (see the regression test below).
    let _ = std::fs::remove_file(run.hosts_file());
    let recs = records_so_far(Path::new(&cap));
    assert!(echoed(&recs));
    assert!(matches!(recs.first(), Some(Record::Session(_))));
    assert!(recs.iter().any(|r| matches!(r, Record::ConnOpen(_))));
    assert!(!recs.iter().any(|r| matches!(r, Record::Summary(_))));
}

/// Regression: the header blocks used to wait for the first periodic flush, so a plg killed
/// in its first second left an empty file.
#[test]
fn kill_9_right_at_the_start_leaves_a_capture_that_says_what_it_was() {
    let dir = TempDir::new("kill9early");
    let cap = dir.join("early.traffic");
    let plg = Plg::record(&["-f", &cap, "sleep 30"]).spawn();
    // Well before the first periodic flush (1 s): kill as soon as something is in the file,
    // or at 300 ms in any case.
    let deadline = Instant::now() + Duration::from_millis(300);
    while std::fs::metadata(&cap).map_or(0, |m| m.len()) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    plg.signal("KILL");
    let run = plg.wait();
    let _ = std::fs::remove_file(run.hosts_file());
    run.assert_no_leftover_processes();
    let recs = records_so_far(Path::new(&cap));
    assert!(matches!(recs.first(), Some(Record::Session(_))), "{recs:?}");
    assert!(recs
        .iter()
        .any(|r| matches!(r, Record::Process(p) if p.command == "sleep 30")));
    assert!(!recs.iter().any(|r| matches!(r, Record::Summary(_))));
}

#[test]
fn kill_9_of_plg_takes_grandchildren_with_it() {
    let dir = TempDir::new("kill9gc");
    let cap = dir.join("killed.traffic");
    // A command follows each program, so `sh -c` forks it instead of exec'ing it: the
    // programs are plg's grandchildren, not covered by the children's PDEATHSIG.
    let run = kill_9_midway(
        &cap,
        &format!("{}; echo server ended", py(ECHO_SERVER)),
        &format!("{}; echo client ended", py(HOLDING_CLIENT)),
    );
    let _ = std::fs::remove_file(run.hosts_file());
    run.assert_no_leftover_processes();
}

#[test]
fn kill_9_of_plg_leaves_no_hosts_file() {
    let dir = TempDir::new("kill9hosts");
    let cap = dir.join("killed.traffic");
    let run = kill_9_midway(
        &cap,
        &format!("exec {}", py(ECHO_SERVER)),
        &format!("exec {}", py(HOLDING_CLIENT)),
    );
    run.assert_no_leftover_processes();
    run.assert_no_hosts_file();
}

#[test]
fn no_prefix_passes_output_through_untouched() {
    let dir = TempDir::new("noprefix");
    let cap = dir.join("np.traffic");
    let run = Plg::record(&[
        "-q",
        "--no-prefix",
        "-f",
        &cap,
        "--main",
        "p0",
        "--main",
        "p1",
        "printf 'from p0\\n'",
        "printf 'from p1, no newline'",
    ])
    .run();
    run.assert_code(0);
    let mut lines: Vec<&str> = run.stdout.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        vec!["from p0", "from p1, no newline"],
        "{}",
        run.dump()
    );
    assert!(run.stderr.is_empty(), "-q: {}", run.dump());
}

#[test]
fn a_ready_that_never_comes_is_a_one_line_error_and_stops_everything() {
    let dir = TempDir::new("readytimeout");
    for (server, want) in [
        ("exec sleep 120", "did not listen on port 9"),
        ("exit 4", "exited"),
    ] {
        let cap = dir.join("rt.traffic");
        let run = Plg::record(&[
            "-f",
            &cap,
            "--ready",
            "p0:9",
            "--ready-timeout",
            "1",
            server,
            "sleep 120",
        ])
        .run();
        let line = run.assert_one_line_error();
        assert!(line.contains(want), "{line}");
        if Path::new(&cap).exists() {
            CaptureReader::open(Path::new(&cap)).expect("a capture left behind is readable");
        }
    }
}

#[test]
fn the_main_commands_exit_status_is_plgs() {
    let dir = TempDir::new("exit3");
    let cap = dir.join("exit.traffic");
    let run = Plg::record(&["-f", &cap, "echo about to fail; exit 3"]).run();
    run.assert_code(3);
    assert_eq!(run.stdout, "about to fail\n", "one process: no prefix");
    let c = Capture::read(Path::new(&cap));
    c.summary();
    assert_eq!(c.exit_of(0), Some(ExitStatus::Exited(3)));
}

#[test]
fn a_command_that_does_not_exist_exits_127_as_in_a_shell_and_is_recorded() {
    let dir = TempDir::new("notfound");
    let cap = dir.join("nf.traffic");
    let run = Plg::record(&["-f", &cap, "plg-no-such-command-xyz --flag"]).run();
    run.assert_code(127);
    assert!(run.stderr.contains("not found"), "{}", run.dump());
    let c = Capture::read(Path::new(&cap));
    c.summary();
    assert_eq!(c.exit_of(0), Some(ExitStatus::Exited(127)));
}

#[test]
fn a_command_killed_by_a_signal_is_recorded_as_such() {
    let dir = TempDir::new("killed");
    let cap = dir.join("killed.traffic");
    let run = Plg::record(&["-f", &cap, "kill -KILL $$"]).run();
    run.assert_code(128 + 9);
    assert!(run.stderr.contains("killed by SIGKILL"), "{}", run.dump());
    let c = Capture::read(Path::new(&cap));
    c.summary();
    assert_eq!(c.exit_of(0), Some(ExitStatus::Signaled(9)));
}

#[test]
fn with_main_the_session_ends_with_that_process_and_a_stubborn_peer_is_killed_after_grace() {
    let dir = TempDir::new("main");
    let cap = dir.join("main.traffic");
    let flag = sh_quote(&dir.join("trapped"));
    let run = Plg::record(&[
        "-f",
        &cap,
        "--main",
        "p0",
        "--grace",
        "1",
        "--names",
        "boss",
        &format!("until [ -e {flag} ]; do sleep 0.05; done; exit 5"),
        &format!("trap '' TERM; echo ignoring TERM; touch {flag}; while :; do sleep 1; done"),
    ])
    .run();
    run.assert_code(5);
    assert_eq!(run.lines_of("p1"), vec!["ignoring TERM"], "{}", run.dump());
    let c = Capture::read(Path::new(&cap));
    c.summary();
    assert_eq!(c.exit_of(0), Some(ExitStatus::Exited(5)));
    assert_eq!(c.exit_of(1), Some(ExitStatus::Signaled(9)));
}

#[test]
fn ready_holds_the_client_back_until_a_slow_server_listens_without_probing_it() {
    let dir = TempDir::new("ready");
    std::fs::write(dir.path().join("index.html"), "ready now\n").unwrap();
    let cap = dir.join("ready.traffic");
    // Without --ready, plg gives a server one second; this one takes two.
    let run = Plg::record(&[
        "-f",
        &cap,
        "--ready",
        "p0:8000",
        &format!(
            "sleep 2; exec {PY} -m http.server 8000 --directory {}",
            dir.join("")
        ),
        "curl -sS http://p0:8000/index.html",
    ])
    .run();
    run.assert_code(0);
    assert_eq!(run.lines_of("p1"), vec!["ready now"], "{}", run.dump());
    let c = Capture::read(Path::new(&cap));
    assert_eq!(
        c.summary().connections,
        1,
        "plg probed the port: {:#?}",
        c.conns
    );
    assert_eq!(c.only_conn_to(0, 8000).open.outcome, Outcome::Established);
}

#[test]
fn ready_on_any_port_by_name() {
    let dir = TempDir::new("readyany");
    let cap = dir.join("ready.traffic");
    let run = Plg::record(&[
        "-f",
        &cap,
        "--names",
        "web,client",
        "--ready",
        "web",
        "sleep 1.5; exec socat TCP-LISTEN:8123,reuseaddr SYSTEM:'echo up'",
        "socat -T 10 - TCP:web:8123",
    ])
    .run();
    run.assert_code(0);
    assert_eq!(run.lines_of("client"), vec!["up"], "{}", run.dump());
    assert_eq!(Capture::read(Path::new(&cap)).summary().connections, 1);
}

#[test]
fn every_process_resolves_every_other_by_pn_and_by_its_name() {
    let dir = TempDir::new("names");
    let cap = dir.join("names.traffic");
    let run = Plg::record(&[
        "-f",
        &cap,
        "--names",
        "server,client",
        "--ready",
        "server:8000",
        &format!("{PY} -m http.server 8000 --directory {}", dir.join("")),
        "hostname; for n in server p0 client p1 gateway localhost; do getent ahosts $n | \
         while read addr rest; do echo \"$n $addr\"; done | uniq; done; \
         curl -sS -o /dev/null -w '%{http_code}\\n' http://server:8000/",
    ])
    .run();
    run.assert_code(0);
    assert_eq!(
        run.lines_of("client"),
        vec![
            "client",
            "server 10.0.0.2",
            "server fd00:706c:67::2",
            "p0 10.0.0.2",
            "p0 fd00:706c:67::2",
            "client 10.0.0.3",
            "client fd00:706c:67::3",
            "p1 10.0.0.3",
            "p1 fd00:706c:67::3",
            "gateway 10.0.0.1",
            "gateway fd00:706c:67::1",
            // getaddrinfo's order (RFC 6724): IPv4 before a ULA, ::1 before 127.0.0.1.
            "localhost ::1",
            "localhost 127.0.0.1",
            "200"
        ],
        "{}",
        run.dump()
    );
    let c = Capture::read(Path::new(&cap));
    let names: Vec<&str> = c.procs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["server", "client"]);
}

#[test]
fn each_process_gets_its_index_name_address_and_its_peers_addresses() {
    let dir = TempDir::new("env");
    let cap = dir.join("env.traffic");
    let show = "echo \"$PLG_INDEX $PLG_NAME $PLG_ADDR $PLG_ADDR_P0 $PLG_ADDR_P1 $PLG_ADDR_P2 $PLG_ADDR_DB\"";
    let run = Plg::record(&[
        "-f",
        &cap,
        "-s",
        "192.168.77.0/24",
        "--names",
        "db",
        "--main",
        "p0",
        "--main",
        "p1",
        "--main",
        "p2",
        show,
        show,
        show,
    ])
    .run();
    run.assert_code(0);
    let all = "192.168.77.2 192.168.77.3 192.168.77.4 192.168.77.2";
    assert_eq!(run.lines_of("db"), vec![format!("0 db 192.168.77.2 {all}")]);
    assert_eq!(run.lines_of("p1"), vec![format!("1 p1 192.168.77.3 {all}")]);
    assert_eq!(run.lines_of("p2"), vec![format!("2 p2 192.168.77.4 {all}")]);
}

#[test]
fn a_daemon_that_left_its_process_group_is_stopped_at_the_end_too() {
    let dir = TempDir::new("daemon");
    let cap = dir.join("daemon.traffic");
    // redis-server --daemonize forks, calls setsid and lives on after its shell exits: it is
    // in neither the process group nor the session plg started.
    let run = Plg::record(&[
        "-f",
        &cap,
        "--names",
        "db,app",
        "redis-server --daemonize yes --port 6379 --protected-mode no --save '' \
         --appendonly no --logfile /dev/null && echo daemonized",
        "for i in $(seq 100); do redis-cli -h db ping 2>/dev/null | grep PONG && break; \
         sleep 0.1; done",
    ])
    .run();
    run.assert_code(0);
    assert_eq!(run.lines_of("db"), vec!["daemonized"], "{}", run.dump());
    assert_eq!(run.lines_of("app"), vec!["PONG"], "{}", run.dump());
}
