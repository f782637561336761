//! The second half of a replay's verdict: the replay's own capture compared with the
//! recording by the diff machinery, so that the verdict follows the same noise rules as
//! `plg diff` and judges what the live player cannot judge on the fly.
//!
//! The player (`engine::player`) finds the first byte where a live sender left the recording,
//! as it goes, in bounded memory. This pass runs after the session, over the two files:
//! - a direction that diverged in the player but compares equal here, with the rules in force,
//!   differed only in ignored bytes (`noise_only`): it is not counted;
//! - a connection an `ignore-conn`/`ignore-port` rule names is left out of the verdict;
//! - non-TCP flows whose sender is live are judged packet by packet, in order: a missing,
//!   extra or different datagram is a divergence.
//!
//! It never turns a divergence the player found into "same" unless the comparison of that
//! very direction says so: a connection it cannot find in the replay capture keeps its verdict.

use super::index::ConnKey;
use super::report::{Report, Verdict};
use crate::engine::replay::{FlowIssue, ReplayReport};
use crate::engine::script::Script;
use std::collections::HashMap;

/// The key `plg diff` gives each recorded connection (client, server, port, ordinal).
pub fn conn_keys(script: &Script) -> Vec<ConnKey> {
    let mut seen: HashMap<(u16, u16, u16), u32> = HashMap::new();
    script
        .conns
        .iter()
        .map(|c| {
            let o = &c.open;
            let n = seen
                .entry((o.client, o.server, o.server_addr.port()))
                .or_default();
            let key = ConnKey {
                client: o.client,
                server: o.server,
                port: o.server_addr.port(),
                ordinal: *n,
            };
            *n += 1;
            key
        })
        .collect()
}

/// Refines `report` with `diff`, the comparison of the recording (a) with the replay's
/// capture (b). `live[p]`: process p ran live.
pub fn judge(report: &mut ReplayReport, script: &Script, live: &[bool], diff: &Report) {
    let is_live = |p: u32| live.get(p as usize).copied().unwrap_or(false);
    let by_key: HashMap<ConnKey, usize> = diff
        .conns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.key, i))
        .collect();
    for (k, key) in conn_keys(script).into_iter().enumerate() {
        let Some(rep) = report.conns.get_mut(k) else {
            continue;
        };
        if rep.skipped || rep.replay_id.is_none() {
            continue;
        }
        let Some(cv) = by_key.get(&key).map(|&i| &diff.conns[i]) else {
            continue;
        };
        if let Some(rule) = &cv.ignored_by {
            rep.ignored_by = Some(rule.clone());
            continue;
        }
        for d in 0..2 {
            if rep.diverged[d].is_none() {
                continue;
            }
            let dir = super::index::DIRS[d];
            if let Some(dv) = cv.dirs.iter().find(|v| v.dir == dir) {
                // Both sides' bytes were compared with the rules in force and found equal.
                let ignored = dv.result.ignored_a > 0 || dv.result.ignored_b > 0;
                if dv.result.same() && ignored && dv.bytes_b == rep.live_bytes[d] {
                    rep.noise_only[d] = true;
                }
            }
        }
    }
    for f in &diff.flows {
        if !is_live(f.key.sender) || f.ignored_by.is_some() {
            continue;
        }
        if !matches!(
            f.verdict,
            Verdict::Different | Verdict::Missing | Verdict::Extra
        ) {
            continue;
        }
        let what = match f.verdict {
            Verdict::Missing => format!(
                "the live sender sent none of its {} recorded packet{}",
                f.packets_a,
                plural(f.packets_a)
            ),
            Verdict::Extra => format!(
                "the live sender sent {} packet{} the recording does not have",
                f.packets_b,
                plural(f.packets_b)
            ),
            _ => match f.diffs.first() {
                Some(pd) if pd.a.is_none() => format!(
                    "packet {} was not in the recording ({} sent, {} recorded)",
                    pd.index, f.packets_b, f.packets_a
                ),
                Some(pd) if pd.b.is_none() => format!(
                    "packet {} never came ({} sent, {} recorded)",
                    pd.index, f.packets_b, f.packets_a
                ),
                Some(pd) => format!(
                    "packet {} differs from the recording ({} sent, {} recorded)",
                    pd.index, f.packets_b, f.packets_a
                ),
                None => format!("{} sent, {} recorded", f.packets_b, f.packets_a),
            },
        };
        report.flows.push(FlowIssue {
            label: f.label.clone(),
            what,
        });
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Why byte replay cannot reproduce a conversation, judged from the first bytes each side
/// sent in the recording: a TLS handshake (random nonces and keys) or an SSH key exchange.
pub fn cannot_replay(first_c2s: &[u8], first_s2c: &[u8]) -> Option<&'static str> {
    let tls = |b: &[u8]| b.len() >= 3 && b[0] == 0x16 && b[1] == 0x03 && b[2] <= 0x04;
    let ssh = |b: &[u8]| b.starts_with(b"SSH-");
    if tls(first_c2s) || tls(first_s2c) {
        Some(
            "TLS handshake: byte replay cannot reproduce it (each side's random nonce and \
             keys differ every run); test TLS peers both live, or compare their plaintext",
        )
    } else if ssh(first_c2s) || ssh(first_s2c) {
        Some("SSH key exchange: byte replay cannot reproduce it (fresh keys every run)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_and_ssh_openings_are_named() {
        let hello = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01];
        assert!(cannot_replay(&hello, b"").unwrap().starts_with("TLS"));
        assert!(cannot_replay(b"", &hello).unwrap().starts_with("TLS"));
        assert!(cannot_replay(b"SSH-2.0-OpenSSH_9.2\r\n", b"")
            .unwrap()
            .starts_with("SSH"));
        assert_eq!(cannot_replay(b"GET / HTTP/1.1\r\n", b"HTTP/1.1 200"), None);
        // A record type that is not a handshake is not called one.
        assert_eq!(cannot_replay(&[0x17, 0x03, 0x03], b""), None);
    }
}
