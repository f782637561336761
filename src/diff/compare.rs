//! Pass 2: match what two indexes hold and compare it, re-reading only the blocks of directions
//! whose hashes differ (or that ignore rules must look at).

use super::index::{dir_index, BlockSource, Conn, ConnKey, Flow, Index, DIRS};
use super::normalize::{normalize_message, Normalizer};
use super::report::*;
use super::rules::Rules;
use super::stream::{compare_streams, Limits, Piece, PieceSource, StreamResult};
use crate::format::record::*;
use anyhow::Context;
use regex::bytes::Regex;
use std::collections::HashMap;

/// After this many stored differences, later ones keep offsets only (bounds memory when every
/// connection differs).
const DETAIL_BUDGET: usize = 2000;

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub rules: Rules,
    pub limits: Limits,
    /// Report connections whose duration or first-response delay drifted by more than this
    /// many percent.
    pub timing_pct: Option<f64>,
}

/// Durations below this are not compared for timing drift (scheduling noise).
const TIMING_FLOOR_NS: u64 = 1_000_000;

/// The bytes of one direction (or one flow's payloads, framed) read back block by block.
struct DirSource<'a, I: Iterator<Item = u64>> {
    src: &'a mut dyn BlockSource,
    offsets: I,
    orig: u64,
}

impl<I: Iterator<Item = u64>> PieceSource for DirSource<'_, I> {
    fn next_piece(&mut self) -> anyhow::Result<Option<Piece>> {
        let Some(off) = self.offsets.next() else {
            return Ok(None);
        };
        let bytes = match self.src.read_at(off)? {
            Record::Data(d) => d.bytes,
            other => anyhow::bail!("block at byte {off} is not stream data: {other:?}"),
        };
        let orig = self.orig;
        self.orig += bytes.len() as u64;
        Ok(Some(Piece::Bytes { orig, bytes }))
    }
}

/// Compares two indexed captures; `sa` and `sb` re-read their blocks.
pub fn compare(
    ia: &Index,
    ib: &Index,
    sa: &mut dyn BlockSource,
    sb: &mut dyn BlockSource,
    opts: &Options,
) -> anyhow::Result<Report> {
    let re = opts.rules.combined();
    let mut r = Report {
        a: info(ia),
        b: info(ib),
        patterns: opts
            .rules
            .ignores
            .iter()
            .map(|p| p.pattern.clone())
            .collect(),
        ..Default::default()
    };
    notes(ia, ib, &mut r.notes);
    r.processes = processes(ia, ib);
    let mut budget = DETAIL_BUDGET;

    let b_by_key: HashMap<ConnKey, usize> = ib
        .conns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.key, i))
        .collect();
    let a_keys: std::collections::HashSet<ConnKey> = ia.conns.iter().map(|c| c.key).collect();
    for ca in &ia.conns {
        let cb = b_by_key.get(&ca.key).map(|&i| &ib.conns[i]);
        let v = compare_conn(ia, ib, Some(ca), cb, sa, sb, re.as_ref(), opts, &mut budget)
            .with_context(|| format!("failed to compare connection {}", label(ia, &ca.key)))?;
        r.conns.push(v);
    }
    for cb in ib.conns.iter().filter(|c| !a_keys.contains(&c.key)) {
        r.conns.push(compare_conn(
            ia,
            ib,
            None,
            Some(cb),
            sa,
            sb,
            re.as_ref(),
            opts,
            &mut budget,
        )?);
    }

    let b_flows: HashMap<_, usize> = ib
        .flows
        .iter()
        .enumerate()
        .map(|(i, f)| (f.key, i))
        .collect();
    for fa in &ia.flows {
        let fb = b_flows.get(&fa.key).map(|&i| &ib.flows[i]);
        r.flows
            .push(compare_flow(ia, Some(fa), fb, sa, sb, re.as_ref(), opts)?);
    }
    for fb in &ib.flows {
        if !ia.flows.iter().any(|f| f.key == fb.key) {
            r.flows
                .push(compare_flow(ib, None, Some(fb), sa, sb, re.as_ref(), opts)?);
        }
    }
    Ok(r)
}

