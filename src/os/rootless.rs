//! Rootless mode: become root of a new user namespace, so that creating network namespaces,
//! TUN devices and mount namespaces is allowed without real privileges.
//!
//! Two things must both hold, and the error says which one does not:
//! - unprivileged user namespaces are allowed (Debian's `kernel.unprivileged_userns_clone`,
//!   `user.max_user_namespaces`, Ubuntu's AppArmor `kernel.apparmor_restrict_unprivileged_userns`,
//!   or a container's seccomp filter can forbid them);
//! - `/dev/net/tun` is readable and writable by the real user. Root inside the user namespace
//!   does not help: the device's owner (host root) is not mapped there, so only its "other"
//!   permission bits apply (mode 0600 denies, 0666 allows).
//!
//! After this, the process can never get back into the host's namespaces with `setns`; keep a
//! private base namespace and use [`HostSockets`](super::hostsock::HostSockets) for host sockets.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::sched::CloneFlags;

use super::tun::TUN_DEVICE;

/// When not root: `unshare(CLONE_NEWUSER)` and map the caller's uid and gid to 0 (writing
/// `setgroups` = deny, `uid_map`, `gid_map`). Returns whether it entered one.
///
/// Must run while the process is single-threaded (the kernel refuses CLONE_NEWUSER otherwise;
/// this is checked first, with a clear error). On error the process may already be in the new
/// namespace: treat the error as fatal.
pub fn enter_user_namespace_if_needed() -> anyhow::Result<bool> {
    let euid = nix::unistd::geteuid();
    if euid.is_root() {
        return Ok(false);
    }
    let egid = nix::unistd::getegid();
    let threads = thread_count()?;
    if threads != 1 {
        bail!(
            "cannot enter a user namespace: the process already has {threads} threads \
             (enter_user_namespace_if_needed must run before any thread is started)"
        );
    }

    let mut problems = Vec::new();
    if let Some(p) = tun_access_problem() {
        problems.push(p);
    }
    if let Err(errno) = nix::sched::unshare(CloneFlags::CLONE_NEWUSER) {
        problems.push(userns_problem(errno, &SysctlView::read()));
    }
    if !problems.is_empty() {
        bail!("cannot run rootless: {}", problems.join("; and "));
    }

    // The order is fixed by the kernel: an unprivileged process must deny setgroups before it
    // may write gid_map.
    write_proc("/proc/self/setgroups", "deny")?;
    write_proc("/proc/self/uid_map", &format!("0 {euid} 1"))
        .map_err(|e| e.context(apparmor_hint(&SysctlView::read())))?;
    write_proc("/proc/self/gid_map", &format!("0 {egid} 1"))?;
    Ok(true)
}

/// Whether this process is in a user namespace other than the initial one (rootless mode, or
/// plg started inside a container's user namespace): the initial one maps every id to itself.
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
}

/// Number of threads in this process (entries of `/proc/self/task`).
pub fn thread_count() -> anyhow::Result<usize> {
    let dir = std::fs::read_dir("/proc/self/task").context("failed to list /proc/self/task")?;
    Ok(dir.count())
}

fn write_proc(path: &str, value: &str) -> anyhow::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("failed to open {path}"))?;
    f.write_all(value.as_bytes())
        .with_context(|| format!("failed to write {value:?} to {path}"))
}

/// Why the real user cannot use `/dev/net/tun`, if it cannot. Opening the clone device creates
/// nothing until TUNSETIFF, so trying is harmless.
fn tun_access_problem() -> Option<String> {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(TUN_DEVICE)
    {
        Ok(_) => None,
        Err(e) => Some(tun_problem_message(e.raw_os_error(), &tun_mode())),
    }
}

fn tun_mode() -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(TUN_DEVICE) {
        Ok(m) => format!(
            "mode {:04o}, owner uid {} gid {}",
            m.mode() & 0o7777,
            m.uid(),
            m.gid()
        ),
        Err(_) => "absent".into(),
    }
}

/// The message for a failed open of `/dev/net/tun` as the real user.
pub fn tun_problem_message(errno: Option<i32>, mode: &str) -> String {
    match errno {
        Some(libc::ENOENT) => format!("{TUN_DEVICE} does not exist (load the tun module)"),
        Some(libc::EACCES) | Some(libc::EPERM) => format!(
            "no access to {TUN_DEVICE} ({mode}): root inside a user namespace does not help, \
             the device must be readable and writable by this user (e.g. chmod 0666 \
             {TUN_DEVICE}, or run plg as root)"
        ),
        Some(e) => format!("cannot open {TUN_DEVICE}: {}", Errno::from_raw(e).desc()),
        None => format!("cannot open {TUN_DEVICE}"),
    }
}

