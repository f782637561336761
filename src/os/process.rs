//! Child processes: run a command inside its network namespace with a private `/etc/hosts`,
//! `/etc/resolv.conf`, hostname and PID namespace, end it cleanly, and see which ports it
//! listens on.
//!
//! # Containment: one PID namespace per command
//!
//! Every command runs under a small *session init* of plg's own: plg `clone3`s it with
//! `CLONE_NEWPID`, so it is PID 1 of a fresh PID namespace, and it forks the command's shell
//! as PID 2. Whatever the command then does (double forks, `setsid` daemons, `unshare -n` into
//! another network namespace, a nested PID namespace) its processes stay in that PID
//! namespace: no syscall leaves one. That gives three guarantees that a sweep by network
//! namespace (or process group, or session id) could not:
//! - **Nothing survives.** When the init dies, the kernel SIGKILLs every process of its
//!   namespace. The init has `PDEATHSIG=SIGKILL`, so `kill -9` of plg takes the whole tree
//!   with it, with no help from any other process.
//! - **Nothing else is touched.** plg only ever signals its own inits, by pidfd (a handle on
//!   one process that is never reused), and an init signals only its own namespace. A PID
//!   namespace cannot be entered from outside except by a process holding it, so a late or
//!   stopped reaper can never hit a session started after it (the old sweep compared network
//!   namespace inode numbers, which the kernel reuses within seconds).
//! - **One SIGTERM per process.** On [`Spawned::terminate`] the init calls `kill(-1, SIGTERM)`,
//!   which the kernel delivers once to every process of the namespace but the init. Wrappers
//!   such as `runuser` and `su` read a second SIGTERM as "kill the child now"; they never get one.
//!
//! Why not a cgroup v2 per session (with `cgroup.kill`): it needs a writable, delegated cgroup2
//! hierarchy, which rootless users rarely have and hybrid or container setups (cgroup v1 at
//! `/sys/fs/cgroup`, this project's CI included) do not offer; a PID namespace needs only what
//! plg already needs (root, or a user namespace). And why a namespace per command rather than
//! one per session: the command's own program is then a child of plg's init, whose exit status
//! the init reports as it is (see [`Spawned::try_wait`]).
//!
//! The init also mounts a fresh `/proc` in the command's mount namespace, so `ps`, `pgrep` and
//! `/proc/$$` inside show the namespace's own PIDs (best effort: if the mount is refused, the
//! host's `/proc` stays visible).
//!
//! # Between fork and exec
//!
//! The init is a `clone3` of a multi-threaded process and never `exec`s; the command's shell is
//! a fork of it until it `exec`s. Only the cloning thread exists there, and any lock another
//! thread held (malloc's included) stays locked forever. So both run only raw syscalls on data
//! prepared before the clone: no allocation, no lock, errors as bare errnos. Every fd plg holds
//! (all `O_CLOEXEC`, which the init, never exec'ing, does not honour) is closed at once in the
//! init with `close_range`, except the few it needs.

use std::ffi::CString;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::Netns;

/// The host uid and gid a command runs as when [`SpawnSpec::user_namespace`] is set: `nobody`.
pub const USERNS_HOST_ID: u32 = 65534;

/// What to run and where.
#[derive(Debug)]
pub struct SpawnSpec {
    /// A shell command line, run as `/bin/sh -c` (see [`shell_line`]).
    pub command: String,
    /// The network namespace the command joins (`setns` before exec).
    pub netns: Netns,
    /// Bind-mounted over `/etc/hosts` in a new mount namespace: the host's `/etc` is never
    /// touched. A bind mount pins the file's inode: rewrite it in place, never replace it by a
    /// rename, or the command keeps seeing the old content.
    pub hosts_file: PathBuf,
    /// Bind-mounted over `/etc/resolv.conf` the same way (following a symlink to its target),
    /// so programs that read it themselves ask plg's resolver. Best effort: skipped when the
    /// host has no `/etc/resolv.conf` (or a dangling symlink), since nothing can be mounted
    /// there without touching the host's `/etc`; resolvers then fall back to 127.0.0.1, which
    /// answers "connection refused" at once inside the namespace.
    pub resolv_file: Option<PathBuf>,
    /// Bind-mounted over `/etc/gai.conf` (getaddrinfo's address sorting policy), best effort:
    /// where the host has no `/etc/gai.conf` there is nothing to mount over, and glibc's
    /// default policy applies.
    pub gai_conf: Option<PathBuf>,
    /// Set in a new UTS namespace.
    pub hostname: String,
    /// Added to (and overriding) the inherited environment.
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    /// Run the command in a user namespace of its own, a child of plg's: uid 0 inside, and
    /// outside [`USERNS_HOST_ID`] (`nobody`) when plg is real root, or plg's own uid 0 (the
    /// invoking user) in rootless mode. It then has no privilege over any namespace it did not
    /// create, its network namespace included: it cannot `setns` into the host's or another
    /// process's, reconfigure its interface, or act as root on the host's files.
    pub user_namespace: bool,
}

/// How a command's program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Exited(i32),
    Signaled(i32),
}

