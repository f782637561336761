//! The relay against hostile and careless peers: clients that give up at once, bare SYN
//! floods, running out of file descriptors, spoofed ICMP errors, traffic nobody owns, urgent
//! data. Each test is the regression test of a defect seen in the relay (issue 9). Needs root
//! and /dev/net/tun.

mod common;

use common::{sh_quote, Capture, Plg, TempDir, PY};
use plg::format::{CloseKind, Direction, Outcome};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn py(script: &str) -> String {
    format!("{PY} -u -c {}", sh_quote(script))
}

/// `plg inspect --check` passes on this capture.
fn assert_check_passes(cap: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_plg"))
        .args(["inspect", "--check", cap])
        .output()
        .expect("run plg inspect");
    assert_eq!(
        out.status.code(),
        Some(0),
        "plg inspect --check {cap}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Open fds of process `pid`.
fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Waits (bounded) until plg holds fewer than `below` fds; returns the last count.
fn wait_fds_below(pid: u32, below: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let n = fds_of(pid);
        if n < below || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Accepts and holds every connection, echoing one line on each (threads).
const HOLD_SERVER: &str = r#"
import socket, threading
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", 7000))
l.listen(4096)
def serve(c):
    try:
        f = c.makefile("rb")
        line = f.readline()
        c.sendall(line)
        while c.recv(4096):
            pass
    except OSError:
        pass
    c.close()
while True:
    c, _ = l.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// The client, after its hostile part, waits for the test to look at plg (the file `go`
/// appears), then proves a normal connection still works.
fn then_a_normal_connection(go: &str) -> String {
    format!(
        r#"
import os, socket, time
print("hostile part done")
while not os.path.exists({go:?}):
    time.sleep(0.05)
s = socket.create_connection(("p0", 7000), timeout=20)
s.sendall(b"hello\n")
print("normal:", s.makefile("rb").readline().decode().strip())
s.close()
"#
    )
}

#[test]
fn clients_that_give_up_at_once_do_not_hold_slots() {
    // 2,000 connects closed right after the SYN left: each client socket is gone before the
    // relay's upstream connect finishes, so the listener's SYN-ACK meets a RST. The relay
    // used to keep each upstream leg Open forever (2,000 fds held).
    const N: usize = 2000;
    let dir = TempDir::new("giveup");
    let cap = dir.join("giveup.traffic");
    let go = dir.join("go");
    let client = format!(
        r#"
import socket
for i in range({N}):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("p0", 7000))
    s.close()
{}"#,
        then_a_normal_connection(&go)
    );
    let mut running = Plg::record(&[
        "-q",
        "-f",
        &cap,
        "--ready",
        "p0:7000",
        &py(HOLD_SERVER),
        &py(&client),
    ])
    .timeout(120)
    .spawn();
    running.wait_output("hostile part done");
    let left = wait_fds_below(running.pid(), 200, Duration::from_secs(60));
    std::fs::write(&go, b"").unwrap();
    let run = running.wait();
    run.assert_no_leftovers();
    assert!(left < 200, "plg still holds {left} fds; {}", run.dump());
    run.assert_code(0);
    assert!(
        run.lines_of("p1").contains(&"normal: hello".to_string()),
        "{}",
        run.dump()
    );
    assert_check_passes(&cap);
    let c = Capture::read(Path::new(&cap));
    c.summary();
    // Every attempt is on the record, and every one that was established has ended: the
    // client closed it (FIN, or RST for those whose client was gone before its leg came).
    let conns = c.conns_to(0, 7000);
    assert!(conns.len() > N / 2, "{} connections recorded", conns.len());
    let mut reset = 0;
    for conn in &conns {
        if conn.open.outcome == Outcome::Established && conn.c2s.is_empty() {
            let close = conn.close(Direction::ClientToServer);
            assert!(close.is_some(), "never ended: {conn:?}");
            reset += usize::from(close == Some(CloseKind::Rst));
        }
    }
    assert!(
        reset > 0,
        "no attempt was abandoned before its leg came: test is moot"
    );
}

/// Sends `n` bare SYNs to p0:7000 from a raw socket: the client's kernel has no socket for
/// them, so it answers every SYN-ACK with RST (what a SYN flood looks like to the relay).
fn syn_flood(n: usize) -> String {
    format!(
        r#"
import random, socket, struct
me = socket.gethostbyname(socket.gethostname())
dst = socket.gethostbyname("p0")
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
pseudo_ips = socket.inet_aton(me) + socket.inet_aton(dst)
for i in range({n}):
    sport = 20000 + i % 40000
    hdr = struct.pack("!HHIIBBHHH", sport, 7000, random.getrandbits(32), 0, 5 << 4, 0x02, 64240, 0, 0)
    c = csum(pseudo_ips + struct.pack("!BBH", 0, 6, len(hdr)) + hdr)
    hdr = hdr[:16] + struct.pack("!H", c) + hdr[18:]
    while True:
        try:
            raw.sendto(hdr, (dst, 0))
            break
        except BlockingIOError:
            pass
        except OSError as e:
            if e.errno != 105:
                raise
"#
    )
}

#[test]
fn a_bare_syn_flood_does_not_lock_out_later_connections() {
    // More SYNs than the connection cap: each used to hold a slot forever, so every later
    // connection was refused for the rest of the session.
    const N: usize = 17_000;
    let dir = TempDir::new("synflood");
    let cap = dir.join("flood.traffic");
    let go = dir.join("go");
    let client = format!("{}\n{}", syn_flood(N), then_a_normal_connection(&go));
    let mut running = Plg::record(&[
        "-q",
        "-f",
        &cap,
        "--ready",
        "p0:7000",
        &py(HOLD_SERVER),
        &py(&client),
    ])
    .timeout(240)
    .spawn();
    running.wait_output("hostile part done");
    let left = wait_fds_below(running.pid(), 200, Duration::from_secs(90));
    std::fs::write(&go, b"").unwrap();
    let run = running.wait();
    run.assert_no_leftovers();
    assert!(left < 200, "plg still holds {left} fds; {}", run.dump());
    run.assert_code(0);
    assert!(
        run.lines_of("p1").contains(&"normal: hello".to_string()),
        "{}",
        run.dump()
    );
    assert_check_passes(&cap);
}

#[test]
fn syn_fin_and_syn_rst_open_nothing() {
    // Neither is a connection request: no upstream connection may be opened for them.
    let dir = TempDir::new("synfin");
    let cap = dir.join("synfin.traffic");
    let client = r#"
import socket, struct, time
me = socket.gethostbyname(socket.gethostname())
dst = socket.gethostbyname("p0")
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
for i, flags in enumerate([0x03, 0x06, 0x07]):
    hdr = struct.pack("!HHIIBBHHH", 30000 + i, 7000, 1000, 0, 5 << 4, flags, 64240, 0, 0)
    c = csum(socket.inet_aton(me) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, 20) + hdr)
    raw.sendto(hdr[:16] + struct.pack("!H", c) + hdr[18:], (dst, 0))
time.sleep(1)
s = socket.create_connection(("p0", 7000), timeout=20)
s.sendall(b"hello\n")
print("normal:", s.makefile("rb").readline().decode().strip())
s.close()
"#;
    let run = Plg::record(&[
        "-q",
        "-f",
        &cap,
        "--ready",
        "p0:7000",
        &py(HOLD_SERVER),
        &py(client),
    ])
    .timeout(60)
    .run();
    run.assert_code(0);
    assert_eq!(run.lines_of("p1"), vec!["normal: hello"], "{}", run.dump());
    let c = Capture::read(Path::new(&cap));
    c.summary();
    // Only the real connection: the three odd segments opened nothing.
    assert_eq!(c.conns_to(0, 7000).len(), 1, "{:#?}", c.conns);
    assert_check_passes(&cap);
}

#[test]
fn out_of_file_descriptors_refuses_with_rst_and_never_hangs() {
    // plg limited to 512 fds (and not allowed to raise that): 600 concurrent connections
    // from two client processes. Those beyond what the fds allow must be refused at once and
    // counted, never left hanging in the listener's queue.
    const PER_CLIENT: usize = 300;
    let dir = TempDir::new("nofile");
    let cap = dir.join("nofile.traffic");
    // Two listening processes (SO_REUSEPORT) so no one process needs more than 512 fds.
    let server = r#"
import os, socket, threading
os.fork()
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
l.bind(("0.0.0.0", 7000))
l.listen(4096)
held = []
while True:
    c, _ = l.accept()
    held.append(c)
"#;
    let client = format!(
        r#"
import errno, os, select, socket, time
first = os.fork()
ok = refused = hung = 0
socks = []
for i in range({PER_CLIENT}):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("p0", 7000))
    socks.append(s)
deadline = time.time() + 60
pending = set(socks)
while pending and time.time() < deadline:
    _, w, _ = select.select([], list(pending)[:500], [], 1)
    for s in w:
        e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if e == 0:
            # Established from the client's view; a reset by plg shows on the first read.
            s.setblocking(True)
            s.settimeout(30)
            try:
                s.sendall(b"x")
                ok += 1
            except OSError:
                refused += 1
        elif e in (errno.ECONNREFUSED, errno.ECONNRESET):
            refused += 1
        else:
            refused += 1
        pending.discard(s)
hung = len(pending)
# One write per line: the two clients share the output pipe.
os.write(1, ("client %s ok %d refused %d hung %d\n" % ("parent" if first else "child", ok, refused, hung)).encode())
if first:
    os.waitpid(first, 0)
"#
    );
    let plg = env!("CARGO_BIN_EXE_plg");
    let run = Plg::wrapped(
        "setpriv",
        &[
            "--bounding-set",
            "-sys_resource",
            "--inh-caps",
            "-sys_resource",
            "prlimit",
            "--nofile=512:512",
            plg,
            "record",
            "-q",
            "-f",
            &cap,
            "--ready",
            "p0:7000",
            &py(server),
            &py(&client),
        ],
    )
    .timeout(180)
    .run();
    run.assert_code(0);
    let lines: Vec<String> = run
        .lines_of("p1")
        .into_iter()
        .filter(|l| l.starts_with("client "))
        .collect();
    assert_eq!(lines.len(), 2, "{}", run.dump());
    let (mut ok, mut refused) = (0, 0);
    for l in &lines {
        let w: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(w.len(), 8, "{l}\n{}", run.dump());
        assert_eq!(w[7], "0", "connections left hanging: {l}\n{}", run.dump());
        ok += w[3].parse::<usize>().unwrap();
        refused += w[5].parse::<usize>().unwrap();
    }
    assert_eq!(ok + refused, 2 * PER_CLIENT, "{}", run.dump());
    assert!(ok > 100, "only {ok} served; {}", run.dump());
    assert!(refused > 0, "nothing refused under 512 fds; {}", run.dump());
    // The user is told once why, and what would lift the limit.
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("plg: warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", run.dump());
    assert!(
        warnings[0].contains("the most the open-file limit allows")
            && warnings[0].contains("CAP_SYS_RESOURCE"),
        "{}",
        run.dump()
    );
    assert_check_passes(&cap);
    let c = Capture::read(Path::new(&cap));
    let s = c.summary();
    // Every attempt is on the record, the refused ones counted.
    assert_eq!(s.connections as usize, 2 * PER_CLIENT, "{}", run.dump());
    assert!(s.refused > 0, "{s:?}");
}

