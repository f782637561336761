//! `plg record` run by an unprivileged user: plg enters a user namespace of its own and works
//! the same, or says exactly what the system does not allow.
//!
//! /dev/net/tun is mode 0600 on these machines, so the successful run happens in a private
//! mount namespace where a 0666 node of the same device is bind-mounted over it (what a
//! desktop distribution ships); the host's device is never touched.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const NOBODY: &str = "65534";

fn as_nobody_script(dir: &std::path::Path, tun_0666: bool, plg_args: &str) -> std::process::Output {
    // A copy beside the test's files: the checkout may sit where uid 65534 cannot reach it
    // (under /root, say).
    let plg = dir.join("plg");
    std::fs::copy(env!("CARGO_BIN_EXE_plg"), &plg).expect("copy the plg binary");
    let plg = plg.display();
    let mut script = String::from("set -e\n");
    if tun_0666 {
        script.push_str(&format!(
            "mknod {d}/tun c 10 200\nchmod 666 {d}/tun\nmount --bind {d}/tun /dev/net/tun\n",
            d = dir.display()
        ));
    }
    script.push_str(&format!(
        "cd {d}\nexec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups {plg} {plg_args}\n",
        d = dir.display()
    ));
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "bash", "-c", &script])
        .output()
        .expect("run unshare (util-linux)")
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(common::unique(tag));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    d
}

#[test]
fn an_unprivileged_user_records_a_web_conversation() {
    common::require_root();
    let dir = temp_dir("rootless");
    std::fs::write(dir.join("hello.txt"), "hello from a rootless plg\n").unwrap();
    let out = as_nobody_script(
        &dir,
        true,
        "record -f rootless.traffic --ready p0:8000 \
         '/usr/bin/python3 -m http.server 8000' \
         'curl -s http://p0:8000/hello.txt; id -u; dig +short p0; dig +tcp +short p1'",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "plg failed as uid {NOBODY}: {stderr}");
    assert!(stdout.contains("p1| hello from a rootless plg"), "{stdout}");
    // Inside its user namespace the process is root (uid 0 mapped to 65534 outside).
    assert!(stdout.lines().any(|l| l == "p1| 0"), "{stdout}");
    // plg's resolver answers in rootless mode too, over UDP and TCP.
    assert!(stdout.lines().any(|l| l == "p1| 10.0.0.2"), "{stdout}");
    assert!(stdout.lines().any(|l| l == "p1| 10.0.0.3"), "{stdout}");
    let capture = dir.join("rootless.traffic");
    let meta = std::fs::metadata(&capture).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        meta.uid(),
        65534,
        "the capture belongs to the user who ran plg"
    );
    let cap = common::Capture::read(&capture);
    assert!(cap.summary.is_some(), "complete capture");
    let conn = cap.conns.values().next().expect("one connection");
    let (c2s, s2c) = (
        String::from_utf8_lossy(&conn.c2s),
        String::from_utf8_lossy(&conn.s2c),
    );
    assert!(c2s.contains("GET /hello.txt"), "{c2s}");
    assert!(s2c.contains("hello from a rootless plg"), "{s2c}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn without_tun_access_the_error_names_the_device_and_nothing_is_left() {
    common::require_root();
    let dir = temp_dir("rootless-denied");
    let out = as_nobody_script(&dir, false, "record -f denied.traffic 'true'");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("plg: "), "{stderr}");
    assert!(stderr.contains("/dev/net/tun"), "{stderr}");
    assert!(!dir.join("denied.traffic").exists(), "no half file");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// --userns in rootless mode: each command gets a user namespace of its own under plg's, so it
/// loses the power it had over the namespaces plg made (its own network and mount namespaces,
/// and through them the other processes' and the proxy's). Without it, it keeps that power.
#[test]
fn userns_takes_a_rootless_commands_power_over_plgs_namespaces() {
    common::require_root();
    let probe = "'id -u; if ip link set lo down 2>/dev/null; then echo netadmin; \
                 else echo no-netadmin; fi; if umount -l /proc 2>/dev/null; then echo mounts; \
                 else echo no-mounts; fi'";
    for (flag, want) in [
        ("--userns", ["0", "no-netadmin", "no-mounts"]),
        ("", ["0", "netadmin", "mounts"]),
    ] {
        // A directory each: the previous plg's reaper may still hold its binary copy.
        let dir = temp_dir("rootlessuserns");
        let out = as_nobody_script(
            &dir,
            true,
            &format!("record -q -f u.traffic {flag} {probe}"),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "plg {flag} failed: {stderr}");
        assert_eq!(stdout.lines().collect::<Vec<_>>(), want, "{flag}: {stderr}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
