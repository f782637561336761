//! Errors the command line tells apart, in a leaf module every layer may use (so `cmd/` does
//! not depend on `cli`, which depends on `cmd/`).

/// An error that is the user's to fix (a bad flag value, a path plg will not write): printed
/// as one line, exit 2, like every error, but worded as a usage mistake.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}
