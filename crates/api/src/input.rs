//! Strict client input: how the request bodies and query strings read
//! amounts, rates, currencies and business dates, and the schemas the
//! OpenAPI document shows for them. Both come from the same constants in
//! [`events::bounds`], so the document and the server agree.
//!
//! The DTOs keep their domain types (`Money`, `NaiveDate`, ...) and name a
//! function of this module in `#[serde(deserialize_with)]` and a schema
//! type in `#[schemars(with)]`. A refusal is a serde error at the field,
//! so the problem's pointer names it (`/amount/amount`, `?as_of`).

use chrono::NaiveDate;
use events::bounds::{self, InputError};
use events::{Conversion, Currency, Money};
use rust_decimal::Decimal;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

fn text<'de, D: Deserializer<'de>, T>(d: D, parse: impl Fn(&str) -> Result<T, InputError>) -> Result<T, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text).map_err(D::Error::custom)
}

macro_rules! strict_text {
    ($(#[$doc:meta])* $name:ident($ty:ty) = $parse:expr, $schema_name:literal, $schema:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(pub $ty);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                text(d, $parse).map($name)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $schema_name.into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                $schema
            }
        }
    };
}

/// What the document says of amounts.
pub fn amount_description(signed: bool) -> String {
    format!(
        "Decimal string{}, at most the currency's minor digits and {} units (e.g. \"4180.50\"); no exponent, separator, space or plus sign",
        if signed { ", negative to move money out" } else { "" },
        bounds::AMOUNT_UNITS_MAX
    )
}

/// What the document says of business dates.
pub fn date_description() -> String {
    format!("Business date, exactly YYYY-MM-DD, from {} to {}", bounds::BUSINESS_DATE_MIN, bounds::BUSINESS_DATE_MAX)
}

/// The schema of a business date (also the query parameters').
pub fn date_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "string",
        "format": "date",
        "pattern": bounds::BUSINESS_DATE_PATTERN,
        "minLength": 10,
        "maxLength": 10,
        "description": date_description(),
    })
}

strict_text!(
    /// A non-negative amount's text.
    AmountText(Decimal) = |t| bounds::parse_amount_text(t, false),
    "Amount",
    json_schema!({
        "type": "string",
        "pattern": bounds::AMOUNT_PATTERN,
        "maxLength": bounds::AMOUNT_CHARS_MAX,
        "description": amount_description(false),
    })
);

strict_text!(
    /// A signed amount's text (reallocation deltas).
    SignedAmountText(Decimal) = |t| bounds::parse_amount_text(t, true),
    "SignedAmount",
    json_schema!({
        "type": "string",
        "pattern": bounds::SIGNED_AMOUNT_PATTERN,
        "maxLength": bounds::AMOUNT_CHARS_MAX,
        "description": amount_description(true),
    })
);

strict_text!(
    /// A rate's text (conversion rates, the indirect rate).
    RateText(Decimal) = bounds::parse_rate,
    "Rate",
    json_schema!({
        "type": "string",
        "pattern": bounds::RATE_PATTERN,
        "description": format!(
            "Decimal string, at most {} digits before the point and {} after it (e.g. \"1.0800\")",
            bounds::RATE_INTEGER_DIGITS_MAX,
            bounds::RATE_FRACTION_DIGITS_MAX
        ),
    })
);

strict_text!(
    /// A business date's text.
    DateText(NaiveDate) = bounds::parse_date,
    "BusinessDate",
    Schema::try_from(date_schema()).unwrap_or_default()
);

strict_text!(
    /// An active ISO 4217 currency.
    ActiveCurrency(Currency) = |t| bounds::accepted_currency(Currency::parse(t)?),
    "ActiveCurrency",
    json_schema!({
        "type": "string",
        "pattern": "^[A-Z]{3}$",
        "description": "An active ISO 4217 currency code; funds (BOV, CLF, USN...), precious metals (XAU, XAG, XPD, XPT), testing and special codes (XTS, XXX, XDR...) and superseded currencies are refused",
    })
);

/// An amount with its currency, as a request carries it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoneyInput {
    /// The amount.
    pub amount: AmountText,
    /// Its currency.
    pub currency: ActiveCurrency,
}

