//! Child processes: spawn a command inside its network namespace with a private `/etc/hosts`
//! and hostname, signal its process group, and see which ports it listens on.
//!
//! Everything that must happen between `fork` and `exec` is done in a `pre_exec` closure. That
//! closure runs in the child of a multi-threaded parent: only the forking thread exists there,
//! and any lock another thread held at fork time (malloc's included) stays locked forever. So it
//! allocates nothing and takes no locks: every string is turned into a `CString` before
//! `spawn`, errors are `io::Error::last_os_error()` (an errno, no allocation), and the only
//! calls are raw syscalls.

use std::ffi::CString;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::Netns;

/// What to run and where.
#[derive(Debug)]
pub struct SpawnSpec {
    /// Run as `/bin/sh -c <command>`.
    pub command: String,
    /// The network namespace the child joins (`setns` before exec).
    pub netns: Netns,
    /// Bind-mounted over `/etc/hosts` in a new mount namespace: the host's `/etc` is never
    /// touched. A bind mount pins the file's inode: rewrite it in place, never replace it by a
    /// rename, or the child keeps seeing the old content.
    pub hosts_file: PathBuf,
    /// Set in a new UTS namespace.
    pub hostname: String,
    /// Added to (and overriding) the inherited environment.
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
}

/// The steps of the child's setup, in order; the index is what the child reports back when a
/// step fails (see [`spawn`]).
const STEPS: [&str; 8] = [
    "join the network namespace (setns)",
    "create the mount and UTS namespaces (unshare)",
    "make / a private mount (so nothing propagates back to the host)",
    "bind-mount the hosts file over /etc/hosts",
    "set the hostname",
    "create a process group (setpgid)",
    "set the parent-death signal (or plg exited meanwhile)",
    "reset the signal mask",
];

