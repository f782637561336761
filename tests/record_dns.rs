//! Names over DNS: plg's resolver at the gateway address, seen by real programs.
//! - `dig` (A, AAAA, PTR, over UDP and TCP), `host`, `nslookup` and a python program that
//!   reads /etc/resolv.conf itself all get the session's names from the gateway;
//! - an outside name gets a definite NXDOMAIN (no wait for a timeout), and `getaddrinfo` fails
//!   with "name not known";
//! - garbage sent to gateway:53 (UDP and TCP) gets FORMERR or nothing, and the resolver goes
//!   on answering;
//! - the capture passes `plg inspect --check` and holds the queries and answers, which
//!   tshark dissects as DNS;
//! - in replay, a client whose server is played still resolves names, and the verdict is
//!   clean (the resolver's random ids are not compared);
//! - with `--allow-external`, an outside name is forwarded to the host's resolver: a dnsmasq
//!   the test starts on a host loopback address, named through `PLG_HOST_RESOLV_CONF` (no
//!   packet leaves the machine).
//!
//! Needs root, /dev/net/tun, dig/host/nslookup (bind9-dnsutils), dnsmasq, python3, curl and
//! tshark: fails loudly without.

mod common;
#[path = "common/dnsmasq.rs"]
mod dnsmasq;
#[path = "common/replay.rs"]
mod replay;

use common::{need, sh_quote, Capture, Plg, TempDir, PY};
use dnsmasq::Dnsmasq;
use replay::{record_ok, replay, PLG};
use std::path::Path;
use std::process::Command;

/// What a lone process printed (plg prefixes lines only when there are several).
fn stdout_lines(run: &common::Run) -> Vec<String> {
    run.stdout.lines().map(String::from).collect()
}

/// UDP datagrams of the capture to or from the gateway's port 53: (from gateway, payload).
fn resolver_datagrams(c: &Capture) -> Vec<(bool, Vec<u8>)> {
    c.packets
        .iter()
        .filter_map(|p| {
            let b = &p.bytes;
            if b.len() < 28 || b[9] != 17 {
                return None;
            }
            let ihl = usize::from(b[0] & 0xf) * 4;
            let sport = u16::from_be_bytes([b[ihl], b[ihl + 1]]);
            let dport = u16::from_be_bytes([b[ihl + 2], b[ihl + 3]]);
            let (src, dst) = (&b[12..16], &b[16..20]);
            if dst == [10, 0, 0, 1] && dport == 53 {
                Some((false, b[ihl + 8..].to_vec()))
            } else if src == [10, 0, 0, 1] && sport == 53 {
                Some((true, b[ihl + 8..].to_vec()))
            } else {
                None
            }
        })
        .collect()
}