/// The values of the sysctls that can forbid unprivileged user namespaces (None: absent).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SysctlView {
    /// `kernel.unprivileged_userns_clone` (Debian and derived kernels only).
    pub unprivileged_userns_clone: Option<String>,
    /// `user.max_user_namespaces`.
    pub max_user_namespaces: Option<String>,
    /// `kernel.apparmor_restrict_unprivileged_userns` (Ubuntu 23.10+).
    pub apparmor_restrict: Option<String>,
}

impl SysctlView {
    pub fn read() -> SysctlView {
        let get = |p: &str| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_string())
        };
        SysctlView {
            unprivileged_userns_clone: get("/proc/sys/kernel/unprivileged_userns_clone"),
            max_user_namespaces: get("/proc/sys/user/max_user_namespaces"),
            apparmor_restrict: get("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
        }
    }
}

/// The message for a failed `unshare(CLONE_NEWUSER)`, naming the sysctl that forbids it.
pub fn userns_problem(errno: Errno, sysctls: &SysctlView) -> String {
    let base = format!(
        "unprivileged user namespaces are disabled ({})",
        errno.desc()
    );
    if sysctls.unprivileged_userns_clone.as_deref() == Some("0") {
        return format!(
            "{base}: sysctl kernel.unprivileged_userns_clone = 0 \
             (enable with: sysctl -w kernel.unprivileged_userns_clone=1)"
        );
    }
    if sysctls.max_user_namespaces.as_deref() == Some("0") {
        return format!(
            "{base}: sysctl user.max_user_namespaces = 0 \
             (enable with: sysctl -w user.max_user_namespaces=15000)"
        );
    }
    if errno == Errno::ENOSPC || errno == Errno::EUSERS {
        return format!(
            "{base}: the limit user.max_user_namespaces ({}) or the nesting depth is reached",
            sysctls.max_user_namespaces.as_deref().unwrap_or("?")
        );
    }
    if errno == Errno::EINVAL {
        return "cannot create a user namespace: the process is multi-threaded or chrooted".into();
    }
    let mut msg = format!(
        "{base}: neither kernel.unprivileged_userns_clone nor user.max_user_namespaces forbids \
         it, so a seccomp filter (e.g. a container runtime's) or an LSM probably does"
    );
    if sysctls.apparmor_restrict.as_deref() == Some("1") {
        msg.push_str(&format!(" ({})", apparmor_hint(sysctls)));
    }
    msg
}

fn apparmor_hint(sysctls: &SysctlView) -> String {
    if sysctls.apparmor_restrict.as_deref() == Some("1") {
        "AppArmor restricts unprivileged user namespaces: \
         kernel.apparmor_restrict_unprivileged_userns = 1"
            .into()
    } else {
        "the new user namespace has no capabilities".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_debian_sysctl() {
        let v = SysctlView {
            unprivileged_userns_clone: Some("0".into()),
            max_user_namespaces: Some("15000".into()),
            apparmor_restrict: None,
        };
        let m = userns_problem(Errno::EPERM, &v);
        assert!(m.contains("kernel.unprivileged_userns_clone = 0"), "{m}");
    }

    #[test]
    fn names_max_user_namespaces() {
        let v = SysctlView {
            unprivileged_userns_clone: None,
            max_user_namespaces: Some("0".into()),
            apparmor_restrict: None,
        };
        let m = userns_problem(Errno::ENOSPC, &v);
        assert!(m.contains("user.max_user_namespaces = 0"), "{m}");
    }

    #[test]
    fn names_apparmor_and_seccomp() {
        let v = SysctlView {
            unprivileged_userns_clone: None,
            max_user_namespaces: Some("15000".into()),
            apparmor_restrict: Some("1".into()),
        };
        let m = userns_problem(Errno::EPERM, &v);
        assert!(m.contains("seccomp"), "{m}");
        assert!(m.contains("apparmor_restrict_unprivileged_userns"), "{m}");
    }

    #[test]
    fn tun_messages() {
        assert!(tun_problem_message(Some(libc::ENOENT), "absent").contains("load the tun module"));
        let m = tun_problem_message(Some(libc::EACCES), "mode 0600, owner uid 0 gid 0");
        assert!(m.contains("no access to /dev/net/tun (mode 0600"), "{m}");
    }

    #[test]
    fn root_needs_nothing() {
        if nix::unistd::geteuid().is_root() {
            assert!(!enter_user_namespace_if_needed().unwrap());
        }
    }
}