#[test]
fn urgent_data_is_delivered_urgent_and_recorded() {
    let dir = TempDir::new("oob");
    let cap = dir.join("oob.traffic");
    // Urgent data waits apart from the stream (no SO_OOBINLINE): select() reports it as an
    // exceptional condition and recv(MSG_OOB) takes it.
    let server = r#"
import errno, select, socket, time
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", 7000))
l.listen(1)
c, _ = l.accept()
select.select([], [], [c], 30)
oob = b""
for _ in range(300):
    try:
        oob = c.recv(1, socket.MSG_OOB)
        break
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EINVAL):
            raise
        time.sleep(0.01)
got = b""
while True:
    b = c.recv(100)
    if not b:
        break
    got += b
print("stream", got.decode(), "urgent", oob.decode())
"#;
    let client = r#"
import socket, time
s = socket.create_connection(("p0", 7000), timeout=20)
s.sendall(b"ab")
time.sleep(0.2)
s.send(b"!", socket.MSG_OOB)
time.sleep(0.2)
s.sendall(b"cd")
s.close()
"#;
    let run = Plg::record(&[
        "-q",
        "-f",
        &cap,
        "--ready",
        "p0:7000",
        "--main",
        "p0",
        &py(server),
        &py(client),
    ])
    .timeout(60)
    .run();
    run.assert_code(0);
    assert_eq!(
        run.lines_of("p0"),
        vec!["stream abcd urgent !"],
        "{}",
        run.dump()
    );
    let c = Capture::read(Path::new(&cap));
    c.summary();
    assert_eq!(c.only_conn_to(0, 7000).c2s, b"ab!cd");
}

