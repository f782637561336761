//! `plg diff` on recordings of real programs from Debian (socat, python3, curl), made with the
//! real `plg record`: two runs of one scenario are the same, a changed byte, an extra
//! connection, a changed close, HTTP `Date:` noise (ignored, learned), JUnit output, truncated
//! captures. The JSON report is parsed with serde_json (fields from docs/JSON.md `## plg diff`).
//! Never a timing assertion; nothing leaves the machine (plg's namespaces have no way out).
//! Needs root and /dev/net/tun: without them every test fails loudly.

mod common;

use common::{require_root, sh_quote, Plg, TempDir, PY};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const ECHO_SERVER: &str = "socat TCP-LISTEN:7000,reuseaddr,fork EXEC:cat";

/// `plg record -q -f CAP ARGS...`, which must succeed (and leave nothing behind).
fn record(cap: &str, args: &[&str]) {
    let mut v = vec!["-q", "-f", cap];
    v.extend_from_slice(args);
    let run = Plg::record(&v).run();
    run.assert_code(0);
    assert!(Path::new(cap).exists(), "no capture {cap}; {}", run.dump());
}

/// The socat echo scenario: the client sends DIR/in (and binds the source port in DIR/port
/// when that file exists), DIR/n times. The command line is the same in every recording made
/// in one DIR: what changes between them is the content of those files.
fn record_echo(dir: &TempDir, cap: &str) {
    let input = sh_quote(&dir.join("in"));
    let port = sh_quote(&dir.join("port"));
    let n = sh_quote(&dir.join("n"));
    let client = format!(
        "for i in $(seq $(cat {n} 2>/dev/null || echo 1)); do \
         if [ -f {port} ]; then sp=,sourceport=$(cat {port}); else sp=; fi; \
         socat - TCP:p0:7000$sp < {input} || exit 1; done"
    );
    record(cap, &["--ready", "p0:7000", ECHO_SERVER, &client]);
}

fn plg_diff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plg"))
        .arg("diff")
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run plg diff")
}

fn out(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `plg diff --json ARGS...`, which must exit with `code`; the parsed report.
fn diff_json(args: &[&str], code: i32) -> Value {
    let mut v = vec!["--json"];
    v.extend_from_slice(args);
    let o = plg_diff(&v);
    assert_eq!(o.status.code(), Some(code), "{}", out(&o));
    let j: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", out(&o)));
    assert_eq!(j["version"], 1, "{j:#}");
    assert_eq!(j["view"], "diff", "{j:#}");
    j
}

/// The `{same, different, missing, extra, ignored}` counts of connections.
fn conn_counts(j: &Value) -> [u64; 5] {
    let c = &j["summary"]["connections"];
    ["same", "different", "missing", "extra", "ignored"].map(|k| {
        c[k].as_u64()
            .unwrap_or_else(|| panic!("summary {k}: {j:#}"))
    })
}

fn conns(j: &Value) -> &Vec<Value> {
    j["connections"].as_array().expect("connections array")
}

fn direction<'a>(conn: &'a Value, name: &str) -> &'a Value {
    conn["directions"]
        .as_array()
        .expect("directions array")
        .iter()
        .find(|d| d["direction"] == name)
        .unwrap_or_else(|| panic!("no direction {name} in {conn:#}"))
}

fn client_port(side: &Value) -> u16 {
    let addr = side["client_addr"].as_str().expect("client_addr");
    addr.rsplit(':').next().unwrap().parse().expect("a port")
}

