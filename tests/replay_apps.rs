//! `plg replay` of real servers and clients from Debian, recorded first by `plg record`:
//! python's http.server with curl, redis-server with redis-cli. Each test checks what a user
//! would: the live program prints or logs what it did when recorded, the played one is not
//! running anywhere, and the replay's own capture diffs equal to the recording.
//! Needs root and /dev/net/tun.

mod common;
#[path = "common/replay.rs"]
mod replay;

use common::{sh_quote, Capture, TempDir, PY};
use plg::format::{Mode, Outcome};
use replay::{diff, plg_line, record_ok, replay, run_watching};
use std::path::Path;

const BODY: &str = "hello from the web root\n";

/// Records `python3 -m http.server` serving a temp dir with `hello.txt`, fetched twice by curl
/// over two connections. Returns the capture path, the server's and the client's command lines.
fn record_http(dir: &TempDir) -> (String, String, String) {
    std::fs::write(dir.path().join("hello.txt"), BODY).unwrap();
    std::fs::write(dir.path().join("other.txt"), "second file\n").unwrap();
    let cap = dir.join("web.traffic");
    // The temp dir's unique name is in the server's command line: a marker for `pgrep`.
    let server = format!("{PY} -m http.server 8000 --directory {}", dir.join(""));
    // The sleep keeps the client alive long enough to be seen while the replay runs.
    let client = "curl -sS http://p0:8000/hello.txt && curl -sS http://p0:8000/other.txt \
                  && sleep 1"
        .to_string();
    let run = record_ok(&["-f", &cap, "--ready", "p0:8000", &server, &client]);
    assert_eq!(
        run.lines_of("p1"),
        vec![BODY.trim_end(), "second file"],
        "{}",
        run.dump()
    );
    (cap, server, client)
}

/// The request lines http.server logged (`"GET /x HTTP/1.1" 200`), without date and address.
fn logged_requests(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| {
            let start = l.find('"')?;
            Some(l[start..].to_string())
        })
        .collect()
}

#[test]
fn curl_against_a_played_http_server_prints_what_it_printed_when_recorded() {
    let dir = TempDir::new("rp-http-client");
    let (cap, _server, client) = record_http(&dir);
    let recorded = Capture::read(Path::new(&cap));
    let (run, seen) = run_watching(replay(&["-f", &cap, "-", &client]));
    run.assert_code(0);
    assert_eq!(
        run.lines_of("p1"),
        vec![BODY.trim_end(), "second file"],
        "{}",
        run.dump()
    );
    // No server anywhere: not among the replay's processes, not logging, not on the host.
    assert!(
        seen.iter().any(|c| c.contains("sleep 1")),
        "the client was never seen running: {seen:?}"
    );
    assert!(
        !seen.iter().any(|c| c.contains("http.server")),
        "a server ran during the replay: {seen:?}"
    );
    assert!(run.lines_of("p0").is_empty(), "{}", run.dump());
    let summary = plg_line(&run, "replay:");
    assert!(
        summary.contains("2 connections matched, 0 diverged, 0 unmatched, 0 unused"),
        "{summary}"
    );
    assert_eq!(recorded.conns.len(), 2);
}

#[test]
fn http_server_driven_by_a_played_curl_logs_the_same_requests_and_diffs_equal() {
    let dir = TempDir::new("rp-http-server");
    let (cap, server, _client) = record_http(&dir);
    let rec_log = Capture::read(Path::new(&cap));
    assert_eq!(rec_log.conns.len(), 2);
    let record_requests = vec![
        "\"GET /hello.txt HTTP/1.1\" 200 -".to_string(),
        "\"GET /other.txt HTTP/1.1\" 200 -".to_string(),
    ];
    // http.server's Date header has a one-second resolution: let it change, so that the
    // replay's responses differ from the recording's in that header and nowhere else.
    std::thread::sleep(std::time::Duration::from_millis(1100));

    let out = dir.join("again.traffic");
    let run = replay(&["-f", &cap, "-o", &out, &server, "-"]).run();
    run.assert_code(0);
    let log = run.lines_of("p0");
    // Sorted: the order the two requests come in is checked by its own (ignored) test below.
    let mut requests = logged_requests(&log);
    requests.sort();
    assert_eq!(requests, record_requests, "{}", run.dump());
    assert!(
        log.iter()
            .filter(|l| l.contains("\"GET"))
            .all(|l| l.starts_with("10.0.0.3 - - ")),
        "the played client does not come from its recorded address: {log:?}"
    );
    // The live server's responses differ from the recorded ones in the Date header only:
    // each divergence is reported on the server's side, at an offset inside that header.
    let summary = plg_line(&run, "replay:");
    assert!(
        summary.contains("2 connections matched, 2 diverged, 0 unmatched, 0 unused"),
        "{summary}"
    );
    for (k, conn) in rec_log.conns.values().enumerate() {
        let resp = String::from_utf8_lossy(&conn.s2c);
        let date = resp.find("\r\nDate: ").expect("a Date header") + "\r\nDate: ".len();
        let end = date + resp[date..].find('\r').unwrap();
        let line = plg_line(&run, &format!("connection {k} "));
        let off: usize = line
            .split("the server sent other bytes than recorded from offset ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no server divergence offset in {line:?}"));
        assert!(
            (date..end).contains(&off),
            "diverged at {off}, outside the Date value {date}..{end}: {line}"
        );
        assert!(!line.contains("the client sent"), "{line}");
    }

    let again = Capture::read(Path::new(&out));
    again.summary();
    assert_eq!(again.session.as_ref().unwrap().mode, Mode::Replay);
    assert_eq!(again.conns.len(), 2);
    for c in again.conns.values() {
        assert_eq!(c.open.outcome, Outcome::Established);
    }

    let (code, stdout, stderr) = diff(&["--ignore", "Date: [^\r]*", &cap, &out]);
    assert_eq!(code, Some(0), "diff with Date ignored:\n{stdout}{stderr}");
    let (code, stdout, stderr) = diff(&[&cap, &out]);
    assert_eq!(
        code,
        Some(1),
        "diff without ignoring Date:\n{stdout}{stderr}"
    );
    assert!(stdout.contains("Date"), "{stdout}");
}

