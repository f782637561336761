//! `plg-gendocs [--check] [--root DIR]`: writes (or checks) man/ and completions/ from plg's
//! clap definitions. Run through `tools/gen-docs`.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: plg-gendocs [--check] [--root DIR]
Writes man/plg.1, man/plg-<subcommand>.1 and completions/{plg.bash,_plg,plg.fish} from plg's
command line definition. With --check, writes nothing and exits 1 listing the stale files.";

fn main() -> ExitCode {
    let mut check = false;
    let mut root: Option<PathBuf> = None;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--check") => check = true,
            Some("--root") => match args.next() {
                Some(dir) => root = Some(dir.into()),
                None => return usage("--root needs a directory"),
            },
            Some("-h" | "--help") => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => return usage(&format!("unexpected argument {arg:?}")),
        }
    }
    let root = root.unwrap_or_else(plg_gendocs::repo_root);

    if check {
        match plg_gendocs::stale_files(&root) {
            Ok(stale) if stale.is_empty() => ExitCode::SUCCESS,
            Ok(stale) => {
                for path in &stale {
                    eprintln!("stale: {}", path.display());
                }
                eprintln!(
                    "plg-gendocs: {} generated file(s) out of date; run {} and commit the result",
                    stale.len(),
                    plg_gendocs::REGENERATE
                );
                ExitCode::from(1)
            }
            Err(e) => fail(&root, e),
        }
    } else {
        match plg_gendocs::write_all(&root) {
            Ok(changed) => {
                for path in &changed {
                    eprintln!("updated: {}", path.display());
                }
                if changed.is_empty() {
                    eprintln!("plg-gendocs: man pages and completions already up to date");
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(&root, e),
        }
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!("plg-gendocs: {why}\n{USAGE}");
    ExitCode::from(2)
}

fn fail(root: &std::path::Path, e: std::io::Error) -> ExitCode {
    eprintln!("plg-gendocs: cannot update {}: {e}", root.display());
    ExitCode::from(2)
}
