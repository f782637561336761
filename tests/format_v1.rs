//! A format-1 capture (written by plg before IPv6, committed as
//! `tests/fixtures/format1-web.traffic`: python's http.server on 10.0.0.2:8000, one curl
//! request from 10.0.0.3, a UDP datagram and the ICMP port unreachable it drew) is still read
//! by every command that reads captures. No root needed (replay of it: tests/replay_ipv6.rs).

use std::process::Command;

const PLG: &str = env!("CARGO_BIN_EXE_plg");
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/format1-web.traffic"
);

fn plg(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(PLG).args(args).output().expect("run plg");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_reader_takes_it_as_an_ipv4_session() {
    let mut conns = 0;
    let mut packets = 0;
    for rec in plg::format::CaptureReader::open(std::path::Path::new(FIXTURE)).unwrap() {
        match rec.unwrap() {
            plg::format::Record::Session(s) => {
                assert_eq!(s.format_version, 1);
                assert_eq!(s.subnet6, None);
            }
            plg::format::Record::Process(p) => assert_eq!(p.addr6, None),
            plg::format::Record::ConnOpen(c) => {
                conns += 1;
                assert_eq!(
                    c.client_addr.to_string(),
                    format!("10.0.0.3:{}", c.client_addr.port())
                );
                assert_eq!(c.server_addr.to_string(), "10.0.0.2:8000");
            }
            plg::format::Record::Packet(_) => packets += 1,
            _ => {}
        }
    }
    assert_eq!((conns, packets), (1, 2));
}

#[test]
fn inspect_check_and_views_read_it() {
    let (ok, out, err) = plg(&["inspect", "--check", FIXTURE]);
    assert!(ok, "{out}{err}");
    let (ok, out, _) = plg(&["inspect", FIXTURE]);
    assert!(ok);
    assert!(out.contains("(format 1)"), "{out}");
    assert!(!out.contains("subnet6"), "{out}");
    let (ok, out, _) = plg(&["inspect", "--json", FIXTURE]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["subnet6"], serde_json::Value::Null);
    assert_eq!(v["processes"][0]["addr6"], serde_json::Value::Null);
    let (ok, out, _) = plg(&["inspect", "--connections", "--json", FIXTURE]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["connections"][0]["server"]["addr"], "10.0.0.2");
    let (ok, out, _) = plg(&["inspect", "--conn", "0", FIXTURE]);
    assert!(ok);
    assert!(out.contains("hello from format 1"), "{out}");
}

#[test]
fn export_and_diff_read_it() {
    let dir = std::env::temp_dir().join(format!("plg-format1-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = |n: &str| dir.join(n).display().to_string();
    for (flag, out) in [
        ("--pcap", d("a.pcap")),
        ("--pcapng", d("a.pcapng")),
        ("--streams", d("streams")),
    ] {
        let (ok, o, e) = plg(&["export", flag, &out, FIXTURE]);
        assert!(ok, "export {flag}: {o}{e}");
    }
    let files: Vec<String> = std::fs::read_dir(dir.join("streams"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.iter().any(|f| f.starts_with("0000-p1_10.0.0.3.")));
    let (ok, o, e) = plg(&["diff", FIXTURE, FIXTURE]);
    assert!(ok, "diff of a capture with itself: {o}{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