#[test]
fn redis_cli_against_a_played_redis_server_prints_the_recorded_replies() {
    let dir = TempDir::new("rp-redis");
    let cap = dir.join("kv.traffic");
    let cmds = "SET greeting hello\nGET greeting\nINCR counter\nINCR counter\n\
                LPUSH list a b c\nLRANGE list 0 -1\nDEL greeting\nGET greeting\n";
    let client = format!("printf {} | redis-cli -h p0", sh_quote(cmds));
    let server = "redis-server --port 6379 --protected-mode no --save '' --appendonly no";
    let rec = record_ok(&["-f", &cap, "--ready", "p0:6379", server, &client]);
    let want = vec!["OK", "hello", "1", "2", "3", "c", "b", "a", "1", ""];
    assert_eq!(rec.lines_of("p1"), want, "{}", rec.dump());

    let (run, seen) = run_watching(replay(&["-f", &cap, "-", &client]));
    run.assert_code(0);
    assert_eq!(run.lines_of("p1"), rec.lines_of("p1"), "{}", run.dump());
    assert!(
        !seen.iter().any(|c| c.contains("redis-server")),
        "a redis-server ran during the replay: {seen:?}"
    );
    let summary = plg_line(&run, "replay:");
    assert!(
        summary.contains("1 connection matched, 0 diverged"),
        "{summary}"
    );

    // Several invocations, one command each: several connections, matched in order.
    let cap2 = dir.join("kv2.traffic");
    let client2 = "redis-cli -h p0 SET k v && redis-cli -h p0 INCR n && redis-cli -h p0 INCR n \
                   && redis-cli -h p0 GET k";
    let rec = record_ok(&["-f", &cap2, "--ready", "p0:6379", server, client2]);
    assert_eq!(
        rec.lines_of("p1"),
        vec!["OK", "1", "2", "v"],
        "{}",
        rec.dump()
    );
    let run = replay(&["-f", &cap2, "-", client2]).run();
    run.assert_code(0);
    assert_eq!(run.lines_of("p1"), rec.lines_of("p1"), "{}", run.dump());
    let summary = plg_line(&run, "replay:");
    assert!(
        summary.contains("4 connections matched, 0 diverged"),
        "{summary}"
    );
}

#[test]
fn both_live_reruns_every_recorded_command_and_completes() {
    let dir = TempDir::new("rp-both");
    let (cap, _server, _client) = record_http(&dir);
    let run = replay(&["-f", &cap]).run();
    run.assert_code(0);
    assert_eq!(
        run.lines_of("p1"),
        vec![BODY.trim_end(), "second file"],
        "{}",
        run.dump()
    );
    assert_eq!(
        logged_requests(&run.lines_of("p0")),
        vec![
            "\"GET /hello.txt HTTP/1.1\" 200 -",
            "\"GET /other.txt HTTP/1.1\" 200 -"
        ],
        "{}",
        run.dump()
    );
    // Both recorded command lines ran again, under their recorded names.
    let ended = plg_line(&run, "p1 (curl");
    assert!(ended.contains("exited 0"), "{ended}");
    assert!(plg_line(&run, "p0 (").contains("http.server"));
}

#[test]
fn the_capture_of_a_curl_replay_with_the_server_played_diffs_equal_to_the_recording() {
    let dir = TempDir::new("rp-http-client-o");
    let (cap, _server, client) = record_http(&dir);
    let out = dir.join("again.traffic");
    let run = replay(&["-f", &cap, "-o", &out, "-", &client]).run();
    run.assert_code(0);
    let again = Capture::read(Path::new(&out));
    let s = again.summary();
    assert_eq!(s.connections, 2);
    for c in again.conns.values() {
        assert_eq!(c.open.outcome, Outcome::Established);
        assert_eq!(c.open.client, 1);
    }
    // Everything, the played server's Date headers included, is as recorded.
    let (code, stdout, stderr) = diff(&[&cap, &out]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
}

#[test]
fn a_played_curl_opens_its_second_connection_after_the_first_ended_as_recorded() {
    let dir = TempDir::new("rp-http-order");
    let (cap, server, _client) = record_http(&dir);
    let rec = Capture::read(Path::new(&cap));
    let ids: Vec<_> = rec.conns.keys().copied().collect();
    let first_end = rec.conns[&ids[0]].closes.iter().map(|c| c.time_ns).max();
    assert!(first_end.unwrap() <= rec.conns[&ids[1]].open.time_ns);

    let out = dir.join("again.traffic");
    let run = replay(&["-f", &cap, "-o", &out, &server, "-"]).run();
    run.assert_code(0);
    assert_eq!(
        logged_requests(&run.lines_of("p0")),
        vec![
            "\"GET /hello.txt HTTP/1.1\" 200 -",
            "\"GET /other.txt HTTP/1.1\" 200 -"
        ],
        "{}",
        run.dump()
    );
    let again = Capture::read(Path::new(&out));
    let conns: Vec<_> = again.conns.values().collect();
    assert_eq!(conns.len(), 2);
    let first_end = conns[0].closes.iter().map(|c| c.time_ns).max();
    assert!(
        first_end.is_some_and(|t| t <= conns[1].open.time_ns),
        "second connection opened at {} before the first ended at {first_end:?}",
        conns[1].open.time_ns
    );
}
