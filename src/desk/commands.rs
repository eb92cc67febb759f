//! Staff commands at the top of a staff mail (SPEC §3, §8): `#status`, `#priority`, `#note`,
//! `#requester`, `#assign`. Read from the first lines only; anything else ends them.

use crate::domain::{EmailAddress, Priority, Status};

/// The argument of `#assign`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Assign {
    Me,
    To(EmailAddress),
    Nobody,
}

impl Assign {
    fn parse(arg: &str) -> Option<Assign> {
        match arg.to_lowercase().as_str() {
            "me" | "moi" => Some(Assign::Me),
            "none" | "nobody" | "personne" | "aucun" => Some(Assign::Nobody),
            other => EmailAddress::parse(other).map(Assign::To),
        }
    }

    /// Whom it names, `actor` being "me".
    pub fn resolve(&self, actor: &EmailAddress) -> Option<EmailAddress> {
        match self {
            Assign::Me => Some(actor.clone()),
            Assign::To(a) => Some(a.clone()),
            Assign::Nobody => None,
        }
    }
}

/// Commands at the top of a staff mail (SPEC §3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StaffCommands {
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub note: bool,
    pub requester: Option<EmailAddress>,
    /// `#assign me|ADDRESS|none` (SPEC §8).
    pub assign: Option<Assign>,
    pub unknown: Vec<String>,
    /// The text without the command lines.
    pub rest: String,
}

impl StaffCommands {
    pub fn parse(text: &str) -> StaffCommands {
        let mut c = StaffCommands::default();
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.peek() {
            let l = line.trim();
            if l.is_empty() {
                lines.next();
                continue;
            }
            let Some(cmd) = l.strip_prefix('#') else { break };
            if !cmd.chars().next().is_some_and(|ch| ch.is_alphabetic()) {
                break;
            }
            let mut words = cmd.split_whitespace();
            let name = words.next().unwrap_or("").to_lowercase();
            let arg = words.next();
            let ok = match name.as_str() {
                "status" | "statut" => arg.and_then(|a| a.parse().ok()).map(|s| c.status = Some(s)).is_some(),
                "priority" | "priorite" | "priorité" => {
                    arg.and_then(|a| a.parse().ok()).map(|p| c.priority = Some(p)).is_some()
                }
                "note" => {
                    c.note = true;
                    true
                }
                "requester" | "demandeur" => arg.and_then(EmailAddress::parse).map(|a| c.requester = Some(a)).is_some(),
                "assign" | "assigner" => arg.and_then(Assign::parse).map(|a| c.assign = Some(a)).is_some(),
                _ => false,
            };
            if !ok {
                c.unknown.push(l.chars().filter(|ch| !ch.is_control()).take(100).collect());
            }
            lines.next();
        }
        c.rest = lines.collect::<Vec<_>>().join("\n").trim().to_string();
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staff_commands_are_read_from_the_top_only() {
        let c = StaffCommands::parse("#status closed\n#priority blocking\n\nBonjour,\n#note not a command here");
        assert_eq!(c.status, Some(Status::Closed));
        assert_eq!(c.priority, Some(Priority::Blocking));
        assert!(!c.note);
        assert_eq!(c.rest, "Bonjour,\n#note not a command here");
        assert!(c.unknown.is_empty());
    }

    #[test]
    fn unknown_commands_are_collected() {
        let c = StaffCommands::parse("#frobnicate now\n#status weird\nText");
        assert_eq!(c.unknown, vec!["#frobnicate now", "#status weird"]);
    }

    #[test]
    fn requester_and_note_commands() {
        let c = StaffCommands::parse("#requester Client@Customer.example\n#note\nvu au téléphone");
        assert_eq!(c.requester.unwrap().as_str(), "client@customer.example");
        assert!(c.note);
        assert_eq!(c.rest, "vu au téléphone");
    }
}
