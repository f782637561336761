//! Sessions end, end cleanly, and touch nothing outside themselves, tried the way CI tries
//! them: escapees (`setsid`, `unshare -n`, double forks) under `kill -9`, SIGINT, SIGTERM and
//! SIGHUP; a session whose reaper is stopped and then resumed after a later session started;
//! a killed reaper; exactly one SIGTERM per process (a Python server counts them; PostgreSQL
//! started through `runuser` shuts down cleanly 10 times out of 10); plg exiting although its
//! stdout is full or its output pipe is held open from outside; `--userns`; bad input.
//! Needs root and /dev/net/tun. No timing assertions: waits are bounded, outcomes checked.

mod common;

use common::{processes_with_marker, sh_quote, Capture, Plg, TempDir, PY};
use plg::format::{ExitStatus, Record};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The reaper of plg `pid`: its child that is still a plain `plg` (the commands' inits are
/// named `plg-init`).
fn reaper_of(pid: u32) -> u32 {
    let mut found = None;
    wait_until("plg's reaper", Duration::from_secs(10), || {
        found = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .find(|p| {
                let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
                let Some((name, rest)) = stat.split_once(") ") else {
                    return false;
                };
                let ppid = rest.split_whitespace().nth(1).and_then(|f| f.parse().ok());
                name.ends_with("(plg") && ppid == Some(pid)
            });
        found.is_some()
    });
    found.unwrap()
}

fn kill(sig: &str, pid: u32) {
    let st = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid}");
}

fn has_summary(path: &str) -> bool {
    let Ok(reader) = plg::format::CaptureReader::open(Path::new(path)) else {
        return false;
    };
    reader
        .map_while(Result::ok)
        .any(|r| matches!(r, Record::Summary(_)))
}

/// A command that scatters processes plg did not start directly: a `setsid` daemon, a process
/// in a network namespace of its own, a double-forked orphan.
const ESCAPEES: &str = "setsid sleep 1000 & unshare -n sleep 1000 & (sleep 1000 &); \
                        echo scattered; exec sleep 1000";

fn escapees_die(sig: &str, code: Option<i32>) {
    let dir = TempDir::new(&format!("escape{sig}"));
    let cap = dir.join("escape.traffic");
    let mut plg = Plg::record(&["-f", &cap, "--grace", "2", ESCAPEES]).spawn();
    plg.wait_output("scattered");
    let marker = plg.marker.clone();
    wait_until("the four sleeps", Duration::from_secs(10), || {
        processes_with_marker(&marker)
            .iter()
            .filter(|(_, c)| c.starts_with("sleep"))
            .count()
            == 4
    });
    plg.signal(sig);
    let run = plg.wait();
    assert_eq!(run.code, code, "{}", run.dump());
    run.assert_no_leftover_processes();
    if code.is_some() {
        assert!(has_summary(&cap), "the capture is finished after SIG{sig}");
        run.assert_no_hosts_file();
    } else {
        let _ = std::fs::remove_file(run.hosts_file());
    }
}

/// Regression: the sweep went by network namespace, so `unshare -n sleep 1000 &` survived
/// `kill -9` of plg (and the others were found only while plg lived).
#[test]
fn escapees_die_with_kill_9_of_plg() {
    escapees_die("KILL", None);
}

#[test]
fn escapees_die_on_sigint() {
    escapees_die("INT", Some(130));
}

#[test]
fn escapees_die_on_sigterm() {
    escapees_die("TERM", Some(143));
}

/// Regression: SIGHUP (terminal closed, SSH dropped) killed plg outright, like `kill -9`: no
/// summary in the capture. It ends the session like SIGTERM now, exit 128+1.
#[test]
fn sighup_ends_the_session_like_sigterm_with_a_finished_capture() {
    escapees_die("HUP", Some(129));
}

/// Regression: every process got SIGTERM twice (its process group, then the namespace sweep).
#[test]
fn a_python_server_gets_exactly_one_sigterm_and_its_own_exit_status_is_recorded() {
    let dir = TempDir::new("oneterm");
    let cap = dir.join("oneterm.traffic");
    let log = dir.join("terms");
    // Counts every SIGTERM; after the first, listens for a second one for a while, then exits
    // 0 (as servers do on SIGTERM).
    let server = format!(
        r#"
import signal, socket, sys, time
count = 0
def on_term(sig, frame):
    global count
    count += 1
    with open({log:?}, "a") as f:
        f.write("TERM\n")
signal.signal(signal.SIGTERM, on_term)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7000))
s.listen()
while count == 0:
    time.sleep(0.05)
