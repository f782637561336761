//! `plg wireshark`: the Wireshark dissector for plg's records (`wireshark/plg.lua`, embedded in
//! the binary), printed or installed into Wireshark's personal Lua plugin folder.
//!
//! Glue only: the dissector itself is Lua, documented in its header; this file knows where
//! Wireshark looks for a user's Lua plugins.

use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// The dissector, as shipped.
pub const DISSECTOR: &str = include_str!("../../wireshark/plg.lua");

/// Its file name in the plugin folder.
const FILE_NAME: &str = "plg.lua";

#[derive(Debug, clap::Args)]
#[command(
    about = "Print or install the Wireshark dissector for plg captures",
    long_about = "Print or install the Wireshark dissector for plg captures.\n\n\
        Wireshark and tshark open a .traffic file as pcapng, but show plg's records (session, \
        processes, connections, data) as opaque custom blocks. This Lua dissector names them: \
        protocol \"plg\", an Info line per record, every field by name (display filters such as \
        plg.conn == 3 or plg.dir == \"c2s\"), and each Data record's bytes decoded by the \
        dissector of the server's port (HTTP, RESP, PostgreSQL, ...).",
    after_help = "Examples:\n  \
        # Install it for the current user, then open a capture in Wireshark\n  \
        plg wireshark --install\n  \
        # Use it for one tshark run without installing\n  \
        plg wireshark --print > plg.lua\n  \
        tshark -X lua_script:plg.lua -r web.traffic\n\n\
        Exit status: 0 done, 2 an error."
)]
#[command(group = clap::ArgGroup::new("action").required(true).multiple(false))]
pub struct Args {
    /// Copy the dissector into Wireshark's personal Lua plugin folder (replacing an older copy),
    /// and print where it went.
    #[arg(long, group = "action")]
    pub install: bool,

    /// Print where --install puts the dissector.
    #[arg(long, group = "action")]
    pub print_path: bool,

    /// Print the dissector (Lua) to standard output.
    #[arg(long, group = "action")]
    pub print: bool,

    /// The plugin folder to use instead of Wireshark's personal Lua plugin folder
    /// ($HOME/.local/lib/wireshark/plugins).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.print {
        std::io::stdout()
            .write_all(DISSECTOR.as_bytes())
            .context("failed to write the dissector to standard output")?;
        return Ok(ExitCode::SUCCESS);
    }
    let dir = match args.dir {
        Some(d) => d,
        None => personal_plugin_dir()?,
    };
    let path = dir.join(FILE_NAME);
    if args.install {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        // Written beside, then renamed: Wireshark starting meanwhile never loads half a file.
        let tmp = dir.join(format!(".{FILE_NAME}.tmp"));
        std::fs::write(&tmp, DISSECTOR)
            .with_context(|| format!("failed to write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("failed to move the dissector to {}", path.display()))?;
    }
    writeln!(std::io::stdout(), "{}", path.display())
        .context("failed to write to standard output")?;
    Ok(ExitCode::SUCCESS)
}

/// Wireshark's personal Lua plugin folder (on Linux, what Help > About > Folders calls
/// "Personal Lua Plugins"): `$HOME/.local/lib/wireshark/plugins`.
fn personal_plugin_dir() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            crate::error::UsageError(
                "HOME is not set: give the plugin folder with --dir".to_string(),
            )
        })?;
    Ok(PathBuf::from(home).join(".local/lib/wireshark/plugins"))
}