fn info(ix: &Index) -> CaptureInfo {
    CaptureInfo {
        path: ix.path.clone(),
        format_version: ix.session.as_ref().map(|s| s.format_version),
        mode: ix.session.as_ref().map(|s| s.mode),
        plg_version: ix.session.as_ref().map(|s| s.plg_version.clone()),
        complete: !ix.truncated(),
        damage: ix.damage.as_ref().map(|e| e.to_string()),
        damage_at: ix.damage.as_ref().map(|e| (e.offset, e.message.clone())),
        processes: ix.processes.len(),
        connections: ix.conns.len(),
        packets: ix.packets,
        data_bytes: ix.data_bytes,
        unknown_blocks: ix.unknown_blocks,
        anomalies: ix.anomalies.clone(),
        anomaly_count: ix.anomaly_count,
    }
}

fn notes(ia: &Index, ib: &Index, out: &mut Vec<String>) {
    if let (Some(a), Some(b)) = (&ia.session, &ib.session) {
        if a.format_version != b.format_version {
            out.push(format!(
                "the captures have different format versions ({} and {}): compared as read",
                a.format_version, b.format_version
            ));
        }
        if (a.subnet, a.prefix_len) != (b.subnet, b.prefix_len) {
            out.push(format!(
                "the captures use different subnets ({}/{} and {}/{}): addresses are not compared",
                a.subnet, a.prefix_len, b.subnet, b.prefix_len
            ));
        }
    }
    for ix in [ia, ib] {
        if ix.summary.is_none() && ix.damage.is_none() {
            out.push(format!(
                "{} is truncated (no summary at its end): compared what is there",
                ix.path
            ));
        }
        if let Some(e) = &ix.damage {
            out.push(format!(
                "{} could not be read to its end ({e}): compared what came before",
                ix.path
            ));
        }
        if ix.unknown_blocks > 0 {
            out.push(format!(
                "{}: {} unknown blocks skipped",
                ix.path, ix.unknown_blocks
            ));
        }
    }
}

fn processes(ia: &Index, ib: &Index) -> Vec<ProcVerdict> {
    let n = ia.processes.len().max(ib.processes.len());
    let exit = |ix: &Index, i: usize| {
        ix.exits
            .iter()
            .find(|e| e.index as usize == i)
            .map(|e| e.status)
    };
    (0..n)
        .map(|i| {
            let a = ia.processes.get(i).cloned();
            let b = ib.processes.get(i).cloned();
            let (exit_a, exit_b) = (exit(ia, i), exit(ib, i));
            let mut v = ProcVerdict {
                index: i as ProcIndex,
                verdict: Verdict::Same,
                problems: vec![],
                notes: vec![],
                exit_a,
                exit_b,
                a: a.clone(),
                b: b.clone(),
            };
            match (&a, &b) {
                (Some(_), None) => v.verdict = Verdict::Missing,
                (None, Some(_)) => v.verdict = Verdict::Extra,
                (Some(pa), Some(pb)) => {
                    if pa.name != pb.name {
                        v.notes
                            .push(format!("named {:?}, then {:?}", pa.name, pb.name));
                    }
                    if pa.command != pb.command {
                        v.notes
                            .push(format!("ran {:?}, then {:?}", pa.command, pb.command));
                    }
                    if pa.live != pb.live {
                        v.notes.push(format!(
                            "{} in the first capture, {} in the second",
                            live(pa.live),
                            live(pb.live)
                        ));
                    }
                    match (exit_a, exit_b) {
                        (Some(x), Some(y)) if x != y => {
                            v.problems.push(format!(
                                "{}, then {}",
                                exit_name(Some(x)),
                                exit_name(Some(y))
                            ));
                            v.verdict = Verdict::Different;
                        }
                        (Some(_), None) | (None, Some(_)) => v.notes.push(format!(
                            "{}, then {}",
                            exit_name(exit_a),
                            exit_name(exit_b)
                        )),
                        _ => {}
                    }
                }
                (None, None) => unreachable!(),
            }
            v
        })
        .collect()
}

fn live(l: bool) -> &'static str {
    if l {
        "live"
    } else {
        "played from a recording"
    }
}