end = time.time() + 1.0
while time.time() < end:
    time.sleep(0.05)
sys.exit(0)
"#
    );
    let run = Plg::record(&[
        "-f",
        &cap,
        "--grace",
        "20",
        "--ready",
        "p0:7000",
        &format!("{PY} -u -c {}", sh_quote(&server)),
        "true",
    ])
    .run();
    run.assert_code(0);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "TERM\n");
    // The line was exec'd: the status is python's, not a wrapping shell's SIGTERM.
    assert_eq!(
        Capture::read(Path::new(&cap)).exit_of(0),
        Some(ExitStatus::Exited(0))
    );
}

/// Regression: dash did not exec a single command, so redis-server, which exits 0 on SIGTERM,
/// was recorded as "killed by SIGTERM" (the shell's status).
#[test]
fn redis_server_ended_by_the_session_is_recorded_as_exiting_0() {
    let dir = TempDir::new("redis0");
    let cap = dir.join("redis.traffic");
    let run = Plg::record(&[
        "-f",
        &cap,
        "--names",
        "db,app",
        "--ready",
        "db:6379",
        "redis-server --port 6379 --protected-mode no --save '' --appendonly no",
        "redis-cli -h db ping",
    ])
    .run();
    run.assert_code(0);
    assert_eq!(run.lines_of("app"), vec!["PONG"], "{}", run.dump());
    assert!(run.stderr.contains("db (redis-server"), "{}", run.dump());
    let c = Capture::read(Path::new(&cap));
    assert_eq!(c.exit_of(0), Some(ExitStatus::Exited(0)), "{}", run.dump());
}

/// Regression: the reaper swept processes by network namespace *inode number* once plg was
/// gone. The kernel hands freed numbers to the next namespaces at once, so a reaper that ran
/// late (here: stopped, then resumed while a later session runs) SIGKILLed that session.
#[test]
fn a_delayed_reaper_never_touches_a_later_session() {
    let dir = TempDir::new("lateReaper");
    let cap_a = dir.join("a.traffic");
    let mut a = Plg::record(&["-f", &cap_a, "echo up; exec sleep 1000", "exec sleep 1000"]).spawn();
    a.wait_output("p0| up");
    let reaper = reaper_of(a.pid());
    kill("STOP", reaper);
    a.signal("KILL");
    let run_a = a.wait();
    // Its sessions' processes are gone at once; only the stopped reaper (a fork of plg, so
    // with plg's marker) remains.
    wait_until("A's processes gone", Duration::from_secs(10), || {
        processes_with_marker(&run_a.marker)
            .iter()
            .all(|(p, _)| *p == reaper)
    });

    // Later sessions on the same subnet and on another, started while A's reaper is stopped.
    let go = dir.join("go");
    let wait_go = format!(
        "echo up; until [ -e {} ]; do sleep 0.05; done; echo done",
        sh_quote(&go)
    );
    let mut later = Vec::new();
    for (i, subnet) in ["10.0.0.0/24", "10.77.0.0/24"].into_iter().enumerate() {
        let cap = dir.join(&format!("later{i}.traffic"));
        let mut s = Plg::record(&[
            "-f",
            &cap,
            "-s",
            subnet,
            "--main",
            "p1",
            "echo up; exec sleep 1000",
            &wait_go,
        ])
        .spawn();
        s.wait_output("p0| up");
        s.wait_output("p1| up");
        later.push((s, cap));
    }
    kill("CONT", reaper);
    wait_until("A's reaper to finish", Duration::from_secs(10), || {
        !Path::new(&format!("/proc/{reaper}/stat")).exists() || is_zombie(reaper)
    });
    let _ = std::fs::remove_file(run_a.hosts_file());
    run_a.assert_no_leftover_processes();
    std::fs::write(&go, "").unwrap();
    for (s, cap) in later {
        let run = s.wait();
        run.assert_code(0);
        assert_eq!(run.lines_of("p1"), vec!["up", "done"], "{}", run.dump());
        // p0 ended with the session's SIGTERM, not a stray SIGKILL from A's reaper.
        assert_eq!(
            Capture::read(Path::new(&cap)).exit_of(0),
            Some(ExitStatus::Signaled(libc::SIGTERM)),
            "{}",
            run.dump()
        );
        run.assert_no_leftovers();
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s[s.rfind(')').unwrap_or(0)..].starts_with(") Z"))
        .unwrap_or(true)
}

