//! DNS messages (RFC 1035): parses a query and builds the answer plg gives at the gateway
//! address for the session's own names. Bytes only: no sockets, no clocks.
//!
//! ```text
//! +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//! |                      ID                       |
//! |QR|   Opcode  |AA|TC|RD|RA| Z|AD|CD|   RCODE   |
//! |                    QDCOUNT                    |
//! |                    ANCOUNT                    |
//! |                    NSCOUNT                    |
//! |                    ARCOUNT                    |
//! +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
//! then the question (QNAME, QTYPE, QCLASS) and resource records
//! ```
//!
//! What [`respond`] answers, authoritatively (AA), for a [`Zone`]:
//! - A / AAAA / ANY for a name of the zone (case-insensitive, with or without a trailing dot):
//!   its addresses; NODATA (NOERROR, no answer) for a known name with no address of that
//!   family or another type;
//! - PTR for `in-addr.arpa` and `ip6.arpa` names of the zone's addresses: the first name;
//! - NXDOMAIN for every other name (marked [`Response::outside`], so a caller that forwards
//!   can send the query on instead); REFUSED for a class other than IN; NOTIMP for an opcode
//!   other than QUERY (RFC 1035 4.1.1: "the name server does not support the requested kind
//!   of query"); FORMERR for a message it cannot parse (several questions, a name past the
//!   end, a pointer loop, records cut short).
//! - Nothing at all for a message shorter than a header or a response (QR set): answering an
//!   answer is how two responders loop.
//!
//! EDNS0 (RFC 6891): an OPT record in the query is answered with one (payload size
//! [`EDNS_PAYLOAD`]); over UDP an answer is at most 512 bytes, or the requester's advertised
//! size with EDNS, and one that does not fit is sent with TC set and no records, so the client
//! retries over TCP. An OPT with a version other than 0 is answered BADVERS.
//!
//! Contract: nothing here panics on any input; memory is bounded by the input's length (a
//! name is at most 255 bytes, pointers must go strictly backwards, so a loop is FORMERR).

use std::net::{Ipv4Addr, Ipv6Addr};

/// DNS header length.
pub const HEADER_LEN: usize = 12;
/// Largest UDP answer to a query without EDNS (RFC 1035 4.2.1).
pub const MAX_UDP_PLAIN: usize = 512;
/// The UDP payload size plg advertises in its OPT record (the DNS flag day 2020 value).
pub const EDNS_PAYLOAD: u16 = 1232;
/// TTL of the records plg answers: the session's names do not change while it runs.
pub const TTL: u32 = 60;
/// Longest name in wire form (RFC 1035 3.1).
const MAX_NAME: usize = 255;

/// Record types.
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const PTR: u16 = 12;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const OPT: u16 = 41;
    pub const ANY: u16 = 255;
}

/// Response codes (the low four bits; BADVERS is extended, RFC 6891).
pub mod rcode {
    pub const NOERROR: u8 = 0;
    pub const FORMERR: u8 = 1;
    pub const SERVFAIL: u8 = 2;
    pub const NXDOMAIN: u8 = 3;
    pub const NOTIMP: u8 = 4;
    pub const REFUSED: u8 = 5;
    /// Extended: 16, sent as 0 in the header and 1 in the OPT record's upper bits.
    pub const BADVERS: u16 = 16;
}

const CLASS_IN: u16 = 1;
const CLASS_ANY: u16 = 255;
const OPCODE_QUERY: u8 = 0;

/// One name of the session and its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Lower case, no trailing dot; the first is the one PTR answers with.
    pub names: Vec<String>,
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

/// The names plg answers for: the session's processes, the gateway, `localhost`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Zone {
    hosts: Vec<Host>,
}

impl Zone {
    pub fn new() -> Zone {
        Zone::default()
    }

    /// Adds a host; names are stored lower case without a trailing dot. An earlier host
    /// keeps a name given twice (as the first line of a hosts file wins).
    pub fn add(&mut self, names: &[&str], v4: Option<Ipv4Addr>, v6: Option<Ipv6Addr>) {
        let names = names
            .iter()
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        self.hosts.push(Host { names, v4, v6 });
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The host named `name` (any case, trailing dot or not).
    pub fn lookup(&self, name: &str) -> Option<&Host> {
        let name = name.strip_suffix('.').unwrap_or(name);
        self.hosts
            .iter()
            .find(|h| h.names.iter().any(|n| n.eq_ignore_ascii_case(name)))
    }

    /// The first name of the host holding `addr`.
    fn name_of_v4(&self, addr: Ipv4Addr) -> Option<&str> {
        self.hosts
            .iter()
            .find(|h| h.v4 == Some(addr) && !h.names.is_empty())
            .map(|h| h.names[0].as_str())
    }

    fn name_of_v6(&self, addr: Ipv6Addr) -> Option<&str> {
        self.hosts
            .iter()
            .find(|h| h.v6 == Some(addr) && !h.names.is_empty())
            .map(|h| h.names[0].as_str())
    }
}

/// Over which transport the query came: it sets the size limit of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// An answer built by [`respond`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub bytes: Vec<u8>,
    /// The question was a well-formed query for a name the zone does not hold (the answer is
    /// NXDOMAIN, or REFUSED for another class): a forwarder may ask elsewhere instead.
    pub outside: bool,
}

