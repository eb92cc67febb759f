//! One ticket (`/tickets/{n}`): its header, the conversation (customers on one side, staff on the
//! other, events between), attachments, the sanitised HTML of mails in a sandboxed frame, and the
//! forms: answer with files, close, reopen with a reason; for staff also status, priority and
//! internal notes. Every action goes through `desk::actions`, the code mail uses, so it stores the
//! same trace and sends the same notifications.
//!
//! A ticket the viewer may not see answers 404, exactly like a ticket that does not exist.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::forms::{self, Upload, normalise_text};
use super::pages::{Page, text, time_json};
use super::session::Viewer;
use super::{WebError, html, no_store};
use crate::app::App;
use crate::desk::actions::{self, Incoming, Mailing};
use crate::desk::notices::human_size;
use crate::desk::visibility;
use crate::domain::{MessageKind, Priority, Status};
use crate::store::messages::{self, AttachmentRow, MessageRow};
use crate::store::reads;
use crate::store::tickets::{self, TicketRow};
use crate::store::{self, Conn, outbox};

/// A ticket number from the path; anything else is simply not found.
pub fn number(raw: &str) -> Result<i64, WebError> {
    raw.parse::<i64>().ok().filter(|n| *n > 0).ok_or(WebError::NotFound)
}

/// The ticket if `viewer` may see it.
pub fn visible_ticket(conn: &mut Conn, viewer: &Viewer, n: i64) -> anyhow::Result<Option<TicketRow>> {
    let Some(ticket) = tickets::get_ticket(conn, n)? else { return Ok(None) };
    Ok(visibility::may_see(conn, &viewer.audience, &ticket)?.then_some(ticket))
}

/// A message as `viewer` is shown it (the visibility rule lives in `desk::visibility`).
pub fn shown_message<'a>(app: &App, viewer: &Viewer, m: &visibility::Written<'a>) -> visibility::Shown<'a> {
    visibility::shown(&app.desk, viewer.is_staff(), m)
}

/// What the page shows, read in one go.
struct Loaded {
    ticket: TicketRow,
    watchers: Vec<String>,
    messages: Vec<MessageRow>,
    files: Vec<AttachmentRow>,
    failures: Vec<(String, String, Option<String>)>,
}

fn load(conn: &mut Conn, viewer: &Viewer, n: i64) -> anyhow::Result<Option<Loaded>> {
    let Some(ticket) = visible_ticket(conn, viewer, n)? else { return Ok(None) };
    let messages = messages::messages_of(conn, n, &viewer.audience)?;
    let ids: Vec<i64> = messages.iter().map(|m| m.id).collect();
    Ok(Some(Loaded {
        watchers: tickets::watchers_of(conn, n)?,
        files: messages::attachments_of(conn, &ids)?,
        failures: if viewer.is_staff() { outbox::failures_of_ticket(conn, n)? } else { Vec::new() },
        messages,
        ticket,
    }))
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    #[serde(default)]
    done: Option<String>,
    #[serde(default)]
    images: Option<String>,
}

/// A message shown above the page: what was just done, or what went wrong with a form.
enum Flash {
    None,
    Done(String),
    Error(String),
}

