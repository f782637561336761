//! `plg diff`: compare two captures (or learn ignore rules from several).
//!
//! Glue only: validate the flags into [`Options`], run [`crate::diff`], print the report in the
//! form asked for, and map the verdict to the exit code (0 same, 1 different, 2 error).

use crate::diff::compare::Options;
use crate::diff::rules::ConnSpec;
use crate::diff::stream::Limits;
use crate::diff::{human, json, junit};
use crate::error::UsageError;
use crate::os::output::{Output, Replace};
use crate::ui::{count, Stream, Style};
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
#[command(
    about = "Compare two captures and report behavioural drift",
    long_about = "Compare two captures and report behavioural drift.\n\n\
        Processes are matched by index, connections by client, server, server port and their \
        order among connections with the same three (client ports never matter). Each \
        direction of each connection is compared byte for byte, and how it ended (FIN, RST, \
        refused); non-TCP packets by sender, receiver, protocol and payload, in order. Timing \
        is ignored unless --timing is given. For each difference the report shows a unified \
        line diff (text) or a side-by-side hex dump (binary).\n\n\
        Noise such as dates and ids is left out with --ignore patterns or a --rules file \
        (docs/DIFF-RULES.md); --learn writes such a file from captures of one scenario taken \
        with no code change.",
    after_help = "Examples:\n  \
        plg diff golden.traffic new.traffic\n  \
        plg diff --ignore 'Date: [^\\r]*' --junit drift.xml \\\n      \
        golden.traffic new.traffic\n  \
        plg diff --learn -o golden.rules run1.traffic run2.traffic run3.traffic\n  \
        plg diff --rules golden.rules golden.traffic new.traffic\n\n\
        Exit status: 0 the same (after ignores), 1 different (or a capture is truncated), \
        2 an error."
)]
pub struct Args {
    /// The golden capture and the new one; with --learn, two or more captures of one
    /// scenario. One of them may be `-`, standard input.
    #[arg(value_name = "CAPTURE", required = true, num_args = 2..)]
    pub captures: Vec<PathBuf>,

    /// Byte ranges matching REGEX in both captures compare as equal (repeatable). Matched on
    /// bytes: `.` and `[^\r]` match any byte.
    #[arg(long, value_name = "REGEX")]
    pub ignore: Vec<String>,

    /// Leave out connections matching CLIENT->SERVER[:PORT][#N] (names, indexes or *;
    /// repeatable).
    #[arg(long, value_name = "SPEC")]
    pub ignore_conn: Vec<String>,

    /// Leave out connections to this server port, and UDP packets whose lower port is it
    /// (repeatable).
    #[arg(long, value_name = "PORT")]
    pub ignore_port: Vec<u16>,

    /// Read ignore rules from FILE (repeatable; format in docs/DIFF-RULES.md).
    #[arg(long, value_name = "FILE")]
    pub rules: Vec<PathBuf>,

    /// Also report connections whose duration or first-response delay drifted by more than
    /// PCT percent (durations under 1 ms are not compared).
    #[arg(long, value_name = "PCT")]
    pub timing: Option<f64>,

    /// Show at most N differences per direction and flow (0: all).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub max_diffs: usize,

    /// Print the report as JSON (docs/JSON.md) instead of text.
    #[arg(long, conflicts_with = "learn")]
    pub json: bool,

    /// Also write the report as JUnit XML to FILE, one test case per connection; `-` writes
    /// it to standard output instead of the text report.
    #[arg(long, value_name = "FILE", conflicts_with = "learn")]
    pub junit: Option<PathBuf>,

    /// Learn ignore rules from captures of one scenario taken with no code change, and write
    /// them (to --output, or standard output).
    #[arg(long)]
    pub learn: bool,

    /// With --learn: write the rules to FILE (`-`: standard output, as without -o).
    #[arg(short, long, value_name = "FILE", requires = "learn")]
    pub output: Option<PathBuf>,

