use crate::languages;
use regex::Regex;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} `{other}`", stringify!($name).to_lowercase())),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

string_enum!(
    /// Ticket life: New → In progress → Waiting on customer → Closed (reopenable).
    Status { New => "new", Open => "open", Waiting => "waiting", Closed => "closed" }
);
string_enum!(Priority { Low => "low", Normal => "normal", Blocking => "blocking" });
string_enum!(
    /// `note` is internal (staff only); `event` is a traced change.
    MessageKind { Customer => "customer", Staff => "staff", Note => "note", Event => "event" }
);

impl Status {
    /// Its label in `lang` (the catalog's `status_<code>`).
    pub fn label(self, lang: &str) -> &'static str {
        crate::catalog::lookup(lang, &format!("status_{}", self.as_str())).unwrap_or(self.as_str())
    }
}

impl Priority {
    /// Its label in `lang` (the catalog's `priority_<code>`).
    pub fn label(self, lang: &str) -> &'static str {
        crate::catalog::lookup(lang, &format!("priority_{}", self.as_str())).unwrap_or(self.as_str())
    }
}

/// Finds `[<tag> #<n>]` tokens in subjects, for the configured tag and the legacy ones.
#[derive(Clone, Debug)]
pub struct SubjectToken {
    tag: String,
    pattern: regex::Regex,
}

impl SubjectToken {
    pub fn new(tag: &str, legacy: &[String]) -> SubjectToken {
        let tags: Vec<String> =
            std::iter::once(tag.to_string()).chain(legacy.iter().cloned()).map(|t| regex::escape(t.trim())).collect();
        // Tolerates case, spacing and `#`-less forms: "[ticket#42]", "[ Ticket # 42 ]".
        let pattern = regex::Regex::new(&format!(r"(?i)\[\s*(?:{})\s*#?\s*(\d{{1,12}})\s*\]", tags.join("|")))
            .expect("token regex");
        SubjectToken { tag: tag.to_string(), pattern }
    }

    /// The ticket number named by the subject's first token of ours, if any.
    pub fn find(&self, subject: &str) -> Option<i64> {
        self.pattern.captures_iter(subject).find_map(|c| c[1].parse().ok())
    }

    pub fn format(&self, number: i64) -> String {
        format!("[{} #{number}]", self.tag)
    }

    /// Subject with our tokens and reply/forward prefixes removed (for a ticket's title).
    pub fn clean_subject(&self, subject: &str) -> String {
        let without = self.pattern.replace_all(subject, "");
        strip_reply_prefixes(without.trim()).to_string()
    }
}

/// Removes leading reply and forward prefixes of every language (`Re:`, `RE :`, `TR:`, `Fwd:`,
/// `AW:`, `WG:`, `Réf :`, `Odp:`, `转发：`…), repeated, with Outlook's counters (`RE[2]:`).
pub fn strip_reply_prefixes(mut s: &str) -> &str {
    static PREFIX: LazyLock<Regex> = LazyLock::new(|| {
        let words = languages::all(|l| l.reply_prefixes).chain(languages::all(|l| l.forward_prefixes));
        prefix_regex(languages::literal_alternation(words))
    });
    while let Some(m) = PREFIX.find(s) {
        s = &s[m.end()..];
    }
    s.trim()
}

/// `^ PREFIX [n] :` for the alternation `words`, full-width colon included.
fn prefix_regex(words: String) -> Regex {
    Regex::new(&format!(r"(?i)^\s*{words}\s*(?:\[\d+\])?\s*[:：]\s*")).expect("prefix regex")
}

/// True when the subject starts with a built-in forward prefix of any language (`Fwd:`, `TR:`,
/// `WG:`, `RV:`, `I:`, `Doorst:`, `PD:`…).
pub fn is_forward_subject(s: &str) -> bool {
    ForwardPrefixes::built_in().is_forward(s)
}