impl Exit {
    fn from_wait_status(st: libc::c_int) -> Exit {
        if libc::WIFEXITED(st) {
            Exit::Exited(libc::WEXITSTATUS(st))
        } else if libc::WIFSIGNALED(st) {
            Exit::Signaled(libc::WTERMSIG(st))
        } else {
            Exit::Exited(255)
        }
    }
    pub fn code(self) -> Option<i32> {
        match self {
            Exit::Exited(c) => Some(c),
            Exit::Signaled(_) => None,
        }
    }
    pub fn signal(self) -> Option<i32> {
        match self {
            Exit::Exited(_) => None,
            Exit::Signaled(s) => Some(s),
        }
    }
    pub fn success(self) -> bool {
        self == Exit::Exited(0)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Exited(c) => write!(f, "exit status {c}"),
            Exit::Signaled(s) => {
                let name = Signal::try_from(*s).map(|s| s.as_str()).unwrap_or("?");
                write!(f, "killed by {name}")
            }
        }
    }
}

/// The steps of the setup, in order; the index is what the init (or the command's shell,
/// for the last ones) reports back when a step fails.
const STEPS: [&str; 14] = [
    "join the network namespace (setns)",
    "create the mount and UTS namespaces (unshare)",
    "make / a private mount (so nothing propagates back to the host)",
    "bind-mount the hosts file over /etc/hosts",
    "set the hostname",
    "change to the working directory",
    "create a process group (setpgid)",
    "set the parent-death signal (or plg exited meanwhile)",
    "set up the standard file descriptors",
    "block signals in the session init",
    "fork the command under the session init",
    "reset the signal mask",
    "enter the command's user namespace",
    "run /bin/sh",
];

/// Step index of a failed `exec` of the shell.
const STEP_EXEC: u8 = 13;

/// The line given to `/bin/sh -c`: `exec <command>` when the command is one simple command
/// (no list, pipeline, subshell, compound or builtin), so the shell becomes the program: the
/// program gets plg's signals directly and its exit status is recorded as it is (dash would
/// otherwise fork it and report "killed by SIGTERM" for a server that exits 0 on SIGTERM).
/// Anything else is passed as is.
pub fn shell_line(command: &str) -> String {
    if is_simple_command(command) {
        format!("exec {command}")
    } else {
        command.to_string()
    }
}

/// Whether `exec` can be put in front of `command` without changing what it means.
fn is_simple_command(command: &str) -> bool {
    // Unquoted characters that make a list, pipeline, background job, subshell or command
    // substitution (after which `exec` would apply to part of the line only).
    let (mut single, mut double, mut escaped) = (false, false, false);
    for c in command.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if !single => escaped = true,
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '`' => return false,
            ';' | '&' | '|' | '\n' | '(' | ')' | '#' if !single && !double => return false,
            _ => {}
        }
    }
    if single || double || escaped {
        return false; // let the shell report the syntax error
    }
    let Some(first) = command.split_whitespace().next() else {
        return false;
    };
    // An assignment (`A=1 prog`: `exec A=1` would look for a program "A=1"), a reserved word,
    // or a builtin.
    const NOT_PROGRAMS: &[&str] = &[
        "exec", "if", "then", "else", "elif", "fi", "case", "esac", "for", "while", "until", "do",
        "done", "{", "}", "!", "[[", "]]", "function", "select", "time", "cd", "exit", "export",
        "set", "unset", "read", "wait", "trap", "eval", ".", "source", "alias", "unalias", "shift",
        "return", "local", "readonly", "ulimit", "umask", "getopts", "hash", "jobs", "fg", "bg",
        "command", "type", "break", "continue", "times", ":",
        // Builtins with a program of the same name that behaves differently (dash's echo
        // expands backslash escapes, coreutils' does not): keep the builtin.
        "echo", "printf", "kill", "test", "[", "pwd", "true", "false",
    ];
    !(first.contains('=') || NOT_PROGRAMS.contains(&first))
}

/// Everything the init and the command's shell need, prepared before the clone: after it,
/// nothing may allocate.
struct Prepared {
    ns_fd: RawFd,
    parent_pidfd: RawFd,
    hosts_src: CString,
    resolv_src: Option<CString>,
    gai_src: Option<CString>,
    hostname: Vec<u8>,
    cwd: Option<CString>,
    stdout_w: RawFd,
    stderr_w: RawFd,
    status_w: RawFd,
    report_w: RawFd,
    /// NUL-terminated pointer arrays into `_argv` / `_envp`.
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    userns: Option<UsernsMaps>,
}

struct UsernsMaps {
    /// The uid and gid to become before creating the namespace (None: stay).
    id: Option<libc::uid_t>,
    map: Vec<u8>,
}

/// A command running under its session init. See the module header.
#[derive(Debug)]
pub struct Spawned {
    /// The init's pid in plg's PID namespace.
    pid: i32,
    pidfd: OwnedFd,
    /// The init writes the program's wait status here (4 bytes) when it exits.
    status: File,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
    exit: Option<Exit>,
    reaped: bool,
    terminated: bool,
}