/// A parsed question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The labels as sent (case kept: some resolvers check that the answer echoes it).
    pub labels: Vec<Vec<u8>>,
    pub qtype: u16,
    pub qclass: u16,
}

impl Question {
    /// The name in presentation form, without the trailing dot (`""` for the root). Bytes
    /// outside printable ASCII never match a zone name: they are kept as they are (lossy).
    pub fn name(&self) -> String {
        let parts: Vec<String> = self
            .labels
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        parts.join(".")
    }

    fn wire_name(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_NAME);
        for l in &self.labels {
            out.push(l.len() as u8);
            out.extend_from_slice(l);
        }
        out.push(0);
        out
    }
}

/// The OPT record of a query (RFC 6891 6.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Edns {
    payload: u16,
    version: u8,
    /// The DO bit, echoed.
    dnssec_ok: bool,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

/// Reads a (possibly compressed) name at `at`: its labels and the offset just past it in the
/// message. Every pointer must go strictly backwards (a loop, or a pointer forwards, is
/// refused), and the name must fit 255 bytes.
fn read_name(msg: &[u8], mut at: usize) -> Option<(Vec<Vec<u8>>, usize)> {
    let mut labels = Vec::new();
    let mut len = 1usize; // the root's zero byte
    let mut end = None;
    let mut limit = at; // a pointer must go below every place it was read from
    loop {
        let b = *msg.get(at)?;
        match b >> 6 {
            0 if b == 0 => {
                return Some((labels, end.unwrap_or(at + 1)));
            }
            0 => {
                let l = b as usize;
                let label = msg.get(at + 1..at + 1 + l)?;
                len += l + 1;
                if len > MAX_NAME {
                    return None;
                }
                labels.push(label.to_vec());
                at += 1 + l;
            }
            3 => {
                let p = usize::from(u16_at(msg, at)?) & 0x3fff;
                if end.is_none() {
                    end = Some(at + 2);
                }
                if p >= limit {
                    return None;
                }
                limit = p;
                at = p;
            }
            // 0b01 and 0b10: extended label types (RFC 6891 obsoleted them): malformed.
            _ => return None,
        }
    }
}

/// Skips a resource record at `at`; returns (type, class, ttl, rdata range end) and where the
/// next record starts.
fn read_rr(msg: &[u8], at: usize) -> Option<(u16, u16, u32, bool, usize)> {
    let (labels, at) = read_name(msg, at)?;
    let rtype = u16_at(msg, at)?;
    let class = u16_at(msg, at + 2)?;
    let ttl_hi = u16_at(msg, at + 4)?;
    let ttl_lo = u16_at(msg, at + 6)?;
    let rdlen = usize::from(u16_at(msg, at + 8)?);
    let end = at + 10 + rdlen;
    if end > msg.len() {
        return None;
    }
    let ttl = (u32::from(ttl_hi) << 16) | u32::from(ttl_lo);
    Some((rtype, class, ttl, labels.is_empty(), end))
}

/// What a query says, once parsed.
struct Query {
    id: u16,
    flags: u16,
    question: Question,
    edns: Option<Edns>,
}

enum Parsed {
    /// No answer at all (too short for a header, or a response).
    Ignore,
    /// Answer with this code, echoing the header (and the question when there was one).
    Error {
        id: u16,
        flags: u16,
        code: u8,
        question: Option<Question>,
        edns: Option<Edns>,
    },
    Query(Query),
}

fn parse(msg: &[u8]) -> Parsed {
    let (Some(id), Some(flags)) = (u16_at(msg, 0), u16_at(msg, 2)) else {
        return Parsed::Ignore;
    };
    if msg.len() < HEADER_LEN || flags & 0x8000 != 0 {
        return Parsed::Ignore;
    }
    let counts = |i: usize| u16_at(msg, 4 + 2 * i).unwrap_or(0);
    let (qd, an, ns, ar) = (counts(0), counts(1), counts(2), counts(3));
    let formerr = |question: Option<Question>| Parsed::Error {
        id,
        flags,
        code: rcode::FORMERR,
        question,
        edns: None,
    };
    let opcode = ((flags >> 11) & 0xf) as u8;
    if opcode != OPCODE_QUERY {
        return Parsed::Error {
            id,
            flags,
            code: rcode::NOTIMP,
            question: None,
            edns: None,
        };
    }
    if qd != 1 {
        return formerr(None);
    }
    let Some((labels, mut at)) = read_name(msg, HEADER_LEN) else {
        return formerr(None);
    };
    let (Some(qtype), Some(qclass)) = (u16_at(msg, at), u16_at(msg, at + 2)) else {
        return formerr(None);
    };
    at += 4;
    let question = Question {
        labels,
        qtype,
        qclass,
    };
    // The other sections: a query has no answers, but a client may send records (an
    // UPDATE prerequisite, a TSIG); read them all so a cut or looping one is FORMERR. Each
    // takes at least 11 bytes, so this loop is bounded by the message length.
    let mut edns = None;
    let total = usize::from(an) + usize::from(ns) + usize::from(ar);
    for k in 0..total {
        let Some((rt, class, ttl, root, next)) = read_rr(msg, at) else {
            return formerr(Some(question));
        };
        at = next;
        let additional = k >= usize::from(an) + usize::from(ns);
        if rt == rtype::OPT {
            // Only one OPT, in the additional section, owned by the root (RFC 6891 6.1.1).
            if !additional || !root || edns.is_some() {
                return formerr(Some(question));
            }
            edns = Some(Edns {
                payload: class,
                version: (ttl >> 16) as u8,
                dnssec_ok: ttl & 0x8000 != 0,
            });
        }
    }
    if let Some(e) = edns {
        if e.version != 0 {
            return Parsed::Error {
                id,
                flags,
                code: 0,
                question: Some(question),
                edns: Some(e),
            };
        }
    }
    Parsed::Query(Query {
        id,
        flags,
        question,
        edns,
    })
}