    /// Replace --junit or --output FILE if it is an existing regular file (a device, FIFO or
    /// symlink is written into or followed, never replaced).
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let opts = options(&args)?;
    if args.learn {
        return learn(&args, &opts);
    }
    if args.captures.len() != 2 {
        return Err(UsageError(format!(
            "diff: expected two captures (the golden one and the new one), got {}; \
             several are only for --learn",
            args.captures.len()
        ))
        .into());
    }
    if args.captures.iter().all(|c| c.as_os_str() == "-") {
        return Err(UsageError(
            "diff: only one of the two captures can be standard input ('-')".into(),
        )
        .into());
    }
    let junit_to_stdout = args.junit.as_deref() == Some(Path::new("-"));
    if junit_to_stdout && args.json {
        return Err(UsageError(
            "diff: --junit - and --json both write to standard output; give --junit a file".into(),
        )
        .into());
    }
    // Opened before the comparison: an output that cannot be written is known at once.
    let mut junit_out = match &args.junit {
        Some(path) => Some(open_output(path, &args.captures, args.force)?),
        None => None,
    };
    let report = crate::diff::diff_files(&args.captures[0], &args.captures[1], &opts)?;
    if let (Some(path), Some((out, file))) = (&args.junit, junit_out.as_mut()) {
        write_output(out, file, junit::to_xml(&report).as_bytes(), path)?;
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if junit_to_stdout {
        // The XML went to stdout; the verdict is the exit status.
    } else if args.json {
        serde_json::to_writer_pretty(&mut out, &json::to_value(&report))?;
        writeln!(out)?;
    } else {
        human::write(&mut out, &report, Style::for_stream(Stream::Stdout))?;
    }
    out.flush()?;
    Ok(ExitCode::from(u8::from(report.differs())))
}

/// Flags and rules files into the options of a comparison.
fn options(args: &Args) -> anyhow::Result<Options> {
    let mut rules = super::common::load_rules(&args.rules, &args.ignore)?;
    for c in &args.ignore_conn {
        rules
            .conns
            .push(ConnSpec::parse(c).map_err(|e| UsageError(format!("--ignore-conn: {e}")))?);
    }
    rules.ports.extend(&args.ignore_port);
    if let Some(t) = args.timing {
        if !(t >= 0.0 && t.is_finite()) {
            return Err(UsageError(format!("--timing: expected a percentage, got {t}")).into());
        }
    }
    Ok(Options {
        rules,
        limits: Limits {
            max_diffs: args.max_diffs,
            ..Limits::default()
        },
        timing_pct: args.timing,
    })
}

fn learn(args: &Args, opts: &Options) -> anyhow::Result<ExitCode> {
    let output = match &args.output {
        Some(path) if path != Path::new("-") => {
            Some(open_output(path, &args.captures, args.force)?)
        }
        _ => None,
    };
    let learned = crate::diff::learn_files(&args.captures, opts)?;
    let paths: Vec<String> = args
        .captures
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let text = learned.rules_file(&paths, opts);
    // The report goes where the rules do not: stdout when they went to a regular file,
    // stderr when they went to stdout (or to a device or FIFO, which may be the terminal).
    let report_stream = match (&args.output, output) {
        (Some(path), Some((mut out, mut file))) => {
            write_output(&mut out, &mut file, text.as_bytes(), path)?;
            if out.is_direct() {
                Stream::Stderr
            } else {
                Stream::Stdout
            }
        }
        _ => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
            Stream::Stderr
        }
    };
    let mut report: Box<dyn Write> = match report_stream {
        Stream::Stdout => Box::new(std::io::stdout().lock()),
        Stream::Stderr => Box::new(std::io::stderr().lock()),
    };
    let st = Style::for_stream(report_stream);
    writeln!(
        report,
        "learned {} from {} ({}, {} before the rules)",
        count(learned.rules.len(), "rule"),
        count(args.captures.len(), "capture"),
        count(learned.pairs, "comparison"),
        count(learned.differences, "difference"),
    )?;
    for r in &learned.rules {
        writeln!(
            report,
            "  {} {}   {}",
            r.directive,
            st.bold(&r.value),
            st.dim(format!(
                "{}, {}, e.g. {}",
                r.kind,
                count(r.hits, "difference"),
                r.example
            ))
        )?;
    }
    if let Some(path) = args.output.as_deref().filter(|p| *p != Path::new("-")) {
        writeln!(report, "rules written to {}", path.display())?;
    }
    // A whole connection left out hides every change in it: never said quietly.
    let whole: Vec<&str> = learned
        .rules
        .iter()
        .filter(|r| r.directive == "ignore-conn")
        .map(|r| r.value.as_str())
        .collect();
    if !whole.is_empty() {
        writeln!(
            report,
            "{}",
            st.red(format!(
                "warning: {} differ{} in ways no byte pattern explains and {} left \
                 out whole (ignore-conn {}): no change in {} will be caught",
                count(whole.len(), "connection"),
                if whole.len() == 1 { "s" } else { "" },
                if whole.len() == 1 { "is" } else { "are" },
                whole.join(", "),
                if whole.len() == 1 { "it" } else { "them" },
            ))
        )?;
    }
    if learned.all_explained() {
        writeln!(
            report,
            "{}",
            st.green("with these rules the captures compare as the same")
        )?;
        Ok(ExitCode::SUCCESS)
    } else {
        writeln!(
            report,
            "{}",
            st.red("some differences remain even with these rules:")
        )?;
        for r in &learned.remaining {
            if r.differs() {
                human::write(&mut report, r, st)?;
            }
        }
        Ok(ExitCode::from(1))
    }
}

/// Opens an output file of `diff` by the rules of [`crate::os::output`]: `-` is stdout, a
/// device or FIFO is written into, a regular file is replaced (atomically) only with --force,
/// and never one of the captures.
fn open_output(
    path: &Path,
    captures: &[PathBuf],
    force: bool,
) -> anyhow::Result<(Output, std::fs::File)> {
    let inputs: Vec<&Path> = captures.iter().map(PathBuf::as_path).collect();
    let replace = if force { Replace::Yes } else { Replace::No };
    Output::open(path, replace, &inputs, true).map_err(|e| match e {
        crate::os::output::OutputError::Io(..) => anyhow::Error::new(e),
        _ => anyhow::Error::new(UsageError(e.to_string())),
    })
}

/// Writes the whole output and puts it in place.
fn write_output(
    out: &mut Output,
    file: &mut std::fs::File,
    bytes: &[u8],
    path: &Path,
) -> anyhow::Result<()> {
    file.write_all(bytes)
        .and_then(|()| file.flush())
        .and_then(|()| out.commit())
        .with_context(|| format!("failed to write {}", path.display()))
}