/// `client->server:port #ordinal` with the capture's process names.
pub fn label(ix: &Index, k: &ConnKey) -> String {
    format!(
        "{}->{}:{} #{}",
        ix.proc_name(k.client),
        ix.proc_name(k.server),
        k.port,
        k.ordinal
    )
}

fn facts(c: &Conn) -> ConnFacts {
    ConnFacts {
        id: c.open.id,
        client_addr: c.open.client_addr,
        server_addr: c.open.server_addr,
        outcome: c.open.outcome,
        close: [c.dirs[0].close.map(|x| x.0), c.dirs[1].close.map(|x| x.0)],
        bytes: [c.dirs[0].bytes, c.dirs[1].bytes],
        duration_ns: c.duration_ns(),
        first_response_ns: c.first_response_ns(),
    }
}

fn ignored_by(rules: &Rules, ix: &Index, k: &ConnKey) -> Option<String> {
    if let Some(why) = crate::engine::dns::resolver_conn(k.server, k.port) {
        return Some(why);
    }
    if rules.port_ignored(k.port) {
        return Some(format!("ignore-port {}", k.port));
    }
    let (cn, sn) = (ix.proc_name(k.client), ix.proc_name(k.server));
    rules
        .conns
        .iter()
        .find(|s| s.matches((&cn, k.client), (&sn, k.server), k.port, k.ordinal))
        .map(|s| format!("ignore-conn {}", s.text))
}

#[allow(clippy::too_many_arguments)]
fn compare_conn(
    ia: &Index,
    ib: &Index,
    ca: Option<&Conn>,
    cb: Option<&Conn>,
    sa: &mut dyn BlockSource,
    sb: &mut dyn BlockSource,
    re: Option<&Regex>,
    opts: &Options,
    budget: &mut usize,
) -> anyhow::Result<ConnVerdict> {
    let (ix, key) = match (ca, cb) {
        (Some(c), _) => (ia, c.key),
        (None, Some(c)) => (ib, c.key),
        (None, None) => unreachable!(),
    };
    let mut v = ConnVerdict {
        label: label(ix, &key),
        key,
        verdict: Verdict::Same,
        a: ca.map(facts),
        b: cb.map(facts),
        problems: vec![],
        dirs: vec![],
        ignored_by: ignored_by(&opts.rules, ix, &key),
    };
    if v.ignored_by.is_some() {
        v.verdict = Verdict::Ignored;
        return Ok(v);
    }
    let (ca, cb) = match (ca, cb) {
        (Some(a), Some(b)) => (a, b),
        (Some(_), None) => {
            v.verdict = Verdict::Missing;
            return Ok(v);
        }
        _ => {
            v.verdict = Verdict::Extra;
            return Ok(v);
        }
    };
    if ca.open.outcome != cb.open.outcome {
        v.problems.push(Problem::Outcome {
            a: ca.open.outcome,
            b: cb.open.outcome,
        });
    }
    for dir in DIRS {
        let (x, y) = (&ca.dirs[dir_index(dir)], &cb.dirs[dir_index(dir)]);
        let (kx, ky) = (x.close.map(|c| c.0), y.close.map(|c| c.0));
        if kx != ky {
            v.problems.push(Problem::Close { dir, a: kx, b: ky });
        }
        let must_read = x.bytes != y.bytes || x.hash != y.hash || x.late_data || y.late_data;
        let mut dv = DirVerdict {
            dir,
            bytes_a: x.bytes,
            bytes_b: y.bytes,
            compared: must_read,
            result: StreamResult::default(),
        };
        if must_read {
            let mut limits = opts.limits;
            limits.snippets &= *budget > 0;
            let mut pa = DirSource {
                src: &mut *sa,
                offsets: x.blocks.iter(),
                orig: 0,
            };
            let mut pb = DirSource {
                src: &mut *sb,
                offsets: y.blocks.iter(),
                orig: 0,
            };
            dv.result = match re {
                Some(re) => compare_streams(
                    &mut Normalizer::new(pa, re.clone()),
                    &mut Normalizer::new(pb, re.clone()),
                    limits,
                )?,
                None => compare_streams(&mut pa, &mut pb, limits)?,
            };
            *budget = budget.saturating_sub(dv.result.diffs.len());
        }
        v.dirs.push(dv);
    }
    if let Some(pct) = opts.timing_pct {
        let pairs = [
            ("duration", ca.duration_ns(), cb.duration_ns()),
            (
                "first response",
                ca.first_response_ns(),
                cb.first_response_ns(),
            ),
        ];
        for (what, a, b) in pairs {
            let (Some(a), Some(b)) = (a, b) else { continue };
            if a.max(b) < TIMING_FLOOR_NS {
                continue;
            }
            let drift = (b as f64 - a as f64).abs() / (a.max(1) as f64) * 100.0;
            if drift > pct {
                v.problems.push(Problem::Timing {
                    what,
                    a_ns: a,
                    b_ns: b,
                    pct: drift,
                });
            }
        }
    }
    if !v.problems.is_empty() || v.dirs.iter().any(|d| !d.result.same()) {
        v.verdict = Verdict::Different;
    }
    Ok(v)
}