/// Builds the answer to a query, or `None` when there is none to give (see the module
/// header). Never panics.
pub fn respond(msg: &[u8], zone: &Zone, transport: Transport) -> Option<Response> {
    match parse(msg) {
        Parsed::Ignore => None,
        Parsed::Error {
            id,
            flags,
            code,
            question,
            edns,
        } => {
            let mut b = Builder::new(id, flags, question.as_ref(), edns);
            if edns.is_some_and(|e| e.version != 0) {
                b.ext_rcode = rcode::BADVERS;
            }
            b.rcode = code;
            Some(Response {
                bytes: b.finish(limit(transport, edns)),
                outside: false,
            })
        }
        Parsed::Query(q) => Some(answer(&q, zone, transport)),
    }
}

fn limit(transport: Transport, edns: Option<Edns>) -> usize {
    match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => edns.map_or(MAX_UDP_PLAIN, |e| usize::from(e.payload).max(MAX_UDP_PLAIN)),
    }
}

fn answer(q: &Query, zone: &Zone, transport: Transport) -> Response {
    let mut b = Builder::new(q.id, q.flags, Some(&q.question), q.edns);
    let qn = &q.question;
    let class_ok = qn.qclass == CLASS_IN || qn.qclass == CLASS_ANY;
    let name = qn.name();
    let mut outside = false;
    if !class_ok {
        b.rcode = rcode::REFUSED;
        outside = true;
    } else if let Some(ptr) = reverse(&name) {
        match ptr.and_then(|a| match a {
            std::net::IpAddr::V4(a) => zone.name_of_v4(a),
            std::net::IpAddr::V6(a) => zone.name_of_v6(a),
        }) {
            Some(target) => {
                b.aa = true;
                if matches!(qn.qtype, rtype::PTR | rtype::ANY) {
                    b.ptr(target);
                }
            }
            None => {
                b.rcode = rcode::NXDOMAIN;
                outside = true;
            }
        }
    } else if let Some(h) = zone.lookup(&name) {
        b.aa = true;
        if matches!(qn.qtype, rtype::A | rtype::ANY) {
            if let Some(a) = h.v4 {
                b.record(rtype::A, &a.octets());
            }
        }
        if matches!(qn.qtype, rtype::AAAA | rtype::ANY) {
            if let Some(a) = h.v6 {
                b.record(rtype::AAAA, &a.octets());
            }
        }
    } else {
        b.rcode = rcode::NXDOMAIN;
        outside = true;
    }
    Response {
        bytes: b.finish(limit(transport, q.edns)),
        outside,
    }
}

/// For a reverse-lookup name: `Some(Some(addr))` when it names a whole address,
/// `Some(None)` when it is under `in-addr.arpa`/`ip6.arpa` but not a whole address (no such
/// name here), `None` when it is not a reverse name at all.
fn reverse(name: &str) -> Option<Option<std::net::IpAddr>> {
    let lower = name.to_ascii_lowercase();
    if let Some(rest) = strip_zone(&lower, "in-addr.arpa") {
        let parts: Vec<&str> = rest.split('.').collect();
        if parts.len() != 4 {
            return Some(None);
        }
        let mut o = [0u8; 4];
        for (k, p) in parts.iter().rev().enumerate() {
            // Canonical decimal only: "010" or "+1" names no address.
            match p.parse::<u8>() {
                Ok(v) if v.to_string() == *p => o[k] = v,
                _ => return Some(None),
            }
        }
        return Some(Some(Ipv4Addr::from(o).into()));
    }
    if let Some(rest) = strip_zone(&lower, "ip6.arpa") {
        let nibbles: Vec<&str> = rest.split('.').collect();
        if nibbles.len() != 32 {
            return Some(None);
        }
        let mut v: u128 = 0;
        for n in nibbles.iter().rev() {
            let mut c = n.chars();
            match (c.next().and_then(|c| c.to_digit(16)), c.next()) {
                (Some(d), None) => v = (v << 4) | u128::from(d),
                _ => return Some(None),
            }
        }
        return Some(Some(Ipv6Addr::from(v).into()));
    }
    None
}

/// `name` without `.zone` at its end ("" for the zone itself).
fn strip_zone<'a>(name: &'a str, zone: &str) -> Option<&'a str> {
    if name == zone {
        return Some("");
    }
    name.strip_suffix(zone)?.strip_suffix('.')
}

/// Assembles an answer: header, the question echoed, records, then OPT.
struct Builder {
    id: u16,
    /// The query's flags: RD and CD are echoed.
    flags: u16,
    question: Option<Vec<u8>>,
    /// The question's type and class.
    qtc: (u16, u16),
    edns: Option<Edns>,
    aa: bool,
    rcode: u8,
    ext_rcode: u16,
    /// Answer records, each complete (owner is a pointer to the question's name).
    records: Vec<Vec<u8>>,
}

