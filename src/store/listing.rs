//! The ticket list: its criteria, sort keys and the one query that answers them on both backends.

use diesel::prelude::*;

use super::search_index;
use super::tickets::TicketRow;
use super::visibility::{self, Audience};
use super::{AnyConnection, Conn};
use crate::domain::{Priority, Status};

/// The list view's sortable columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortKey {
    Number,
    Subject,
    Status,
    Priority,
    #[default]
    Updated,
    Created,
}

impl SortKey {
    pub const ALL: &'static [SortKey] =
        &[SortKey::Number, SortKey::Subject, SortKey::Status, SortKey::Priority, SortKey::Updated, SortKey::Created];

    pub fn as_str(self) -> &'static str {
        match self {
            SortKey::Number => "number",
            SortKey::Subject => "subject",
            SortKey::Status => "status",
            SortKey::Priority => "priority",
            SortKey::Updated => "updated",
            SortKey::Created => "created",
        }
    }

    pub fn parse(s: &str) -> Option<SortKey> {
        SortKey::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    fn sql(self, backend_is_sqlite: bool) -> &'static str {
        match self {
            SortKey::Number => "t.number",
            SortKey::Subject if backend_is_sqlite => "t.subject COLLATE NOCASE",
            SortKey::Subject => "lower(t.subject)",
            SortKey::Status => "CASE t.status WHEN 'new' THEN 0 WHEN 'open' THEN 1 WHEN 'waiting' THEN 2 ELSE 3 END",
            SortKey::Priority => "CASE t.priority WHEN 'low' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END",
            SortKey::Updated => "t.updated_at",
            SortKey::Created => "t.created_at",
        }
    }
}

/// The list view's criteria, already parsed (the web layer reads them from the query string).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListCriteria {
    pub number: Option<i64>,
    /// Empty: any status.
    pub statuses: Vec<Status>,
    /// Empty: any priority.
    pub priorities: Vec<Priority>,
    /// Case-insensitive equality.
    pub product: Option<String>,
    /// Active between: updated at or after `from` and created before `until` (unix seconds).
    pub from: Option<i64>,
    pub until: Option<i64>,
    /// Each keyword's words must all appear in one message (or the subject) of the ticket; every
    /// keyword must match the ticket.
    pub keywords: Vec<String>,
    pub unread_only: bool,
    /// `Some(None)`: unassigned tickets; `Some(Some(a))`: those assigned to `a`.
    pub assignee: Option<Option<String>>,
    /// `Some(true)`: waiting on staff (the customer's message is unanswered); `Some(false)`:
    /// waiting on the customer.
    pub waiting_on_us: Option<bool>,
    pub requester: Option<String>,
    /// Case-insensitive equality.
    pub company: Option<String>,
    pub queue: Option<String>,
    pub sort: SortKey,
    pub descending: bool,
    pub offset: i64,
    /// `None`: every matching ticket (exports).
    pub limit: Option<i64>,
    /// How a search is bounded (issue 17).
    pub search: SearchLimits,
}

/// How a keyword search is bounded: a common word's page is found by walking the list in its
/// order and stopping at the page's end, and its count stops at a cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchLimits {
    /// A keyword matching fewer messages than this is searched from its matches (all of them,
    /// counted exactly); when every keyword matches this many, the list walks its tickets newest
    /// first (or by number) and checks each, stopping at the page's end.
    pub common: i64,
    /// A walked search counts its tickets up to this many, then shows "more than". Each ticket
    /// counted is checked against the index for every keyword: 200 keeps the stress searches
    /// (two common words, staff) near 20 ms of CPU; 1,000 cost 130 ms (BENCHMARKS.md).
    pub count_cap: i64,
}

impl Default for SearchLimits {
    fn default() -> Self {
        SearchLimits { common: 2_000, count_cap: 200 }
    }
}

/// How many tickets a list selects: `n`, or more than `n` when `capped`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count {
    pub n: i64,
    pub capped: bool,
}

impl Count {
    pub fn exact(n: i64) -> Count {
        Count { n, capped: false }
    }
}

