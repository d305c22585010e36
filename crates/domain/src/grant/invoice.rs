//! The duplicate-invoice rule compares (supplier, invoice) pairs as a
//! person reading them would: `INV-1`, `inv-1 `, `INV\u{200B}-1` and the
//! full-width `ＩＮＶ-1` are one invoice. The stored texts stay as given;
//! only the comparison key is normalised.

use unicode_normalization::UnicodeNormalization;

/// Characters that show nothing: zero-width spaces and joiners, the word
/// joiner, the byte-order mark, the soft hyphen, direction marks and
/// embeddings, variation selectors, invisible operators.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}' | '\u{FFA0}' | '\u{E0000}'..='\u{E0FFF}')
}

/// The comparison form of a supplier id or an invoice number: Unicode
/// NFKC, invisible characters removed, white space trimmed and each run of
/// it made one space, then case folded (lower, upper, then lower case, so that `ß`, `ẞ`
/// and `SS` meet) and NFKC again.
pub fn comparison_key(text: &str) -> String {
    let visible: String = text.nfkc().filter(|c| !invisible(*c)).collect();
    let spaced = visible.split_whitespace().collect::<Vec<_>>().join(" ");
    spaced.to_lowercase().to_uppercase().to_lowercase().nfkc().collect()
}

/// The key of a (supplier, invoice) pair.
pub fn invoice_key(supplier: &str, invoice: &str) -> (String, String) {
    (comparison_key(supplier), comparison_key(invoice))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn variants_of_one_invoice_meet() {
        let base = invoice_key("sup-acme", "INV-2022-001");
        for (supplier, invoice) in [
            ("sup-acme", "INV-2022-001 "),
            ("sup-acme", " INV-2022-001"),
            ("sup-acme", "INV-\u{200B}2022-001"),
            ("sup-acme", "\u{FEFF}INV-2022-001\u{2060}"),
            ("sup-acme", "inv-2022-001"),
            ("SUP-ACME", "INV-2022-001"),
            ("sup-acme", "ＩＮＶ-２０２２-００１"),
        ] {
            assert_eq!(invoice_key(supplier, invoice), base, "{supplier:?} {invoice:?}");
        }
        // NFD and NFC of an accented supplier.
        assert_eq!(comparison_key("Société"), comparison_key("Socie\u{301}te\u{301}"));
        assert_eq!(comparison_key("STRASSE"), comparison_key("straße"));
        assert_eq!(comparison_key("INV  1"), comparison_key("INV 1"));
        assert_ne!(comparison_key("INV-1"), comparison_key("INV-2"));
        assert_ne!(comparison_key("INV-1"), comparison_key("INV1"));
    }

    proptest! {
        #[test]
        fn the_key_is_stable_and_never_panics(text in any::<String>()) {
            let key = comparison_key(&text);
            prop_assert_eq!(comparison_key(&key), key.clone(), "idempotent");
        }
    }
}
