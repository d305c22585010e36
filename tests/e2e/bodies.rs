//! Request bodies the tests share.

use serde_json::{Value, json};

use crate::client::eur;

/// An expenditure body in euros (its business date is `incurred_on`).
#[allow(clippy::too_many_arguments)]
pub fn expenditure(
    id: &str,
    line: &str,
    amount: Value,
    incurred_on: &str,
    supplier: &str,
    invoice: &str,
    commitment: Option<&str>,
) -> Value {
    let mut body = json!({
        "id": id, "line": line, "amount": amount, "incurred_on": incurred_on,
        "supplier": supplier, "invoice": invoice
    });
    if let Some(c) = commitment {
        body["commitment"] = json!(c);
    }
    body
}

/// A commitment body in euros, effective `day`.
pub fn commitment(id: &str, line: &str, amount: &str, reference: &str, day: &str) -> Value {
    json!({"id": id, "line": line, "amount": eur(amount), "supplier": "sup-biolab", "reference": reference, "effective_date": day})
}

/// A reallocation body from (line, signed euros) pairs, effective `day`.
pub fn reallocation(id: &str, deltas: &[(&str, &str)], reason: &str, day: &str) -> Value {
    let deltas: Vec<Value> = deltas.iter().map(|(line, amount)| json!({"line": line, "amount": amount})).collect();
    json!({"id": id, "deltas": deltas, "reason": reason, "effective_date": day})
}

/// A grant award body in euros for 2022.
pub fn award(id: &str, programme: &str, amount: &str) -> Value {
    json!({
        "id": id, "programme": programme, "funder": "FNR", "title": format!("Grant {id}"),
        "acronym": id.to_uppercase(), "award": eur(amount), "start": "2022-01-01", "end": "2022-12-31",
        "rule_set": "FNR-2022", "effective_date": "2022-01-01"
    })
}

/// A valid expenditure of 1.00 on programme A's grant, unique by `n`.
pub fn small_expenditure(n: u32) -> Value {
    expenditure(&format!("X{n}"), "WP1-CON", eur("1.00"), "2022-08-01", "sup-x", &format!("X-{n}"), None)
}
