//! Turning events into stored `(type, schema version, JSON)` and back.
//!
//! Each event type's wire name and current schema version are written once,
//! in the `event_enum!` invocation of its aggregate; nothing else spells
//! them. Stored payloads of older versions are upcast on read by the
//! functions in [`crate::upcast`], never rewritten in the log.

/// Why a stored event could not be read as a typed event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// No event of this aggregate has that wire name.
    #[error("unknown event type {event_type:?}")]
    UnknownType {
        /// The stored type name.
        event_type: String,
    },
    /// Stored by a newer build than this one.
    #[error("{event_type} v{stored} is newer than this build's v{supported}")]
    NewerVersion {
        /// The type.
        event_type: &'static str,
        /// The stored schema version.
        stored: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// No upcaster takes this version further.
    #[error("no upcaster for {event_type} v{from}")]
    NoUpcaster {
        /// The type.
        event_type: &'static str,
        /// The version with no way up.
        from: u32,
    },
    /// The payload does not match the schema.
    #[error("{event_type} v{version}: {detail}")]
    Payload {
        /// The type.
        event_type: &'static str,
        /// The stored schema version.
        version: u32,
        /// What serde said.
        detail: String,
    },
}

/// Decodes a payload of `event_type` stored at `stored` into the current
/// version's type, upcasting older payloads first. The current version is
/// decoded straight from the text, with no intermediate value.
pub fn decode<T: serde::de::DeserializeOwned>(
    event_type: &'static str,
    current: u32,
    stored: u32,
    data: &str,
) -> Result<T, DecodeError> {
    // Stored events read as written, even where today's input rules are stricter.
    crate::ids::reading_stored(|| decode_stored(event_type, current, stored, data))
}

fn decode_stored<T: serde::de::DeserializeOwned>(
    event_type: &'static str,
    current: u32,
    stored: u32,
    data: &str,
) -> Result<T, DecodeError> {
    let payload =
        |version: u32, e: serde_json::Error| DecodeError::Payload { event_type, version, detail: e.to_string() };
    if stored == current {
        return serde_json::from_str(data).map_err(|e| payload(stored, e));
    }
    if stored > current {
        return Err(DecodeError::NewerVersion { event_type, stored, supported: current });
    }
    let mut value: serde_json::Value = serde_json::from_str(data).map_err(|e| payload(stored, e))?;
    let mut version = stored;
    while version < current {
        let step = crate::upcast::UPCASTERS
            .iter()
            .find(|u| u.event_type == event_type && u.from == version)
            .ok_or(DecodeError::NoUpcaster { event_type, from: version })?;
        value = (step.upcast)(value).map_err(|detail| DecodeError::Payload { event_type, version, detail })?;
        version += 1;
    }
    serde_json::from_value(value).map_err(|e| payload(stored, e))
}

/// Declares an aggregate's closed event enum: each variant wraps the
/// payload struct of the same name, with its wire name and current schema
/// version given here and nowhere else.
#[macro_export]
macro_rules! event_enum {
    ($(#[$meta:meta])* $enum:ident { $($variant:ident = $wire:literal v $version:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $enum {
            $(
                #[doc = concat!("`", $wire, "`, schema version ", stringify!($version), ".")]
                $variant($variant),
            )*
        }

        impl $enum {
            /// Every event type of this aggregate: wire name and current schema version.
            pub const TYPES: &'static [(&'static str, u32)] = &[$(($wire, $version)),*];

            /// The wire name stored as the event's type.
            pub fn event_type(&self) -> &'static str {
                match self { $(Self::$variant(_) => $wire),* }
            }

            /// The payload's current schema version.
            pub fn schema_version(&self) -> u32 {
                match self { $(Self::$variant(_) => $version),* }
            }

            /// The payload as JSON.
            pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
                match self { $(Self::$variant(e) => serde_json::to_value(e)),* }
            }

            /// Reads a stored payload, upcasting older schema versions.
            pub fn decode(
                event_type: &str,
                schema_version: u32,
                data: &str,
            ) -> Result<Self, $crate::DecodeError> {
                match event_type {
                    $($wire => $crate::codec::decode::<$variant>($wire, $version, schema_version, data).map(Self::$variant),)*
                    other => Err($crate::DecodeError::UnknownType { event_type: other.to_owned() }),
                }
            }

            /// The JSON Schema of each event type's current payload.
            pub fn schemas() -> Vec<(&'static str, u32, schemars::Schema)> {
                vec![$(($wire, $version, schemars::schema_for!($variant))),*]
            }
        }

        $(
            impl From<$variant> for $enum {
                fn from(e: $variant) -> Self {
                    Self::$variant(e)
                }
            }
        )*
    };
}