#[test]
fn urgent_data_inside_a_send_keeps_its_urgency_both_ways() {
    // The urgent byte is the last of a larger send (the read before it stops short at the
    // mark), in each direction: the relay looks for the mark only once the kernel reports
    // urgent data, and must still find it wherever it falls.
    let dir = TempDir::new("oob2");
    let cap = dir.join("oob2.traffic");
    let take_urgent = r#"
def take_urgent(c):
    select.select([], [], [c], 30)
    for _ in range(300):
        try:
            return c.recv(1, socket.MSG_OOB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EINVAL):
                raise
            time.sleep(0.01)
    return b""
def read_all(c, n):
    got = b""
    while len(got) < n:
        b = c.recv(100)
        if not b:
            break
        got += b
    return got
"#;
    let server = format!(
        r#"
import errno, select, socket, time
{take_urgent}
l = socket.create_server(("0.0.0.0", 7000))
c, _ = l.accept()
oob = take_urgent(c)
got = read_all(c, 5)
c.send(b"uvw?", socket.MSG_OOB)
print("server got", got.decode(), "urgent", oob.decode())
time.sleep(0.5)
c.close()
"#
    );
    let client = format!(
        r#"
import errno, select, socket, time
{take_urgent}
s = socket.create_connection(("p0", 7000), timeout=20)
s.send(b"xyz!", socket.MSG_OOB)
time.sleep(0.2)
s.sendall(b"cd")
oob = take_urgent(s)
print("client got", read_all(s, 3).decode(), "urgent", oob.decode())
s.close()
"#
    );
    let run = Plg::record(&[
        "-q",
        "-f",
        &cap,
        "--ready",
        "p0:7000",
        &py(&server),
        &py(&client),
    ])
    .timeout(60)
    .run();
    run.assert_code(0);
    assert_eq!(
        run.lines_of("p0"),
        vec!["server got xyzcd urgent !"],
        "{}",
        run.dump()
    );
    assert_eq!(
        run.lines_of("p1"),
        vec!["client got uvw urgent ?"],
        "{}",
        run.dump()
    );
    let c = Capture::read(Path::new(&cap));
    let conn = c.only_conn_to(0, 7000);
    assert_eq!(
        (&conn.c2s[..], &conn.s2c[..]),
        (&b"xyz!cd"[..], &b"uvw?"[..])
    );
}

