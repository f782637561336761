//! What `record` and `replay` show of a running session, shared by both: the live status line
//! on a terminal (the engine's [`View`]), the wording of a session's errors, how a process's
//! exit is said, and the capture file they write. Presentation only: the session reports
//! through values ([`Stats`], [`SessionError`], [`Warning`]) and this module words them.

use crate::engine::session::{NotReady, SessionError, View, Warning};
use crate::engine::Stats;
use crate::error::UsageError;
use crate::format::ExitStatus;
use crate::os::output::{Output, OutputError, Replace};
use crate::ui::{count, human_bytes, Stream};
use std::fmt;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// The session's view on a terminal: an indicatif status line on stderr (hidden with `-q` or
/// when stderr is not a terminal), cleared around the children's output to the same terminal.
pub struct Terminal {
    bar: indicatif::ProgressBar,
    /// Read once: indicatif answers `is_hidden` under the same lock that an output pump
    /// blocked on a full stdout may hold.
    shown: bool,
    /// Per stream (stdout, stderr): it is the terminal the status line is drawn on.
    clear_around: [bool; 2],
}

impl Terminal {
    pub fn new(quiet: bool) -> Arc<Terminal> {
        let bar = crate::ui::status_line(quiet);
        let shown = !bar.is_hidden();
        Arc::new(Terminal {
            bar,
            shown,
            clear_around: [
                shown && Stream::Stdout.is_terminal(),
                shown && Stream::Stderr.is_terminal(),
            ],
        })
    }
}

/// The status line's text.
pub fn status_text(s: &Stats) -> String {
    format!(
        "{} open / {} | c->s {} | s->c {} | {}",
        s.open.load(Relaxed),
        count(s.total.load(Relaxed), "connection"),
        human_bytes(s.bytes_c2s.load(Relaxed)),
        human_bytes(s.bytes_s2c.load(Relaxed)),
        count(s.packets.load(Relaxed), "packet"),
    )
}

impl View for Terminal {
    fn shows_status(&self) -> bool {
        self.shown
    }

    fn status(&self, stats: &Stats) {
        self.bar.set_message(status_text(stats));
        self.bar.tick();
    }

    fn warn(&self, warning: Warning) {
        let text = match warning {
            Warning::ReaperDied => "plg: warning: the reaper process died; the session goes on \
                                    (its processes still end with plg)"
                .to_string(),
            Warning::AtCapacity { cap } if cap < crate::engine::MAX_LIVE_CONNS as u64 => format!(
                "plg: warning: {cap} connections open, the most the open-file limit allows (each \
                 holds two files; {} need a hard limit of {} or CAP_SYS_RESOURCE): further \
                 ones are refused, and recorded as refused",
                crate::engine::MAX_LIVE_CONNS,
                2 * crate::engine::MAX_LIVE_CONNS + 256
            ),
            Warning::AtCapacity { cap } => format!(
                "plg: warning: {cap} connections open, plg's limit: further ones are refused, \
                 and recorded as refused"
            ),
        };
        self.bar.suspend(|| eprintln!("{text}"));
    }

    fn around_output(&self, stderr: bool, write: &mut dyn FnMut()) {
        // Elsewhere the write happens outside indicatif's lock, so a destination that blocks
        // (a full pipe) stalls that output's thread only.
        if self.clear_around[stderr as usize] {
            self.bar.suspend(write)
        } else {
            write()
        }
    }

