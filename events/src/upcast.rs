//! Upcasters: each turns a stored payload of one schema version into the
//! next version's shape. They work on JSON values, so old payloads never need
//! an old Rust type, and the log itself is never rewritten.

use serde_json::{Map, Value};

/// One step up: `event_type` at version `from` becomes version `from + 1`.
#[derive(Debug)]
pub struct Upcaster {
    /// The event's wire name.
    pub event_type: &'static str,
    /// The version it reads.
    pub from: u32,
    /// The conversion.
    pub upcast: fn(Value) -> Result<Value, String>,
}

/// Every upcaster, in no particular order.
pub static UPCASTERS: &[Upcaster] =
    &[Upcaster { event_type: "ExpenditureRecorded", from: 1, upcast: expenditure_recorded_v1_to_v2 }];

/// `ExpenditureRecorded` v1 nested the supplier and invoice under
/// `document`; v2 has them at the top level (and an optional
/// `correction_of`, absent from every v1 payload).
fn expenditure_recorded_v1_to_v2(value: Value) -> Result<Value, String> {
    let Value::Object(mut fields) = value else { return Err("payload is not an object".to_owned()) };
    let document = match fields.remove("document") {
        Some(Value::Object(document)) => document,
        _ => return Err("v1 payload has no document object".to_owned()),
    };
    let mut take = |name: &str, from: &Map<String, Value>| -> Result<(), String> {
        let value = from.get(name).cloned().ok_or_else(|| format!("v1 document has no {name}"))?;
        fields.insert(name.to_owned(), value);
        Ok(())
    };
    take("supplier", &document)?;
    take("invoice", &document)?;
    if let Some(extra) = document.keys().find(|k| *k != "supplier" && *k != "invoice") {
        return Err(format!("v1 document has an unexpected field {extra:?}"));
    }
    Ok(Value::Object(fields))
}
