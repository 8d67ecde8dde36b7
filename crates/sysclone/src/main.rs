//! sysclone: one binary, two lives. As PID 1 (or `/init`) it is the rescue system's init;
//! from a shell it is the CLI.

mod boot_cmd;
mod cli;
mod exit;
mod gen_docs;
mod image;
mod json;
mod offline;
mod saved_image;

use clap::Parser;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let argv0 = args.first().map(|a| a.rsplit('/').next().unwrap_or(a).to_string()).unwrap_or_default();
    if argv0 == "modprobe" {
        std::process::exit(sysclone_init::pid1::modprobe_main(&args));
    }
    if std::process::id() == 1 {
        sysclone_init::pid1::main();
    }
    let cli = cli::Cli::parse();
    if let Err(e) = cli::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(exit::code(&e));
    }
}
