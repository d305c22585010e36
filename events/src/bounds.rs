//! The named limits on what a client may send, and the strict parsers for
//! the text forms of amounts, rates and business dates.
//!
//! The patterns are the ones the OpenAPI document carries: the server
//! matches the client's text against the same constant, so the document
//! and the server cannot disagree. These checks are for client input (the
//! API's edge, and `decide` for the bounds): stored events are read as
//! they were written, whatever these limits say today.

use std::sync::LazyLock;

use chrono::NaiveDate;
use regex::Regex;
use rust_decimal::Decimal;

use crate::money::{Currency, Money, MoneyError};

/// The largest amount, in whole units of its currency (10^13, ten
/// trillion), that any money field of a request may carry, before or after
/// a conversion. Every sum a view computes stays far below what a decimal
/// holds (about 7.9 x 10^28), see [`GRANT_GROSS_UNITS_MAX`].
pub const AMOUNT_UNITS_MAX: i64 = 10_000_000_000_000;

/// The largest sum of the absolute values of every amount a grant's
/// commands record (award, lines, reallocation deltas, commitments,
/// releases, expenditures, reversed ones included): 100 x
/// [`AMOUNT_UNITS_MAX`]. Every figure of every view of a grant, as of any
/// date, is a signed sum of some of these, so none can exceed it.
pub const GRANT_GROSS_UNITS_MAX: i64 = 100 * AMOUNT_UNITS_MAX;

/// Longest amount text accepted, in characters.
pub const AMOUNT_CHARS_MAX: usize = 32;

/// An amount that cannot be negative: digits, then optionally a point and
/// digits; no sign, no exponent, no separators, no spaces.
pub const AMOUNT_PATTERN: &str = r"^[0-9]+(\.[0-9]+)?$";

/// A signed amount (reallocation deltas): [`AMOUNT_PATTERN`] with an optional `-`.
pub const SIGNED_AMOUNT_PATTERN: &str = r"^-?[0-9]+(\.[0-9]+)?$";

/// Most digits before the point of a rate (conversion rate, indirect rate).
pub const RATE_INTEGER_DIGITS_MAX: usize = 10;

/// Most digits after the point of a rate.
pub const RATE_FRACTION_DIGITS_MAX: usize = 10;

/// A rate: unsigned, at most [`RATE_INTEGER_DIGITS_MAX`] digits before the
/// point and [`RATE_FRACTION_DIGITS_MAX`] after it.
pub const RATE_PATTERN: &str = r"^[0-9]{1,10}(\.[0-9]{1,10})?$";

/// A business date: exactly `YYYY-MM-DD`.
pub const DATE_PATTERN: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$";

/// A business date within [`BUSINESS_DATE_MIN`]..=[`BUSINESS_DATE_MAX`],
/// for documents that describe the accepted text: with JSON Schema's
/// `format: date` (a day of the calendar) it matches exactly the dates
/// accepted.
pub const BUSINESS_DATE_PATTERN: &str = r"^(19[0-9]{2}|2[01][0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$";

/// The first business date accepted.
pub const BUSINESS_DATE_MIN: NaiveDate = match NaiveDate::from_ymd_opt(1900, 1, 1) {
    Some(d) => d,
    None => NaiveDate::MIN,
};

/// The last business date accepted.
pub const BUSINESS_DATE_MAX: NaiveDate = match NaiveDate::from_ymd_opt(2199, 12, 31) {
    Some(d) => d,
    None => NaiveDate::MAX,
};

/// The longest grant period, start to (extended) end, in years.
pub const GRANT_PERIOD_YEARS_MAX: u32 = 50;

