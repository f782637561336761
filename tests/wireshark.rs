//! The Wireshark dissector (`wireshark/plg.lua`, shipped inside the binary as
//! `plg wireshark --print`): tshark on real captures shows plg's records by name, its display
//! filters work, and Data bytes reach the protocol dissector of the server's port.
//!
//! tshark is required (CI installs it): a missing tshark fails these tests, never skips them.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

/// Writes the dissector out of the binary, as a user would, and returns its path.
fn dissector(dir: &TempDir) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_plg"))
        .args(["wireshark", "--print"])
        .output()
        .expect("run plg wireshark --print");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join("plg.lua");
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

/// tshark with the dissector on `capture`; returns stdout, failing on any error or Lua warning.
fn tshark(lua: &str, capture: &str, args: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-X")
        .arg(format!("lua_script:{lua}"))
        .args(["-r", capture])
        .args(args)
        .output()
        .expect("tshark must be installed (apt-get install tshark) for these tests");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "tshark {args:?}: {stderr}\n{stdout}");
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("Running as user \"root\""))
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(
        complaints.is_empty(),
        "tshark {args:?} complained: {stderr}"
    );
    assert!(!stdout.contains("Lua Error"), "{stdout}");
    stdout
}

fn fields(lua: &str, capture: &str, filter: &str, names: &[&str]) -> Vec<Vec<String>> {
    let mut args = vec!["-Y", filter, "-T", "fields", "-E", "separator=|"];
    for n in names {
        args.push("-e");
        args.push(n);
    }
    tshark(lua, capture, &args)
        .lines()
        .map(|l| l.split('|').map(String::from).collect())
        .collect()
}

#[test]
fn tshark_names_every_record_of_a_real_http_capture() {
    let dir = TempDir::new("ws-http");
    let cap = dir.join("web.traffic");
    let run = Plg::record(&[
        "-q",
        "-f",
        &cap,
        "--names",
        "web,client",
        "--ready",
        "web:80",
        &format!("{PY} -m http.server 80"),
        "curl -s -o /dev/null http://web/",
    ])
    .run();
    run.assert_code(0);
    let lua = dissector(&dir);

    // The packet list: protocol plg and a line a person reads.
    let list = tshark(&lua, &cap, &[]);
    assert!(
        list.contains("session: plg record, subnet 10.0.0.0/24"),
        "{list}"
    );
    assert!(list.contains("process 0 web 10.0.0.2"), "{list}");
    assert!(list.contains("process 1 client 10.0.0.3: curl"), "{list}");
    assert!(list.contains("conn 0 client:"), "{list}");
    assert!(list.contains("-> web:80 open"), "{list}");
    assert!(list.contains("conn 0 client -> web "), "{list}");
    assert!(list.contains("client exited 0"), "{list}");
    assert!(
        list.contains("summary: 2 processes, 1 connection,"),
        "{list}"
    );
    assert!(!list.contains("Custom Block"), "{list}");

    // Data bytes went to HTTP (port 80): the request and the response, decoded.
    let http = fields(
        &lua,
        &cap,
        "http",
        &[
            "plg.conn",
            "plg.dir",
            "http.request.method",
            "http.response.code",
        ],
    );
    assert!(
        http.iter().any(|r| r == &["0", "c2s", "GET", ""]),
        "{http:?}"
    );
    assert!(
        http.iter()
            .any(|r| r[0] == "0" && r[1] == "s2c" && r[3] == "200"),
        "{http:?}"
    );

    // Filters on the fields of FORMAT.md, by name.
    let c2s = fields(
        &lua,
        &cap,
        "plg.conn == 0 && plg.dir == \"c2s\" && plg.kind == 5",
        &["plg.len", "plg.client.name", "plg.server.name"],
    );
    assert!(!c2s.is_empty());
    for row in &c2s {
        assert_eq!(row[1..], ["client", "web"], "{c2s:?}");
    }
    let open = fields(
        &lua,
        &cap,
        "plg.kind == 4",
        &[
            "plg.conn",
            "plg.client",
            "plg.server",
            "plg.client.addr",
            "plg.server.addr",
            "plg.server.port",
            "plg.outcome",
            "plg.time",
        ],
    );
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(
        open[0][..7],
        ["0", "1", "0", "10.0.0.3", "10.0.0.2", "80", "0"],
        "{open:?}"
    );
    assert!(
        open[0][7].contains("UTC") || open[0][7].contains(':'),
        "{open:?}"
    );
    let session = fields(
        &lua,
        &cap,
        "plg.kind == 1",
        &[
            "plg.session.version",
            "plg.session.mode",
            "plg.session.prefix_len",
            "plg.session.subnet",
            "plg.session.plg_version",
        ],
    );
    assert_eq!(
        session,
        [["2", "0", "24", "10.0.0.0", env!("CARGO_PKG_VERSION")]],
        "{session:?}"
    );
    let procs = fields(
        &lua,
        &cap,
        "plg.kind == 2",
        &[
            "plg.process",
            "plg.process.name",
            "plg.process.addr",
            "plg.process.live",
        ],
    );
    assert_eq!(procs.len(), 2, "{procs:?}");
    assert_eq!(procs[0], ["0", "web", "10.0.0.2", "1"], "{procs:?}");
    let exits = fields(
        &lua,
        &cap,
        "plg.kind == 3 && plg.process.name == \"client\"",
        &["plg.exit.how", "plg.exit.code"],
    );
    assert_eq!(exits, [["0", "0"]], "{exits:?}");
    let closes = fields(&lua, &cap, "plg.kind == 6", &["plg.conn", "plg.close.how"]);
    assert_eq!(closes.len(), 2, "{closes:?}");
    let summary = fields(
        &lua,
        &cap,
        "plg.kind == 7",
        &["plg.summary.processes", "plg.summary.connections"],
    );
    assert_eq!(summary, [["2", "1"]], "{summary:?}");

    // The payload lengths add up to what the Summary says was sent.
    let sum = |dir: &str| -> u64 {
        fields(
            &lua,
            &cap,
            &format!("plg.dir == \"{dir}\" && plg.kind == 5"),
            &["plg.len"],
        )
        .iter()
        .map(|r| r[0].parse::<u64>().unwrap())
        .sum()
    };
    let totals = fields(
        &lua,
        &cap,
        "plg.kind == 7",
        &["plg.summary.bytes_c2s", "plg.summary.bytes_s2c"],
    );
    assert_eq!(totals[0], [sum("c2s").to_string(), sum("s2c").to_string()]);

    // The detail pane names the fields.
    let detail = tshark(&lua, &cap, &["-V", "-Y", "plg.kind == 4"]);
    for label in [
        "Connection: 0",
        "Client process: 1",
        "Server port: 80",
        "Outcome: established (0)",
        "Time since session start",
    ] {
        assert!(detail.contains(label), "no {label:?} in {detail}");
    }
}

