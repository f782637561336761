//! Just enough TLS to pair connections with their keys: the client random of a ClientHello,
//! and the client randoms an NSS key log (`SSLKEYLOGFILE`) names.
//!
//! Pure functions over bytes; they never panic. A key log line is `LABEL <client random hex>
//! <secret hex>` (NSS format): `CLIENT_RANDOM` for TLS 1.2, `CLIENT_HANDSHAKE_TRAFFIC_SECRET`,
//! `SERVER_HANDSHAKE_TRAFFIC_SECRET`, `CLIENT_TRAFFIC_SECRET_0`, ... for TLS 1.3; `#` starts a
//! comment.

/// The 32-byte client random that names a TLS session in a key log.
pub type ClientRandom = [u8; 32];

/// The client random of the ClientHello at the start of `stream` (the first bytes a client
/// sent), or None when they are not a TLS handshake record holding a ClientHello.
pub fn client_random(stream: &[u8]) -> Option<ClientRandom> {
    // Record header: type 22 (handshake), version 3.x, length; then the handshake header:
    // type 1 (ClientHello), 3-byte length; then client version (2 bytes) and the random.
    if stream.len() < 5 + 4 + 2 + 32 {
        return None;
    }
    if stream[0] != 22 || stream[1] != 3 || stream[5] != 1 {
        return None;
    }
    stream[11..43].try_into().ok()
}

/// Whether `line` (without its newline) is a key log line worth keeping: a known shape,
/// `LABEL HEX64 HEX`, where HEX64 is a client random.
pub fn keylog_line_random(line: &[u8]) -> Option<ClientRandom> {
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split(' ');
    let label = parts.next()?;
    let random = parts.next()?;
    let secret = parts.next()?;
    if parts.next().is_some()
        || label.is_empty()
        || !label
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        || random.len() != 64
        || secret.is_empty()
        || secret.len() % 2 != 0
        || !secret.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in random.as_bytes().chunks(2).enumerate() {
        let hex = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(hex, 16).ok()?;
    }
    Some(out)
}

/// The client randoms of every well-formed line of a key log.
pub fn keylog_randoms(log: &[u8]) -> impl Iterator<Item = ClientRandom> + '_ {
    log.split(|b| *b == b'\n')
        .filter_map(|l| keylog_line_random(l.strip_suffix(b"\r").unwrap_or(l)))
}

#[cfg(test)]
mod test {
    use super::*;

    fn hello(random: [u8; 32]) -> Vec<u8> {
        let mut v = vec![22, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3];
        v.extend_from_slice(&random);
        v.extend_from_slice(&[0; 20]);
        v
    }

    #[test]
    fn finds_the_client_random() {
        let r = [7u8; 32];
        assert_eq!(client_random(&hello(r)), Some(r));
        assert_eq!(
            client_random(b"GET / HTTP/1.1\r\n\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
            None
        );
        assert_eq!(client_random(&hello(r)[..40]), None);
        let mut server_hello = hello(r);
        server_hello[5] = 2;
        assert_eq!(client_random(&server_hello), None);
    }

    #[test]
    fn reads_key_log_lines() {
        let random = "ab".repeat(32);
        let line = format!("CLIENT_RANDOM {random} {}", "cd".repeat(48));
        assert_eq!(keylog_line_random(line.as_bytes()), Some([0xab; 32]));
        let log = format!("# comment\n{line}\r\nCLIENT_TRAFFIC_SECRET_0 {random} 00ff\nbad line\n");
        assert_eq!(keylog_randoms(log.as_bytes()).count(), 2);
        for bad in [
            format!("CLIENT_RANDOM {random}"),
            format!("CLIENT_RANDOM {} 00", "ab".repeat(31)),
            format!("client_random {random} 00"),
            format!("CLIENT_RANDOM {random} 0"),
            format!("CLIENT_RANDOM {random} 00 extra"),
            format!("CLIENT_RANDOM {}é 00", "ab".repeat(31)),
        ] {
            assert_eq!(keylog_line_random(bad.as_bytes()), None, "{bad}");
        }
    }
}
