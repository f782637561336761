//! Any bytes given to the capture reader yield records or a FormatError, never a panic, an
//! unbounded allocation or an endless loop; and whatever iteration returns, `read_at` at the
//! same offset returns again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plg::format::CaptureReader;
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
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
});