pub fn flow_label(ix: &Index, f: &Flow) -> String {
    let k = f.key;
    let port = if k.proto == 17 {
        format!(":{}", k.port)
    } else {
        String::new()
    };
    format!(
        "{}->{} {}{}",
        ix.proc_name(k.sender as ProcIndex),
        ix.peer_name(k.receiver),
        proto_name(k.proto),
        port
    )
}

fn compare_flow(
    ix: &Index,
    fa: Option<&Flow>,
    fb: Option<&Flow>,
    sa: &mut dyn BlockSource,
    sb: &mut dyn BlockSource,
    re: Option<&Regex>,
    opts: &Options,
) -> anyhow::Result<FlowVerdict> {
    let f = fa.or(fb).expect("one side");
    let mut v = FlowVerdict {
        label: flow_label(ix, f),
        key: f.key,
        verdict: Verdict::Same,
        packets_a: fa.map_or(0, |f| f.side.blocks.len()),
        packets_b: fb.map_or(0, |f| f.side.blocks.len()),
        diffs: vec![],
        more: false,
        ignored_by: None,
    };
    if f.key.proto == 17 && opts.rules.port_ignored(f.key.port) {
        v.verdict = Verdict::Ignored;
        v.ignored_by = Some(format!("ignore-port {}", f.key.port));
        return Ok(v);
    }
    let (fa, fb) = match (fa, fb) {
        (Some(a), Some(b)) => (a, b),
        (Some(_), None) => {
            v.verdict = Verdict::Missing;
            return Ok(v);
        }
        _ => {
            v.verdict = Verdict::Extra;
            return Ok(v);
        }
    };
    let same_hash = fa.side.hash == fb.side.hash
        && fa.side.bytes == fb.side.bytes
        && v.packets_a == v.packets_b;
    if same_hash {
        return Ok(v);
    }
    let payload = |src: &mut dyn BlockSource, off: u64| -> anyhow::Result<Vec<u8>> {
        match src.read_at(off)? {
            Record::Packet(p) => Ok(super::index::packet_view(&p.bytes)
                .map(|x| normalize_message(re, &x.3).0)
                .unwrap_or_default()),
            other => anyhow::bail!("block at byte {off} is not a packet: {other:?}"),
        }
    };
    let mut ia = fa.side.blocks.iter();
    let mut ib = fb.side.blocks.iter();
    let mut index = 0u64;
    loop {
        let (oa, ob) = (ia.next(), ib.next());
        if oa.is_none() && ob.is_none() {
            break;
        }
        let pa = oa.map(|o| payload(sa, o)).transpose()?;
        let pb = ob.map(|o| payload(sb, o)).transpose()?;
        if pa != pb {
            if opts.limits.max_diffs != 0 && v.diffs.len() >= opts.limits.max_diffs {
                v.more = true;
                break;
            }
            v.diffs.push(PacketDiff {
                index,
                a: pa,
                b: pb,
            });
        }
        index += 1;
    }
    if !v.diffs.is_empty() {
        v.verdict = Verdict::Different;
    }
    Ok(v)
}
