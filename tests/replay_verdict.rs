//! The replay verdict on real programs from Debian: no false green, no false red.
//! - python's http.server with curl, both live, from the example in `plg replay --help`:
//!   nothing changed, so no divergence at offset 0 (the client, fed recorded answers, used to
//!   end the session before the live server had answered); the Date header is noise that
//!   `--ignore` leaves out, and then `--strict` exits 0;
//! - dnsmasq with dig over UDP and TCP, in all three modes, with rules learned by
//!   `plg diff --learn` from two recordings: the rules hold for a third recording and still
//!   catch a changed answer; a changed answer and a client that gets no answer fail `--strict`;
//! - PostgreSQL with psql, whose query literal differs in length from the recording: no step
//!   waits for the step timeout, the divergence is reported, and `--strict` passes with a rule
//!   for the differing bytes.
//!
//! Needs root, /dev/net/tun, python3, curl, dnsmasq, dig and PostgreSQL: fails loudly without.

mod common;
#[path = "common/replay.rs"]
mod replay;

use common::{need, TempDir, PY};
use replay::{record_ok, replay, PLG};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn report(path: &str) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}\n{text}"))
}

/// `plg diff` with these arguments: (exit code, stdout, stderr).
fn plg(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(PLG).args(args).output().expect("run plg");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Records python's http.server (p0, serving "hello" from a fresh directory) with these
/// clients; returns the directory and the capture's path.
fn record_web(tag: &str, clients: &[&str]) -> (TempDir, String) {
    need("curl");
    let dir = TempDir::new(tag);
    std::fs::write(dir.path().join("index.html"), "hello\n").unwrap();
    let cap = dir.join("web.traffic");
    let server = format!("{PY} -m http.server 8000 --directory {}", dir.join(""));
    let mut args = vec!["-f", &cap, "--ready", "p0:8000", &server];
    args.extend_from_slice(clients);
    record_ok(&args);
    (dir, cap)
}

#[test]
fn the_help_example_with_both_sides_live_is_not_red_and_date_is_noise() {
    let (dir, cap) = record_web("rv-http", &["curl -s http://p0:8000/"]);
    // Several times: the false red was a race between the live client and the live server.
    for n in 0..3 {
        let again = dir.join(&format!("again{n}.traffic"));
        let json = dir.join(&format!("r{n}.json"));
        let run = replay(&[
            "-f", &cap, "-o", &again, "--ready", "p0:8000", "--report", &json,
        ])
        .run();
        run.assert_code(0);
        let r = report(&json);
        let c = &r["connections"][0];
        assert_eq!(c["replay_id"], 0, "{}", run.dump());
        // The live server answered in full; whatever differs is not "from offset 0".
        assert_eq!(
            c["live_bytes"]["server_to_client"],
            c["recorded_bytes"]["server_to_client"],
            "{}",
            run.dump()
        );
        assert_ne!(c["diverged_at"]["server_to_client"], 0, "{}", run.dump());
        assert!(c["close_mismatch"].is_null(), "{}", run.dump());

        let json = dir.join(&format!("s{n}.json"));
        let run = replay(&[
            "-f",
            &cap,
            "--ready",
            "p0:8000",
            "--strict",
            "--ignore",
            "Date: [^\\r]*",
            "--report",
            &json,
        ])
        .run();
        run.assert_code(0);
        assert!(
            run.stderr
                .contains("the live processes behaved as recorded"),
            "{}",
            run.dump()
        );
        let r = report(&json);
        assert_eq!(r["clean"], true);
        assert_eq!(r["strict"], true);
        assert_eq!(r["main_exit_code"], 0);
        assert_eq!(r["connections"][0]["status"], "same");
    }
}

const DNSMASQ_CONF: &str = "no-resolv\nno-hosts\nport=53\nlisten-address=0.0.0.0\n\
    bind-interfaces\naddress=/svc.test/10.1.2.3\n";
const DIG: &str =
    "dig +short +tries=1 +timeout=2 @p0 svc.test; dig +short +tcp +tries=1 +timeout=2 @p0 svc.test";

fn dnsmasq(conf: &str) -> String {
    format!("exec dnsmasq -k -C {conf}")
}

fn record_dns(dir: &TempDir, name: &str, conf: &str) -> String {
    let cap = dir.join(name);
    let run = record_ok(&["-f", &cap, "--ready", "p0:53", &dnsmasq(conf), DIG]);
    assert_eq!(run.lines_of("p1").len(), 2, "{}", run.dump());
    cap
}

#[test]
fn dns_over_udp_and_tcp_replays_in_every_mode_and_fails_strict_when_it_should() {
    need("dnsmasq");
    need("dig");
    let dir = TempDir::new("rv-dns");
    let conf = dir.join("dns.conf");
    std::fs::write(&conf, DNSMASQ_CONF).unwrap();
    let changed = dir.join("changed.conf");
    std::fs::write(&changed, DNSMASQ_CONF.replace("10.1.2.3", "10.9.9.9")).unwrap();
    let a = record_dns(&dir, "a.traffic", &conf);
    let b = record_dns(&dir, "b.traffic", &conf);
    let c = record_dns(&dir, "c.traffic", &conf);
    let d = record_dns(&dir, "changed.traffic", &changed);

    // Rules learned from two recordings: no placeholder bytes, no whole connection left out;
    // they hold for a third recording and still catch a changed answer.
    let rules = dir.join("dns.rules");
    let (code, _, err) = plg(&["diff", "--learn", "-o", &rules, &a, &b]);
    assert_eq!(code, Some(0), "{err}");
    let text = std::fs::read_to_string(&rules).unwrap();
    assert!(!text.contains("nored") && !text.contains("\\x1b"), "{text}");
    assert!(!text.contains("\nignore-conn"), "{text}");
    let (code, out, _) = plg(&["diff", "--rules", &rules, &a, &c]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out, _) = plg(&["diff", "--rules", &rules, &a, &d]);
    assert_eq!(code, Some(1), "{out}");

    let strict = |cmds: &[&str], tag: &str| {
        let json = dir.join(&format!("{tag}.json"));
        let mut args = vec!["-f", &a, "--strict", "--rules", &rules, "--report", &json];
        args.extend_from_slice(cmds);
        let run = replay(&args).run();
        let r = report(&json);
        (run, r)
    };
    // Client live, server played: dig gets its answers over UDP (readdressed, with its own
    // id) and over TCP.
    let (run, r) = strict(&["-", DIG], "client");
    assert_eq!(
        run.lines_of("p1"),
        vec!["10.1.2.3", "10.1.2.3"],
        "{}",
        run.dump()
    );
    run.assert_code(0);
    assert_eq!(r["clean"], true);
    // Server live, client played.
    let (run, _) = strict(&[&dnsmasq(&conf), "-"], "server");
    run.assert_code(0);
    // Both live.
    let (run, _) = strict(&[&dnsmasq(&conf), DIG], "both");
    run.assert_code(0);
    // A live server that answers something else: red, over UDP and TCP.
    let (run, r) = strict(&[&dnsmasq(&changed), "-"], "changed");
    run.assert_code(1);
    assert!(!r["flows"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(r["connections"][0]["status"], "diverged", "{r}");
    // A live client that gets no answer at all: red.
    let (run, r) = strict(&["exec sleep 30", DIG], "silent");
    run.assert_code(1);
    assert!(
        !r["exit_mismatches"].as_array().unwrap().is_empty(),
        "dig failed but its exit was not judged: {r}"
    );
    assert!(
        !run.stderr.contains("behaved as recorded"),
        "{}",
        run.dump()
    );
}

/// The PostgreSQL server binary of the installed major version.
fn postgres_bin() -> String {
    let dirs = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is missing: install postgresql (.ci/run does)");
    let mut bins: Vec<_> = dirs
        .filter_map(|d| d.ok())
        .map(|d| d.path().join("bin"))
        .filter(|b| b.join("postgres").exists())
        .collect();
    bins.sort();
    bins.pop()
        .expect("no /usr/lib/postgresql/*/bin/postgres")
        .display()
        .to_string()
}

#[test]
fn a_psql_query_of_another_length_replays_without_waiting_and_strict_passes_with_a_rule() {
    need("psql");
    need("setpriv");
    let bin = postgres_bin();
    let dir = TempDir::new("rv-pg");
    let data = dir.path().join("data");
    let chown = |p: &Path| {
        assert!(Command::new("chown")
            .args(["-R", "postgres:postgres", &p.display().to_string()])
            .status()
            .unwrap()
            .success())
    };
    chown(dir.path());
    let ok = Command::new("setpriv")
        .args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
        .arg(format!("{bin}/initdb"))
        .args(["-A", "trust", "-U", "postgres", "-D"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhost all all 0.0.0.0/0 trust\n",
    )
    .unwrap();
    chown(&data);
    // setpriv execs postgres itself: no runuser in between to turn a second SIGTERM into
    // a SIGKILL mid-shutdown.
    let server = format!(
        "exec setpriv --reuid=postgres --regid=postgres --init-groups {bin}/postgres -D {} \
         -k {} -c listen_addresses=*",
        data.display(),
        dir.join("")
    );
    let psql = |lit: &str| format!("psql -h p0 -U postgres -Atc \"select '{lit}'\"");
    let record = |name: &str, lit: &str| {
        let cap = dir.join(name);
        let run = record_ok(&["-f", &cap, "--ready", "p0:5432", &server, &psql(lit)]);
        assert_eq!(run.lines_of("p1"), vec![lit], "{}", run.dump());
        cap
    };
    let cap = record("pg.traffic", "abc");

    // Rules learned from two recordings (BackendKeyData's pid and key differ every run) hold
    // for a third and still catch another answer.
    let (second, third, other) = (
        record("pg2.traffic", "abc"),
        record("pg3.traffic", "abc"),
        record("pg4.traffic", "abd"),
    );
    let rules = dir.join("pg.rules");
    let (code, _, err) = plg(&["diff", "--learn", "-o", &rules, &cap, &second]);
    assert_eq!(code, Some(0), "{err}");
    let text = std::fs::read_to_string(&rules).unwrap();
    assert!(
        !text.contains("nored") && !text.contains("\nignore-conn"),
        "{text}"
    );
    let (code, out, _) = plg(&["diff", "--rules", &rules, &cap, &third]);
    assert_eq!(code, Some(0), "{text}\n{out}");
    let (code, out, _) = plg(&["diff", "--rules", &rules, &cap, &other]);
    assert_eq!(code, Some(1), "{text}\n{out}");

    // The live query is three bytes longer than recorded.
    let json = dir.join("longer.json");
    let run = replay(&["-f", &cap, "--report", &json, "-", &psql("abcdef")]).run();
    run.assert_code(0);
    let r = report(&json);
    let c = &r["connections"][0];
    assert_eq!(
        c["step_timeouts"], 0,
        "a step waited for the step timeout: {r}"
    );
    assert_eq!(c["status"], "diverged", "{r}");
    assert!(c["diverged_at"]["client_to_server"].is_u64(), "{r}");
    assert!(run
        .stderr
        .contains("the client sent other bytes than recorded from offset"));

    let json = dir.join("strict.json");
    let run = replay(&[
        "-f",
        &cap,
        "--strict",
        "--ignore",
        "(?s)Q.{4}select '[a-z]+'",
        "--report",
        &json,
        "-",
        &psql("abcdef"),
    ])
    .run();
    run.assert_code(0);
    let r = report(&json);
    assert_eq!(r["connections"][0]["status"], "same", "{r}");
    assert_eq!(r["connections"][0]["step_timeouts"], 0, "{r}");
    assert_eq!(
        r["connections"][0]["noise_only"]["client_to_server"], true,
        "{r}"
    );
}

const GRPC_SERVER: &str = r#"
import grpc
from concurrent import futures
def echo(req, ctx):
    return b"echo:" + req
h = grpc.method_handlers_generic_handler("plg.Echo", {"Say": grpc.unary_unary_rpc_method_handler(echo)})
s = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
s.add_generic_rpc_handlers((h,))
s.add_insecure_port("0.0.0.0:50051")
s.start()
s.wait_for_termination()
"#;

const GRPC_CLIENT: &str = r#"
import grpc
ch = grpc.insecure_channel("p0:50051")
say = ch.unary_unary("/plg.Echo/Say")
print(say(b"hello", timeout=10).decode())
"#;

/// Regression: 2 of 10 gRPC recordings deadlocked the client when its server was played (the
/// server's SETTINGS ACK was held back until the client had sent as many bytes as recorded).
/// Ten fresh recordings, each replayed with the server played: every call completes, and no
/// step waits for the step timeout.
#[test]
fn ten_grpc_recordings_replay_with_the_server_played() {
    let have = Command::new(PY)
        .args(["-c", "import grpc"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        have,
        "python3-grpcio is missing: install it (.ci/run installs every tool the tests use)"
    );
    let dir = TempDir::new("rv-grpc");
    let (srv, cli) = (dir.join("srv.py"), dir.join("cli.py"));
    std::fs::write(&srv, GRPC_SERVER).unwrap();
    std::fs::write(&cli, GRPC_CLIENT).unwrap();
    let server = format!("exec {PY} {srv}");
    let client = format!("{PY} {cli}");
    for n in 0..10 {
        let cap = dir.join(&format!("g{n}.traffic"));
        let run = record_ok(&["-f", &cap, "--ready", "p0:50051", &server, &client]);
        assert_eq!(run.lines_of("p1"), vec!["echo:hello"], "{}", run.dump());
        let json = dir.join(&format!("g{n}.json"));
        let run = replay(&["-f", &cap, "--report", &json, "-", &client]).run();
        run.assert_code(0);
        assert_eq!(run.lines_of("p1"), vec!["echo:hello"], "{}", run.dump());
        let r = report(&json);
        assert_eq!(
            r["connections"][0]["step_timeouts"], 0,
            "recording {n}: {r}"
        );
        assert_ne!(
            r["connections"][0]["status"], "unused",
            "recording {n}: {r}"
        );
    }
}

/// In a partial replay, a connection between two played processes is written to `-o` as
/// played, so that `plg diff` of the recording and the replay does not call it missing.
#[test]
fn connections_between_played_processes_are_in_the_replay_capture() {
    let (dir, cap) = record_web(
        "rv-partial",
        &[
            "curl -s http://p0:8000/ && sleep 0.3",
            "curl -s http://p0:8000/",
        ],
    );
    let again = dir.join("again.traffic");
    let run = replay(&[
        "-f",
        &cap,
        "-o",
        &again,
        "-",
        "-",
        "curl -s http://p0:8000/",
    ])
    .run();
    run.assert_code(0);
    assert_eq!(run.lines_of("p2"), vec!["hello"], "{}", run.dump());
    let (code, out, err) = plg(&["diff", &cap, &again]);
    assert!(
        !out.contains("MISSING") && !out.contains("missing"),
        "{out}{err}"
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) = plg(&["inspect", "--check", &again]);
    assert_eq!(code, Some(0), "{out}{err}");
}

/// A TLS client replayed against its played server cannot get through the handshake (fresh
/// randoms and keys every run): the verdict says so in words, not only as an offset, and the
/// client's failure is a divergence.
#[test]
fn a_divergence_in_a_tls_handshake_is_named() {
    need("openssl");
    need("curl");
    let dir = TempDir::new("rv-tls");
    let (key, cert) = (dir.join("k.pem"), dir.join("c.pem"));
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=p0", "-keyout", &key, "-out", &cert])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let server = format!("exec openssl s_server -quiet -accept 4433 -cert {cert} -key {key} -www");
    let client = "curl -sk -o /dev/null -w '%{http_code}\\n' https://p0:4433/";
    let cap = dir.join("tls.traffic");
    let run = record_ok(&["-f", &cap, "--ready", "p0:4433", &server, client]);
    assert_eq!(run.lines_of("p1"), vec!["200"], "{}", run.dump());
    let json = dir.join("tls.json");
    let run = replay(&["-f", &cap, "--strict", "--report", &json, "-", client]).run();
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("TLS handshake: byte replay cannot reproduce it"),
        "{}",
        run.dump()
    );
    let r = report(&json);
    assert!(
        r["connections"][0]["cannot_replay"]
            .as_str()
            .is_some_and(|s| s.starts_with("TLS")),
        "{r}"
    );
}
