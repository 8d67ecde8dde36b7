//! The clone engine: plans (exact, smart), the bounded copy pipeline with bad-sector
//! handling, the ddrescue-format rescue map, and read-back verification.

pub mod aligned;
pub mod exec;
pub mod map;
pub mod pipeline;
pub mod plan;

pub use exec::{execute, execute_many, peak_rss, CloneReport, ExecOptions};
pub use map::{RescueMap, Status};
pub use pipeline::{reopen_direct, CopyOptions, CopyStats};
pub use plan::{plan_exact, plan_smart, ClonePlan, Mode, PartitionUse, Region};
