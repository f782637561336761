//! `plg export` as a user meets it: stream files, filters, existing and unwritable outputs,
//! bad input, and never a half-written output left behind.

mod export_support;

use export_support::*;
use std::fs;
use std::path::Path;

fn entries(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn streams_hold_each_direction_byte_exact() {
    let d = scratch("export-streams");
    let f = write_fixture(&d, true);
    let out = d.join("streams");
    let o = plg(&[
        "export",
        f.path.to_str().unwrap(),
        "--streams",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let names = entries(&out);
    assert!(
        names.contains(&"0000-client_10.0.0.2.40000-to-web_10.0.0.1.8080".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"0000-web_10.0.0.1.8080-to-client_10.0.0.2.40000".to_string()));
    for c in &f.conns {
        let prefix = format!("{:04}-", c.id);
        let mine: Vec<&String> = names.iter().filter(|n| n.starts_with(&prefix)).collect();
        for n in mine {
            let bytes = fs::read(out.join(n)).unwrap();
            let want = if n.starts_with(&format!("{prefix}client")) {
                &c.c2s
            } else {
                &c.s2c
            };
            assert!(&bytes == want, "{n}");
        }
    }
    // Conn 5 never answered: only the client's file. Refused conn 2: no file.
    assert!(!names.iter().any(|n| n.starts_with("0002-")));
    assert_eq!(names.iter().filter(|n| n.starts_with("0005-")).count(), 1);
    assert_eq!(
        entries(&d),
        vec!["streams", "web.traffic"],
        "no temporary left"
    );
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn filters_select_connections_and_packets() {
    let d = scratch("export-filter");
    let f = write_fixture(&d, true);
    let input = f.path.to_str().unwrap();
    let run = |args: &[&str], dir: &str| {
        let out = d.join(dir);
        let mut a = vec!["export", input, "--streams", out.to_str().unwrap()];
        a.extend_from_slice(args);
        let o = plg(&a);
        (
            o.status.code(),
            if out.exists() { entries(&out) } else { vec![] },
        )
    };
    let (code, names) = run(&["--conn", "1"], "c1");
    assert_eq!(code, Some(0));
    assert!(
        names.iter().all(|n| n.starts_with("0001-")) && names.len() == 2,
        "{names:?}"
    );
    let (_, names) = run(&["--port", "8080"], "p8080");
    let ids: std::collections::BTreeSet<&str> = names.iter().map(|n| &n[..4]).collect();
    assert_eq!(ids.into_iter().collect::<Vec<_>>(), vec!["0000", "0005"]);
    let (_, names) = run(&["--process", "cache"], "cache");
    let ids: std::collections::BTreeSet<&str> = names.iter().map(|n| &n[..4]).collect();
    assert_eq!(ids.into_iter().collect::<Vec<_>>(), vec!["0001", "0004"]);
    let (_, names) = run(&["--process", "cache", "--port", "6379"], "both");
    assert!(names.iter().all(|n| n.starts_with("0001-")));

    // Nothing matches: exit 1, said so, no output at all.
    let out = d.join("none.pcap");
    let o = plg(&[
        "export",
        input,
        "--pcap",
        out.to_str().unwrap(),
        "--conn",
        "77",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("matches"), "{}", stderr(&o));
    assert!(!out.exists());
    assert!(!entries(&d).iter().any(|n| n.contains("plg-tmp")));

    // The packet filter by process keeps the UDP datagram sent to cache.
    let out = d.join("cache.pcap");
    let o = plg(&[
        "export",
        input,
        "--pcap",
        out.to_str().unwrap(),
        "--process",
        "cache",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let t = std::process::Command::new("tshark")
        .args([
            "-r",
            out.to_str().unwrap(),
            "-Y",
            "udp",
            "-T",
            "fields",
            "-e",
            "udp.dstport",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&t.stdout).trim(), "40200");
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn existing_output_is_refused_unless_forced() {
    let d = scratch("export-force");
    let f = write_fixture(&d, true);
    let out = d.join("out.pcap");
    fs::write(&out, b"precious").unwrap();
    let o = plg(&[
        "export",
        f.path.to_str().unwrap(),
        "--pcap",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with("plg: "), "{}", stderr(&o));
    assert!(stderr(&o).contains("--force"));
    assert_eq!(fs::read(&out).unwrap(), b"precious");
    let o = plg(&[
        "export",
        f.path.to_str().unwrap(),
        "--pcap",
        out.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_ne!(fs::read(&out).unwrap(), b"precious");
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_input_and_unwritable_output_leave_nothing() {
    let d = scratch("export-bad");
    let junk = d.join("junk.traffic");
    fs::write(&junk, vec![0x5a; 4096]).unwrap();
    let out = d.join("out.pcap");
    let o = plg(&[
        "export",
        junk.to_str().unwrap(),
        "--pcap",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.starts_with("plg: ") && err.contains("junk.traffic") && err.lines().count() == 1,
        "{err}"
    );

    // A capture damaged in the middle: error, and the partial output is removed.
    let f = write_fixture(&d, true);
    let mut bytes = fs::read(&f.path).unwrap();
    let cut = bytes.len() - 200;
    bytes.truncate(cut);
    fs::write(&junk, &bytes).unwrap();
    let o = plg(&[
        "export",
        junk.to_str().unwrap(),
        "--pcap",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("at byte"), "{}", stderr(&o));
    assert_eq!(entries(&d), vec!["junk.traffic", "web.traffic"]);

    let o = plg(&[
        "export",
        f.path.to_str().unwrap(),
        "--pcap",
        "/nonexistent-dir/out.pcap",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("/nonexistent-dir/out.pcap"),
        "{}",
        stderr(&o)
    );

    let o = plg(&["export", f.path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "an output is required");
    fs::remove_dir_all(&d).unwrap();
}

/// More connections open at once than `--streams` keeps files open (128): files are closed and
/// reopened for appending, and every direction still ends up byte-exact.
#[test]
fn streams_stay_byte_exact_with_hundreds_of_connections_open_at_once() {
    use plg::format::*;
    use std::net::{Ipv4Addr, SocketAddrV4};
    let d = scratch("export-streams-many");
    let cap = d.join("many.traffic");
    let session = Session {
        format_version: FORMAT_VERSION,
        mode: Mode::Record,
        subnet: Ipv4Addr::new(10, 0, 0, 0),
        prefix_len: 24,
        subnet6: None,
        start_ns: 1_700_000_000_000_000_000,
        plg_version: "test".into(),
    };
    let procs: Vec<Process> = (0..2u16)
        .map(|i| Process {
            index: i,
            name: format!("p{i}"),
            command: "x".into(),
            addr: Ipv4Addr::new(10, 0, 0, 2 + i as u8),
            addr6: None,
            live: true,
        })
        .collect();
    let n = 300u32;
    let mut w = CaptureWriter::new(fs::File::create(&cap).unwrap(), &session, &procs).unwrap();
    let mut t = session.start_ns;
    for id in 0..n {
        t += 1000;
        w.write(&Record::ConnOpen(ConnOpen {
            id,
            time_ns: t,
            client: 1,
            client_addr: SocketAddrV4::new(procs[1].addr, 20000 + id as u16).into(),
            server: 0,
            server_addr: SocketAddrV4::new(procs[0].addr, 80).into(),
            outcome: Outcome::Established,
        }))
        .unwrap();
    }
    // Three rounds over every connection, both ways: each file is written to three times,
    // with 299 other connections in between.
    let chunk = |id: u32, dir: u8, round: u8| format!("conn {id} dir {dir} round {round}\n");
    for round in 0..3u8 {
        for id in 0..n {
            for (dir, d2) in [
                (0u8, Direction::ClientToServer),
                (1, Direction::ServerToClient),
            ] {
                t += 1000;
                w.write_data(id, d2, t, chunk(id, dir, round).as_bytes())
                    .unwrap();
            }
        }
    }
    for id in 0..n {
        for dir in [Direction::ClientToServer, Direction::ServerToClient] {
            t += 1000;
            w.write(&Record::ConnClose(ConnClose {
                id,
                dir,
                kind: CloseKind::Fin,
                time_ns: t,
            }))
            .unwrap();
        }
    }
    w.finish(&Summary {
        end_ns: t,
        processes: 2,
        connections: n,
        ..Summary::default()
    })
    .unwrap();

    let out = d.join("streams");
    let o = plg(&[
        "export",
        cap.to_str().unwrap(),
        "--streams",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let names = entries(&out);
    assert_eq!(
        names.len(),
        2 * n as usize,
        "one file per connection and direction"
    );
    for id in 0..n {
        for (dir, sender) in [(0u8, "p1"), (1, "p0")] {
            let name = names
                .iter()
                .find(|f| f.starts_with(&format!("{id:04}-{sender}_")))
                .unwrap_or_else(|| panic!("no file for connection {id} from {sender}"));
            let want: String = (0..3).map(|r| chunk(id, dir, r)).collect();
            assert_eq!(fs::read_to_string(out.join(name)).unwrap(), want, "{name}");
        }
    }
    fs::remove_dir_all(&d).unwrap();
}
