//! Any bytes given to the capture reader yield records or a FormatError, never a panic, an
//! unbounded allocation or an endless loop; and whatever iteration returns, `read_at` at the
//! same offset returns again.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "checks/reader.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::check(data));
