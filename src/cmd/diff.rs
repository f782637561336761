//! `plg diff`: compare two captures (or learn ignore rules from several).
//!
//! Glue only: validate the flags into [`Options`], run [`crate::diff`], print the report in the
//! form asked for, and map the verdict to the exit code (0 same, 1 different, 2 error).

use crate::diff::compare::Options;
use crate::diff::rules::ConnSpec;
use crate::diff::stream::Limits;
use crate::diff::{human, json, junit};
use crate::error::UsageError;
use crate::ui::{Stream, Style};
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;
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
    /// scenario.
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

    /// Also write the report as JUnit XML to FILE, one test case per connection.
    #[arg(long, value_name = "FILE", conflicts_with = "learn")]
    pub junit: Option<PathBuf>,

    /// Learn ignore rules from captures of one scenario taken with no code change, and write
    /// them (to --output, or standard output).
    #[arg(long)]
    pub learn: bool,

    /// With --learn: write the rules to FILE.
    #[arg(short, long, value_name = "FILE", requires = "learn")]
    pub output: Option<PathBuf>,
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
    let report = crate::diff::diff_files(&args.captures[0], &args.captures[1], &opts)?;
    if let Some(path) = &args.junit {
        std::fs::write(path, junit::to_xml(&report))
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
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
    let learned = crate::diff::learn_files(&args.captures, opts)?;
    let paths: Vec<String> = args
        .captures
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let text = learned.rules_file(&paths, opts);
    // The report goes where the rules do not.
    let mut report: Box<dyn Write> = match &args.output {
        Some(path) => {
            std::fs::write(path, &text)
                .with_context(|| format!("failed to write {}", path.display()))?;
            Box::new(std::io::stdout().lock())
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
            Box::new(std::io::stderr().lock())
        }
    };
    let st = Style::for_stream(if args.output.is_some() {
        Stream::Stdout
    } else {
        Stream::Stderr
    });
    writeln!(
        report,
        "learned {} rule{} from {} captures ({} comparison{}, {} difference{} before the rules)",
        learned.rules.len(),
        if learned.rules.len() == 1 { "" } else { "s" },
        args.captures.len(),
        learned.pairs,
        if learned.pairs == 1 { "" } else { "s" },
        learned.differences,
        if learned.differences == 1 { "" } else { "s" },
    )?;
    for r in &learned.rules {
        writeln!(
            report,
            "  {} {}   {}",
            r.directive,
            st.bold(&r.value),
            st.dim(format!(
                "{}, {} difference{}, e.g. {}",
                r.kind,
                r.hits,
                if r.hits == 1 { "" } else { "s" },
                r.example
            ))
        )?;
    }
    if let Some(path) = &args.output {
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
                "warning: {} connection{} differ{} in ways no byte pattern explains and {} left \
                 out whole (ignore-conn {}): no change in {} will be caught",
                whole.len(),
                if whole.len() == 1 { "" } else { "s" },
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
