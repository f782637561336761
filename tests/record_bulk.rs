//! A 200 MB transfer between two processes through the relay: the receiver's hash, the
//! sender's hash and the hash of the stream in the capture must all be the file's. The capture
//! is streamed block by block, never loaded whole. Needs root and /dev/net/tun.

mod common;

use common::{sh_quote, sha256_file, stream_hashes, Plg, TempDir};
use plg::format::Direction;
use std::io::Write;
use std::path::Path;

const SIZE: u64 = 200 << 20;

/// SIZE bytes that do not compress or repeat, written in 1 MiB chunks.
fn write_source(path: &Path) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..SIZE >> 20 {
        for b in chunk.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&chunk).unwrap();
    }
    f.flush().unwrap();
}

#[test]
fn a_200_mb_transfer_arrives_whole_and_the_capture_holds_every_byte() {
    let dir = TempDir::new("bulk");
    let src = dir.path().join("src");
    write_source(&src);
    let want = sha256_file(&src);
    let cap = dir.join("bulk.traffic");
    let (src, recv) = (sh_quote(&dir.join("src")), sh_quote(&dir.join("recv")));
    let run = Plg::record(&[
        "-q",
        "-f",
        &cap,
        "--ready",
        "p0:9000",
        "--main",
        "p0",
        "--main",
        "p1",
        &format!("socat -u TCP-LISTEN:9000,reuseaddr CREATE:{recv} && sha256sum < {recv}"),
        &format!("socat -u OPEN:{src} TCP:p0:9000 && sha256sum < {src}"),
    ])
    .timeout(120)
    .run();
    run.assert_code(0);
    let line = format!("{want}  -");
    assert_eq!(
        run.lines_of("p0"),
        vec![line.clone()],
        "receiver; {}",
        run.dump()
    );
    assert_eq!(run.lines_of("p1"), vec![line], "sender; {}", run.dump());

    let (streams, summary) = stream_hashes(Path::new(&cap));
    assert_eq!(summary.connections, 1);
    assert_eq!(summary.bytes_c2s, SIZE);
    assert_eq!(summary.bytes_s2c, 0);
    let (len, hash) = &streams[&(0, Direction::ClientToServer)];
    assert_eq!(*len, SIZE);
    assert_eq!(*hash, want, "the capture's stream differs from the file");
    assert_eq!(streams.len(), 1, "bytes from the receiver: {streams:?}");
}
