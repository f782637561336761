//! `plg diff` over IPv6 traffic that is not TCP: UDP6 datagrams between processes are
//! compared as the IPv4 ones are (destination, protocol, service port, payload; never the
//! ephemeral port or the checksum), and the resolver's datagrams at the IPv6 gateway are left
//! out like those at the IPv4 one.
//!
//! Needs root, /dev/net/tun, python3 and dig: fails loudly without.

mod common;
#[path = "common/replay.rs"]
mod replay;

use common::{sh_quote, TempDir, PY};
use replay::{record_ok, PLG};
use std::process::Command;

/// p0 answers UDP6 datagrams on port 5353 with their payload upper-cased; p1 sends `word`
/// and asks the resolver for p0 over IPv6.
fn record(dir: &TempDir, name: &str, word: &str) -> String {
    let cap = dir.join(name);
    let server = r#"
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(("::", 5353))
while True:
    b, a = s.recvfrom(100)
    s.sendto(b.upper(), a)
"#;
    let client = format!(
        r#"
import socket, subprocess
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(0.2)
for _ in range(50):  # --ready saw the socket bound; this only guards a lost datagram
    s.sendto(b"{word}", ("fd00:706c:67::2", 5353))
    try:
        print(s.recvfrom(100)[0].decode())
        break
    except (socket.timeout, ConnectionRefusedError):
        pass
subprocess.run(["dig", "+short", "@fd00:706c:67::1", "p0"], check=True)
"#
    );
    let run = record_ok(&[
        "-f",
        &cap,
        "--ready",
        "p0:5353",
        &format!("{PY} -c {}", sh_quote(server)),
        &format!("{PY} -c {}", sh_quote(&client)),
    ]);
    assert!(run.stdout.contains(&word.to_uppercase()), "{}", run.dump());
    cap
}

#[test]
fn ipv6_datagrams_diff_equal_across_runs_and_a_changed_payload_is_caught() {
    let dir = TempDir::new("diff-v6");
    let a = record(&dir, "a.traffic", "hello");
    let b = record(&dir, "b.traffic", "hello");
    let c = record(&dir, "c.traffic", "bye");
    let diff = |x: &str, y: &str| {
        Command::new(PLG)
            .args(["diff", "--json", x, y])
            .output()
            .unwrap()
    };
    let same = diff(&a, &b);
    let text = String::from_utf8_lossy(&same.stdout);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&same.stderr)
    );
    assert!(!text.contains("unreadable"), "{text}");
    let changed = diff(&a, &c);
    let text = String::from_utf8_lossy(&changed.stdout);
    assert_eq!(changed.status.code(), Some(1), "{text}");
    assert!(
        text.contains("fd00:706c:67::2"),
        "the flow names its IPv6 receiver: {text}"
    );
}
