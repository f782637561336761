//! One module per subcommand: each has an `Args` (clap) and a `run` entry point. Glue only.
//! `session` is shared by record and replay (their session's status line, error wording and
//! capture output), so neither subcommand depends on the other. Nothing here depends on
//! `cli` (which depends on this): the usage error is `crate::error`.

pub mod common;
pub mod diff;
pub mod export;
pub mod inspect;
pub mod record;
pub mod replay;
pub mod session;
pub mod wireshark;

/// A subcommand whose implementation has not landed yet.
pub fn not_available(name: &str) -> anyhow::Result<std::process::ExitCode> {
    Err(
        crate::error::UsageError(format!("{name}: not available yet in this version of plg"))
            .into(),
    )
}
