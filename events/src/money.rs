//! Money: an exact decimal amount with its ISO 4217 currency.
//!
//! On the wire: `{"amount": "4180.50", "currency": "EUR"}`, the amount a
//! decimal string (a JSON number is refused, never rounded). Amounts carry
//! at most the currency's minor digits. Arithmetic is checked: adding two
//! currencies is an error, never a number.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What can go wrong building or combining money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MoneyError {
    /// Not an ISO 4217 currency code.
    #[error("{code:?} is not an ISO 4217 currency code")]
    UnknownCurrency {
        /// The refused code.
        code: String,
    },
    /// Not a decimal number.
    #[error("{text:?} is not a decimal amount")]
    NotADecimal {
        /// The refused text.
        text: String,
    },
    /// More decimal places than the currency has minor digits.
    #[error("{amount} has more than the {minor_digits} decimal places {currency} allows")]
    TooPrecise {
        /// The amount as given.
        amount: Decimal,
        /// Its currency.
        currency: Currency,
        /// The currency's minor digits.
        minor_digits: u32,
    },
    /// Two amounts in different currencies were combined.
    #[error("cannot combine {left} with {right}")]
    CurrencyMismatch {
        /// The left operand's currency.
        left: Currency,
        /// The right operand's currency.
        right: Currency,
    },
    /// The result does not fit.
    #[error("amount overflow")]
    Overflow,
    /// A conversion rate that is zero or negative.
    #[error("a conversion rate must be positive, got {rate}")]
    BadRate {
        /// The refused rate.
        rate: Decimal,
    },
}

/// An ISO 4217 currency, written as its three-letter code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    /// The euro.
    pub const EUR: Currency = Currency(iso_currency::Currency::EUR);
    /// The US dollar.
    pub const USD: Currency = Currency(iso_currency::Currency::USD);

    /// Parses an ISO 4217 code such as `EUR`.
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        iso_currency::Currency::from_code(code)
            .map(Currency)
            .ok_or_else(|| MoneyError::UnknownCurrency { code: code.to_owned() })
    }

    /// The three-letter code.
    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// Whether this is an active ISO 4217 currency: not a fund (BOV, CLF,
    /// USN...), not a special code (the precious metals XAU XAG XPD XPT,
    /// XDR, the bond units, XTS, XXX...) and not superseded (HRK, BGN...).
    /// Stored events keep any code; new grants and costs take only these
    /// ([`crate::bounds::accepted_currency`]).
    pub fn is_active(self) -> bool {
        !self.0.is_fund() && !self.0.is_special() && self.0.is_superseded().is_none()
    }

    /// Digits after the decimal point (2 for EUR, 0 for JPY). Codes with
    /// no minor unit (such as XAU) count as 0.
    pub fn minor_digits(self) -> u32 {
        self.0.exponent().map_or(0, u32::from)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Currency::parse(&code).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Currency {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Currency".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "description": "ISO 4217 currency code"
        })
    }
}

/// An exact amount in one currency. Signed: reallocation deltas are
/// negative; commands check the sign where it matters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// An amount in `currency`, refused if it has more decimal places than
    /// the currency's minor unit. Kept at exactly the minor unit's scale.
    pub fn new(amount: Decimal, currency: Currency) -> Result<Self, MoneyError> {
        let minor_digits = currency.minor_digits();
        let normal = amount.normalize();
        if normal.scale() > minor_digits {
            return Err(MoneyError::TooPrecise { amount, currency, minor_digits });
        }
        let mut amount = normal;
        amount.rescale(minor_digits);
        Ok(Self { amount, currency })
    }

    /// Parses an amount such as `"4180.50"` in `currency`.
    pub fn parse(amount: &str, currency: Currency) -> Result<Self, MoneyError> {
        let value = Decimal::from_str_exact(amount).map_err(|_| MoneyError::NotADecimal { text: amount.to_owned() })?;
        Self::new(value, currency)
    }

    /// Zero in `currency`.
    pub fn zero(currency: Currency) -> Self {
        let mut amount = Decimal::ZERO;
        amount.rescale(currency.minor_digits());
        Self { amount, currency }
    }

    /// The amount.
    pub fn amount(&self) -> Decimal {
        self.amount
    }

    /// The currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// Whether the amount is above zero.
    pub fn is_positive(&self) -> bool {
        self.amount > Decimal::ZERO
    }

    /// Whether the amount is below zero.
    pub fn is_negative(&self) -> bool {
        self.amount < Decimal::ZERO
    }

    /// Whether the amount is zero.
    pub fn is_zero(&self) -> bool {
        self.amount.is_zero()
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch { left: self.currency, right: other.currency })
        }
    }

    /// `self + other`, in one currency.
    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let amount = self.amount.checked_add(other.amount).ok_or(MoneyError::Overflow)?;
        Ok(Money { amount, currency: self.currency })
    }

    /// `self - other`, in one currency.
    pub fn checked_sub(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let amount = self.amount.checked_sub(other.amount).ok_or(MoneyError::Overflow)?;
        Ok(Money { amount, currency: self.currency })
    }

    /// The amount with its sign flipped.
    pub fn negated(&self) -> Money {
        Money { amount: -self.amount, currency: self.currency }
    }

    /// Compares two amounts of one currency.
    pub fn checked_cmp(&self, other: &Money) -> Result<std::cmp::Ordering, MoneyError> {
        self.same_currency(other)?;
        Ok(self.amount.cmp(&other.amount))
    }

    /// `self x factor`, rounded half-even to the minor unit (indirect costs).
    pub fn times(&self, factor: Decimal) -> Result<Money, MoneyError> {
        let raw = self.amount.checked_mul(factor).ok_or(MoneyError::Overflow)?;
        Ok(Money { amount: round(raw, self.currency), currency: self.currency })
    }

    /// Sums amounts of one currency, starting from zero in `currency`.
    pub fn sum<'a>(currency: Currency, items: impl IntoIterator<Item = &'a Money>) -> Result<Money, MoneyError> {
        items.into_iter().try_fold(Money::zero(currency), |acc, m| acc.checked_add(m))
    }
}

