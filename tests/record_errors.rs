//! Bad input and faults of `plg record`: each is one line on stderr and exit 2, with no process
//! started or left, and no capture file left behind (or, for a disk that fills up during the
//! recording, what was written kept readable). Needs root and /dev/net/tun.

mod common;

use common::{sh_quote, Plg, TempDir};
use plg::format::{CaptureReader, Record};
use std::path::Path;

/// Runs a `plg record` that must fail before recording: checks the error convention, that
/// the capture was not created, and (through the harness) that nothing was left running.
/// The commands would run for a long time if plg started them. Returns the error line.
fn refused(dir: &TempDir, args: &[&str], commands: usize) -> String {
    let cap = dir.join("never.traffic");
    let mut all: Vec<&str> = vec!["-f", &cap];
    let marker_cmd = "sleep 120";
    all.extend_from_slice(args);
    all.extend(std::iter::repeat_n(marker_cmd, commands));
    let run = Plg::record(&all).timeout(30).run();
    let line = run.assert_one_line_error();
    assert!(
        !Path::new(&cap).exists(),
        "{line}: left a capture file behind"
    );
    line
}

#[test]
fn invalid_subnets_are_refused() {
    let dir = TempDir::new("badsubnet");
    for (subnet, want) in [
        ("banana", "invalid subnet"),
        ("10.0.0.1/24", "host bits"),
        ("10.0.0.0/33", "prefix length"),
        ("300.0.0.0/24", "not an IPv4 address"),
    ] {
        let line = refused(&dir, &["-s", subnet], 2);
        assert!(line.contains(want), "-s {subnet}: {line}");
    }
}

#[test]
fn too_small_subnets_are_refused() {
    let dir = TempDir::new("smallsubnet");
    for subnet in ["10.0.0.0/30", "10.0.0.0/31", "10.0.0.0/32"] {
        let line = refused(&dir, &["-s", subnet], 1);
        assert!(line.contains("too small"), "-s {subnet}: {line}");
    }
}

#[test]
fn more_commands_than_addresses_are_refused() {
    let dir = TempDir::new("toomany");
    // A /29 has 8 addresses: network, gateway, broadcast, and 5 for processes.
    let line = refused(&dir, &["-s", "10.0.0.0/29"], 7);
    assert!(line.contains("7 commands"), "{line}");
    let line = refused(&dir, &["-s", "10.0.0.0/29"], 6);
    assert!(line.contains("6 commands"), "{line}");
}

#[test]
fn a_name_given_twice_is_refused() {
    let dir = TempDir::new("twice");
    let line = refused(&dir, &["--names", "web,web"], 2);
    assert!(line.contains("twice"), "{line}");
}

#[test]
fn an_unknown_ready_name_is_refused() {
    let dir = TempDir::new("readyname");
    let line = refused(&dir, &["--ready", "nobody:80"], 2);
    assert!(line.contains("nobody"), "{line}");
    let line = refused(&dir, &["--ready", "p5:80"], 2);
    assert!(line.contains("p5"), "{line}");
}

#[test]
fn an_output_that_cannot_be_written_is_refused() {
    let run = Plg::record(&["-f", "/nonexistent/dir/x.traffic", "sleep 120"])
        .timeout(30)
        .run();
    let line = run.assert_one_line_error();
    assert!(line.contains("/nonexistent/dir/x.traffic"), "{line}");
    assert!(!Path::new("/nonexistent").exists());
}

/// `plg record ARGS` inside a private mount namespace where `setup` ran first (as root) and
/// `after` runs after plg (the wrapper exits with plg's status).
fn in_mount_ns(setup: &str, after: &str, args: &[&str]) -> Plg {
    let script = format!("{setup} || exit 99; \"$0\" \"$@\"; rc=$?; {after}; exit $rc");
    let mut all = vec![
        "-m",
        "sh",
        "-c",
        &script,
        env!("CARGO_BIN_EXE_plg"),
        "record",
    ];
    all.extend_from_slice(args);
    Plg::wrapped("unshare", &all)
}

#[test]
fn no_dev_net_tun_is_a_clear_error() {
    let dir = TempDir::new("notun");
    let cap = dir.join("x.traffic");
    // An empty tmpfs over /dev/net, in a mount namespace of plg's own.
    let run = in_mount_ns(
        "mount -t tmpfs none /dev/net",
        ":",
        &["-f", &cap, "sleep 120", "sleep 120"],
    )
    .timeout(30)
    .run();
    let line = run.assert_one_line_error();
    assert!(line.contains("/dev/net/tun"), "{line}");
    assert!(!Path::new(&cap).exists(), "left a capture behind");
}

#[test]
fn a_disk_that_fills_up_stops_the_recording_cleanly_and_keeps_what_was_written() {
    let dir = TempDir::new("diskfull");
    let small = dir.join("small");
    std::fs::create_dir(&small).unwrap();
    let cap = format!("{small}/full.traffic");
    // A 2 MiB filesystem and a 20 MiB transfer. The server writes what it receives outside
    // it, so only the capture fills the disk.
    let copy = dir.join("copy.traffic");
    let received = dir.join("received");
    let run = in_mount_ns(
        &format!("mount -t tmpfs -o size=2m none {}", sh_quote(&small)),
        // The file lives in a mount that dies with the wrapper: copy it out to look at it.
        &format!("cp {} {}", sh_quote(&cap), sh_quote(&copy)),
        &[
            "-q",
            "-f",
            &cap,
            "--ready",
            "p0:9000",
            "--grace",
            "1",
            &format!(
                "socat -u TCP-LISTEN:9000,reuseaddr OPEN:{},creat 2>/dev/null",
                sh_quote(&received)
            ),
            "head -c 20M /dev/zero | socat -u - TCP:p0:9000 2>/dev/null",
        ],
    )
    .timeout(60)
    .run();
    let line = run.assert_one_line_error();
    assert!(
        line.contains("No space left on device") || line.contains("full"),
        "{line}"
    );
    // What was written stays, readable up to the last whole block.
    let reader = CaptureReader::open(Path::new(&copy)).expect("capture readable");
    let mut data = 0u64;
    for rec in reader {
        match rec {
            Ok(Record::Data(d)) => data += d.bytes.len() as u64,
            Ok(_) => {}
            Err(e) => {
                assert!(e.message.contains("truncated"), "{e}");
                break;
            }
        }
    }
    assert!(data > 0, "no data kept");
    // The relay stopped before passing on a byte the capture could not hold.
    let got = std::fs::metadata(&received).map(|m| m.len()).unwrap_or(0);
    assert!(
        got <= data,
        "the server received {got} bytes, the capture holds {data}"
    );
}
