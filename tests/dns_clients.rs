//! Names over DNS, seen by resolvers that do not go through glibc: python's dnspython and Go's
//! pure resolver each read /etc/resolv.conf themselves, speak DNS to plg's resolver at the
//! gateway, and must get the session's names (A, AAAA, PTR, over UDP and TCP, at both
//! gateways) and a definite "not found" for an outside name.
//!
//! Go's resolver reads /etc/hosts before DNS by default, and the hosts file plg gives every
//! process names the same peers: the Go program runs with an nsswitch.conf saying `hosts: dns`
//! (bind-mounted in a mount namespace of its own) and without plg's hosts file (Go's reverse
//! lookup reads it whatever nsswitch.conf says; the host's own one is left), and `GODEBUG=netdns=go+2` makes Go print
//! the order it used, so the test knows the answers came over DNS.
//!
//! Needs root, /dev/net/tun, python3-dnspython and golang-go: fails loudly without.

mod common;
#[path = "common/replay.rs"]
mod replay;

use common::{need, sh_quote, Capture, TempDir, PY};
use replay::{record_ok, PLG};
use std::path::Path;
use std::process::Command;

/// dnspython's own resolver (it reads /etc/resolv.conf itself, never glibc).
const DNSPYTHON: &str = r#"
import dns.resolver, dns.reversename
r = dns.resolver.Resolver()
r.lifetime = 5
print("NS", " ".join(r.nameservers))
print("A", " ".join(sorted(a.address for a in r.resolve("p0", "A"))))
print("AAAA", " ".join(sorted(a.address for a in r.resolve("p0", "AAAA"))))
print("TCP", " ".join(sorted(a.address for a in r.resolve("web", "A", tcp=True))))
print("PTR", " ".join(str(a) for a in r.resolve(dns.reversename.from_address("10.0.0.3"), "PTR")))
print("PTR6", " ".join(str(a) for a in r.resolve(dns.reversename.from_address("fd00:706c:67::3"), "PTR")))
v6 = dns.resolver.Resolver(configure=False)
v6.nameservers = ["fd00:706c:67::1"]
v6.lifetime = 5
print("V6NS", " ".join(sorted(a.address for a in v6.resolve("p1.", "A"))))
try:
    r.resolve("nothing-here.example.", "A")
    print("OUTSIDE resolved")
except dns.resolver.NXDOMAIN:
    print("OUTSIDE NXDOMAIN")
"#;

/// Go's pure resolver (`PreferGo`): names, reverse names and an outside name, each on a line.
const GO_RESOLVE: &str = r#"
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
)

func main() {
	r := &net.Resolver{PreferGo: true}
	ctx := context.Background()
	for _, name := range os.Args[1:] {
		var out []string
		var err error
		if net.ParseIP(name) != nil {
			out, err = r.LookupAddr(ctx, name)
		} else {
			out, err = r.LookupHost(ctx, name)
		}
		var de *net.DNSError
		switch {
		case errors.As(err, &de) && de.IsNotFound:
			fmt.Println(name, "NOTFOUND")
		case err != nil:
			fmt.Println(name, "ERROR", err)
		default:
			sort.Strings(out)
			fmt.Println(name, strings.Join(out, " "))
		}
	}
}
"#;

/// UDP datagrams of the capture sent to a gateway's port 53 (IPv4 or IPv6).
fn queries_to_the_gateway(c: &Capture) -> usize {
    c.packets
        .iter()
        .filter(|p| {
            let b = &p.bytes;
            match b.first().map(|v| v >> 4) {
                Some(4) if b.len() >= 28 && b[9] == 17 => {
                    let ihl = usize::from(b[0] & 0xf) * 4;
                    b[16..20] == [10, 0, 0, 1] && b[ihl + 2..ihl + 4] == [0, 53]
                }
                Some(6) if b.len() >= 48 && b[6] == 17 => {
                    let gw: std::net::Ipv6Addr = "fd00:706c:67::1".parse().unwrap();
                    b[24..40] == gw.octets() && b[42..44] == [0, 53]
                }
                _ => false,
            }
        })
        .count()
}

fn check_clean(cap: &str) {
    let check = Command::new(PLG)
        .args(["inspect", "--check", cap])
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
}

#[test]
fn dnspython_resolves_session_names_at_the_gateway() {
    let have = Command::new(PY)
        .args(["-c", "import dns.resolver"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        have,
        "python3's dns module is missing: install python3-dnspython (.ci/run does)"
    );
    let dir = TempDir::new("dns-dnspython");
    let cap = dir.join("dnspython.traffic");
    let run = record_ok(&[
        "-f",
        &cap,
        "--names",
        "web,client",
        "sleep 30",
        &format!("{PY} -c {}", sh_quote(DNSPYTHON)),
    ]);
    assert_eq!(
        run.lines_of("client"),
        vec![
            "NS 10.0.0.1 fd00:706c:67::1",
            "A 10.0.0.2",
            "AAAA fd00:706c:67::2",
            "TCP 10.0.0.2",
            "PTR p1.",
            "PTR6 p1.",
            "V6NS 10.0.0.3",
            "OUTSIDE NXDOMAIN",
        ],
        "{}",
        run.dump()
    );
    check_clean(&cap);
    let c = Capture::read(Path::new(&cap));
    // Every UDP question went through the capture (the TCP one is a connection).
    assert!(queries_to_the_gateway(&c) >= 6, "{}", run.dump());
}

#[test]
fn gos_pure_resolver_resolves_session_names_over_dns() {
    need("go");
    let dir = TempDir::new("dns-go");
    let src = dir.join("resolve.go");
    std::fs::write(&src, GO_RESOLVE).unwrap();
    let bin = dir.join("resolve");
    // Go's build cache and paths inside the test's directory: nothing of the host's is used
    // and nothing is fetched (the program uses the standard library only).
    let build = Command::new("go")
        .args(["build", "-o", &bin, &src])
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GO111MODULE", "off")
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .output()
        .unwrap();
    assert!(build.status.success(), "go build: {build:?}");
    let nss = dir.join("nsswitch.conf");
    std::fs::write(&nss, "hosts: dns\n").unwrap();
    let cap = dir.join("go.traffic");
    let script = format!(
        "mount --bind {nss} /etc/nsswitch.conf && umount /etc/hosts && \
         GODEBUG=netdns=go+2 {bin} p0 web 10.0.0.3 fd00:706c:67::2 nothing-here.example",
        nss = sh_quote(&nss),
        bin = sh_quote(&bin)
    );
    let run = record_ok(&[
        "-f",
        &cap,
        "--names",
        "web,client",
        "sleep 30",
        &format!("unshare -m sh -c {}", sh_quote(&script)),
    ]);
    let (debug, answers): (Vec<String>, Vec<String>) = run
        .lines_of("client")
        .into_iter()
        .partition(|l| l.starts_with("go package net:"));
    assert_eq!(
        answers,
        vec![
            "p0 10.0.0.2 fd00:706c:67::2",
            "web 10.0.0.2 fd00:706c:67::2",
            "10.0.0.3 p1.",
            "fd00:706c:67::2 p0.",
            "nothing-here.example NOTFOUND",
        ],
        "{}",
        run.dump()
    );
    // Go said it asked DNS, not the hosts file, and the questions are in the capture.
    assert!(
        debug
            .iter()
            .any(|l| l.ends_with("hostLookupOrder(p0) = dns")),
        "{}",
        run.dump()
    );
    check_clean(&cap);
    let c = Capture::read(Path::new(&cap));
    assert!(queries_to_the_gateway(&c) >= 6, "{}", run.dump());
}