/// Why a client's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The text does not match the documented pattern.
    #[error("{text:?} does not match {pattern}")]
    Pattern {
        /// The refused text (cut to a readable length).
        text: String,
        /// The pattern it must match.
        pattern: &'static str,
    },
    /// Longer than allowed.
    #[error("longer than {chars_max} characters")]
    TooLong {
        /// The limit.
        chars_max: usize,
    },
    /// An amount above [`AMOUNT_UNITS_MAX`].
    #[error("{amount} is above the limit of {limit} units")]
    AboveLimit {
        /// The amount.
        amount: Decimal,
        /// The limit.
        limit: i64,
    },
    /// Not a calendar date.
    #[error("{text:?} is not a calendar date")]
    NotADate {
        /// The refused text.
        text: String,
    },
    /// A date outside [`BUSINESS_DATE_MIN`]..=[`BUSINESS_DATE_MAX`].
    #[error("{date} is outside {BUSINESS_DATE_MIN} to {BUSINESS_DATE_MAX}")]
    DateOutOfRange {
        /// The date.
        date: NaiveDate,
    },
    /// The currency is not an active ISO 4217 currency.
    #[error(
        "{currency} is not an active ISO 4217 currency (funds, precious metals, testing and special codes, and superseded currencies are refused)"
    )]
    CurrencyNotAccepted {
        /// The currency.
        currency: Currency,
    },
    /// The amount does not fit its currency.
    #[error(transparent)]
    Money(#[from] MoneyError),
}

// The patterns are constants compiled by a test below; were one not to
// compile, nothing would match it (every input refused, never a panic).
type Pattern = LazyLock<Option<Regex>>;
static AMOUNT: Pattern = LazyLock::new(|| Regex::new(AMOUNT_PATTERN).ok());
static SIGNED_AMOUNT: Pattern = LazyLock::new(|| Regex::new(SIGNED_AMOUNT_PATTERN).ok());
static RATE: Pattern = LazyLock::new(|| Regex::new(RATE_PATTERN).ok());
static DATE: Pattern = LazyLock::new(|| Regex::new(DATE_PATTERN).ok());

fn matching(text: &str, re: &Pattern, pattern: &'static str, chars_max: usize) -> Result<(), InputError> {
    if text.chars().count() > chars_max {
        return Err(InputError::TooLong { chars_max });
    }
    if re.as_ref().is_some_and(|re| re.is_match(text)) {
        Ok(())
    } else {
        Err(InputError::Pattern { text: text.chars().take(40).collect(), pattern })
    }
}

/// Whether `amount` is within [`AMOUNT_UNITS_MAX`] either side of zero.
pub fn within_amount_limit(amount: Decimal) -> bool {
    amount.abs() <= Decimal::from(AMOUNT_UNITS_MAX)
}

/// A decimal amount's text: [`SIGNED_AMOUNT_PATTERN`] when `signed`, else
/// [`AMOUNT_PATTERN`]; at most [`AMOUNT_CHARS_MAX`] characters and
/// [`AMOUNT_UNITS_MAX`] units. The currency's minor digits are checked
/// when the amount becomes [`Money`].
pub fn parse_amount_text(text: &str, signed: bool) -> Result<Decimal, InputError> {
    let (re, pattern) = if signed { (&SIGNED_AMOUNT, SIGNED_AMOUNT_PATTERN) } else { (&AMOUNT, AMOUNT_PATTERN) };
    matching(text, re, pattern, AMOUNT_CHARS_MAX)?;
    // The pattern and length held: a text Decimal cannot hold exactly has
    // more digits than it keeps, which the pattern error names best.
    let amount = Decimal::from_str_exact(text).map_err(|_| InputError::Pattern { text: text.to_owned(), pattern })?;
    if !within_amount_limit(amount) {
        return Err(InputError::AboveLimit { amount, limit: AMOUNT_UNITS_MAX });
    }
    Ok(amount)
}

/// A non-negative amount in `currency`, as [`parse_amount_text`] and with
/// at most the currency's minor digits.
pub fn parse_amount(text: &str, currency: Currency) -> Result<Money, InputError> {
    Ok(Money::new(parse_amount_text(text, false)?, currency)?)
}

/// A rate's text ([`RATE_PATTERN`]).
pub fn parse_rate(text: &str) -> Result<Decimal, InputError> {
    let chars_max = RATE_INTEGER_DIGITS_MAX + 1 + RATE_FRACTION_DIGITS_MAX;
    matching(text, &RATE, RATE_PATTERN, chars_max)?;
    Decimal::from_str_exact(text).map_err(|_| InputError::Pattern { text: text.to_owned(), pattern: RATE_PATTERN })
}

