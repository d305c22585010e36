//! Identifiers chosen by clients: 1 to 64 characters of `A-Za-z0-9._-`,
//! other than `.` and `..` (which no URL can address: clients and proxies
//! resolve them as path segments). Each kind of id is its own type, so a
//! milestone id cannot be passed where a budget line is expected.

use std::cell::Cell;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest id, in characters.
pub const ID_CHARS_MAX: usize = 64;

/// The pattern of an id (besides it, `.` and `..` are refused).
pub const ID_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";

/// Why a text is not an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {text:?} must be 1 to 64 characters of A-Z a-z 0-9 . _ -, and not . or ..")]
pub struct IdError {
    /// Which kind of id.
    pub kind: &'static str,
    /// The refused text.
    pub text: String,
}

thread_local! {
    static READING_STORED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` reading stored data: ids that were accepted before `.` and
/// `..` were refused still read, so an older log always decodes.
pub fn reading_stored<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            READING_STORED.set(self.0);
        }
    }
    let _restore = Restore(READING_STORED.replace(true));
    f()
}

fn valid(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= ID_CHARS_MAX
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && (!matches!(text, "." | "..") || READING_STORED.get())
}

macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident = $kind:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Parses an id, refusing anything but 1 to 64 of `A-Za-z0-9._-`,
            /// and `.` and `..` (unless [`reading_stored`]).
            pub fn parse(text: impl Into<String>) -> Result<Self, IdError> {
                let text = text.into();
                if valid(&text) { Ok(Self(text)) } else { Err(IdError { kind: $kind, text }) }
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Self::parse(String::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "pattern": ID_PATTERN, "not": { "enum": [".", ".."] } })
            }
        }
    )*};
}

ids! {
    /// A grant.
    GrantId = "grant id";
    /// A programme (portfolio of grants).
    ProgrammeId = "programme id";
    /// A workstream of a grant (a flagship programme, a work package): `FP1`, `C0`.
    WorkstreamCode = "workstream code";
    /// A budget category code from the grant's rule set: `PER`, `IND`.
    CategoryCode = "category code";
    /// A budget line: `<workstream>-<category>`, e.g. `FP1-CON`.
    LineId = "budget line id";
    /// A reallocation request.
    ReallocationId = "reallocation id";
    /// An amendment request.
    AmendmentId = "amendment id";
    /// A commitment (purchase order).
    CommitmentId = "commitment id";
    /// An expenditure.
    ExpenditureId = "expenditure id";
    /// A milestone, deliverable or report.
    MilestoneId = "milestone id";
    /// A reporting period.
    PeriodId = "reporting period id";
    /// Who acted: a token's name, never a person's name.
    ActorId = "actor";
    /// A funder's rule set: `FNR-2022`, `HORIZON-EUROPE`.
    RuleSetId = "rule set id";
}

impl LineId {
    /// The line id for a workstream and category: `<workstream>-<category>`.
    pub fn of(workstream: &WorkstreamCode, category: &CategoryCode) -> LineId {
        LineId(format!("{workstream}-{category}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_only_the_documented_alphabet() {
        assert!(GrantId::parse("nctcr-2022_v1.0").is_ok());
        assert!(GrantId::parse("x".repeat(64)).is_ok());
        for bad in ["", "with space", "slash/", "é", &"x".repeat(65), ".", ".."] {
            let err = GrantId::parse(bad).unwrap_err();
            assert_eq!(err.kind, "grant id");
        }
        assert!(serde_json::from_str::<MilestoneId>(r#""M 02""#).is_err());
    }

    #[test]
    fn dot_ids_read_only_from_stored_data() {
        assert!(serde_json::from_str::<GrantId>(r#"".""#).is_err());
        assert!(serde_json::from_str::<GrantId>(r#""..""#).is_err());
        assert!(GrantId::parse("...").is_ok() && GrantId::parse(".a").is_ok());
        let stored = reading_stored(|| serde_json::from_str::<GrantId>(r#"".""#));
        assert_eq!(stored.unwrap().as_str(), ".");
        assert!(GrantId::parse(".").is_err(), "the leniency ends with the stored read");
        let event = crate::GrantEvent::decode("ExpenditureReversed", 1, r#"{"expenditure_id":".."}"#);
        assert!(event.is_ok(), "a stored event with an id accepted before still decodes: {event:?}");
    }

    #[test]
    fn line_ids_join_workstream_and_category() {
        let line = LineId::of(&WorkstreamCode::parse("FP1").unwrap(), &CategoryCode::parse("CON").unwrap());
        assert_eq!(line.as_str(), "FP1-CON");
    }
}
