//! The grantlog event vocabulary: value types (money, ids), the closed,
//! past-tense event enums per aggregate with their wire names and schema
//! versions, upcasters for older payloads, and JSON Schemas.
//!
//! No I/O here: the `store` stores what [`GrantEvent::to_json`] gives and
//! hands back text that [`GrantEvent::decode`] reads.

pub mod bounds;
pub mod codec;
mod envelope;
pub mod grant;
pub mod ids;
pub mod money;
pub mod programme;
pub mod rules;
pub mod stored;
pub mod streams;
pub mod upcast;

pub use codec::DecodeError;
pub use envelope::{Envelope, EventContext};
pub use grant::GrantEvent;
pub use ids::*;
pub use money::{Conversion, Currency, Money, MoneyError};
pub use programme::ProgrammeEvent;
pub use stored::{Stored, StoredError};