/// Offset of the question's name in every answer: right after the header.
const QNAME_PTR: [u8; 2] = [0xc0, HEADER_LEN as u8];

impl Builder {
    fn new(id: u16, flags: u16, q: Option<&Question>, edns: Option<Edns>) -> Builder {
        Builder {
            id,
            flags,
            question: q.map(Question::wire_name),
            qtc: q.map_or((0, 0), |q| (q.qtype, q.qclass)),
            edns,
            aa: false,
            rcode: rcode::NOERROR,
            ext_rcode: 0,
            records: Vec::new(),
        }
    }

    fn record(&mut self, rt: u16, rdata: &[u8]) {
        let mut r = Vec::with_capacity(12 + rdata.len());
        r.extend_from_slice(&QNAME_PTR);
        r.extend_from_slice(&rt.to_be_bytes());
        r.extend_from_slice(&CLASS_IN.to_be_bytes());
        r.extend_from_slice(&TTL.to_be_bytes());
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend_from_slice(rdata);
        self.records.push(r);
    }

    fn ptr(&mut self, target: &str) {
        let mut rdata = Vec::new();
        for l in target.split('.').filter(|l| !l.is_empty()) {
            let l = &l.as_bytes()[..l.len().min(63)];
            rdata.push(l.len() as u8);
            rdata.extend_from_slice(l);
        }
        rdata.push(0);
        self.record(rtype::PTR, &rdata);
    }

    fn header(&self, tc: bool, qd: u16, an: u16, ar: u16) -> [u8; HEADER_LEN] {
        let opcode = self.flags & 0x7800;
        let rd = self.flags & 0x0100;
        let cd = self.flags & 0x0010;
        // QR, the opcode, AA, TC, RD echoed, RA (plg resolves everything it can: the whole
        // session's namespace), CD echoed, the low four bits of the code.
        let mut f = 0x8000 | opcode | rd | 0x0080 | cd | u16::from(self.rcode & 0xf);
        if self.aa {
            f |= 0x0400;
        }
        if tc {
            f |= 0x0200;
        }
        let mut h = [0u8; HEADER_LEN];
        h[0..2].copy_from_slice(&self.id.to_be_bytes());
        h[2..4].copy_from_slice(&f.to_be_bytes());
        h[4..6].copy_from_slice(&qd.to_be_bytes());
        h[6..8].copy_from_slice(&an.to_be_bytes());
        h[10..12].copy_from_slice(&ar.to_be_bytes());
        h
    }

    fn opt(&self) -> Option<[u8; 11]> {
        let e = self.edns?;
        let mut o = [0u8; 11];
        // Root owner (0), type OPT, class = our payload size, TTL = ext-rcode, version 0,
        // DO echoed; no options.
        o[1..3].copy_from_slice(&rtype::OPT.to_be_bytes());
        o[3..5].copy_from_slice(&EDNS_PAYLOAD.to_be_bytes());
        o[5] = (self.ext_rcode >> 4) as u8;
        o[6] = 0;
        o[7] = if e.dnssec_ok { 0x80 } else { 0 };
        Some(o)
    }

    /// The message, at most `limit` bytes: if the records do not fit, none are sent and TC
    /// is set (RFC 2181 9: a client then retries over TCP).
    fn finish(self, limit: usize) -> Vec<u8> {
        let opt = self.opt();
        let q_len = self.question.as_ref().map_or(0, |q| q.len() + 4);
        let rec_len: usize = self.records.iter().map(Vec::len).sum();
        let opt_len = opt.map_or(0, |o| o.len());
        let fits = HEADER_LEN + q_len + rec_len + opt_len <= limit;
        let (an, records) = if fits {
            (self.records.len() as u16, &self.records[..])
        } else {
            (0, &[][..])
        };
        let qd = u16::from(self.question.is_some());
        let mut out = Vec::with_capacity(HEADER_LEN + q_len + rec_len + opt_len);
        out.extend_from_slice(&self.header(!fits, qd, an, u16::from(opt.is_some())));
        if let Some(q) = &self.question {
            out.extend_from_slice(q);
            out.extend_from_slice(&self.qtc.0.to_be_bytes());
            out.extend_from_slice(&self.qtc.1.to_be_bytes());
        }
        for r in records {
            out.extend_from_slice(r);
        }
        if let Some(o) = opt {
            out.extend_from_slice(&o);
        }
        out
    }
}

/// The UDP port DNS is served on.
pub const PORT: u16 = 53;

/// The answer to a DNS query carried in an IPv4 UDP datagram `pkt` (complete, checksums
/// valid or UDP checksum 0): an IPv4 UDP datagram from the query's destination address and
/// port back to its sender, with both checksums computed, and whether the name was outside
/// the zone ([`Response::outside`]). `None` when there is nothing to answer: not a complete
/// unfragmented IPv4 UDP datagram, a bad checksum (the kernel would have dropped it), or a
/// message [`respond`] ignores. Never panics.
pub fn answer_datagram(pkt: &[u8], zone: &Zone) -> Option<(Vec<u8>, bool)> {
    use super::ipv4::{self, Ipv4Packet};
    use super::udp::{self, UdpPacket};
    let ip = Ipv4Packet::new_checked(pkt)?;
    if ip.protocol() != ipv4::proto::UDP
        || ip.frag_offset() != 0
        || ip.more_frags()
        || !ip.verify_checksum()
    {
        return None;
    }
    let payload = ip.payload();
    let dgram = UdpPacket::new_checked(payload)?;
    if usize::from(dgram.len()) != payload.len() || !udp::verify_checksum(&ip) {
        return None;
    }
    let resp = respond(dgram.payload(), zone, Transport::Udp)?;
    datagram(
        ip.dst_addr(),
        dgram.dst_port(),
        ip.src_addr(),
        dgram.src_port(),
        &resp.bytes,
        ip.ident(),
    )
    .map(|d| (d, resp.outside))
}

