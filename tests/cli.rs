//! The command line as a user meets it: the real `plg` binary, its help, its errors, the
//! busybox links, the seed's `--record` spelling and `tools/install`. Nothing here needs root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const SUBCOMMANDS: [&str; 6] = ["record", "replay", "inspect", "export", "diff", "wireshark"];

fn plg() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_plg"));
    cmd.env_remove("RUST_BACKTRACE").stdin(Stdio::null());
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run plg")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the error convention: exit 2, nothing on stdout, one line `plg: ...` on stderr.
fn assert_one_line_error(out: &Output, what: &str) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{what}: exit status; stderr: {stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "{what}: stdout not empty: {}",
        text(&out.stdout)
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "{what}: not one line: {stderr:?}"
    );
    assert!(stderr.starts_with("plg: "), "{what}: {stderr:?}");
    assert!(!stderr.contains("panicked"), "{what}: {stderr:?}");
    stderr
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "plg-cli-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn help_and_version_succeed_everywhere() {
    let mut prefixes: Vec<Vec<&str>> = vec![vec![]];
    prefixes.extend(SUBCOMMANDS.iter().map(|s| vec![*s]));
    for prefix in prefixes {
        let usage = format!(
            "Usage: {}",
            ["plg"]
                .iter()
                .chain(&prefix)
                .copied()
                .collect::<Vec<_>>()
                .join(" ")
        );
        for flag in ["-h", "--help"] {
            let out = run(plg().args(&prefix).arg(flag));
            let stdout = text(&out.stdout);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{prefix:?} {flag}: {}",
                text(&out.stderr)
            );
            assert!(stdout.contains(&usage), "{prefix:?} {flag}: {stdout}");
            assert!(
                out.stderr.is_empty(),
                "{prefix:?} {flag}: {}",
                text(&out.stderr)
            );
        }
        let out = run(plg().args(&prefix).arg("--version"));
        assert_eq!(out.status.code(), Some(0), "{prefix:?} --version");
        assert!(
            text(&out.stdout).contains(env!("CARGO_PKG_VERSION")),
            "{prefix:?} --version: {}",
            text(&out.stdout)
        );
    }
}

#[test]
fn top_level_help_names_every_subcommand_and_the_exit_codes() {
    let out = run(plg().arg("--help"));
    let help = text(&out.stdout);
    for sub in SUBCOMMANDS {
        assert!(help.contains(sub), "no {sub} in: {help}");
    }
    assert!(help.contains("Exit status"), "{help}");
    assert!(help.contains("namespace"), "{help}");
}

