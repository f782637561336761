//! Human text a person can read (issue 11, "Outputs a pipeline can use"): one unit style for
//! offsets and durations in every view, and record and inspect agreeing on a session's
//! duration; "1 connection", never "1 connections"; long command lines and huge chunks cut
//! short on a terminal (whole with --full or into a pipe); bytes >= 0x80 shown as --help
//! says; connections of a file of several sections named apart (`s2:3`, `--section`).

mod common;
mod export_support;

use export_support::*;
use plg::format::*;
use std::fs;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Command;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A capture of two processes (the first with `command`) and one connection per entry of
/// `conns`, each a list of (client-to-server?, bytes) chunks, closed by FIN both ways.
fn capture(path: &Path, command: &str, conns: &[Vec<(bool, Vec<u8>)>]) -> PathBuf {
    let session = Session {
        format_version: FORMAT_VERSION,
        mode: Mode::Record,
        subnet: Ipv4Addr::new(10, 0, 0, 0),
        prefix_len: 24,
        start_ns: START,
        plg_version: "0.1.0".into(),
        subnet6: None,
    };
    let procs: Vec<Process> = [("server", command), ("client", "client --go")]
        .iter()
        .enumerate()
        .map(|(i, (name, cmd))| Process {
            index: i as u16,
            name: name.to_string(),
            command: cmd.to_string(),
            addr: Ipv4Addr::new(10, 0, 0, i as u8 + 2),
            addr6: None,
            live: true,
        })
        .collect();
    let file = std::io::BufWriter::new(fs::File::create(path).unwrap());
    let mut w = CaptureWriter::new(file, &session, &procs).unwrap();
    let mut t = START;
    let mut tick = || {
        t += 1_500_000;
        t
    };
    let mut sum = Summary {
        processes: 2,
        ..Default::default()
    };
    for (id, chunks) in conns.iter().enumerate() {
        let id = id as ConnId;
        w.write(&Record::ConnOpen(ConnOpen {
            id,
            time_ns: tick(),
            client: 1,
            client_addr: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 3), 40000 + id as u16).into(),
            server: 0,
            server_addr: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 8080).into(),
            outcome: Outcome::Established,
        }))
        .unwrap();
        sum.connections += 1;
        for (c2s, bytes) in chunks {
            let dir = if *c2s {
                sum.bytes_c2s += bytes.len() as u64;
                Direction::ClientToServer
            } else {
                sum.bytes_s2c += bytes.len() as u64;
                Direction::ServerToClient
            };
            w.write_data(id, dir, tick(), bytes).unwrap();
            sum.data_blocks += 1;
        }
        for dir in [Direction::ClientToServer, Direction::ServerToClient] {
            w.write(&Record::ConnClose(ConnClose {
                id,
                dir,
                kind: CloseKind::Fin,
                time_ns: tick(),
            }))
            .unwrap();
        }
    }
    sum.end_ns = tick();
    w.finish(&sum).unwrap();
    path.to_path_buf()
}