    fn done(&self) {
        if self.shown {
            self.bar.finish_and_clear();
        }
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Ready {
                name,
                port,
                ipv6,
                why,
            } => {
                // Only a listener the other processes can reach counts: say which.
                let family = if *ipv6 { "IPv4 or IPv6" } else { "IPv4" };
                let what = match port {
                    Some(p) => {
                        format!("port {p} ({family}, on an address the other processes reach)")
                    }
                    None => format!("any port ({family}, on an address the other processes reach)"),
                };
                f.write_str("the session did not start: ")?;
                match why {
                    NotReady::NotRun => write!(f, "--ready {name}: that process is not run"),
                    NotReady::Exited(st) => {
                        write!(f, "{name} exited ({st}) before listening on {what}")
                    }
                    NotReady::TimedOut(t) => write!(
                        f,
                        "{name} did not listen on {what} within {}s (--ready-timeout)",
                        t.as_secs()
                    ),
                }
            }
            SessionError::Start(_) => f.write_str("the session did not start"),
            SessionError::Run(e) => write!(f, "{e}"),
        }
    }
}

/// How a process ended, in the words of the end-of-session lines.
pub fn describe_exit(s: Option<ExitStatus>) -> String {
    match s {
        Some(ExitStatus::Exited(127)) => "exited 127 (command not found)".into(),
        Some(ExitStatus::Exited(c)) => format!("exited {c}"),
        Some(ExitStatus::Signaled(s)) => {
            let name = nix::sys::signal::Signal::try_from(s)
                .map(|s| s.as_str())
                .unwrap_or("?");
            format!("killed by {name}")
        }
        None => "still running at the end".into(),
    }
}

/// Opens the capture file of `record -f` / `replay -o`: a new or regular file (replaced, as
/// the flag says), never a device, FIFO or directory (the writer needs `pwrite`), never one
/// of `inputs`. Checked before the session is built, so a bad path fails at once.
pub fn capture_output(path: &Path, inputs: &[&Path]) -> anyhow::Result<(Output, File)> {
    Output::open(path, Replace::Yes, inputs, false).map_err(|e| match e {
        OutputError::Io(..) => anyhow::Error::new(e),
        // A path plg will not write is the user's mistake: exit 2 with the usage line style.
        _ => anyhow::Error::new(UsageError(e.to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::process::Exit;
    use std::time::Duration;

    fn line(e: SessionError) -> String {
        let e = anyhow::Error::new(e);
        e.chain()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(": ")
    }

    #[test]
    fn session_errors_read_as_one_line_naming_the_process_and_the_flag() {
        let ready = |port, why| SessionError::Ready {
            name: "web".into(),
            port,
            ipv6: false,
            why,
        };
        assert_eq!(
            line(ready(Some(9), NotReady::TimedOut(Duration::from_secs(3)))),
            "the session did not start: web did not listen on port 9 (IPv4, on an address the \
             other processes reach) within 3s (--ready-timeout)"
        );
        assert_eq!(
            line(ready(None, NotReady::Exited(Exit::Exited(1)))),
            "the session did not start: web exited (exit status 1) before listening on any port \
             (IPv4, on an address the other processes reach)"
        );
        assert_eq!(
            line(ready(None, NotReady::NotRun)),
            "the session did not start: --ready web: that process is not run"
        );
        let start = SessionError::Start(anyhow::anyhow!("boom").context("failed to start p0"));
        assert!(start.before_start());
        assert_eq!(
            line(start),
            "the session did not start: failed to start p0: boom"
        );
        let run = SessionError::Run(anyhow::anyhow!("disk full").context("cannot write x"));
        assert!(!run.before_start());
        assert_eq!(line(run), "cannot write x: disk full");
    }

    #[test]
    fn the_status_line_counts_connections_bytes_and_packets() {
        let s = Stats::default();
        s.open.store(2, Relaxed);
        s.total.store(5, Relaxed);
        s.bytes_c2s.store(1536, Relaxed);
        s.packets.store(1, Relaxed);
        assert_eq!(
            status_text(&s),
            "2 open / 5 connections | c->s 1.5 KiB | s->c 0 B | 1 packet"
        );
        s.total.store(1, Relaxed);
        s.packets.store(0, Relaxed);
        assert_eq!(
            status_text(&s),
            "2 open / 1 connection | c->s 1.5 KiB | s->c 0 B | 0 packets"
        );
    }
}