/// Regression: with its reaper killed, `kill -9` of plg left the grandchildren running.
#[test]
fn a_killed_reaper_is_noticed_and_kill_9_of_plg_still_leaves_nothing() {
    let dir = TempDir::new("deadReaper");
    let cap = dir.join("dead.traffic");
    let mut plg = Plg::record(&["-f", &cap, ESCAPEES]).spawn();
    plg.wait_output("scattered");
    kill("KILL", reaper_of(plg.pid()));
    plg.wait_output("the reaper process died");
    plg.signal("KILL");
    let run = plg.wait();
    let _ = std::fs::remove_file(run.hosts_file());
    run.assert_no_leftover_processes();
}

/// Regression: plg joined its output pumps without a bound, so with its stdout full (a reader
/// that stopped reading) it never exited, and ignored SIGTERM meanwhile.
#[test]
fn plg_ends_on_sigterm_although_its_stdout_is_full() {
    let dir = TempDir::new("fullout");
    let cap = dir.join("full.traffic");
    let plg = Plg::record(&[
        "-q",
        "-f",
        &cap,
        "--grace",
        "1",
        "echo flooding >&2; exec yes",
    ]);
    let mut cmd = plg.command();
    // stdout is a pipe this test never reads: it fills up at once.
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let _stdout_kept_unread = child.stdout.take();
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("flooding") {
        let n = stderr.read(&mut buf).unwrap();
        assert!(n > 0, "plg ended early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    std::thread::sleep(Duration::from_millis(300)); // let `yes` fill the pipe
    kill("TERM", child.id());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("plg did not exit after SIGTERM with its stdout full");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(143));
    assert!(has_summary(&cap));
    wait_until("no process left", Duration::from_secs(10), || {
        processes_with_marker(&plg.marker).is_empty()
    });
}

/// Regression: the writes of every command's stdout and stderr shared one lock, held while
/// blocked on a full stdout, so once stdout was a full pipe nothing more of any command's
/// stderr appeared (and the test above hung waiting for "flooding" when `yes` won the race).
/// stdout and stderr are different pipes here: stderr must keep flowing.
#[test]
fn a_full_stdout_does_not_hold_back_stderr() {
    let dir = TempDir::new("fullout-err");
    let cap = dir.join("full.traffic");
    let plg = Plg::record(&[
        "-q",
        "-f",
        &cap,
        "--grace",
        "1",
        "yes & sleep 1; for i in 1 2 3; do echo late-$i >&2; done; sleep 1000",
    ]);
    let mut cmd = plg.command();
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let _stdout_kept_unread = child.stdout.take();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&seen).contains("late-3") {
                let _ = tx.send(seen.clone());
                return;
            }
        }
        let _ = tx.send(seen);
    });
    let got = rx.recv_timeout(Duration::from_secs(30));
    kill("TERM", child.id());
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let seen = got.expect("plg showed none of the command's stderr while its stdout was full");
    assert!(
        String::from_utf8_lossy(&seen).contains("late-1\nlate-2\nlate-3"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    wait_until("no process left", Duration::from_secs(10), || {
        processes_with_marker(&plg.marker).is_empty()
    });
}

/// Regression: the other processes got SIGTERM the moment the main command exited, so a
/// server's goodbye to a client that had just left (postgres's FATAL on fast shutdown, a
/// server that answers EOF) was in some captures and not in others. Now the connections still
/// open get a moment to close by themselves.
#[test]
fn a_servers_goodbye_after_the_client_left_is_recorded() {
    let dir = TempDir::new("goodbye");
    let cap = dir.join("bye.traffic");
    let server = r#"
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", 7000))
s.listen()
c, _ = s.accept()
while c.recv(100):
    pass
time.sleep(0.05)
c.sendall(b"goodbye\n")
c.close()
time.sleep(100)
"#;
    let client = r#"
import socket
c = socket.create_connection(("p0", 7000))
c.sendall(b"hi\n")
c.shutdown(socket.SHUT_WR)
"#;
    let run = Plg::record(&[
        "-f",
        &cap,
        "--ready",
        "p0:7000",
        &format!("{PY} -c {}", sh_quote(server)),
        &format!("{PY} -c {}", sh_quote(client)),
    ])
    .run();
    run.assert_code(0);
    let c = Capture::read(Path::new(&cap));
    let conn = c.conns.values().next().expect("one connection");
    assert_eq!(conn.c2s, b"hi\n");
    assert_eq!(conn.s2c, b"goodbye\n", "{}", run.dump());
}

/// Regression: plg waited for EOF on its commands' output pipes, so a process outside the
/// session holding one open (here: this test, through /proc/PID/fd/1) kept it forever.
#[test]
fn plg_ends_although_a_process_outside_holds_its_output_pipe() {
    let dir = TempDir::new("heldpipe");
    let cap = dir.join("held.traffic");
    let mut plg = Plg::record(&["-f", &cap, "--grace", "1", "echo up; exec sleep 1000"]).spawn();
    plg.wait_output("up");
    let marker = plg.marker.clone();
    let mut sleeper = None;
    wait_until("the sleep", Duration::from_secs(10), || {
        sleeper = processes_with_marker(&marker)
            .into_iter()
            .find(|(_, c)| c.starts_with("sleep"));
        sleeper.is_some()
    });
    let held = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{}/fd/1", sleeper.unwrap().0))
        .unwrap();
    plg.signal("TERM");
    // The harness's wait reads plg's own output to EOF, which plg (not `held`) holds.
    let run = plg.wait();
    drop(held);
    run.assert_code(143);
    assert!(has_summary(&cap));
    run.assert_no_leftovers();
}

/// The host's network namespace bind-mounted on a file (the way `ip netns` pins one), as a
/// process could find it; unmounted on drop.
struct PinnedHostNetns(String);

impl PinnedHostNetns {
    fn new(path: String) -> PinnedHostNetns {
        std::fs::write(&path, "").unwrap();
        let st = Command::new("mount")
            .args([
                "--bind",
                &format!("/proc/{}/ns/net", std::process::id()),
                &path,
            ])
            .status()
            .unwrap();
        assert!(st.success(), "bind-mount the host's netns on {path}");
        PinnedHostNetns(path)
    }
}

impl Drop for PinnedHostNetns {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The isolation boundary, as documented in README.md: in root mode a command that can name
/// the host's network namespace can enter it (and reach the host's loopback); with --userns
/// it cannot, and it is nobody on the host.
#[test]
fn userns_gives_a_root_user_the_rootless_boundary() {
    let dir = TempDir::new("userns");
    let cap = dir.join("userns.traffic");
    let pinned = PinnedHostNetns::new(dir.join("hostnet"));
    let probe = format!(
        "id -u; cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //'; \
         if nsenter --net={} true 2>/dev/null; then echo escaped; else echo contained; fi",
        pinned.0
    );
    let run = Plg::record(&["-f", &cap, "--userns", &probe]).run();
    run.assert_code(0);
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        vec!["0", "0 65534 1", "contained"],
        "{}",
        run.dump()
    );
    let run = Plg::record(&["-f", &cap, &probe]).run();
    run.assert_code(0);
    assert_eq!(
        run.stdout.lines().last(),
        Some("escaped"),
        "root mode is documented as no boundary; {}",
        run.dump()
    );
}

/// A server on a low port still works under --userns (the namespace allows unprivileged low
/// ports), recorded as usual.
#[test]
fn userns_commands_still_serve_low_ports() {
    let dir = TempDir::new("usernsport");
    let cap = dir.join("port.traffic");
    let run = Plg::record(&[
        "-f",
        &cap,
        "--userns",
        "--ready",
        "p0:80",
        &format!("cd / && exec {PY} -m http.server 80"),
        "curl -s -o /dev/null -w '%{http_code}\\n' http://p0/",
    ])
    .run();
    run.assert_code(0);
    assert_eq!(run.lines_of("p1"), vec!["200"], "{}", run.dump());
}

/// The command's shell switches to `nobody` before its user namespace. glibc's set*id
/// functions broadcast to every thread glibc believes the process has (plg's threads: the
/// init and the shell are raw clones of a multi-threaded plg) and wait for them; when one of
/// plg's threads was being created at the clone, the shell waited forever before exec and the
/// session hung (11 of 30 sessions with the CPU busy). Twenty sessions with the CPU busy, each
/// must end.
#[test]
fn userns_sessions_never_hang_before_exec_when_the_cpu_is_busy() {
    /// Busy loops, killed however the test ends.
    struct Burners(Vec<std::process::Child>);
    impl Drop for Burners {
        fn drop(&mut self) {
            for b in self.0.iter_mut() {
                let _ = b.kill();
                let _ = b.wait();
            }
        }
    }
    let dir = TempDir::new("usernsbusy");
    let _burners = Burners(
        (0..4)
            .map(|_| {
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .expect("sh runs")
            })
            .collect(),
    );
    for i in 0..20 {
        let cap = dir.join(&format!("busy{i}.traffic"));
        let run = Plg::record(&[
            "-q",
            "-f",
            &cap,
            "--userns",
            "--ready",
            "p0:80",
            &format!("cd / && exec {PY} -m http.server 80"),
            "curl -s -o /dev/null -w '%{http_code}\\n' http://p0/",
        ])
        .timeout(30)
        .run();
        run.assert_code(0);
        assert_eq!(
            run.lines_of("p1"),
            vec!["200"],
            "session {i}: {}",
            run.dump()
        );
    }
}

/// PostgreSQL started through `runuser` used to be SIGKILLed mid-shutdown: runuser takes a
/// second SIGTERM as "kill the child now", and plg sent two. It must shut down cleanly (the
/// log says so, `postmaster.pid` is gone) every time.
#[test]
fn postgres_through_runuser_shuts_down_cleanly_in_10_of_10_sessions() {
    let bin = Path::new("/usr/lib/postgresql")
        .read_dir()
        .ok()
        .and_then(|d| {
            d.flatten()
                .map(|e| e.path().join("bin"))
                .find(|b| b.join("postgres").exists())
        })
        .expect("PostgreSQL is installed (apt-get install postgresql)");
    let dir = TempDir::new("postgres");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let template = dir.join("template");
    let st = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join("initdb"))
        .args(["-D", &template, "-A", "trust", "--no-sync"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "initdb");
    for i in 0..10 {
        let data = dir.join(&format!("data{i}"));
        let st = Command::new("cp")
            .args(["-a", &template, &data])
            .status()
            .unwrap();
        assert!(st.success());
        let cap = dir.join(&format!("pg{i}.traffic"));
        let run = Plg::record(&[
            "-f",
            &cap,
            "--names",
            "db,app",
            "--ready",
            "db:5432",
            "--grace",
            "30",
            &format!(
                "runuser -u postgres -- {} -D {data} -k {} -c listen_addresses='*'",
                bin.join("postgres").display(),
                dir.path().display()
            ),
            // --ready sees the port before the server accepts logins: ask until it does.
            &format!(
                "for i in $(seq 200); do {} -q -h db -p 5432 && exit 0; sleep 0.1; done; exit 1",
                bin.join("pg_isready").display()
            ),
        ])
        .run();
        run.assert_code(0);
        let db = run.output_of("db");
        assert!(
            db.contains("database system is shut down"),
            "session {i}: no clean shutdown; {}",
            run.dump()
        );
        assert!(
            !Path::new(&data).join("postmaster.pid").exists(),
            "session {i}: postmaster.pid left behind; {}",
            run.dump()
        );
    }
}

/// Bad input: one line, exit 2, nothing left behind.
#[test]
fn a_huge_or_nan_grace_is_a_one_line_error() {
    let dir = TempDir::new("grace");
    let cap = dir.join("g.traffic");
    for g in ["1e300", "NaN", "inf", "-1", "18446744073709551616"] {
        let run = Plg::record(&["-f", &cap, &format!("--grace={g}"), "true"]).run();
        let line = run.assert_one_line_error();
        assert!(line.contains("--grace"), "{line}");
        assert!(!Path::new(&cap).exists());
    }
}

/// Regression: `--names localhost,gateway,123` were accepted, and then the names resolved to
/// 127.0.0.1, the gateway and 0.0.0.123 instead of the processes.
#[test]
fn reserved_and_numeric_names_are_refused() {
    let dir = TempDir::new("names");
    let cap = dir.join("n.traffic");
    for (names, bad) in [
        ("localhost,b", "localhost"),
        ("a,gateway", "gateway"),
        ("a,123", "123"),
        ("0x7f,b", "0x7f"),
        ("LocalHost,b", "LocalHost"),
    ] {
        let run = Plg::record(&["-f", &cap, "--names", names, "true", "true"]).run();
        let line = run.assert_one_line_error();
        assert!(line.contains(&format!("'{bad}'")), "{line}");
        assert!(!Path::new(&cap).exists());
    }
}

/// Regression: a command line longer than a str16 (65,535 bytes) was clipped silently in the
/// capture. It is stored whole now (see FORMAT.md, Process block).
#[test]
fn a_command_longer_than_a_pcapng_string_is_recorded_whole() {
    let dir = TempDir::new("longcmd");
    let cap = dir.join("long.traffic");
    let command = format!(": {}", "é".repeat(50_000)); // 100,002 bytes
    let run = Plg::record(&["-q", "-f", &cap, &command]).run();
    run.assert_code(0);
    let reader = plg::format::CaptureReader::open(Path::new(&cap)).unwrap();
    let commands: Vec<String> = reader
        .map_while(Result::ok)
        .filter_map(|r| match r {
            Record::Process(p) => Some(p.command),
            _ => None,
        })
        .collect();
    assert_eq!(commands.len(), 1);
    assert!(commands[0] == command, "stored {} bytes", commands[0].len());
}
