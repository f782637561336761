//! Terminal output shared by subcommands: colour decisions, progress, number formatting.
//!
//! Rules every subcommand follows through these helpers: colour as `--color` says, by default
//! only when the stream is a terminal (or `CLICOLOR_FORCE` is set) and `NO_COLOR` is not set; progress only on a terminal stderr and never with `-q`;
//! machine-readable output (`--json`, raw bytes) never goes through [`Style`].
//!
//! Printing: write to a locked stdout with `writeln!(out, ..)?` rather than `println!`, so a
//! closed pipe comes back as a `BrokenPipe` error, which `main` turns into a clean exit.

use std::fmt::Display;
use std::io::IsTerminal;
use std::time::Duration;

/// Which standard stream a decision is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn is_terminal(self) -> bool {
        match self {
            Stream::Stdout => std::io::stdout().is_terminal(),
            Stream::Stderr => std::io::stderr().is_terminal(),
        }
    }
}

/// `--color`: when to colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR or TERM=dumb say no; CLICOLOR_FORCE forces it on.
    #[default]
    Auto,
    Always,
    Never,
}

/// The `--color` choice for this run (0 auto, 1 always, 2 never), set once by the command line.
static CHOICE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Records the `--color` choice for every later [`color_enabled`].
pub fn set_color_choice(choice: ColorChoice) {
    let v = match choice {
        ColorChoice::Auto => 0,
        ColorChoice::Always => 1,
        ColorChoice::Never => 2,
    };
    CHOICE.store(v, std::sync::atomic::Ordering::Relaxed);
}

/// Whether to colour output written to `stream`: `--color always`/`never` decide; otherwise
/// `NO_COLOR` set and non-empty (<https://no-color.org>) or `TERM=dumb` turn it off,
/// `CLICOLOR_FORCE` set and not `0` turns it on, and else it is on for a terminal.
pub fn color_enabled(stream: Stream) -> bool {
    match CHOICE.load(std::sync::atomic::Ordering::Relaxed) {
        1 => return true,
        2 => return false,
        _ => {}
    }
    if !color_allowed_by_env(
        std::env::var_os("NO_COLOR").as_deref(),
        std::env::var_os("TERM").as_deref(),
    ) {
        return false;
    }
    color_forced(std::env::var_os("CLICOLOR_FORCE").as_deref()) || stream.is_terminal()
}

fn color_forced(clicolor_force: Option<&std::ffi::OsStr>) -> bool {
    clicolor_force.is_some_and(|v| !v.is_empty() && v != "0")
}

fn color_allowed_by_env(
    no_color: Option<&std::ffi::OsStr>,
    term: Option<&std::ffi::OsStr>,
) -> bool {
    no_color.is_none_or(|v| v.is_empty()) && term.is_none_or(|t| t != "dumb")
}

/// ANSI styling that turns into plain text when colour is off.
///
/// ```
/// use plg::ui::Style;
/// let s = Style::plain();
/// assert_eq!(s.red("refused"), "refused");
/// assert_eq!(Style::new(true).bold("x"), "\x1b[1mx\x1b[0m");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    enabled: bool,
}

impl Style {
    pub fn new(enabled: bool) -> Style {
        Style { enabled }
    }

    /// Colour as [`color_enabled`] decides for `stream`.
    pub fn for_stream(stream: Stream) -> Style {
        Style::new(color_enabled(stream))
    }

    /// No colour at all.
    pub fn plain() -> Style {
        Style::new(false)
    }

    pub fn enabled(self) -> bool {
        self.enabled
    }

