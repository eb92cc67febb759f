//! The list criteria as query parameters (SPEC §1): `number`, `status` (repeatable: new, open,
//! waiting, closed, or `all`), `priority` (repeatable), `product`, `from`, `to` (YYYY-MM-DD:
//! tickets active between the two days, both included), `q` (comma-separated keywords), `unread=1`,
//! `sort` (number, subject, status, priority, updated, created; `-` in front for descending),
//! `page`, `per_page` (10, 25, 50 or 100).
//!
//! Without `status`, the list shows the tickets that are not closed. A form submitted with no
//! status box ticked (it carries `filter=1`) means no restriction on status. Values that cannot be
//! read (a word as number, a date like 2026-13-40) are ignored rather than refused.

use chrono::NaiveDate;

use crate::domain::{Priority, Status};
use crate::store::listing::{ListCriteria, SortKey};

pub const PAGE_SIZES: &[i64] = &[10, 25, 50, 100];
pub const DEFAULT_PER_PAGE: i64 = 25;
const DEFAULT_STATUSES: &[Status] = &[Status::New, Status::Open, Status::Waiting];

/// The criteria as the person wrote them (kept for the form) and as the store reads them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Criteria {
    pub number: Option<i64>,
    pub statuses: Vec<Status>,
    pub priorities: Vec<Priority>,
    pub product: String,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub q: String,
    pub unread: bool,
    /// SPEC §8: `me`, `none` or an address; empty: anyone.
    pub assignee: String,
    /// `us` (the customer's message waits for an answer) or `customer`; empty: either.
    pub waiting_on: String,
    pub requester: String,
    pub company: String,
    /// A queue's address; empty: every queue.
    pub queue: String,
    pub sort: SortKey,
    pub descending: bool,
    pub page: i64,
    pub per_page: i64,
}

impl Default for Criteria {
    fn default() -> Self {
        Criteria {
            number: None,
            statuses: DEFAULT_STATUSES.to_vec(),
            priorities: Vec::new(),
            product: String::new(),
            from: None,
            to: None,
            q: String::new(),
            unread: false,
            assignee: String::new(),
            waiting_on: String::new(),
            requester: String::new(),
            company: String::new(),
            queue: String::new(),
            sort: SortKey::Updated,
            descending: true,
            page: 1,
            per_page: DEFAULT_PER_PAGE,
        }
    }
}

impl Criteria {
    /// Reads a query string (the part after `?`).
    pub fn parse(query: &str) -> Criteria {
        let mut c = Criteria::default();
        let pairs = parse_query(query);
        let mut statuses: Option<Vec<Status>> = None;
        let mut form = false;
        for (key, value) in &pairs {
            let value = value.trim();
            match key.as_str() {
                "number" => c.number = value.trim_start_matches('#').parse().ok().filter(|n: &i64| *n > 0),
                "status" if value == "all" => statuses = Some(Status::ALL.to_vec()),
                "status" => {
                    if let Ok(s) = value.parse::<Status>() {
                        let list = statuses.get_or_insert_with(Vec::new);
                        if !list.contains(&s) {
                            list.push(s);
                        }
                    }
                }
                "priority" => {
                    if let Ok(p) = value.parse::<Priority>()
                        && !c.priorities.contains(&p)
                    {
                        c.priorities.push(p);
                    }
                }
                "product" => c.product = value.chars().take(200).collect(),
                "from" => c.from = NaiveDate::parse_from_str(value, "%Y-%m-%d").ok(),
                "to" => c.to = NaiveDate::parse_from_str(value, "%Y-%m-%d").ok(),
                "q" => c.q = value.chars().take(500).collect(),
                "unread" => c.unread = matches!(value, "1" | "true" | "on"),
                "assignee" => c.assignee = value.to_lowercase().chars().take(254).collect(),
                "waiting_on" => {
                    c.waiting_on = Some(value).filter(|v| matches!(*v, "us" | "customer")).unwrap_or("").into()
                }
                "requester" => c.requester = value.to_lowercase().chars().take(254).collect(),
                "company" => c.company = value.chars().take(200).collect(),
                "queue" => c.queue = value.to_lowercase().chars().take(254).collect(),
                "sort" => {
                    let (desc, name) = match value.strip_prefix('-') {
                        Some(rest) => (true, rest),
                        None => (false, value),
                    };
                    if let Some(k) = SortKey::parse(name) {
                        c.sort = k;
                        c.descending = desc;
                    }
                }
                "page" => c.page = value.parse().ok().filter(|p: &i64| *p >= 1).unwrap_or(1).min(1_000_000),
                "per_page" => {
                    c.per_page = value.parse().ok().filter(|n| PAGE_SIZES.contains(n)).unwrap_or(DEFAULT_PER_PAGE)
                }
                "filter" => form = true,
                _ => {}
            }
        }
        c.statuses = match statuses {
            Some(mut s) => {
                s.sort_by_key(|s| Status::ALL.iter().position(|a| a == s));
                s
            }
            None if form => Status::ALL.to_vec(),
            None => DEFAULT_STATUSES.to_vec(),
        };
        c.priorities.sort_by_key(|p| Priority::ALL.iter().position(|a| a == p));
        c
    }

