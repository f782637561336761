//! Renders plg's man pages and shell completions from `plg::cli::command()`.
//!
//! Everything is rendered in memory first ([`render_all`]), so the same code writes the files
//! (`tools/gen-docs`) and checks that the committed ones are up to date (`--check`, and the test
//! in `tests/stale.rs`). Output is deterministic: no dates, no paths.

use clap_complete::Shell;
use std::path::{Path, PathBuf};

/// The command that regenerates every generated file, for error messages.
pub const REGENERATE: &str = "tools/gen-docs";

/// A generated file: path relative to the repository root, and its content.
pub struct Generated {
    pub path: PathBuf,
    pub content: Vec<u8>,
}

/// The repository root (this crate lives in `tools/gendocs`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// `man/plg.1`, `man/plg-<sub>.1` for each subcommand, and the bash, zsh and fish completions.
pub fn render_all() -> std::io::Result<Vec<Generated>> {
    let mut cmd = plg::cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();

    let mut pages = vec![cmd.clone()];
    pages.extend(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    let source = format!("plg {}", cmd.get_version().unwrap_or_default());
    for page in pages {
        let after_help = page.get_after_help().map(|h| h.to_string());
        // The after-help text is rendered below as proper sections, not clap_mangen's EXTRA.
        let man = clap_mangen::Man::new(page.clone().after_help(None::<&str>))
            .manual("plg manual")
            .source(source.clone());
        let mut content = Vec::new();
        man.render_title(&mut content)?;
        man.render_name_section(&mut content)?;
        man.render_synopsis_section(&mut content)?;
        man.render_description_section(&mut content)?;
        man.render_options_section(&mut content)?;
        if page.has_subcommands() {
            man.render_subcommands_section(&mut content)?;
        }
        if let Some(text) = after_help {
            content.extend_from_slice(after_help_sections(&text).as_bytes());
        }
        man.render_version_section(&mut content)?;
        out.push(Generated {
            path: Path::new("man").join(man.get_filename()),
            content,
        });
    }

    for (shell, file) in [
        (Shell::Bash, "plg.bash"),
        (Shell::Zsh, "_plg"),
        (Shell::Fish, "plg.fish"),
    ] {
        let mut content = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "plg", &mut content);
        out.push(Generated {
            path: Path::new("completions").join(file),
            content,
        });
    }
    Ok(out)
}

/// Roff for a clap after-help text: a paragraph whose first line ends with `:` ("Examples:",
/// "Exit status:") becomes a section of that name with its lines kept as written; any other
/// paragraph becomes a plain paragraph under NOTES.
fn after_help_sections(text: &str) -> String {
    let mut roff = String::new();
    let mut in_notes = false;
    for para in text
        .split("\n\n")
        .map(str::trim_end)
        .filter(|p| !p.trim().is_empty())
    {
        let mut lines = para.lines();
        let first = lines.next().unwrap_or_default();
        match first.strip_suffix(':') {
            Some(heading) if !first.starts_with(' ') => {
                roff.push_str(&format!(".SH \"{}\"\n.nf\n", heading.to_uppercase()));
                for line in lines {
                    roff.push_str(&roff_escape(line));
                    roff.push('\n');
                }
                roff.push_str(".fi\n");
                in_notes = false;
            }
            _ => {
                if !in_notes {
                    roff.push_str(".SH NOTES\n");
                    in_notes = true;
                }
                roff.push_str(".PP\n");
                roff.push_str(&roff_escape(
                    &para.split_whitespace().collect::<Vec<_>>().join(" "),
                ));
                roff.push('\n');
            }
        }
    }
    roff
}

/// Escapes text for roff: backslashes, hyphens (so they stay ASCII), and a leading `.` or `'`.
fn roff_escape(line: &str) -> String {
    let escaped = line.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// Files that differ from what [`render_all`] makes, are missing, or are left over (a man page
/// for a subcommand that no longer exists), relative to `root`.
pub fn stale_files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let generated = render_all()?;
    let mut stale = Vec::new();
    for g in &generated {
        match std::fs::read(root.join(&g.path)) {
            Ok(on_disk) if on_disk == g.content => {}
            _ => stale.push(g.path.clone()),
        }
    }
    for dir in ["man", "completions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries {
            let rel = Path::new(dir).join(entry?.file_name());
            if !generated.iter().any(|g| g.path == rel) {
                stale.push(rel);
            }
        }
    }
    stale.sort();
    Ok(stale)
}

/// Writes every generated file under `root` and removes leftovers; returns what changed.
pub fn write_all(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let stale = stale_files(root)?;
    let generated = render_all()?;
    for path in &stale {
        let full = root.join(path);
        match generated.iter().find(|g| &g.path == path) {
            Some(g) => {
                if let Some(dir) = full.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(&full, &g.content)?;
            }
            None => std::fs::remove_file(&full)?,
        }
    }
    Ok(stale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_help_becomes_sections() {
        let roff = after_help_sections("Examples:\n  plg inspect a-b.traffic\n\nSome note here.\n");
        assert_eq!(
            roff,
            ".SH \"EXAMPLES\"\n.nf\n  plg inspect a\\-b.traffic\n.fi\n.SH NOTES\n.PP\nSome note here.\n"
        );
        assert_eq!(roff_escape(".x 'y' \\"), "\\&.x 'y' \\e");
    }
}
