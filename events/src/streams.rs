//! Stream names: the log keeps each aggregate in a stream named by a prefix
//! and the aggregate's id (`grant-<id>`, `programme-<id>`). The prefixes
//! and both directions (id to name, name to id) are written here and
//! nowhere else; `domain::handler` builds the store's `StreamId` from
//! [`grant_name`] and [`programme_name`], and `projections` routes each
//! stored event by [`grant_of`] and [`programme_of`].

use crate::ids::{GrantId, ProgrammeId, reading_stored};

/// The prefix of a grant's stream name.
pub const GRANT_PREFIX: &str = "grant-";

/// The prefix of a programme's stream name.
pub const PROGRAMME_PREFIX: &str = "programme-";

/// The stream name of a grant: `grant-<id>`.
pub fn grant_name(id: &GrantId) -> String {
    format!("{GRANT_PREFIX}{id}")
}

/// The stream name of a programme: `programme-<id>`.
pub fn programme_name(id: &ProgrammeId) -> String {
    format!("{PROGRAMME_PREFIX}{id}")
}

/// The grant whose stream is `name`; `None` for any other stream. The id
/// reads as stored (the name comes from the log).
pub fn grant_of(name: &str) -> Option<GrantId> {
    let id = name.strip_prefix(GRANT_PREFIX)?;
    reading_stored(|| GrantId::parse(id).ok())
}

/// The programme whose stream is `name`; `None` for any other stream. The
/// id reads as stored (the name comes from the log).
pub fn programme_of(name: &str) -> Option<ProgrammeId> {
    let id = name.strip_prefix(PROGRAMME_PREFIX)?;
    reading_stored(|| ProgrammeId::parse(id).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_prefix_and_the_id() {
        assert_eq!(grant_name(&GrantId::parse("NCTCR-2022").unwrap()), "grant-NCTCR-2022");
        assert_eq!(programme_name(&ProgrammeId::parse("fnr").unwrap()), "programme-fnr");
    }

    #[test]
    fn every_id_comes_back_from_its_name() {
        let longest = "z".repeat(64);
        for id in ["a", "NCTCR-2022", "grant-x", "programme-y", "...", "a.b_c-d", longest.as_str()] {
            let grant = GrantId::parse(id).unwrap();
            assert_eq!(grant_of(&grant_name(&grant)), Some(grant), "{id}");
            let programme = ProgrammeId::parse(id).unwrap();
            assert_eq!(programme_of(&programme_name(&programme)), Some(programme), "{id}");
        }
    }

    #[test]
    fn a_name_of_another_kind_of_stream_is_refused() {
        let (g, p) = (GrantId::parse("g1").unwrap(), ProgrammeId::parse("p1").unwrap());
        assert_eq!(grant_of(&programme_name(&p)), None);
        assert_eq!(programme_of(&grant_name(&g)), None);
        // A programme whose id starts like a grant's stream is still a programme.
        let tricky = ProgrammeId::parse("grant-g1").unwrap();
        assert_eq!(grant_of(&programme_name(&tricky)), None);
        assert_eq!(programme_of(&programme_name(&tricky)), Some(tricky));
        for foreign in ["grant", "grant-", "Grant-g1", "grantg1", "grant-g 1", "grant-g/1", "other-g1", "", "-g1"] {
            assert_eq!(grant_of(foreign), None, "{foreign:?}");
        }
        for foreign in ["programme", "programme-", "Programme-p1", "programme-p\u{e9}", "prog-p1"] {
            assert_eq!(programme_of(foreign), None, "{foreign:?}");
        }
        assert_eq!(grant_of(&format!("grant-{}", "z".repeat(65))), None, "longer than an id");
    }

    #[test]
    fn ids_from_an_older_log_read_as_written() {
        // `.` and `..` are refused from clients today, but an older log may name them.
        assert!(GrantId::parse("..").is_err());
        assert_eq!(grant_of("grant-..").map(|g| g.to_string()), Some("..".to_owned()));
        assert_eq!(programme_of("programme-.").map(|p| p.to_string()), Some(".".to_owned()));
    }
}