impl Default for ListCriteria {
    fn default() -> Self {
        ListCriteria {
            number: None,
            statuses: vec![Status::New, Status::Open, Status::Waiting],
            priorities: Vec::new(),
            product: None,
            from: None,
            until: None,
            keywords: Vec::new(),
            unread_only: false,
            assignee: None,
            waiting_on_us: None,
            requester: None,
            company: None,
            queue: None,
            sort: SortKey::Updated,
            descending: true,
            offset: 0,
            limit: Some(25),
            search: SearchLimits::default(),
        }
    }
}

/// A ticket of the list, with the viewer's unread marker.
#[derive(QueryableByName, Clone, Debug)]
pub struct ListedTicket {
    #[diesel(embed)]
    pub ticket: TicketRow,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub unread: bool,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// A row of a page that counts its whole selection (`COUNT(*) OVER ()`).
#[derive(QueryableByName)]
struct CountedRow {
    #[diesel(embed)]
    listed: ListedTicket,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    selected: i64,
}

/// A bound parameter of a hand-written query.
#[derive(Clone, Debug)]
enum Param {
    Int(i64),
    Text(String),
}

/// A query's text and parameters, with placeholders in the backend's syntax (`?` or `$n`).
struct SqlBuilder {
    sqlite: bool,
    sql: String,
    params: Vec<Param>,
}

impl SqlBuilder {
    fn push(&mut self, s: &str) -> &mut Self {
        self.sql.push_str(s);
        self
    }

    fn param(&mut self, p: Param) -> &mut Self {
        self.params.push(p);
        if self.sqlite {
            self.sql.push('?');
        } else {
            self.sql.push_str(&format!("${}", self.params.len()));
        }
        self
    }

