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

/// Parses `--conn`'s value: `ID`, or `sN:ID` for connection ID of section N (1 is the first).
pub fn parse_conn_ref(s: &str) -> Result<crate::format::ConnRef, String> {
    let bad = || format!("'{s}' is not a connection id (ID, or sN:ID for section N)");
    let (section, id) = match s.split_once(':') {
        Some((sec, id)) => {
            let n: u32 = sec
                .strip_prefix('s')
                .and_then(|n| n.parse().ok())
                .filter(|n| *n >= 1)
                .ok_or_else(bad)?;
            (Some(n), id)
        }
        None => (None, s),
    };
    Ok(crate::format::ConnRef {
        section,
        id: id.parse().map_err(|_| bad())?,
    })
}