/// What [`Spawned::wait_with_output`] collects.
#[derive(Debug)]
pub struct Output {
    pub exit: Exit,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Starts `spec.command` under a session init in a new PID namespace (see the module header).
/// The init: `setns(net)`, `unshare(CLONE_NEWNS|CLONE_NEWUTS)`, mounts `/` `MS_REC|MS_PRIVATE`,
/// bind-mounts the hosts file on `/etc/hosts`, mounts a fresh `/proc`, `sethostname`, changes
/// to `cwd`, leaves plg's process group (a terminal's Ctrl-C is for plg only), sets
/// `PR_SET_PDEATHSIG=SIGKILL`, then forks the command's shell, which unblocks every signal,
/// resets every disposition to the default (plg blocks its signalfd signals, and both the mask
/// and ignored dispositions survive `exec`), takes a process group of its own and `exec`s
/// `/bin/sh -c` [`shell_line`]. stdin is `/dev/null`, stdout and stderr are piped.
///
/// **Call this from the main thread** (or a thread that lives as long as plg): the parent-death
/// signal fires when the *thread* that forked exits, not the process. A command spawned from a
/// short-lived helper thread is SIGKILLed as soon as that thread ends.
///
/// A failing setup step is named in the error, with its errno.
pub fn spawn(spec: &SpawnSpec) -> anyhow::Result<Spawned> {
    spawn_watching(spec, None).map_err(|e| match e {
        SpawnError::Interrupted(sig) => anyhow::anyhow!("interrupted by {sig} while starting"),
        SpawnError::Failed(e) => e,
    })
}

/// How long a command's setup (namespaces, mounts, ids, up to its `exec`) may take: it is
/// milliseconds of system calls, so a setup still running after this is stuck (a hung mount,
/// a futex no thread will wake) and plg kills it rather than wait forever.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why [`spawn_watching`] did not start a command.
#[derive(Debug)]
pub enum SpawnError {
    /// SIGINT, SIGTERM or SIGHUP arrived while the command was being set up: it was killed,
    /// and the caller should end the session as for that signal.
    Interrupted(Signal),
    /// The setup failed or did not finish within [`SETUP_TIMEOUT`] (the command was killed).
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for SpawnError {
    fn from(e: anyhow::Error) -> Self {
        SpawnError::Failed(e)
    }
}

/// [`spawn`], watching `signals` while the command is set up: plg stays responsive to
/// SIGINT/SIGTERM/SIGHUP during that wait (other signals read there, such as SIGCHLD, are
/// dropped, as the session's own waits do), and gives up after [`SETUP_TIMEOUT`].
pub fn spawn_watching(
    spec: &SpawnSpec,
    signals: Option<&super::signals::SignalFd>,
) -> Result<Spawned, SpawnError> {
    // The hosts file path is made absolute first: the init changes directory (cwd) after the
    // bind mount only, but a relative source is still a trap.
    let hosts = std::fs::canonicalize(&spec.hosts_file).with_context(|| {
        format!(
            "failed to find the hosts file {}",
            spec.hosts_file.display()
        )
    })?;
    let hosts_src = CString::new(hosts.as_os_str().as_bytes())
        .context("hosts file path contains a NUL byte")?;
    let resolv_src = match &spec.resolv_file {
        Some(r) => {
            let r = std::fs::canonicalize(r)
                .with_context(|| format!("failed to find the resolver file {}", r.display()))?;
            Some(
                CString::new(r.as_os_str().as_bytes())
                    .context("resolver file path contains a NUL byte")?,
            )
        }
        None => None,
    };
    let gai_src = match &spec.gai_conf {
        Some(g) => {
            let g = std::fs::canonicalize(g)
                .with_context(|| format!("failed to find {}", g.display()))?;
            Some(
                CString::new(g.as_os_str().as_bytes())
                    .context("gai.conf path contains a NUL byte")?,
            )
        }
        None => None,
    };
    let hostname = spec.hostname.as_bytes().to_vec();
    if hostname.is_empty() || hostname.len() > 64 || hostname.contains(&0) {
        return Err(anyhow::anyhow!(
            "invalid hostname {:?}: 1 to 64 bytes, no NUL",
            spec.hostname
        )
        .into());
    }
    let cwd = match &spec.cwd {
        Some(c) => Some(CString::new(c.as_os_str().as_bytes()).context("cwd contains a NUL byte")?),
        None => None,
    };
    let userns = if spec.user_namespace {
        if !nix::unistd::geteuid().is_root() {
            return Err(anyhow::anyhow!(
                "a user namespace per command needs root (or plg's rootless user namespace)"
            )
            .into());
        }
        // In rootless mode only uid 0 exists in plg's namespace: map it to itself.
        let id = (!super::rootless::in_user_namespace()).then_some(USERNS_HOST_ID);
        Some(UsernsMaps {
            id,
            map: format!("0 {} 1", id.unwrap_or(0)).into_bytes(),
        })
    } else {
        None
    };
    let argv_c: Vec<CString> = vec![
        c"sh".to_owned(),
        c"-c".to_owned(),
        CString::new(shell_line(&spec.command)).context("the command contains a NUL byte")?,
    ];
    let mut env: Vec<(std::ffi::OsString, std::ffi::OsString)> = std::env::vars_os()
        .filter(|(k, _)| !spec.env.iter().any(|(o, _)| k.as_bytes() == o.as_bytes()))
        .collect();
    env.extend(spec.env.iter().map(|(k, v)| (k.into(), v.into())));
    let envp_c: Vec<CString> = env
        .iter()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();

    // All O_CLOEXEC: no other child (spawned meanwhile from another thread) keeps a copy.
    let cloexec = nix::fcntl::OFlag::O_CLOEXEC;
    let (out_r, out_w) = nix::unistd::pipe2(cloexec).context("failed to create a pipe")?;
    let (err_r, err_w) = nix::unistd::pipe2(cloexec).context("failed to create a pipe")?;
    let (status_r, status_w) = nix::unistd::pipe2(cloexec).context("failed to create a pipe")?;
    let (report_r, report_w) = nix::unistd::pipe2(cloexec).context("failed to create a pipe")?;
    let parent_pidfd =
        pidfd_open(std::process::id() as i32).context("failed to open plg's pidfd")?;

    let mut prepared = Prepared {
        ns_fd: spec.netns.fd().as_raw_fd(),
        parent_pidfd: parent_pidfd.as_raw_fd(),
        hosts_src,
        resolv_src,
        gai_src,
        hostname,
        cwd,
        stdout_w: out_w.as_raw_fd(),
        stderr_w: err_w.as_raw_fd(),
        status_w: status_w.as_raw_fd(),
        report_w: report_w.as_raw_fd(),
        argv: Vec::new(),
        envp: Vec::new(),
        _argv: argv_c,
        _envp: envp_c,
        userns,
    };
    prepared.argv = prepared._argv.iter().map(|c| c.as_ptr()).collect();
    prepared.argv.push(std::ptr::null());
    prepared.envp = prepared._envp.iter().map(|c| c.as_ptr()).collect();
    prepared.envp.push(std::ptr::null());

    let mut pidfd: libc::c_int = -1;
    let args = CloneArgs {
        flags: (libc::CLONE_NEWPID | libc::CLONE_PIDFD) as u64,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 with no stack behaves like fork: the child continues here on a copy of
    // this thread's stack. The child runs only `init_main`, which never returns, allocates
    // nothing and makes only raw syscalls on `prepared` (see the module header). `args` and
    // `pidfd` are valid for the call.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid == 0 {
        // SAFETY: in the cloned child; see above.
        unsafe { init_main(&prepared) }
    }
    if pid < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| {
                format!(
                    "failed to start `{}` (clone3 with a new PID namespace)",
                    spec.command
                )
            })
            .map_err(SpawnError::Failed);
    }
    // SAFETY: with CLONE_PIDFD the kernel stored a new pidfd (O_CLOEXEC) owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    drop((out_w, err_w, status_w, report_w, parent_pidfd));
    let status = File::from(status_r);
    nix::fcntl::fcntl(
        &status,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .context("failed to make the status pipe non-blocking")?;
    let mut spawned = Spawned {
        pid: pid as i32,
        pidfd,
        status,
        stdout: Some(File::from(out_r)),
        stderr: Some(File::from(err_r)),
        exit: None,
        reaped: false,
        terminated: false,
    };
    // EOF once the shell exec'd (its copy is close-on-exec) and the init closed its copy.
    let report = wait_report(report_r, signals, SETUP_TIMEOUT);
    if !matches!(report, Report::Exec) {
        spawned.kill();
        spawned.wait_gone(Duration::from_secs(5));
    }
    match report {
        Report::Exec => Ok(spawned),
        Report::Failed(step, errno) => {
            let what = match STEPS.get(usize::from(step)) {
                Some(step) => format!("failed to {step} for `{}`", spec.command),
                None => format!("failed to spawn `{}`", spec.command),
            };
            Err(SpawnError::Failed(
                anyhow::Error::from(std::io::Error::from_raw_os_error(errno)).context(what),
            ))
        }
        Report::Signal(sig) => Err(SpawnError::Interrupted(sig)),
        Report::TimedOut => Err(SpawnError::Failed(anyhow::anyhow!(
            "`{}` did not finish its setup (namespaces, mounts, exec) within {} s: plg killed it",
            spec.command,
            SETUP_TIMEOUT.as_secs()
        ))),
    }
}

/// What the report pipe said about a command's setup.
#[derive(Debug, PartialEq)]
enum Report {
    /// EOF with nothing written: the shell exec'd.
    Exec,
    /// The step that failed, and its errno.
    Failed(u8, i32),
    /// plg was told to stop while waiting.
    Signal(Signal),
    TimedOut,
}

/// Waits for the init's report (EOF alone means the shell exec'd), for at most `limit`, and
/// returns early on SIGINT/SIGTERM/SIGHUP when `signals` is given.
fn wait_report(fd: OwnedFd, signals: Option<&super::signals::SignalFd>, limit: Duration) -> Report {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Report::TimedOut;
        }
        let ms = PollTimeout::try_from(left.as_millis().min(1000) as i32 + 1)
            .unwrap_or(PollTimeout::MAX);
        let (report_ready, signal_ready) = {
            let mut fds = vec![PollFd::new(
                std::os::fd::AsFd::as_fd(&fd),
                PollFlags::POLLIN,
            )];
            if let Some(s) = signals {
                fds.push(PollFd::new(s.fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, ms) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                // Cannot poll: fall back to a plain blocking read of the report.
                Err(_) => break,
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), fds.get(1).is_some_and(ready))
        };
        if signal_ready {
            let stop = signals
                .and_then(|s| s.read_signals().ok())
                .and_then(|sigs| {
                    sigs.into_iter()
                        .find(|s| matches!(s, Signal::SIGINT | Signal::SIGTERM | Signal::SIGHUP))
                });
            if let Some(sig) = stop {
                return Report::Signal(sig);
            }
        }
        if report_ready {
            break;
        }
    }
    // Readable: either EOF or the one short message a failing init writes just before it
    // exits (which closes the pipe), so this read ends at once.
    let mut file = File::from(fd);
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    let Some((&step, errno)) = buf.split_first() else {
        return Report::Exec;
    };
    let errno = errno
        .get(..4)
        .map_or(0, |e| i32::from_ne_bytes([e[0], e[1], e[2], e[3]]));
    Report::Failed(step, errno)
}

