//! Flags shared by `plg record` and `plg replay` (both run a session of processes), and their
//! validation into `engine::session::Options`.

use crate::engine::plan::{Subnet, Subnet6};
use crate::engine::session::{Options, ProcSpec, Ready};
use crate::error::UsageError;
use std::time::Duration;

/// The "Isolation:" section of `plg record --help` and `plg replay --help` (and their man
/// pages): what a session's isolation holds, mode by mode. Keep README.md's "Isolation" in step.
/// A macro, so that `concat!` can join it to each command's examples.
macro_rules! isolation_help {
    () => {
        "Isolation:
  Every mode: each command runs in its own network, mount, UTS and PID
  namespaces. It reaches only the session's other processes (and, with
  --allow-external, the host's loopback through plg), and sees its own
  /etc/hosts, /etc/resolv.conf, hostname and /proc. Nothing it starts
  (daemons, setsid, double forks, unshare -n) outlives the session, and plg
  signals nothing outside it.
  Root (plg run by root): the commands are real root. This is no security
  boundary: a command can leave its namespaces (umount /proc, then nsenter
  --net=/proc/PLG_PID/ns/net reaches the host's loopback), use any file and
  signal any process. Run trusted commands only.
  Rootless (plg run by a normal user): the commands are root only inside
  plg's user namespace, the invoking user on the host. They cannot enter the
  host's namespaces or act on anything the user cannot, but they can
  reconfigure (and enter) the namespaces plg made, the other processes'
  included, and so bypass the relay.
  --userns (root or rootless): each command also gets a user namespace of
  its own, as nobody (uid 65534) on the host when plg is root. It then
  cannot enter any namespace it did not create, reconfigure its network or
  remount its files; low ports and ping still work.
  None of this protects against a kernel exploit: user namespaces widen what
  the kernel exposes."
    };
}
pub(crate) use isolation_help;

#[derive(Debug, Clone, clap::Args)]
pub struct SessionArgs {
    /// Start later commands only once process NAME listens on PORT (or on any port): a TCP
    /// listener or a bound UDP socket, IPv4 or IPv6, on an address the other processes reach
    /// (a wildcard or its own, not 127.0.0.1 or ::1), seen in the kernel's socket table
    /// without sending a packet. Repeatable.
    #[arg(long, value_name = "NAME[:PORT]")]
    pub ready: Vec<String>,

    /// Give up waiting for --ready after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub ready_timeout: u64,

    /// The session ends when this process exits (repeatable; default: the last command).
    #[arg(long = "main", value_name = "NAME")]
    pub main: Vec<String>,

    /// Seconds between SIGTERM and SIGKILL for the processes still running at the end.
    #[arg(long, value_name = "SECS", default_value_t = 3.0, value_parser = parse_grace)]
    pub grace: f64,

    /// Do not prefix each output line with the process name.
    #[arg(long)]
    pub no_prefix: bool,

    /// No status line and no summary.
    #[arg(short, long)]
    pub quiet: bool,

    /// MTU of the virtual links (the MSS applications see follows from it). Below 1280 the
    /// session is IPv4 only (IPv6 needs 1280).
    #[arg(long, value_name = "BYTES", default_value_t = 1500,
          value_parser = clap::value_parser!(u32).range(576..=65521))]
    pub mtu: u32,

    /// Disable segmentation/checksum offload through the TUN devices (slower; for debugging).
    #[arg(long)]
    pub no_offload: bool,

    /// Run each command in a user namespace of its own, as root inside and, on the host, as
    /// nobody (uid 65534; when plg runs as root) or as the invoking user (rootless). The
    /// commands then cannot enter the host's or each other's namespaces, reconfigure their
    /// network or act as root on the host's files. Low ports and ping still work.
    #[arg(long)]
    pub userns: bool,

    /// Names resolve IPv6 first (AAAA before A), as glibc's own table orders a ULA subnet.
    /// By default plg gives every process RFC 6724's table, which ranks the default ULA
    /// subnet below IPv4, so a client of an IPv4-only server does not first hit a refused
    /// IPv6 attempt (recorded as a refused connection). Ignored with --no-ipv6.
    #[arg(long)]
    pub prefer_ipv6: bool,
}

