//! Root-only: spawning programs in their namespace with a private /etc/hosts and hostname,
//! signalling their process group, and detecting their listening ports.
//!
//! Without root or /dev/net/tun these tests fail with a message saying so;
//! `PLG_SKIP_ROOT_TESTS=1` turns that into a loud skip.

use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use plg::os::process::{listening_ports, spawn, Exit, SpawnSpec, Spawned};
use plg::os::{loopback_up, Netns};

mod os_support;
use os_support::root_available;

/// A scratch directory with a hosts file, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("plg-os-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("hosts"), "10.1.0.1 alpha\n10.2.0.1 beta\n").unwrap();
        Scratch(dir)
    }
    fn hosts(&self) -> PathBuf {
        self.0.join("hosts")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn spec(command: &str, netns: Netns, scratch: &Scratch) -> SpawnSpec {
    SpawnSpec {
        command: command.into(),
        netns,
        hosts_file: scratch.hosts(),
        resolv_file: None,
        gai_conf: None,
        hostname: "alpha".into(),
        env: vec![("PLG_TEST_VAR".into(), "forty two".into())],
        cwd: Some(scratch.0.clone()),
        user_namespace: false,
    }
}

fn output(child: Spawned) -> (Option<i32>, String, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.exit.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fresh_ns() -> Netns {
    Netns::create_with(loopback_up).unwrap().0
}

#[test]
fn child_sees_its_hosts_hostname_env_and_namespace() {
    if !root_available("child_sees_its_hosts_hostname_env_and_namespace") {
        return;
    }
    let scratch = Scratch::new("spawn");
    let host_hosts = std::fs::read("/etc/hosts").unwrap();
    let host_name = nix::unistd::gethostname().unwrap();
    let ns = fresh_ns();
    let inode = ns.inode().unwrap();
    let child = spawn(&spec(
        "cat /etc/hosts; echo ---; hostname; echo \"$PLG_TEST_VAR\"; \
         stat -L -c %i /proc/self/ns/net; pwd; echo to-stderr >&2",
        ns,
        &scratch,
    ))
    .unwrap();
    let pid = child.id() as i32;
    let (code, out, err) = output(child);
    assert_eq!(code, Some(0), "stderr: {err}");
    let want = format!(
        "10.1.0.1 alpha\n10.2.0.1 beta\n---\nalpha\nforty two\n{inode}\n{}\n",
        scratch.0.display()
    );
    assert_eq!(out, want);
    assert_eq!(err, "to-stderr\n");
    assert!(pid > 1);

    // Nothing leaked to the host: same /etc/hosts, same hostname, no mount on /etc/hosts.
    assert_eq!(std::fs::read("/etc/hosts").unwrap(), host_hosts);
    assert_eq!(nix::unistd::gethostname().unwrap(), host_name);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&scratch.0.display().to_string()),
        "the bind mount propagated to the host: {mounts}"
    );
}

#[test]
fn exit_codes_propagate() {
    if !root_available("exit_codes_propagate") {
        return;
    }
    let scratch = Scratch::new("exit");
    let (code, _, _) = output(spawn(&spec("exit 3", fresh_ns(), &scratch)).unwrap());
    assert_eq!(code, Some(3));
    let (code, _, err) = output(spawn(&spec("nonexistent-cmd", fresh_ns(), &scratch)).unwrap());
    assert_eq!(code, Some(127), "stderr: {err}");
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn setup_failure_names_the_step() {
    if !root_available("setup_failure_names_the_step") {
        return;
    }
    let scratch = Scratch::new("fail");
    // A directory cannot be bind-mounted over a file.
    let mut s = spec("true", fresh_ns(), &scratch);
    s.hosts_file = scratch.0.clone();
    let e = spawn(&s).unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("failed to bind-mount the hosts file over /etc/hosts"),
        "{msg}"
    );
    let mut s = spec("true", fresh_ns(), &scratch);
    s.hosts_file = scratch.0.join("missing");
    let msg = format!("{:#}", spawn(&s).unwrap_err());
    assert!(msg.contains("failed to find the hosts file"), "{msg}");
}