/// `struct clone_args` of `<linux/sched.h>` (all fields 64-bit on every arch).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// A pidfd for `pid` (`O_CLOEXEC`).
pub fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open has no memory arguments; the returned fd is checked and owned at once.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new fd the kernel just returned, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends `sig` to the process behind `pidfd`; a process that has exited is not an error.
pub fn pidfd_signal(pidfd: &OwnedFd, sig: Signal) -> std::io::Result<()> {
    // SAFETY: a valid pidfd, a valid signal, no siginfo (the kernel fills in a SI_USER one).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(e);
        }
    }
    Ok(())
}

/// Whether the process behind `pidfd` has exited (a pidfd polls readable then).
pub fn pidfd_exited(pidfd: &OwnedFd) -> bool {
    let mut p = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no timeout.
    let rc = unsafe { libc::poll(&mut p, 1, 0) };
    rc > 0 && p.revents & libc::POLLIN != 0
}

impl Spawned {
    /// The session init's pid (in plg's PID namespace). It is in the command's network
    /// namespace, so [`listening_ports`] of it are the command's.
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// The program's exit status once it has exited (the shell's, which `exec`s a simple
    /// command). Its children may still run. Never blocks.
    pub fn try_wait(&mut self) -> Option<Exit> {
        if self.exit.is_none() {
            let mut buf = [0u8; 4];
            match self.status.read(&mut buf) {
                Ok(4) => self.exit = Some(Exit::from_wait_status(i32::from_ne_bytes(buf))),
                // The init is gone without a word: it was SIGKILLed, and the program with it.
                Ok(_) => self.exit = Some(Exit::Signaled(libc::SIGKILL)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.exit = Some(Exit::Signaled(libc::SIGKILL)),
            }
        }
        self.exit
    }

    /// Waits up to `timeout` for the program's exit status.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Exit> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.try_wait() {
                return Some(e);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut p = libc::pollfd {
                fd: self.status.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, 1000) as libc::c_int;
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut p, 1, ms) };
        }
    }

    /// Waits for the program's exit status, however long it takes.
    pub fn wait(&mut self) -> Exit {
        loop {
            if let Some(e) = self.wait_timeout(Duration::from_secs(3600)) {
                return e;
            }
        }
    }

    /// Sends one SIGTERM to every process of the command (the init does `kill(-1, SIGTERM)`
    /// in its namespace). Only the first call does anything: nobody gets a second SIGTERM.
    pub fn terminate(&mut self) {
        if !self.terminated {
            self.terminated = true;
            let _ = pidfd_signal(&self.pidfd, Signal::SIGTERM);
        }
    }

    /// SIGKILLs the init, and with it (by the kernel) every process of the command.
    pub fn kill(&self) {
        let _ = pidfd_signal(&self.pidfd, Signal::SIGKILL);
    }

    /// Whether every process of the command is gone (the init exits when its namespace is
    /// empty, or dies when killed); reaps the init then.
    pub fn gone(&mut self) -> bool {
        if !self.reaped && pidfd_exited(&self.pidfd) {
            // The init is our child and a zombie now: this does not block.
            let _ = nix::sys::wait::waitpid(Pid::from_raw(self.pid), None);
            self.reaped = true;
        }
        self.reaped
    }

    /// Waits up to `timeout` for [`Spawned::gone`].
    pub fn wait_gone(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.gone() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let mut p = libc::pollfd {
                fd: self.pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, 1000) as libc::c_int;
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut p, 1, ms) };
        }
        true
    }

    /// Reads stdout and stderr to the end, then waits for the exit status (tests, tools).
    pub fn wait_with_output(mut self) -> anyhow::Result<Output> {
        let mut err_pipe = self.stderr.take();
        let err_thread = std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(e) = err_pipe.as_mut() {
                let _ = e.read_to_end(&mut buf);
            }
            buf
        });
        let mut stdout = Vec::new();
        if let Some(mut o) = self.stdout.take() {
            o.read_to_end(&mut stdout)
                .context("failed to read stdout")?;
        }
        let stderr = err_thread.join().unwrap_or_default();
        let exit = self.wait();
        Ok(Output {
            exit,
            stdout,
            stderr,
        })
    }
}

