//! The audit log (SPEC §7): what a record says, how it reaches the disk, how refusals that reach no
//! decision are counted instead of written one by one, and how the log is made tamper-evident,
//! shipped and verified.
//!
//! - [`record`]: the versioned record and every event the log carries; pure.
//! - [`ocsf`]: the same records as OCSF events (`audit.format = "ocsf"`); pure.
//! - [`chain`]: the hash chain over the records (`audit.chain`); pure.
//! - [`writer`]: the file, its single writer thread, group commit, and closing segments.
//! - [`tally`]: refusals before any decision, counted per caller and written once a second.
//! - [`segment`] and [`ship`]: closed segments and their upload to S3 (`[audit.ship]`).
//! - [`verify`]: `audit verify`, over files or shipped segments.

pub mod chain;
pub mod ocsf;
pub mod record;
pub mod segment;
pub mod ship;
pub mod tally;
pub mod verify;
pub mod writer;

pub use record::{timestamp, CredentialRecord, Event, Via, VERSION};
pub use tally::Tally;
pub use writer::{AuditError, AuditLog};