/// A python program that reads /etc/resolv.conf itself, asks its first nameserver for
/// `name` (type A) over UDP, and prints the rcode and the addresses answered.
const RAW_QUERY: &str = r#"
import socket, struct, sys
ns = [l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver")][0]
name = sys.argv[1]
q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(q, (ns, 53))
a, _ = s.recvfrom(4096)
ident, flags, qd, an = struct.unpack(">HHHH", a[:8])
assert ident == 0x4242
addrs = [socket.inet_ntoa(a[i + 12:i + 16]) for i in range(len(q), len(a) - 15)
         if a[i:i + 2] == b"\xc0\x0c" and a[i + 2:i + 4] == b"\x00\x01"]
print(ns, flags & 0xf, " ".join(addrs))
"#;

#[test]
fn dig_host_nslookup_and_python_resolve_session_names_at_the_gateway() {
    need("dig");
    need("host");
    need("nslookup");
    need("tshark");
    let dir = TempDir::new("dns-names");
    let cap = dir.join("names.traffic");
    let client = [
        "cat /etc/resolv.conf",
        "echo A $(dig +short p0)",
        "echo ALIAS $(dig +short WEB.)",
        "echo AAAA $(dig p0 AAAA | grep -o 'status: [A-Z]*') $(dig +short p0 AAAA | wc -l)",
        "echo PTR $(dig +short -x 10.0.0.2)",
        "echo PTR6 $(dig +short -x fd00:706c:67::2)",
        "echo AAAA6 $(dig +short p0 AAAA)",
        "echo TCP $(dig +tcp +short p1)",
        "echo V6NS $(dig +short @fd00:706c:67::1 p1 AAAA)",
        "host p1",
        "nslookup p0 | grep -A1 'Name:'",
        &format!("{PY} -c {} p0", sh_quote(RAW_QUERY)),
    ]
    .join("; ");
    let run = record_ok(&[
        "-f",
        &cap,
        "--names",
        "web,client",
        "sleep 30",
        &format!("sh -c {}", sh_quote(&client)),
    ]);
    let out = run.lines_of("client");
    let has = |l: &str| out.iter().any(|o| o.trim() == l);
    assert!(has("nameserver 10.0.0.1"), "{}", run.dump());
    assert!(has("A 10.0.0.2"), "{}", run.dump());
    assert!(has("ALIAS 10.0.0.2"), "{}", run.dump());
    // Dual stack: p0's IPv6 address, and its name for it.
    assert!(has("AAAA status: NOERROR 1"), "{}", run.dump());
    assert!(has("AAAA6 fd00:706c:67::2"), "{}", run.dump());
    assert!(has("PTR p0."), "{}", run.dump());
    assert!(has("PTR6 p0."), "{}", run.dump());
    assert!(has("p1 has IPv6 address fd00:706c:67::3"), "{}", run.dump());
    assert!(has("TCP 10.0.0.3"), "{}", run.dump());
    // The resolver answers at the IPv6 gateway too (the second nameserver).
    assert!(has("nameserver fd00:706c:67::1"), "{}", run.dump());
    assert!(has("V6NS fd00:706c:67::3"), "{}", run.dump());
    assert!(has("p1 has address 10.0.0.3"), "{}", run.dump());
    assert!(has("Name:\tp0"), "{}", run.dump());
    assert!(has("Address: 10.0.0.2"), "{}", run.dump());
    assert!(has("10.0.0.1 0 10.0.0.2"), "{}", run.dump());
    // The host's own file is untouched.
    let host_conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    assert!(!host_conf.contains("generated by plg"), "{host_conf}");

    // The capture: checks clean, holds every query and its answer, the TCP one as a
    // connection to the gateway, and tshark reads them as DNS.
    let check = Command::new(PLG)
        .args(["inspect", "--check", &cap])
        .output()
        .unwrap();
    assert!(check.status.success(), "{:?}", check);
    let c = Capture::read(Path::new(&cap));
    let dgrams = resolver_datagrams(&c);
    let queries = dgrams.iter().filter(|(from_gw, _)| !from_gw).count();
    let answers = dgrams.iter().filter(|(from_gw, _)| *from_gw).count();
    assert!(queries >= 8, "{queries} queries");
    assert_eq!(queries, answers);
    assert!(
        c.conns
            .values()
            .any(|k| k.open.server == plg::format::EXTERNAL
                && k.open.server_addr.port() == 53
                && !k.c2s.is_empty()
                && !k.s2c.is_empty()),
        "no DNS-over-TCP connection in the capture"
    );
    let pcap = dir.join("names.pcapng");
    let st = Command::new(PLG)
        .args(["export", "--pcapng", &pcap, &cap])
        .status()
        .unwrap();
    assert!(st.success());
    let t = Command::new("tshark")
        .args([
            "-r",
            &pcap,
            "-Y",
            "dns.flags.response == 1 && dns.a == 10.0.0.2",
        ])
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&t.stdout).lines().count();
    assert!(lines >= 3, "{}", String::from_utf8_lossy(&t.stdout));
}

