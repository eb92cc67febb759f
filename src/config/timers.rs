//! `[timers]` (SPEC §8): durations such as "3d", "4h", "30s" ("" = off) and the digest's time of day.

use serde::Deserialize;

/// SPEC §8 timers, as durations ("3d", "4h", "30s"; "" = off), and the digest's time of day.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timers {
    #[serde(default)]
    pub remind_waiting: String,
    #[serde(default)]
    pub close_waiting: String,
    #[serde(default)]
    pub escalate_blocking: String,
    #[serde(default)]
    pub escalate_normal: String,
    #[serde(default)]
    pub escalate_low: String,
    /// "08:00" in `helpdesk.time_zone`; "" = no digest.
    #[serde(default)]
    pub digest_at: String,
}

/// "90s", "15m", "4h", "3d", "1w" (or several: "1d12h") → seconds; "" → None (off).
pub fn parse_duration(text: &str) -> Result<Option<i64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            ' ' => continue,
            _ => return Err(format!("`{text}`: unknown unit `{c}` (use s, m, h, d, w)")),
        };
        let n: i64 = digits.parse().map_err(|_| format!("`{text}`: a number must come before `{c}`"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!("`{text}`: a unit must follow {digits} (s, m, h, d, w)"));
    }
    if total <= 0 {
        return Err(format!("`{text}`: a duration must be positive"));
    }
    Ok(Some(total))
}

/// "08:00" → minutes after midnight.
pub fn parse_time_of_day(text: &str) -> Result<Option<u32>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let (h, m) = text.split_once(':').ok_or_else(|| format!("`{text}` is not HH:MM"))?;
    match (h.parse::<u32>(), m.parse::<u32>()) {
        (Ok(h), Ok(m)) if h < 24 && m < 60 && m.to_string().len() <= 2 => Ok(Some(h * 60 + m)),
        _ => Err(format!("`{text}` is not HH:MM")),
    }
}

impl Timers {
    pub(super) fn entries(&self) -> [(&'static str, &str); 5] {
        [
            ("remind_waiting", &self.remind_waiting),
            ("close_waiting", &self.close_waiting),
            ("escalate_blocking", &self.escalate_blocking),
            ("escalate_normal", &self.escalate_normal),
            ("escalate_low", &self.escalate_low),
        ]
    }

    /// A timer's duration in seconds (validated at load).
    pub fn seconds(&self, key: &str) -> Option<i64> {
        self.entries().iter().find(|(k, _)| *k == key).and_then(|(_, v)| parse_duration(v).ok().flatten())
    }

    /// Whether any timer that follows tickets is on (the digest does not).
    pub fn any_ticket_timer(&self) -> bool {
        self.entries().iter().any(|(_, v)| !v.trim().is_empty())
    }

    pub fn digest_minute(&self) -> Option<u32> {
        parse_time_of_day(&self.digest_at).ok().flatten()
    }
}