impl Drop for Spawned {
    /// Nothing a command started outlives its handle.
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            self.wait_gone(Duration::from_secs(1));
        }
    }
}

/// The session init: PID 1 of the command's namespace. Runs in the clone of a multi-threaded
/// process and never returns: raw syscalls only (module header).
///
/// # Safety
/// Only in the child of [`spawn`]'s clone3, with `p` fully prepared.
unsafe fn init_main(p: &Prepared) -> ! {
    let mut report = p.report_w;
    let null = std::ptr::null::<libc::c_char>();

    // 0. Join the network namespace first: the command's sockets must be created there.
    if libc::setns(p.ns_fd, libc::CLONE_NEWNET) != 0 {
        fail(report, 0);
    }
    // 1. New mount and UTS namespaces (the clone is single-threaded, as unshare requires).
    if libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWUTS) != 0 {
        fail(report, 1);
    }
    // 2. Under systemd `/` is a shared mount: without this, our mounts would propagate back
    //    into the host's mount namespace.
    if libc::mount(
        null,
        c"/".as_ptr(),
        null,
        libc::MS_REC | libc::MS_PRIVATE,
        std::ptr::null(),
    ) != 0
    {
        fail(report, 2);
    }
    // 3. The bind mount follows a symlinked /etc/hosts to its target, in our namespace only.
    if libc::mount(
        p.hosts_src.as_ptr(),
        c"/etc/hosts".as_ptr(),
        null,
        libc::MS_BIND,
        std::ptr::null(),
    ) != 0
    {
        fail(report, 3);
    }
    // The resolver's configuration likewise; best effort (see `SpawnSpec::resolv_file`): a
    // missing or dangling /etc/resolv.conf fails here and is left as it is.
    if let Some(resolv) = &p.resolv_src {
        libc::mount(
            resolv.as_ptr(),
            c"/etc/resolv.conf".as_ptr(),
            null,
            libc::MS_BIND,
            std::ptr::null(),
        );
    }
    // The address sorting policy, best effort (nothing to mount over without a host file).
    if let Some(gai) = &p.gai_src {
        libc::mount(
            gai.as_ptr(),
            c"/etc/gai.conf".as_ptr(),
            null,
            libc::MS_BIND,
            std::ptr::null(),
        );
    }
    // A /proc of this PID namespace (we are its PID 1, so the mount shows it). Best effort:
    // refused in some containers (a masked host /proc), then the host's /proc stays.
    libc::mount(
        c"proc".as_ptr(),
        c"/proc".as_ptr(),
        c"proc".as_ptr(),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        std::ptr::null(),
    );
    // Named so in `ps` on the host; exec never resets it (there is no exec).
    libc::prctl(libc::PR_SET_NAME, c"plg-init".as_ptr(), 0, 0, 0);
    // 4.
    if libc::sethostname(p.hostname.as_ptr().cast(), p.hostname.len()) != 0 {
        fail(report, 4);
    }
    // 5.
    if let Some(cwd) = &p.cwd {
        if libc::chdir(cwd.as_ptr()) != 0 {
            fail(report, 5);
        }
    }
    // 6. Out of plg's process group: a terminal's Ctrl-C is for plg, which then ends the
    //    session its own way.
    if libc::setpgid(0, 0) != 0 {
        fail(report, 6);
    }
    // 7. Die with plg (tied to the cloning *thread*, see `spawn`), and with us the whole
    //    namespace. If plg died before this, the signal will never come: its pidfd then polls
    //    readable (getppid() is no use: the parent is outside our namespace, so it reads 0).
    if libc::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        0,
        0,
        0,
    ) != 0
    {
        fail(report, 7);
    }
    let mut pfd = libc::pollfd {
        fd: p.parent_pidfd,
        events: libc::POLLIN,
        revents: 0,
    };
    if libc::poll(&mut pfd, 1, 0) != 0 {
        *libc::__errno_location() = libc::ESRCH;
        fail(report, 7);
    }
    // 8. Fixed fd numbers: 0 /dev/null, 1 and 2 the output pipes, 3 the status pipe, 4 the
    //    report pipe (3 and 4 close-on-exec), and nothing else: every other fd is a copy of
    //    one of plg's (TUNs, the capture, other commands' pipes) that the init, never
    //    exec'ing, would otherwise keep open. First above 10, so no dup2 overwrites a source.
    let mut high = [p.stdout_w, p.stderr_w, p.status_w, p.report_w];
    for fd in high.iter_mut() {
        *fd = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10);
        if *fd < 0 {
            fail(report, 8);
        }
    }
    let devnull = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
    if devnull < 0
        || libc::dup2(devnull, 0) < 0
        || libc::dup2(high[0], 1) < 0
        || libc::dup2(high[1], 2) < 0
        || libc::dup2(high[2], 3) < 0
        || libc::dup2(high[3], 4) < 0
    {
        fail(report, 8);
    }
    report = 4;
    libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC);
    libc::fcntl(4, libc::F_SETFD, libc::FD_CLOEXEC);
    if libc::syscall(libc::SYS_close_range, 5u32, u32::MAX, 0u32) != 0 {
        for fd in 5..65536 {
            libc::close(fd);
        }
    }
    // 9. Every signal blocked: SIGCHLD and SIGTERM are read with sigtimedwait below, the rest
    //    never matter to a PID 1 without handlers.
    let mut all: libc::sigset_t = std::mem::zeroed();
    libc::sigfillset(&mut all);
    if libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut()) != 0 {
        fail(report, 9);
    }
    // 10. The command's shell, PID 2. A raw clone, not glibc's fork: that one runs atfork
    //     handlers that take malloc's locks, which another thread of plg may have held.
    let child = libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0, 0, 0, 0);
    if child < 0 {
        fail(report, 10);
    }
    if child == 0 {
        command_main(p);
    }
    let child = child as libc::pid_t;
    // The command owns the output pipes and the report pipe now; plg sees EOF on them when
    // the command's processes are done with them.
    libc::close(0);
    libc::close(1);
    libc::close(2);
    libc::close(4);
    init_loop(child)
}