impl SessionArgs {
    /// Checks the flags against the processes (`commands[i]` None: not run) and builds the
    /// session options. Every user mistake is found here, before any side effect.
    pub fn options(
        &self,
        subnet: Subnet,
        subnet6: Option<Subnet6>,
        names: Vec<String>,
        commands: Vec<Option<String>>,
        allow_external: bool,
    ) -> anyhow::Result<Options> {
        let usage = |m: String| anyhow::Error::new(UsageError(m));
        let n = names.len();
        let index_of = |name: &str| -> anyhow::Result<usize> {
            names
                .iter()
                .position(|x| x == name)
                .or_else(|| {
                    name.strip_prefix('p')
                        .and_then(|d| d.parse().ok())
                        .filter(|i| *i < n)
                })
                .ok_or_else(|| {
                    usage(format!(
                        "no process is named '{name}' (known: {})",
                        names.join(", ")
                    ))
                })
        };
        let run = |i: usize, flag: &str| -> anyhow::Result<usize> {
            if commands[i].is_none() {
                return Err(usage(format!(
                    "{flag} {}: that process is not run",
                    names[i]
                )));
            }
            Ok(i)
        };
        let mut ready = Vec::new();
        for r in &self.ready {
            let (name, port) = match r.rsplit_once(':') {
                Some((name, port)) => {
                    let port: u16 = port
                        .parse()
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| usage(format!("--ready {r}: '{port}' is not a port")))?;
                    (name, Some(port))
                }
                None => (r.as_str(), None),
            };
            ready.push(Ready {
                index: run(index_of(name)?, "--ready")?,
                port,
            });
        }
        if commands.iter().all(|c| c.is_none()) {
            return Err(usage("no process to run: every one is played".to_string()));
        }
        let main = if self.main.is_empty() {
            // The last process, when it runs; when it is played, the session ends with the
            // replay (main stays empty).
            match commands.last() {
                Some(Some(_)) => vec![n - 1],
                _ => vec![],
            }
        } else {
            self.main
                .iter()
                .map(|m| run(index_of(m)?, "--main"))
                .collect::<anyhow::Result<_>>()?
        };
        // `parse_grace` let only values a Duration holds through (from_secs_f64 would panic
        // on 1e300); the fallback serves arguments built in code.
        let grace = Duration::try_from_secs_f64(self.grace).unwrap_or(Duration::MAX);
        // IPv6 needs links of 1280 bytes or more (RFC 8200 5): below that, IPv4 only.
        let subnet6 = subnet6.filter(|_| self.mtu >= 1280);
        Ok(Options {
            subnet,
            subnet6,
            procs: names
                .into_iter()
                .zip(commands)
                .map(|(name, command)| ProcSpec { name, command })
                .collect(),
            ready,
            main,
            grace,
            ready_timeout: Duration::from_secs(self.ready_timeout),
            prefix_output: !self.no_prefix,
            quiet: self.quiet,
            allow_external,
            mtu: self.mtu,
            offload: !self.no_offload,
            user_namespace: self.userns,
            prefer_ipv6: self.prefer_ipv6,
            settle: Duration::ZERO,
        })
    }
}

/// Noise rules from `--rules FILE`s and `--ignore REGEX`es, as `plg diff` and `plg replay`
/// both take them (format: docs/DIFF-RULES.md).
pub fn load_rules(
    files: &[std::path::PathBuf],
    ignores: &[String],
) -> anyhow::Result<crate::diff::rules::Rules> {
    use anyhow::Context as _;
    let mut rules = crate::diff::rules::Rules::default();
    for path in files {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read rules file {}", path.display()))?;
        rules
            .parse_file(&path.display().to_string(), &text)
            .map_err(UsageError)?;
    }
    for p in ignores {
        rules.add_ignore(p, "--ignore").map_err(UsageError)?;
    }
    Ok(rules)
}

/// `--grace`: seconds, finite and within what a duration holds, named as the user wrote them
/// (`1e999` parses as infinity, which the error must not call `inf`).
fn parse_grace(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if v < 0.0 {
        return Err(format!("'{s}': the value cannot be negative"));
    }
    if !v.is_finite() || Duration::try_from_secs_f64(v).is_err() {
        return Err(format!("'{s}': expected seconds, from 0 to {}", u64::MAX));
    }
    Ok(v)
}