/// `GET /tickets/{n}`: the page, and the ticket marked read.
pub async fn page(
    State(app): State<App>,
    viewer: Viewer,
    Path(n): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Response, WebError> {
    let n = number(&n)?;
    let flash = match q.done.as_deref() {
        Some(done @ ("replied" | "noted" | "closed" | "reopened" | "status" | "priority" | "created")) => {
            Flash::Done(text(viewer.lang, &format!("done_{done}"), &[]))
        }
        _ => Flash::None,
    };
    let images = q.images.as_deref() == Some("1");
    render(&app, &viewer, n, flash, "", images, StatusCode::OK).await
}

async fn render(
    app: &App,
    viewer: &Viewer,
    n: i64,
    flash: Flash,
    draft: &str,
    images: bool,
    status: StatusCode,
) -> Result<Response, WebError> {
    let v = viewer.clone();
    let loaded = app
        .store
        .run(move |s| {
            let loaded = s.browse(|c| load(c, &v, n))?;
            if let Some(l) = &loaded
                && s.browse(|c| reads::is_unread(c, v.address.as_str(), &l.ticket))?
            {
                s.write(|c| reads::mark_read(c, v.address.as_str(), &l.ticket, store::now()))?;
            }
            Ok(loaded)
        })
        .await?
        .ok_or(WebError::NotFound)?;
    let page = Page {
        template: "ticket",
        lang: viewer.lang,
        title: format!("#{} {}", loaded.ticket.number, loaded.ticket.subject),
        viewer: Some(viewer),
        helpdesk_name: &app.settings.helpdesk.name,
        data: view(app, viewer, &loaded, flash, draft, images),
    }
    .render()?;
    Ok((status, no_store(), Html(page)).into_response())
}

fn view(app: &App, viewer: &Viewer, l: &Loaded, flash: Flash, draft: &str, images: bool) -> Value {
    let lang = viewer.lang;
    let t = &l.ticket;
    let status = t.status();
    let priority = t.priority();
    let messages: Vec<Value> = l.messages.iter().map(|m| message(app, viewer, m, &l.files, images)).collect();
    let (flash_done, flash_error) = match flash {
        Flash::None => (String::new(), String::new()),
        Flash::Done(s) => (s, String::new()),
        Flash::Error(s) => (String::new(), s),
    };
    let lang_code = lang.code();
    json!({
        "ticket": {
            "number": t.number,
            "token": app.desk.token.format(t.number),
            "subject": t.subject,
            "status": status.as_str(),
            "status_label": status.label(lang_code),
            "priority": priority.as_str(),
            "priority_label": priority.label(lang_code),
            "requester": t.requester,
            "watchers": l.watchers,
            "company": t.company.clone().unwrap_or_default(),
            "product": t.product.clone().unwrap_or_default(),
            "service": t.service.clone().unwrap_or_default(),
            "created": time_json(lang, app.desk.time_zone(), t.created_at),
            "updated": time_json(lang, app.desk.time_zone(), t.updated_at),
            "closed": t.closed_at.map(|c| time_json(lang, app.desk.time_zone(), c)).unwrap_or(json!(false)),
            "unverified": t.unverified,
            "refers_to": t.refers_to.unwrap_or(0),
            "closed_flag": status == Status::Closed,
            "assignee": t.assignee.clone().unwrap_or_default(),
        },
        "messages": messages,
        "flash_done": flash_done,
        "flash_error": flash_error,
        "draft": draft,
        "images": images,
        "has_html": l.messages.iter().any(|m| m.html.is_some() && m.kind != MessageKind::Event.as_str()),
        "limit": human_size(app.settings.helpdesk.max_attachment_bytes, lang_code),
        "statuses": Status::ALL.iter().map(|s| json!({"code": s.as_str(), "label": s.label(lang_code), "selected": *s == status})).collect::<Vec<_>>(),
        "staff_members": app.desk.staff.addresses().map(|a| {
            let a = a.to_string();
            json!({"address": a, "selected": t.assignee.as_deref() == Some(a.as_str())})
        }).collect::<Vec<_>>(),
        "priorities": Priority::ALL.iter().map(|p| json!({"code": p.as_str(), "label": p.label(lang_code), "selected": *p == priority})).collect::<Vec<_>>(),
        "failures": l.failures.iter().map(|(to, event, err)| json!({"recipient": to, "event": event, "error": err.clone().unwrap_or_default()})).collect::<Vec<_>>(),
    })
}

fn message(app: &App, viewer: &Viewer, m: &MessageRow, files: &[AttachmentRow], images: bool) -> Value {
    let lang = viewer.lang;
    let kind = m.kind.as_str();
    // A fact of the history is told in the reader's language, as the reader may see it.
    let told = m.event().map(|e| visibility::event_for(&app.desk, viewer.is_staff(), e).text(lang.code()));
    let shown = shown_message(
        app,
        viewer,
        &visibility::Written {
            kind,
            from: &m.from_addr,
            name: m.from_name.as_deref(),
            text: told.as_deref().unwrap_or(&m.text),
            full_text: told.as_deref().unwrap_or(&m.full_text),
        },
    );
    let own: Vec<&AttachmentRow> = files.iter().filter(|a| a.message_id == m.id).collect();
    let attachments: Vec<Value> = own
        .iter()
        .map(|a| {
            json!({
                "id": a.id,
                "name": a.name,
                "size": human_size(a.size.max(0) as u64, lang.code()),
                "url": format!("/attachments/{}", a.id),
                "image": a.content_id.is_some() && is_raster_image(&a.content_type),
            })
        })
        .collect();
    let refused: Vec<messages::RefusedAttachment> = serde_json::from_str(&m.refused).unwrap_or_default();
    let rest = shown.full_text.trim();
    let folded = !rest.is_empty() && rest != shown.text.trim();
    let html_url = format!("/messages/{}/html{}", m.id, if images { "?images=1" } else { "" });
    json!({
        "id": m.id,
        "kind": kind,
        "kind_label": text(lang, &format!("kind_{kind}"), &[]),
        "event": kind == MessageKind::Event.as_str(),
        "from": shown.from,
        "name": shown.name,
        "at": time_json(lang, app.desk.time_zone(), m.at),
        "text": shown.text,
        "full_text": if folded { shown.full_text.as_ref() } else { "" },
        "unverified": m.unverified,
        "auto": m.auto,
        "html_url": if m.html.is_some() && shown.html && kind != "event" { html_url } else { String::new() },
        "attachments": attachments,
        "refused": refused.iter().map(|r| json!({"name": r.name, "size": human_size(r.size, lang.code()), "reason": r.reason})).collect::<Vec<_>>(),
    })
}

/// Images a browser shows in `<img>` without running anything (no SVG).
fn is_raster_image(content_type: &str) -> bool {
    matches!(content_type, "image/png" | "image/jpeg" | "image/gif" | "image/webp")
}

/// Runs a ticket action in one write transaction, after checking that the viewer sees the ticket.
pub(super) async fn act<F>(app: &App, viewer: &Viewer, n: i64, f: F) -> Result<(), WebError>
where
    F: FnOnce(&mut Conn, &crate::desk::Desk, &TicketRow, &Viewer, i64) -> anyhow::Result<()> + Send + 'static,
{
    let desk = app.desk.clone();
    let v = viewer.clone();
    let found = app
        .store
        .run(move |s| {
            s.write(|c| {
                let Some(ticket) = visible_ticket(c, &v, n)? else { return Ok(false) };
                let now = store::now();
                f(c, &desk, &ticket, &v, now)?;
                // One's own action does not make the ticket unread.
                if let Some(updated) = tickets::get_ticket(c, n)? {
                    reads::mark_read(c, v.address.as_str(), &updated, now)?;
                }
                Ok(true)
            })
        })
        .await?;
    if found { Ok(()) } else { Err(WebError::NotFound) }
}

pub(super) fn done(n: i64, what: &str) -> Response {
    Redirect::to(&format!("/tickets/{n}?done={what}#last")).into_response()
}

/// Checks an answer's form; on a problem, the page again with the message and the typed text.
async fn check_upload(app: &App, viewer: &Viewer, n: i64, upload: &Upload) -> Result<Option<Response>, WebError> {
    viewer.check_csrf(upload.fields.get("csrf").map(String::as_str))?;
    let body = normalise_text(upload.field("body"));
    if let Some(refusal) = upload.refusal(viewer.lang, app.settings.helpdesk.max_attachment_bytes) {
        let r = render(app, viewer, n, Flash::Error(refusal), &body, false, StatusCode::PAYLOAD_TOO_LARGE).await?;
        return Ok(Some(r));
    }
    if body.is_empty() && upload.files.is_empty() {
        let r = render(
            app,
            viewer,
            n,
            Flash::Error(text(viewer.lang, "empty_answer", &[])),
            "",
            false,
            StatusCode::BAD_REQUEST,
        )
        .await?;
        return Ok(Some(r));
    }
    Ok(None)
}

fn incoming(ticket_subject: &str, upload: Upload) -> Incoming {
    let body = normalise_text(upload.field("body"));
    Incoming {
        subject: ticket_subject.to_string(),
        text: body.clone(),
        full_text: body,
        attachments: upload.files,
        ..Incoming::default()
    }
}

/// `POST /tickets/{n}/reply` (multipart `body`, `files`): a customer's answer, or staff's (relayed
/// to the customers, status → waiting on customer), as by mail.
pub async fn reply(
    State(app): State<App>,
    viewer: Viewer,
    Path(n): Path<String>,
    multipart: Multipart,
) -> Result<Response, WebError> {
    let n = number(&n)?;
    let upload = forms::read(multipart, app.settings.helpdesk.max_attachment_bytes, viewer.lang).await?;
    if let Some(problem) = check_upload(&app, &viewer, n, &upload).await? {
        return Ok(problem);
    }
    act(&app, &viewer, n, move |c, desk, ticket, v, now| {
        let msg = incoming(&ticket.subject, upload);
        if v.is_staff() {
            actions::staff_reply(c, desk, ticket, &v.actor(), &msg, false, None, None, Mailing::Send, now)
        } else {
            actions::customer_reply(c, desk, ticket, &v.actor(), &msg, &[], Mailing::Send, now)
        }
    })
    .await?;
    Ok(done(n, "replied"))
}

/// `POST /tickets/{n}/note` (staff; multipart `body`, `files`): an internal note, as `#note`.
pub async fn note(
    State(app): State<App>,
    viewer: Viewer,
    Path(n): Path<String>,
    multipart: Multipart,
) -> Result<Response, WebError> {
    let n = number(&n)?;
    let upload = forms::read(multipart, app.settings.helpdesk.max_attachment_bytes, viewer.lang).await?;
    if !viewer.is_staff() {
        return Err(WebError::NotFound);
    }
    if let Some(problem) = check_upload(&app, &viewer, n, &upload).await? {
        return Ok(problem);
    }
    act(&app, &viewer, n, move |c, desk, ticket, v, now| {
        let msg = incoming(&ticket.subject, upload);
        actions::staff_reply(c, desk, ticket, &v.actor(), &msg, true, None, None, Mailing::Send, now)
    })
    .await?;
    Ok(done(n, "noted"))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: Option<String>,
}

/// `POST /tickets/{n}/close`
pub async fn close(
    State(app): State<App>,
    viewer: Viewer,
    Path(n): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    let n = number(&n)?;
    viewer.check_csrf(form.csrf.as_deref())?;
    act(&app, &viewer, n, |c, desk, ticket, v, now| {
        actions::change_status(c, desk, ticket, Status::Closed, &v.address, Mailing::Send, now)
    })
    .await?;
    Ok(done(n, "closed"))
}

#[derive(Deserialize)]
pub struct ReopenForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    reason: String,
}