/// The init's life after the fork: reap every process that ends in the namespace (orphans
/// come to PID 1), report the program's status, forward plg's SIGTERM once, and exit when the
/// namespace is empty.
unsafe fn init_loop(child: libc::pid_t) -> ! {
    let mut wanted: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut wanted);
    libc::sigaddset(&mut wanted, libc::SIGCHLD);
    libc::sigaddset(&mut wanted, libc::SIGTERM);
    let mut forwarded = false;
    loop {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let sig = libc::syscall(
            libc::SYS_rt_sigtimedwait,
            &wanted as *const libc::sigset_t,
            &mut info as *mut libc::siginfo_t,
            std::ptr::null::<libc::timespec>(),
            8usize,
        ) as libc::c_int;
        // si_pid is 0 for a sender outside our namespace (plg): a process of the command
        // signalling its PID 1 does not end the session.
        if sig == libc::SIGTERM && info.si_pid() == 0 && !forwarded {
            forwarded = true;
            libc::kill(-1, libc::SIGTERM);
        }
        loop {
            let mut st: libc::c_int = 0;
            let r = libc::waitpid(-1, &mut st, libc::WNOHANG);
            if r == child {
                libc::write(3, (&st as *const libc::c_int).cast(), 4);
            } else if r == 0 {
                break;
            } else if r < 0 {
                if *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                // ECHILD: nobody left in the namespace.
                libc::_exit(0);
            }
        }
    }
}

