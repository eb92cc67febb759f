//! The ticket list (`GET /`): the criteria of the reference portals' list view, sortable columns,
//! page sizes, unread markers, and criteria saved per person (applied when `/` is opened without
//! any criteria; "forget" removes them).

use axum::Form;
use axum::extract::{RawQuery, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::criteria::{Criteria, PAGE_SIZES};
use super::pages::{Page, text, time_json};
use super::session::{Lang, Viewer};
use super::{WebError, no_store};
use crate::app::App;
use crate::domain::{Priority, Status};
use crate::store::listing::{self, Count, ListedTicket, SortKey};
use crate::store::reads;
use crate::store::visibility;

/// One page (or, `paged` false, every row) of what `viewer` may see under `criteria`.
pub async fn fetch(
    app: &App,
    viewer: &Viewer,
    criteria: &Criteria,
    paged: bool,
) -> Result<(Count, Vec<ListedTicket>), WebError> {
    let list = criteria.to_list(viewer.address.as_str(), paged);
    let email = viewer.address.as_str().to_string();
    let audience = viewer.audience.clone();
    Ok(app.store.run(move |s| s.browse(|c| listing::list_tickets(c, &email, &audience, &list))).await?)
}

/// `GET /`
pub async fn page(State(app): State<App>, viewer: Viewer, RawQuery(query): RawQuery) -> Result<Response, WebError> {
    let email = viewer.address.as_str().to_string();
    let saved = app.store.run(move |s| s.read(|c| reads::saved_criteria(c, &email))).await?;
    // Saved criteria apply when the list is opened as plain `/`; the page's own links always
    // carry a `?`, so the default criteria stay reachable.
    let applied_saved = query.is_none() && saved.is_some();
    let query = if applied_saved { saved.clone().unwrap_or_default() } else { query.unwrap_or_default() };
    let criteria = Criteria::parse(&query);
    let (total, rows) = fetch(&app, &viewer, &criteria, true).await?;
    let lang = viewer.lang;
    let pages = ((total.n + criteria.per_page - 1) / criteria.per_page).max(1);
    let url = |c: &Criteria| {
        let q = c.to_query(true);
        if q.is_empty() { "/?".to_string() } else { format!("/?{q}") }
    };
    let page_url = |p: i64| {
        let mut c = criteria.clone();
        c.page = p;
        url(&c)
    };
    let columns: Vec<Value> = SortKey::ALL
        .iter()
        .map(|&key| {
            let current = criteria.sort == key;
            // A click on the sorted column flips it; another column starts in its natural order.
            let descending = if current {
                !criteria.descending
            } else {
                matches!(key, SortKey::Updated | SortKey::Created | SortKey::Number | SortKey::Priority)
            };
            let mut c = criteria.clone();
            c.sort = key;
            c.descending = descending;
            c.page = 1;
            json!({
                "key": key.as_str(),
                "label": text(lang, &format!("col_{}", key.as_str()), &[]),
                "url": url(&c),
                "current": current,
                "arrow": if !current { "" } else if criteria.descending { "▼" } else { "▲" },
                "aria": if !current { "none" } else if criteria.descending { "descending" } else { "ascending" },
            })
        })
        .collect();
    let row_json: Vec<Value> = rows.iter().map(|r| row(lang, app.desk.time_zone(), r)).collect();
    let export_query = criteria.to_query(false);
    let current_query = criteria.to_query(false);
    let data = json!({
        "rows": row_json,
        "total": total.n,
        "summary": summary(lang, total, criteria.page, pages),
        "columns_a": columns[..4],
        "columns_b": columns[4..],
        "prev_url": if criteria.page > 1 { page_url(criteria.page - 1) } else { String::new() },
        "next_url": if criteria.page < pages || (total.capped && !rows.is_empty()) { page_url(criteria.page + 1) } else { String::new() },
        "form": form_json(lang, &criteria),
        "export_csv": format!("/tickets/export.csv?{export_query}"),
        "export_xlsx": format!("/tickets/export.xlsx?{export_query}"),
        "query": current_query,
        "has_saved": saved.is_some(),
        "applied_saved": applied_saved,
        "staff": viewer.is_staff(),
        "show_requester": viewer.is_staff() || matches!(&viewer.audience, visibility::Audience::Customer { shared_company: Some(_), .. }),
        "notice": if applied_saved { text(lang, "criteria_saved_applied", &[]) } else { String::new() },
        // Staff write new tickets and forwards to their personal command address (SPEC §7).
        "command_address": if viewer.is_staff() { app.desk.personal_address(&viewer.address).to_string() } else { String::new() },
    });
    let page = Page {
        template: "list",
        lang,
        title: text(lang, "list_title", &[]),
        viewer: Some(&viewer),
        helpdesk_name: &app.settings.helpdesk.name,
        data,
    }
    .render()?;
    Ok((no_store(), Html(page)).into_response())
}

/// "12 ticket(s) — page 1 of 1", or for a count stopped at its cap "more than 10,000 tickets — page 3".
fn summary(lang: Lang, total: Count, page: i64, pages: i64) -> String {
    if !total.capped {
        return text(
            lang,
            "list_summary",
            &[("total", total.n.to_string()), ("page", page.to_string()), ("pages", pages.to_string())],
        );
    }
    // Thousands grouped as each language writes them: 10,000 / 10 000 (a narrow no-break space).
    let digits = total.n.to_string();
    let separator = if lang.code() == "fr" { "\u{202f}" } else { "," };
    let mut grouped = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push_str(separator);
        }
        grouped.push(d);
    }
    text(lang, "list_summary_capped", &[("total", grouped), ("page", page.to_string())])
}

