//! The audit log (SPEC §7): what a record says, how it reaches the disk, and how refusals that reach
//! no decision are counted instead of written one by one.
//!
//! - [`record`]: the versioned record and every event the log carries; pure.
//! - [`writer`]: the file, its single writer thread and group commit.
//! - [`tally`]: refusals before any decision, counted per caller and written once a second.

pub mod record;
pub mod tally;
pub mod writer;

pub use record::{timestamp, CredentialRecord, Event, Via, VERSION};
pub use tally::Tally;
pub use writer::{AuditError, AuditLog};