/// The command's shell, between the init's fork and `exec`.
unsafe fn command_main(p: &Prepared) -> ! {
    // 11. The signal mask and ignored dispositions survive exec. The raw syscall, not glibc's
    //     sigaction(): glibc refuses (EINVAL) signals 32 and 33, which it reserves for itself,
    //     yet an ignored 32 inherited from whoever started plg would survive exec. An all-zero
    //     kernel `struct sigaction` is SIG_DFL, no flags, empty mask on every arch; the buffer
    //     is larger than any arch's struct. The last argument is the kernel's sigset size.
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
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    if libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) != 0 {
        fail(4, 11);
    }
    // Its own process group, as a job of an interactive shell would have.
    libc::setpgid(0, 0);
    // The relay raised plg's fd limit for itself; programs get the limits plg was given
    // (one setrlimit on numbers saved before the fork: async-signal-safe).
    crate::os::limits::restore_in_child();
    // 12. nobody on the host, root inside. The order is the kernel's: ids first (while still
    //     privileged), dumpable again (changing ids clears it, and a non-dumpable process's
    //     /proc files belong to root, uid_map included), then the namespace and its maps,
    //     setgroups denied before gid_map.
    //     Raw syscalls, not glibc's setgroups/setres[ug]id: those broadcast the change to
    //     every thread glibc believes this process has (plg's, since the init and this shell
    //     were raw clones) under a lock another plg thread may have held at the clone, and
    //     then wait for them forever (the command hung before exec about 1 run in 6). A raw
    //     call changes this thread only, which is the whole process here.
    if let Some(u) = &p.userns {
        let change_ids = |id: libc::uid_t| {
            let id = id as libc::c_long;
            libc::syscall(
                libc::SYS_setgroups,
                0 as libc::c_long,
                std::ptr::null::<libc::gid_t>(),
            ) == 0
                && libc::syscall(libc::SYS_setresgid, id, id, id) == 0
                && libc::syscall(libc::SYS_setresuid, id, id, id) == 0
                && libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) == 0
        };
        if !u.id.is_none_or(change_ids)
            || libc::unshare(libc::CLONE_NEWUSER) != 0
            || !write_file(c"/proc/self/setgroups", b"deny")
            || !write_file(c"/proc/self/uid_map", &u.map)
            || !write_file(c"/proc/self/gid_map", &u.map)
        {
            fail(4, 12);
        }
    }
    libc::execve(c"/bin/sh".as_ptr(), p.argv.as_ptr(), p.envp.as_ptr());
    fail(4, STEP_EXEC)
}

/// Writes `data` to `path` with raw syscalls (no allocation).
unsafe fn write_file(path: &std::ffi::CStr, data: &[u8]) -> bool {
    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return false;
    }
    let ok = libc::write(fd, data.as_ptr().cast(), data.len()) == data.len() as isize;
    libc::close(fd);
    ok
}

/// Reports a failed setup step and its errno to plg on `report`, then exits.
unsafe fn fail(report: RawFd, step: u8) -> ! {
    let errno = *libc::__errno_location();
    let mut msg = [0u8; 5];
    msg[0] = step;
    msg[1..].copy_from_slice(&errno.to_ne_bytes());
    libc::write(report, msg.as_ptr().cast(), msg.len());
    libc::_exit(127)
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

/// The ports of [`listening_sockets`], sorted and without duplicates.
pub fn listening_ports(pid: u32) -> anyhow::Result<Vec<u16>> {
    let mut ports: Vec<u16> = listening_sockets(pid)?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    Ok(ports)
}

/// Each listener's local address and port: TCP sockets in LISTEN and UDP sockets bound and
/// not connected (what "listening" means for a datagram server, so `--ready` works for both)
/// in the network namespace of `pid`, IPv4 and IPv6, read from `/proc/<pid>/net/{tcp,udp}[6]`
/// (no packet is sent; the IPv6 tables are absent when the kernel has no IPv6).
pub fn listening_sockets(pid: u32) -> anyhow::Result<Vec<(std::net::IpAddr, u16)>> {
    let mut found = Vec::new();
    for (file, state) in [("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")] {
        let path = format!("/proc/{pid}/net/{file}");
        match std::fs::read_to_string(&path) {
            Ok(text) => found.extend(parse_sockets_in_state(&text, state)),
            Err(e) if file.ends_with('6') && e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("failed to read {path}")),
        }
    }
    found.sort_unstable();
    found.dedup();
    Ok(found)
}

