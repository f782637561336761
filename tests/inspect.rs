//! `plg inspect` on generated captures: each view, its JSON, `--check`, and bad input.

mod export_support;

use export_support::*;
use serde_json::Value;
use std::fs;

#[test]
fn summary_names_everything() {
    let d = scratch("inspect-summary");
    let f = write_fixture(&d, true);
    let o = plg(&["inspect", f.path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = stdout(&o);
    for want in [
        "complete",
        "plg 0.1.0",
        "2023-11-14 22:13:20.000 UTC",
        "10.0.0.0/24",
        "python3 -m http.server 8080",
        "connections 6 (1 refused, 0 unreachable, 1 reset, 1 unfinished)",
        "udp 1",
        "icmp 1",
    ] {
        assert!(s.contains(want), "missing {want:?} in:\n{s}");
    }
    assert!(
        !s.contains('\x1b'),
        "no colour when NO_COLOR / not a terminal"
    );

    let o = plg(&["inspect", "--json", f.path.to_str().unwrap()]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["view"], "summary");
    assert_eq!(v["complete"], true);
    assert_eq!(v["connections"]["total"], 6);
    assert_eq!(v["processes"][2]["name"], "cache");
    assert_eq!(v["packets"]["by_protocol"]["udp"], 1);
    let c2s: u64 = f.conns.iter().map(|c| c.c2s.len() as u64).sum();
    assert_eq!(v["bytes"]["client_to_server"], c2s);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn connections_table_and_json() {
    let d = scratch("inspect-conns");
    let f = write_fixture(&d, true);
    let o = plg(&["inspect", "--connections", f.path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    let s = stdout(&o);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines.len(), 7, "{s}");
    assert!(lines[1].contains("client 10.0.0.2:40000") && lines[1].contains("web 10.0.0.1:8080"));
    assert!(lines[1].ends_with("fin"));
    assert!(
        lines[3].ends_with("refused")
            && lines[4].ends_with("rst")
            && lines[6].ends_with("unfinished")
    );

    let o = plg(&[
        "inspect",
        "--connections",
        "--json",
        f.path.to_str().unwrap(),
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let conns = v["connections"].as_array().unwrap();
    let ids: Vec<u64> = conns.iter().map(|c| c["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(conns[3]["end"], "rst");
    assert_eq!(conns[3]["bytes"]["client_to_server"], 300_000);
    assert_eq!(conns[4]["client_close"]["kind"], "fin");
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn one_conversation_text_hex_raw_json() {
    let d = scratch("inspect-conv");
    let f = write_fixture(&d, true);
    let p = f.path.to_str().unwrap();
    let o = plg(&["inspect", p, "--conn", "0"]);
    let s = stdout(&o);
    assert!(
        s.contains("==> client to web") && s.contains("<== web to client"),
        "{s}"
    );
    assert!(
        s.contains("GET /index.html HTTP/1.1\nHost: web:8080"),
        "{s}"
    );
    assert!(s.contains("--- fin:"));

    let o = plg(&["inspect", p, "--conn", "3"]);
    assert!(stdout(&o).contains("00000000  "), "binary shown as hex");
    let o = plg(&["inspect", p, "--conn", "1", "--hex"]);
    assert!(stdout(&o).contains("|*1..$4..PING..|"), "{}", stdout(&o));

    for (dir, want) in [("client", &f.conns[2].c2s), ("server", &f.conns[2].s2c)] {
        let o = plg(&["inspect", p, "--conn", "3", "--raw", "--direction", dir]);
        assert_eq!(o.status.code(), Some(0));
        assert!(&o.stdout == want, "raw {dir}");
    }

    let o = plg(&["inspect", p, "--conn", "1", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["view"], "conversation");
    assert_eq!(v["events"][0]["data"], "KjENCiQ0DQpQSU5HDQo=");
    assert_eq!(v["events"].as_array().unwrap().len(), 8);
    assert_eq!(v["stats"]["end"], "fin");

    let o = plg(&["inspect", p, "--conn", "99"]);
    assert_eq!(o.status.code(), Some(1));
    let o = plg(&["inspect", p, "--conn", "1", "--raw"]);
    assert_eq!(o.status.code(), Some(2), "--raw needs --direction");
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn check_tells_sound_from_truncated_and_inconsistent() {
    let d = scratch("inspect-check");
    let f = write_fixture(&d, true);
    let o = plg(&["inspect", "--check", f.path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));

    let cut = write_fixture(&d, false);
    let o = plg(&["inspect", "--check", cut.path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("no closing summary"), "{}", stdout(&o));
    let o = plg(&["inspect", cut.path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("truncated"));

    // Cut inside a block: the summary view shows what was read, then the error (exit 2);
    // --check says what is wrong (exit 1).
    let bytes = fs::read(&f.path).unwrap();
    let broken = d.join("broken.traffic");
    fs::write(&broken, &bytes[..bytes.len() - 10]).unwrap();
    let o = plg(&["inspect", broken.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("at byte"));
    let o = plg(&["inspect", "--check", "--json", broken.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["problems"][0]["offset"].as_u64().unwrap() > 0);

    let junk = d.join("junk");
    fs::write(&junk, b"not a capture at all").unwrap();
    let o = plg(&["inspect", "--check", junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o).lines().count(), 1);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn closed_stdout_is_a_clean_exit() {
    let d = scratch("inspect-pipe");
    let f = write_fixture(&d, true);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_plg"))
        .args(["inspect", "--conn", "3", "--hex", f.path.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.stderr.is_empty());
    fs::remove_dir_all(&d).unwrap();
}
