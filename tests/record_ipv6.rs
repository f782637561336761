//! IPv6 dual stack, with real programs: python servers on `::` and on an IPv6-only socket,
//! nginx listening per family, redis on `::`, socat over UDP6, ping -6, connections to
//! addresses nobody owns, the export tshark reads, and `--no-ipv6`. Each test checks what the
//! programs saw and what the capture holds, byte for byte, and that `plg inspect --check`
//! passes on every capture written. Needs root, /dev/net/tun, python3, curl, nginx,
//! redis-server, socat, ping and tshark.

mod common;

use common::{Capture, Plg, TempDir, PY};
use plg::format::{Direction, Outcome};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::Command;

const PLG: &str = env!("CARGO_BIN_EXE_plg");
const P0_6: &str = "fd00:706c:67::2";
const P1_6: &str = "fd00:706c:67::3";

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
}

/// `plg inspect --check` passes on the capture.
fn check(cap: &str) {
    let out = Command::new(PLG)
        .args(["inspect", "--check", cap])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "inspect --check {cap}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A python server on an IPv6-only socket (IPV6_V6ONLY) answering every request with `body`.
fn v6only_server(port: u16, body: &str) -> String {
    let script = format!(
        "import socket, http.server\n\
         class S(http.server.ThreadingHTTPServer):\n\
         \x20   address_family = socket.AF_INET6\n\
         \x20   def server_bind(self):\n\
         \x20       self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)\n\
         \x20       super().server_bind()\n\
         class H(http.server.BaseHTTPRequestHandler):\n\
         \x20   def do_GET(self):\n\
         \x20       b = {body:?}.encode()\n\
         \x20       self.send_response(200); self.send_header('Content-Length', str(len(b)))\n\
         \x20       self.end_headers(); self.wfile.write(b)\n\
         S(('::', {port}), H).serve_forever()\n"
    );
    format!("{PY} -c {}", common::sh_quote(&script))
}

#[test]
fn python_on_dual_stack_and_v6_only_sockets_curl_by_name_both_families() {
    let dir = TempDir::new("v6-python");
    std::fs::write(dir.path().join("hello.txt"), "hello over both\n").unwrap();
    let cap = dir.join("v6.traffic");
    let run = Plg::record(&[
        "-f",
        &cap,
        "--ready",
        "p0:8000",
        "--ready",
        "p0:8001",
        &format!(
            "{PY} -m http.server --bind :: 8000 --directory {} & {}",
            dir.join(""),
            v6only_server(8001, "v6 only\n")
        ),
        "curl -sS -6 http://p0:8000/hello.txt && curl -sS -4 http://p0:8000/hello.txt \
         && curl -sS -6 http://p0:8001/ && curl -sS -4 http://p0:8001/ 2>/dev/null; echo \"v4 to v6-only: $?\"",
    ])
    .run();
    run.assert_code(0);
    assert_eq!(
        run.lines_of("p1"),
        vec![
            "hello over both",
            "hello over both",
            "v6 only",
            "v4 to v6-only: 7"
        ],
        "{}",
        run.dump()
    );
    // The server saw the client's real addresses, in each family.
    let log = run.output_of("p0");
    assert!(log.contains(&format!("{P1_6} - - ")), "{log}");
    assert!(log.contains("::ffff:10.0.0.3 - - "), "{log}");
    check(&cap);

    let c = Capture::read(Path::new(&cap));
    let s = c.summary();
    assert_eq!((s.connections, s.refused), (4, 1));
    let session = c.session.as_ref().unwrap();
    assert_eq!(session.format_version, 2);
    assert_eq!(
        session.subnet6,
        Some(("fd00:706c:67::".parse().unwrap(), 64))
    );
    assert_eq!(c.procs[0].addr6, Some(P0_6.parse().unwrap()));
    let to8000 = c.conns_to(0, 8000);
    assert_eq!(to8000.len(), 2);
    let (a, b) = (to8000[0], to8000[1]);
    assert_eq!(a.open.client_addr.ip(), v6(P1_6));
    assert_eq!(a.open.server_addr, SocketAddr::new(v6(P0_6), 8000));
    assert!(b.open.client_addr.is_ipv4() && b.open.server_addr.is_ipv4());
    for conn in [a, b] {
        assert_eq!(conn.open.outcome, Outcome::Established);
        assert!(conn
            .c2s
            .starts_with(b"GET /hello.txt HTTP/1.1\r\nHost: p0:8000\r\n"));
        assert!(conn.s2c.ends_with(b"\r\n\r\nhello over both\n"));
    }
    let to8001 = c.conns_to(0, 8001);
    assert_eq!(to8001.len(), 2);
    assert_eq!(to8001[0].open.server_addr.ip(), v6(P0_6));
    assert!(to8001[0].s2c.ends_with(b"v6 only\n"));
    // The IPv4 attempt at the IPv6-only socket was refused, and recorded so.
    assert!(to8001[1].open.server_addr.is_ipv4());
    assert_eq!(to8001[1].open.outcome, Outcome::Refused);

    // Stream files carry the bytes as recorded, named with the IPv6 addresses (colons as
    // dashes: no file name holds a colon).
    let streams = dir.path().join("streams");
    let out = Command::new(PLG)
        .args(["export", "--streams", streams.to_str().unwrap(), &cap])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let name = format!(
        "0000-p1_{}.{}-to-p0_{}.8000",
        P1_6.replace(':', "-"),
        a.open.client_addr.port(),
        P0_6.replace(':', "-")
    );
    let names: Vec<String> = std::fs::read_dir(&streams)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(':')), "{names:?}");
    assert_eq!(std::fs::read(streams.join(name)).unwrap(), a.c2s);
    // inspect shows [addr]:port.
    let out = Command::new(PLG)
        .args(["inspect", "--connections", &cap])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("p0 [{P0_6}]:8000")), "{text}");
}

