//! What `plg diff` leaves out: ignore patterns, ignored connections and ports, from the command
//! line or a rules file (format: `docs/DIFF-RULES.md`).
//!
//! Pure parsing and matching; reading the file is the caller's.

use regex::bytes::{Regex, RegexBuilder};

/// One ignore pattern and where it came from.
#[derive(Debug, Clone)]
pub struct IgnorePattern {
    pub pattern: String,
    /// `--ignore` or `FILE:LINE`.
    pub source: String,
}

/// Leaves whole connections out: `CLIENT->SERVER[:PORT][#N]`, each part a process name, a
/// process index or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnSpec {
    pub text: String,
    pub client: Option<String>,
    pub server: Option<String>,
    pub port: Option<u16>,
    pub ordinal: Option<u32>,
}

impl ConnSpec {
    pub fn parse(text: &str) -> Result<ConnSpec, String> {
        let bad = || {
            format!(
                "bad connection spec {text:?}: expected CLIENT->SERVER[:PORT][#N] \
                 (names, indexes or *), e.g. p0->p1:80#0"
            )
        };
        let (client, rest) = text.split_once("->").ok_or_else(bad)?;
        let (rest, ordinal) = match rest.split_once('#') {
            Some((r, n)) => (r, Some(n.parse::<u32>().map_err(|_| bad())?)),
            None => (rest, None),
        };
        let (server, port) = match rest.rsplit_once(':') {
            Some((s, "*")) => (s, None),
            Some((s, p)) => (s, Some(p.parse::<u16>().map_err(|_| bad())?)),
            None => (rest, None),
        };
        let part = |s: &str| -> Result<Option<String>, String> {
            let s = s.trim();
            if s.is_empty() {
                Err(bad())
            } else if s == "*" {
                Ok(None)
            } else {
                Ok(Some(s.to_string()))
            }
        };
        Ok(ConnSpec {
            text: text.to_string(),
            client: part(client)?,
            server: part(server)?,
            port,
            ordinal,
        })
    }

    /// Whether the spec names this connection. A process part matches the process's name or
    /// its index.
    pub fn matches(
        &self,
        client: (&str, u16),
        server: (&str, u16),
        port: u16,
        ordinal: u32,
    ) -> bool {
        let proc_ok = |want: &Option<String>, (name, index): (&str, u16)| match want {
            None => true,
            Some(w) => w == name || w.parse::<u16>().ok() == Some(index),
        };
        proc_ok(&self.client, client)
            && proc_ok(&self.server, server)
            && self.port.is_none_or(|p| p == port)
            && self.ordinal.is_none_or(|n| n == ordinal)
    }
}

/// Everything that is left out of a comparison.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub ignores: Vec<IgnorePattern>,
    pub conns: Vec<ConnSpec>,
    pub ports: Vec<u16>,
}

impl Rules {
    /// Adds an ignore pattern after checking that it compiles.
    pub fn add_ignore(&mut self, pattern: &str, source: &str) -> Result<(), String> {
        compile(pattern).map_err(|e| format!("{source}: bad pattern {pattern:?}: {e}"))?;
        self.ignores.push(IgnorePattern {
            pattern: pattern.to_string(),
            source: source.to_string(),
        });
        Ok(())
    }

    /// Parses a rules file's text (`name` is used in error messages).
    pub fn parse_file(&mut self, name: &str, text: &str) -> Result<(), String> {
        for (n, line) in text.lines().enumerate() {
            let at = format!("{name}:{}", n + 1);
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (word, arg) = line
                .split_once([' ', '\t'])
                .map(|(w, a)| (w, a.trim_start()))
                .unwrap_or((line, ""));
            // Patterns keep trailing spaces (they may matter); the other arguments do not.
            match word {
                "ignore" if !arg.is_empty() => self.add_ignore(arg, &at)?,
                "ignore-conn" => self
                    .conns
                    .push(ConnSpec::parse(arg.trim()).map_err(|e| format!("{at}: {e}"))?),
                "ignore-port" => self.ports.push(
                    arg.trim()
                        .parse()
                        .map_err(|_| format!("{at}: bad port {:?}", arg.trim()))?,
                ),
                _ => {
                    return Err(format!(
                        "{at}: expected `ignore REGEX`, `ignore-conn SPEC` or `ignore-port PORT`, \
                         found {line:?}"
                    ))
                }
            }
        }
        Ok(())
    }

    /// All ignore patterns as one regex (leftmost match of any), or None without patterns.
    pub fn combined(&self) -> Option<Regex> {
        if self.ignores.is_empty() {
            return None;
        }
        let alt = self
            .ignores
            .iter()
            .map(|p| format!("(?:{})", p.pattern))
            .collect::<Vec<_>>()
            .join("|");
        Some(compile(&alt).expect("each pattern compiled alone"))
    }

    pub fn port_ignored(&self, port: u16) -> bool {
        self.ports.contains(&port)
    }

    pub fn is_empty(&self) -> bool {
        self.ignores.is_empty() && self.conns.is_empty() && self.ports.is_empty()
    }
}

/// Compiles a pattern the way plg diff runs it: over bytes, so `.` and `[^\r]` match any byte
/// (Unicode classes off); non-ASCII literals still match their UTF-8 encoding.
pub fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .unicode(false)
        .size_limit(64 << 20)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_specs() {
        let s = ConnSpec::parse("p0->db:5432#1").unwrap();
        assert!(s.matches(("p0", 0), ("db", 2), 5432, 1));
        assert!(!s.matches(("p0", 0), ("db", 2), 5432, 0));
        let s = ConnSpec::parse("*->1").unwrap();
        assert!(s.matches(("x", 5), ("y", 1), 80, 3));
        assert!(!s.matches(("x", 5), ("y", 2), 80, 3));
        assert!(ConnSpec::parse("p0").is_err());
        assert!(ConnSpec::parse("p0->p1:http").is_err());
    }

    #[test]
    fn rules_file() {
        let mut r = Rules::default();
        r.parse_file(
            "golden.rules",
            "# learned\nignore Date: [^\\r\\n]*\n\nignore-conn p0->p1:80#2\nignore-port 53\n",
        )
        .unwrap();
        assert_eq!(r.ignores[0].pattern, "Date: [^\\r\\n]*");
        assert_eq!(r.ignores[0].source, "golden.rules:2");
        assert_eq!(r.conns.len(), 1);
        assert!(r.port_ignored(53));
        let err = r.parse_file("f", "ignore (").unwrap_err();
        assert!(err.starts_with("f:1: bad pattern"), "{err}");
        assert!(r
            .parse_file("f", "frobnicate x")
            .unwrap_err()
            .starts_with("f:1:"));
    }

    #[test]
    fn patterns_work_on_bytes() {
        let re = compile("[^\\r]*").unwrap();
        assert_eq!(re.find(b"\xff\xfe\r").unwrap().len(), 2);
        let mut r = Rules::default();
        r.add_ignore("a+", "--ignore").unwrap();
        r.add_ignore("b+", "--ignore").unwrap();
        assert_eq!(r.combined().unwrap().find(b"xxbbaa").unwrap().start(), 2);
    }
}
