//! Rootless mode, run for real as uid 65534.
//!
//! The root test re-executes this test binary as nobody (`setpriv`), selecting the
//! `rootless_probe` test with `PLG_ROOTLESS_PROBE`:
//! - `tun-denied`: /dev/net/tun as it is on these machines (mode 0600): entering must fail and
//!   name the device.
//! - `full`: inside a private mount namespace (`unshare -m`) a mode-0666 node for the same
//!   device (10:200) is bind-mounted over /dev/net/tun, as on a desktop; then the whole plg
//!   sequence must work: user namespace, netns + TUN, settings, spawn, host sockets.
//!
//! `unshare(CLONE_NEWUSER)` needs a single-threaded process, and the test harness always runs
//! a test on a second thread; so the probe forks, and the single-threaded child does the work
//! and reports on fd 1 with raw writes (the harness captures `print!` per thread, and the
//! capture does not survive fork). glibc's fork resets malloc's locks, so the child may
//! allocate.

use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

mod os_support;
use os_support::root_available_with;

/// A scratch directory nobody can read, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("plg-os-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("hosts"), "10.9.0.1 rootless\n").unwrap();
        std::fs::set_permissions(dir.join("hosts"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `rootless_probe` as uid/gid 65534, optionally under a shell prefix run as root.
fn run_probe(mode: &str, scratch: &Scratch, port: u16, root_prefix: &str) -> (bool, String) {
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        "{root_prefix} exec setpriv --reuid=65534 --regid=65534 --clear-groups -- \"$0\" \
         --exact rootless_probe --nocapture --test-threads=1"
    );
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .arg(&exe)
        .env("PLG_ROOTLESS_PROBE", mode)
        .env("PLG_ROOTLESS_DIR", &scratch.0)
        .env("PLG_ROOTLESS_PORT", port.to_string())
        .current_dir(&scratch.0)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn rootless_without_tun_access_names_the_device() {
    if !root_available_with("rootless_without_tun_access_names_the_device", &["setpriv"]) {
        return;
    }
    let mode = std::fs::metadata("/dev/net/tun")
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o006 == 0o006 {
        eprintln!("NOTE: /dev/net/tun is mode {mode:o} here; forcing 0600 in a private mount ns");
    }
    let scratch = Scratch::new("rootless-denied");
    // A 0600 node for the same device, so the result does not depend on the host's mode.
    let prefix = "mknod -m 0600 tun c 10 200 && mount --bind tun /dev/net/tun &&";
    let (ok, text) = run_probe("tun-denied", &scratch, 0, prefix);
    assert!(ok, "probe failed:\n{text}");
    assert!(text.contains("PROBE-OK"), "{text}");
    assert!(
        text.contains("no access to /dev/net/tun (mode 0600"),
        "the error names the device: {text}"
    );
}

#[test]
fn rootless_full_sequence_with_an_accessible_tun() {
    if !root_available_with(
        "rootless_full_sequence_with_an_accessible_tun",
        &["setpriv"],
    ) {
        return;
    }
    let scratch = Scratch::new("rootless-full");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let prefix = "mknod -m 0666 tun c 10 200 && mount --bind tun /dev/net/tun &&";
    let (ok, text) = run_probe("full", &scratch, port, prefix);
    assert!(ok, "probe failed:\n{text}");
    assert!(text.contains("PROBE-OK"), "{text}");
}

/// Not a test by itself: the body that `rootless_*` run as uid 65534 (see the module header).
/// Without `PLG_ROOTLESS_PROBE` it does nothing.
#[test]
fn rootless_probe() {
    let Some(mode) = std::env::var_os("PLG_ROOTLESS_PROBE") else {
        return;
    };
    let mode = mode.to_string_lossy().into_owned();
    // SAFETY: fork in a multi-threaded process: the child has only this thread. glibc's fork
    // makes malloc usable in the child; the child never touches the harness's locks (it writes
    // to fd 1 directly) and ends with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let result = std::panic::catch_unwind(|| match mode.as_str() {
            "tun-denied" => probe_tun_denied(),
            "full" => probe_full(),
            other => Err(anyhow::anyhow!("unknown probe mode {other}")),
        });
        let (code, msg) = match result {
            Ok(Ok(msg)) => (0, format!("PROBE-OK {msg}\n")),
            Ok(Err(e)) => (1, format!("PROBE-FAILED {e:#}\n")),
            Err(_) => (1, "PROBE-PANICKED\n".to_string()),
        };
        // SAFETY: writes a live buffer to fd 1 (no std lock: one may have been held at fork).
        unsafe { libc::write(1, msg.as_ptr().cast(), msg.len()) };
        // SAFETY: ends the forked child without running the harness's exit path.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child we just forked; `status` is a valid out pointer.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "probe child failed (status {status:#x})"
    );
}

