//! Partition-table layout: reading raw GPT headers and rewriting them for another disk size.
//!
//! The exact clone keeps the source's partition entry array byte for byte (entry numbers,
//! GUIDs, attributes and names untouched) and only moves the backup structures to the end of
//! the target, so GPT is handled here at the byte level rather than through a library that
//! renumbers entries on write.
//!
//! `migrate` plans a copy onto a differently sized or sectored disk (new offsets and sizes,
//! filesystem grow/shrink decisions) and builds that target's GPT from scratch.

pub mod gpt_raw;
pub mod migrate;

pub use gpt_raw::{check_table, patch_protective_mbr, read_gpt, GptHeader, RawGpt, RelocatedGpt};
pub use migrate::{plan_migration, FsAction, Identities, MigratePlan, MigrateRequest, Policy, Refusal, SourceLayout, SourcePart, TargetGpt, TargetPart};
