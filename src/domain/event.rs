//! A ticket's history as facts: what changed, as a code and its arguments, told in words only when
//! read — in the reader's language, from the catalog's `event_<code>` (see [`crate::catalog`]).
//!
//! Stored in `messages.event` of `event` messages, and shown in the JSON API, as the serde shape of
//! this type: `{"code": "status_changed", "args": {"from": "new", "to": "waiting"}}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Priority, Status};
use crate::catalog;

/// One traced change. Variants without arguments are written `{}` so that `args` is always an
/// object in the JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", content = "args", rename_all = "snake_case")]
pub enum Event {
    StatusChanged {
        from: Status,
        to: Status,
    },
    PriorityChanged {
        from: Priority,
        to: Priority,
    },
    /// Someone in Cc of a customer's mail now follows the ticket.
    WatcherAdded {
        address: String,
    },
    Assigned {
        to: String,
    },
    Unassigned {},
    /// Staff opened the ticket for a customer; `by` is the staff member's display name.
    OpenedOnBehalf {
        by: String,
        requester: String,
    },
    /// A new ticket continuing a closed one.
    FollowsUp {
        ticket: i64,
    },
    /// The first mail's sender failed DMARC.
    Unverified {},
    Reopened {
        reason: String,
    },
    ReopenedByCustomer {},
    ReminderSent {},
    Overdue {},
    /// A delivery report: `notice` is the notification's event, `failures` "address: reason; …".
    DeliveryFailed {
        notice: String,
        failures: String,
    },
    /// The mail server refused a notification for good.
    NotificationRefused {
        recipient: String,
        error: String,
    },
    /// History written as prose before events were facts, that matched no known wording: shown as is.
    Text {
        text: String,
    },
}

/// Every code, in declaration order (a test checks that it matches the variants).
pub const CODES: &[&str] = &[
    "status_changed",
    "priority_changed",
    "watcher_added",
    "assigned",
    "unassigned",
    "opened_on_behalf",
    "follows_up",
    "unverified",
    "reopened",
    "reopened_by_customer",
    "reminder_sent",
    "overdue",
    "delivery_failed",
    "notification_refused",
    "text",
];

