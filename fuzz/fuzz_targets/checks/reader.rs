// Any bytes given to the capture reader yield records or a FormatError, never a panic, an
// unbounded allocation or an endless loop; and whatever iteration returns, `read_at` at the
// same offset returns again.
//
// Shared by the cargo-fuzz target (fuzz/fuzz_targets/reader.rs) and the stable run in
// tests/fuzz_smoke.rs, which `include!`s this file.

use plg::format::CaptureReader;
use std::io::Cursor;

pub fn check(data: &[u8]) {
    let Ok(mut reader) = CaptureReader::new(Cursor::new(data), "fuzz") else {
        return;
    };
    let mut seen = Vec::new();
    while let Some(result) = reader.next() {
        match result {
            Ok(record) => {
                if seen.len() < 64 {
                    seen.push((reader.position(), record));
                }
            }
            Err(e) => {
                assert!(e.offset <= data.len() as u64, "{e}");
                break;
            }
        }
    }
    for (at, record) in seen {
        assert_eq!(reader.read_at(at).expect("re-read a record"), record);
    }
}
