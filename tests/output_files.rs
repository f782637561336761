//! Files plg never destroys (issue 11): every output rule as a user meets it. `-` is stdout and
//! stdin; a device, FIFO or socket is written into and stays what it is; a symlink is followed
//! and stays a link; a regular file is replaced only with --force (or by `record -f`, whose old
//! capture survives a failed start); a directory output is new or empty; an output that is the
//! input is refused; nothing is left behind and nothing plg did not create is removed.

mod export_support;

use export_support::*;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::{Command, Stdio};

fn entries(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Which pcap the fixture exports to, for comparing outputs byte for byte.
fn pcap_of(f: &Path) -> Vec<u8> {
    let o = plg(&["export", s(f), "--pcap", "-"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stdout.len() > 24);
    o.stdout
}

#[test]
fn dash_is_stdout_and_stdin() {
    let d = scratch("out-dash");
    let f = write_fixture(&d, true);
    let pcap = pcap_of(&f.path);
    assert_eq!(&pcap[..4], &0xa1b23c4du32.to_le_bytes());
    // The capture on stdin, the pcap on stdout.
    let mut child = Command::new(env!("CARGO_BIN_EXE_plg"))
        .args(["export", "-", "--pcap", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = fs::read(&f.path).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || stdin.write_all(&bytes));
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(o.stdout, pcap);
    assert_eq!(entries(&d), vec!["web.traffic"]);
    // inspect reads `-` too, naming it stdin.
    let o = plg_stdin(&["inspect", "-"], fs::read(&f.path).unwrap());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("capture stdin: complete"),
        "{}",
        stdout(&o)
    );
    fs::remove_dir_all(&d).unwrap();
}

/// An export that fails part-way (its filesystem fills) leaves nothing behind: no half file,
/// no hidden temporary one; an existing file it was to replace (--force) stays whole.
#[test]
fn a_failed_export_leaves_no_half_file() {
    if !nix_is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let d = scratch("out-full");
    let f = write_fixture(&d, true);
    let one = fs::read(&f.path).unwrap();
    let big = d.join("big.traffic");
    fs::write(&big, one.repeat(2)).unwrap();
    let small = d.join("small");
    fs::create_dir(&small).unwrap();
    assert!(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap()
        .success());
    let out = small.join("out.pcapng");
    let o = plg(&["export", s(&f.path), "--pcapng", s(&out)]);
    let new = entries(&small);
    fs::write(&out, b"precious").unwrap();
    let o2 = plg(&["export", s(&f.path), "--force", "--pcapng", s(&out)]);
    let kept = fs::read(&out).unwrap();
    let after = entries(&small);
    Command::new("umount").arg(&small).status().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("No space left on device"),
        "{}",
        stderr(&o)
    );
    assert!(new.is_empty(), "left behind: {new:?}");
    assert_eq!(o2.status.code(), Some(2), "{}", stderr(&o2));
    assert_eq!(kept, b"precious");
    assert_eq!(after, vec!["out.pcapng"]);
    fs::remove_dir_all(&d).unwrap();
}

fn nix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

#[test]
fn devices_are_written_into_never_replaced() {
    let d = scratch("out-dev");
    let f = write_fixture(&d, true);
    for dev in ["/dev/null", "/dev/full"] {
        let before = fs::metadata(dev).unwrap();
        for force in [false, true] {
            let mut args = vec!["export", s(&f.path), "--pcap", dev];
            if force {
                args.push("--force");
            }
            let o = plg(&args);
            let after = fs::metadata(dev).unwrap();
            assert!(after.file_type().is_char_device(), "{dev} was replaced");
            assert_eq!((after.ino(), after.rdev()), (before.ino(), before.rdev()));
            if dev == "/dev/null" {
                assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            } else {
                // /dev/full: the write fails (ENOSPC), said in one line; the device stays.
                assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
                assert!(stderr(&o).contains("No space left"), "{}", stderr(&o));
            }
        }
    }
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn dev_stdout_symlink_is_followed_into_the_pipe() {
    let d = scratch("out-devstdout");
    let f = write_fixture(&d, true);
    let pcap = pcap_of(&f.path);
    assert!(fs::symlink_metadata("/dev/stdout")
        .unwrap()
        .file_type()
        .is_symlink());
    let o = plg(&["export", s(&f.path), "--force", "--pcap", "/dev/stdout"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(o.stdout, pcap);
    assert!(fs::symlink_metadata("/dev/stdout")
        .unwrap()
        .file_type()
        .is_symlink());
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_fifo_is_written_into() {
    let d = scratch("out-fifo");
    let f = write_fixture(&d, true);
    let pcap = pcap_of(&f.path);
    let fifo = d.join("pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let fifo2 = fifo.clone();
    let reader = std::thread::spawn(move || fs::read(fifo2).unwrap());
    let o = plg(&["export", s(&f.path), "--force", "--pcap", s(&fifo)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(reader.join().unwrap(), pcap);
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_symlink_output_replaces_its_target_and_stays_a_link() {
    let d = scratch("out-link");
    let f = write_fixture(&d, true);
    let pcap = pcap_of(&f.path);
    fs::create_dir(d.join("real")).unwrap();
    fs::write(d.join("real/out.pcap"), b"old").unwrap();
    std::os::unix::fs::symlink("real/out.pcap", d.join("link.pcap")).unwrap();
    let link = d.join("link.pcap");
    let o = plg(&["export", s(&f.path), "--pcap", s(&link)]);
    assert_eq!(o.status.code(), Some(2), "without --force: {}", stderr(&o));
    assert_eq!(fs::read(d.join("real/out.pcap")).unwrap(), b"old");
    let o = plg(&["export", s(&f.path), "--force", "--pcap", s(&link)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read(d.join("real/out.pcap")).unwrap(), pcap);
    assert_eq!(entries(&d.join("real")), vec!["out.pcap"]);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn output_that_is_the_input_is_refused() {
    let d = scratch("out-same");
    let f = write_fixture(&d, true);
    let before = fs::read(&f.path).unwrap();
    std::os::unix::fs::symlink(&f.path, d.join("alias")).unwrap();
    for out in [f.path.clone(), d.join("alias")] {
        for kind in ["--pcap", "--pcapng"] {
            let o = plg(&["export", s(&f.path), "--force", kind, s(&out)]);
            assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
            let err = stderr(&o);
            assert!(err.contains("is the input"), "{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }
    assert_eq!(fs::read(&f.path).unwrap(), before);
    assert_eq!(entries(&d), vec!["alias", "web.traffic"]);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn streams_directory_must_be_new_or_empty() {
    let d = scratch("out-dir");
    let f = write_fixture(&d, true);
    let dir = d.join("streams");
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::write(dir.join("mine.txt"), b"mine").unwrap();
    fs::write(dir.join("sub/deep.txt"), b"deep").unwrap();
    let o = plg(&["export", s(&f.path), "--force", "--streams", s(&dir)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not empty"), "{}", stderr(&o));
    assert_eq!(fs::read(dir.join("mine.txt")).unwrap(), b"mine");
    assert_eq!(fs::read(dir.join("sub/deep.txt")).unwrap(), b"deep");
    assert_eq!(entries(&d), vec!["streams", "web.traffic"]);
    // An empty directory is filled.
    let empty = d.join("empty");
    fs::create_dir(&empty).unwrap();
    let o = plg(&["export", s(&f.path), "--streams", s(&empty)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!entries(&empty).is_empty());
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_missing_input_is_named_plainly() {
    let o = plg(&["inspect", "/nonexistent/nosuch.traffic"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o).trim_end(),
        "plg: /nonexistent/nosuch.traffic: No such file or directory"
    );
}

/// `record -f` whose session fails to start (`--ready` never met): the old capture, a symlink
/// and a device node are all left as they were.
#[test]
fn record_failed_start_keeps_what_was_there() {
    let d = scratch("out-record-fail");
    let f = write_fixture(&d, true);
    let old = fs::read(&f.path).unwrap();
    std::os::unix::fs::symlink(&f.path, d.join("alias.traffic")).unwrap();
    for target in [s(&f.path), s(&d.join("alias.traffic"))] {
        let o = plg(&[
            "record",
            "-q",
            "-f",
            target,
            "--ready",
            "p0:9",
            "--ready-timeout",
            "1",
            "sleep 5",
            "true",
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("did not listen"), "{}", stderr(&o));
        assert_eq!(fs::read(&f.path).unwrap(), old, "{target} was touched");
    }
    assert!(fs::symlink_metadata(d.join("alias.traffic"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(entries(&d), vec!["alias.traffic", "web.traffic"]);
    // A new file is not created by a failed start.
    let new = d.join("new.traffic");
    let o = plg(&[
        "record",
        "-q",
        "-f",
        s(&new),
        "--ready",
        "p0:9",
        "--ready-timeout",
        "1",
        "sleep 5",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(entries(&d), vec!["alias.traffic", "web.traffic"]);
    fs::remove_dir_all(&d).unwrap();
}

/// `record -f` at a device or FIFO fails at once, naming the file, before any process runs;
/// the node stays.
#[test]
fn record_into_a_device_or_fifo_fails_before_the_session() {
    let d = scratch("out-record-fifo");
    let fifo = d.join("pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let marker = d.join("ran");
    let cmd = format!("touch {}", s(&marker));
    for target in [s(&fifo), "/dev/null"] {
        let o = plg(&["record", "-q", "-f", target, &cmd]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(err.starts_with(&format!("plg: {target}: ")), "{err}");
        assert!(err.contains("regular file"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!marker.exists(), "the session started");
    }
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    fs::remove_dir_all(&d).unwrap();
}

/// `replay -f X -o X` would overwrite the recording it plays: refused before anything runs.
#[test]
fn replay_output_that_is_its_input_is_refused() {
    let d = scratch("out-replay-same");
    let f = write_fixture(&d, true);
    let old = fs::read(&f.path).unwrap();
    let o = plg(&[
        "replay",
        "-q",
        "-f",
        s(&f.path),
        "-o",
        s(&f.path),
        "true",
        "-",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is the input"), "{}", stderr(&o));
    assert_eq!(fs::read(&f.path).unwrap(), old);
    assert_eq!(entries(&d), vec!["web.traffic"]);
    fs::remove_dir_all(&d).unwrap();
}

/// A reader that stops early (`| head`) is a quiet, successful exit in every mode, JSON
/// included (serde_json's error used to hide the broken pipe: "plg: Broken pipe", exit 2).
#[test]
fn a_closed_pipe_is_a_quiet_exit_everywhere() {
    let d = scratch("out-pipe");
    let f = write_fixture(&d, true);
    // Many copies of the fixture's sections make outputs far larger than a pipe's buffer.
    let one = fs::read(&f.path).unwrap();
    let big = d.join("big.traffic");
    fs::write(&big, one.repeat(400)).unwrap();
    let b = s(&big);
    // And one section whose 300 KB connection 3 makes large --conn and export outputs.
    let w = s(&f.path);
    let modes: Vec<Vec<&str>> = vec![
        vec!["inspect", b],
        vec!["inspect", "--json", b],
        vec!["inspect", "--connections", b],
        vec!["inspect", "--connections", "--json", b],
        vec!["inspect", "--conn", "3", w],
        vec!["inspect", "--conn", "3", "--json", w],
        vec![
            "inspect",
            "--conn",
            "3",
            "--raw",
            "--direction",
            "client",
            w,
        ],
        vec!["export", w, "--pcap", "-"],
        vec!["export", w, "--pcapng", "-"],
    ];
    for args in modes {
        let mut child = Command::new(env!("CARGO_BIN_EXE_plg"))
            .args(&args)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read one byte, then close the pipe: plg's next writes fail with EPIPE.
        let mut out = child.stdout.take().unwrap();
        let mut byte = [0u8; 1];
        let _ = std::io::Read::read(&mut out, &mut byte);
        drop(out);
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
        assert!(
            matches!(o.status.code(), Some(0) | Some(1)),
            "{args:?}: {:?} {err}",
            o.status
        );
    }
    fs::remove_dir_all(&d).unwrap();
}

/// Runs plg with `input` on its standard input.
fn plg_stdin(args: &[&str], input: Vec<u8>) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_plg"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // A writer that the child stops reading from early gets EPIPE: not this test's concern.
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    o
}

/// `plg diff` takes `-` (standard input, a pipe) for either capture, as inspect and export
/// do; both `-` is refused in one line.
#[test]
fn diff_reads_a_capture_from_stdin() {
    let d = scratch("out-diff-stdin");
    let f = write_fixture(&d, true);
    let bytes = fs::read(&f.path).unwrap();
    let o = plg_stdin(&["diff", s(&f.path), "-"], bytes.clone());
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("result: same"), "{}", stdout(&o));
    assert!(stdout(&o).contains("with stdin ("), "{}", stdout(&o));
    let o = plg_stdin(&["diff", "--json", "-", s(&f.path)], bytes.clone());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // A different capture on stdin: exit 1, as with files.
    let other = write_fixture(&scratch("out-diff-stdin-b"), false);
    let o = plg_stdin(&["diff", s(&f.path), "-"], fs::read(&other.path).unwrap());
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let o = plg_stdin(&["diff", "-", "-"], bytes);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("only one of the two captures"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert_eq!(entries(&d), vec!["web.traffic"]);
    fs::remove_dir_all(&d).unwrap();
}

/// `diff --junit FILE` and `diff --learn -o FILE` follow the output rules: an existing file is
/// refused without --force and left as it was, replaced whole with it (the old inode stays
/// with whoever holds it: the new file is moved in); a FIFO is written into; `-` is stdout;
/// an output that is one of the captures is refused.
#[test]
fn diff_outputs_follow_the_rules() {
    let d = scratch("out-diff-junit");
    let f = write_fixture(&d, true);
    let xml = d.join("drift.xml");
    fs::write(&xml, "precious").unwrap();
    let o = plg(&["diff", "--junit", s(&xml), s(&f.path), s(&f.path)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("already exists (use --force"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert_eq!(fs::read_to_string(&xml).unwrap(), "precious");
    let ino = fs::metadata(&xml).unwrap().ino();
    let o = plg(&[
        "diff",
        "--force",
        "--junit",
        s(&xml),
        s(&f.path),
        s(&f.path),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = fs::read_to_string(&xml).unwrap();
    assert!(text.starts_with("<?xml"), "{text}");
    assert_ne!(
        fs::metadata(&xml).unwrap().ino(),
        ino,
        "written in place, not moved in"
    );
    // `-`: the XML on stdout instead of the text report.
    let o = plg(&["diff", "--junit", "-", s(&f.path), s(&f.path)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), text);
    // A FIFO is written into and stays a FIFO.
    let fifo = d.join("pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let fifo2 = fifo.clone();
    let reader = std::thread::spawn(move || fs::read_to_string(fifo2).unwrap());
    let o = plg(&["diff", "--junit", s(&fifo), s(&f.path), s(&f.path)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(reader.join().unwrap(), text);
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    fs::remove_file(&fifo).unwrap();
    // The output may not be a capture it reads.
    let before = fs::read(&f.path).unwrap();
    let o = plg(&[
        "diff",
        "--force",
        "--junit",
        s(&f.path),
        s(&f.path),
        s(&f.path),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is the input"), "{}", stderr(&o));
    assert_eq!(fs::read(&f.path).unwrap(), before);

    // --learn -o: the same rules.
    let rules = d.join("golden.rules");
    fs::write(&rules, "precious").unwrap();
    let learn = |extra: &[&str]| {
        let mut a = vec!["diff", "--learn"];
        a.extend_from_slice(extra);
        a.extend([s(&f.path), s(&f.path)]);
        plg(&a)
    };
    let o = learn(&["-o", s(&rules)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("already exists (use --force"),
        "{}",
        stderr(&o)
    );
    assert_eq!(fs::read_to_string(&rules).unwrap(), "precious");
    let o = learn(&["--force", "-o", s(&rules)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let learned = fs::read_to_string(&rules).unwrap();
    assert!(learned.starts_with('#'), "{learned}");
    assert!(stdout(&o).contains("rules written to"), "{}", stdout(&o));
    let o = learn(&["-o", "-"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with('#'), "{}", stdout(&o));
    assert!(stderr(&o).contains("learned 0 rules"), "{}", stderr(&o));
    let mut e = entries(&d);
    e.retain(|n| n.starts_with('.'));
    assert!(e.is_empty(), "left behind: {e:?}");
    fs::remove_dir_all(&d).unwrap();
}