    fn load<T>(&self, conn: &mut Conn) -> anyhow::Result<Vec<T>>
    where
        T: QueryableByName<diesel::sqlite::Sqlite> + 'static,
        T: PgQueryable,
    {
        match conn {
            #[cfg(feature = "postgres")]
            AnyConnection::Postgresql(pg) => {
                let mut q = diesel::sql_query(self.sql.clone()).into_boxed::<diesel::pg::Pg>();
                for p in &self.params {
                    q = match p {
                        Param::Int(v) => q.bind::<diesel::sql_types::BigInt, _>(*v),
                        Param::Text(v) => q.bind::<diesel::sql_types::Text, _>(v.clone()),
                    };
                }
                Ok(q.load(pg)?)
            }
            AnyConnection::Sqlite(sqlite) => {
                let mut q = diesel::sql_query(self.sql.clone()).into_boxed::<diesel::sqlite::Sqlite>();
                for p in &self.params {
                    q = match p {
                        Param::Int(v) => q.bind::<diesel::sql_types::BigInt, _>(*v),
                        Param::Text(v) => q.bind::<diesel::sql_types::Text, _>(v.clone()),
                    };
                }
                Ok(q.load(sqlite)?)
            }
        }
    }
}

/// `QueryableByName` for PostgreSQL too, when that backend is built.
#[cfg(feature = "postgres")]
pub trait PgQueryable: QueryableByName<diesel::pg::Pg> {}
#[cfg(feature = "postgres")]
impl<T: QueryableByName<diesel::pg::Pg>> PgQueryable for T {}
#[cfg(not(feature = "postgres"))]
pub trait PgQueryable {}
#[cfg(not(feature = "postgres"))]
impl<T> PgQueryable for T {}

/// The words of a keyword as a full-text query: each word quoted, so no search syntax gets
/// through; all of them must appear. `None` when the keyword has no word.
pub fn keyword_query(keyword: &str) -> Option<String> {
    let words: Vec<String> = keyword
        .split(|c: char| !search_index::is_word_char(c))
        .filter(|w| !w.is_empty())
        .take(16)
        .map(|w| format!("\"{w}\""))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// How a keyword is matched against a ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Matched {
    /// Each ticket's messages checked against the index: the work follows the tickets looked at.
    PerTicket,
    /// The keyword's matching messages listed once, then their tickets: the work follows the
    /// keyword's rarity.
    FromMatches,
}

/// How many messages match the full-text query `query`, counted up to `limit`.
fn matches_up_to(conn: &mut Conn, query: &str, limit: i64) -> anyhow::Result<i64> {
    let mut b = SqlBuilder { sqlite: matches!(conn, AnyConnection::Sqlite(_)), sql: String::new(), params: Vec::new() };
    if b.sqlite {
        b.push("SELECT COUNT(*) AS n FROM (SELECT rowid FROM message_search WHERE message_search MATCH ")
            .param(Param::Text(query.to_string()));
    } else {
        b.push("SELECT COUNT(*) AS n FROM (SELECT 1 FROM message_search s WHERE s.tsv @@ CAST(")
            .param(Param::Text(search_index::tsquery(query)))
            .push(" AS tsquery)");
    }
    b.push(" LIMIT ").param(Param::Int(limit)).push(") x");
    Ok(b.load::<CountRow>(conn)?.first().map_or(0, |r| r.n))
}

/// The `WHERE` clause shared by the count and the page of [`list_tickets`]. When the page walks
/// the date index (`walk_date_index`), SQLite is kept from using the status index (`+t.status`):
/// walking the tickets newest first and stopping at the page's end beats sorting every open
/// ticket, the open ones being the recent ones.
fn list_filter(
    b: &mut SqlBuilder,
    audience: &Audience,
    c: &ListCriteria,
    keywords: &[(String, Matched)],
    walk_date_index: bool,
) {
    b.push(" WHERE 1 = 1");
    if let Audience::Customer { email, shared_company } = audience {
        b.push(" AND (t.requester = ").param(Param::Text(email.clone()));
        b.push(" OR t.number IN (SELECT w.ticket_number FROM watchers w WHERE w.address = ")
            .param(Param::Text(email.clone()))
            .push(")");
        if let Some(company) = shared_company {
            // The status repeated here lets SQLite seek (company, status) for this branch of the
            // OR; its other branches are a person's few tickets.
            b.push(" OR (t.company = ").param(Param::Text(company.clone()));
            status_filter(b, c, "t.status");
            b.push(")");
        }
        b.push(")");
    }
    if let Some(n) = c.number {
        b.push(" AND t.number = ").param(Param::Int(n));
    }
    status_filter(b, c, if walk_date_index && b.sqlite { "+t.status" } else { "t.status" });
    let priorities: Vec<&str> = c.priorities.iter().map(|p| p.as_str()).collect();
    one_of(b, "t.priority", &priorities, Priority::ALL.len());
    if let Some(product) = &c.product {
        b.push(" AND lower(t.product) = lower(").param(Param::Text(product.clone())).push(")");
    }
    if let Some(from) = c.from {
        b.push(" AND t.updated_at >= ").param(Param::Int(from));
    }
    if let Some(until) = c.until {
        b.push(" AND t.created_at < ").param(Param::Int(until));
    }
    match &c.assignee {
        Some(Some(a)) => {
            b.push(" AND t.assignee = ").param(Param::Text(a.clone()));
        }
        Some(None) => {
            b.push(" AND t.assignee IS NULL");
        }
        None => {}
    }
    match c.waiting_on_us {
        Some(true) => {
            b.push(" AND t.waiting_since IS NOT NULL AND t.status <> 'closed'");
        }
        Some(false) => {
            b.push(" AND t.status = 'waiting'");
        }
        None => {}
    }
    if let Some(r) = &c.requester {
        b.push(" AND t.requester = ").param(Param::Text(r.clone()));
    }
    if let Some(company) = &c.company {
        b.push(" AND lower(t.company) = lower(").param(Param::Text(company.clone())).push(")");
    }
    if let Some(q) = &c.queue {
        b.push(" AND t.queue = ").param(Param::Text(q.clone()));
    }
    let notes = visibility::messages_seen_sql(audience);
    for (query, how) in keywords {
        match (b.sqlite, how) {
            // Each of the ticket's messages checked against the index: a rowid seek per message
            // (CROSS JOIN keeps SQLite from turning the loops around).
            (true, Matched::PerTicket) => {
                b.push(" AND EXISTS (SELECT 1 FROM messages m CROSS JOIN message_search ON message_search.rowid = m.id WHERE m.ticket_number = t.number")
                    .push(notes)
                    .push(" AND message_search MATCH ")
                    .param(Param::Text(query.clone()))
                    .push(")");
            }
            // The messages matching the keyword listed once, then their tickets.
            (true, Matched::FromMatches) => {
                b.push(" AND t.number IN (SELECT m.ticket_number FROM messages m WHERE m.id IN (SELECT rowid FROM message_search WHERE message_search MATCH ")
                    .param(Param::Text(query.clone()))
                    .push(")")
                    .push(notes)
                    .push(")");
            }
            (false, Matched::PerTicket) => {
                b.push(" AND EXISTS (SELECT 1 FROM messages m JOIN message_search s ON s.message_id = m.id WHERE m.ticket_number = t.number")
                    .push(notes)
                    .push(" AND s.tsv @@ CAST(")
                    .param(Param::Text(search_index::tsquery(query)))
                    .push(" AS tsquery))");
            }
            // An array computed once (`ARRAY(…)`, an InitPlan): PostgreSQL then fetches those
            // tickets by number. As a semi-join it walked all 100,000 tickets newest first and
            // checked each for a rare word (21 s).
            (false, Matched::FromMatches) => {
                b.push(" AND t.number = ANY(ARRAY(SELECT m.ticket_number FROM messages m WHERE m.id IN (SELECT s.message_id FROM message_search s WHERE s.tsv @@ CAST(")
                    .param(Param::Text(search_index::tsquery(query)))
                    .push(" AS tsquery))")
                    .push(notes)
                    .push("))");
            }
        }
    }
    if c.unread_only {
        b.push(" AND (r.read_at IS NULL OR r.read_at < t.updated_at)");
    }
}

/// ` AND <column> IN (…)` for the statuses asked for, nothing when any status will do.
fn status_filter(b: &mut SqlBuilder, c: &ListCriteria, column: &str) {
    let statuses: Vec<&str> = c.statuses.iter().map(|s| s.as_str()).collect();
    one_of(b, column, &statuses, Status::ALL.len());
}

/// ` AND <column> IN (…values)`, nothing when `values` is empty or holds all `possible` ones.
fn one_of(b: &mut SqlBuilder, column: &str, values: &[&str], possible: usize) {
    if values.is_empty() || values.len() >= possible {
        return;
    }
    b.push(" AND ").push(column).push(" IN (");
    for (i, v) in values.iter().enumerate() {
        b.push(if i == 0 { "" } else { ", " }).param(Param::Text((*v).into()));
    }
    b.push(")");
}

/// One page of the tickets `audience` may see that match `c`, and how many match: exactly, or —
/// for a search of common words by staff or a shared company's member — up to
/// `c.search.count_cap`, beyond which the count says "more than".
pub fn list_tickets(
    conn: &mut Conn,
    viewer: &str,
    audience: &Audience,
    c: &ListCriteria,
) -> anyhow::Result<(Count, Vec<ListedTicket>)> {
    let sqlite = matches!(conn, AnyConnection::Sqlite(_));
    let queries: Vec<String> = c.keywords.iter().filter_map(|k| keyword_query(k)).collect();
    // A customer sees few tickets: each of their messages is checked against the index. Staff and
    // shared companies see many: the rarest keyword's matches are listed once, then their tickets,
    // so the work follows the keyword's rarity — unless every keyword is common and the list is
    // paged in an order an index gives (newest first, by number): then the tickets are walked in
    // that order, each checked, until the page is full, and the count stops at a cap.
    let per_ticket = matches!(audience, Audience::Customer { shared_company: None, .. });
    let walkable = c.limit.is_some() && matches!(c.sort, SortKey::Updated | SortKey::Number);
    let mut keywords: Vec<(String, Matched)> = queries.iter().map(|q| (q.clone(), Matched::PerTicket)).collect();
    let mut walked = false;
    if !per_ticket && !queries.is_empty() {
        let mut rarest = (i64::MAX, 0);
        for (i, q) in queries.iter().enumerate() {
            let n = matches_up_to(conn, q, c.search.common)?;
            if n < rarest.0 {
                rarest = (n, i);
            }
        }
        if rarest.0 < c.search.common || !walkable {
            keywords[rarest.1].1 = Matched::FromMatches;
        } else {
            walked = true;
        }
    }
    let reads_join = |b: &mut SqlBuilder| {
        b.push(" FROM tickets t LEFT JOIN reads r ON r.email = ")
            .param(Param::Text(viewer.to_string()))
            .push(" AND r.ticket_number = t.number");
    };
    // Staff see every ticket: walking the date index newest first finds a page at once. A
    // customer sees a few hundred or thousand: SQLite must start from the audience's own indexes
    // (requester, watchers, company) and sort what they give; walking the date index instead
    // read all 100,000 tickets when fewer than a page of them matched (a `+` keeps it off).
    let walk_date_index = audience.is_staff() && c.sort == SortKey::Updated;
    let count = |conn: &mut Conn, cap: Option<i64>| -> anyhow::Result<i64> {
        let head = if cap.is_some() { "SELECT COUNT(*) AS n FROM (SELECT 1" } else { "SELECT COUNT(*) AS n" };
        let mut count = SqlBuilder { sqlite, sql: head.into(), params: Vec::new() };
        if c.unread_only {
            reads_join(&mut count);
        } else {
            count.push(" FROM tickets t");
        }
        list_filter(&mut count, audience, c, &keywords, cap.is_some() && walk_date_index);
        if let Some(cap) = cap {
            count.push(" LIMIT ").param(Param::Int(cap)).push(") x");
        }
        Ok(count.load::<CountRow>(conn)?.first().map_or(0, |r| r.n))
    };
    // The same on PostgreSQL, which otherwise walked all 100,000 tickets newest first for a
    // customer with one open ticket (38 ms; 3 ms from the status index and a sort).
    let keep_off_index = !audience.is_staff() && matches!(c.sort, SortKey::Updated | SortKey::Created);
    let page = |counted: bool| {
        let mut page = SqlBuilder {
            sqlite,
            sql: "SELECT t.number, t.subject, t.status, t.priority, t.requester, t.company, t.product, t.service, \
                  t.unverified, t.refers_to, t.created_at, t.updated_at, t.closed_at, \
                  t.assignee, t.queue, t.waiting_since, \
                  (r.read_at IS NULL OR r.read_at < t.updated_at) AS unread"
                .into(),
            params: Vec::new(),
        };
        if counted {
            page.push(", COUNT(*) OVER () AS selected");
        }
        reads_join(&mut page);
        list_filter(&mut page, audience, c, &keywords, walk_date_index);
        let dir = if c.descending { "DESC" } else { "ASC" };
        // An expression is sorted, not read from an index: `+x` for SQLite, `x + 0` for PostgreSQL.
        let order = match (keep_off_index && !walked, sqlite) {
            (false, _) => c.sort.sql(sqlite).to_string(),
            (true, true) => format!("+{}", c.sort.sql(sqlite)),
            (true, false) => format!("{} + 0", c.sort.sql(sqlite)),
        };
        page.push(&format!(" ORDER BY {order} {dir}, t.number {dir}"));
        if let Some(limit) = c.limit {
            page.push(" LIMIT ").param(Param::Int(limit)).push(" OFFSET ").param(Param::Int(c.offset.max(0)));
        }
        page
    };
    if walked {
        // The page stops at its end; the count at the cap (one more tells "more than").
        let cap = c.search.count_cap;
        let n = count(conn, Some(cap + 1))?;
        let total = Count { n: n.min(cap), capped: n > cap };
        if n == 0 || c.limit == Some(0) {
            return Ok((total, Vec::new()));
        }
        return Ok((total, page(false).load::<ListedTicket>(conn)?));
    }
    // With keywords, matching the words is most of the work: the page counts its selection
    // itself (a window over every row it sorted) rather than a second query matching them again.
    // Without, the count is cheap and the page may stop early (staff: the date index).
    if queries.is_empty() || c.limit == Some(0) {
        let total = count(conn, None)?;
        if total == 0 || c.limit == Some(0) {
            return Ok((Count::exact(total), Vec::new()));
        }
        return Ok((Count::exact(total), page(false).load::<ListedTicket>(conn)?));
    }
    let rows = page(true).load::<CountedRow>(conn)?;
    let total = match rows.first() {
        Some(r) => r.selected,
        // A page past the end has no row to carry the count.
        None if c.offset > 0 => count(conn, None)?,
        None => 0,
    };
    Ok((Count::exact(total), rows.into_iter().map(|r| r.listed).collect()))
}
