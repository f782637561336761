//! `plg export` checked against a real tool (Debian's tshark): it reads every export,
//! follows every stream back to exactly the recorded bytes, flags nothing wrong with checksum
//! validation on, and decodes the HTTP and Redis conversations.

mod export_support;

use export_support::*;
use std::path::Path;
use std::process::Command;

fn tshark(args: &[&str]) -> String {
    let o = Command::new("tshark")
        .args(args)
        .output()
        .expect("tshark installed");
    assert!(
        o.status.success(),
        "tshark {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn export(fixture: &Fixture, flag: &str, out: &Path) {
    let o = plg(&[
        "export",
        fixture.path.to_str().unwrap(),
        flag,
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Both directions of every TCP stream as `tshark -z follow,tcp,raw` gives them back.
fn follow_all(file: &Path, streams: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut args = vec!["-r", file.to_str().unwrap(), "-q"];
    let specs: Vec<String> = (0..streams)
        .map(|i| format!("follow,tcp,raw,{i}"))
        .collect();
    for s in &specs {
        args.extend(["-z", s.as_str()]);
    }
    let text = tshark(&args);
    let mut out = vec![(Vec::new(), Vec::new()); streams];
    for block in text.split("Follow: tcp,raw").skip(1) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut index = None;
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("Filter: tcp.stream eq ") {
                index = Some(n.trim().parse::<usize>().unwrap());
                continue;
            }
            if line.starts_with("===") || line.starts_with("Node ") {
                continue;
            }
            if let Some(hex) = line.strip_prefix('\t') {
                b.extend(unhex(hex.trim()));
            } else if !line.trim().is_empty() {
                a.extend(unhex(line.trim()));
            }
        }
        out[index.expect("a Filter line")] = (a, b);
    }
    out
}

/// Frames tshark finds anything wrong with: TCP analysis problems (lost, unseen, retransmitted,
/// out of order, window full...), bad checksums, malformed packets, expert errors.
const WRONG: &str = "(tcp.analysis.flags && !tcp.analysis.window_update) \
    || tcp.checksum.status == 0 || ip.checksum.status == 0 || udp.checksum.status == 0 \
    || _ws.malformed || _ws.expert.severity == error";

fn check_packet_file(file: &Path, f: &Fixture) {
    let p = file.to_str().unwrap();
    let wrong = tshark(&[
        "-r",
        p,
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        "-Y",
        WRONG,
    ]);
    assert_eq!(wrong, "", "tshark flags these frames");

    // Every connection (the refused one included) is a TCP stream, in connection-id order.
    let streams = follow_all(file, 6);
    assert_eq!(streams.len(), 6);
    for c in &f.conns {
        let (a, b) = &streams[c.id as usize];
        assert!(a == &c.c2s, "connection {}: client bytes differ", c.id);
        assert!(b == &c.s2c, "connection {}: server bytes differ", c.id);
    }
    assert_eq!(
        streams[2],
        (vec![], vec![]),
        "refused connection carries nothing"
    );

    let http = tshark(&[
        "-r",
        p,
        "-Y",
        "http.request || http.response",
        "-T",
        "fields",
        "-e",
        "http.request.uri",
        "-e",
        "http.response.code",
    ]);
    let lines: Vec<&str> = http.lines().collect();
    assert!(lines.contains(&"/index.html\t"), "{http}");
    assert!(lines.contains(&"\t200"), "{http}");

    let resp = tshark(&["-r", p, "-Y", "resp", "-T", "fields", "-e", "tcp.srcport"]);
    assert!(resp.lines().count() >= 6, "RESP frames: {resp}");

    // The refused SYN is answered by RST-ACK; the upload ends with the server's RST.
    let rst = tshark(&[
        "-r",
        p,
        "-Y",
        "tcp.flags.reset == 1",
        "-T",
        "fields",
        "-e",
        "tcp.srcport",
    ]);
    assert_eq!(rst.lines().collect::<Vec<_>>(), vec!["9999", "45000"]);

    // No segment above the MSS.
    let big = tshark(&["-r", p, "-Y", "tcp.len > 1460"]);
    assert_eq!(big, "");

    let udp = tshark(&[
        "-r",
        p,
        "-Y",
        "udp || icmp",
        "-T",
        "fields",
        "-e",
        "ip.proto",
    ]);
    assert_eq!(udp.lines().count() as u64, f.packets);
}

#[test]
fn pcap_export_reads_back_exactly_in_tshark() {
    let d = scratch("export-pcap");
    let f = write_fixture(&d, true);
    let out = d.join("web.pcap");
    export(&f, "--pcap", &out);
    check_packet_file(&out, &f);
    // Timestamps are the recorded ones (the first SYN at the first ConnOpen).
    let t = tshark(&[
        "-r",
        out.to_str().unwrap(),
        "-c",
        "1",
        "-T",
        "fields",
        "-e",
        "frame.time_epoch",
    ]);
    assert!(t.starts_with("1700000000.000137000"), "{t}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn pcapng_export_has_one_interface_per_process() {
    let d = scratch("export-pcapng");
    let f = write_fixture(&d, true);
    let out = d.join("web.pcapng");
    export(&f, "--pcapng", &out);
    check_packet_file(&out, &f);
    let ifaces = tshark(&[
        "-r",
        out.to_str().unwrap(),
        "-T",
        "fields",
        "-e",
        "frame.interface_name",
    ]);
    let mut names: Vec<&str> = ifaces.lines().collect();
    names.sort();
    names.dedup();
    assert_eq!(names, vec!["cache", "client", "web"]);
    // No plg custom block is left: capinfos sees a plain file.
    let o = Command::new("capinfos").arg(&out).output().unwrap();
    assert!(o.status.success());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn truncated_capture_exports_what_it_holds() {
    let d = scratch("export-cut");
    let f = write_fixture(&d, false);
    let out = d.join("cut.pcap");
    export(&f, "--pcap", &out);
    check_packet_file(&out, &f);
    std::fs::remove_dir_all(&d).unwrap();
}