#[test]
fn an_outside_name_fails_at_once_with_nxdomain() {
    need("dig");
    let dir = TempDir::new("dns-outside");
    let cap = dir.join("outside.traffic");
    let lookup = r#"
import socket
try:
    socket.getaddrinfo("www.debian.org", 80)
    print("resolved")
except socket.gaierror as e:
    print("gaierror", e.errno == socket.EAI_NONAME)
"#;
    let client = [
        "dig +tries=1 +time=5 example.invalid | grep -o 'status: [A-Z]*'",
        "dig +tries=1 +time=5 www.debian.org | grep -o 'status: [A-Z]*'",
        "dig +tries=1 +time=5 -x 192.0.2.1 | grep -o 'status: [A-Z]*'",
        "dig +tries=1 +time=5 p0 CH TXT | grep -o 'status: [A-Z]*'",
        &format!("{PY} -c {}", sh_quote(lookup)),
    ]
    .join("; ");
    let run = record_ok(&["-f", &cap, &format!("sh -c {}", sh_quote(&client))]);
    assert_eq!(
        stdout_lines(&run),
        vec![
            "status: NXDOMAIN",
            "status: NXDOMAIN",
            "status: NXDOMAIN",
            "status: REFUSED",
            "gaierror True"
        ],
        "{}",
        run.dump()
    );
}

#[test]
fn without_ipv6_a_name_has_no_aaaa_and_no_ipv6_nameserver() {
    need("dig");
    let dir = TempDir::new("dns-no6");
    let cap = dir.join("no6.traffic");
    let client = "sh -c 'grep -c nameserver /etc/resolv.conf; \
                  dig p0 AAAA | grep -o \"status: [A-Z]*\"; dig +short p0 AAAA | wc -l; \
                  dig +short p0'";
    let run = record_ok(&["--no-ipv6", "-f", &cap, client]);
    // NODATA (NOERROR, no answer), not NXDOMAIN: the name exists, without an IPv6 address.
    assert_eq!(
        stdout_lines(&run),
        vec!["1", "status: NOERROR", "0", "10.0.0.2"],
        "{}",
        run.dump()
    );
}

#[test]
fn garbage_to_the_resolver_gets_formerr_or_nothing_and_it_goes_on_answering() {
    need("dig");
    let dir = TempDir::new("dns-hostile");
    let cap = dir.join("hostile.traffic");
    let hostile = r#"
import os, socket, struct
gw = ("10.0.0.1", 53)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(2)
junk = [b"", b"\x00", os.urandom(11), b"\xff" * 600, os.urandom(3000)]
# A header and a question whose name points at itself: FORMERR, id echoed.
loop = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01"
# 65535 records announced, none there.
counts = struct.pack(">HHHHHH", 0x5678, 0x0100, 1, 0xffff, 0xffff, 0xffff) + b"\x02p0\x00\x00\x01\x00\x01"
for j in junk + [loop, counts]:
    u.sendto(j, gw)
codes = {}
try:
    while len(codes) < 2:
        a, _ = u.recvfrom(4096)
        ident, flags = struct.unpack(">HH", a[:4])
        codes[ident] = flags & 0xf
except socket.timeout:
    pass
print("udp", codes.get(0x1234), codes.get(0x5678))
# TCP: a length prefix longer than what follows, then close; then garbage with a short length.
for payload in [b"\xff\xff" + os.urandom(100), b"\x00\x05" + os.urandom(5), b"\x00"]:
    t = socket.create_connection(gw, timeout=5)
    t.sendall(payload)
    t.shutdown(socket.SHUT_WR)
    try:
        t.recv(4096)
    except OSError:
        pass
    t.close()
print("tcp done")
"#;
    let client = format!(
        "{PY} -c {}; dig +short p0; dig +tcp +short p0",
        sh_quote(hostile)
    );
    // Without offload: the datagrams' checksums are the process's own (with offload, as in
    // the other tests, plg completes them).
    let run = record_ok(&[
        "-f",
        &cap,
        "--no-offload",
        &format!("sh -c {}", sh_quote(&client)),
    ]);
    assert_eq!(
        stdout_lines(&run),
        vec!["udp 1 1", "tcp done", "10.0.0.2", "10.0.0.2"],
        "{}",
        run.dump()
    );
    let check = Command::new(PLG)
        .args(["inspect", "--check", &cap])
        .output()
        .unwrap();
    assert!(check.status.success(), "{:?}", check);
}