/// A business date's text: exactly `YYYY-MM-DD` ([`DATE_PATTERN`]), a
/// real calendar day, from [`BUSINESS_DATE_MIN`] to [`BUSINESS_DATE_MAX`].
pub fn parse_date(text: &str) -> Result<NaiveDate, InputError> {
    matching(text, &DATE, DATE_PATTERN, 10)?;
    let date =
        NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| InputError::NotADate { text: text.to_owned() })?;
    if !(BUSINESS_DATE_MIN..=BUSINESS_DATE_MAX).contains(&date) {
        return Err(InputError::DateOutOfRange { date });
    }
    Ok(date)
}

/// Whether `currency` may be a grant's or a cost's currency: an active
/// ISO 4217 currency, that is not a fund (BOV, CLF, USN...), not a special
/// code (precious metals XAU XAG XPD XPT, XDR, bond units, XTS, XXX...)
/// and not superseded by another currency.
pub fn accepted_currency(currency: Currency) -> Result<Currency, InputError> {
    if currency.is_active() { Ok(currency) } else { Err(InputError::CurrencyNotAccepted { currency }) }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_business_date_pattern_matches_exactly_the_days_in_bounds() {
        let re = Regex::new(BUSINESS_DATE_PATTERN).unwrap();
        let mut day = NaiveDate::from_ymd_opt(1899, 12, 25).unwrap();
        while day <= NaiveDate::from_ymd_opt(2200, 1, 5).unwrap() {
            let text = day.format("%Y-%m-%d").to_string();
            let inside = (BUSINESS_DATE_MIN..=BUSINESS_DATE_MAX).contains(&day);
            assert_eq!(re.is_match(&text), inside, "{text}");
            day = day.succ_opt().unwrap();
        }
        for text in ["2022-00-10", "2022-13-01", "2022-01-00", "2022-01-32", "2022-1-01", "02022-01-01"] {
            assert!(!re.is_match(text), "{text}");
        }
    }

    #[test]
    fn an_amount_with_more_digits_than_a_decimal_holds_is_a_pattern_error_not_a_large_one() {
        let text = "0.00000000000000000000000000001";
        let got = parse_amount_text(text, false);
        assert!(matches!(got, Err(InputError::Pattern { .. })), "{got:?}");
    }

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn amounts_are_digits_with_an_optional_fraction() {
        for good in ["0", "5", "5.00", "4180.50", "10000000000000", "10000000000000.00", "0007.5"] {
            assert!(parse_amount_text(good, false).is_ok(), "{good} refused");
        }
        for bad in [
            "",
            "1_000.00",
            "+5.00",
            "5.",
            ".5",
            "1e3",
            "1E3",
            " 5.00",
            "5.00 ",
            "-5.00",
            "5,00",
            "0x10",
            "NaN",
            "inf",
            "٣",
            "５",
            "1.0.0",
            "10000000000000.01",
            "79228162514264337593543950335",
        ] {
            assert!(parse_amount_text(bad, false).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_amount_text("-3000.00", true).unwrap().to_string(), "-3000.00");
        for bad in ["+3000.00", "--1", "-", "-.5", "- 1", "-1e3", "-10000000000000.01", "1_0"] {
            assert!(parse_amount_text(bad, true).is_err(), "{bad:?} accepted");
        }
        assert!(parse_amount_text(&"1".repeat(AMOUNT_CHARS_MAX + 1), false).is_err());
    }

    #[test]
    fn amounts_carry_at_most_the_currency_minor_digits() {
        assert_eq!(parse_amount("4180.5", Currency::EUR).unwrap().to_string(), "4180.50 EUR");
        assert!(matches!(parse_amount("4180.505", Currency::EUR), Err(InputError::Money(_))));
        let jpy = Currency::parse("JPY").unwrap();
        assert!(parse_amount("12.5", jpy).is_err());
        assert!(parse_amount("12", jpy).is_ok());
    }

    #[test]
    fn rates_have_their_own_digit_limits() {
        for good in ["1.08", "0.25", "1", "0.0000000001", "9999999999.9999999999"] {
            assert!(parse_rate(good).is_ok(), "{good} refused");
        }
        for bad in ["1e3", "1_000", "+1.08", "-1.08", "1.", ".5", " 1", "0.00000000001", "99999999999", ""] {
            assert!(parse_rate(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn dates_are_exactly_yyyy_mm_dd_within_the_business_range() {
        assert_eq!(parse_date("2022-06-05").unwrap(), NaiveDate::from_ymd_opt(2022, 6, 5).unwrap());
        assert!(parse_date("1900-01-01").is_ok());
        assert!(parse_date("2199-12-31").is_ok());
        for bad in [
            "2022-6-5",
            " 2022-06-05",
            "2022-06-05 ",
            "+99999-01-01",
            "1899-12-31",
            "2200-01-01",
            "2022-02-30",
            "2022-13-01",
            "20220605",
            "2022/06/05",
            "２０２２-06-05",
            "",
        ] {
            assert!(parse_date(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn only_active_currencies_are_accepted() {
        for good in ["EUR", "USD", "JPY", "CHF", "XOF", "XAF", "XCD", "XPF"] {
            assert!(accepted_currency(Currency::parse(good).unwrap()).is_ok(), "{good} refused");
        }
        for bad in ["XXX", "XTS", "XAU", "XAG", "XPD", "XPT", "XDR", "XBA", "XSU", "XUA", "BOV", "CLF", "USN", "HRK"] {
            assert!(accepted_currency(Currency::parse(bad).unwrap()).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn the_named_limits_are_what_the_patterns_and_range_say() {
        assert_eq!(BUSINESS_DATE_MIN.to_string(), "1900-01-01");
        assert_eq!(BUSINESS_DATE_MAX.to_string(), "2199-12-31");
        assert_eq!(
            RATE_PATTERN,
            format!(r"^[0-9]{{1,{RATE_INTEGER_DIGITS_MAX}}}(\.[0-9]{{1,{RATE_FRACTION_DIGITS_MAX}}})?$")
        );
        for p in [AMOUNT_PATTERN, SIGNED_AMOUNT_PATTERN, RATE_PATTERN, DATE_PATTERN] {
            assert!(Regex::new(p).is_ok(), "{p}");
        }
    }

    fn decimal_like() -> impl Strategy<Value = String> {
        prop_oneof![
            "[-+]?[0-9_.eE ]{0,24}",
            "-?[0-9]{1,15}(\\.[0-9]{1,5})?",
            "[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}",
            any::<String>(),
        ]
    }

    proptest! {
        #[test]
        fn amount_parsing_agrees_with_the_documented_pattern(text in decimal_like(), signed in any::<bool>()) {
            let pattern = Regex::new(if signed { SIGNED_AMOUNT_PATTERN } else { AMOUNT_PATTERN }).unwrap();
            let parsed = parse_amount_text(&text, signed);
            if let Ok(amount) = parsed {
                prop_assert!(pattern.is_match(&text));
                prop_assert!(within_amount_limit(amount));
                let shown = amount.to_string();
                let digits = |s: &str| s.trim_start_matches('-').trim_start_matches('0').to_owned();
                prop_assert_eq!(digits(&shown), digits(&text));
            } else if pattern.is_match(&text) && text.len() <= AMOUNT_CHARS_MAX {
                // Too large, or more digits than a Decimal holds exactly.
                let exact = Decimal::from_str_exact(&text).is_ok();
                prop_assert!(
                    matches!(parsed, Err(InputError::AboveLimit { .. })) && exact
                        || matches!(parsed, Err(InputError::Pattern { .. })) && !exact,
                    "{:?}",
                    parsed
                );
            }
        }

        #[test]
        fn rate_and_date_parsing_agree_with_the_documented_patterns(text in decimal_like()) {
            prop_assert_eq!(parse_rate(&text).is_ok(), Regex::new(RATE_PATTERN).unwrap().is_match(&text));
            if parse_date(&text).is_ok() {
                prop_assert!(Regex::new(DATE_PATTERN).unwrap().is_match(&text));
            }
        }

        #[test]
        fn every_day_in_the_range_round_trips(days in 0i64..=109_572) {
            let date = BUSINESS_DATE_MIN + chrono::Duration::days(days);
            prop_assert_eq!(parse_date(&date.to_string()), Ok(date));
        }
    }
}
