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
        content.extend_from_slice(synopsis(&page).as_bytes());
        man.render_description_section(&mut content)?;
        man.render_options_section(&mut content)?;
        if page.has_subcommands() {
            man.render_subcommands_section(&mut content)?;
        }
        if let Some(text) = after_help {
            content.extend_from_slice(after_help_sections(&text).as_bytes());
        }
        content.extend_from_slice(ENVIRONMENT.as_bytes());
        content.extend_from_slice(see_also(&cmd, page.get_name()).as_bytes());
        man.render_version_section(&mut content)?;
        out.push(Generated {
            path: Path::new("man").join(man.get_filename()),
            content,
        });
    }

    // Completions keep `plg help SUBCOMMAND` (the man pages leave it out: it has no page).
    let mut with_help = plg::cli::command();
    with_help.build();
    for (shell, file) in [
        (Shell::Bash, "plg.bash"),
        (Shell::Zsh, "_plg"),
        (Shell::Fish, "plg.fish"),
    ] {
        let mut content = Vec::new();
        clap_complete::generate(shell, &mut with_help.clone(), "plg", &mut content);
        if shell == Shell::Bash {
            content = bash_fixups(&String::from_utf8_lossy(&content)).into_bytes();
        }
        out.push(Generated {
            path: Path::new("completions").join(file),
            content,
        });
    }
    Ok(out)
}

/// The ENVIRONMENT section, the same on every page.
const ENVIRONMENT: &str = r#".SH ENVIRONMENT
.TP
\fBPLG_DEBUG\fR
Set to 1, plg record and plg replay log every packet the relay reads and every rewrite it
applies, to standard error (very verbose).
.TP
\fBNO_COLOR\fR
When set and not empty, plg writes no colour, as \fB\-\-color never\fR does, unless
\fB\-\-color always\fR is given.
.TP
\fBCLICOLOR_FORCE\fR
When set to anything but 0, plg writes colour even when the output is not a terminal (as
\fB\-\-color always\fR does), unless \fB\-\-color never\fR or NO_COLOR says otherwise.
.TP
\fBSSLKEYLOGFILE\fR
plg record and plg replay set it for every process they run, to a key log file of that
process in a private directory of the session, replacing any value inherited: TLS libraries
(OpenSSL, NSS, GnuTLS; curl, Python's ssl, Firefox, Node with \-\-tls\-keylog) log their
session keys there, and plg stores them in the capture as Decryption Secrets Blocks, so
Wireshark decrypts \fBplg export \-\-pcapng\fR output with no configuration.
"#;

/// The SEE ALSO section of `page`: the other pages, and the tools that read plg's files.
fn see_also(top: &clap::Command, page: &str) -> String {
    let mut refs: Vec<String> = Vec::new();
    if page != "plg" {
        refs.push("\\fBplg\\fR(1)".into());
    }
    for sub in top.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() != page {
            refs.push(format!("\\fBplg\\-{}\\fR(1)", sub.get_name()));
        }
    }
    for tool in ["wireshark", "tshark", "tcpdump", "capinfos"] {
        refs.push(format!("\\fB{tool}\\fR(1)"));
    }
    format!(
        ".SH \"SEE ALSO\"\n{}\n.PP\nThe capture format: docs/FORMAT.md in plg's source; JSON \
         outputs: docs/JSON.md.\n",
        refs.join(", ")
    )
}