#[test]
fn an_icmp_error_from_a_third_process_does_not_break_a_udp_socket() {
    // p1 forges "port unreachable" to p2 about p2's datagrams to p0: it must not reach p2
    // (its connected socket to p0 would fail with ECONNREFUSED).
    let dir = TempDir::new("icmpspoof");
    let cap = dir.join("spoof.traffic");
    let go = dir.join("go");
    let done = dir.join("spoofed");
    let p0 = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5000))
while True:
    b, a = s.recvfrom(100)
    s.sendto(b"re-" + b, a)
"#;
    let p1 = format!(
        r#"
import os, socket, struct, time
while not os.path.exists({go:?}):
    time.sleep(0.05)
p0 = socket.gethostbyname("p0")
p2 = socket.gethostbyname("p2")
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
# The quoted datagram: p2:40000 -> p0:5000.
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
for _ in range(3):
    udp = struct.pack("!HHHH", 40000, 5000, 11, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 31, 1, 0, 64, 17, 0, socket.inet_aton(p2), socket.inet_aton(p0))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    icmp = struct.pack("!BBHI", 3, 3, 0, 0) + ip + udp
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    raw.sendto(icmp, (p2, 0))
open({done:?}, "w").close()
"#
    );
    let p2 = format!(
        r#"
import os, socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 40000))
s.connect(("p0", 5000))
s.settimeout(10)
s.send(b"one")
print("reply", s.recv(100).decode())
open({go:?}, "w").close()
while not os.path.exists({done:?}):
    time.sleep(0.05)
time.sleep(0.5)
try:
    s.send(b"two")
    print("reply", s.recv(100).decode())
except OSError as e:
    print("error", e)
"#
    );
    let run = Plg::record(&[
        "-q",
        "-f",
        &cap,
        "--ready",
        "p0:5000",
        &py(p0),
        &py(&p1),
        &py(&p2),
    ])
    .timeout(120)
    .run();
    run.assert_code(0);
    assert_eq!(
        run.lines_of("p2"),
        vec!["reply re-one", "reply re-two"],
        "{}",
        run.dump()
    );
}

#[test]
fn udp_to_an_address_nobody_owns_fails_at_once_and_broadcasts_get_no_error() {
    // Without --allow-external, a datagram for the outside world is refused with an ICMP
    // error a connected UDP socket reports at once ("host unreachable" is soft on Linux and
    // was ignored: a resolver waited out its timeout). The subnet's broadcast address gets
    // no error at all (RFC 1122 3.2.2). Nothing leaves the machine: plg answers itself.
    let dir = TempDir::new("icmprefuse");
    let cap = dir.join("refuse.traffic");
    let client = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("192.0.2.1", 53))