/// An IPv4 UDP datagram carrying `payload`, checksums computed (TTL 64, DF). `None` if it
/// would exceed 65535 bytes.
pub fn datagram(
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    payload: &[u8],
    ident: u16,
) -> Option<Vec<u8>> {
    use super::checksum;
    use super::ipv4::{self, Ipv4Repr};
    use super::udp;
    let udp_len = udp::HEADER_LEN + payload.len();
    let total = ipv4::HEADER_LEN + udp_len;
    if total > usize::from(u16::MAX) {
        return None;
    }
    let mut out = vec![0u8; total];
    Ipv4Repr {
        src,
        dst,
        protocol: ipv4::proto::UDP,
        payload_len: udp_len,
        ident,
        ttl: super::tcp::TTL,
    }
    .emit(&mut out);
    let u = &mut out[ipv4::HEADER_LEN..];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    u[8..].copy_from_slice(payload);
    let ph = checksum::pseudo_header(src, dst, ipv4::proto::UDP, udp_len as u16);
    let mut c = !checksum::add(ph, checksum::data(u));
    if c == 0 {
        c = 0xffff;
    }
    u[6..8].copy_from_slice(&c.to_be_bytes());
    Some(out)
}

/// [`answer_datagram`] for IPv6: the answer to a complete IPv6 UDP query datagram (checksum
/// verified, extension headers walked), as an IPv6 datagram from the address it was sent to,
/// and whether the name is outside the session. `None` as for IPv4.
pub fn answer_datagram6(pkt: &[u8], zone: &Zone) -> Option<(Vec<u8>, bool)> {
    use super::ipv6::{self, next_header};
    use super::udp::UdpPacket;
    let s = ipv6::summarize6(pkt)?;
    if s.proto != next_header::UDP || !ipv6::verify_l4_checksum(pkt) {
        return None;
    }
    let l4 = pkt.get(s.l4_offset..s.total_len)?;
    let dgram = UdpPacket::new_checked(l4)?;
    if usize::from(dgram.len()) != l4.len() {
        return None;
    }
    let resp = respond(dgram.payload(), zone, Transport::Udp)?;
    datagram6(s.dst, s.dport, s.src, s.sport, &resp.bytes).map(|d| (d, resp.outside))
}

/// An IPv6 UDP datagram carrying `payload` (hop limit 64, no extension headers), checksum
/// computed (never 0: it is mandatory over IPv6). `None` past 65535 bytes of UDP.
pub fn datagram6(
    src: Ipv6Addr,
    sport: u16,
    dst: Ipv6Addr,
    dport: u16,
    payload: &[u8],
) -> Option<Vec<u8>> {
    use super::checksum;
    use super::ipv6::{self, next_header};
    use super::udp;
    let udp_len = udp::HEADER_LEN + payload.len();
    if udp_len > usize::from(u16::MAX) {
        return None;
    }
    let mut out = vec![0u8; ipv6::HEADER_LEN + udp_len];
    out[0] = 0x60;
    out[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    out[6] = next_header::UDP;
    out[7] = 64;
    out[8..24].copy_from_slice(&src.octets());
    out[24..40].copy_from_slice(&dst.octets());
    let u = &mut out[ipv6::HEADER_LEN..];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    u[8..].copy_from_slice(payload);
    let ph = ipv6::pseudo_header(src, dst, next_header::UDP, udp_len as u32);
    let mut c = !checksum::add(ph, checksum::data(u));
    if c == 0 {
        c = 0xffff;
    }
    u[6..8].copy_from_slice(&c.to_be_bytes());
    Some(out)
}

/// A query in wire form (RD set, no EDNS): for tests and probes.
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for l in name.split('.').filter(|l| !l.is_empty()) {
        let l = &l.as_bytes()[..l.len().min(63)];
        q.push(l.len() as u8);
        q.extend_from_slice(l);
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    q
}

/// The parts of an answer tests and callers look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub id: u16,
    pub rcode: u8,
    pub aa: bool,
    pub tc: bool,
    pub question: Option<Question>,
    /// (type, rdata) of each answer record.
    pub answers: Vec<(u16, Vec<u8>)>,
    pub has_opt: bool,
}