#[test]
fn nginx_listening_per_family_answers_curl_6_and_4() {
    let dir = TempDir::new("v6-nginx");
    let d = dir.path().display().to_string();
    std::fs::create_dir(dir.path().join("tmp")).unwrap();
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid;\n\
         error_log stderr;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log off; client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp;\n\
           fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
           server {{ listen [::]:80 ipv6only=on; listen 0.0.0.0:80;\n\
             location / {{ return 200 \"from $server_addr to $remote_addr\\n\"; }} }} }}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let cap = dir.join("nginx.traffic");
    let run = Plg::record(&[
        "-f",
        &cap,
        "--ready",
        "p0:80",
        &format!("nginx -c {d}/nginx.conf"),
        "curl -sS -6 http://p0/ && curl -sS -4 http://p0/",
    ])
    .run();
    run.assert_code(0);
    assert_eq!(
        run.lines_of("p1"),
        vec![
            format!("from {P0_6} to {P1_6}"),
            "from 10.0.0.2 to 10.0.0.3".to_string()
        ],
        "{}",
        run.dump()
    );
    check(&cap);
    let c = Capture::read(Path::new(&cap));
    let conns = c.conns_to(0, 80);
    assert_eq!(conns.len(), 2);
    assert!(conns[0].open.server_addr.is_ipv6());
    assert!(conns[1].open.server_addr.is_ipv4());
    let want = format!("from {P0_6} to {P1_6}\n");
    assert!(conns[0].s2c.ends_with(want.as_bytes()));
}

#[test]
fn redis_on_v6_any_with_redis_cli_by_name_and_by_v6_address() {
    let dir = TempDir::new("v6-redis");
    let cap = dir.join("redis.traffic");
    let run = Plg::record(&[
        "-f",
        &cap,
        "--ready",
        "p0:6379",
        &format!(
            "redis-server --bind '0.0.0.0 ::' --port 6379 --protected-mode no --save '' --dir {}",
            dir.join("")
        ),
        &format!("redis-cli -h p0 set k v6 && redis-cli -h {P0_6} get k"),
    ])
    .run();
    run.assert_code(0);
    assert_eq!(run.lines_of("p1"), vec!["OK", "v6"], "{}", run.dump());
    check(&cap);
    let c = Capture::read(Path::new(&cap));
    let conns = c.conns_to(0, 6379);
    assert_eq!(conns.len(), 2);
    // hiredis resolves IPv4 first; the IPv6 literal goes over IPv6 to redis's `::` socket.
    let last = conns[1];
    assert_eq!(last.open.server_addr.ip(), v6(P0_6));
    assert_eq!(last.c2s, b"*2\r\n$3\r\nget\r\n$1\r\nk\r\n");
    assert_eq!(last.s2c, b"$2\r\nv6\r\n");
}

/// `--prefer-ipv6`: names resolve AAAA first, so a client that follows getaddrinfo's order
/// (python's `create_connection`, as curl and most programs do) reaches redis on `::` over
/// IPv6; without it, over IPv4. (`redis-cli` is no example: hiredis asks for IPv4 first
/// whatever the policy table says.)
#[test]
fn prefer_ipv6_resolves_aaaa_first_and_clients_by_name_go_over_ipv6() {
    let dir = TempDir::new("v6-prefer");
    let client = r#"python3 -c '
import socket
print(socket.getaddrinfo("p0", 1, type=socket.SOCK_STREAM)[0][4][0])
c = socket.create_connection(("p0", 6379))
c.sendall(b"PING\r\n")
print(c.recv(100).decode().strip())
'"#;
    for (flag, first) in [(Some("--prefer-ipv6"), P0_6), (None, "10.0.0.2")] {
        let cap = dir.join(&format!("prefer-{}.traffic", flag.is_some()));
        let mut args = vec!["-f", &cap, "--ready", "p0:6379"];
        args.extend(flag);
        let server = format!(
            "redis-server --bind '0.0.0.0 ::' --port 6379 --protected-mode no --save '' --dir {}",
            dir.join("")
        );
        args.extend([server.as_str(), client]);
        let run = Plg::record(&args).run();
        run.assert_code(0);
        assert_eq!(run.lines_of("p1"), vec![first, "+PONG"], "{}", run.dump());
        check(&cap);
        let c = Capture::read(Path::new(&cap));
        let conns = c.conns_to(0, 6379);
        assert_eq!(conns.len(), 1, "{flag:?}");
        assert_eq!(
            conns[0].open.server_addr.ip(),
            first.parse::<IpAddr>().unwrap(),
            "{flag:?}"
        );
        assert_eq!(conns[0].s2c, b"+PONG\r\n");
    }
}

#[test]
fn udp6_and_ping6_between_processes_pass_and_are_recorded() {
    let dir = TempDir::new("v6-udp");
    let cap = dir.join("udp.traffic");
    let run = Plg::record(&[
        "-f",
        &cap,
        "--ready",
        "p0:9000",
        "socat UDP6-RECVFROM:9000,fork EXEC:cat",
        "echo hello6 | socat -t 2 - UDP6:p0:9000 && ping -6 -c 2 -i 0.2 -W 5 p0 >/dev/null && echo pinged",
    ])
    .run();
    run.assert_code(0);
    assert_eq!(
        run.lines_of("p1"),
        vec!["hello6", "pinged"],
        "{}",
        run.dump()
    );
    check(&cap);
    let c = Capture::read(Path::new(&cap));
    // Only the datagrams and the echoes: no Neighbour Discovery, MLD or solicitation.
    let mut udp = 0;
    let mut echo = 0;
    for p in &c.packets {
        assert_eq!(p.bytes[0] >> 4, 6, "an IPv4 packet in an IPv6 test: {p:?}");
        match p.bytes[6] {
            17 => udp += 1,
            58 => {
                assert!(
                    matches!(p.bytes[40], 128 | 129),
                    "ICMPv6 type {} recorded",
                    p.bytes[40]
                );
                echo += 1;
            }
            other => panic!("next header {other} recorded"),
        }
    }
    assert_eq!((udp, echo), (2, 4), "{:?}", c.packets);
    let request = &c.packets[0];
    assert_eq!(request.interface, 1);
    assert_eq!(&request.bytes[48..], b"hello6\n");
}

#[test]
fn connections_to_v6_addresses_nobody_owns_are_refused_at_once() {
    let dir = TempDir::new("v6-unowned");
    let cap = dir.join("refused.traffic");
    // curl exits 7 on a refusal; a silent drop would be a timeout (28), not a refusal.
    let run = Plg::record(&[
        "-f",
        &cap,
        "sh -c 'curl -sS --max-time 20 http://[fd00:706c:67::99]/; echo \"in subnet: $?\"; \
         curl -sS --max-time 20 http://[2001:db8::1]/; echo \"outside: $?\"; \
         curl -sS --max-time 20 http://[fd00:706c:67::1]/; echo \"gateway: $?\"' 2>/dev/null",
    ])
    .run();
    run.assert_code(0);
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        vec!["in subnet: 7", "outside: 7", "gateway: 7"],
        "{}",
        run.dump()
    );
    check(&cap);
}

/// Both directions of TCP stream 0 as `tshark -z follow,tcp,raw,0` gives them.
fn tshark_follow0(file: &str) -> (Vec<u8>, Vec<u8>) {
    let out = Command::new("tshark")
        .args(["-r", file, "-q", "-z", "follow,tcp,raw,0"])
        .output()
        .expect("tshark must be installed");
    let text = String::from_utf8_lossy(&out.stdout);
    let unhex = |s: &str| {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for line in text.lines() {
        if line.starts_with("===") || line.starts_with("Node ") || line.contains(':') {
            continue;
        }
        if let Some(hex) = line.strip_prefix('\t') {
            b.extend(unhex(hex.trim()));
        } else if !line.trim().is_empty() {
            a.extend(unhex(line.trim()));
        }
    }
    (a, b)
}

#[test]
fn v6_export_reads_in_tshark_with_clean_analysis_and_follow_stream() {
    let dir = TempDir::new("v6-tshark");
    let big: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(dir.path().join("big.txt"), &big).unwrap();
    let cap = dir.join("t.traffic");
    let run = Plg::record(&[
        "-q",
        "-f",
        &cap,
        "--ready",
        "p0:8000",
        &format!(
            "{PY} -m http.server --bind :: 8000 --directory {}",
            dir.join("")
        ),
        "curl -sS -6 -o /dev/null http://p0:8000/big.txt",
    ])
    .run();
    run.assert_code(0);
    check(&cap);
    let c = Capture::read(Path::new(&cap));
    let conn = c.only_conn_to(0, 8000);
    assert!(conn.open.client_addr.is_ipv6());
    assert!(conn.s2c.ends_with(big.as_bytes()));
    for (flag, file) in [("--pcapng", "t.pcapng"), ("--pcap", "t.pcap")] {
        let out_file = dir.join(file);
        let out = Command::new(PLG)
            .args(["export", flag, &out_file, &cap])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let wrong = Command::new("tshark")
            .args([
                "-r",
                &out_file,
                "-o",
                "tcp.check_checksum:TRUE",
                "-Y",
                "(tcp.analysis.flags && !tcp.analysis.window_update) || tcp.checksum.status == 0 \
                 || _ws.malformed || _ws.expert.severity == error || !ipv6",
            ])
            .output()
            .unwrap();
        assert!(wrong.status.success());
        assert_eq!(
            String::from_utf8_lossy(&wrong.stdout),
            "",
            "tshark flags these"
        );
        let (a, b) = tshark_follow0(&out_file);
        assert!(a == conn.c2s, "{file}: client bytes differ");
        assert!(b == conn.s2c, "{file}: server bytes differ");
    }
    let _ = Direction::ClientToServer;
}

#[test]
fn no_ipv6_keeps_the_ipv4_only_session() {
    let dir = TempDir::new("v6-off");
    let cap = dir.join("off.traffic");
    let run = Plg::record(&[
        "-f",
        &cap,
        "--no-ipv6",
        "--ready",
        "p0:8000",
        &format!(
            "{PY} -m http.server --bind 0.0.0.0 8000 --directory {}",
            dir.join("")
        ),
        "grep -c '::' /etc/hosts; cat /proc/net/if_inet6 2>/dev/null | wc -l; \
         curl -sS -o /dev/null -w '%{http_code}\\n' http://p0:8000/; \
         curl -sS -6 http://p0:8000/ 2>/dev/null || echo 'no v6'",
    ])
    .run();
    run.assert_code(0);
    // No IPv6 line in the hosts file, no IPv6 address anywhere, IPv4 as before.
    assert_eq!(
        run.lines_of("p1"),
        vec!["0", "0", "200", "no v6"],
        "{}",
        run.dump()
    );
    check(&cap);
    let c = Capture::read(Path::new(&cap));
    assert_eq!(c.session.as_ref().unwrap().subnet6, None);
    assert!(c.procs.iter().all(|p| p.addr6.is_none()));
    assert!(c.conns.values().all(|x| x.open.client_addr.is_ipv4()));
}

#[test]
fn allow_external_maps_the_v6_gateway_to_the_hosts_ipv6_loopback() {
    use std::io::{Read, Write};
    // A one-shot HTTP server on the host's ::1: the only door out, and it stays on this machine.
    let listener = std::net::TcpListener::bind("[::1]:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        while !req.ends_with(b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "request cut short: {req:?}");
            req.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 8\r\n\r\nhost v6\n")
            .unwrap();
        (peer, req)
    });
    let dir = TempDir::new("v6-external");
    let cap = dir.join("ext6.traffic");
    let run = Plg::record(&[
        "-f",
        &cap,
        "--allow-external",
        &format!("curl -sS -6 http://gateway:{port}/from-inside"),
    ])
    .run();
    run.assert_code(0);
    assert_eq!(run.stdout, "host v6\n", "{}", run.dump());
    let (peer, req) = server.join().unwrap();
    assert_eq!(peer.ip(), IpAddr::V6(Ipv6Addr::LOCALHOST), "{peer}");
    check(&cap);
    let c = Capture::read(Path::new(&cap));
    let conn = c.conns.values().next().unwrap();
    assert_eq!(conn.open.server, plg::format::EXTERNAL);
    assert_eq!(
        conn.open.server_addr,
        SocketAddr::new(v6("fd00:706c:67::1"), port)
    );
    assert_eq!(conn.c2s, req);
}

#[test]
fn v6_bulk_transfers_are_byte_exact_with_and_without_offload() {
    let dir = TempDir::new("v6-bulk");
    // 4 MiB of a non-repeating pattern: GSO (TSO6) segments and checksums both get exercised.
    let data: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.path().join("blob"), &data).unwrap();
    for offload in [true, false] {
        let cap = dir.join(&format!("bulk-{offload}.traffic"));
        let mut args = vec!["-q", "-f", &cap, "--ready", "p0:8000"];
        if !offload {
            args.push("--no-offload");
        }
        let server = format!(
            "{PY} -m http.server --bind :: 8000 --directory {}",
            dir.join("")
        );
        let client = format!(
            "curl -sS -6 http://p0:8000/blob -o {}",
            dir.join(&format!("got-{offload}"))
        );
        args.push(&server);
        args.push(&client);
        let run = Plg::record(&args).run();
        run.assert_code(0);
        let got = std::fs::read(dir.path().join(format!("got-{offload}"))).unwrap();
        assert!(got == data, "offload {offload}: the client got other bytes");
        check(&cap);
        let c = Capture::read(Path::new(&cap));
        let conn = c.only_conn_to(0, 8000);
        assert!(conn.open.server_addr.is_ipv6());
        assert!(
            conn.s2c.ends_with(&data),
            "offload {offload}: recorded bytes differ"
        );
    }
}

#[test]
fn ready_is_not_met_by_a_listener_only_on_loopback() {
    let dir = TempDir::new("v6-ready");
    let cap = dir.join("ready.traffic");
    let run = Plg::record(&[
        "-f",
        &cap,
        "--ready",
        "p0:8000",
        "--ready-timeout",
        "2",
        &format!("{PY} -m http.server --bind ::1 8000 >/dev/null 2>&1"),
        "true",
    ])
    .run();
    run.assert_code(2);
    let line = run.assert_one_line_error();
    assert!(
        line.contains(
            "did not listen on port 8000 (IPv4 or IPv6, on an address the other processes reach)"
        ),
        "{line}"
    );
}

#[test]
fn udp6_to_a_closed_port_draws_port_unreachable_from_the_peer() {
    let dir = TempDir::new("v6-closed");
    let cap = dir.join("closed.traffic");
    // p0 runs but listens on nothing: its kernel answers ICMPv6 port unreachable, which
    // quotes p1's datagram to p0, so it passes, and the connected socket sees the refusal.
    let run = Plg::record(&[
        "-f",
        &cap,
        "sleep 30",
        &format!(
            "{PY} -c {}",
            common::sh_quote(
                "import socket, time\n\
                 s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n\
                 s.connect(('p0', 9999)); s.settimeout(10)\n\
                 s.send(b'anyone?')\n\
                 try:\n\
                 \x20   s.recv(100); print('answered')\n\
                 except ConnectionRefusedError:\n\
                 \x20   print('refused')\n"
            )
        ),
    ])
    .run();
    run.assert_code(0);
    assert_eq!(run.lines_of("p1"), vec!["refused"], "{}", run.dump());
    check(&cap);
    let c = Capture::read(Path::new(&cap));
    let kinds: Vec<(u32, u8)> = c
        .packets
        .iter()
        .map(|p| (p.interface, p.bytes[6]))
        .collect();
    assert_eq!(kinds, vec![(1, 17), (0, 58)], "{:?}", c.packets);
    assert_eq!(
        c.packets[1].bytes[40..42],
        [1, 4],
        "destination unreachable, port"
    );
}

#[test]
fn udp6_to_an_address_nobody_owns_is_refused_at_once() {
    let dir = TempDir::new("v6-udp-unowned");
    let cap = dir.join("udp-unowned.traffic");
    // ICMPv6 "administratively prohibited" from plg: a connected socket fails at once with
    // EACCES (Linux's mapping of that code), never a silent 10 s timeout.
    let run = Plg::record(&[
        "-f",
        &cap,
        &format!(
            "{PY} -c {}",
            common::sh_quote(
                "import socket\n\
                 for dst in ('fd00:706c:67::99', '2001:db8::1'):\n\
                 \x20   s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n\
                 \x20   s.connect((dst, 53)); s.settimeout(10)\n\
                 \x20   s.send(b'query')\n\
                 \x20   try:\n\
                 \x20       s.recv(100); print('answered')\n\
                 \x20   except OSError as e:\n\
                 \x20       print(type(e).__name__)\n"
            )
        ),
    ])
    .run();
    run.assert_code(0);
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        vec!["PermissionError", "PermissionError"],
        "{}",
        run.dump()
    );
    check(&cap);
}