#[test]
fn no_arguments_prints_help_and_fails() {
    let out = run(&mut plg());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("Usage: plg"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn unknown_subcommand_is_one_line_exit_2() {
    let out = run(plg().arg("frobnicate"));
    let line = assert_one_line_error(&out, "unknown subcommand");
    assert!(line.contains("frobnicate"), "{line}");
    assert!(line.contains("plg --help"), "{line}");
}

#[test]
fn unknown_flag_is_one_line_exit_2() {
    let out = run(plg().arg("--frobnicate"));
    assert_one_line_error(&out, "unknown top-level flag");
    for sub in SUBCOMMANDS {
        let out = run(plg().args([sub, "--frobnicate"]));
        let line = assert_one_line_error(&out, sub);
        assert!(line.contains("--frobnicate"), "{line}");
        assert!(line.contains(&format!("plg {sub} --help")), "{line}");
    }
}

/// A subcommand that cannot do anything with what it was given (nothing, here) fails with one
/// line and exit 2, whether it is implemented yet or not: never made-up output, never a panic.
#[test]
fn subcommands_without_arguments_fail_cleanly() {
    for sub in SUBCOMMANDS {
        let out = run(plg().arg(sub));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{sub}: {stderr}");
        assert!(out.stdout.is_empty(), "{sub}: {}", text(&out.stdout));
        assert!(
            (stderr.starts_with("plg: ") && stderr.lines().count() == 1)
                || stderr.contains("Usage: plg"),
            "{sub}: {stderr:?}"
        );
    }
}

#[test]
fn busybox_links_run_their_subcommand() {
    let dir = TempDir::new("busybox");
    for sub in SUBCOMMANDS {
        let link = dir.path().join(format!("plg-{sub}"));
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_plg"), &link).unwrap();
        let out = run(Command::new(&link).arg("--help"));
        assert_eq!(
            out.status.code(),
            Some(0),
            "plg-{sub}: {}",
            text(&out.stderr)
        );
        let same = run(plg().args([sub, "--help"]));
        assert_eq!(text(&out.stdout), text(&same.stdout), "plg-{sub} --help");
        let out = run(Command::new(&link).arg("--frobnicate"));
        let line = assert_one_line_error(&out, &format!("plg-{sub}"));
        assert!(line.contains(&format!("plg {sub} --help")), "{line}");
    }
}

#[test]
fn legacy_record_and_replay_flags_reach_the_subcommands() {
    for sub in ["record", "replay"] {
        let legacy = run(plg().args([&format!("--{sub}"), "--help"]));
        let modern = run(plg().args([sub, "--help"]));
        assert_eq!(
            legacy.status.code(),
            Some(0),
            "--{sub}: {}",
            text(&legacy.stderr)
        );
        assert_eq!(text(&legacy.stdout), text(&modern.stdout), "--{sub} --help");
        let out = run(plg().args([&format!("--{sub}"), "--frobnicate"]));
        let line = assert_one_line_error(&out, &format!("--{sub}"));
        assert!(line.contains(&format!("plg {sub} --help")), "{line}");
    }
}

/// The seed's own example line gets to `plg record` (whatever record then makes of it, it is
/// record that answers, not the top-level parser). Not run as root: nothing is started.
#[test]
fn seed_command_line_is_parsed_by_record() {
    let args = [
        "--record",
        "-s",
        "10.0.0.0/24",
        "-f",
        "dump.traffic",
        "plg-test-no-such-exe1",
        "plg-test-no-such-exe2",
    ];
    let legacy =
        plg::cli::normalize_args(std::iter::once("plg").chain(args).map(Into::into).collect());
    assert_eq!(legacy[1], "record");
    match plg::cli::parse(legacy.clone()) {
        Ok(cli) => assert!(
            matches!(cli.command, plg::cli::Command::Record(_)),
            "{:?}",
            cli.command
        ),
        Err(e) => {
            let line = plg::cli::usage_error_line(&e, &legacy);
            assert!(line.contains("plg record --help"), "{line}");
        }
    }
}

/// Errors found while running (not while parsing) follow the same convention.
#[test]
fn runtime_errors_are_one_line_exit_2() {
    let dir = TempDir::new("missing");
    let missing = dir.path().join("no-such.traffic");
    let out = run(plg().arg("inspect").arg(&missing));
    assert_one_line_error(&out, "inspect of a missing file");
}

#[test]
fn closed_stdout_is_a_clean_exit() {
    for argv in [&["--help"][..], &["--version"], &["inspect", "--help"]] {
        let mut child = plg()
            .args(argv)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{argv:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stderr.is_empty(), "{argv:?}: {}", text(&out.stderr));
    }
}

#[test]
fn install_puts_binary_links_man_pages_and_completions_in_place() {
    let prefix = TempDir::new("install");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = run(Command::new(repo.join("tools/install"))
        .arg(prefix.path())
        .env("PLG_BIN", env!("CARGO_BIN_EXE_plg"))
        .env("PLG_WIRESHARK_DIR", prefix.path().join("wireshark-plugins"))
        .stdin(Stdio::null()));
    assert!(out.status.success(), "tools/install: {}", text(&out.stderr));
    let lua = std::fs::read_to_string(prefix.path().join("wireshark-plugins/plg.lua")).unwrap();
    assert!(lua.contains("register_postdissector"), "{lua}");
    assert!(prefix.path().join("share/plg/wireshark/plg.lua").is_file());

    let bin = prefix.path().join("bin");
    let out = run(Command::new(bin.join("plg-inspect")).arg("--help"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Usage: plg inspect"),
        "{}",
        text(&out.stdout)
    );
    let out = run(Command::new(bin.join("plg")).arg("--version"));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("plg {}", env!("CARGO_PKG_VERSION"))
    );

    for sub in SUBCOMMANDS {
        let link = bin.join(format!("plg-{sub}"));
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            Path::new("plg"),
            "{link:?}"
        );
        assert!(prefix
            .path()
            .join(format!("share/man/man1/plg-{sub}.1"))
            .is_file());
    }
    for sub in SUBCOMMANDS {
        let link = prefix
            .path()
            .join(format!("share/bash-completion/completions/plg-{sub}"));
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            Path::new("plg"),
            "{link:?}"
        );
    }
    for file in [
        "share/man/man1/plg.1",
        "share/bash-completion/completions/plg",
        "share/zsh/site-functions/_plg",
        "share/fish/vendor_completions.d/plg.fish",
    ] {
        assert!(prefix.path().join(file).is_file(), "{file} not installed");
    }
}

#[test]
fn help_about_help_works() {
    for argv in [
        &["help", "--help"][..],
        &["help", "-h"],
        &["help", "record", "--help"],
    ] {
        let out = run(plg().args(argv));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{argv:?}: {}",
            text(&out.stderr)
        );
        assert!(text(&out.stdout).contains("Usage: plg"), "{argv:?}");
    }
    let out = run(plg().args(["help", "record", "--help"]));
    assert!(text(&out.stdout).contains("Usage: plg record"));
}

/// `--conn -1` used to suggest `-- -1`, which makes -1 a file name: now one line saying what
/// is wrong with the value.
#[test]
fn negative_values_get_no_dash_dash_tip() {
    for argv in [
        &["export", "--conn", "-1", "x.traffic", "--pcap", "y"][..],
        &["inspect", "--conn", "-1", "x.traffic"],
    ] {
        let out = run(plg().args(argv));
        let line = assert_one_line_error(&out, "negative conn");
        assert!(!line.contains("'-- -1'"), "{line}");
        assert!(
            line.contains("--conn -1: the value cannot be negative"),
            "{line}"
        );
    }
}