fn round(amount: Decimal, currency: Currency) -> Decimal {
    let mut rounded = amount.round_dp_with_strategy(currency.minor_digits(), RoundingStrategy::MidpointNearestEven);
    rounded.rescale(currency.minor_digits());
    rounded
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Money")]
struct MoneyWire {
    /// Decimal string with at most the currency's minor digits, e.g. "4180.50".
    #[schemars(regex(pattern = r"^-?[0-9]+(\.[0-9]+)?$"))]
    amount: String,
    currency: Currency,
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        MoneyWire { amount: self.amount.to_string(), currency: self.currency }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = MoneyWire::deserialize(d)?;
        Money::parse(&wire.amount, wire.currency).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Money {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Money".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        MoneyWire::json_schema(generator)
    }
}

/// How a cost in a foreign currency became an amount in the grant's
/// currency: `rate` units of the cost's currency per one unit of the
/// grant's, from `source`, as of `rate_date`. Kept on the event; never
/// recomputed from later rates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conversion {
    /// Units of the cost's currency per one unit of the grant's currency.
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(with = "String")]
    pub rate: Decimal,
    /// Where the rate comes from (e.g. "ECB reference rate").
    pub source: String,
    /// The rate's date.
    pub rate_date: NaiveDate,
}

impl Conversion {
    /// `original` in `target`, rounded half-even to the target's minor unit.
    pub fn convert(&self, original: &Money, target: Currency) -> Result<Money, MoneyError> {
        if self.rate <= Decimal::ZERO {
            return Err(MoneyError::BadRate { rate: self.rate });
        }
        let raw = original.amount.checked_div(self.rate).ok_or(MoneyError::Overflow)?;
        Ok(Money { amount: round(raw, target), currency: target })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn eur(s: &str) -> Money {
        Money::parse(s, Currency::EUR).unwrap()
    }

    #[test]
    fn wire_form_is_a_string_amount_with_its_currency() {
        let m = eur("4180.5");
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"amount":"4180.50","currency":"EUR"}"#);
        let back: Money = serde_json::from_str(r#"{"amount":"4180.50","currency":"EUR"}"#).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn numbers_extra_digits_unknown_currencies_and_fields_are_refused() {
        for bad in [
            r#"{"amount":4180.5,"currency":"EUR"}"#,
            r#"{"amount":"4180.505","currency":"EUR"}"#,
            r#"{"amount":"12","currency":"EURO"}"#,
            r#"{"amount":"12","currency":"XXY"}"#,
            r#"{"amount":"1e3","currency":"EUR"}"#,
            r#"{"amount":"12","currency":"EUR","note":"x"}"#,
            r#"{"amount":"12.5","currency":"JPY"}"#,
        ] {
            assert!(serde_json::from_str::<Money>(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(Money::parse("1000", Currency::parse("JPY").unwrap()).unwrap().to_string(), "1000 JPY");
    }

    #[test]
    fn currencies_never_mix() {
        let usd = Money::parse("1.00", Currency::USD).unwrap();
        assert_eq!(
            eur("1.00").checked_add(&usd),
            Err(MoneyError::CurrencyMismatch { left: Currency::EUR, right: Currency::USD })
        );
        assert!(eur("1.00").checked_sub(&usd).is_err());
        assert!(eur("1.00").checked_cmp(&usd).is_err());
        assert!(Money::sum(Currency::EUR, &[eur("1.00"), usd]).is_err());
    }

    #[test]
    fn the_scenario_conversion_rounds_half_even() {
        // E03: USD 3,000.00 at 1.0800 USD per EUR = EUR 2,777.78.
        let c = Conversion { rate: dec!(1.0800), source: "ECB".into(), rate_date: NaiveDate::MIN };
        let usd = Money::parse("3000.00", Currency::USD).unwrap();
        assert_eq!(c.convert(&usd, Currency::EUR).unwrap(), eur("2777.78"));
        assert_eq!(eur("39438.28").times(dec!(0.25)).unwrap(), eur("9859.57"));
        assert_eq!(eur("0.10").times(dec!(0.25)).unwrap(), eur("0.02")); // 0.025 -> 0.02 (half-even)
        assert_eq!(eur("0.30").times(dec!(0.25)).unwrap(), eur("0.08")); // 0.075 -> 0.08
        let zero = Conversion { rate: Decimal::ZERO, ..c };
        assert!(zero.convert(&usd, Currency::EUR).is_err());
    }

    proptest! {
        #[test]
        fn money_round_trips_through_json(cents in -10_000_000_000i64..10_000_000_000) {
            let m = Money::new(Decimal::new(cents, 2), Currency::EUR).unwrap();
            let json = serde_json::to_string(&m).unwrap();
            prop_assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), m);
        }

        #[test]
        fn sums_are_exact(cents in prop::collection::vec(0i64..100_000_000, 0..50)) {
            let items: Vec<Money> = cents.iter().map(|c| Money::new(Decimal::new(*c, 2), Currency::EUR).unwrap()).collect();
            let total = Money::sum(Currency::EUR, &items).unwrap();
            prop_assert_eq!(total.amount(), Decimal::new(cents.iter().sum::<i64>(), 2));
        }
    }
}
