//! Non-TCP IPv4 between processes: passed as-is by plg (UDP with socat, ICMP with ping) and
//! written to the capture as packets on the sender's interface. Needs root and /dev/net/tun.

mod common;

use common::{sh_quote, Capture, Plg, TempDir, PY};
use std::path::Path;

/// (protocol, source, destination) of a raw IPv4 packet.
fn ipv4_header(p: &[u8]) -> (u8, [u8; 4], [u8; 4]) {
    assert!(p.len() >= 20 && p[0] >> 4 == 4, "not IPv4: {p:?}");
    (
        p[9],
        p[12..16].try_into().unwrap(),
        p[16..20].try_into().unwrap(),
    )
}

/// The UDP payload of a raw IPv4 packet carrying UDP.
fn udp_payload(p: &[u8]) -> &[u8] {
    let ihl = (p[0] & 0x0f) as usize * 4;
    &p[ihl + 8..]
}

#[test]
fn udp_datagrams_between_processes_pass_and_are_recorded_as_packets() {
    let dir = TempDir::new("udp");
    let cap = dir.join("udp.traffic");
    // p0 (socat) answers one datagram with its upper-case copy; p1 sends one and prints the
    // answer, once p0's socket is bound (--ready sees bound UDP sockets; each process has a
    // /proc of its own, so p1 cannot look into p0's).
    let client = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 4000))
s.settimeout(20)
s.sendto(b"hello over udp\n", ("p0", 5353))
data, peer = s.recvfrom(65536)
print(data.decode().strip(), "from", peer[0], peer[1])
"#;
    let run = Plg::record(&[
        "-f",
        &cap,
        "--ready",
        "p0:5353",
        "socat UDP4-RECVFROM:5353 SYSTEM:'read l; echo \"$l\" | tr a-z A-Z'",
        &format!("{PY} -u -c {}", sh_quote(client)),
    ])
    .run();
    run.assert_code(0);
    assert_eq!(
        run.lines_of("p1"),
        vec!["HELLO OVER UDP from 10.0.0.2 5353"],
        "{}",
        run.dump()
    );

    let c = Capture::read(Path::new(&cap));
    let s = c.summary();
    assert_eq!(s.connections, 0);
    let udp: Vec<_> = c
        .packets
        .iter()
        .filter(|p| ipv4_header(&p.bytes).0 == 17)
        .collect();
    assert_eq!(udp.len(), 2, "{:#?}", c.packets);
    let (_, src, dst) = ipv4_header(&udp[0].bytes);
    assert_eq!((src, dst), ([10, 0, 0, 3], [10, 0, 0, 2]));
    assert_eq!(udp[0].interface, 1, "recorded on the sender's interface");
    assert_eq!(udp_payload(&udp[0].bytes), b"hello over udp\n");
    assert_eq!(udp[0].orig_len as usize, udp[0].bytes.len());
    let (_, src, dst) = ipv4_header(&udp[1].bytes);
    assert_eq!((src, dst), ([10, 0, 0, 2], [10, 0, 0, 3]));
    assert_eq!(udp[1].interface, 0);
    assert_eq!(udp_payload(&udp[1].bytes), b"HELLO OVER UDP\n");
}

#[test]
fn ping_between_processes_works_and_each_echo_is_recorded() {
    let dir = TempDir::new("ping");
    let cap = dir.join("ping.traffic");
    let run = Plg::record(&[
        "-f",
        &cap,
        "--names",
        "target,pinger",
        "sleep 30",
        "ping -c 3 -i 0.2 -W 5 target",
    ])
    .run();
    run.assert_code(0);
    let out = run.output_of("pinger");
    assert!(
        out.contains("3 packets transmitted, 3 received"),
        "ping output: {out}"
    );
    assert!(out.contains("(10.0.0.2): icmp_seq=3"), "ping output: {out}");

    let c = Capture::read(Path::new(&cap));
    c.summary();
    let icmp: Vec<_> = c
        .packets
        .iter()
        .map(|p| (p.interface, ipv4_header(&p.bytes), p.bytes[20]))
        .filter(|(_, h, _)| h.0 == 1)
        .collect();
    let requests = icmp
        .iter()
        .filter(|(i, (_, s, d), t)| {
            *i == 1 && *s == [10, 0, 0, 3] && *d == [10, 0, 0, 2] && *t == 8
        })
        .count();
    let replies = icmp
        .iter()
        .filter(|(i, (_, s, d), t)| {
            *i == 0 && *s == [10, 0, 0, 2] && *d == [10, 0, 0, 3] && *t == 0
        })
        .count();
    assert_eq!((requests, replies), (3, 3), "{icmp:?}");
}