#[test]
fn redis_bytes_are_decoded_as_resp() {
    let dir = TempDir::new("ws-redis");
    let cap = dir.join("redis.traffic");
    let run = Plg::record(&[
        "-q",
        "-f",
        &cap,
        "--names",
        "db,cli",
        "--ready",
        "db:6379",
        "redis-server --port 6379 --protected-mode no --save '' --appendonly no",
        "redis-cli -h db set k v",
    ])
    .run();
    run.assert_code(0);
    let lua = dissector(&dir);
    let resp = fields(&lua, &cap, "resp", &["plg.dir"]);
    assert!(resp.iter().any(|r| r[0] == "c2s"), "{resp:?}");
    assert!(resp.iter().any(|r| r[0] == "s2c"), "{resp:?}");
    let list = tshark(&lua, &cap, &["-Y", "resp"]);
    assert!(list.contains("plg/RESP"), "{list}");
}

#[test]
fn install_writes_the_dissector_where_wireshark_looks() {
    let dir = TempDir::new("ws-install");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_plg"))
        .args(["wireshark", "--print-path"])
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(out.status.success());
    let want = home.join(".local/lib/wireshark/plugins/plg.lua");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        want.to_str().unwrap()
    );
    assert!(!want.exists(), "--print-path wrote something");

    let out = Command::new(env!("CARGO_BIN_EXE_plg"))
        .args(["wireshark", "--install"])
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        want.to_str().unwrap()
    );
    let installed = std::fs::read_to_string(&want).unwrap();
    let printed = Command::new(env!("CARGO_BIN_EXE_plg"))
        .args(["wireshark", "--print"])
        .output()
        .unwrap();
    assert_eq!(installed.as_bytes(), printed.stdout);

    // tshark run with that HOME loads it with no -X option.
    let folders = Command::new("tshark")
        .args(["-G", "plugins"])
        .env("HOME", &home)
        .output()
        .expect("tshark must be installed");
    let plugins = String::from_utf8_lossy(&folders.stdout);
    assert!(plugins.contains(want.to_str().unwrap()), "{plugins}");
    assert!(Path::new(&want).is_file());

    // Installed, it names the records of a capture by itself; given again with -X (a user
    // trying a newer copy), it loads once, without an error.
    let cap = dir.path().join("tiny.traffic");
    let session = plg::format::Session {
        format_version: plg::format::FORMAT_VERSION,
        mode: plg::format::Mode::Record,
        subnet: std::net::Ipv4Addr::new(10, 0, 0, 0),
        prefix_len: 24,
        subnet6: None,
        start_ns: 1_700_000_000_000_000_000,
        plg_version: "0.1.0".into(),
    };
    let w = plg::format::CaptureWriter::new(std::fs::File::create(&cap).unwrap(), &session, &[]);
    w.unwrap().finish(&Default::default()).unwrap();
    for extra in [
        vec![],
        vec!["-X".to_string(), format!("lua_script:{}", want.display())],
    ] {
        let out = Command::new("tshark")
            .args(&extra)
            .arg("-r")
            .arg(&cap)
            .env("HOME", &home)
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{extra:?}: {stderr}");
        assert!(
            stdout.contains("session: plg record"),
            "{extra:?}: {stdout}"
        );
        assert!(
            !stderr.contains("Lua") && !stdout.contains("Lua Error"),
            "{extra:?}: {stderr}"
        );
    }
}