    fn paint(self, code: &str, text: impl Display) -> String {
        if self.enabled {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn bold(self, text: impl Display) -> String {
        self.paint("1", text)
    }
    pub fn dim(self, text: impl Display) -> String {
        self.paint("2", text)
    }
    pub fn red(self, text: impl Display) -> String {
        self.paint("31", text)
    }
    pub fn green(self, text: impl Display) -> String {
        self.paint("32", text)
    }
    pub fn yellow(self, text: impl Display) -> String {
        self.paint("33", text)
    }
    pub fn cyan(self, text: impl Display) -> String {
        self.paint("36", text)
    }
}

/// A byte count for people: `512 B`, `1.5 KiB`, `200.0 MiB` (binary units, one decimal).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    // Move up while the one-decimal rendering would read 1024.0 or more.
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A duration in nanoseconds for people: `850 ns`, `12.5 µs`, `3.2 ms`, `4.56 s`, `2 min 05 s`,
/// `1 h 02 min`.
///
/// Units in human text, everywhere (inspect, record, replay, diff): a number, a space, then
/// the unit (`4.56 s`, `1.5 KiB`, `+0.295710 s`); durations through this function, offsets
/// from the session start through [`offset`]. JSON keeps its documented integer units.
pub fn human_duration(ns: u64) -> String {
    const US: u64 = 1_000;
    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;
    match ns {
        0..US => format!("{ns} ns"),
        US..MS => format!("{:.1} µs", ns as f64 / US as f64),
        MS..S => format!("{:.1} ms", ns as f64 / MS as f64),
        _ if ns < 60 * S => format!("{:.2} s", ns as f64 / S as f64),
        _ if ns < 3600 * S => {
            let s = ns / S;
            format!("{} min {:02} s", s / 60, s % 60)
        }
        _ => {
            let m = ns / S / 60;
            format!("{} h {:02} min", m / 60, m % 60)
        }
    }
}

/// A time as seconds since the session start, to the microsecond: `+0.295710 s`.
pub fn offset(ns_since_start: u64) -> String {
    format!(
        "+{}.{:06} s",
        ns_since_start / 1_000_000_000,
        ns_since_start % 1_000_000_000 / 1_000
    )
}

/// The plural of an English noun as plg's text uses them: `process` → `processes`,
/// `connection` → `connections`.
pub fn plural(noun: &str) -> String {
    if noun.ends_with('s') || noun.ends_with('x') || noun.ends_with("ch") || noun.ends_with("sh") {
        format!("{noun}es")
    } else {
        format!("{noun}s")
    }
}

/// A count and its noun, singular for exactly one: `1 connection`, `0 connections`,
/// `3 processes`. Every count in human text goes through it (or [`noun`]).
///
/// ```
/// assert_eq!(plg::ui::count(1, "byte"), "1 byte");
/// assert_eq!(plg::ui::count(2, "process"), "2 processes");
/// ```
pub fn count(n: impl TryInto<u64>, noun: &str) -> String {
    let n = n.try_into().unwrap_or(u64::MAX);
    format!("{n} {}", self::noun(n, noun))
}

/// The noun alone, singular for exactly one (for counts written apart from their noun).
pub fn noun(n: impl TryInto<u64>, noun: &str) -> String {
    if n.try_into().is_ok_and(|n| n == 1) {
        noun.to_string()
    } else {
        plural(noun)
    }
}

/// A byte-counting progress bar on stderr, hidden when stderr is not a terminal or `quiet`.
/// Advance it with `inc(bytes)` and end it with `finish_and_clear()`.
pub fn progress_bar(total_bytes: u64, label: &str, quiet: bool) -> indicatif::ProgressBar {
    let bar = if quiet || !Stream::Stderr.is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::with_draw_target(
            Some(total_bytes),
            indicatif::ProgressDrawTarget::stderr(),
        )
    };
    bar.set_length(total_bytes);
    let style = indicatif::ProgressStyle::with_template(
        "{prefix} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
    )
    .expect("the progress template is valid")
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(label.to_string());
    bar
}

/// A one-line live status on stderr (for record and replay), hidden like [`progress_bar`].
/// Update it with `set_message(..)`; it redraws a few times a second on its own.
pub fn status_line(quiet: bool) -> indicatif::ProgressBar {
    if quiet || !Stream::Stderr.is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    let style = indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {wide_msg}")
        .expect("the status template is valid");
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn bytes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(200 * 1024 * 1024), "200.0 MiB");
        assert_eq!(human_bytes(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(0), "0 ns");
        assert_eq!(human_duration(850), "850 ns");
        assert_eq!(human_duration(12_500), "12.5 µs");
        assert_eq!(human_duration(3_200_000), "3.2 ms");
        assert_eq!(human_duration(4_560_000_000), "4.56 s");
        assert_eq!(human_duration(125_000_000_000), "2 min 05 s");
        assert_eq!(human_duration(3_720_000_000_000), "1 h 02 min");
        assert!(!human_duration(u64::MAX).is_empty());
    }

    #[test]
    fn offsets_have_their_unit() {
        assert_eq!(offset(0), "+0.000000 s");
        assert_eq!(offset(295_710_123), "+0.295710 s");
        assert_eq!(offset(61_000_001_000), "+61.000001 s");
    }

    #[test]
    fn counts_are_singular_for_one() {
        assert_eq!(count(1u64, "connection"), "1 connection");
        assert_eq!(count(0u64, "connection"), "0 connections");
        assert_eq!(count(1u32, "process"), "1 process");
        assert_eq!(count(2u32, "process"), "2 processes");
        assert_eq!(count(1u8, "byte"), "1 byte");
        assert_eq!(count(5u16, "packet"), "5 packets");
        assert_eq!(count(1u64, "difference"), "1 difference");
        assert_eq!(noun(7u64, "match"), "matches");
        assert_eq!(noun(1u64, "match"), "match");
    }

    #[test]
    fn style_is_plain_when_off() {
        let s = Style::plain();
        assert_eq!(s.bold("a"), "a");
        assert_eq!(s.green(3), "3");
        assert_eq!(Style::new(true).red("x"), "\x1b[31mx\x1b[0m");
    }

    #[test]
    fn clicolor_force_turns_colour_on_unless_zero() {
        assert!(color_forced(Some(OsStr::new("1"))));
        assert!(!color_forced(Some(OsStr::new("0"))));
        assert!(!color_forced(Some(OsStr::new(""))));
        assert!(!color_forced(None));
    }

    #[test]
    fn no_color_and_dumb_terminals_turn_colour_off() {
        assert!(color_allowed_by_env(None, None));
        assert!(color_allowed_by_env(
            Some(OsStr::new("")),
            Some(OsStr::new("xterm"))
        ));
        assert!(!color_allowed_by_env(Some(OsStr::new("1")), None));
        assert!(!color_allowed_by_env(None, Some(OsStr::new("dumb"))));
    }

    #[test]
    fn progress_is_hidden_when_quiet() {
        assert!(progress_bar(10, "x", true).is_hidden());
        assert!(status_line(true).is_hidden());
    }
}
