//! Shared harness of the `tests/record_*.rs` suites: run the real `plg record` binary around
//! real programs, with a timeout that kills it; read the capture it wrote into per-connection
//! byte streams (or stream hashes, for big transfers); and check that nothing is left behind
//! (processes, hosts files, half-written captures).
//!
//! Every child plg starts inherits a unique `PLG_TEST_MARKER=<tag>` environment variable (plg
//! passes its environment through), so leftovers are found by scanning `/proc/*/environ`, which
//! survives `exec` and reparenting, unlike a marker in a command line. Programs that overwrite
//! their environment (redis-server sets its process title there) are found by their mounts
//! instead: each process sees plg's `plg-hosts-PID` file bind-mounted on /etc/hosts.
//!
//! These tests need root and `/dev/net/tun`: without them they fail loudly, never pass silently.

#![allow(dead_code)]

use plg::format::{
    CaptureReader, CloseKind, ConnClose, ConnId, ConnOpen, Direction, Packet, Process, ProcessExit,
    Record, Session, Summary,
};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The Debian python, not a pyenv shim: starts faster and is what the issue names.
pub const PY: &str = "/usr/bin/python3";

/// Fails the test at once, naming the package to install, unless `tool` is on the PATH.
pub fn need(tool: &str) {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} is missing: install it (.ci/run installs every tool the tests use)"
    );
}

/// Fails the test at once, with the reason, unless it runs as root with `/dev/net/tun`.
pub fn require_root() {
    let uid = real_uid();
    assert_eq!(
        uid, 0,
        "the record tests need root (uid 0) to create namespaces and TUN devices; \
         run them as root (e.g. `sudo -E cargo test --test record_...`)"
    );
    assert!(
        Path::new("/dev/net/tun").exists(),
        "the record tests need /dev/net/tun (modprobe tun, or --device /dev/net/tun in a container)"
    );
}

/// The real uid, read from /proc (no libc call needed in tests).
fn real_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .expect("Uid line in /proc/self/status")
}

/// A unique tag for one test: names its temp dir and marks its processes.
pub fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "plgrec-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(unique(tag));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    /// A path inside, as a string for command lines.
    pub fn join(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One `plg record` invocation under construction.
pub struct Plg {
    pub marker: String,
    program: String,
    args: Vec<String>,
    pub timeout: Duration,
}

/// The result of a finished plg.
#[derive(Debug)]
pub struct Run {
    /// Exit code, or None when plg was killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub pid: u32,
    pub marker: String,
}

impl Plg {
    /// `plg record` with these arguments (the caller gives `-f`, options and commands).
    pub fn record(args: &[&str]) -> Plg {
        require_root();
        Plg {
            marker: unique("marker"),
            program: env!("CARGO_BIN_EXE_plg").to_string(),
            args: std::iter::once("record")
                .chain(args.iter().copied())
                .map(String::from)
                .collect(),
            timeout: Duration::from_secs(60),
        }
    }

    /// plg started by a wrapper (`program args...`, which must end up running plg), e.g.
    /// `unshare -m sh -c SETUP plg record ...`. The wrapper inherits the marker too.
    pub fn wrapped(program: &str, args: &[&str]) -> Plg {
        require_root();
        Plg {
            marker: unique("marker"),
            program: program.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            timeout: Duration::from_secs(60),
        }
    }

    pub fn timeout(mut self, secs: u64) -> Plg {
        self.timeout = Duration::from_secs(secs);
        self
    }

    /// The command, ready to spawn (stdin closed, output piped, marker in the environment).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .env("PLG_TEST_MARKER", &self.marker)
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    pub fn spawn(self) -> Running {
        let mut child = self.command().spawn().expect("spawn plg");
        let stdout = pump(child.stdout.take().unwrap());
        let stderr = pump(child.stderr.take().unwrap());
        Running {
            child,
            stdout,
            stderr,
            marker: self.marker,
            timeout: self.timeout,
        }
    }

    /// Runs plg to the end (killing it and failing the test past the timeout), then checks
    /// that nothing is left behind.
    pub fn run(self) -> Run {
        let run = self.spawn().wait();
        run.assert_no_leftovers();
        run
    }
}

/// Reads a pipe to the end in a thread; the output is shared so a timeout can still show it.
type Pumped = (
    std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    std::thread::JoinHandle<()>,
);

fn pump(mut r: impl Read + Send + 'static) -> Pumped {
    let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let b = buf.clone();
    let h = std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match r.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => b.lock().unwrap().extend_from_slice(&chunk[..n]),
            }
        }
    });
    (buf, h)
}