/// Spawns `spec.command` with `std::process::Command` and a `pre_exec` that, in the child:
/// `setns(net)`, `unshare(CLONE_NEWNS|CLONE_NEWUTS)`, mounts `/` `MS_REC|MS_PRIVATE`,
/// bind-mounts the hosts file on `/etc/hosts`, `sethostname`, `setpgid(0, 0)` (its own process
/// group: plg can signal the whole tree, and a terminal's Ctrl-C goes to plg only),
/// `prctl(PR_SET_PDEATHSIG, SIGKILL)`, then unblocks every signal and resets every disposition
/// to the default (plg blocks SIGINT/SIGTERM/SIGCHLD for its signalfd, and both the mask and
/// ignored dispositions survive `exec`). stdin is `/dev/null`, stdout and stderr are piped.
///
/// **Call this from the main thread** (or a thread that lives as long as plg): the parent-death
/// signal fires when the *thread* that forked exits, not the process. A child spawned from a
/// short-lived helper thread would be SIGKILLed as soon as that thread ends.
///
/// A failing setup step is named in the error: the child writes the step's index into a
/// close-on-exec pipe before `exec` fails, because std only passes the errno back.
pub fn spawn(spec: &SpawnSpec) -> anyhow::Result<Child> {
    // Everything the child needs, prepared here: no allocation after fork.
    //
    // The hosts file path is made absolute first: std changes directory (cwd) before running
    // pre_exec, so a relative source would be resolved against the wrong directory.
    let hosts = std::fs::canonicalize(&spec.hosts_file).with_context(|| {
        format!(
            "failed to find the hosts file {}",
            spec.hosts_file.display()
        )
    })?;
    let hosts_src = CString::new(hosts.as_os_str().as_bytes())
        .context("hosts file path contains a NUL byte")?;
    let hostname = spec.hostname.as_bytes().to_vec();
    if hostname.is_empty() || hostname.len() > 64 || hostname.contains(&0) {
        bail!(
            "invalid hostname {:?}: 1 to 64 bytes, no NUL",
            spec.hostname
        );
    }
    let ns_fd = spec.netns.fd().as_raw_fd();
    let parent_pid = nix::unistd::getpid().as_raw();
    // The report pipe: O_CLOEXEC on both ends, so a successful exec closes the child's copy
    // and no other child (spawned concurrently from another thread) keeps one.
    let (report_r, report_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .context("failed to create the child setup report pipe")?;
    let report_w_raw = report_w.as_raw_fd();

    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(&spec.command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    // SAFETY: the closure runs in the forked child before exec. It only makes raw syscalls
    // (setns, unshare, mount, sethostname, setpgid, prctl, getppid, sigprocmask, sigaction,
    // write) on data prepared before fork (`ns_fd` stays open in the parent's `spec` for the
    // whole spawn; `hosts_src` and `hostname` are moved in), allocates nothing and takes no
    // lock, so it is async-signal-safe as the fork-in-a-threaded-process rules require.
    unsafe {
        cmd.pre_exec(move || child_setup(ns_fd, &hosts_src, &hostname, parent_pid, report_w_raw));
    }
    let result = cmd.spawn();
    // Close our write end before reading: the child's copy is gone by now (exec succeeded, or
    // the child exited after reporting).
    drop(report_w);
    match result {
        Ok(child) => Ok(child),
        Err(e) => {
            let step = read_report(report_r);
            let what = match step.and_then(|i| STEPS.get(usize::from(i))) {
                Some(step) => format!("failed to {step} for `{}`", spec.command),
                None => format!("failed to spawn `{}`", spec.command),
            };
            Err(e).context(what)
        }
    }
}

fn read_report(fd: OwnedFd) -> Option<u8> {
    let mut file = std::fs::File::from(fd);
    let mut buf = [0u8; 1];
    match file.read(&mut buf) {
        Ok(1) => Some(buf[0]),
        _ => None,
    }
}

/// The child's half of [`spawn`]. Runs between fork and exec: see the module header.
fn child_setup(
    ns_fd: libc::c_int,
    hosts_src: &CString,
    hostname: &[u8],
    parent_pid: libc::pid_t,
    report_fd: libc::c_int,
) -> std::io::Result<()> {
    // Reports the failing step to the parent and returns the errno as the error.
    let fail = |step: u8| -> std::io::Error {
        let err = std::io::Error::last_os_error();
        // SAFETY: writes one byte from a live stack variable to an fd we own (the report pipe).
        unsafe { libc::write(report_fd, (&step as *const u8).cast(), 1) };
        err
    };
    // The relay raised plg's fd limit for itself; programs get the limits plg was given.
    crate::os::limits::restore_in_child();

    // SAFETY (whole function): each call below is a raw syscall wrapper with valid arguments:
    // fds that are open, NUL-terminated C strings that outlive the call, null pointers where the
    // syscall accepts them, and zeroed/owned stack structs.
    unsafe {
        // 0. Join the network namespace first: everything after is namespace-neutral, and
        //    the child's sockets must be created there.
        if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0 {
            return Err(fail(0));
        }
        // 1. New mount and UTS namespaces, private to this child (it is single-threaded now,
        //    which unshare(CLONE_NEWNS) requires).
        if libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWUTS) != 0 {
            return Err(fail(1));
        }
        // 2. Under systemd `/` is a shared mount: without this, our bind mount on /etc/hosts
        //    would propagate back into the host's mount namespace.
        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(fail(2));
        }
        // 3. The bind mount follows a symlinked /etc/hosts to its target, in our namespace only.
        if libc::mount(
            hosts_src.as_ptr(),
            c"/etc/hosts".as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        ) != 0
        {
            return Err(fail(3));
        }
        // 4.
        if libc::sethostname(hostname.as_ptr().cast(), hostname.len()) != 0 {
            return Err(fail(4));
        }
        // 5. Own process group: plg signals the whole tree with killpg, and the terminal's
        //    foreground group (plg's) is not ours, so Ctrl-C reaches plg only.
        if libc::setpgid(0, 0) != 0 {
            return Err(fail(5));
        }
        // 6. Die with plg. Tied to the forking *thread* (see `spawn`). If plg died between
        //    fork and here, the signal will never come: getppid() then differs from the pid
        //    recorded before fork (we were reparented), so give up.
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            return Err(fail(6));
        }
        if libc::getppid() != parent_pid {
            *libc::__errno_location() = libc::ESRCH;
            return Err(fail(6));
        }
        // 7. The signal mask and ignored dispositions survive exec; plg blocks SIGINT, SIGTERM
        //    and SIGCHLD (for its signalfd), and a blocked SIGTERM would make the child
        //    unkillable by plg's own shutdown. Handlers are reset by exec anyway; SIG_IGN is not.
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        if libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) != 0 {
            return Err(fail(7));
        }
        // The raw syscall, not glibc's sigaction(): glibc refuses (EINVAL) signals 32 and 33,
        // which it reserves for itself, yet an ignored 32 inherited from whoever started plg
        // would survive exec (seen here: the test harness's parent ignores signal 32). An
        // all-zero kernel `struct sigaction` is SIG_DFL, no flags, empty mask on every arch;
        // the buffer is larger than any arch's struct. The last argument is sizeof(sigset_t)
        // in the kernel's sense (64 signals).
        let dfl = [0u64; 8];
        for sig in 1..=64 {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                dfl.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            );
        }
    }
    Ok(())
}

