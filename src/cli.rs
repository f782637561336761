//! The command line: clap definitions, busybox-style dispatch on argv[0], the seed's legacy
//! `--record`/`--replay` spelling, and the error convention (one line, exit 2).

use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::process::ExitCode;

/// An error that is the user's to fix: printed as one line, exit 2.
#[derive(Debug)]
pub struct UsageError(pub String);
impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UsageError {}

#[derive(Debug, Parser)]
#[command(
    name = "plg",
    version,
    about = "Net Playground: run programs in private network namespaces, record and replay their TCP traffic"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run commands in private namespaces and record every TCP conversation.
    Record(crate::cmd::record::Args),
    /// Replay a capture against live programs, playing the missing peers.
    Replay(crate::cmd::replay::Args),
    /// Show what a capture holds.
    Inspect(crate::cmd::inspect::Args),
    /// Convert a capture to pcap, plain pcapng or stream files.
    Export(crate::cmd::export::Args),
    /// Compare two captures and report behavioural drift.
    Diff(crate::cmd::diff::Args),
}

pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Rewrites argv so `plg-record ...` and `plg --record ...` mean `plg record ...`.
pub fn normalize_args(args: Vec<OsString>) -> Vec<OsString> {
    let mut args = args;
    if let Some(a0) = args.first() {
        let base = std::path::Path::new(a0)
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(sub) = base.strip_prefix("plg-") {
            args[0] = OsString::from("plg");
            args.insert(1, OsString::from(sub));
            return args;
        }
    }
    if let Some(a1) = args.get(1).and_then(|a| a.to_str()) {
        if let Some(sub) = a1.strip_prefix("--") {
            if ["record", "replay", "inspect", "export", "diff"].contains(&sub) {
                args[1] = OsString::from(sub);
            }
        }
    }
    args
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Record(a) => crate::cmd::record::run(a),
        Command::Replay(a) => crate::cmd::replay::run(a),
        Command::Inspect(a) => crate::cmd::inspect::run(a),
        Command::Export(a) => crate::cmd::export::run(a),
        Command::Diff(a) => crate::cmd::diff::run(a),
    }
}
