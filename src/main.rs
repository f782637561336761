//! The `plg` binary: parse, dispatch, and print any error as one line with exit code 2.
//!
//! Conventions (see also `plg --help`): every error is one line on stderr,
//! `plg: <what failed>: <why>`, exit status 2, no backtrace. A closed stdout (`plg ... | head`)
//! is a clean exit: Rust leaves SIGPIPE ignored, so writes fail with `BrokenPipe`, which is
//! treated as success wherever it surfaces (as ripgrep does).

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    install_panic_hook();
    match run() {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // If stderr is gone too there is no one left to tell.
            let _ = writeln!(std::io::stderr(), "plg: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let args = plg::cli::normalize_args(std::env::args_os().collect());
    let cli = match plg::cli::parse(args.clone()) {
        Ok(cli) => cli,
        Err(e) => return clap_error(e, &args),
    };
    plg::cli::run(cli)
}

/// `--help` and `--version` print to stdout and succeed; `plg` alone prints the help to stderr
/// and fails; every other clap error becomes one line.
fn clap_error(e: clap::Error, args: &[std::ffi::OsString]) -> anyhow::Result<ExitCode> {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // Fails only when stdout is closed, which is a clean exit anyway.
            let _ = e.print();
            Ok(ExitCode::SUCCESS)
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            Ok(ExitCode::from(2))
        }
        _ => Err(plg::error::UsageError(plg::cli::usage_error_line(&e, args)).into()),
    }
}

/// The error and its causes, `: `-separated, on one line.
fn one_line(e: &anyhow::Error) -> String {
    let joined = e
        .chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ");
    joined.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Also through `serde_json`, whose error hides the `io::Error` it wraps from the chain.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    e.chain().any(|c| {
        matches!(c.downcast_ref::<std::io::Error>(), Some(io) if io.kind() == BrokenPipe)
            || matches!(c.downcast_ref::<serde_json::Error>(),
                        Some(j) if j.io_error_kind() == Some(BrokenPipe))
    })
}

/// Panics are bugs, never the way a user mistake is reported; still, they print one line, not
/// a screenful. `println!` to a closed stdout panics with "failed printing to stdout: Broken
/// pipe": in the main thread that is the `| head` case, a clean exit. `RUST_BACKTRACE` set
/// restores the default report.
fn install_panic_hook() {
    if std::env::var_os("RUST_BACKTRACE").is_some() {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        let main_thread = std::thread::current().name() == Some("main");
        if main_thread
            && msg.starts_with("failed printing to stdout")
            && msg.contains("Broken pipe")
        {
            std::process::exit(0);
        }
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let _ = writeln!(
            std::io::stderr(),
            "plg: internal error (a bug, please report it): {}{at}",
            msg.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }));
}