/// `POST /tickets/{n}/reopen` (`reason`): a closed ticket opens again, its reason traced and told.
pub async fn reopen(
    State(app): State<App>,
    viewer: Viewer,
    Path(n): Path<String>,
    Form(form): Form<ReopenForm>,
) -> Result<Response, WebError> {
    let n = number(&n)?;
    viewer.check_csrf(form.csrf.as_deref())?;
    let reason: String = normalise_text(&form.reason).chars().take(2000).collect();
    if reason.is_empty() {
        let flash = Flash::Error(text(viewer.lang, "reopen_needs_reason", &[]));
        return render(&app, &viewer, n, flash, "", false, StatusCode::BAD_REQUEST).await;
    }
    act(&app, &viewer, n, move |c, desk, ticket, v, now| {
        if ticket.status() != Status::Closed {
            return Ok(());
        }
        actions::reopen(c, desk, ticket, &v.address, &reason, now)
    })
    .await?;
    Ok(done(n, "reopened"))
}

/// Whether `viewer` may read message `m` (its ticket visible; notes for staff only).
fn message_visible(conn: &mut Conn, viewer: &Viewer, m: &MessageRow) -> anyhow::Result<bool> {
    if m.kind == MessageKind::Note.as_str() && !viewer.is_staff() {
        return Ok(false);
    }
    Ok(visible_ticket(conn, viewer, m.ticket_number)?.is_some())
}