#[test]
fn color_flag_and_clicolor_force() {
    use plg::format::{CaptureWriter, Mode, Session, FORMAT_VERSION};
    let dir = TempDir::new("color");
    let cap = dir.path().join("cut.traffic");
    // A capture with no closing summary: inspect shows "truncated" in red when colouring.
    let session = Session {
        format_version: FORMAT_VERSION,
        mode: Mode::Record,
        subnet: std::net::Ipv4Addr::new(10, 0, 0, 0),
        prefix_len: 24,
        subnet6: None,
        start_ns: 1_700_000_000_000_000_000,
        plg_version: "0.1.0".into(),
    };
    let mut w = CaptureWriter::new(std::fs::File::create(&cap).unwrap(), &session, &[]).unwrap();
    w.flush().unwrap();
    drop(w);
    let coloured = |args: &[&str], env: &[(&str, &str)]| -> bool {
        let mut cmd = plg();
        cmd.arg("inspect").args(args).arg(&cap);
        cmd.env_remove("NO_COLOR").env_remove("CLICOLOR_FORCE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = run(&mut cmd);
        assert!(out.status.code().is_some(), "{args:?} {env:?}");
        text(&out.stdout).contains("\x1b[")
    };
    // stdout is a pipe here: no colour unless asked.
    assert!(!coloured(&[], &[]));
    assert!(coloured(&["--color", "always"], &[]));
    assert!(coloured(&["--color=always"], &[("NO_COLOR", "1")]));
    assert!(!coloured(&["--color", "never"], &[("CLICOLOR_FORCE", "1")]));
    assert!(coloured(&[], &[("CLICOLOR_FORCE", "1")]));
    assert!(!coloured(&[], &[("CLICOLOR_FORCE", "0")]));
    assert!(!coloured(
        &[],
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]
    ));
    let out = run(plg().args(["inspect", "--color", "sometimes"]).arg(&cap));
    assert_one_line_error(&out, "bad --color");
}

/// Runs the generated bash completion for `words` (the last one being completed) in `dir`;
/// returns the candidates.
fn complete(dir: &Path, words: &[&str]) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("completions/plg.bash");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let func = if words[0] == "plg" {
        "_plg plg"
    } else {
        "_plg_link"
    };
    let args = if words[0] == "plg" {
        "\"${COMP_WORDS[COMP_CWORD]}\" \"${COMP_WORDS[COMP_CWORD-1]}\"".to_string()
    } else {
        String::new()
    };
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; {func} {args}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words.len() - 1
    );
    let out = run(Command::new("bash").arg("-c").arg(program).current_dir(dir));
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn bash_completion_completes_captures_help_topics_and_links() {
    let dir = TempDir::new("complete");
    std::fs::write(dir.path().join("web.traffic"), b"").unwrap();
    // A capture is expected: file names, not the option list (it used to insert `-`).
    assert_eq!(
        complete(dir.path(), &["plg", "inspect", ""]),
        ["web.traffic"]
    );
    assert_eq!(
        complete(dir.path(), &["plg", "export", "w"]),
        ["web.traffic"]
    );
    assert_eq!(
        complete(dir.path(), &["plg", "diff", "web.traffic", ""]),
        ["web.traffic"]
    );
    // Options still complete after a dash.
    assert!(
        complete(dir.path(), &["plg", "inspect", "--con"]).contains(&"--connections".to_string())
    );
    // `plg help <TAB>` offers the subcommands.
    let topics = complete(dir.path(), &["plg", "help", ""]);
    for sub in SUBCOMMANDS {
        assert!(topics.contains(&sub.to_string()), "{topics:?}");
    }
    // The plg-<subcommand> links complete like the subcommand.
    assert_eq!(complete(dir.path(), &["plg-inspect", ""]), ["web.traffic"]);
    assert!(complete(dir.path(), &["/usr/local/bin/plg-export", "--pc"])
        .contains(&"--pcapng".to_string()));
}

/// Numbers out of range name the value as the user wrote it (`1e999` is not "inf"), and a
/// count of one is singular; each is one line, exit 2, before anything starts.
#[test]
fn out_of_range_numbers_are_named_as_written() {
    for (argv, want) in [
        (
            &["record", "-f", "x.traffic", "--grace", "1e999", "true"][..],
            "'1e999'",
        ),
        (
            &["record", "-f", "x.traffic", "--grace", "nan", "true"],
            "'nan'",
        ),
        (
            &["record", "-f", "x.traffic", "--grace", "soon", "true"],
            "'soon' is not a number",
        ),
        (
            &["record", "-f", "x.traffic", "--mtu", "99999999", "true"],
            "576..=65521",
        ),
        (
            &["record", "-f", "x.traffic", "--names", "a,b", "true"],
            "2 names for 1 command",
        ),
    ] {
        let out = run(plg().args(argv));
        let line = assert_one_line_error(&out, &argv.join(" "));
        assert!(line.contains(want), "{argv:?}: {line}");
        assert!(!line.contains(" inf"), "{argv:?}: {line}");
        assert!(!Path::new("x.traffic").exists());
    }
}