#[test]
fn a_udp_datagram_larger_than_the_mtu_arrives_whole_in_fragments() {
    let dir = TempDir::new("udpfrag");
    let cap = dir.join("frag.traffic");
    let server = r#"
import socket, hashlib
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5353))
data, peer = s.recvfrom(65536)
s.sendto(b"%d %s" % (len(data), hashlib.sha256(data).hexdigest().encode()), peer)
"#;
    let client = r#"
import socket, hashlib
data = bytes(range(256)) * 120
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(20)
s.sendto(data, ("p0", 5353))
reply, _ = s.recvfrom(1000)
print(reply.decode() == "%d %s" % (len(data), hashlib.sha256(data).hexdigest()))
"#;
    let run = Plg::record(&[
        "-f",
        &cap,
        "--ready",
        "p0:5353",
        &format!("{PY} -u -c {}", sh_quote(server)),
        &format!("{PY} -u -c {}", sh_quote(client)),
    ])
    .run();
    run.assert_code(0);
    assert_eq!(run.lines_of("p1"), vec!["True"], "{}", run.dump());
    let c = Capture::read(Path::new(&cap));
    c.summary();
    // 30720 bytes of payload + 8 of UDP header, in fragments of at most 1480 bytes each.
    let frags: Vec<_> = c
        .packets
        .iter()
        .filter(|p| p.interface == 1 && ipv4_header(&p.bytes).0 == 17)
        .collect();
    let payload: usize = frags.iter().map(|p| p.bytes.len() - 20).sum();
    assert_eq!(payload, 30720 + 8, "{} fragments", frags.len());
    assert!(frags.len() >= 21, "{} fragments", frags.len());
}

#[test]
fn a_udp_port_nobody_listens_on_answers_port_unreachable() {
    let dir = TempDir::new("udpunreach");
    let cap = dir.join("unreach.traffic");
    let client = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.connect(("p0", 5999))
s.send(b"anyone?")
try:
    s.recv(100)
    print("answered")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")
"#;
    let run = Plg::record(&[
        "-f",
        &cap,
        "exec sleep 60",
        &format!("{PY} -u -c {}", sh_quote(client)),
    ])
    .run();
    run.assert_code(0);
    assert_eq!(run.lines_of("p1"), vec!["refused"], "{}", run.dump());
    let c = Capture::read(Path::new(&cap));
    c.summary();
    // The datagram from p1, then p0's ICMP port unreachable (type 3, code 3) back.
    assert!(c
        .packets
        .iter()
        .any(|p| p.interface == 1 && ipv4_header(&p.bytes).0 == 17));
    assert!(c.packets.iter().any(|p| p.interface == 0
        && ipv4_header(&p.bytes).0 == 1
        && p.bytes[20] == 3
        && p.bytes[21] == 3));
}

#[test]
fn a_large_ping_is_fragmented_and_answered() {
    let dir = TempDir::new("bigping");
    let cap = dir.join("bigping.traffic");
    let run = Plg::record(&[
        "-f",
        &cap,
        "exec sleep 60",
        "ping -c 2 -i 0.2 -W 5 -s 8000 p0",
    ])
    .run();
    run.assert_code(0);
    let out = run.output_of("p1");
    assert!(out.contains("2 packets transmitted, 2 received"), "{out}");
    assert!(out.contains("8008 bytes from"), "{out}");
}