#[test]
fn a_client_whose_server_is_played_still_resolves_names() {
    need("dig");
    need("curl");
    let dir = TempDir::new("dns-replay");
    std::fs::write(dir.path().join("index.html"), "hello\n").unwrap();
    let cap = dir.join("web.traffic");
    let server = format!("{PY} -m http.server 8000 --directory {}", dir.join(""));
    let client = "sh -c 'dig +short p0 && dig +tcp +short p0 && curl -s http://p0:8000/index.html'";
    let run = record_ok(&["-f", &cap, "--ready", "p0:8000", &server, client]);
    assert_eq!(
        run.lines_of("p1"),
        vec!["10.0.0.2", "10.0.0.2", "hello"],
        "{}",
        run.dump()
    );
    let json = dir.join("replay.json");
    let run = replay(&["-f", &cap, "--strict", "--report", &json, "-", client]).run();
    assert_eq!(
        run.lines_of("p1"),
        vec!["10.0.0.2", "10.0.0.2", "hello"],
        "{}",
        run.dump()
    );
    // The resolver's queries carry random ids: not compared, so the verdict is clean.
    run.assert_code(0);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["clean"], true, "{r}");
    assert!(r["flows"].as_array().unwrap().is_empty(), "{r}");
}

#[test]
fn allow_external_forwards_outside_names_to_the_host_resolver() {
    need("dnsmasq");
    need("dig");
    let dir = TempDir::new("dns-forward");
    let dns = Dnsmasq::start(&dir, 77, &["/outside.test/192.0.2.7"]);
    let cap = dir.join("fwd.traffic");
    let client =
        "sh -c 'dig +short outside.test; dig +short p0; dig +short nothing.invalid | wc -l; \
         dig +tcp +short outside.test'";
    let run = dns.record(&["-f", &cap, "--allow-external", client]);
    let (ready, addr) = (dns.ready, dns.addr.clone());
    drop(dns);
    assert!(ready, "dnsmasq on {addr} never answered");
    let run = run.unwrap();
    run.assert_code(0);
    assert_eq!(
        stdout_lines(&run),
        vec!["192.0.2.7", "10.0.0.2", "0", "192.0.2.7"],
        "{}",
        run.dump()
    );
    // The forwarded answer is on the record, from the gateway, under the client's own id.
    let c = Capture::read(Path::new(&cap));
    let dgrams = resolver_datagrams(&c);
    let forwarded = dgrams
        .iter()
        .filter(|(from_gw, p)| *from_gw && p.windows(4).any(|w| w == [192, 0, 2, 7]))
        .count();
    assert_eq!(forwarded, 1, "{dgrams:?}");
    for pair in dgrams.chunks(2) {
        if let [(false, q), (true, a)] = pair {
            assert_eq!(q[..2], a[..2], "the answer carries the query's id");
        }
    }
}

/// `plg record ARGS` in a private mount namespace whose /etc is a copy of the host's with
/// `/etc/resolv.conf` as `setup` leaves it (run in the copy's directory).
fn with_resolv_conf(dir: &TempDir, setup: &str, args: &[&str]) -> common::Run {
    let etc = dir.join("etc");
    let script = format!(
        "mkdir -p {etc} && cp -a /etc/. {etc}/ && rm -f {etc}/resolv.conf && \
         (cd {etc} && {setup}) && mount --bind {etc} /etc || exit 99; exec \"$0\" \"$@\""
    );
    let mut all = vec!["-m", "sh", "-c", &script, PLG, "record"];
    all.extend_from_slice(args);
    Plg::wrapped("unshare", &all).run()
}

