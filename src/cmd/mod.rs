//! One module per subcommand: each has an `Args` (clap) and a `run` entry point. Glue only.

pub mod common;
pub mod diff;
pub mod export;
pub mod inspect;
pub mod record;
pub mod replay;
pub mod wireshark;

/// A subcommand whose implementation has not landed yet.
pub fn not_available(name: &str) -> anyhow::Result<std::process::ExitCode> {
    Err(crate::cli::UsageError(format!("{name}: not available yet in this version of plg")).into())
}
