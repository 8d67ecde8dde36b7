//! The clone engine: plans and the bounded copy pipeline that carries them out.

pub mod exact;
pub mod pipeline;

pub use exact::{execute_exact, plan_exact, CloneReport, ExactPlan};
