//! The programme stream's events (`programme-<id>`): a portfolio of grants, no money.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::ProgrammeId;

/// A programme was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgrammeCreated {
    /// The programme.
    pub programme_id: ProgrammeId,
    /// Its name.
    pub name: String,
}

crate::event_enum! {
    /// Everything that happens to a programme.
    ProgrammeEvent {
        ProgrammeCreated = "ProgrammeCreated" v 1,
    }
}