/// Sends `sig` to every process in group `pgid` (a spawned child's pid is its pgid). A group
/// that no longer exists (ESRCH) is not an error.
pub fn signal_group(pgid: i32, sig: Signal) -> anyhow::Result<()> {
    // killpg(0) would signal plg's own group, killpg(1)/negative make no sense here.
    if pgid <= 1 {
        bail!("refusing to signal process group {pgid}");
    }
    match nix::sys::signal::killpg(Pid::from_raw(pgid), sig) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("failed to send {sig} to process group {pgid}")),
    }
}

/// TCP ports in LISTEN state in the network namespace of process `pid`, sorted and without
/// duplicates. Reads `/proc/<pid>/net/tcp` and `tcp6` (state `0A`), so it detects a listener
/// without sending any packet. `tcp6` is absent when the kernel has no IPv6.
pub fn listening_ports(pid: u32) -> anyhow::Result<Vec<u16>> {
    let mut ports = Vec::new();
    // TCP sockets in LISTEN; UDP sockets bound and not connected (what "listening" means for
    // a datagram server), so `--ready` works for both.
    for (file, state) in [("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")] {
        let path = format!("/proc/{pid}/net/{file}");
        match std::fs::read_to_string(&path) {
            Ok(text) => ports.extend(parse_ports_in_state(&text, state)),
            Err(e) if file.ends_with('6') && e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("failed to read {path}")),
        }
    }
    ports.sort_unstable();
    ports.dedup();
    Ok(ports)
}

/// The local ports of the LISTEN (`0A`) rows of a `/proc/net/tcp` or `tcp6` table.
pub fn parse_listening_ports(text: &str) -> Vec<u16> {
    parse_ports_in_state(text, "0A")
}

/// The local ports of the rows in `state` (hex, as the kernel prints it) of a
/// `/proc/net/{tcp,udp}[6]` table.
pub fn parse_ports_in_state(text: &str, wanted: &str) -> Vec<u16> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            if state != wanted {
                return None;
            }
            let port = local.rsplit_once(':')?.1;
            u16::from_str_radix(port, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listeners() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:1FBB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
   1: 0100007F:0050 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1\n";
        assert_eq!(parse_listening_ports(tcp), vec![8123]);
        let tcp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0\n";
        assert_eq!(parse_listening_ports(tcp6), vec![22]);
        assert!(parse_listening_ports("").is_empty());
    }

    #[test]
    fn refuses_own_group() {
        assert!(signal_group(0, Signal::SIGTERM).is_err());
        assert!(signal_group(1, Signal::SIGTERM).is_err());
    }
}