fn probe_tun_denied() -> anyhow::Result<String> {
    anyhow::ensure!(!plg::os::is_root(), "the probe must not run as root");
    match plg::os::enter_user_namespace_if_needed() {
        Ok(entered) => anyhow::bail!("expected an error, got Ok({entered})"),
        Err(e) => Ok(format!("{e:#}")),
    }
}

fn probe_full() -> anyhow::Result<String> {
    use plg::os::process::{spawn, SpawnSpec};
    use plg::os::tun::interface_info;
    use plg::os::{create_tun, disable_ipv6, loopback_up, sysctl_set, HostSockets, Netns};

    anyhow::ensure!(!plg::os::is_root(), "the probe must not run as root");
    let dir = PathBuf::from(std::env::var("PLG_ROOTLESS_DIR")?);
    let port: u16 = std::env::var("PLG_ROOTLESS_PORT")?.parse()?;

    anyhow::ensure!(
        plg::os::enter_user_namespace_if_needed()?,
        "entered a user namespace"
    );
    anyhow::ensure!(plg::os::is_root(), "root inside the user namespace");
    // Before any namespace switch: this thread is in the host namespace.
    let host_sockets = HostSockets::start()?;

    let cfg = plg::os::TunConfig {
        name: "plg0".into(),
        addr: Ipv4Addr::new(10, 9, 0, 1),
        prefix_len: 16,
        mtu: 65000,
        txqueuelen: 5000,
        offload: true,
        routes: vec![(Ipv4Addr::UNSPECIFIED, 0)],
        addr6: None,
        routes6: vec![],
    };
    let (ns, _tun) = Netns::create_with(move || {
        disable_ipv6()?;
        loopback_up()?;
        sysctl_set("net/ipv4/tcp_tw_reuse", "1")?;
        create_tun(&cfg)
    })?;
    let info = ns.run_in(|| interface_info("plg0"))?;
    anyhow::ensure!(
        info.up && info.mtu == 65000 && info.txqueuelen == 5000,
        "{info:?}"
    );

    let child = spawn(&SpawnSpec {
        command: "id -u; hostname; cat /etc/hosts".into(),
        netns: ns.try_clone()?,
        hosts_file: dir.join("hosts"),
        resolv_file: None,
        gai_conf: None,
        hostname: "rootless".into(),
        env: vec![],
        cwd: None,
        user_namespace: false,
    })?;
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.exit.success() && stdout == "0\nrootless\n10.9.0.1 rootless\n",
        "child: {:?} {stdout:?} {:?}",
        out.exit,
        String::from_utf8_lossy(&out.stderr)
    );

    // Like the engine: this thread moves into the namespace for good, and still gets sockets
    // that reach the host's 127.0.0.1.
    ns.enter_current_thread()?;
    let s = host_sockets.tcp_socket(false)?;
    s.set_nonblocking(false)?;
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    s.connect(&addr.into())?;
    // And the host namespace cannot be re-entered from here: the reason HostSockets exists.
    let back = std::fs::File::open("/proc/1/ns/net")
        .map_err(anyhow::Error::from)
        .and_then(|f| {
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(Into::into)
        });
    anyhow::ensure!(
        back.is_err(),
        "setns back to the host namespace should fail"
    );
    Ok("rootless sequence works".into())
}
