//! `plg diff` as CI meets it: the real binary on captures written with the format writer.
//! Exit codes like diff(1): 0 same, 1 different, 2 error.

mod diff_support;

use diff_support::*;
use plg::format::record::{CloseKind, Direction, Outcome};

const SID: &str = "9f8e7d6c5b4a";

#[test]
fn two_runs_of_a_deterministic_scenario_are_the_same() {
    let d = scratch("diff-same");
    let (a, b) = (d.join("a.traffic"), d.join("b.traffic"));
    // Other ephemeral ports, other read sizes: neither is a difference.
    http_scenario(&a, D1, SID, 40000, 1 << 16);
    http_scenario(&b, D1, SID, 51000, 7);
    let o = diff(&[s(&a), s(&b)]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("conn client->web:8080 #0  same"), "{out}");
    assert!(
        out.contains("result: same: 4 of 4 connections the same"),
        "{out}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn one_changed_byte_is_found_at_its_offset() {
    let d = scratch("diff-byte");
    let (a, b) = (d.join("a.traffic"), d.join("b.traffic"));
    let build = |p: &std::path::Path, flip: usize| {
        let mut c = Cap::new(p, &["client", "db"]);
        // Another connection interleaved, so blocks are not in lockstep.
        let x = c.open(0, 1, 5432, 40000);
        let y = c.open(0, 1, 5432, 40001);
        c.send(x, Direction::ClientToServer, &binary_query(1), 64);
        c.send(y, Direction::ClientToServer, &binary_query(2), 100);
        c.send(y, Direction::ServerToClient, &binary_answer(2, 0), 50);
        c.send(x, Direction::ServerToClient, &binary_answer(1, flip), 64);
        c.fin(x);
        c.fin(y);
        c.finish();
    };
    build(&a, 0);
    build(&b, 150);
    let o = diff(&[s(&a), s(&b)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("conn client->db:5432 #0  DIFFERENT"), "{out}");
    assert!(out.contains("conn client->db:5432 #1  same"), "{out}");
    assert!(
        out.contains("server->client at byte 150: 1 byte differs"),
        "{out}"
    );
    // Binary: a side-by-side hex dump with the changed row marked.
    assert!(out.contains(" ! "), "{out}");

    let j = json(&diff(&["--json", s(&a), s(&b)]));
    assert_eq!(j["version"], 1);
    assert_eq!(j["same"], false);
    let conn = &j["connections"][0];
    assert_eq!(conn["verdict"], "different");
    let dir = &conn["directions"][1];
    assert_eq!(dir["direction"], "server_to_client");
    let first = &dir["differences"][0];
    assert_eq!(first["offset_a"], 150);
    assert_eq!(first["offset_b"], 150);
    assert_eq!(first["length_a"], 1);
    let byte = binary_answer(1, 0)[150];
    assert_eq!(first["a"]["text"], String::from(byte as char));
    assert_eq!(j["connections"][1]["verdict"], "same");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn removed_and_added_connections_are_reported() {
    let d = scratch("diff-conns");
    let (a, b) = (d.join("a.traffic"), d.join("b.traffic"));
    let build = |p: &std::path::Path, ports: &[u16]| {
        let mut c = Cap::new(p, &["client", "web", "cache"]);
        for &port in ports {
            let server = if port == 6379 { 2 } else { 1 };
            let id = c.open(0, server, port, 40000 + port);
            c.c2s(id, b"PING\r\n");
            c.s2c(id, b"PONG\r\n");
            c.fin(id);
        }
        c.finish();
    };
    build(&a, &[8080, 8080, 6379]);
    build(&b, &[8080, 8080, 8080, 9000]);
    let o = diff(&[s(&a), s(&b)]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("conn client->cache:6379 #0  MISSING from"),
        "{out}"
    );
    assert!(out.contains("conn client->web:8080 #2  EXTRA in"), "{out}");
    assert!(out.contains("conn client->web:9000 #0  EXTRA in"), "{out}");
    let j = json(&diff(&["--json", s(&a), s(&b)]));
    let sum = &j["summary"]["connections"];
    assert_eq!(
        (&sum["same"], &sum["missing"], &sum["extra"]),
        (&2.into(), &1.into(), &2.into())
    );
    // Leaving the extra ones out does not hide the missing one.
    let o = diff(&[
        "--ignore-port",
        "9000",
        "--ignore-conn",
        "client->web:8080#2",
        s(&a),
        s(&b),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let o = diff(&[
        "--ignore-port",
        "9000",
        "--ignore-port",
        "6379",
        "--ignore-conn",
        "*->1:8080#2",
        s(&a),
        s(&b),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("(ignore-port 9000)"));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn fin_versus_rst_is_a_difference() {
    let d = scratch("diff-close");
    let (a, b) = (d.join("a.traffic"), d.join("b.traffic"));
    let build = |p: &std::path::Path, kind: CloseKind| {
        let mut c = Cap::new(p, &["client", "web"]);
        let id = c.open(0, 1, 80, 40000);
        c.c2s(id, REQUEST);
        c.s2c(id, &http_response(D1[0], SID, "x"));
        c.close(id, Direction::ServerToClient, kind);
        c.close(id, Direction::ClientToServer, CloseKind::Fin);
        c.finish();
    };
    build(&a, CloseKind::Fin);
    build(&b, CloseKind::Rst);
    let o = diff(&[s(&a), s(&b)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("close by the server: FIN, then RST"),
        "{}",
        stdout(&o)
    );
    let j = json(&diff(&["--json", s(&a), s(&b)]));
    let p = &j["connections"][0]["problems"][0];
    assert_eq!(p["kind"], "close");
    assert_eq!(
        (&p["side"], &p["a"], &p["b"]),
        (&"server".into(), &"fin".into(), &"rst".into())
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn refused_versus_established_is_a_difference() {
    let d = scratch("diff-refused");
    let (a, b) = (d.join("a.traffic"), d.join("b.traffic"));
    for (p, o) in [(&a, Outcome::Established), (&b, Outcome::Refused)] {
        let mut c = Cap::new(p, &["client", "web"]);
        c.open_with(0, 1, 80, 40000, o);
        c.finish();
    }
    let o = diff(&[s(&a), s(&b)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("outcome: established, then refused"),
        "{}",
        stdout(&o)
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn date_headers_are_equal_with_ignore() {
    let d = scratch("diff-ignore");
    let (a, b) = (d.join("a.traffic"), d.join("b.traffic"));
    http_scenario(&a, D1, SID, 40000, 1 << 16);
    http_scenario(&b, D2, SID, 41000, 13);
    let o = diff(&[s(&a), s(&b)]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    // Text: a unified line diff of the header.
    assert!(
        out.contains("-Date: Tue, 25 Nov 2026 08:54:01 GMT"),
        "{out}"
    );
    assert!(
        out.contains("+Date: Tue, 25 Nov 2026 09:12:47 GMT"),
        "{out}"
    );
    assert!(out.contains(" Server: demo/1.0"), "{out}");

    let o = diff(&["--ignore", r"Date: [^\r]*", s(&a), s(&b)]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    // A pattern that matches only one side still differs.
    let o = diff(&["--ignore", "08:54:0[12]", s(&a), s(&b)]);
    assert_eq!(o.status.code(), Some(1));
    // The same rule from a rules file.
    let rules = d.join("golden.rules");
    std::fs::write(&rules, "# noise\nignore Date: [^\\r\\n]*\n").unwrap();
    let o = diff(&["--rules", s(&rules), s(&a), s(&b)]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    // A real change is still seen through the ignore.
    let c = d.join("c.traffic");
    http_scenario(&c, D2, "000000000000", 41000, 13);
    let o = diff(&["--rules", s(&rules), s(&a), s(&c)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("+Set-Cookie: sid=000000000000; Path=/"),
        "{}",
        stdout(&o)
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn learned_rules_make_runs_equal_and_stay_tight() {
    let d = scratch("diff-learn");
    let runs: Vec<_> = (0..3).map(|i| d.join(format!("run{i}.traffic"))).collect();
    http_scenario(&runs[0], D1, "9f8e7d6c5b4a", 40000, 1 << 16);
    http_scenario(&runs[1], D2, "03ab55e1c2", 41000, 100);
    http_scenario(&runs[2], D3, "77aa0c", 42000, 9);
    let rules = d.join("golden.rules");
    let o = plg(&[
        "diff",
        "--learn",
        "-o",
        s(&rules),
        s(&runs[0]),
        s(&runs[1]),
        s(&runs[2]),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let report = stdout(&o);
    assert!(
        report.contains("learned 2 rules from 3 captures"),
        "{report}"
    );
    let text = std::fs::read_to_string(&rules).unwrap();
    let mut ignores: Vec<&str> = text.lines().filter(|l| l.starts_with("ignore")).collect();
    ignores.sort();
    assert_eq!(
        ignores,
        vec![
            r"ignore Date: [A-Za-z]+, [0-9]+ [A-Za-z]+ [0-9]+ [0-9]+:[0-9]+:[0-9]+",
            r"ignore sid=[0-9a-f]+"
        ],
        "{text}"
    );
    // The learned rules: a new run with new noise is the same, a real change is not.
    let new = d.join("new.traffic");
    http_scenario(&new, D3, "d00d", 43000, 500);
    let o = diff(&["--rules", s(&rules), s(&runs[0]), s(&new)]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let broken = d.join("broken.traffic");
    {
        let mut c = Cap::new(&broken, &["client", "web", "db"]);
        for (i, date) in D3.iter().enumerate() {
            let id = c.open(0, 1, 8080, 43000 + i as u16);
            c.c2s(id, REQUEST);
            let body = if i == 1 {
                "ok 1 but slower\n".to_string()
            } else {
                format!("ok {i}\n")
            };
            c.s2c(id, &http_response(date, "d00d", &body));
            c.fin(id);
        }
        let id = c.open(1, 2, 5432, 43100);
        c.c2s(id, &binary_query(7));
        c.s2c(id, &binary_answer(7, 0));
        c.fin(id);
        c.exit(1, 0);
        c.exit(2, 0);
        c.exit(0, 0);
        c.finish();
    }
    let o = diff(&["--rules", s(&rules), s(&runs[0]), s(&broken)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("conn client->web:8080 #1  DIFFERENT"),
        "{}",
        stdout(&o)
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn junit_has_one_testcase_per_connection() {
    let d = scratch("diff-junit");
    let (a, b) = (d.join("a.traffic"), d.join("b.traffic"));
    http_scenario(&a, D1, SID, 40000, 1 << 16);
    http_scenario(&b, D2, SID, 41000, 1 << 16);
    let xml = d.join("drift.xml");
    let o = diff(&["--junit", s(&xml), s(&a), s(&b)]);
    assert_eq!(o.status.code(), Some(1));
    let x = std::fs::read_to_string(&xml).unwrap();
    assert!(x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites"));
    assert!(x.trim_end().ends_with("</testsuites>"));
    assert_eq!(x.matches("<testsuite ").count(), 1);
    assert_eq!(x.matches("</testsuite>").count(), 1);
    let conn_cases = x.matches("classname=\"plg.diff.connection\"").count();
    assert_eq!(conn_cases, 4);
    // 3 web connections differ in Date; the db one is the same.
    assert_eq!(x.matches("<failure ").count(), 3);
    assert_eq!(x.matches("</failure>").count(), 3);
    assert!(x.contains("failures=\"3\""));
    assert!(x.contains("name=\"client-&gt;web:8080 #0\""), "{x}");
    // Every testcase is closed.
    let opened = x.matches("<testcase ").count();
    assert_eq!(
        opened,
        x.matches("/>\n").count() - x.matches("<skipped").count()
            + x.matches("</testcase>").count()
    );
    // Same captures: no failure (the old report replaced: --force).
    let o = diff(&[
        "--force",
        "--junit",
        s(&xml),
        "--ignore",
        r"Date: [^\r]*",
        s(&a),
        s(&b),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let x = std::fs::read_to_string(&xml).unwrap();
    assert!(x.contains("failures=\"0\""));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_truncated_capture_never_passes() {
    let d = scratch("diff-trunc");
    let (a, b) = (d.join("a.traffic"), d.join("b.traffic"));
    http_scenario(&a, D1, SID, 40000, 1 << 16);
    {
        let mut c = Cap::new(&b, &["client", "web", "db"]);
        let id = c.open(0, 1, 8080, 40000);
        c.c2s(id, REQUEST);
        c.abandon();
    }
    let o = diff(&[s(&a), s(&b)]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("is truncated (no summary at its end)"),
        "{out}"
    );
    assert!(out.contains("TRUNCATED"), "{out}");
    // A file cut inside a block: compared up to the cut, said so.
    let bytes = std::fs::read(&a).unwrap();
    let cut = d.join("cut.traffic");
    std::fs::write(&cut, &bytes[..bytes.len() - 30]).unwrap();
    let o = diff(&["--json", s(&a), s(&cut)]);
    assert_eq!(o.status.code(), Some(1));
    let j = json(&o);
    assert_eq!(j["truncated"], true);
    assert_eq!(j["b"]["complete"], false);
    // Even compared with itself, an incomplete capture is not "the same".
    let o = diff(&[s(&b), s(&b)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("not proven the same"), "{}", stdout(&o));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn empty_and_identical_captures() {
    let d = scratch("diff-empty");
    let (a, b) = (d.join("a.traffic"), d.join("b.traffic"));
    Cap::new(&a, &["p0"]).finish();
    Cap::new(&b, &["p0"]).finish();
    let o = diff(&[s(&a), s(&b)]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("0 of 0 connections the same"));
    let o = diff(&[s(&a), s(&a)]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("both paths name the same file"));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_input_is_an_error() {
    let d = scratch("diff-bad");
    let a = d.join("a.traffic");
    Cap::new(&a, &["p0"]).finish();
    let junk = d.join("junk.traffic");
    std::fs::write(&junk, b"this is not a capture at all").unwrap();
    let o = diff(&[s(&a), s(&junk)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with("plg: "), "{}", stderr(&o));
    assert!(stderr(&o).contains("junk.traffic"));
    let o = diff(&[s(&a), s(&d.join("missing.traffic"))]);
    assert_eq!(o.status.code(), Some(2));
    let o = diff(&["--ignore", "(", s(&a), s(&a)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad pattern"), "{}", stderr(&o));
    let o = diff(&[s(&a), s(&a), s(&a)]);
    assert_eq!(o.status.code(), Some(2));
    let o = diff(&[s(&a)]);
    assert_eq!(o.status.code(), Some(2));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn udp_packets_are_compared_in_order() {
    let d = scratch("diff-udp");
    let (a, b) = (d.join("a.traffic"), d.join("b.traffic"));
    let build = |p: &std::path::Path, answer: &[u8], sport: u16| {
        let mut c = Cap::new(p, &["client", "dns"]);
        c.udp(0, 1, sport, 53, b"query example.test");
        c.udp(1, 0, 53, sport, answer);
        c.finish();
    };
    build(&a, b"answer 10.0.0.9", 33000);
    build(&b, b"answer 10.0.0.7", 34000);
    let o = diff(&[s(&a), s(&b)]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("flow client->dns udp:53  same"), "{out}");
    assert!(out.contains("flow dns->client udp:53  DIFFERENT"), "{out}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn timing_drift_only_when_asked() {
    let d = scratch("diff-timing");
    let (a, b) = (d.join("a.traffic"), d.join("b.traffic"));
    let build = |p: &std::path::Path, delay: u64| {
        let mut c = Cap::new(p, &["client", "web"]);
        let id = c.open(0, 1, 80, 40000);
        c.c2s(id, REQUEST);
        c.wait(delay);
        c.s2c(id, b"HTTP/1.1 204 No Content\r\n\r\n");
        c.fin(id);
        c.finish();
    };
    build(&a, 10_000_000);
    build(&b, 30_000_000);
    assert_eq!(diff(&[s(&a), s(&b)]).status.code(), Some(0));
    let o = diff(&["--timing", "50", s(&a), s(&b)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("first response: 10.0 ms, then 30.0 ms"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        diff(&["--timing", "500", s(&a), s(&b)]).status.code(),
        Some(0)
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn max_diffs_limits_what_is_shown() {
    let d = scratch("diff-max");
    let (a, b) = (d.join("a.traffic"), d.join("b.traffic"));
    let build = |p: &std::path::Path, v: u8| {
        let mut c = Cap::new(p, &["client", "web"]);
        let id = c.open(0, 1, 80, 40000);
        let mut text = Vec::new();
        for i in 0..20 {
            text.extend_from_slice(
                format!(
                    "line {i:02} with enough filler to realign {}\n",
                    if i % 2 == 0 { v } else { 0 }
                )
                .as_bytes(),
            );
        }
        c.c2s(id, &text);
        c.fin(id);
        c.finish();
    };
    build(&a, 1);
    build(&b, 2);
    let j = json(&diff(&["--json", "--max-diffs", "3", s(&a), s(&b)]));
    let dir = &j["connections"][0]["directions"][0];
    assert_eq!(dir["differences"].as_array().unwrap().len(), 3);
    assert_eq!(dir["more"], true);
    let j = json(&diff(&["--json", "--max-diffs", "0", s(&a), s(&b)]));
    let dir = &j["connections"][0]["directions"][0];
    assert_eq!(dir["differences"].as_array().unwrap().len(), 10);
    assert_eq!(dir["more"], false);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn process_exit_status_and_command_line() {
    let d = scratch("diff-procs");
    let (a, b) = (d.join("a.traffic"), d.join("b.traffic"));
    let mut c = Cap::new(&a, &["web", "client"]);
    c.exit(1, 0);
    c.finish();
    let mut c = Cap::new(&b, &["web", "curl"]);
    c.exit(1, 7);
    c.finish();
    let o = diff(&[s(&a), s(&b)]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("exit: exit 0, then exit 7"), "{out}");
    assert!(
        out.contains("note: named \"client\", then \"curl\""),
        "{out}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}
