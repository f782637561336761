//! The committed man pages and completions match the clap definitions.

#[test]
fn committed_man_pages_and_completions_are_up_to_date() {
    let root = plg_gendocs::repo_root();
    let stale = plg_gendocs::stale_files(&root).expect("read man/ and completions/");
    assert!(
        stale.is_empty(),
        "generated files are stale: {}\nthe command line changed; run `{}` and commit man/ and completions/",
        stale
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        plg_gendocs::REGENERATE
    );
}

#[test]
fn every_subcommand_has_a_man_page() {
    let files = plg_gendocs::render_all().unwrap();
    for sub in plg::cli::SUBCOMMANDS {
        let want = format!("man/plg-{sub}.1");
        assert!(
            files.iter().any(|g| g.path.to_str() == Some(want.as_str())),
            "no {want}"
        );
    }
}
