//! Funders' rule sets, as data: the JSON files under `events/rulesets/` are
//! compiled in, and a grant records the id of the one it was awarded under.
//! They live beside the events because both the domain (which enforces
//! them) and the projections (which total by category) read them.

use std::sync::OnceLock;

use crate::ids::{CategoryCode, RuleSetId};
use rust_decimal::Decimal;
use serde::Deserialize;

/// How a category counts towards the indirect-cost base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CategoryKind {
    /// A direct cost in the indirect base.
    Direct,
    /// A direct cost outside the indirect base.
    Subcontracting,
    /// The indirect costs themselves.
    Indirect,
}

/// One budget category of a rule set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    /// Its code: `PER`, `IND`.
    pub code: CategoryCode,
    /// Its name.
    pub name: String,
    /// How it counts.
    pub kind: CategoryKind,
    /// Whether a reallocation may move money into or out of it.
    pub transferable: bool,
}

/// What the indirect rate applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndirectBase {
    /// All direct costs except subcontracting.
    DirectExcludingSubcontracting,
}

/// The indirect-cost rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndirectRule {
    /// The highest rate allowed (the rate itself when `flat`).
    #[serde(with = "rust_decimal::serde::str")]
    pub rate_max: Decimal,
    /// Whether the rate is fixed at `rate_max`.
    pub flat: bool,
    /// The base the rate applies to.
    pub base: IndirectBase,
}

/// A funder's rule set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    /// Its id, recorded on the grant.
    pub id: RuleSetId,
    /// The funder.
    pub funder: String,
    /// The regulation it encodes.
    pub source: String,
    /// The budget categories.
    pub categories: Vec<Category>,
    /// The indirect-cost rule.
    pub indirect: IndirectRule,
}

impl RuleSet {
    /// The category with this code, if the rule set has it.
    pub fn category(&self, code: &CategoryCode) -> Option<&Category> {
        self.categories.iter().find(|c| &c.code == code)
    }
}

const SOURCES: &[&str] = &[include_str!("../rulesets/FNR-2022.json"), include_str!("../rulesets/HORIZON-EUROPE.json")];

/// Every rule set this build knows.
pub fn all() -> &'static [RuleSet] {
    static ALL: OnceLock<Vec<RuleSet>> = OnceLock::new();
    ALL.get_or_init(|| {
        // The files are part of the build and checked by a unit test, so a
        // malformed one fails the test suite, not a user's request.
        SOURCES.iter().filter_map(|s| serde_json::from_str(s).ok()).collect()
    })
}

/// The rule set with this id.
pub fn find(id: &RuleSetId) -> Option<&'static RuleSet> {
    all().iter().find(|r| &r.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_set_file_parses() {
        for source in SOURCES {
            serde_json::from_str::<RuleSet>(source).unwrap();
        }
        assert_eq!(all().len(), SOURCES.len());
    }

    #[test]
    fn fnr_and_horizon_have_their_categories_and_indirect_rules() {
        let fnr = find(&RuleSetId::parse("FNR-2022").unwrap()).unwrap();
        let codes: Vec<_> = fnr.categories.iter().map(|c| c.code.as_str()).collect();
        assert_eq!(codes, ["PER", "EQP", "CON", "TRV", "SUB", "OTH", "IND"]);
        assert_eq!(fnr.indirect.rate_max, Decimal::new(25, 2));
        assert!(!fnr.indirect.flat);
        let ind = fnr.category(&CategoryCode::parse("IND").unwrap()).unwrap();
        assert!(!ind.transferable && ind.kind == CategoryKind::Indirect);
        let horizon = find(&RuleSetId::parse("HORIZON-EUROPE").unwrap()).unwrap();
        let codes: Vec<_> = horizon.categories.iter().map(|c| c.code.as_str()).collect();
        assert_eq!(codes, ["PER", "SUB", "TRV", "EQP", "OGS", "ODC", "IND"]);
        assert!(horizon.indirect.flat);
        assert!(find(&RuleSetId::parse("NIH-2024").unwrap()).is_none());
    }
}