/// A SYNOPSIS that keeps option values and repetition (`--conn ID...`), which clap_mangen's
/// drops: flags in brackets unless required, a required group of alternatives in braces,
/// positional arguments last.
fn synopsis(page: &clap::Command) -> String {
    use clap::ArgAction;
    let name = match page.get_name() {
        "plg" => "plg".to_string(),
        sub => format!("plg {sub}"),
    };
    let mut words = vec![format!("\\fB{name}\\fR")];
    let required_groups: Vec<&clap::ArgGroup> =
        page.get_groups().filter(|g| g.is_required_set()).collect();
    let in_group = |id: &clap::Id| {
        required_groups
            .iter()
            .any(|g| g.get_args().any(|a| a == id))
    };
    let flag = |arg: &clap::Arg| -> String {
        let mut names = Vec::new();
        if let Some(s) = arg.get_short() {
            names.push(format!("\\fB\\-{s}\\fR"));
        }
        if let Some(l) = arg.get_long() {
            names.push(format!("\\fB\\-\\-{}\\fR", l.replace('-', "\\-")));
        }
        let mut s = names.join("|");
        if arg.get_action().takes_values() {
            let values: Vec<String> = match arg.get_value_names() {
                Some(v) => v.iter().map(|v| v.to_string()).collect(),
                None => vec![arg.get_id().to_string().to_uppercase()],
            };
            for v in values {
                s.push_str(&format!(" \\fI{}\\fR", v.replace('-', "\\-")));
            }
        }
        s
    };
    for arg in page.get_arguments() {
        let id = arg.get_id().as_str();
        if arg.is_positional() || arg.is_hide_set() || id == "help" || id == "version" {
            continue;
        }
        if in_group(arg.get_id()) {
            continue;
        }
        let repeat = if matches!(arg.get_action(), ArgAction::Append | ArgAction::Count) {
            "..."
        } else {
            ""
        };
        if arg.is_required_set() {
            words.push(format!("{}{repeat}", flag(arg)));
        } else {
            words.push(format!("[{}]{repeat}", flag(arg)));
        }
    }
    for g in &required_groups {
        let alts: Vec<String> = g
            .get_args()
            .filter_map(|id| page.get_arguments().find(|a| a.get_id() == id))
            .map(flag)
            .collect();
        words.push(format!("{{{}}}", alts.join(" | ")));
    }
    for arg in page.get_positionals() {
        let v = arg.get_value_names().and_then(|v| v.first()).map_or_else(
            || arg.get_id().to_string().to_uppercase(),
            |v| v.to_string(),
        );
        let many = matches!(arg.get_action(), ArgAction::Append)
            || arg.get_num_args().is_some_and(|n| n.max_values() > 1);
        let dots = if many { "..." } else { "" };
        if arg.is_required_set() {
            words.push(format!("\\fI{v}\\fR{dots}"));
        } else {
            words.push(format!("[\\fI{v}\\fR]{dots}"));
        }
    }
    if page.has_subcommands() {
        words.push("\\fISUBCOMMAND\\fR ...".into());
    }
    format!(".SH SYNOPSIS\n{}\n", words.join(" "))
}

/// clap_complete's bash script, made to complete what plg takes: after a subcommand, a word
/// not starting with `-` completes as a file name (captures, output files, rules files), not
/// as the option list; and the `plg-<subcommand>` links complete like `plg <subcommand>`.
fn bash_fixups(script: &str) -> String {
    let mut out = String::new();
    let mut in_sub = false;
    for line in script.lines() {
        let trimmed = line.trim();
        if line.starts_with("        plg__subcmd__") && trimmed.ends_with(')') {
            in_sub = !trimmed.starts_with("plg__subcmd__help");
        } else if line.starts_with("        plg)") {
            in_sub = false;
        }
        if in_sub && trimmed.starts_with("if [[ ${cur} == -* || ${COMP_CWORD} -eq") {
            out.push_str("            if [[ ${cur} == -* ]] ; then\n");
            continue;
        }
        if in_sub && line == "            COMPREPLY=( $(compgen -W \"${opts}\" -- \"${cur}\") )" {
            out.push_str("            compopt -o filenames 2>/dev/null\n");
            out.push_str("            COMPREPLY=( $(compgen -f -- \"${cur}\") )\n");
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    let subs = plg::cli::SUBCOMMANDS;
    out.push_str(
        "\n# plg-<subcommand> links (tools/install makes them) complete as plg <subcommand>.\n\
         _plg_link() {\n\
         \x20   local sub=${COMP_WORDS[0]##*/}\n\
         \x20   COMP_WORDS=(plg \"${sub#plg-}\" \"${COMP_WORDS[@]:1}\")\n\
         \x20   COMP_CWORD=$((COMP_CWORD + 1))\n\
         \x20   local prev=plg\n\
         \x20   (( COMP_CWORD > 1 )) && prev=${COMP_WORDS[COMP_CWORD - 1]}\n\
         \x20   _plg plg \"${COMP_WORDS[COMP_CWORD]}\" \"$prev\"\n\
         }\n",
    );
    let links: Vec<String> = subs.iter().map(|s| format!("plg-{s}")).collect();
    out.push_str(&format!(
        "complete -F _plg_link -o bashdefault -o default {}\n",
        links.join(" ")
    ));
    out
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
        if let Some(rest) = first.strip_prefix("Exit status: ") {
            // "Exit status: 0 fine, 1 ..." on one paragraph: a section of its own.
            roff.push_str(".SH \"EXIT STATUS\"\n.PP\n");
            let mut first_word = rest.chars();
            let rest = match first_word.next() {
                Some(c) => format!("{}{}", c.to_uppercase(), first_word.as_str()),
                None => String::new(),
            };
            let text: Vec<&str> = std::iter::once(rest.as_str()).chain(lines).collect();
            roff.push_str(&roff_escape(
                &text
                    .join(" ")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            ));
            roff.push('\n');
            in_notes = false;
            continue;
        }
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
