//! The rescue system's init (PID 1), the job runner, and the clone flow shared with the CLI.

pub mod boot;
pub mod bootcheck;
pub mod cmdline;
pub mod console;
pub mod customize;
pub mod imaging;
pub mod job;
pub mod kmod;
pub mod migrate;
pub mod offline;
pub mod pid1;
pub mod restore;
pub mod run;
pub mod state;
pub mod supervise;
pub mod ui;
