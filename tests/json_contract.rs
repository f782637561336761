//! JSON outputs match docs/JSON.md (issue 11): the summary's `problems` is the count `--check`
//! reports, and `error` is `{"offset", "message"}` in both inspect and diff.

mod export_support;

use export_support::*;
use std::fs;

/// The JSON plg printed (a damaged capture still gets its document, then exit 2).
fn json(args: &[&str]) -> serde_json::Value {
    let o = plg(args);
    assert!(o.status.code().is_some(), "{args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

#[test]
fn summary_problems_count_what_check_reports() {
    let d = scratch("json-problems");
    for complete in [true, false] {
        let f = write_fixture(&d, complete);
        let p = f.path.to_str().unwrap();
        let summary = json(&["inspect", "--json", p]);
        let check = json(&["inspect", "--check", "--json", p]);
        assert_eq!(
            summary["problems"], check["problem_count"],
            "complete: {complete}"
        );
        assert_eq!(summary["problems"], u64::from(!complete));
        fs::remove_file(&f.path).unwrap();
    }
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn error_is_an_object_in_inspect_and_diff() {
    let d = scratch("json-error");
    let f = write_fixture(&d, true);
    let mut bytes = fs::read(&f.path).unwrap();
    bytes.truncate(bytes.len() - 10);
    let cut = d.join("cut.traffic");
    fs::write(&cut, &bytes).unwrap();
    let (p, c) = (f.path.to_str().unwrap(), cut.to_str().unwrap());
    let inspect = json(&["inspect", "--json", c]);
    let diff = json(&["diff", "--json", p, c]);
    for e in [&inspect["error"], &diff["b"]["error"]] {
        assert!(e["offset"].is_u64(), "{e}");
        assert!(e["message"].is_string(), "{e}");
    }
    assert_eq!(inspect["error"]["offset"], diff["b"]["error"]["offset"]);
    assert!(diff["a"]["error"].is_null());
    fs::remove_dir_all(&d).unwrap();
}