s.settimeout(30)
s.send(b"query")
try:
    s.recv(100)
    print("outside: answered")
except socket.timeout:
    print("outside: timeout")
except OSError as e:
    print("outside: error")
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
b.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
b.connect(("10.99.0.255", 9))
b.settimeout(2)
b.send(b"anyone")
try:
    b.recv(100)
    print("broadcast: answered")
except socket.timeout:
    print("broadcast: silence")
except OSError as e:
    print("broadcast: error", e)
"#;
    let run = Plg::record(&[
        "-q",
        "-f",
        &cap,
        "--subnet",
        "10.99.0.0/24",
        "--main",
        "p0",
        &py(client),
        "sleep 60",
    ])
    .timeout(90)
    .run();
    run.assert_code(0);
    assert_eq!(
        run.lines_of("p0"),
        vec!["outside: error", "broadcast: silence"],
        "{}",
        run.dump()
    );
}

#[test]
fn a_played_client_still_connecting_after_the_connect_timeout_is_reported_not_a_panic() {
    // Recorded: p1 talks to p0. Replayed with p1 played and p0 a live server whose accept
    // queue is full, so plg's connect as p1 never completes: after the 20 s connect timeout
    // the relay used to panic on the (empty) SYN a played client has.
    let dir = TempDir::new("rp-stuck");
    let cap = dir.join("rec.traffic");
    let server = r#"
import socket
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", 7000))
l.listen(1)
c, _ = l.accept()
c.sendall(c.makefile("rb").readline())
c.close()
"#;
    let client = r#"
import socket
s = socket.create_connection(("p0", 7000), timeout=20)
s.sendall(b"hi\n")
print(s.makefile("rb").readline().decode().strip())
"#;
    let run = Plg::record(&[
        "-q",
        "-f",
        &cap,
        "--ready",
        "p0:7000",
        &py(server),
        &py(client),
    ])
    .run();
    run.assert_code(0);
    // Live p0's accept queue is full: plg's SYNs as p1 are dropped. It ends after the
    // connect timeout.
    let stuck = FULL_QUEUE_SERVER.replace("time.sleep(120)", "time.sleep(26)");
    let run = Plg::wrapped(
        env!("CARGO_BIN_EXE_plg"),
        &["replay", "-q", "-f", &cap, "--main", "p0", &py(&stuck), "-"],
    )
    .timeout(90)
    .run();
    assert!(
        !run.stderr.contains("panicked") && run.code.is_some_and(|c| c < 100),
        "{}",
        run.dump()
    );
}

/// Listens with a backlog of 0 and fills its own accept queue from loopback: every further
/// SYN is dropped, and it never accepts.
const FULL_QUEUE_SERVER: &str = r#"
import socket, time
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", 7000))
l.listen(0)
held = []
for _ in range(3):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", 7000))
    held.append(s)
time.sleep(120)
"#;

#[test]
fn attempts_that_meet_a_full_accept_queue_are_all_on_the_record() {
    // Four attempts, each given up after a second: none got through, and the session ended
    // before plg's own connect timeout. The capture used to hold only some of them.
    let dir = TempDir::new("fullq");
    let cap = dir.join("fullq.traffic");
    let client = r#"
import socket
n = 0
for i in range(4):
    try:
        # By address: by name, each attempt would also try p0's IPv6 address.
        socket.create_connection(("10.0.0.2", 7000), timeout=1)
    except OSError:
        n += 1
print("failed", n)
"#;
    let run = Plg::record(&[
        "-q",
        "-f",
        &cap,
        "--ready",
        "p0:7000",
        &py(FULL_QUEUE_SERVER),
        &py(client),
    ])
    .timeout(60)
    .run();
    run.assert_code(0);
    assert_eq!(run.lines_of("p1"), vec!["failed 4"], "{}", run.dump());
    assert_check_passes(&cap);
    let c = Capture::read(Path::new(&cap));
    let s = c.summary();
    let conns = c.conns_to(0, 7000);
    assert_eq!(conns.len(), 4, "{conns:#?}");
    let unreachable = conns
        .iter()
        .filter(|c| c.open.outcome == Outcome::Unreachable)
        .count();
    assert!(unreachable > 0, "{conns:#?}");
    // Unreachable is not counted as refused.
    let refused = conns
        .iter()
        .filter(|c| c.open.outcome == Outcome::Refused)
        .count();
    assert_eq!(s.refused as usize, refused, "{s:?}");
}
