//! Several sections are several sessions (issue 11): two captures concatenated with `cat` are
//! read as two sessions by inspect (per section) and `--check` (clean), exported to streams
//! with the second section's files prefixed `s2-` (`--conn sN:ID` picks one section's
//! connection), and refused with a clear line by the
//! one-session outputs (export --pcap, diff).

mod export_support;

use export_support::*;
use std::fs;

#[test]
fn concatenated_captures_are_two_sessions() {
    let d = scratch("sections");
    let f = write_fixture(&d, true);
    let one = fs::read(&f.path).unwrap();
    let two = d.join("two.traffic");
    fs::write(&two, [one.clone(), one.clone()].concat()).unwrap();
    let t = two.to_str().unwrap();

    let o = plg(&["inspect", "--check", t]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("2 sections"), "{}", stdout(&o));

    let o = plg(&["inspect", t]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("section 1 of 2") && text.contains("section 2 of 2"),
        "{text}"
    );
    assert_eq!(text.matches(": complete").count(), 2, "{text}");

    let o = plg(&["inspect", "--json", t]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["view"], "sections");
    assert_eq!(v["sections"].as_array().unwrap().len(), 2);
    // Shown at the second section's Session block, just after its SHB.
    let at = v["sections"][1]["offset"].as_u64().unwrap() as usize;
    assert!(at > one.len() && at < one.len() + 200, "{at}");

    let streams = d.join("streams");
    let o = plg(&["export", t, "--streams", streams.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let names: Vec<String> = fs::read_dir(&streams)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let first = names.iter().filter(|n| !n.starts_with("s2-")).count();
    let second = names.iter().filter(|n| n.starts_with("s2-")).count();
    assert!(first > 0 && first == second, "{names:?}");
    for n in names.iter().filter(|n| !n.starts_with("s2-")) {
        assert_eq!(
            fs::read(streams.join(n)).unwrap(),
            fs::read(streams.join(format!("s2-{n}"))).unwrap()
        );
    }

    // --conn names a section's connection: a bare id the first section's, sN:ID section N's.
    let conn0: Vec<&String> = names.iter().filter(|n| n.starts_with("0000-")).collect();
    assert!(!conn0.is_empty(), "{names:?}");
    for (sel, prefix) in [("0", ""), ("s1:0", ""), ("s2:0", "s2-")] {
        let dir = d.join(format!("conn-{}", sel.replace(':', "-")));
        let o = plg(&[
            "export",
            t,
            "--conn",
            sel,
            "--streams",
            dir.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{sel}: {}", stderr(&o));
        let mut got: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        got.sort();
        let mut want: Vec<String> = conn0.iter().map(|n| format!("{prefix}{n}")).collect();
        want.sort();
        assert_eq!(got, want, "--conn {sel}");
    }
    let o = plg(&["export", t, "--conn", "s0:1", "--streams", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("'s0:1' is not a connection id"),
        "{}",
        stderr(&o)
    );

    let out = d.join("out.pcap");
    let o = plg(&["export", t, "--pcap", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("second section"), "{}", stderr(&o));
    assert!(!out.exists());

    let o = plg(&["diff", t, f.path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("second section"), "{}", stderr(&o));
    fs::remove_dir_all(&d).unwrap();
}