#[test]
fn a_symlinked_resolv_conf_is_followed_and_a_missing_or_dangling_one_left_alone() {
    need("dig");
    let client = "sh -c 'grep -c \"generated by plg\" /etc/resolv.conf 2>/dev/null || echo none; \
                  getent hosts p0 | tr -s \" \"'";
    // A symlink (as systemd-resolved makes it): the bind mount follows it, inside only.
    let dir = TempDir::new("dns-symlink");
    let real = dir.join("real-resolv.conf");
    std::fs::write(&real, "nameserver 192.0.2.53\n").unwrap();
    let cap = dir.join("s.traffic");
    let run = with_resolv_conf(
        &dir,
        &format!("ln -s {real} resolv.conf"),
        &["-f", &cap, client],
    );
    run.assert_code(0);
    assert_eq!(
        stdout_lines(&run),
        // `getent hosts` asks for IPv6 first: p0's IPv6 address, from /etc/hosts.
        vec!["1", "fd00:706c:67::2 p0"],
        "{}",
        run.dump()
    );
    assert_eq!(
        std::fs::read_to_string(&real).unwrap(),
        "nameserver 192.0.2.53\n",
        "the host's file changed"
    );
    // None at all, or a dangling symlink: nothing to mount over, and /etc/hosts still works.
    for (tag, setup) in [
        ("missing", "true"),
        ("dangling", "ln -s /nonexistent/resolv.conf ."),
    ] {
        let dir = TempDir::new(&format!("dns-{tag}"));
        let cap = dir.join("m.traffic");
        let run = with_resolv_conf(&dir, setup, &["-f", &cap, client]);
        run.assert_code(0);
        assert_eq!(
            stdout_lines(&run),
            vec!["none", "fd00:706c:67::2 p0"],
            "{tag}: {}",
            run.dump()
        );
    }
}

#[test]
fn idle_dns_over_tcp_connections_are_capped_and_expire_and_the_resolver_recovers() {
    need("dig");
    let dir = TempDir::new("dns-cap");
    let cap = dir.join("cap.traffic");
    // 80 idle connections, over the cap of 64: the 16 past it are closed by the server at
    // once (EOF); the others when they have been idle too long (bounded wait, no timing
    // assertion). Then TCP answers again.
    let hog = r#"
import select, socket, struct, time
gw = ("10.0.0.1", 53)
conns = [socket.create_connection(gw, timeout=5) for _ in range(80)]
def closed():
    n = 0
    for c in conns:
        r, _, _ = select.select([c], [], [], 0)
        if r and c.recv(1, socket.MSG_PEEK) == b"":
            n += 1
    return n
time.sleep(1)
print("closed past the cap", closed())
for _ in range(300):
    if closed() == 80:
        break
    time.sleep(0.1)
print("closed when idle", closed())
for c in conns:
    c.close()
q = struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x02p0\x00\x00\x01\x00\x01"
t = socket.create_connection(gw, timeout=5)
t.sendall(struct.pack(">H", len(q)) + q)
a = b""
while len(a) < 2 or len(a) < 2 + struct.unpack(">H", a[:2])[0]:
    more = t.recv(4096)
    if not more:
        break
    a += more
print("answered", a[-4:] == bytes([10, 0, 0, 2]))
"#;
    let run = record_ok(&["-f", &cap, &format!("{PY} -c {}", sh_quote(hog))]);
    assert_eq!(
        stdout_lines(&run),
        vec![
            "closed past the cap 16",
            "closed when idle 80",
            "answered True"
        ],
        "{}",
        run.dump()
    );
}