impl Event {
    /// Its code (`status_changed`…).
    pub fn code(&self) -> &'static str {
        let tagged = serde_json::to_value(self).expect("an event serialises");
        let code = tagged["code"].as_str().unwrap_or_default();
        CODES.iter().copied().find(|c| *c == code).unwrap_or("text")
    }

    /// Its arguments, a JSON object.
    pub fn args(&self) -> Value {
        let mut tagged = serde_json::to_value(self).expect("an event serialises");
        tagged.get_mut("args").map(Value::take).unwrap_or_else(|| Value::Object(Default::default()))
    }

    /// Its stored form, `{"code": …, "args": {…}}`.
    pub fn stored(&self) -> String {
        serde_json::to_string(self).expect("an event serialises")
    }

    /// The event from its stored form; what does not read as a known event comes back as
    /// [`Event::Text`] of `fallback` (the prose stored beside it), so that nothing is lost.
    pub fn from_stored(stored: &str, fallback: &str) -> Event {
        serde_json::from_str(stored).unwrap_or_else(|_| Event::Text { text: fallback.to_string() })
    }

    /// The event told in `lang`: status and priority codes read as their labels.
    pub fn text(&self, lang: &str) -> String {
        let args: Vec<(&str, String)> = match self {
            Event::StatusChanged { from, to } => {
                vec![("from", from.label(lang).to_string()), ("to", to.label(lang).to_string())]
            }
            Event::PriorityChanged { from, to } => {
                vec![("from", from.label(lang).to_string()), ("to", to.label(lang).to_string())]
            }
            _ => match self.args() {
                Value::Object(map) => map
                    .into_iter()
                    .filter_map(|(k, v)| {
                        let name = Self::arg_name(&k)?;
                        Some((name, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
                    })
                    .collect(),
                _ => Vec::new(),
            },
        };
        catalog::text(lang, &format!("event_{}", self.code()), &args)
    }

    /// The same event with `f` applied to every text argument (not to status or priority codes):
    /// how the visibility rule hides staff addresses from customers.
    pub fn map_text(&self, f: impl Fn(&str) -> String) -> Event {
        let mut args = self.args();
        if let Value::Object(map) = &mut args
            && !matches!(self, Event::StatusChanged { .. } | Event::PriorityChanged { .. })
        {
            for v in map.values_mut() {
                if let Value::String(s) = v {
                    *s = f(s);
                }
            }
        }
        serde_json::from_value(serde_json::json!({"code": self.code(), "args": args})).unwrap_or_else(|_| self.clone())
    }

    /// The placeholder names the catalog uses, as `'static` strings.
    fn arg_name(key: &str) -> Option<&'static str> {
        const NAMES: &[&str] = &[
            "address",
            "to",
            "by",
            "requester",
            "ticket",
            "reason",
            "notice",
            "failures",
            "recipient",
            "error",
            "text",
        ];
        NAMES.iter().copied().find(|n| *n == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_of_each() -> Vec<Event> {
        vec![
            Event::StatusChanged { from: Status::New, to: Status::Waiting },
            Event::PriorityChanged { from: Priority::Normal, to: Priority::Blocking },
            Event::WatcherAdded { address: "carol@example.org".into() },
            Event::Assigned { to: "agent@support.example".into() },
            Event::Unassigned {},
            Event::OpenedOnBehalf { by: "Alice".into(), requester: "bob@example.org".into() },
            Event::FollowsUp { ticket: 12 },
            Event::Unverified {},
            Event::Reopened { reason: "still broken".into() },
            Event::ReopenedByCustomer {},
            Event::ReminderSent {},
            Event::Overdue {},
            Event::DeliveryFailed { notice: "staff_answer".into(), failures: "bob@example.org: 5.1.1".into() },
            Event::NotificationRefused { recipient: "bob@example.org".into(), error: "550 no such user".into() },
            Event::Text { text: "Anything at all".into() },
        ]
    }

    fn told(e: &Event) -> (String, String) {
        (e.text("fr"), e.text("en"))
    }

    #[test]
    fn every_code_is_a_variant_and_has_words_in_every_language() {
        let codes: Vec<&str> = one_of_each().iter().map(Event::code).collect();
        assert_eq!(codes, CODES, "CODES lists the variants in order");
        for lang in catalog::languages() {
            for code in CODES {
                assert!(catalog::lookup(lang, &format!("event_{code}")).is_some(), "{lang}: event_{code} is missing");
            }
        }
    }

    #[test]
    fn every_event_is_told_in_both_languages_with_its_arguments() {
        let expected = [
            ("Statut : Nouveau → En attente client", "Status: New → Waiting on customer"),
            ("Priorité : Normale → Bloquante", "Priority: Normal → Blocking"),
            ("En copie : carol@example.org", "In copy: carol@example.org"),
            ("Assigné à agent@support.example", "Assigned to agent@support.example"),
            ("Désassigné", "Unassigned"),
            ("Ouvert par Alice pour le compte de bob@example.org", "Opened by Alice on behalf of bob@example.org"),
            ("Suite du ticket n° 12", "Follows up ticket #12"),
            (
                "Expéditeur non vérifié : l'adresse From a échoué au contrôle DMARC",
                "Sender not verified: the From address failed the DMARC check",
            ),
            ("Rouvert : still broken", "Reopened: still broken"),
            ("Rouvert par la réponse du client", "Reopened by the customer's answer"),
            ("Relance envoyée au client", "Reminder sent to the customer"),
            ("En retard : pas encore de réponse", "Overdue: no staff answer yet"),
            (
                "Échec de distribution (staff_answer) : bob@example.org: 5.1.1",
                "Delivery failed (staff_answer): bob@example.org: 5.1.1",
            ),
            (
                "Notification à bob@example.org refusée : 550 no such user",
                "Notification to bob@example.org refused: 550 no such user",
            ),
            ("Anything at all", "Anything at all"),
        ];
        let events = one_of_each();
        assert_eq!(events.len(), expected.len());
        for (event, (fr, en)) in events.iter().zip(expected) {
            assert_eq!(told(event), (fr.to_string(), en.to_string()), "{event:?}");
        }
    }

    #[test]
    fn an_event_survives_its_stored_form() {
        for event in one_of_each() {
            assert!(event.args().is_object(), "{event:?}");
            assert_eq!(Event::from_stored(&event.stored(), "prose"), event);
        }
    }

    #[test]
    fn the_json_shape_is_code_and_args() {
        let e = Event::StatusChanged { from: Status::New, to: Status::Waiting };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"code": "status_changed", "args": {"from": "new", "to": "waiting"}})
        );
        assert_eq!(
            serde_json::to_value(Event::Overdue {}).unwrap(),
            serde_json::json!({"code": "overdue", "args": {}})
        );
    }

    #[test]
    fn what_does_not_read_as_an_event_is_kept_as_prose() {
        let unknown = r#"{"code": "no_such_code", "args": {}}"#;
        assert_eq!(Event::from_stored(unknown, "old words"), Event::Text { text: "old words".into() });
        let half = r#"{"code": "status_changed", "args": {"from": "new"}}"#;
        assert_eq!(Event::from_stored(half, "half"), Event::Text { text: "half".into() });
        assert_eq!(Event::from_stored("not json", "prose"), Event::Text { text: "prose".into() });
    }

    #[test]
    fn map_text_touches_words_but_not_status_codes() {
        let hide = |s: &str| s.replace("agent@support.example", "Support");
        assert_eq!(
            Event::Assigned { to: "agent@support.example".into() }.map_text(hide),
            Event::Assigned { to: "Support".into() }
        );
        let s = Event::StatusChanged { from: Status::New, to: Status::Open };
        assert_eq!(s.map_text(|_| "x".into()), s);
    }
}
