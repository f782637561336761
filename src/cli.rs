//! The command line: clap definitions, busybox-style dispatch on argv[0], the seed's legacy
//! `--record`/`--replay` spelling, and the error convention (one line, exit 2).
//!
//! Each subcommand's flags live in its own `src/cmd/<name>.rs` (`Args`); this file only ties
//! them together. [`command`] is the single source of truth for `--help`, the man pages and the
//! shell completions (`tools/gendocs` renders it).

use clap::{FromArgMatches, Parser, Subcommand};
use std::ffi::OsString;
use std::process::ExitCode;

/// Kept here too for code written against the old path; `cmd/` uses `crate::error`.
pub use crate::error::UsageError;

const ABOUT: &str = "Net Playground: run programs in private network namespaces, record and replay their TCP traffic";

const LONG_ABOUT: &str = "\
Net Playground: run programs in private network namespaces, record and replay their TCP traffic.

plg runs each given program in its own network namespace with a TUN device and its own address, \
relays every TCP connection between them through a pair of real sockets, and records each \
conversation, byte for byte, into a capture file (.traffic, a pcapng file that Wireshark opens). \
Captures can then be replayed against live programs, inspected, exported to plain pcap or \
pcapng, and compared with each other.";

/// Exit codes and aliases, shown at the end of `plg --help` and in plg(1).
const AFTER_HELP: &str = "\
Each subcommand is also reached through a link to this binary named plg-<subcommand> \
(plg-record, plg-replay, ...), and the original spelling `plg --record ...` / \
`plg --replay ...` still works.

Exit status:
  0  success
  1  no: the captures differ (diff), the capture is not sound (inspect --check)
  2  an error: bad arguments, an unreadable capture, a system failure
  plg record and plg replay exit with the status of the main command they ran.";

/// One example per subcommand for the top-level help: (what it does, argv after `plg`).
/// [`command`] shows only the examples that the current flags accept, so the help never shows
/// a command line that would be rejected.
const EXAMPLES: &[(&str, &[&str])] = &[
    (
        "Record a web server and a client talking to it",
        &[
            "record",
            "-f",
            "web.traffic",
            "--ready",
            "p0:8000",
            "python3 -m http.server 8000",
            "curl -s http://p0:8000/",
        ],
    ),
    (
        "Summarise what a capture holds",
        &["inspect", "web.traffic"],
    ),
    (
        "Convert a capture to a classic pcap",
        &["export", "web.traffic", "--pcap", "web.pcap"],
    ),
    (
        "Compare a new recording with a golden one",
        &["diff", "golden.traffic", "web.traffic"],
    ),
    (
        "Replay the client alone, playing the server from the capture",
        &[
            "replay",
            "-f",
            "web.traffic",
            "-",
            "curl -s http://p0:8000/",
        ],
    ),
];

#[derive(Debug, Parser)]
#[command(name = "plg", version, propagate_version = true, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// When to colour the output: auto (on a terminal, unless NO_COLOR is set; CLICOLOR_FORCE
    /// forces it), always, never.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = crate::ui::ColorChoice::Auto)]
    pub color: crate::ui::ColorChoice,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    // Each takes its help (one line, then the long description) from its `Args`: a doc
    // comment here would replace the long one.
    Record(crate::cmd::record::Args),
    Replay(crate::cmd::replay::Args),
    Inspect(crate::cmd::inspect::Args),
    Export(crate::cmd::export::Args),
    Diff(crate::cmd::diff::Args),
    Wireshark(crate::cmd::wireshark::Args),
}

/// The subcommand names, in the order of [`Command`]. Also the busybox link names (`plg-<name>`).
pub const SUBCOMMANDS: [&str; 6] = ["record", "replay", "inspect", "export", "diff", "wireshark"];

/// The whole command line definition, with the examples and exit status text: what `--help`,
/// the man pages and the completions are made from.
pub fn command() -> clap::Command {
    let base = <Cli as clap::CommandFactory>::command();
    let mut examples = String::from("Examples:\n");
    let mut any = false;
    for (what, argv) in EXAMPLES {
        let full = std::iter::once("plg").chain(argv.iter().copied());
        if base.clone().try_get_matches_from(full).is_ok() {
            any = true;
            examples.push_str(&format!("  # {what}\n{}\n", example_lines(argv)));
        }
    }
    let after = if any {
        format!("{examples}\n{AFTER_HELP}")
    } else {
        AFTER_HELP.to_string()
    };
    base.after_help(after)
}

/// Widest help line: examples must read whole in an 80-column terminal, where clap would wrap
/// a longer line anywhere, even inside a quoted argument.
pub const HELP_WIDTH: usize = 79;