/// A plg still running (for tests that signal it midway).
pub struct Running {
    pub child: Child,
    stdout: Pumped,
    stderr: Pumped,
    pub marker: String,
    timeout: Duration,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Output so far.
    pub fn stdout_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stdout.0.lock().unwrap()).into_owned()
    }
    pub fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stderr.0.lock().unwrap()).into_owned()
    }

    /// Waits until `what` appears in plg's stdout or stderr (fails the test past the timeout).
    pub fn wait_output(&mut self, what: &str) {
        let deadline = Instant::now() + self.timeout;
        loop {
            if self.stdout_so_far().contains(what) || self.stderr_so_far().contains(what) {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "plg ended ({st}) before printing {what:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout_so_far(),
                    self.stderr_so_far()
                );
            }
            if Instant::now() > deadline {
                self.kill_and_fail(&format!("waiting for {what:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} {}", self.pid());
    }

    fn kill_and_fail(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!(
            "plg timed out after {:?} ({what}); killed it\nstdout:\n{}\nstderr:\n{}",
            self.timeout,
            self.stdout_so_far(),
            self.stderr_so_far()
        );
    }

    /// Waits for plg to end (kills it and fails past the timeout).
    pub fn wait(mut self) -> Run {
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("wait for plg") {
                break st;
            }
            if Instant::now() > deadline {
                self.kill_and_fail("waiting for it to exit");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let _ = self.stdout.1.join();
        let _ = self.stderr.1.join();
        let stdout = String::from_utf8_lossy(&self.stdout.0.lock().unwrap()).into_owned();
        let stderr = String::from_utf8_lossy(&self.stderr.0.lock().unwrap()).into_owned();
        assert!(
            !stderr.contains("panicked"),
            "plg panicked:\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        Run {
            code: status.code(),
            stdout,
            stderr,
            pid: self.child.id(),
            marker: self.marker,
        }
    }
}

impl Run {
    /// Lines process `name` printed (stdout or stderr), without the `name| ` prefix.
    pub fn lines_of(&self, name: &str) -> Vec<String> {
        let prefix = format!("{name}| ");
        self.stdout
            .lines()
            .chain(self.stderr.lines())
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(String::from)
            .collect()
    }

    /// Everything process `name` printed, one line each, for messages.
    pub fn output_of(&self, name: &str) -> String {
        self.lines_of(name).join("\n")
    }

    /// Fails with the whole output unless plg exited with `code`.
    pub fn assert_code(&self, code: i32) {
        assert_eq!(self.code, Some(code), "plg exit status; {}", self.dump());
    }

    pub fn dump(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }

    /// The issue's error convention: exit 2, nothing on stdout, one line `plg: ...` on stderr.
    /// Returns that line.
    pub fn assert_one_line_error(&self) -> String {
        self.assert_code(2);
        assert!(self.stdout.is_empty(), "stdout not empty; {}", self.dump());
        assert_eq!(
            self.stderr.lines().count(),
            1,
            "not one line on stderr; {}",
            self.dump()
        );
        assert!(self.stderr.starts_with("plg: "), "{}", self.dump());
        self.stderr.trim_end().to_string()
    }

    /// No process carries this run's marker and plg's hosts file is gone.
    pub fn assert_no_leftovers(&self) {
        self.assert_no_leftover_processes();
        self.assert_no_hosts_file();
    }

    /// No process carries this run's marker. Processes killed by plg may take a moment to
    /// disappear from /proc once plg exits, so this polls a while before failing (a liveness
    /// check, not a timing assertion). Kills what it finds before failing.
    pub fn assert_no_leftover_processes(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = processes_of(&self.marker, self.pid);
            if left.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                kill_pids(&left);
                panic!(
                    "processes left behind by plg (now killed): {left:?}\n{}",
                    self.dump()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// plg's temporary hosts file (`$TMPDIR/plg-hosts-PID`).
    pub fn hosts_file(&self) -> PathBuf {
        std::env::temp_dir().join(format!("plg-hosts-{}", self.pid))
    }

    pub fn assert_no_hosts_file(&self) {
        let resolv = std::env::temp_dir().join(format!("plg-resolv-{}", self.pid));
        for file in [self.hosts_file(), resolv] {
            if file.exists() {
                let _ = std::fs::remove_file(&file);
                panic!(
                    "plg left its temporary file {} behind (now removed)",
                    file.display()
                );
            }
        }
    }
}

/// SIGKILL to each of these processes, by pid.
pub fn kill_pids(procs: &[(u32, String)]) {
    for (pid, _) in procs {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}

/// (pid, command line) of every process whose environment holds `PLG_TEST_MARKER=marker`.
pub fn processes_with_marker(marker: &str) -> Vec<(u32, String)> {
    processes_of(marker, 0)
}

/// (pid, command line) of every process started by the plg with this marker and pid: its
/// environment holds `PLG_TEST_MARKER=marker`, or (for programs that overwrite their
/// environment to set their process title, like redis-server) its mounts include plg's hosts
/// file `plg-hosts-PID` on /etc/hosts.
pub fn processes_of(marker: &str, plg_pid: u32) -> Vec<(u32, String)> {
    let needle = format!("PLG_TEST_MARKER={marker}");
    let hosts = format!("/plg-hosts-{plg_pid} ");
    let hosts_deleted = format!("/plg-hosts-{plg_pid}//deleted ");
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    let me = std::process::id();
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let mut ours = env.split(|b| *b == 0).any(|v| v == needle.as_bytes());
        if !ours && plg_pid != 0 {
            let mounts = std::fs::read_to_string(e.path().join("mountinfo")).unwrap_or_default();
            ours = mounts
                .lines()
                .any(|l| l.contains(&hosts) || l.contains(&hosts_deleted));
        }
        if ours {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push((pid, cmdline));
        }
    }
    found
}

/// One TCP connection of a capture, with both byte streams reassembled.
#[derive(Debug, Clone)]
pub struct Conn {
    pub open: ConnOpen,
    pub c2s: Vec<u8>,
    pub s2c: Vec<u8>,
    pub closes: Vec<ConnClose>,
    /// Data and close records of this connection, in file order.
    pub events: Vec<Event>,
}

/// One record of a connection, for checks on ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Data(Direction, usize),
    Close(Direction, CloseKind),
}

impl Conn {
    /// Position of the first event matching `f` in file order.
    pub fn position(&self, f: impl Fn(&Event) -> bool) -> Option<usize> {
        self.events.iter().position(f)
    }

    /// How `dir`'s sender closed, if it did.
    pub fn close(&self, dir: Direction) -> Option<CloseKind> {
        self.closes.iter().find(|c| c.dir == dir).map(|c| c.kind)
    }
}

/// Everything a capture holds, grouped for assertions.
#[derive(Debug, Default)]
pub struct Capture {
    pub session: Option<Session>,
    pub procs: Vec<Process>,
    pub exits: Vec<ProcessExit>,
    pub conns: BTreeMap<ConnId, Conn>,
    pub packets: Vec<Packet>,
    pub summary: Option<Summary>,
    pub data_blocks: u64,
}

impl Capture {
    /// Reads a whole capture into memory (small captures only), failing the test on any
    /// format error or on data/close records for a connection never opened.
    pub fn read(path: &Path) -> Capture {
        let mut cap = Capture::default();
        let reader = CaptureReader::open(path)
            .unwrap_or_else(|e| panic!("capture {} unreadable: {e}", path.display()));
        for rec in reader {
            let rec = rec.unwrap_or_else(|e| panic!("capture {}: {e}", path.display()));
            cap.add(rec, true);
        }
        cap
    }

    fn add(&mut self, rec: Record, keep_bytes: bool) {
        match rec {
            Record::Session(s) => self.session = Some(s),
            Record::Process(p) => self.procs.push(p),
            Record::ProcessExit(e) => self.exits.push(e),
            Record::ConnOpen(o) => {
                let prev = self.conns.insert(
                    o.id,
                    Conn {
                        open: o,
                        c2s: Vec::new(),
                        s2c: Vec::new(),
                        closes: Vec::new(),
                        events: Vec::new(),
                    },
                );
                assert!(prev.is_none(), "connection {} opened twice", o.id);
            }
            Record::Data(d) => {
                self.data_blocks += 1;
                let c = self
                    .conns
                    .get_mut(&d.id)
                    .unwrap_or_else(|| panic!("data for unknown connection {}", d.id));
                assert!(
                    c.close(d.dir).is_none(),
                    "data after close on connection {} {:?}",
                    d.id,
                    d.dir
                );
                c.events.push(Event::Data(d.dir, d.bytes.len()));
                if keep_bytes {
                    match d.dir {
                        Direction::ClientToServer => c.c2s.extend_from_slice(&d.bytes),
                        Direction::ServerToClient => c.s2c.extend_from_slice(&d.bytes),
                    }
                }
            }
            Record::ConnClose(cl) => {
                let c = self
                    .conns
                    .get_mut(&cl.id)
                    .unwrap_or_else(|| panic!("close for unknown connection {}", cl.id));
                c.events.push(Event::Close(cl.dir, cl.kind));
                c.closes.push(cl);
            }
            Record::Packet(p) => self.packets.push(p),
            Record::Summary(s) => self.summary = Some(s),
            Record::Unknown(u) => panic!("unknown block in a fresh capture: {u:?}"),
            // TLS keys the recorded programs logged (tests/record_tls.rs checks them).
            Record::Secrets(_) => {}
        }
    }

    /// The Summary, which a complete capture ends with; checks it agrees with the records.
    pub fn summary(&self) -> Summary {
        let s = self.summary.expect("capture has no Summary (incomplete)");
        assert_eq!(s.processes as usize, self.procs.len(), "summary processes");
        assert_eq!(
            s.connections as usize,
            self.conns.len(),
            "summary connections"
        );
        assert_eq!(s.data_blocks, self.data_blocks, "summary data blocks");
        assert_eq!(s.packets as usize, self.packets.len(), "summary packets");
        let c2s: usize = self.conns.values().map(|c| c.c2s.len()).sum();
        let s2c: usize = self.conns.values().map(|c| c.s2c.len()).sum();
        assert_eq!(s.bytes_c2s as usize, c2s, "summary bytes client->server");
        assert_eq!(s.bytes_s2c as usize, s2c, "summary bytes server->client");
        s
    }

    /// Connections from process `client` to process `server` port `port`.
    pub fn conns_to(&self, server: u16, port: u16) -> Vec<&Conn> {
        self.conns
            .values()
            .filter(|c| c.open.server == server && c.open.server_addr.port() == port)
            .collect()
    }

    /// The one connection to `server`:`port` (fails unless there is exactly one).
    pub fn only_conn_to(&self, server: u16, port: u16) -> &Conn {
        let v = self.conns_to(server, port);
        assert_eq!(
            v.len(),
            1,
            "expected one connection to p{server}:{port}, got {v:#?}"
        );
        v[0]
    }

    pub fn exit_of(&self, index: u16) -> Option<plg::format::ExitStatus> {
        self.exits
            .iter()
            .find(|e| e.index == index)
            .map(|e| e.status)
    }
}

/// Length and sha256 (hex) of one byte stream.
pub type StreamHash = (u64, String);

/// Length and sha256 (hex) of each (connection, direction) stream of a capture, computed while
/// streaming it: nothing is held in memory but one block at a time. Also returns the Summary.
pub fn stream_hashes(path: &Path) -> (BTreeMap<(ConnId, Direction), StreamHash>, Summary) {
    let reader = CaptureReader::open(path)
        .unwrap_or_else(|e| panic!("capture {} unreadable: {e}", path.display()));
    let mut hashers: BTreeMap<(ConnId, Direction), (u64, Child)> = BTreeMap::new();
    let mut summary = None;
    for rec in reader {
        match rec.unwrap_or_else(|e| panic!("capture {}: {e}", path.display())) {
            Record::Data(d) => {
                let h = hashers
                    .entry((d.id, d.dir))
                    .or_insert_with(|| (0, sha256_child()));
                h.0 += d.bytes.len() as u64;
                h.1.stdin.as_mut().unwrap().write_all(&d.bytes).unwrap();
            }
            Record::Summary(s) => summary = Some(s),
            _ => {}
        }
    }
    let out = hashers
        .into_iter()
        .map(|(k, (len, child))| (k, (len, sha256_finish(child))))
        .collect();
    (out, summary.expect("capture has no Summary (incomplete)"))
}

fn sha256_child() -> Child {
    Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum")
}

fn sha256_finish(mut child: Child) -> String {
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("sha256sum");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("sha256sum output")
        .to_string()
}

/// sha256 (hex) of a file, by `sha256sum`.
pub fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Quotes a string for `sh -c`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