/// Reads a response's header, question and answers; `None` if it does not parse.
pub fn summarize(msg: &[u8]) -> Option<Summary> {
    if msg.len() < HEADER_LEN {
        return None;
    }
    let flags = u16_at(msg, 2)?;
    let qd = u16_at(msg, 4)?;
    let an = u16_at(msg, 6)?;
    let ns = u16_at(msg, 8)?;
    let ar = u16_at(msg, 10)?;
    let mut at = HEADER_LEN;
    let mut question = None;
    for _ in 0..qd {
        let (labels, next) = read_name(msg, at)?;
        question = Some(Question {
            labels,
            qtype: u16_at(msg, next)?,
            qclass: u16_at(msg, next + 2)?,
        });
        at = next + 4;
    }
    let mut answers = Vec::new();
    let mut has_opt = false;
    for k in 0..usize::from(an) + usize::from(ns) + usize::from(ar) {
        let start = at;
        let (rt, _, _, _, next) = read_rr(msg, at)?;
        if k < usize::from(an) {
            let (_, after_name) = read_name(msg, start)?;
            answers.push((rt, msg.get(after_name + 10..next)?.to_vec()));
        }
        has_opt |= rt == rtype::OPT;
        at = next;
    }
    Some(Summary {
        id: u16_at(msg, 0)?,
        rcode: (flags & 0xf) as u8,
        aa: flags & 0x0400 != 0,
        tc: flags & 0x0200 != 0,
        question,
        answers,
        has_opt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> Zone {
        let mut z = Zone::new();
        z.add(
            &["localhost"],
            Some(Ipv4Addr::LOCALHOST),
            Some(Ipv6Addr::LOCALHOST),
        );
        z.add(&["gateway"], Some(Ipv4Addr::new(10, 0, 0, 1)), None);
        z.add(&["p0", "web"], Some(Ipv4Addr::new(10, 0, 0, 2)), None);
        z.add(
            &["p1"],
            Some(Ipv4Addr::new(10, 0, 0, 3)),
            Some("fd00::3".parse().unwrap()),
        );
        z
    }

    fn ask(q: &[u8]) -> Summary {
        let r = respond(q, &zone(), Transport::Udp).expect("an answer");
        summarize(&r.bytes).expect("a parsable answer")
    }

    #[test]
    fn a_for_a_session_name_any_case_and_trailing_dot() {
        for name in ["p0", "P0.", "WeB", "web."] {
            let s = ask(&query(0x1234, name, rtype::A));
            assert_eq!(s.id, 0x1234);
            assert_eq!(s.rcode, rcode::NOERROR);
            assert!(s.aa);
            assert_eq!(s.answers, vec![(rtype::A, vec![10, 0, 0, 2])], "{name}");
            // The question is echoed as sent (case included).
            assert_eq!(s.question.unwrap().name(), name.trim_end_matches('.'));
        }
    }

    #[test]
    fn aaaa_and_nodata() {
        let s = ask(&query(1, "p1", rtype::AAAA));
        let v6: Ipv6Addr = "fd00::3".parse().unwrap();
        assert_eq!(s.answers, vec![(rtype::AAAA, v6.octets().to_vec())]);
        // p0 has no v6 address: NOERROR, no answer, authoritative.
        let s = ask(&query(2, "p0", rtype::AAAA));
        assert_eq!((s.rcode, s.aa, s.answers.len()), (rcode::NOERROR, true, 0));
        // Another type for a known name: NODATA too.
        let s = ask(&query(3, "p0", rtype::TXT));
        assert_eq!((s.rcode, s.answers.len()), (rcode::NOERROR, 0));
        // ANY: both families.
        let s = ask(&query(4, "p1", rtype::ANY));
        assert_eq!(s.answers.len(), 2);
    }

    #[test]
    fn outside_names_are_nxdomain_and_marked() {
        for name in ["example.invalid", "www.debian.org", "p0.example", "", "p9"] {
            let r = respond(&query(7, name, rtype::A), &zone(), Transport::Udp).unwrap();
            assert!(r.outside, "{name}");
            let s = summarize(&r.bytes).unwrap();
            assert_eq!(s.rcode, rcode::NXDOMAIN, "{name}");
            assert!(s.answers.is_empty());
        }
        let r = respond(&query(7, "p0", rtype::A), &zone(), Transport::Udp).unwrap();
        assert!(!r.outside);
    }

    #[test]
    fn ptr_v4_and_v6() {
        let s = ask(&query(5, "2.0.0.10.in-addr.arpa", rtype::PTR));
        assert_eq!(s.answers, vec![(rtype::PTR, b"\x02p0\x00".to_vec())]);
        let s = ask(&query(5, "1.0.0.127.IN-ADDR.ARPA.", rtype::PTR));
        assert_eq!(s.answers, vec![(rtype::PTR, b"\x09localhost\x00".to_vec())]);
        let v6: Ipv6Addr = "fd00::3".parse().unwrap();
        let mut name = String::new();
        for b in v6.octets().iter().rev() {
            name.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
        }
        name.push_str("ip6.arpa");
        let s = ask(&query(6, &name, rtype::PTR));
        assert_eq!(s.answers, vec![(rtype::PTR, b"\x02p1\x00".to_vec())]);
        for bad in [
            "9.0.0.10.in-addr.arpa",
            "0.10.in-addr.arpa",
            "02.0.0.10.in-addr.arpa",
            "in-addr.arpa",
            "x.ip6.arpa",
        ] {
            let s = ask(&query(6, bad, rtype::PTR));
            assert_eq!(s.rcode, rcode::NXDOMAIN, "{bad}");
        }
    }

    #[test]
    fn refused_class_notimp_opcode_formerr_count() {
        let mut q = query(9, "p0", rtype::A);
        let n = q.len();
        q[n - 2..].copy_from_slice(&3u16.to_be_bytes()); // CHAOS
        assert_eq!(ask(&q).rcode, rcode::REFUSED);
        let mut q = query(9, "p0", rtype::A);
        q[2] |= 5 << 3; // UPDATE
        let s = ask(&q);
        assert_eq!((s.id, s.rcode), (9, rcode::NOTIMP));
        let mut q = query(9, "p0", rtype::A);
        q[5] = 2; // two questions
        assert_eq!(ask(&q).rcode, rcode::FORMERR);
        q[5] = 0;
        assert_eq!(ask(&q).rcode, rcode::FORMERR);
    }

    #[test]
    fn responses_and_short_messages_get_nothing() {
        let mut q = query(9, "p0", rtype::A);
        q[2] |= 0x80;
        assert!(respond(&q, &zone(), Transport::Udp).is_none());
        for n in 0..HEADER_LEN {
            assert!(respond(&q[..n], &zone(), Transport::Udp).is_none());
        }
    }

    #[test]
    fn truncated_queries_are_formerr() {
        let q = query(9, "p0.example", rtype::A);
        for n in HEADER_LEN..q.len() {
            let s = ask(&q[..n]);
            assert_eq!((s.id, s.rcode), (9, rcode::FORMERR), "cut at {n}");
        }
    }

    #[test]
    fn compression_loops_and_forward_pointers_are_formerr() {
        // The name is a pointer to itself.
        let mut q = query(1, "", rtype::A);
        q.truncate(HEADER_LEN);
        q.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(ask(&q).rcode, rcode::FORMERR);
        // A pointer forwards, to a label pointing back at it.
        let mut q = query(1, "", rtype::A);
        q.truncate(HEADER_LEN);
        q.extend_from_slice(&[0xc0, 18, 0, 1, 0, 1, 1, b'a', 0xc0, 12]);
        assert_eq!(ask(&q).rcode, rcode::FORMERR);
        // A label past the end; an extended label type.
        let mut q = query(1, "", rtype::A);
        q.truncate(HEADER_LEN);
        q.extend_from_slice(&[63, b'a']);
        assert_eq!(ask(&q).rcode, rcode::FORMERR);
        q.truncate(HEADER_LEN);
        q.extend_from_slice(&[0x41, 0, 0, 1, 0, 1]);
        assert_eq!(ask(&q).rcode, rcode::FORMERR);
    }

    #[test]
    fn a_backward_pointer_in_the_question_is_followed() {
        // "p0" then a pointer back to offset 10, a zero byte (ARCOUNT's high byte): the root.
        let mut q = query(1, "", rtype::A);
        q.truncate(HEADER_LEN);
        q.extend_from_slice(&[2, b'p', b'0', 0xc0, 10, 0, 1, 0, 1]);
        let s = ask(&q);
        assert_eq!(s.answers, vec![(rtype::A, vec![10, 0, 0, 2])]);
    }

    #[test]
    fn names_over_255_bytes_are_formerr() {
        let long = vec!["a".repeat(63); 5].join(".");
        let s = ask(&query(1, &long, rtype::A));
        assert_eq!(s.rcode, rcode::FORMERR);
        let ok = vec!["a".repeat(63); 3].join(".");
        assert_eq!(ask(&query(1, &ok, rtype::A)).rcode, rcode::NXDOMAIN);
    }

    #[test]
    fn huge_counts_are_formerr_not_work() {
        let mut q = query(1, "p0", rtype::A);
        q[6..12].copy_from_slice(&[0xff; 6]);
        assert_eq!(ask(&q).rcode, rcode::FORMERR);
    }

    fn with_opt(mut q: Vec<u8>, payload: u16, version: u8) -> Vec<u8> {
        q[11] = 1;
        q.extend_from_slice(&[0, 0, 41]);
        q.extend_from_slice(&payload.to_be_bytes());
        q.extend_from_slice(&[0, version, 0x80, 0, 0, 0]);
        q
    }

    #[test]
    fn edns_is_answered_and_badvers() {
        let s = ask(&with_opt(query(1, "p0", rtype::A), 4096, 0));
        assert!(s.has_opt);
        assert_eq!(s.answers.len(), 1);
        let r = respond(
            &with_opt(query(1, "p0", rtype::A), 4096, 1),
            &zone(),
            Transport::Udp,
        )
        .unwrap();
        let s = summarize(&r.bytes).unwrap();
        assert!(s.has_opt && s.answers.is_empty());
        // Extended rcode 16: header 0, OPT upper byte 1.
        assert_eq!(s.rcode, 0);
        let opt = &r.bytes[r.bytes.len() - 11..];
        assert_eq!((opt[2], opt[5]), (41, 1));
        // Two OPT records: FORMERR.
        let mut q = with_opt(query(1, "p0", rtype::A), 4096, 0);
        q[11] = 2;
        q.extend_from_slice(&[0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(ask(&q).rcode, rcode::FORMERR);
    }

    #[test]
    fn too_big_for_udp_is_truncated_with_tc() {
        // Forty records do not fit 512 bytes: none are sent, TC is set.
        let mut z = Zone::new();
        let long = vec!["a".repeat(60); 4].join(".");
        z.add(
            &[&long],
            Some(Ipv4Addr::new(1, 2, 3, 4)),
            Some(Ipv6Addr::LOCALHOST),
        );
        let mut b = Builder::new(1, 0x0100, None, None);
        for _ in 0..40 {
            b.record(rtype::A, &[1, 2, 3, 4]);
        }
        let out = b.finish(MAX_UDP_PLAIN);
        let s = summarize(&out).unwrap();
        assert!(s.tc && s.answers.is_empty());
        let r = respond(&query(1, &long, rtype::ANY), &z, Transport::Udp).unwrap();
        assert!(r.bytes.len() <= MAX_UDP_PLAIN);
        assert_eq!(summarize(&r.bytes).unwrap().answers.len(), 2);
        assert_eq!(limit(Transport::Udp, None), 512);
        let e = |payload| {
            Some(Edns {
                payload,
                version: 0,
                dnssec_ok: false,
            })
        };
        assert_eq!(limit(Transport::Udp, e(100)), 512);
        assert_eq!(limit(Transport::Udp, e(4096)), 4096);
        assert_eq!(limit(Transport::Tcp, None), 65535);
    }

    #[test]
    fn a_datagram_is_answered_from_where_it_was_sent() {
        let gw = Ipv4Addr::new(10, 0, 0, 1);
        let me = Ipv4Addr::new(10, 0, 0, 3);
        let q = datagram(me, 40000, gw, PORT, &query(0xbeef, "p0", rtype::A), 7).unwrap();
        let (a, outside) = answer_datagram(&q, &zone()).unwrap();
        assert!(!outside);
        let ip = crate::wire::ipv4::Ipv4Packet::new_checked(&a).unwrap();
        assert!(ip.verify_checksum() && crate::wire::udp::verify_checksum(&ip));
        assert_eq!((ip.src_addr(), ip.dst_addr()), (gw, me));
        let u = crate::wire::udp::UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!((u.src_port(), u.dst_port()), (PORT, 40000));
        let s = summarize(u.payload()).unwrap();
        assert_eq!((s.id, s.answers.len()), (0xbeef, 1));
        // A bad UDP checksum is dropped, as the kernel would.
        let mut bad = q.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(answer_datagram(&bad, &zone()).is_none());
        // Cut anywhere, or not UDP: nothing, never a panic.
        for n in 0..q.len() {
            assert!(answer_datagram(&q[..n], &zone()).is_none());
        }
        let mut tcp = q.clone();
        tcp[9] = 6;
        assert!(answer_datagram(&tcp, &zone()).is_none());
    }

    #[test]
    fn an_ipv6_datagram_is_answered_from_where_it_was_sent() {
        let gw: Ipv6Addr = "fd00::1".parse().unwrap();
        let me: Ipv6Addr = "fd00::3".parse().unwrap();
        let q = datagram6(me, 40000, gw, PORT, &query(0xbeef, "p1", rtype::AAAA)).unwrap();
        assert!(crate::wire::ipv6::verify_l4_checksum(&q));
        let (a, outside) = answer_datagram6(&q, &zone()).unwrap();
        assert!(!outside);
        assert!(crate::wire::ipv6::verify_l4_checksum(&a));
        let s6 = crate::wire::ipv6::summarize6(&a).unwrap();
        assert_eq!((s6.src, s6.dst, s6.sport, s6.dport), (gw, me, PORT, 40000));
        let s = summarize(&a[s6.l4_offset + 8..]).unwrap();
        assert_eq!((s.id, s.answers.len()), (0xbeef, 1));
        // A bad checksum is dropped; cut anywhere, or an IPv4 packet: nothing, never a panic.
        let mut bad = q.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(answer_datagram6(&bad, &zone()).is_none());
        for n in 0..q.len() {
            assert!(answer_datagram6(&q[..n], &zone()).is_none());
        }
        let v4 = datagram(
            Ipv4Addr::new(10, 0, 0, 3),
            1,
            Ipv4Addr::new(10, 0, 0, 1),
            PORT,
            &query(1, "p0", rtype::A),
            0,
        )
        .unwrap();
        assert!(answer_datagram6(&v4, &zone()).is_none());
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn no_panic_on_mutated_or_random_messages() {
        let z = zone();
        let seeds = [
            query(1, "p0", rtype::A),
            with_opt(query(2, "web", rtype::AAAA), 1232, 0),
            query(3, "3.0.0.10.in-addr.arpa", rtype::PTR),
            query(4, "www.debian.org", rtype::A),
        ];
        let mut r = Rng(0x2545_f491_4f6c_dd1d);
        let mut answered = 0;
        for round in 0..30_000 {
            let mut m = if round % 5 == 0 {
                (0..r.below(80)).map(|_| r.next() as u8).collect()
            } else {
                seeds[r.below(seeds.len())].clone()
            };
            for _ in 0..r.below(5) {
                if !m.is_empty() {
                    let i = r.below(m.len());
                    m[i] = r.next() as u8;
                }
            }
            if r.below(3) == 0 {
                m.truncate(r.below(m.len() + 1));
            }
            for t in [Transport::Udp, Transport::Tcp] {
                if let Some(resp) = respond(&m, &z, t) {
                    answered += 1;
                    // Every answer parses, echoes the id and is no larger than allowed.
                    let s = summarize(&resp.bytes).expect("answers parse");
                    assert_eq!(s.id.to_be_bytes(), [m[0], m[1]]);
                    if t == Transport::Udp {
                        assert!(resp.bytes.len() <= 65535);
                    }
                }
            }
        }
        assert!(answered > 10_000, "{answered}");
    }
}