    /// The canonical query string (without `page` when `with_page` is false): what links, saved
    /// criteria and exports carry.
    pub fn to_query(&self, with_page: bool) -> String {
        let mut q: Vec<(&str, String)> = Vec::new();
        if let Some(n) = self.number {
            q.push(("number", n.to_string()));
        }
        if self.statuses.len() == Status::ALL.len() {
            q.push(("status", "all".into()));
        } else if self.statuses != DEFAULT_STATUSES {
            q.extend(self.statuses.iter().map(|s| ("status", s.as_str().to_string())));
        }
        q.extend(self.priorities.iter().map(|p| ("priority", p.as_str().to_string())));
        if !self.product.is_empty() {
            q.push(("product", self.product.clone()));
        }
        if let Some(d) = self.from {
            q.push(("from", d.format("%Y-%m-%d").to_string()));
        }
        if let Some(d) = self.to {
            q.push(("to", d.format("%Y-%m-%d").to_string()));
        }
        if !self.q.is_empty() {
            q.push(("q", self.q.clone()));
        }
        if self.unread {
            q.push(("unread", "1".into()));
        }
        for (key, value) in [
            ("assignee", &self.assignee),
            ("waiting_on", &self.waiting_on),
            ("requester", &self.requester),
            ("company", &self.company),
            ("queue", &self.queue),
        ] {
            if !value.is_empty() {
                q.push((key, value.clone()));
            }
        }
        if self.sort != SortKey::Updated || !self.descending {
            q.push(("sort", self.sort_param(self.sort, self.descending)));
        }
        if with_page && self.page > 1 {
            q.push(("page", self.page.to_string()));
        }
        if self.per_page != DEFAULT_PER_PAGE {
            q.push(("per_page", self.per_page.to_string()));
        }
        q.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect::<Vec<_>>().join("&")
    }

    pub fn sort_param(&self, key: SortKey, descending: bool) -> String {
        format!("{}{}", if descending { "-" } else { "" }, key.as_str())
    }

    /// The keywords of `q`: comma-separated, trimmed, at most 10.
    pub fn keywords(&self) -> Vec<String> {
        self.q.split(',').map(str::trim).filter(|k| !k.is_empty()).take(10).map(str::to_string).collect()
    }

    /// The store's criteria for `viewer` (who `assignee=me` is): this page, or every matching
    /// ticket (`paged` false, for exports).
    pub fn to_list(&self, viewer: &str, paged: bool) -> ListCriteria {
        let text = |v: &String| Some(v.clone()).filter(|v| !v.is_empty());
        let day = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp());
        ListCriteria {
            number: self.number,
            statuses: self.statuses.clone(),
            priorities: self.priorities.clone(),
            product: Some(self.product.clone()).filter(|p| !p.is_empty()),
            from: self.from.and_then(day),
            until: self.to.and_then(|d| d.succ_opt()).and_then(day),
            keywords: self.keywords(),
            unread_only: self.unread,
            assignee: match self.assignee.as_str() {
                "" => None,
                "none" => Some(None),
                "me" => Some(Some(viewer.to_string())),
                address => Some(Some(address.to_string())),
            },
            waiting_on_us: match self.waiting_on.as_str() {
                "us" => Some(true),
                "customer" => Some(false),
                _ => None,
            },
            requester: text(&self.requester),
            company: text(&self.company),
            queue: text(&self.queue),
            sort: self.sort,
            descending: self.descending,
            offset: if paged { (self.page - 1) * self.per_page } else { 0 },
            limit: paged.then_some(self.per_page),
            search: Default::default(),
        }
    }
}

/// `application/x-www-form-urlencoded` pairs, repeated keys kept in order; invalid UTF-8 is
/// replaced, never an error.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

/// Percent-decoding with `+` as a space (one value of a query string).
#[cfg(test)]
fn decode(s: &str) -> String {
    parse_query(&format!("x={}", s.replace('&', "%26"))).pop().map(|(_, v)| v).unwrap_or_default()
}

/// Everything but the unreserved characters of RFC 3986, which is also RFC 5987's `attr-char`
/// minus a few: safe in a query value and in a `filename*=` parameter.
const RESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Percent-encoding of everything but the unreserved characters.
pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, RESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_query_is_the_default_list_of_open_tickets() {
        let c = Criteria::parse("");
        assert_eq!(c, Criteria::default());
        assert_eq!(c.to_query(true), "");
        assert_eq!(c.to_list("a@example.com", true).statuses, vec![Status::New, Status::Open, Status::Waiting]);
    }

    #[test]
    fn every_criterion_is_read_and_written_back() {
        let q = "number=42&status=closed&status=new&priority=blocking&product=Imprimante+X&from=2026-01-02&to=2026-02-03&q=toner%2C+bourrage&unread=1&sort=-number&page=3&per_page=50";
        let c = Criteria::parse(q);
        assert_eq!(c.number, Some(42));
        assert_eq!(c.statuses, vec![Status::New, Status::Closed]);
        assert_eq!(c.priorities, vec![Priority::Blocking]);
        assert_eq!(c.product, "Imprimante X");
        assert_eq!(c.keywords(), vec!["toner", "bourrage"]);
        assert!(c.unread && c.descending && c.sort == SortKey::Number);
        assert_eq!((c.page, c.per_page), (3, 50));
        assert_eq!(Criteria::parse(&c.to_query(true)), c);
        let l = c.to_list("a@example.com", true);
        assert_eq!((l.offset, l.limit), (100, Some(50)));
        // `to` includes its whole day.
        assert_eq!(l.until.unwrap() - l.from.unwrap(), 33 * 86_400);
    }

    #[test]
    fn odd_values_are_ignored() {
        let c = Criteria::parse("number=abc&status=bogus&from=2026-13-40&per_page=7&page=-2&sort=evil");
        assert_eq!(c, Criteria::default());
        assert_eq!(Criteria::parse("filter=1").statuses, Status::ALL.to_vec());
        assert_eq!(Criteria::parse("status=all").to_query(false), "status=all");
    }

    #[test]
    fn percent_coding_round_trips() {
        let s = "é & =+%/?#<x>";
        assert_eq!(decode(&encode(s)), s);
        assert_eq!(decode("a%2"), "a%2");
        assert_eq!(decode("%zz%41"), "%zzA");
    }
}
