//! Bad input to `plg replay`: a capture cut short (replay what is complete, and say so), a
//! file that is no plg capture or of a future format version, and more commands than recorded
//! processes. Where nothing can be done: exit 2, one line on stderr, nothing started or left.
//! Needs root and /dev/net/tun.

mod common;
#[path = "common/replay.rs"]
mod replay;

use common::{Capture, TempDir, PY};
use plg::format::{CaptureWriter, Direction, Mode, Process, Record, Session, FORMAT_VERSION};
use replay::{offset_of, plg_line, record_ok, replay};
use std::net::Ipv4Addr;
use std::path::Path;

const BODY: &str = "hello from the web root\n";
const CLIENT: &str = "curl -sS -m 20 http://p0:8000/a.txt && curl -sS -m 20 http://p0:8000/b.txt";

/// Records http.server serving a.txt then b.txt to curl over two connections.
fn record_two_gets(dir: &TempDir) -> String {
    std::fs::write(dir.path().join("a.txt"), BODY).unwrap();
    std::fs::write(dir.path().join("b.txt"), "second file\n").unwrap();
    let cap = dir.join("web.traffic");
    let server = format!("{PY} -m http.server 8000 --directory {}", dir.join(""));
    let run = record_ok(&["-f", &cap, "--ready", "p0:8000", &server, CLIENT]);
    assert_eq!(
        run.lines_of("p1"),
        vec![BODY.trim_end(), "second file"],
        "{}",
        run.dump()
    );
    cap
}

fn cut(path: &str, len: u64) {
    let st = std::process::Command::new("truncate")
        .args(["-s", &len.to_string(), path])
        .status()
        .expect("run truncate");
    assert!(st.success());
}

#[test]
fn a_capture_cut_in_the_middle_of_its_last_block_replays_in_full_and_says_so() {
    let dir = TempDir::new("rp-cut-end");
    let cap = record_two_gets(&dir);
    let summary = offset_of(Path::new(&cap), 0, |r| matches!(r, Record::Summary(_)));
    cut(&cap, summary + 10);

    let run = replay(&["--strict", "-f", &cap, "-", CLIENT]).run();
    run.assert_code(0);
    let warning = plg_line(&run, "warning");
    assert!(warning.contains("truncated"), "{warning}");
    assert!(warning.contains(&format!("at byte {summary}")), "{warning}");
    assert_eq!(
        run.lines_of("p1"),
        vec![BODY.trim_end(), "second file"],
        "{}",
        run.dump()
    );
}

#[test]
fn a_capture_cut_in_the_middle_of_a_block_replays_what_is_complete_and_says_so() {
    let dir = TempDir::new("rp-cut");
    let cap = record_two_gets(&dir);
    // In the middle of the second connection's response: its first server-to-client block.
    let mut second = None;
    let mut opens = 0;
    let start = offset_of(Path::new(&cap), 0, |r| match r {
        Record::ConnOpen(o) => {
            opens += 1;
            if opens == 2 {
                second = Some(o.id);
            }
            false
        }
        Record::Data(d) => Some(d.id) == second && d.dir == Direction::ServerToClient,
        _ => false,
    });
    cut(&cap, start + 20);

    let run = replay(&["--step-timeout", "1", "-f", &cap, "-", CLIENT]).run();
    let warning = plg_line(&run, "warning");
    assert!(warning.contains("truncated"), "{warning}");
    assert!(warning.contains(&format!("at byte {start}")), "{warning}");
    // The first exchange is complete in the capture: played in full.
    assert_eq!(
        run.lines_of("p1").first().map(String::as_str),
        Some(BODY.trim_end()),
        "{}",
        run.dump()
    );
    // The second response was cut off: the played server ends that connection where the
    // capture ends, rather than leave curl waiting until its own timeout (exit 28).
    assert_ne!(run.code, Some(28), "curl timed out; {}", run.dump());
    assert_ne!(run.code, Some(2), "{}", run.dump());
    assert!(
        plg_line(&run, "replay:").contains("2 connections matched"),
        "{}",
        run.dump()
    );
}

#[test]
fn a_capture_without_its_closing_summary_replays_in_full_with_a_warning() {
    let dir = TempDir::new("rp-nosummary");
    let cap = record_two_gets(&dir);
    let summary = offset_of(Path::new(&cap), 0, |r| matches!(r, Record::Summary(_)));
    cut(&cap, summary);

    let run = replay(&["--strict", "-f", &cap, "-", CLIENT]).run();
    run.assert_code(0);
    let warning = plg_line(&run, "warning");
    assert!(warning.contains("truncated"), "{warning}");
    assert_eq!(
        run.lines_of("p1"),
        vec![BODY.trim_end(), "second file"],
        "{}",
        run.dump()
    );
}

#[test]
fn a_file_that_is_not_a_capture_is_one_line_and_exit_2() {
    let dir = TempDir::new("rp-notcap");
    let text = dir.join("notes.txt");
    std::fs::write(&text, "GET / HTTP/1.1\r\nHost: example\r\n\r\n").unwrap();
    let empty = dir.join("empty.traffic");
    std::fs::write(&empty, "").unwrap();
    let missing = dir.join("missing.traffic");
    for (file, want) in [
        (&text, "not a plg capture"),
        (&empty, "empty"),
        (&missing, "No such file"),
    ] {
        // Commands that would run a long time if plg started them.
        let run = replay(&["-f", file, "sleep 120", "-"]).timeout(30).run();
        let line = run.assert_one_line_error();
        assert!(line.contains(file.as_str()), "{line}");
        assert!(line.contains(want), "{line}");
    }
}

#[test]
fn a_capture_of_a_future_format_version_is_one_line_and_exit_2() {
    let dir = TempDir::new("rp-future");
    let cap = dir.join("future.traffic");
    let session = Session {
        format_version: FORMAT_VERSION + 1,
        mode: Mode::Record,
        subnet: Ipv4Addr::new(10, 0, 0, 0),
        prefix_len: 24,
        subnet6: None,
        start_ns: 0,
        plg_version: "99.0.0".into(),
    };
    let procs = vec![Process {
        index: 0,
        name: "p0".into(),
        command: "sleep 120".into(),
        addr: Ipv4Addr::new(10, 0, 0, 2),
        addr6: None,
        live: true,
    }];
    let file = std::fs::File::create(&cap).unwrap();
    let w = CaptureWriter::new(file, &session, &procs).unwrap();
    w.finish(&Default::default()).unwrap();

    let run = replay(&["-f", &cap]).timeout(30).run();
    let line = run.assert_one_line_error();
    assert!(
        line.contains(&format!("version {}", FORMAT_VERSION + 1)),
        "{line}"
    );
}

#[test]
fn more_commands_than_recorded_processes_is_one_line_and_exit_2() {
    let dir = TempDir::new("rp-toomany");
    let cap = record_two_gets(&dir);
    assert_eq!(Capture::read(Path::new(&cap)).procs.len(), 2);
    let run = replay(&["-f", &cap, "sleep 120", "sleep 120", "sleep 120"])
        .timeout(30)
        .run();
    let line = run.assert_one_line_error();
    assert!(line.contains("3 commands"), "{line}");
    assert!(line.contains("2 processes"), "{line}");
}