fn row(lang: Lang, zone: chrono_tz::Tz, r: &ListedTicket) -> Value {
    let t = &r.ticket;
    let status: Status = t.status.parse().unwrap_or(Status::New);
    let priority: Priority = t.priority.parse().unwrap_or(Priority::Normal);
    json!({
        "number": t.number,
        "url": format!("/tickets/{}", t.number),
        "subject": t.subject,
        "status": status.as_str(),
        "status_label": status.label(lang.code()),
        "priority": priority.as_str(),
        "priority_label": priority.label(lang.code()),
        "requester": t.requester,
        "company": t.company.clone().unwrap_or_default(),
        "product": t.product.clone().unwrap_or_default(),
        "updated": time_json(lang, zone, t.updated_at),
        "created": time_json(lang, zone, t.created_at),
        "unread": r.unread,
        "assignee": t.assignee.clone().unwrap_or_default(),
        "waited": t.waiting_since.filter(|_| status != Status::Closed)
            .map(|since| crate::desk::timers::human_duration(crate::store::now() - since, lang.code()))
            .unwrap_or_default(),
    })
}

/// The filter form's values.
fn form_json(lang: Lang, c: &Criteria) -> Value {
    let statuses: Vec<Value> = Status::ALL
        .iter()
        .map(|s| json!({"code": s.as_str(), "label": s.label(lang.code()), "checked": c.statuses.contains(s)}))
        .collect();
    let priorities: Vec<Value> = Priority::ALL
        .iter()
        .map(|p| json!({"code": p.as_str(), "label": p.label(lang.code()), "selected": c.priorities == [*p]}))
        .collect();
    let sizes: Vec<Value> = PAGE_SIZES.iter().map(|n| json!({"value": n, "selected": *n == c.per_page})).collect();
    json!({
        "number": c.number.map(|n| n.to_string()).unwrap_or_default(),
        "statuses": statuses,
        "priorities": priorities,
        "any_priority": c.priorities.len() != 1,
        "product": c.product,
        "from": c.from.map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default(),
        "to": c.to.map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default(),
        "q": c.q,
        "unread": c.unread,
        "assignee": c.assignee,
        "assignee_me": c.assignee == "me",
        "assignee_none": c.assignee == "none",
        "waiting_us": c.waiting_on == "us",
        "waiting_customer": c.waiting_on == "customer",
        "requester": c.requester,
        "company": c.company,
        "sizes": sizes,
        "sort": c.sort_param(c.sort, c.descending),
    })
}

#[derive(Deserialize)]
pub struct SaveForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    query: String,
}

/// `POST /criteria/save`: keeps the list's current criteria for this person.
pub async fn save(State(app): State<App>, viewer: Viewer, Form(form): Form<SaveForm>) -> Result<Response, WebError> {
    viewer.check_csrf(form.csrf.as_deref())?;
    // Stored in canonical form, so that only known criteria are kept.
    let query = Criteria::parse(&form.query).to_query(false);
    let email = viewer.address.as_str().to_string();
    let q = query.clone();
    app.store.run(move |s| s.write(|c| reads::save_criteria(c, &email, &q))).await?;
    Ok(Redirect::to(&format!("/?{query}")).into_response())
}

#[derive(Deserialize)]
pub struct ForgetForm {
    #[serde(default)]
    csrf: Option<String>,
}

/// `POST /criteria/forget`
pub async fn forget(
    State(app): State<App>,
    viewer: Viewer,
    Form(form): Form<ForgetForm>,
) -> Result<Response, WebError> {
    viewer.check_csrf(form.csrf.as_deref())?;
    let email = viewer.address.as_str().to_string();
    app.store.run(move |s| s.write(|c| reads::forget_criteria(c, &email))).await?;
    Ok(Redirect::to("/?").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capped_count_says_more_than_in_both_languages() {
        let capped = Count { n: 10_000, capped: true };
        assert_eq!(summary(Lang::En, capped, 3, 400), "more than 10,000 tickets — page 3");
        assert_eq!(summary(Lang::Fr, capped, 3, 400), "plus de 10\u{202f}000 tickets — page 3");
        assert_eq!(
            summary(Lang::En, Count { n: 1_234_567, capped: true }, 1, 1),
            "more than 1,234,567 tickets — page 1"
        );
        assert_eq!(summary(Lang::En, Count::exact(12), 1, 1), "12 ticket(s) — page 1 of 1");
    }
}