#[test]
fn two_recordings_of_a_socat_echo_are_the_same_whatever_the_client_ports() {
    require_root();
    let dir = TempDir::new("diffreal-same");
    std::fs::write(dir.path().join("in"), "a\nb\n").unwrap();
    let (a, b) = (dir.join("a.traffic"), dir.join("b.traffic"));
    // Pin other client ports in each run so that they differ for sure.
    std::fs::write(dir.path().join("port"), "41000").unwrap();
    record_echo(&dir, &a);
    std::fs::write(dir.path().join("port"), "42000").unwrap();
    record_echo(&dir, &b);

    let o = plg_diff(&[&a, &b]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("p1->p0:7000 #0  same"), "{}", out(&o));

    let j = diff_json(&[&a, &b], 0);
    assert_eq!(j["same"], true, "{j:#}");
    assert_eq!(j["truncated"], false, "{j:#}");
    assert_eq!(j["same_file"], false, "{j:#}");
    assert_eq!(conn_counts(&j), [1, 0, 0, 0, 0], "{j:#}");
    let c = &conns(&j)[0];
    assert_eq!(c["verdict"], "same", "{c:#}");
    assert_eq!(
        (c["client"].as_u64(), c["server"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(c["port"], 7000);
    assert_eq!(client_port(&c["a"]), 41000, "{c:#}");
    assert_eq!(client_port(&c["b"]), 42000, "{c:#}");
    for side in ["a", "b"] {
        assert_eq!(c[side]["bytes"]["client_to_server"], 4, "{c:#}");
        assert_eq!(c[side]["bytes"]["server_to_client"], 4, "{c:#}");
    }
    assert!(c["problems"].as_array().unwrap().is_empty(), "{c:#}");
}

#[test]
fn one_changed_byte_in_the_client_input_is_found_at_its_offset() {
    require_root();
    let dir = TempDir::new("diffreal-byte");
    let golden = "hello world\nline two\nline three\n";
    let changed = golden.replacen("two", "twX", 1);
    let offset = golden.find("two").unwrap() + 2;
    assert_eq!(golden.len(), changed.len());
    let (a, b) = (dir.join("a.traffic"), dir.join("b.traffic"));
    std::fs::write(dir.path().join("in"), golden).unwrap();
    record_echo(&dir, &a);
    std::fs::write(dir.path().join("in"), &changed).unwrap();
    record_echo(&dir, &b);

    let o = plg_diff(&[&a, &b]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(&format!("client->server at byte {offset}")),
        "{}",
        out(&o)
    );

    let j = diff_json(&[&a, &b], 1);
    assert_eq!(j["same"], false, "{j:#}");
    assert_eq!(conn_counts(&j), [0, 1, 0, 0, 0], "{j:#}");
    let c = &conns(&j)[0];
    assert_eq!(c["verdict"], "different", "{c:#}");
    // The echo server sends the changed byte back: both directions differ at the same offset.
    for name in ["client_to_server", "server_to_client"] {
        let d = direction(c, name);
        assert_eq!(d["same"], false, "{d:#}");
        assert_eq!(d["bytes_a"], golden.len(), "{d:#}");
        assert_eq!(d["bytes_b"], golden.len(), "{d:#}");
        let diffs = d["differences"].as_array().unwrap();
        assert_eq!(diffs.len(), 1, "{d:#}");
        let x = &diffs[0];
        assert_eq!(x["offset_a"], offset, "{x:#}");
        assert_eq!(x["offset_b"], offset, "{x:#}");
        assert_eq!(
            (x["length_a"].as_u64(), x["length_b"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(x["a"]["text"], "o", "{x:#}");
        assert_eq!(x["b"]["text"], "X", "{x:#}");
        assert_eq!(x["a"]["data"], "bw==", "{x:#}");
        assert_eq!(x["b"]["data"], "WA==", "{x:#}");
        assert_eq!(x["before"]["text"], &golden[..offset], "{x:#}");
    }
    // Closes are the same: the only problems are bytes.
    assert!(c["problems"].as_array().unwrap().is_empty(), "{c:#}");
}

#[test]
fn an_extra_connection_is_reported_as_extra_and_missing_the_other_way() {
    require_root();
    let dir = TempDir::new("diffreal-extra");
    std::fs::write(dir.path().join("in"), "a\nb\n").unwrap();
    let (one, two) = (dir.join("one.traffic"), dir.join("two.traffic"));
    std::fs::write(dir.path().join("n"), "1").unwrap();
    record_echo(&dir, &one);
    std::fs::write(dir.path().join("n"), "2").unwrap();
    record_echo(&dir, &two);

    let o = plg_diff(&[&one, &two]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("p1->p0:7000 #1  EXTRA"),
        "{}",
        out(&o)
    );

    let j = diff_json(&[&one, &two], 1);
    assert_eq!(conn_counts(&j), [1, 0, 0, 1, 0], "{j:#}");
    let cs = conns(&j);
    assert_eq!(cs.len(), 2, "{j:#}");
    let first = cs.iter().find(|c| c["ordinal"] == 0).expect("ordinal 0");
    assert_eq!(first["verdict"], "same", "{first:#}");
    let extra = cs.iter().find(|c| c["ordinal"] == 1).expect("ordinal 1");
    assert_eq!(extra["verdict"], "extra", "{extra:#}");
    assert_eq!(extra["label"], "p1->p0:7000 #1", "{extra:#}");
    assert!(extra["a"].is_null(), "{extra:#}");
    assert_eq!(extra["b"]["bytes"]["client_to_server"], 4, "{extra:#}");

    // The other way round, the same connection is missing.
    let j = diff_json(&[&two, &one], 1);
    assert_eq!(conn_counts(&j), [1, 0, 1, 0, 0], "{j:#}");
    let missing = conns(&j).iter().find(|c| c["ordinal"] == 1).unwrap();
    assert_eq!(missing["verdict"], "missing", "{missing:#}");
    assert!(missing["b"].is_null(), "{missing:#}");
}

/// A python client that sends a line, reads the echo, and closes: normally (FIN), or with
/// SO_LINGER 0 (RST).
const PY_CLIENT: &str = r#"
import socket, struct, sys
s = socket.create_connection(("p0", 7000))
s.sendall(b"hello\n")
got = b""
while len(got) < 6:
    chunk = s.recv(64)
    if not chunk:
        break
    got += chunk
print(got.decode().strip())
if sys.argv[1] == "rst":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
"#;

#[test]
fn a_client_closing_with_rst_instead_of_fin_is_a_different_close() {
    require_root();
    let dir = TempDir::new("diffreal-close");
    let script = dir.join("client.py");
    std::fs::write(&script, PY_CLIENT).unwrap();
    let (fin, rst) = (dir.join("fin.traffic"), dir.join("rst.traffic"));
    for (cap, how) in [(&fin, "fin"), (&rst, "rst")] {
        let client = format!("{PY} {} {how}", sh_quote(&script));
        record(cap, &["--ready", "p0:7000", ECHO_SERVER, &client]);
    }

    // The same recording twice is the same (the FIN run is deterministic).
    assert_eq!(plg_diff(&[&fin, &fin]).status.code(), Some(0));

    let o = plg_diff(&[&fin, &rst]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("close by the client: FIN, then RST"),
        "{}",
        out(&o)
    );

    let j = diff_json(&[&fin, &rst], 1);
    assert_eq!(conn_counts(&j), [0, 1, 0, 0, 0], "{j:#}");
    let c = &conns(&j)[0];
    assert_eq!(c["verdict"], "different", "{c:#}");
    assert_eq!(c["a"]["close"]["client"], "fin", "{c:#}");
    assert_eq!(c["b"]["close"]["client"], "rst", "{c:#}");
    let problems = c["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p["kind"] == "close"
            && p["side"] == "client"
            && p["a"] == "fin"
            && p["b"] == "rst"),
        "{c:#}"
    );
    // The bytes themselves are the same: only the close differs.
    for name in ["client_to_server", "server_to_client"] {
        assert_eq!(direction(c, name)["same"], true, "{c:#}");
    }
}

/// `python3 -m http.server` serving two files from DIR/www, fetched by two curls: two
/// connections whose answers carry `Date:`.
fn record_http(dir: &TempDir, cap: &str) {
    let www = dir.path().join("www");
    if !www.exists() {
        std::fs::create_dir(&www).unwrap();
        std::fs::write(www.join("a.txt"), "first file\n").unwrap();
        std::fs::write(www.join("b.txt"), "second file\n").unwrap();
    }
    let server = format!(
        "{PY} -m http.server 8000 --directory {}",
        sh_quote(&www.display().to_string())
    );
    let client = "curl -sS http://web:8000/a.txt && curl -sS http://web:8000/b.txt";
    record(
        cap,
        &[
            "--names",
            "web,client",
            "--ready",
            "web:8000",
            &server,
            client,
        ],
    );
}

/// Seconds since the epoch.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The `<testcase>` elements of a JUnit file: (classname, name, has a `<failure>`).
fn junit_cases(xml: &str) -> Vec<(String, String, bool)> {
    let attr = |tag: &str, name: &str| -> String {
        let key = format!(" {name}=\"");
        let start = tag.find(&key).map(|i| i + key.len()).unwrap_or(tag.len());
        tag[start..].split('"').next().unwrap_or("").to_string()
    };
    let mut cases = Vec::new();
    for chunk in xml.split("<testcase").skip(1) {
        let tag_end = chunk.find('>').expect("testcase tag closed");
        let tag = &chunk[..tag_end];
        let body = if tag.ends_with('/') {
            ""
        } else {
            let end = chunk.find("</testcase>").expect("</testcase>");
            &chunk[tag_end..end]
        };
        cases.push((
            attr(tag, "classname"),
            attr(tag, "name"),
            body.contains("<failure"),
        ));
    }
    cases
}

fn connection_cases(xml: &str) -> Vec<(String, bool)> {
    junit_cases(xml)
        .into_iter()
        .filter(|(class, _, _)| class.ends_with("connection"))
        .map(|(_, name, failed)| (name, failed))
        .collect()
}

#[test]
fn http_recordings_differ_only_in_date_which_ignore_hides_and_junit_shows() {
    require_root();
    let dir = TempDir::new("diffreal-http");
    let (h1, h2) = (dir.join("h1.traffic"), dir.join("h2.traffic"));
    record_http(&dir, &h1);
    // A second apart, so that the Date: headers differ (HTTP dates have one-second steps).
    std::thread::sleep(Duration::from_millis(1100));
    record_http(&dir, &h2);

    let o = plg_diff(&[&h1, &h2]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let j = diff_json(&[&h1, &h2], 1);
    assert_eq!(conn_counts(&j), [0, 2, 0, 0, 0], "{j:#}");
    for c in conns(&j) {
        assert!(direction(c, "client_to_server")["same"] == true, "{c:#}");
        let d = direction(c, "server_to_client");
        assert_eq!(d["same"], false, "{c:#}");
        // Every difference lies inside the Date: header.
        for x in d["differences"].as_array().unwrap() {
            let before = x["before"]["text"].as_str().unwrap_or("");
            let line = before.rsplit("\r\n").next().unwrap();
            assert!(line.starts_with("Date: "), "difference outside Date: {x:#}");
        }
    }

    let junit = dir.join("drift.xml");
    let o = plg_diff(&["--junit", &junit, &h1, &h2]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let xml = std::fs::read_to_string(&junit).expect("JUnit file written");
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(xml.contains("<testsuite"), "{xml}");
    let cases = connection_cases(&xml);
    assert_eq!(
        cases,
        vec![
            ("client-&gt;web:8000 #0".to_string(), true),
            ("client-&gt;web:8000 #1".to_string(), true)
        ],
        "{xml}"
    );

    let date = r"Date: [^\r]*";
    // The earlier report is replaced: --force (an existing file is never replaced without it).
    let o = plg_diff(&["--force", "--ignore", date, "--junit", &junit, &h1, &h2]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let j = diff_json(&["--ignore", date, &h1, &h2], 0);
    assert_eq!(j["same"], true, "{j:#}");
    assert_eq!(conn_counts(&j), [2, 0, 0, 0, 0], "{j:#}");
    assert_eq!(j["ignore"], serde_json::json!([date]), "{j:#}");
    for c in conns(&j) {
        let d = direction(c, "server_to_client");
        assert_eq!(d["same"], true, "{c:#}");
        assert_eq!(
            (d["ignored_a"].as_u64(), d["ignored_b"].as_u64()),
            (Some(1), Some(1))
        );
    }
    let xml = std::fs::read_to_string(&junit).expect("JUnit file written");
    assert!(!xml.contains("<failure"), "{xml}");
    assert_eq!(
        connection_cases(&xml),
        vec![
            ("client-&gt;web:8000 #0".to_string(), false),
            ("client-&gt;web:8000 #1".to_string(), false)
        ],
        "{xml}"
    );
}

/// Learns rules from h1 and h2 (written to a file), checks they make h1 and h2 the same, and
/// returns the rules file.
fn learn_two(dir: &TempDir, h1: &str, h2: &str) -> String {
    let rules = dir.join("golden.rules");
    let o = plg_diff(&["--learn", "-o", &rules, h1, h2]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let text = std::fs::read_to_string(&rules).expect("rules written");
    assert!(
        text.lines().any(|l| l.starts_with("ignore ")),
        "no ignore rule learned:\n{text}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("ignore-conn")),
        "a whole connection ignored where a Date field would do:\n{text}"
    );
    let j = diff_json(&["--rules", &rules, h1, h2], 0);
    assert_eq!(conn_counts(&j), [2, 0, 0, 0, 0], "{j:#}");
    rules
}

#[test]
fn rules_learned_from_two_http_recordings_make_a_third_the_same() {
    require_root();
    let dir = TempDir::new("diffreal-learn");
    // Start early in a minute so that the three recordings share it: a rule learned from two
    // runs a second apart may hold the hour and minute (see the ignored test below).
    let s = now_secs() % 60;
    if s >= 40 {
        std::thread::sleep(Duration::from_secs(61 - s));
    }
    let (h1, h2, h3) = (
        dir.join("h1.traffic"),
        dir.join("h2.traffic"),
        dir.join("h3.traffic"),
    );
    record_http(&dir, &h1);
    std::thread::sleep(Duration::from_millis(1100));
    record_http(&dir, &h2);
    std::thread::sleep(Duration::from_millis(1100));
    record_http(&dir, &h3);
    // Without rules the third run differs from the first.
    assert_eq!(plg_diff(&[&h1, &h3]).status.code(), Some(1));

    let rules = learn_two(&dir, &h1, &h2);
    let o = plg_diff(&["--rules", &rules, &h1, &h3]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "rules:\n{}\n{}",
        std::fs::read_to_string(&rules).unwrap(),
        out(&o)
    );
}

#[test]
fn rules_learned_from_two_http_recordings_hold_in_another_minute() {
    require_root();
    let dir = TempDir::new("diffreal-learn-minute");
    let (h1, h2, h3) = (
        dir.join("h1.traffic"),
        dir.join("h2.traffic"),
        dir.join("h3.traffic"),
    );
    record_http(&dir, &h1);
    // The first recording's Date: is in this minute or an earlier one.
    let minute = now_secs() / 60;
    std::thread::sleep(Duration::from_millis(1100));
    record_http(&dir, &h2);
    let rules = learn_two(&dir, &h1, &h2);
    // The golden capture was recorded earlier than the new one: here, in a later minute.
    while now_secs() / 60 <= minute {
        std::thread::sleep(Duration::from_millis(500));
    }
    record_http(&dir, &h3);
    let o = plg_diff(&["--rules", &rules, &h1, &h3]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "rules:\n{}\n{}",
        std::fs::read_to_string(&rules).unwrap(),
        out(&o)
    );
}

#[test]
fn a_truncated_recording_compared_with_itself_is_never_the_same() {
    require_root();
    let dir = TempDir::new("diffreal-trunc");
    std::fs::write(dir.path().join("in"), "some lines\nof text\nto echo\n").unwrap();
    let full = dir.join("full.traffic");
    record_echo(&dir, &full);
    let size = std::fs::metadata(&full).unwrap().len();
    // The whole capture is the same as itself.
    assert_eq!(plg_diff(&[&full, &full]).status.code(), Some(0));

    for cut in [size / 3, size / 2, size * 2 / 3, size - 1] {
        let cap = dir.join(&format!("cut{cut}.traffic"));
        std::fs::copy(&full, &cap).unwrap();
        let st = Command::new("truncate")
            .args(["-s", &cut.to_string(), &cap])
            .status()
            .expect("run truncate");
        assert!(st.success());
        assert_eq!(std::fs::metadata(&cap).unwrap().len(), cut);

        let o = plg_diff(&[&cap, &cap]);
        let all = out(&o);
        assert_ne!(o.status.code(), Some(0), "cut at {cut} of {size}: {all}");
        assert!(
            all.to_lowercase().contains("truncated"),
            "cut at {cut} of {size}: does not say truncated: {all}"
        );
        if o.status.code() == Some(1) {
            let j = diff_json(&[&cap, &cap], 1);
            assert_eq!(j["same"], false, "{j:#}");
            assert_eq!(j["truncated"], true, "{j:#}");
            assert_eq!(j["same_file"], true, "{j:#}");
            assert_eq!(j["a"]["complete"], false, "{j:#}");
            // `{"offset", "message"}`, as in inspect (docs/JSON.md).
            assert!(j["a"]["error"]["message"].is_string(), "{j:#}");
            assert!(j["a"]["error"]["offset"].is_u64(), "{j:#}");
        }
    }
}