/// The local (address, port) of the rows in `state` of a `/proc/net/{tcp,udp}[6]` table. The
/// kernel prints each 32-bit word of an address as a native-endian hex number.
pub fn parse_sockets_in_state(text: &str, wanted: &str) -> Vec<(std::net::IpAddr, u16)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            if state != wanted {
                return None;
            }
            let (addr, port) = local.rsplit_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let mut bytes = Vec::with_capacity(16);
            for i in (0..addr.len()).step_by(8) {
                let word = u32::from_str_radix(addr.get(i..i + 8)?, 16).ok()?;
                bytes.extend_from_slice(&word.to_ne_bytes());
            }
            let ip = match bytes.len() {
                4 => std::net::IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
                16 => std::net::IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
                _ => return None,
            };
            Some((ip, port))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setup_wait_is_bounded_and_ends_on_a_stop_signal() {
        // Nothing written and the write end open: a stuck setup, given up at the limit.
        let (r, w) = nix::unistd::pipe().unwrap();
        assert_eq!(
            wait_report(r, None, Duration::from_millis(200)),
            Report::TimedOut
        );
        drop(w);
        // EOF alone: exec'd.
        let (r, w) = nix::unistd::pipe().unwrap();
        drop(w);
        assert_eq!(wait_report(r, None, SETUP_TIMEOUT), Report::Exec);
        // A failed step and its errno.
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut msg = vec![3u8];
        msg.extend_from_slice(&libc::ENOENT.to_ne_bytes());
        nix::unistd::write(&w, &msg).unwrap();
        drop(w);
        assert_eq!(
            wait_report(r, None, SETUP_TIMEOUT),
            Report::Failed(3, libc::ENOENT)
        );
        // SIGTERM (directed at this thread, which blocks it like plg's main thread) ends the
        // wait at once; a SIGCHLD alone does not.
        let signals = super::super::signals::block_and_signalfd().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        // SAFETY: a signal to this very thread, which blocks it (it goes to the signalfd).
        let to_me =
            |sig: i32| assert_eq!(unsafe { libc::pthread_kill(libc::pthread_self(), sig) }, 0);
        to_me(libc::SIGCHLD);
        to_me(libc::SIGTERM);
        assert_eq!(
            wait_report(r, Some(&signals), SETUP_TIMEOUT),
            Report::Signal(Signal::SIGTERM)
        );
        let (r, _w2) = nix::unistd::pipe().unwrap();
        to_me(libc::SIGCHLD);
        assert_eq!(
            wait_report(r, Some(&signals), Duration::from_millis(200)),
            Report::TimedOut
        );
        drop(w);
    }

    #[test]
    fn parses_listeners() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:1FBB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
   1: 0100007F:0050 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1\n";
        let ports = |text| -> Vec<u16> {
            parse_sockets_in_state(text, "0A")
                .into_iter()
                .map(|(_, p)| p)
                .collect()
        };
        assert_eq!(ports(tcp), vec![8123]);
        let tcp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0\n";
        assert_eq!(ports(tcp6), vec![22]);
        assert!(ports("").is_empty());
        let any: std::net::IpAddr = "0.0.0.0".parse().unwrap();
        assert_eq!(parse_sockets_in_state(tcp, "0A"), vec![(any, 8123)]);
        let lo6 = "  sl  local_address remote_address st\n\
   0: 00000000000000000000000001000000:1F40 00000000000000000000000000000000:0000 0A 0\n\
   1: 6C7000FD000067000000000002000000:0050 00000000000000000000000000000000:0000 0A 0\n";
        assert_eq!(
            parse_sockets_in_state(lo6, "0A"),
            vec![
                ("::1".parse().unwrap(), 8000),
                ("fd00:706c:67::2".parse().unwrap(), 80)
            ]
        );
    }

    #[test]
    fn simple_commands_are_execed() {
        for c in [
            "redis-server --port 6379",
            "python3 -c 'import sys; sys.exit(3)'",
            "cat \"a;b|c\" > out",
            "sleep 1000",
            "./server --flag=1",
            "nonexistent-cmd",
        ] {
            assert_eq!(shell_line(c), format!("exec {c}"), "{c}");
        }
    }

    #[test]
    fn shell_syntax_is_left_to_the_shell() {
        for c in [
            "a; b",
            "a && b",
            "a || b",
            "a | b",
            "a &",
            "a\nb",
            "(a)",
            "echo $(date)",
            "echo `date`",
            "A=1 prog",
            "exit 3",
            "cd /tmp",
            "echo 'a\\nb'",
            "kill -KILL $$",
            "if true; then x; fi",
            "{ a; }",
            "exec prog",
            "echo 'unterminated",
            "prog # comment",
            "",
            "   ",
        ] {
            assert_eq!(shell_line(c), c, "{c:?}");
        }
    }

    #[test]
    fn refuses_own_group() {
        assert!(signal_group(0, Signal::SIGTERM).is_err());
        assert!(signal_group(1, Signal::SIGTERM).is_err());
    }
}
