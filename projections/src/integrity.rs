//! What lets the read-model file be checked against the log and against
//! itself on open, so that a damaged or foreign file is never served.
//!
//! - Each checkpoint carries the log's chain hash at its position: a file
//!   taken from another (or a longer) log does not match this one.
//! - Each projection's checkpoint carries a digest of all its rows: the sum,
//!   modulo 2^256, of the SHA-256 of every row's content. A sum can be kept
//!   up to date row by row (subtract the old row's hash, add the new one's),
//!   and any changed, missing or extra row changes it.

use sha2::{Digest, Sha256};

/// A set digest: the sum modulo 2^256 of its elements' SHA-256.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowsDigest([u64; 4]);

impl RowsDigest {
    /// The hash of one row: its fields, each length-prefixed.
    fn element(fields: &[&str]) -> [u64; 4] {
        let mut h = Sha256::new();
        for f in fields {
            h.update((f.len() as u64).to_be_bytes());
            h.update(f.as_bytes());
        }
        let bytes: [u8; 32] = h.finalize().into();
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            *limb = u64::from_le_bytes(b);
        }
        limbs
    }

    /// Counts a row in.
    pub fn add(&mut self, fields: &[&str]) {
        self.plus(RowsDigest(Self::element(fields)));
    }

    /// Counts a row out.
    pub fn remove(&mut self, fields: &[&str]) {
        self.minus(RowsDigest(Self::element(fields)));
    }

    /// Counts every row of `other` in (the digest of a union of disjoint
    /// sets is the sum of theirs: a projection's digest is the sum of its
    /// grants').
    pub fn plus(&mut self, other: RowsDigest) {
        let mut carry = false;
        for (limb, x) in self.0.iter_mut().zip(other.0) {
            let (s1, c1) = limb.overflowing_add(x);
            let (s2, c2) = s1.overflowing_add(u64::from(carry));
            *limb = s2;
            carry = c1 || c2;
        }
    }

    /// Counts every row of `other` out.
    pub fn minus(&mut self, other: RowsDigest) {
        let mut borrow = false;
        for (limb, x) in self.0.iter_mut().zip(other.0) {
            let (d1, b1) = limb.overflowing_sub(x);
            let (d2, b2) = d1.overflowing_sub(u64::from(borrow));
            *limb = d2;
            borrow = b1 || b2;
        }
    }

    /// As stored: 64 hex digits.
    pub fn to_hex(self) -> String {
        self.0.iter().rev().map(|l| format!("{l:016x}")).collect()
    }

    /// From its stored form; `None` when it is not 64 hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().rev().enumerate() {
            *limb = u64::from_str_radix(text.get(i * 16..i * 16 + 16)?, 16).ok()?;
        }
        Some(Self(limbs))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::RowsDigest;

    #[test]
    fn a_digest_is_independent_of_order_and_undone_by_removal() {
        let mut a = RowsDigest::default();
        a.add(&["g", "line", "L1", "{}"]);
        a.add(&["g", "line", "L2", "{}"]);
        let mut b = RowsDigest::default();
        b.add(&["g", "line", "L2", "{}"]);
        b.add(&["g", "line", "L1", "{}"]);
        assert_eq!(a, b);
        b.remove(&["g", "line", "L1", "{}"]);
        b.remove(&["g", "line", "L2", "{}"]);
        assert_eq!(b, RowsDigest::default());
        // A row counted twice does not cancel out (unlike XOR).
        let mut twice = RowsDigest::default();
        twice.add(&["x"]);
        twice.add(&["x"]);
        assert_ne!(twice, RowsDigest::default());
        assert_eq!(RowsDigest::parse(&a.to_hex()), Some(a));
        // Sums of parts add up to the whole, and come apart again.
        let (mut g1, mut g2, mut whole) = (RowsDigest::default(), RowsDigest::default(), RowsDigest::default());
        g1.add(&["g1", "line", "L1", "{}"]);
        g2.add(&["g2", "line", "L1", "{}"]);
        whole.add(&["g2", "line", "L1", "{}"]);
        whole.add(&["g1", "line", "L1", "{}"]);
        let mut sum = g1;
        sum.plus(g2);
        assert_eq!(sum, whole);
        sum.minus(g1);
        assert_eq!(sum, g2);
        assert_eq!(RowsDigest::parse("zz"), None);
    }
}
