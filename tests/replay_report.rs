//! `plg replay --report FILE`: the replay's verdict as JSON (docs/JSON.md, `view: "replay"`),
//! what a CI job reads. Needs root and /dev/net/tun.

mod common;
#[path = "common/replay.rs"]
mod replay;

use common::TempDir;
use replay::{record_ok, replay};

/// A socat echo server and a client sending two lines, recorded; then replayed with the
/// client live, once sending what it sent, once a changed byte.
#[test]
fn the_report_says_per_connection_whether_the_live_side_sent_the_recorded_bytes() {
    common::require_root();
    let dir = TempDir::new("rp-report");
    let cap = dir.join("echo.traffic");
    let server = "socat TCP-LISTEN:7000,reuseaddr EXEC:cat";
    let client = |text: &str| format!("printf '{text}' | socat -t 2 - TCP:p0:7000");
    record_ok(&[
        "-f",
        &cap,
        "--ready",
        "p0:7000",
        server,
        &client("one\\ntwo\\n"),
    ]);

    let same = dir.join("same.json");
    replay(&["-f", &cap, "--report", &same, "-", &client("one\\ntwo\\n")])
        .run()
        .assert_code(0);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&same).unwrap()).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["view"], "replay");
    assert_eq!(doc["clean"], true, "{doc:#}");
    let conns = doc["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1, "{doc:#}");
    let c = &conns[0];
    assert_eq!(c["status"], "same", "{doc:#}");
    assert_eq!(c["client"], "p1");
    assert_eq!(c["server"], "p0");
    assert_eq!(c["server_port"], 7000);
    assert_eq!(c["live_bytes"]["client_to_server"], 8);
    assert_eq!(
        c["live_bytes"]["server_to_client"],
        serde_json::Value::Null,
        "server played"
    );
    assert_eq!(c["recorded_bytes"]["client_to_server"], 8);
    let procs = doc["processes"].as_array().unwrap();
    assert_eq!(procs[0]["live"], false);
    assert_eq!(procs[1]["live"], true);
    assert_eq!(procs[1]["exit"]["code"], 0, "{doc:#}");

    let changed = dir.join("changed.json");
    replay(&[
        "-f",
        &cap,
        "--strict",
        "--report",
        &changed,
        "-",
        &client("one\\nTwo\\n"),
    ])
    .run()
    .assert_code(1);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&changed).unwrap()).unwrap();
    assert_eq!(doc["clean"], false);
    assert_eq!(doc["exit_code"], 1);
    let c = &doc["connections"][0];
    assert_eq!(c["status"], "diverged", "{doc:#}");
    assert_eq!(c["diverged_at"]["client_to_server"], 4, "{doc:#}");
}

/// `--report -`: the verdict goes to standard output, after whatever the processes printed
/// there, as one JSON document a CI job can cut off and parse; no file named `-` appears.
#[test]
fn report_dash_is_standard_output() {
    common::require_root();
    let dir = TempDir::new("rp-report-dash");
    let cap = dir.join("echo.traffic");
    let server = "socat TCP-LISTEN:7000,reuseaddr EXEC:cat";
    let client = "printf 'ping\\n' | socat -t 2 - TCP:p0:7000 >/dev/null";
    record_ok(&["-f", &cap, "--ready", "p0:7000", server, client]);
    let run = replay(&["-f", &cap, "-q", "--report", "-", "-", client]).run();
    run.assert_code(0);
    let at = if run.stdout.starts_with('{') {
        0
    } else {
        run.stdout
            .find("\n{\n")
            .unwrap_or_else(|| panic!("{}", run.dump()))
            + 1
    };
    let doc: serde_json::Value =
        serde_json::from_str(&run.stdout[at..]).unwrap_or_else(|e| panic!("{e}: {}", run.dump()));
    assert_eq!(doc["view"], "replay");
    assert_eq!(doc["clean"], true, "{doc:#}");
    assert_eq!(doc["connections"][0]["status"], "same", "{doc:#}");
    assert!(!std::path::Path::new("-").exists());
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

/// A client recorded talking to the host through `--allow-external` (the gateway address) is
/// replayed with that outside server played from the capture: the server is gone by then.
#[test]
fn an_outside_server_reached_through_the_gateway_is_played_in_replay() {
    common::require_root();
    let dir = TempDir::new("rp-external");
    let cap = dir.join("ext.traffic");
    // Only on the host's loopback: nothing leaves the machine. A port the kernel picks (no
    // clash with another run) and a listener ready before the client starts.
    let outside = std::net::TcpListener::bind("127.0.0.1:0").expect("listen on the loopback");
    let port = outside.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::Write;
        // One connection: the recorded one.
        if let Ok((mut s, _)) = outside.accept() {
            let _ = s.write_all(b"outside-answer\n");
        }
    });
    let client = format!("printf 'question\\n' | socat -t 2 - TCP:gateway:{port}");
    let rec = record_ok(&["-f", &cap, "--allow-external", &client]);
    drop(server); // never joined: a run that failed must not hang here
    assert!(rec.stdout.contains("outside-answer"), "{}", rec.dump());

    let run = replay(&["--strict", "-f", &cap, &client]).run();
    run.assert_code(0);
    assert!(run.stdout.contains("outside-answer"), "{}", run.dump());
}