/// `plg ARGS...` indented by two, continued with ` \` between arguments where a line would
/// pass [`HELP_WIDTH`], so a copy-paste still runs.
fn example_lines(argv: &[&str]) -> String {
    let mut out = String::from("  plg");
    let mut line_len = out.len();
    for arg in argv {
        let word = shell_join(&[arg]);
        if line_len + 1 + word.len() + 2 > HELP_WIDTH {
            out.push_str(" \\\n      ");
            line_len = 6;
        } else {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(&word);
        line_len += word.len();
    }
    out
}

/// Quotes each argument for a POSIX shell when it needs it (examples only: no escapes inside).
fn shell_join(argv: &[&str]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
            if plain {
                a.to_string()
            } else {
                format!("'{a}'")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The subcommand a busybox-style program name stands for: `plg-record` (any directory) means
/// `record`. Anything else (including cargo's `plg-<hash>` test copies) means none.
fn busybox_subcommand(argv0: &OsString) -> Option<&'static str> {
    let base = std::path::Path::new(argv0).file_name()?.to_str()?;
    let sub = base.strip_prefix("plg-")?;
    SUBCOMMANDS.iter().copied().find(|s| *s == sub)
}

/// Rewrites argv so `plg-record ...` and `plg --record ...` mean `plg record ...`.
///
/// The seed's spelling put the mode first as a flag (`plg --record -s 10.0.0.0/24 -f
/// dump.traffic exe1 exe2`); only that position is rewritten, so a `--record` further along
/// (an argument of a recorded command, say) is left alone.
pub fn normalize_args(args: Vec<OsString>) -> Vec<OsString> {
    let mut args = args;
    if let Some(sub) = args.first().and_then(busybox_subcommand) {
        args[0] = OsString::from("plg");
        args.insert(1, OsString::from(sub));
        return args;
    }
    // `plg help --help` (and `plg help record -h`): clap's help subcommand takes no flags;
    // asking it for help means the help it gives anyway.
    if args.get(1).is_some_and(|a| a == "help") {
        let (head, tail) = args.split_at(2);
        let mut kept = head.to_vec();
        kept.extend(
            tail.iter()
                .filter(|a| *a != "-h" && *a != "--help")
                .cloned(),
        );
        return kept;
    }
    if let Some(a1) = args.get(1).and_then(|a| a.to_str()) {
        if let Some(sub) = a1.strip_prefix("--") {
            if let Some(sub) = SUBCOMMANDS.iter().find(|s| **s == sub) {
                args[1] = OsString::from(*sub);
            }
        }
    }
    args
}

/// Parses an already normalized argv (see [`normalize_args`]).
pub fn parse(args: Vec<OsString>) -> Result<Cli, clap::Error> {
    let matches = command().try_get_matches_from(args)?;
    Cli::from_arg_matches(&matches)
}

/// Turns a clap usage error into one line, `invalid arguments: <why>; see 'plg <sub> --help'`,
/// without clap's usage block. `args` is the normalized argv, used to name the right `--help`.
pub fn usage_error_line(err: &clap::Error, args: &[OsString]) -> String {
    if let Some(line) = negative_value_line(err, args) {
        return line;
    }
    // StyledStr's Display is plain text: no colour codes to strip.
    let rendered = err.render().to_string();
    let mut parts: Vec<String> = Vec::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() {
            continue;
        }
        let line = line.strip_prefix("error: ").unwrap_or(line);
        match parts.last_mut() {
            // Continuation lines (the list of missing arguments, say) belong to the sentence.
            Some(last) if !line.starts_with("tip:") && last.ends_with(':') => {
                last.push(' ');
                last.push_str(line);
            }
            Some(last) if !line.starts_with("tip:") && !last.starts_with("tip:") => {
                last.push_str(", ");
                last.push_str(line);
            }
            _ => parts.push(line.to_string()),
        }
    }
    if parts.is_empty() {
        parts.push(format!("{:?}", err.kind()));
    }
    let sub = args
        .get(1)
        .and_then(|a| a.to_str())
        .filter(|a| SUBCOMMANDS.contains(a));
    let help = match sub {
        Some(s) => format!("plg {s} --help"),
        None => "plg --help".to_string(),
    };
    format!("invalid arguments: {}; see '{help}'", parts.join("; "))
}

/// `--conn -1`: clap takes `-1` for a flag and suggests `-- -1`, which would not work either
/// (after `--` it is a file name or a command). Say what is wrong instead: no plg option takes
/// a negative number.
fn negative_value_line(err: &clap::Error, args: &[OsString]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if err.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(bad)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let digits = bad.strip_prefix('-')?;
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let at = args.iter().position(|a| a.to_str() == Some(bad.as_str()))?;
    let flag = args.get(at.checked_sub(1)?)?.to_str()?;
    let sub = args
        .get(1)
        .and_then(|a| a.to_str())
        .filter(|a| SUBCOMMANDS.contains(a))
        .map_or("plg".to_string(), |s| format!("plg {s}"));
    Some(format!(
        "invalid arguments: {flag} {bad}: the value cannot be negative; see '{sub} --help'"
    ))
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    crate::ui::set_color_choice(cli.color);
    match cli.command {
        Command::Record(a) => crate::cmd::record::run(a),
        Command::Replay(a) => crate::cmd::replay::run(a),
        Command::Inspect(a) => crate::cmd::inspect::run(a),
        Command::Export(a) => crate::cmd::export::run(a),
        Command::Diff(a) => crate::cmd::diff::run(a),
        Command::Wireshark(a) => crate::cmd::wireshark::run(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn subcommand_list_matches_the_definition() {
        let names: Vec<String> = command()
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        assert_eq!(names, SUBCOMMANDS);
    }

    #[test]
    fn busybox_names_map_to_subcommands() {
        assert_eq!(
            normalize_args(os(&["/usr/bin/plg-inspect", "x.traffic"])),
            os(&["plg", "inspect", "x.traffic"])
        );
        assert_eq!(normalize_args(os(&["plg-record"])), os(&["plg", "record"]));
    }

    #[test]
    fn other_program_names_are_left_alone() {
        // cargo's test copies of the binary are called plg-<hash>.
        let a = os(&["target/debug/deps/plg-0123abcd", "inspect"]);
        assert_eq!(normalize_args(a.clone()), a);
        let a = os(&["plg", "inspect", "--record"]);
        assert_eq!(normalize_args(a.clone()), a);
    }

    #[test]
    fn legacy_mode_flags_become_subcommands() {
        assert_eq!(
            normalize_args(os(&[
                "plg",
                "--record",
                "-s",
                "10.0.0.0/24",
                "-f",
                "dump.traffic",
                "exe1",
                "exe2"
            ])),
            os(&[
                "plg",
                "record",
                "-s",
                "10.0.0.0/24",
                "-f",
                "dump.traffic",
                "exe1",
                "exe2"
            ])
        );
        assert_eq!(
            normalize_args(os(&["plg", "--replay", "-f", "x"])),
            os(&["plg", "replay", "-f", "x"])
        );
        let a = os(&["plg", "--version"]);
        assert_eq!(normalize_args(a.clone()), a);
    }

    #[test]
    fn usage_errors_are_one_line() {
        for argv in [
            &["plg", "frobnicate"][..],
            &["plg", "--frobnicate"],
            &["plg", "inspect", "--frobnicate"],
            &["plg", "recod"],
        ] {
            let args = os(argv);
            let err = parse(args.clone()).unwrap_err();
            let line = usage_error_line(&err, &args);
            assert!(!line.contains('\n'), "{line:?}");
            assert!(line.ends_with("--help'"), "{line:?}");
            assert!(line.starts_with("invalid arguments: "), "{line:?}");
            assert!(!line.contains("error:"), "{line:?}");
        }
    }

    /// Every help text (top level and each subcommand) fits 80 columns, so clap never wraps an
    /// example inside a quoted argument.
    #[test]
    fn help_texts_fit_80_columns() {
        let mut cmd = command();
        cmd.build();
        let mut pages = vec![cmd.clone()];
        pages.extend(cmd.get_subcommands().cloned());
        for page in pages {
            let text = page
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            for line in text.lines() {
                assert!(
                    line.chars().count() <= HELP_WIDTH || !line.starts_with("  "),
                    "{}: {line:?} is {} columns",
                    page.get_name(),
                    line.chars().count()
                );
            }
        }
    }

    #[test]
    fn example_lines_break_between_arguments() {
        let long = example_lines(&[
            "record",
            "-f",
            "web.traffic",
            "--ready",
            "p0:8000",
            "python3 -m http.server 8000",
            "curl -s http://p0:8000/",
        ]);
        assert_eq!(
            long,
            "  plg record -f web.traffic --ready p0:8000 'python3 -m http.server 8000' \\\n      'curl -s http://p0:8000/'"
        );
        assert_eq!(
            example_lines(&["inspect", "a.traffic"]),
            "  plg inspect a.traffic"
        );
    }

    #[test]
    fn shell_join_quotes_what_needs_it() {
        assert_eq!(
            shell_join(&["record", "-f", "a.traffic", "curl -s http://p0:8000/"]),
            "record -f a.traffic 'curl -s http://p0:8000/'"
        );
    }
}
