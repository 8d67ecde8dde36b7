//! `sysclone gen-docs` (hidden): the man pages and shell completions, generated from the clap
//! definitions, so the CLI is their one source. `scripts/gen-docs` writes the committed copies
//! (docs/man/, completions/); `crates/sysclone/tests/cli_docs.rs` fails when they drift.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

/// Completion files, as clap_complete names them.
pub const COMPLETIONS: [(Shell, &str); 3] = [(Shell::Bash, "sysclone.bash"), (Shell::Zsh, "_sysclone"), (Shell::Fish, "sysclone.fish")];

/// Write `sysclone.1`, `sysclone-SUB.1`, … into `man_dir` and the completions into
/// `completions_dir`. Earlier generated files there are removed first, so a subcommand that
/// went away leaves no page behind.
pub fn generate(man_dir: &Path, completions_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(man_dir).with_context(|| format!("creating {}", man_dir.display()))?;
    std::fs::create_dir_all(completions_dir).with_context(|| format!("creating {}", completions_dir.display()))?;
    for e in std::fs::read_dir(man_dir)? {
        let p = e?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with("sysclone") && name.ends_with(".1") {
            std::fs::remove_file(&p)?;
        }
    }
    clap_mangen::generate_to(crate::cli::Cli::command(), man_dir).with_context(|| format!("writing man pages to {}", man_dir.display()))?;
    std::fs::write(man_dir.join("sysclone.1"), root_page()?)?;
    for (shell, name) in COMPLETIONS {
        let mut cmd = crate::cli::Cli::command();
        let written = clap_complete::generate_to(shell, &mut cmd, "sysclone", completions_dir)?;
        debug_assert!(written.ends_with(name));
    }
    Ok(())
}

/// `sysclone.1`: clap_mangen's sections, then EXIT STATUS (instead of the `--help` epilogue,
/// which it would print as "EXTRA") and SEE ALSO.
fn root_page() -> Result<Vec<u8>> {
    let man = clap_mangen::Man::new(crate::cli::Cli::command().disable_help_subcommand(true));
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;
    page.extend_from_slice(b".SH \"EXIT STATUS\"\n");
    for line in crate::exit::TABLE.lines().skip(1) {
        let (code, text) = line.trim().split_once("  ").unwrap_or(("", line));
        page.extend_from_slice(format!(".TP\n\\fB{code}\\fR\n{}\n", roff_text(text.trim())).as_bytes());
    }
    page.extend_from_slice(b".SH \"SEE ALSO\"\n");
    page.extend_from_slice(b"Documentation: docs/ in the source (getting-started.md, commands/, json.md, exit-codes.md, troubleshooting.md); installed by the Debian package under /usr/share/doc/sysclone/.\n");
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// Text safe on a roff line: backslashes doubled, a leading dot or quote escaped, dashes
/// kept as hyphen-minus.
fn roff_text(t: &str) -> String {
    let t = t.replace('\\', "\\\\").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}
