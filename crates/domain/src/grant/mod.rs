//! The grant aggregate: commands, state, `decide` and `evolve`.

pub mod command;
pub mod decide;
pub mod invoice;
pub mod state;

#[cfg(test)]
mod given_when_then;

pub use command::{AwardGrant, Delta, GrantCommand};
pub use decide::{GRANT_WORKSTREAM, decide};
pub use state::GrantState;
