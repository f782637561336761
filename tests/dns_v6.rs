//! plg's resolver at the IPv6 gateway, as `record_dns.rs` checks it at the IPv4 one:
//! - `dig +tcp` at the IPv6 gateway gets the session's names (it was refused: only the IPv4
//!   gateway's port 53 led to the resolver), recorded as a connection to `external:53` over
//!   IPv6;
//! - with `--allow-external`, an outside name asked at the IPv6 gateway, over UDP and TCP, is
//!   forwarded to the host's resolver (it got NXDOMAIN over UDP): a dnsmasq the test starts on
//!   a host loopback address, named through `PLG_HOST_RESOLV_CONF` (no packet leaves the
//!   machine); the answer comes back from the IPv6 gateway under the client's own id;
//! - in replay, a client whose server is played still resolves names at the IPv6 gateway, over
//!   UDP and TCP, and the verdict is clean.
//!
//! Needs root, /dev/net/tun, dig (bind9-dnsutils), dnsmasq, python3 and curl.

mod common;
#[path = "common/dnsmasq.rs"]
mod dnsmasq;
#[path = "common/replay.rs"]
mod replay;

use common::{need, Capture, Plg, TempDir, PY};
use dnsmasq::Dnsmasq;
use plg::format::{Outcome, EXTERNAL};
use replay::{record_ok, replay, PLG};
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::process::Command;

const GW6: &str = "fd00:706c:67::1";
const P0_6: &str = "fd00:706c:67::2";

/// What a lone process printed (plg prefixes lines only when there are several).
fn stdout_lines(run: &common::Run) -> Vec<String> {
    run.stdout.lines().map(String::from).collect()
}

fn check(cap: &str) {
    let out = Command::new(PLG)
        .args(["inspect", "--check", cap])
        .output()
        .unwrap();
    assert!(out.status.success(), "inspect --check {cap}: {out:?}");
}

/// `dig` at the IPv6 gateway, one try, short output.
fn dig(args: &str) -> String {
    format!("dig @{GW6} +short +tries=1 +timeout=2 {args}")
}

/// UDP datagrams of the capture to or from the IPv6 gateway's port 53: (from gateway, payload).
fn resolver_datagrams6(c: &Capture) -> Vec<(bool, Vec<u8>)> {
    let gw = GW6.parse::<Ipv6Addr>().unwrap().octets();
    c.packets
        .iter()
        .filter_map(|p| {
            let b = &p.bytes;
            if b.len() < 48 || b[0] >> 4 != 6 || b[6] != 17 {
                return None;
            }
            let sport = u16::from_be_bytes([b[40], b[41]]);
            let dport = u16::from_be_bytes([b[42], b[43]]);
            if b[24..40] == gw && dport == 53 {
                Some((false, b[48..].to_vec()))
            } else if b[8..24] == gw && sport == 53 {
                Some((true, b[48..].to_vec()))
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn dig_over_tcp_at_the_v6_gateway_gets_the_session_names() {
    need("dig");
    let dir = TempDir::new("dns6-tcp");
    let cap = dir.join("tcp6.traffic");
    let client = format!(
        "sh -c '{}; {}; {}'",
        dig("+tcp p0 AAAA"),
        dig("+tcp p0 A"),
        dig("+tcp -x fd00:706c:67::2"),
    );
    let run = Plg::record(&["-f", &cap, &client]).run();
    run.assert_code(0);
    assert_eq!(
        stdout_lines(&run),
        vec![P0_6, "10.0.0.2", "p0."],
        "{}",
        run.dump()
    );
    check(&cap);
    let c = Capture::read(Path::new(&cap));
    let conns = c.conns_to(EXTERNAL, 53);
    assert_eq!(conns.len(), 3, "{:#?}", c.conns);
    for conn in conns {
        assert_eq!(conn.open.outcome, Outcome::Established);
        assert_eq!(
            conn.open.server_addr.ip(),
            IpAddr::V6(GW6.parse::<Ipv6Addr>().unwrap())
        );
        // One length-prefixed query, one answer.
        assert!(conn.c2s.len() > 2 && conn.s2c.len() > 2, "{conn:?}");
    }
}

#[test]
fn allow_external_forwards_outside_names_asked_at_the_v6_gateway() {
    need("dnsmasq");
    need("dig");
    let dir = TempDir::new("dns6-forward");
    let dns = Dnsmasq::start(
        &dir,
        78,
        &["/outside.test/192.0.2.7", "/outside.test/2001:db8::7"],
    );
    let cap = dir.join("fwd6.traffic");
    let client = format!(
        "sh -c '{}; {}; {}; {} | wc -l; {}'",
        dig("outside.test"),
        dig("outside.test AAAA"),
        dig("p0 AAAA"),
        dig("nothing.invalid"),
        dig("+tcp outside.test AAAA"),
    );
    let run = dns.record(&["-f", &cap, "--allow-external", &client]);
    let (ready, addr) = (dns.ready, dns.addr.clone());
    drop(dns);
    assert!(ready, "dnsmasq on {addr} never answered");
    let run = run.unwrap();
    run.assert_code(0);
    assert_eq!(
        stdout_lines(&run),
        vec!["192.0.2.7", "2001:db8::7", P0_6, "0", "2001:db8::7"],
        "{}",
        run.dump()
    );
    check(&cap);
    // The forwarded answers are on the record, from the IPv6 gateway, under the client's ids.
    let c = Capture::read(Path::new(&cap));
    let dgrams = resolver_datagrams6(&c);
    let forwarded = dgrams
        .iter()
        .filter(|(from_gw, p)| *from_gw && p.windows(4).any(|w| w == [192, 0, 2, 7]))
        .count();
    assert_eq!(forwarded, 1, "{dgrams:?}");
    assert_eq!(dgrams.len(), 8, "{dgrams:?}");
    for pair in dgrams.chunks(2) {
        let [(false, q), (true, a)] = pair else {
            panic!("not a query and its answer: {pair:?}");
        };
        assert_eq!(q[..2], a[..2], "the answer carries the query's id");
    }
}

#[test]
fn a_client_whose_server_is_played_still_resolves_names_at_the_v6_gateway() {
    need("dig");
    need("curl");
    let dir = TempDir::new("dns6-replay");
    std::fs::write(dir.path().join("index.html"), "hello\n").unwrap();
    let cap = dir.join("web6.traffic");
    let server = format!(
        "{PY} -m http.server --bind :: 8000 --directory {}",
        dir.join("")
    );
    let client = format!(
        "sh -c '{} && {} && curl -s -6 http://p0:8000/index.html'",
        dig("p0 AAAA"),
        dig("+tcp p0 AAAA"),
    );
    let run = record_ok(&["-f", &cap, "--ready", "p0:8000", &server, &client]);
    let want = vec![P0_6, P0_6, "hello"];
    assert_eq!(run.lines_of("p1"), want, "{}", run.dump());
    let json = dir.join("replay.json");
    let run = replay(&["-f", &cap, "--strict", "--report", &json, "-", &client]).run();
    assert_eq!(run.lines_of("p1"), want, "{}", run.dump());
    // The resolver's queries carry random ids: not compared, so the verdict is clean.
    run.assert_code(0);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["clean"], true, "{r}");
    assert!(r["flows"].as_array().unwrap().is_empty(), "{r}");
}
