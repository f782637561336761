//! Shared by the `tests/os_*.rs` suites: the root gate. These tests need root and
//! /dev/net/tun (and sometimes a program); without them they fail loudly, unless
//! PLG_SKIP_ROOT_TESTS=1 asks for a loud skip.

#![allow(dead_code)]

pub fn root_available(test: &str) -> bool {
    root_available_with(test, &[])
}

/// As `root_available`, also requiring the programs `bins` on the PATH.
pub fn root_available_with(test: &str, bins: &[&str]) -> bool {
    let missing = bins.iter().find(|b| !on_path(b));
    let problem = if !plg::os::is_root() {
        Some("not running as root".to_string())
    } else if !std::path::Path::new("/dev/net/tun").exists() {
        Some("/dev/net/tun does not exist".to_string())
    } else {
        missing.map(|b| format!("{b} is not installed"))
    };
    match problem {
        None => true,
        Some(p) if std::env::var_os("PLG_SKIP_ROOT_TESTS").is_some_and(|v| v == "1") => {
            eprintln!("SKIPPED {test}: {p} (PLG_SKIP_ROOT_TESTS=1)");
            false
        }
        Some(p) => panic!(
            "{test} needs root and /dev/net/tun: {p}. Run as root, or set PLG_SKIP_ROOT_TESTS=1 \
             to skip"
        ),
    }
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}
