//! `plg diff --json`: the report as one JSON document, a wire format documented in
//! `docs/JSON.md` (section `plg diff`). Change it only compatibly, or bump [`VERSION`].

use super::index::Peer;
use super::report::*;
use super::stream::StreamDiff;
use crate::format::record::*;
use serde_json::{json, Value};

/// Version of the `plg diff` JSON document (the version shared by all plg JSON documents).
pub const VERSION: u32 = 1;

pub fn to_value(r: &Report) -> Value {
    let counts = |c: Counts| {
        json!({
            "same": c.same, "different": c.different, "missing": c.missing,
            "extra": c.extra, "ignored": c.ignored,
        })
    };
    json!({
        "version": VERSION,
        "view": "diff",
        "same": !r.differs(),
        "truncated": r.truncated(),
        "same_file": r.same_file,
        "a": capture(&r.a),
        "b": capture(&r.b),
        "notes": r.notes,
        "ignore": r.patterns,
        "processes": r.processes.iter().map(process).collect::<Vec<_>>(),
        "connections": r.conns.iter().map(conn).collect::<Vec<_>>(),
        "flows": r.flows.iter().map(flow).collect::<Vec<_>>(),
        "summary": {
            "processes": counts(r.proc_counts()),
            "connections": counts(r.conn_counts()),
            "flows": counts(r.flow_counts()),
        },
    })
}

/// Bytes as `{"data": base64, "text": string or null}`: `data` always (the convention of every
/// plg JSON document), `text` too when the bytes are UTF-8.
pub fn data(b: &[u8]) -> Value {
    json!({ "data": base64(b), "text": std::str::from_utf8(b).ok() })
}

pub fn base64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn capture(c: &CaptureInfo) -> Value {
    json!({
        "path": c.path,
        "format_version": c.format_version,
        "mode": c.mode.map(|m| match m { Mode::Record => "record", Mode::Replay => "replay" }),
        "plg_version": c.plg_version,
        "complete": c.complete,
        "error": c.damage_at.as_ref().map(|(offset, message)| {
            json!({"offset": offset, "message": message})
        }),
        "processes": c.processes,
        "connections": c.connections,
        "packets": c.packets,
        "data_bytes": c.data_bytes,
        "unknown_blocks": c.unknown_blocks,
    })
}

fn exit(e: Option<ExitStatus>) -> Value {
    match e {
        Some(ExitStatus::Exited(c)) => json!({ "code": c }),
        Some(ExitStatus::Signaled(s)) => json!({ "signal": s }),
        None => Value::Null,
    }
}

fn process(p: &ProcVerdict) -> Value {
    let side = |x: &Option<Process>, e| {
        x.as_ref().map(
            |x| json!({ "name": x.name, "command": x.command, "live": x.live, "exit": exit(e) }),
        )
    };
    json!({
        "index": p.index,
        "verdict": p.verdict.as_str(),
        "a": side(&p.a, p.exit_a),
        "b": side(&p.b, p.exit_b),
        "problems": p.problems,
        "notes": p.notes,
    })
}

fn close(c: Option<CloseKind>) -> Value {
    match c {
        Some(CloseKind::Fin) => json!("fin"),
        Some(CloseKind::Rst) => json!("rst"),
        None => Value::Null,
    }
}

fn dir_key(d: Direction) -> &'static str {
    match d {
        Direction::ClientToServer => "client_to_server",
        Direction::ServerToClient => "server_to_client",
    }
}

fn facts(f: &ConnFacts) -> Value {
    json!({
        "id": f.id,
        "client_addr": f.client_addr.to_string(),
        "server_addr": f.server_addr.to_string(),
        "outcome": outcome_name(f.outcome),
        "close": { "client": close(f.close[0]), "server": close(f.close[1]) },
        "bytes": { "client_to_server": f.bytes[0], "server_to_client": f.bytes[1] },
        "duration_ns": f.duration_ns,
        "first_response_ns": f.first_response_ns,
    })
}

fn problem(p: &Problem) -> Value {
    match p {
        Problem::Outcome { a, b } => {
            json!({ "kind": "outcome", "a": outcome_name(*a), "b": outcome_name(*b) })
        }
        Problem::Close { dir, a, b } => json!({
            "kind": "close",
            "side": if *dir == Direction::ClientToServer { "client" } else { "server" },
            "a": close(*a), "b": close(*b),
        }),
        Problem::Timing {
            what,
            a_ns,
            b_ns,
            pct,
        } => json!({
            "kind": "timing",
            "what": what.replace(' ', "_"),
            "a_ns": a_ns, "b_ns": b_ns, "percent": pct,
        }),
    }
}

fn stream_diff(d: &StreamDiff) -> Value {
    json!({
        "offset_a": d.a_offset,
        "offset_b": d.b_offset,
        "length_a": d.a_len,
        "length_b": d.b_len,
        "before": data(&d.before),
        "a": data(&d.a),
        "b": data(&d.b),
        "after_a": data(&d.a_after),
        "after_b": data(&d.b_after),
    })
}

fn conn(c: &ConnVerdict) -> Value {
    json!({
        "label": c.label,
        "client": c.key.client,
        "server": c.key.server,
        "port": c.key.port,
        "ordinal": c.key.ordinal,
        "verdict": c.verdict.as_str(),
        "ignored_by": c.ignored_by,
        "a": c.a.as_ref().map(facts),
        "b": c.b.as_ref().map(facts),
        "problems": c.problems.iter().map(problem).collect::<Vec<_>>(),
        "directions": c.dirs.iter().map(|d| json!({
            "direction": dir_key(d.dir),
            "same": d.result.same(),
            "bytes_a": d.bytes_a,
            "bytes_b": d.bytes_b,
            "compared": d.compared,
            "ignored_a": d.result.ignored_a,
            "ignored_b": d.result.ignored_b,
            "more": d.result.more,
            "diverged": d.result.diverged,
            "differences": d.result.diffs.iter().map(stream_diff).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn flow(f: &FlowVerdict) -> Value {
    let receiver = match f.key.receiver {
        Peer::Proc(i) => json!(i),
        Peer::Addr(a) => json!(a.to_string()),
    };
    json!({
        "label": f.label,
        "sender": f.key.sender,
        "receiver": receiver,
        "protocol": f.key.proto,
        "port": f.key.port,
        "verdict": f.verdict.as_str(),
        "ignored_by": f.ignored_by,
        "packets_a": f.packets_a,
        "packets_b": f.packets_b,
        "more": f.more,
        "differences": f.diffs.iter().map(|d| json!({
            "packet": d.index,
            "a": d.a.as_deref().map(data),
            "b": d.b.as_deref().map(data),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
        assert_eq!(data(b"\xff"), json!({"data": "/w==", "text": null}));
    }
}