/// plg run on a terminal (a pseudo-terminal made by script(1)); its output with CRLF as LF.
fn on_terminal(args: &[&str]) -> String {
    let cmd = std::iter::once(env!("CARGO_BIN_EXE_plg"))
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("NO_COLOR", "1")
        .output()
        .expect("script(1) runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).replace("\r\n", "\n")
}

/// Every `+<seconds>` offset in `text` carries its unit: `+0.000137 s`.
fn offsets_have_units(text: &str) -> usize {
    let mut n = 0;
    for (at, _) in text.match_indices('+') {
        let rest = &text[at + 1..];
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if digits == 0 || !rest[..digits].contains('.') {
            continue;
        }
        assert!(
            rest[digits..].starts_with(" s"),
            "offset without its unit: {:?}\n{text}",
            &text[at..at + digits + 3]
        );
        n += 1;
    }
    n
}

#[test]
fn offsets_and_durations_have_one_unit_style() {
    let d = scratch("text-units");
    let f = write_fixture(&d, true);
    let p = s(&f.path);
    let table = stdout(&plg(&["inspect", "--connections", p]));
    assert_eq!(offsets_have_units(&table), 6, "{table}");
    assert!(table.contains("+0.000137 s"), "{table}");
    let conv = stdout(&plg(&["inspect", "--conn", "0", p]));
    assert!(offsets_have_units(&conv) >= 5, "{conv}");
    assert!(
        conv.contains("lasted 959.0 µs") || conv.contains(" µs"),
        "{conv}"
    );
    let summary = stdout(&plg(&["inspect", p]));
    assert!(summary.contains(", lasted 4.8 ms"), "{summary}");
    fs::remove_dir_all(&d).unwrap();
}

/// `plg record`'s closing line and `plg inspect` say the same duration for the same session:
/// both from the session start written in the capture to its closing summary.
#[test]
fn record_and_inspect_agree_on_the_duration() {
    common::require_root();
    let dir = common::TempDir::new("text-duration");
    let cap = dir.join("s.traffic");
    let run = common::Plg::record(&["-f", &cap, "sleep 0.3"]).run();
    run.assert_code(0);
    let line = run
        .stderr
        .lines()
        .find(|l| l.starts_with("plg: recorded"))
        .unwrap_or_else(|| panic!("{}", run.dump()));
    let recorded = line
        .split(" for ")
        .nth(1)
        .and_then(|r| r.split(" into ").next())
        .unwrap();
    let o = plg(&["inspect", &cap]);
    let text = stdout(&o);
    let lasted = text
        .lines()
        .find_map(|l| l.split(", lasted ").nth(1))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(recorded, lasted, "record: {line}\ninspect: {text}");
    assert!(line.contains("recorded 1 process for"), "{line}");
    assert!(line.contains("0 connections"), "{line}");
}

/// Counts say "1 connection" and "2 connections", in inspect, diff and export.
#[test]
fn one_is_singular_everywhere() {
    let d = scratch("text-plural");
    let one = capture(
        &d.join("one.traffic"),
        "srv",
        &[vec![(true, b"x".to_vec()), (false, b"a".to_vec())]],
    );
    let other = capture(
        &d.join("other.traffic"),
        "srv",
        &[vec![(true, b"x".to_vec()), (false, b"b".to_vec())]],
    );
    let summary = stdout(&plg(&["inspect", s(&one)]));
    assert!(summary.contains("(2 data blocks)"), "{summary}");
    let check = stdout(&plg(&["inspect", "--check", s(&one)]));
    assert!(check.contains(", 1 connection, complete)"), "{check}");
    let o = plg(&["diff", s(&one), s(&other)]);
    let text = stdout(&o);
    assert!(text.contains("2 processes, 1 connection, 2 B"), "{text}");
    assert!(text.contains(": 1 byte differs"), "{text}");
    assert!(text.contains("0 of 1 connection the same"), "{text}");
    assert!(
        !text.contains("1 bytes") && !text.contains("1 connections"),
        "{text}"
    );
    fs::remove_dir_all(&d).unwrap();
}

/// On a terminal a 64 KiB command line and a 10 MiB chunk are cut short, saying how much is
/// left out and how to see it; --full, or a pipe, shows all of it.
#[test]
fn long_commands_and_huge_chunks_are_cut_short_on_a_terminal() {
    let d = scratch("text-elide");
    // 64 KiB: 200 characters shown, the rest (65,336 bytes) said.
    let long_cmd = format!("server {}", "-f ".repeat(65536 / 3))[..65536].to_string();
    let big: Vec<u8> = b"0123456789 abcdefghij klmnopqrst uvwxyz\n"
        .iter()
        .copied()
        .cycle()
        .take(10 << 20)
        .collect();
    let f = capture(
        &d.join("big.traffic"),
        &long_cmd,
        &[vec![(true, b"GET /big\n".to_vec()), (false, big.clone())]],
    );
    let p = s(&f);
    let summary = on_terminal(&["inspect", p]);
    assert!(summary.len() < 2000, "{summary}");
    assert!(
        summary.contains(" ... [63.8 KiB more, --full shows all]"),
        "{summary}"
    );
    let full = on_terminal(&["inspect", "--full", p]);
    assert!(full.contains(&long_cmd), "--full shows the whole command");
    assert!(stdout(&plg(&["inspect", p])).contains(&long_cmd), "a pipe");

    let conv = on_terminal(&["inspect", "--conn", "0", p]);
    assert!(conv.len() < 12 << 10, "{} bytes on a terminal", conv.len());
    assert!(
        conv.contains(
            "[... 10.0 MiB more not shown: --full shows all, --conn 0 --raw --direction server \
             writes the bytes]"
        ),
        "{conv}"
    );
    assert!(conv.contains("GET /big"), "{conv}");
    assert!(conv.contains("--- fin: 9 B client to server"), "{conv}");
    let piped = plg(&["inspect", "--conn", "0", p]);
    assert!(piped.stdout.len() > 10 << 20, "a pipe gets every byte");
    assert!(!stdout(&piped).contains("more not shown"));
    let o = plg(&[
        "inspect",
        "--conn",
        "0",
        "--raw",
        "--direction",
        "server",
        p,
    ]);
    assert_eq!(o.stdout, big);
    fs::remove_dir_all(&d).unwrap();
}

/// `--text` shows UTF-8 as it is and every byte that is not UTF-8 as '.', as its help says
/// (not U+FFFD); a character split between two reads is shown whole; the hex dump's column
/// shows bytes >= 0x80 as '.'.
#[test]
fn bytes_above_0x7f_are_shown_as_the_help_says() {
    let d = scratch("text-high");
    let f = capture(
        &d.join("high.traffic"),
        "srv",
        &[vec![
            (true, b"caf\xc3".to_vec()),
            (true, b"\xa9 \xff\xfe\x80 end\x01\n".to_vec()),
            (false, b"ok \xe2\x82".to_vec()),
        ]],
    );
    let text = stdout(&plg(&["inspect", "--conn", "0", "--text", s(&f)]));
    assert!(text.contains("\ncafé ... end.\n"), "{text}");
    assert!(
        text.contains("\nok ..\n"),
        "a cut character at the end: {text}"
    );
    assert!(!text.contains('\u{fffd}'), "{text}");
    let help = stdout(&plg(&["inspect", "--help"]));
    assert!(
        help.contains("bytes that are not UTF-8 as '.'"),
        "the help says what --text does: {help}"
    );
    let hex = stdout(&plg(&["inspect", "--conn", "0", "--hex", s(&f)]));
    assert!(hex.contains("|caf.|"), "{hex}");
    assert!(hex.contains("|. ... end..|"), "{hex}");
    fs::remove_dir_all(&d).unwrap();
}

/// Two captures concatenated: their connection ids repeat, and every per-connection view
/// keeps them apart (`s2:ID`, as export --streams prefixes files `s2-`).
#[test]
fn connections_of_each_section_are_named_apart() {
    let d = scratch("text-sections");
    let a = capture(
        &d.join("a.traffic"),
        "srv",
        &[vec![(true, b"first\n".to_vec())]],
    );
    let b = capture(
        &d.join("b.traffic"),
        "srv",
        &[vec![(true, b"second\n".to_vec())]],
    );
    let two = d.join("two.traffic");
    fs::write(
        &two,
        [fs::read(&a).unwrap(), fs::read(&b).unwrap()].concat(),
    )
    .unwrap();
    let t = s(&two);
    let table = stdout(&plg(&["inspect", "--connections", t]));
    let ids: Vec<&str> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(ids, ["0", "s2:0"], "{table}");
    let json: serde_json::Value =
        serde_json::from_slice(&plg(&["inspect", "--connections", "--json", t]).stdout).unwrap();
    let secs: Vec<u64> = json["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["section"].as_u64().unwrap())
        .collect();
    assert_eq!(secs, [1, 2]);

    let first = stdout(&plg(&["inspect", "--conn", "0", t]));
    assert!(
        first.contains("first") && !first.contains("second"),
        "{first}"
    );
    let second = stdout(&plg(&["inspect", "--conn", "s2:0", t]));
    assert!(second.starts_with("connection s2:0:"), "{second}");
    assert!(
        second.contains("second") && !second.contains("first"),
        "{second}"
    );
    assert_eq!(
        stdout(&plg(&["inspect", "--section", "2", "--conn", "0", t])),
        second
    );
    let o = plg(&[
        "inspect",
        "--conn",
        "0",
        "--raw",
        "--direction",
        "client",
        "--section",
        "2",
        t,
    ]);
    assert_eq!(o.stdout, b"second\n");
    let only = stdout(&plg(&["inspect", "--section", "2", "--connections", t]));
    assert_eq!(only.lines().count(), 2, "{only}");
    assert!(only.contains("s2:0"), "{only}");
    let summary = stdout(&plg(&["inspect", "--section", "2", t]));
    assert!(!summary.contains("section 1"), "{summary}");

    let o = plg(&["inspect", "--conn", "s3:0", t]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim_end(),
        format!("plg: inspect: {t} holds no connection s3:0 (it holds 2 sections)")
    );
    let o = plg(&["inspect", "--section", "3", "--connections", t]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("holds 2 sections: there is no section 3"));
    fs::remove_dir_all(&d).unwrap();
}