/// `GET /messages/{id}/html`: a mail's HTML, sanitised, for the sandboxed frame of the ticket page.
/// Its own policy: no script at all, styles inline only, images from attachments (and, with
/// `images=1`, from anywhere the reader chose to load them), framed only by our own pages.
pub async fn message_html(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Response, WebError> {
    let id = number(&id)?;
    let v = viewer.clone();
    let desk = app.desk.clone();
    let found = app
        .store
        .run(move |s| {
            s.read(|c| {
                let Some(m) = messages::message_by_id(c, id)? else { return Ok(None) };
                if !message_visible(c, &v, &m)? {
                    return Ok(None);
                }
                let written = visibility::Written {
                    kind: &m.kind,
                    from: &m.from_addr,
                    name: m.from_name.as_deref(),
                    text: &m.text,
                    full_text: &m.full_text,
                };
                if !visibility::shown(&desk, v.is_staff(), &written).html {
                    return Ok(None);
                }
                let cids: HashMap<String, i64> = messages::attachments_of(c, &[m.id])?
                    .into_iter()
                    .filter_map(|a| a.content_id.map(|cid| (cid, a.id)))
                    .collect();
                Ok(m.html.map(|h| (h, cids)))
            })
        })
        .await?;
    let Some((raw, cids)) = found else { return Err(WebError::NotFound) };
    let remote = q.images.as_deref() == Some("1");
    let body = html::sanitize_mail_html(&raw, &cids, remote);
    let doc = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta name=\"referrer\" content=\"no-referrer\">\
         <title>mail</title></head><body>{body}</body></html>"
    );
    let images = if remote { "'self' data: https: http:" } else { "'self' data:" };
    let csp = format!(
        "default-src 'none'; img-src {images}; style-src 'unsafe-inline'; \
         sandbox allow-same-origin allow-popups allow-popups-to-escape-sandbox; frame-ancestors 'self'; \
         base-uri 'none'; form-action 'none'"
    );
    let mut response = (no_store(), Html(doc)).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_str(&csp).map_err(anyhow::Error::from)?);
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("SAMEORIGIN"));
    Ok(response)
}