/// A conversion, as a request carries it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversionInput {
    /// Units of the cost's currency per one unit of the grant's currency.
    pub rate: RateText,
    /// Where the rate comes from (e.g. "ECB reference rate").
    pub source: String,
    /// The rate's date.
    pub rate_date: DateText,
}

/// `deserialize_with` for a money field.
pub fn money<'de, D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
    let m = MoneyInput::deserialize(d)?;
    Money::new(m.amount.0, m.currency.0).map_err(D::Error::custom)
}

/// `deserialize_with` for an optional conversion.
pub fn opt_conversion<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Conversion>, D::Error> {
    Ok(Option::<ConversionInput>::deserialize(d)?.map(|c| Conversion {
        rate: c.rate.0,
        source: c.source,
        rate_date: c.rate_date.0,
    }))
}

/// `deserialize_with` for a business date.
pub fn date<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    Ok(DateText::deserialize(d)?.0)
}

/// `deserialize_with` for an optional business date.
pub fn opt_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
    Ok(Option::<DateText>::deserialize(d)?.map(|t| t.0))
}

/// `deserialize_with` for an optional rate.
pub fn opt_rate<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    Ok(Option::<RateText>::deserialize(d)?.map(|t| t.0))
}

/// `deserialize_with` for a signed amount (its currency is the grant's).
pub fn signed_amount<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    Ok(SignedAmountText::deserialize(d)?.0)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // `on` is read by serde only
    struct Body {
        #[serde(deserialize_with = "money")]
        amount: Money,
        #[serde(default, deserialize_with = "opt_conversion")]
        conversion: Option<Conversion>,
        #[serde(deserialize_with = "date")]
        on: NaiveDate,
    }

    fn body(amount: &str, currency: &str, on: &str) -> String {
        format!(r#"{{"amount":{{"amount":"{amount}","currency":"{currency}"}},"on":"{on}"}}"#)
    }

    fn refused_at(json: &str) -> String {
        match crate::json::parse::<Body>(json.as_bytes()) {
            Err(crate::error::ApiError::InvalidBody(errors)) => errors[0].pointer.clone(),
            other => panic!("{json} gave {other:?}"),
        }
    }

    #[test]
    fn strict_amounts_are_refused_at_their_field() {
        for bad in ["1_000.00", "+5.00", "5.", ".5", "1e3", " 5.00", "-5.00", "79228162514264337593543950335"] {
            assert_eq!(refused_at(&body(bad, "EUR", "2022-06-05")), "/amount/amount", "{bad}");
        }
        assert_eq!(refused_at(&body("5.001", "EUR", "2022-06-05")), "/amount", "minor digits, known with the currency");
        let ok = crate::json::parse::<Body>(body("10000000000000.00", "EUR", "2022-06-05").as_bytes()).unwrap();
        assert_eq!(ok.amount.to_string(), "10000000000000.00 EUR");
    }

    #[test]
    fn inactive_currencies_are_refused() {
        for bad in ["XXX", "XTS", "XAU", "XAG", "XDR", "BOV", "EURO", "eur"] {
            assert_eq!(refused_at(&body("5.00", bad, "2022-06-05")), "/amount/currency", "{bad}");
        }
    }

    #[test]
    fn strict_dates_are_refused_at_their_field() {
        for bad in ["2022-6-5", " 2022-06-05", "2022-06-05 ", "+99999-01-01", "1899-12-31", "2200-01-01"] {
            assert_eq!(refused_at(&body("5.00", "EUR", bad)), "/on", "{bad}");
        }
    }

    #[test]
    fn strict_rates_are_refused_at_their_field() {
        let with_rate = |rate: &str| {
            format!(
                r#"{{"amount":{{"amount":"5.00","currency":"USD"}},"on":"2022-06-05","conversion":{{"rate":"{rate}","source":"ECB","rate_date":"2022-06-01"}}}}"#
            )
        };
        for bad in ["1e3", "1_000", "+1.08", "1.", ".5", "-1"] {
            assert_eq!(refused_at(&with_rate(bad)), "/conversion/rate", "{bad}");
        }
        let ok = crate::json::parse::<Body>(with_rate("1.0800").as_bytes()).unwrap();
        assert_eq!(ok.conversion.unwrap().rate.to_string(), "1.0800");
    }
}
