//! Kernel-verified caller identity: which uid owns the other end of a connection ([`peer`]), and
//! which user and OS groups that is ([`directory`]).

pub mod directory;
pub mod peer;

pub use directory::{lookup_name, lookup_uid, Directory, Identity};
pub use peer::{connection_owner, peer_uid, redirected_connection_owner};
