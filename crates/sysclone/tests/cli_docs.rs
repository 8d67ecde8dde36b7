//! The man pages and shell completions are generated from the CLI (`sysclone gen-docs`) and
//! committed (docs/man/, completions/): these tests fail when they drift, when a `--help`
//! line is wider than 80 columns, when a page does not render and when bash cannot load the
//! completion. No root needed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const REGENERATE: &str = "scripts/gen-docs";

fn top() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn sysclone(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sysclone")).args(args).env_remove("COLUMNS").output().unwrap()
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}; regenerate with {REGENERATE}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect()
}

fn generated() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let (man, comp) = (t.path().join("man"), t.path().join("completions"));
    let out = sysclone(&["gen-docs", "--man", man.to_str().unwrap(), "--completions", comp.to_str().unwrap()]);
    assert!(out.status.success(), "gen-docs: {}", String::from_utf8_lossy(&out.stderr));
    (t, man, comp)
}

#[test]
fn committed_man_pages_and_completions_match_the_cli() {
    let (_t, man, comp) = generated();
    let mut drift = Vec::new();
    for (new, committed) in [(man, top().join("docs/man")), (comp, top().join("completions"))] {
        let (new, old) = (files(&new), files(&committed));
        for (name, bytes) in &new {
            match old.get(name) {
                None => drift.push(format!("missing: {}/{name}", committed.display())),
                Some(b) if b != bytes => drift.push(format!("differs from the CLI: {}/{name}", committed.display())),
                Some(_) => {}
            }
        }
        for name in old.keys().filter(|n| !new.contains_key(*n)) {
            drift.push(format!("no longer generated: {}/{name}", committed.display()));
        }
    }
    assert!(drift.is_empty(), "man pages or completions drifted from the CLI; regenerate them with `{REGENERATE}` and commit:\n  {}", drift.join("\n  "));
}

/// Every (sub)command, found by walking the "Commands:" sections of `--help`.
fn commands() -> Vec<Vec<String>> {
    let mut all = Vec::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(cmd) = todo.pop() {
        let mut args: Vec<&str> = cmd.iter().map(|s| s.as_str()).collect();
        args.push("--help");
        let help = String::from_utf8(sysclone(&args).stdout).unwrap();
        let mut in_commands = false;
        for line in help.lines() {
            if line == "Commands:" {
                in_commands = true;
            } else if in_commands && line.starts_with("  ") && !line.starts_with("   ") {
                let name = line.split_whitespace().next().unwrap();
                if name != "help" {
                    todo.push(cmd.iter().cloned().chain([name.to_string()]).collect());
                }
            } else if in_commands && !line.starts_with(' ') {
                in_commands = false;
            }
        }
        all.push(cmd);
    }
    all.sort();
    assert!(all.len() > 10, "too few commands: {all:?}");
    all
}

#[test]
fn help_lines_fit_80_columns() {
    let mut wide = Vec::new();
    for cmd in commands() {
        for flag in ["--help", "-h"] {
            let mut args: Vec<&str> = cmd.iter().map(|s| s.as_str()).collect();
            args.push(flag);
            let out = sysclone(&args);
            assert!(out.status.success(), "sysclone {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
            for line in String::from_utf8(out.stdout).unwrap().lines() {
                if line.chars().count() > 80 {
                    wide.push(format!("sysclone {}: {line}", args.join(" ")));
                }
            }
        }
    }
    assert!(wide.is_empty(), "--help lines wider than 80 columns:\n{}", wide.join("\n"));
}

#[test]
fn man_pages_render() {
    if Command::new("man").arg("--version").output().is_err() {
        panic!("man is not installed (Debian: apt-get install man-db groff-base; scripts/test does)");
    }
    for name in files(&top().join("docs/man")).keys() {
        let page = top().join("docs/man").join(name);
        let out = Command::new("man").args(["--warnings", "-l"]).arg(&page).env("MANWIDTH", "80").env_remove("MAN_KEEP_FORMATTING").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && err.trim().is_empty(), "man -l {name}: {err}");
        assert!(text.contains("NAME") && text.contains("SYNOPSIS"), "man -l {name}:\n{text}");
    }
}

#[test]
fn bash_completion_loads_and_completes_subcommands() {
    let script = top().join("completions/sysclone.bash");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p sysclone && COMP_WORDS=(sysclone im) COMP_CWORD=1 && _sysclone sysclone im sysclone && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bash: {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("complete") && text.lines().any(|l| l == "image"), "{text}");
}

#[test]
fn usage_errors_exit_2_and_help_lists_exit_codes() {
    assert_eq!(sysclone(&["--no-such-option"]).status.code(), Some(2));
    assert_eq!(sysclone(&["clone"]).status.code(), Some(2));
    let help = String::from_utf8(sysclone(&["--help"]).stdout).unwrap();
    assert!(help.contains("Exit status:") && help.contains("3  refused by the write guard"), "{help}");
    // The hidden generator is not offered.
    assert!(!help.contains("gen-docs"), "{help}");
}

/// Colour comes only from clap (help, usage errors) and only on a terminal; `NO_COLOR` turns
/// it off. `script` (util-linux) gives the command a terminal.
#[test]
fn no_color_is_honoured_on_a_terminal() {
    let on_tty = |env: &str| {
        let cmd = format!("env {env} {} --no-such-option", env!("CARGO_BIN_EXE_sysclone"));
        let out = Command::new("script").args(["-qec", &cmd, "/dev/null"]).output().expect("script (util-linux)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(on_tty("TERM=xterm").contains('\x1b'), "no colour on a terminal at all: the test proves nothing");
    let plain = on_tty("TERM=xterm NO_COLOR=1");
    assert!(plain.contains("no-such-option") && !plain.contains('\x1b'), "{plain:?}");
}
