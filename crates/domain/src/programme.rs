//! The programme aggregate: a named portfolio of grants. No money.

use events::ProgrammeId;
use events::programme::{ProgrammeCreated, ProgrammeEvent};

use crate::error::DomainError;

/// Commands on a programme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgrammeCommand {
    /// Create the programme.
    Create {
        /// Its id.
        programme_id: ProgrammeId,
        /// Its name.
        name: String,
    },
}

/// A programme's state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProgrammeState {
    /// Its name, once created.
    pub name: Option<String>,
}

impl ProgrammeState {
    /// Applies one event.
    pub fn evolve(mut self, event: &ProgrammeEvent) -> Self {
        match event {
            ProgrammeEvent::ProgrammeCreated(e) => self.name = Some(e.name.clone()),
        }
        self
    }
}

/// Decides a programme command.
pub fn decide(state: &ProgrammeState, command: &ProgrammeCommand) -> Result<Vec<ProgrammeEvent>, DomainError> {
    match command {
        ProgrammeCommand::Create { programme_id, name } => {
            if state.name.is_some() {
                return Err(DomainError::ProgrammeExists { programme: programme_id.clone() });
            }
            Ok(vec![ProgrammeCreated { programme_id: programme_id.clone(), name: name.clone() }.into()])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_programme_is_created_once() {
        let id = ProgrammeId::parse("nctcr").unwrap();
        let create = ProgrammeCommand::Create { programme_id: id.clone(), name: "NCTCR".into() };
        let events = decide(&ProgrammeState::default(), &create).unwrap();
        let state = events.iter().fold(ProgrammeState::default(), ProgrammeState::evolve);
        assert_eq!(state.name.as_deref(), Some("NCTCR"));
        assert_eq!(decide(&state, &create), Err(DomainError::ProgrammeExists { programme: id }));
    }
}