/// `GET /attachments/{id}`: always a download (`Content-Disposition: attachment`, `nosniff`,
/// a sandboxing policy), never a page of our origin. Only raster images keep their type (so that
/// inline images show in `<img>`); anything else is `application/octet-stream`.
pub async fn attachment(State(app): State<App>, viewer: Viewer, Path(id): Path<String>) -> Result<Response, WebError> {
    let id = number(&id)?;
    let v = viewer.clone();
    let found = app
        .store
        .run(move |s| {
            s.read(|c| {
                let row = messages::attachment(c, id, &v.audience)?;
                let Some((row, ticket, data)) = row else { return Ok(None) };
                Ok(visible_ticket(c, &v, ticket)?.map(|_| (row, data)))
            })
        })
        .await?;
    let Some((row, data)) = found else { return Err(WebError::NotFound) };
    let content_type =
        if is_raster_image(&row.content_type) { row.content_type.clone() } else { "application/octet-stream".into() };
    let mut response = (StatusCode::OK, data).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_str(&content_type).map_err(anyhow::Error::from)?);
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&content_disposition(&row.name)).map_err(anyhow::Error::from)?,
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    Ok(response)
}

/// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded` (RFC 6266), header-safe.
pub fn content_disposition(name: &str) -> String {
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{}", super::criteria::encode(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_names_cannot_break_the_header() {
        let d = content_disposition("rapport \"final\"\r\n.pdf");
        assert!(!d.contains('\r') && !d.contains('\n'));
        assert!(d.starts_with("attachment; filename=\"rapport _final___.pdf\""), "{d}");
        assert!(content_disposition("été.txt").ends_with("filename*=UTF-8''%C3%A9t%C3%A9.txt"));
    }
}
