//! The JSON API (SPEC §1 shapes), with the same authorisation as the pages: `GET /api/tickets`
//! (the list object) and `GET /api/tickets/{n}` (the ticket object; internal notes only for staff).
//! What a customer is shown of each message follows `desk::visibility`, as on the page; HTML
//! bodies are sanitised as on the page.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::criteria::Criteria;
use super::session::Viewer;
use super::ticket::{number, shown_message, visible_ticket};
use super::{WebError, html, list, no_store};
use crate::app::App;
use crate::desk::visibility;
use crate::store::messages;
use crate::store::reads;
use crate::store::tickets;
use crate::store::views::{self, TicketJson};

/// `GET /api/tickets`: `{"total", "page", "per_page", "tickets": [ticket without messages, plus "unread"]}`;
/// `"total_capped": true` when a search of common words stopped counting at `total` (more match).
pub async fn list(State(app): State<App>, viewer: Viewer, RawQuery(query): RawQuery) -> Result<Response, WebError> {
    let criteria = Criteria::parse(query.as_deref().unwrap_or(""));
    let (total, rows) = list::fetch(&app, &viewer, &criteria, true).await?;
    let numbers: Vec<i64> = rows.iter().map(|r| r.ticket.number).collect();
    let watchers = app.store.run(move |s| s.browse(|c| tickets::watchers_of_many(c, &numbers))).await?;
    let tickets: Vec<TicketJson> = rows
        .into_iter()
        .map(|r| {
            let number = r.ticket.number;
            let w = watchers.iter().filter(|(n, _)| *n == number).map(|(_, a)| a.clone()).collect();
            let mut json = views::ticket_json(&r.ticket, w);
            json.unread = Some(r.unread);
            visibility::ticket_for(viewer.is_staff(), &mut json);
            json
        })
        .collect();
    let body = json!({"total": total.n, "total_capped": total.capped, "page": criteria.page, "per_page": criteria.per_page, "tickets": tickets});
    Ok((no_store(), Json(body)).into_response())
}

/// `GET /api/tickets/{n}`: the ticket object with its conversation.
pub async fn ticket(State(app): State<App>, viewer: Viewer, Path(n): Path<String>) -> Result<Response, WebError> {
    let n = number(&n)?;
    let v = viewer.clone();
    let found = app
        .store
        .run(move |s| {
            s.browse(|c| {
                let Some(row) = visible_ticket(c, &v, n)? else { return Ok(None) };
                let Some(mut json) = views::ticket_with_messages(c, n, &v.audience, v.lang.code())? else {
                    return Ok(None);
                };
                json.unread = Some(reads::is_unread(c, v.address.as_str(), &row)?);
                let ids: Vec<i64> = json.messages.iter().flatten().map(|m| m.id).collect();
                let cids: HashMap<i64, HashMap<String, i64>> =
                    messages::attachments_of(c, &ids)?.into_iter().fold(HashMap::new(), |mut acc, a| {
                        if let Some(cid) = a.content_id {
                            acc.entry(a.message_id).or_default().insert(cid, a.id);
                        }
                        acc
                    });
                Ok(Some((json, cids)))
            })
        })
        .await?;
    let Some((mut json, cids)) = found else { return Err(WebError::NotFound) };
    visibility::ticket_for(viewer.is_staff(), &mut json);
    let empty = HashMap::new();
    for m in json.messages.iter_mut().flatten() {
        if let Some(event) = m.event.take() {
            let event = visibility::event_for(&app.desk, viewer.is_staff(), event);
            m.text = event.text(viewer.lang.code());
            m.full_text = m.text.clone();
            m.event = Some(event);
        }
        let written = visibility::Written {
            kind: &m.kind,
            from: &m.from,
            name: m.from_name.as_deref(),
            text: &m.text,
            full_text: &m.full_text,
        };
        let shown = shown_message(&app, &viewer, &written);
        let (from, name, text, full_text, html_shown) =
            (shown.from, shown.name, shown.text.into_owned(), shown.full_text.into_owned(), shown.html);
        if from != m.from {
            m.from = from;
            m.from_name = Some(name);
        }
        m.text = text;
        m.full_text = full_text;
        m.html = m
            .html
            .take()
            .filter(|_| html_shown)
            .map(|h| html::sanitize_mail_html(&h, cids.get(&m.id).unwrap_or(&empty), false));
    }
    Ok((no_store(), Json(json)).into_response())
}