#[test]
fn signal_mask_and_dispositions_are_reset() {
    if !root_available("signal_mask_and_dispositions_are_reset") {
        return;
    }
    // What plg's main thread does: block the signalfd signals. Plus an ignored signal, which
    // survives exec unless reset (process-wide, harmless in this test binary).
    let mut mask = nix::sys::signal::SigSet::empty();
    for s in plg::os::signals::HANDLED {
        mask.add(s);
    }
    mask.thread_block().unwrap();
    // SAFETY: installing SIG_IGN for SIGUSR2 has no handler code to be unsafe about.
    unsafe {
        nix::sys::signal::signal(Signal::SIGUSR2, nix::sys::signal::SigHandler::SigIgn).unwrap();
    }
    let scratch = Scratch::new("mask");
    let (code, out, _) = output(
        spawn(&spec(
            "grep -E '^(SigBlk|SigIgn)' /proc/self/status",
            fresh_ns(),
            &scratch,
        ))
        .unwrap(),
    );
    mask.thread_unblock().unwrap();
    assert_eq!(code, Some(0));
    assert_eq!(
        out, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n",
        "the child inherited a blocked or ignored signal"
    );
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Live (non-zombie) processes whose environment holds `marker`.
fn with_marker(marker: &str) -> Vec<i32> {
    let needle = format!("PLG_TEST_VAR={marker}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s[s.rfind(')').unwrap_or(0)..].starts_with(") Z"))
                .unwrap_or(true);
            !zombie && env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes())
        })
        .collect()
}

#[test]
fn terminate_reaches_escapees_once_and_kill_ends_the_whole_tree() {
    if !root_available("terminate_reaches_escapees_once_and_kill_ends_the_whole_tree") {
        return;
    }
    let scratch = Scratch::new("tree");
    let marker = format!("tree-{}", std::process::id());
    let mut s = spec(
        // A setsid daemon, a process in a new network namespace, and one that ignores SIGTERM.
        "setsid sleep 1000 & unshare -n sleep 1000 & sh -c 'trap \"\" TERM; sleep 1000' & wait",
        fresh_ns(),
        &scratch,
    );
    s.env = vec![("PLG_TEST_VAR".into(), marker.clone())];
    let mut child = spawn(&s).unwrap();
    wait_until("all five processes running", || {
        with_marker(&marker).len() == 5
    });
    child.terminate();
    child.terminate(); // the second call sends nothing
                       // The shell and the two sleeps end on SIGTERM; the trapping shell and its sleep do not.
    assert_eq!(child.wait(), Exit::Signaled(libc::SIGTERM));
    wait_until("the SIGTERM'd processes gone", || {
        with_marker(&marker).len() == 2
    });
    assert!(
        !child.gone(),
        "the init stays while its namespace has processes"
    );
    child.kill();
    assert!(child.wait_gone(Duration::from_secs(10)));
    assert_eq!(with_marker(&marker), Vec::<i32>::new());
}

#[test]
fn parent_death_signal_follows_the_forking_thread() {
    if !root_available("parent_death_signal_follows_the_forking_thread") {
        return;
    }
    // The documented trap: spawning from a thread that then exits kills the child.
    let scratch = Scratch::new("pdeath");
    let ns = fresh_ns();
    let s = spec("sleep 100", ns, &scratch);
    let mut child = std::thread::spawn(move || spawn(&s).unwrap())
        .join()
        .unwrap();
    assert_eq!(
        child.wait(),
        Exit::Signaled(libc::SIGKILL),
        "the command dies with the thread that forked it"
    );
}

#[test]
fn listening_ports_sees_a_listener_in_the_childs_namespace() {
    if !root_available("listening_ports_sees_a_listener_in_the_childs_namespace") {
        return;
    }
    let scratch = Scratch::new("listen");
    let ns = fresh_ns();
    // An idle process in the namespace: nothing listens yet.
    let mut idle = spawn(&spec("exec sleep 100", ns.try_clone().unwrap(), &scratch)).unwrap();
    assert_eq!(listening_ports(idle.id()).unwrap(), Vec::<u16>::new());

    let mut server = spawn(&spec(
        "exec python3 -m http.server 8123 --bind 0.0.0.0",
        ns,
        &scratch,
    ))
    .unwrap();
    // The port shows up for any process of that namespace (it is per namespace).
    wait_until("port 8123 listening", || {
        listening_ports(idle.id()).unwrap() == vec![8123]
    });
    assert_eq!(listening_ports(server.id()).unwrap(), vec![8123]);
    assert!(!listening_ports(std::process::id()).unwrap().contains(&8123));

    for c in [&mut server, &mut idle] {
        c.kill();
        c.wait();
    }
    let mut stderr = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(listening_ports(999_999_999).is_err());
}