/// The forward prefixes that mark a subject as a forward: the built-in ones of every language
/// plus `helpdesk.forward_prefixes`.
#[derive(Clone, Debug)]
pub struct ForwardPrefixes {
    pattern: Regex,
}

impl ForwardPrefixes {
    /// The built-in list extended with `extra` (prefixes without their colon, e.g. "Doorgestuurd").
    pub fn new(extra: &[String]) -> ForwardPrefixes {
        let extra = extra.iter().map(|p| p.trim()).filter(|p| !p.is_empty());
        let words = languages::all(|l| l.forward_prefixes).map(|p| -> &str { p }).chain(extra);
        ForwardPrefixes { pattern: prefix_regex(languages::literal_alternation(words)) }
    }

    /// The built-in list alone, compiled once.
    pub fn built_in() -> &'static ForwardPrefixes {
        static BUILT_IN: LazyLock<ForwardPrefixes> = LazyLock::new(|| ForwardPrefixes::new(&[]));
        &BUILT_IN
    }

    pub fn is_forward(&self, subject: &str) -> bool {
        self.pattern.is_match(subject)
    }

    /// `subject` without its leading forward prefixes (configured ones included), for a title.
    pub fn strip<'a>(&self, mut subject: &'a str) -> &'a str {
        while let Some(m) = self.pattern.find(subject) {
            subject = &subject[m.end()..];
        }
        subject
    }
}

impl Default for ForwardPrefixes {
    fn default() -> ForwardPrefixes {
        ForwardPrefixes::built_in().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_found_through_prefixes_case_and_spacing() {
        let t = SubjectToken::new("Ticket", &["Support".into()]);
        assert_eq!(t.find("Re: [Ticket #42] Imprimante"), Some(42));
        assert_eq!(t.find("RE : TR: [ticket#7] x"), Some(7));
        assert_eq!(t.find("AW: [OTRS-123] [ Ticket # 9 ] x"), Some(9));
        assert_eq!(t.find("[Support #5] legacy"), Some(5));
        assert_eq!(t.find("[Other #5] x"), None);
        assert_eq!(t.format(3), "[Ticket #3]");
    }

    #[test]
    fn subjects_are_cleaned_for_titles() {
        let t = SubjectToken::new("Ticket", &[]);
        assert_eq!(t.clean_subject("RE : Re: [Ticket #4] Imprimante bloquée"), "Imprimante bloquée");
        assert!(is_forward_subject("TR: demande"));
        assert!(!is_forward_subject("Travaux"));
        assert_eq!(t.clean_subject("AW: WG: [Ticket #4] Drucker"), "Drucker");
        assert_eq!(t.clean_subject("Odp: PD: Drukarka"), "Drukarka");
        assert_eq!(t.clean_subject("转发： 打印机"), "打印机");
    }

    #[test]
    fn forward_prefixes_of_every_language_and_from_the_configuration_are_known() {
        for subject in [
            "Fwd: x",
            "FW: x",
            "TR : x",
            "WG: x",
            "RV: x",
            "I: x",
            "ENC: x",
            "Doorst: x",
            "PD: x",
            "VB: x",
            "İLT: x",
            "转发：x",
        ] {
            assert!(is_forward_subject(subject), "{subject}");
        }
        assert!(!is_forward_subject("Re: x") && !is_forward_subject("Information: x"));
        let configured = ForwardPrefixes::new(&["Doorgestuurd".to_string(), "Weiter.".to_string()]);
        assert!(configured.is_forward("Doorgestuurd: x") && configured.is_forward("weiter.: x"));
        assert!(configured.is_forward("Fwd: x") && !configured.is_forward("Weiterleitung x"));
        assert_eq!(configured.strip("Doorgestuurd: Fwd: x"), "x");
    }

    #[test]
    fn statuses_parse_and_print() {
        assert_eq!("Waiting".parse::<Status>().unwrap(), Status::Waiting);
        assert!("bogus".parse::<Status>().is_err());
        assert_eq!(Priority::Blocking.as_str(), "blocking");
    }
}
