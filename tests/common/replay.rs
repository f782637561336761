//! Helpers of the `tests/replay_*.rs` suites, on top of the record harness in `common`: run
//! `plg replay` (and `plg diff`) like `plg record`, with the same timeout, marker and
//! leftover checks, and watch which processes a replay starts while it runs.
//!
//! Declared from each replay suite next to `mod common;` as
//! `#[path = "common/replay.rs"] mod replay;`.

#![allow(dead_code)]

use crate::common::{processes_with_marker, Plg, Run};
use plg::format::{CaptureReader, Record};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The plg binary under test.
pub const PLG: &str = env!("CARGO_BIN_EXE_plg");

/// `plg replay` with these arguments (the caller gives `-f`, options and commands).
pub fn replay(args: &[&str]) -> Plg {
    let all: Vec<&str> = std::iter::once("replay")
        .chain(args.iter().copied())
        .collect();
    Plg::wrapped(PLG, &all)
}

/// `plg record` that must succeed: runs it, checks exit 0 and that nothing was left behind.
pub fn record_ok(args: &[&str]) -> Run {
    let run = Plg::record(args).run();
    run.assert_code(0);
    run
}

/// Runs a replay to the end like `Plg::run`, and also returns the command line of every
/// process carrying the run's marker seen while it ran (polled, so a process that lives only
/// a few milliseconds may be missed: tests make the processes they look for last a while).
pub fn run_watching(plg: Plg) -> (Run, Vec<String>) {
    let deadline = Instant::now() + plg.timeout;
    let mut running = plg.spawn();
    let mut seen: Vec<String> = Vec::new();
    loop {
        for (_, cmdline) in processes_with_marker(&running.marker) {
            if !seen.contains(&cmdline) {
                seen.push(cmdline);
            }
        }
        if matches!(running.child.try_wait(), Ok(Some(_))) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let run = running.wait();
    run.assert_no_leftovers();
    (run, seen)
}

/// `plg diff ARGS...`: (exit code, stdout, stderr).
pub fn diff(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(PLG)
        .arg("diff")
        .args(args)
        .output()
        .expect("run plg diff");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Byte offset where the `nth` (from 0) record of the capture for which `pick` holds starts.
pub fn offset_of(path: &Path, nth: usize, mut pick: impl FnMut(&Record) -> bool) -> u64 {
    let mut reader = CaptureReader::open(path)
        .unwrap_or_else(|e| panic!("capture {} unreadable: {e}", path.display()));
    let mut left = nth;
    while let Some(rec) = reader.next() {
        let rec = rec.unwrap_or_else(|e| panic!("capture {}: {e}", path.display()));
        if pick(&rec) {
            if left == 0 {
                return reader.position();
            }
            left -= 1;
        }
    }
    panic!("fewer than {} such records in {}", nth + 1, path.display());
}

/// The one line of plg's own report (stderr lines starting `plg: `) containing `what`.
pub fn plg_line<'a>(run: &'a Run, what: &str) -> &'a str {
    run.stderr
        .lines()
        .find(|l| l.starts_with("plg: ") && l.contains(what))
        .unwrap_or_else(|| panic!("no plg line with {what:?}; {}", run.dump()))
}
